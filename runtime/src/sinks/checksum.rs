//! The benchmark sink: hashes every field of every row (see [`crate::checksum`]).

use crate::checkpoint::{snapshot, snapshot_fields, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::metrics::{Metrics, OpCounters, OpMetrics};

pub struct Checksum<H> {
    sink: &'static str,
    hash: H,
    rows: u64,
    sum: u64,
    registry: Metrics,
    stats: OpCounters,
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
            stats: metrics.counters(),
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

    // The live count follows at every watermark and tick, not per row: this sink's loop is
    // the cheapest of all, and an extra store per row showed in a pass-through's throughput.
    fn watermark(&mut self, _watermark: i64) {
        self.stats.records_in.set(self.rows);
    }
    fn tick(&mut self) {
        self.stats.records_in.set(self.rows);
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.stats.records_in.set(self.rows);
        snapshot(self, &self.slot, checkpoint);
    }

    fn finish(&mut self) {
        self.registry.add_checksum(self.sink, self.rows, self.sum);
        // Restored rows count too: the summary reports the sink's whole table.
        self.stats.records_in.set(self.rows);
        self.stats.records_out.set(self.rows);
        self.metrics.report(&self.stats);
    }
}
