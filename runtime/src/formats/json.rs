//! JSON lines: one JSON object per line.
//!
//! Decoding is lazy and allocation-free in the common case: [`for_each_field`] validates the
//! whole line and hands each top-level member to a callback as a key and a [`JsonValue`], a
//! borrowed slice of the line that is only converted when the generated decoder asks for it
//! (so unused fields cost a validation scan and nothing more). Nested objects and arrays are
//! validated and skipped without building anything. Keys are borrowed from the line unless they
//! contain escapes.
//!
//! Encoding helpers append JSON text to a byte buffer; the generated encoder writes `{`, then
//! [`write_key`] and a value writer per field separated by `,`, then `}`.

use std::borrow::Cow;

use super::{describe_raw, parse_i64_bytes, quoted, scan, time, DecodeError};

/// What kind of JSON value a [`JsonValue`] slice holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Bool,
    /// `integer` is true when the literal has no fraction and no exponent.
    Number {
        integer: bool,
    },
    /// `escaped` is true when the string contains at least one backslash escape.
    String {
        escaped: bool,
    },
    Object,
    Array,
}

/// A JSON value of a top-level member, not yet parsed (a slice of the line).
///
/// The slice has already been validated as JSON by [`for_each_field`]; the `as_*` methods
/// convert it to the type a field wants, or explain why they cannot.
#[derive(Clone, Copy, Debug)]
pub struct JsonValue<'a> {
    raw: &'a str,
    kind: Kind,
}

impl<'a> JsonValue<'a> {
    /// The value exactly as written in the line (strings include their quotes).
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// Whether the value is the literal `null`.
    pub fn is_null(&self) -> bool {
        self.kind == Kind::Null
    }

    /// A nested object's text, for [`for_each_field`] to walk; an error for anything else.
    pub fn object(&self) -> Result<&'a str, DecodeError> {
        match self.kind {
            Kind::Object => Ok(self.raw),
            _ => Err(self.mismatch("an object")),
        }
    }

    /// Calls `on_element` for each element of an array, in order; an error for anything
    /// else. An element's error names its position (1-based, as the language indexes).
    pub fn for_each_element(
        &self,
        mut on_element: impl FnMut(JsonValue<'a>) -> Result<(), DecodeError>,
    ) -> Result<(), DecodeError> {
        if self.kind != Kind::Array {
            return Err(self.mismatch("an array"));
        }
        // Validated already (a member's value is scanned whole); walked again here.
        let b = self.raw.as_bytes();
        let mut pos = skip_ws(b, 1);
        if b.get(pos) == Some(&b']') {
            return Ok(());
        }
        let mut index = 1;
        loop {
            let (end, kind) = scan_value(b, pos).map_err(|e| syntax_error(self.raw, e))?;
            on_element(JsonValue {
                raw: &self.raw[pos..end],
                kind,
            })
            .map_err(|e| e.at_index(index))?;
            index += 1;
            pos = skip_ws(b, end);
            match b.get(pos) {
                Some(b',') => pos = skip_ws(b, pos + 1),
                Some(b']') => return Ok(()),
                _ => return Err(syntax_error(self.raw, (pos, "expected `,` or `]`"))),
            }
        }
    }

    /// The value must be `what`; explains that it is not.
    fn mismatch(&self, what: &str) -> DecodeError {
        DecodeError::new(format!(
            "expected {what}, found {}",
            quoted(&describe_raw(self.raw))
        ))
    }

    /// An integer literal (no fraction, no exponent: `1.0` and `1e3` are rejected) in the
    /// `i64` range.
    pub fn as_i64(&self) -> Result<i64, DecodeError> {
        match self.kind {
            Kind::Number { integer: true } => parse_i64_bytes(self.raw.as_bytes()).map_err(|_| {
                DecodeError::new(format!(
                    "integer out of range (64-bit), found {}",
                    quoted(&describe_raw(self.raw))
                ))
            }),
            _ => Err(self.mismatch("an integer")),
        }
    }

    /// Any JSON number, as the nearest `f64`. Numbers too large for an `f64` (e.g. `1e400`)
    /// are an error rather than infinity.
    pub fn as_f64(&self) -> Result<f64, DecodeError> {
        match self.kind {
            Kind::Number { .. } => match self.raw.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(DecodeError::new(format!(
                    "number out of range (64-bit float), found {}",
                    quoted(&describe_raw(self.raw))
                ))),
            },
            _ => Err(self.mismatch("a number")),
        }
    }

    /// `true` or `false`.
    pub fn as_bool(&self) -> Result<bool, DecodeError> {
        match self.raw {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.mismatch("a boolean")),
        }
    }

    /// The content of a JSON string, unescaped (`\"` `\\` `\/` `\b` `\f` `\n` `\r` `\t` and
    /// `\uXXXX`, including surrogate pairs; a lone surrogate is an error).
    pub fn as_string(&self) -> Result<String, DecodeError> {
        self.as_str_cow().map(Cow::into_owned)
    }

    /// [`JsonValue::as_string`] into `into`'s buffer (see [`super::set_string`]).
    #[inline]
    pub fn read_string(&self, into: &mut String) -> Result<(), DecodeError> {
        super::set_string(into, &self.as_str_cow()?);
        Ok(())
    }

    /// Like [`JsonValue::as_string`] but borrows from the line when the string has no escapes.
    pub fn as_str_cow(&self) -> Result<Cow<'a, str>, DecodeError> {
        match self.kind {
            Kind::String { escaped } => {
                let inner = &self.raw[1..self.raw.len() - 1];
                if escaped {
                    unescape(inner).map(Cow::Owned).map_err(|why| {
                        DecodeError::new(format!(
                            "invalid string ({why}), found {}",
                            quoted(&describe_raw(self.raw))
                        ))
                    })
                } else {
                    Ok(Cow::Borrowed(inner))
                }
            }
            _ => Err(self.mismatch("a string")),
        }
    }

    /// A timestamp: an integer (epoch milliseconds) or a string in a form
    /// [`time::parse_timestamp`] accepts, in [`time::TimeRange::TIMESTAMPS`] (years 0000 to
    /// 9999).
    pub fn as_timestamp(&self) -> Result<i64, DecodeError> {
        match self.kind {
            Kind::Number { integer: true } => time::within_years(self.as_i64()?, self.raw),
            Kind::String { .. } => time::parse_timestamp(&self.as_str_cow()?),
            _ => Err(self.mismatch("a timestamp (epoch milliseconds or a string)")),
        }
    }

    /// A timestamp read as the source's `timestamps:` says ([`time::ReadAs`]): a number's
    /// text, or a string's content, through [`time::parse_timestamp_as`].
    pub fn as_timestamp_as(&self, how: time::ReadAs) -> Result<i64, DecodeError> {
        match self.kind {
            Kind::Number { .. } => time::parse_timestamp_as(self.raw, how),
            Kind::String { .. } => time::parse_timestamp_as(&self.as_str_cow()?, how),
            _ => Err(self.mismatch("a timestamp")),
        }
    }

    /// [`JsonValue::as_event_time`] read as the source's `timestamps:` says.
    pub fn as_event_time_as(
        &self,
        field: &str,
        range: time::TimeRange,
        how: time::ReadAs,
    ) -> Result<i64, DecodeError> {
        match self.kind {
            Kind::Number { .. } => time::parse_event_time_as(self.raw, field, range, how),
            Kind::String { .. } => {
                let text = self.as_str_cow().map_err(|e| e.in_field(field))?;
                time::parse_event_time_as(&text, field, range, how)
            }
            _ => Err(self.mismatch("a timestamp").in_field(field)),
        }
    }

    /// The event time of a source, in field `field`: like [`JsonValue::as_timestamp`], but it
    /// must lie in `range` (the source's event-time range). Every error names the field.
    #[inline]
    pub fn as_event_time(&self, field: &str, range: time::TimeRange) -> Result<i64, DecodeError> {
        match self.kind {
            Kind::Number { integer: true } => {
                let ts = self.as_i64().map_err(|e| e.in_field(field))?;
                time::event_time_within(ts, self.raw, field, range)
            }
            Kind::String { .. } => {
                let text = self.as_str_cow().map_err(|e| e.in_field(field))?;
                time::parse_event_time(&text, field, range)
            }
            _ => Err(self
                .mismatch("a timestamp (epoch milliseconds or a string)")
                .in_field(field)),
        }
    }
}

