//! The naming pass: before any emitter runs, every operator gets the prefix of the items it
//! generates and, when it defines one, the name of its output record type, both from the
//! stream it computes (`let views = ...` names `ViewsRecord`, `views_fused`, `views_encode`).
//! Names a user of an embedded pipeline sees (a source's `ClicksRecord` and `ClicksInput`, a
//! sink's `ViewsRow`) and the names the runtime's prelude brings into scope are claimed
//! first, so a stream named like a runtime type or a Rust keyword still gets a unique, valid
//! name (the [`Namer`] adds `_2`). The pass walks the operators in topological order: the
//! same graph gives the same names, in every form of the output.

use std::collections::BTreeMap;

use proc_macro2::Ident;

use super::namer::{camel, Namer};
use crate::ir::{Dataflow, Op, OpId, Stateless};
use crate::sema::SourceKind;

/// What the runtime's prelude (`use ::weir_runtime::prelude::*`) and the entry points bring
/// into the generated module's scope: never the name of a generated item.
const RESERVED: &[&str] = &[
    "channels",
    "run_input",
    "Exchange",
    "Message",
    "Snapshot",
    "StateSlot",
    "RowHasher",
    "Collector",
    "Discard",
    "Tee",
    "DecodeError",
    "Inline",
    "Route",
    "OpMetrics",
    "Change",
    "Either",
    "Filter",
    "FilterMap",
    "FinalAggregateOp",
    "FinalTopNOp",
    "GroupAggregateOp",
    "JoinSpec",
    "Map",
    "RankSpec",
    "RetractTopNOp",
    "TopNOp",
    "UpsertKey",
    "WindowAggregate",
    "WindowAggregateOp",
    "Windows",
    "Runtime",
    "EventTime",
    "build",
    "main",
    "run",
    "Inputs",
    "Outputs",
    "Io",
];

/// The names chosen for each operator before emitting.
#[derive(Default)]
pub struct Names {
    prefixes: BTreeMap<OpId, String>,
    records: BTreeMap<OpId, Ident>,
}

impl Names {
    /// The snake-case prefix of the functions `op` generates: its stream's name.
    pub fn prefix(&self, op: OpId) -> &str {
        &self.prefixes[&op]
    }

    /// The prefix in camel case, for the types `op` generates (`ViewsAggregate`).
    pub fn camel(&self, op: OpId) -> String {
        camel(self.prefix(op))
    }

    /// The record type `op`'s output defines (a source's records, a select's, an
    /// aggregate's rows); `None` when it passes its input's type on.
    pub fn record(&self, op: OpId) -> Option<Ident> {
        self.records.get(&op).cloned()
    }
}

/// Names every operator of `graph` (in `topo_order`), claiming the names in `namer`.
pub fn name_all(graph: &Dataflow, topo_order: &[OpId], namer: &mut Namer) -> Names {
    for name in RESERVED {
        namer.reserve(name);
    }
    // What an embedded pipeline's user sees is named by the stream alone: claimed first.
    for op in topo_order {
        match &graph.node(*op).op {
            Op::Source { def, .. } => namer.reserve(&format!("{}Input", camel(&def.name))),
            Op::Sink(_) => namer.reserve(&format!("{}Row", camel(&sink_name(graph, *op)))),
            _ => {}
        }
    }
    let mut names = Names::default();
    for op in topo_order {
        let node = graph.node(*op);
        let prefix = match &node.op {
            Op::Sink(_) => sink_name(graph, *op),
            _ => node
                .stream
                .clone()
                .unwrap_or_else(|| format!("op{}", op.index())),
        };
        let defines_record = match &node.op {
            Op::Source { def, .. } => !matches!(def.kind, SourceKind::Nexmark { .. }),
            Op::Fused(steps) => steps.iter().any(|s| matches!(s, Stateless::Select(..))),
            Op::Select(_)
            | Op::Unnest(_)
            | Op::WindowAggregate(_)
            | Op::GroupAggregate(_)
            | Op::FinalAggregate(_)
            | Op::RetractAggregate(_)
            | Op::Join { .. } => true,
            Op::TopN(def) | Op::FinalTopN(def) | Op::RetractTopN(def) => def.with_rank,
            Op::Filter(_) | Op::Sink(_) => false,
        };
        if defines_record {
            // The stream's own rows are `ViewsRecord`; a step inside it is named by its kind.
            let last_of_stream = matches!(node.op, Op::Source { .. })
                || graph.outputs(*op).iter().all(|(_, to)| {
                    let next = graph.node(*to);
                    matches!(next.op, Op::Sink(_)) || next.stream != node.stream
                });
            let name = if last_of_stream {
                format!("{}Record", camel(&prefix))
            } else {
                format!("{}{}Record", camel(&prefix), camel(node.op.kind_name()))
            };
            names.records.insert(*op, namer.fresh(&name));
        }
        names.prefixes.insert(*op, prefix);
    }
    names
}

/// A sink's name: the name of the stream it sends (`sink alerts -> ...` is `alerts`), with
/// the sink's index when several sinks send the same stream (`alerts_2`). It is also the
/// sink's field in an embedded pipeline's `Outputs`.
pub fn sink_name(graph: &Dataflow, op: OpId) -> String {
    let sink_of = |op: OpId| match &graph.node(op).op {
        Op::Sink(sink) => Some(sink),
        _ => None,
    };
    let Some(sink) = sink_of(op) else {
        unreachable!("sink_name is asked of sinks only");
    };
    let shared = graph
        .ops()
        .into_iter()
        .filter_map(sink_of)
        .filter(|other| other.name == sink.name)
        .count()
        > 1;
    if shared {
        format!("{}_{}", sink.name, sink.index)
    } else {
        sink.name.clone()
    }
}
