//! Graph construction: a checked [`Program`] becomes a [`Dataflow`] with one operator per
//! step. Only what reaches a sink is built; a stream used by several sinks is built once and
//! fans out. Parallelism classes and edge distributions are decided here from each operator's
//! needs (a keyed aggregate needs its input hashed by key; a file sink needs one writer).

use std::collections::BTreeMap;

use weir_dsl::SourceMap;

use super::{Dataflow, EdgeKind, Node, Op, OpId, Parallelism};
use crate::sema::{Program, SinkKind, SourceKind, StreamInput, TStepKind};

pub fn lower(program: &Program, sources: &SourceMap) -> Dataflow {
    let mut cx = Lower {
        program,
        sources,
        graph: Dataflow::default(),
        source_ops: BTreeMap::new(),
        stream_ops: BTreeMap::new(),
        step_ops: BTreeMap::new(),
    };
    for sink in &program.sinks {
        let (input, input_port) = cx.stream(sink.stream);
        let from = cx.graph.node(input).parallelism;
        let (parallelism, edge) = match (&sink.kind, from) {
            // One checksum, Kafka producer or PostgreSQL writer per upstream instance: no gather.
            (SinkKind::Checksum | SinkKind::Kafka { .. } | SinkKind::Postgres { .. }, p) => {
                (p, EdgeKind::Forward)
            }
            // A file sink writing parts, or Parquet files: files per upstream instance, no
            // gather.
            (SinkKind::File { parts: true, .. } | SinkKind::Parquet { .. }, p) => {
                (p, EdgeKind::Forward)
            }
            (_, Parallelism::One) => (Parallelism::One, EdgeKind::Forward),
            (_, _) => (Parallelism::One, EdgeKind::Gather),
        };
        let ty = program.streams[sink.stream].ty.clone();
        let op = cx.graph.add_op(Node {
            op: Op::Sink(sink.clone()),
            ty,
            span: sink.span,
            label: sink.label.clone(),
            parallelism,
            task: None,
            stream: Some(sink.name.clone()),
        });
        cx.graph.connect_ports(input, input_port, op, edge, 0);
    }
    cx.graph
}

struct Lower<'a> {
    program: &'a Program,
    sources: &'a SourceMap,
    graph: Dataflow,
    source_ops: BTreeMap<usize, OpId>,
    /// Each built stream's last operator and the output port it leaves from.
    stream_ops: BTreeMap<usize, (OpId, u8)>,
    /// (stream, step) -> the operator of that step (late-record streams hang off them).
    step_ops: BTreeMap<(usize, usize), OpId>,
}

/// The text a span covers, on one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn key_names(keys: &[crate::sema::TExpr], sources: &SourceMap) -> Vec<String> {
    keys.iter()
        .map(|k| one_line(sources.snippet(k.span)))
        .collect()
}

