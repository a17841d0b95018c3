//! Type checking of expressions: AST expressions -> typed expressions ([`TExpr`]).
//!
//! Nulls follow SQL: an expression is nullable when a nullable value flows into it; a strict
//! operator or function on a null gives null; a filter treats null as false. Integers mix with
//! floats by an explicit widening node the checker inserts, so the code generator never guesses.

use weir_dsl::ast::{self, BinaryOp, ExprKind, Literal, UnaryOp};
use weir_dsl::diagnostic::did_you_mean;
use weir_dsl::{Diagnostic, Span};

use super::functions::{self, AggFunc, Func, LiteralKind, Param};
use super::types::{Schema, Type};

/// A typed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct TExpr {
    pub kind: TExprKind,
    pub ty: Type,
    pub nullable: bool,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl ArithOp {
    /// The operator as the language writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::Rem => "%",
        }
    }
}

impl CmpOp {
    /// The operator as the language writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum TExprKind {
    Lit(Literal),
    /// A field of the input record, by name.
    Field(String),
    Neg(Box<TExpr>),
    Not(Box<TExpr>),
    /// Operands have the same type, except timestamp +/- duration.
    Arith(ArithOp, Box<TExpr>, Box<TExpr>),
    /// Operands have the same type.
    Compare(CmpOp, Box<TExpr>, Box<TExpr>),
    And(Box<TExpr>, Box<TExpr>),
    Or(Box<TExpr>, Box<TExpr>),
    Call(Func, Vec<TExpr>),
    /// A call of a Rust function (its path) declared by the embedding ([`super::udf`]).
    Udf(String, Vec<TExpr>),
    Case {
        branches: Vec<(TExpr, TExpr)>,
        otherwise: Option<Box<TExpr>>,
    },
    /// Conversion to `ty` of the node (includes the implicit i64 -> f64 widening).
    Cast(Box<TExpr>),
    IsNull {
        expr: Box<TExpr>,
        negated: bool,
    },
    /// `x in (a, b, ...)`: all of one type; three-valued (`x = a or x = b or ...`).
    InList(Box<TExpr>, Vec<TExpr>),
    /// A field of a nested record value: `payload.user` of `payload`; null when the record is.
    Member(Box<TExpr>, String),
    /// `tags[i]`: the array's element `i`, 1-based; null when out of range or the array is
    /// null.
    Index(Box<TExpr>, Box<TExpr>),
    /// `cardinality(tags)`: the number of elements.
    Cardinality(Box<TExpr>),
    /// `array_contains(tags, 'x')`: whether an element equals the value (SQL nulls: null
    /// when the array or the value is null).
    ArrayContains(Box<TExpr>, Box<TExpr>),
}

impl TExpr {
    /// Field names this expression reads, in order of first use.
    pub fn fields(&self, out: &mut Vec<String>) {
        match &self.kind {
            TExprKind::Field(name) => {
                if !out.contains(name) {
                    out.push(name.clone());
                }
            }
            TExprKind::Lit(_) => {}
            TExprKind::Neg(e)
            | TExprKind::Not(e)
            | TExprKind::Cast(e)
            | TExprKind::Member(e, _)
            | TExprKind::Cardinality(e) => e.fields(out),
            TExprKind::Index(a, b) | TExprKind::ArrayContains(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            TExprKind::IsNull { expr, .. } => expr.fields(out),
            TExprKind::InList(x, list) => {
                x.fields(out);
                list.iter().for_each(|a| a.fields(out));
            }
            TExprKind::Arith(_, a, b)
            | TExprKind::Compare(_, a, b)
            | TExprKind::And(a, b)
            | TExprKind::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            TExprKind::Call(_, args) | TExprKind::Udf(_, args) => {
                args.iter().for_each(|a| a.fields(out))
            }
            TExprKind::Case {
                branches,
                otherwise,
            } => {
                for (c, v) in branches {
                    c.fields(out);
                    v.fields(out);
                }
                if let Some(o) = otherwise {
                    o.fields(out);
                }
            }
        }
    }

    /// True for an integer literal other than 0 (division by it can never fail).
    pub fn is_nonzero_int_literal(&self) -> bool {
        matches!(self.kind, TExprKind::Lit(Literal::Int(v)) if v != 0)
    }

    pub(crate) fn widen(self, ty: Type) -> TExpr {
        if self.ty == ty || self.ty == Type::Null {
            return TExpr { ty, ..self };
        }
        let span = self.span;
        let nullable = self.nullable;
        TExpr {
            kind: TExprKind::Cast(Box::new(self)),
            ty,
            nullable,
            span,
        }
    }
}

/// Checks expressions against one input schema, collecting diagnostics.
pub struct ExprChecker<'a> {
    pub schema: &'a Schema,
    pub diagnostics: &'a mut Vec<Diagnostic>,
}

