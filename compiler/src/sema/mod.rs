//! Semantic analysis: resolves names (schemas, sources, streams, fields, functions) and checks
//! types, turning the AST into a [`Program`]. It never stops at the first error: every item is
//! checked, and an item that fails is left out so later items report their own mistakes
//! instead of cascades.
//!
//! One file per kind of item or step, each an `impl Checker` block: `sources.rs`, `sinks.rs`
//! and `connectors.rs` (formats and connector arguments they share), `windows.rs`,
//! `aggregates.rs` (keys too), `ranking.rs` (`top`/`dedup` options), `join.rs`; this file
//! holds the checker, schemas, `let` and the walk through a pipe's steps. Error codes are
//! listed in `crate::codes`.

mod aggregates;
pub mod args;
pub(crate) mod avro;
mod connectors;
pub mod expr;
pub mod functions;
mod join;
mod nested;
pub mod nexmark;
pub mod program;
mod sinks;
mod sources;
mod ttl;
pub mod types;
pub mod udf;
mod windows;

use std::collections::BTreeMap;

use weir_dsl::ast::{self, ItemKind, Literal, SelectItemKind, StepKind};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

pub use expr::{ExprChecker, TExpr, TExprKind};
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
    check_partial_in(module, unparsed, None)
}

/// [`check_partial`], reading the Avro schema files the pipeline names relative to
/// `schema_dir` (the pipeline file's folder).
pub fn check_partial_in(
    module: &ast::Module,
    unparsed: Option<&Unparsed>,
    schema_dir: Option<&std::path::Path>,
) -> (Option<Program>, Vec<Diagnostic>) {
    let mut cx = Checker {
        schema_dir: schema_dir.map(std::path::Path::to_path_buf),
        ..Checker::default()
    };
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
    cx.check_output_paths();
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
    /// The folder `.avsc` files of `format avro(schema: "x.avsc")` are read from (the
    /// pipeline file's); `None`: the working directory.
    schema_dir: Option<std::path::PathBuf>,
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
            match self.field_type(&field.ty) {
                Some(ty) => schema.fields.push(Field {
                    name: field.name.name.clone(),
                    ty,
                    nullable: field.ty.optional,
                }),
                None => ok = false,
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

    /// The type of a schema field as written: a scalar, a nested record (its fields checked
    /// like a schema's) or an array; `None` after reporting what is wrong.
    fn field_type(&mut self, ty: &ast::TypeExpr) -> Option<Type> {
        match &ty.kind {
            ast::TypeKind::Named(name) => match Type::from_name(&name.name) {
                Some(Type::Duration) => {
                    self.error(
                        Diagnostic::error("E0103", ty.span, "records cannot hold durations")
                            .with_hint("store milliseconds as i64"),
                    );
                    None
                }
                Some(t) => Some(t),
                None => {
                    self.error(expr::unknown_type(name));
                    None
                }
            },
            ast::TypeKind::Array(element) => {
                let t = self.field_type(element)?;
                Some(Type::array(t, element.optional))
            }
            ast::TypeKind::Record(decls) => {
                let mut fields: Vec<Field> = Vec::new();
                let mut ok = true;
                for decl in decls {
                    if !self.check_field_name(&decl.name) {
                        ok = false;
                        continue;
                    }
                    if fields.iter().any(|f| f.name == decl.name.name) {
                        self.error(Diagnostic::error(
                            "E0102",
                            decl.name.span,
                            format!("field `{}` is declared twice", decl.name.name),
                        ));
                        ok = false;
                        continue;
                    }
                    match self.field_type(&decl.ty) {
                        Some(t) => fields.push(Field {
                            name: decl.name.name.clone(),
                            ty: t,
                            nullable: decl.ty.optional,
                        }),
                        None => ok = false,
                    }
                }
                if fields.is_empty() && ok {
                    self.error(
                        Diagnostic::error("E0103", ty.span, "a nested record needs a field")
                            .with_hint("name its fields: `{ id: i64 }`"),
                    );
                    return None;
                }
                ok.then(|| Type::record(fields))
            }
        }
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
            Some((Named::Source(i), _)) if self.program.sources[*i].refresh_ms.is_some() => {
                self.error(refreshed_as_stream(pipe.input.span, &pipe.input.name));
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
                StepKind::Unnest { array, alias } => {
                    let Some(array_expr) = checker.check(array) else {
                        failed = true;
                        continue;
                    };
                    let Type::Array(array_type) = array_expr.ty else {
                        self.error(
                            Diagnostic::error(
                                "E0222",
                                array.span,
                                format!("`unnest` needs an array, found {}", array_expr.ty),
                            )
                            .with_label(format!("this is {}", array_expr.ty))
                            .with_hint(
                                "unnest a field declared as an array: `items: [{ sku: string }]`",
                            ),
                        );
                        failed = true;
                        continue;
                    };
                    if !self.check_field_name(alias) {
                        failed = true;
                        continue;
                    }
                    if ty.schema.field(&alias.name).is_some() {
                        self.error(
                            Diagnostic::error(
                                "E0403",
                                alias.span,
                                format!("`{}` is already a field of the input", alias.name),
                            )
                            .with_hint("name the element otherwise: `unnest items as item`"),
                        );
                        failed = true;
                        continue;
                    }
                    ty.schema.fields.push(Field {
                        name: alias.name.clone(),
                        ty: array_type.element,
                        nullable: array_type.nullable,
                    });
                    // One row per element: each row keeps the input's event time; an
                    // updating stream was refused above.
                    ty.window = None;
                    steps.push(TStep {
                        kind: TStepKind::Unnest(UnnestDef {
                            array: array_expr,
                            alias: alias.name.clone(),
                        }),
                        span: step.span,
                        ty: ty.clone(),
                    });
                }
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
                    let Some(keys) = self.key_paths(keys, &mut ty, &mut steps, step.span) else {
                        failed = true;
                        continue;
                    };
                    if let Some(k) = self.keys(&keys, &ty) {
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
                StepKind::Aggregate { by, items, options } => {
                    let Some(by) = self.key_paths(by, &mut ty, &mut steps, step.span) else {
                        failed = true;
                        continue;
                    };
                    let by_keys = if by.is_empty() {
                        Some(Vec::new())
                    } else {
                        self.keys(&by, &ty)
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
                    // A TTL bounds the state of an aggregate without a window; a window's state
                    // goes when it closes.
                    if let (Some(option), Some((_, window_span))) =
                        (options.first(), pending_window.as_ref())
                    {
                        self.error(
                            Diagnostic::error(
                                "E0448",
                                option.span,
                                "a windowed aggregate's state is bounded by its windows: it takes no `ttl`",
                            )
                            .with_secondary(*window_span, "its state goes when this window closes")
                            .with_hint("a `ttl` bounds the state of an `aggregate by` without a window; drop it here"),
                        );
                        failed = true;
                        continue;
                    }
                    let Some(ttl) = self.ttl_options(options, &ty, "aggregate") else {
                        failed = true;
                        continue;
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
                        Some((mut agg, out)) => {
                            // Keyed by a window, each group goes when it closes: a TTL
                            // changes nothing (as for a `top` or `dedup` keyed by one).
                            if agg.final_at.is_none() {
                                agg.ttl = ttl;
                            }
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
                    let Some(by) = self.key_paths(by, &mut ty, &mut steps, step.span) else {
                        failed = true;
                        continue;
                    };
                    let Some(keys) = self.keys(&by, &ty) else {
                        failed = true;
                        continue;
                    };
                    let Some(ttl) = self.ttl_options(options, &ty, "dedup") else {
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
                        ttl,
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
                    let Some(by) = self.key_paths(by, &mut ty, &mut steps, step.span) else {
                        failed = true;
                        continue;
                    };
                    let Some(keys) = self.keys(&by, &ty) else {
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
                            Some(t) if t.ty.is_nested() => {
                                self.error(expr::nested_value(e.span, t.ty));
                                failed = true;
                            }
                            Some(t) => typed.push((t, *desc)),
                            None => failed = true,
                        }
                    }
                    let Some(ttl) = self.ttl_options(options, &ty, "top") else {
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
                        ttl,
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

/// `E0428`: a source read again every so often (`refresh:`) is a lookup join's table, and
/// the stream it would make has no end and no order.
pub(super) fn refreshed_as_stream(span: weir_dsl::Span, name: &str) -> Diagnostic {
    Diagnostic::error(
        "E0428",
        span,
        format!("`{name}` is read again every so often (`refresh:`): it is a lookup table, not a stream"),
    )
    .with_hint(format!(
        "join it: `stream |> lookup_join {name} as t on key = t.key`, or drop `refresh:` to read it as a stream"
    ))
}
