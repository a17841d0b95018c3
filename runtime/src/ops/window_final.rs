//! Top-N, dedup and aggregates keyed by a window that closed upstream: final rows, emitted
//! once, as an append stream.
//!
//! After an event-time window aggregate, every row of one window reaches the next operator
//! before the watermark passes that window's end (the window fires at that watermark and
//! sends its rows ahead of it). So a `top`, `dedup` or `aggregate by` whose key names the
//! window (its `window_end`, or the `window_start` of a fixed-size window) knows that a group
//! is complete once the watermark reaches the group's end: it emits the group's rows then,
//! once, and drops its state. The compiler picks these operators instead of the updating
//! ones ([`TopNOp`](super::TopNOp), [`GroupAggregateOp`](super::GroupAggregateOp)) when the
//! key names a window; their output can go wherever an append stream can (filters, joins,
//! Kafka, later windows). Groups close in order of their end and, within one end, of their
//! key, so the output is deterministic.
//!
//! The group's end is read from each row's event-time field (the window end). A row whose end
//! the watermark has already passed cannot come from a window upstream; should one arrive, it
//! is counted as late and dropped rather than emitted as a second final result.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::checkpoint::{snapshot, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::updating::RankSpec;
use crate::ops::window::WindowAggregate;
use crate::state::{State, StateError};

/// The groups not yet closed, by (end, key), and the watermark that closed the others.
struct OpenGroups<K, V> {
    groups: BTreeMap<(i64, K), V>,
    watermark: i64,
}

impl<K: Ord, V> OpenGroups<K, V> {
    fn new() -> Self {
        OpenGroups {
            groups: BTreeMap::new(),
            watermark: i64::MIN,
        }
    }

    /// The group of a record whose window ends at `end`, made by `new` if it has none; `None`
    /// when the watermark has passed `end` (the record is late).
    fn group(&mut self, end: i64, key: K, new: impl FnOnce() -> V) -> Option<&mut V> {
        (end > self.watermark).then(|| self.groups.entry((end, key)).or_insert_with(new))
    }

    /// Moves the watermark forward; false when it does not move.
    fn advance(&mut self, watermark: i64) -> bool {
        let moved = watermark > self.watermark;
        self.watermark = self.watermark.max(watermark);
        moved
    }

    /// The next group whose window ends at or before `up_to`, removed (in order of end, then
    /// key).
    fn pop_closed(&mut self, up_to: i64) -> Option<(K, V)> {
        let entry = self.groups.first_entry()?;
        (entry.key().0 <= up_to).then(|| {
            let ((_, key), value) = entry.remove_entry();
            (key, value)
        })
    }
}

