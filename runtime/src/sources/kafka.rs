//! The Kafka source: one consumer per source instance, all in the source's consumer group, so
//! Kafka splits the topic's partitions between the instances (and between processes running
//! the same binary).
//!
//! - **Records**: one message is one record (JSON or CSV, a trailing newline is ignored),
//!   decoded by the generated decoder; a message that does not decode goes to the dead-letter
//!   output (source, offset, partition and reason) and the source goes on.
//! - **Watermarks** are per partition: each assigned partition tracks the highest event time
//!   it has delivered; the instance's watermark is the minimum over its assigned partitions
//!   that are not idle (silent for the idle timeout with nothing left to read: one behind
//!   while librdkafka serves others is not idle), minus the out-of-orderness bound. An
//!   instance that is still joining its group, or has a partition without data yet, repeats
//!   its last watermark so that nothing downstream counts it idle; one whose partitions are
//!   all idle (or that has none) sends nothing, and the input loops downstream stop waiting
//!   for it after the same idle timeout.
//! - **Positions**: the next offset to read of every assigned partition, in [`Positions`]. They
//!   are committed to the group (asynchronously, every second, and synchronously when
//!   partitions are revoked and at the end) so that monitoring sees the group's progress and a
//!   partition handed to another instance continues where this one stopped. A source can
//!   start from given positions ([`KafkaSourceConfig::start_offsets`]): a partition is sought
//!   there when it is first assigned (a checkpoint restore).
//! - **End**: a Kafka topic has no end. With `--kafka-stop-after-idle MS` a source ends once it
//!   has received nothing for that long after joining its group (a rebalance in progress
//!   not counting) *and* librdkafka has reported
//!   the end of every assigned partition since its last record (`enable.partition.eof`; the
//!   end is the last stable offset under `read_committed`, so an open transaction does not
//!   hold it up). Quiet alone is not the end: on a loaded machine a partition may not be
//!   fetched for seconds, and ending then would close every window without its records and
//!   exit 0. A source still without those reports a minute past the idle time fails the run,
//!   naming the partitions. The run summary says how long the Kafka sources took
//!   from their first message to their last ([`Metrics::add_message_span`]): the group join
//!   and that idle wait are not reading.
//! - **Ticks**: a poll waits at most until the next tick of the flush interval
//!   ([`crate::tick`]), and the source ticks its chain on time whether messages come or not,
//!   so a lone message reaches its sink within about the interval.
//! - **Lag**: about once a second the instance publishes, for the live view, each assigned
//!   partition's next offset, last committed offset and high watermark (librdkafka's cached
//!   one); a partition not read yet counts from where it starts, looked up once
//!   ([`Metrics::kafka_report`]).
//! - **Reading**: one `BaseConsumer::poll` per message, decoded in the polling thread; the
//!   client settings are [`KafkaSourceConfig::client_config`] (`weir bench --input kafka`
//!   compares this source with a bare consumer using the same, `crate::kafka::floor`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::ClientContext;

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::dead_letter::DeadLetters;
use crate::formats::DecodeError;
use crate::metrics::{KafkaPartition, KafkaReport, Metrics};
use crate::ops::change::Change;
use crate::run::RunArgs;
use crate::sources::{EventTime, WATERMARK_INTERVAL};
use crate::state::State as Saved;

/// Where a source starts reading a partition that has no committed offset in its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
}

/// After this long without a message a partition stops holding the watermark back, unless
/// `--idle-timeout` says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(100);
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// How often an instance publishes its partitions' offsets and lag for the live view.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How long the group's committed offsets of partitions not read yet are waited for (once per
/// partition, for their lag), and how long after a failed lookup the next one is made.
const START_LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);
const START_LOOKUP_RETRY: Duration = Duration::from_secs(30);
const WATERMARK_PERIOD: Duration = Duration::from_millis(200);
const CLOCK_EVERY: u32 = 64;
/// How often an idle source with `--kafka-stop-after-idle` asks whether it has read every
/// partition to its end.
const END_CHECK_EVERY: Duration = Duration::from_millis(250);
/// How long past `--kafka-stop-after-idle` a source waits for records it knows are there but
/// does not receive, before the run fails rather than end without them.
const UNREAD_GIVE_UP: Duration = Duration::from_secs(60);
/// How long a checkpointed source (which assigns its partitions itself) waits for the broker
/// to list its topic without errors.
const METADATA_PATIENCE: Duration = Duration::from_secs(30);

/// Everything a Kafka source instance needs, as generated code and the command line set it.
#[derive(Clone, Debug)]
pub struct KafkaSourceConfig {
    /// The source's name in the pipeline (dead letters, messages).
    pub name: String,
    pub topic: String,
    pub brokers: String,
    pub group: String,
    pub start: Start,
    /// The pipeline's `properties:`, then `--kafka-property` (later ones win).
    pub properties: Vec<(String, String)>,
    /// Partitions silent this long do not hold the watermark back.
    pub idle_timeout: Duration,
    /// End after this long without a message (see the module docs).
    pub stop_after_idle: Option<Duration>,
    /// Positions to start from, instead of the group's committed offsets.
    pub start_offsets: Option<Positions>,
}

impl KafkaSourceConfig {
    /// A source as the pipeline declares it, with the command line's overrides applied.
    pub fn new(
        name: &str,
        topic: &str,
        brokers: &str,
        group: &str,
        start: Start,
        properties: &[(&str, &str)],
        args: &RunArgs,
    ) -> Self {
        let mut props = crate::kafka::properties(properties);
        props.extend(args.kafka_properties.iter().cloned());
        KafkaSourceConfig {
            name: name.to_string(),
            topic: topic.to_string(),
            brokers: brokers.to_string(),
            group: group.to_string(),
            start,
            properties: props,
            idle_timeout: args.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            stop_after_idle: args.kafka_stop_after_idle,
            start_offsets: None,
        }
    }

