//! The rows of updating streams: [`Change`]s keyed by the stream's upsert key (the group key
//! of an unbounded aggregate; the dedup key; the partition key and rank of a top-N), and
//! [`Upserts`], which turns an append stream's rows into upserts.
//!
//! Inputs of the updating operators ([`GroupAggregateOp`](super::GroupAggregateOp),
//! [`TopNOp`](super::TopNOp)) are append-only, so every change is an upsert: a key's new row
//! replaces the old one. Changes are emitted in mini-batches: a key's state may change many
//! times between two watermarks, but it is emitted once, when the watermark advances (or every
//! [`FLUSH_EVERY`] changed keys, or at the end), keys in order. The final table is the same
//! as with per-record emission; far fewer changes reach the sink.

use crate::collector::Collector;

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

/// The `barrier`, `tick` and `finish` of a [`Collector`] that emits its changes in
/// mini-batches (see [`FLUSH_EVERY`]): the pending changes go out first, so a barrier's saved
/// state holds none and a pipeline without event time still sends them every flush interval;
/// a tick also expires the keys of a processing-time TTL. For an operator with `flush()`,
/// `expire_by_clock()` and the fields `slot`, `stats`, `metrics` and `next`.
macro_rules! flushed_at_barrier_tick_and_finish {
    () => {
        fn barrier(&mut self, checkpoint: u64) {
            self.flush();
            self.measure_state(true);
            $crate::checkpoint::snapshot_incremental(self, checkpoint);
            self.next.barrier(checkpoint);
        }
        fn tick(&mut self) {
            self.flush();
            self.expire_by_clock();
            self.measure_state(false);
            self.next.tick();
        }
        fn finish(&mut self) {
            self.flush();
            self.measure_state(true);
            self.metrics.report(&self.stats);
            self.next.finish();
        }
    };
}
pub(crate) use flushed_at_barrier_tick_and_finish;
