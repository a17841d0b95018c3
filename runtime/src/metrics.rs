//! Per-operator counters, the live view of them ([`Metrics::ops`], read by the HTTP
//! endpoint while a run goes on) and the run summary printed on stderr at the end of a run.
//!
//! Each operator instance owns its [`OpCounters`]: cells only it writes, with a relaxed load
//! and store (no locked instruction: on x86 and ARM the same code as a plain integer in
//! memory), which any thread may read at any time with a relaxed load. The registry keeps a
//! reader of every instance's cells; nothing on the data path takes a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::collector::Collector;
use crate::overflow::Fault;

/// A count that one thread (its owner) raises and any thread reads. Not `Clone`: a second
/// writer would lose updates.
#[derive(Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the count (an operator that knows its total only at the end).
    #[inline]
    pub fn set(&mut self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    fn reader(&self) -> Arc<AtomicU64> {
        self.0.clone()
    }
}

impl std::ops::AddAssign<u64> for Counter {
    #[inline(always)]
    fn add_assign(&mut self, n: u64) {
        // Only the owner writes: a load and a store, not a read-modify-write.
        let cell = &*self.0;
        cell.store(
            cell.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
}

impl PartialEq<u64> for Counter {
    fn eq(&self, other: &u64) -> bool {
        self.get() == *other
    }
}

/// The largest value seen, raised by its owner, read by anyone.
#[derive(Debug, Default)]
pub struct MaxGauge(Arc<AtomicI64>);

impl MaxGauge {
    #[inline]
    pub fn raise(&mut self, value: i64) {
        let cell = &*self.0;
        if value > cell.load(Ordering::Relaxed) {
            cell.store(value, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The live counters of one operator instance (see the module's comment).
#[derive(Debug, Default)]
pub struct OpCounters {
    pub records_in: Counter,
    pub records_out: Counter,
    /// Records dropped because they arrived after the watermark had passed their window.
    pub late: Counter,
    /// See [`OpStats::watermark_lag_ms`].
    pub watermark_lag_ms: MaxGauge,
    /// Exchanges: nanoseconds spent waiting for room in a full channel (backpressure).
    pub blocked_ns: Counter,
    /// Stateful operators: keys and approximate bytes of their state.
    pub state: StateGauge,
}

/// Not published yet (an operator without state, or one that has not said).
const UNKNOWN: u64 = u64::MAX;

/// How often at most a stateful operator measures its state for the live view.
pub const STATE_EVERY: Duration = Duration::from_secs(1);

/// The size of a stateful operator instance's state (keys, approximate bytes), measured by
/// the operator on its own thread at watermarks and ticks, at most every [`STATE_EVERY`]
/// ([`StateGauge::due`]), and read by anyone with relaxed loads.
#[derive(Debug)]
pub struct StateGauge {
    keys: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    last: Option<Instant>,
}

impl Default for StateGauge {
    fn default() -> Self {
        StateGauge {
            keys: Arc::new(AtomicU64::new(UNKNOWN)),
            bytes: Arc::new(AtomicU64::new(UNKNOWN)),
            last: None,
        }
    }
}

impl StateGauge {
    /// Whether it is time to measure again (`force`: the end of input or a barrier: always).
    #[inline]
    pub fn due(&mut self, force: bool) -> bool {
        let now = Instant::now();
        if force
            || self
                .last
                .is_none_or(|at| now.duration_since(at) >= STATE_EVERY)
        {
            self.last = Some(now);
            return true;
        }
        false
    }

    /// Publishes the state's size: `keys` entries taking about `bytes`.
    pub fn set(&mut self, keys: usize, bytes: usize) {
        self.keys.store(keys as u64, Ordering::Relaxed);
        self.bytes.store(bytes as u64, Ordering::Relaxed);
    }
}

/// Approximate bytes of a hash table: its slots (capacity, each an entry and a control
/// byte), not what keys and values own on the heap.
pub fn table_bytes<K, V, S>(map: &std::collections::HashMap<K, V, S>) -> usize {
    map.capacity() * (std::mem::size_of::<(K, V)>() + 1)
}

/// How many entries [`sampled_total`] reads.
const SAMPLE: usize = 256;

/// An estimate of the sum of `f` over the `len` entries of `entries`, from the first
/// [`SAMPLE`] of them (exact when there are no more): a hash table's order is as good as a
/// random one, and the measurement stays O(1) however much state there is.
pub fn sampled_total<T>(
    entries: impl Iterator<Item = T>,
    len: usize,
    f: impl Fn(T) -> usize,
) -> usize {
    let (mut seen, mut total) = (0usize, 0usize);
    for entry in entries.take(SAMPLE) {
        seen += 1;
        total += f(entry);
    }
    match seen {
        0 => 0,
        _ if seen == len => total,
        _ => total / seen * len + total % seen * len / seen,
    }
}

/// Approximate bytes of `n` entries of type `T` held in a B-tree or a vector.
pub fn entries_bytes<T>(n: usize) -> usize {
    n * std::mem::size_of::<T>()
}

/// What the registry reads of one instance's [`OpCounters`].
struct InstanceReader {
    records_in: Arc<AtomicU64>,
    records_out: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
    watermark_lag_ms: Arc<AtomicI64>,
    blocked_ns: Arc<AtomicU64>,
    state_keys: Arc<AtomicU64>,
    state_bytes: Arc<AtomicU64>,
}

/// One registered operator: its instances' counters, and how many instances have finished.
struct OpEntry {
    name: &'static str,
    instances: Vec<InstanceReader>,
    finished: u32,
    /// An exchange: the message counts of the channels it sends into, and their capacity.
    queues: Vec<Arc<AtomicI64>>,
    queue_capacity: usize,
}

/// Counters of one operator, summed over its instances (the watermark lag: the largest).
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
    /// Exchanges: time producers spent blocked on a full channel, in ns.
    pub blocked_ns: u64,
    /// Exchanges: messages (batches, watermarks, ...) now in the channels it sends into, and
    /// how many those channels hold in all.
    pub queued: u64,
    pub queue_capacity: u64,
    /// Stateful operators: keys held and approximate bytes of state, over the instances
    /// that have measured theirs (none: none has, or the operator keeps no state).
    pub state_keys: Option<u64>,
    pub state_bytes: Option<u64>,
    /// Instances started, and finished.
    pub instances: u32,
    pub finished: u32,
}

/// What an operator instance needs to report its counters: its name and the registry.
#[derive(Clone)]
pub struct OpMetrics {
    name: &'static str,
    registry: Metrics,
}

impl OpMetrics {
    /// The counters of a new instance of this operator, registered for the live view.
    pub fn counters(&self) -> OpCounters {
        let counters = OpCounters::default();
        let mut ops = self.registry.lock_ops();
        if let Some(entry) = ops.iter_mut().find(|e| e.name == self.name) {
            entry.instances.push(InstanceReader {
                records_in: counters.records_in.reader(),
                records_out: counters.records_out.reader(),
                late: counters.late.reader(),
                watermark_lag_ms: counters.watermark_lag_ms.0.clone(),
                blocked_ns: counters.blocked_ns.reader(),
                state_keys: counters.state.keys.clone(),
                state_bytes: counters.state.bytes.clone(),
            });
        }
        counters
    }

    /// An exchange's destination channels (`queued`: each one's message count, raised by
    /// senders, lowered by the receiver), each holding `capacity` messages; every upstream
    /// instance of the exchange names the same channels, which count once.
    pub fn add_queues(&self, queued: impl Iterator<Item = Arc<AtomicI64>>, capacity: usize) {
        let mut ops = self.registry.lock_ops();
        if let Some(entry) = ops.iter_mut().find(|e| e.name == self.name) {
            for q in queued {
                if !entry.queues.iter().any(|known| Arc::ptr_eq(known, &q)) {
                    entry.queues.push(q);
                }
            }
            entry.queue_capacity = capacity;
        }
    }

    /// The instance owning `counters` has finished (its counters are final).
    pub fn report(&self, counters: &OpCounters) {
        let _ = counters;
        let mut ops = self.registry.lock_ops();
        if let Some(entry) = ops.iter_mut().find(|e| e.name == self.name) {
            entry.finished += 1;
        }
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
    /// Registered operators, in plan order.
    ops: Mutex<Vec<OpEntry>>,
    /// The plan, as the generated code describes it ([`Metrics::set_plan`]).
    plan: std::sync::OnceLock<&'static crate::plan::Plan>,
    /// Sources by name, in the order they started.
    sources: Mutex<Vec<SourceEntry>>,
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
    /// Per file source instance: the bytes of its range and those it has read so far
    /// (published at ticks, see [`InputCursor`]).
    input_files: Mutex<Vec<(u64, Arc<AtomicU64>)>>,
    /// The last few dead letters, newest last (see [`Metrics::recent_dead_letters`]).
    recent_dead_letters: Mutex<std::collections::VecDeque<RecentDeadLetter>>,
    /// Per Kafka source instance: the partitions it reads, as it last published them.
    kafka_partitions: Mutex<Vec<Arc<Mutex<Vec<KafkaPartition>>>>>,
}

/// One Kafka partition a source instance reads, as the instance last published it (about
/// every second, from its own thread: see [`KafkaReport`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaPartition {
    /// The source's name in the pipeline.
    pub source: String,
    pub topic: String,
    pub partition: i32,
    /// The next offset the source reads (one past the last message it consumed); none:
    /// nothing read from the partition yet by this run (and no start position known).
    pub consumed: Option<i64>,
    /// The last offset the source committed to its group; none: none committed yet.
    pub committed: Option<i64>,
    /// The partition's high watermark (the offset its next message will get) as librdkafka
    /// last heard it from its fetches; none: not heard yet.
    pub high_watermark: Option<i64>,
}

impl KafkaPartition {
    /// Consumer lag in messages: the high watermark minus the next offset to read (none
    /// until both are known).
    pub fn lag(&self) -> Option<u64> {
        let (high, consumed) = (self.high_watermark?, self.consumed?);
        Some(high.saturating_sub(consumed).max(0) as u64)
    }
}

/// Where one Kafka source instance publishes its partitions (see [`Metrics::kafka_report`]).
pub struct KafkaReport(Arc<Mutex<Vec<KafkaPartition>>>);

impl KafkaReport {
    /// Replaces what the instance said before: `partitions` are those it reads now.
    pub fn publish(&self, partitions: Vec<KafkaPartition>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = partitions;
    }
}

/// How many dead letters the live view keeps.
pub const RECENT_DEAD_LETTERS: usize = 16;

/// At most this many bytes of a dead letter's record are kept for the live view.
const RECENT_DEAD_LETTER_BYTES: usize = 512;

/// One dead letter as the live view shows it (`/api/pipeline`, the web UI).
#[derive(Clone, Debug, PartialEq)]
pub struct RecentDeadLetter {
    /// The source that read it, or the operator that rejected it.
    pub from: String,
    /// Its line in the source's input (none: an operator rejected it).
    pub line: Option<u64>,
    pub reason: String,
    /// The input line or the record, cut at [`RECENT_DEAD_LETTER_BYTES`] bytes (at a
    /// character boundary).
    pub record: String,
    /// Wall-clock time it was written, in ms since the epoch.
    pub at_ms: i64,
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
        let mut ops = self.lock_ops();
        if !ops.iter().any(|e| e.name == name) {
            ops.push(OpEntry {
                name,
                instances: Vec::new(),
                finished: 0,
                queues: Vec::new(),
                queue_capacity: 0,
            });
        }
        OpMetrics {
            name,
            registry: self.clone(),
        }
    }

    /// The plan of the pipeline (operators, edges, parallelism, streams), for the HTTP
    /// endpoint's `/api/pipeline`. The first one set stays.
    pub fn set_plan(&self, plan: &'static crate::plan::Plan) {
        let _ = self.inner.plan.set(plan);
    }

    pub fn plan(&self) -> Option<&'static crate::plan::Plan> {
        self.inner.plan.get().copied()
    }

    fn lock_ops(&self) -> std::sync::MutexGuard<'_, Vec<OpEntry>> {
        self.inner.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wraps the chain of one instance of source `name`: it counts the records the source
    /// pushes and keeps the last watermark it sent, for the live view.
    pub fn source<C>(&self, name: &str, chain: C) -> SourceMeter<C> {
        let records = Counter::default();
        let watermark = Arc::new(AtomicI64::new(i64::MIN));
        let mut sources = self.inner.sources.lock().unwrap_or_else(|e| e.into_inner());
        let reader = (records.reader(), watermark.clone());
        match sources.iter_mut().find(|s| s.name == name) {
            Some(entry) => entry.instances.push(reader),
            None => sources.push(SourceEntry {
                name: name.to_string(),
                instances: vec![reader],
            }),
        }
        SourceMeter {
            pushed: 0,
            records,
            watermark,
            chain,
        }
    }

    /// Every source that has started: records pushed so far (over its instances) and its
    /// watermark (the least over its instances; none until every instance has sent one).
    pub fn sources(&self) -> Vec<SourceStats> {
        let sources = self.inner.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources
            .iter()
            .map(|s| {
                let watermarks = s.instances.iter().map(|(_, w)| w.load(Ordering::Relaxed));
                let least = watermarks.min().unwrap_or(i64::MIN);
                SourceStats {
                    name: s.name.clone(),
                    records: s
                        .instances
                        .iter()
                        .map(|(r, _)| r.load(Ordering::Relaxed))
                        .sum(),
                    watermark_ms: (least != i64::MIN).then_some(least),
                    instances: s.instances.len() as u32,
                }
            })
            .collect()
    }

    /// Registers a Kafka source instance, which publishes the partitions it reads through the
    /// returned report (from its own thread, about every second: never per message).
    pub fn kafka_report(&self) -> KafkaReport {
        let cell = Arc::new(Mutex::new(Vec::new()));
        self.inner
            .kafka_partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cell.clone());
        KafkaReport(cell)
    }

    /// Every Kafka partition the run's sources read, by source, topic and partition.
    pub fn kafka_partitions(&self) -> Vec<KafkaPartition> {
        let reports = self
            .inner
            .kafka_partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<KafkaPartition> = reports
            .iter()
            .flat_map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        all.sort_by(|a, b| {
            (&a.source, &a.topic, a.partition).cmp(&(&b.source, &b.topic, b.partition))
        });
        all
    }

    /// Total consumer lag of source `name`'s partitions, or of every Kafka source's (none: no
    /// partition with a known lag).
    pub fn kafka_lag(&self, name: Option<&str>) -> Option<u64> {
        let all = self.kafka_partitions();
        let of_source = all.iter().filter(|p| name.is_none_or(|n| p.source == n));
        let mut lags = of_source.filter_map(|p| p.lag());
        let first = lags.next()?;
        Some(first + lags.sum::<u64>())
    }

    pub fn add_dead_letter(&self) {
        self.inner.dead_letters.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a file source instance that reads `total` bytes, for the progress line; it
    /// publishes how far it has read through the returned cursor.
    pub fn input_file(&self, total: u64) -> InputCursor {
        let read = Arc::new(AtomicU64::new(0));
        let mut files = self
            .inner
            .input_files
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        files.push((total, read.clone()));
        InputCursor { total, read }
    }

    /// Bytes read of the input files and their total, over every file source instance (none:
    /// the pipeline reads no file).
    pub fn input_bytes(&self) -> Option<(u64, u64)> {
        let files = self
            .inner
            .input_files
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if files.is_empty() {
            return None;
        }
        Some(files.iter().fold((0, 0), |(read, total), (t, r)| {
            (read + r.load(Ordering::Relaxed).min(*t), total + t)
        }))
    }

    /// Keeps a dead letter for the live view, dropping the oldest beyond
    /// [`RECENT_DEAD_LETTERS`]. Called where dead letters are written, never for good records.
    pub fn keep_dead_letter(&self, from: &str, line: Option<u64>, reason: &str, record: &str) {
        let mut cut = record.len().min(RECENT_DEAD_LETTER_BYTES);
        while !record.is_char_boundary(cut) {
            cut -= 1;
        }
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let letter = RecentDeadLetter {
            from: from.to_string(),
            line,
            reason: reason.to_string(),
            record: record[..cut].to_string(),
            at_ms,
        };
        let mut recent = self
            .inner
            .recent_dead_letters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_DEAD_LETTERS {
            recent.pop_front();
        }
        recent.push_back(letter);
    }

    /// The last [`RECENT_DEAD_LETTERS`] dead letters of the run, oldest first.
    pub fn recent_dead_letters(&self) -> Vec<RecentDeadLetter> {
        let recent = self
            .inner
            .recent_dead_letters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        recent.iter().cloned().collect()
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

    /// Counters per operator, summed over its instances so far, in plan order.
    pub fn ops(&self) -> Vec<(&'static str, OpStats)> {
        let ops = self.lock_ops();
        ops.iter()
            .map(|e| {
                let mut stats = OpStats {
                    instances: e.instances.len() as u32,
                    finished: e.finished,
                    // A sender counts a message just before it waits for room: clamp.
                    queued: e
                        .queues
                        .iter()
                        .map(|q| q.load(Ordering::Relaxed).clamp(0, e.queue_capacity as i64) as u64)
                        .sum(),
                    queue_capacity: (e.queues.len() * e.queue_capacity) as u64,
                    ..OpStats::default()
                };
                for i in &e.instances {
                    stats.records_in += i.records_in.load(Ordering::Relaxed);
                    stats.records_out += i.records_out.load(Ordering::Relaxed);
                    stats.late += i.late.load(Ordering::Relaxed);
                    stats.blocked_ns += i.blocked_ns.load(Ordering::Relaxed);
                    stats.watermark_lag_ms = stats
                        .watermark_lag_ms
                        .max(i.watermark_lag_ms.load(Ordering::Relaxed));
                    let add =
                        |sum: Option<u64>, cell: &AtomicU64| match cell.load(Ordering::Relaxed) {
                            UNKNOWN => sum,
                            n => Some(sum.unwrap_or(0) + n),
                        };
                    stats.state_keys = add(stats.state_keys, &i.state_keys);
                    stats.state_bytes = add(stats.state_bytes, &i.state_bytes);
                }
                (e.name, stats)
            })
            .collect()
    }

    /// The summary as one JSON object (`--summary json`): what the table says, by field.
    pub fn summary_json(&self, elapsed: Duration, outcome: &RunOutcome<'_>) -> String {
        use crate::formats::json::{
            write_bool, write_f64, write_i64, write_key, write_null, write_string,
        };
        let count =
            |out: &mut Vec<u8>, n: u64| write_i64(out, i64::try_from(n).unwrap_or(i64::MAX));
        let secs = elapsed.as_secs_f64().max(1e-9);
        let events = self.source_records();
        let mut out = Vec::with_capacity(1024);
        out.push(b'{');
        write_key(&mut out, "status");
        write_string(
            &mut out,
            match (outcome.failed, outcome.stopped) {
                (true, _) => "failed",
                (false, true) => "stopped",
                (false, false) => "finished",
            },
        );
        out.push(b',');
        write_key(&mut out, "errors");
        out.push(b'[');
        for (i, err) in outcome.errors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_string(&mut out, err);
        }
        out.extend_from_slice(b"],");
        write_key(&mut out, "elapsed_seconds");
        write_f64(&mut out, secs);
        out.push(b',');
        write_key(&mut out, "events");
        count(&mut out, events);
        out.push(b',');
        write_key(&mut out, "events_per_second");
        write_f64(&mut out, (events as f64 / secs).round());
        out.push(b',');
        write_key(&mut out, "operators");
        out.push(b'[');
        for (i, (name, stats)) in self.ops().into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            write_key(&mut out, "name");
            write_string(&mut out, name);
            for (key, value) in [
                ("records_in", stats.records_in),
                ("records_out", stats.records_out),
                ("late_records", stats.late),
            ] {
                out.push(b',');
                write_key(&mut out, key);
                count(&mut out, value);
            }
            out.push(b',');
            write_key(&mut out, "event_time_lag_max_ms");
            match stats.watermark_lag_ms {
                lag if lag > 0 => write_i64(&mut out, lag),
                _ => write_null(&mut out),
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"],");
        write_key(&mut out, "sources");
        out.push(b'[');
        for (i, source) in self.sources().into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            write_key(&mut out, "name");
            write_string(&mut out, &source.name);
            out.push(b',');
            write_key(&mut out, "records");
            count(&mut out, source.records);
            out.push(b'}');
        }
        out.extend_from_slice(b"],");
        write_key(&mut out, "dead_letters");
        count(&mut out, self.dead_letters());
        out.push(b',');
        write_key(&mut out, "dead_letter_files");
        out.push(b'[');
        let files = outcome.dead_letter_files.iter();
        let files = files.filter(|(_, written, lost)| written + lost > 0);
        for (i, (path, written, lost)) in files.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            write_key(&mut out, "path");
            write_string(&mut out, path);
            out.push(b',');
            write_key(&mut out, "written");
            count(&mut out, *written);
            out.push(b',');
            write_key(&mut out, "lost");
            count(&mut out, *lost);
            out.push(b'}');
        }
        out.extend_from_slice(b"],");
        write_key(&mut out, "faults");
        out.push(b'{');
        for (i, fault) in Fault::ALL.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(&mut out, &fault.summary_label().replace([' ', '-'], "_"));
            count(&mut out, self.faults(fault));
        }
        out.extend_from_slice(b"},");
        write_key(&mut out, "checksums");
        out.push(b'[');
        for (i, (sink, rows, sum)) in self.checksums().into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'{');
            write_key(&mut out, "sink");
            write_string(&mut out, sink);
            out.push(b',');
            write_key(&mut out, "rows");
            count(&mut out, rows);
            out.push(b',');
            write_key(&mut out, "checksum");
            write_string(&mut out, &format!("{sum:016x}"));
            out.push(b'}');
        }
        out.extend_from_slice(b"],");
        write_key(&mut out, "checkpoints");
        match outcome.checkpoints {
            None => write_null(&mut out),
            Some(c) => {
                out.push(b'{');
                write_key(&mut out, "dir");
                write_string(&mut out, &c.dir);
                out.push(b',');
                write_key(&mut out, "completed");
                count(&mut out, c.completed);
                out.push(b',');
                write_key(&mut out, "resumed_from");
                match c.restored_from {
                    Some(id) => count(&mut out, id),
                    None => write_null(&mut out),
                }
                out.push(b',');
                write_key(&mut out, "last_duration_ms");
                write_f64(&mut out, c.last_duration_ms);
                out.push(b',');
                write_key(&mut out, "last_bytes");
                count(&mut out, c.last_bytes);
                out.push(b',');
                write_key(&mut out, "slowest_duration_ms");
                write_f64(&mut out, c.max_duration_ms);
                out.push(b'}');
            }
        }
        out.push(b',');
        write_key(&mut out, "kafka_first_to_last_message_seconds");
        match self.message_span() {
            Some(span) => write_f64(&mut out, span.as_secs_f64()),
            None => write_null(&mut out),
        }
        out.push(b',');
        write_key(&mut out, "peak_memory_bytes");
        match peak_memory_kib() {
            Some(kib) => count(&mut out, kib * 1024),
            None => write_null(&mut out),
        }
        out.push(b',');
        write_key(&mut out, "stopped_early");
        write_bool(&mut out, outcome.stopped);
        out.push(b'}');
        String::from_utf8(out).unwrap_or_default()
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

/// How far a file source instance has read, published by it at ticks and at its end (a
/// store every flush interval, never per record).
pub struct InputCursor {
    total: u64,
    read: Arc<AtomicU64>,
}

impl InputCursor {
    /// `read` bytes of its `total` are behind it.
    pub fn publish(&self, read: u64) {
        self.read.store(read.min(self.total), Ordering::Relaxed);
    }

