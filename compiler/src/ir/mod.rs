//! The dataflow graph: operators as nodes, streams as edges, on petgraph's `StableDiGraph`
//! (indices stay valid when passes remove nodes, so ids in `explain` output are stable).
//!
//! Edges say how records are distributed between the parallel instances of the two ends:
//! `Forward` keeps instance i feeding instance i (and allows chaining both ends into one task);
//! `Hash` routes by key; `Gather` sends everything to a single instance.

pub mod explain;
pub mod lower;
pub mod validate;

use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use petgraph::Direction;
use weir_dsl::Span;

use crate::ops::OperatorSpec;
use crate::sema::UnnestDef;

use crate::sema::{
    JoinDef, RankDef, SinkDef, SourceDef, StreamType, TExpr, Window, WindowAggregate,
};

/// Identifies an operator in a [`Dataflow`]; stable across passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub NodeIndex);

impl OpId {
    pub fn index(self) -> usize {
        self.0.index()
    }
}

impl std::fmt::Display for OpId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "op{}", self.0.index())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EdgeId(pub EdgeIndex);

/// How many parallel instances an operator has, as a class resolved when the binary starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Parallelism {
    /// One instance per split of source `n` (the generator's `generators`).
    Splits(usize),
    /// `--parallelism` instances (keyed operators).
    Keyed,
    /// Exactly one instance.
    One,
}

impl std::fmt::Display for Parallelism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Parallelism::Splits(s) => write!(f, "splits(source{s})"),
            Parallelism::Keyed => f.write_str("keyed"),
            Parallelism::One => f.write_str("1"),
        }
    }
}

/// A stateless step inside a fused operator.
#[derive(Clone, Debug, PartialEq)]
pub enum Stateless {
    Filter(TExpr),
    /// A projection and the record type it produces.
    Select(Vec<(String, TExpr)>, StreamType),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `source_index` into the program's sources; `projection` lists the fields the pipeline
    /// reads when a pass has narrowed a decoding source (`None`: every declared field).
    Source {
        source_index: usize,
        def: SourceDef,
        projection: Option<Vec<String>>,
    },
    Filter(TExpr),
    Select(Vec<(String, TExpr)>),
    /// A chain of filters and selects compiled into one function.
    Fused(Vec<Stateless>),
    /// One row per element of an array (`unnest items as item`).
    Unnest(UnnestDef),
    /// An aggregate per key and window (`window` is never `Unbounded`).
    WindowAggregate(WindowAggregate),
    /// An aggregate per key without a window over an append stream: an updating stream, one
    /// row per key.
    GroupAggregate(WindowAggregate),
    /// An aggregate per key without a window whose key names a window upstream (`final_at`):
    /// one final row per group when the watermark passes its end.
    FinalAggregate(WindowAggregate),
    /// An aggregate per key without a window over an updating stream (`retract_key`).
    RetractAggregate(WindowAggregate),
    /// Two inputs: port 0 is the left (main) stream, port 1 the joined stream. A lookup join
    /// has one input and reads its table (`table`) when it starts.
    Join {
        def: Box<JoinDef>,
        table: Option<SourceDef>,
    },
    /// Dedup or top-N per key over an append stream (an updating stream).
    TopN(RankDef),
    /// Dedup or top-N per key where the key names a window upstream (`final_at`): each
    /// partition's rows once, when the watermark passes its end.
    FinalTopN(RankDef),
    /// Top-N per key over an updating stream (`retract_key`).
    RetractTopN(RankDef),
    Sink(SinkDef),
}

impl Op {
    /// The operator a checked `aggregate` step becomes: over an updating stream it retracts,
    /// without a window it groups (final when its key names a window upstream), else it
    /// windows.
    pub fn aggregate(agg: WindowAggregate) -> Op {
        if agg.retract_key.is_some() {
            Op::RetractAggregate(agg)
        } else if agg.window != Window::Unbounded {
            Op::WindowAggregate(agg)
        } else if agg.final_at.is_some() {
            Op::FinalAggregate(agg)
        } else {
            Op::GroupAggregate(agg)
        }
    }