impl ExprChecker<'_> {
    fn error(&mut self, d: Diagnostic) -> Option<TExpr> {
        self.diagnostics.push(d);
        None
    }

    /// Type-checks `expr`; `None` after reporting an error (so one mistake reports once).
    pub fn check(&mut self, expr: &ast::Expr) -> Option<TExpr> {
        let span = expr.span;
        let mk = |kind, ty, nullable| {
            Some(TExpr {
                kind,
                ty,
                nullable,
                span,
            })
        };
        match &expr.kind {
            ExprKind::Lit(lit) => {
                let ty = match lit {
                    Literal::Int(_) => Type::I64,
                    Literal::Float(_) => Type::F64,
                    Literal::Str(_) => Type::String,
                    Literal::Bool(_) => Type::Bool,
                    Literal::Null => Type::Null,
                    Literal::Duration(_) => Type::Duration,
                };
                mk(
                    TExprKind::Lit(lit.clone()),
                    ty,
                    matches!(lit, Literal::Null),
                )
            }
            ExprKind::Field(ident)
                if ident.name.contains('.') && self.schema.field(&ident.name).is_none() =>
            {
                self.path(ident)
            }
            ExprKind::Member(base, member) => {
                let base = self.check(base)?;
                self.member(base, member, span)
            }
            ExprKind::Index(base, at) => {
                let (base, at) = (self.check(base), self.check(at));
                let (base, at) = (base?, at?);
                let Type::Array(array) = base.ty else {
                    return self.error(
                        type_error("E0219", base.span, "only an array can be indexed", base.ty)
                            .with_hint("`[i]` takes element i (from 1) of an array field such as `tags: [string]`"),
                    );
                };
                if at.ty != Type::I64 && at.ty != Type::Null {
                    return self.error(type_error(
                        "E0219",
                        at.span,
                        "an array index must be an integer",
                        at.ty,
                    ));
                }
                mk(
                    TExprKind::Index(Box::new(base), Box::new(at.widen(Type::I64))),
                    array.element,
                    true,
                )
            }
            ExprKind::Field(ident) => match self.schema.field(&ident.name) {
                Some((_, field)) => mk(
                    TExprKind::Field(field.name.clone()),
                    field.ty,
                    field.nullable,
                ),
                // A function without arguments may go without `()`: `current_timestamp`.
                None if functions::lookup(&ident.name).is_some_and(|f| f.params.is_empty()) => {
                    self.call(ident, &[], span)
                }
                None => {
                    let mut d = Diagnostic::error(
                        "E0201",
                        ident.span,
                        format!("unknown field `{}`", ident.name),
                    )
                    .with_label("not a field of the input");
                    if AggFunc::from_name(&ident.name).is_some()
                        || functions::lookup(&ident.name).is_some()
                    {
                        d = d.with_hint(format!(
                            "`{}` is a function; call it: `{}(...)`",
                            ident.name, ident.name
                        ));
                    } else if let Some(s) = did_you_mean(&ident.name, self.schema.names()) {
                        d = d.with_hint(format!("did you mean `{s}`?"));
                    } else {
                        d = d.with_hint(format!(
                            "the input has: {}",
                            self.schema.names().collect::<Vec<_>>().join(", ")
                        ));
                    }
                    self.error(d)
                }
            },
            ExprKind::Unary(op, inner) => {
                let e = self.check(inner)?;
                match op {
                    UnaryOp::Neg if e.ty.is_numeric() || e.ty == Type::Duration => {
                        let (ty, n) = (e.ty, e.nullable);
                        mk(TExprKind::Neg(Box::new(e)), ty, n)
                    }
                    UnaryOp::Not if e.ty == Type::Bool || e.ty == Type::Null => {
                        let n = e.nullable;
                        mk(TExprKind::Not(Box::new(e.widen(Type::Bool))), Type::Bool, n)
                    }
                    UnaryOp::Neg => {
                        self.error(type_error("E0202", inner.span, "`-` needs a number", e.ty))
                    }
                    UnaryOp::Not => {
                        self.error(type_error("E0202", inner.span, "`not` needs a bool", e.ty))
                    }
                }
            }
            ExprKind::Binary(op, left, right) => {
                let l = self.check(left);
                let r = self.check(right);
                let (l, r) = (l?, r?);
                self.binary(*op, l, r, span)
            }
            ExprKind::Call(name, args) => self.call(name, args, span),
            ExprKind::InList {
                expr: x,
                list,
                negated,
            } => {
                let x = self.check(x);
                let list: Vec<Option<TExpr>> = list.iter().map(|e| self.check(e)).collect();
                let mut all = vec![x?];
                for e in list {
                    all.push(e?);
                }
                let ty = self.unify(&all, span)?;
                let nullable = all.iter().any(|e| e.nullable);
                let mut all = all.into_iter().map(|e| e.widen(ty));
                let x = all.next()?;
                let e = TExpr {
                    kind: TExprKind::InList(Box::new(x), all.collect()),
                    ty: Type::Bool,
                    nullable,
                    span,
                };
                Some(negate(e, *negated))
            }
            ExprKind::Between {
                expr: x,
                low,
                high,
                negated,
            } => {
                // SQL defines it so: `x >= low and x <= high`.
                let (x, low, high) = (self.check(x), self.check(low), self.check(high));
                let (x, low, high) = (x?, low?, high?);
                let ge = self.binary(BinaryOp::Ge, x.clone(), low, span)?;
                let le = self.binary(BinaryOp::Le, x, high, span)?;
                let e = self.binary(BinaryOp::And, ge, le, span)?;
                Some(negate(e, *negated))
            }
            ExprKind::Case {
                branches,
                otherwise,
            } => {
                let mut conds = Vec::new();
                let mut values = Vec::new();
                let mut failed = false;
                for (c, v) in branches {
                    match self.check(c) {
                        Some(c) if c.ty == Type::Bool || c.ty == Type::Null => {
                            conds.push(c.widen(Type::Bool))
                        }
                        Some(c) => {
                            self.diagnostics.push(type_error(
                                "E0203",
                                c.span,
                                "a `when` condition must be a bool",
                                c.ty,
                            ));
                            failed = true;
                        }
                        None => failed = true,
                    }
                    match self.check(v) {
                        Some(v) => values.push(v),
                        None => failed = true,
                    }
                }
                let other = match otherwise {
                    Some(o) => match self.check(o) {
                        Some(o) => Some(o),
                        None => {
                            failed = true;
                            None
                        }
                    },
                    None => None,
                };
                if failed {
                    return None;
                }
                let mut all: Vec<TExpr> = values;
                if let Some(o) = other {
                    all.push(o);
                }
                let ty = self.unify(&all, span)?;
                let nullable = otherwise.is_none() || all.iter().any(|v| v.nullable);
                let mut all: Vec<TExpr> = all.into_iter().map(|v| v.widen(ty)).collect();
                let other = if otherwise.is_some() {
                    all.pop().map(Box::new)
                } else {
                    None
                };
                let branches = conds.into_iter().zip(all).collect();
                mk(
                    TExprKind::Case {
                        branches,
                        otherwise: other,
                    },
                    ty,
                    nullable,
                )
            }
            ExprKind::Cast(inner, ty_expr) => {
                let e = self.check(inner)?;
                let ast::TypeKind::Named(type_name) = &ty_expr.kind else {
                    return self.error(
                        Diagnostic::error(
                            "E0221",
                            ty_expr.span,
                            "a value cannot be cast to a record or an array",
                        )
                        .with_hint("casts convert scalars: `x as f64`, `cast(id as string)`"),
                    );
                };
                let Some(target) = Type::from_name(&type_name.name) else {
                    return self.error(unknown_type(type_name));
                };
                let from = e.ty;
                let ok = from == target
                    || from == Type::Null
                    || target == Type::String
                    || matches!(
                        (from, target),
                        (Type::I64, Type::F64 | Type::Timestamp | Type::Duration)
                            | (Type::F64, Type::I64)
                            | (Type::Bool, Type::I64)
                            | (Type::Timestamp | Type::Duration, Type::I64)
                            | (
                                Type::String,
                                Type::I64 | Type::F64 | Type::Bool | Type::Timestamp
                            )
                    );
                if !ok {
                    return self.error(
                        Diagnostic::error("E0204", span, format!("cannot cast {from} to {target}"))
                            .with_label(format!("this is {from}")),
                    );
                }
                // Parsing a string can fail: the result is null then.
                let nullable = e.nullable || (from == Type::String && target != Type::String);
                if from == target {
                    return Some(TExpr { span, ..e });
                }
                mk(TExprKind::Cast(Box::new(e)), target, nullable)
            }
            ExprKind::Distinct(_) => self.error(
                Diagnostic::error(
                    "E0216",
                    span,
                    "`distinct` is only allowed in an aggregate: `count(distinct x)`",
                )
                .with_label("not inside an aggregate"),
            ),
            ExprKind::AggFilter { .. } => self.error(
                Diagnostic::error(
                    "E0217",
                    span,
                    "`filter (where ...)` only applies to aggregates",
                )
                .with_hint("use it in `aggregate { n: count(*) filter (where price > 10) }`"),
            ),
            ExprKind::IsNull {
                expr: inner,
                negated,
            } => {
                let e = self.check(inner)?;
                mk(
                    TExprKind::IsNull {
                        expr: Box::new(e),
                        negated: *negated,
                    },
                    Type::Bool,
                    false,
                )
            }
        }
    }

    /// `a.b.c` that is no field of the input: the longest leading part that is a field (a
    /// joined stream's `p.payload` or a plain `payload`), then fields of nested records.
    fn path(&mut self, ident: &ast::Ident) -> Option<TExpr> {
        let parts: Vec<&str> = ident.name.split('.').collect();
        // Where each part starts in the text, for spans of the parts (the parser allows no
        // space around the dots within one name).
        let mut starts = Vec::with_capacity(parts.len());
        let mut at = ident.span.start;
        for part in &parts {
            starts.push(at);
            at += part.len() as u32 + 1;
        }
        let span_of = |i: usize, j: usize| Span {
            start: starts[i].min(ident.span.end),
            end: (starts[j] + parts[j].len() as u32).min(ident.span.end),
            ..ident.span
        };
        let base = (1..parts.len())
            .rev()
            .find(|&k| self.schema.field(&parts[..k].join(".")).is_some());
        let Some(k) = base else {
            // Report the first part as an unknown field, with the usual hints.
            let first = ast::Ident {
                name: parts[0].to_string(),
                span: span_of(0, 0),
            };
            let field = ast::Expr {
                kind: ExprKind::Field(first),
                span: span_of(0, 0),
            };
            self.check(&field)?;
            return None;
        };
        let name = parts[..k].join(".");
        let (_, field) = self.schema.field(&name)?;
        let mut e = TExpr {
            kind: TExprKind::Field(field.name.clone()),
            ty: field.ty,
            nullable: field.nullable,
            span: span_of(0, k - 1),
        };
        for (i, part) in parts.iter().enumerate().skip(k) {
            let member = ast::Ident {
                name: part.to_string(),
                span: span_of(i, i),
            };
            e = self.member(e, &member, span_of(0, i))?;
        }
        Some(e)
    }

    /// `base.member`, a field of a nested record.
    fn member(&mut self, base: TExpr, member: &ast::Ident, span: Span) -> Option<TExpr> {
        let Type::Record(record) = base.ty else {
            let mut d = Diagnostic::error(
                "E0218",
                member.span,
                format!("`.{}` on {}, which is not a record", member.name, base.ty),
            )
            .with_label(format!("this is {}", base.ty));
            d = match base.ty {
                Type::Array(_) => d.with_hint(format!(
                    "take an element first (`x[1].{}`), or one row per element with `unnest`",
                    member.name
                )),
                _ => d.with_hint(
                    "only fields declared as records (`payload: { id: i64 }`) have fields",
                ),
            };
            return self.error(d);
        };
        let Some(field) = record.field(&member.name) else {
            let names = record.fields.iter().map(|f| f.name.as_str());
            let mut d = Diagnostic::error(
                "E0201",
                member.span,
                format!("unknown field `{}` of the record", member.name),
            )
            .with_label(format!("not a field of {}", base.ty));
            d = match did_you_mean(&member.name, names.clone()) {
                Some(s) => d.with_hint(format!("did you mean `{s}`?")),
                None => d.with_hint(format!(
                    "the record has: {}",
                    names.collect::<Vec<_>>().join(", ")
                )),
            };
            return self.error(d);
        };
        let nullable = base.nullable || field.nullable;
        Some(TExpr {
            kind: TExprKind::Member(Box::new(base), field.name.clone()),
            ty: field.ty,
            nullable,
            span,
        })
    }

    /// `cardinality(array)` and `array_contains(array, value)`.
    fn array_call(&mut self, name: &str, args: &[ast::Expr], span: Span) -> Option<TExpr> {
        let want = if name == "cardinality" { 1 } else { 2 };
        if args.len() != want {
            return self.error(Diagnostic::error(
                "E0209",
                span,
                format!(
                    "`{name}` takes {want} argument{}",
                    if want == 1 { "" } else { "s" }
                ),
            ));
        }
        let checked: Vec<Option<TExpr>> = args.iter().map(|a| self.check(a)).collect();
        let mut checked = checked.into_iter().collect::<Option<Vec<_>>>()?.into_iter();
        let array = checked.next()?;
        let Type::Array(array_type) = array.ty else {
            return self.error(
                type_error(
                    "E0219",
                    array.span,
                    &format!("`{name}` needs an array"),
                    array.ty,
                )
                .with_hint("declare the field as an array: `tags: [string]`"),
            );
        };
        if name == "cardinality" {
            let nullable = array.nullable;
            return Some(TExpr {
                kind: TExprKind::Cardinality(Box::new(array)),
                ty: Type::I64,
                nullable,
                span,
            });
        }
        let value = checked.next()?;
        let element = array_type.element;
        if element.is_nested() {
            return self.error(type_error(
                "E0221",
                array.span,
                "`array_contains` needs an array of scalars",
                array.ty,
            ));
        }
        let fits = value.ty == element
            || value.ty == Type::Null
            || (value.ty == Type::I64 && element == Type::F64);
        if !fits {
            return self.error(type_error(
                "E0205",
                value.span,
                &format!("mismatched types: expected {element}"),
                value.ty,
            ));
        }
        let nullable = array.nullable || value.nullable || array_type.nullable;
        Some(TExpr {
            kind: TExprKind::ArrayContains(Box::new(array), Box::new(value.widen(element))),
            ty: Type::Bool,
            nullable,
            span,
        })
    }

    /// The common type of case branches or coalesce arguments: all equal, or ints and floats
    /// (widened to f64); `null` fits any type.
    fn unify(&mut self, values: &[TExpr], span: Span) -> Option<Type> {
        let mut ty = Type::Null;
        for v in values {
            ty = match (ty, v.ty) {
                (Type::Null, t) | (t, Type::Null) => t,
                (a, _) | (_, a) if a.is_nested() => {
                    self.diagnostics.push(nested_value(v.span, a));
                    return None;
                }
                (a, b) if a == b => a,
                (Type::I64, Type::F64) | (Type::F64, Type::I64) => Type::F64,
                (a, b) => {
                    self.diagnostics.push(
                        Diagnostic::error(
                            "E0205",
                            v.span,
                            format!("mismatched types: expected {a}, found {b}"),
                        )
                        .with_label(format!("this is {b}"))
                        .with_secondary(span, "all results of this expression must have one type"),
                    );
                    return None;
                }
            };
        }
        if ty == Type::Null {
            self.diagnostics.push(
                Diagnostic::error("E0206", span, "cannot tell the type of `null` here")
                    .with_hint("give it a type with a cast, e.g. `cast(null as string)`"),
            );
            return None;
        }
        Some(ty)
    }

    fn binary(&mut self, op: BinaryOp, l: TExpr, r: TExpr, span: Span) -> Option<TExpr> {
        use Type::*;
        let nullable = l.nullable || r.nullable;
        let (lt, rt) = (l.ty, r.ty);
        let mismatch = |this: &mut Self| {
            let mut d = Diagnostic::error(
                "E0207",
                span,
                format!("cannot apply `{}` to {lt} and {rt}", op.symbol()),
            )
            .with_label(format!("{lt} {} {rt}", op.symbol()));
            if op == BinaryOp::Add && (lt == String || rt == String) {
                d = d.with_hint("join strings with `a || b`");
            } else if op == BinaryOp::Concat {
                d = d.with_hint("`||` joins strings; cast the other side: `cast(x as string)`");
            } else if lt == Timestamp && rt == I64 || lt == I64 && rt == Timestamp {
                d = d.with_hint(
                    "add a duration such as `10s`, or cast the timestamp: `cast(ts as i64)`",
                );
            }
            this.error(d)
        };
        match op {
            BinaryOp::Concat => {
                if !matches!((lt, rt), (String | Null, String | Null)) {
                    return mismatch(self);
                }
                let args = vec![l.widen(String), r.widen(String)];
                Some(TExpr {
                    kind: TExprKind::Call(Func::Concat, args),
                    ty: String,
                    nullable: nullable || lt == Null || rt == Null,
                    span,
                })
            }
            BinaryOp::And | BinaryOp::Or => {
                for side in [&l, &r] {
                    if side.ty != Bool && side.ty != Null {
                        return self.error(type_error(
                            "E0202",
                            side.span,
                            &format!("`{}` needs bools", op.symbol()),
                            side.ty,
                        ));
                    }
                }
                let kind = if op == BinaryOp::And {
                    TExprKind::And(Box::new(l.widen(Bool)), Box::new(r.widen(Bool)))
                } else {
                    TExprKind::Or(Box::new(l.widen(Bool)), Box::new(r.widen(Bool)))
                };
                Some(TExpr {
                    kind,
                    ty: Bool,
                    nullable,
                    span,
                })
            }
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => {
                let common = match (lt, rt) {
                    (a, _) | (_, a) if a.is_nested() => {
                        return self.error(nested_value(span, a));
                    }
                    (a, b) if a == b => a,
                    (Null, t) | (t, Null) => t,
                    (I64, F64) | (F64, I64) => F64,
                    _ => return mismatch(self),
                };
                if common == Bool && !matches!(op, BinaryOp::Eq | BinaryOp::Ne) {
                    return mismatch(self);
                }
                let cmp = match op {
                    BinaryOp::Eq => CmpOp::Eq,
                    BinaryOp::Ne => CmpOp::Ne,
                    BinaryOp::Lt => CmpOp::Lt,
                    BinaryOp::Le => CmpOp::Le,
                    BinaryOp::Gt => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let nullable = nullable || lt == Null || rt == Null;
                let kind =
                    TExprKind::Compare(cmp, Box::new(l.widen(common)), Box::new(r.widen(common)));
                Some(TExpr {
                    kind,
                    ty: Bool,
                    nullable,
                    span,
                })
            }
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
                let arith = match op {
                    BinaryOp::Add => ArithOp::Add,
                    BinaryOp::Sub => ArithOp::Sub,
                    BinaryOp::Mul => ArithOp::Mul,
                    BinaryOp::Div => ArithOp::Div,
                    _ => ArithOp::Rem,
                };
                let result = match (lt, rt, arith) {
                    (I64, I64, _) => I64,
                    (F64, F64, _) | (I64, F64, _) | (F64, I64, _) => F64,
                    (Timestamp, Duration, ArithOp::Add | ArithOp::Sub) => Timestamp,
                    (Duration, Timestamp, ArithOp::Add) => Timestamp,
                    (Timestamp, Timestamp, ArithOp::Sub) => Duration,
                    (Duration, Duration, ArithOp::Add | ArithOp::Sub) => Duration,
                    (Duration, I64, ArithOp::Mul | ArithOp::Div) => Duration,
                    _ => return mismatch(self),
                };
                // Integer division or remainder by a value that may be zero gives null.
                let may_fail = matches!(arith, ArithOp::Div | ArithOp::Rem)
                    && matches!(rt, I64)
                    && result != F64
                    && !r.is_nonzero_int_literal();
                let (l, r) = if result == F64 {
                    (l.widen(F64), r.widen(F64))
                } else {
                    (l, r)
                };
                let kind = TExprKind::Arith(arith, Box::new(l), Box::new(r));
                let e = TExpr {
                    kind,
                    ty: result,
                    nullable: nullable || may_fail,
                    span,
                };
                // Constants overflow on every record: say so now.
                if result != F64 && constant_int(&e) == Some(None) {
                    return self.error(
                        Diagnostic::error(
                            "E0214",
                            span,
                            "integer overflow: this constant does not fit in i64",
                        )
                        .with_label("overflows i64")
                        .with_hint(
                            "a record whose arithmetic overflows is a dead letter; \
                             a constant would make every record one",
                        ),
                    );
                }
                Some(e)
            }
        }
    }

    fn call(&mut self, name: &ast::Ident, args: &[ast::Expr], span: Span) -> Option<TExpr> {
        if AggFunc::from_name(&name.name).is_some() {
            return self.error(
                Diagnostic::error(
                    "E0208",
                    name.span,
                    format!("aggregate function `{}` outside `aggregate`", name.name),
                )
                .with_hint(
                    "aggregates go in `|> window tumble(...) |> aggregate by key { n: count() }`",
                ),
            );
        }
        if name.name.eq_ignore_ascii_case("if") {
            // The parser turns `if(c, a, b)` into a case; reaching here means a wrong arity.
            return self.error(Diagnostic::error(
                "E0209",
                span,
                "`if` takes 3 arguments: if(condition, then, else)",
            ));
        }
        if let Some(udf) = super::udf::lookup(&name.name) {
            return super::udf::check_call(self, &udf, args, span);
        }
        if matches!(name.name.as_str(), "cardinality" | "array_contains") {
            return self.array_call(&name.name, args, span);
        }
        let Some(spec) = functions::lookup(&name.name) else {
            // Every function of the table and every declared Rust function is a candidate.
            let udfs = super::udf::scalar_names();
            let names = functions::FUNCTIONS
                .iter()
                .map(|f| f.name)
                .chain(udfs.iter().map(String::as_str));
            let mut d = Diagnostic::error(
                "E0210",
                name.span,
                format!("unknown function `{}`", name.name),
            )
            .with_label("not a built-in or declared function");
            let lower = name.name.to_ascii_lowercase();
            if let Some(s) = did_you_mean(&lower, names) {
                d = d.with_hint(format!("did you mean `{s}`?"));
            }
            return self.error(d.with_hint(
                "a function written in Rust can be called once declared: `pub fn` in a file \
                 passed with `--rust FILE.rs` (or `fn` in an embedded pipeline's header)",
            ));
        };
        let arity_ok = if spec.variadic {
            !args.is_empty()
        } else {
            (spec.min_args()..=spec.params.len()).contains(&args.len())
        };
        if !arity_ok {
            let plural = |n: usize| if n == 1 { "" } else { "s" };
            let expected = match (spec.variadic, spec.min_args(), spec.params.len()) {
                (true, _, _) => "at least 1 argument".to_string(),
                (false, min, max) if min == max => format!("{max} argument{}", plural(max)),
                (false, min, max) => format!("{min} to {max} arguments"),
            };
            return self.error(
                Diagnostic::error(
                    "E0209",
                    span,
                    format!("`{}` takes {expected}, found {}", spec.name, args.len()),
                )
                .with_hint(format!("call it as `{}`", signature(spec))),
            );
        }
        let mut typed = Vec::new();
        let mut failed = false;
        for (i, arg) in args.iter().enumerate() {
            let param = if spec.variadic {
                spec.params[0]
            } else {
                spec.params[i]
            };
            if let Param::Literal(kind) = param {
                if let Some(e) = self.literal_arg(spec.name, kind, arg) {
                    typed.push(e);
                } else {
                    failed = true;
                }
                continue;
            }
            let Some(e) = self.check(arg) else {
                failed = true;
                continue;
            };
            match param {
                Param::Value(want) => {
                    let fits = e.ty == want
                        || e.ty == Type::Null
                        || (want == Type::F64 && e.ty == Type::I64);
                    if !fits {
                        self.diagnostics.push(
                            Diagnostic::error(
                                "E0211",
                                arg.span,
                                format!(
                                    "argument {} of `{}` must be {want}, found {}",
                                    i + 1,
                                    spec.name,
                                    e.ty
                                ),
                            )
                            .with_label(format!("this is {}", e.ty)),
                        );
                        failed = true;
                        continue;
                    }
                    typed.push(e.widen(want));
                }
                Param::Numeric | Param::Any => typed.push(e),
                Param::Literal(_) => unreachable!("handled above"),
            }
        }
        if failed {
            return None;
        }
        let numeric = |this: &mut Self, typed: &[TExpr]| {
            let ty = typed[0].ty;
            if ty.is_numeric() || ty == Type::Null {
                return Some(if ty == Type::Null { Type::F64 } else { ty });
            }
            this.error(type_error(
                "E0211",
                typed[0].span,
                &format!("`{}` needs a number", spec.name),
                ty,
            ))
            .map(|e| e.ty)
        };
        let (ty, nullable) = match spec.func {
            Func::Coalesce => {
                let ty = self.unify(&typed, span)?;
                let nullable = typed.iter().all(|a| a.nullable);
                typed = typed.into_iter().map(|a| a.widen(ty)).collect();
                (ty, nullable)
            }
            Func::Abs => {
                let ty = typed[0].ty;
                if !ty.is_numeric() && ty != Type::Duration {
                    return self.error(type_error(
                        "E0211",
                        typed[0].span,
                        "`abs` needs a number",
                        ty,
                    ));
                }
                (ty, typed[0].nullable)
            }
            Func::Round | Func::Floor | Func::Ceil => {
                let ty = numeric(self, &typed)?;
                let first = typed.remove(0).widen(ty);
                typed.insert(0, first);
                (ty, typed.iter().any(|a| a.nullable))
            }
            // As PostgreSQL and DuckDB: nulls are skipped; null only when every argument is.
            Func::Greatest | Func::Least => {
                let ty = self.unify(&typed, span)?;
                let nullable = typed.iter().all(|a| a.nullable);
                typed = typed.into_iter().map(|a| a.widen(ty)).collect();
                (ty, nullable)
            }
            Func::NullIf => {
                let ty = self.unify(&typed, span)?;
                typed = typed.into_iter().map(|a| a.widen(ty)).collect();
                (ty, true)
            }
            Func::Like => {
                let pattern = str_literal(&typed[1]);
                let escape = typed.get(2).and_then(|e| str_literal(e).chars().next());
                let regex = match like_regex(&pattern, escape) {
                    Ok(regex) => regex,
                    Err(problem) => {
                        return self.error(Diagnostic::error(
                            "E0213",
                            typed[1].span,
                            format!("invalid `like` pattern: {problem}"),
                        ))
                    }
                };
                typed.truncate(1);
                typed.push(TExpr {
                    kind: TExprKind::Lit(Literal::Str(regex)),
                    ty: Type::String,
                    nullable: false,
                    span: args[1].span,
                });
                (Type::Bool, typed[0].nullable)
            }
            Func::DateTrunc => {
                let unit = str_literal(&typed[0]);
                if matches!(functions::time_unit(&unit), Some("DayOfWeek" | "DayOfYear")) {
                    return self.error(
                        Diagnostic::error(
                            "E0213",
                            typed[0].span,
                            format!("`date_trunc` cannot truncate to `{unit}`"),
                        )
                        .with_hint(format!("units are: {}", functions::TRUNC_UNITS)),
                    );
                }
                (Type::Timestamp, typed.iter().any(|a| a.nullable))
            }
            _ => (
                spec.result.unwrap_or(Type::Null),
                spec.may_return_null || typed.iter().any(|a| a.nullable),
            ),
        };
        Some(TExpr {
            kind: TExprKind::Call(spec.func, typed),
            ty,
            nullable,
            span,
        })
    }

    /// Checks an argument that must be a string literal known at compile time.
    fn literal_arg(&mut self, func: &str, kind: LiteralKind, arg: &ast::Expr) -> Option<TExpr> {
        let ExprKind::Lit(Literal::Str(text)) = &arg.kind else {
            let what = match kind {
                LiteralKind::Regex => "a regular expression",
                LiteralKind::DatePattern => "a date pattern",
                LiteralKind::Char => "a one-character string",
                LiteralKind::LikePattern => "a pattern",
                LiteralKind::TimeUnit => "a unit such as 'hour'",
                LiteralKind::Zone => "a time zone name",
            };
            let mut d = Diagnostic::error(
                "E0212",
                arg.span,
                format!("`{func}` needs {what} as a string literal here"),
            )
            .with_label("not a string literal");
            if let (LiteralKind::TimeUnit, ExprKind::Field(unit)) = (kind, &arg.kind) {
                d = d.with_hint(format!("quote the unit: `{func}('{}', ...)`", unit.name));
            }
            return self.error(d);
        };
        let problem = match kind {
            LiteralKind::Regex => regex::Regex::new(text).err().map(|e| {
                let msg = e.to_string();
                let last = msg
                    .lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
                    .to_string();
                format!(
                    "invalid regular expression: {}",
                    last.trim_start_matches("error: ")
                )
            }),
            LiteralKind::DatePattern => functions::check_date_pattern(text)
                .err()
                .map(|e| format!("invalid date pattern: {e}")),
            LiteralKind::Char => (text.chars().count() != 1).then(|| {
                format!(
                    "`{func}` takes one character; `{text}` has {}",
                    text.chars().count()
                )
            }),
            LiteralKind::LikePattern => None,
            LiteralKind::TimeUnit => functions::time_unit(text)
                .is_none()
                .then(|| format!("unknown time unit `{text}`")),
            LiteralKind::Zone => functions::check_zone(text).err(),
        };
        if let Some(message) = problem {
            let mut d = Diagnostic::error("E0213", arg.span, message);
            match kind {
                LiteralKind::TimeUnit => {
                    let names = functions::TIME_UNITS.iter().map(|(n, _)| *n);
                    d = match did_you_mean(&text.to_ascii_lowercase(), names) {
                        Some(s) => d.with_hint(format!("did you mean '{s}'?")),
                        None => d.with_hint(format!(
                            "units are: {}, and for `extract` dow, doy",
                            functions::TRUNC_UNITS
                        )),
                    };
                }
                LiteralKind::Zone => {
                    let names = functions::zone_names();
                    d = match did_you_mean(text, names.iter().map(String::as_str)) {
                        Some(s) => d.with_hint(format!("did you mean \"{s}\"?")),
                        None => d.with_hint(
                            "zones are IANA names such as \"Europe/Paris\", \"America/New_York\" or \"UTC\"",
                        ),
                    };
                }
                _ => {}
            }
            return self.error(d);
        }
        Some(TExpr {
            kind: TExprKind::Lit(Literal::Str(text.clone())),
            ty: Type::String,
            nullable: false,
            span: arg.span,
        })
    }
}

