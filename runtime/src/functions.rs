//! Scalar functions called from generated code.
//!
//! SQL semantics throughout: where SQL yields NULL the function returns `None`, and nothing
//! here panics on any input (out-of-range positions clamp, arithmetic overflow and division by
//! zero give `None`). Null *arguments* are handled by the generated code before calling (a
//! function with a null argument is null), so the parameters here are never optional unless
//! the SQL function itself treats a missing argument specially (e.g. `SUBSTRING` without
//! `FOR`).
//!
//! Timestamps are `i64` milliseconds since the Unix epoch, UTC. String positions and lengths
//! count `char`s (Unicode scalar values), not bytes.

use crate::formats::time::{
    civil_from_days, civil_from_ms, days_from_civil, days_in_month, MS_PER_DAY,
};

/// The regular expression type of compiled patterns (generated code names it through here, so
/// generated crates need no direct dependency on `regex`). Feature `regex`, enabled for
/// pipelines that match patterns.
#[cfg(feature = "regex")]
pub use regex::Regex;

/// A time zone of the IANA database (feature `tz`, enabled for pipelines that name one).
#[cfg(feature = "tz")]
pub use crate::zone::Zone;

/// A timestamp in the canonical text form `yyyy-MM-dd HH:mm:ss.SSS` (for casts to string).
pub fn timestamp_to_string(ts: i64) -> String {
    let mut out = String::with_capacity(23);
    crate::formats::time::format_timestamp(ts, &mut out);
    out
}

/// `a[i]`: element `i` of an array, counted from 1 (as in SQL); `None` out of range.
#[inline]
pub fn element<T>(array: &[T], index: i64) -> Option<&T> {
    let i = usize::try_from(index.checked_sub(1)?).ok()?;
    array.get(i)
}

/// `LOWER(s)`: Unicode lowercase.
pub fn lower(s: &str) -> String {
    s.to_lowercase()
}

/// `UPPER(s)`: Unicode uppercase.
pub fn upper(s: &str) -> String {
    s.to_uppercase()
}

/// `CHAR_LENGTH(s)`: the length in characters.
pub fn char_length(s: &str) -> i64 {
    s.chars().count() as i64
}

/// Whether `needle` occurs in `s` (an empty needle always does).
pub fn contains(s: &str, needle: &str) -> bool {
    s.contains(needle)
}

/// Whether `s` starts with `p`.
pub fn starts_with(s: &str, p: &str) -> bool {
    s.starts_with(p)
}

/// Whether `s` ends with `p`.
pub fn ends_with(s: &str, p: &str) -> bool {
    s.ends_with(p)
}

/// `CONCAT(a, b, ...)` / `a || b`: the parts joined with nothing in between.
pub fn concat(parts: &[&str]) -> String {
    parts.concat()
}

/// Flink's `SPLIT_INDEX(s, delimiter, index)`: splits `s` on every occurrence of `delimiter`
/// (keeping empty pieces) and returns piece `index`, counted from 0.
///
/// `None` when `index` is negative or past the last piece, when `delimiter` is empty, and when
/// `s` is empty (which, as in Flink, has no pieces at all).
pub fn split_index(s: &str, delimiter: &str, index: i64) -> Option<String> {
    if index < 0 || delimiter.is_empty() || s.is_empty() {
        return None;
    }
    let index = usize::try_from(index).ok()?;
    s.split(delimiter).nth(index).map(str::to_owned)
}

/// `REGEXP_EXTRACT(s, regex, group)`: the text of capture group `group` (0 = the whole match)
/// in the first match of `re` in `s`.
///
/// `None` when there is no match, when `group` is negative or larger than the number of groups,
/// or when the group did not take part in the match.
#[cfg(feature = "regex")]
pub fn regexp_extract(s: &str, re: &regex::Regex, group: i64) -> Option<String> {
    let group = usize::try_from(group).ok()?;
    if group >= re.captures_len() {
        return None;
    }
    if group == 0 {
        return re.find(s).map(|m| m.as_str().to_owned());
    }
    re.captures(s)?.get(group).map(|m| m.as_str().to_owned())
}

/// `REGEXP(s, regex)` (Flink): whether `re` matches anywhere in `s`. Anchor the pattern
/// (`^...$`) for a whole-string match.
#[cfg(feature = "regex")]
pub fn regexp_matches(s: &str, re: &regex::Regex) -> bool {
    re.is_match(s)
}

/// How many times the character `c` occurs in `s`.
pub fn count_char(s: &str, c: char) -> i64 {
    if c.is_ascii() {
        let byte = c as u8;
        s.bytes().filter(|&b| b == byte).count() as i64
    } else {
        s.chars().filter(|&x| x == c).count() as i64
    }
}

/// `SUBSTRING(s FROM start [FOR len])`, standard SQL semantics with 1-based character
/// positions: the characters at positions `start .. start + len` that exist in `s`.
///
/// Positions before the first character clamp, so `SUBSTRING('hello' FROM 0 FOR 3)` is `he`
/// and `FROM -5 FOR 3` is empty; positions past the end give an empty string. Without `len`
/// the result runs to the end. A negative `len` (an error in standard SQL) gives an empty
/// string.
pub fn substring(s: &str, start: i64, len: Option<i64>) -> String {
    // Work in i128 so that start + len cannot overflow.
    let from = i128::from(start).max(1);
    let to = match len {
        Some(len) if len < 0 => return String::new(),
        Some(len) => i128::from(start) + i128::from(len), // exclusive
        None => i128::MAX,
    };
    if to <= from {
        return String::new();
    }
    let skip = usize::try_from(from - 1).unwrap_or(usize::MAX);
    let take = usize::try_from(to - from).unwrap_or(usize::MAX);
    let Some((begin, _)) = s.char_indices().nth(skip) else {
        return String::new();
    };
    let end = s[begin..]
        .char_indices()
        .nth(take)
        .map_or(s.len(), |(i, _)| begin + i);
    s[begin..end].to_owned()
}

/// `TRIM(s)`: removes leading and trailing spaces (U+0020 only, as SQL's default `TRIM(BOTH ' '
/// FROM s)`; tabs and newlines are kept).
pub fn trim(s: &str) -> String {
    s.trim_matches(' ').to_owned()
}

/// `HOUR(ts)`: 0..=23 (UTC).
pub fn hour(ts: i64) -> i64 {
    i64::from(civil_from_ms(ts).hour)
}

/// `MINUTE(ts)`: 0..=59.
pub fn minute(ts: i64) -> i64 {
    i64::from(civil_from_ms(ts).minute)
}

/// `SECOND(ts)`: 0..=59.
pub fn second(ts: i64) -> i64 {
    i64::from(civil_from_ms(ts).second)
}

