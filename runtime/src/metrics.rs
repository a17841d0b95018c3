//! Per-operator counters and the run summary printed on stderr at the end of a run.
//!
//! Counters are plain integers owned by each operator instance (no atomics on the hot path);
//! an instance reports them once, when it finishes, to the run's [`Metrics`] registry.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::overflow::Fault;

/// Counters of one operator instance.
#[derive(Clone, Debug, Default)]
pub struct OpStats {
    pub records_in: u64,
    pub records_out: u64,
    /// Records dropped because they arrived after the watermark had passed their window.
    pub late: u64,
    /// Event-time lag: the largest gap seen between the newest record's timestamp and the
    /// operator's watermark, in ms (how far event time trails the data; grows with
    /// out-of-orderness bounds and slow or idle inputs).
    pub watermark_lag_ms: i64,
}

/// What an operator instance needs to report its counters: its name and the registry.
#[derive(Clone)]
pub struct OpMetrics {
    name: &'static str,
    registry: Metrics,
}

impl OpMetrics {
    pub fn report(&self, stats: &OpStats) {
        self.registry.add_op(self.name, stats);
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// A record rejected, or an aggregate made null, by an arithmetic fault
    /// ([`crate::overflow`]).
    pub fn add_fault(&self, fault: Fault) {
        self.registry.inner.faults[fault.index()].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Inner {
    /// Operator name -> summed counters over its instances, in plan order.
    ops: Mutex<Vec<(&'static str, OpStats, u32)>>,
    dead_letters: AtomicU64,
    /// Records rejected and aggregates made null, per arithmetic fault (by [`Fault::index`]).
    faults: [AtomicU64; Fault::ALL.len()],
    source_records: AtomicU64,
    /// Generator events walked per Nexmark source (summed over its splits).
    generator_events: Mutex<BTreeMap<&'static str, u64>>,
    /// Sink name -> (rows, checksum) for checksum sinks.
    checksums: Mutex<BTreeMap<&'static str, (u64, u64)>>,
    /// When the first and the last message of Kafka sources arrived (over every instance).
    message_span: Mutex<Option<(Instant, Instant)>>,
}

/// The registry of one run: cheap to clone, shared by all tasks.
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an operator so the summary lists operators in plan order, and returns the
    /// handle its instances report through.
    pub fn op(&self, name: &'static str) -> OpMetrics {
        let mut ops = self.inner.ops.lock().unwrap_or_else(|e| e.into_inner());
        if !ops.iter().any(|(n, _, _)| *n == name) {
            ops.push((name, OpStats::default(), 0));
        }
        OpMetrics {
            name,
            registry: self.clone(),
        }
    }

    fn add_op(&self, name: &'static str, stats: &OpStats) {
        let mut ops = self.inner.ops.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = ops.iter_mut().find(|(n, _, _)| *n == name) {
            entry.1.records_in += stats.records_in;
            entry.1.records_out += stats.records_out;
            entry.1.late += stats.late;
            entry.1.watermark_lag_ms = entry.1.watermark_lag_ms.max(stats.watermark_lag_ms);
            entry.2 += 1;
        }
    }

    pub fn add_dead_letter(&self) {
        self.inner.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dead_letters(&self) -> u64 {
        self.inner.dead_letters.load(Ordering::Relaxed)
    }

    /// Records sent to the dead letters plus aggregates made null by `fault`.
    pub fn faults(&self, fault: Fault) -> u64 {
        self.inner.faults[fault.index()].load(Ordering::Relaxed)
    }

    pub fn add_source_records(&self, n: u64) {
        self.inner.source_records.fetch_add(n, Ordering::Relaxed);
    }

    /// Events read: input lines plus generator events. Several Nexmark sources walk the same
    /// event stream (each keeping its own kind), so it counts once: the largest of them.
    pub fn source_records(&self) -> u64 {
        let generated = self
            .inner
            .generator_events
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.inner.source_records.load(Ordering::Relaxed)
            + generated.values().copied().max().unwrap_or(0)
    }

    /// Generator events walked by one split of Nexmark source `source`.
    pub fn add_generator_events(&self, source: &'static str, n: u64) {
        let mut generated = self
            .inner
            .generator_events
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *generated.entry(source).or_insert(0) += n;
    }

    /// A Kafka source instance received its first message at `first` and its last at `last`.
    pub fn add_message_span(&self, first: Instant, last: Instant) {
        let mut span = self
            .inner
            .message_span
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *span = Some(match *span {
            Some((f, l)) => (f.min(first), l.max(last)),
            None => (first, last),
        });
    }

    /// From the first message Kafka sources received to the last (none: no message).
    pub fn message_span(&self) -> Option<Duration> {
        let span = self
            .inner
            .message_span
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        span.map(|(first, last)| last.duration_since(first))
    }

    pub fn add_checksum(&self, sink: &'static str, rows: u64, checksum: u64) {
        let mut sums = self
            .inner
            .checksums
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = sums.entry(sink).or_insert((0, 0));
        entry.0 += rows;
        entry.1 = entry.1.wrapping_add(checksum);
    }

    /// Checksum sinks' results: (sink name, rows, checksum).
    pub fn checksums(&self) -> Vec<(&'static str, u64, u64)> {
        let sums = self
            .inner
            .checksums
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        sums.iter()
            .map(|(name, (rows, sum))| (*name, *rows, *sum))
            .collect()
    }

    /// Summed counters per operator, in plan order.
    pub fn ops(&self) -> Vec<(&'static str, OpStats)> {
        let ops = self.inner.ops.lock().unwrap_or_else(|e| e.into_inner());
        ops.iter().map(|(n, s, _)| (*n, s.clone())).collect()
    }

    /// The summary printed on stderr when a run ends.
    pub fn summary(&self, started: Instant, elapsed: Duration) -> String {
        let _ = started;
        let mut out = String::new();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let events = self.source_records();
        out.push_str("weir: run summary\n");
        out.push_str(&format!(
            "  {:<44} {:>14} {:>14} {:>10} {:>10}\n",
            "operator", "records in", "records out", "late", "wm lag ms"
        ));
        for (name, stats) in self.ops() {
            let lag = if stats.watermark_lag_ms > 0 {
                stats.watermark_lag_ms.to_string()
            } else {
                "-".into()
            };
            out.push_str(&format!(
                "  {:<44} {:>14} {:>14} {:>10} {:>10}\n",
                name, stats.records_in, stats.records_out, stats.late, lag
            ));
        }
        out.push_str(&format!("  dead letters: {}\n", self.dead_letters()));
        for fault in Fault::ALL {
            let n = self.faults(fault);
            if n > 0 {
                out.push_str(&format!(
                    "  {}: {n} (records sent to the dead letters, aggregates made null)\n",
                    fault.summary_label()
                ));
            }
        }
        out.push_str(&format!("  elapsed: {:.3} s\n", secs));
        // Joining a group and the idle wait that ends a bounded run are in `elapsed`; reading
        // is this.
        if let Some(span) = self.message_span() {
            out.push_str(&format!(
                "  kafka messages: first to last in {:.3} s\n",
                span.as_secs_f64()
            ));
        }
        if let Some(kib) = peak_memory_kib() {
            out.push_str(&format!("  peak memory: {:.1} MiB\n", kib as f64 / 1024.0));
        }
        out.push_str(&format!(
            "  events: {}  throughput: {:.0} events/s\n",
            events,
            events as f64 / secs
        ));
        out
    }
}

/// The process's peak resident memory in KiB (Linux: `VmHWM` in `/proc/self/status`).
pub fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
