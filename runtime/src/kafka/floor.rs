//! The floor of `weir bench --input kafka`: what a bare rdkafka consumer reads from a topic,
//! with the same client settings as a weir Kafka source ([`KafkaSourceConfig::client_config`]),
//! polling one message at a time with `BaseConsumer::poll` and touching each payload (its
//! length and first byte are summed), nothing decoded. The benchmark builds a small helper
//! binary around [`main`], which also (re)creates the benchmark's topic.

use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::ClientConfig;

use crate::run::RunArgs;
use crate::sources::kafka::{KafkaSourceConfig, Start};

/// What reading a topic to its end took.
#[derive(Clone, Copy, Debug)]
pub struct Read {
    pub records: u64,
    /// Payload bytes read.
    pub bytes: u64,
    /// From the first message received to the last one expected.
    pub first_to_last: Duration,
}

/// Deletes `topic` if it exists and creates it empty with `partitions` partitions (the
/// benchmark fills a fresh topic every run).
pub fn recreate_topic(brokers: &str, topic: &str, partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .map_err(|e| format!("kafka: {e}"))?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let deleted = block_on(admin.delete_topics(&[topic], &options))
        .map_err(|e| format!("kafka: cannot delete topic `{topic}` on {brokers}: {e}"))?;
    for result in deleted {
        if let Err((_, code)) = result {
            if code != RDKafkaErrorCode::UnknownTopicOrPartition {
                return Err(format!("kafka: cannot delete topic `{topic}`: {code}"));
            }
        }
    }
    // A deletion may take a moment to show: retry while the topic still exists.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let created = block_on(admin.create_topics(&[new], &options))
            .map_err(|e| format!("kafka: cannot create topic `{topic}` on {brokers}: {e}"))?;
        match created.into_iter().find_map(Result::err) {
            None => return Ok(()),
            Some((_, RDKafkaErrorCode::TopicAlreadyExists)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(200));
            }
            Some((_, code)) => {
                return Err(format!("kafka: cannot create topic `{topic}`: {code}"));
            }
        }
    }
}

/// Reads `records` messages of `config`'s topic (from the start, in a group of its own) and
/// times them from the first message to the last. Fails when nothing arrives for `patience`.
pub fn read_topic(
    config: &KafkaSourceConfig,
    records: u64,
    patience: Duration,
) -> Result<Read, String> {
    let consumer: BaseConsumer = config
        .client_config()
        .create()
        .map_err(|e| format!("kafka: {e}"))?;
    consumer
        .subscribe(&[config.topic.as_str()])
        .map_err(|e| format!("kafka: {e}"))?;
    let (mut read, mut bytes, mut first_bytes) = (0u64, 0u64, 0u64);
    let mut first: Option<Instant> = None;
    let mut last_seen = Instant::now();
    let mut reported = Vec::new();
    while read < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if first.is_none() {
                    first = Some(Instant::now());
                }
                let payload = message.payload().unwrap_or_default();
                bytes += payload.len() as u64;
                first_bytes += u64::from(payload.first().copied().unwrap_or(0));
                read += 1;
            }
            Some(Err(e)) => {
                let text = e.to_string();
                if !reported.contains(&text) {
                    eprintln!("floor: kafka: {text}");
                    reported.push(text);
                }
            }
            None => {
                if last_seen.elapsed() >= patience {
                    return Err(format!(
                        "kafka: nothing read from `{}` for {} s ({read} of {records} messages)",
                        config.topic,
                        patience.as_secs()
                    ));
                }
                continue;
            }
        }
        last_seen = Instant::now();
    }
    std::hint::black_box(first_bytes);
    Ok(Read {
        records: read,
        bytes,
        first_to_last: first.map_or(Duration::ZERO, |f| f.elapsed()),
    })
}

const USAGE: &str = "usage: create BROKERS TOPIC PARTITIONS | \
read BROKERS TOPIC GROUP RECORDS [KEY=VALUE...]";

/// The helper binary: `create BROKERS TOPIC PARTITIONS` (see [`recreate_topic`]), or `read BROKERS TOPIC GROUP RECORDS
/// [KEY=VALUE...]` (the properties the pipelines also get), which prints
/// `floor: records R bytes B first_to_last_s S`.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["create", brokers, topic, partitions] => match partitions.parse() {
            Ok(n) => recreate_topic(brokers, topic, n),
            Err(_) => Err(USAGE.to_string()),
        },
        ["read", brokers, topic, group, records, ref properties @ ..] => {
            let pairs: Option<Vec<(&str, &str)>> =
                properties.iter().map(|p| p.split_once('=')).collect();
            match (records.parse::<u64>(), pairs) {
                (Ok(records), Some(pairs)) => {
                    let config = KafkaSourceConfig::new(
                        "floor",
                        topic,
                        brokers,
                        group,
                        Start::Earliest,
                        &pairs,
                        &RunArgs::default(),
                    );
                    read_topic(&config, records, Duration::from_secs(30)).map(|read| {
                        println!(
                            "floor: records {} bytes {} first_to_last_s {:.6}",
                            read.records,
                            read.bytes,
                            read.first_to_last.as_secs_f64()
                        );
                    })
                }
                _ => Err(USAGE.to_string()),
            }
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// Drives a future to completion on this thread (the admin client completes its futures from
/// its own thread).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}
