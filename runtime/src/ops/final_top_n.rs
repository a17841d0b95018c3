//! Top-N and dedup per key where the key names a window that closed upstream: a partition's
//! rows go out once, final, when the watermark passes the window's end (see
//! [`super::window_final`]).

use std::cmp::Ordering;

use crate::checkpoint::{snapshot, snapshot_fields, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::top_n::RankSpec;
use crate::ops::window_final::OpenGroups;

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
    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): the open
    /// groups and their rows (counted on a sample of the groups).
    fn measure_state(&mut self, force: bool) {
        use crate::metrics::entries_bytes;
        if self.stats.state.due(force) {
            let keys = self.open.groups.len();
            let rows =
                crate::metrics::sampled_total(self.open.groups.values(), keys, Vec::capacity);
            let bytes =
                entries_bytes::<((i64, S::Key), Vec<S::In>)>(keys) + entries_bytes::<S::In>(rows);
            self.stats.state.set(keys, bytes);
        }
    }

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
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
    }
    fn barrier(&mut self, checkpoint: u64) {
        self.measure_state(true);
        snapshot(self, &self.slot, checkpoint);
        self.next.barrier(checkpoint);
    }
    fn tick(&mut self) {
        self.measure_state(false);
        self.next.tick();
    }
    /// At the end of input every window has closed.
    fn finish(&mut self) {
        self.close(i64::MAX);
        self.measure_state(true);
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

impl<S: RankSpec, N> Snapshot for FinalTopNOp<S, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    snapshot_fields!(open.groups);
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