    /// Its input has ended (read to the end of its range, or stopped).
    pub fn done(&self) {
        self.read.store(self.total, Ordering::Relaxed);
    }
}

/// The checkpoints of a run, for the JSON summary.
pub struct CheckpointSummary {
    pub dir: String,
    pub completed: u64,
    pub restored_from: Option<u64>,
    pub last_duration_ms: f64,
    pub last_bytes: u64,
    pub max_duration_ms: f64,
}

/// How a run ended, for the JSON summary: what the registry does not know.
pub struct RunOutcome<'a> {
    pub errors: &'a [String],
    pub failed: bool,
    /// Stopped (a signal, `POST /stop`) before the end of its input.
    pub stopped: bool,
    pub checkpoints: Option<&'a CheckpointSummary>,
    /// Each dead-letter file: its path, letters written and letters lost.
    pub dead_letter_files: &'a [(String, u64, u64)],
}

/// One source's instances: records pushed and last watermark sent, each.
struct SourceEntry {
    name: String,
    instances: Vec<(Arc<AtomicU64>, Arc<AtomicI64>)>,
}

/// A source's live counters, over its instances.
#[derive(Clone, Debug)]
pub struct SourceStats {
    pub name: String,
    pub records: u64,
    /// Event time in ms since the epoch; none before every instance has sent a watermark.
    pub watermark_ms: Option<i64>,
    pub instances: u32,
}

