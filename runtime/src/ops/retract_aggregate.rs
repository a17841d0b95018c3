//! Unbounded aggregation over an updating stream: accumulators that can take a row back
//! out, so that a revised input row replaces its earlier version.

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::checkpoint::{snapshot_fields, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::hash::FastMap;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::change::{Change, FLUSH_EVERY};
use crate::state::State;

/// The per-query part of an aggregate over an updating stream: accumulators that can take a
/// row back out (`retract`), so that a revised input row replaces its earlier version.
pub trait RetractAggregate {
    type In: Clone + State;
    /// The input's upsert key (which earlier row a change revises).
    type UpKey: Hash + Eq + State;
    /// The group key.
    type Key: Hash + Eq + Ord + Clone + State;
    type Acc: State;
    type Out;
    fn up_key(row: &Self::In) -> Self::UpKey;
    fn key(row: &Self::In) -> Self::Key;
    fn new_acc() -> Self::Acc;
    fn add(acc: &mut Self::Acc, row: &Self::In);
    fn retract(acc: &mut Self::Acc, row: &Self::In);
    /// Rows in the group now (a group with none is deleted).
    fn rows(acc: &Self::Acc) -> i64;
    fn output(key: &Self::Key, acc: &Self::Acc) -> Self::Out;
}

/// Unbounded aggregation of an updating stream: each change first retracts the previous
/// version of its row (by the input's upsert key) and then adds the new one. Groups that lose
/// their last row are deleted. Runs as one instance, so every version of a row meets its
/// predecessor whatever its group.
pub struct RetractAggregateOp<A: RetractAggregate, N> {
    previous: FastMap<A::UpKey, A::In>,
    groups: FastMap<A::Key, A::Acc>,
    dirty: BTreeMap<A::Key, ()>,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<A: RetractAggregate, N: Collector<Change<A::Out>>> RetractAggregateOp<A, N> {
    pub fn new(metrics: OpMetrics, next: N) -> Self {
        RetractAggregateOp {
            previous: FastMap::default(),
            groups: FastMap::default(),
            dirty: BTreeMap::new(),
            next,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    fn take_back(&mut self, old: &A::In) {
        let key = A::key(old);
        if let Some(acc) = self.groups.get_mut(&key) {
            A::retract(acc, old);
        }
        self.dirty.insert(key, ());
    }

    fn flush(&mut self) {
        for (key, ()) in std::mem::take(&mut self.dirty) {
            let Some(acc) = self.groups.get(&key) else {
                continue;
            };
            let out = A::output(&key, acc);
            self.stats.records_out += 1;
            if A::rows(acc) <= 0 {
                self.groups.remove(&key);
                self.next.push(&Change::Delete(out));
            } else {
                self.next.push(&Change::Upsert(out));
            }
        }
    }
}

impl<A: RetractAggregate, N: Collector<Change<A::Out>>> Collector<Change<A::In>>
    for RetractAggregateOp<A, N>
{
    fn push(&mut self, change: &Change<A::In>) {
        self.stats.records_in += 1;
        match change {
            Change::Upsert(row) => {
                if let Some(old) = self.previous.insert(A::up_key(row), row.clone()) {
                    self.take_back(&old);
                }
                let key = A::key(row);
                A::add(
                    self.groups.entry(key.clone()).or_insert_with(A::new_acc),
                    row,
                );
                self.dirty.insert(key, ());
            }
            Change::Delete(row) => {
                if let Some(old) = self.previous.remove(&A::up_key(row)) {
                    self.take_back(&old);
                }
            }
        }
        if self.dirty.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
    fn watermark(&mut self, watermark: i64) {
        self.flush();
        self.next.watermark(watermark);
    }
    crate::ops::change::flushed_at_barrier_tick_and_finish!();
}

impl<A: RetractAggregate, N> Snapshot for RetractAggregateOp<A, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    snapshot_fields!(previous, groups);
}

/// A multiset for `min`/`max` over an updating stream: values with their counts.
pub type Multiset<T> = BTreeMap<T, i64>;

/// Adds one occurrence of `v`.
pub fn multiset_add<T: Ord>(set: &mut Multiset<T>, v: T) {
    *set.entry(v).or_insert(0) += 1;
}

/// Removes one occurrence of `v` (if present).
pub fn multiset_remove<T: Ord>(set: &mut Multiset<T>, v: &T) {
    if let Some(n) = set.get_mut(v) {
        *n -= 1;
        if *n <= 0 {
            set.remove(v);
        }
    }
}
