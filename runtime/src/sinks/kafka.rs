//! The Kafka sink: encodes each row with the generated encoder (JSON or CSV, without the
//! trailing newline) and produces it as one message, keyed by a field when the pipeline says
//! `key: field`. An updating stream goes through [`UpsertKafkaSink`]: each change keyed by
//! its upsert key, a delete as a message without a payload (a tombstone).
//!
//! Delivery is at least once: librdkafka retries, the sink waits for every outstanding message
//! at the end of input (`flush`), and a message that cannot be delivered fails the run with
//! librdkafka's reason (reported through [`Errors`]). With checkpoints on, a barrier waits for
//! every earlier message, so a checkpoint never covers an undelivered one. Each sink instance
//! has its own producer, made by [`KafkaSinkConfig::producer`] alone.
//!
//! `delivery: "exactly_once"` (needs `--checkpoint-dir`): all instances of the sink produce
//! through one transactional producer with a stable `transactional.id` (`weir-<sink id>`,
//! and `-pN` in a scale-out task), one transaction per checkpoint epoch, so that an epoch's
//! output of every instance commits as one (with a transaction per instance, a crash between
//! two instances' commits would make the restart replay an epoch one of them had already
//! committed). At a barrier an instance flushes, notes the transaction in the checkpoint and
//! holds its next messages; once the checkpoint is complete the checkpoint thread (or the
//! first instance to see it) commits the transaction together with a marker (the checkpoint id, committed as the offset
//! of partition 0 of the output topic for the group `weir-txn-<transactional.id>`) and begins
//! the next, and every instance then sends what it held. If the run dies between the
//! manifest and the commit, the restart finds the marker behind the manifest and resumes from
//! the checkpoint before it (see `checkpoint::Verifiers`); the unfinished transaction
//! is aborted when the restarted producer calls `init_transactions` (which also fences any
//! older producer still alive). The last epoch is committed when the run ends, only if every
//! task succeeded (`StateSlot::on_final_commit`). Readers must use
//! `isolation.level=read_committed`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::change::Change;
use crate::run::{Errors, RunArgs};

/// How long the end of input waits for outstanding messages.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// A Kafka sink as the pipeline declares it, with the command line's properties.
#[derive(Clone, Debug)]
pub struct KafkaSinkConfig {
    /// The sink's label (messages).
    pub name: String,
    pub topic: String,
    pub brokers: String,
    /// The pipeline's `properties:`, then `--kafka-property` (later ones win).
    pub properties: Vec<(String, String)>,
    /// Transactions committed with checkpoints.
    pub exactly_once: bool,
    /// Payloads are binary (Avro): sent as encoded, never trimmed of a line end.
    pub binary: bool,
}

impl KafkaSinkConfig {
    pub fn new(
        name: &str,
        topic: &str,
        brokers: &str,
        properties: &[(&str, &str)],
        args: &RunArgs,
    ) -> Self {
        let mut props = crate::kafka::properties(properties);
        props.extend(args.kafka_properties.iter().cloned());
        KafkaSinkConfig {
            name: name.to_string(),
            topic: topic.to_string(),
            brokers: brokers.to_string(),
            properties: props,
            exactly_once: false,
            binary: false,
        }
    }

    /// Binary payloads (Avro): a last byte that happens to be `\n` is data.
    pub fn binary(mut self, on: bool) -> Self {
        self.binary = on;
        self
    }

    /// `delivery: "exactly_once"`.
    pub fn exactly_once(mut self, on: bool) -> Self {
        self.exactly_once = on;
        self
    }

    /// The one place producers are made; `transactional_id` makes a transactional one.
    fn producer(
        &self,
        failures: Failures,
        transactional_id: Option<&str>,
    ) -> Result<BaseProducer<DeliveryContext>, String> {
        let mut settings = vec![
            // At least once without duplicates from librdkafka's own retries.
            ("enable.idempotence", "true"),
            ("linger.ms", "5"),
        ];
        if let Some(id) = transactional_id {
            settings.push(("transactional.id", id));
        }
        crate::kafka::client_config(&self.brokers, &settings, &self.properties, &[])
            .create_with_context(DeliveryContext { failures })
            .map_err(|e| format!("sink `{}`: kafka: {e}", self.name))
    }
}

