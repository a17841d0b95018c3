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
}

/// An argument slot of a scalar function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// Any expression of this type.
    Value(Type),
    /// A number (i64 or f64); the result takes its type.
    Numeric,
    /// A string literal, checked at compile time (a regex, a date pattern, one character).
    Literal(LiteralKind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiteralKind {
    Regex,
    DatePattern,
    Char,
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
}

use LiteralKind::*;
use Param::*;
use Type::*;

macro_rules! spec {
    ($func:ident, $name:literal, [$($p:expr),*], $result:expr) => {
        FuncSpec { func: Func::$func, name: $name, params: &[$($p),*], variadic: false, result: $result, may_return_null: false }
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
    },
    FuncSpec {
        func: Func::RegexpExtract,
        name: "regexp_extract",
        params: &[Value(String), Literal(Regex), Value(I64)],
        variadic: false,
        result: Some(String),
        may_return_null: true,
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
    spec!(Hour, "hour", [Value(Timestamp)], Some(I64)),
    spec!(Minute, "minute", [Value(Timestamp)], Some(I64)),
    spec!(Second, "second", [Value(Timestamp)], Some(I64)),
    spec!(DayOfMonth, "day_of_month", [Value(Timestamp)], Some(I64)),
    spec!(DayOfMonth, "day", [Value(Timestamp)], Some(I64)),
    spec!(Month, "month", [Value(Timestamp)], Some(I64)),
    spec!(Year, "year", [Value(Timestamp)], Some(I64)),
    spec!(DayOfWeek, "day_of_week", [Value(Timestamp)], Some(I64)),
    spec!(
        DateFormat,
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
    },
    FuncSpec {
        func: Func::Abs,
        name: "abs",
        params: &[Numeric],
        variadic: false,
        result: None,
        may_return_null: false,
    },
];

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
