//! weir's runtime: the generic machinery every generated pipeline links to.
//!
//! Generated code is small (record types, fused per-record functions, wiring); everything
//! generic lives here and is compiled once per machine, which keeps pipeline rebuilds fast.

pub mod formats;
pub mod functions;
pub mod nexmark;