/// A syntax error: byte offset and what was expected there.
type SyntaxError = (usize, &'static str);

/// Turns a syntax error into the user-facing message, with a 1-based byte column and what was
/// found at that position.
fn syntax_error(line: &str, (pos, expected): SyntaxError) -> DecodeError {
    let found = match line.get(pos..) {
        Some(rest) => match rest.chars().next() {
            None => String::from("end of line"),
            Some(c) => format!("`{}`", c.escape_debug()),
        },
        None => String::from("a non-ASCII character"),
    };
    DecodeError::new(format!(
        "invalid JSON at column {}: {expected}, found {found}",
        pos + 1
    ))
}

/// Skips JSON whitespace (space, tab, line feed, carriage return).
#[inline]
fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    while let Some(&c) = b.get(pos) {
        if c == b' ' || c == b'\t' || c == b'\n' || c == b'\r' {
            pos += 1;
        } else {
            break;
        }
    }
    pos
}

/// Scans a string starting at its opening quote `b[pos] == b'"'`; returns the position after the
/// closing quote and whether it contains escapes. Escapes are checked for syntax only
/// (surrogate pairing is checked when the string is unescaped).
#[inline]
fn scan_string(b: &[u8], start: usize) -> Result<(usize, bool), SyntaxError> {
    let mut pos = start + 1;
    let mut escaped = false;
    loop {
        // Ordinary bytes (anything but `"`, `\` and control characters), many at a time.
        pos = scan::string_stop(b, pos);
        match b.get(pos) {
            None => return Err((start, "unterminated string")),
            Some(b'"') => return Ok((pos + 1, escaped)),
            Some(b'\\') => {
                escaped = true;
                match b.get(pos + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => pos += 2,
                    Some(b'u') => {
                        for i in 0..4 {
                            match b.get(pos + 2 + i) {
                                Some(c) if c.is_ascii_hexdigit() => {}
                                _ => {
                                    return Err((pos + 2 + i, "expected 4 hex digits after `\\u`"))
                                }
                            }
                        }
                        pos += 6;
                    }
                    _ => return Err((pos + 1, "invalid escape in string")),
                }
            }
            Some(_) => return Err((pos, "control character in string (must be escaped)")),
        }
    }
}

/// Scans a number starting at `pos`; returns the end position and whether it is an integer
/// literal (no fraction or exponent).
#[inline]
fn scan_number(b: &[u8], start: usize) -> Result<(usize, bool), SyntaxError> {
    let mut pos = start;
    if b.get(pos) == Some(&b'-') {
        pos += 1;
    }
    match b.get(pos) {
        Some(b'0') => pos += 1,
        Some(b'1'..=b'9') => {
            pos += 1;
            while b.get(pos).is_some_and(u8::is_ascii_digit) {
                pos += 1;
            }
        }
        _ => return Err((pos, "expected a digit")),
    }
    let mut integer = true;
    if b.get(pos) == Some(&b'.') {
        integer = false;
        pos += 1;
        if !b.get(pos).is_some_and(u8::is_ascii_digit) {
            return Err((pos, "expected a digit after `.`"));
        }
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
    }
    if matches!(b.get(pos), Some(b'e' | b'E')) {
        integer = false;
        pos += 1;
        if matches!(b.get(pos), Some(b'+' | b'-')) {
            pos += 1;
        }
        if !b.get(pos).is_some_and(u8::is_ascii_digit) {
            return Err((pos, "expected a digit in the exponent"));
        }
        while b.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
    }
    Ok((pos, integer))
}