/// Delivery failures: how many, and the first reason.
#[derive(Clone, Default)]
struct Failures(Arc<Mutex<(u64, Option<String>)>>);

impl Failures {
    fn add(&self, reason: String) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.0 += 1;
        f.1.get_or_insert(reason);
    }

    fn take(&self) -> (u64, Option<String>) {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

struct DeliveryContext {
    failures: Failures,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((err, _)) = result {
            self.failures.add(err.to_string());
        }
    }
}

/// A message held for the next transaction: its key and payload, either possibly absent.
type HeldMessage = (Option<Vec<u8>>, Option<Vec<u8>>);

/// One sink instance: a producer and the generated encoder and key function.
pub struct KafkaSink<E, K> {
    config: KafkaSinkConfig,
    /// Exactly once: the sink's shared transactional producer.
    producer: Option<Arc<BaseProducer<DeliveryContext>>>,
    failures: Failures,
    errors: Errors,
    encode: E,
    /// Writes the row's key and returns true, or returns false for no key (a null).
    key: Option<K>,
    buf: Vec<u8>,
    key_buf: Vec<u8>,
    /// Records the producer refused (not counting delivery failures).
    refused: u64,
    first_refusal: Option<String>,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
    /// Exactly once: the transaction all instances of the sink share.
    transaction: Option<Arc<Transaction>>,
    /// Exactly once: the checkpoint whose transaction is sealed and waits for the checkpoint
    /// to complete, and the next epoch's messages (key, payload), held until it has.
    awaiting: Option<u64>,
    /// (A message without a payload is a tombstone: the delete of its key.)
    held: Vec<HeldMessage>,
    /// Exactly once: a checkpoint was given up (the run is failing): nothing more is sent.
    given_up: bool,
    /// Exactly once: the checkpoint folder's id (its markers' group names carry it).
    folder: String,
}

/// The transaction every instance of one exactly-once sink produces into.
struct Transaction {
    id: String,
    /// The output topic: the marker is an offset of its partition 0.
    topic: String,
    producer: Arc<BaseProducer<DeliveryContext>>,
    failures: Failures,
    marker: rdkafka::consumer::ConsumerGroupMetadata,
    /// The checkpoint whose epoch was committed last (0: none yet).
    committed: Mutex<u64>,
}

impl Transaction {
    /// Commits the open transaction with `checkpoint` as its marker and begins the next,
    /// unless another instance already has.
    fn commit_through(&self, checkpoint: u64, sink: &str) -> Result<(), String> {
        let mut committed = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        if *committed >= checkpoint {
            return Ok(());
        }
        let mut marker = rdkafka::TopicPartitionList::new();
        marker
            .add_partition_offset(&self.topic, 0, rdkafka::Offset::Offset(checkpoint as i64))
            .map_err(|e| format!("sink `{sink}`: kafka: {e}"))?;
        self.producer
            .send_offsets_to_transaction(&marker, &self.marker, TXN_TIMEOUT)
            .and_then(|_| self.producer.commit_transaction(TXN_TIMEOUT))
            .and_then(|_| self.producer.begin_transaction())
            .map_err(|e| {
                format!("sink `{sink}`: kafka: cannot commit the transaction of checkpoint {checkpoint}: {e}")
            })?;
        *committed = checkpoint;
        Ok(())
    }
}

/// How long transactional calls may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// The group whose committed offset marks the last checkpoint a transactional sink committed
/// from the checkpoint folder `folder` (markers are per folder: a folder made again never
/// mistakes an old marker for its own).
fn marker_group(transactional_id: &str, folder: &str) -> String {
    if folder.is_empty() {
        format!("weir-txn-{transactional_id}")
    } else {
        format!("weir-txn-{transactional_id}-{folder}")
    }
}

