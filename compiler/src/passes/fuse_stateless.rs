//! Pass `fuse_stateless`: composes each run of stateless steps (filter, select) joined by
//! forward edges into one `Fused` operator, which code generation emits as one function:
//! the record goes through every step in straight-line code, with no intermediate operator.
//!
//! A run is cut where a step has several consumers (its output is shared) or where the edge is
//! not forward (records change hands between instances there).

use super::{Pass, PassCx, Transformed};
use crate::ir::{Dataflow, EdgeKind, Node, Op, OpId, Stateless};

pub struct FuseStateless;

/// A one-input operator with an output and no state (the operator table says): a filter,
/// a select or a fused run of them. An `unnest` (any number of rows per record) has no
/// place in a fused function, which returns at most one.
fn is_stateless(op: &Op) -> bool {
    let spec = op.spec();
    spec.n_inputs == 1 && spec.has_output && !spec.stateful && !matches!(op, Op::Unnest(_))
}

/// Selects over updating streams map changes, not rows: they stay on their own.
fn fusable(graph: &Dataflow, op: OpId) -> bool {
    is_stateless(&graph.node(op).op)
        && graph.node(op).ty.updating.is_none()
        && graph
            .inputs(op)
            .iter()
            .all(|(_, from)| graph.node(*from).ty.updating.is_none())
}

fn steps(op: &Op, node: &Node) -> Vec<Stateless> {
    match op {
        Op::Filter(pred) => vec![Stateless::Filter(pred.clone())],
        Op::Select(items) => vec![Stateless::Select(items.clone(), node.ty.clone())],
        Op::Fused(steps) => steps.clone(),
        _ => Vec::new(),
    }
}

impl Pass for FuseStateless {
    fn name(&self) -> &'static str {
        "fuse_stateless"
    }

    fn run(&self, mut graph: Dataflow, cx: &PassCx) -> Transformed<Dataflow> {
        if cx.no_fusion {
            return Transformed::no(graph);
        }
        let mut changed = false;
        for head in graph.topo_order() {
            // Skip nodes already merged into an earlier run, and non-heads of runs.
            if !graph.ops().contains(&head) || !fusable(&graph, head) {
                continue;
            }
            let mut run = vec![head];
            loop {
                let last = *run.last().expect("run is not empty");
                let outs = graph.outputs(last);
                let [(edge, next)] = outs.as_slice() else {
                    break;
                };
                if graph.edge(*edge).kind != EdgeKind::Forward
                    || graph.inputs(*next).len() != 1
                    || !fusable(&graph, *next)
                {
                    break;
                }
                run.push(*next);
            }
            if run.len() < 2 {
                continue;
            }
            changed = true;
            let mut fused_steps = Vec::new();
            let mut labels = Vec::new();
            for op in &run {
                let node = graph.node(*op);
                fused_steps.extend(steps(&node.op, node));
                labels.push(node.label.clone());
            }
            let first = graph.node(run[0]).clone();
            let last_id = *run.last().expect("run is not empty");
            let last = graph.node(last_id).clone();
            let inputs = graph.inputs(run[0]);
            let outputs = graph.outputs(last_id);
            // (other end, kind, from port, to port): ports survive the rewiring.
            let input_edges: Vec<(OpId, EdgeKind, u8, u8)> = inputs
                .iter()
                .map(|(e, from)| {
                    let edge = graph.edge(*e);
                    (*from, edge.kind.clone(), edge.from_port, edge.port)
                })
                .collect();
            let output_edges: Vec<(OpId, EdgeKind, u8, u8)> = outputs
                .iter()
                .map(|(e, to)| {
                    let edge = graph.edge(*e);
                    (*to, edge.kind.clone(), edge.from_port, edge.port)
                })
                .collect();
            for op in &run {
                graph.remove_op(*op);
            }
            let fused = graph.add_op(Node {
                op: Op::Fused(fused_steps),
                ty: last.ty.clone(),
                span: first.span.to(last.span),
                label: labels.join(" |> "),
                parallelism: first.parallelism,
                task: None,
                stream: last.stream.clone(),
            });
            for (from, kind, from_port, port) in input_edges {
                graph.connect_ports(from, from_port, fused, kind, port);
            }
            for (to, kind, from_port, port) in output_edges {
                graph.connect_ports(fused, from_port, to, kind, port);
            }
        }
        Transformed {
            value: graph,
            changed,
        }
    }
}
