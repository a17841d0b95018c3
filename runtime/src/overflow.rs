//! Integer overflow: an expression whose `i64` arithmetic leaves the range never yields a
//! wrong number. The generated code calls the checked operations here; one that overflows
//! returns a placeholder and records the expression's text in a per-thread flag, and the
//! operator that evaluated it takes the flag once per record and sends the record to the
//! dead letters ([`Overflows::reject`]) instead of passing it on. The hot path is a checked
//! machine instruction and a branch; the thread-local is touched on overflow and once per
//! record in operators whose expressions can overflow.
//!
//! An integer `sum` whose total leaves the range yields null for its group and window; the
//! summary counts it with the records rejected ([`crate::metrics::Metrics::overflows`]).
//!
//! Domain errors of scalar functions (`sqrt(-1)`, `ln(0)`, a `power` that leaves the `f64`
//! range) use the same flag with their own reason ([`raise_domain`]): such a record is a dead
//! letter too, never a wrong number.

use std::cell::Cell;
use std::fmt::Debug;
use std::marker::PhantomData;

use crate::dead_letter::DeadLetters;
use crate::metrics::OpMetrics;

/// An expression that gave no value, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The expression as the pipeline writes it.
    pub expr: &'static str,
    pub reason: Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Integer arithmetic left the `i64` range.
    IntegerOverflow,
    /// A function's argument lies outside its domain (the text says how).
    Domain(&'static str),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.reason {
            Reason::IntegerOverflow => write!(f, "integer overflow in `{}`", self.expr),
            Reason::Domain(what) => write!(f, "{what} in `{}`", self.expr),
        }
    }
}

thread_local! {
    /// The first fault since the flag was last taken.
    static OVERFLOWED: Cell<Option<Fault>> = const { Cell::new(None) };
}

fn raise_fault(fault: Fault) {
    OVERFLOWED.with(|f| {
        if f.get().is_none() {
            f.set(Some(fault));
        }
    });
}

/// Records that `expr` overflowed (the first fault per record is kept).
#[cold]
#[inline(never)]
pub fn raise(expr: &'static str) {
    raise_fault(Fault {
        expr,
        reason: Reason::IntegerOverflow,
    });
}

/// Records that a function in `expr` was called outside its domain; `what` says how
/// ("square root of a negative number").
#[cold]
#[inline(never)]
pub fn raise_domain(what: &'static str, expr: &'static str) {
    raise_fault(Fault {
        expr,
        reason: Reason::Domain(what),
    });
}

/// The fault raised since the last call, if any; clears the flag.
#[inline]
pub fn take() -> Option<Fault> {
    OVERFLOWED.with(|f| match f.get() {
        None => None,
        Some(fault) => {
            f.set(None);
            Some(fault)
        }
    })
}

#[inline]
fn checked(v: Option<i64>, expr: &'static str) -> i64 {
    match v {
        Some(v) => v,
        None => {
            raise(expr);
            0
        }
    }
}

/// `a + b` (ints, timestamps, durations).
#[inline(always)]
pub fn add(a: i64, b: i64, expr: &'static str) -> i64 {
    checked(a.checked_add(b), expr)
}

/// `a - b`.
#[inline(always)]
pub fn sub(a: i64, b: i64, expr: &'static str) -> i64 {
    checked(a.checked_sub(b), expr)
}

/// `a * b`.
#[inline(always)]
pub fn mul(a: i64, b: i64, expr: &'static str) -> i64 {
    checked(a.checked_mul(b), expr)
}

/// `-a`.
#[inline(always)]
pub fn neg(a: i64, expr: &'static str) -> i64 {
    checked(a.checked_neg(), expr)
}

/// `abs(a)`.
#[inline(always)]
pub fn abs(a: i64, expr: &'static str) -> i64 {
    checked(a.checked_abs(), expr)
}

/// `a / b` by a literal divisor other than zero: only `i64::MIN / -1` overflows.
#[inline(always)]
pub fn div(a: i64, b: i64, expr: &'static str) -> i64 {
    checked(a.checked_div(b), expr)
}

/// `cast(x as int)` of a float: truncated toward zero; NaN, infinities and values outside
/// the `i64` range overflow (Rust's `as` would saturate or give 0: a wrong number).
#[inline(always)]
pub fn f64_to_i64(x: f64, expr: &'static str) -> i64 {
    // -2^63 is exact in f64; 2^63 is the first value above the range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let t = x.trunc();
    if (-LIMIT..LIMIT).contains(&t) {
        t as i64
    } else {
        raise(expr);
        0
    }
}

/// An integer sum's total (accumulated in `i128`, which `i64` values cannot overflow) as the
/// aggregate's value: `None` and a raised flag when it does not fit.
#[inline]
pub fn sum_total(total: i128, expr: &'static str) -> Option<i64> {
    match i64::try_from(total) {
        Ok(v) => Some(v),
        Err(_) => {
            raise(expr);
            None
        }
    }
}

