//! Checking keys (`key_by`, `aggregate by`) and `aggregate` steps: each aggregate call, its
//! argument and filter, and the output row (keys, window bounds, aggregates).

use weir_dsl::ast::{self, SelectItemKind};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

use super::expr::ExprChecker;
use super::functions::AggFunc;
use super::program::{AggItem, Window, WindowAggregate};
use super::types::{Field, Schema, StreamType, Type, Updating, WindowFields};
use super::udf;
use super::Checker;

impl Checker {
    pub(super) fn keys(&mut self, keys: &[ast::Ident], ty: &StreamType) -> Option<Vec<String>> {
        let mut out = Vec::new();
        let mut ok = true;
        for key in keys {
            match ty.schema.field(&key.name) {
                Some((_, f)) if f.ty.is_nested() => {
                    self.error(super::expr::nested_value(key.span, f.ty).with_hint(
                        "key by a scalar: select it first (`user_id: payload.user.id`)",
                    ));
                    ok = false;
                }
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

    pub(super) fn aggregate(
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
                        AggFunc::FirstValue | AggFunc::LastValue => {
                            a.ty != Type::Null && !a.ty.is_nested()
                        }
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
                ttl: None,
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
}
