//! Timestamps: text <-> `i64` milliseconds since the Unix epoch, UTC.
//!
//! The canonical text form, used for all output, is `yyyy-MM-dd HH:mm:ss.SSS`
//! (e.g. `2015-07-15 00:00:00.000`). Calendar arithmetic is the proleptic Gregorian calendar
//! computed with plain integer formulas (days from a civil date and back), valid for every
//! `i64` millisecond value.
//!
//! Ranges: a timestamp read from input must lie in [`TimeRange::TIMESTAMPS`] (the years 0000
//! to 9999 that the text form can write), and a source's event time in its event-time range
//! ([`TimeRange::EVENT_TIME`] unless the source widens it); anything else is a
//! [`DecodeError`], so the record becomes a dead letter. Together with the bounded durations
//! the checker allows, this keeps window and watermark arithmetic far from `i64` overflow
//! (see `docs/time.md`). Timestamps a pipeline computes (`ts + 1000d`) are not bounded: every
//! function here is defined for every `i64`.

use std::fmt;

use super::{describe_raw, describe_text, parse_i64_bytes, quoted, DecodeError};
use crate::functions::DatePattern;

/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// A half-open range of timestamps `[start, end)`, in milliseconds since the epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub start: i64,
    pub end: i64,
}

impl TimeRange {
    /// Every timestamp the text form writes with four digits: the years 0000 to 9999
    /// (`0000-01-01 00:00:00.000` up to `9999-12-31 23:59:59.999`). Timestamps read from
    /// input must lie here.
    pub const TIMESTAMPS: TimeRange = TimeRange {
        start: -62_167_219_200_000,
        end: 253_402_300_800_000,
    };

    /// The default event-time range of a source: `[1900-01-01, 2200-01-01)`. Narrower than
    /// [`TimeRange::TIMESTAMPS`] because sentinel values (`9999-12-31`, `0001-01-01`, the
    /// `i64` extremes) are common in real data, and one of them taken as event time would move
    /// the watermark past every window, making all later records late.
    pub const EVENT_TIME: TimeRange = TimeRange {
        start: -2_208_988_800_000,
        end: 7_258_118_400_000,
    };

    /// Whether `ts` lies in `[start, end)`.
    #[inline(always)]
    pub const fn contains(self, ts: i64) -> bool {
        self.start <= ts && ts < self.end
    }
}

/// `1900-01-01 .. 2200-01-01`: each end as a date when it is midnight, else in the canonical
/// form; the end is excluded.
impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |ts: i64| {
            let mut s = String::new();
            format_timestamp(ts, &mut s);
            match s.strip_suffix(" 00:00:00.000") {
                Some(date) => date.to_string(),
                None => s,
            }
        };
        write!(f, "{} .. {}", end(self.start), end(self.end))
    }
}

/// The error for a timestamp outside [`TimeRange::TIMESTAMPS`]; `found` is already described
/// for the message.
#[cold]
#[inline(never)]
fn outside_years(found: &str) -> DecodeError {
    DecodeError::new(format!(
        "timestamp outside the years 0000 to 9999, found {}",
        quoted(found)
    ))
}

/// Checks that a timestamp read from input lies in [`TimeRange::TIMESTAMPS`]; `raw` is the
/// value as written (for the message).
#[inline]
pub(crate) fn within_years(ts: i64, raw: &str) -> Result<i64, DecodeError> {
    if TimeRange::TIMESTAMPS.contains(ts) {
        Ok(ts)
    } else {
        Err(outside_years(&describe_raw(raw)))
    }
}

/// The error for an event time outside its source's range. `written` is the value as it was
/// written in the input (or its canonical form for a value that came as an integer from Rust).
#[cold]
#[inline(never)]
fn outside_event_time(written: &str, field: &str, range: TimeRange) -> DecodeError {
    DecodeError::new(format!(
        "event time {} of field `{field}` is outside the accepted range {range}",
        describe_raw(written)
    ))
}

/// Checks an event time read from input as `written` against its source's range.
#[inline]
pub(crate) fn event_time_within(
    ts: i64,
    written: &str,
    field: &str,
    range: TimeRange,
) -> Result<i64, DecodeError> {
    if range.contains(ts) {
        Ok(ts)
    } else {
        Err(outside_event_time(written, field, range))
    }
}

/// Checks an event time given as a number (a record handed over from Rust) against its
/// source's range; the message shows it in the canonical form.
#[inline]
pub fn check_event_time(ts: i64, field: &str, range: TimeRange) -> Result<i64, DecodeError> {
    if range.contains(ts) {
        Ok(ts)
    } else {
        let mut written = String::new();
        format_timestamp(ts, &mut written);
        Err(outside_event_time(&written, field, range))
    }
}

/// A broken-down UTC date and time, as produced by [`civil_from_ms`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Proleptic Gregorian year (`0` is 1 BC, negative years are further back).
    pub year: i64,
    /// Month, `1..=12`.
    pub month: u32,
    /// Day of the month, `1..=31`.
    pub day: u32,
    /// Hour, `0..=23`.
    pub hour: u32,
    /// Minute, `0..=59`.
    pub minute: u32,
    /// Second, `0..=59`.
    pub second: u32,
    /// Millisecond, `0..=999`.
    pub millis: u32,
}

/// Whether `year` is a leap year in the proleptic Gregorian calendar.
pub fn is_leap_year(year: i64) -> bool {
    year.rem_euclid(4) == 0 && (year.rem_euclid(100) != 0 || year.rem_euclid(400) == 0)
}

