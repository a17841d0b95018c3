//! Validation of a dataflow graph, producing the [`GraphInfo`] code generation requires (so
//! codegen cannot run on an unvalidated graph). Debug builds check the structure of the graph
//! as lowered and after every pass (`passes::run`), and validate it fully after the last.

use std::collections::BTreeMap;

use super::{Dataflow, EdgeKind, Op, OpId};

/// Facts about a valid graph that code generation uses.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphInfo {
    pub topo_order: Vec<OpId>,
    /// Tasks in order of their first operator; each lists its operators in topological order.
    pub tasks: Vec<Vec<OpId>>,
    /// Whether an exchange with one instance at each end at run time may call its consumer
    /// directly (`weir_runtime::inline`); off with `--no-fusion`, whose baseline keeps every
    /// task a thread of its own.
    pub inline_exchanges: bool,
}

/// An internal inconsistency: a bug in weir, never a user error.
#[derive(Debug, thiserror::Error)]
#[error("internal error: invalid dataflow graph: {0}")]
pub struct InvalidGraph(pub String);

/// Checks a graph and gives the facts codegen needs: its structure (see [`check_structure`])
/// and that every operator has a task (the `chain_tasks` pass assigns them).
pub fn validate(graph: &Dataflow) -> Result<GraphInfo, InvalidGraph> {
    let topo_order = check_structure(graph)?;
    let mut tasks: BTreeMap<usize, Vec<OpId>> = BTreeMap::new();
    for op in &topo_order {
        match graph.node(*op).task {
            Some(t) => tasks.entry(t).or_default().push(*op),
            None => {
                return Err(InvalidGraph(format!(
                    "{op} has no task; run the chain_tasks pass"
                )))
            }
        }
    }
    let mut tasks: Vec<Vec<OpId>> = tasks.into_values().collect();
    tasks.sort_by_key(|ops| ops.iter().min().copied());
    Ok(GraphInfo {
        topo_order,
        tasks,
        inline_exchanges: true,
    })
}

/// What holds of a graph at every stage, from lowering through each pass: no cycle, each
/// operator with the inputs and outputs its kind has, forward edges and shared tasks only
/// between operators of one parallelism. Returns the topological order.
pub fn check_structure(graph: &Dataflow) -> Result<Vec<OpId>, InvalidGraph> {
    let topo_order = graph.topo_order();
    if topo_order.len() != graph.n_ops() {
        return Err(InvalidGraph("the graph has a cycle".into()));
    }
    // An aggregate or a ranking is the operator its definition calls for: a window aggregate
    // has a window, an operator over an updating stream retracts, one keyed by a window
    // upstream is final (`Op::aggregate`, `Op::rank`).
    for op in graph.ops() {
        let node = graph.node(op);
        let expected = match (node.op.as_aggregate(), node.op.as_rank()) {
            (Some(agg), _) => Op::aggregate(agg.clone()),
            (_, Some(def)) => Op::rank(def.clone()),
            _ => continue,
        };
        if expected.kind_name() != node.op.kind_name() {
            return Err(InvalidGraph(format!(
                "{op} is a {} but its definition calls for a {}",
                node.op.kind_name(),
                expected.kind_name()
            )));
        }
    }
    // The ports are the operator table's (`ops::OperatorSpec`).
    for op in graph.ops() {
        let node = graph.node(op);
        let spec = node.op.spec();
        let n_in = graph.inputs(op).len();
        let n_out = graph.outputs(op).len();
        let ok = n_in == spec.n_inputs && (spec.has_output || n_out == 0);
        if !ok {
            return Err(InvalidGraph(format!(
                "{op} ({}) has {n_in} inputs and {n_out} outputs",
                node.op.kind_name()
            )));
        }
    }
    for (_, from, to) in graph.edges() {
        let (a, b) = (graph.node(from), graph.node(to));
        if let (Some(ta), Some(tb)) = (a.task, b.task) {
            if ta == tb && a.parallelism != b.parallelism {
                return Err(InvalidGraph(format!(
                    "{from} and {to} share a task but not a parallelism"
                )));
            }
        }
    }
    for (edge, from, to) in graph.edges() {
        if graph.edge(edge).kind == EdgeKind::Forward
            && graph.node(from).parallelism != graph.node(to).parallelism
        {
            return Err(InvalidGraph(format!(
                "forward edge {from} -> {to} joins different parallelism"
            )));
        }
    }
    Ok(topo_order)
}

#[cfg(test)]
mod tests {
    use weir_dsl::Span;

    use super::validate;
    use crate::ir::{Dataflow, Node, Op, Parallelism};
    use crate::sema::{Schema, StreamType, Window, WindowAggregate};

    fn aggregate(window: Window, final_at: Option<&str>) -> WindowAggregate {
        WindowAggregate {
            keys: Vec::new(),
            window,
            time_field: String::new(),
            processing_time: true,
            lateness_ms: 0,
            late_output: None,
            zone: None,
            retract_key: None,
            final_at: final_at.map(str::to_string),
            aggs: Vec::new(),
            ttl: None,
        }
    }

    /// One aggregate operator fed by nothing, so only its kind can be wrong.
    fn check(op: Op) -> Result<(), String> {
        let mut graph = Dataflow::default();
        graph.add_op(Node {
            op,
            ty: StreamType {
                schema: Schema { fields: Vec::new() },
                time_field: None,
                updating: None,
                window: None,
            },
            span: Span::default(),
            label: String::new(),
            parallelism: Parallelism::One,
            task: Some(0),
            stream: None,
        });
        match validate(&graph) {
            Ok(_) => Ok(()),
            Err(err) => Err(err.to_string()),
        }
    }

    #[test]
    fn an_aggregate_is_the_operator_its_definition_calls_for() {
        let tumble = Window::Tumble { size_ms: 1000 };
        // Right kinds fail only on the missing input.
        for op in [
            Op::aggregate(aggregate(tumble, None)),
            Op::aggregate(aggregate(Window::Unbounded, None)),
            Op::aggregate(aggregate(Window::Unbounded, Some("window_end"))),
        ] {
            let err = check(op).expect_err("no input");
            assert!(err.contains("has 0 inputs"), "{err}");
        }
        for (op, message) in [
            (
                Op::GroupAggregate(aggregate(tumble, None)),
                "is a group_aggregate but its definition calls for a window_aggregate",
            ),
            (
                Op::WindowAggregate(aggregate(Window::Unbounded, None)),
                "is a window_aggregate but its definition calls for a group_aggregate",
            ),
            (
                Op::GroupAggregate(aggregate(Window::Unbounded, Some("window_end"))),
                "is a group_aggregate but its definition calls for a final_aggregate",
            ),
        ] {
            let err = check(op).expect_err("wrong kind");
            assert!(err.contains(message), "{err}");
        }
    }
}
