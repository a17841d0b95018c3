//! Semantic analysis: resolves names (schemas, sources, streams, fields, functions) and checks
//! types, turning the AST into a [`Program`]. It never stops at the first error: every item is
//! checked, and an item that fails is left out so later items report their own mistakes
//! instead of cascades.

pub mod args;
pub mod expr;
pub mod functions;
mod join;
pub mod nexmark;
pub mod program;
pub mod types;
pub mod udf;

use std::collections::{BTreeMap, BTreeSet};

use weir_dsl::ast::{self, ItemKind, Literal, SelectItemKind, StepKind};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

use args::Args;
pub use expr::{ExprChecker, TExpr, TExprKind};
use functions::AggFunc;
use nexmark::NexmarkStream;
pub use program::*;
pub use types::{Field, Schema, StreamType, Type, Updating, WindowFields};

/// Checks a parsed module. Returns the program when there are no errors (warnings may be
/// present), and every diagnostic found.
pub fn check(module: &ast::Module) -> (Option<Program>, Vec<Diagnostic>) {
    check_partial(module, None)
}

/// Names declared by items the parser had to leave out of the module because they had errors
/// (found by `weir_compiler::check` in the text with `weir_dsl::declared_names`).
pub use weir_dsl::DeclaredNames as Unparsed;

/// Checks a module that may be missing items. With `unparsed` (the parser reported errors),
/// uses of the names those items declare are not reported again, and no name is reported as
/// unused: the missing items may be the ones that use it.
pub fn check_partial(
    module: &ast::Module,
    unparsed: Option<&Unparsed>,
) -> (Option<Program>, Vec<Diagnostic>) {
    let mut cx = Checker::default();
    for item in &module.items {
        let name = match &item.kind {
            ItemKind::Source(s) => &s.name,
            ItemKind::Let(l) => &l.name,
            _ => continue,
        };
        cx.all_streams.entry(name.name.clone()).or_insert(name.span);
    }
    if let Some(unparsed) = unparsed {
        // A name that a parsed item declares too is checked as usual.
        let (mut streams, mut schemas) = (Vec::new(), Vec::new());
        for item in &module.items {
            match &item.kind {
                ItemKind::Schema(s) => schemas.push(&s.name.name),
                ItemKind::Source(s) => streams.push(&s.name.name),
                ItemKind::Let(l) => streams.push(&l.name.name),
                ItemKind::Sink(_) => {}
            }
        }
        for (name, span) in &unparsed.streams {
            if !streams.contains(&name) {
                cx.names.insert(name.clone(), (Named::Broken, *span));
            }
        }
        for (name, span) in &unparsed.schemas {
            if !schemas.contains(&name) {
                cx.broken_schemas.push((name.clone(), *span));
            }
        }
    }
    for item in &module.items {
        match &item.kind {
            ItemKind::Schema(s) => cx.schema(s),
            ItemKind::Source(s) => cx.source(s, item.span),
            ItemKind::Let(l) => cx.let_decl(l),
            ItemKind::Sink(s) => cx.sink(s, item.span),
        }
    }
    if unparsed.is_none() {
        cx.warn_unused();
    }
    let Checker {
        diagnostics,
        program,
        ..
    } = cx;
    let mut diagnostics = diagnostics;
    weir_dsl::diagnostic::sort(&mut diagnostics);
    let ok = !diagnostics.iter().any(Diagnostic::is_error);
    (ok.then_some(program), diagnostics)
}

/// What a name at the top level refers to.
#[derive(Clone, Copy)]
pub(crate) enum Named {
    Source(usize),
    Stream(usize),
    /// Declared, but its declaration had errors: uses are not reported again.
    Broken,
}

#[derive(Default)]
pub(crate) struct Checker {
    /// Whether the window just checked runs on processing time.
    processing: bool,
    /// The allowed lateness of the window just checked (ms).
    lateness: i64,
    /// The late-record stream the window just checked names, with the name's span.
    late_output: Option<(String, Span)>,
    /// The time zone the `tumble` just checked is aligned to (`zone:`).
    window_zone: Option<String>,
    diagnostics: Vec<Diagnostic>,
    schemas: BTreeMap<String, (Schema, Span)>,
    /// Schemas declared with errors, and where: uses are not reported again.
    broken_schemas: Vec<(String, Span)>,
    names: BTreeMap<String, (Named, Span)>,
    /// Every stream the module declares, and where first: to tell a use before the
    /// declaration from an unknown name.
    all_streams: BTreeMap<String, Span>,
    used: Vec<String>,
    /// Where the first exactly-once Kafka sink is declared (a pipeline has one at most).
    exactly_once_sink: Option<Span>,
    program: Program,
}

/// Names weir cannot give to a Rust struct field without risking a clash with its own naming
/// (`p.name` is stored as `p__name`; `self` as `self_`).
fn reserved_field_name(name: &str) -> bool {
    name == "_"
        || name.contains("__")
        || name.ends_with('_') && ["self_", "Self_", "super_", "crate_"].contains(&name)
        || matches!(name, "self" | "Self" | "super" | "crate")
}

impl Checker {
    /// Reports a field name that generated code cannot hold.
    fn check_field_name(&mut self, name: &ast::Ident) -> bool {
        if reserved_field_name(&name.name) {
            self.error(
                Diagnostic::error(
                    "E0108",
                    name.span,
                    format!("`{}` cannot be a field name", name.name),
                )
                .with_hint(
                    "field names cannot be `_`, `self`, `super` or `crate`, nor contain `__`",
                ),
            );
            return false;
        }
        true
    }

    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// Claims a top-level name; reports a duplicate.
    fn declare(&mut self, name: &ast::Ident, named: Named) -> bool {
        if let Some((_, first)) = self.names.get(&name.name) {
            let first = *first;
            self.error(
                Diagnostic::error(
                    "E0101",
                    name.span,
                    format!("`{}` is defined twice", name.name),
                )
                .with_label("second definition")
                .with_secondary(first, "first defined here"),
            );
            return false;
        }
        self.names.insert(name.name.clone(), (named, name.span));
        true
    }

