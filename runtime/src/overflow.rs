//! Arithmetic errors: an expression never yields a wrong number. Integer arithmetic that
//! leaves the `i64` range overflows; float arithmetic whose result is NaN or an infinity (a
//! division by zero, `0.0 / 0.0`, a product beyond the `f64` range) is not finite. The
//! generated code calls the checked operations here; one that fails returns a placeholder and
//! records what went wrong ([`Fault`]) and the expression's text in a per-thread flag, and the
//! operator that evaluated it takes the flag once per record and sends the record to the dead
//! letters ([`Overflows::reject`]) instead of passing it on. The hot path is a checked machine
//! instruction (or one compare for floats) and a branch; the thread-local is touched on a fault
//! and once per record in operators whose expressions can fail.
//!
//! An integer `sum` whose total leaves the range, and a float `sum` or `avg` whose total is not
//! finite, yields null for its group and window; the summary counts it with the records
//! rejected ([`crate::metrics::Metrics::faults`]).
//!
//! Domain errors of scalar functions (`sqrt(-1)`, `ln(0)`, a `power` that leaves the `f64`
//! range) use the same flag with their own reason ([`raise_domain`]): such a record is a dead
//! letter too, never a wrong number.

use std::cell::Cell;
use std::fmt::Debug;
use std::marker::PhantomData;

use crate::dead_letter::DeadLetters;
use crate::metrics::OpMetrics;

/// What went wrong in an expression. Each kind has its own reason text in the dead letters and
/// its own count in the run summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `i64` arithmetic (also on timestamps and durations) left the range.
    IntegerOverflow,
    /// A float result is NaN or an infinity.
    NotFinite,
    /// A function's argument lies outside its domain ([`Raised::detail`] says how).
    Domain,
}

impl Fault {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [Fault; 3] = [Fault::IntegerOverflow, Fault::NotFinite, Fault::Domain];