/// The number of days in `month` (`1..=12`) of `year`; `0` for an invalid month.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of the given civil date. `month` must be `1..=12` and `day` valid for
/// it; `year` must be within about ±25 trillion (far beyond any timestamp) to avoid overflow.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Count years from March so the leap day is the last day of the (shifted) year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400; // 0..=399
    let month_from_march = i64::from((month + 9) % 12); // March = 0 ... February = 11
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1; // 0..=365
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719_468 days separate 0000-03-01 (start of era 0) from 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The civil date `(year, month, day)` of a day number counted from 1970-01-01. Valid for
/// every day number that a millisecond `i64` can produce (and far beyond).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097; // 0..=146_096
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Breaks a timestamp (ms since the epoch, UTC) into its civil date and time. Works for every
/// `i64`, including negative (pre-1970) values.
pub fn civil_from_ms(ts: i64) -> Civil {
    let days = ts.div_euclid(MS_PER_DAY);
    let ms_of_day = ts.rem_euclid(MS_PER_DAY) as u32; // 0..86_400_000 fits in u32
    let (year, month, day) = civil_from_days(days);
    Civil {
        year,
        month,
        day,
        hour: ms_of_day / 3_600_000,
        minute: ms_of_day / 60_000 % 60,
        second: ms_of_day / 1000 % 60,
        millis: ms_of_day % 1000,
    }
}

/// Appends `v` in decimal, zero-padded to `width` digits.
fn push_padded(buf: &mut [u8; 40], len: &mut usize, v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut rest = v;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for _ in n..width {
        buf[*len] = b'0';
        *len += 1;
    }
    for i in (0..n).rev() {
        buf[*len] = digits[i];
        *len += 1;
    }
}

/// Renders the canonical form into a fixed buffer; returns the buffer and the used length.
///
/// Years 0000..=9999 give exactly `yyyy-MM-dd HH:mm:ss.SSS`. Other years (only reachable for
/// timestamps more than ~8000 years from 1970) are written ISO-8601 style with an explicit sign
/// and at least four digits, e.g. `-0001-12-31 23:59:59.999` or `+10000-01-01 00:00:00.000`.
fn render(ts: i64) -> ([u8; 40], usize) {
    let c = civil_from_ms(ts);
    let mut buf = [0u8; 40];
    let mut len = 0;
    if !(0..=9999).contains(&c.year) {
        buf[len] = if c.year < 0 { b'-' } else { b'+' };
        len += 1;
    }
    push_padded(&mut buf, &mut len, c.year.unsigned_abs(), 4);
    let parts: [(u8, u32, usize); 6] = [
        (b'-', c.month, 2),
        (b'-', c.day, 2),
        (b' ', c.hour, 2),
        (b':', c.minute, 2),
        (b':', c.second, 2),
        (b'.', c.millis, 3),
    ];
    for (sep, v, width) in parts {
        buf[len] = sep;
        len += 1;
        push_padded(&mut buf, &mut len, u64::from(v), width);
    }
    (buf, len)
}

/// Appends the canonical text form `yyyy-MM-dd HH:mm:ss.SSS` of `ts` to `out`.
///
/// Works for negative timestamps. Years outside 0000..=9999 (more than ~8000 years from 1970)
/// are written with an explicit sign, e.g. `-0001-12-31 23:59:59.999`; never panics.
pub fn format_timestamp(ts: i64, out: &mut String) {
    let (buf, len) = render(ts);
    out.extend(buf[..len].iter().map(|&b| char::from(b)));
}

/// Appends the canonical text form of `ts` to a byte buffer (see [`format_timestamp`]).
#[inline]
pub fn write_timestamp_bytes(ts: i64, out: &mut Vec<u8>) {
    match canonical(ts) {
        Some(text) => out.extend_from_slice(&text),
        None => {
            let (buf, len) = render(ts);
            out.extend_from_slice(&buf[..len]);
        }
    }
}

/// Appends `ts` in ISO 8601 with a `Z`: `yyyy-MM-ddTHH:mm:ss.SSSZ` (the canonical form with
/// `T` for the space), between two `quote`s unless `quote` is `None`.
pub fn write_timestamp_iso(ts: i64, quote: Option<u8>, out: &mut Vec<u8>) {
    out.extend(quote);
    write_timestamp_bytes(ts, out);
    // The text ends with ` HH:mm:ss.SSS`, whatever the year.
    let space = out.len() - 13;
    out[space] = b'T';
    out.push(b'Z');
    out.extend(quote);
}

/// Appends the canonical text form of `ts` between two `quote`s (a JSON string).
#[inline]
pub fn write_timestamp_quoted(ts: i64, quote: u8, out: &mut Vec<u8>) {
    match canonical(ts) {
        Some(text) => {
            let mut buf = [quote; 25];
            buf[1..24].copy_from_slice(&text);
            out.extend_from_slice(&buf);
        }
        None => {
            out.push(quote);
            let (buf, len) = render(ts);
            out.extend_from_slice(&buf[..len]);
            out.push(quote);
        }
    }
}

/// `"00"` to `"99"`, two bytes each.
const DIGIT_PAIRS: [u8; 200] = {
    let mut pairs = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        pairs[2 * i] = b'0' + (i / 10) as u8;
        pairs[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    pairs
};

/// Writes `v` (`0..100`) as two digits at `buf[at..at + 2]`.
#[inline(always)]
fn put_pair(buf: &mut [u8], at: usize, v: u32) {
    let v = (v % 100) as usize;
    buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[2 * v..2 * v + 2]);
}