/// Scans the literal `word` at `pos`.
#[inline]
fn scan_literal(b: &[u8], pos: usize, word: &'static [u8]) -> Result<usize, SyntaxError> {
    let end = pos + word.len();
    if b.get(pos..end) == Some(word) {
        Ok(end)
    } else {
        Err((pos, "expected a value"))
    }
}

/// Scans a scalar value (string, number, literal) at `pos`; the caller handles `{` and `[`.
#[inline]
fn scan_scalar(b: &[u8], pos: usize) -> Result<(usize, Kind), SyntaxError> {
    match b.get(pos) {
        Some(b'"') => scan_string(b, pos).map(|(end, escaped)| (end, Kind::String { escaped })),
        Some(b'-' | b'0'..=b'9') => {
            scan_number(b, pos).map(|(end, integer)| (end, Kind::Number { integer }))
        }
        Some(b't') => scan_literal(b, pos, b"true").map(|end| (end, Kind::Bool)),
        Some(b'f') => scan_literal(b, pos, b"false").map(|end| (end, Kind::Bool)),
        Some(b'n') => scan_literal(b, pos, b"null").map(|end| (end, Kind::Null)),
        _ => Err((pos, "expected a value")),
    }
}

/// The deepest nesting of objects/arrays inside a top-level member that is accepted.
const MAX_DEPTH: usize = 256;

/// A fixed-size stack of "is this level an object?" bits, so skipping nested values needs no
/// allocation and no recursion.
struct LevelStack {
    bits: [u64; MAX_DEPTH / 64],
    depth: usize,
}

impl LevelStack {
    fn push(&mut self, is_object: bool, pos: usize) -> Result<(), SyntaxError> {
        if self.depth == MAX_DEPTH {
            return Err((pos, "nesting too deep (more than 256 levels)"));
        }
        let (word, bit) = (self.depth / 64, self.depth % 64);
        if is_object {
            self.bits[word] |= 1 << bit;
        } else {
            self.bits[word] &= !(1 << bit);
        }
        self.depth += 1;
        Ok(())
    }

    fn top_is_object(&self) -> bool {
        let d = self.depth - 1;
        self.bits[d / 64] & (1 << (d % 64)) != 0
    }
}

/// Scans `"key"` and the following `:` inside a nested object, leaving `pos` at the value.
#[inline]
fn scan_member_key(b: &[u8], pos: usize) -> Result<usize, SyntaxError> {
    if b.get(pos) != Some(&b'"') {
        return Err((pos, "expected a string key"));
    }
    let (pos, _) = scan_string(b, pos)?;
    let pos = skip_ws(b, pos);
    if b.get(pos) != Some(&b':') {
        return Err((pos, "expected `:`"));
    }
    Ok(skip_ws(b, pos + 1))
}

/// Validates and skips a nested object or array starting at `b[start]` (`{` or `[`); returns the
/// position after its closing bracket. Iterative, so deep nesting cannot overflow the stack.
fn skip_container(b: &[u8], start: usize) -> Result<usize, SyntaxError> {
    let mut stack = LevelStack {
        bits: [0; MAX_DEPTH / 64],
        depth: 0,
    };
    let mut pos = start;
    // `expect_value` is true when a value must come next, false after a complete value.
    let mut expect_value = true;
    loop {
        if expect_value {
            match b.get(pos) {
                Some(b'{') => {
                    stack.push(true, pos)?;
                    pos = skip_ws(b, pos + 1);
                    if b.get(pos) == Some(&b'}') {
                        pos += 1;
                        stack.depth -= 1;
                        expect_value = false;
                    } else {
                        pos = scan_member_key(b, pos)?;
                    }
                }
                Some(b'[') => {
                    stack.push(false, pos)?;
                    pos = skip_ws(b, pos + 1);
                    if b.get(pos) == Some(&b']') {
                        pos += 1;
                        stack.depth -= 1;
                        expect_value = false;
                    }
                }
                _ => {
                    pos = scan_scalar(b, pos)?.0;
                    expect_value = false;
                }
            }
        } else {
            if stack.depth == 0 {
                return Ok(pos);
            }
            pos = skip_ws(b, pos);
            let in_object = stack.top_is_object();
            match b.get(pos) {
                Some(b',') => {
                    pos = skip_ws(b, pos + 1);
                    if in_object {
                        pos = scan_member_key(b, pos)?;
                    }
                    expect_value = true;
                }
                Some(b'}') if in_object => {
                    pos += 1;
                    stack.depth -= 1;
                }
                Some(b']') if !in_object => {
                    pos += 1;
                    stack.depth -= 1;
                }
                _ => {
                    return Err((
                        pos,
                        if in_object {
                            "expected `,` or `}`"
                        } else {
                            "expected `,` or `]`"
                        },
                    ))
                }
            }
        }
    }
}

/// Scans any value at `pos`; returns its end and kind.
#[inline]
fn scan_value(b: &[u8], pos: usize) -> Result<(usize, Kind), SyntaxError> {
    match b.get(pos) {
        Some(b'{') => skip_container(b, pos).map(|end| (end, Kind::Object)),
        Some(b'[') => skip_container(b, pos).map(|end| (end, Kind::Array)),
        _ => scan_scalar(b, pos),
    }
}

/// Reads 4 hex digits (already validated by the scanner, but checked again here).
fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let mut v = 0u32;
    for &c in &b[..4] {
        v = v * 16 + char::from(c).to_digit(16)?;
    }
    Some(v)
}