/// Verifies a `kafka-txn` note: did the sink commit its transaction of `checkpoint`?
/// Note: `kafka-txn <brokers> <transactional id> <topic> <folder id>`. `properties`: the
/// run's `--kafka-property` values.
pub fn verify_transaction(
    note: &str,
    checkpoint: u64,
    properties: &[(String, String)],
) -> Result<crate::checkpoint::Verdict, String> {
    use crate::checkpoint::Verdict;
    let mut parts = note.split(' ').skip(1);
    let (Some(brokers), Some(id), Some(topic)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("malformed note `{note}`"));
    };
    let folder = parts.next().unwrap_or_default();
    use rdkafka::consumer::{BaseConsumer, Consumer};
    // The command line's `--kafka-property` values apply (another `bootstrap.servers`,
    // security settings), as they do to the sink itself.
    let extra = properties;
    // A producer killed inside `commit_through` may have left the marker pending (offsets
    // sent to its transaction, the commit not): readers then get no stable marker (or wait
    // for the transaction to time out). Fencing its transactional id aborts that transaction
    // first, so the marker read below is the last one committed.
    let fence: BaseProducer = crate::kafka::client_config(
        brokers,
        &[("enable.idempotence", "true")],
        extra,
        &[("transactional.id".to_string(), id.to_string())],
    )
    .create()
    .map_err(|e| format!("kafka: {e}"))?;
    fence
        .init_transactions(TXN_TIMEOUT)
        .map_err(|e| format!("kafka: cannot fence the transactions of `{id}`: {e}"))?;
    drop(fence);
    // The marker group and isolation level win over `--kafka-property` (a `group.id` there
    // is meant for the sources).
    let consumer: BaseConsumer = crate::kafka::client_config(
        brokers,
        &[],
        extra,
        &[
            ("group.id".to_string(), marker_group(id, folder)),
            // The last committed marker, without waiting for "stable" offsets: after the
            // fence above nothing of this id is pending.
            (
                "isolation.level".to_string(),
                "read_uncommitted".to_string(),
            ),
        ],
    )
    .create()
    .map_err(|e| format!("kafka: {e}"))?;
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .map_err(|e| format!("kafka: cannot read the commit marker of `{id}`: {e}"))?;
    match committed.elements().first().map(|e| e.offset()) {
        Some(rdkafka::Offset::Offset(o)) if o as u64 >= checkpoint => Ok(Verdict::Committed),
        Some(rdkafka::Offset::Offset(_)) => Ok(Verdict::Behind),
        // No marker: nothing committed yet, or the marker group's offsets expired, or these
        // are other brokers (recovery tells these apart by whether an older checkpoint
        // exists).
        _ => Ok(Verdict::NoMarker),
    }
}

impl<E, K> KafkaSink<E, K> {
    /// A sink that produces to `config.topic`; a producer that cannot be created fails the
    /// run (its rows are dropped).
    pub fn new(
        config: KafkaSinkConfig,
        metrics: OpMetrics,
        errors: Errors,
        encode: E,
        key: Option<K>,
    ) -> Self {
        let failures = Failures::default();
        // A transactional producer is made in `with_state`, once its id is known.
        let producer = match config.producer(failures.clone(), None) {
            Ok(p) => Some(Arc::new(p)),
            Err(e) => {
                errors.report(e);
                None
            }
        };
        KafkaSink {
            config,
            producer,
            failures,
            errors,
            encode,
            key,
            buf: Vec::with_capacity(1024),
            key_buf: Vec::new(),
            refused: 0,
            first_refusal: None,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
            transaction: None,
            awaiting: None,
            held: Vec::new(),
            given_up: false,
            folder: String::new(),
        }
    }

    /// Takes part in checkpoints through `slot`: a checkpoint completes only once every
    /// message before its barrier is delivered (at least once across restarts). Nothing is
    /// restored: messages after the checkpoint are produced again.
    pub fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String> {
        let _ = slot.take_restored();
        if self.config.exactly_once {
            if !slot.is_active() {
                return Err(format!(
                    "sink `{}`: delivery \"exactly_once\" commits a transaction per checkpoint: \
                     run with --checkpoint-dir",
                    self.config.name
                ));
            }
            self.begin_transactions(&slot)?;
        }
        self.slot = slot;
        Ok(self)
    }