thread_local! {
    /// The day (since the epoch) written last and its `yyyy-MM-dd`: records come mostly in
    /// time order, so consecutive ones share the date and skip the calendar arithmetic.
    static LAST_DATE: std::cell::Cell<(i64, [u8; 10])> =
        const { std::cell::Cell::new((i64::MIN, [0; 10])) };
}

/// `yyyy-MM-dd HH:mm:ss.SSS` for a timestamp in the years 0000 to 9999; `None` for others
/// (which [`render`] writes with a sign). The same text as [`render`], built from a cached
/// date and the time of day in two-digit steps.
#[inline]
fn canonical(ts: i64) -> Option<[u8; 23]> {
    let day = ts.div_euclid(MS_PER_DAY);
    let ms_of_day = ts.rem_euclid(MS_PER_DAY) as u32; // 0..86_400_000 fits in u32
    let date = LAST_DATE.with(|last| {
        let (last_day, text) = last.get();
        if last_day == day {
            return Some(text);
        }
        let (year, month, day_of_month) = civil_from_days(day);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let year = year as u32;
        let mut text = *b"0000-00-00";
        put_pair(&mut text, 0, year / 100);
        put_pair(&mut text, 2, year);
        put_pair(&mut text, 5, month);
        put_pair(&mut text, 8, day_of_month);
        last.set((day, text));
        Some(text)
    })?;
    let mut text = *b"0000-00-00 00:00:00.000";
    text[..10].copy_from_slice(&date);
    put_pair(&mut text, 11, ms_of_day / 3_600_000);
    put_pair(&mut text, 14, ms_of_day / 60_000 % 60);
    put_pair(&mut text, 17, ms_of_day / 1000 % 60);
    let millis = ms_of_day % 1000;
    text[20] = b'0' + (millis / 100) as u8;
    put_pair(&mut text, 21, millis);
    Some(text)
}

/// Parses a timestamp into milliseconds since the Unix epoch (UTC).
///
/// Accepted forms (no surrounding whitespace):
/// * an integer: epoch milliseconds, e.g. `1436918400000` or `-1`;
/// * `yyyy-MM-dd HH:mm:ss`, optionally followed by a fraction `.f` of 1 to 9 digits (digits
///   beyond milliseconds are truncated); `T` (or `t`) may replace the space;
/// * either of those followed by `Z` (or `z`) or an offset `+HH:MM` / `-HH:MM`, which is
///   subtracted to get UTC;
/// * `yyyy-MM-dd` alone, meaning midnight UTC.
///
/// The year has exactly four digits; the month, day, hour, minute and second exactly two, and
/// each must be in range (so `2015-02-29` and `24:00:00` are rejected). The result must lie in
/// [`TimeRange::TIMESTAMPS`] (an offset can push `0000-01-01` or `9999-12-31` past it; epoch
/// milliseconds can be anything).
pub fn parse_timestamp(s: &str) -> Result<i64, DecodeError> {
    let ts = parse_any(s)?;
    if TimeRange::TIMESTAMPS.contains(ts) {
        Ok(ts)
    } else {
        Err(outside_years(&describe_text(s)))
    }
}

/// How a source reads its timestamp fields (`timestamps:` in its format clause).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadAs {
    /// The default: a text form of [`parse_timestamp`], or an integer of epoch milliseconds.
    Auto,
    /// Text forms only: a number is an error (so no integer is ever guessed to be ms).
    Text,
    /// Numbers since the epoch in this unit only (seconds may have a decimal fraction, kept to
    /// the millisecond); text forms are errors. A JSON string holding such a number counts.
    Epoch(EpochUnit),
    /// Text written with this date pattern only (`dd/MM/yyyy HH:mm`), as `to_timestamp` reads
    /// it: fields the pattern lacks take their smallest value.
    Pattern(&'static DatePattern),
}

/// The unit of an epoch number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpochUnit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl EpochUnit {
    fn name(self) -> &'static str {
        match self {
            EpochUnit::Seconds => "epoch seconds",
            EpochUnit::Millis => "epoch milliseconds",
            EpochUnit::Micros => "epoch microseconds",
            EpochUnit::Nanos => "epoch nanoseconds",
        }
    }
}

/// Milliseconds since the epoch from `s`, read as `how` says; not range-checked.
fn parse_as(s: &str, how: ReadAs) -> Result<i64, DecodeError> {
    let b = s.as_bytes();
    let sign = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let is_integer = b.len() > sign && b[sign..].iter().all(u8::is_ascii_digit);
    let unit = match how {
        ReadAs::Auto => return parse_any(s),
        ReadAs::Text if is_integer => {
            return Err(DecodeError::new(format!(
                "expected a timestamp as text (the source reads `timestamps: \"text\"`), found \
                 the number {}",
                quoted(&describe_text(s))
            )))
        }
        ReadAs::Text => return parse_any(s),
        ReadAs::Pattern(pattern) => {
            return pattern.read(s).ok_or_else(|| {
                DecodeError::new(format!(
                    "expected a timestamp written as `{}` (the source's `timestamps:`), found {}",
                    pattern.text(),
                    quoted(&describe_text(s))
                ))
            })
        }
        ReadAs::Epoch(unit) => unit,
    };
    let out_of_range = || {
        DecodeError::new(format!(
            "timestamp out of range ({}), found {}",
            unit.name(),
            quoted(&describe_text(s))
        ))
    };
    // `digits[.fraction]`, the fraction for seconds only.
    let (whole, fraction) = match (unit, s.split_once('.')) {
        (EpochUnit::Seconds, Some((w, f)))
            if !f.is_empty() && f.bytes().all(|c| c.is_ascii_digit()) =>
        {
            (w, f)
        }
        _ => (s, ""),
    };
    let wb = whole.as_bytes();
    if wb.len() <= sign || !wb[sign..].iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::new(format!(
            "expected {} (the source reads them as such), found {}",
            unit.name(),
            quoted(&describe_text(s))
        )));
    }
    let n = parse_i64_bytes(wb).map_err(|_| out_of_range())?;
    let negative = wb[0] == b'-';
    match unit {
        EpochUnit::Seconds => {
            // The first three fraction digits are milliseconds; more are dropped (toward zero).
            let mut ms = 0i64;
            for (i, c) in fraction.bytes().take(3).enumerate() {
                ms += i64::from(c - b'0') * [100, 10, 1][i];
            }
            let ms = if negative { -ms } else { ms };
            n.checked_mul(1000)
                .and_then(|v| v.checked_add(ms))
                .ok_or_else(out_of_range)
        }
        EpochUnit::Millis => Ok(n),
        // Sub-millisecond parts are dropped toward the past, as a window assigner would.
        EpochUnit::Micros => Ok(n.div_euclid(1000)),
        EpochUnit::Nanos => Ok(n.div_euclid(1_000_000)),
    }
}

