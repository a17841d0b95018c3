//! Reading the literal arguments of connectors, formats and windows:
//! `file(path: "x.csv")`, `csv(header: true)`, `tumble(10s)`.

use weir_dsl::ast::{Call, ExprKind, Literal, UnaryOp};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

/// The arguments of one call, checked against the parameter names it accepts.
pub struct Args<'a> {
    call: &'a Call,
    /// Parameter names in positional order.
    params: &'static [&'static str],
    values: Vec<Option<(Literal, Span)>>,
}

impl<'a> Args<'a> {
    /// Matches arguments to parameters; reports unknown, duplicate and non-literal arguments.
    pub fn new(
        call: &'a Call,
        what: &str,
        params: &'static [&'static str],
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Self {
        let mut values: Vec<Option<(Literal, Span)>> = vec![None; params.len()];
        let mut extra_reported = false;
        for (position, arg) in call.args.iter().enumerate() {
            let slot = match &arg.name {
                Some(name) => match params.iter().position(|p| *p == name.name) {
                    Some(i) => i,
                    None => {
                        let mut d = Diagnostic::error(
                            "E0301",
                            name.span,
                            format!("{what} has no parameter `{}`", name.name),
                        );
                        d = match did_you_mean(&name.name, params.iter().copied()) {
                            // Clauses of the declaration, not arguments of the call.
                            _ if name.name == "format" => d.with_hint(format!(
                                "write the format after the call: `{}(...) format json`",
                                call.name.name
                            )),
                            _ if name.name == "schema" => d.with_hint(
                                "name the schema after the source's name: `source s: Schema = ...`",
                            ),
                            Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                            None if params.is_empty() => {
                                d.with_hint(format!("{what} takes no arguments"))
                            }
                            None => d.with_hint(format!("parameters are: {}", params.join(", "))),
                        };
                        diagnostics.push(d);
                        continue;
                    }
                },
                None if position < params.len() => position,
                None => {
                    // One report for all the extra arguments.
                    if !extra_reported {
                        extra_reported = true;
                        let d = match params.len() {
                            0 => Diagnostic::error(
                                "E0302",
                                arg.span,
                                format!("{what} takes no arguments"),
                            ),
                            n => Diagnostic::error(
                                "E0302",
                                arg.span,
                                format!(
                                    "{what} takes at most {n} argument{}",
                                    if n == 1 { "" } else { "s" }
                                ),
                            )
                            .with_hint(format!("parameters are: {}", params.join(", "))),
                        };
                        diagnostics.push(d.with_label("extra argument"));
                    }
                    continue;
                }
            };
            if let Some((_, first)) = &values[slot] {
                diagnostics.push(
                    Diagnostic::error(
                        "E0303",
                        arg.span,
                        format!("parameter `{}` is given twice", params[slot]),
                    )
                    .with_secondary(*first, "first given here"),
                );
                continue;
            }
            let literal = match &arg.value.kind {
                ExprKind::Lit(lit) => Some(lit.clone()),
                // `-5` is a literal too.
                ExprKind::Unary(UnaryOp::Neg, inner) => match &inner.kind {
                    ExprKind::Lit(Literal::Int(v)) => Some(Literal::Int(v.wrapping_neg())),
                    ExprKind::Lit(Literal::Float(v)) => Some(Literal::Float(-v)),
                    ExprKind::Lit(Literal::Duration(v)) => {
                        Some(Literal::Duration(v.wrapping_neg()))
                    }
                    _ => None,
                },
                // A bare name reads as a string: `nexmark(stream: bid)`.
                ExprKind::Field(ident) => Some(Literal::Str(ident.name.clone())),
                _ => None,
            };
            match literal {
                Some(lit) => values[slot] = Some((lit, arg.value.span)),
                None => diagnostics.push(
                    Diagnostic::error(
                        "E0304",
                        arg.value.span,
                        format!("`{}` must be a literal value", params[slot]),
                    )
                    .with_label("computed values are not allowed here"),
                ),
            }
        }
        Args {
            call,
            params,
            values,
        }
    }

    fn get(&self, name: &str) -> Option<&(Literal, Span)> {
        let i = self.params.iter().position(|p| *p == name)?;
        self.values[i].as_ref()
    }

    /// The literal given for `name` (a negative duration arrives as `Duration(-n)`).
    pub fn literal(&self, name: &str) -> Option<Literal> {
        self.get(name).map(|(lit, _)| lit.clone())
    }

    pub fn span_of(&self, name: &str) -> Span {
        self.get(name).map_or(self.call.span, |(_, s)| *s)
    }

    fn wrong(&self, name: &str, want: &str, span: Span, diagnostics: &mut Vec<Diagnostic>) {
        diagnostics.push(
            Diagnostic::error("E0305", span, format!("`{name}` must be {want}"))
                .with_label(format!("expected {want}")),
        );
    }

    pub fn string(&self, name: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
        match self.get(name)? {
            (Literal::Str(s), _) => Some(s.clone()),
            (_, span) => {
                self.wrong(name, "a string", *span, diagnostics);
                None
            }
        }
    }

    pub fn int(
        &self,
        name: &str,
        min: i64,
        max: i64,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<i64> {
        match self.get(name)? {
            (Literal::Int(v), span) => {
                if *v < min || *v > max {
                    diagnostics.push(Diagnostic::error(
                        "E0306",
                        *span,
                        format!("`{name}` must be between {min} and {max}, found {v}"),
                    ));
                    return None;
                }
                Some(*v)
            }
            (_, span) => {
                self.wrong(name, "an integer", *span, diagnostics);
                None
            }
        }
    }

    pub fn bool(&self, name: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<bool> {
        match self.get(name)? {
            (Literal::Bool(v), _) => Some(*v),
            (_, span) => {
                self.wrong(name, "true or false", *span, diagnostics);
                None
            }
        }
    }

    pub fn duration(&self, name: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<i64> {
        match self.get(name)? {
            (Literal::Duration(v), _) if *v > 0 => Some(*v),
            (_, span) => {
                diagnostics.push(
                    Diagnostic::error(
                        "E0305",
                        *span,
                        format!("`{name}` must be a positive duration"),
                    )
                    .with_hint("write durations with a unit: `10s`, `250ms`, `1m`, `1h`"),
                );
                None
            }
        }
    }

    /// Reports a missing required parameter at the call.
    pub fn required<T>(
        &self,
        name: &str,
        value: Option<T>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<T> {
        if value.is_none() && self.get(name).is_none() {
            diagnostics.push(
                Diagnostic::error(
                    "E0307",
                    self.call.span,
                    format!("`{}` needs `{name}`", self.call.name.name),
                )
                .with_label(format!("missing `{name}: ...`")),
            );
        }
        value
    }
}