    /// The operator a checked `top`/`dedup` step becomes: over an updating stream it
    /// retracts, keyed by a window upstream it is final, else it updates.
    pub fn rank(def: RankDef) -> Op {
        if def.retract_key.is_some() {
            Op::RetractTopN(def)
        } else if def.final_at.is_some() {
            Op::FinalTopN(def)
        } else {
            Op::TopN(def)
        }
    }

    /// The aggregate an aggregate operator computes.
    pub fn as_aggregate(&self) -> Option<&WindowAggregate> {
        match self {
            Op::WindowAggregate(agg)
            | Op::GroupAggregate(agg)
            | Op::FinalAggregate(agg)
            | Op::RetractAggregate(agg) => Some(agg),
            _ => None,
        }
    }

    /// The dedup or top-N a ranking operator computes.
    pub fn as_rank(&self) -> Option<&RankDef> {
        match self {
            Op::TopN(def) | Op::FinalTopN(def) | Op::RetractTopN(def) => Some(def),
            _ => None,
        }
    }

    /// The operator's row in the operator table (`ops::OPERATORS`).
    pub fn spec(&self) -> &'static OperatorSpec {
        use crate::ops;
        match self {
            Op::Source { .. } => &ops::source::SPEC,
            Op::Filter(_) => &ops::filter::SPEC,
            Op::Select(_) => &ops::select::SPEC,
            Op::Fused(_) => &ops::fused::SPEC,
            Op::Unnest(_) => &ops::unnest::SPEC,
            Op::WindowAggregate(_) => &ops::window_aggregate::SPEC,
            Op::GroupAggregate(_) => &ops::group_aggregate::SPEC,
            Op::FinalAggregate(_) => &ops::final_aggregate::SPEC,
            Op::RetractAggregate(_) => &ops::retract_aggregate::SPEC,
            Op::Join { table: None, .. } => &ops::join::SPEC,
            Op::Join { table: Some(_), .. } => &ops::join::LOOKUP_SPEC,
            Op::TopN(_) => &ops::top_n::SPEC,
            Op::FinalTopN(_) => &ops::final_top_n::SPEC,
            Op::RetractTopN(_) => &ops::retract_top_n::SPEC,
            Op::Sink(_) => &ops::sink::SPEC,
        }
    }

    /// The operator's kind: its name in the operator table.
    pub fn kind_name(&self) -> &'static str {
        self.spec().name
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    /// The type of the stream this operator emits (for a sink, the type it consumes).
    pub ty: StreamType,
    /// Where in the pipeline text this operator comes from.
    pub span: Span,
    /// A one-line description (the step's text), shown by `explain` and in run summaries.
    pub label: String,
    pub parallelism: Parallelism,
    /// The task this operator runs in, once `chain_tasks` has run.
    pub task: Option<usize>,
    /// The name of the stream this operator computes (its `let`, its source, the stream a
    /// sink sends, which also names the steps of its inline pipe). Generated names come from it.
    pub stream: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    Forward,
    Hash(Vec<String>),
    Gather,
}

impl std::fmt::Display for EdgeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EdgeKind::Forward => f.write_str("forward"),
            EdgeKind::Hash(keys) => write!(f, "hash({})", keys.join(", ")),
            EdgeKind::Gather => f.write_str("gather"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    pub kind: EdgeKind,
    /// Which input of the target this edge feeds (0, or 1 for a join's joined stream).
    pub port: u8,
    /// Which output of the source it leaves (0, or 1 for a window's late records).
    pub from_port: u8,
}

/// weir's dataflow graph.
#[derive(Clone, Debug, Default)]
pub struct Dataflow {
    graph: StableDiGraph<Node, Edge>,
}

impl Dataflow {
    pub fn add_op(&mut self, node: Node) -> OpId {
        OpId(self.graph.add_node(node))
    }

