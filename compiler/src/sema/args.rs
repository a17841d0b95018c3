//! Reading the literal arguments of connectors, formats and windows:
//! `file(path: "x.csv")`, `csv(header: true)`, `tumble(10s)`.

use weir_dsl::ast::{Call, ExprKind, Literal, UnaryOp};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

/// The longest duration a window size, slide, step or gap, a lateness, a join interval or
/// window, a TTL or a watermark delay may have: 3 652 425 days, the 10 000 years that
/// timestamps span (years 0000 to 9999). With the times of records bounded too, window and
/// watermark arithmetic stays far from `i64` overflow (`docs/time.md`).
pub const MAX_DURATION_MS: i64 = 315_569_520_000_000;

/// The error for a duration longer than [`MAX_DURATION_MS`], at its literal.
pub fn too_long(name: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        "E0323",
        span,
        format!("`{name}` is longer than 3652425d (10,000 years)"),
    )
    .with_label("too long")
    .with_hint(
        "window sizes, lateness, join intervals, TTLs and watermark delays are at most the \
         10,000 years that timestamps span, so time arithmetic cannot overflow",
    )
}

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

    /// A positive duration of at most [`MAX_DURATION_MS`].
    pub fn duration(&self, name: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<i64> {
        match self.get(name)? {
            (Literal::Duration(v), span) if *v > MAX_DURATION_MS => {
                diagnostics.push(too_long(name, *span));
                None
            }
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

    /// A size in bytes written with a unit (`"64MiB"`, `"1GiB"`, `"500KB"`, `"4096B"`).
    pub fn size(&self, name: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<u64> {
        let text = self.string(name, diagnostics)?;
        match parse_size(&text) {
            Some(n) if n > 0 => Some(n),
            _ => {
                diagnostics.push(
                    Diagnostic::error(
                        "E0305",
                        self.span_of(name),
                        format!("`{name}` must be a positive size, found `{text}`"),
                    )
                    .with_hint("write it with a unit: \"64MiB\", \"1GiB\", \"500KB\", \"4096B\""),
                );
                None
            }
        }
    }

    /// A range of dates `"yyyy-MM-dd .. yyyy-MM-dd"` as `[start, end)` in ms since the epoch
    /// (midnight UTC), with the argument's span.
    pub fn time_range(
        &self,
        name: &str,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<((i64, i64), Span)> {
        let text = self.string(name, diagnostics)?;
        let span = self.span_of(name);
        let ends = text
            .split_once("..")
            .and_then(|(start, end)| Some((parse_date(start.trim())?, parse_date(end.trim())?)));
        match ends {
            Some((start, end)) if start < end => Some(((start, end), span)),
            Some(_) => {
                diagnostics.push(
                    Diagnostic::error("E0324", span, format!("`{name}` is empty"))
                        .with_label("the start is not before the end")
                        .with_hint("the range is `start .. end`, the end excluded"),
                );
                None
            }
            None => {
                diagnostics.push(
                    Diagnostic::error(
                        "E0324",
                        span,
                        format!("`{name}` must be two dates, `\"yyyy-MM-dd .. yyyy-MM-dd\"`"),
                    )
                    .with_label("not a range of dates")
                    .with_hint("e.g. `\"1800-01-01 .. 2200-01-01\"`: the end is excluded"),
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

/// `yyyy-MM-dd` (a valid date of the proleptic Gregorian calendar) as ms since the epoch at
/// midnight UTC, as the runtime reads timestamps.
fn parse_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shaped {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range].iter().fold(0, |n, c| n * 10 + i64::from(c - b'0'))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=days_in_month).contains(&day) {
        return None;
    }
    // Days from the civil date, counting years from March (the leap day last).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some((era * 146_097 + day_of_era - 719_468) * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::parse_date;

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("1900-01-01"), Some(-2_208_988_800_000));
        assert_eq!(parse_date("2200-01-01"), Some(7_258_118_400_000));
        assert_eq!(parse_date("2015-07-15"), Some(1_436_918_400_000));
        assert_eq!(parse_date("0000-01-01"), Some(-62_167_219_200_000));
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400_000));
        for bad in [
            "1900-02-29",
            "2015-13-01",
            "2015-00-01",
            "2015-04-31",
            "2015-7-15",
            "+2015-07-15",
            "20150715",
            "2015-07-1é",
            "",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }
}

/// `"64MiB"` as bytes: a whole number and a unit (B, KB, MB, GB, KiB, MiB, GiB).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit.trim() {
        "B" => 1,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(scale)
}

#[cfg(test)]
mod size_tests {
    use super::parse_size;

    #[test]
    fn sizes_take_a_unit() {
        assert_eq!(parse_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_size("500KB"), Some(500_000));
        assert_eq!(parse_size("4096 B"), Some(4096));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("64"), None);
        assert_eq!(parse_size("MiB"), None);
        assert_eq!(parse_size("1.5GiB"), None);
        assert_eq!(parse_size("99999999999GiB"), None);
    }
}