/// Top-N (and dedup, top 1) per key, where the key names a window: a partition's N best rows
/// are emitted when the watermark passes the partition's end ([`RankSpec::event_time`]: the window's end).
pub struct FinalTopNOp<S: RankSpec, N> {
    n: usize,
    newer_wins_ties: bool,
    /// Open partitions, each with its best rows so far, best first.
    open: OpenGroups<S::Key, Vec<S::In>>,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<S: RankSpec, N: Collector<S::Out>> FinalTopNOp<S, N> {
    pub fn new(metrics: OpMetrics, n: usize, next: N) -> Self {
        FinalTopNOp {
            n: n.max(1),
            newer_wins_ties: false,
            open: OpenGroups::new(),
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

    /// Rows held (for tests and metrics).
    pub fn state_size(&self) -> usize {
        self.open.groups.values().map(Vec::len).sum()
    }

    /// Emits and forgets every partition whose end is at or below `up_to`.
    fn close(&mut self, up_to: i64) {
        while let Some((_, rows)) = self.open.pop_closed(up_to) {
            for (i, row) in rows.iter().enumerate() {
                self.stats.records_out += 1;
                self.next.push(&S::output(row, i as i64 + 1));
            }
        }
    }
}

impl<S: RankSpec, N: Collector<S::Out>> Collector<S::In> for FinalTopNOp<S, N> {
    #[inline]
    fn push(&mut self, record: &S::In) {
        self.stats.records_in += 1;
        let n = self.n;
        let new = || Vec::with_capacity(n.min(4));
        let Some(rows) = self.open.group(S::event_time(record), S::key(record), new) else {
            self.stats.late += 1;
            return;
        };
        // After every row that ranks before or equal to it (arrival order breaks ties).
        let at = if self.newer_wins_ties {
            rows.partition_point(|r| S::compare(r, record) == Ordering::Less)
        } else {
            rows.partition_point(|r| S::compare(r, record) != Ordering::Greater)
        };
        if at < n {
            rows.insert(at, record.clone());
            rows.truncate(n);
        }
    }
    fn watermark(&mut self, watermark: i64) {
        if self.open.advance(watermark) {
            self.close(watermark);
        }
        self.next.watermark(watermark);
    }
    fn barrier(&mut self, checkpoint: u64) {
        snapshot(self, &self.slot, checkpoint);
        self.next.barrier(checkpoint);
    }
    fn tick(&mut self) {
        self.next.tick();
    }
    /// At the end of input every window has closed.
    fn finish(&mut self) {
        self.close(i64::MAX);
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

impl<S: RankSpec, N> Snapshot for FinalTopNOp<S, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        self.open.groups.save(out);
    }
    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.open.groups = State::load(input)?;
        Ok(())
    }
}

/// An aggregate per key, where the key names a window (`aggregate by window_end, k { ... }`
/// over a window's rows): each group's row is emitted when the watermark passes the group's
/// end ([`WindowAggregate::event_time`] of its rows).
pub struct FinalAggregateOp<A: WindowAggregate, N> {
    open: OpenGroups<A::Key, A::Acc>,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
    overflows: Option<crate::overflow::Overflows>,
}

impl<A: WindowAggregate, N: Collector<A::Out>> FinalAggregateOp<A, N> {
    pub fn new(metrics: OpMetrics, next: N) -> Self {
        FinalAggregateOp {
            open: OpenGroups::new(),
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

    /// Groups open (for tests and metrics).
    pub fn state_size(&self) -> usize {
        self.open.groups.len()
    }

    fn close(&mut self, up_to: i64) {
        while let Some((key, acc)) = self.open.pop_closed(up_to) {
            let out = A::output(&key, i64::MIN, i64::MAX, &acc);
            if let Some(overflows) = &self.overflows {
                overflows.count_taken();
            }
            self.stats.records_out += 1;
            self.next.push(&out);
        }
    }
}

impl<A: WindowAggregate, N: Collector<A::Out>> Collector<A::In> for FinalAggregateOp<A, N> {
    #[inline]
    fn push(&mut self, record: &A::In) {
        self.stats.records_in += 1;
        if A::event_time(record) <= self.open.watermark {
            self.stats.late += 1;
            return;
        }
        if let Some(overflows) = &self.overflows {
            if A::reject_overflow(record, overflows) {
                return;
            }
        }
        if let Some(acc) = self
            .open
            .group(A::event_time(record), A::key(record), A::new_acc)
        {
            A::add(acc, record);
        }
    }
    fn watermark(&mut self, watermark: i64) {
        if self.open.advance(watermark) {
            self.close(watermark);
        }
        self.next.watermark(watermark);
    }
    fn barrier(&mut self, checkpoint: u64) {
        snapshot(self, &self.slot, checkpoint);
        self.next.barrier(checkpoint);
    }
    fn tick(&mut self) {
        self.next.tick();
    }
    fn finish(&mut self) {
        self.close(i64::MAX);
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

impl<A: WindowAggregate, N> Snapshot for FinalAggregateOp<A, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    fn save_state(&self, out: &mut Vec<u8>) {
        self.open.groups.save(out);
    }
    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.open.groups = State::load(input)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// (window end, key, score): the best score per (end, key).
    struct Top;
    impl RankSpec for Top {
        type In = (i64, i64, i64);
        type Key = (i64, i64);
        type Out = (i64, i64, i64, i64);
        fn key(r: &Self::In) -> Self::Key {
            (r.0, r.1)
        }
        fn compare(a: &Self::In, b: &Self::In) -> Ordering {
            b.2.cmp(&a.2)
        }
        fn output(r: &Self::In, rank: i64) -> Self::Out {
            (r.0, r.1, r.2, rank)
        }
        fn event_time(r: &Self::In) -> i64 {
            r.0
        }
    }

    #[derive(Clone, Default)]
    struct Log(Rc<RefCell<Vec<String>>>);
    impl Collector<(i64, i64, i64, i64)> for Log {
        fn push(&mut self, r: &(i64, i64, i64, i64)) {
            self.0.borrow_mut().push(format!("{r:?}"));
        }
        fn watermark(&mut self, w: i64) {
            self.0.borrow_mut().push(format!("wm {w}"));
        }
        fn barrier(&mut self, _: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {
            self.0.borrow_mut().push("end".into());
        }
    }

    #[test]
    fn a_window_closes_once_with_its_final_rows_and_its_state_goes() {
        let log = Log::default();
        let metrics = Metrics::new();
        let mut op = FinalTopNOp::<Top, _>::new(metrics.op("top"), 2, log.clone());
        for r in [(10, 1, 5), (10, 1, 7), (20, 1, 1), (10, 2, 3), (10, 1, 6)] {
            op.push(&r);
        }
        op.tick();
        assert!(
            log.0.borrow().is_empty(),
            "nothing before the window closes"
        );
        op.watermark(10);
        assert_eq!(op.state_size(), 1, "only window 20 is still open");
        // Late: window 10 has closed; its result must not be emitted twice.
        op.push(&(10, 1, 100));
        op.push(&(20, 1, 4));
        op.finish();
        let got = log.0.borrow().join("; ");
        assert_eq!(
            got,
            "(10, 1, 7, 1); (10, 1, 6, 2); (10, 2, 3, 1); wm 10; (20, 1, 4, 1); (20, 1, 1, 2); end"
        );
        assert_eq!(op.stats.late, 1);
    }

    /// Open windows are state: a restored operator emits what the saved one would have.
    /// (Between a window aggregate's rows and its watermark no barrier can pass on one
    /// channel, but across parallel inputs a barrier can find rows of one input whose
    /// watermark the other has not reached yet.)
    #[test]
    fn open_windows_survive_a_restore() {
        let metrics = Metrics::new();
        let mut saved = Vec::new();
        {
            let mut op = FinalTopNOp::<Top, _>::new(metrics.op("top"), 2, Log::default());
            for r in [(10, 1, 5), (10, 1, 7), (20, 2, 1), (10, 1, 9)] {
                op.push(&r);
            }
            op.save_state(&mut saved);
        }
        let log = Log::default();
        let mut op = FinalTopNOp::<Top, _>::new(metrics.op("top"), 2, log.clone());
        op.load_state(&mut saved.as_slice()).unwrap();
        op.push(&(20, 2, 3));
        op.finish();
        assert_eq!(
            log.0.borrow().join("; "),
            "(10, 1, 9, 1); (10, 1, 7, 2); (20, 2, 3, 1); (20, 2, 1, 2); end"
        );
    }
}