    fn schema(&mut self, decl: &ast::SchemaDecl) {
        let first = self
            .schemas
            .get(&decl.name.name)
            .map(|(_, s)| *s)
            .or_else(|| {
                self.broken_schemas
                    .iter()
                    .find(|(n, _)| *n == decl.name.name)
                    .map(|(_, s)| *s)
            });
        if let Some(first) = first {
            self.error(
                Diagnostic::error(
                    "E0101",
                    decl.name.span,
                    format!("schema `{}` is defined twice", decl.name.name),
                )
                .with_label("second definition")
                .with_secondary(first, "first defined here"),
            );
            return;
        }
        let mut schema = Schema::default();
        let mut ok = true;
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        for field in &decl.fields {
            if !self.check_field_name(&field.name) {
                ok = false;
                continue;
            }
            if let Some(first) = seen.get(field.name.name.as_str()) {
                self.error(
                    Diagnostic::error(
                        "E0102",
                        field.name.span,
                        format!("field `{}` is declared twice", field.name.name),
                    )
                    .with_secondary(*first, "first declared here"),
                );
                ok = false;
                continue;
            }
            seen.insert(&field.name.name, field.name.span);
            match Type::from_name(&field.ty.name.name) {
                Some(ty) if ty != Type::Duration => schema.fields.push(Field {
                    name: field.name.name.clone(),
                    ty,
                    nullable: field.ty.optional,
                }),
                Some(_) => {
                    self.error(
                        Diagnostic::error("E0103", field.ty.span, "records cannot hold durations")
                            .with_hint("store milliseconds as i64"),
                    );
                    ok = false;
                }
                None => {
                    self.error(expr::unknown_type(&field.ty.name));
                    ok = false;
                }
            }
        }
        if ok {
            self.schemas
                .insert(decl.name.name.clone(), (schema, decl.name.span));
        } else {
            self.broken_schemas
                .push((decl.name.name.clone(), decl.name.span));
        }
    }

