//! Unbounded aggregation per key (`aggregate by k { ... }` without a window): an updating
//! stream, one row per key, revised by every record (see [`super::change`] for how changes
//! are batched). With a TTL ([`KeyTtl`]) a key's accumulator is dropped once its last record
//! is older than the TTL; the key's next record starts a fresh aggregate. The key's last
//! record is kept beside its accumulator (the stamp `T`, see [`Stamp`]).
//!
//! The accumulators are keyed state ([`Keyed`]): in memory, or with `--state disk` spilled
//! to disk past the memory budget. With incremental checkpoints a delta writes the keys
//! changed or expired since the last checkpoint ([`Changed`]).

use std::collections::BTreeMap;

use crate::checkpoint::{snapshot_fields, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::keyed::{Changed, Keyed};
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::change::{Change, FLUSH_EVERY};
use crate::ops::key_ttl::{KeyTtl, Stamp, Written};
use crate::ops::window_aggregate::WindowAggregate;

/// Unbounded aggregation per key (no window): `aggregate by k { ... }`. Reuses the window
/// aggregate's generated code; the window bounds passed to `output` are unused. `T` is what
/// each key keeps for a TTL: nothing, or its last write once built [`with_ttl`](Self::with_ttl).
pub struct GroupAggregateOp<A: WindowAggregate, N, T: Stamp = ()> {
    /// The accumulator per key, in memory or spilled to disk (see [`crate::keyed`]).
    state: Keyed<A::Key, (A::Acc, T)>,
    ttl: Option<KeyTtl<A::Key>>,
    dirty: BTreeMap<A::Key, ()>,
    /// With incremental checkpoints: the keys changed or expired since the last one.
    changed: Changed<A::Key>,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
    overflows: Option<crate::overflow::Overflows>,
}

impl<A: WindowAggregate, N: Collector<Change<A::Out>>> GroupAggregateOp<A, N> {
    pub fn new(metrics: OpMetrics, next: N) -> Self {
        GroupAggregateOp {
            state: Keyed::new(),
            ttl: None,
            dirty: BTreeMap::new(),
            changed: Changed::default(),
            next,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
            overflows: None,
        }
    }

    /// Checks records and results for integer overflow, as
    /// [`WindowAggregateOp::with_overflows`](super::WindowAggregateOp::with_overflows).
    pub fn with_overflows(mut self, overflows: crate::overflow::Overflows) -> Self {
        self.overflows = Some(overflows);
        self
    }

    crate::ops::key_ttl::ttl_builders!(GroupAggregateOp<A, N, Written>);

    /// The operator with `ttl`, each key keeping its last write (built before any state:
    /// `with_state` comes after).
    fn stamped(self, ttl: KeyTtl<A::Key>) -> GroupAggregateOp<A, N, Written> {
        debug_assert!(self.state.is_empty(), "a TTL is set before any state");
        GroupAggregateOp {
            state: Keyed::new(),
            ttl: Some(ttl),
            dirty: self.dirty,
            changed: Changed::default(),
            next: self.next,
            stats: self.stats,
            metrics: self.metrics,
            slot: self.slot,
            overflows: self.overflows,
        }
    }
}

impl<A: WindowAggregate, N: Collector<Change<A::Out>>, T: Stamp> GroupAggregateOp<A, N, T> {
    /// Keys held.
    pub fn keys(&self) -> usize {
        self.state.len()
    }

    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): keys, and
    /// the accumulators' table with the TTL's bookkeeping.
    fn measure_state(&mut self, force: bool) {
        if self.stats.state.due(force) {
            let ttl = self.ttl.as_ref().map_or(0, |t| t.approx_bytes());
            // Accumulators are inline in the table: nothing more to count per value.
            let bytes = self.state.memory_bytes(|_| 0) + ttl;
            self.stats.state.set(self.state.len(), bytes);
        }
    }

    fn expire_by_clock(&mut self) {
        if let Some(ttl) = &mut self.ttl {
            let (state, changed) = (&mut self.state, &mut self.changed);
            ttl.tick(state, |key, _| changed.note(&key));
        }
    }

    fn flush(&mut self) {
        for (key, ()) in std::mem::take(&mut self.dirty) {
            if let Some((acc, _)) = self.state.get_mut(&key) {
                let out = A::output(&key, i64::MIN, i64::MAX, acc);
                if let Some(overflows) = &self.overflows {
                    overflows.count_taken();
                }
                self.stats.records_out += 1;
                self.next.push(&Change::Upsert(out));
            }
        }
    }
}

