//! Checking `source` declarations: the connector (nexmark, file, stdin, kafka, postgres) and
//! its arguments, the schema, the event time and its watermark.

use weir_dsl::ast::{self, Literal};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

use super::args::{self, Args};
use super::connectors::{kafka_properties, kafka_topic_ok, postgres_table_ok, AvroPlace};
use super::nexmark::NexmarkStream;
use super::program::{KafkaSource, NexmarkParams, SourceDef, SourceKind};
use super::types::{Field, StreamType, Type, Updating};
use super::{Checker, Named};

impl Checker {
    pub(super) fn source(&mut self, decl: &ast::SourceDecl, span: Span) {
        let n_errors = self.diagnostics.len();
        let index = self.program.sources.len();
        if !self.declare(&decl.name, Named::Source(index)) {
            return;
        }
        let name = decl.name.name.clone();
        let connector = &decl.connector;
        let declared_schema = match &decl.schema {
            None => None,
            Some(s) => match self.schemas.get(&s.name) {
                Some((schema, _)) => Some(schema.clone()),
                None => {
                    if !self.broken_schemas.iter().any(|(n, _)| *n == s.name) {
                        let mut d = Diagnostic::error(
                            "E0104",
                            s.span,
                            format!("unknown schema `{}`", s.name),
                        );
                        if let Some(sugg) =
                            did_you_mean(&s.name, self.schemas.keys().map(String::as_str))
                        {
                            d = d.with_hint(format!("did you mean `{sugg}`?"));
                        }
                        self.error(d);
                    }
                    None
                }
            },
        };
        let mut dead_letters = None;
        // `event_time_range: "1850-01-01 .. 2200-01-01"`, with the span to report at.
        let mut event_time_range: Option<((i64, i64), Span)> = None;
        // `upsert_key: "a, b"` of a Kafka source, with the span to report at.
        let mut upsert_key: Option<(Vec<String>, Span)> = None;
        // `refresh:` of a file or postgres source: a lookup table read again that often.
        let mut refresh_ms: Option<i64> = None;
        let kind_and_schema = match connector.name.name.as_str() {
            "nexmark" => {
                let args = Args::new(
                    connector,
                    "source `nexmark`",
                    &[
                        "stream",
                        "events",
                        "rate",
                        "generators",
                        "out_of_order",
                        "seed",
                    ],
                    &mut self.diagnostics,
                );
                let d = &mut self.diagnostics;
                let stream = args.string("stream", d);
                let stream = args.required("stream", stream, d);
                let mut params = NexmarkParams::default();
                if let Some(v) = args.int("events", 0, i64::MAX, d) {
                    params.events = v as u64;
                }
                if let Some(v) = args.int("rate", 1, 1_000_000_000, d) {
                    params.rate = v as u64;
                }
                if let Some(v) = args.int("generators", 1, 1024, d) {
                    params.generators = v as u32;
                }
                if let Some(v) = args.int("out_of_order", 1, 1_000_000, d) {
                    params.out_of_order_group = v as u64;
                }
                if let Some(v) = args.int("seed", 0, i64::MAX, d) {
                    params.seed = v as u64;
                }
                if let Some(schema) = &decl.schema {
                    self.error(
                        Diagnostic::error(
                            "E0105",
                            schema.span,
                            "a nexmark source has a fixed schema",
                        )
                        .with_hint("remove the `: Schema` annotation"),
                    );
                }
                match stream.as_deref().map(|s| (s, NexmarkStream::from_name(s))) {
                    Some((_, Some(stream))) => {
                        Some((SourceKind::Nexmark { stream, params }, stream.schema()))
                    }
                    Some((s, None)) => {
                        let mut diag = Diagnostic::error(
                            "E0309",
                            args.span_of("stream"),
                            format!("unknown nexmark stream `{s}`"),
                        );
                        diag = match did_you_mean(s, NexmarkStream::NAMES) {
                            Some(sugg) => diag.with_hint(format!("did you mean `{sugg}`?")),
                            None => diag.with_hint("streams are: person, auction, bid"),
                        };
                        self.error(diag);
                        None
                    }
                    None => None,
                }
            }
            "file" | "stdin" => {
                let is_file = connector.name.name == "file";
                let params: &'static [&'static str] = if is_file {
                    &[
                        "path",
                        "dead_letters",
                        "event_time_range",
                        "parallelism",
                        "refresh",
                    ]
                } else {
                    &["dead_letters", "event_time_range"]
                };
                let what = if is_file {
                    "source `file`"
                } else {
                    "source `stdin`"
                };
                let args = Args::new(connector, what, params, &mut self.diagnostics);
                let path = if is_file {
                    let p = args.string("path", &mut self.diagnostics);
                    args.required("path", p, &mut self.diagnostics)
                } else {
                    None
                };
                let parallelism = if is_file {
                    args.int("parallelism", 1, 1024, &mut self.diagnostics)
                        .map(|n| n as u32)
                } else {
                    None
                };
                dead_letters = args.string("dead_letters", &mut self.diagnostics);
                event_time_range = args.time_range("event_time_range", &mut self.diagnostics);
                if is_file {
                    refresh_ms = args.duration("refresh", &mut self.diagnostics);
                }
                let parquet = is_file
                    && decl
                        .format
                        .as_ref()
                        .is_some_and(|f| f.name.name == "parquet");
                if parquet {
                    if let Some(f) = decl.format.as_ref().filter(|f| !f.args.is_empty()) {
                        self.error(
                            Diagnostic::error(
                                "E0308",
                                f.span,
                                "format `parquet` takes no arguments",
                            )
                            .with_hint(
                                "the files say their columns' types: write `format parquet`",
                            ),
                        );
                    }
                    if refresh_ms.is_some() {
                        self.error(
                            Diagnostic::error("E0308", args.span_of("refresh"), "a Parquet source is read once; `refresh` is for lookup tables of JSON lines or CSV")
                                .with_hint("remove `refresh:`"),
                        );
                    }
                }
                let format = if parquet {
                    Some(super::program::Format::JSON)
                } else {
                    self.format(decl.format.as_ref(), true)
                };
                let place = if is_file {
                    AvroPlace::File
                } else {
                    AvroPlace::Lines
                };
                let format = self.read_format_fits(decl, format, declared_schema.as_ref(), place);
                // An Avro container file is not split by byte ranges: one reader reads it.
                let format = match format {
                    Some(crate::sema::Format::Avro(_)) if parallelism.is_some_and(|p| p > 1) => {
                        self.error(
                            Diagnostic::error(
                                "E0306",
                                args.span_of("parallelism"),
                                "an Avro file is read by one reader",
                            )
                            .with_hint("remove `parallelism`, or give `parallelism: 1`"),
                        );
                        None
                    }
                    format => format,
                };
                if decl.schema.is_none() {
                    self.error(
                        Diagnostic::error("E0106", decl.name.span, format!("source `{name}` needs a schema"))
                            .with_hint(format!("declare one and name it: `schema Row {{ ... }}` then `source {name}: Row = ...`")),
                    );
                }
                match (declared_schema, format, is_file, path) {
                    (Some(schema), Some(_), true, Some(path)) if parquet => {
                        Some((SourceKind::Parquet { path, parallelism }, schema))
                    }
                    (Some(schema), Some(format), true, Some(path)) => Some((
                        SourceKind::File {
                            path,
                            format,
                            parallelism,
                        },
                        schema,
                    )),
                    (Some(schema), Some(format), false, _) => {
                        Some((SourceKind::Stdin { format }, schema))
                    }
                    _ => None,
                }
            }
            "postgres" => {
                let args = Args::new(
                    connector,
                    "source `postgres`",
                    &["url", "table", "query", "refresh"],
                    &mut self.diagnostics,
                );
                refresh_ms = args.duration("refresh", &mut self.diagnostics);
                if let Some(f) = &decl.format {
                    self.error(
                        Diagnostic::error("E0311", f.span, "a postgres source has no format")
                            .with_hint("remove `format ...`: each field is a column"),
                    );
                }
                if decl.schema.is_none() {
                    self.error(
                        Diagnostic::error("E0106", decl.name.span, format!("source `{name}` needs a schema"))
                            .with_hint(format!("declare one and name it: `schema Row {{ ... }}` then `source {name}: Row = postgres(...)`")),
                    );
                }
                let d = &mut self.diagnostics;
                let url = args.string("url", d);
                let url = args.required("url", url, d);
                let table = args.string("table", d);
                let query = args.string("query", d);
                let table = table.filter(|t| postgres_table_ok(t, &args, d));
                let query = match (table, query, declared_schema.as_ref()) {
                    (Some(_), Some(_), _) | (None, None, _) => {
                        d.push(
                            Diagnostic::error(
                                "E0327",
                                connector.span,
                                "a postgres source reads a `table` or a `query`: one of them",
                            )
                            .with_hint("`table: \"rates\"`, or `query: \"SELECT code, rate FROM rates WHERE live\"` (columns in the schema's order)"),
                        );
                        None
                    }
                    (Some(table), None, Some(schema)) => {
                        let columns: Vec<String> = schema
                            .fields
                            .iter()
                            .map(|f| format!("\"{}\"", f.name))
                            .collect();
                        let table: Vec<String> =
                            table.split('.').map(|p| format!("\"{p}\"")).collect();
                        Some(format!(
                            "SELECT {} FROM {}",
                            columns.join(", "),
                            table.join(".")
                        ))
                    }
                    (None, Some(query), _) => Some(query),
                    (Some(_), None, None) => None,
                };
                match (declared_schema, url, query) {
                    (Some(schema), Some(url), Some(query)) => {
                        Some((SourceKind::Postgres { url, query }, schema))
                    }
                    _ => None,
                }
            }
            "kafka" => {
                let args = Args::new(
                    connector,
                    "source `kafka`",
                    &[
                        "topic",
                        "brokers",
                        "group",
                        "start",
                        "parallelism",
                        "properties",
                        "dead_letters",
                        "event_time_range",
                        "upsert_key",
                    ],
                    &mut self.diagnostics,
                );
                let d = &mut self.diagnostics;
                upsert_key = args.string("upsert_key", d).map(|keys| {
                    let fields = keys
                        .split(',')
                        .map(|k| k.trim().to_string())
                        .filter(|k| !k.is_empty())
                        .collect::<Vec<_>>();
                    (fields, args.span_of("upsert_key"))
                });
                let topic = args.string("topic", d);
                let topic = args.required("topic", topic, d);
                let topic = topic.filter(|t| kafka_topic_ok(t, &args, d));
                let brokers = args.string("brokers", d);
                let brokers = args.required("brokers", brokers, d);
                let group = args
                    .string("group", d)
                    .unwrap_or_else(|| format!("weir-{name}"));
                let start_latest = match args.string("start", d).as_deref() {
                    None | Some("earliest") => Some(false),
                    Some("latest") => Some(true),
                    Some(other) => {
                        let mut diag = Diagnostic::error(
                            "E0316",
                            args.span_of("start"),
                            format!("unknown start `{other}`"),
                        );
                        diag = match did_you_mean(other, ["earliest", "latest"]) {
                            Some(s) => diag.with_hint(format!("did you mean `{s}`?")),
                            None => diag.with_hint("`start` is \"earliest\" or \"latest\""),
                        };
                        d.push(diag);
                        None
                    }
                };
                let parallelism = args.int("parallelism", 1, 1024, d).unwrap_or(1) as u32;
                dead_letters = args.string("dead_letters", d);
                event_time_range = args.time_range("event_time_range", d);
                let properties = kafka_properties(&args, d);
                let format = self.format(decl.format.as_ref(), true);
                let format = format.filter(|f| self.kafka_format(decl.format.as_ref(), f));
                // An upsert-Kafka topic may hold Avro values too: its keys are compared as
                // bytes, whatever their format.
                let format =
                    self.read_format_fits(decl, format, declared_schema.as_ref(), AvroPlace::Kafka);
                if decl.schema.is_none() {
                    self.error(
                        Diagnostic::error("E0106", decl.name.span, format!("source `{name}` needs a schema"))
                            .with_hint(format!("declare one and name it: `schema Row {{ ... }}` then `source {name}: Row = kafka(...)`")),
                    );
                }
                match (
                    declared_schema,
                    format,
                    topic,
                    brokers,
                    start_latest,
                    properties,
                ) {
                    (
                        Some(schema),
                        Some(format),
                        Some(topic),
                        Some(brokers),
                        Some(start_latest),
                        Some(properties),
                    ) => Some((
                        SourceKind::Kafka(KafkaSource {
                            topic,
                            brokers,
                            group,
                            start_latest,
                            parallelism,
                            properties,
                            format,
                            upsert_key: upsert_key
                                .as_ref()
                                .map(|(k, _)| k.clone())
                                .unwrap_or_default(),
                        }),
                        schema,
                    )),
                    _ => None,
                }
            }
            other => {
                let mut d = Diagnostic::error(
                    "E0310",
                    connector.name.span,
                    format!("unknown source connector `{other}`"),
                );
                d = match did_you_mean(other, ["nexmark", "file", "stdin", "kafka"]) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint("sources are: nexmark, file, stdin, kafka"),
                };
                self.error(d);
                None
            }
        };
        if connector.name.name == "nexmark" {
            if let Some(f) = &decl.format {
                self.error(
                    Diagnostic::error("E0311", f.span, "a nexmark source has no format")
                        .with_hint("remove `format ...`"),
                );
            }
        }
        let Some((kind, schema)) = kind_and_schema else {
            self.names.insert(name, (Named::Broken, decl.name.span));
            return;
        };
        let mut ty = StreamType {
            updating: None,
            schema,
            time_field: None,
            window: None,
        };
        let mut watermark_ms = None;
        if let Some(et) = &decl.event_time {
            match ty.schema.field(&et.field.name) {
                Some((i, f)) if f.ty == Type::Timestamp && !f.nullable => ty.time_field = Some(i),
                Some((_, f)) => self.error(
                    Diagnostic::error(
                        "E0312",
                        et.field.span,
                        format!(
                            "event time must be a timestamp that is never null; `{}` is {}",
                            f.name,
                            Field {
                                name: String::new(),
                                ..f.clone()
                            }
                            .ty
                        ),
                    )
                    .with_hint("declare the field as `timestamp` (not optional)"),
                ),
                None => {
                    let mut d = Diagnostic::error(
                        "E0201",
                        et.field.span,
                        format!("unknown field `{}`", et.field.name),
                    );
                    if let Some(s) = did_you_mean(&et.field.name, ty.schema.names()) {
                        d = d.with_hint(format!("did you mean `{s}`?"));
                    }
                    self.error(d);
                }
            }
            match &et.watermark.kind {
                ast::ExprKind::Lit(Literal::Duration(ms)) if *ms > args::MAX_DURATION_MS => {
                    self.error(args::too_long("watermark", et.watermark.span))
                }
                ast::ExprKind::Lit(Literal::Duration(ms)) if *ms >= 0 => watermark_ms = Some(*ms),
                _ => self.error(
                    Diagnostic::error(
                        "E0313",
                        et.watermark.span,
                        "the watermark delay must be a duration",
                    )
                    .with_hint("e.g. `watermark 4s` or `watermark 0ms` for in-order input"),
                ),
            }
        }
        if let Some((keys, span)) = &upsert_key {
            self.upsert_key(&mut ty, keys, *span, decl.event_time.is_some());
        }
        if let (Some((_, span)), None) = (event_time_range, &decl.event_time) {
            self.error(
                Diagnostic::error(
                    "E0324",
                    span,
                    "`event_time_range` bounds the event time, and this source has none",
                )
                .with_hint("declare it after the format: `event_time FIELD watermark 4s`"),
            );
        }
        if self.diagnostics.len() > n_errors
            && self.diagnostics[n_errors..]
                .iter()
                .any(Diagnostic::is_error)
        {
            self.names.insert(name, (Named::Broken, decl.name.span));
            return;
        }
        self.nested_source_fits(&kind, &ty.schema, decl.connector.span);
        self.program.sources.push(SourceDef {
            name,
            span,
            kind,
            ty,
            watermark_ms,
            event_time_range: event_time_range.map(|(range, _)| range),
            dead_letters,
            refresh_ms,
        });
    }

    /// `upsert_key:` of a Kafka source: fields of the schema, never null and not `f64`, that
    /// make the source's stream updating. Such a source has no event time (yet).
    pub(super) fn upsert_key(
        &mut self,
        ty: &mut StreamType,
        keys: &[String],
        span: Span,
        event_time: bool,
    ) {
        let mut ok = !keys.is_empty();
        if keys.is_empty() {
            self.error(
                Diagnostic::error("E0326", span, "`upsert_key` names no field")
                    .with_hint("e.g. `upsert_key: \"customer\"` (several: \"a, b\")"),
            );
        }
        for key in keys {
            let problem = match ty.schema.field(key) {
                None => Some(match did_you_mean(key, ty.schema.names()) {
                    Some(s) => format!("the schema has no field `{key}`; did you mean `{s}`?"),
                    None => format!("the schema has no field `{key}`"),
                }),
                Some((_, f)) if f.nullable => {
                    Some(format!("`{key}` is optional; a key is never null"))
                }
                Some((_, f)) if f.ty == Type::F64 => {
                    Some(format!("`{key}` is f64; f64 keys are not supported"))
                }
                Some((_, f)) if f.ty.is_nested() => Some(format!(
                    "`{key}` is a nested {}; a key is a scalar field",
                    f.ty.name()
                )),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                self.error(
                    Diagnostic::error(
                        "E0326",
                        span,
                        format!("cannot use `{key}` as the upsert key"),
                    )
                    .with_hint(problem),
                );
                ok = false;
            }
        }
        if event_time {
            self.error(
                Diagnostic::error(
                    "E0326",
                    span,
                    "an upsert source has no event time (not supported yet)",
                )
                .with_hint("remove the `event_time` clause, or read the topic as an append stream without `upsert_key`"),
            );
            ok = false;
        }
        if ok {
            ty.updating = Some(Updating {
                key: keys.to_vec(),
                operator: "upsert_key",
                span,
            });
        }
    }
}

impl Checker {
    /// A source's format, kept only if it fits the declared schema where it reads (an Avro
    /// schema against the pipeline's; other formats always fit).
    fn read_format_fits(
        &mut self,
        decl: &ast::SourceDecl,
        format: Option<crate::sema::Format>,
        schema: Option<&crate::sema::Schema>,
        place: AvroPlace,
    ) -> Option<crate::sema::Format> {
        match (format, schema) {
            (Some(f), Some(schema)) => {
                let schema = schema.clone();
                Some(f).filter(|f| self.avro_fits(decl.format.as_ref(), f, &schema, true, place))
            }
            (format, _) => format,
        }
    }
}
