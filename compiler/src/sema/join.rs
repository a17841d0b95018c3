//! Checking join steps: resolving the joined stream, splitting the `on` condition into key
//! equalities and a residual condition, reading the join's options, and typing its output.
//!
//! In the `on` condition and after the join, the joined stream's fields are named
//! `alias.field` (the alias defaults to the stream's name); the left stream's fields keep
//! their names.

use weir_dsl::ast::{self, JoinKind, Literal};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

use super::args::{too_long, Args, MAX_DURATION_MS};
use super::expr::{CmpOp, ExprChecker, TExpr, TExprKind};
use super::program::{JoinDef, SourceKind, StreamInput};
use super::types::{Field, Schema, StreamType, Type};
use super::{Checker, Named};

impl Checker {
    pub(super) fn join(
        &mut self,
        left: &StreamType,
        join: &ast::JoinStep,
        span: Span,
    ) -> Option<(JoinDef, StreamType)> {
        let (right_input, right) = match self.names.get(&join.stream.name) {
            Some((Named::Source(i), _)) => {
                (StreamInput::Source(*i), self.program.sources[*i].ty.clone())
            }
            Some((Named::Stream(i), _)) => {
                (StreamInput::Stream(*i), self.program.streams[*i].ty.clone())
            }
            Some((Named::Broken, _)) => return None,
            None => {
                let mut d = Diagnostic::error(
                    "E0107",
                    join.stream.span,
                    format!("unknown stream `{}`", join.stream.name),
                );
                if let Some(s) =
                    did_you_mean(&join.stream.name, self.names.keys().map(String::as_str))
                {
                    d = d.with_hint(format!("did you mean `{s}`?"));
                }
                self.error(d);
                return None;
            }
        };
        self.used.push(join.stream.name.clone());
        if let Some(up) = &right.updating {
            let up = up.clone();
            self.error(
                Diagnostic::error(
                    "E0430",
                    join.stream.span,
                    format!(
                        "cannot join `{}`: `{}` makes it an updating stream",
                        join.stream.name, up.operator
                    ),
                )
                .with_secondary(up.span, "rows of this stream are revised from here on")
                .with_hint("joins take append-only streams; join before the updating step"),
            );
            return None;
        }
        let alias = join
            .alias
            .as_ref()
            .map_or(join.stream.name.clone(), |a| a.name.clone());
        let prefix = format!("{alias}.");
        if left
            .schema
            .fields
            .iter()
            .any(|f| f.name.starts_with(&prefix))
        {
            let span = join.alias.as_ref().map_or(join.stream.span, |a| a.span);
            self.error(
                Diagnostic::error("E0427", span, format!("the alias `{alias}` is taken: the stream already has `{alias}.` fields from an earlier join"))
                    .with_hint("give this join another alias: `join S as other on ...`"),
            );
            return None;
        }
        let is_table = matches!(right_input, StreamInput::Source(i)
            if matches!(self.program.sources[i].kind, SourceKind::File { .. } | SourceKind::Postgres { .. }));
        if join.kind == JoinKind::Lookup && !is_table {
            self.error(
                Diagnostic::error("E0420", join.stream.span, "a lookup join reads its table from a file or postgres source")
                    .with_hint("declare `source table: Schema = file(path: \"...\") format csv` (or `postgres(url: ..., table: ...)`) and join it"),
            );
            return None;
        }
        let avro_table = matches!(right_input, StreamInput::Source(i)
            if matches!(&self.program.sources[i].kind, SourceKind::File { format: crate::sema::Format::Avro(_), .. }));
        if join.kind == JoinKind::Lookup && avro_table {
            self.error(
                Diagnostic::error(
                    "E0420",
                    join.stream.span,
                    "a lookup join does not read its table from an Avro file (yet)",
                )
                .with_hint("read the table from a JSON-lines or CSV file, or from postgres"),
            );
            return None;
        }
        let refreshed = matches!(right_input, StreamInput::Source(i)
            if self.program.sources[i].refresh_ms.is_some());
        if join.kind != JoinKind::Lookup && refreshed {
            self.error(super::refreshed_as_stream(
                join.stream.span,
                &join.stream.name,
            ));
            return None;
        }
        let is_postgres = matches!(right_input, StreamInput::Source(i)
            if matches!(self.program.sources[i].kind, SourceKind::Postgres { .. }));
        if join.kind != JoinKind::Lookup && is_postgres {
            self.error(
                Diagnostic::error(
                    "E0420",
                    join.stream.span,
                    "a postgres source is read as the table of a lookup join only",
                )
                .with_hint(format!("`lookup_join {} as ...`", join.stream.name)),
            );
            return None;
        }
        // The combined schema the condition is checked against.
        let mut combined = left.schema.clone();
        for f in &right.schema.fields {
            combined.fields.push(Field {
                name: format!("{prefix}{}", f.name),
                ..f.clone()
            });
        }
        let mut checker = ExprChecker {
            schema: &combined,
            diagnostics: &mut self.diagnostics,
        };
        let on = checker.check(&join.on)?;
        if on.ty != Type::Bool {
            self.error(
                Diagnostic::error(
                    "E0402",
                    join.on.span,
                    format!("a join condition must be a bool, found {}", on.ty),
                )
                .with_hint(format!("e.g. `on seller = {prefix}id`")),
            );
            return None;
        }
        // Split `a and b and c` into key equalities (one side left-only, the other right-only)
        // and the rest.
        let mut conjuncts = Vec::new();
        split_and(on, &mut conjuncts);
        let side = |e: &TExpr| -> Option<bool> {
            let mut fields = Vec::new();
            e.fields(&mut fields);
            if fields.is_empty() {
                return None;
            }
            let right_only = fields.iter().all(|f| f.starts_with(&prefix));
            let left_only = fields.iter().all(|f| !f.starts_with(&prefix));
            match (left_only, right_only) {
                (true, _) => Some(false),
                (_, true) => Some(true),
                _ => None,
            }
        };
        let mut left_keys = Vec::new();
        let mut right_keys = Vec::new();
        let mut rest: Option<TExpr> = None;
        let mut left_filter: Option<TExpr> = None;
        let mut right_filter: Option<TExpr> = None;
        for c in conjuncts {
            if let TExprKind::Compare(CmpOp::Eq, a, b) = &c.kind {
                let (sa, sb) = (side(a), side(b));
                let pair = match (sa, sb) {
                    (Some(false), Some(true)) => Some((a.as_ref().clone(), b.as_ref().clone())),
                    (Some(true), Some(false)) => Some((b.as_ref().clone(), a.as_ref().clone())),
                    _ => None,
                };
                if let Some((l, r)) = pair {
                    if l.ty == Type::F64 || l.nullable || r.nullable {
                        self.error(
                            Diagnostic::error(
                                "E0421",
                                c.span,
                                "join keys must be non-null integers, strings, bools or timestamps",
                            )
                            .with_hint(
                                "cast or coalesce the key, or filter out nulls before the join",
                            ),
                        );
                        return None;
                    }
                    left_keys.push(l);
                    right_keys.push(strip(r, &prefix));
                    continue;
                }
            }
            // A condition on the joined stream alone filters it before the join (valid for
            // inner and left outer joins alike); one on this stream alone, for inner joins.
            match side(&c) {
                Some(true) if join.kind != JoinKind::Lookup => {
                    right_filter = Some(and(right_filter, strip(c, &prefix)));
                    continue;
                }
                Some(false) if !join.left_outer && join.kind != JoinKind::Lookup => {
                    left_filter = Some(and(left_filter, c));
                    continue;
                }
                _ => {}
            }
            rest = Some(match rest {
                None => c,
                Some(prev) => {
                    let span = prev.span.to(c.span);
                    let nullable = prev.nullable || c.nullable;
                    TExpr {
                        kind: TExprKind::And(Box::new(prev), Box::new(c)),
                        ty: Type::Bool,
                        nullable,
                        span,
                    }
                }
            });
        }
        if left_keys.is_empty() {
            self.error(
                Diagnostic::error(
                    "E0422",
                    join.on.span,
                    "a join needs at least one equality between the two streams",
                )
                .with_hint(format!(
                    "e.g. `on seller = {prefix}id`; other conditions can follow with `and`"
                )),
            );
            return None;
        }
        // Options.
        let mut within = None;
        let mut window_ms = None;
        let mut ttl_ms = None;
        let mut ttl_processing = false;
        for option in &join.options {
            match (option.name.name.as_str(), join.kind) {
                ("within", JoinKind::Interval) => {
                    let args = Args::new(
                        option,
                        "`within`",
                        &["lower", "upper"],
                        &mut self.diagnostics,
                    );
                    let reported = self.diagnostics.len();
                    let lower = signed_duration(&args, "lower", &mut self.diagnostics);
                    let upper = signed_duration(&args, "upper", &mut self.diagnostics);
                    match (lower, upper) {
                        (Some(l), Some(u)) if l <= u => within = Some((l, u)),
                        (Some(_), Some(_)) => {
                            self.error(Diagnostic::error(
                                "E0423",
                                option.span,
                                "`within(lower, upper)` needs lower <= upper",
                            ));
                            return None;
                        }
                        // A bound too long: reported already.
                        _ if self.diagnostics.len() > reported => return None,
                        _ => {
                            self.error(
                                Diagnostic::error("E0423", option.span, "`within` takes two durations")
                                    .with_hint("e.g. `within(-5s, 10s)`: the joined record's time minus this one's, inclusive"),
                            );
                            return None;
                        }
                    }
                }
                ("tumble", JoinKind::Window) => {
                    let args =
                        Args::new(option, "window `tumble`", &["size"], &mut self.diagnostics);
                    let size = args.duration("size", &mut self.diagnostics);
                    window_ms = Some(args.required("size", size, &mut self.diagnostics)?);
                }
                ("ttl", JoinKind::Regular) => {
                    let args = Args::new(
                        option,
                        "`ttl`",
                        &["duration", "time"],
                        &mut self.diagnostics,
                    );
                    let ttl = args.duration("duration", &mut self.diagnostics);
                    ttl_ms = Some(args.required("duration", ttl, &mut self.diagnostics)?);
                    ttl_processing = self.ttl_on_processing_time(&args)?;
                }
                (other, kind) => {
                    let allowed = match kind {
                        JoinKind::Regular => "`ttl(duration)`, `ttl(duration, time: processing)`",
                        JoinKind::Interval => "`within(lower, upper)`",
                        JoinKind::Window => "`tumble(size)`",
                        JoinKind::Lookup => "none",
                    };
                    self.error(
                        Diagnostic::error(
                            "E0424",
                            option.name.span,
                            format!("`{other}` is not an option of this join"),
                        )
                        .with_hint(format!("its options: {allowed}")),
                    );
                    return None;
                }
            }
        }
        let needs_time = matches!(join.kind, JoinKind::Interval | JoinKind::Window);
        if join.kind == JoinKind::Interval && within.is_none() {
            self.error(
                Diagnostic::error("E0425", span, "an interval join needs its bounds")
                    .with_hint("add `within(lower, upper)`, e.g. `within(0s, 10s)`"),
            );
            return None;
        }
        if join.kind == JoinKind::Window && window_ms.is_none() {
            self.error(
                Diagnostic::error("E0425", span, "a window join needs its window")
                    .with_hint("add `tumble(10s)`"),
            );
            return None;
        }
        let left_time = left.time_field.map(|i| left.schema.fields[i].name.clone());
        let right_time = right
            .time_field
            .map(|i| right.schema.fields[i].name.clone());
        if ttl_ms.is_some() && !ttl_processing && (left_time.is_none() || right_time.is_none()) {
            self.error(
                Diagnostic::error(
                    "E0407",
                    span,
                    "a join's `ttl` counts in event time, and one of the streams has none",
                )
                .with_hint(
                    "declare `event_time FIELD watermark ...` on both sources, count on the wall clock with `ttl(..., time: processing)`, or drop the ttl",
                ),
            );
            return None;
        }
        if needs_time && (left_time.is_none() || right_time.is_none()) {
            self.error(
                Diagnostic::error("E0407", span, "this join needs event time on both streams")
                    .with_hint("declare `event_time FIELD watermark ...` on both sources and keep the field in selects"),
            );
            return None;
        }
        // Output: the left fields, then the joined fields as `alias.field` (optional for a left
        // outer join). The left stream's event time stays for time-bounded joins.
        let mut fields = left.schema.fields.clone();
        for f in &right.schema.fields {
            fields.push(Field {
                name: format!("{prefix}{}", f.name),
                ty: f.ty,
                nullable: f.nullable || join.left_outer,
            });
        }
        // Interval joins hold their output watermark back by their bounds, so the left time
        // stays a valid event time. Regular and window joins emit rows whose own times may be
        // behind the watermark: no event time after them.
        let time_field = match join.kind {
            JoinKind::Interval | JoinKind::Lookup => left.time_field,
            JoinKind::Regular | JoinKind::Window => None,
        };
        let def = JoinDef {
            kind: join.kind,
            left_outer: join.left_outer,
            right: right_input,
            alias,
            left_keys,
            right_keys,
            condition: rest,
            left_filter,
            right_filter,
            within,
            window_ms,
            ttl_ms,
            ttl_processing,
            left_time,
            right_time,
            left_ty: left.clone(),
            right_ty: right,
        };
        Some((
            def,
            StreamType {
                updating: None,
                schema: Schema { fields },
                time_field,
                window: None,
            },
        ))
    }
}