/// Where one operator sends the records whose expressions overflowed.
#[derive(Clone)]
pub struct Overflows {
    letters: DeadLetters,
    metrics: OpMetrics,
}

impl Overflows {
    pub fn new(letters: DeadLetters, metrics: OpMetrics) -> Self {
        Overflows { letters, metrics }
    }

    /// Writes `record` (its [`describe`](DescribeDebug::describe) text) to the dead letters
    /// with the fault (the expression and why it has no value), and counts it.
    #[cold]
    #[inline(never)]
    pub fn reject(&self, fault: Fault, record: &str) {
        self.metrics.add_overflow();
        let reason = fault.to_string();
        self.letters
            .write_rejected(self.metrics.name(), &reason, record);
    }

    /// After an operator produced a row: counts the aggregate that overflowed into it (the
    /// aggregate is null), clearing the flag.
    #[inline]
    pub fn count_taken(&self) {
        if take().is_some() {
            self.count();
        }
    }

    /// Counts an aggregate that overflowed (its value is null).
    #[cold]
    pub fn count(&self) {
        self.metrics.add_overflow();
    }
}

/// A record's text for the dead letters: its `Debug` form, or a placeholder for a record type
/// from Rust without `Debug`. Generated code calls `(&Describe(r)).describe()` with both traits
/// in scope; method lookup picks [`DescribeDebug`] when the type has `Debug`.
pub struct Describe<'a, T>(pub &'a T);

pub trait DescribeDebug {
    fn describe(&self) -> String;
}

impl<T: Debug> DescribeDebug for Describe<'_, T> {
    fn describe(&self) -> String {
        format!("{:?}", self.0)
    }
}

pub trait DescribeOpaque {
    fn describe(&self) -> String;
}

impl<T> DescribeOpaque for &Describe<'_, T> {
    fn describe(&self) -> String {
        let _ = PhantomData::<T>;
        format!("(a {} without Debug)", std::any::type_name::<T>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_raises_the_flag_once_and_take_clears_it() {
        assert_eq!(take(), None);
        assert_eq!(add(1, 2, "a + b"), 3);
        assert_eq!(take(), None);
        assert_eq!(add(i64::MAX, 1, "a + 1"), 0);
        assert_eq!(mul(i64::MIN, -1, "a * -1"), 0);
        assert_eq!(take().map(|f| f.expr), Some("a + 1"));
        assert_eq!(take(), None);
        assert_eq!(sub(i64::MIN, 1, "e"), 0);
        assert_eq!(neg(i64::MIN, "e"), 0);
        assert_eq!(abs(i64::MIN, "e"), 0);
        assert_eq!(div(i64::MIN, -1, "e"), 0);
        assert_eq!(
            take().map(|f| f.to_string()).as_deref(),
            Some("integer overflow in `e`")
        );
        assert_eq!(abs(-5, "e"), 5);
        assert_eq!(neg(i64::MAX, "e"), -i64::MAX);
        assert_eq!(take(), None);
    }

    #[test]
    fn float_to_int_is_exact_in_range_and_overflows_outside() {
        assert_eq!(f64_to_i64(-2.9, "c"), -2);
        assert_eq!(f64_to_i64(-9_223_372_036_854_775_808.0, "c"), i64::MIN);
        assert_eq!(
            f64_to_i64(9_223_372_036_854_774_784.0, "c"),
            9_223_372_036_854_774_784
        );
        assert_eq!(take(), None);
        for x in [9_223_372_036_854_775_808.0, f64::NAN, f64::INFINITY, -1e19] {
            assert_eq!(f64_to_i64(x, "c"), 0);
            assert_eq!(take().map(|f| f.expr), Some("c"));
        }
    }

    #[test]
    // The borrow is what makes the lookup fall back to `DescribeOpaque` (as generated code
    // writes it).
    #[allow(clippy::needless_borrow)]
    fn records_are_described_by_debug_when_they_have_it() {
        struct Opaque;
        assert_eq!((&Describe(&(1, "a"))).describe(), "(1, \"a\")");
        assert!((&Describe(&Opaque)).describe().contains("without Debug"));
    }

    #[test]
    fn sums_that_leave_the_range_are_null() {
        assert_eq!(sum_total(i64::MAX as i128, "s"), Some(i64::MAX));
        assert_eq!(take(), None);
        assert_eq!(sum_total(i64::MAX as i128 + 1, "s"), None);
        assert_eq!(take().map(|f| f.expr), Some("s"));
    }

    #[test]
    fn domain_errors_share_the_flag_and_keep_their_reason() {
        raise_domain("square root of a negative number", "sqrt(x)");
        raise("a + b");
        let fault = take().expect("raised");
        assert_eq!(
            fault.to_string(),
            "square root of a negative number in `sqrt(x)`"
        );
        assert_eq!(take(), None);
    }
}
