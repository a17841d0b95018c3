//! Functions written in Rust (UDFs), declared with their weir signature by an embedding
//! (`fn risk(amount: f64, country: string) -> f64 = crate::udf::risk;` in the macro's or build
//! script's header), so calls type-check against the pipeline text like built-in functions.
//!
//! The declarations of the current compilation live in a thread-local table, set around one
//! compilation by [`with_udfs`]. This keeps the checker's constructors (six of them) and
//! `Program` unchanged while other branches work on the same files; when those land, the
//! table can become a field of `ExprChecker`.

use std::cell::RefCell;

use weir_dsl::ast;
use weir_dsl::{Diagnostic, Span};

use super::expr::{ExprChecker, TExpr, TExprKind};
use super::types::Type;

/// One Rust function, as the pipeline sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Udf {
    pub name: String,
    /// Parameter names and types (non-null: a null argument makes the call null).
    pub params: Vec<(String, Type)>,
    pub result: Type,
    /// The Rust path: a `fn` for a scalar function, a `weir::Accumulator` type for an
    /// aggregate.
    pub path: String,
    pub aggregate: bool,
}

impl Udf {
    /// `name(a: f64, b: string) -> f64`, for messages.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|(n, t)| format!("{n}: {t}"))
            .collect();
        format!("{}({}) -> {}", self.name, params.join(", "), self.result)
    }
}

thread_local! {
    static UDFS: RefCell<Vec<Udf>> = const { RefCell::new(Vec::new()) };
    /// The calls checked so far in this compilation: function name, call span.
    static CALLS: RefCell<Vec<(String, Span)>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` (a compilation) with `udfs` declared; restores the previous table afterwards.
pub fn with_udfs<R>(udfs: &[Udf], f: impl FnOnce() -> R) -> R {
    with_udfs_calls(udfs, f).0
}

/// [`with_udfs`], and where the pipeline calls the functions (name and span of each call, in
/// the order checked): rustc's errors about a function are shown at its calls.
pub fn with_udfs_calls<R>(udfs: &[Udf], f: impl FnOnce() -> R) -> (R, Vec<(String, Span)>) {
    struct Restore(Vec<Udf>, Vec<(String, Span)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = std::mem::take(&mut self.0);
            UDFS.with(|t| *t.borrow_mut() = old);
            let old = std::mem::take(&mut self.1);
            CALLS.with(|t| *t.borrow_mut() = old);
        }
    }
    let old = UDFS.with(|t| std::mem::replace(&mut *t.borrow_mut(), udfs.to_vec()));
    let old_calls = CALLS.with(|t| std::mem::take(&mut *t.borrow_mut()));
    let _restore = Restore(old, old_calls);
    let result = f();
    let calls = CALLS.with(|t| std::mem::take(&mut *t.borrow_mut()));
    (result, calls)
}

/// Notes a call of the declared function `name` (see [`with_udfs_calls`]).
pub fn record_call(name: &str, span: Span) {
    CALLS.with(|t| t.borrow_mut().push((name.to_string(), span)));
}

/// The declared function called `name`, if any.
pub fn lookup(name: &str) -> Option<Udf> {
    UDFS.with(|t| t.borrow().iter().find(|u| u.name == name).cloned())
}

/// The names of the declared scalar functions (for "did you mean").
pub fn scalar_names() -> Vec<String> {
    UDFS.with(|t| {
        t.borrow()
            .iter()
            .filter(|u| !u.aggregate)
            .map(|u| u.name.clone())
            .collect()
    })
}

/// Whether `name` is a declared aggregate function.
pub fn is_aggregate(name: &str) -> bool {
    lookup(name).is_some_and(|u| u.aggregate)
}

/// Checks one argument of a call against a parameter type: the typed argument, widened.
fn check_arg(checker: &mut ExprChecker<'_>, udf: &Udf, i: usize, arg: &ast::Expr) -> Option<TExpr> {
    let e = checker.check(arg)?;
    let want = udf.params[i].1;
    let fits = e.ty == want || e.ty == Type::Null || (want == Type::F64 && e.ty == Type::I64);
    if !fits {
        checker.diagnostics.push(
            Diagnostic::error(
                "E0211",
                arg.span,
                format!(
                    "argument {} of `{}` must be {want}, found {}",
                    i + 1,
                    udf.name,
                    e.ty
                ),
            )
            .with_label(format!("this is {}", e.ty))
            .with_hint(format!(
                "the Rust function is declared as `{}`",
                udf.signature()
            )),
        );
        return None;
    }
    Some(e.widen(want))
}

/// Checks the arguments of a call to `udf`: their number and types.
pub fn check_args(
    checker: &mut ExprChecker<'_>,
    udf: &Udf,
    args: &[ast::Expr],
    span: Span,
) -> Option<Vec<TExpr>> {
    record_call(&udf.name, span);
    if args.len() != udf.params.len() {
        checker.diagnostics.push(
            Diagnostic::error(
                "E0209",
                span,
                format!(
                    "`{}` takes {} argument{}, found {}",
                    udf.name,
                    udf.params.len(),
                    if udf.params.len() == 1 { "" } else { "s" },
                    args.len()
                ),
            )
            .with_hint(format!(
                "the Rust function is declared as `{}`",
                udf.signature()
            )),
        );
        return None;
    }
    let mut typed = Vec::new();
    let mut failed = false;
    for (i, arg) in args.iter().enumerate() {
        match check_arg(checker, udf, i, arg) {
            Some(e) => typed.push(e),
            None => failed = true,
        }
    }
    (!failed).then_some(typed)
}

/// A call of a scalar UDF in an expression.
pub fn check_call(
    checker: &mut ExprChecker<'_>,
    udf: &Udf,
    args: &[ast::Expr],
    span: Span,
) -> Option<TExpr> {
    if udf.aggregate {
        checker.diagnostics.push(
            Diagnostic::error(
                "E0208",
                span,
                format!("aggregate function `{}` outside `aggregate`", udf.name),
            )
            .with_hint(
                "aggregates go in `|> window tumble(...) |> aggregate by key { n: count() }`",
            ),
        );
        return None;
    }
    let typed = check_args(checker, udf, args, span)?;
    let nullable = typed.iter().any(|a| a.nullable);
    Some(TExpr {
        kind: TExprKind::Udf(udf.path.clone(), typed),
        ty: udf.result,
        nullable,
        span,
    })
}
