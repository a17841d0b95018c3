//! Optimization passes over the dataflow graph, one file per pass, file name = pass name.
//!
//! Each pass takes the graph and gives it back, saying whether it changed anything. [`run`]
//! applies the ordered list; debug builds re-validate the graph after every pass.

mod chain_tasks;
mod fuse_stateless;
pub(crate) mod projection_pushdown;

pub use chain_tasks::ChainTasks;
pub use fuse_stateless::FuseStateless;
pub use projection_pushdown::ProjectionPushdown;

use crate::ir::{validate, Dataflow};

/// A graph and whether a pass changed it.
pub struct Transformed<T> {
    pub value: T,
    pub changed: bool,
}

impl<T> Transformed<T> {
    pub fn yes(value: T) -> Self {
        Transformed {
            value,
            changed: true,
        }
    }
    pub fn no(value: T) -> Self {
        Transformed {
            value,
            changed: false,
        }
    }
}

/// What passes may know about the compilation.
#[derive(Clone, Debug, Default)]
pub struct PassCx {
    /// `--no-fusion`: keep every operator separate (its own function and its own task).
    pub no_fusion: bool,
}

pub trait Pass {
    fn name(&self) -> &'static str;
    fn run(&self, graph: Dataflow, cx: &PassCx) -> Transformed<Dataflow>;
}

/// The passes, in order.
pub fn all() -> Vec<Box<dyn Pass>> {
    vec![
        // Narrow decoding sources to the fields the pipeline reads, before fusion merges the
        // operators whose field uses it inspects.
        Box::new(ProjectionPushdown),
        // Compose runs of filters and selects into one function (skipped with --no-fusion).
        Box::new(FuseStateless),
        // Group operators joined by forward edges into tasks; always last, since it decides
        // which edges become channels (with --no-fusion: every operator its own task).
        Box::new(ChainTasks),
    ]
}

/// Runs every pass in order. Returns the final graph and the names of the passes that
/// changed it.
pub fn run(mut graph: Dataflow, cx: &PassCx) -> (Dataflow, Vec<&'static str>) {
    let mut changed = Vec::new();
    for pass in all() {
        let out = pass.run(graph, cx);
        graph = out.value;
        if out.changed {
            changed.push(pass.name());
        }
        if cfg!(debug_assertions) && pass.name() == "chain_tasks" {
            if let Err(err) = validate::validate(&graph) {
                panic!("pass {} produced an invalid graph: {err}", pass.name());
            }
        }
    }
    (graph, changed)
}
