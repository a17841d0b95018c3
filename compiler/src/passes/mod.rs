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
pub fn run(graph: Dataflow, cx: &PassCx) -> (Dataflow, Vec<&'static str>) {
    run_passes(graph, cx, all())
}

/// Runs `passes` in order. Debug builds check the graph as it comes and after every pass, so
/// that a broken graph is blamed on the pass that broke it; a graph after the last pass is
/// validated in full (its tasks too) by the caller, in every build.
fn run_passes(
    mut graph: Dataflow,
    cx: &PassCx,
    passes: Vec<Box<dyn Pass>>,
) -> (Dataflow, Vec<&'static str>) {
    if cfg!(debug_assertions) {
        if let Err(err) = validate::check_structure(&graph) {
            panic!("lowering produced an invalid graph: {err}");
        }
    }
    let mut changed = Vec::new();
    for pass in passes {
        let out = pass.run(graph, cx);
        graph = out.value;
        if out.changed {
            changed.push(pass.name());
        }
        if cfg!(debug_assertions) {
            if let Err(err) = validate::check_structure(&graph) {
                panic!("pass {} produced an invalid graph: {err}", pass.name());
            }
        }
    }
    (graph, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{EdgeKind, Op};

    fn lowered(text: &str) -> Dataflow {
        let mut sources = crate::SourceMap::new();
        let file = sources.add("p.weir", text);
        let (program, diagnostics) = crate::check(&sources, file);
        let program = program.unwrap_or_else(|| panic!("{diagnostics:?}"));
        crate::ir::lower::lower(&program, &sources)
    }

    /// Connects the sink back to the source: a cycle.
    struct Breaks;

    impl Pass for Breaks {
        fn name(&self) -> &'static str {
            "breaks"
        }
        fn run(&self, mut graph: Dataflow, _: &PassCx) -> Transformed<Dataflow> {
            let ops = graph.ops();
            let source = ops
                .iter()
                .find(|&&op| matches!(graph.node(op).op, Op::Source { .. }));
            let filter = ops
                .iter()
                .find(|&&op| matches!(graph.node(op).op, Op::Filter(_)));
            let (Some(&source), Some(&filter)) = (source, filter) else {
                panic!("the test pipeline has a source and a filter");
            };
            graph.connect(filter, source, EdgeKind::Forward);
            Transformed::yes(graph)
        }
    }

    const PIPELINE: &str = "source bids = nexmark(stream: \"bid\", events: 10)\n\
                            let some = bids |> filter price > 10\n\
                            sink some -> stdout()\n";

    #[test]
    fn every_pass_leaves_a_valid_graph() {
        for no_fusion in [false, true] {
            let (graph, _) = run(lowered(PIPELINE), &PassCx { no_fusion });
            validate::validate(&graph).expect("a valid graph");
        }
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "pass breaks produced an invalid graph")]
    fn a_pass_that_breaks_the_graph_is_named() {
        let passes: Vec<Box<dyn Pass>> = vec![Box::new(ProjectionPushdown), Box::new(Breaks)];
        run_passes(lowered(PIPELINE), &PassCx::default(), passes);
    }
}
