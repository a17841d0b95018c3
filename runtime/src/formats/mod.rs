//! Record formats: decoding and encoding of the line-oriented formats weir reads and writes.
//!
//! * [`json`]: JSON lines (one object per line). Decoding walks the top-level members of the
//!   object and hands each one to a callback as an unparsed [`json::JsonValue`] slice, so the
//!   generated decoder only converts the fields the pipeline actually uses (projection
//!   pushdown). Encoding helpers append to a byte buffer.
//! * [`csv`]: one record per line, RFC 4180 quoting within the line.
//! * [`time`]: timestamp text <-> `i64` milliseconds since the Unix epoch (UTC).
//! * `scan`: word-at-a-time searches for the bytes the writers escape or quote, and the CSV
//!   decoder's count of delimiters.
//!
//! This module also holds the text parsers shared by both formats (CSV cells are text; JSON
//! strings may carry numbers or timestamps as text) and the [`DecodeError`] that a record which
//! cannot be decoded carries to the dead-letter output.
//!
//! Nothing here panics on any input: malformed data always comes back as a [`DecodeError`].

#[cfg(feature = "avro")]
pub mod avro;
pub mod csv;
pub mod json;
pub mod scan;
pub mod time;

use std::fmt;

/// `bytes` as text if they are UTF-8: checked with SIMD (chosen at run time) and, only when
/// that fails, again by `std` for its precise error (where the first bad byte is).
#[inline]
pub fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => std::str::from_utf8(bytes),
    }
}

/// Why a record could not be decoded; goes to the dead-letter output.
///
/// `Display` prints the message only: it starts in lowercase and has no trailing period, e.g.
/// ``field `price`: expected an integer, found `"abc"` ``.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The human-readable reason.
    pub message: String,
}

impl DecodeError {
    /// An error with the given message.
    pub fn new(msg: impl Into<String>) -> Self {
        DecodeError {
            message: msg.into(),
        }
    }

    /// Prefixes the message with ``field `name`: `` to say which field failed. An error that
    /// names a field of a nested record or an element of an array already gets the path:
    /// ``field `payload.user.id`: ...``, ``field `items[2].sku`: ...``.
    pub fn in_field(self, field: &str) -> Self {
        let mut message = String::with_capacity(field.len() + 10 + self.message.len());
        message.push_str("field `");
        message.push_str(field);
        match self.message.strip_prefix("field `") {
            Some(inner) if inner.starts_with('[') => message.push_str(inner),
            Some(inner) => {
                message.push('.');
                message.push_str(inner);
            }
            None => {
                message.push_str("`: ");
                message.push_str(&self.message);
            }
        }
        DecodeError { message }
    }

    /// Says the error is in element `index` (1-based) of an array: ``field `[2]`: ...``, to
    /// which [`DecodeError::in_field`] prefixes the array's name.
    pub fn at_index(self, index: usize) -> Self {
        let path = format!("[{index}]");
        match self.message.strip_prefix("field `") {
            Some(inner) if inner.starts_with('[') => DecodeError {
                message: format!("field `{path}{inner}"),
            },
            Some(inner) => DecodeError {
                message: format!("field `{path}.{inner}"),
            },
            None => DecodeError {
                message: format!("field `{path}`: {}", self.message),
            },
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// How many characters of offending input an error message quotes before cutting it short.
const MAX_FOUND_CHARS: usize = 40;

/// Cuts `s` to at most [`MAX_FOUND_CHARS`] characters; the flag says whether it was cut.
fn truncate_chars(s: &str) -> (&str, bool) {
    match s.char_indices().nth(MAX_FOUND_CHARS) {
        Some((end, _)) => (&s[..end], true),
        None => (s, false),
    }
}

/// Describes a piece of *text* (a CSV cell, the content of a JSON string) for an error message:
/// quoted and escaped like a Rust string literal, cut to about 40 characters.
pub(crate) fn describe_text(s: &str) -> String {
    let (head, cut) = truncate_chars(s);
    let mut out = format!("{head:?}");
    if cut {
        out.push_str("...");
    }
    out
}

/// Describes a piece of *raw source* (e.g. a JSON value as written) for an error message:
/// as is, cut to about 40 characters.
pub(crate) fn describe_raw(s: &str) -> String {
    let (head, cut) = truncate_chars(s);
    let mut out = String::with_capacity(head.len() + 3);
    out.push_str(head);
    if cut {
        out.push_str("...");
    }
    out
}

/// Parses the digits of an integer (after an optional sign) with overflow checks.
///
/// Returns `None` for anything that is not `[+-]?[0-9]+` or that does not fit in an `i64`;
/// the second element of the error tuple says whether the text was well formed (overflow).
pub(crate) fn parse_i64_bytes(b: &[u8]) -> Result<i64, bool> {
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return Err(false);
    }
    // Up to 18 digits cannot overflow: no checks per digit.
    if digits.len() <= 18 {
        let mut acc: i64 = 0;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                return Err(false);
            }
            acc = acc * 10 + i64::from(d);
        }
        return Ok(if negative { -acc } else { acc });
    }
    // Accumulate as a negative number so that i64::MIN parses without overflow.
    let mut acc: i64 = 0;
    let mut overflow = false;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(false);
        }
        if !overflow {
            match acc
                .checked_mul(10)
                .and_then(|v| v.checked_sub(i64::from(c - b'0')))
            {
                Some(v) => acc = v,
                None => overflow = true,
            }
        }
    }
    if overflow {
        return Err(true);
    }
    if negative {
        Ok(acc)
    } else {
        acc.checked_neg().ok_or(true)
    }
}