/// The chain of a source instance, counting what goes into it (see [`Metrics::source`]).
/// It counts in a plain field and publishes the count at every watermark, tick (at least
/// every flush interval: sources tick while they read) and barrier: a store per record cost
/// a pass-through pipeline about 1 % of its throughput.
pub struct SourceMeter<C> {
    pushed: u64,
    records: Counter,
    watermark: Arc<AtomicI64>,
    chain: C,
}

impl<T: ?Sized, C: Collector<T>> Collector<T> for SourceMeter<C> {
    #[inline(always)]
    fn push(&mut self, record: &T) {
        self.pushed += 1;
        self.chain.push(record);
    }
    fn watermark(&mut self, watermark: i64) {
        self.records.set(self.pushed);
        // The final watermark says the input ended, not where event time is.
        if watermark != i64::MAX {
            self.watermark.store(watermark, Ordering::Relaxed);
        }
        self.chain.watermark(watermark);
    }
    fn barrier(&mut self, checkpoint: u64) {
        self.records.set(self.pushed);
        self.chain.barrier(checkpoint);
    }
    fn tick(&mut self) {
        self.records.set(self.pushed);
        self.chain.tick();
    }
    fn finish(&mut self) {
        self.records.set(self.pushed);
        self.chain.finish();
    }
}