impl<A: WindowAggregate, N: Collector<Change<A::Out>>, T: Stamp> Collector<A::In>
    for GroupAggregateOp<A, N, T>
{
    #[inline]
    fn push(&mut self, record: &A::In) {
        self.stats.records_in += 1;
        if let Some(overflows) = &self.overflows {
            if A::reject_overflow(record, overflows) {
                return;
            }
        }
        let key = A::key(record);
        let ttl = &mut self.ttl;
        self.state.update(
            key.clone(),
            || (A::new_acc(), T::default()),
            |(acc, _)| A::acc_size(acc),
            |(acc, stamp)| {
                A::add(acc, record);
                if let Some(ttl) = ttl {
                    ttl.write_now(&key, A::event_time(record), stamp);
                }
            },
        );
        self.changed.note(&key);
        self.dirty.insert(key, ());
        if self.dirty.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
    /// Pending changes go out first, then expired keys are dropped (silently).
    fn watermark(&mut self, watermark: i64) {
        self.flush();
        if let Some(ttl) = &mut self.ttl {
            let (state, changed) = (&mut self.state, &mut self.changed);
            ttl.on_watermark(watermark, state, |key, _| changed.note(&key));
        }
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
    }
    crate::ops::change::flushed_at_barrier_tick_and_finish!();
}

impl<A: WindowAggregate, N, T: Stamp> Snapshot for GroupAggregateOp<A, N, T> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    // The accumulators, with a TTL each with its key's last write.
    snapshot_fields!(state);

    // Every record changes its key's accumulator and every expiry drops one: both list the
    // key ([`Changed`]). On disk a delta reads the listed keys back.
    crate::keyed::keyed_deltas!(state, "an aggregate delta's entry");

    /// The expiry order is not saved: it follows from the last writes.
    fn restored(&mut self, _deltas: usize) {
        if let Some(ttl) = &mut self.ttl {
            ttl.rebuild(&self.state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Count and sum of `(key, time, amount)` per key.
    struct Totals;
    impl WindowAggregate for Totals {
        type In = (i64, i64, i64);
        type Key = i64;
        type Acc = (i64, i64);
        type Out = (i64, i64, i64);
        fn key(r: &Self::In) -> i64 {
            r.0
        }
        fn event_time(r: &Self::In) -> i64 {
            r.1
        }
        fn new_acc() -> (i64, i64) {
            (0, 0)
        }
        fn add(acc: &mut (i64, i64), r: &Self::In) {
            acc.0 += 1;
            acc.1 += r.2;
        }
        fn merge(acc: &mut (i64, i64), later: (i64, i64)) {
            acc.0 += later.0;
            acc.1 += later.1;
        }
        fn output(key: &i64, _: i64, _: i64, acc: &(i64, i64)) -> (i64, i64, i64) {
            (*key, acc.0, acc.1)
        }
    }

    /// The last row emitted per key.
    #[derive(Clone, Default)]
    struct Table(Rc<RefCell<BTreeMap<i64, (i64, i64)>>>);
    impl Collector<Change<(i64, i64, i64)>> for Table {
        fn push(&mut self, c: &Change<(i64, i64, i64)>) {
            let (k, n, sum) = *c.row();
            self.0.borrow_mut().insert(k, (n, sum));
        }
        fn watermark(&mut self, _: i64) {}
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }

    type Op<T = ()> = GroupAggregateOp<Totals, Table, T>;
    /// Accumulators per key and, with a TTL, each key's last write.
    type Held = (Vec<(i64, (i64, i64))>, Vec<(i64, i64)>);

    fn held<T: Stamp>(op: &Op<T>) -> Held {
        let (mut accs, mut ttl) = (Vec::new(), Vec::new());
        op.state.for_each(|k, (acc, stamp)| {
            accs.push((*k, *acc));
            ttl.extend(stamp.get().map(|w| (*k, w.last())));
        });
        accs.sort();
        ttl.sort();
        (accs, ttl)
    }

    /// Keys drift over the rounds, so that with a TTL old ones expire.
    fn round<T: Stamp>(op: &mut Op<T>, round: i64) {
        for i in 0..60i64 {
            let key = (i * 7 + round) % 11 + round / 4 * 5;
            op.push(&(key, round * 100 + i, i * 3 - round));
        }
        op.watermark(round * 100);
    }

    /// A full part and deltas restore, at every point, the accumulators (and last writes)
    /// the operator held, on either backend whichever wrote them.
    fn chain_of_deltas<T: Stamp>(make: &dyn Fn() -> Op<T>, backend: &dyn Fn(Op<T>) -> Op<T>) {
        let held = |op: &mut Op<T>| held(op);
        let (op, seen, _) =
            crate::keyed::check_chain(make, backend, 16, &round, &held, &[0, 1, 6, 15]);
        if op.ttl.is_some() {
            assert!(seen[15].0.len() < 40, "nothing expired: {:?}", seen[15].0);
        }
    }

    fn plain() -> Op {
        GroupAggregateOp::new(Metrics::new().op("agg"), Table::default())
    }

    fn with_ttl() -> Op<Written> {
        plain().with_ttl(250)
    }

    #[test]
    fn a_chain_of_deltas_restores_the_accumulators_held() {
        chain_of_deltas(&plain, &|op| op);
        chain_of_deltas(&with_ttl, &|op| op);
    }

    /// On disk with a cache so small that every key is spilled: the same rows come out as
    /// in memory, and deltas read their keys back.
    #[cfg(feature = "state-disk")]
    #[test]
    fn on_disk_the_rows_and_the_deltas_are_those_of_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 64);
        fn on_disk<T: Stamp>(
            store: &std::sync::Arc<crate::keyed::disk::Store>,
        ) -> impl Fn(Op<T>) -> Op<T> + '_ {
            |mut op: Op<T>| {
                op.state = Keyed::spilled_to(store);
                op
            }
        }
        chain_of_deltas(&plain, &on_disk(&store));
        chain_of_deltas(&with_ttl, &on_disk(&store));
        fn same_rows<T: Stamp>(make: fn() -> Op<T>, on_disk: &dyn Fn(Op<T>) -> Op<T>) {
            let (memory, disk) = (make(), on_disk(make()));
            let (a, b) = (memory.next.clone(), disk.next.clone());
            let (mut memory, mut disk) = (memory, disk);
            for r in 0..16 {
                round(&mut memory, r);
                round(&mut disk, r);
            }
            memory.finish();
            disk.finish();
            assert_eq!(held(&memory), held(&disk));
            assert!(!a.0.borrow().is_empty());
            assert_eq!(*a.0.borrow(), *b.0.borrow());
        }
        same_rows(plain, &on_disk(&store));
        same_rows(with_ttl, &on_disk(&store));
    }
}