impl Lower<'_> {
    /// A join: keyed on both inputs (hash by the join keys), or, for a lookup join, a
    /// per-record step that carries its table's source.
    fn join(
        &mut self,
        (left, left_port): (OpId, u8),
        def: &crate::sema::JoinDef,
        step: &crate::sema::TStep,
        label: String,
        stream: Option<String>,
    ) -> OpId {
        use crate::sema::StreamInput;
        use weir_dsl::ast::JoinKind;
        if def.kind == JoinKind::Lookup {
            let StreamInput::Source(index) = def.right else {
                unreachable!("sema: lookup tables are sources")
            };
            let table = self.program.sources[index].clone();
            let parallelism = self.graph.node(left).parallelism;
            let op = self.graph.add_op(Node {
                op: Op::Join {
                    def: Box::new(def.clone()),
                    table: Some(table),
                },
                ty: step.ty.clone(),
                span: step.span,
                label,
                parallelism,
                task: None,
                stream,
            });
            self.graph
                .connect_ports(left, left_port, op, EdgeKind::Forward, 0);
            return op;
        }
        let right = match def.right {
            StreamInput::Source(s) => (self.source(s), 0),
            StreamInput::Stream(s) | StreamInput::Late { stream: s, .. } => self.stream(s),
        };
        let op = self.graph.add_op(Node {
            op: Op::Join {
                def: Box::new(def.clone()),
                table: None,
            },
            ty: step.ty.clone(),
            span: step.span,
            label,
            parallelism: Parallelism::Keyed,
            task: None,
            stream,
        });
        let left_keys = key_names(&def.left_keys, self.sources);
        let right_keys = key_names(&def.right_keys, self.sources);
        // Conditions on one input alone run as filters before the exchange into the join.
        let (left, left_port) =
            self.pushed_filter((left, left_port), def.left_filter.as_ref(), &def.left_ty);
        let right = self.pushed_filter(right, def.right_filter.as_ref(), &def.right_ty);
        self.graph
            .connect_ports(left, left_port, op, EdgeKind::Hash(left_keys), 0);
        self.graph
            .connect_ports(right.0, right.1, op, EdgeKind::Hash(right_keys), 1);
        op
    }

    /// A filter node after `input` when a join pushed a condition down to it.
    fn pushed_filter(
        &mut self,
        input: (OpId, u8),
        condition: Option<&crate::sema::TExpr>,
        ty: &crate::sema::StreamType,
    ) -> (OpId, u8) {
        let Some(condition) = condition else {
            return input;
        };
        let parallelism = self.graph.node(input.0).parallelism;
        let label = format!(
            "filter {} (pushed below the join)",
            one_line(self.sources.snippet(condition.span))
        );
        let op = self.graph.add_op(Node {
            op: Op::Filter(condition.clone()),
            ty: ty.clone(),
            span: condition.span,
            label,
            parallelism,
            task: None,
            stream: self.graph.node(input.0).stream.clone(),
        });
        self.graph
            .connect_ports(input.0, input.1, op, EdgeKind::Forward, 0);
        (op, 0)
    }

    fn source(&mut self, index: usize) -> OpId {
        if let Some(op) = self.source_ops.get(&index) {
            return *op;
        }
        let def = &self.program.sources[index];
        let parallelism = match def.kind {
            SourceKind::Nexmark { .. }
            | SourceKind::Kafka(_)
            | SourceKind::File { .. }
            | SourceKind::Parquet { .. } => Parallelism::Splits(index),
            SourceKind::Stdin { .. } | SourceKind::Postgres { .. } => Parallelism::One,
        };
        let label = match &def.kind {
            SourceKind::Nexmark { stream, .. } => {
                format!("source {}: nexmark({})", def.name, stream.name())
            }
            SourceKind::File { path, .. } => format!("source {}: file({path})", def.name),
            SourceKind::Parquet { path, .. } => format!("source {}: parquet({path})", def.name),
            SourceKind::Stdin { .. } => format!("source {}: stdin", def.name),
            SourceKind::Kafka(k) => format!("source {}: kafka({})", def.name, k.topic),
            SourceKind::Postgres { .. } => format!("source {}: postgres", def.name),
        };
        let op = self.graph.add_op(Node {
            op: Op::Source {
                source_index: index,
                def: def.clone(),
                projection: None,
            },
            ty: def.ty.clone(),
            span: def.span,
            label,
            parallelism,
            task: None,
            stream: Some(def.name.clone()),
        });
        self.source_ops.insert(index, op);
        op
    }

    fn stream(&mut self, index: usize) -> (OpId, u8) {
        if let Some(op) = self.stream_ops.get(&index) {
            return *op;
        }
        let def = &self.program.streams[index];
        // `current` is the operator the next step reads from, and its output port.
        let (mut current, mut port) = match def.input {
            StreamInput::Source(s) => (self.source(s), 0),
            StreamInput::Stream(s) => self.stream(s),
            StreamInput::Late { stream, step } => {
                self.stream(stream);
                (self.step_ops[&(stream, step)], 1)
            }
        };
        // A sink's inline pipe has no name of its own: its steps are named after the sink's.
        let def_name = def.name.clone().or_else(|| {
            let sink = self.program.sinks.iter().find(|s| s.stream == index);
            sink.map(|s| s.name.clone())
        });
        for (step_index, step) in def.steps.iter().enumerate() {
            let upstream = self.graph.node(current).parallelism;
            let (op, parallelism, edge) = match &step.kind {
                TStepKind::Filter(pred) => (Op::Filter(pred.clone()), upstream, EdgeKind::Forward),
                TStepKind::Select(items) => {
                    (Op::Select(items.clone()), upstream, EdgeKind::Forward)
                }
                TStepKind::Unnest(def) => (Op::Unnest(def.clone()), upstream, EdgeKind::Forward),
                // Over an updating stream every version of a row must meet its predecessor:
                // one instance (rows may change group between versions).
                TStepKind::WindowAggregate(agg)
                    if agg.keys.is_empty() || agg.retract_key.is_some() =>
                {
                    let edge = if upstream == Parallelism::One {
                        EdgeKind::Forward
                    } else {
                        EdgeKind::Gather
                    };
                    (Op::aggregate(agg.clone()), Parallelism::One, edge)
                }
                TStepKind::WindowAggregate(agg) => (
                    Op::aggregate(agg.clone()),
                    Parallelism::Keyed,
                    EdgeKind::Hash(agg.keys.clone()),
                ),
                TStepKind::Rank(def) if def.keys.is_empty() || def.retract_key.is_some() => {
                    let edge = if upstream == Parallelism::One {
                        EdgeKind::Forward
                    } else {
                        EdgeKind::Gather
                    };
                    (Op::rank(def.clone()), Parallelism::One, edge)
                }
                TStepKind::Rank(def) => (
                    Op::rank(def.clone()),
                    Parallelism::Keyed,
                    EdgeKind::Hash(def.keys.clone()),
                ),
                TStepKind::Join(def) => {
                    let label = one_line(self.sources.snippet(step.span));
                    current = self.join((current, port), def, step, label, def_name.clone());
                    port = 0;
                    self.step_ops.insert((index, step_index), current);
                    continue;
                }
            };
            let label = one_line(self.sources.snippet(step.span));
            let op = self.graph.add_op(Node {
                op,
                ty: step.ty.clone(),
                span: step.span,
                label,
                parallelism,
                task: None,
                stream: def_name.clone(),
            });
            self.graph.connect_ports(current, port, op, edge, 0);
            self.step_ops.insert((index, step_index), op);
            current = op;
            port = 0;
        }
        self.stream_ops.insert(index, (current, port));
        (current, port)
    }
}