/// How a function is called: `lower(string)`, `regexp_extract(string, 'regex', i64)`.
fn signature(spec: &functions::FuncSpec) -> String {
    let mut params: Vec<String> = spec
        .params
        .iter()
        .map(|p| match p {
            Param::Value(t) => t.name().to_string(),
            Param::Numeric => "number".to_string(),
            Param::Any => "value".to_string(),
            Param::Literal(LiteralKind::Regex) => "'regex'".to_string(),
            Param::Literal(LiteralKind::DatePattern) => "'date pattern'".to_string(),
            Param::Literal(LiteralKind::Char) => "'c'".to_string(),
            Param::Literal(LiteralKind::LikePattern) => "'pattern'".to_string(),
            Param::Literal(LiteralKind::TimeUnit) => "'unit'".to_string(),
            Param::Literal(LiteralKind::Zone) => "\"zone\"".to_string(),
        })
        .collect();
    let required = params.len() - spec.optional;
    if spec.optional > 0 {
        params[required] = format!("[{}", params[required]);
        if let Some(last) = params.last_mut() {
            last.push(']');
        }
    }
    if spec.variadic {
        params.push("...".to_string());
    }
    format!("{}({})", spec.name, params.join(", "))
}

/// `not e` when `negated`.
fn negate(e: TExpr, negated: bool) -> TExpr {
    if !negated {
        return e;
    }
    let (span, nullable) = (e.span, e.nullable);
    TExpr {
        kind: TExprKind::Not(Box::new(e)),
        ty: Type::Bool,
        nullable,
        span,
    }
}

