//! Keeps the records a predicate accepts; passes the same reference on (no copy).

use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};

pub struct Filter<F, N> {
    predicate: F,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
}

impl<F, N> Filter<F, N> {
    pub fn new(metrics: OpMetrics, predicate: F, next: N) -> Self {
        Filter {
            predicate,
            next,
            stats: metrics.counters(),
            metrics,
        }
    }
}

impl<T, F: FnMut(&T) -> bool, N: Collector<T>> Collector<T> for Filter<F, N> {
    #[inline]
    fn push(&mut self, record: &T) {
        self.stats.records_in += 1;
        if (self.predicate)(record) {
            self.stats.records_out += 1;
            self.next.push(record);
        }
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
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}