/// Parses a timestamp read as `how` says (see [`ReadAs`]), in the years 0000 to 9999.
pub fn parse_timestamp_as(s: &str, how: ReadAs) -> Result<i64, DecodeError> {
    let ts = parse_as(s, how)?;
    if TimeRange::TIMESTAMPS.contains(ts) {
        Ok(ts)
    } else {
        Err(outside_years(&describe_text(s)))
    }
}

/// Parses the event time of a source read as `how` says, which must lie in `range`.
pub fn parse_event_time_as(
    s: &str,
    field: &str,
    range: TimeRange,
    how: ReadAs,
) -> Result<i64, DecodeError> {
    let ts = parse_as(s, how).map_err(|e| e.in_field(field))?;
    event_time_within(ts, s, field, range)
}

/// Parses the event time of a source (field `field`): the forms of [`parse_timestamp`], which
/// must lie in `range` instead. Every error names the field.
#[inline]
pub fn parse_event_time(s: &str, field: &str, range: TimeRange) -> Result<i64, DecodeError> {
    let ts = parse_any(s).map_err(|e| e.in_field(field))?;
    event_time_within(ts, s, field, range)
}

/// The canonical form `yyyy-MM-dd HH:mm:ss.SSS` (as weir writes timestamps), read without
/// the general parser's branches: `None` for anything else, or for a field out of range
/// (the general parser then gives the verdict and the reason).
#[inline]
fn parse_canonical(b: &[u8]) -> Option<i64> {
    let b: &[u8; 23] = b.try_into().ok()?;
    if b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[19] != b'.' {
        return None;
    }
    let mut bad = 0u8;
    let mut d = |i: usize| {
        let v = b[i].wrapping_sub(b'0');
        bad |= u8::from(v > 9);
        u32::from(v)
    };
    let year = d(0) * 1000 + d(1) * 100 + d(2) * 10 + d(3);
    let month = d(5) * 10 + d(6);
    let day = d(8) * 10 + d(9);
    let hour = d(11) * 10 + d(12);
    let minute = d(14) * 10 + d(15);
    let second = d(17) * 10 + d(18);
    let millis = d(20) * 100 + d(21) * 10 + d(22);
    if bad != 0 || hour > 23 || minute > 59 || second > 59 || !(1..=12).contains(&month) {
        return None;
    }
    if day == 0 || day > days_in_month(i64::from(year), month) {
        return None;
    }
    let ms_of_day = i64::from(((hour * 60 + minute) * 60 + second) * 1000 + millis);
    Some(days_from_civil(i64::from(year), month, day) * MS_PER_DAY + ms_of_day)
}

/// [`parse_timestamp`] without the range check: any `i64`.
fn parse_any(s: &str) -> Result<i64, DecodeError> {
    let b = s.as_bytes();
    if let Some(ts) = parse_canonical(b) {
        return Ok(ts);
    }
    // Epoch milliseconds: an optional sign and digits only.
    let first_digit = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    if b.len() > first_digit && b[first_digit..].iter().all(u8::is_ascii_digit) {
        return parse_i64_bytes(b).map_err(|_| {
            DecodeError::new(format!(
                "timestamp out of range (epoch milliseconds), found {}",
                quoted(&describe_text(s))
            ))
        });
    }
    parse_civil(b).map_err(|why| {
        let mut message = match why {
            Some(why) => format!("invalid timestamp ({why})"),
            None => String::from(
                "expected a timestamp (`yyyy-MM-dd HH:mm:ss[.SSS]` or epoch milliseconds)",
            ),
        };
        message.push_str(", found ");
        message.push_str(&quoted(&describe_text(s)));
        DecodeError::new(message)
    })
}