    /// Joins the sink's shared transaction, made by the first instance: a transactional
    /// producer (fencing older ones and aborting their open transaction) with the first
    /// transaction begun, committed at the end of a successful run.
    fn begin_transactions(&mut self, slot: &StateSlot) -> Result<(), String> {
        self.folder = slot.folder_id().to_string();
        let id = crate::scale_out::task_name(format!("weir-{}", slot.id()));
        // Shared by the sink's instances in this run (never across runs of one process).
        let txn = slot.shared(&format!("kafka-txn {id}"), || {
            let txn = Arc::new(self.transaction(&id)?);
            let (last, name) = (txn.clone(), self.config.name.clone());
            slot.on_final_commit(
                self.note(&txn),
                Box::new(move |final_id| last.commit_through(final_id, &name)),
            );
            // Commit as soon as a checkpoint is complete, from the checkpoint thread, too:
            // the instances would only commit at their next record, watermark or barrier.
            let (now, name) = (txn.clone(), self.config.name.clone());
            slot.on_complete(Box::new(move |id| now.commit_through(id, &name)));
            Ok(txn)
        })?;
        self.producer = Some(txn.producer.clone());
        self.failures = txn.failures.clone();
        self.transaction = Some(txn);
        Ok(())
    }

    fn transaction(&self, id: &str) -> Result<Transaction, String> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let name = &self.config.name;
        let failures = Failures::default();
        let producer = self.config.producer(failures.clone(), Some(id))?;
        producer
            .init_transactions(TXN_TIMEOUT)
            .map_err(|e| format!("sink `{name}`: kafka: cannot start transactions: {e}"))?;
        producer
            .begin_transaction()
            .map_err(|e| format!("sink `{name}`: kafka: {e}"))?;
        let group: BaseConsumer = crate::kafka::client_config(
            &self.config.brokers,
            &[],
            &self.config.properties,
            &[("group.id".to_string(), marker_group(id, &self.folder))],
        )
        .create()
        .map_err(|e| format!("sink `{name}`: kafka: {e}"))?;
        let marker = group.group_metadata().ok_or_else(|| {
            format!("sink `{name}`: kafka: no group metadata for the commit marker")
        })?;
        Ok(Transaction {
            id: id.to_string(),
            topic: self.config.topic.clone(),
            producer: Arc::new(producer),
            failures,
            marker,
            committed: Mutex::new(0),
        })
    }

    /// What a checkpoint notes about the transaction (read by [`verify_transaction`]).
    fn note(&self, txn: &Transaction) -> String {
        format!(
            "kafka-txn {} {} {} {}",
            self.config.brokers, txn.id, self.config.topic, self.folder
        )
    }

    /// Resolves the sealed epoch: once its checkpoint is complete, the transaction is
    /// committed (by this instance or another) and the held messages are produced into the
    /// next one. A checkpoint given up means the run is failing: nothing more is sent (a
    /// restart replays from the last complete checkpoint). With `block`, waits for the
    /// checkpoint to be decided.
    fn settle(&mut self, block: bool) {
        let Some(n) = self.awaiting else {
            return;
        };
        let Some(complete) = self.slot.decided(n, block) else {
            return;
        };
        self.awaiting = None;
        if !complete {
            // The run fails (so that the last epoch is never committed): a restart resumes
            // from the last complete checkpoint.
            self.errors.report(format!(
                "sink `{}`: checkpoint {n} was given up; the rows after it are not written",
                self.config.name
            ));
            self.given_up = true;
            self.held.clear();
            return;
        }
        if let Some(txn) = &self.transaction {
            if let Err(e) = txn.commit_through(n, &self.config.name) {
                self.errors.report(e);
                self.given_up = true;
                self.held.clear();
                return;
            }
        }
        for (key, payload) in std::mem::take(&mut self.held) {
            self.send(key.as_deref(), payload.as_deref());
        }
    }

    /// Produces one message (without a payload: a tombstone), serving delivery reports while
    /// the local queue is full; a message the producer refuses is counted (the run fails at
    /// the end with the first reason).
    fn send(&mut self, key: Option<&[u8]>, payload: Option<&[u8]>) {
        let Some(producer) = &self.producer else {
            return;
        };
        loop {
            let mut message = BaseRecord::<[u8], [u8]>::to(&self.config.topic);
            if let Some(p) = payload {
                message = message.payload(p);
            }
            if let Some(k) = key {
                message = message.key(k);
            }
            match producer.send(message) {
                Ok(()) => return,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(50));
                }
                Err((err, _)) => {
                    self.refused += 1;
                    self.first_refusal.get_or_insert(err.to_string());
                    return;
                }
            }
        }
    }

    /// Waits until every message produced so far is delivered or has failed.
    fn flush(&mut self, when: &str) {
        if let Some(producer) = &self.producer {
            if let Err(e) = producer.flush(FLUSH_TIMEOUT) {
                self.errors.report(format!(
                    "sink `{}`: kafka: messages to topic `{}` not delivered {when}: {e}",
                    self.config.name, self.config.topic
                ));
            }
        }
    }
}

