//! An exchange that turns out, at run time, to connect one producer instance to one consumer
//! instance: the consumer's chain then runs in the producer's task, called directly, instead
//! of in a task of its own behind a channel.
//!
//! How many instances a source has is only known when the pipeline starts (`--parallelism`,
//! the number of file readers), so the compiler cannot fuse such an edge. With one reader, a
//! file read into a single-instance sink would otherwise cross a channel record by record:
//! every record cloned into a batch, its strings allocated on one thread and freed on the
//! other, and a second thread waking for each batch. Measured on a 516 MB JSON-lines
//! pass-through (2 M bids), the direct call takes 54 % less CPU time on a quiet machine and
//! 22 % less on a loaded one, and a quarter less wall time (docs/performance.md, "One reader
//! into one sink").
//!
//! The compiler marks the edges that may run this way (a consumer with one input, one
//! instance, and no channel of its own downstream); the generated code picks [`Route::Here`]
//! when the producer has one instance and [`Route::Channel`] (an
//! [`Exchange`](crate::channel::Exchange)) otherwise. [`Inline`] does for its single upstream
//! what the channel's input loop does: event time only moves forward, a barrier passes once,
//! and the end of input brings the final watermark.

use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};

/// Either the exchange to the consumer's task, or the consumer's chain itself.
pub enum Route<E, C> {
    Channel(E),
    Here(Inline<C>),
}

impl<T, E: Collector<T>, C: Collector<T>> Collector<T> for Route<E, C> {
    #[inline]
    fn push(&mut self, record: &T) {
        match self {
            Route::Channel(e) => e.push(record),
            Route::Here(c) => c.push(record),
        }
    }
    fn watermark(&mut self, watermark: i64) {
        match self {
            Route::Channel(e) => e.watermark(watermark),
            Route::Here(c) => c.watermark(watermark),
        }
    }
    fn barrier(&mut self, checkpoint: u64) {
        match self {
            Route::Channel(e) => e.barrier(checkpoint),
            Route::Here(c) => c.barrier(checkpoint),
        }
    }
    fn tick(&mut self) {
        match self {
            Route::Channel(e) => e.tick(),
            Route::Here(c) => c.tick(),
        }
    }
    fn finish(&mut self) {
        match self {
            Route::Channel(e) => e.finish(),
            Route::Here(c) => c.finish(),
        }
    }
}

/// A consumer's chain run by its only producer. Counts what crosses, under the edge's name in
/// the run summary, as the exchange would.
pub struct Inline<C> {
    chain: C,
    /// The watermark last passed on.
    current: i64,
    last_barrier: u64,
    stats: OpCounters,
    metrics: OpMetrics,
}

impl<C> Inline<C> {
    pub fn new(metrics: OpMetrics, chain: C) -> Self {
        Inline {
            chain,
            current: i64::MIN,
            last_barrier: 0,
            stats: metrics.counters(),
            metrics,
        }
    }
}

impl<T, C: Collector<T>> Collector<T> for Inline<C> {
    #[inline]
    fn push(&mut self, record: &T) {
        self.stats.records_in += 1;
        self.chain.push(record);
    }
    /// Event time only moves forward; the end of time only with the end of input (a stopped
    /// run's sources end without it).
    fn watermark(&mut self, watermark: i64) {
        if watermark > self.current && !(watermark == i64::MAX && crate::stop::stopped_early()) {
            self.current = watermark;
            self.chain.watermark(watermark);
        }
    }
    fn barrier(&mut self, checkpoint: u64) {
        if checkpoint > self.last_barrier {
            self.last_barrier = checkpoint;
            self.chain.barrier(checkpoint);
        }
    }
    fn tick(&mut self) {
        self.chain.tick();
    }
    fn finish(&mut self) {
        if self.current < i64::MAX && !crate::stop::stopped_early() {
            self.chain.watermark(i64::MAX);
        }
        self.chain.finish();
        let records = self.stats.records_in.get();
        self.stats.records_out.set(records);
        self.metrics.report(&self.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    #[derive(Default)]
    struct Log(Vec<String>);
    impl Collector<i64> for Log {
        fn push(&mut self, r: &i64) {
            self.0.push(format!("{r}"));
        }
        fn watermark(&mut self, w: i64) {
            self.0.push(format!("wm {w}"));
        }
        fn barrier(&mut self, c: u64) {
            self.0.push(format!("barrier {c}"));
        }
        fn tick(&mut self) {
            self.0.push("tick".into());
        }
        fn finish(&mut self) {
            self.0.push("end".into());
        }
    }

    /// What the channel's input loop would pass on from a single upstream.
    #[test]
    fn one_upstream_as_the_input_loop_sees_it() {
        let metrics = Metrics::new();
        let mut route: Route<Log, Log> =
            Route::Here(Inline::new(metrics.op("exchange"), Log::default()));
        route.push(&1);
        route.watermark(5);
        route.watermark(3);
        route.barrier(1);
        route.barrier(1);
        route.push(&2);
        route.tick();
        route.finish();
        let Route::Here(inline) = route else {
            unreachable!()
        };
        assert_eq!(
            inline.chain.0.join(", "),
            "1, wm 5, barrier 1, 2, tick, wm 9223372036854775807, end"
        );
        assert_eq!(inline.stats.records_out, 2);
    }
}
