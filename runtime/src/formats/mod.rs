//! Record formats (being written).