    /// The client configuration of this source's consumers: weir's defaults, then `brokers:`,
    /// then the properties (the benchmark's floor reads with the same).
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let start = match self.start {
            Start::Earliest => "earliest",
            Start::Latest => "latest",
        };
        let eof = if self.stop_after_idle.is_some() {
            "true"
        } else {
            "false"
        };
        crate::kafka::client_config(
            &self.brokers,
            &[
                ("group.id", &self.group),
                ("auto.offset.reset", start),
                // weir commits its own positions (see the module docs).
                ("enable.auto.commit", "false"),
                // The end of a partition (its last stable offset under `read_committed`, so an
                // open transaction's records do not count) is what ends a source with
                // `--kafka-stop-after-idle`.
                ("enable.partition.eof", eof),
                // librdkafka stops fetching a partition whose local queue is full and, by
                // default, waits a whole second before it tries again: a consumer that decodes
                // as it reads drains the queue in a fraction of that and then sits idle (a
                // third of the throughput in `weir bench --input kafka`).
                ("fetch.queue.backoff.ms", "10"),
            ],
            &self.properties,
            &[],
        )
    }

    /// Makes the input loops of `runtime`'s run treat a silent upstream instance as idle after
    /// the same timeout as partitions (unless `--idle-timeout` already set it). Call before
    /// starting tasks.
    pub fn apply_idle_timeout(&self, runtime: &crate::run::Runtime) {
        runtime
            .context()
            .default_idle_timeout(Some(self.idle_timeout));
    }
}

/// The next offset to read of each partition of a topic: what a checkpoint of a Kafka source
/// holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Positions {
    pub topic: String,
    /// partition -> next offset to read.
    pub next_offsets: BTreeMap<i32, i64>,
}

impl Positions {
    fn to_list(&self) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in &self.next_offsets {
            // Cannot fail for an offset of a partition just added.
            let _ = list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset));
        }
        list
    }
}

/// An instance's event time, from its partitions' clocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Clock {
    /// The minimum over the assigned partitions that are not idle of their highest event time,
    /// minus the out-of-orderness bound.
    At(i64),
    /// Not assigned yet (joining the group, or between an eager revoke and the new
    /// assignment), or a partition that is not idle has no data yet: the instance repeats its
    /// last watermark, so that the input loops downstream wait for it instead of counting it
    /// idle and running ahead of records still to come.
    Hold,
    /// No partitions, or every one idle: the instance sends nothing, and the input loops
    /// downstream stop waiting for it after the idle timeout.
    Idle,
}

/// One assigned partition's clock.
struct PartitionClock {
    max_event_time: i64,
    last_message: Instant,
    /// librdkafka reported the end of the partition after its last record (only with
    /// `--kafka-stop-after-idle`, which asks for these reports).
    at_end: bool,
}

/// What the poll loop and the rebalance callback share (the callback runs inside `poll`, on
/// the same thread, so the lock is never contended).
struct State {
    positions: Positions,
    clocks: BTreeMap<i32, PartitionClock>,
    /// Start positions not used yet (a partition takes its start position once).
    pending_starts: BTreeMap<i32, i64>,
    /// When the group last changed this instance's assignment; `None`: not joined yet.
    last_rebalance: Option<Instant>,
    /// Between joining (or an eager revoke) and the next assignment: partitions may be on
    /// their way, so the instance holds the watermark back.
    assigned: bool,
    /// Commit failures and rebalance errors, reported by the poll loop.
    warnings: Vec<String>,
}

/// Handle on a running source's positions (for checkpoints).
#[derive(Clone)]
pub struct PositionsHandle(Arc<Mutex<State>>);

