//! The plan of a generated pipeline as data: its operators, the edges between them, how many
//! instances each has and what kind of stream it emits. Generated code hands it to the run
//! ([`crate::run::Runtime::describe`]); the HTTP endpoint shows it next to the live counters.

/// A pipeline's dataflow graph, as `weir explain` shows it after the optimization passes.
#[derive(Debug)]
pub struct Plan {
    /// The pipeline's name (the pipeline file's, which weir's driver sets in `WEIR_PIPELINE`
    /// when it compiles the generated crate); none when something else compiled it.
    pub pipeline: Option<&'static str>,
    pub operators: &'static [PlanOp],
    pub edges: &'static [PlanEdge],
}

/// One operator of the plan.
#[derive(Debug)]
pub struct PlanOp {
    /// `op3`: the operator's id in `weir explain`.
    pub id: &'static str,
    /// `source`, `fused`, `window_aggregate`, `join`, `rank`, `sink`, ...
    pub kind: &'static str,
    /// The step's text.
    pub label: &'static str,
    /// `splits(sourceN)` (one per split of source N), `keyed` (`--parallelism`) or `1`;
    /// the live view says how many instances started.
    pub parallelism: &'static str,
    /// The task (thread) its instances run in.
    pub task: Option<usize>,
    /// `append` or `updating`.
    pub stream: &'static str,
    /// How it treats time (window, join, watermark) and the stream it emits, one line each
    /// (as `weir explain` prints them).
    pub properties: &'static [&'static str],
    /// The name its counters are registered under (none: it keeps none, like sources).
    pub counters: Option<&'static str>,
    /// A source: its name, which its records and watermark are kept under.
    pub source: Option<&'static str>,
}

/// One edge of the plan.
#[derive(Debug)]
pub struct PlanEdge {
    pub from: &'static str,
    pub to: &'static str,
    /// `forward`, `hash(keys)` or `gather`.
    pub kind: &'static str,
    /// An edge between tasks: the name its exchange's counters are registered under.
    pub exchange: Option<&'static str>,
}