/// Unescapes the content of a JSON string (without its quotes).
fn unescape(inner: &str) -> Result<String, &'static str> {
    let b = inner.as_bytes();
    let mut out = String::with_capacity(inner.len());
    let mut run_start = 0;
    let mut pos = 0;
    while pos < b.len() {
        if b[pos] != b'\\' {
            pos += 1;
            continue;
        }
        out.push_str(&inner[run_start..pos]);
        let esc = b.get(pos + 1).copied().ok_or("invalid escape")?;
        pos += 2;
        let c = match esc {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(&b[pos..]).ok_or("invalid `\\u` escape")?;
                pos += 4;
                if (0xD800..0xDC00).contains(&hi) {
                    // A high surrogate must be followed by `\u` and a low surrogate.
                    if b.get(pos..pos + 2) != Some(b"\\u") {
                        return Err("lone surrogate in `\\u` escape");
                    }
                    let lo = hex4(&b[pos + 2..]).ok_or("invalid `\\u` escape")?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err("lone surrogate in `\\u` escape");
                    }
                    pos += 6;
                    let code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    char::from_u32(code).ok_or("invalid `\\u` escape")?
                } else {
                    // Low surrogates on their own are rejected by from_u32.
                    char::from_u32(hi).ok_or("lone surrogate in `\\u` escape")?
                }
            }
            _ => return Err("invalid escape"),
        };
        out.push(c);
        run_start = pos;
    }
    out.push_str(inner.get(run_start..).ok_or("invalid escape")?);
    Ok(out)
}

/// Calls `on_field(key, value)` for each member of the single JSON object that `line` holds.
///
/// Leading and trailing JSON whitespace is allowed (so is a UTF-8 byte-order mark at the very
/// start); anything else after the object is an error. Keys are unescaped, borrowed from the
/// line when they have no escapes. Every value is validated as JSON even if the callback
/// ignores it, so a malformed line is always rejected (possibly after the callback has seen
/// earlier members). Duplicate keys are passed through: the callback sees each occurrence.
///
/// Syntax errors carry the 1-based byte column, e.g.
/// ``invalid JSON at column 17: expected `:`, found `x` ``. An error returned by the callback
/// stops the scan and is returned unchanged.
pub fn for_each_field<'a>(
    line: &'a str,
    mut on_field: impl FnMut(&str, JsonValue<'a>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let b = line.as_bytes();
    let start = if b.starts_with("\u{feff}".as_bytes()) {
        3
    } else {
        0
    };
    let mut pos = skip_ws(b, start);
    if b.get(pos) != Some(&b'{') {
        return Err(syntax_error(line, (pos, "expected `{`")));
    }
    pos = skip_ws(b, pos + 1);
    if b.get(pos) == Some(&b'}') {
        pos += 1;
    } else {
        loop {
            if b.get(pos) != Some(&b'"') {
                return Err(syntax_error(line, (pos, "expected a string key")));
            }
            let (key_end, key_escaped) = scan_string(b, pos).map_err(|e| syntax_error(line, e))?;
            let key_inner = &line[pos + 1..key_end - 1];
            let key: Cow<'a, str> = if key_escaped {
                Cow::Owned(unescape(key_inner).map_err(|why| {
                    DecodeError::new(format!("invalid JSON at column {}: {why} in key", pos + 1))
                })?)
            } else {
                Cow::Borrowed(key_inner)
            };
            pos = skip_ws(b, key_end);
            if b.get(pos) != Some(&b':') {
                return Err(syntax_error(line, (pos, "expected `:`")));
            }
            pos = skip_ws(b, pos + 1);
            let (value_end, kind) = scan_value(b, pos).map_err(|e| syntax_error(line, e))?;
            on_field(
                &key,
                JsonValue {
                    raw: &line[pos..value_end],
                    kind,
                },
            )?;
            pos = skip_ws(b, value_end);
            match b.get(pos) {
                Some(b',') => pos = skip_ws(b, pos + 1),
                Some(b'}') => {
                    pos += 1;
                    break;
                }
                _ => return Err(syntax_error(line, (pos, "expected `,` or `}`"))),
            }
        }
    }
    pos = skip_ws(b, pos);
    if pos != b.len() {
        return Err(syntax_error(
            line,
            (pos, "expected end of line after the object"),
        ));
    }
    Ok(())
}

/// The fast path of a generated decoder: a line whose members are the source's declared
/// fields, each once, in the declared order, written without whitespace (as weir's encoder and
/// most producers write them), taken member by member without looking keys up.
///
/// It only ever accepts what [`for_each_field`] accepts: every value is scanned by the same
/// validator and converted by the same [`JsonValue`] methods. At anything else (another
/// order, a missing or extra member, whitespace, a value that does not convert) the caller
/// gets `None` and decodes the line again with [`for_each_field`], which gives the verdict and
/// the precise reason.
#[derive(Debug)]
pub struct InOrder<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> InOrder<'a> {
    /// Starts at the `{` that must open the line.
    #[inline]
    pub fn start(line: &'a str) -> Option<Self> {
        (line.as_bytes().first() == Some(&b'{')).then_some(InOrder { line, pos: 1 })
    }

    /// The value of the next member, whose key with its quotes and colon must be exactly
    /// `key`, preceded by `,` for every member but the first (`b",\"price\":"`).
    #[inline]
    pub fn member<const N: usize>(&mut self, key: &[u8; N]) -> Option<JsonValue<'a>> {
        let b = self.line.as_bytes();
        let start = self.pos + N;
        // A fixed-size comparison: a few loads, not a call to `memcmp`.
        let here: &[u8; N] = b.get(self.pos..start)?.try_into().ok()?;
        if here != key {
            return None;
        }
        let (end, kind) = scan_value(b, start).ok()?;
        self.pos = end;
        Some(JsonValue {
            raw: self.line.get(start..end)?,
            kind,
        })
    }

    /// [`InOrder::member`] for an `i64` field that is never null: a plain integer of up to
    /// 18 digits, read as it is scanned. Anything else (a longer number, a fraction, `null`,
    /// a leading zero) is `None`, for the general path to judge.
    #[inline]
    pub fn member_i64<const N: usize>(&mut self, key: &[u8; N]) -> Option<i64> {
        let b = self.line.as_bytes();
        let here: &[u8; N] = b.get(self.pos..self.pos + N)?.try_into().ok()?;
        if here != key {
            return None;
        }
        let mut pos = self.pos + N;
        let negative = b.get(pos) == Some(&b'-');
        pos += usize::from(negative);
        let start = pos;
        let mut acc = 0i64;
        while let Some(&c) = b.get(pos) {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                break;
            }
            acc = acc.wrapping_mul(10).wrapping_add(i64::from(d));
            pos += 1;
        }
        let digits = pos - start;
        if digits == 0 || digits > 18 || (digits > 1 && b[start] == b'0') {
            return None;
        }
        // A fraction or an exponent makes it no integer: the next member (or the end) would
        // not match, but say so here.
        if matches!(b.get(pos), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.pos = pos;
        Some(if negative { -acc } else { acc })
    }

    /// Whether the object closes right after the last member, at the end of the line.
    #[inline]
    pub fn end(&self) -> bool {
        self.pos + 1 == self.line.len() && self.line.as_bytes()[self.pos] == b'}'
    }
}

