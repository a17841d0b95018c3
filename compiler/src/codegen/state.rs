//! Which operators take part in checkpoints, and their stable ids.
//!
//! A participant saves something at every checkpoint: a source its position, a stateful
//! operator its state, a file or checksum sink what it has committed. Each gets an id derived
//! from what it is — its kind, its pipeline text, the record types in and out — so the same
//! pipeline compiled again (even with comments or formatting changed elsewhere, or operators
//! renumbered) finds its state, and a changed operator does not silently read state of another
//! shape. The plan fingerprint hashes all ids; a restore compares it first and, on a mismatch,
//! names the operators that differ.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::ir::{Dataflow, Op, OpId};
use crate::sema::{SinkKind, StreamType};

/// The participants of a plan, in operator order, and its fingerprint.
pub struct StatePlan {
    pub ids: BTreeMap<OpId, String>,
    pub fingerprint: String,
}

/// Whether `op` saves something at checkpoints.
fn participates(op: &Op) -> bool {
    match op {
        Op::Source { .. } | Op::WindowAggregate(_) | Op::Rank(_) => true,
        // A lookup join's table is read again from its file on restart.
        Op::Join { table, .. } => table.is_none(),
        Op::Sink(def) => !matches!(def.kind, SinkKind::Stdout { .. }),
        Op::Filter(_) | Op::Select(_) | Op::Fused(_) => false,
    }
}

fn describe_type(ty: &StreamType, out: &mut String) {
    for f in &ty.schema.fields {
        out.push_str(&format!("{}:{:?}:{};", f.name, f.ty, f.nullable));
    }
    if let Some(up) = &ty.updating {
        out.push_str(&format!("updating by {:?};", up.key));
    }
}

pub fn plan(graph: &Dataflow, order: &[OpId]) -> StatePlan {
    let mut ids = BTreeMap::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for &op in order {
        let node = graph.node(op);
        if !participates(&node.op) {
            continue;
        }
        let mut text = format!("{}\n{}\n", node.op.kind_name(), node.label);
        for (_, from) in graph.inputs(op) {
            text.push_str("in ");
            describe_type(&graph.node(from).ty, &mut text);
            text.push('\n');
        }
        text.push_str("out ");
        describe_type(&node.ty, &mut text);
        text.push_str(&format!("\n{}", node.parallelism));
        let digest = Sha256::digest(text.as_bytes());
        let mut id: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        // The same operator text twice (two identical aggregates of two streams): tell them
        // apart by occurrence, in topological order.
        let n = seen.entry(id.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            id = format!("{id}.{n}");
        }
        ids.insert(op, id);
    }
    let mut all: Vec<&String> = ids.values().collect();
    all.sort();
    let mut h = Sha256::new();
    for id in all {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let fingerprint = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    StatePlan { ids, fingerprint }
}
