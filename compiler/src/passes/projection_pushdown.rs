//! Pass `projection_pushdown`: a source that decodes text (a JSON-lines or CSV file, stdin)
//! decodes only the fields some downstream operator reads. Unused JSON members are skipped
//! without being parsed; unused CSV columns are split but never converted.
//!
//! The same analysis narrows records before they cross tasks: where an exchange (hash or
//! gather) carries fields its consumer never reads, a projection is inserted in front of it,
//! so only the needed fields are copied into batches (fusion then merges that projection into
//! the upstream chain). A windowed max over bids ships two integers instead of three strings.
//!
//! Needs are computed backwards from the sinks: a sink reads every field it receives; a
//! filter reads its condition's fields and passes the rest through; a select or aggregate
//! reads only what its expressions name. A join reads, from each input, its keys, time and
//! condition fields and the fields its consumers need from that side: a join that feeds a
//! narrow select stores narrow records (the fields nobody reads are left at their defaults in
//! its output rows).

use std::collections::BTreeMap;

use super::{Pass, PassCx, Transformed};
use crate::ir::{Dataflow, EdgeKind, Node, Op, OpId, Stateless};
use crate::sema::functions::AggFunc;
use crate::sema::{SourceKind, StreamType, TExpr, TExprKind};

pub struct ProjectionPushdown;

/// Fields of its input an operator reads, given the fields its consumers need from its output.
fn needs(op: &Op, ty: &StreamType, downstream: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let expr_fields = |e: &TExpr, out: &mut Vec<String>| e.fields(out);
    match op {
        Op::Filter(pred) => {
            expr_fields(pred, &mut out);
            push_all(&mut out, downstream);
        }
        Op::Select(items) => items.iter().for_each(|(_, e)| expr_fields(e, &mut out)),
        // Rows copy the input's fields: what consumers read, and the array.
        Op::Unnest(def) => {
            expr_fields(&def.array, &mut out);
            push_all(&mut out, downstream);
        }
        Op::Fused(steps) => {
            // Walk the steps backwards: a select resets what is needed to its expressions.
            let mut need: Vec<String> = downstream.to_vec();
            for step in steps.iter().rev() {
                match step {
                    Stateless::Filter(pred) => expr_fields(pred, &mut need),
                    Stateless::Select(items, _) => {
                        need.clear();
                        items.iter().for_each(|(_, e)| expr_fields(e, &mut need));
                    }
                }
            }
            out = need;
        }
        Op::WindowAggregate(agg)
        | Op::GroupAggregate(agg)
        | Op::FinalAggregate(agg)
        | Op::RetractAggregate(agg) => {
            // Late records leave whole: whatever their consumers read is needed too (names of
            // the aggregate's own output that are not input fields match nothing).
            if agg.late_output.is_some() {
                push_all(&mut out, downstream);
            }
            push_all(&mut out, &agg.keys);
            if let Some(key) = &agg.retract_key {
                push_all(&mut out, key);
            }
            if !agg.processing_time {
                out.push(agg.time_field.clone());
            }
            // An event-time TTL reads each record's event time.
            if let Some(time) = agg.ttl.as_ref().and_then(|t| t.time_field()) {
                out.push(time.to_string());
            }
            // `first_value`/`last_value` order by event time (also without a window).
            let by_time = agg
                .aggs
                .iter()
                .any(|item| matches!(item.func, AggFunc::FirstValue | AggFunc::LastValue));
            if let Some(time) = agg.value_order_time().filter(|_| by_time) {
                out.push(time.to_string());
            }
            for item in &agg.aggs {
                if let Some(arg) = &item.arg {
                    expr_fields(arg, &mut out);
                }
                if let Some(filter) = &item.filter {
                    expr_fields(filter, &mut out);
                }
            }
        }
        Op::Sink(_) => push_all(
            &mut out,
            &ty.schema.names().map(str::to_string).collect::<Vec<_>>(),
        ),
        Op::Source { .. } => push_all(&mut out, downstream),
        // Joins pass every field of both inputs on; `run` keeps their inputs whole.
        Op::Join { .. } => {}
        Op::TopN(def) | Op::FinalTopN(def) | Op::RetractTopN(def) => {
            push_all(&mut out, downstream);
            push_all(&mut out, &def.keys);
            for (e, _) in &def.order {
                expr_fields(e, &mut out);
            }
            // A TTL reads each record's event time.
            if let Some(time) = def.ttl.as_ref().and_then(|t| t.time_field()) {
                out.push(time.to_string());
            }
        }
    }
    out
}

