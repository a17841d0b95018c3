//! Embed weir pipelines in a Rust crate. Depend on this crate only (`weir = { path = ... }`);
//! it re-exports the proc macros of `weir-macros` and the runtime the generated code links to.
//!
//! - [`pipeline!`]: a pipeline written inline (`weir::pipeline! { mod clicks; schema ... }`) or
//!   read from a file (`weir::pipeline!(mod clicks; file = "pipelines/clicks.weir")`, relative to
//!   the crate's root), compiled while rustc expands the macro into a module with
//!   `run(RunArgs)` (the pipeline's own sources and sinks) and `memory::run(RunArgs, Inputs)`
//!   (sources read [`Records`]: a `Vec`, an iterator or a channel; sinks fill `Vec`s).
//! - [`include_pipeline!`]: includes a module that `weir_compiler::build` generated in a build
//!   script (the same code as the macro's).
//! - [`derive@Record`]: a Rust struct as a pipeline's record type, with JSON and CSV encoding.
//! - [`Accumulator`]: the trait of aggregate functions written in Rust.
//! - [`Watch`]: a run's live metrics ([`RunArgs::watched`], [`Watch::metrics`]); with the
//!   feature `http`, the HTTP endpoint of a pipeline binary (`Watch::serve_http`).
//!
//! See "Embedding weir in a Rust crate" in the repository's README.

pub use weir_macros::{pipeline, Record};
pub use weir_runtime as runtime;
pub use weir_runtime::embed::{
    Accumulator, Error, FieldDesc, FieldType, MetricsSnapshot, Record, Records, Watch,
};
pub use weir_runtime::run::RunArgs;
pub use weir_runtime::state_struct;

/// Includes the module a build script generated with `weir_compiler::build` for the pipeline
/// `name` (by default, the file's stem): `weir::include_pipeline!("fraud");` defines
/// `mod fraud`.
#[macro_export]
macro_rules! include_pipeline {
    ($name:literal) => {
        include!(concat!(env!("OUT_DIR"), "/weir/", $name, ".rs"));
    };
}
