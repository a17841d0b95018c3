//! The Kafka sink: encodes each row with the generated encoder (JSON or CSV, without the
//! trailing newline) and produces it as one message, keyed by a field when the pipeline says
//! `key: field`.
//!
//! Delivery is at least once: librdkafka retries, the sink waits for every outstanding message
//! at the end of input (`flush`), and a message that cannot be delivered fails the run with
//! librdkafka's reason (reported through [`Errors`]). With checkpoints on, a barrier waits for
//! every earlier message, so a checkpoint never covers an undelivered one. Each sink instance
//! has its own producer, made by [`KafkaSinkConfig::producer`] alone: a transactional
//! (exactly-once) mode would set its `transactional.id` there, and begin and commit
//! transactions around checkpoints in `barrier`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::metrics::{OpMetrics, OpStats};
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
        }
    }

    /// The one place producers are made.
    fn producer(&self, failures: Failures) -> Result<BaseProducer<DeliveryContext>, String> {
        crate::kafka::client_config(
            &self.brokers,
            &[
                // At least once without duplicates from librdkafka's own retries.
                ("enable.idempotence", "true"),
                ("linger.ms", "5"),
            ],
            &self.properties,
            &[],
        )
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

/// One sink instance: a producer and the generated encoder and key function.
pub struct KafkaSink<E, K> {
    config: KafkaSinkConfig,
    producer: Option<BaseProducer<DeliveryContext>>,
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
    stats: OpStats,
    metrics: OpMetrics,
    slot: StateSlot,
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
        let producer = match config.producer(failures.clone()) {
            Ok(p) => Some(p),
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
            stats: OpStats::default(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    /// Takes part in checkpoints through `slot`: a checkpoint completes only once every
    /// message before its barrier is delivered (at least once across restarts). Nothing is
    /// restored: messages after the checkpoint are produced again.
    pub fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String> {
        let _ = slot.take_restored();
        self.slot = slot;
        Ok(self)
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
        let Some(producer) = &self.producer else {
            return;
        };
        self.buf.clear();
        (self.encode)(record, &mut self.buf);
        while self.buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            self.buf.pop();
        }
        let has_key = match &mut self.key {
            Some(key) => {
                self.key_buf.clear();
                key(record, &mut self.key_buf)
            }
            None => false,
        };
        loop {
            let mut message = BaseRecord::to(&self.config.topic).payload(self.buf.as_slice());
            if has_key {
                message = message.key(self.key_buf.as_slice());
            }
            match producer.send(message) {
                Ok(()) => break,
                // The local queue is full: serve delivery reports until there is room.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(50));
                }
                Err((err, _)) => {
                    self.refused += 1;
                    self.first_refusal.get_or_insert(err.to_string());
                    break;
                }
            }
        }
        self.stats.records_out += 1;
        if self.stats.records_in.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
        }
    }

    fn watermark(&mut self, _watermark: i64) {
        if let Some(producer) = &self.producer {
            producer.poll(Duration::ZERO);
        }
    }

    /// A transactional mode would commit its transaction when this checkpoint completes.
    fn barrier(&mut self, checkpoint: u64) {
        self.flush(&format!("by checkpoint {checkpoint}"));
        if self.failures.0.lock().unwrap_or_else(|e| e.into_inner()).0 == 0 {
            self.slot.save(checkpoint, &[], Vec::new());
        }
    }

    fn finish(&mut self) {
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