/// `DAYOFMONTH(ts)`: 1..=31.
pub fn day_of_month(ts: i64) -> i64 {
    i64::from(civil_from_ms(ts).day)
}

/// `MONTH(ts)`: 1..=12.
pub fn month(ts: i64) -> i64 {
    i64::from(civil_from_ms(ts).month)
}

/// `YEAR(ts)`.
pub fn year(ts: i64) -> i64 {
    civil_from_ms(ts).year
}

/// `DAYOFWEEK(ts)`: 1 = Sunday, 2 = Monday, ..., 7 = Saturday (as SQL).
pub fn day_of_week(ts: i64) -> i64 {
    let days = ts.div_euclid(MS_PER_DAY);
    // 1970-01-01 was a Thursday (Sunday-based index 4).
    (days + 4).rem_euclid(7) + 1
}

/// One numeric field of a [`DatePattern`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DateField {
    /// `y`, `yyy`, `yyyy`, ...: the year, zero-padded to the letter count.
    Year,
    /// `yy`: the last two digits of the year.
    TwoDigitYear,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    /// `S` .. `SSSSSSSSS`: fraction of a second with that many digits (`SSS` = milliseconds).
    Fraction,
}

/// A piece of a [`DatePattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum DateItem {
    Literal(String),
    Field { field: DateField, width: usize },
}

/// A parsed `DATE_FORMAT` pattern: parse once (at startup or at compile time), use per record.
///
/// Supported letters (Java `DateTimeFormatter` style, as Flink uses): `yyyy` (year), `yy`
/// (two-digit year), `MM`/`M` (month), `dd`/`d` (day), `HH`/`H` (hour 0-23), `mm`/`m`
/// (minute), `ss`/`s` (second), `SSS` (milliseconds; `S`..`SSSSSSSSS` give that many fraction
/// digits). A doubled letter pads to two digits, a single one does not. Text in single quotes
/// is copied literally (`'T'`; `''` is a quote), as is any character that is not an ASCII
/// letter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatePattern {
    items: Vec<DateItem>,
    /// The pattern as written, for messages.
    text: String,
}

impl DatePattern {
    /// Parses a pattern. Unknown or unsupported letters are an error naming them, e.g.
    /// ``unsupported letter `E` in date pattern `EEE yyyy` ``.
    pub fn parse(pattern: &str) -> Result<DatePattern, String> {
        let mut items: Vec<DateItem> = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    literal.push('\'');
                    continue;
                }
                // Quoted text up to the next lone quote; `''` inside is one quote.
                loop {
                    match chars.next() {
                        None => {
                            return Err(format!("unterminated quote in date pattern `{pattern}`"))
                        }
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        Some('\'') => break,
                        Some(q) => literal.push(q),
                    }
                }
                continue;
            }
            if !c.is_ascii_alphabetic() {
                literal.push(c);
                continue;
            }
            let mut width = 1;
            while chars.peek() == Some(&c) {
                chars.next();
                width += 1;
            }
            let field = match (c, width) {
                ('y', 2) => DateField::TwoDigitYear,
                ('y', 1..=9) => DateField::Year,
                ('M', 1..=2) => DateField::Month,
                ('d', 1..=2) => DateField::Day,
                ('H', 1..=2) => DateField::Hour,
                ('m', 1..=2) => DateField::Minute,
                ('s', 1..=2) => DateField::Second,
                ('S', 1..=9) => DateField::Fraction,
                ('y' | 'M' | 'd' | 'H' | 'm' | 's' | 'S', _) => {
                    return Err(format!(
                        "unsupported field `{}` in date pattern `{pattern}` (too many letters)",
                        c.to_string().repeat(width)
                    ))
                }
                _ => {
                    return Err(format!(
                        "unsupported letter `{c}` in date pattern `{pattern}` (supported: \
                         yyyy, yy, MM, dd, HH, mm, ss, SSS; quote literal text like 'T')"
                    ))
                }
            };
            if !literal.is_empty() {
                items.push(DateItem::Literal(std::mem::take(&mut literal)));
            }
            items.push(DateItem::Field { field, width });
        }
        if !literal.is_empty() {
            items.push(DateItem::Literal(literal));
        }
        Ok(DatePattern {
            items,
            text: pattern.to_string(),
        })
    }
}