/// An array's elements, each read by `read`, into a new `Vec`.
pub fn read_array<'a, T>(
    value: JsonValue<'a>,
    mut read: impl FnMut(JsonValue<'a>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut out = Vec::new();
    value.for_each_element(|element| {
        out.push(read(element)?);
        Ok(())
    })?;
    Ok(out)
}

/// Appends `s` as a quoted JSON string. `"` and `\` are escaped; control characters are
/// written as `\n`, `\r`, `\t`, `\b`, `\f` or `\u00XX`. Everything else (including non-ASCII)
/// is copied as UTF-8.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    // Runs without escapes are found eight bytes at a time and copied whole.
    let mut run_start = 0;
    loop {
        let i = super::scan::next_json_escape(b, run_start);
        out.extend_from_slice(&b[run_start..i]);
        let Some(&c) = b.get(i) else { break };
        run_start = i + 1;
        let short: u8 = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            _ => 0,
        };
        if short == 0 {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(c >> 4)]);
            out.push(HEX[usize::from(c & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.push(b'"');
}

/// Appends an integer.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends a float in the shortest form that reads back to the same value; integral values keep
/// a fraction (`1.0`), large ones use an exponent (`1e20`). Values are finite (decoders reject
/// NaN and infinities, and arithmetic that would give one sends its record to the dead
/// letters); NaN or an infinity from elsewhere (a Rust record) is not a JSON number and is
/// written as `null`, as the CSV encoder writes an empty cell.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        write_null(out);
    }
}

/// Appends `true` or `false`.
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// Appends a timestamp as a JSON string in the canonical form `"yyyy-MM-dd HH:mm:ss.SSS"`.
pub fn write_timestamp(out: &mut Vec<u8>, ts: i64) {
    time::write_timestamp_quoted(ts, b'"', out);
}

/// Appends a timestamp in ISO 8601 with `Z`, quoted (`timestamps: "iso8601"`).
pub fn write_timestamp_iso(out: &mut Vec<u8>, ts: i64) {
    time::write_timestamp_iso(ts, Some(b'"'), out);
}

/// Appends `null`.
pub fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

