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

use crate::formats::time::{civil_from_ms, MS_PER_DAY};

/// The regular expression type of compiled patterns (generated code names it through here, so
/// generated crates need no direct dependency on `regex`).
pub use regex::Regex;

/// A timestamp in the canonical text form `yyyy-MM-dd HH:mm:ss.SSS` (for casts to string).
pub fn timestamp_to_string(ts: i64) -> String {
    let mut out = String::with_capacity(23);
    crate::formats::time::format_timestamp(ts, &mut out);
    out
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
        Ok(DatePattern { items })
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

/// Integer division with SQL semantics (truncates toward zero): `None` for division by zero and
/// for the one overflowing case, `i64::MIN / -1`.
pub fn checked_div(a: i64, b: i64) -> Option<i64> {
    a.checked_div(b)
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
        assert_eq!(checked_div(7, 2), Some(3));
        assert_eq!(checked_div(-7, 2), Some(-3));
        assert_eq!(checked_div(7, 0), None);
        assert_eq!(checked_div(i64::MIN, -1), None);
        assert_eq!(checked_div(i64::MIN, 1), Some(i64::MIN));
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
                checked_div(ts, start),
                checked_rem(ts, start),
            );
            let _ = day_of_week(ts);
        }
    }
}