/// Reads exactly `n` ASCII digits at `*pos`.
fn digits(b: &[u8], pos: &mut usize, n: usize) -> Option<u32> {
    let chunk = b.get(*pos..*pos + n)?;
    let mut v = 0u32;
    for &c in chunk {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    *pos += n;
    Some(v)
}

/// Consumes the byte `want` at `*pos`.
fn expect(b: &[u8], pos: &mut usize, want: u8) -> Option<()> {
    if b.get(*pos) == Some(&want) {
        *pos += 1;
        Some(())
    } else {
        None
    }
}

/// Parses the civil (non-integer) forms. `Err(None)` means the text does not have a timestamp's
/// shape; `Err(Some(why))` means it does but a component is out of range.
fn parse_civil(b: &[u8]) -> Result<i64, Option<&'static str>> {
    let mut pos = 0;
    let year = digits(b, &mut pos, 4).ok_or(None)?;
    expect(b, &mut pos, b'-').ok_or(None)?;
    let month = digits(b, &mut pos, 2).ok_or(None)?;
    expect(b, &mut pos, b'-').ok_or(None)?;
    let day = digits(b, &mut pos, 2).ok_or(None)?;

    let mut ms_of_day: i64 = 0;
    let mut offset_ms: i64 = 0;
    if pos < b.len() {
        if !matches!(b[pos], b' ' | b'T' | b't') {
            return Err(None);
        }
        pos += 1;
        let hour = digits(b, &mut pos, 2).ok_or(None)?;
        expect(b, &mut pos, b':').ok_or(None)?;
        let minute = digits(b, &mut pos, 2).ok_or(None)?;
        expect(b, &mut pos, b':').ok_or(None)?;
        let second = digits(b, &mut pos, 2).ok_or(None)?;
        let mut millis = 0u32;
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            let start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                pos += 1;
            }
            let n = pos - start;
            if n == 0 || n > 9 {
                return Err(if n == 0 {
                    None
                } else {
                    Some("more than 9 fraction digits")
                });
            }
            // Milliseconds are the first three fraction digits (padded with zeros).
            for i in 0..3 {
                let d = b.get(start + i).filter(|_| i < n).map_or(0, |&c| c - b'0');
                millis = millis * 10 + u32::from(d);
            }
        }
        if hour > 23 {
            return Err(Some("hour out of range"));
        }
        if minute > 59 {
            return Err(Some("minute out of range"));
        }
        if second > 59 {
            return Err(Some("second out of range"));
        }
        ms_of_day = i64::from(((hour * 60 + minute) * 60 + second) * 1000 + millis);

        match b.get(pos) {
            None => {}
            Some(b'Z' | b'z') => pos += 1,
            Some(&sign @ (b'+' | b'-')) => {
                pos += 1;
                let oh = digits(b, &mut pos, 2).ok_or(None)?;
                expect(b, &mut pos, b':').ok_or(None)?;
                let om = digits(b, &mut pos, 2).ok_or(None)?;
                if oh > 23 || om > 59 {
                    return Err(Some("offset out of range"));
                }
                offset_ms = i64::from((oh * 60 + om) * 60_000);
                if sign == b'-' {
                    offset_ms = -offset_ms;
                }
            }
            Some(_) => return Err(None),
        }
        if pos != b.len() {
            return Err(None);
        }
    }

    if !(1..=12).contains(&month) {
        return Err(Some("month out of range"));
    }
    if day == 0 || day > days_in_month(i64::from(year), month) {
        return Err(Some("day out of range for the month"));
    }
    let days = days_from_civil(i64::from(year), month, day);
    Ok(days * MS_PER_DAY + ms_of_day - offset_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_with_a_pattern() {
        let pattern: &'static DatePattern =
            Box::leak(Box::new(DatePattern::parse("dd/MM/yyyy HH:mm").unwrap()));
        let how = ReadAs::Pattern(pattern);
        assert_eq!(
            parse_timestamp_as("14/11/2023 22:13", how),
            Ok(1_699_999_980_000)
        );
        // The canonical form, a number, a non-existent day: each refused with the pattern named.
        for bad in [
            "2023-11-14 22:13:00.000",
            "1700000000",
            "31/02/2023 10:00",
            "14/11/2023",
        ] {
            let err = parse_timestamp_as(bad, how).unwrap_err().to_string();
            assert!(
                err.contains("expected a timestamp written as `dd/MM/yyyy HH:mm`"),
                "{bad}: {err}"
            );
        }
        // As event time: in range, and the error names the field.
        let range = TimeRange::EVENT_TIME;
        assert_eq!(
            parse_event_time_as("01/01/1970 00:01", "ts", range, how),
            Ok(60_000)
        );
        let err = parse_event_time_as("01/01/1800 00:00", "ts", range, how)
            .unwrap_err()
            .to_string();
        assert!(err.contains("outside the accepted range"), "{err}");
    }

    #[test]
    fn timestamps_read_in_a_named_unit() {
        use EpochUnit::*;
        let at = |s: &str, how| parse_timestamp_as(s, how);
        // 2023-11-14 22:13:20 UTC.
        assert_eq!(
            at("1700000000", ReadAs::Epoch(Seconds)),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            at("1700000000.1239", ReadAs::Epoch(Seconds)),
            Ok(1_700_000_000_123)
        );
        assert_eq!(at("-1.5", ReadAs::Epoch(Seconds)), Ok(-1500));
        assert_eq!(
            at("1700000000000", ReadAs::Epoch(Millis)),
            Ok(1_700_000_000_000)
        );
        assert_eq!(
            at("1700000000000999", ReadAs::Epoch(Micros)),
            Ok(1_700_000_000_000)
        );
        assert_eq!(at("-1", ReadAs::Epoch(Micros)), Ok(-1));
        assert_eq!(
            at("1700000000000999999", ReadAs::Epoch(Nanos)),
            Ok(1_700_000_000_000)
        );
        // The default reads an integer as milliseconds; `text` refuses it.
        assert_eq!(at("1700000000", ReadAs::Auto), Ok(1_700_000_000));
        let err = at("1700000000", ReadAs::Text).unwrap_err().to_string();
        assert!(err.contains("expected a timestamp as text"), "{err}");
        assert_eq!(
            at("2023-11-14T22:13:20Z", ReadAs::Text),
            Ok(1_700_000_000_000)
        );
        // A unit refuses text, a fraction of milliseconds, and what overflows.
        let err = at("2023-11-14", ReadAs::Epoch(Seconds))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected epoch seconds"), "{err}");
        assert!(at("1.5", ReadAs::Epoch(Millis)).is_err());
        assert!(at("1e9", ReadAs::Epoch(Seconds)).is_err());
        assert!(at("", ReadAs::Epoch(Seconds)).is_err());
        assert!(at("9223372036854775807", ReadAs::Epoch(Seconds)).is_err());
        assert!(at("300000000000", ReadAs::Epoch(Seconds)).is_err()); // year 11476
        let err = parse_event_time_as("17", "ts", TimeRange::EVENT_TIME, ReadAs::Text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("field `ts`: "), "{err}");
    }

    #[test]
    fn iso_output_is_the_canonical_form_with_t_and_z() {
        let mut out = Vec::new();
        write_timestamp_iso(1_700_000_000_123, Some(b'"'), &mut out);
        assert_eq!(out, b"\"2023-11-14T22:13:20.123Z\"");
        out.clear();
        write_timestamp_iso(-62_198_755_200_001, None, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("T23:59:59.999Z"), "{text}");
        assert_eq!(parse_any("2023-11-14T22:13:20.123Z"), Ok(1_700_000_000_123));
    }

    #[test]
    fn cached_dates_write_what_render_writes() {
        let check = |ts: i64| {
            let (buf, len) = render(ts);
            let mut out = Vec::new();
            write_timestamp_bytes(ts, &mut out);
            assert_eq!(out, &buf[..len], "{ts}");
            out.clear();
            write_timestamp_quoted(ts, b'"', &mut out);
            assert_eq!(&out[1..out.len() - 1], &buf[..len], "{ts}");
            assert_eq!((out[0], out[out.len() - 1]), (b'"', b'"'));
        };
        // Days in order (the cache hits), jumps back and forth (it misses), the ends of the
        // years 0000 to 9999 and beyond them (no cache), every `i64` edge.
        let mut ts = 1_436_918_400_000 - 5 * MS_PER_DAY;
        for _ in 0..100_000 {
            check(ts);
            ts += 12_345_679;
        }
        let mut x: u64 = 0x7157_0000_0001;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check((x as i64) % 400_000_000_000_000);
            check((x as i64) % (MS_PER_DAY * 30));
        }
        for edge in [
            TimeRange::TIMESTAMPS.start,
            TimeRange::TIMESTAMPS.start - 1,
            TimeRange::TIMESTAMPS.end - 1,
            TimeRange::TIMESTAMPS.end,
            -1,
            0,
            i64::MIN,
            i64::MAX,
        ] {
            check(edge);
            check(edge);
        }
    }

    fn fmt(ts: i64) -> String {
        let mut s = String::new();
        format_timestamp(ts, &mut s);
        s
    }

    #[test]
    fn the_canonical_fast_path_agrees_with_the_general_parser() {
        // Every day of four years around a leap day and a century, at a few times of day,
        // and every single-byte change of one instant: the fast path either declines or
        // gives the general parser's value.
        let mut s = String::new();
        let start = days_from_civil(1899, 1, 1);
        for day in start..start + 4 * 366 {
            for ms in [0, 1, 999, 43_200_000, MS_PER_DAY - 1] {
                s.clear();
                format_timestamp(day * MS_PER_DAY + ms, &mut s);
                assert_eq!(
                    parse_canonical(s.as_bytes()),
                    Some(day * MS_PER_DAY + ms),
                    "{s}"
                );
            }
        }
        let base = b"2016-02-29 23:59:59.999".to_vec();
        for i in 0..base.len() {
            for c in [b'0', b'9', b'3', b'/', b' ', b'a', 0xff] {
                let mut b = base.clone();
                b[i] = c;
                let general = std::str::from_utf8(&b)
                    .ok()
                    .and_then(|t| parse_civil(t.as_bytes()).ok());
                if let Some(fast) = parse_canonical(&b) {
                    assert_eq!(Some(fast), general, "{:?}", String::from_utf8_lossy(&b));
                }
                if general.is_none() {
                    assert_eq!(parse_canonical(&b), None);
                }
            }
        }
        assert_eq!(parse_canonical(b"2015-02-29 00:00:00.000"), None);
        assert_eq!(parse_canonical(b"2015-07-15 00:00:00.0000"), None);
    }

    #[test]
    fn known_instants() {
        assert_eq!(fmt(0), "1970-01-01 00:00:00.000");
        assert_eq!(fmt(1_436_918_400_000), "2015-07-15 00:00:00.000");
        assert_eq!(
            fmt(1_436_918_400_000 + 45_296_789),
            "2015-07-15 12:34:56.789"
        );
        assert_eq!(fmt(-1), "1969-12-31 23:59:59.999");
        assert_eq!(fmt(-86_400_000), "1969-12-31 00:00:00.000");
        assert_eq!(fmt(951_782_400_000), "2000-02-29 00:00:00.000");
        assert_eq!(fmt(-2_203_891_200_000), "1900-03-01 00:00:00.000");
        assert_eq!(fmt(-62_167_219_200_000), "0000-01-01 00:00:00.000");
        assert_eq!(fmt(253_402_300_799_999), "9999-12-31 23:59:59.999");
    }

    #[test]
    fn out_of_range_years_fall_back_without_panicking() {
        assert_eq!(fmt(-62_167_219_200_001), "-0001-12-31 23:59:59.999");
        assert_eq!(fmt(253_402_300_800_000), "+10000-01-01 00:00:00.000");
        for ts in [i64::MIN, i64::MIN + 1, i64::MAX, i64::MAX - 1] {
            let s = fmt(ts);
            assert!(s.starts_with('+') || s.starts_with('-'), "{s}");
        }
        let mut bytes = Vec::new();
        write_timestamp_bytes(i64::MIN, &mut bytes);
        assert_eq!(String::from_utf8(bytes).unwrap(), fmt(i64::MIN));
    }

    #[test]
    fn civil_breakdown() {
        let c = civil_from_ms(-1);
        assert_eq!(
            c,
            Civil {
                year: 1969,
                month: 12,
                day: 31,
                hour: 23,
                minute: 59,
                second: 59,
                millis: 999
            }
        );
        let c = civil_from_ms(1_436_918_400_000 + 45_296_789);
        assert_eq!((c.year, c.month, c.day), (2015, 7, 15));
        assert_eq!((c.hour, c.minute, c.second, c.millis), (12, 34, 56, 789));
    }

    #[test]
    fn leap_years() {
        assert!(is_leap_year(2000));
        assert!(is_leap_year(2024));
        assert!(!is_leap_year(1900));
        assert!(!is_leap_year(2023));
        assert!(is_leap_year(0));
        assert!(is_leap_year(-4));
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(days_in_month(2023, 13), 0);
        assert!(parse_timestamp("2000-02-29").is_ok());
        assert!(parse_timestamp("2024-02-29 10:00:00").is_ok());
        assert!(parse_timestamp("1900-02-29").is_err());
        assert!(parse_timestamp("2023-02-29").is_err());
        assert_eq!(
            parse_timestamp("2000-03-01").unwrap() - parse_timestamp("2000-02-28").unwrap(),
            2 * MS_PER_DAY
        );
        assert_eq!(
            parse_timestamp("1900-03-01").unwrap() - parse_timestamp("1900-02-28").unwrap(),
            MS_PER_DAY
        );
    }

    #[test]
    fn days_round_trip_over_a_wide_range() {
        // Every day from year -1000 to 3000 maps back to itself and dates are consecutive.
        let start = days_from_civil(-1000, 1, 1);
        let end = days_from_civil(3000, 12, 31);
        let mut prev = civil_from_days(start - 1);
        for d in start..=end {
            let (y, m, day) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, day), d);
            assert!((1..=12).contains(&m) && (1..=days_in_month(y, m)).contains(&day));
            if day == 1 {
                assert_eq!(prev.2, days_in_month(prev.0, prev.1));
            } else {
                assert_eq!((prev.0, prev.1, prev.2 + 1), (y, m, day));
            }
            prev = (y, m, day);
        }
    }

    #[test]
    fn parse_forms() {
        let base = 1_436_918_400_000; // 2015-07-15 00:00:00 UTC
        assert_eq!(parse_timestamp("2015-07-15"), Ok(base));
        assert_eq!(parse_timestamp("2015-07-15 00:00:00"), Ok(base));
        assert_eq!(parse_timestamp("2015-07-15T00:00:00"), Ok(base));
        assert_eq!(
            parse_timestamp("2015-07-15 12:34:56.789"),
            Ok(base + 45_296_789)
        );
        assert_eq!(
            parse_timestamp("2015-07-15 12:34:56.7"),
            Ok(base + 45_296_700)
        );
        assert_eq!(
            parse_timestamp("2015-07-15 12:34:56.78"),
            Ok(base + 45_296_780)
        );
        assert_eq!(
            parse_timestamp("2015-07-15 12:34:56.789999999"),
            Ok(base + 45_296_789)
        );
        assert_eq!(parse_timestamp("2015-07-15T00:00:00Z"), Ok(base));
        assert_eq!(parse_timestamp("2015-07-15T00:00:00.000Z"), Ok(base));
        assert_eq!(
            parse_timestamp("2015-07-15T02:00:00+02:00"),
            Ok(base),
            "+02:00 is two hours ahead of UTC"
        );
        assert_eq!(
            parse_timestamp("2015-07-14T19:30:00.5-04:30"),
            Ok(base + 500)
        );
        assert_eq!(parse_timestamp("1436918400000"), Ok(base));
        assert_eq!(parse_timestamp("-1"), Ok(-1));
        assert_eq!(parse_timestamp("0"), Ok(0));
    }

    #[test]
    fn parse_rejects_malformed() {
        for bad in [
            "",
            " 2015-07-15",
            "2015-07-15 ",
            "2015-7-15",
            "15-07-15",
            "2015/07/15",
            "2015-07-15 1:00:00",
            "2015-07-15 10:00",
            "2015-07-15 10:00:00.",
            "2015-07-15 10:00:00.1234567890",
            "2015-07-15 10:00:00+02",
            "2015-07-15 10:00:00+0200",
            "2015-07-15 10:00:00Zx",
            "2015-07-15Z",
            "2015-13-01",
            "2015-00-10",
            "2015-04-31",
            "2015-07-00",
            "2015-07-15 24:00:00",
            "2015-07-15 23:60:00",
            "2015-07-15 23:59:60",
            "2015-07-15 10:00:00+24:00",
            "9223372036854775808",
            "-",
            "1.5",
            "now",
            "２０１５-07-15",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?} should be rejected");
        }
        let e = parse_timestamp("2015-13-01").unwrap_err();
        assert_eq!(
            e.message,
            "invalid timestamp (month out of range), found `\"2015-13-01\"`"
        );
        let e = parse_timestamp("now").unwrap_err();
        assert!(
            e.message.starts_with("expected a timestamp"),
            "{}",
            e.message
        );
    }

    #[test]
    fn timestamps_outside_the_years_0000_to_9999_are_rejected() {
        let first = TimeRange::TIMESTAMPS.start;
        let last = TimeRange::TIMESTAMPS.end - 1;
        assert_eq!(fmt(first), "0000-01-01 00:00:00.000");
        assert_eq!(fmt(last), "9999-12-31 23:59:59.999");
        assert_eq!(parse_timestamp(&first.to_string()), Ok(first));
        assert_eq!(parse_timestamp(&last.to_string()), Ok(last));
        assert_eq!(parse_timestamp("9999-12-31 23:59:59.999"), Ok(last));
        assert_eq!(parse_timestamp("0000-01-01"), Ok(first));
        for bad in [
            (first - 1).to_string(),
            (last + 1).to_string(),
            i64::MAX.to_string(),
            i64::MIN.to_string(),
            // An offset can push a four-digit year out of range.
            "0000-01-01T00:00:00+00:01".to_string(),
            "9999-12-31T23:59:59.999-00:01".to_string(),
        ] {
            let e = parse_timestamp(&bad).unwrap_err();
            assert_eq!(
                e.message,
                format!("timestamp outside the years 0000 to 9999, found `{bad:?}`")
            );
        }
    }

    #[test]
    fn event_times_outside_the_range_name_field_value_and_range() {
        let range = TimeRange::EVENT_TIME;
        assert_eq!(range.to_string(), "1900-01-01 .. 2200-01-01");
        assert_eq!(
            TimeRange { start: 0, end: 1 }.to_string(),
            "1970-01-01 .. 1970-01-01 00:00:00.001"
        );
        assert_eq!(parse_event_time("1900-01-01", "ts", range), Ok(range.start));
        assert_eq!(
            parse_event_time("2199-12-31 23:59:59.999", "ts", range),
            Ok(range.end - 1)
        );
        let e = parse_event_time("9999-12-31T00:00:00.000Z", "ts", range).unwrap_err();
        assert_eq!(
            e.message,
            "event time 9999-12-31T00:00:00.000Z of field `ts` is outside the accepted range \
             1900-01-01 .. 2200-01-01"
        );
        for bad in [
            "2200-01-01",
            "1899-12-31 23:59:59.999",
            "0001-01-01",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            let e = parse_event_time(bad, "ts", range).unwrap_err();
            assert_eq!(
                e.message,
                format!("event time {bad} of field `ts` is outside the accepted range {range}")
            );
        }
        // Text that is no timestamp at all: the parse error, with the field.
        let e = parse_event_time("soon", "ts", range).unwrap_err();
        assert!(
            e.message.starts_with("field `ts`: expected a timestamp"),
            "{e}"
        );
        // A wider range of the source's own.
        let wide = TimeRange {
            start: parse_timestamp("1800-01-01").unwrap(),
            end: range.end,
        };
        assert_eq!(
            parse_event_time("1850-06-01", "ts", wide),
            parse_timestamp("1850-06-01")
        );
        // Values from Rust are shown in the canonical form.
        let e = check_event_time(i64::MAX, "ts", range).unwrap_err();
        assert_eq!(
            e.message,
            "event time +292278994-08-17 07:12:55.807 of field `ts` is outside the accepted \
             range 1900-01-01 .. 2200-01-01"
        );
        assert_eq!(check_event_time(0, "ts", range), Ok(0));
    }

    #[test]
    fn format_parse_round_trip() {
        let mut x: u64 = 0x1234_5678_9abc_def0;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Spread over years 0000..=9999.
            let ts = (x % 315_537_897_600_000) as i64 - 62_167_219_200_000;
            let s = fmt(ts);
            assert_eq!(s.len(), 23, "{s}");
            assert_eq!(parse_timestamp(&s), Ok(ts), "{s}");
        }
        for ts in [
            -62_167_219_200_000,
            -1,
            0,
            1,
            951_868_799_999,
            253_402_300_799_999,
        ] {
            assert_eq!(parse_timestamp(&fmt(ts)), Ok(ts));
        }
    }

    #[test]
    fn fuzz_parse_never_panics() {
        let pieces = [
            "2015",
            "-",
            "07",
            "15",
            " ",
            "T",
            ":",
            "00",
            ".",
            "123456789",
            "Z",
            "+",
            "02:00",
            "9",
            "é",
            "😀",
            "99",
            "0",
            "1234567890",
            "\u{0}",
        ];
        let seeds = [
            "2015-07-15 12:34:56.789+02:00",
            "2000-02-29T00:00:00Z",
            "-1",
            "1900-01-01",
        ];
        let mut x: u64 = 0x0123_4567_89ab_cdef;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..30_000 {
            let mut s = String::new();
            if round % 2 == 0 {
                let seed = seeds[(next() % seeds.len() as u64) as usize];
                let chars: Vec<char> = seed.chars().collect();
                let at = (next() % (chars.len() as u64 + 1)) as usize;
                let cut = (next() % 3) as usize;
                s.extend(&chars[..at]);
                s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                s.extend(chars.iter().skip(at + cut));
            } else {
                for _ in 0..next() % 10 {
                    s.push_str(pieces[(next() % pieces.len() as u64) as usize]);
                }
            }
            if let Ok(ts) = parse_timestamp(&s) {
                // Anything accepted formats without panicking.
                let _ = fmt(ts);
            }
        }
    }
}
