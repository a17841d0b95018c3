//! Operators whose output revises earlier output: unbounded group aggregation, dedup and
//! top-N. Their output is a changelog of [`Change`]s keyed by the stream's upsert key (the
//! group key; the dedup key; the partition key and rank).
//!
//! Inputs are append-only, so every change is an upsert: a key's new row replaces the old one.
//! Changes are emitted in mini-batches: a key's state may change many times between two
//! watermarks, but it is emitted once, when the watermark advances (or every
//! `FLUSH_EVERY` changed keys, or at the end), keys in order. The final table is the same
//! as with per-record emission; far fewer changes reach the sink.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::Hash;

use crate::checkpoint::{snapshot, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::hash::FastMap;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::key_ttl::KeyTtl;
use crate::ops::window::WindowAggregate;
use crate::state::{State, StateError};

/// A row of an updating stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<T> {
    /// Insert the row, or replace the row with the same key.
    Upsert(T),
    /// Remove the row with this row's key.
    Delete(T),
}

impl<T> Change<T> {
    pub fn row(&self) -> &T {
        match self {
            Change::Upsert(r) | Change::Delete(r) => r,
        }
    }
}

/// Turns rows into upserts (the output of a window with allowed lateness, whose rows may be
/// emitted again, updated).
pub struct Upserts<N> {
    next: N,
}

impl<N> Upserts<N> {
    pub fn new(next: N) -> Self {
        Upserts { next }
    }
}

impl<T: Clone, N: Collector<Change<T>>> Collector<T> for Upserts<N> {
    #[inline]
    fn push(&mut self, row: &T) {
        self.next.push(&Change::Upsert(row.clone()));
    }
    fn watermark(&mut self, watermark: i64) {
        self.next.watermark(watermark);
    }
    fn barrier(&mut self, checkpoint: u64) {
        self.next.barrier(checkpoint);
    }
    fn tick(&mut self) {
        self.next.tick();
    }
    fn finish(&mut self) {
        self.next.finish();
    }
}

/// Changed keys are flushed at a watermark, or when this many have piled up.
pub const FLUSH_EVERY: usize = 16_384;

/// Unbounded aggregation per key (no window): `aggregate by k { ... }`. Reuses the window
/// aggregate's generated code; the window bounds passed to `output` are unused.
pub struct GroupAggregateOp<A: WindowAggregate, N> {
    state: FastMap<A::Key, A::Acc>,
    dirty: BTreeMap<A::Key, ()>,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
    overflows: Option<crate::overflow::Overflows>,
}

