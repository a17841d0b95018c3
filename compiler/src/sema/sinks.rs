//! Checking `sink` declarations: the connector (stdout, file, checksum, kafka, postgres), its
//! arguments and delivery guarantee, and what the stream it sends allows (append-only or
//! updating).

use weir_dsl::ast;
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

use super::args::Args;
use super::connectors::{kafka_properties, kafka_topic_ok, postgres_table_ok, AvroPlace};
use super::program::{SinkDef, SinkKind, SourceKind};
use super::Checker;

impl Checker {
    /// A sink's format once an Avro one is checked against the stream it writes (an updating
    /// stream is keyed changes, which an Avro file does not take; upsert Kafka does).
    fn sink_avro(
        &mut self,
        decl: &ast::SinkDecl,
        stream: Option<usize>,
        format: Option<crate::sema::Format>,
        place: AvroPlace,
    ) -> Option<crate::sema::Format> {
        let (Some(format), Some(i)) = (format.clone(), stream) else {
            return format;
        };
        let ty = self.program.streams[i].ty.clone();
        let place = if ty.updating.is_some() && place == AvroPlace::File {
            AvroPlace::Keyed
        } else {
            place
        };
        Some(format).filter(|f| self.avro_fits(decl.format.as_ref(), f, &ty.schema, false, place))
    }

