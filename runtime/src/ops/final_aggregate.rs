//! Aggregates per key where the key names a window that closed upstream: each group's row
//! goes out once, final, when the watermark passes the window's end (see
//! [`super::window_final`]).

use crate::checkpoint::{snapshot, snapshot_fields, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::window_aggregate::WindowAggregate;
use crate::ops::window_final::OpenGroups;

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
    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): the open
    /// groups and their accumulators.
    fn measure_state(&mut self, force: bool) {
        if self.stats.state.due(force) {
            let keys = self.open.groups.len();
            let bytes = crate::metrics::entries_bytes::<((i64, A::Key), A::Acc)>(keys);
            self.stats.state.set(keys, bytes);
        }
    }

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
    fn finish(&mut self) {
        self.close(i64::MAX);
        self.measure_state(true);
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

impl<A: WindowAggregate, N> Snapshot for FinalAggregateOp<A, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    snapshot_fields!(open.groups);
}