impl PositionsHandle {
    /// The next offset to read of every partition currently assigned to the instance.
    pub fn positions(&self) -> Positions {
        lock(&self.0).positions.clone()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

struct SourceContext {
    state: Arc<Mutex<State>>,
}

impl ClientContext for SourceContext {}

impl ConsumerContext for SourceContext {
    /// Seeks newly assigned partitions to their start positions, and commits the positions of
    /// revoked partitions before giving them up, so their next owner neither skips nor repeats.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            rdkafka::consumer::RebalanceProtocol::Cooperative
        );
        let mut state = lock(&self.state);
        let now = Instant::now();
        state.last_rebalance = Some(now);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                state.assigned = true;
                let topic = state.positions.topic.clone();
                for elem in tpl.elements() {
                    let partition = elem.partition();
                    state.clocks.insert(
                        partition,
                        PartitionClock {
                            max_event_time: i64::MIN,
                            last_message: now,
                            at_end: false,
                        },
                    );
                }
                let starts: Vec<(i32, i64)> = tpl
                    .elements()
                    .iter()
                    .filter_map(|e| {
                        state
                            .pending_starts
                            .get(&e.partition())
                            .map(|o| (e.partition(), *o))
                    })
                    .collect();
                for (partition, offset) in starts {
                    state.pending_starts.remove(&partition);
                    if let Err(e) =
                        tpl.set_partition_offset(&topic, partition, Offset::Offset(offset))
                    {
                        state.warnings.push(format!(
                            "cannot start partition {partition} at offset {offset}: {e}"
                        ));
                    }
                }
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = result {
                    state
                        .warnings
                        .push(format!("assigning partitions failed: {e}"));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Eager: everything is revoked and a new assignment follows.
                state.assigned = cooperative;
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                let mut done = Positions {
                    topic: state.positions.topic.clone(),
                    next_offsets: BTreeMap::new(),
                };
                for partition in &revoked {
                    state.clocks.remove(partition);
                    if let Some(offset) = state.positions.next_offsets.remove(partition) {
                        done.next_offsets.insert(*partition, offset);
                    }
                }
                if !done.next_offsets.is_empty() && !consumer.assignment_lost() {
                    if let Err(e) = consumer.commit(&done.to_list(), CommitMode::Sync) {
                        state
                            .warnings
                            .push(format!("committing revoked partitions failed: {e}"));
                    }
                }
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    state
                        .warnings
                        .push(format!("unassigning partitions failed: {e}"));
                }
            }
            other => {
                let code: RDKafkaErrorCode = other.into();
                state.warnings.push(format!("rebalance failed: {code}"));
                let _ = consumer.unassign();
                state.clocks.clear();
                state.positions.next_offsets.clear();
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {}
}

/// Where the source starts reading each assigned partition it has not read from yet (for its
/// lag), and when to ask the group again after a failed lookup.
#[derive(Default)]
struct Starts {
    known: BTreeMap<i32, i64>,
    retry_at: Option<Instant>,
}

/// One instance of a Kafka source, before it runs.
pub struct KafkaSource {
    config: KafkaSourceConfig,
    state: Arc<Mutex<State>>,
}

impl KafkaSource {
    pub fn new(config: KafkaSourceConfig) -> Self {
        let state = State {
            positions: Positions {
                topic: config.topic.clone(),
                next_offsets: BTreeMap::new(),
            },
            clocks: BTreeMap::new(),
            pending_starts: config
                .start_offsets
                .as_ref()
                .map(|p| p.next_offsets.clone())
                .unwrap_or_default(),
            last_rebalance: None,
            assigned: false,
            warnings: Vec::new(),
        };
        KafkaSource {
            config,
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A handle that reads the positions while the source runs.
    pub fn positions(&self) -> PositionsHandle {
        PositionsHandle(self.state.clone())
    }

    /// With checkpoints: this instance's partitions (`p % instances == instance`), assigned
    /// directly (no group rebalancing, so a checkpoint's positions always describe the
    /// partitions an instance reads), each from its checkpointed position, else from the
    /// group's committed offset, else from `start`.
    fn assign_statically(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        instance: usize,
        instances: usize,
        restored: &BTreeMap<i32, i64>,
    ) -> Result<(), String> {
        let name = &self.config.name;
        let topic = self.config.topic.as_str();
        let partitions: Vec<i32> = self
            .topic_partitions(consumer)?
            .into_iter()
            .filter(|p| (*p as usize) % instances == instance)
            // A scale-out task reads its own partition only.
            .filter(|p| crate::scale_out::task_partition().is_none_or(|task| task == *p))
            .collect();
        if let Some(p) = restored
            .keys()
            .find(|p| (**p as usize) % instances == instance && !partitions.contains(p))
        {
            return Err(format!(
                "source `{name}`: kafka: the checkpoint holds a position in partition {p} of \
                 `{topic}`, which the broker does not list (partitions: {partitions:?})"
            ));
        }
        let mut list = TopicPartitionList::new();
        let now = Instant::now();
        let mut state = lock(&self.state);
        for p in &partitions {
            let offset = match restored.get(p) {
                Some(o) => Offset::Offset(*o),
                None => Offset::Stored,
            };
            list.add_partition_offset(topic, *p, offset)
                .map_err(|e| format!("source `{name}`: kafka: {e}"))?;
            state.clocks.entry(*p).or_insert(PartitionClock {
                max_event_time: i64::MIN,
                last_message: now,
                at_end: false,
            });
            if let Some(o) = restored.get(p) {
                state.positions.next_offsets.insert(*p, *o);
            }
        }
        state.assigned = true;
        state.last_rebalance = Some(now);
        drop(state);
        consumer
            .assign(&list)
            .map_err(|e| format!("source `{name}`: kafka: cannot assign partitions: {e}"))
    }

    /// The topic's partitions as the broker lists them. A topic or partition the broker
    /// reports an error for (a leader being elected, a topic just created) is asked again,
    /// for up to [`METADATA_PATIENCE`]: assigning from an incomplete list would leave a
    /// partition unread.
    fn topic_partitions(&self, consumer: &BaseConsumer<SourceContext>) -> Result<Vec<i32>, String> {
        let name = &self.config.name;
        let topic = self.config.topic.as_str();
        let started = Instant::now();
        loop {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(|e| format!("source `{name}`: kafka: cannot read topic `{topic}`: {e}"))?;
            let problem = match metadata.topics().iter().find(|t| t.name() == topic) {
                None => Some("not listed".to_string()),
                Some(t) => match t.error() {
                    Some(e) => Some(RDKafkaErrorCode::from(e).to_string()),
                    None if t.partitions().is_empty() => Some("no partitions".to_string()),
                    None => t.partitions().iter().find_map(|p| {
                        p.error()
                            .map(|e| format!("partition {}: {}", p.id(), RDKafkaErrorCode::from(e)))
                    }),
                },
            };
            match problem {
                None => {
                    let t = metadata.topics().iter().find(|t| t.name() == topic);
                    return Ok(t.map_or_else(Vec::new, |t| {
                        t.partitions().iter().map(|p| p.id()).collect()
                    }));
                }
                Some(problem) if started.elapsed() >= METADATA_PATIENCE => {
                    return Err(format!(
                        "source `{name}`: kafka: topic `{topic}`: {problem} (asked for {} s)",
                        METADATA_PATIENCE.as_secs()
                    ));
                }
                Some(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn consumer(&self, subscribe: bool) -> Result<BaseConsumer<SourceContext>, String> {
        let config = self.config.client_config();
        let context = SourceContext {
            state: self.state.clone(),
        };
        let consumer: BaseConsumer<SourceContext> = config
            .create_with_context(context)
            .map_err(|e| format!("source `{}`: kafka: {e}", self.config.name))?;
        if subscribe {
            consumer
                .subscribe(&[self.config.topic.as_str()])
                .map_err(|e| format!("source `{}`: kafka: {e}", self.config.name))?;
        }
        Ok(consumer)
    }

    /// Consumes until stopped (see the module docs), decoding each message with `decode` and
    /// pushing the records into `chain`. Errors: the consumer cannot be created, librdkafka
    /// reports a fatal error, or checkpoints are on (`slot` is active): Kafka sources do not
    /// take part in them yet (their positions, in [`Positions`], are what a checkpoint would
    /// hold; [`KafkaSourceConfig::start_offsets`] is how a restore would seek).
    pub fn run<T, D, C>(
        self,
        metrics: &Metrics,
        dead_letters: &DeadLetters,
        decode: D,
        event_time: Option<EventTime<T>>,
        slot: StateSlot,
        chain: C,
    ) -> Result<(), String>
    where
        D: FnMut(&str) -> Result<T, DecodeError>,
        C: Collector<T>,
    {
        self.run_messages(
            metrics,
            dead_letters,
            Values(decode),
            event_time,
            slot,
            chain,
        )
    }

    /// [`KafkaSource::run`] with each message made into a record by `messages`.
    fn run_messages<T, M, C>(
        self,
        metrics: &Metrics,
        dead_letters: &DeadLetters,
        mut messages: M,
        event_time: Option<EventTime<T>>,
        slot: StateSlot,
        chain: C,
    ) -> Result<(), String>
    where
        M: Messages<T>,
        C: Collector<T>,
    {
        let name = self.config.name.clone();
        let mut chain = metrics.source(&name, chain);
        let mut slot = slot;
        let checkpointed = slot.is_active();
        // A checkpoint's part: next offset and highest event time per partition, and the last
        // watermark sent.
        let mut emitted = i64::MIN;
        let mut restored: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        if let Some(bytes) = slot.take_restored() {
            let positions = if M::KEEPS_STATE {
                crate::state::decode::<(BTreeMap<i32, (i64, i64)>, i64, Vec<u8>)>(&bytes)
                    .map_err(|e| e.to_string())
                    .and_then(|(positions, wm, kept)| {
                        messages.load(&kept)?;
                        Ok((positions, wm))
                    })
            } else {
                crate::state::decode::<(BTreeMap<i32, (i64, i64)>, i64)>(&bytes)
                    .map_err(|e| e.to_string())
            };
            match positions {
                Ok((positions, wm)) => {
                    restored = positions;
                    emitted = wm;
                }
                Err(e) => {
                    chain.watermark(i64::MAX);
                    chain.finish();
                    return Err(format!(
                        "source `{name}`: cannot restore its positions: {e}"
                    ));
                }
            }
        }
        let consumer = match self.consumer(!checkpointed).and_then(|c| {
            if checkpointed {
                let offsets = restored.iter().map(|(p, (o, _))| (*p, *o)).collect();
                self.assign_statically(&c, slot.instance(), slot.instances(), &offsets)?;
                let mut state = lock(&self.state);
                for (p, (_, max_event_time)) in &restored {
                    if let Some(clock) = state.clocks.get_mut(p) {
                        clock.max_event_time = *max_event_time;
                    }
                }
            }
            Ok(c)
        }) {
            Ok(c) => c,
            Err(err) => {
                crate::checkpoint::source_ended();
                chain.watermark(i64::MAX);
                chain.finish();
                return Err(err);
            }
        };
        let bound = event_time
            .as_ref()
            .map_or(0, |et| et.max_out_of_orderness_ms);
        let mut pace = super::Pacer::new(1);
        // Positions of checkpoints taken: committed to the group one checkpoint behind the
        // latest complete one (so the group never runs ahead of what a restore covers).
        let mut to_commit: Vec<(u64, Positions)> = Vec::new();
        let mut countdown = WATERMARK_INTERVAL;
        let mut last_watermark_check = Instant::now();
        let mut last_sent = Instant::now();
        let mut last_commit = Instant::now();
        let mut last_message = Instant::now();
        let mut first_message: Option<Instant> = None;
        let mut committed = Positions::default();
        // With checkpoints: the offsets committed to the group (one checkpoint behind).
        let mut committed_checkpointed: BTreeMap<i32, i64> = BTreeMap::new();
        let report = metrics.kafka_report();
        let mut starts = Starts::default();
        let mut last_publish: Option<Instant> = None;
        let mut reported: Vec<String> = Vec::new();
        let mut produced = 0u64;
        let mut result = Ok(());
        // Reading the clock costs as much as decoding a small record: read it every
        // `CLOCK_EVERY` messages and whenever a poll comes back empty.
        let mut now = Instant::now();
        let mut since_clock = 0u32;
        let mut ticker = crate::tick::Ticker::new();
        let mut last_end_check = Instant::now();
        let mut waiting_reported = false;
        loop {
            if checkpointed {
                if let Some(id) = slot.barrier_due() {
                    dead_letters.flush();
                    let (mut part, positions) = self.checkpoint_part(emitted);
                    if M::KEEPS_STATE {
                        // (positions, watermark, what the messages keep)
                        let (p, wm) = self.checkpoint_positions(emitted);
                        part = crate::state::encode(&(p, wm, messages.save()));
                    }
                    to_commit.push((id, positions));
                    slot.save(id, &part, Vec::new());
                    chain.barrier(id);
                }
                // One checkpoint behind the latest complete one: a restart may still fall back
                // from that one (when a sink's transaction of it never committed), never
                // further, so the group never runs ahead of what a restore reads.
                let done = slot.completed();
                if let Some(i) = to_commit.iter().rposition(|(id, _)| *id < done) {
                    let (_, positions) = to_commit[i].clone();
                    to_commit.drain(..=i);
                    if !positions.next_offsets.is_empty() {
                        self.commit_checkpointed(&consumer, &positions);
                        committed_checkpointed.extend(positions.next_offsets);
                    }
                }
            }
            if produced.is_multiple_of(64) {
                pace.wait(produced);
            }
            // An empty poll returns at the next tick at the latest.
            let polled = consumer.poll(POLL.min(ticker.wait(now)));
            since_clock += 1;
            let fresh_clock = !matches!(polled, Some(Ok(_))) || since_clock >= CLOCK_EVERY;
            if fresh_clock {
                now = Instant::now();
                since_clock = 0;
            }
            match polled {
                Some(Ok(message)) => {
                    last_message = now;
                    if first_message.is_none() {
                        first_message = Some(Instant::now());
                        // `--rate-limit` counts from the first message: joining the group is
                        // not reading, and counting it would let a burst through at once.
                        pace = super::Pacer::new(1);
                    }
                    let (partition, offset) = (message.partition(), message.offset());
                    let record = messages.record(message.key(), message.payload());
                    let event_ts = match record {
                        Ok(None) => None,
                        Ok(Some(record)) => {
                            produced += 1;
                            chain.push(&record);
                            event_time.as_ref().map(|et| (et.time)(&record))
                        }
                        Err(reason) => {
                            let raw = message.payload().map(M::raw).unwrap_or_default();
                            dead_letters.write(
                                &name,
                                offset.max(0) as u64,
                                &format!("partition {partition} offset {offset}: {reason}"),
                                &raw,
                            );
                            None
                        }
                    };
                    let mut state = lock(&self.state);
                    state.positions.next_offsets.insert(partition, offset + 1);
                    if let Some(clock) = state.clocks.get_mut(&partition) {
                        clock.last_message = last_message;
                        clock.at_end = false;
                        if let Some(ts) = event_ts {
                            clock.max_event_time = clock.max_event_time.max(ts);
                        }
                    }
                    drop(state);
                    countdown -= 1;
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if let Some(clock) = lock(&self.state).clocks.get_mut(&partition) {
                        clock.at_end = true;
                    }
                }
                Some(Err(err)) => {
                    if let Some((code, reason)) = consumer.client().fatal_error() {
                        result = Err(format!(
                            "source `{name}`: kafka: fatal error {code}: {reason}"
                        ));
                        break;
                    }
                    let text = match &err {
                        KafkaError::MessageConsumption(code) => code.to_string(),
                        other => other.to_string(),
                    };
                    // Transient errors (a broker restarting, a topic not created yet) repeat:
                    // say each once.
                    if !reported.contains(&text) {
                        tracing::warn!("source `{name}`: kafka: {text}");
                        reported.push(text);
                    }
                }
                None => {}
            }
            if event_time.is_some()
                && (countdown == 0 || now.duration_since(last_watermark_check) >= WATERMARK_PERIOD)
            {
                countdown = WATERMARK_INTERVAL;
                last_watermark_check = now;
                let caught_up = |p, next: Option<&i64>| self.caught_up(&consumer, p, next);
                match self.watermark(bound, now, caught_up) {
                    Clock::At(wm) if wm > emitted => {
                        emitted = wm;
                        last_sent = now;
                        chain.watermark(wm);
                    }
                    // Still active: say so, without advancing (at most once a period: a
                    // watermark also flushes the exchanges' batches).
                    Clock::At(_) | Clock::Hold
                        if now.duration_since(last_sent) >= WATERMARK_PERIOD =>
                    {
                        last_sent = now;
                        chain.watermark(emitted);
                    }
                    Clock::At(_) | Clock::Hold | Clock::Idle => {}
                }
            }
            if !fresh_clock {
                continue;
            }
            // What this message (or the last ones) left in the exchanges and sinks goes out.
            if ticker.due(now) {
                ticker.ticked(now);
                chain.tick();
            }
            if !checkpointed && now.duration_since(last_commit) >= COMMIT_EVERY {
                last_commit = now;
                self.commit(&consumer, &mut committed, CommitMode::Async);
                let warnings = std::mem::take(&mut lock(&self.state).warnings);
                for w in warnings {
                    tracing::warn!("source `{name}`: kafka: {w}");
                }
            }
            if last_publish.is_none_or(|at| now.duration_since(at) >= PUBLISH_EVERY) {
                last_publish = Some(now);
                let committed = match checkpointed {
                    true => &committed_checkpointed,
                    false => &committed.next_offsets,
                };
                self.publish_partitions(&consumer, &report, committed, &mut starts);
            }
            if crate::stop::sources_stopped() {
                crate::stop::note_stopped_early();
                break;
            }
            if checkpointed && crate::checkpoint::given_up() {
                // A binary's run ends here; a library's stops, without the end of input.
                crate::context::abort_run();
                break;
            }
            if let Some(stop) = self.config.stop_after_idle {
                // Between an eager revoke and the next assignment the source is rejoining its
                // group, not idle: its quiet counts from the assignment.
                let (joined, assigned) = {
                    let state = lock(&self.state);
                    (state.last_rebalance, state.assigned)
                };
                if let (Some(joined), true) = (joined, assigned) {
                    let quiet = now.duration_since(last_message.max(joined));
                    if quiet >= stop && now.duration_since(last_end_check) >= END_CHECK_EVERY {
                        last_end_check = now;
                        // Quiet is not the end: a partition librdkafka has not fetched yet (a
                        // slow broker, a loaded machine) is quiet too. Stop only once it has
                        // reported the end of every assigned partition.
                        let unread = self.unread(&consumer);
                        if unread.is_empty() {
                            break;
                        }
                        let list = describe_unread(&unread);
                        if quiet >= stop + UNREAD_GIVE_UP {
                            result = Err(format!(
                                "source `{name}`: kafka: idle for {} s with records left to \
                                 read: {list}",
                                quiet.as_secs()
                            ));
                            break;
                        }
                        if !waiting_reported {
                            waiting_reported = true;
                            tracing::warn!(
                                "source `{name}`: kafka: quiet for {} ms, waiting for records \
                                 left to read: {list}",
                                quiet.as_millis()
                            );
                        }
                    }
                }
            }
        }
        if !checkpointed {
            self.commit(&consumer, &mut committed, CommitMode::Sync);
        }
        let committed = match checkpointed {
            true => &committed_checkpointed,
            false => &committed.next_offsets,
        };
        self.publish_partitions(&consumer, &report, committed, &mut starts);
        metrics.add_source_records(produced);
        if let Some(first) = first_message {
            metrics.add_message_span(first, last_message);
        }
        if result.is_err() {
            crate::checkpoint::source_ended();
            chain.watermark(i64::MAX);
            chain.finish();
            return result;
        }
        dead_letters.flush();
        slot.end_of_input(|| self.checkpoint_part(emitted).0, &mut chain);
        result
    }

    /// Commits positions that a complete checkpoint covers. A scale-out task is not a member
    /// of the group (its supervisor is): it leaves them in its folder for the supervisor.
    fn commit_checkpointed(&self, consumer: &BaseConsumer<SourceContext>, positions: &Positions) {
        if crate::scale_out::task_partition().is_none() {
            let _ = consumer.commit(&positions.to_list(), CommitMode::Async);
            return;
        }
        let Some(coordinator) = crate::checkpoint::coordinator() else {
            return;
        };
        let store = coordinator.store();
        let key = crate::scale_out::offsets_key(&positions.topic);
        let offsets: Vec<(i32, i64)> = positions
            .next_offsets
            .iter()
            .map(|(p, o)| (*p, *o))
            .collect();
        if let Err(e) = crate::scale_out::write_offsets(store, &key, &offsets) {
            tracing::warn!("source `{}`: {e}", self.config.name);
        }
    }

    /// This instance's part of a checkpoint (next offset and highest event time per
    /// partition, and the last watermark sent), and its positions.
    fn checkpoint_part(&self, emitted: i64) -> (Vec<u8>, Positions) {
        let (part, emitted) = self.checkpoint_positions(emitted);
        let positions = lock(&self.state).positions.clone();
        (crate::state::encode(&(part, emitted)), positions)
    }

    /// Next offset and highest event time per partition, and the last watermark sent.
    fn checkpoint_positions(&self, emitted: i64) -> (BTreeMap<i32, (i64, i64)>, i64) {
        let state = lock(&self.state);
        let part = state
            .positions
            .next_offsets
            .iter()
            .map(|(p, o)| {
                let max = state.clocks.get(p).map_or(i64::MIN, |c| c.max_event_time);
                (*p, (*o, max))
            })
            .collect();
        (part, emitted)
    }

    /// What the instance says about event time now (see [`Clock`]); `caught_up(partition,
    /// next offset)` says whether a silent partition has nothing left to read (only then is it
    /// idle).
    fn watermark(
        &self,
        bound: i64,
        now: Instant,
        caught_up: impl Fn(i32, Option<&i64>) -> bool,
    ) -> Clock {
        let state = lock(&self.state);
        if !state.assigned {
            return Clock::Hold;
        }
        let mut min: Option<i64> = None;
        for (partition, clock) in &state.clocks {
            if now.duration_since(clock.last_message) >= self.config.idle_timeout
                && (clock.at_end
                    || caught_up(*partition, state.positions.next_offsets.get(partition)))
            {
                continue;
            }
            if clock.max_event_time == i64::MIN {
                return Clock::Hold;
            }
            let wm = clock.max_event_time.saturating_sub(bound);
            min = Some(min.map_or(wm, |m: i64| m.min(wm)));
        }
        min.map_or(Clock::Idle, Clock::At)
    }

    /// Whether the source has read all that `partition` holds, as far as librdkafka last heard
    /// (its cached high watermark: no request is made). A silent partition that still has
    /// records to read is behind, not idle: reading a backlog, librdkafka may serve one
    /// partition for seconds while another waits, and counting the waiting one idle would make
    /// all its records late. Nothing heard of the partition yet: behind (librdkafka learns
    /// the end of every assigned partition, even an empty one, from its first fetch).
    fn caught_up(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        partition: i32,
        next: Option<&i64>,
    ) -> bool {
        let Some((low, high)) = self.cached_watermarks(consumer, partition) else {
            return false;
        };
        if high <= low {
            return true;
        }
        match next {
            Some(offset) => *offset >= high,
            // Nothing read yet: from the end there is nothing to catch up on.
            None => self.config.start == Start::Latest,
        }
    }

    /// librdkafka's cached `(low, high)` watermarks of `partition` (no request is made);
    /// `None` until it has heard of them from a fetch.
    fn cached_watermarks(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        partition: i32,
    ) -> Option<(i64, i64)> {
        use rdkafka::bindings::{rd_kafka_get_watermark_offsets, rd_kafka_resp_err_t};
        let topic = std::ffi::CString::new(self.config.topic.as_str()).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the handle lives as long as `consumer`; the call only reads librdkafka's
        // cache of offsets into the two locals.
        let err = unsafe {
            rd_kafka_get_watermark_offsets(
                consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (err == rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some((low, high))
    }

    /// The assigned partitions librdkafka has not reported the end of since their last
    /// record: `(partition, next offset, end as last heard or -1)`.
    fn unread(&self, consumer: &BaseConsumer<SourceContext>) -> Vec<(i32, Option<i64>, i64)> {
        let state = lock(&self.state);
        state
            .clocks
            .iter()
            .filter(|(_, clock)| !clock.at_end)
            .map(|(p, _)| {
                let end = self.cached_watermarks(consumer, *p).map_or(-1, |(_, h)| h);
                (*p, state.positions.next_offsets.get(p).copied(), end)
            })
            .collect()
    }

    /// Publishes the partitions this instance reads (for `/metrics`, the JSON API and the
    /// progress line): the next offset to read, the last offset committed (`committed`) and
    /// the cached high watermark of each. Called about every second, never per message.
    ///
    /// A partition not read from yet has its next offset where the source starts it: `starts`
    /// keeps those, looked up once per partition (the group's committed offset, one request
    /// for all the partitions that need it, else the start the source was given), once
    /// librdkafka has heard of the partition's offsets.
    fn publish_partitions(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        report: &KafkaReport,
        committed: &BTreeMap<i32, i64>,
        starts: &mut Starts,
    ) {
        // (partition, next offset read, cached low and high watermarks)
        let assigned: Vec<_> = {
            let state = lock(&self.state);
            state
                .clocks
                .keys()
                .map(|p| (*p, state.positions.next_offsets.get(p).copied()))
                .collect::<Vec<_>>()
        }
        .into_iter()
        .map(|(p, consumed)| (p, consumed, self.cached_watermarks(consumer, p)))
        .collect();
        // A partition given up and assigned again starts from wherever it was left.
        starts
            .known
            .retain(|p, _| assigned.iter().any(|(a, _, _)| a == p));
        let unknown: Vec<(i32, (i64, i64))> = assigned
            .iter()
            .filter(|(p, consumed, _)| consumed.is_none() && !starts.known.contains_key(p))
            .filter_map(|(p, _, watermarks)| Some((*p, (*watermarks)?)))
            .collect();
        if !unknown.is_empty() && starts.retry_at.is_none_or(|at| Instant::now() >= at) {
            self.look_up_starts(consumer, &unknown, starts);
        }
        let partitions = assigned
            .into_iter()
            .map(|(partition, consumed, watermarks)| KafkaPartition {
                source: self.config.name.clone(),
                topic: self.config.topic.clone(),
                partition,
                consumed: consumed.or_else(|| starts.known.get(&partition).copied()),
                committed: committed.get(&partition).copied(),
                high_watermark: watermarks.map(|(_, high)| high),
            })
            .collect();
        report.publish(partitions);
    }

    /// Where the source starts reading each of `partitions` (with their cached low and high
    /// watermarks), into `starts`: the group's committed offset, else the earliest or latest
    /// offset as the source was told. A failed lookup (the broker did not answer within
    /// [`START_LOOKUP_TIMEOUT`]) is tried again after [`START_LOOKUP_RETRY`], so that a
    /// broker away does not hold the source's thread (barriers, ticks, stops) every second.
    fn look_up_starts(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        partitions: &[(i32, (i64, i64))],
        starts: &mut Starts,
    ) {
        let mut list = TopicPartitionList::new();
        for (partition, _) in partitions {
            list.add_partition(&self.config.topic, *partition);
        }
        let Ok(found) = consumer.committed_offsets(list, START_LOOKUP_TIMEOUT) else {
            starts.retry_at = Some(Instant::now() + START_LOOKUP_RETRY);
            return;
        };
        for (partition, (low, high)) in partitions {
            let group = found
                .find_partition(&self.config.topic, *partition)
                .map(|e| e.offset());
            let start = match (group, self.config.start) {
                (Some(Offset::Offset(offset)), _) => offset,
                (_, Start::Earliest) => *low,
                (_, Start::Latest) => *high,
            };
            starts.known.insert(*partition, start);
        }
    }

    /// Commits the positions that changed since the last commit.
    fn commit(
        &self,
        consumer: &BaseConsumer<SourceContext>,
        committed: &mut Positions,
        mode: CommitMode,
    ) {
        let positions = lock(&self.state).positions.clone();
        if positions.next_offsets.is_empty() || positions == *committed {
            return;
        }
        match consumer.commit(&positions.to_list(), mode) {
            Ok(()) => *committed = positions,
            Err(e) => {
                if matches!(mode, CommitMode::Sync) {
                    tracing::warn!(
                        "source `{}`: kafka: committing offsets failed: {e}",
                        self.config.name
                    );
                }
            }
        }
    }
}

/// How a message becomes a record: [`Values`] decodes each payload as a row; [`Upserts`] reads
/// an upsert-Kafka changelog.
pub trait Messages<T> {
    /// Whether [`Messages::save`] has anything to keep across checkpoints.
    const KEEPS_STATE: bool = false;
    /// The record of a message; `Ok(None)` for one that changes nothing; `Err`: why it is a
    /// dead letter.
    fn record(&mut self, key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<Option<T>, String>;
    /// What a checkpoint keeps (with the positions).
    fn save(&self) -> Vec<u8> {
        Vec::new()
    }
    /// A payload as the `raw` of its dead letter: text, invalid UTF-8 replaced.
    fn raw(payload: &[u8]) -> String {
        String::from_utf8_lossy(payload).into_owned()
    }
    /// Restores what [`Messages::save`] kept.
    fn load(&mut self, _bytes: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Each message's payload is a row (a JSON line or a CSV row); the key is not read.
pub struct Values<D>(pub D);

/// The payload as a line: UTF-8 without its line end.
fn payload_line(payload: Option<&[u8]>) -> Result<&str, String> {
    match payload.map(crate::formats::utf8) {
        None => Err("empty message".to_string()),
        Some(Err(e)) => Err(format!("invalid UTF-8: {e}")),
        Some(Ok(text)) => {
            let line = text.strip_suffix('\n').unwrap_or(text);
            Ok(line.strip_suffix('\r').unwrap_or(line))
        }
    }
}

impl<T, D> Messages<T> for Values<D>
where
    D: FnMut(&str) -> Result<T, DecodeError>,
{
    fn record(&mut self, _key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<Option<T>, String> {
        let line = payload_line(payload)?;
        (self.0)(line).map(Some).map_err(|e| e.to_string())
    }
}

/// Each message's payload is a row in a binary format (Avro): the bytes as they are.
pub struct Payloads<D>(pub D);

impl<T, D> Messages<T> for Payloads<D>
where
    D: FnMut(&[u8]) -> Result<T, DecodeError>,
{
    /// Binary: the bytes in hex (`00 00 00 00 07 02 ...` as `000000000702...`).
    fn raw(payload: &[u8]) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(payload.len() * 2);
        for b in payload {
            let _ = write!(out, "{b:02x}");
        }
        out
    }

    fn record(&mut self, _key: Option<&[u8]>, payload: Option<&[u8]>) -> Result<Option<T>, String> {
        let payload = payload.ok_or_else(|| "empty message".to_string())?;
        (self.0)(payload).map(Some).map_err(|e| e.to_string())
    }
}

/// Runs one instance of a Kafka source whose messages are binary rows (Avro): `decode`
/// takes each payload's bytes.
pub fn run_payloads<T, D, C>(
    config: &KafkaSourceConfig,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    decode: D,
    event_time: Option<EventTime<T>>,
    slot: StateSlot,
    chain: C,
) -> Result<(), String>
where
    D: FnMut(&[u8]) -> Result<T, DecodeError>,
    C: Collector<T>,
{
    KafkaSource::new(config.clone()).run_messages(
        metrics,
        dead_letters,
        Payloads(decode),
        event_time,
        slot,
        chain,
    )
}

/// An upsert-Kafka topic read as an updating stream: a message with a payload is the latest
/// row of its key (an upsert), one without (a tombstone) deletes the key. The source keeps
/// the latest row of every key it has read (checkpointed with its positions), so a delete
/// carries the row it removes, a tombstone for a key it never saw changes nothing, and a
/// message repeating a key's row unchanged is not passed on. Keys are compared as the bytes
/// Kafka holds, as compaction compares them.
pub struct Upserts<D, T> {
    decode: D,
    latest: BTreeMap<Vec<u8>, T>,
}

impl<D, T> Upserts<D, T> {
    pub fn new(decode: D) -> Self {
        Upserts {
            decode,
            latest: BTreeMap::new(),
        }
    }
}

impl<T, D> Messages<Change<T>> for Upserts<D, T>
where
    D: FnMut(&[u8]) -> Result<T, String>,
    T: Clone + PartialEq + Saved,
{
    const KEEPS_STATE: bool = true;

    fn record(
        &mut self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<Option<Change<T>>, String> {
        let Some(key) = key else {
            return Err("an upsert message needs a key".to_string());
        };
        if payload.is_none() {
            return Ok(self.latest.remove(key).map(Change::Delete));
        }
        let row = (self.decode)(payload.unwrap_or_default())?;
        if self.latest.get(key) == Some(&row) {
            return Ok(None);
        }
        self.latest.insert(key.to_vec(), row.clone());
        Ok(Some(Change::Upsert(row)))
    }

    fn save(&self) -> Vec<u8> {
        crate::state::encode(&self.latest)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.latest = crate::state::decode(bytes).map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Runs one instance of an upsert-Kafka source whose values are text (JSON, CSV): see
/// [`Upserts`].
pub fn run_upserts<T, D, C>(
    config: &KafkaSourceConfig,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    mut decode: D,
    slot: StateSlot,
    chain: C,
) -> Result<(), String>
where
    D: FnMut(&str) -> Result<T, DecodeError>,
    T: Clone + PartialEq + Saved,
    C: Collector<Change<T>>,
{
    let decode = move |payload: &[u8]| {
        let line = payload_line(Some(payload))?;
        decode(line).map_err(|e| e.to_string())
    };
    KafkaSource::new(config.clone()).run_messages(
        metrics,
        dead_letters,
        Upserts::new(decode),
        None,
        slot,
        chain,
    )
}

/// Runs one instance of an upsert-Kafka source whose values are binary (Avro records,
/// maybe in the Confluent wire format): see [`Upserts`]. A tombstone is a delete as with
/// text values; keys are compared as bytes whatever their format.
pub fn run_upsert_payloads<T, D, C>(
    config: &KafkaSourceConfig,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    mut decode: D,
    slot: StateSlot,
    chain: C,
) -> Result<(), String>
where
    D: FnMut(&[u8]) -> Result<T, DecodeError>,
    T: Clone + PartialEq + Saved,
    C: Collector<Change<T>>,
{
    let decode = move |payload: &[u8]| decode(payload).map_err(|e| e.to_string());
    KafkaSource::new(config.clone()).run_messages(
        metrics,
        dead_letters,
        Upserts::new(decode),
        None,
        slot,
        chain,
    )
}

/// Runs one instance of a Kafka source (what generated code calls).
pub fn run<T, D, C>(
    config: &KafkaSourceConfig,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    decode: D,
    event_time: Option<EventTime<T>>,
    slot: StateSlot,
    chain: C,
) -> Result<(), String>
where
    D: FnMut(&str) -> Result<T, DecodeError>,
    C: Collector<T>,
{
    KafkaSource::new(config.clone()).run(metrics, dead_letters, decode, event_time, slot, chain)
}

/// `partition 1 (next offset 40, end 90), partition 3 (nothing read, end unknown)`.
fn describe_unread(unread: &[(i32, Option<i64>, i64)]) -> String {
    unread
        .iter()
        .map(|(p, next, end)| {
            let next = next.map_or("nothing read".to_string(), |o| format!("next offset {o}"));
            let end = if *end < 0 {
                "end unknown".to_string()
            } else {
                format!("end {end}")
            };
            format!("partition {p} ({next}, {end})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(idle_ms: u64) -> KafkaSource {
        let args = RunArgs {
            idle_timeout: Some(Duration::from_millis(idle_ms)),
            ..RunArgs::default()
        };
        KafkaSource::new(KafkaSourceConfig::new(
            "s",
            "t",
            "127.0.0.1:1",
            "g",
            Start::Earliest,
            &[],
            &args,
        ))
    }

    fn clock(source: &KafkaSource, partition: i32, max: i64, age: Duration) {
        lock(&source.state).clocks.insert(
            partition,
            PartitionClock {
                max_event_time: max,
                last_message: Instant::now() - age,
                at_end: false,
            },
        );
    }

    #[test]
    fn watermark_is_the_minimum_over_active_partitions() {
        let s = source(1000);
        assert_eq!(
            s.watermark(10, Instant::now(), |_, _| true),
            Clock::Hold,
            "not joined yet"
        );
        lock(&s.state).assigned = true;
        assert_eq!(
            s.watermark(10, Instant::now(), |_, _| true),
            Clock::Idle,
            "no partitions"
        );
        clock(&s, 0, 500, Duration::ZERO);
        clock(&s, 1, 300, Duration::ZERO);
        assert_eq!(s.watermark(10, Instant::now(), |_, _| true), Clock::At(290));
        // Partition 1 goes idle: it stops holding the watermark back.
        clock(&s, 1, 300, Duration::from_secs(5));
        assert_eq!(s.watermark(10, Instant::now(), |_, _| true), Clock::At(490));
        // A partition without data yet holds it back until it is idle.
        clock(&s, 2, i64::MIN, Duration::ZERO);
        assert_eq!(s.watermark(10, Instant::now(), |_, _| true), Clock::Hold);
        clock(&s, 2, i64::MIN, Duration::from_secs(5));
        assert_eq!(s.watermark(10, Instant::now(), |_, _| true), Clock::At(490));
        // A silent partition that still has records to read is behind, not idle: it holds
        // the watermark back.
        assert_eq!(
            s.watermark(10, Instant::now(), |p, _| p != 1),
            Clock::At(290)
        );
        // Every partition idle: the instance is idle.
        clock(&s, 0, 500, Duration::from_secs(5));
        assert_eq!(s.watermark(10, Instant::now(), |_, _| true), Clock::Idle);
    }

    #[test]
    fn start_offsets_are_pending_until_assigned() {
        let args = RunArgs {
            kafka_properties: vec![("fetch.min.bytes".into(), "1".into())],
            ..RunArgs::default()
        };
        let mut config = KafkaSourceConfig::new(
            "s",
            "t",
            "b",
            "g",
            Start::Latest,
            &[("session.timeout.ms", "6000")],
            &args,
        );
        assert_eq!(
            config.properties,
            [
                ("session.timeout.ms".to_string(), "6000".to_string()),
                ("fetch.min.bytes".to_string(), "1".to_string())
            ]
        );
        config.start_offsets = Some(Positions {
            topic: "t".into(),
            next_offsets: BTreeMap::from([(3, 42)]),
        });
        let s = KafkaSource::new(config);
        assert_eq!(lock(&s.state).pending_starts, BTreeMap::from([(3, 42)]));
        assert!(s.positions().positions().next_offsets.is_empty());
        let list = Positions {
            topic: "t".into(),
            next_offsets: BTreeMap::from([(0, 7), (2, 9)]),
        }
        .to_list();
        assert_eq!(list.count(), 2);
        assert_eq!(
            list.find_partition("t", 2).map(|e| e.offset()),
            Some(Offset::Offset(9))
        );
    }
}
