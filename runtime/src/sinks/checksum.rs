//! The benchmark sink: hashes every field of every row (see [`crate::checksum`]).

use crate::checkpoint::{snapshot, snapshot_fields, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::metrics::{Metrics, OpMetrics, OpStats};

pub struct Checksum<H> {
    sink: &'static str,
    hash: H,
    rows: u64,
    sum: u64,
    registry: Metrics,
    stats: OpStats,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<H> Checksum<H> {
    pub fn new(metrics: OpMetrics, registry: Metrics, sink: &'static str, hash: H) -> Self {
        Checksum {
            sink,
            hash,
            rows: 0,
            sum: 0,
            registry,
            stats: OpStats::default(),
            metrics,
            slot: StateSlot::inert(),
        }
    }
}

impl<H> Snapshot for Checksum<H> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    snapshot_fields!(rows, sum);
}

impl<T, H: FnMut(&T) -> u64> Collector<T> for Checksum<H> {
    #[inline]
    fn push(&mut self, record: &T) {
        self.rows += 1;
        self.sum = self.sum.wrapping_add((self.hash)(record));
    }

    fn watermark(&mut self, _watermark: i64) {}
    fn tick(&mut self) {}

    fn barrier(&mut self, checkpoint: u64) {
        snapshot(self, &self.slot, checkpoint);
    }

    fn finish(&mut self) {
        self.registry.add_checksum(self.sink, self.rows, self.sum);
        self.stats.records_in = self.rows;
        self.stats.records_out = self.rows;
        self.metrics.report(&self.stats);
    }
}
