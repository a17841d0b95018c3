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