/// Appends `v` zero-padded to `width` digits (a `-` sign first for negative values).
fn push_padded(out: &mut String, v: i64, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(v.unsigned_abs());
    if v < 0 {
        out.push('-');
    }
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// `DATE_FORMAT(ts, pattern)`: formats a timestamp (UTC) with a parsed [`DatePattern`].
pub fn date_format(ts: i64, pattern: &DatePattern) -> String {
    let c = civil_from_ms(ts);
    let mut out = String::with_capacity(24);
    for item in &pattern.items {
        match item {
            DateItem::Literal(text) => out.push_str(text),
            DateItem::Field { field, width } => {
                let width = *width;
                match field {
                    DateField::Year => push_padded(&mut out, c.year, width),
                    DateField::TwoDigitYear => push_padded(&mut out, c.year.rem_euclid(100), 2),
                    DateField::Month => push_padded(&mut out, i64::from(c.month), width),
                    DateField::Day => push_padded(&mut out, i64::from(c.day), width),
                    DateField::Hour => push_padded(&mut out, i64::from(c.hour), width),
                    DateField::Minute => push_padded(&mut out, i64::from(c.minute), width),
                    DateField::Second => push_padded(&mut out, i64::from(c.second), width),
                    DateField::Fraction => {
                        // Milliseconds as a 3-digit fraction, cut or zero-extended to `width`.
                        let mut frac = [b'0'; 9];
                        frac[0] = b'0' + (c.millis / 100) as u8;
                        frac[1] = b'0' + (c.millis / 10 % 10) as u8;
                        frac[2] = b'0' + (c.millis % 10) as u8;
                        out.extend(frac[..width.min(9)].iter().map(|&b| char::from(b)));
                    }
                }
            }
        }
    }
    out
}

/// Aligns `ts` down to a multiple of `unit_ms` counted from the epoch (a window start):
/// `ts - ts.rem_euclid(unit_ms)`, so negative timestamps align too (`floor_to(-1, 1000) ==
/// Some(-1000)`). `None` when that multiple is below `i64::MIN` (only for `ts` within
/// `unit_ms` of `i64::MIN`, far outside every range of times a pipeline accepts): a window is
/// never shifted to make it fit. A non-positive unit returns `ts` unchanged.
#[inline]
pub fn floor_to(ts: i64, unit_ms: i64) -> Option<i64> {
    if unit_ms <= 0 {
        return Some(ts);
    }
    ts.checked_sub(ts.rem_euclid(unit_ms))
}

/// Integer division with SQL semantics (truncates toward zero): `None` for division by zero.
/// `i64::MIN / -1`, the one quotient outside the range, is an integer overflow like any other
/// (the record goes to the dead letters), not a null.
pub fn checked_div(a: i64, b: i64, expr: &'static str) -> Option<i64> {
    if b == 0 {
        return None;
    }
    Some(crate::overflow::div(a, b, expr))
}

/// Remainder with SQL semantics (the sign follows the dividend): `None` for a zero divisor.
/// `i64::MIN % -1` is `0`, as in mathematics.
pub fn checked_rem(a: i64, b: i64) -> Option<i64> {
    if b == -1 {
        return Some(0);
    }
    a.checked_rem(b)
}

/// `CAST(double AS BIGINT)`: truncates toward zero; `None` for NaN and for values outside the
/// `i64` range.
pub fn f64_to_i64(v: f64) -> Option<i64> {
    // 2^63 is exactly representable; i64::MAX is not (it rounds up to 2^63).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let t = v.trunc();
    if (-LIMIT..LIMIT).contains(&t) {
        Some(t as i64)
    } else {
        None
    }
}

/// `CAST(string AS BIGINT)`: trims surrounding whitespace, then parses a decimal integer
/// (optional sign); `None` when that fails or overflows.
pub fn parse_i64_opt(s: &str) -> Option<i64> {
    crate::formats::parse_i64(s.trim()).ok()
}

/// `CAST(string AS DOUBLE)`: trims surrounding whitespace, then parses a finite number; `None`
/// when that fails (also for `NaN`, `Infinity` and numbers beyond the range, as `cast(s as i64)`
/// is null for text beyond the `i64` range).
pub fn parse_f64_opt(s: &str) -> Option<f64> {
    crate::formats::parse_f64(s.trim()).ok()
}

// ---------------------------------------------------------------------------------------------
// Numbers. Domain errors raise the overflow flag with a reason (`crate::overflow`): the
// record is a dead letter, as for integer overflow, never a wrong number.

use crate::overflow::{raise, raise_domain};

/// `ROUND(x, n)` of a double: half away from zero at `n` decimal places (negative `n` rounds
/// to tens, hundreds, ...). Computed as `round(x * 10^n) / 10^n` (as DuckDB does): the input
/// when that leaves the `f64` range (`n` too large to matter), 0 when `10^-n` exceeds it.
pub fn round_f64(x: f64, n: i64) -> f64 {
    let digits = n.clamp(-400, 400) as i32;
    if digits >= 0 {
        let p = 10f64.powi(digits);
        let r = (x * p).round() / p;
        if r.is_finite() {
            r
        } else {
            x
        }
    } else {
        let p = 10f64.powi(-digits);
        let r = (x / p).round() * p;
        if r.is_nan() {
            0.0
        } else {
            r
        }
    }
}

/// `ROUND(x, n)` of an integer: `x` for `n >= 0`, else half away from zero to a multiple of
/// `10^-n`; a result outside `i64` raises the overflow flag.
pub fn round_i64(x: i64, n: i64, expr: &'static str) -> i64 {
    if n >= 0 {
        return x;
    }
    let Some(p) = 10i128.checked_pow(n.unsigned_abs().min(38) as u32) else {
        return 0;
    };
    let x = i128::from(x);
    let (q, r) = (x / p, x % p);
    let q = if 2 * r.abs() >= p { q + x.signum() } else { q };
    match i64::try_from(q * p) {
        Ok(v) => v,
        Err(_) => {
            raise(expr);
            0
        }
    }
}

/// `SQRT(x)`; a negative `x` is a domain error.
pub fn sqrt(x: f64, expr: &'static str) -> f64 {
    if x < 0.0 {
        raise_domain("square root of a negative number", expr);
        return 0.0;
    }
    x.sqrt()
}

/// `LN(x)`, the natural logarithm; `x <= 0` is a domain error.
pub fn ln(x: f64, expr: &'static str) -> f64 {
    if x <= 0.0 {
        raise_domain("logarithm of zero or a negative number", expr);
        return 0.0;
    }
    x.ln()
}

/// `EXP(x)`; a result beyond the `f64` range is a domain error.
pub fn exp(x: f64, expr: &'static str) -> f64 {
    let r = x.exp();
    if r.is_infinite() && x.is_finite() {
        raise_domain("exp out of the f64 range", expr);
        return 0.0;
    }
    r
}

/// `POWER(x, y)`: `x` to the power `y`. Zero to a negative power, a negative number to a
/// fractional power and a result beyond the `f64` range are domain errors.
pub fn power(x: f64, y: f64, expr: &'static str) -> f64 {
    let r = x.powf(y);
    if r.is_finite() || !x.is_finite() || !y.is_finite() {
        return r;
    }
    let what = if x == 0.0 && y < 0.0 {
        "zero raised to a negative power"
    } else if r.is_nan() {
        "a negative number raised to a fractional power"
    } else {
        "power out of the f64 range"
    };
    raise_domain(what, expr);
    0.0
}

/// `GREATEST(seed, ...)` (or `LEAST` with `least`) where `seed` is not null: the nulls among
/// `rest` are skipped, as PostgreSQL and DuckDB do.
pub fn extreme<T: PartialOrd, const N: usize>(seed: T, rest: [Option<T>; N], least: bool) -> T {
    let mut best = seed;
    for v in rest.into_iter().flatten() {
        if (least && v < best) || (!least && v > best) {
            best = v;
        }
    }
    best
}

/// `GREATEST` / `LEAST` of values that may all be null: null only when every one is.
pub fn extreme_opt<T: PartialOrd, const N: usize>(all: [Option<T>; N], least: bool) -> Option<T> {
    let mut best: Option<T> = None;
    for v in all.into_iter().flatten() {
        best = Some(match best {
            Some(b) if (least && v >= b) || (!least && v <= b) => b,
            _ => v,
        });
    }
    best
}

// ---------------------------------------------------------------------------------------------
// Strings

/// The longest string `lpad`/`rpad` build, in characters: a longer one is a domain error
/// (a typo in a length should not allocate gigabytes per record).
pub const MAX_PAD: i64 = 1 << 20;

/// `REPLACE(s, from, to)`: every occurrence of `from` replaced by `to`; an empty `from`
/// leaves `s` as it is (as SQL engines do).
pub fn replace(s: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return s.to_owned();
    }
    s.replace(from, to)
}