/// Parses an integer written in decimal: an optional `+`/`-` sign and ASCII digits, nothing
/// else (no whitespace, no fraction, no exponent). Values outside the `i64` range are an error.
pub fn parse_i64(s: &str) -> Result<i64, DecodeError> {
    parse_i64_bytes(s.as_bytes()).map_err(|overflow| {
        if overflow {
            DecodeError::new(format!(
                "integer out of range (64-bit), found {}",
                quoted(&describe_text(s))
            ))
        } else {
            DecodeError::new(format!(
                "expected an integer, found {}",
                quoted(&describe_text(s))
            ))
        }
    })
}

/// Parses a floating-point number: decimal with optional fraction and exponent (`1`, `-0.5`,
/// `1e3`, `.5`, `+2`). The result is finite: `NaN`, `inf`, `Infinity` and numbers beyond the
/// `f64` range (`1e400`) are errors, as JSON cannot carry them either (the README's
/// "non-finite floats"). No whitespace is trimmed.
#[inline]
pub fn parse_f64(s: &str) -> Result<f64, DecodeError> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(not_finite(s)),
        Err(_) => Err(DecodeError::new(format!(
            "expected a number, found {}",
            quoted(&describe_text(s))
        ))),
    }
}

#[cold]
fn not_finite(s: &str) -> DecodeError {
    let what = if s.bytes().any(|b| b.is_ascii_digit()) {
        "number out of range (64-bit float)"
    } else {
        "expected a finite number"
    };
    DecodeError::new(format!("{what}, found {}", quoted(&describe_text(s))))
}

