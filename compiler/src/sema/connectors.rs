//! Checking connector arguments shared by sources and sinks: the `format` clause (JSON lines or
//! CSV, and how timestamps are read or written), Kafka properties and topic names, and
//! PostgreSQL table names.

use std::collections::BTreeSet;

use weir_dsl::ast;
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::Diagnostic;

use super::args::Args;
use super::functions;
use super::program::{Format, Timestamps};
use super::Checker;

impl Checker {
    /// The format clause of a source (`reading`) or a sink; JSON without one.
    pub(super) fn format(&mut self, call: Option<&ast::Call>, reading: bool) -> Option<Format> {
        let Some(call) = call else {
            return Some(Format::JSON);
        };
        match call.name.name.as_str() {
            "json" => {
                let args = Args::new(
                    call,
                    "format `json`",
                    &["timestamps"],
                    &mut self.diagnostics,
                );
                let timestamps = self.timestamps(&args, reading)?;
                Some(Format::Json { timestamps })
            }
            "csv" => {
                let args = Args::new(
                    call,
                    "format `csv`",
                    &["header", "delimiter", "timestamps"],
                    &mut self.diagnostics,
                );
                let timestamps = self.timestamps(&args, reading)?;
                let header = args.bool("header", &mut self.diagnostics).unwrap_or(false);
                let delimiter = match args.string("delimiter", &mut self.diagnostics) {
                    None => b',',
                    Some(d) if d.len() == 1 && d.is_ascii() && d != "\"" && d != "\n" => {
                        d.as_bytes()[0]
                    }
                    Some(_) => {
                        let span = args.span_of("delimiter");
                        self.error(Diagnostic::error(
                            "E0305",
                            span,
                            "`delimiter` must be one ASCII character other than a quote or newline",
                        ));
                        return None;
                    }
                };
                Some(Format::Csv {
                    header,
                    delimiter,
                    timestamps,
                })
            }
            "avro" => {
                let args = Args::new(
                    call,
                    "format `avro`",
                    &["schema", "confluent_id", "codec"],
                    &mut self.diagnostics,
                );
                let schema = args.string("schema", &mut self.diagnostics);
                let schema = args.required("schema", schema, &mut self.diagnostics)?;
                let confluent_id = args
                    .int(
                        "confluent_id",
                        0,
                        i64::from(i32::MAX),
                        &mut self.diagnostics,
                    )
                    .map(|id| id as u32);
                let codec = args.string("codec", &mut self.diagnostics);
                if let Some(codec) = codec.as_deref() {
                    if !["null", "deflate"].contains(&codec) {
                        self.error(
                            Diagnostic::error(
                                "E0305",
                                args.span_of("codec"),
                                format!("unknown Avro codec `{codec}`"),
                            )
                            .with_hint("one of: null, deflate (snappy is not supported yet)"),
                        );
                        return None;
                    }
                }
                let span = args.span_of("schema");
                let text = match super::avro::schema_text(&schema, self.schema_dir.as_deref()) {
                    Ok(text) => text,
                    Err(message) => {
                        self.error(Diagnostic::error("E0329", span, message).with_hint(
                            "name a .avsc file relative to the pipeline file, or write the schema inline as JSON",
                        ));
                        return None;
                    }
                };
                match super::avro::parse(&text, confluent_id, codec) {
                    Ok(avro) => Some(Format::Avro(avro)),
                    Err((message, hint)) => {
                        self.error(Diagnostic::error("E0329", span, message).with_hint(hint));
                        None
                    }
                }
            }
            "parquet" => {
                self.error(
                    Diagnostic::error(
                        "E0308",
                        call.name.span,
                        "`parquet` is a format of files only",
                    )
                    .with_hint("read Parquet with `file(path: \"data\") format parquet`, write it with `-> file(path: \"folder\") format parquet`; use JSON lines or CSV here"),
                );
                None
            }
            other => {
                let mut d =
                    Diagnostic::error("E0308", call.name.span, format!("unknown format `{other}`"));
                d = match did_you_mean(other, ["json", "csv", "avro"]) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint("formats are: json, csv, avro (and parquet for files)"),
                };
                self.error(d);
                None
            }
        }
    }

    /// `timestamps: "..."` of a format clause: one of the names a source (`reading`) or a sink
    /// accepts, or a date pattern (read or written with the letters of `to_timestamp`).
    pub(super) fn timestamps(&mut self, args: &Args<'_>, reading: bool) -> Option<Timestamps> {
        let Some(name) = args.string("timestamps", &mut self.diagnostics) else {
            return Some(Timestamps::Default);
        };
        let (table, other) = if reading {
            (Timestamps::READ, Timestamps::WRITE)
        } else {
            (Timestamps::WRITE, Timestamps::READ)
        };
        if let Some((_, t)) = table.iter().find(|(n, _)| *n == name) {
            return Some(t.clone());
        }
        // Not a name: a date pattern (`"dd/MM/yyyy HH:mm"`) when it is one.
        let pattern = functions::check_date_pattern(&name);
        if pattern.is_ok() && name.contains(['y', 'M', 'd', 'H', 'm', 's', 'S']) {
            return Some(Timestamps::Pattern(name));
        }
        let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        let side = if reading { "a source" } else { "a sink" };
        let mut d = Diagnostic::error(
            "E0325",
            args.span_of("timestamps"),
            format!("{side} cannot take `timestamps: \"{name}\"`"),
        );
        d = if other.iter().any(|(n, _)| *n == name) {
            d.with_hint(format!(
                "`{name}` is for {}; {side} takes one of: {}",
                if reading { "sinks" } else { "sources" },
                names.join(", ")
            ))
        } else {
            match did_you_mean(&name, names.iter().copied()) {
                Some(s) => d.with_hint(format!(
                    "did you mean `{s}`? (one of: {})",
                    names.join(", ")
                )),
                None => {
                    let why = match pattern {
                        Err(why) => format!(" (as a pattern: {why})"),
                        Ok(()) => " (as a pattern it names no field)".to_string(),
                    };
                    d.with_hint(format!(
                        "one of: {}, or a date pattern such as \"dd/MM/yyyy HH:mm:ss\"{why}",
                        names.join(", ")
                    ))
                }
            }
        };
        self.error(d);
        None
    }

    /// Whether an Avro format fits the pipeline's `schema` (E0328 for each mismatch), and is
    /// somewhere Avro can go: Kafka (`kafka`) or a file (`file`); never stdin or stdout, and
    /// not where rows are keyed changes written to a file (`keyed`: an updating stream's
    /// file sink; an upsert-Kafka topic takes Avro values, its keys in JSON).
    pub(super) fn avro_fits(
        &mut self,
        call: Option<&ast::Call>,
        format: &Format,
        schema: &super::types::Schema,
        reading: bool,
        place: AvroPlace,
    ) -> bool {
        let (Format::Avro(avro), Some(call)) = (format, call) else {
            return true;
        };
        let refusal = match place {
            _ if avro.codec.is_some() && (reading || place != AvroPlace::File) => Some((
                "`codec` is for the Avro files a sink writes",
                "a source reads whatever codec its file has; a Kafka message is not compressed by Avro: remove `codec`",
            )),
            AvroPlace::Kafka => None,
            AvroPlace::File if avro.confluent_id.is_none() => None,
            AvroPlace::File => Some((
                "`confluent_id` is for Kafka messages",
                "an Avro file holds its schema in its header: remove `confluent_id`",
            )),
            AvroPlace::Lines => Some((
                "Avro is binary: it goes to Kafka or to an Avro file, not to stdin or stdout",
                "use `file(path: \"x.avro\") format avro(...)` or `kafka(...) format avro(...)`; write JSON or CSV to stdout",
            )),
            AvroPlace::Keyed => Some((
                "an Avro file takes append-only rows, not the keyed changes of an updating stream",
                "write the updating stream to Kafka (upsert Kafka takes Avro values) or to a JSON or CSV file, which holds its final table",
            )),
        };
        if let Some((message, hint)) = refusal {
            self.error(Diagnostic::error("E0308", call.span, message).with_hint(hint));
            return false;
        }
        // Reported at the schema (`schema: "x.avsc"`), which is where the fix goes.
        let at = call
            .args
            .iter()
            .find(|a| a.name.as_ref().is_some_and(|n| n.name == "schema"))
            .map_or(call.span, |a| a.value.span);
        let found = super::avro::check(avro, schema, reading, at);
        let ok = found.is_empty();
        for d in found {
            self.error(d);
        }
        ok
    }

    /// A Kafka message holds one row: a CSV header line has no place in it.
    pub(super) fn kafka_format(&mut self, call: Option<&ast::Call>, format: &Format) -> bool {
        if let (Format::Csv { header: true, .. }, Some(call)) = (format, call) {
            self.error(
                Diagnostic::error(
                    "E0319",
                    call.span,
                    "a kafka message holds one row, without a CSV header",
                )
                .with_hint("remove `header: true`"),
            );
            return false;
        }
        true
    }
}

