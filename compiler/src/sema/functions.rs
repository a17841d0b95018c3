//! The scalar and aggregate function tables: names, arities, argument types, result types.
//! Every function here has a runtime counterpart in `weir_runtime::functions`.

use super::types::Type;

/// A scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Lower,
    Upper,
    CharLength,
    Trim,
    Concat,
    Contains,
    StartsWith,
    EndsWith,
    SplitIndex,
    RegexpExtract,
    RegexpMatches,
    CountChar,
    Substring,
    Hour,
    Minute,
    Second,
    DayOfMonth,
    Month,
    Year,
    DayOfWeek,
    DateFormat,
    Coalesce,
    Abs,
    Round,
    Floor,
    Ceil,
    Sqrt,
    Power,
    Ln,
    Exp,
    Greatest,
    Least,
    NullIf,
    Replace,
    Lpad,
    Rpad,
    Md5,
    Sha256,
    /// `s like 'pattern'`; the checker turns the pattern (and its escape) into a regex.
    Like,
    DateTrunc,
    Extract,
    ToTimestamp,
    FromUnixtime,
    UnixTimestamp,
    Now,
}

/// An argument slot of a scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// Any expression of this type.
    Value(Type),
    /// A number (i64 or f64); the result takes its type.
    Numeric,
    /// A value of any type; all such arguments are brought to one type (`greatest`, `nullif`).
    Any,
    /// A string literal, checked at compile time (a regex, a date pattern, one character).
    Literal(LiteralKind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiteralKind {
    Regex,
    DatePattern,
    Char,
    /// A `like` pattern (`%` any text, `_` one character).
    LikePattern,
    /// A unit of `date_trunc` / `extract`: `'hour'`, `'day'`, ...
    TimeUnit,
    /// An IANA time zone name, checked against the bundled database: `"Europe/Paris"`.
    Zone,
}

pub struct FuncSpec {
    pub func: Func,
    pub name: &'static str,
    pub params: &'static [Param],
    /// `Concat` and `Coalesce` take one or more arguments of the first slot's kind.
    pub variadic: bool,
    /// Result type; `None` means "the type of the arguments" (coalesce, abs).
    pub result: Option<Type>,
    /// The result can be null even when no argument is (no match, index out of range).
    pub may_return_null: bool,
    /// How many of the last `params` may be left out (`round(x)`, `hour(ts)` without a zone).
    pub optional: usize,
    /// Evaluating it can raise the runtime's fault flag (an overflow or a domain error), so
    /// the operator checks the flag per record.
    pub faults: bool,
}

impl FuncSpec {
    /// The fewest arguments a call takes.
    pub fn min_args(&self) -> usize {
        if self.variadic {
            1
        } else {
            self.params.len() - self.optional
        }
    }
}

use LiteralKind::*;
use Param::*;
use Type::*;

macro_rules! spec {
    ($func:ident, $name:literal, [$($p:expr),*], $result:expr) => {
        FuncSpec { func: Func::$func, name: $name, params: &[$($p),*], variadic: false, result: $result, may_return_null: false, optional: 0, faults: false }
    };
    // A calendar function: a timestamp, then an optional time zone.
    (zoned $func:ident, $name:literal, [$($p:expr),*], $result:expr) => {
        FuncSpec { func: Func::$func, name: $name, params: &[$($p,)* Literal(Zone)], variadic: false, result: $result, may_return_null: false, optional: 1, faults: false }
    };
}

/// A function whose evaluation can raise the fault flag, with `optional` trailing parameters.
macro_rules! faulting {
    ($func:ident, $name:literal, [$($p:expr),*], $result:expr, $optional:expr) => {
        FuncSpec { func: Func::$func, name: $name, params: &[$($p),*], variadic: false, result: $result, may_return_null: false, optional: $optional, faults: true }
    };
}

pub static FUNCTIONS: &[FuncSpec] = &[
    spec!(Lower, "lower", [Value(String)], Some(String)),
    spec!(Upper, "upper", [Value(String)], Some(String)),
    spec!(CharLength, "char_length", [Value(String)], Some(I64)),
    spec!(CharLength, "length", [Value(String)], Some(I64)),
    spec!(Trim, "trim", [Value(String)], Some(String)),
    FuncSpec {
        func: Func::Concat,
        name: "concat",
        params: &[Value(String)],
        variadic: true,
        result: Some(String),
        may_return_null: false,
        optional: 0,
        faults: false,
    },
    spec!(
        Contains,
        "contains",
        [Value(String), Value(String)],
        Some(Bool)
    ),
    spec!(
        StartsWith,
        "starts_with",
        [Value(String), Value(String)],
        Some(Bool)
    ),
    spec!(
        EndsWith,
        "ends_with",
        [Value(String), Value(String)],
        Some(Bool)
    ),
    FuncSpec {
        func: Func::SplitIndex,
        name: "split_index",
        params: &[Value(String), Value(String), Value(I64)],
        variadic: false,
        result: Some(String),
        may_return_null: true,
        optional: 0,
        faults: false,
    },
    FuncSpec {
        func: Func::RegexpExtract,
        name: "regexp_extract",
        params: &[Value(String), Literal(Regex), Value(I64)],
        variadic: false,
        result: Some(String),
        may_return_null: true,
        optional: 0,
        faults: false,
    },
    spec!(
        RegexpMatches,
        "regexp_matches",
        [Value(String), Literal(Regex)],
        Some(Bool)
    ),
    spec!(
        CountChar,
        "count_char",
        [Value(String), Literal(Char)],
        Some(I64)
    ),
    spec!(
        Substring,
        "substring",
        [Value(String), Value(I64), Value(I64)],
        Some(String)
    ),
    spec!(zoned Hour, "hour", [Value(Timestamp)], Some(I64)),
    spec!(zoned Minute, "minute", [Value(Timestamp)], Some(I64)),
    spec!(zoned Second, "second", [Value(Timestamp)], Some(I64)),
    spec!(zoned DayOfMonth, "day_of_month", [Value(Timestamp)], Some(I64)),
    spec!(zoned DayOfMonth, "day", [Value(Timestamp)], Some(I64)),
    spec!(zoned Month, "month", [Value(Timestamp)], Some(I64)),
    spec!(zoned Year, "year", [Value(Timestamp)], Some(I64)),
    spec!(zoned DayOfWeek, "day_of_week", [Value(Timestamp)], Some(I64)),
    spec!(
        zoned DateFormat,
        "date_format",
        [Value(Timestamp), Literal(DatePattern)],
        Some(String)
    ),
    FuncSpec {
        func: Func::Coalesce,
        name: "coalesce",
        params: &[Numeric],
        variadic: true,
        result: None,
        may_return_null: false,
        optional: 0,
        faults: false,
    },
    FuncSpec {
        func: Func::Abs,
        name: "abs",
        params: &[Numeric],
        variadic: false,
        result: None,
        may_return_null: false,
        optional: 0,
        faults: false,
    },
    // `round(x)` / `round(x, digits)`: an i64 rounded to tens (negative digits) can overflow.
    faulting!(Round, "round", [Numeric, Value(I64)], None, 1),
    spec!(Floor, "floor", [Numeric], None),
    spec!(Ceil, "ceil", [Numeric], None),
    spec!(Ceil, "ceiling", [Numeric], None),
    faulting!(Sqrt, "sqrt", [Value(F64)], Some(F64), 0),
    faulting!(Power, "power", [Value(F64), Value(F64)], Some(F64), 0),
    faulting!(Power, "pow", [Value(F64), Value(F64)], Some(F64), 0),
    faulting!(Ln, "ln", [Value(F64)], Some(F64), 0),
    faulting!(Exp, "exp", [Value(F64)], Some(F64), 0),
    FuncSpec {
        func: Func::Greatest,
        name: "greatest",
        params: &[Any],
        variadic: true,
        result: None,
        may_return_null: false,
        optional: 0,
        faults: false,
    },
    FuncSpec {
        func: Func::Least,
        name: "least",
        params: &[Any],
        variadic: true,
        result: None,
        may_return_null: false,
        optional: 0,
        faults: false,
    },
    FuncSpec {
        func: Func::NullIf,
        name: "nullif",
        params: &[Any, Any],
        variadic: false,
        result: None,
        may_return_null: true,
        optional: 0,
        faults: false,
    },
    spec!(
        Replace,
        "replace",
        [Value(String), Value(String), Value(String)],
        Some(String)
    ),
    faulting!(
        Lpad,
        "lpad",
        [Value(String), Value(I64), Value(String)],
        Some(String),
        1
    ),
    faulting!(
        Rpad,
        "rpad",
        [Value(String), Value(I64), Value(String)],
        Some(String),
        1
    ),
    spec!(Md5, "md5", [Value(String)], Some(String)),
    spec!(Sha256, "sha256", [Value(String)], Some(String)),
    FuncSpec {
        func: Func::Like,
        name: "like",
        params: &[Value(String), Literal(LikePattern), Literal(Char)],
        variadic: false,
        result: Some(Bool),
        may_return_null: false,
        optional: 1,
        faults: false,
    },
    faulting!(
        DateTrunc,
        "date_trunc",
        [Literal(TimeUnit), Value(Timestamp), Literal(Zone)],
        Some(Timestamp),
        1
    ),
    spec!(
        zoned Extract,
        "extract",
        [Literal(TimeUnit), Value(Timestamp)],
        Some(I64)
    ),
    spec!(
        zoned Extract,
        "date_part",
        [Literal(TimeUnit), Value(Timestamp)],
        Some(I64)
    ),
    FuncSpec {
        func: Func::ToTimestamp,
        name: "to_timestamp",
        params: &[Value(String), Literal(DatePattern)],
        variadic: false,
        result: Some(Timestamp),
        may_return_null: true,
        optional: 0,
        faults: false,
    },
    faulting!(
        FromUnixtime,
        "from_unixtime",
        [Value(I64)],
        Some(Timestamp),
        0
    ),
    spec!(
        UnixTimestamp,
        "unix_timestamp",
        [Value(Timestamp)],
        Some(I64)
    ),
    // Processing time: the wall clock when evaluated. `current_timestamp` may go without `()`.
    spec!(Now, "now", [], Some(Timestamp)),
    spec!(Now, "current_timestamp", [], Some(Timestamp)),
];

/// The table row of `func` (its first name, for functions with aliases).
pub fn spec_of(func: Func) -> &'static FuncSpec {
    FUNCTIONS
        .iter()
        .find(|f| f.func == func)
        .unwrap_or(&FUNCTIONS[0])
}