fn split_and(e: TExpr, out: &mut Vec<TExpr>) {
    match e.kind {
        TExprKind::And(a, b) => {
            split_and(*a, out);
            split_and(*b, out);
        }
        kind => out.push(TExpr { kind, ..e }),
    }
}

/// Renames `alias.field` references to `field` (for expressions over the joined record alone).
fn strip(mut e: TExpr, prefix: &str) -> TExpr {
    fn walk(e: &mut TExpr, prefix: &str) {
        match &mut e.kind {
            TExprKind::Field(name) => {
                if let Some(rest) = name.strip_prefix(prefix) {
                    *name = rest.to_string();
                }
            }
            TExprKind::Lit(_) => {}
            TExprKind::Neg(a)
            | TExprKind::Not(a)
            | TExprKind::Cast(a)
            | TExprKind::Member(a, _)
            | TExprKind::Cardinality(a) => walk(a, prefix),
            TExprKind::Index(a, b) | TExprKind::ArrayContains(a, b) => {
                walk(a, prefix);
                walk(b, prefix);
            }
            TExprKind::IsNull { expr, .. } => walk(expr, prefix),
            TExprKind::InList(x, list) => {
                walk(x, prefix);
                list.iter_mut().for_each(|a| walk(a, prefix));
            }
            TExprKind::Arith(_, a, b)
            | TExprKind::Compare(_, a, b)
            | TExprKind::And(a, b)
            | TExprKind::Or(a, b) => {
                walk(a, prefix);
                walk(b, prefix);
            }
            TExprKind::Call(_, args) | TExprKind::Udf(_, args) => {
                args.iter_mut().for_each(|a| walk(a, prefix))
            }
            TExprKind::Case {
                branches,
                otherwise,
            } => {
                for (c, v) in branches {
                    walk(c, prefix);
                    walk(v, prefix);
                }
                if let Some(o) = otherwise {
                    walk(o, prefix);
                }
            }
        }
    }
    walk(&mut e, prefix);
    e
}

/// A duration argument that may be negative (`-5s`), at most [`MAX_DURATION_MS`] either way.
fn signed_duration(args: &Args<'_>, name: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<i64> {
    match args.literal(name)? {
        Literal::Duration(v) if v.unsigned_abs() > MAX_DURATION_MS.unsigned_abs() => {
            diagnostics.push(too_long(name, args.span_of(name)));
            None
        }
        Literal::Duration(v) => Some(v),
        _ => None,
    }
}

/// `prev and next` (or `next` alone).
fn and(prev: Option<TExpr>, next: TExpr) -> TExpr {
    match prev {
        None => next,
        Some(prev) => {
            let span = prev.span.to(next.span);
            let nullable = prev.nullable || next.nullable;
            TExpr {
                kind: TExprKind::And(Box::new(prev), Box::new(next)),
                ty: Type::Bool,
                nullable,
                span,
            }
        }
    }
}