impl<A: WindowAggregate, N: Collector<Change<A::Out>>> GroupAggregateOp<A, N> {
    pub fn new(metrics: OpMetrics, next: N) -> Self {
        GroupAggregateOp {
            state: FastMap::default(),
            dirty: BTreeMap::new(),
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

    fn flush(&mut self) {
        for (key, ()) in std::mem::take(&mut self.dirty) {
            if let Some(acc) = self.state.get(&key) {
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

impl<A: WindowAggregate, N: Collector<Change<A::Out>>> Collector<A::In> for GroupAggregateOp<A, N> {
    #[inline]
    fn push(&mut self, record: &A::In) {
        self.stats.records_in += 1;
        if let Some(overflows) = &self.overflows {
            if A::reject_overflow(record, overflows) {
                return;
            }
        }
        let key = A::key(record);
        let acc = self.state.entry(key.clone()).or_insert_with(A::new_acc);
        A::add(acc, record);
        self.dirty.insert(key, ());
        if self.dirty.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
    fn watermark(&mut self, watermark: i64) {
        self.flush();
        self.next.watermark(watermark);
    }
    /// Pending changes go out before the barrier, so the saved state has none.
    fn barrier(&mut self, checkpoint: u64) {
        self.flush();
        snapshot(self, &self.slot, checkpoint);
        self.next.barrier(checkpoint);
    }
    /// Pending changes go out with the flush interval too: without event time no watermark
    /// would ever send them.
    fn tick(&mut self) {
        self.flush();
        self.next.tick();
    }
    fn finish(&mut self) {
        self.flush();
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

impl<A: WindowAggregate, N> Snapshot for GroupAggregateOp<A, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        self.state.save(out);
    }
    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.state = State::load(input)?;
        Ok(())
    }
}

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
    fn barrier(&mut self, checkpoint: u64) {
        self.flush();
        snapshot(self, &self.slot, checkpoint);
        self.next.barrier(checkpoint);
    }
    /// Pending changes go out with the flush interval too: without event time no watermark
    /// would ever send them.
    fn tick(&mut self) {
        self.flush();
        self.next.tick();
    }
    fn finish(&mut self) {
        self.flush();
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

impl<A: RetractAggregate, N> Snapshot for RetractAggregateOp<A, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        self.previous.save(out);
        self.groups.save(out);
    }
    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.previous = State::load(input)?;
        self.groups = State::load(input)?;
        Ok(())
    }
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

/// The per-query part of dedup and top-N.
pub trait RankSpec {
    type In: Clone + State;
    /// The partition (dedup) key.
    type Key: Hash + Eq + Ord + Clone + State;
    type Out;
    fn key(record: &Self::In) -> Self::Key;
    /// Ordering of rows within a partition: `Less` means `a` ranks before `b`.
    fn compare(a: &Self::In, b: &Self::In) -> Ordering;
    /// The output row for a record at `rank` (1-based).
    fn output(record: &Self::In, rank: i64) -> Self::Out;
    /// The record's event time: when it writes its key, for a TTL, and, when the key names a
    /// window, the window's end, at which its partition is final
    /// ([`FinalTopNOp`](super::FinalTopNOp)). Generated only for those.
    fn event_time(_record: &Self::In) -> i64 {
        i64::MIN
    }
}

/// Top-N per key (`top N by k order by ...`); dedup is top-1 with the order "first" or
/// "last". Rows that compare equal keep arrival order (the earlier ranks first). With a TTL
/// ([`KeyTtl`]), a key's rows are dropped once the watermark passes the event time of its
/// last write (a record that entered its top N) plus the TTL.
pub struct TopNOp<S: RankSpec, N> {
    n: usize,
    newer_wins_ties: bool,
    state: FastMap<S::Key, Vec<S::In>>,
    ttl: Option<KeyTtl<S::Key>>,
    /// Key -> lowest rank index whose row changed since the last flush.
    dirty: BTreeMap<S::Key, usize>,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<S: RankSpec, N: Collector<Change<S::Out>>> TopNOp<S, N> {
    pub fn new(metrics: OpMetrics, n: usize, next: N) -> Self {
        TopNOp {
            n: n.max(1),
            newer_wins_ties: false,
            state: FastMap::default(),
            ttl: None,
            dirty: BTreeMap::new(),
            next,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    /// Rows that compare equal rank the newer first (dedup keep last).
    pub fn newer_wins_ties(mut self) -> Self {
        self.newer_wins_ties = true;
        self
    }

    /// Drops a key's state once the watermark passes its last write plus `ttl_ms`.
    pub fn with_ttl(mut self, ttl_ms: i64) -> Self {
        self.ttl = Some(KeyTtl::new(ttl_ms));
        self
    }

    /// Rows held (for tests and metrics).
    pub fn state_size(&self) -> usize {
        self.state.values().map(Vec::len).sum()
    }

    /// Keys held.
    pub fn keys(&self) -> usize {
        self.state.len()
    }

    fn flush(&mut self) {
        for (key, from) in std::mem::take(&mut self.dirty) {
            if let Some(rows) = self.state.get(&key) {
                for (i, row) in rows.iter().enumerate().skip(from) {
                    let out = S::output(row, i as i64 + 1);
                    self.stats.records_out += 1;
                    self.next.push(&Change::Upsert(out));
                }
            }
        }
    }
}

impl<S: RankSpec, N: Collector<Change<S::Out>>> Collector<S::In> for TopNOp<S, N> {
    #[inline]
    fn push(&mut self, record: &S::In) {
        self.stats.records_in += 1;
        let key = S::key(record);
        let n = self.n;
        // Most keys hold few rows: start small (dedup holds exactly one).
        let rows = self
            .state
            .entry(key.clone())
            .or_insert_with(|| Vec::with_capacity(n.min(2)));
        // After every row that ranks before or equal to it (arrival order breaks ties).
        let at = if self.newer_wins_ties {
            rows.partition_point(|r| S::compare(r, record) == Ordering::Less)
        } else {
            rows.partition_point(|r| S::compare(r, record) != Ordering::Greater)
        };
        if at >= self.n {
            return;
        }
        rows.insert(at, record.clone());
        rows.truncate(self.n);
        if let Some(ttl) = &mut self.ttl {
            ttl.write(&key, S::event_time(record));
        }
        let from = self.dirty.entry(key).or_insert(at);
        *from = (*from).min(at);
        if self.dirty.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
    /// Pending changes go out first, then expired keys are dropped (silently).
    fn watermark(&mut self, watermark: i64) {
        self.flush();
        if let Some(ttl) = &mut self.ttl {
            let state = &mut self.state;
            ttl.expire(watermark, |key| {
                state.remove(&key);
            });
        }
        self.next.watermark(watermark);
    }
    fn barrier(&mut self, checkpoint: u64) {
        self.flush();
        snapshot(self, &self.slot, checkpoint);
        self.next.barrier(checkpoint);
    }
    /// Pending changes go out with the flush interval too: without event time no watermark
    /// would ever send them.
    fn tick(&mut self) {
        self.flush();
        self.next.tick();
    }
    fn finish(&mut self) {
        self.flush();
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

impl<S: RankSpec, N> Snapshot for TopNOp<S, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    /// The rows per key, then with a TTL each key's last write.
    fn save_state(&self, out: &mut Vec<u8>) {
        self.state.save(out);
        if let Some(ttl) = &self.ttl {
            ttl.save(out);
        }
    }
    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.state = State::load(input)?;
        if let Some(ttl) = &mut self.ttl {
            ttl.load(input)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::cell::RefCell;
    use std::rc::Rc;

    struct Top;
    impl RankSpec for Top {
        type In = (i64, i64, &'static str); // (key, score, name)
        type Key = i64;
        type Out = (i64, i64, &'static str);
        fn key(r: &Self::In) -> i64 {
            r.0
        }
        fn compare(a: &Self::In, b: &Self::In) -> Ordering {
            b.1.cmp(&a.1) // score descending
        }
        fn output(r: &Self::In, rank: i64) -> Self::Out {
            (r.0, rank, r.2)
        }
    }

    #[derive(Clone, Default)]
    struct Table(
        Rc<RefCell<BTreeMap<(i64, i64), &'static str>>>,
        Rc<RefCell<usize>>,
    );
    impl Collector<Change<(i64, i64, &'static str)>> for Table {
        fn push(&mut self, c: &Change<(i64, i64, &'static str)>) {
            *self.1.borrow_mut() += 1;
            if let Change::Upsert((k, rank, name)) = c {
                self.0.borrow_mut().insert((*k, *rank), name);
            }
        }
        fn watermark(&mut self, _: i64) {}
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }

    /// (key, time, name), first by time: dedup keep first with a TTL.
    struct First;
    impl RankSpec for First {
        type In = (i64, i64, &'static str);
        type Key = i64;
        type Out = (i64, i64, &'static str);
        fn key(r: &Self::In) -> i64 {
            r.0
        }
        fn compare(a: &Self::In, b: &Self::In) -> Ordering {
            a.1.cmp(&b.1)
        }
        fn output(r: &Self::In, _rank: i64) -> Self::Out {
            (r.0, r.1, r.2)
        }
        fn event_time(r: &Self::In) -> i64 {
            r.1
        }
    }

    #[derive(Clone, Default)]
    struct Log(Rc<RefCell<Vec<Row>>>);
    type Row = (i64, i64, &'static str);
    impl Collector<Change<(i64, i64, &'static str)>> for Log {
        fn push(&mut self, c: &Change<(i64, i64, &'static str)>) {
            self.0.borrow_mut().push(*c.row());
        }
        fn watermark(&mut self, _: i64) {}
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }

    #[test]
    fn with_a_ttl_a_key_starts_fresh_after_its_last_write_plus_ttl() {
        let log = Log::default();
        let metrics = Metrics::new();
        let mut op = TopNOp::<First, _>::new(metrics.op("dedup"), 1, log.clone()).with_ttl(10);
        op.push(&(1, 100, "a"));
        op.push(&(1, 105, "dup")); // not written: the key still expires at 100 + 10
        op.push(&(2, 104, "b"));
        op.watermark(110); // 100 + 10 is not < 110: kept
        op.push(&(1, 111, "again")); // a duplicate while key 1 lives
        op.watermark(111); // key 1 (last write 100) expires; key 2 (104) lives
        assert_eq!(op.keys(), 1);
        op.push(&(1, 112, "fresh")); // starts fresh: emitted again
        op.push(&(2, 103, "earlier")); // earlier than b: replaces it and writes key 2
        op.watermark(114); // key 2: max(104, 103) + 10 is not < 114
        assert_eq!(op.keys(), 2);
        op.watermark(200);
        assert_eq!(op.keys(), 0);
        op.finish();
        assert_eq!(
            *log.0.borrow(),
            vec![
                (1, 100, "a"),
                (2, 104, "b"),
                (1, 112, "fresh"),
                (2, 103, "earlier")
            ]
        );
    }

    #[test]
    fn with_a_ttl_state_stays_bounded_and_survives_a_snapshot() {
        let metrics = Metrics::new();
        let mut op =
            TopNOp::<First, _>::new(metrics.op("dedup"), 1, Log::default()).with_ttl(1_000);
        // 100,000 keys over 100 s of event time, each seen once: at most ~1.1 s of keys live.
        let mut most = 0;
        for i in 0..100_000i64 {
            op.push(&(i, i, "x"));
            if i % 100 == 99 {
                op.watermark(i - 50);
                most = most.max(op.keys());
            }
        }
        assert!(most <= 1_200, "{most} keys held");
        let mut bytes = Vec::new();
        op.save_state(&mut bytes);
        let mut restored =
            TopNOp::<First, _>::new(metrics.op("dedup"), 1, Log::default()).with_ttl(1_000);
        restored.load_state(&mut bytes.as_slice()).unwrap();
        assert_eq!(restored.keys(), op.keys());
        // The restored times still expire the keys.
        restored.watermark(100_000 + 1_000);
        assert_eq!(restored.keys(), 0);
    }

    #[test]
    fn top_n_keeps_the_best_rows_with_arrival_order_for_ties() {
        let table = Table::default();
        let metrics = Metrics::new();
        let mut op = TopNOp::<Top, _>::new(metrics.op("top"), 2, table.clone());
        for r in [
            (1, 5, "a"),
            (1, 7, "b"),
            (2, 1, "x"),
            (1, 7, "c"),
            (1, 9, "d"),
            (1, 1, "e"),
        ] {
            op.push(&r);
        }
        op.watermark(10);
        op.push(&(2, 3, "y"));
        op.finish();
        let got: Vec<_> = table.0.borrow().iter().map(|(k, v)| (*k, *v)).collect();
        // Key 1: d (9), then b (7, before c by arrival). Key 2: y, x.
        assert_eq!(
            got,
            vec![((1, 1), "d"), ((1, 2), "b"), ((2, 1), "y"), ((2, 2), "x")]
        );
        assert_eq!(op.state_size(), 4);
        // Mini-batching: the first flush emits the 3 rows of that moment (not one change per
        // record); then y moves x to rank 2: 2 more.
        assert_eq!(*table.1.borrow(), 3 + 2);
    }
}
