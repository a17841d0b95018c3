//! Pass `chain_tasks`: groups operators joined by forward edges into one task (one thread per
//! instance, operators composed into one chain with no channel between them). Every other
//! edge becomes a channel between tasks. With `--no-fusion` every operator gets its own task,
//! so forward edges become one-to-one channels (the baseline the benchmark compares against).

use std::collections::BTreeMap;

use super::{Pass, PassCx, Transformed};
use crate::ir::{Dataflow, EdgeKind, OpId};

pub struct ChainTasks;

impl Pass for ChainTasks {
    fn name(&self) -> &'static str {
        "chain_tasks"
    }

    fn run(&self, mut graph: Dataflow, cx: &PassCx) -> Transformed<Dataflow> {
        let ops = graph.ops();
        // Union-find over forward edges, keyed by op id.
        let mut parent: BTreeMap<OpId, OpId> = ops.iter().map(|op| (*op, *op)).collect();
        fn find(parent: &mut BTreeMap<OpId, OpId>, op: OpId) -> OpId {
            let p = parent[&op];
            if p == op {
                return op;
            }
            let root = find(parent, p);
            parent.insert(op, root);
            root
        }
        if !cx.no_fusion {
            for (edge, from, to) in graph.edges() {
                // An operator with several inputs waits on a channel; chain only single-input ones.
                if graph.edge(edge).kind == EdgeKind::Forward
                    && graph.inputs(to).len() == 1
                    && graph.node(from).parallelism == graph.node(to).parallelism
                {
                    let (a, b) = (find(&mut parent, from), find(&mut parent, to));
                    if a != b {
                        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                        parent.insert(hi, lo);
                    }
                }
            }
        }
        // Number tasks by their first operator in topological order.
        let mut task_of_root: BTreeMap<OpId, usize> = BTreeMap::new();
        let mut changed = false;
        for op in graph.topo_order() {
            let root = find(&mut parent, op);
            let next = task_of_root.len();
            let task = *task_of_root.entry(root).or_insert(next);
            let node = graph.node_mut(op);
            if node.task != Some(task) {
                node.task = Some(task);
                changed = true;
            }
        }
        Transformed {
            value: graph,
            changed,
        }
    }
}