pub fn lookup(name: &str) -> Option<&'static FuncSpec> {
    let lower = name.to_ascii_lowercase();
    FUNCTIONS.iter().find(|f| f.name == lower)
}

/// An aggregate function, usable only inside `aggregate { ... }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggFunc {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    FirstValue,
    LastValue,
    /// A Rust `weir::Accumulator` declared by the embedding (`AggItem::udf` holds its path).
    Udf,
}

impl AggFunc {
    pub const NAMES: [&'static str; 7] = [
        "count",
        "sum",
        "min",
        "max",
        "avg",
        "first_value",
        "last_value",
    ];

    pub fn from_name(name: &str) -> Option<AggFunc> {
        Some(match name.to_ascii_lowercase().as_str() {
            "count" => AggFunc::Count,
            "sum" => AggFunc::Sum,
            "min" => AggFunc::Min,
            "max" => AggFunc::Max,
            "avg" => AggFunc::Avg,
            "first_value" => AggFunc::FirstValue,
            "last_value" => AggFunc::LastValue,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Count => "count",
            AggFunc::Sum => "sum",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Avg => "avg",
            AggFunc::FirstValue => "first_value",
            AggFunc::LastValue => "last_value",
            AggFunc::Udf => "a Rust aggregate",
        }
    }
}

/// The units of `date_trunc` and `extract` as written (SQL's names, singular or plural), with
/// the runtime's `TimeUnit` variant each stands for.
pub static TIME_UNITS: &[(&str, &str)] = &[
    ("millisecond", "Millisecond"),
    ("milliseconds", "Millisecond"),
    ("second", "Second"),
    ("seconds", "Second"),
    ("minute", "Minute"),
    ("minutes", "Minute"),
    ("hour", "Hour"),
    ("hours", "Hour"),
    ("day", "Day"),
    ("days", "Day"),
    ("week", "Week"),
    ("weeks", "Week"),
    ("month", "Month"),
    ("months", "Month"),
    ("quarter", "Quarter"),
    ("quarters", "Quarter"),
    ("year", "Year"),
    ("years", "Year"),
    ("dow", "DayOfWeek"),
    ("doy", "DayOfYear"),
];

/// The units `date_trunc` takes, for hints.
pub const TRUNC_UNITS: &str = "millisecond, second, minute, hour, day, week, month, quarter, year";

/// The runtime `TimeUnit` variant a unit name stands for (case-insensitive).
pub fn time_unit(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    TIME_UNITS
        .iter()
        .find(|(n, _)| *n == lower)
        .map(|(_, v)| *v)
}

/// Checks a time zone name against the IANA database bundled with jiff (the same copy the
/// runtime's `tz` feature compiles in, so what passes here exists in every binary).
pub fn check_zone(name: &str) -> Result<(), std::string::String> {
    jiff::tz::TimeZone::get(name)
        .map(|_| ())
        .map_err(|_| format!("unknown time zone `{name}`"))
}

/// Every zone name of the bundled database, for "did you mean".
pub fn zone_names() -> Vec<std::string::String> {
    jiff::tz::db()
        .available()
        .map(|n| n.as_str().to_string())
        .collect()
}

/// Checks a date pattern at compile time with the same rules as the runtime's `DatePattern`:
/// letters must be one of the supported fields; text in single quotes is literal.
pub fn check_date_pattern(pattern: &str) -> Result<(), std::string::String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            match chars[i + 1..].iter().position(|&q| q == '\'') {
                Some(end) => i += end + 2,
                None => return Err("unterminated quote in date pattern".into()),
            }
            continue;
        }
        if c.is_ascii_alphabetic() {
            let run = chars[i..].iter().take_while(|&&d| d == c).count();
            let ok = matches!(
                (c, run),
                ('y', 4)
                    | ('y', 2)
                    | ('M', 2)
                    | ('d', 2)
                    | ('H', 2)
                    | ('m', 2)
                    | ('s', 2)
                    | ('S', 3)
            );
            if !ok {
                let text: std::string::String = std::iter::repeat_n(c, run).collect();
                return Err(format!(
                    "unsupported pattern letters `{text}`; use yyyy, yy, MM, dd, HH, mm, ss, SSS, and quote literal text ('T')"
                ));
            }
            i += run;
            continue;
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_patterns() {
        assert!(check_date_pattern("yyyy-MM-dd HH:mm:ss.SSS").is_ok());
        assert!(check_date_pattern("yyyy-MM-dd'T'HH").is_ok());
        assert!(check_date_pattern("yyyy-MM-dd QQ").is_err());
        assert!(check_date_pattern("'open").is_err());
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup("LOWER").map(|f| f.func), Some(Func::Lower));
        assert!(lookup("nope").is_none());
    }
}
