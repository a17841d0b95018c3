//! Nexmark generator (being written).
