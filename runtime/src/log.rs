//! The runtime's messages on stderr: every one is a `tracing` event, and a pipeline binary
//! installs the subscriber that prints them ([`install`]) in the format `--log-format` asks
//! for:
//!
//! - `text` (the default): the lines weir has always printed, `weir: error: ...` for errors,
//!   `weir: warning: ...` for warnings, `weir: ...` otherwise, and a scale-out task's lines
//!   as `[partition N] ...`;
//! - `json`: one JSON object per line, `{"time":..,"level":..,"message":..,"target":..}` and
//!   the event's other fields (`partition`, ...).
//!
//! A pipeline run inside a library installs nothing: its events go to the host's subscriber.
//! The run summary and the progress line are not log messages: `--summary` and the terminal
//! decide those.

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::formats::json;

/// How messages are printed on stderr (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the process's subscriber, printing on stderr in `format`. Only a pipeline
/// binary's `main` calls it (the subscriber belongs to the process); a second call, or a
/// subscriber someone else set, leaves the first one.
pub fn install(format: LogFormat) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // A stderr gone away (a closed pipe) must not end the run: tracing-subscriber would
        // report the failed write with `eprintln!`, which panics there.
        .log_internal_errors(false)
        .event_format(Format(format))
        .try_init();
}

struct Format(LogFormat);

/// A field's value, as JSON will show it.
enum Value {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The message and the other fields of one event.
#[derive(Default)]
struct Fields {
    message: String,
    others: Vec<(&'static str, Value)>,
}

impl Fields {
    fn set(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("message", Value::Text(text)) => self.message = text,
            (name, value) => self.others.push((name, value)),
        }
    }

    fn partition(&self) -> Option<i64> {
        self.others.iter().find_map(|(name, value)| match value {
            Value::Int(p) if *name == "partition" => Some(*p),
            _ => None,
        })
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, Value::Text(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, Value::Text(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.set(field, Value::Int(v)),
            Err(_) => self.set(field, Value::Float(value as f64)),
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, Value::Float(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, Value::Bool(value));
    }
}

impl<S, N> FormatEvent<S, N> for Format
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        match self.0 {
            LogFormat::Text => writeln!(writer, "{}", text_line(level, &fields)),
            LogFormat::Json => {
                let line = json_line(level, event.metadata().target(), &fields, now_ms());
                writeln!(writer, "{}", String::from_utf8_lossy(&line))
            }
        }
    }
}

/// The classic line of an event (see the module's comment).
fn text_line(level: Level, fields: &Fields) -> String {
    if let Some(partition) = fields.partition() {
        return format!("[partition {partition}] {}", fields.message);
    }
    match level {
        Level::ERROR => format!("weir: error: {}", fields.message),
        Level::WARN => format!("weir: warning: {}", fields.message),
        _ => format!("weir: {}", fields.message),
    }
}

/// One JSON object (without the line end) for an event at `at_ms` (ms since the epoch).
fn json_line(level: Level, target: &str, fields: &Fields, at_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.message.len() + 96);
    out.push(b'{');
    json::write_key(&mut out, "time");
    json::write_timestamp_iso(&mut out, at_ms);
    out.push(b',');
    json::write_key(&mut out, "level");
    json::write_string(&mut out, &level.as_str().to_ascii_lowercase());
    out.push(b',');
    json::write_key(&mut out, "message");
    json::write_string(&mut out, &fields.message);
    out.push(b',');
    json::write_key(&mut out, "target");
    json::write_string(&mut out, target);
    for (name, value) in &fields.others {
        out.push(b',');
        json::write_key(&mut out, name);
        match value {
            Value::Text(text) => json::write_string(&mut out, text),
            Value::Int(v) => json::write_i64(&mut out, *v),
            Value::Float(v) => json::write_f64(&mut out, *v),
            Value::Bool(v) => json::write_bool(&mut out, *v),
        }
    }
    out.push(b'}');
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(message: &str, others: Vec<(&'static str, Value)>) -> Fields {
        Fields {
            message: message.to_string(),
            others,
        }
    }

    #[test]
    fn text_lines_are_the_classic_ones() {
        let plain = fields("resuming from checkpoint 3 in chk", Vec::new());
        assert_eq!(
            text_line(Level::INFO, &plain),
            "weir: resuming from checkpoint 3 in chk"
        );
        assert_eq!(
            text_line(Level::ERROR, &fields("cannot open x", Vec::new())),
            "weir: error: cannot open x"
        );
        assert_eq!(
            text_line(Level::WARN, &fields("slow", Vec::new())),
            "weir: warning: slow"
        );
        let relayed = fields("weir: run summary", vec![("partition", Value::Int(2))]);
        assert_eq!(
            text_line(Level::INFO, &relayed),
            "[partition 2] weir: run summary"
        );
    }

    #[test]
    fn json_lines_hold_the_message_and_the_fields() {
        let event = fields(
            "cannot \"open\"\nx",
            vec![
                ("partition", Value::Int(2)),
                ("ok", Value::Bool(false)),
                ("path", Value::Text("a/b".into())),
            ],
        );
        let line = json_line(Level::ERROR, "weir_runtime::run", &event, 0);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"time\":\"1970-01-01T00:00:00.000Z\",\"level\":\"error\",\"message\":\"cannot \
             \\\"open\\\"\\nx\",\"target\":\"weir_runtime::run\",\"partition\":2,\"ok\":false,\
             \"path\":\"a/b\"}"
        );
    }
}
