//! Sinks: the last operator of a chain. [`Writer`] encodes rows into a byte stream (stdout or
//! a file, JSON lines or CSV); [`Checksum`] consumes every field of every row and reports a row
//! count and an order-independent checksum (for benchmarks: nothing can be optimized away).

#[cfg(feature = "avro")]
pub mod avro;
pub mod changelog;
mod checksum;
pub mod committed;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod object;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod partitioned;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod preview;
mod writer;

pub use checksum::Checksum;
pub use writer::{open_output, part_path, prepare_parts, Output, Writer};