/// Where a `format avro` is: see [`Checker::avro_fits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AvroPlace {
    Kafka,
    File,
    Lines,
    Keyed,
}

/// `properties: "session.timeout.ms=6000,fetch.min.bytes=1"`: librdkafka properties as
/// `key=value` pairs separated by commas (a value cannot hold a comma: pass such a property
/// with the binary's `--kafka-property key=value`). `None` after reporting a malformed one.
pub(super) fn kafka_properties(
    args: &Args<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<(String, String)>> {
    let Some(text) = args.string("properties", diagnostics) else {
        return Some(Vec::new());
    };
    let span = args.span_of("properties");
    let mut out = Vec::new();
    let mut ok = true;
    // The errors all underline the whole string: a mistake repeated in it is reported once.
    let mut reported = BTreeSet::new();
    let mut report = |diagnostic: Diagnostic| {
        if reported.insert(diagnostic.message.clone()) {
            diagnostics.push(diagnostic);
        }
    };
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let pair = entry
            .split_once('=')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            });
        match pair {
            Some(("bootstrap.servers", _)) | Some(("group.id", _)) => {
                let (key, param) = if entry.starts_with("bootstrap") {
                    ("bootstrap.servers", "brokers")
                } else {
                    ("group.id", "group")
                };
                report(
                    Diagnostic::error("E0315", span, format!("`{key}` is set with `{param}:`, not in `properties`"))
                        .with_hint(format!("write `{param}: \"...\"`; the binary's `--kafka-property {key}=...` overrides it")),
                );
                ok = false;
            }
            Some((key, value)) => out.push((key.to_string(), value.to_string())),
            None => {
                report(
                    Diagnostic::error(
                        "E0315",
                        span,
                        format!("`{entry}` is not a property of the form `key=value`"),
                    )
                    .with_label("in these properties")
                    .with_hint("write librdkafka properties as `\"session.timeout.ms=6000,fetch.min.bytes=1\"`"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A PostgreSQL table name weir reads or writes: letters, digits and `_`, optionally after a
/// schema (`orders`, `shop.orders`); E0327 otherwise.
pub(super) fn postgres_table_ok(t: &str, args: &Args<'_>, d: &mut Vec<Diagnostic>) -> bool {
    let ok = !t.is_empty()
        && t.split('.').count() <= 2
        && t.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !ok {
        d.push(
            Diagnostic::error(
                "E0327",
                args.span_of("table"),
                format!("`{t}` is not a table name weir reads or writes"),
            )
            .with_hint(
                "letters, digits and `_`, optionally after a schema: `orders` or `shop.orders`",
            ),
        );
    }
    ok
}

/// Kafka's rule for topic names: 1 to 249 of `a-z A-Z 0-9 . _ -`, and not `.` or `..`.
pub(super) fn kafka_topic_ok(
    topic: &str,
    args: &Args<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> bool {
    let ok = (1..=249).contains(&topic.len())
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        diagnostics.push(
            Diagnostic::error(
                "E0320",
                args.span_of("topic"),
                format!("`{topic}` is not a valid Kafka topic name"),
            )
            .with_hint("topic names are 1 to 249 letters, digits, `.`, `_` and `-`"),
        );
    }
    ok
}