    pub(super) fn sink(&mut self, decl: &ast::SinkDecl, span: Span) {
        let stream = self.pipe(&decl.pipe, None);
        let connector = &decl.connector;
        let kind = match connector.name.name.as_str() {
            "stdout" => {
                Args::new(connector, "sink `stdout`", &[], &mut self.diagnostics);
                let format = self.format(decl.format.as_ref(), false);
                self.sink_avro(decl, stream, format, AvroPlace::Lines)
                    .map(|format| SinkKind::Stdout { format })
            }
            "file" => {
                let args = Args::new(
                    connector,
                    "sink `file`",
                    &[
                        "path",
                        "partition_by",
                        "parts",
                        "roll_size",
                        "roll_interval",
                    ],
                    &mut self.diagnostics,
                );
                let parts = args.bool("parts", &mut self.diagnostics).unwrap_or(false);
                let path = args.string("path", &mut self.diagnostics);
                let path = args.required("path", path, &mut self.diagnostics);
                // `format parquet`: columnar files, not lines (`SinkKind::Parquet`).
                let parquet = decl.format.as_ref().filter(|f| f.name.name == "parquet");
                let format = match parquet {
                    Some(call) => {
                        Args::new(call, "format `parquet`", &[], &mut self.diagnostics);
                        None
                    }
                    None => {
                        let format = self.format(decl.format.as_ref(), false);
                        self.sink_avro(decl, stream, format, AvroPlace::File)
                    }
                };
                // An Avro file is one object container file, written by one instance.
                let format = match format {
                    Some(crate::sema::Format::Avro(_))
                        if parts || args.literal("partition_by").is_some() =>
                    {
                        self.error(
                            Diagnostic::error("E0433", connector.span, "an Avro file sink writes one file: no `parts` or `partition_by` (yet)")
                                .with_hint("remove `parts` and `partition_by`"),
                        );
                        None
                    }
                    format => format,
                };
                let roll_size = args.size("roll_size", &mut self.diagnostics);
                let roll_interval = args.duration("roll_interval", &mut self.diagnostics);
                let partition_by: Vec<String> = args
                    .string("partition_by", &mut self.diagnostics)
                    .map(|p| {
                        p.split(',')
                            .map(|f| f.trim().to_string())
                            .filter(|f| !f.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                let mut partition_ok = true;
                if let Some(ty) = stream.map(|i| self.program.streams[i].ty.clone()) {
                    for field in &partition_by {
                        if ty.schema.field(field).is_none() {
                            let mut d = Diagnostic::error(
                                "E0433",
                                args.span_of("partition_by"),
                                format!(
                                    "cannot partition by `{field}`: the stream has no such field"
                                ),
                            );
                            if let Some(s) = did_you_mean(field, ty.schema.names()) {
                                d = d.with_hint(format!("did you mean `{s}`?"));
                            }
                            self.error(d);
                            partition_ok = false;
                        }
                    }
                    if !partition_by.is_empty() && ty.updating.is_some() {
                        self.error(Diagnostic::error(
                            "E0433",
                            args.span_of("partition_by"),
                            "a partitioned file sink takes an append-only stream",
                        ));
                        partition_ok = false;
                    }
                    if parts && ty.updating.is_some() {
                        self.error(
                            Diagnostic::error(
                                "E0433",
                                args.span_of("parts"),
                                "a file sink with `parts: true` takes an append-only stream",
                            )
                            .with_hint(
                                "an updating stream is written as one table: remove `parts`",
                            ),
                        );
                        partition_ok = false;
                    }
                }
                if parts && !partition_by.is_empty() {
                    self.error(
                        Diagnostic::error(
                            "E0433",
                            args.span_of("parts"),
                            "`parts` and `partition_by` cannot be combined",
                        )
                        .with_hint(
                            "a partitioned sink already writes one `part-0` file per partition \
                             folder: remove `parts`",
                        ),
                    );
                    partition_ok = false;
                }
                let updating =
                    stream.is_some_and(|i| self.program.streams[i].ty.updating.is_some());
                if parquet.is_some() {
                    if parts {
                        self.error(
                            Diagnostic::error("E0433", args.span_of("parts"), "a Parquet sink writes files per instance already")
                                .with_hint("remove `parts`: each instance writes `part-<instance>-<n>.parquet`"),
                        );
                        partition_ok = false;
                    }
                    if updating && partition_by.is_empty() {
                        self.error(
                            Diagnostic::error("E0433", connector.span, "a Parquet sink takes an append-only stream")
                                .with_hint("write an updating stream to a JSON or CSV file (a table), to Kafka or to PostgreSQL"),
                        );
                        partition_ok = false;
                    }
                } else {
                    for (name, given) in [
                        ("roll_size", roll_size.is_some()),
                        ("roll_interval", roll_interval.is_some()),
                    ] {
                        if given {
                            self.error(
                                Diagnostic::error("E0433", args.span_of(name), format!("`{name}` is for Parquet files"))
                                    .with_hint("a JSON or CSV file grows for the whole run; `format parquet` rolls files"),
                            );
                            partition_ok = false;
                        }
                    }
                }
                match parquet {
                    Some(_) => path.filter(|_| partition_ok).map(|path| SinkKind::Parquet {
                        path,
                        partition_by,
                        // 128 MiB, as the runtime's `sinks::parquet::DEFAULT_ROLL_SIZE`.
                        roll_size: roll_size.unwrap_or(128 << 20),
                        roll_interval: roll_interval.map(|ms| ms as u64),
                    }),
                    None => path
                        .zip(format)
                        .filter(|_| partition_ok)
                        .map(|(path, format)| SinkKind::File {
                            path,
                            format,
                            partition_by,
                            parts,
                        }),
                }
            }
            "checksum" => {
                Args::new(connector, "sink `checksum`", &[], &mut self.diagnostics);
                if let Some(f) = &decl.format {
                    self.error(
                        Diagnostic::error("E0311", f.span, "the checksum sink has no format")
                            .with_hint("remove `format ...`: it hashes every field of every row"),
                    );
                }
                Some(SinkKind::Checksum)
            }
            "kafka" => {
                let args = Args::new(
                    connector,
                    "sink `kafka`",
                    &["topic", "brokers", "key", "properties", "delivery"],
                    &mut self.diagnostics,
                );
                let exactly_once = self.delivery(&args);
                let d = &mut self.diagnostics;
                let topic = args.string("topic", d);
                let topic = args.required("topic", topic, d);
                let topic = topic.filter(|t| kafka_topic_ok(t, &args, d));
                let brokers = args.string("brokers", d);
                let brokers = args.required("brokers", brokers, d);
                let key = args.string("key", d);
                let properties = kafka_properties(&args, d);
                let format = self.format(decl.format.as_ref(), false);
                let format = format.filter(|f| self.kafka_format(decl.format.as_ref(), f));
                let format = self.sink_avro(decl, stream, format, AvroPlace::Kafka);
                let mut ok = true;
                if let Some(ty) = stream.map(|i| self.program.streams[i].ty.clone()) {
                    if let Some(key) = &key {
                        if ty.schema.field(key).is_none() {
                            let mut d = Diagnostic::error(
                                "E0317",
                                args.span_of("key"),
                                format!(
                                    "cannot key messages by `{key}`: the stream has no such field"
                                ),
                            );
                            if let Some(s) = did_you_mean(key, ty.schema.names()) {
                                d = d.with_hint(format!("did you mean `{s}`?"));
                            }
                            self.error(d);
                            ok = false;
                        }
                    }
                    // An updating stream goes out as upserts keyed by its upsert key, and
                    // tombstones for its deletes: `key:` may only repeat that key.
                    if let (Some(up), Some(key)) = (&ty.updating, &key) {
                        if up.key.len() != 1 || up.key[0] != *key {
                            self.error(
                                Diagnostic::error(
                                    "E0318",
                                    args.span_of("key"),
                                    format!(
                                        "an updating stream is keyed by its upsert key ({}), not by `{key}`",
                                        up.key.join(", ")
                                    ),
                                )
                                .with_label("not the upsert key")
                                .with_secondary(up.span, format!("this `{}` makes the stream updating", up.operator))
                                .with_hint("leave `key:` out: each message's key is the upsert key, and a delete is a tombstone (see docs/changelog.md)"),
                            );
                            ok = false;
                        }
                    }
                }
                match (topic, brokers, properties, format, exactly_once) {
                    (
                        Some(topic),
                        Some(brokers),
                        Some(properties),
                        Some(format),
                        Some(exactly_once),
                    ) if ok => Some(SinkKind::Kafka {
                        topic,
                        brokers,
                        key,
                        properties,
                        format,
                        exactly_once,
                    }),
                    _ => None,
                }
            }
            "postgres" => {
                let args = Args::new(
                    connector,
                    "sink `postgres`",
                    &["url", "table", "delivery"],
                    &mut self.diagnostics,
                );
                let exactly_once = self.delivery(&args);
                if let Some(f) = &decl.format {
                    self.error(
                        Diagnostic::error("E0311", f.span, "the postgres sink has no format")
                            .with_hint("remove `format ...`: each field is a column of the table"),
                    );
                }
                let d = &mut self.diagnostics;
                let url = args.string("url", d);
                let url = args.required("url", url, d);
                let table = args.string("table", d);
                let table = args.required("table", table, d);
                let table = table.filter(|t| postgres_table_ok(t, &args, d));
                match (url, table, exactly_once) {
                    (Some(url), Some(table), Some(exactly_once)) => Some(SinkKind::Postgres {
                        url,
                        table,
                        exactly_once,
                    }),
                    _ => None,
                }
            }
            other => {
                let mut d = Diagnostic::error(
                    "E0314",
                    connector.name.span,
                    format!("unknown sink connector `{other}`"),
                );
                d = match did_you_mean(other, ["stdout", "file", "checksum", "kafka", "postgres"]) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint("sinks are: stdout, file, checksum, kafka, postgres"),
                };
                self.error(d);
                None
            }
        };
        if let (Some(stream), Some(kind)) = (stream, kind) {
            let schema = self.program.streams[stream].ty.schema.clone();
            self.nested_sink_fits(&kind, &schema, decl.connector.span);
            let index = self.program.sinks.len();
            let target = match &kind {
                SinkKind::Stdout { .. } => "stdout".to_string(),
                SinkKind::File { path, .. } => format!("file {path}"),
                SinkKind::Parquet { path, .. } => format!("parquet {path}"),
                SinkKind::Checksum => "checksum".to_string(),
                SinkKind::Kafka { topic, .. } => format!("kafka {topic}"),
                SinkKind::Postgres { table, .. } => format!("postgres {table}"),
            };
            let name = decl.pipe.input.name.clone();
            let label = format!("sink{index} {name} -> {target}");
            self.program.sinks.push(SinkDef {
                span,
                stream,
                kind,
                name,
                index,
                label,
                preview: None,
            });
        }
    }

    /// `delivery:` of a Kafka or PostgreSQL sink: whether it is exactly once. A pipeline has
    /// one exactly-once sink at most.
    pub(super) fn delivery(&mut self, args: &Args<'_>) -> Option<bool> {
        let d = &mut self.diagnostics;
        let exactly_once = match args.string("delivery", d).as_deref() {
            None | Some("at_least_once") => Some(false),
            Some("exactly_once") => Some(true),
            Some(other) => {
                d.push(
                    Diagnostic::error(
                        "E0321",
                        args.span_of("delivery"),
                        format!("unknown delivery `{other}`"),
                    )
                    .with_hint("delivery is \"at_least_once\" (the default) or \"exactly_once\" (transactions committed with checkpoints)"),
                );
                None
            }
        };
        if exactly_once == Some(true) {
            let here = args.span_of("delivery");
            match self.exactly_once_sink {
                None => self.exactly_once_sink = Some(here),
                Some(first) => {
                    d.push(
                        Diagnostic::error(
                            "E0322",
                            here,
                            "a pipeline can have one exactly-once sink",
                        )
                        .with_secondary(first, "the first one")
                        .with_hint(
                            "each exactly-once sink commits its own transaction, and a \
                             crash between two commits would duplicate an epoch: send \
                             both streams through one sink, or make this one \
                             \"at_least_once\"",
                        ),
                    );
                }
            }
        }
        exactly_once
    }
}

/// A path as written, compared by its components (`./out.csv` and `out.csv` are one file).
fn same_path(a: &str, b: &str) -> bool {
    let parts = |p: &str| -> Vec<String> {
        std::path::Path::new(p)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect()
    };
    parts(a) == parts(b)
}

impl Checker {
    /// Refuses outputs that would write over each other or over an input: two sinks with one
    /// path, a sink writing the file (or folder) a source reads, a sink writing a source's
    /// dead-letter file. Each would lose or mix records with no error at run time (a file
    /// sink creates its file afresh, so the input would be gone before it is read).
    pub(super) fn check_output_paths(&mut self) {
        let mut seen: Vec<(String, Span, String)> = Vec::new();
        for source in &self.program.sources {
            match &source.kind {
                SourceKind::File { path, .. } | SourceKind::Parquet { path, .. } => {
                    seen.push((
                        path.clone(),
                        source.span,
                        format!("source `{}` reads it", source.name),
                    ));
                }
                _ => {}
            }
            if let Some(path) = &source.dead_letters {
                seen.push((
                    path.clone(),
                    source.span,
                    format!("source `{}` writes its dead letters there", source.name),
                ));
            }
        }
        let mut found = Vec::new();
        for sink in &self.program.sinks {
            let (SinkKind::File { path, .. } | SinkKind::Parquet { path, .. }) = &sink.kind else {
                continue;
            };
            if let Some((_, span, what)) = seen.iter().find(|(p, _, _)| same_path(p, path)) {
                found.push(
                    Diagnostic::error(
                        "E0330",
                        sink.span,
                        format!("`{path}` is written by this sink, but {what}"),
                    )
                    .with_secondary(*span, "here")
                    .with_hint(
                        "give each sink its own path, apart from every input and dead-letter file",
                    ),
                );
            }
            seen.push((path.clone(), sink.span, format!("{} writes it", sink.label)));
        }
        for d in found {
            self.error(d);
        }
    }
}
