//! Keyed aggregation over tumbling event-time windows.
//!
//! Windows are `[start, start + size)`, aligned to the epoch. A record is added to its window's
//! accumulator for its key as it arrives (incremental aggregation; records are never buffered).
//! When the watermark reaches a window's end the window fires: one output row per key, keys in
//! ascending order, windows in ascending order, and its state is dropped. A record whose window
//! has already fired is late: it is counted and dropped.

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::collector::Collector;
use crate::functions::floor_to;
use crate::hash::FastMap;
use crate::metrics::{OpMetrics, OpStats};

/// The per-query part of a windowed aggregation, generated for each `aggregate` step.
pub trait WindowAggregate {
    type In;
    type Key: Hash + Eq + Ord + Clone;
    type Acc;
    type Out;
    /// The grouping key of a record (`()` for a global aggregate).
    fn key(record: &Self::In) -> Self::Key;
    /// The record's event time in ms.
    fn event_time(record: &Self::In) -> i64;
    fn new_acc() -> Self::Acc;
    fn add(acc: &mut Self::Acc, record: &Self::In);
    fn output(key: &Self::Key, window_start: i64, window_end: i64, acc: &Self::Acc) -> Self::Out;
}

pub struct TumbleAggregate<A: WindowAggregate, N> {
    size_ms: i64,
    /// Window start -> key -> accumulator. Ordered by window so firing walks a prefix.
    windows: BTreeMap<i64, FastMap<A::Key, A::Acc>>,
    watermark: i64,
    next: N,
    stats: OpStats,
    metrics: OpMetrics,
}

impl<A: WindowAggregate, N: Collector<A::Out>> TumbleAggregate<A, N> {
    pub fn new(metrics: OpMetrics, size_ms: i64, next: N) -> Self {
        TumbleAggregate {
            size_ms: size_ms.max(1),
            windows: BTreeMap::new(),
            watermark: i64::MIN,
            next,
            stats: OpStats::default(),
            metrics,
        }
    }

    fn fire_until(&mut self, watermark: i64) {
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            let end = start.saturating_add(self.size_ms);
            if end > watermark {
                break;
            }
            let groups = entry.remove();
            let mut rows: Vec<(A::Key, A::Acc)> = groups.into_iter().collect();
            rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (key, acc) in &rows {
                let out = A::output(key, start, end, acc);
                self.stats.records_out += 1;
                self.next.push(&out);
            }
        }
    }
}

impl<A: WindowAggregate, N: Collector<A::Out>> Collector<A::In> for TumbleAggregate<A, N> {
    #[inline]
    fn push(&mut self, record: &A::In) {
        self.stats.records_in += 1;
        let ts = A::event_time(record);
        let start = floor_to(ts, self.size_ms);
        if start.saturating_add(self.size_ms) <= self.watermark {
            self.stats.late += 1;
            return;
        }
        let groups = self.windows.entry(start).or_default();
        let key = A::key(record);
        let acc = groups.entry(key).or_insert_with(A::new_acc);
        A::add(acc, record);
    }

    fn watermark(&mut self, watermark: i64) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        self.fire_until(watermark);
        self.next.watermark(watermark);
    }

    fn finish(&mut self) {
        self.fire_until(i64::MAX);
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Counts records per key and window; input is (key, timestamp).
    struct CountPerKey;

    impl WindowAggregate for CountPerKey {
        type In = (i64, i64);
        type Key = i64;
        type Acc = i64;
        type Out = (i64, i64, i64, i64);
        fn key(r: &(i64, i64)) -> i64 {
            r.0
        }
        fn event_time(r: &(i64, i64)) -> i64 {
            r.1
        }
        fn new_acc() -> i64 {
            0
        }
        fn add(acc: &mut i64, _r: &(i64, i64)) {
            *acc += 1;
        }
        fn output(key: &i64, start: i64, end: i64, acc: &i64) -> (i64, i64, i64, i64) {
            (*key, start, end, *acc)
        }
    }

    #[derive(Clone, Default)]
    struct Sink(Rc<RefCell<Vec<String>>>);

    impl Collector<(i64, i64, i64, i64)> for Sink {
        fn push(&mut self, r: &(i64, i64, i64, i64)) {
            self.0.borrow_mut().push(format!("row {:?}", r));
        }
        fn watermark(&mut self, wm: i64) {
            self.0.borrow_mut().push(format!("wm {wm}"));
        }
        fn finish(&mut self) {
            self.0.borrow_mut().push("end".into());
        }
    }

    #[test]
    fn windows_fire_in_order_when_the_watermark_passes_their_end() {
        let sink = Sink::default();
        let metrics = Metrics::new();
        let mut op = TumbleAggregate::<CountPerKey, _>::new(metrics.op("t"), 10, sink.clone());
        for r in [(2, 1), (1, 3), (2, 12), (1, 9), (1, 10), (3, -1)] {
            op.push(&r);
        }
        op.watermark(9); // [-10, 0) ends at 0 <= 9: it fires before the watermark goes on
        op.watermark(10); // [0, 10) fires, keys in order
        op.push(&(1, 5)); // late: its window has fired
        op.push(&(1, 15));
        op.finish();
        let out = sink.0.borrow().clone();
        assert_eq!(
            out,
            vec![
                "row (3, -10, 0, 1)",
                "wm 9",
                "row (1, 0, 10, 2)",
                "row (2, 0, 10, 1)",
                "wm 10",
                "row (1, 10, 20, 2)",
                "row (2, 10, 20, 1)",
                "end",
            ]
        );
        let stats = metrics.ops();
        assert_eq!(stats[0].1.late, 1);
        assert_eq!(stats[0].1.records_in, 8);
        assert_eq!(stats[0].1.records_out, 5);
    }
}
