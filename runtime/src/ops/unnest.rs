//! [`Unnest`]: any number of output records per input record (`unnest items as item`: one per
//! element of an array). The generated function calls `emit` once per output.

use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};

/// `O` is the output record type (the function's `emit` takes it).
pub struct Unnest<F, N, O> {
    function: F,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    output: std::marker::PhantomData<fn(&O)>,
}

impl<F, N, O> Unnest<F, N, O> {
    pub fn new(metrics: OpMetrics, function: F, next: N) -> Self {
        Unnest {
            function,
            next,
            stats: metrics.counters(),
            metrics,
            output: std::marker::PhantomData,
        }
    }
}

impl<I, O, F: FnMut(&I, &mut dyn FnMut(&O)), N: Collector<O>> Collector<I> for Unnest<F, N, O> {
    #[inline]
    fn push(&mut self, record: &I) {
        self.stats.records_in += 1;
        let Unnest {
            function,
            next,
            stats,
            ..
        } = self;
        function(record, &mut |out: &O| {
            stats.records_out += 1;
            next.push(out);
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::Collector;

    struct Keep(Vec<i64>);
    impl Collector<i64> for Keep {
        fn push(&mut self, r: &i64) {
            self.0.push(*r);
        }
        fn watermark(&mut self, _: i64) {}
        fn barrier(&mut self, _: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }

    #[test]
    fn emits_each_output_in_order() {
        let mut op = Unnest::new(
            crate::metrics::Metrics::new().op("unnest"),
            |r: &Vec<i64>, emit: &mut dyn FnMut(&i64)| r.iter().for_each(&mut *emit),
            Keep(Vec::new()),
        );
        op.push(&vec![1, 2, 3]);
        op.push(&vec![]);
        op.push(&vec![4]);
        assert_eq!(op.next.0, vec![1, 2, 3, 4]);
    }
}