    /// The format clause of a source (`reading`) or a sink; JSON without one.
    fn format(&mut self, call: Option<&ast::Call>, reading: bool) -> Option<Format> {
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
            other => {
                let mut d =
                    Diagnostic::error("E0308", call.name.span, format!("unknown format `{other}`"));
                d = match did_you_mean(other, ["json", "csv"]) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint("formats are: json, csv"),
                };
                self.error(d);
                None
            }
        }
    }

    /// `timestamps: "..."` of a format clause: one of the names a source (`reading`) or a sink
    /// accepts, or a date pattern (read or written with the letters of `to_timestamp`).
    fn timestamps(&mut self, args: &Args<'_>, reading: bool) -> Option<Timestamps> {
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

    /// `delivery:` of a Kafka or PostgreSQL sink: whether it is exactly once. A pipeline has
    /// one exactly-once sink at most.
    fn delivery(&mut self, args: &Args<'_>) -> Option<bool> {
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

    /// `upsert_key:` of a Kafka source: fields of the schema, never null and not `f64`, that
    /// make the source's stream updating. Such a source has no event time (yet).
    fn upsert_key(&mut self, ty: &mut StreamType, keys: &[String], span: Span, event_time: bool) {
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

    /// A Kafka message holds one row: a CSV header line has no place in it.
    fn kafka_format(&mut self, call: Option<&ast::Call>, format: &Format) -> bool {
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

    fn source(&mut self, decl: &ast::SourceDecl, span: Span) {
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
                    &["path", "dead_letters", "event_time_range", "parallelism"]
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
                let format = self.format(decl.format.as_ref(), true);
                if decl.schema.is_none() {
                    self.error(
                        Diagnostic::error("E0106", decl.name.span, format!("source `{name}` needs a schema"))
                            .with_hint(format!("declare one and name it: `schema Row {{ ... }}` then `source {name}: Row = ...`")),
                    );
                }
                match (declared_schema, format, is_file, path) {
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
                    &["url", "table", "query"],
                    &mut self.diagnostics,
                );
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
        self.program.sources.push(SourceDef {
            name,
            span,
            kind,
            ty,
            watermark_ms,
            event_time_range: event_time_range.map(|(range, _)| range),
            dead_letters,
        });
    }

    fn let_decl(&mut self, decl: &ast::LetDecl) {
        if self.names.contains_key(&decl.name.name) {
            self.declare(&decl.name, Named::Broken);
            return;
        }
        match self.pipe(&decl.pipe, Some(decl.name.name.clone())) {
            Some(index) => {
                self.declare(&decl.name, Named::Stream(index));
            }
            None => {
                self.names
                    .insert(decl.name.name.clone(), (Named::Broken, decl.name.span));
            }
        }
    }

    /// Resolves a pipe's input and checks its steps; returns the new stream's index.
    fn pipe(&mut self, pipe: &ast::Pipe, name: Option<String>) -> Option<usize> {
        let (input, mut ty) = match self.names.get(&pipe.input.name) {
            Some((Named::Source(i), _))
                if matches!(self.program.sources[*i].kind, SourceKind::Postgres { .. }) =>
            {
                self.error(
                    Diagnostic::error(
                        "E0420",
                        pipe.input.span,
                        "a postgres source is read as the table of a lookup join only",
                    )
                    .with_hint(format!(
                        "join it: `stream |> lookup_join {} as t on key = t.key`",
                        pipe.input.name
                    )),
                );
                return None;
            }
            Some((Named::Source(i), _)) => {
                (StreamInput::Source(*i), self.program.sources[*i].ty.clone())
            }
            Some((Named::Stream(i), _)) => {
                (StreamInput::Stream(*i), self.program.streams[*i].ty.clone())
            }
            Some((Named::Broken, _)) => return None,
            None => {
                if let Some(&declared) = self.all_streams.get(&pipe.input.name) {
                    let name = &pipe.input.name;
                    // Declared earlier but not known yet: the declaration being checked.
                    let d = if declared.start < pipe.input.span.start {
                        Diagnostic::error(
                            "E0107",
                            pipe.input.span,
                            format!("stream `{name}` is defined in terms of itself"),
                        )
                        .with_hint("read from a source or from a stream declared before this one")
                    } else {
                        Diagnostic::error(
                            "E0107",
                            pipe.input.span,
                            format!("stream `{name}` is used before it is declared"),
                        )
                        .with_secondary(declared, "declared here")
                        .with_hint("move the declaration above its first use")
                    };
                    self.error(d);
                    self.used.push(name.clone());
                    return None;
                }
                let mut d = Diagnostic::error(
                    "E0107",
                    pipe.input.span,
                    format!("unknown stream `{}`", pipe.input.name),
                );
                let is_schema = self.schemas.contains_key(&pipe.input.name)
                    || self
                        .broken_schemas
                        .iter()
                        .any(|(n, _)| *n == pipe.input.name);
                if is_schema {
                    d = d.with_hint(format!(
                        "`{}` is a schema; declare a source that reads it",
                        pipe.input.name
                    ));
                } else if let Some(s) =
                    did_you_mean(&pipe.input.name, self.names.keys().map(String::as_str))
                {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                    // The misspelled use is a use: no "never used" warning for `s` too.
                    self.used.push(s.to_string());
                } else {
                    d = d.with_hint(
                        "streams must be declared (with `source` or `let`) before they are used",
                    );
                }
                self.error(d);
                return None;
            }
        };
        self.used.push(pipe.input.name.clone());
        let mut steps = Vec::new();
        let mut pending_keys: Option<(Vec<String>, Span)> = None;
        let mut pending_window: Option<(Window, Span)> = None;
        let mut pending_processing = false;
        // Side outputs of late records declared by this pipe's windows: (name, span, step, type).
        let mut late_streams: Vec<(String, Span, usize, StreamType)> = Vec::new();
        let mut failed = false;
        for step in &pipe.steps {
            if failed {
                break;
            }
            if (pending_keys.is_some() || pending_window.is_some())
                && !matches!(step.kind, StepKind::Window(_) | StepKind::Aggregate { .. })
            {
                let span = pending_window
                    .as_ref()
                    .map(|w| w.1)
                    .or(pending_keys.as_ref().map(|k| k.1))
                    .unwrap_or(step.span);
                self.error(
                    Diagnostic::error("E0401", step.span, "expected `window` or `aggregate` here")
                        .with_secondary(span, "this step needs an `aggregate` after it"),
                );
                failed = true;
                break;
            }
            if let Some(up) = &ty.updating {
                // A select maps changes; an unbounded aggregate retracts revised rows.
                let allowed = matches!(step.kind, StepKind::Select(_) | StepKind::Top { .. })
                    || matches!(step.kind, StepKind::Aggregate { .. }) && pending_window.is_none();
                if !allowed {
                    let up = up.clone();
                    self.error(
                        Diagnostic::error(
                            "E0430",
                            step.span,
                            format!("this step cannot follow `{}`, which makes the stream updating", up.operator),
                        )
                        .with_secondary(up.span, "rows of this stream are revised from here on")
                        .with_hint("an updating stream can go to a sink, a `select` that keeps its key, a `top`, or an `aggregate` without a window; other steps on updating streams are not supported yet"),
                    );
                    failed = true;
                    continue;
                }
            }
            let mut checker = ExprChecker {
                schema: &ty.schema,
                diagnostics: &mut self.diagnostics,
            };
            match &step.kind {
                StepKind::Filter(e) => {
                    let Some(pred) = checker.check(e) else {
                        failed = true;
                        continue;
                    };
                    if pred.ty != Type::Bool {
                        self.error(
                            Diagnostic::error(
                                "E0402",
                                e.span,
                                format!("a filter condition must be a bool, found {}", pred.ty),
                            )
                            .with_label(format!("this is {}", pred.ty))
                            .with_hint("compare it with something, e.g. `price > 0`"),
                        );
                        failed = true;
                        continue;
                    }
                    steps.push(TStep {
                        kind: TStepKind::Filter(pred),
                        span: step.span,
                        ty: ty.clone(),
                    });
                }
                StepKind::Select(items) => {
                    let mut out = Vec::<(String, TExpr)>::new();
                    let mut spans: BTreeMap<String, Span> = BTreeMap::new();
                    let mut time_field = None;
                    let mut window_start = None;
                    for item in items {
                        let entries: Vec<(String, Option<TExpr>, Span)> = match &item.kind {
                            SelectItemKind::Star => ty
                                .schema
                                .fields
                                .iter()
                                .map(|f| {
                                    let e = TExpr {
                                        kind: TExprKind::Field(f.name.clone()),
                                        ty: f.ty,
                                        nullable: f.nullable,
                                        span: item.span,
                                    };
                                    (f.name.clone(), Some(e), item.span)
                                })
                                .collect(),
                            SelectItemKind::Named { name, expr } => {
                                if !self.check_field_name(name) {
                                    failed = true;
                                    continue;
                                }
                                let mut checker = ExprChecker {
                                    schema: &ty.schema,
                                    diagnostics: &mut self.diagnostics,
                                };
                                vec![(name.name.clone(), checker.check(expr), name.span)]
                            }
                        };
                        for (name, e, span) in entries {
                            let Some(e) = e else {
                                failed = true;
                                continue;
                            };
                            if let Some(first) = spans.get(&name) {
                                self.error(
                                    Diagnostic::error(
                                        "E0403",
                                        span,
                                        format!("`{name}` appears twice in this select"),
                                    )
                                    .with_secondary(*first, "first here")
                                    .with_hint("rename one: `other_name: expression`"),
                                );
                                failed = true;
                                continue;
                            }
                            if e.ty == Type::Null {
                                self.error(
                                    Diagnostic::error(
                                        "E0206",
                                        e.span,
                                        "cannot tell the type of `null` here",
                                    )
                                    .with_hint(
                                        "give it a type with a cast, e.g. `cast(null as string)`",
                                    ),
                                );
                                failed = true;
                                continue;
                            }
                            if e.ty == Type::Duration {
                                self.error(
                                    Diagnostic::error(
                                        "E0404",
                                        e.span,
                                        "a duration cannot be a field of a record",
                                    )
                                    .with_hint("cast it to milliseconds: `cast(d as i64)`"),
                                );
                                failed = true;
                                continue;
                            }
                            spans.insert(name.clone(), span);
                            if let (TExprKind::Field(src), Some(t)) = (&e.kind, ty.time_field) {
                                if *src == ty.schema.fields[t].name && time_field.is_none() {
                                    time_field = Some(out.len());
                                }
                            }
                            if let (TExprKind::Field(src), Some(s)) =
                                (&e.kind, ty.window.as_ref().and_then(|w| w.start))
                            {
                                if *src == ty.schema.fields[s].name && window_start.is_none() {
                                    window_start = Some(out.len());
                                }
                            }
                            out.push((name, e));
                        }
                    }
                    if failed {
                        continue;
                    }
                    let schema = Schema {
                        fields: out
                            .iter()
                            .map(|(n, e)| Field {
                                name: n.clone(),
                                ty: e.ty,
                                nullable: e.nullable,
                            })
                            .collect(),
                    };
                    let updating = ty.updating.clone();
                    if let Some(up) = &updating {
                        let kept = |k: &String| {
                            out.iter().any(|(n, e)| {
                                n == k && matches!(&e.kind, TExprKind::Field(f) if f == k)
                            })
                        };
                        if let Some(missing) = up.key.iter().find(|k| !kept(k)) {
                            self.error(
                                Diagnostic::error("E0431", step.span, format!("this select drops `{missing}`, a key of the updating stream"))
                                    .with_secondary(up.span, "the stream's rows are keyed from here")
                                    .with_hint(format!("keep the key fields as they are: {}", up.key.join(", "))),
                            );
                            failed = true;
                            continue;
                        }
                    }
                    // The window's end is the event time: without it, no window to close.
                    let window = ty
                        .window
                        .as_ref()
                        .filter(|_| time_field.is_some())
                        .map(|_| WindowFields {
                            start: window_start,
                        });
                    ty = StreamType {
                        schema,
                        time_field,
                        updating,
                        window,
                    };
                    steps.push(TStep {
                        kind: TStepKind::Select(out),
                        span: step.span,
                        ty: ty.clone(),
                    });
                }
                StepKind::KeyBy(keys) => {
                    if let Some(k) = self.keys(keys, &ty) {
                        pending_keys = Some((k, step.span));
                    } else {
                        failed = true;
                    }
                }
                StepKind::Window(call) => match self.window(call) {
                    Some(w) => {
                        pending_window = Some((w, step.span));
                        pending_processing = self.processing;
                    }
                    None => failed = true,
                },
                StepKind::Aggregate { by, items } => {
                    let by_keys = if by.is_empty() {
                        Some(Vec::new())
                    } else {
                        self.keys(by, &ty)
                    };
                    let Some(by_keys) = by_keys else {
                        failed = true;
                        continue;
                    };
                    let keys = match (pending_keys.take(), by_keys.is_empty()) {
                        (Some((k, _)), true) => k,
                        (None, _) => by_keys,
                        (Some((_, span)), false) => {
                            self.error(
                                Diagnostic::error(
                                    "E0405",
                                    by[0].span,
                                    "keys given twice: by `key_by` and by `aggregate by`",
                                )
                                .with_secondary(span, "keys set here")
                                .with_hint(
                                    "key the stream once: either `|> key_by k` or `aggregate by k`",
                                ),
                            );
                            failed = true;
                            continue;
                        }
                    };
                    // No window: an unbounded aggregate, whose rows update as records arrive.
                    let (window, window_span) = match pending_window.take() {
                        Some(w) => w,
                        None => {
                            pending_processing = true; // needs no event time
                            self.processing = false;
                            self.lateness = 0;
                            self.late_output = None;
                            self.window_zone = None;
                            (Window::Unbounded, step.span)
                        }
                    };
                    let time = match ty.time_field {
                        Some(time) => Some(time),
                        None if pending_processing => None,
                        None => {
                            self.error(
                            Diagnostic::error("E0407", window_span, "a window needs event time, and this stream has none")
                                .with_hint("declare it on the source: `event_time FIELD watermark 4s`, and keep that field in every `select` before the window"),
                        );
                            failed = true;
                            continue;
                        }
                    };
                    let time_field =
                        time.map_or(String::new(), |t| ty.schema.fields[t].name.clone());
                    let late = self.late_output.clone();
                    let input_ty = ty.clone();
                    match self.aggregate(&ty, keys, window, time_field, items, step.span) {
                        Some((agg, out)) => {
                            if let Some((name, span)) = late {
                                let mut late_ty = input_ty;
                                late_ty.updating = None;
                                late_streams.push((name, span, steps.len(), late_ty));
                            }
                            ty = out;
                            steps.push(TStep {
                                kind: TStepKind::WindowAggregate(agg),
                                span: step.span,
                                ty: ty.clone(),
                            });
                        }
                        None => failed = true,
                    }
                }
                StepKind::Dedup {
                    by,
                    keep_last,
                    options,
                } => {
                    let Some(keys) = self.keys(by, &ty) else {
                        failed = true;
                        continue;
                    };
                    let Some((ttl_ms, ttl_time)) = self.rank_options(options, &ty, "dedup") else {
                        failed = true;
                        continue;
                    };
                    // First/last by event time when the stream has it, else by arrival.
                    let order = match ty.time_field {
                        Some(t) => {
                            let f = &ty.schema.fields[t];
                            let e = TExpr {
                                kind: TExprKind::Field(f.name.clone()),
                                ty: f.ty,
                                nullable: false,
                                span: step.span,
                            };
                            vec![(e, *keep_last)]
                        }
                        None => Vec::new(),
                    };
                    // Keyed by a window: one final row per key when the window closes.
                    let final_at = ty.closing_field(&keys);
                    let def = RankDef {
                        keys: keys.clone(),
                        n: 1,
                        order,
                        newer_wins_ties: *keep_last,
                        with_rank: false,
                        retract_key: None,
                        final_at: final_at.clone(),
                        ttl_ms,
                        ttl_time,
                    };
                    if final_at.is_none() {
                        ty.updating = Some(Updating {
                            key: keys,
                            operator: "dedup",
                            span: step.span,
                        });
                        ty.time_field = None;
                        ty.window = None;
                    }
                    steps.push(TStep {
                        kind: TStepKind::Rank(def),
                        span: step.span,
                        ty: ty.clone(),
                    });
                }
                StepKind::Top {
                    n,
                    by,
                    order,
                    options,
                } => {
                    let n = match &n.kind {
                        ast::ExprKind::Lit(Literal::Int(v)) if (1..=100_000).contains(v) => {
                            *v as usize
                        }
                        _ => {
                            self.error(Diagnostic::error(
                                "E0432",
                                n.span,
                                "`top` takes a count between 1 and 100000",
                            ));
                            failed = true;
                            continue;
                        }
                    };
                    let Some(keys) = self.keys(by, &ty) else {
                        failed = true;
                        continue;
                    };
                    let mut typed = Vec::new();
                    for (e, desc) in order {
                        let mut checker = ExprChecker {
                            schema: &ty.schema,
                            diagnostics: &mut self.diagnostics,
                        };
                        match checker.check(e) {
                            Some(t) if t.ty == Type::Null => {
                                self.error(Diagnostic::error(
                                    "E0206",
                                    e.span,
                                    "cannot order by `null`",
                                ));
                                failed = true;
                            }
                            Some(t) => typed.push((t, *desc)),
                            None => failed = true,
                        }
                    }
                    let Some((ttl_ms, ttl_time)) = self.rank_options(options, &ty, "top") else {
                        failed = true;
                        continue;
                    };
                    if failed {
                        continue;
                    }
                    if ty.schema.field("rank").is_some() {
                        self.error(
                            Diagnostic::error(
                                "E0403",
                                step.span,
                                "`top` adds a field `rank`, and the stream already has one",
                            )
                            .with_hint("rename the existing field with a `select` first"),
                        );
                        failed = true;
                        continue;
                    }
                    let retract_key = ty.updating.as_ref().map(|u| u.key.clone());
                    // Keyed by a window: the final top N per key when the window closes.
                    let final_at = ty.closing_field(&keys);
                    let mut key = keys.clone();
                    key.push("rank".to_string());
                    ty.schema.fields.push(Field::new("rank", Type::I64));
                    if final_at.is_none() {
                        ty.updating = Some(Updating {
                            key,
                            operator: "top",
                            span: step.span,
                        });
                        ty.time_field = None;
                        ty.window = None;
                    }
                    let def = RankDef {
                        keys,
                        n,
                        order: typed,
                        newer_wins_ties: false,
                        with_rank: true,
                        retract_key,
                        final_at,
                        ttl_ms,
                        ttl_time,
                    };
                    steps.push(TStep {
                        kind: TStepKind::Rank(def),
                        span: step.span,
                        ty: ty.clone(),
                    });
                }
                StepKind::Join(join) => match self.join(&ty, join, step.span) {
                    Some((def, out)) => {
                        ty = out;
                        steps.push(TStep {
                            kind: TStepKind::Join(Box::new(def)),
                            span: step.span,
                            ty: ty.clone(),
                        });
                    }
                    None => failed = true,
                },
            }
        }
        if !failed {
            if let Some((_, span)) =
                pending_window.or(pending_keys.map(|(_, s)| (Window::Tumble { size_ms: 0 }, s)))
            {
                self.error(
                    Diagnostic::error("E0408", span, "this step needs an `aggregate` after it")
                        .with_hint("e.g. `|> aggregate { n: count() }`"),
                );
                failed = true;
            }
        }
        if failed {
            return None;
        }
        let index = self.program.streams.len();
        self.program.streams.push(StreamDef {
            name,
            span: pipe.span,
            input,
            steps,
            ty,
        });
        for (late_name, late_span, step, late_ty) in late_streams {
            let ident = ast::Ident {
                name: late_name.clone(),
                span: late_span,
            };
            let late_index = self.program.streams.len();
            if self.declare(&ident, Named::Stream(late_index)) {
                self.program.streams.push(StreamDef {
                    name: Some(late_name),
                    span: late_span,
                    input: StreamInput::Late {
                        stream: index,
                        step,
                    },
                    steps: Vec::new(),
                    ty: late_ty,
                });
            }
        }
        Some(index)
    }

    fn keys(&mut self, keys: &[ast::Ident], ty: &StreamType) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for key in keys {
            match ty.schema.field(&key.name) {
                Some((_, f)) if f.ty == Type::F64 => {
                    self.error(
                        Diagnostic::error(
                            "E0409",
                            key.span,
                            format!("cannot key by `{}`: f64 keys are not supported", key.name),
                        )
                        .with_hint("key by an integer or string; cast if needed"),
                    );
                    ok = false;
                }
                Some(_) if out.contains(&key.name) => {
                    self.error(Diagnostic::error(
                        "E0403",
                        key.span,
                        format!("key `{}` is listed twice", key.name),
                    ));
                    ok = false;
                }
                Some(_) => out.push(key.name.clone()),
                None => {
                    let mut d = Diagnostic::error(
                        "E0201",
                        key.span,
                        format!("unknown field `{}`", key.name),
                    );
                    if let Some(s) = did_you_mean(&key.name, ty.schema.names()) {
                        d = d.with_hint(format!("did you mean `{s}`?"));
                    }
                    self.error(d);
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// `time: event` (the default) or `time: processing`.
    fn time_mode(&mut self, args: &Args<'_>) -> Option<bool> {
        self.lateness = args
            .duration("lateness", &mut self.diagnostics)
            .unwrap_or(0);
        self.late_output = args
            .string("late", &mut self.diagnostics)
            .map(|name| (name, args.span_of("late")));
        match args.string("time", &mut self.diagnostics).as_deref() {
            None | Some("event") => Some(false),
            Some("processing") => Some(true),
            Some(other) => {
                self.error(
                    Diagnostic::error(
                        "E0418",
                        args.span_of("time"),
                        format!("unknown time `{other}`"),
                    )
                    .with_hint("windows run on `time: event` (the default) or `time: processing`"),
                );
                None
            }
        }
    }

    fn window(&mut self, call: &ast::Call) -> Option<Window> {
        self.processing = false;
        self.lateness = 0;
        self.late_output = None;
        self.window_zone = None;
        match call.name.name.as_str() {
            "tumble" => {
                let args = Args::new(
                    call,
                    "window `tumble`",
                    &["size", "time", "lateness", "late", "zone"],
                    &mut self.diagnostics,
                );
                let size = args.duration("size", &mut self.diagnostics);
                let size = args.required("size", size, &mut self.diagnostics)?;
                self.processing = self.time_mode(&args)?;
                // `zone: "America/New_York"`: windows aligned to that zone's wall clock.
                if let Some(zone) = args.string("zone", &mut self.diagnostics) {
                    if let Err(message) = functions::check_zone(&zone) {
                        let names = functions::zone_names();
                        let hint = match did_you_mean(&zone, names.iter().map(String::as_str)) {
                            Some(s) => format!("did you mean \"{s}\"?"),
                            None => "zones are IANA names such as \"Europe/Paris\" or \"UTC\""
                                .to_string(),
                        };
                        self.error(
                            Diagnostic::error("E0213", args.span_of("zone"), message)
                                .with_hint(hint),
                        );
                        return None;
                    }
                    self.window_zone = Some(zone);
                }
                Some(Window::Tumble { size_ms: size })
            }
            "hop" => {
                let args = Args::new(
                    call,
                    "window `hop`",
                    &["size", "slide", "time", "lateness", "late"],
                    &mut self.diagnostics,
                );
                let size = args.duration("size", &mut self.diagnostics);
                let slide = args.duration("slide", &mut self.diagnostics);
                let size = args.required("size", size, &mut self.diagnostics);
                let slide = args.required("slide", slide, &mut self.diagnostics);
                let (size, slide) = (size?, slide?);
                if slide > size || size % slide != 0 {
                    self.error(
                        Diagnostic::error(
                            "E0417",
                            call.span,
                            "a hop's size must be a whole multiple of its slide",
                        )
                        .with_hint(format!(
                            "e.g. `hop(size: {}ms, slide: {}ms)`",
                            slide * (size / slide).max(1),
                            slide
                        )),
                    );
                    return None;
                }
                self.processing = self.time_mode(&args)?;
                Some(Window::Hop {
                    size_ms: size,
                    slide_ms: slide,
                })
            }
            "cumulate" => {
                let args = Args::new(
                    call,
                    "window `cumulate`",
                    &["step", "size", "time", "lateness", "late"],
                    &mut self.diagnostics,
                );
                let step = args.duration("step", &mut self.diagnostics);
                let size = args.duration("size", &mut self.diagnostics);
                let step = args.required("step", step, &mut self.diagnostics);
                let size = args.required("size", size, &mut self.diagnostics);
                let (step, size) = (step?, size?);
                if step > size || size % step != 0 {
                    self.error(
                        Diagnostic::error(
                            "E0417",
                            call.span,
                            "a cumulate window's size must be a whole multiple of its step",
                        )
                        .with_hint("e.g. `cumulate(step: 1m, size: 1h)`"),
                    );
                    return None;
                }
                self.processing = self.time_mode(&args)?;
                Some(Window::Cumulate {
                    step_ms: step,
                    size_ms: size,
                })
            }
            "session" => {
                let args = Args::new(
                    call,
                    "window `session`",
                    &["gap", "time", "late"],
                    &mut self.diagnostics,
                );
                let gap = args.duration("gap", &mut self.diagnostics);
                let gap = args.required("gap", gap, &mut self.diagnostics)?;
                self.processing = self.time_mode(&args)?;
                Some(Window::Session { gap_ms: gap })
            }
            other => {
                let mut d =
                    Diagnostic::error("E0411", call.name.span, format!("unknown window `{other}`"));
                d = match did_you_mean(other, ["tumble", "hop", "session", "cumulate"]) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint("windows are: tumble(size), hop(size, slide), cumulate(step, size), session(gap)"),
                };
                self.error(d);
                None
            }
        }
    }

    fn aggregate(
        &mut self,
        input: &StreamType,
        keys: Vec<String>,
        window: Window,
        time_field: String,
        items: &[ast::SelectItem],
        span: Span,
    ) -> Option<(WindowAggregate, StreamType)> {
        let keys_for_update = keys.clone();
        let mut fields: Vec<Field> = keys
            .iter()
            .map(|k| {
                input
                    .schema
                    .field(k)
                    .map(|(_, f)| f.clone())
                    .unwrap_or_else(|| Field::new(k, Type::I64))
            })
            .collect();
        let key_count = fields.len();
        let unbounded = window == Window::Unbounded;
        if !unbounded {
            if let Some(k) = keys
                .iter()
                .find(|k| *k == "window_start" || *k == "window_end")
            {
                self.error(
                    Diagnostic::error(
                        "E0403",
                        span,
                        format!(
                            "keying a window by `{k}` would repeat the window's own `{k}` field"
                        ),
                    )
                    .with_hint(format!(
                        "rename it first: `|> select {{ ..., previous_{k}: {k} }}`"
                    )),
                );
                return None;
            }
        }
        if !unbounded {
            fields.push(Field::new("window_start", Type::Timestamp));
            fields.push(Field::new("window_end", Type::Timestamp));
        }
        let mut aggs = Vec::new();
        let mut ok = true;
        for item in items {
            let SelectItemKind::Named { name, expr } = &item.kind else {
                self.error(
                    Diagnostic::error("E0412", item.span, "`*` cannot be aggregated")
                        .with_hint("name each aggregate: `n: count(), top: max(price)`"),
                );
                ok = false;
                continue;
            };
            if !self.check_field_name(name) {
                ok = false;
                continue;
            }
            if fields.iter().any(|f| f.name == name.name) {
                self.error(
                    Diagnostic::error("E0403", name.span, format!("`{}` is already a field of the aggregate's output", name.name))
                        .with_hint("the output holds the keys, window_start, window_end and the aggregates; rename this one"),
                );
                ok = false;
                continue;
            }
            // `agg(...) filter (where cond)`: the condition is checked against the input.
            let (call, filter) = match &expr.kind {
                ast::ExprKind::AggFilter { call, condition } => {
                    let mut checker = ExprChecker {
                        schema: &input.schema,
                        diagnostics: &mut self.diagnostics,
                    };
                    match checker.check(condition) {
                        Some(c) if c.ty == Type::Bool || c.ty == Type::Null => {
                            (call.as_ref(), Some(c))
                        }
                        Some(c) => {
                            self.error(
                                Diagnostic::error(
                                    "E0402",
                                    c.span,
                                    format!("a filter condition must be a bool, found {}", c.ty),
                                )
                                .with_label(format!("this is {}", c.ty)),
                            );
                            ok = false;
                            continue;
                        }
                        None => {
                            ok = false;
                            continue;
                        }
                    }
                }
                _ => (expr, None),
            };
            let ast::ExprKind::Call(func_name, args) = &call.kind else {
                self.error(
                    Diagnostic::error("E0413", expr.span, "each aggregate item must be one aggregate call")
                        .with_hint("aggregates are count, sum, min, max, avg, first_value, last_value; compute from them in a `select` after the aggregate"),
                );
                ok = false;
                continue;
            };
            let udf = udf::lookup(&func_name.name).filter(|u| u.aggregate);
            if udf.is_some() {
                udf::record_call(&func_name.name, call.span);
            }
            let Some(func) =
                AggFunc::from_name(&func_name.name).or(udf.as_ref().map(|_| AggFunc::Udf))
            else {
                let mut d = Diagnostic::error(
                    "E0414",
                    func_name.span,
                    format!("`{}` is not an aggregate function", func_name.name),
                );
                d = match did_you_mean(&func_name.name, AggFunc::NAMES) {
                    Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                    None => d.with_hint(
                        "aggregates are: count, sum, min, max, avg, first_value, last_value",
                    ),
                };
                self.error(d);
                ok = false;
                continue;
            };
            let mut distinct = false;
            let arg = match (func, args.as_slice()) {
                (AggFunc::Count, []) => None,
                (_, [arg]) => {
                    let arg = match &arg.kind {
                        ast::ExprKind::Distinct(inner) if func == AggFunc::Count => {
                            distinct = true;
                            inner.as_ref()
                        }
                        ast::ExprKind::Distinct(_) => {
                            self.error(
                                Diagnostic::error(
                                    "E0216",
                                    arg.span,
                                    format!("`{}` cannot take `distinct`", func.name()),
                                )
                                .with_hint("only `count(distinct x)` counts distinct values"),
                            );
                            ok = false;
                            continue;
                        }
                        _ => arg,
                    };
                    let mut checker = ExprChecker {
                        schema: &input.schema,
                        diagnostics: &mut self.diagnostics,
                    };
                    match checker.check(arg) {
                        Some(e) => Some(e),
                        None => {
                            ok = false;
                            continue;
                        }
                    }
                }
                _ => {
                    self.error(Diagnostic::error(
                        "E0209",
                        call.span,
                        format!("`{}` takes 1 argument, found {}", func.name(), args.len()),
                    ));
                    ok = false;
                    continue;
                }
            };
            if distinct && arg.as_ref().is_some_and(|a| a.ty == Type::F64) {
                self.error(
                    Diagnostic::error(
                        "E0415",
                        call.span,
                        "`count(distinct ...)` cannot count f64 values",
                    )
                    .with_hint("cast to i64 or string first"),
                );
                ok = false;
                continue;
            }
            let (ty, nullable) = match (func, &arg) {
                (AggFunc::Count, _) => (Type::I64, false),
                (_, Some(a)) => {
                    if let Some(udf) = &udf {
                        let want = udf.params.first().map_or(Type::Null, |p| p.1);
                        let fits = a.ty == want || (want == Type::F64 && a.ty == Type::I64);
                        if !fits {
                            self.error(
                                Diagnostic::error(
                                    "E0211",
                                    a.span,
                                    format!(
                                        "the argument of `{}` must be {want}, found {}",
                                        udf.name, a.ty
                                    ),
                                )
                                .with_label(format!("this is {}", a.ty))
                                .with_hint(format!(
                                    "the Rust accumulator is declared as `{}`",
                                    udf.signature()
                                )),
                            );
                            ok = false;
                            continue;
                        }
                    }
                    let allowed = match func {
                        AggFunc::Udf => true,
                        AggFunc::Sum | AggFunc::Avg => a.ty.is_numeric(),
                        AggFunc::FirstValue | AggFunc::LastValue => a.ty != Type::Null,
                        _ => matches!(a.ty, Type::I64 | Type::F64 | Type::String | Type::Timestamp),
                    };
                    if !allowed {
                        self.error(
                            Diagnostic::error(
                                "E0415",
                                a.span,
                                format!("`{}` cannot aggregate {}", func.name(), a.ty),
                            )
                            .with_label(format!("this is {}", a.ty)),
                        );
                        ok = false;
                        continue;
                    }
                    if let Some(udf) = &udf {
                        // An accumulator always has a result (its default, for no records).
                        (udf.result, false)
                    } else {
                        let ty = if func == AggFunc::Avg {
                            Type::F64
                        } else {
                            a.ty
                        };
                        // With its own condition an aggregate may see no record at all: null then.
                        // A sum whose total leaves the range (i64, or f64's finite values) is
                        // null too, and so is a float average whose total does.
                        let out_of_range =
                            func == AggFunc::Sum || (func == AggFunc::Avg && a.ty == Type::F64);
                        (ty, a.nullable || filter.is_some() || out_of_range)
                    }
                }
                (_, None) => unreachable!("only count takes no argument"),
            };
            if input.updating.is_some() {
                let unsupported = matches!(
                    func,
                    AggFunc::FirstValue | AggFunc::LastValue | AggFunc::Udf
                ) || matches!(func, AggFunc::Min | AggFunc::Max)
                    && ty == Type::F64;
                if unsupported {
                    self.error(
                        Diagnostic::error(
                            "E0434",
                            call.span,
                            format!("`{}` cannot aggregate an updating stream{}", func.name(), if ty == Type::F64 { " of f64" } else { "" }),
                        )
                        .with_hint("revised rows must be taken back out: count, sum, avg, count(distinct), and min/max of integers, strings and timestamps can"),
                    );
                    ok = false;
                    continue;
                }
            }
            fields.push(Field {
                name: name.name.clone(),
                ty,
                nullable,
            });
            aggs.push(AggItem {
                name: name.name.clone(),
                func,
                arg,
                distinct,
                filter,
                ty,
                nullable,
                udf: udf.map(|u| u.path),
            });
        }
        // The grammar needs one item at least, and an item that is no aggregate is an error.
        debug_assert!(!aggs.is_empty() || !ok, "an aggregate without aggregates");
        // Without a window, keyed by a window upstream: one final row per group at its end.
        let final_at = if unbounded {
            input.closing_field(&keys)
        } else {
            None
        };
        let (out_time, out_window) = if !self.processing && !unbounded && self.lateness == 0 {
            // `window_end` carries event time on: rows leave when the watermark reaches it,
            // so a later window, an interval join or a final top-N can use it.
            let start = matches!(window, Window::Tumble { .. } | Window::Hop { .. });
            (
                Some(key_count + 1),
                Some(WindowFields {
                    start: start.then_some(key_count),
                }),
            )
        } else if let Some(end) = &final_at {
            // The window's bounds among the keys stay what they were.
            let time = keys.iter().position(|k| k == end);
            let start = input
                .window
                .as_ref()
                .and_then(|w| w.start)
                .map(|s| &input.schema.fields[s].name)
                .and_then(|s| keys.iter().position(|k| k == s));
            (time, time.map(|_| WindowFields { start }))
        } else {
            (None, None)
        };
        ok.then_some((
            WindowAggregate {
                keys,
                window,
                time_field,
                processing_time: self.processing || (unbounded && final_at.is_none()),
                lateness_ms: self.lateness,
                late_output: self.late_output.as_ref().map(|(n, _)| n.clone()),
                zone: self.window_zone.clone(),
                retract_key: input.updating.as_ref().map(|u| u.key.clone()),
                final_at: final_at.clone(),
                aggs,
            },
            StreamType {
                schema: Schema { fields },
                time_field: out_time,
                window: out_window,
                updating: if unbounded && final_at.is_none() {
                    Some(Updating {
                        key: keys_for_update,
                        operator: "aggregate",
                        span,
                    })
                } else if self.lateness > 0 {
                    // Late records re-emit their window's row: keyed by key and window.
                    let mut key = keys_for_update;
                    key.push("window_start".into());
                    key.push("window_end".into());
                    Some(Updating {
                        key,
                        operator: "window with allowed lateness",
                        span,
                    })
                } else {
                    None
                },
            },
        ))
    }

    /// The options of a dedup or top-N step: `ttl(duration)`, the state TTL, with the
    /// event-time field it counts by (`None` over an updating stream: the watermark at
    /// arrival). `None` after an error.
    #[allow(clippy::type_complexity)]
    fn rank_options(
        &mut self,
        options: &[ast::Call],
        ty: &StreamType,
        step: &str,
    ) -> Option<(Option<i64>, Option<String>)> {
        let mut ttl_ms = None;
        for option in options {
            if option.name.name != "ttl" {
                self.error(
                    Diagnostic::error(
                        "E0445",
                        option.name.span,
                        format!("`{}` is not an option of `{step}`", option.name.name),
                    )
                    .with_hint("its options: `ttl(duration)`, e.g. `ttl(1h)`"),
                );
                return None;
            }
            let args = Args::new(option, "`ttl`", &["duration"], &mut self.diagnostics);
            let ttl = args.duration("duration", &mut self.diagnostics);
            let ttl = args.required("duration", ttl, &mut self.diagnostics)?;
            if ttl_ms.replace(ttl).is_some() {
                self.error(Diagnostic::error(
                    "E0445",
                    option.span,
                    format!("`{step}` has two `ttl` options"),
                ));
                return None;
            }
            if ty.time_field.is_none() && ty.updating.is_none() {
                self.error(
                    Diagnostic::error(
                        "E0446",
                        option.span,
                        format!("a `{step}`'s `ttl` counts in event time, and this stream has none"),
                    )
                    .with_hint(
                        "declare `event_time FIELD watermark ...` on the source and keep the field in every `select` before this step, or drop the ttl",
                    ),
                );
                return None;
            }
        }
        let time = ttl_ms.and(ty.time_field.map(|t| ty.schema.fields[t].name.clone()));
        Some((ttl_ms, time))
    }

    fn sink(&mut self, decl: &ast::SinkDecl, span: Span) {
        let stream = self.pipe(&decl.pipe, None);
        let connector = &decl.connector;
        let kind = match connector.name.name.as_str() {
            "stdout" => {
                Args::new(connector, "sink `stdout`", &[], &mut self.diagnostics);
                self.format(decl.format.as_ref(), false)
                    .map(|format| SinkKind::Stdout { format })
            }
            "file" => {
                let args = Args::new(
                    connector,
                    "sink `file`",
                    &["path", "partition_by", "parts"],
                    &mut self.diagnostics,
                );
                let parts = args.bool("parts", &mut self.diagnostics).unwrap_or(false);
                let path = args.string("path", &mut self.diagnostics);
                let path = args.required("path", path, &mut self.diagnostics);
                let format = self.format(decl.format.as_ref(), false);
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
                path.zip(format)
                    .filter(|_| partition_ok)
                    .map(|(path, format)| SinkKind::File {
                        path,
                        format,
                        partition_by,
                        parts,
                    })
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
            let index = self.program.sinks.len();
            let target = match &kind {
                SinkKind::Stdout { .. } => "stdout".to_string(),
                SinkKind::File { path, .. } => format!("file {path}"),
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

    fn warn_unused(&mut self) {
        let mut unused: Vec<(String, Span)> = self
            .names
            .iter()
            .filter(|(name, (named, _))| {
                !matches!(named, Named::Broken) && !self.used.contains(name)
            })
            .map(|(name, (_, span))| (name.clone(), *span))
            .collect();
        unused.sort_by_key(|(_, span)| *span);
        for (name, span) in unused {
            self.diagnostics.push(
                Diagnostic::warning("W0001", span, format!("`{name}` is never used"))
                    .with_hint("only streams that reach a `sink` run"),
            );
        }
    }
}

/// `properties: "session.timeout.ms=6000,fetch.min.bytes=1"`: librdkafka properties as
/// `key=value` pairs separated by commas (a value cannot hold a comma: pass such a property
/// with the binary's `--kafka-property key=value`). `None` after reporting a malformed one.
fn kafka_properties(
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
fn postgres_table_ok(t: &str, args: &Args<'_>, d: &mut Vec<Diagnostic>) -> bool {
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
fn kafka_topic_ok(topic: &str, args: &Args<'_>, diagnostics: &mut Vec<Diagnostic>) -> bool {
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
