//! Talking to the Kafka-protocol broker the tests run against (`WEIR_KAFKA_BROKERS`; `.ci/run`
//! starts one): topics, producing input, reading output and committed offsets, with the
//! runtime's own client (rdkafka).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use weir_runtime::kafka::rdkafka;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientConfig;

/// Group settings every test consumer and pipeline uses: this broker makes a group join wait
/// about half the session timeout.
pub const GROUP_PROPERTIES: &str = "session.timeout.ms=6000,heartbeat.interval.ms=2000";
/// A pipeline's source ends after this long without a message.
pub const STOP_AFTER_IDLE_MS: &str = "1500";

/// The broker under test, or `None` (with a message) when none is configured outside CI.
pub fn broker() -> Option<String> {
    match std::env::var("WEIR_KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => Some(b),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => panic!(
            "WEIR_KAFKA_BROKERS is not set: under CI the Kafka tests need a broker (.ci/run starts one)"
        ),
        _ => {
            eprintln!(
                "skipping: no Kafka broker (set WEIR_KAFKA_BROKERS=host:port to one that hides \
                 aborted transactions from read_committed readers, such as Kafka or the patched \
                 nisshi .ci/run builds, or run .ci/run)"
            );
            None
        }
    }
}

/// A topic name no other test or run has used.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("weir-{prefix}-{}-{nanos}", std::process::id())
}

pub use weir_runtime::kafka::floor::block_on;

pub fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = block_on(admin.create_topics(&[new], &AdminOptions::new()))
        .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"));
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating topic {t}: {e}"));
    }
}

/// Produces `(partition, payload)` messages and waits until all are delivered.
pub fn produce(brokers: &str, topic: &str, messages: &[(i32, String)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for (partition, payload) in messages {
        let record = BaseRecord::<(), str>::to(topic)
            .payload(payload.as_str())
            .partition(*partition);
        send(&producer, record);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("input delivered");
}

/// Sends `record`, serving delivery reports while the producer's queue is full.
fn send<K, P>(producer: &BaseProducer, mut record: BaseRecord<'_, K, P>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, back)) => {
                record = back;
                producer.poll(Duration::from_millis(20));
            }
        }
    }
}

/// Produces `(key, payload)` messages, each to the partition the producer picks for its key
/// (a `None` payload is a tombstone), and waits until all are delivered.
pub fn produce_keyed(brokers: &str, topic: &str, messages: &[(Option<&str>, Option<String>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for (key, payload) in messages {
        let mut record = BaseRecord::<str, str>::to(topic);
        if let Some(k) = key {
            record = record.key(*k);
        }
        if let Some(p) = payload {
            record = record.payload(p.as_str());
        }
        send(&producer, record);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("input delivered");
}

/// Reads every partition of `topic` from the start until `expected` messages arrived (or 20 s
/// passed), as exactly-once output is read (`read_committed`): `(key, payload)` pairs.
pub fn consume(brokers: &str, topic: &str, expected: usize) -> Vec<(Option<String>, String)> {
    consume_isolated(brokers, topic, expected, "read_committed")
}

/// [`consume`] at another `isolation.level` (`read_uncommitted` also shows the records of
/// open and aborted transactions).
pub fn consume_isolated(
    brokers: &str,
    topic: &str,
    expected: usize,
    isolation: &str,
) -> Vec<(Option<String>, String)> {
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    consume_bytes(brokers, topic, expected, isolation)
        .into_iter()
        .map(|(key, payload)| (key.map(text), text(payload)))
        .collect()
}

/// The messages of `topic` as bytes (key, payload): every partition from the beginning, until
/// `expected` came (or 20 s passed), then on until nothing came for a second.
pub fn consume_bytes(
    brokers: &str,
    topic: &str,
    expected: usize,
    isolation: &str,
) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("topic metadata");
    let mut assignment = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment
                .add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let bytes = |b: Option<&[u8]>| b.map(<[u8]>::to_vec);
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < expected && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.expect("output message");
            out.push((
                bytes(message.key()),
                bytes(message.payload()).unwrap_or_default(),
            ));
        }
    }
    // Anything beyond what was expected (duplicates) shows up too: read on until nothing came
    // for a second.
    let mut quiet = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            quiet = Instant::now() + Duration::from_secs(1);
            out.push((
                bytes(message.key()),
                bytes(message.payload()).unwrap_or_default(),
            ));
        }
    }
    out
}

/// Produces `(partition, payload)` messages of bytes and waits until all are delivered.
pub fn produce_bytes(brokers: &str, topic: &str, messages: &[(i32, Vec<u8>)]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("producer");
    for (partition, payload) in messages {
        let record = BaseRecord::<(), [u8]>::to(topic)
            .payload(payload.as_slice())
            .partition(*partition);
        send(&producer, record);
    }
    producer
        .flush(Duration::from_secs(30))
        .expect("input delivered");
}

/// The offsets `group` committed for each partition of `topic`.
pub fn committed(brokers: &str, topic: &str, group: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    list.add_partition_range(topic, 0, partitions - 1);
    let offsets = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    offsets
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The oracle of the windowed order pipelines the Kafka tests run (orders with `amount` at
/// least `min_amount`, counted and summed per customer and 10-second tumbling window):
/// `customer,window_start,n,total` rows, from `(customer, amount, ts)` orders.
pub fn window_totals<'a>(
    orders: impl IntoIterator<Item = (&'a str, i64, i64)>,
    min_amount: i64,
) -> std::collections::BTreeSet<String> {
    let mut groups: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
    for (customer, amount, ts) in orders {
        if amount < min_amount {
            continue;
        }
        let e = groups
            .entry((customer.to_string(), ts.div_euclid(10_000) * 10_000))
            .or_default();
        e.0 += 1;
        e.1 += amount;
    }
    groups
        .into_iter()
        .map(|((c, start), (n, total))| format!("{c},{},{n},{total}", crate::format_ts(start)))
        .collect()
}

/// One output row of those pipelines (`{"customer":..,"window_start":..,"n":..,"total":..}`)
/// as a `customer,window_start,n,total` row.
pub fn window_row(json: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("output {json:?} is not JSON: {e}"));
    format!(
        "{},{},{},{}",
        v["customer"].as_str().expect("customer"),
        v["window_start"].as_str().expect("window_start"),
        v["n"],
        v["total"]
    )
}

/// Output messages of those pipelines as `customer,window_start,n,total` rows, checking that
/// each message is keyed by its customer.
pub fn keyed_window_rows(messages: &[(Option<String>, String)]) -> Vec<String> {
    messages
        .iter()
        .map(|(key, payload)| {
            let row = window_row(payload);
            let customer = row.split(',').next().unwrap_or_default();
            assert_eq!(key.as_deref(), Some(customer), "message key of {payload}");
            row
        })
        .collect()
}