/// The text of a string literal argument (checked by `literal_arg`).
fn str_literal(e: &TExpr) -> std::string::String {
    match &e.kind {
        TExprKind::Lit(Literal::Str(s)) => s.clone(),
        _ => std::string::String::new(),
    }
}

/// `s like pattern` as an anchored regular expression: `%` is any text, `_` one character,
/// `escape` makes the character after it literal.
fn like_regex(pattern: &str, escape: Option<char>) -> Result<std::string::String, &'static str> {
    let mut out = std::string::String::from("(?s)^");
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        let literal = if Some(c) == escape {
            chars
                .next()
                .ok_or("the pattern ends with its escape character")?
        } else if c == '%' {
            out.push_str(".*");
            continue;
        } else if c == '_' {
            out.push('.');
            continue;
        } else {
            c
        };
        out.push_str(&regex::escape(literal.encode_utf8(&mut [0; 4])));
    }
    out.push('$');
    Ok(out)
}

/// A record or an array where only a scalar goes (a comparison, a `case` result, a key).
pub(crate) fn nested_value(span: Span, ty: Type) -> Diagnostic {
    Diagnostic::error(
        "E0221",
        span,
        format!("a {} cannot be used here, only scalar values", ty.name()),
    )
    .with_label(format!("this is {ty}"))
    .with_hint("use its fields (`payload.user.id`) or elements (`tags[1]`, `cardinality(tags)`)")
}