impl<T, E, K> Collector<T> for KafkaSink<E, K>
where
    E: FnMut(&T, &mut Vec<u8>),
    K: FnMut(&T, &mut Vec<u8>) -> bool,
{
    fn push(&mut self, record: &T) {
        self.stats.records_in += 1;
        if self.producer.is_none() || self.given_up {
            return;
        }
        self.encode_row(record);
        let has_key = self.encode_key(record);
        self.produce(has_key, true);
    }

    fn watermark(&mut self, watermark: i64) {
        self.on_watermark(watermark);
    }

    fn tick(&mut self) {
        self.on_tick();
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.on_barrier(checkpoint);
    }

    fn finish(&mut self) {
        self.on_finish();
    }
}

/// A Kafka sink of an updating stream (`upsert-kafka` in Flink's terms): each change is a
/// message keyed by the row's upsert key, an upsert carrying the row and a delete carrying no
/// payload (a tombstone), so a compacted topic keeps the latest row per key. Changes of one
/// key come from one upstream instance, in order, to the key's partition.
pub struct UpsertKafkaSink<E, K>(KafkaSink<E, K>);

impl<E, K> UpsertKafkaSink<E, K> {
    /// `key` writes the upsert key of a row (in the sink's format).
    pub fn new(
        config: KafkaSinkConfig,
        metrics: OpMetrics,
        errors: Errors,
        encode: E,
        key: K,
    ) -> Self {
        UpsertKafkaSink(KafkaSink::new(config, metrics, errors, encode, Some(key)))
    }

    /// See [`KafkaSink::with_state`].
    pub fn with_state(self, slot: StateSlot) -> Result<Self, String> {
        self.0.with_state(slot).map(UpsertKafkaSink)
    }
}

impl<T, E, K> Collector<Change<T>> for UpsertKafkaSink<E, K>
where
    E: FnMut(&T, &mut Vec<u8>),
    K: FnMut(&T, &mut Vec<u8>) -> bool,
{
    fn push(&mut self, change: &Change<T>) {
        let sink = &mut self.0;
        sink.stats.records_in += 1;
        if sink.producer.is_none() || sink.given_up {
            return;
        }
        let row = change.row();
        let has_key = sink.encode_key(row);
        let upsert = matches!(change, Change::Upsert(_));
        if upsert {
            sink.encode_row(row);
        }
        sink.produce(has_key, upsert);
    }

    fn watermark(&mut self, watermark: i64) {
        self.0.on_watermark(watermark);
    }

    fn tick(&mut self) {
        self.0.on_tick();
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.0.on_barrier(checkpoint);
    }

    fn finish(&mut self) {
        self.0.on_finish();
    }
}