/// Fields a join reads from input `port` (0: the left stream, 1: the joined one), given the
/// fields its consumers need from its output.
fn join_needs(
    def: &crate::sema::JoinDef,
    out: &StreamType,
    downstream: &[String],
    port: u8,
) -> Vec<String> {
    let n_left = def.left_ty.schema.fields.len();
    let prefix = format!("{}.", def.alias);
    let mut cond = Vec::new();
    if let Some(c) = &def.condition {
        c.fields(&mut cond);
    }
    let mut need = Vec::new();
    for (i, f) in out.schema.fields.iter().enumerate() {
        let wanted = downstream.contains(&f.name) || cond.contains(&f.name);
        if !wanted {
            continue;
        }
        match (port, i < n_left) {
            (0, true) => need.push(f.name.clone()),
            (1, false) => need.push(f.name[prefix.len()..].to_string()),
            _ => {}
        }
    }
    let (keys, time) = if port == 0 {
        (&def.left_keys, &def.left_time)
    } else {
        (&def.right_keys, &def.right_time)
    };
    for k in keys {
        k.fields(&mut need);
    }
    if let Some(t) = time {
        push_all(&mut need, std::slice::from_ref(t));
    }
    need
}

fn push_all(out: &mut Vec<String>, names: &[String]) {
    for n in names {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
}

impl Pass for ProjectionPushdown {
    fn name(&self) -> &'static str {
        "projection_pushdown"
    }

    fn run(&self, mut graph: Dataflow, _cx: &PassCx) -> Transformed<Dataflow> {
        // Fields each operator's consumers need from its output.
        let mut needed: BTreeMap<OpId, Vec<String>> = BTreeMap::new();
        let order = graph.topo_order();
        for op in order.iter().rev() {
            let downstream: Vec<String> = needed.get(op).cloned().unwrap_or_default();
            let node = graph.node(*op);
            let reads = needs(&node.op, &node.ty, &downstream);
            for (edge, from) in graph.inputs(*op) {
                let reads = if let Op::Join { def, table: None } = &node.op {
                    join_needs(def, &node.ty, &downstream, graph.edge(edge).port)
                } else if matches!(node.op, Op::Join { .. }) || node.op.as_rank().is_some() {
                    edge_type(&graph, edge, from)
                        .schema
                        .names()
                        .map(str::to_string)
                        .collect()
                } else {
                    reads.clone()
                };
                push_all(needed.entry(from).or_default(), &reads);
            }
            needed.entry(*op).or_insert(downstream);
        }
        let mut changed = false;
        // Narrow records in front of exchanges.
        for (edge, from, to) in graph.edges() {
            let kind = graph.edge(edge).kind.clone();
            if kind == EdgeKind::Forward {
                continue;
            }
            let consumer = graph.node(to);
            let downstream = needed.get(&to).cloned().unwrap_or_default();
            let reads = match &consumer.op {
                // Ranks pass whole rows on: their output types follow their inputs. (Lookup
                // joins store their table, not this stream.)
                Op::TopN(_)
                | Op::FinalTopN(_)
                | Op::RetractTopN(_)
                | Op::Join { table: Some(_), .. } => continue,
                Op::Join { def, table: None } => {
                    join_needs(def, &consumer.ty, &downstream, graph.edge(edge).port)
                }
                op => needs(op, &edge_type(&graph, edge, from), &downstream),
            };
            let from_ty = edge_type(&graph, edge, from);
            let kept: Vec<String> = from_ty
                .schema
                .names()
                .filter(|n| reads.iter().any(|x| x == n))
                .map(str::to_string)
                .collect();
            if kept.len() == from_ty.schema.fields.len() || kept.is_empty() {
                continue;
            }
            changed = true;
            let narrowed = narrow(&from_ty, &kept);
            let items = narrowed
                .schema
                .fields
                .iter()
                .map(|f| {
                    let e = TExpr {
                        kind: TExprKind::Field(f.name.clone()),
                        ty: f.ty,
                        nullable: f.nullable,
                        span: consumer.span,
                    };
                    (f.name.clone(), e)
                })
                .collect();
            let upstream = graph.node(from);
            let project = graph.add_op(Node {
                op: Op::Select(items),
                ty: narrowed,
                span: consumer.span,
                label: format!("select {{ {} }} (before exchange)", kept.join(", ")),
                parallelism: upstream.parallelism,
                task: None,
                stream: consumer.stream.clone(),
            });
            let (from_port, port) = (graph.edge(edge).from_port, graph.edge(edge).port);
            graph.remove_edge(edge);
            graph.connect_ports(from, from_port, project, EdgeKind::Forward, 0);
            graph.connect_ports(project, 0, to, kind, port);
        }
        for op in &order {
            let node = graph.node(*op);
            let Op::Source {
                def,
                projection: None,
                ..
            } = &node.op
            else {
                continue;
            };
            if matches!(def.kind, SourceKind::Nexmark { .. }) {
                continue;
            }
            let need = &needed[op];
            let kept: Vec<String> = def
                .ty
                .schema
                .names()
                .enumerate()
                // The event-time field stays: the source's watermarks come from it.
                .filter(|(i, n)| need.iter().any(|x| x == n) || def.ty.time_field == Some(*i))
                .map(|(_, n)| n.to_string())
                .collect();
            if kept.len() == def.ty.schema.fields.len() {
                continue;
            }
            changed = true;
            let narrowed = narrow(&def.ty, &kept);
            let node = graph.node_mut(*op);
            if let Op::Source { projection, .. } = &mut node.op {
                *projection = Some(kept);
            }
            node.ty = narrowed.clone();
            // Filters pass their input type through; give them the narrowed type too.
            let mut current = *op;
            loop {
                let outs = graph.outputs(current);
                let [(_, next)] = outs.as_slice() else { break };
                let is_filter = matches!(&graph.node(*next).op, Op::Filter(_))
                    || matches!(&graph.node(*next).op, Op::Fused(steps) if steps.iter().all(|s| matches!(s, Stateless::Filter(_))));
                if !is_filter {
                    break;
                }
                graph.node_mut(*next).ty = narrowed.clone();
                current = *next;
            }
        }
        Transformed {
            value: graph,
            changed,
        }
    }
}

