//! Scalar functions (being written).