impl<E, K> KafkaSink<E, K> {
    /// Encodes `record` into `buf`, without its line end.
    fn encode_row<T>(&mut self, record: &T)
    where
        E: FnMut(&T, &mut Vec<u8>),
    {
        self.buf.clear();
        (self.encode)(record, &mut self.buf);
        while !self.config.binary && self.buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            self.buf.pop();
        }
    }

    /// Writes `record`'s key into `key_buf`; false when the message has none.
    fn encode_key<T>(&mut self, record: &T) -> bool
    where
        K: FnMut(&T, &mut Vec<u8>) -> bool,
    {
        let Some(key) = &mut self.key else {
            return false;
        };
        self.key_buf.clear();
        let has_key = key(record, &mut self.key_buf);
        while self
            .key_buf
            .last()
            .is_some_and(|b| *b == b'\n' || *b == b'\r')
        {
            self.key_buf.pop();
        }
        has_key
    }

    /// Produces the message encoded in `key_buf` (if `has_key`) and `buf` (if `has_payload`;
    /// a tombstone otherwise), or holds it while the previous epoch's transaction waits for
    /// its checkpoint.
    fn produce(&mut self, has_key: bool, has_payload: bool) {
        if let Some(n) = self.awaiting {
            // The previous epoch's transaction is not committed yet: this message belongs to
            // the next one. Cheap check first; hold it if still waiting.
            if self.slot.completed() >= n {
                self.settle(false);
            }
            if self.awaiting.is_some() {
                let key = has_key.then(|| self.key_buf.clone());
                let payload = has_payload.then(|| self.buf.clone());
                self.held.push((key, payload));
                self.stats.records_out += 1;
                return;
            }
        }
        let (buf, key_buf) = (
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.key_buf),
        );
        self.send(
            has_key.then_some(key_buf.as_slice()),
            has_payload.then_some(buf.as_slice()),
        );
        (self.buf, self.key_buf) = (buf, key_buf);
        self.stats.records_out += 1;
        if self.stats.records_in.get().is_multiple_of(1024) {
            if let Some(producer) = &self.producer {
                producer.poll(Duration::ZERO);
            }
        }
    }

    fn on_watermark(&mut self, _watermark: i64) {
        if self.awaiting.is_some() {
            self.settle(false);
        }
        if let Some(producer) = &self.producer {
            producer.poll(Duration::ZERO);
        }
    }

    /// librdkafka sends on its own threads (after `linger.ms`); the tick serves delivery
    /// reports and lets a transaction committed meanwhile release the held messages.
    fn on_tick(&mut self) {
        if self.awaiting.is_some() {
            self.settle(false);
        }
        if let Some(producer) = &self.producer {
            producer.poll(Duration::ZERO);
        }
    }

    /// At least once: the checkpoint completes once everything before it is delivered.
    /// Exactly once: the epoch's transaction is sealed and noted in the checkpoint; it is
    /// committed once the checkpoint is complete (aborted if it never completes: a restart
    /// replays it). The barrier does not wait for that: it must reach the other consumers of
    /// this task's stream, whose parts the checkpoint needs; the next epoch's messages are
    /// held meanwhile.
    fn on_barrier(&mut self, checkpoint: u64) {
        if self.awaiting.is_some() {
            self.settle(false);
        }
        if self.awaiting.is_some() {
            // Only one transaction can be open: the checkpoint before this one is still
            // being completed elsewhere (it cannot be: a checkpoint is asked for only after
            // the previous one is done). Wait for it.
            self.settle(true);
        }
        self.flush(&format!("by checkpoint {checkpoint}"));
        // Saving a part of this checkpoint says the previous epoch is committed (recovery
        // relies on it): a sink whose commit failed, or with undelivered messages, never
        // saves again.
        if self.given_up || self.failures.0.lock().unwrap_or_else(|e| e.into_inner()).0 != 0 {
            // Never saving would leave the checkpoint in flight for ever.
            self.slot.abandon();
            return;
        }
        let Some(txn) = &self.transaction else {
            self.slot.save(checkpoint, &[], Vec::new());
            return;
        };
        let note = self.note(txn);
        self.slot
            .save_noted(checkpoint, &[], Vec::new(), vec![note]);
        self.awaiting = Some(checkpoint);
    }

    fn on_finish(&mut self) {
        // Every barrier has been passed on by now, so waiting cannot hold up a checkpoint.
        self.settle(true);
        // Exactly once: the last epoch is committed by the checkpoint coordinator once every
        // task has ended well (see `begin_transactions`).
        self.flush("at the end");
        let (failed, reason) = self.failures.take();
        if failed > 0 {
            self.errors.report(format!(
                "sink `{}`: kafka: {failed} message(s) to topic `{}` could not be delivered: {}",
                self.config.name,
                self.config.topic,
                reason.unwrap_or_default()
            ));
        }
        if self.refused > 0 {
            self.errors.report(format!(
                "sink `{}`: kafka: {} message(s) to topic `{}` were refused: {}",
                self.config.name,
                self.refused,
                self.config.topic,
                self.first_refusal.take().unwrap_or_default()
            ));
        }
        self.metrics.report(&self.stats);
    }
}