fn type_error(code: &'static str, span: Span, what: &str, found: Type) -> Diagnostic {
    Diagnostic::error(code, span, format!("{what}, found {found}"))
        .with_label(format!("this is {found}"))
}

pub(crate) fn unknown_type(name: &ast::Ident) -> Diagnostic {
    let mut d = Diagnostic::error("E0103", name.span, format!("unknown type `{}`", name.name));
    // Type names from SQL and other languages.
    let alias = match name.name.to_ascii_lowercase().as_str() {
        "int" | "integer" | "long" | "bigint" | "i32" | "int64" => Some("i64"),
        "float" | "double" | "real" | "f32" | "float64" => Some("f64"),
        "boolean" => Some("bool"),
        "str" | "text" | "varchar" | "char" => Some("string"),
        "datetime" | "date" | "time" => Some("timestamp"),
        _ => None,
    };
    if let Some(s) = alias.or_else(|| did_you_mean(&name.name, Type::NAMES)) {
        d = d.with_hint(format!("did you mean `{s}`?"));
    } else {
        d = d.with_hint(format!("types are: {}", Type::NAMES.join(", ")));
    }
    d
}

/// The value of an integer expression made of literals only: `None` for one that is not
/// constant, `Some(None)` for one that overflows `i64`.
fn constant_int(e: &TExpr) -> Option<Option<i64>> {
    match &e.kind {
        TExprKind::Lit(Literal::Int(v) | Literal::Duration(v)) => Some(Some(*v)),
        TExprKind::Neg(a) => Some(constant_int(a)?.and_then(i64::checked_neg)),
        TExprKind::Arith(op, a, b) => {
            let (a, b) = (constant_int(a)?, constant_int(b)?);
            Some(a.zip(b).and_then(|(a, b)| match op {
                ArithOp::Add => a.checked_add(b),
                ArithOp::Sub => a.checked_sub(b),
                ArithOp::Mul => a.checked_mul(b),
                // Division by zero is null, not an overflow; `MIN / -1` overflows.
                ArithOp::Div if b == 0 => Some(0),
                ArithOp::Div => a.checked_div(b),
                ArithOp::Rem => a.checked_rem(b).or(Some(0)),
            }))
        }
        _ => None,
    }
}
