//! Stateless record-to-record steps: [`Map`] (one output per input) and [`FilterMap`] (at most
//! one output per input: a fused chain of filters and projections compiles to one of these).

use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};

pub struct Map<F, N> {
    function: F,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
}

impl<F, N> Map<F, N> {
    pub fn new(metrics: OpMetrics, function: F, next: N) -> Self {
        Map {
            function,
            next,
            stats: metrics.counters(),
            metrics,
        }
    }
}

impl<I, O, F: FnMut(&I) -> O, N: Collector<O>> Collector<I> for Map<F, N> {
    #[inline]
    fn push(&mut self, record: &I) {
        self.stats.records_in += 1;
        let out = (self.function)(record);
        self.stats.records_out += 1;
        self.next.push(&out);
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

pub struct FilterMap<F, N> {
    function: F,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
}

impl<F, N> FilterMap<F, N> {
    pub fn new(metrics: OpMetrics, function: F, next: N) -> Self {
        FilterMap {
            function,
            next,
            stats: metrics.counters(),
            metrics,
        }
    }
}

impl<I, O, F: FnMut(&I) -> Option<O>, N: Collector<O>> Collector<I> for FilterMap<F, N> {
    #[inline]
    fn push(&mut self, record: &I) {
        self.stats.records_in += 1;
        if let Some(out) = (self.function)(record) {
            self.stats.records_out += 1;
            self.next.push(&out);
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
