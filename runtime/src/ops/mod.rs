//! Generic operators that generated chains are built from. Generated code supplies the
//! per-record logic as plain functions; these types supply counting, state and watermarks.

pub mod filter;
pub mod map;
pub mod window;

pub use filter::Filter;
pub use map::{FilterMap, Map};
pub use window::{WindowAggregate, WindowAggregateOp, Windows};