/// `LPAD(s, n, fill)` (`left`) or `RPAD`: `s` padded to `n` characters with `fill` repeated,
/// or cut to its first `n` characters when longer. A negative `n` gives an empty string; an
/// empty `fill` cannot pad, so `s` is only cut; `n` above [`MAX_PAD`] is a domain error.
pub fn pad(s: &str, n: i64, fill: &str, left: bool, expr: &'static str) -> String {
    if n > MAX_PAD {
        raise_domain("padding longer than 1048576 characters", expr);
        return String::new();
    }
    let n = n.max(0) as usize;
    let len = s.chars().count();
    if len >= n {
        return match s.char_indices().nth(n) {
            Some((end, _)) => s[..end].to_owned(),
            None => s.to_owned(),
        };
    }
    if fill.is_empty() {
        return s.to_owned();
    }
    let padding: String = fill.chars().cycle().take(n - len).collect();
    if left {
        padding + s
    } else {
        let mut out = s.to_owned();
        out.push_str(&padding);
        out
    }
}

/// `MD5(s)` of the UTF-8 bytes, as 32 lowercase hex digits.
pub fn md5(s: &str) -> String {
    use md5::Digest as _;
    format!("{:x}", md5::Md5::digest(s.as_bytes()))
}

/// `SHA256(s)` of the UTF-8 bytes, as 64 lowercase hex digits.
pub fn sha256(s: &str) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(s.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Time

/// A unit of `date_trunc` and `extract`, named as SQL names it (`'hour'`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeUnit {
    Millisecond,
    Second,
    Minute,
    Hour,
    Day,
    /// ISO weeks, starting on Monday.
    Week,
    Month,
    Quarter,
    Year,
    /// `extract` only: day of the week, 0 = Sunday .. 6 = Saturday (as PostgreSQL).
    DayOfWeek,
    /// `extract` only: day of the year, 1..=366.
    DayOfYear,
}

impl TimeUnit {
    pub fn from_name(name: &str) -> Option<TimeUnit> {
        Some(match name.to_ascii_lowercase().as_str() {
            "millisecond" | "milliseconds" => TimeUnit::Millisecond,
            "second" | "seconds" => TimeUnit::Second,
            "minute" | "minutes" => TimeUnit::Minute,
            "hour" | "hours" => TimeUnit::Hour,
            "day" | "days" => TimeUnit::Day,
            "week" | "weeks" => TimeUnit::Week,
            "month" | "months" => TimeUnit::Month,
            "quarter" | "quarters" => TimeUnit::Quarter,
            "year" | "years" => TimeUnit::Year,
            "dow" => TimeUnit::DayOfWeek,
            "doy" => TimeUnit::DayOfYear,
            _ => return None,
        })
    }
}

/// `DATE_TRUNC(unit, ts)` in UTC: the start of the unit that holds `ts`. A start before
/// `i64::MIN` milliseconds raises the overflow flag. (`dow`/`doy` are not truncation units;
/// the checker refuses them, and they leave `ts` unchanged here.)
pub fn date_trunc(unit: TimeUnit, ts: i64, expr: &'static str) -> i64 {
    let fixed = |ms: i64| floor_to(ts, ms);
    let c = civil_from_ms(ts);
    let month_start = |month: u32| days_from_civil(c.year, month, 1).checked_mul(MS_PER_DAY);
    let start = match unit {
        TimeUnit::Millisecond => Some(ts),
        TimeUnit::Second => fixed(1000),
        TimeUnit::Minute => fixed(60_000),
        TimeUnit::Hour => fixed(3_600_000),
        TimeUnit::Day => fixed(MS_PER_DAY),
        TimeUnit::Week => {
            // 1970-01-05 was a Monday: weeks are aligned to it.
            let days = ts.div_euclid(MS_PER_DAY);
            (days - (days - 4).rem_euclid(7)).checked_mul(MS_PER_DAY)
        }
        TimeUnit::Month => month_start(c.month),
        TimeUnit::Quarter => month_start((c.month - 1) / 3 * 3 + 1),
        TimeUnit::Year => month_start(1),
        TimeUnit::DayOfWeek | TimeUnit::DayOfYear => Some(ts),
    };
    match start {
        Some(v) => v,
        None => {
            raise(expr);
            0
        }
    }
}

/// `EXTRACT(unit FROM ts)` in UTC, as an integer. `second` is the whole seconds (0..=59),
/// `millisecond` the seconds and milliseconds in milliseconds (0..=59_999), `week` the ISO
/// week number, `dow` 0 = Sunday .. 6 = Saturday, `doy` 1..=366.
pub fn extract(unit: TimeUnit, ts: i64) -> i64 {
    let c = civil_from_ms(ts);
    let days = ts.div_euclid(MS_PER_DAY);
    match unit {
        TimeUnit::Millisecond => i64::from(c.second) * 1000 + i64::from(c.millis),
        TimeUnit::Second => i64::from(c.second),
        TimeUnit::Minute => i64::from(c.minute),
        TimeUnit::Hour => i64::from(c.hour),
        TimeUnit::Day => i64::from(c.day),
        TimeUnit::Month => i64::from(c.month),
        TimeUnit::Quarter => i64::from((c.month - 1) / 3 + 1),
        TimeUnit::Year => c.year,
        TimeUnit::DayOfWeek => (days + 4).rem_euclid(7),
        TimeUnit::DayOfYear => days - days_from_civil(c.year, 1, 1) + 1,
        TimeUnit::Week => {
            // The ISO week of a day is the week of its Thursday, counted in that Thursday's year.
            let thursday = days - (days - 4).rem_euclid(7) + 3;
            let (year, _, _) = civil_from_days(thursday);
            (thursday - days_from_civil(year, 1, 1)) / 7 + 1
        }
    }
}

/// `FROM_UNIXTIME(seconds)`: the timestamp `seconds` after the epoch; beyond the `i64`
/// milliseconds raises the overflow flag.
pub fn from_unixtime(seconds: i64, expr: &'static str) -> i64 {
    match seconds.checked_mul(1000) {
        Some(v) => v,
        None => {
            raise(expr);
            0
        }
    }
}

/// `UNIX_TIMESTAMP(ts)`: whole seconds since the epoch (rounded down).
pub fn unix_timestamp(ts: i64) -> i64 {
    ts.div_euclid(1000)
}

