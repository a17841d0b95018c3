//! What Kafka sources and sinks share (behind the `kafka` feature): the client configuration,
//! built in one order so that later settings win: weir's defaults, then `brokers:`, then the
//! pipeline's `properties:`, then `--kafka-property` from the command line.
//!
//! [`floor`] is the bare consumer `weir bench --input kafka` compares weir's source with.
//!
//! `rdkafka` is re-exported so that tests and tools use the same client (and the same bundled
//! librdkafka) as the runtime.

pub mod floor;

pub use rdkafka;

use rdkafka::ClientConfig;

/// A client configuration for `brokers` with the pipeline's and the command line's properties.
pub fn client_config(
    brokers: &str,
    defaults: &[(&str, &str)],
    pipeline: &[(String, String)],
    command_line: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    config.set("bootstrap.servers", brokers);
    for (key, value) in pipeline.iter().chain(command_line) {
        config.set(key, value);
    }
    config
}

/// Owned `(key, value)` pairs from the literal pairs generated code carries.
pub fn properties(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