/// Appends `"key":` (quoted, escaped, with the colon).
pub fn write_key(out: &mut Vec<u8>, key: &str) {
    write_string(out, key);
    out.push(b':');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path on `{"a":<text>,"b":1}`: `a` through `member_i64`.
    fn in_order_i64(text: &str) -> Option<(i64, i64)> {
        let line = format!("{{\"a\":{text},\"b\":1}}");
        let mut m = InOrder::start(&line)?;
        let a = m.member_i64(b"\"a\":")?;
        let b = m.member(b",\"b\":")?.as_i64().ok()?;
        m.end().then_some((a, b))
    }

    #[test]
    fn the_in_order_path_takes_plain_integers_only() {
        assert_eq!(in_order_i64("0"), Some((0, 1)));
        assert_eq!(in_order_i64("-0"), Some((0, 1)));
        assert_eq!(in_order_i64("-123"), Some((-123, 1)));
        assert_eq!(
            in_order_i64("999999999999999999"),
            Some((999_999_999_999_999_999, 1))
        );
        // The general path judges these.
        for text in [
            "9223372036854775807",
            "01",
            "-",
            "1.0",
            "1e3",
            "1E3",
            "null",
            "\"1\"",
            " 1",
            "1 ",
            "+1",
            "",
        ] {
            assert_eq!(in_order_i64(text), None, "{text}");
        }
        // Keys must match byte for byte, with nothing around them.
        let mut m = InOrder::start("{\"a\" :1}").unwrap();
        assert!(m.member_i64(b"\"a\":").is_none());
        let mut m = InOrder::start("{\"a\":1} ").unwrap();
        assert_eq!(m.member_i64(b"\"a\":"), Some(1));
        assert!(!m.end());
        assert!(InOrder::start(" {}").is_none());
    }

    /// Collects (key, raw value) pairs.
    fn fields(line: &str) -> Result<Vec<(String, String)>, DecodeError> {
        let mut v = Vec::new();
        for_each_field(line, |k, val| {
            v.push((k.to_string(), val.raw().to_string()));
            Ok(())
        })?;
        Ok(v)
    }

    /// The single member of a one-member object.
    fn value(json: &str) -> JsonValue<'_> {
        let line: &'static str = Box::leak(format!("{{\"v\":{json}}}").into_boxed_str());
        let mut out = None;
        for_each_field(line, |_, v| {
            out = Some(v);
            Ok(())
        })
        .unwrap();
        out.unwrap()
    }

    fn err(line: &str) -> String {
        fields(line).unwrap_err().message
    }

    #[test]
    fn members_in_order_with_raw_values() {
        let f =
            fields(r#" { "a" : 1 , "b":"x", "c":null,"d":[1,{"e":2}],"f":{"g":[]},"h":true } "#)
                .unwrap();
        let got: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            got,
            [
                ("a", "1"),
                ("b", "\"x\""),
                ("c", "null"),
                ("d", "[1,{\"e\":2}]"),
                ("f", "{\"g\":[]}"),
                ("h", "true"),
            ]
        );
        assert_eq!(fields("{}").unwrap(), []);
        assert_eq!(fields(" \t{ }\r").unwrap(), []);
        assert_eq!(fields("\u{feff}{\"a\":1}").unwrap().len(), 1);
    }

    #[test]
    fn duplicate_keys_are_all_seen() {
        let f = fields(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(f, [("a".into(), "1".into()), ("a".into(), "2".into())]);
    }

    #[test]
    fn keys_borrow_unless_escaped() {
        let line = r#"{"plain":1,"t\u00e9st\n":2,"\ud83d\ude00":3}"#;
        let mut keys = Vec::new();
        for_each_field(line, |k, _| {
            keys.push(k.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(keys, ["plain", "tést\n", "😀"]);
        let e = err(r#"{"\ud83d":1}"#);
        assert!(e.contains("lone surrogate"), "{e}");
        assert!(e.starts_with("invalid JSON at column 2"), "{e}");
    }

    #[test]
    fn syntax_errors_have_columns() {
        assert_eq!(
            err(r#"{"a":1,"bcdefg" 2}"#),
            "invalid JSON at column 17: expected `:`, found `2`"
        );
        assert_eq!(
            err(""),
            "invalid JSON at column 1: expected `{`, found end of line"
        );
        assert_eq!(
            err("[1]"),
            "invalid JSON at column 1: expected `{`, found `[`"
        );
        assert_eq!(
            err(r#"{"a":1} x"#),
            "invalid JSON at column 9: expected end of line after the object, found `x`"
        );
        assert!(err(r#"{"a":1}{}"#).contains("column 8"));
        assert!(err(r#"{"a":1"#).contains("expected `,` or `}`, found end of line"));
        assert!(err(r#"{"a":1,}"#).contains("expected a string key"));
        assert!(err(r#"{a:1}"#).contains("expected a string key"));
        assert!(err(r#"{"a"}"#).contains("expected `:`"));
        assert!(err(r#"{"a":}"#).contains("expected a value"));
        assert!(err(r#"{"a":"x}"#).contains("unterminated string"));
        assert!(err("{\"a\":\"x\ty\"}").contains("control character"));
        assert!(err(r#"{"a":"\x"}"#).contains("invalid escape"));
        assert!(err(r#"{"a":"\u12g4"}"#).contains("hex digits"));
        assert!(err(r#"{"a":tru}"#).contains("expected a value"));
        assert!(err(r#"{"a":truex}"#).contains("expected `,` or `}`"));
        assert!(err(r#"{"a":nul}"#).contains("expected a value"));
        assert!(err(r#"{"a":1 2}"#).contains("column 8"));
        // The error position is reported even after non-ASCII text.
        assert!(
            err(r#"{"é":1 x}"#).contains("column 9"),
            "{}",
            err(r#"{"é":1 x}"#)
        );
    }

    #[test]
    fn nested_values_are_validated_even_when_ignored() {
        for bad in [
            r#"{"a":[1,2}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":{"b":}}"#,
            r#"{"a":{"b" 1}}"#,
            r#"{"a":{1:2}}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":[01]}"#,
            r#"{"a":{"b":[}}"#,
            r#"{"a":["x]}"#,
            r#"{"a":[[[]]"#,
            r#"{"a":[,]}"#,
            r#"{"a":{,}}"#,
        ] {
            assert!(
                for_each_field(bad, |_, _| Ok(())).is_err(),
                "{bad} should be rejected"
            );
        }
        let ok = r#"{"a":[ 1 , [ ] , { } , { "k" : [ "v" , null , -1.5e-3 ] } ],"b":0}"#;
        assert_eq!(fields(ok).unwrap().len(), 2);
    }

    #[test]
    fn deep_nesting_is_bounded_not_a_stack_overflow() {
        let ok = format!("{{\"a\":{}{}}}", "[".repeat(256), "]".repeat(256));
        assert!(fields(&ok).is_ok());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(257), "]".repeat(257));
        assert!(err(&deep).contains("nesting too deep"));
        let huge = format!("{{\"a\":{}", "[{\"x\":".repeat(100_000));
        assert!(fields(&huge).is_err());
    }

    #[test]
    fn callback_errors_stop_the_scan() {
        let mut seen = 0;
        let r = for_each_field(r#"{"a":1,"b":"x","c":3}"#, |k, v| {
            seen += 1;
            if k == "b" {
                return Err(v.as_i64().unwrap_err().in_field(k));
            }
            Ok(())
        });
        assert_eq!(seen, 2);
        assert_eq!(
            r.unwrap_err().message,
            "field `b`: expected an integer, found `\"x\"`"
        );
    }

    #[test]
    fn integers() {
        assert_eq!(value("0").as_i64(), Ok(0));
        assert_eq!(value("-0").as_i64(), Ok(0));
        assert_eq!(value("42").as_i64(), Ok(42));
        assert_eq!(value("-42").as_i64(), Ok(-42));
        assert_eq!(value("9223372036854775807").as_i64(), Ok(i64::MAX));
        assert_eq!(value("-9223372036854775808").as_i64(), Ok(i64::MIN));
        let e = value("9223372036854775808").as_i64().unwrap_err();
        assert_eq!(
            e.message,
            "integer out of range (64-bit), found `9223372036854775808`"
        );
        assert!(value("-9223372036854775809").as_i64().is_err());
        for bad in ["1.0", "1e3", "\"1\"", "null", "true", "[1]", "{}"] {
            assert!(value(bad).as_i64().is_err(), "{bad}");
        }
        assert_eq!(
            value("[1, 2]").as_i64().unwrap_err().message,
            "expected an integer, found `[1, 2]`"
        );
    }

    #[test]
    fn floats() {
        assert_eq!(value("1e3").as_f64(), Ok(1000.0));
        assert_eq!(value("1E+3").as_f64(), Ok(1000.0));
        assert_eq!(value("2.5").as_f64(), Ok(2.5));
        assert_eq!(value("-1.25e-2").as_f64(), Ok(-0.0125));
        assert_eq!(value("7").as_f64(), Ok(7.0));
        let z = value("-0").as_f64().unwrap();
        assert!(z == 0.0 && z.is_sign_negative());
        assert_eq!(
            value("9223372036854775808").as_f64(),
            Ok(9_223_372_036_854_775_808.0)
        );
        assert!(value("1e400").as_f64().is_err());
        assert!(value("\"1.5\"").as_f64().is_err());
        assert!(value("null").as_f64().is_err());
        assert!(fields(r#"{"a":.5}"#).is_err());
        assert!(fields(r#"{"a":1.}"#).is_err());
        assert!(fields(r#"{"a":1e}"#).is_err());
        assert!(fields(r#"{"a":+1}"#).is_err());
        assert!(fields(r#"{"a":-}"#).is_err());
        assert!(fields(r#"{"a":NaN}"#).is_err());
    }

    #[test]
    fn booleans_and_null() {
        assert_eq!(value("true").as_bool(), Ok(true));
        assert_eq!(value("false").as_bool(), Ok(false));
        assert!(value("1").as_bool().is_err());
        assert!(value("\"true\"").as_bool().is_err());
        assert!(value("null").is_null());
        assert!(!value("0").is_null());
        assert!(!value("\"null\"").is_null());
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(value(r#""plain""#).as_string().unwrap(), "plain");
        assert!(matches!(
            value(r#""plain""#).as_str_cow(),
            Ok(Cow::Borrowed("plain"))
        ));
        assert_eq!(value(r#""""#).as_string().unwrap(), "");
        assert_eq!(
            value(r#""q\" b\\ s\/ \b\f\n\r\t end""#)
                .as_string()
                .unwrap(),
            "q\" b\\ s/ \u{8}\u{c}\n\r\t end"
        );
        assert_eq!(
            value(r#""\u0041\u00e9\u4e2d""#).as_string().unwrap(),
            "Aé中"
        );
        assert_eq!(value(r#""é中😀 raw""#).as_string().unwrap(), "é中😀 raw");
        assert_eq!(value(r#""\ud83d\ude00!""#).as_string().unwrap(), "😀!");
        assert_eq!(value(r#""\uD83D\uDE00""#).as_string().unwrap(), "😀");
        assert_eq!(value(r#""\u0000""#).as_string().unwrap(), "\0");
        for lone in [
            r#""\ud83d""#,
            r#""\ud83dx""#,
            r#""\ud83d\u0041""#,
            r#""\ude00""#,
            r#""\ude00\ud83d""#,
            r#""\ud83d\ud83d""#,
        ] {
            let e = value(lone).as_string().unwrap_err();
            assert!(
                e.message.contains("lone surrogate"),
                "{lone}: {}",
                e.message
            );
        }
        assert!(value("1").as_string().is_err());
        assert!(value("null").as_string().is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(value("1436918400000").as_timestamp(), Ok(1_436_918_400_000));
        assert_eq!(value("-5").as_timestamp(), Ok(-5));
        assert_eq!(
            value(r#""2015-07-15 00:00:00.000""#).as_timestamp(),
            Ok(1_436_918_400_000)
        );
        assert_eq!(
            value(r#""2015-07-15T00:00:00Z""#).as_timestamp(),
            Ok(1_436_918_400_000)
        );
        assert_eq!(
            value(r#""1436918400000""#).as_timestamp(),
            Ok(1_436_918_400_000)
        );
        assert!(value("1.5").as_timestamp().is_err());
        assert!(value(r#""yesterday""#).as_timestamp().is_err());
        assert!(value("true").as_timestamp().is_err());
        assert!(value("null").as_timestamp().is_err());
        assert_eq!(
            value("9223372036854775807")
                .as_timestamp()
                .unwrap_err()
                .message,
            "timestamp outside the years 0000 to 9999, found `9223372036854775807`"
        );
        assert_eq!(
            value(r#""+10000-01-01 00:00:00.000""#)
                .as_timestamp()
                .unwrap_err()
                .message,
            "expected a timestamp (`yyyy-MM-dd HH:mm:ss[.SSS]` or epoch milliseconds), found \
             `\"+10000-01-01 00:00:00.000\"`"
        );
        assert!(value("-9223372036854775808").as_timestamp().is_err());
        assert!(value(r#""-62167219200001""#).as_timestamp().is_err());
        assert_eq!(
            value("-62167219200000").as_timestamp(),
            Ok(-62_167_219_200_000)
        );
    }

    #[test]
    fn event_times() {
        let range = time::TimeRange::EVENT_TIME;
        assert_eq!(
            value("1436918400000").as_event_time("ts", range),
            Ok(1_436_918_400_000)
        );
        assert_eq!(
            value(r#""2015-07-15T00:00:00Z""#).as_event_time("ts", range),
            Ok(1_436_918_400_000)
        );
        for (raw, shown) in [
            ("9223372036854775807", "9223372036854775807"),
            ("-9223372036854775808", "-9223372036854775808"),
            (r#""9999-12-31""#, "9999-12-31"),
            (r#""0001-01-01T00:00:00Z""#, "0001-01-01T00:00:00Z"),
        ] {
            assert_eq!(
                value(raw).as_event_time("ts", range).unwrap_err().message,
                format!(
                    "event time {shown} of field `ts` is outside the accepted range \
                     1900-01-01 .. 2200-01-01"
                )
            );
        }
        for bad in ["1.5", "true", r#""soon""#, "99999999999999999999"] {
            let e = value(bad).as_event_time("ts", range).unwrap_err();
            assert!(e.message.starts_with("field `ts`: "), "{e}");
        }
    }

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encoding() {
        assert_eq!(written(|o| write_string(o, "plain")), r#""plain""#);
        assert_eq!(
            written(|o| write_string(o, "q\"b\\n\nr\rt\t\u{1}\u{1f}\u{8}\u{c}é😀/")),
            r#""q\"b\\n\nr\rt\t\u0001\u001f\b\fé😀/""#
        );
        assert_eq!(written(|o| write_i64(o, i64::MIN)), "-9223372036854775808");
        assert_eq!(written(|o| write_f64(o, 1.0)), "1.0");
        assert_eq!(written(|o| write_f64(o, -0.5)), "-0.5");
        assert_eq!(written(|o| write_f64(o, 0.1)), "0.1");
        assert_eq!(written(|o| write_f64(o, f64::NAN)), "null");
        assert_eq!(written(|o| write_f64(o, f64::INFINITY)), "null");
        assert_eq!(written(|o| write_f64(o, f64::NEG_INFINITY)), "null");
        assert_eq!(written(|o| write_bool(o, true)), "true");
        assert_eq!(written(|o| write_bool(o, false)), "false");
        assert_eq!(written(write_null), "null");
        assert_eq!(
            written(|o| write_timestamp(o, 1_436_918_400_000)),
            r#""2015-07-15 00:00:00.000""#
        );
        assert_eq!(written(|o| write_key(o, "k\"y")), r#""k\"y":"#);
    }

    #[test]
    fn encode_decode_round_trip() {
        let strings = [
            "",
            "a",
            "\"",
            "\\",
            "\u{0}\u{1f}\u{7f}",
            "line\nbreak",
            "é中😀",
            "\\u0041",
        ];
        let floats = [
            0.0,
            -0.0,
            1.0,
            0.1,
            -2.5e-300,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        let mut out = Vec::new();
        out.push(b'{');
        for (i, s) in strings.iter().enumerate() {
            write_key(&mut out, &format!("s{i}{s}"));
            write_string(&mut out, s);
            out.push(b',');
        }
        for (i, f) in floats.iter().enumerate() {
            write_key(&mut out, &format!("f{i}"));
            write_f64(&mut out, *f);
            out.push(b',');
        }
        write_key(&mut out, "ts");
        write_timestamp(&mut out, -1);
        out.push(b',');
        write_key(&mut out, "i");
        write_i64(&mut out, i64::MAX);
        out.push(b'}');
        let line = String::from_utf8(out).unwrap();
        let mut n = 0;
        for_each_field(&line, |k, v| {
            if let Some(i) = k.strip_prefix('f') {
                let i: usize = i.parse().unwrap();
                let got = v.as_f64().unwrap();
                assert_eq!(got.to_bits(), floats[i].to_bits(), "{k}");
            } else if k == "ts" {
                assert_eq!(v.as_timestamp(), Ok(-1));
            } else if k == "i" {
                assert_eq!(v.as_i64(), Ok(i64::MAX));
            } else {
                let i: usize = k[1..2].parse().unwrap();
                assert_eq!(k, format!("s{i}{}", strings[i]));
                assert_eq!(v.as_string().unwrap(), strings[i]);
            }
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, strings.len() + floats.len() + 2);
    }

    /// A tiny deterministic PRNG (xorshift64*), so the fuzz test needs no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn fuzz_never_panics() {
        const PIECES: [&str; 30] = [
            "{",
            "}",
            "[",
            "]",
            "\"",
            ":",
            ",",
            " ",
            "\\",
            "\\u",
            "d83d",
            "\\ude00",
            "1",
            "-",
            "0",
            ".",
            "e",
            "+",
            "true",
            "false",
            "null",
            "\"k\"",
            "é",
            "😀",
            "\t",
            "\u{1}",
            "a",
            "9223372036854775808",
            "\\\"",
            "\u{feff}",
        ];
        let seeds = [
            r#"{"a":1,"b":"x\ny","c":[1,{"d":null}],"e":-1.5e3,"f":true}"#,
            r#"{"k\u00e9":"\ud83d\ude00","n":{"m":[[],{}]}}"#,
            "{}",
        ];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut accepted = 0;
        for round in 0..20_000 {
            let mut line = String::new();
            if round % 2 == 0 {
                // Mutate a valid line: replace, insert or delete a few pieces at char boundaries.
                let seed: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
                let mut chars: Vec<String> = seed.iter().map(|c| c.to_string()).collect();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(chars.len() + 1);
                    match rng.below(3) {
                        0 if at < chars.len() => {
                            chars[at] = PIECES[rng.below(PIECES.len())].to_string()
                        }
                        1 if at < chars.len() => {
                            chars.remove(at);
                        }
                        _ => chars.insert(at, PIECES[rng.below(PIECES.len())].to_string()),
                    }
                }
                line = chars.concat();
            } else {
                for _ in 0..rng.below(24) {
                    line.push_str(PIECES[rng.below(PIECES.len())]);
                }
            }
            let result = for_each_field(&line, |_, v| {
                let _ = (v.as_i64(), v.as_f64(), v.as_bool(), v.as_string());
                let _ = (v.as_timestamp(), v.is_null(), v.raw());
                Ok(())
            });
            if result.is_ok() {
                accepted += 1;
            }
        }
        assert!(accepted > 100, "the fuzzer should also produce valid lines");
    }
}
