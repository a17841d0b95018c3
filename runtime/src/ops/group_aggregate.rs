//! Unbounded aggregation per key (`aggregate by k { ... }` without a window): an updating
//! stream, one row per key, revised by every record (see [`super::change`] for how changes
//! are batched). With a TTL ([`KeyTtl`]) a key's accumulator is dropped once its last record
//! is older than the TTL; the key's next record starts a fresh aggregate.

use std::collections::BTreeMap;

use crate::checkpoint::{snapshot_fields, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::hash::FastMap;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::change::{Change, FLUSH_EVERY};
use crate::ops::key_ttl::KeyTtl;
use crate::ops::window_aggregate::WindowAggregate;

/// Unbounded aggregation per key (no window): `aggregate by k { ... }`. Reuses the window
/// aggregate's generated code; the window bounds passed to `output` are unused.
pub struct GroupAggregateOp<A: WindowAggregate, N> {
    state: FastMap<A::Key, A::Acc>,
    ttl: Option<KeyTtl<A::Key>>,
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
            ttl: None,
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

    /// Drops a key's accumulator once the watermark passes the event time of its last
    /// record plus `ttl_ms` (expiry emits nothing; the key's next record starts afresh).
    pub fn with_ttl(mut self, ttl_ms: i64) -> Self {
        self.ttl = Some(KeyTtl::new(ttl_ms));
        self
    }

    /// [`with_ttl`](Self::with_ttl) on the wall clock: a key expires `ttl_ms` after its last
    /// record arrived, checked at every tick.
    pub fn with_processing_ttl(mut self, ttl_ms: i64) -> Self {
        self.ttl = Some(KeyTtl::new(ttl_ms).on_processing_time());
        self
    }

    /// Keys held.
    pub fn keys(&self) -> usize {
        self.state.len()
    }

    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): keys, and
    /// the accumulators' table with the TTL's bookkeeping.
    fn measure_state(&mut self, force: bool) {
        if self.stats.state.due(force) {
            let ttl = self.ttl.as_ref().map_or(0, |t| t.approx_bytes());
            let bytes = crate::metrics::table_bytes(&self.state) + ttl;
            self.stats.state.set(self.state.len(), bytes);
        }
    }

    fn expire_by_clock(&mut self) {
        if let Some(ttl) = &mut self.ttl {
            let state = &mut self.state;
            ttl.tick(|key| {
                state.remove(&key);
            });
        }
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
        if let Some(ttl) = &mut self.ttl {
            ttl.write_now(&key, A::event_time(record));
        }
        self.dirty.insert(key, ());
        if self.dirty.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
    /// Pending changes go out first, then expired keys are dropped (silently).
    fn watermark(&mut self, watermark: i64) {
        self.flush();
        if let Some(ttl) = &mut self.ttl {
            let state = &mut self.state;
            ttl.on_watermark(watermark, |key| {
                state.remove(&key);
            });
        }
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
    }
    crate::ops::change::flushed_at_barrier_tick_and_finish!();
}

impl<A: WindowAggregate, N> Snapshot for GroupAggregateOp<A, N> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    // The accumulators, then with a TTL each key's last write.
    snapshot_fields!(state; if_set ttl);
}