/// Parses a boolean: `true` / `false` in any letter case, or `1` / `0`. No whitespace is trimmed.
pub fn parse_bool(s: &str) -> Result<bool, DecodeError> {
    if s.eq_ignore_ascii_case("true") || s == "1" {
        Ok(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" {
        Ok(false)
    } else {
        Err(DecodeError::new(format!(
            "expected a boolean (true/false), found {}",
            quoted(&describe_text(s))
        )))
    }
}

/// Parses a timestamp into milliseconds since the Unix epoch (UTC), in the years 0000 to 9999;
/// see [`time::parse_timestamp`] for the accepted forms.
pub fn parse_timestamp(s: &str) -> Result<i64, DecodeError> {
    time::parse_timestamp(s)
}

/// Parses the event time of a source (field `field`), which must lie in `range`; see
/// [`time::parse_event_time`].
#[inline]
pub fn parse_event_time(s: &str, field: &str, range: time::TimeRange) -> Result<i64, DecodeError> {
    time::parse_event_time(s, field, range)
}

/// Parses a timestamp read as a source's `timestamps:` says; see [`time::ReadAs`].
pub fn parse_timestamp_as(s: &str, how: time::ReadAs) -> Result<i64, DecodeError> {
    time::parse_timestamp_as(s, how)
}

/// Parses the event time of a source read as its `timestamps:` says, within `range`.
pub fn parse_event_time_as(
    s: &str,
    field: &str,
    range: time::TimeRange,
    how: time::ReadAs,
) -> Result<i64, DecodeError> {
    time::parse_event_time_as(s, field, range, how)
}

/// A string field of a record decoded in place takes `text`, keeping its buffer: a source
/// decodes every line into the same record, so its strings are allocated once, not per line.
#[inline]
pub fn set_string(into: &mut String, text: &str) {
    into.clear();
    into.push_str(text);
}

/// An optional string field's buffer, kept from the previous record when it had one.
#[inline]
pub fn opt_string(into: &mut Option<String>) -> &mut String {
    into.get_or_insert_with(String::new)
}

/// A decoder that writes into a record (what generated decoders are) as one that returns a
/// new record per line, for a source that hands its records on by value (Kafka's batches,
/// lookup tables).
pub fn owned<T: Default>(
    mut decode: impl FnMut(&str, &mut T) -> Result<(), DecodeError>,
) -> impl FnMut(&str) -> Result<T, DecodeError> {
    move |line| {
        let mut record = T::default();
        decode(line, &mut record)?;
        Ok(record)
    }
}

/// Wraps a description in backticks for an error message.
pub(crate) fn quoted(description: &str) -> String {
    let mut out = String::with_capacity(description.len() + 2);
    out.push('`');
    out.push_str(description);
    out.push('`');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_errors_name_the_path() {
        let e = DecodeError::new("expected an integer, found `1.5`")
            .in_field("qty")
            .at_index(2)
            .in_field("items")
            .in_field("order");
        assert_eq!(
            e.to_string(),
            "field `order.items[2].qty`: expected an integer, found `1.5`"
        );
        let e = DecodeError::new("expected a string, found `7`")
            .at_index(3)
            .at_index(1)
            .in_field("grid");
        assert_eq!(
            e.to_string(),
            "field `grid[1][3]`: expected a string, found `7`"
        );
    }

    #[test]
    fn decode_error_display_and_field_prefix() {
        let e = DecodeError::new("expected an integer, found `\"abc\"`").in_field("price");
        assert_eq!(
            e.to_string(),
            "field `price`: expected an integer, found `\"abc\"`"
        );
        assert_eq!(e.message, e.to_string());
        let boxed: Box<dyn std::error::Error> = Box::new(e.clone());
        assert_eq!(boxed.to_string(), e.message);
    }

    #[test]
    fn parse_i64_accepts_integers_and_bounds() {
        assert_eq!(parse_i64("0"), Ok(0));
        assert_eq!(parse_i64("-0"), Ok(0));
        assert_eq!(parse_i64("+17"), Ok(17));
        assert_eq!(parse_i64("-17"), Ok(-17));
        assert_eq!(parse_i64("007"), Ok(7));
        assert_eq!(parse_i64("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(parse_i64("-9223372036854775808"), Ok(i64::MIN));
    }

    #[test]
    fn parse_i64_rejects_bad_text_and_overflow() {
        for bad in [
            "", "-", "+", "abc", "1.0", "1e3", " 1", "1 ", "1_000", "--1", "0x10",
        ] {
            assert!(parse_i64(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_i64("abc").unwrap_err();
        assert_eq!(e.message, "expected an integer, found `\"abc\"`");
        let e = parse_i64("9223372036854775808").unwrap_err();
        assert!(e.message.contains("out of range"), "{}", e.message);
        assert!(parse_i64("-9223372036854775809").is_err());
        assert!(parse_i64("99999999999999999999999999999").is_err());
    }

    #[test]
    fn error_text_is_truncated() {
        let long = "x".repeat(100);
        let e = parse_i64(&long).unwrap_err();
        assert!(e.message.len() < 80, "{}", e.message);
        assert!(e.message.ends_with("...`"), "{}", e.message);
        // Truncation counts chars, so multi-byte text never splits inside a char.
        let wide = "é".repeat(100);
        let e = parse_f64(&wide).unwrap_err();
        assert!(e.message.contains(&"é".repeat(40)));
        assert!(!e.message.contains(&"é".repeat(41)));
    }

    #[test]
    fn parse_f64_forms() {
        assert_eq!(parse_f64("1"), Ok(1.0));
        assert_eq!(parse_f64("-0.5"), Ok(-0.5));
        assert_eq!(parse_f64("1e3"), Ok(1000.0));
        assert_eq!(parse_f64("2.5E-1"), Ok(0.25));
        let z = parse_f64("-0").unwrap();
        assert!(z == 0.0 && z.is_sign_negative());
        assert_eq!(parse_f64("1.7976931348623157e308"), Ok(f64::MAX));
        for text in [
            "NaN",
            "nan",
            "inf",
            "-inf",
            "Infinity",
            "-Infinity",
            "+infinity",
        ] {
            assert_eq!(
                parse_f64(text).unwrap_err().message,
                format!("expected a finite number, found `{text:?}`")
            );
        }
        for text in ["1e400", "-1e309", "2e308"] {
            assert_eq!(
                parse_f64(text).unwrap_err().message,
                format!("number out of range (64-bit float), found `{text:?}`")
            );
        }
        for bad in ["", "abc", " 1", "1 ", "1,5", "1e", "--1"] {
            assert!(parse_f64(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(
            parse_f64("abc").unwrap_err().message,
            "expected a number, found `\"abc\"`"
        );
    }

    #[test]
    fn parse_bool_forms() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("TRUE"), Ok(true));
        assert_eq!(parse_bool("False"), Ok(false));
        assert_eq!(parse_bool("1"), Ok(true));
        assert_eq!(parse_bool("0"), Ok(false));
        for bad in ["", "yes", "t", " true", "2", "truee"] {
            assert!(parse_bool(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn parse_timestamp_delegates() {
        assert_eq!(parse_timestamp("2015-07-15"), Ok(1_436_918_400_000));
        assert_eq!(parse_timestamp("42"), Ok(42));
        assert!(parse_timestamp("yesterday").is_err());
    }
}