    /// The run summary's name for the count of this kind.
    pub fn summary_label(self) -> &'static str {
        match self {
            Fault::IntegerOverflow => "integer overflows",
            Fault::NotFinite => "non-finite float results",
            Fault::Domain => "function domain errors",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A fault taken from the flag: what went wrong, and in which expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    pub fault: Fault,
    pub expr: &'static str,
    /// For a domain error, how the argument was out of it ("square root of a negative
    /// number"); empty otherwise.
    pub detail: &'static str,
}

impl Raised {
    /// The dead letter's reason for a record whose expression failed this way.
    pub fn reason(&self) -> String {
        let expr = self.expr;
        match self.fault {
            Fault::IntegerOverflow => format!("integer overflow in `{expr}`"),
            Fault::NotFinite => format!("float result is not finite in `{expr}`"),
            Fault::Domain => format!("{} in `{expr}`", self.detail),
        }
    }
}

thread_local! {
    /// The first fault since the flag was last taken.
    static RAISED: Cell<Option<Raised>> = const { Cell::new(None) };
}

/// Records that `expr` failed with `fault` (the first fault per record is kept).
#[cold]
#[inline(never)]
pub fn raise_fault(fault: Fault, expr: &'static str) {
    raise_raised(Raised {
        fault,
        expr,
        detail: "",
    });
}

fn raise_raised(raised: Raised) {
    RAISED.with(|f| {
        if f.get().is_none() {
            f.set(Some(raised));
        }
    });
}

/// Records that a function in `expr` was called outside its domain; `what` says how
/// ("square root of a negative number").
#[cold]
#[inline(never)]
pub fn raise_domain(what: &'static str, expr: &'static str) {
    raise_raised(Raised {
        fault: Fault::Domain,
        expr,
        detail: what,
    });
}

/// Records that `expr` overflowed (an integer overflow).
#[cold]
#[inline(never)]
pub fn raise(expr: &'static str) {
    raise_fault(Fault::IntegerOverflow, expr);
}

/// The fault raised since the last call, if any; clears the flag.
#[inline]
pub fn take() -> Option<Raised> {
    // Read first: the common case (nothing raised) writes nothing.
    RAISED.with(|f| match f.get() {
        None => None,
        raised => {
            f.set(None);
            raised
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

/// A float result as the expression's value: a placeholder (`0.0`) and a raised flag when it
/// is NaN or an infinity.
#[inline(always)]
pub fn finite(v: f64, expr: &'static str) -> f64 {
    if v.is_finite() {
        v
    } else {
        raise_fault(Fault::NotFinite, expr);
        0.0
    }
}

/// `a + b` of floats.
#[inline(always)]
pub fn fadd(a: f64, b: f64, expr: &'static str) -> f64 {
    finite(a + b, expr)
}

/// `a - b` of floats.
#[inline(always)]
pub fn fsub(a: f64, b: f64, expr: &'static str) -> f64 {
    finite(a - b, expr)
}

/// `a * b` of floats.
#[inline(always)]
pub fn fmul(a: f64, b: f64, expr: &'static str) -> f64 {
    finite(a * b, expr)
}

/// `a / b` of floats: dividing by zero (also `0.0 / 0.0`) is not finite, as is a quotient
/// beyond the range.
#[inline(always)]
pub fn fdiv(a: f64, b: f64, expr: &'static str) -> f64 {
    finite(a / b, expr)
}

/// `a % b` of floats: the remainder by zero is NaN.
#[inline(always)]
pub fn frem(a: f64, b: f64, expr: &'static str) -> f64 {
    finite(a % b, expr)
}

/// A float sum's or average's total as the aggregate's value: `None` and a raised flag when it
/// is not finite.
#[inline]
pub fn finite_total(total: f64, expr: &'static str) -> Option<f64> {
    if total.is_finite() {
        Some(total)
    } else {
        raise_fault(Fault::NotFinite, expr);
        None
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

/// Where one operator sends the records whose expressions failed, and counts them.
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
    /// with the fault and the expression that failed, and counts it.
    #[cold]
    #[inline(never)]
    pub fn reject(&self, raised: Raised, record: &str) {
        self.metrics.add_fault(raised.fault);
        let reason = raised.reason();
        self.letters
            .write_rejected(self.metrics.name(), &reason, record);
    }

    /// After an operator produced a row: counts the aggregate that failed into it (the
    /// aggregate is null), clearing the flag.
    #[inline]
    pub fn count_taken(&self) {
        if let Some(raised) = take() {
            self.count(raised.fault);
        }
    }

    /// Counts an aggregate that failed (its value is null).
    #[cold]
    pub fn count(&self, fault: Fault) {
        self.metrics.add_fault(fault);
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
        assert_eq!(take().map(|r| r.expr), Some("a + 1"));
        assert_eq!(take(), None);
        assert_eq!(sub(i64::MIN, 1, "e"), 0);
        assert_eq!(neg(i64::MIN, "e"), 0);
        assert_eq!(abs(i64::MIN, "e"), 0);
        assert_eq!(div(i64::MIN, -1, "e"), 0);
        assert_eq!(take().map(|r| r.expr), Some("e"));
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
            assert_eq!(take().map(|r| r.expr), Some("c"));
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
    fn non_finite_float_results_raise_the_flag_with_their_own_fault() {
        assert_eq!(fdiv(1.0, 4.0, "d"), 0.25);
        assert_eq!(fadd(f64::MAX, -1.0, "d"), f64::MAX - 1.0);
        assert_eq!(take(), None);
        let faulty: [fn() -> f64; 9] = [
            || fdiv(1.0, 0.0, "q"),
            || fdiv(-1.0, 0.0, "q"),
            || fdiv(0.0, 0.0, "q"),
            || fdiv(1e308, 1e-308, "q"),
            || fmul(1e200, 1e200, "q"),
            || fadd(f64::MAX, f64::MAX, "q"),
            || fsub(-f64::MAX, f64::MAX, "q"),
            || frem(1.0, 0.0, "q"),
            || finite(f64::NAN, "q"),
        ];
        for f in faulty {
            assert_eq!(f(), 0.0);
            let raised = take().expect("raised");
            assert_eq!(raised.fault, Fault::NotFinite);
            assert_eq!(raised.reason(), "float result is not finite in `q`");
        }
        // The first fault of a record is the one kept.
        add(i64::MAX, 1, "i");
        fdiv(1.0, 0.0, "f");
        assert_eq!(
            take(),
            Some(Raised {
                fault: Fault::IntegerOverflow,
                expr: "i",
                detail: ""
            })
        );
        assert_eq!(finite_total(1e308, "s"), Some(1e308));
        assert_eq!(finite_total(f64::INFINITY, "s"), None);
        assert_eq!(take().map(|r| r.fault), Some(Fault::NotFinite));
    }

    #[test]
    fn domain_errors_share_the_flag_and_keep_their_reason() {
        raise_domain("square root of a negative number", "sqrt(x)");
        raise("a + b");
        let raised = take().expect("raised");
        assert_eq!(raised.fault, Fault::Domain);
        assert_eq!(
            raised.reason(),
            "square root of a negative number in `sqrt(x)`"
        );
        assert_eq!(take(), None);
    }

    #[test]
    fn sums_that_leave_the_range_are_null() {
        assert_eq!(sum_total(i64::MAX as i128, "s"), Some(i64::MAX));
        assert_eq!(take(), None);
        assert_eq!(sum_total(i64::MAX as i128 + 1, "s"), None);
        assert_eq!(take().map(|r| r.expr), Some("s"));
    }
}