/// The process's resident memory now, in bytes (Linux: `VmRSS` in `/proc/self/status`).
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time the process has used (user and system), in seconds (`getrusage`).
pub fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: it succeeded, so the struct is written.
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// The process's peak resident memory in KiB (Linux: `VmHWM` in `/proc/self/status`).
pub fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::Discard;

    /// What a reader on another thread sees while the instances still run: the sum over
    /// instances of what each has counted so far, the largest lag, and who finished.
    #[test]
    fn the_live_view_sums_instances_while_they_run() {
        let metrics = Metrics::new();
        let op = metrics.op("op1 filter");
        let (mut a, mut b) = (op.counters(), op.counters());
        a.records_in += 5;
        a.records_out += 2;
        b.records_in += 7;
        b.late += 1;
        a.watermark_lag_ms.raise(40);
        b.watermark_lag_ms.raise(90);
        b.watermark_lag_ms.raise(10);
        let reader = metrics.clone();
        let seen = std::thread::spawn(move || reader.ops()).join().unwrap();
        let (name, stats) = &seen[0];
        assert_eq!(*name, "op1 filter");
        assert_eq!(
            (stats.records_in, stats.records_out, stats.late),
            (12, 2, 1)
        );
        assert_eq!(stats.watermark_lag_ms, 90);
        assert_eq!((stats.instances, stats.finished), (2, 0));
        op.report(&a);
        b.records_in.set(100);
        let stats = &metrics.ops()[0].1;
        assert_eq!((stats.records_in, stats.finished), (105, 1));
    }

    /// A source's count is published at watermarks, ticks, barriers and the end; its
    /// watermark is the least over its instances, and only once each has sent one.
    #[test]
    fn a_source_meter_publishes_at_watermarks_and_ticks() {
        let metrics = Metrics::new();
        let mut first = metrics.source("bids", Discard);
        let mut second = metrics.source("bids", Discard);
        for _ in 0..3 {
            Collector::<u32>::push(&mut first, &1);
        }
        assert_eq!(metrics.sources()[0].records, 0);
        Collector::<u32>::watermark(&mut first, 1_000);
        let live = &metrics.sources()[0];
        assert_eq!(
            (live.records, live.watermark_ms, live.instances),
            (3, None, 2)
        );
        Collector::<u32>::push(&mut second, &1);
        Collector::<u32>::tick(&mut second);
        Collector::<u32>::watermark(&mut second, 700);
        let live = &metrics.sources()[0];
        assert_eq!((live.records, live.watermark_ms), (4, Some(700)));
        // The end of the input is no event time: the last one stays.
        Collector::<u32>::watermark(&mut second, i64::MAX);
        Collector::<u32>::finish(&mut second);
        assert_eq!(metrics.sources()[0].watermark_ms, Some(700));
    }

    /// A sampled total is exact up to the sample's size, and extrapolated beyond.
    #[test]
    fn sampled_totals() {
        let small: Vec<usize> = vec![3, 5, 7];
        assert_eq!(sampled_total(small.iter(), small.len(), |n| *n), 15);
        let big = vec![2usize; 10_000];
        assert_eq!(sampled_total(big.iter(), big.len(), |n| *n), 20_000);
        assert_eq!(sampled_total(std::iter::empty::<usize>(), 0, |n| n), 0);
    }

    /// Kafka instances publish their partitions wholesale; the lag is known once both the
    /// high watermark and the next offset are, and sums per source.
    #[test]
    fn kafka_partitions_and_their_lag() {
        let metrics = Metrics::new();
        let (a, b) = (metrics.kafka_report(), metrics.kafka_report());
        let partition = |source: &str, partition, consumed, high| KafkaPartition {
            source: source.into(),
            topic: "t".into(),
            partition,
            consumed,
            committed: None,
            high_watermark: high,
        };
        a.publish(vec![partition("s", 1, Some(5), Some(9))]);
        b.publish(vec![
            partition("s", 0, Some(3), Some(10)),
            partition("s", 2, None, Some(4)),
        ]);
        let all = metrics.kafka_partitions();
        assert_eq!(
            all.iter().map(|p| p.partition).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(all[2].lag(), None);
        assert_eq!(metrics.kafka_lag(Some("s")), Some(11));
        assert_eq!(metrics.kafka_lag(Some("other")), None);
        // A rebalance moved partition 1 away from `a`.
        a.publish(Vec::new());
        assert_eq!(metrics.kafka_lag(None), Some(7));
    }

    /// The live view keeps the last few dead letters, oldest first, each cut to a bound at a
    /// character boundary.
    #[test]
    fn recent_dead_letters_are_a_bounded_ring() {
        let metrics = Metrics::new();
        for i in 0..RECENT_DEAD_LETTERS as u64 + 3 {
            metrics.keep_dead_letter("bids", Some(i), "bad", "x");
        }
        let recent = metrics.recent_dead_letters();
        assert_eq!(recent.len(), RECENT_DEAD_LETTERS);
        assert_eq!(recent[0].line, Some(3));
        assert_eq!(
            recent.last().unwrap().line,
            Some(RECENT_DEAD_LETTERS as u64 + 2)
        );
        let long = "é".repeat(RECENT_DEAD_LETTER_BYTES);
        metrics.keep_dead_letter("op3 map", None, "overflow", &long);
        let kept = metrics.recent_dead_letters().pop().unwrap();
        assert_eq!(kept.record.len(), RECENT_DEAD_LETTER_BYTES);
        assert_eq!((kept.from.as_str(), kept.line), ("op3 map", None));
    }
}