    pub fn connect(&mut self, from: OpId, to: OpId, kind: EdgeKind) -> EdgeId {
        self.connect_port(from, to, kind, 0)
    }

    pub fn connect_port(&mut self, from: OpId, to: OpId, kind: EdgeKind, port: u8) -> EdgeId {
        self.connect_ports(from, 0, to, kind, port)
    }

    pub fn connect_ports(
        &mut self,
        from: OpId,
        from_port: u8,
        to: OpId,
        kind: EdgeKind,
        port: u8,
    ) -> EdgeId {
        EdgeId(self.graph.add_edge(
            from.0,
            to.0,
            Edge {
                kind,
                port,
                from_port,
            },
        ))
    }

    pub fn remove_edge(&mut self, edge: EdgeId) -> Option<Edge> {
        self.graph.remove_edge(edge.0)
    }

    pub fn remove_op(&mut self, op: OpId) -> Option<Node> {
        self.graph.remove_node(op.0)
    }

    pub fn node(&self, op: OpId) -> &Node {
        &self.graph[op.0]
    }

    pub fn node_mut(&mut self, op: OpId) -> &mut Node {
        &mut self.graph[op.0]
    }

    pub fn edge(&self, edge: EdgeId) -> &Edge {
        &self.graph[edge.0]
    }

    /// Operator ids in ascending order (deterministic).
    pub fn ops(&self) -> Vec<OpId> {
        let mut ids: Vec<OpId> = self.graph.node_indices().map(OpId).collect();
        ids.sort();
        ids
    }

    pub fn n_ops(&self) -> usize {
        self.graph.node_count()
    }

    /// Edges as (id, from, to), sorted by (from, to, id).
    pub fn edges(&self) -> Vec<(EdgeId, OpId, OpId)> {
        let mut edges: Vec<_> = (&self.graph)
            .edge_references()
            .map(|e| (EdgeId(e.id()), OpId(e.source()), OpId(e.target())))
            .collect();
        edges.sort_by_key(|(id, from, to)| (*from, *to, *id));
        edges
    }

    /// Outgoing edges of `op` as (edge, target), in a stable order.
    pub fn outputs(&self, op: OpId) -> Vec<(EdgeId, OpId)> {
        let mut out: Vec<_> = self
            .graph
            .edges_directed(op.0, Direction::Outgoing)
            .map(|e| (EdgeId(e.id()), OpId(e.target())))
            .collect();
        out.sort_by_key(|(id, to)| (*to, *id));
        out
    }

    /// Incoming edges of `op` as (edge, source), in a stable order.
    pub fn inputs(&self, op: OpId) -> Vec<(EdgeId, OpId)> {
        let mut out: Vec<_> = self
            .graph
            .edges_directed(op.0, Direction::Incoming)
            .map(|e| (e.weight().port, EdgeId(e.id()), OpId(e.source())))
            .collect();
        // By port first: a join's left input comes before its joined stream.
        out.sort_by_key(|(port, id, from)| (*port, *from, *id));
        out.into_iter().map(|(_, id, from)| (id, from)).collect()
    }

    /// Operators in a topological order (ties broken by id, so the order is deterministic).
    pub fn topo_order(&self) -> Vec<OpId> {
        let mut indegree: std::collections::BTreeMap<OpId, usize> = self
            .ops()
            .into_iter()
            .map(|op| (op, self.inputs(op).len()))
            .collect();
        let mut ready: std::collections::BTreeSet<OpId> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(op, _)| *op)
            .collect();
        let mut order = Vec::new();
        while let Some(op) = ready.pop_first() {
            order.push(op);
            for (_, to) in self.outputs(op) {
                let d = indegree.get_mut(&to).expect("edge target is a node");
                *d -= 1;
                if *d == 0 {
                    ready.insert(to);
                }
            }
        }
        order
    }

    /// The underlying petgraph graph, for passes that need its algorithms.
    pub fn graph(&self) -> &StableDiGraph<Node, Edge> {
        &self.graph
    }
}