/// The stream type restricted to `kept` fields (in declaration order), event time remapped.
pub fn narrow(ty: &StreamType, kept: &[String]) -> StreamType {
    let time_name = ty.time_field.map(|i| ty.schema.fields[i].name.clone());
    let fields: Vec<_> = ty
        .schema
        .fields
        .iter()
        .filter(|f| kept.contains(&f.name))
        .cloned()
        .collect();
    let time_field = time_name.and_then(|t| fields.iter().position(|f| f.name == t));
    let window = ty
        .window
        .as_ref()
        .filter(|_| time_field.is_some())
        .map(|w| {
            let start = w.start.map(|i| &ty.schema.fields[i].name);
            crate::sema::WindowFields {
                start: start.and_then(|s| fields.iter().position(|f| f.name == *s)),
            }
        });
    StreamType {
        updating: ty.updating.clone(),
        schema: crate::sema::types::Schema { fields },
        time_field,
        window,
    }
}

/// The record type on `edge` (leaving `from`): the operator's output, or, for a window's late
/// records (output port 1), the window's input.
pub fn edge_type(graph: &Dataflow, edge: crate::ir::EdgeId, from: OpId) -> StreamType {
    if graph.edge(edge).from_port == 1 {
        if let Some((in_edge, input)) = graph.inputs(from).first() {
            return edge_type(graph, *in_edge, *input);
        }
    }
    graph.node(from).ty.clone()
}