/// `NOW()` / `CURRENT_TIMESTAMP`: the wall clock when the expression is evaluated
/// (processing time, so a pipeline that uses it gives different output on every run).
pub fn now() -> i64 {
    let now = std::time::SystemTime::now();
    match now.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `TO_TIMESTAMP(text, pattern)`: reads `text` with the fields of a [`DatePattern`] (UTC);
/// null when the text does not fit the pattern, names no real date, or a date outside the
/// years 0000 to 9999 (where every timestamp read from text lies, as a source's do). Missing
/// fields take their smallest value (1970 for the year, January, the 1st, midnight).
pub fn to_timestamp(text: &str, pattern: &DatePattern) -> Option<i64> {
    pattern
        .read(text)
        .filter(|&ts| crate::formats::time::TimeRange::TIMESTAMPS.contains(ts))
}

impl DatePattern {
    /// The pattern as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Reads `text` written with this pattern (see [`to_timestamp`]).
    pub(crate) fn read(&self, text: &str) -> Option<i64> {
        let mut rest = text.as_bytes();
        let (mut year, mut month, mut day) = (1970i64, 1u32, 1u32);
        let (mut hour, mut minute, mut second, mut millis) = (0u32, 0u32, 0u32, 0u32);
        for item in &self.items {
            match item {
                DateItem::Literal(lit) => {
                    rest = rest.strip_prefix(lit.as_bytes())?;
                }
                DateItem::Field { field, width } => {
                    // A doubled letter (or more) reads exactly that many digits; a single one
                    // reads one or two (a year: one to nine).
                    let (min, max) = match (field, width) {
                        (DateField::Year, 1) => (1, 9),
                        (DateField::Fraction, w) => (*w, *w),
                        (_, 1) => (1, 2),
                        (_, w) => (*w, *w),
                    };
                    let n = rest
                        .iter()
                        .take(max)
                        .take_while(|b| b.is_ascii_digit())
                        .count();
                    if n < min {
                        return None;
                    }
                    let digits = std::str::from_utf8(&rest[..n]).ok()?;
                    let value: i64 = digits.parse().ok()?;
                    rest = &rest[n..];
                    let small = |v: i64| u32::try_from(v).ok();
                    match field {
                        DateField::Year => year = value,
                        DateField::TwoDigitYear => year = 2000 + value,
                        DateField::Month => month = small(value)?,
                        DateField::Day => day = small(value)?,
                        DateField::Hour => hour = small(value)?,
                        DateField::Minute => minute = small(value)?,
                        DateField::Second => second = small(value)?,
                        DateField::Fraction => {
                            // Milliseconds: the first three digits, zero-extended.
                            let scaled = match n {
                                1 => value * 100,
                                2 => value * 10,
                                _ => value / 10i64.pow(n as u32 - 3),
                            };
                            millis = small(scaled)?;
                        }
                    }
                }
            }
        }
        let valid = rest.is_empty()
            && (1..=12).contains(&month)
            && day >= 1
            && day <= days_in_month(year, month)
            && hour < 24
            && minute < 60
            && second < 60;
        if !valid {
            return None;
        }
        let ms_of_day = ((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second))
            * 1000
            + i64::from(millis);
        days_from_civil(year, month, day)
            .checked_mul(MS_PER_DAY)?
            .checked_add(ms_of_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::parse_timestamp;

    fn ts(s: &str) -> i64 {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn case_and_length() {
        assert_eq!(lower("HeLLo ÄÖ"), "hello äö");
        assert_eq!(upper("straße"), "STRASSE");
        assert_eq!(char_length(""), 0);
        assert_eq!(char_length("abc"), 3);
        assert_eq!(char_length("é中😀"), 3);
    }

    #[test]
    fn searching() {
        assert!(contains("auction", "tio"));
        assert!(contains("x", ""));
        assert!(!contains("auction", "TIO"));
        assert!(starts_with("auction", "auc"));
        assert!(!starts_with("auction", "uc"));
        assert!(ends_with("auction", "ion"));
        assert!(!ends_with("auction", "io"));
        assert_eq!(count_char("a,b,,c", ','), 3);
        assert_eq!(count_char("héé", 'é'), 2);
        assert_eq!(count_char("", 'x'), 0);
        assert_eq!(concat(&["a", "", "bc", "é"]), "abcé");
        assert_eq!(concat(&[]), "");
    }

    #[test]
    fn split_index_edges() {
        assert_eq!(
            split_index("Jack,John,Mary", ",", 0).as_deref(),
            Some("Jack")
        );
        assert_eq!(
            split_index("Jack,John,Mary", ",", 2).as_deref(),
            Some("Mary")
        );
        assert_eq!(split_index("Jack,John,Mary", ",", 3), None);
        assert_eq!(split_index("Jack,John,Mary", ",", -1), None);
        assert_eq!(split_index("Jack,John,Mary", "", 0), None);
        assert_eq!(split_index("a,,b", ",", 1).as_deref(), Some(""));
        assert_eq!(split_index("a,", ",", 1).as_deref(), Some(""));
        assert_eq!(split_index(",a", ",", 0).as_deref(), Some(""));
        assert_eq!(split_index("abc", ",", 0).as_deref(), Some("abc"));
        assert_eq!(split_index("", ",", 0), None);
        assert_eq!(split_index("a::b::c", "::", 2).as_deref(), Some("c"));
        assert_eq!(split_index("x", ",", i64::MAX), None);
    }

    #[test]
    #[cfg(feature = "regex")]
    fn regexp_extract_groups() {
        let re = regex::Regex::new(r"(\d+)-(\d+)(x)?").unwrap();
        assert_eq!(
            regexp_extract("ab 12-34 56-78", &re, 0).as_deref(),
            Some("12-34")
        );
        assert_eq!(
            regexp_extract("ab 12-34 56-78", &re, 1).as_deref(),
            Some("12")
        );
        assert_eq!(
            regexp_extract("ab 12-34 56-78", &re, 2).as_deref(),
            Some("34")
        );
        assert_eq!(
            regexp_extract("ab 12-34 56-78", &re, 3),
            None,
            "did not participate"
        );
        assert_eq!(regexp_extract("ab 12-34x", &re, 3).as_deref(), Some("x"));
        assert_eq!(regexp_extract("ab 12-34", &re, 4), None, "no such group");
        assert_eq!(regexp_extract("ab 12-34", &re, -1), None);
        assert_eq!(regexp_extract("no digits", &re, 0), None);
        assert_eq!(regexp_extract("no digits", &re, 1), None);
        let empty = regex::Regex::new("z*").unwrap();
        assert_eq!(regexp_extract("abc", &empty, 0).as_deref(), Some(""));
    }

    #[test]
    #[cfg(feature = "regex")]
    fn regexp_matches_anywhere() {
        let re = regex::Regex::new(r"^\d+$").unwrap();
        assert!(regexp_matches("123", &re));
        assert!(!regexp_matches("12a", &re));
        let re = regex::Regex::new("b+").unwrap();
        assert!(regexp_matches("abbc", &re));
        assert!(!regexp_matches("ac", &re));
    }

    #[test]
    fn substring_edges() {
        assert_eq!(substring("hello", 1, None), "hello");
        assert_eq!(substring("hello", 2, None), "ello");
        assert_eq!(substring("hello", 2, Some(3)), "ell");
        assert_eq!(substring("hello", 1, Some(1)), "h");
        assert_eq!(substring("hello", 5, Some(1)), "o");
        assert_eq!(substring("hello", 5, Some(10)), "o");
        assert_eq!(substring("hello", 6, None), "");
        assert_eq!(substring("hello", 100, Some(2)), "");
        assert_eq!(substring("hello", 0, Some(3)), "he");
        assert_eq!(substring("hello", -5, Some(3)), "");
        assert_eq!(substring("hello", -1, None), "hello");
        assert_eq!(substring("hello", 2, Some(0)), "");
        assert_eq!(substring("hello", 2, Some(-1)), "");
        assert_eq!(substring("", 1, Some(3)), "");
        assert_eq!(substring("héllo😀!", 2, Some(5)), "éllo😀");
        assert_eq!(substring("héllo😀!", 6, None), "😀!");
        assert_eq!(substring("héllo😀!", 6, Some(1)), "😀");
        assert_eq!(substring("hello", i64::MIN, Some(i64::MAX)), "");
        assert_eq!(substring("hello", i64::MAX, Some(i64::MAX)), "");
        assert_eq!(substring("hello", i64::MIN, None), "hello");
        assert_eq!(substring("hello", 3, Some(i64::MAX)), "llo");
    }

    #[test]
    fn trim_spaces_only() {
        assert_eq!(trim("  a b  "), "a b");
        assert_eq!(trim("   "), "");
        assert_eq!(trim("\ta\n"), "\ta\n");
    }

    #[test]
    fn time_parts() {
        let t = ts("2015-07-15 12:34:56.789");
        assert_eq!(
            (
                year(t),
                month(t),
                day_of_month(t),
                hour(t),
                minute(t),
                second(t)
            ),
            (2015, 7, 15, 12, 34, 56)
        );
        let t = -1; // 1969-12-31 23:59:59.999
        assert_eq!(
            (
                year(t),
                month(t),
                day_of_month(t),
                hour(t),
                minute(t),
                second(t)
            ),
            (1969, 12, 31, 23, 59, 59)
        );
        assert_eq!(day_of_month(ts("2000-02-29")), 29);
        assert_eq!(month(ts("1900-03-01")), 3);
    }

    #[test]
    fn day_of_week_known_dates() {
        assert_eq!(day_of_week(0), 5, "1970-01-01 was a Thursday");
        assert_eq!(day_of_week(-1), 4, "1969-12-31 was a Wednesday");
        assert_eq!(day_of_week(ts("2015-07-15 23:59:59")), 4, "Wednesday");
        assert_eq!(day_of_week(ts("2000-01-01")), 7, "Saturday");
        assert_eq!(day_of_week(ts("2024-03-10")), 1, "Sunday");
        assert_eq!(day_of_week(ts("2024-03-11")), 2, "Monday");
        assert_eq!(day_of_week(ts("1900-01-01")), 2, "Monday");
        assert_eq!(day_of_week(ts("1969-07-20")), 1, "Sunday");
        assert!((1..=7).contains(&day_of_week(i64::MIN)));
    }

    fn fmt(t: i64, pattern: &str) -> String {
        date_format(t, &DatePattern::parse(pattern).unwrap())
    }

    #[test]
    fn date_format_patterns() {
        let t = ts("2015-07-05 08:04:09.007");
        assert_eq!(fmt(t, "yyyy-MM-dd HH:mm:ss.SSS"), "2015-07-05 08:04:09.007");
        assert_eq!(fmt(t, "yyyy-MM-dd HH:mm"), "2015-07-05 08:04");
        assert_eq!(fmt(t, "yyyyMMdd"), "20150705");
        assert_eq!(fmt(t, "yy/M/d H:m:s"), "15/7/5 8:4:9");
        assert_eq!(fmt(t, "yyyy-MM-dd'T'HH:mm:ss'Z'"), "2015-07-05T08:04:09Z");
        assert_eq!(fmt(t, "'year' yyyy, 'it''s' HH'h'"), "year 2015, it's 08h");
        assert_eq!(fmt(t, "HH''mm"), "08'04");
        assert_eq!(fmt(t, "S SS SSSSSS"), "0 00 007000");
        assert_eq!(fmt(ts("2015-12-31 23:59:59.999"), "ss.SSS"), "59.999");
        assert_eq!(fmt(t, ""), "");
        assert_eq!(fmt(t, "--/é"), "--/é");
        assert_eq!(
            fmt(-1, "yyyy-MM-dd HH:mm:ss.SSS"),
            "1969-12-31 23:59:59.999"
        );
        assert_eq!(fmt(ts("0005-01-01"), "yyyy yy y"), "0005 05 5");
        assert_eq!(fmt(i64::MIN, "yy"), fmt(i64::MIN, "yy").trim());
    }

    #[test]
    fn date_pattern_errors_name_the_letter() {
        let e = DatePattern::parse("EEE yyyy").unwrap_err();
        assert!(e.contains("`E`"), "{e}");
        let e = DatePattern::parse("yyyy-MM-dd hh:mm").unwrap_err();
        assert!(e.contains("`h`"), "{e}");
        let e = DatePattern::parse("MMM").unwrap_err();
        assert!(e.contains("`MMM`"), "{e}");
        assert!(DatePattern::parse("yyyy 'T")
            .unwrap_err()
            .contains("unterminated quote"));
        assert!(DatePattern::parse("SSSSSSSSSS").is_err());
    }

    #[test]
    fn floor_to_is_euclidean() {
        assert_eq!(floor_to(1999, 1000), Some(1000));
        assert_eq!(floor_to(2000, 1000), Some(2000));
        assert_eq!(floor_to(0, 1000), Some(0));
        assert_eq!(floor_to(-1, 1000), Some(-1000));
        assert_eq!(floor_to(-1000, 1000), Some(-1000));
        assert_eq!(floor_to(-1001, 1000), Some(-2000));
        assert_eq!(
            floor_to(ts("2015-07-15 12:34:56"), 3_600_000),
            Some(ts("2015-07-15 12:00:00"))
        );
        assert_eq!(floor_to(5, 0), Some(5));
        assert_eq!(floor_to(5, -10), Some(5));
        // Near the i64 extremes the start is exact or absent, never shifted.
        assert_eq!(floor_to(i64::MIN, 1000), None);
        assert_eq!(floor_to(i64::MIN + 807, 1000), None);
        assert_eq!(floor_to(i64::MIN + 808, 1000), Some(i64::MIN + 808));
        assert_eq!(floor_to(i64::MIN, 8), Some(i64::MIN));
        assert_eq!(floor_to(i64::MAX, 1000), Some(i64::MAX - 807));
        // At the ends of the input range, for every window size the checker allows.
        let (first, last) = (-62_167_219_200_000, 253_402_300_799_999);
        for size in [1, 7, 1000, 86_400_000, 315_569_520_000_000] {
            for t in [first, first + 1, -1, 0, last - 1, last] {
                let start = floor_to(t, size).unwrap();
                assert!(
                    start <= t && t - start < size && start % size == 0,
                    "{t} {size}"
                );
            }
        }
    }

    #[test]
    fn timestamp_functions_are_total() {
        // Computed timestamps are not bounded: every function gives a defined answer for every
        // i64 (proleptic Gregorian calendar), and none panics.
        let pattern = DatePattern::parse("yyyy-MM-dd HH:mm:ss.SSS yy").unwrap();
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let (h, m, s) = (hour(t), minute(t), second(t));
            assert!((0..24).contains(&h) && (0..60).contains(&m) && (0..60).contains(&s));
            assert!((1..=12).contains(&month(t)) && (1..=31).contains(&day_of_month(t)));
            assert!((1..=7).contains(&day_of_week(t)));
            let _ = (year(t), date_format(t, &pattern), timestamp_to_string(t));
        }
        assert_eq!(year(i64::MAX), 292_278_994);
        assert_eq!(year(i64::MIN), -292_275_055);
        assert_eq!(
            timestamp_to_string(i64::MAX),
            "+292278994-08-17 07:12:55.807"
        );
        assert_eq!(
            date_format(i64::MIN, &pattern),
            "-292275055-05-16 16:47:04.192 45"
        );
    }

    #[test]
    fn checked_arithmetic() {
        assert_eq!(checked_div(7, 2, "7 / 2"), Some(3));
        assert_eq!(checked_div(-7, 2, "-7 / 2"), Some(-3));
        assert_eq!(checked_div(7, 0, "7 / 0"), None);
        assert_eq!(crate::overflow::take().map(|r| r.expr), None);
        assert_eq!(checked_div(i64::MIN, 1, "m / 1"), Some(i64::MIN));
        checked_div(i64::MIN, -1, "m / -1");
        assert_eq!(crate::overflow::take().map(|r| r.expr), Some("m / -1"));
        assert_eq!(checked_rem(7, 3), Some(1));
        assert_eq!(checked_rem(-7, 3), Some(-1));
        assert_eq!(checked_rem(7, -3), Some(1));
        assert_eq!(checked_rem(7, 0), None);
        assert_eq!(checked_rem(i64::MIN, -1), Some(0));
    }

    #[test]
    fn casts() {
        assert_eq!(f64_to_i64(1.9), Some(1));
        assert_eq!(f64_to_i64(-1.9), Some(-1));
        assert_eq!(f64_to_i64(-0.0), Some(0));
        assert_eq!(f64_to_i64(f64::NAN), None);
        assert_eq!(f64_to_i64(f64::INFINITY), None);
        assert_eq!(f64_to_i64(-9_223_372_036_854_775_808.0), Some(i64::MIN));
        assert_eq!(f64_to_i64(9_223_372_036_854_775_808.0), None);
        assert_eq!(
            f64_to_i64(9_223_372_036_854_774_784.0),
            Some(9_223_372_036_854_774_784)
        );
        assert_eq!(f64_to_i64(-9_223_372_036_854_777_856.0), None);
        assert_eq!(parse_i64_opt(" 42 "), Some(42));
        assert_eq!(parse_i64_opt("-7"), Some(-7));
        assert_eq!(parse_i64_opt("4.2"), None);
        assert_eq!(parse_i64_opt(""), None);
        assert_eq!(parse_i64_opt("9223372036854775808"), None);
        assert_eq!(parse_f64_opt(" 4.5\t"), Some(4.5));
        assert_eq!(parse_f64_opt("1e3"), Some(1000.0));
        assert_eq!(parse_f64_opt("x"), None);
        // Text that is no finite number is null, as any text that is not a number.
        for text in ["NaN", "inf", "-Infinity", "1e400"] {
            assert_eq!(parse_f64_opt(text), None);
        }
    }

    #[test]
    fn fuzz_string_and_pattern_functions_never_panic() {
        let pieces = [
            "y", "M", "d", "H", "m", "s", "S", "'", "-", "é", "E", "T", " ", "😀",
        ];
        let mut x: u64 = 0xfeed_face_0bad_f00d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut p = String::new();
            for _ in 0..next() % 12 {
                p.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let ts = next() as i64;
            if let Ok(pattern) = DatePattern::parse(&p) {
                let _ = date_format(ts, &pattern);
            }
            let start = (next() % 21) as i64 - 10;
            let len = (next() % 23) as i64 - 11;
            let out = substring(&p, start, Some(len));
            assert!(p.contains(&out));
            let _ = substring(&p, start, None);
            let _ = split_index(&p, pieces[(next() % pieces.len() as u64) as usize], start);
            let _ = (
                floor_to(ts, start),
                checked_div(ts, start, "ts / start"),
                checked_rem(ts, start),
            );
            let _ = day_of_week(ts);
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(round_f64(2.5, 0), 3.0);
        assert_eq!(round_f64(-2.5, 0), -3.0);
        assert_eq!(round_f64(1.2345, 2), 1.23);
        assert_eq!(round_f64(-1.235, 1), -1.2);
        assert_eq!(round_f64(1250.0, -2), 1300.0);
        assert_eq!(round_f64(-1250.0, -2), -1300.0);
        assert_eq!(round_f64(1.5, 400), 1.5);
        assert_eq!(round_f64(123.0, -400), 0.0);
        assert_eq!(round_i64(1250, -2, "r"), 1300);
        assert_eq!(round_i64(-1249, -2, "r"), -1200);
        assert_eq!(round_i64(-1250, -2, "r"), -1300);
        assert_eq!(round_i64(7, 3, "r"), 7);
        assert_eq!(round_i64(i64::MAX, -30, "r"), 0);
        assert_eq!(crate::overflow::take(), None);
        assert_eq!(round_i64(i64::MAX, -1, "r"), 0);
        assert_eq!(crate::overflow::take().map(|f| f.expr), Some("r"));
    }

    #[test]
    fn domain_errors_raise_the_flag() {
        use crate::overflow::take;
        assert_eq!(sqrt(6.25, "e"), 2.5);
        assert_eq!(ln(1.0, "e"), 0.0);
        assert_eq!(exp(0.0, "e"), 1.0);
        assert_eq!(power(2.0, 10.0, "e"), 1024.0);
        assert_eq!(power(-8.0, 3.0, "e"), -512.0);
        assert_eq!(take(), None);
        type Case = (&'static str, fn() -> f64);
        let cases: [Case; 7] = [
            ("square root of a negative number", || sqrt(-1.0, "e")),
            ("logarithm of zero or a negative number", || ln(0.0, "e")),
            ("logarithm of zero or a negative number", || ln(-3.0, "e")),
            ("exp out of the f64 range", || exp(1000.0, "e")),
            ("power out of the f64 range", || power(10.0, 400.0, "e")),
            ("zero raised to a negative power", || power(0.0, -1.0, "e")),
            ("a negative number raised to a fractional power", || {
                power(-8.0, 0.5, "e")
            }),
        ];
        for (what, call) in cases {
            assert_eq!(call(), 0.0);
            let fault = take().map(|f| f.reason());
            assert_eq!(fault, Some(format!("{what} in `e`")));
        }
    }

    #[test]
    fn greatest_and_least_skip_nulls() {
        assert_eq!(extreme(3, [Some(7), None, Some(5)], false), 7);
        assert_eq!(extreme(3, [Some(7), None, Some(5)], true), 3);
        assert_eq!(extreme_opt([None, Some("b"), Some("a")], false), Some("b"));
        assert_eq!(extreme_opt([None, Some(2.5), Some(-1.0)], true), Some(-1.0));
        assert_eq!(extreme_opt::<i64, 2>([None, None], true), None);
    }

    #[test]
    fn replacing_and_padding() {
        assert_eq!(replace("a-b-c", "-", "+"), "a+b+c");
        assert_eq!(replace("abc", "", "x"), "abc");
        assert_eq!(replace("ééé", "é", "e"), "eee");
        assert_eq!(pad("hi", 5, "xy", true, "p"), "xyxhi");
        assert_eq!(pad("hi", 5, "xy", false, "p"), "hixyx");
        assert_eq!(pad("hello", 2, "x", true, "p"), "he");
        assert_eq!(pad("héllo", 2, "x", false, "p"), "hé");
        assert_eq!(pad("hi", 5, "", true, "p"), "hi");
        assert_eq!(pad("hi", -1, "x", true, "p"), "");
        assert_eq!(pad("7", 3, "0", true, "p"), "007");
        assert_eq!(crate::overflow::take(), None);
        assert_eq!(pad("7", i64::MAX, "0", true, "p"), "");
        assert!(crate::overflow::take().is_some());
    }

    #[test]
    fn digests_are_lowercase_hex() {
        assert_eq!(md5(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5("abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn truncating_and_extracting() {
        let t = ts("2024-05-15 13:45:30.250"); // a Wednesday
        let trunc = |u| timestamp_to_string(date_trunc(u, t, "t"));
        assert_eq!(trunc(TimeUnit::Second), "2024-05-15 13:45:30.000");
        assert_eq!(trunc(TimeUnit::Hour), "2024-05-15 13:00:00.000");
        assert_eq!(trunc(TimeUnit::Day), "2024-05-15 00:00:00.000");
        assert_eq!(trunc(TimeUnit::Week), "2024-05-13 00:00:00.000");
        assert_eq!(trunc(TimeUnit::Month), "2024-05-01 00:00:00.000");
        assert_eq!(trunc(TimeUnit::Quarter), "2024-04-01 00:00:00.000");
        assert_eq!(trunc(TimeUnit::Year), "2024-01-01 00:00:00.000");
        assert_eq!(
            timestamp_to_string(date_trunc(
                TimeUnit::Hour,
                ts("1969-12-31 23:59:59.999"),
                "t"
            )),
            "1969-12-31 23:00:00.000"
        );
        assert_eq!(extract(TimeUnit::Millisecond, t), 30_250);
        assert_eq!(extract(TimeUnit::Quarter, t), 2);
        assert_eq!(extract(TimeUnit::DayOfWeek, t), 3);
        assert_eq!(extract(TimeUnit::DayOfYear, t), 31 + 29 + 31 + 30 + 15);
        assert_eq!(extract(TimeUnit::Week, t), 20);
        // ISO weeks at year ends: 2021-01-03 is in week 53 of 2020; 2024-12-30 in week 1.
        assert_eq!(extract(TimeUnit::Week, ts("2021-01-03 00:00:00")), 53);
        assert_eq!(extract(TimeUnit::Week, ts("2024-12-30 00:00:00")), 1);
        assert_eq!(date_trunc(TimeUnit::Year, i64::MIN, "t"), 0);
        assert_eq!(crate::overflow::take().map(|f| f.expr), Some("t"));
    }

    #[test]
    fn epoch_seconds_and_reading_patterns() {
        assert_eq!(from_unixtime(1_436_918_400, "f"), ts("2015-07-15 00:00:00"));
        assert_eq!(unix_timestamp(ts("2015-07-15 00:00:00.999")), 1_436_918_400);
        assert_eq!(unix_timestamp(-1), -1);
        assert_eq!(crate::overflow::take(), None);
        from_unixtime(i64::MAX / 10, "f");
        assert!(crate::overflow::take().is_some());
        let p = DatePattern::parse("dd/MM/yyyy HH:mm:ss.SSS").unwrap();
        assert_eq!(
            to_timestamp("15/07/2015 01:02:03.456", &p),
            Some(ts("2015-07-15 01:02:03.456"))
        );
        assert_eq!(to_timestamp("31/02/2015 01:02:03.456", &p), None);
        assert_eq!(to_timestamp("15/07/2015 01:02:03", &p), None);
        assert_eq!(to_timestamp("15/07/2015 01:02:03.4567", &p), None);
        let p = DatePattern::parse("yyyyMMdd").unwrap();
        assert_eq!(
            to_timestamp("20240229", &p),
            Some(ts("2024-02-29 00:00:00"))
        );
        assert_eq!(to_timestamp("2023022", &p), None);
        // Past the year 9999: null, not a timestamp no sink can write as a date.
        let p = DatePattern::parse("y-MM-dd").unwrap();
        assert_eq!(
            to_timestamp("9999-12-31", &p),
            Some(ts("9999-12-31 00:00:00"))
        );
        assert_eq!(to_timestamp("12000-01-01", &p), None);
        assert_eq!(to_timestamp("200000000-01-01", &p), None);
        let p = DatePattern::parse("d.M.yy'T'H").unwrap();
        assert_eq!(
            to_timestamp("5.7.24T9", &p),
            Some(ts("2024-07-05 09:00:00"))
        );
        assert!(now() > ts("2024-01-01 00:00:00"));
    }
}
