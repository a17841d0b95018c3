//! Timestamps outside the documented ranges: records whose event time is a sentinel
//! (`9999-12-31`, `0001-01-01`, the `i64` extremes, as text and as integers) or whose other
//! timestamps are outside the years 0000 to 9999 are dead letters with their reasons, and never
//! move the watermark: every valid record lands in the window a naive oracle puts it in, none
//! late. A source may widen its event-time range (`event_time_range`), here to the 1800s, where
//! times are negative and windows still align to the epoch.

use std::collections::BTreeMap;

use serde_json::Value;
use weir_tests::{build, format_ts, json_rows, run, Rng};

/// 2015-07-15 00:00:00 UTC.
const BASE: i64 = 1_436_918_400_000;
/// 1850-03-01 00:00:00 UTC.
const OLD_BASE: i64 = -3_781_728_000_000;
const WINDOW: i64 = 10_000;
const DEFAULT_RANGE: &str = "1900-01-01 .. 2200-01-01";

/// One valid input record.
#[derive(Clone, Debug)]
struct Event {
    user: String,
    amount: i64,
    ts: i64,
    created: i64,
}

/// `yyyy-MM-ddTHH:mm:ss.SSSZ`, the ISO form with a zone.
fn iso(ms: i64) -> String {
    format_ts(ms).replacen(' ', "T", 1) + "Z"
}

/// Valid events: times rising by 0..80 ms, each up to 900 ms out of order (the watermark delay
/// is 1 s, so none is late on its own), `created` a day earlier.
fn events(base: i64, n: usize, seed: u64) -> Vec<Event> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
    let mut now = base;
    (0..n)
        .map(|_| {
            now += rng.below(80) as i64;
            let ts = now - rng.below(900) as i64;
            Event {
                user: format!("u{}", rng.below(5)),
                amount: rng.below(1000) as i64,
                ts,
                created: ts - 86_400_000,
            }
        })
        .collect()
}

/// A JSON line; `i` picks between text and integer timestamps.
fn json_line(e: &Event, i: usize) -> String {
    let ts = if i.is_multiple_of(2) {
        format!("\"{}\"", iso(e.ts))
    } else {
        e.ts.to_string()
    };
    let created = if i.is_multiple_of(3) {
        e.created.to_string()
    } else {
        format!("\"{}\"", format_ts(e.created))
    };
    format!(
        r#"{{"user":"{}","amount":{},"ts":{ts},"created":{created}}}"#,
        e.user, e.amount
    )
}

/// A CSV line (`user,amount,ts,created`).
fn csv_line(e: &Event, i: usize) -> String {
    let ts = if i.is_multiple_of(2) {
        format_ts(e.ts)
    } else {
        e.ts.to_string()
    };
    format!("{},{},{ts},{}", e.user, e.amount, format_ts(e.created))
}

/// Interleaves `bad` lines (each with the reason it must be rejected for) into the valid
/// lines, the first early so that before bounds existed it pushed the watermark past all the
/// rest. Returns the file's text and, per bad line, its 1-based line number and reason.
fn interleave(
    header: Option<&str>,
    good: &[String],
    bad: &[(String, String)],
) -> (String, Vec<(i64, String)>) {
    let mut text = String::new();
    let mut line = 0;
    if let Some(h) = header {
        text.push_str(h);
        text.push('\n');
        line += 1;
    }
    let mut expected = Vec::new();
    let gap = good.len() / (bad.len() + 1);
    let mut bad = bad.iter();
    for (i, g) in good.iter().enumerate() {
        if i % gap == 5 {
            if let Some((b, reason)) = bad.next() {
                text.push_str(b);
                text.push('\n');
                line += 1;
                expected.push((line, reason.clone()));
            }
        }
        text.push_str(g);
        text.push('\n');
        line += 1;
    }
    assert!(bad.next().is_none(), "every bad line was placed");
    (text, expected)
}

/// The rows a tumbling 10 s window per user must give: user, start, end, count, sum, latest
/// `created`; computed directly from the valid events.
fn oracle(events: &[Event]) -> Vec<(String, String, String, i64, i64, String)> {
    let mut groups: BTreeMap<(String, i64), (i64, i64, i64)> = BTreeMap::new();
    for e in events {
        let start = e.ts.div_euclid(WINDOW) * WINDOW;
        let g = groups
            .entry((e.user.clone(), start))
            .or_insert((0, 0, i64::MIN));
        g.0 += 1;
        g.1 += e.amount;
        g.2 = g.2.max(e.created);
    }
    groups
        .into_iter()
        .map(|((user, start), (n, total, latest))| {
            (
                user,
                format_ts(start),
                format_ts(start + WINDOW),
                n,
                total,
                format_ts(latest),
            )
        })
        .collect()
}

/// The rows a sink wrote, sorted like the oracle's.
fn rows(path: &std::path::Path) -> Vec<(String, String, String, i64, i64, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let s = |v: &Value| v.as_str().expect("a string").to_string();
    let mut out: Vec<_> = json_rows(&text)
        .iter()
        .map(|r| {
            (
                s(&r["user"]),
                s(&r["window_start"]),
                s(&r["window_end"]),
                r["n"].as_i64().unwrap(),
                r["total"].as_i64().unwrap(),
                s(&r["latest"]),
            )
        })
        .collect();
    out.sort();
    out
}

/// The dead letters of a file: (line, reason).
fn dead_letters(path: &std::path::Path) -> Vec<(i64, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    json_rows(&text)
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn outside(value: &str, range: &str) -> String {
    format!("event time {value} of field `ts` is outside the accepted range {range}")
}

#[test]
fn timestamps_outside_the_ranges_are_dead_letters_and_valid_records_are_never_late() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (max, min) = (i64::MAX.to_string(), i64::MIN.to_string());

    // JSON lines, default range.
    let json_events = events(BASE, 3000, 1);
    let good: Vec<String> = json_events
        .iter()
        .enumerate()
        .map(|(i, e)| json_line(e, i))
        .collect();
    let row = |ts: &str, created: &str| {
        format!(r#"{{"user":"u1","amount":7,"ts":{ts},"created":{created}}}"#)
    };
    let ok_created = "\"2015-07-14 00:00:00.000\"";
    let bad_json: Vec<(String, String)> = [
        (
            "\"9999-12-31\"",
            ok_created,
            outside("9999-12-31", DEFAULT_RANGE),
        ),
        (&max, ok_created, outside(&max, DEFAULT_RANGE)),
        (&min, ok_created, outside(&min, DEFAULT_RANGE)),
        (
            "\"9999-12-31T00:00:00.000Z\"",
            ok_created,
            outside("9999-12-31T00:00:00.000Z", DEFAULT_RANGE),
        ),
        (
            "\"0001-01-01 00:00:00\"",
            ok_created,
            outside("0001-01-01 00:00:00", DEFAULT_RANGE),
        ),
        (
            "\"9223372036854775807\"",
            ok_created,
            outside("9223372036854775807", DEFAULT_RANGE),
        ),
        (
            "\"2200-01-01\"",
            ok_created,
            outside("2200-01-01", DEFAULT_RANGE),
        ),
        (
            "\"1899-12-31T23:59:59.999Z\"",
            ok_created,
            outside("1899-12-31T23:59:59.999Z", DEFAULT_RANGE),
        ),
        (
            "253402300800000",
            ok_created,
            outside("253402300800000", DEFAULT_RANGE),
        ),
        (
            "99999999999999999999",
            ok_created,
            "field `ts`: integer out of range (64-bit), found `99999999999999999999`".into(),
        ),
        // A timestamp that is not the event time: the years 0000 to 9999 apply.
        (
            "1436918400000",
            &max,
            format!("field `created`: timestamp outside the years 0000 to 9999, found `{max}`"),
        ),
        (
            "1436918400000",
            "\"9999-12-31T23:59:59.999-01:00\"",
            "field `created`: timestamp outside the years 0000 to 9999, found \
             `\"9999-12-31T23:59:59.999-01:00\"`"
                .into(),
        ),
    ]
    .into_iter()
    .map(|(ts, created, reason)| (row(ts, created), reason))
    .collect();
    let (json_text, json_dead) = interleave(None, &good, &bad_json);
    std::fs::write(dir.path().join("events.jsonl"), json_text).unwrap();

    // CSV, default range.
    let csv_events = events(BASE + 3_600_000, 2000, 2);
    let good: Vec<String> = csv_events
        .iter()
        .enumerate()
        .map(|(i, e)| csv_line(e, i))
        .collect();
    let bad_csv: Vec<(String, String)> = [
        "9999-12-31 00:00:00.000",
        &max,
        &min,
        "0001-01-01",
        "2200-01-01 00:00:00",
    ]
    .into_iter()
    .map(|ts| {
        (
            format!("u2,3,{ts},2015-07-14 00:00:00"),
            outside(ts, DEFAULT_RANGE),
        )
    })
    .collect();
    let (csv_text, csv_dead) = interleave(Some("user,amount,ts,created"), &good, &bad_csv);
    std::fs::write(dir.path().join("events.csv"), csv_text).unwrap();

    // JSON lines from the 1850s: negative times, a widened range.
    let old_events = events(OLD_BASE, 1500, 3);
    let good: Vec<String> = old_events
        .iter()
        .enumerate()
        .map(|(i, e)| json_line(e, i))
        .collect();
    let wide = "1800-01-01 .. 2200-01-01";
    let bad_old: Vec<(String, String)> = [
        ("\"9999-12-31\"", outside("9999-12-31", wide)),
        (
            "\"1799-12-31 23:59:59\"",
            outside("1799-12-31 23:59:59", wide),
        ),
        (&min, outside(&min, wide)),
    ]
    .into_iter()
    .map(|(ts, reason)| (row(ts, "\"1850-01-01 00:00:00\""), reason))
    .collect();
    let (old_text, old_dead) = interleave(None, &good, &bad_old);
    std::fs::write(dir.path().join("old.jsonl"), old_text).unwrap();

    let window = "|> key_by user\n    |> window tumble(10s)\n    \
                  |> aggregate { n: count(), total: sum(amount), latest: max(created) }";
    let text = format!(
        "schema Event {{ user: string, amount: i64, ts: timestamp, created: timestamp }}\n\
         source json_events: Event = file(path: \"{}\", dead_letters: \"{}\") format json\n    \
             event_time ts watermark 1s\n\
         source csv_events: Event = file(path: \"{}\", dead_letters: \"{}\") \
             format csv(header: true)\n    event_time ts watermark 1s\n\
         source old_events: Event = file(path: \"{}\", dead_letters: \"{}\", \
             event_time_range: \"{wide}\") format json\n    event_time ts watermark 1s\n\
         let json_windows = json_events {window}\n\
         let csv_windows = csv_events {window}\n\
         let old_windows = old_events {window}\n\
         sink json_windows -> file(path: \"{}\") format json\n\
         sink csv_windows -> file(path: \"{}\") format json\n\
         sink old_windows -> file(path: \"{}\") format json\n",
        path("events.jsonl"),
        path("json_dead.jsonl"),
        path("events.csv"),
        path("csv_dead.jsonl"),
        path("old.jsonl"),
        path("old_dead.jsonl"),
        path("json_out.jsonl"),
        path("csv_out.jsonl"),
        path("old_out.jsonl"),
    );
    let binary = build("time_bounds", &text, false);
    let result = run(&binary, &[], dir.path(), None);
    assert!(result.success, "{}", result.stderr);

    assert_eq!(dead_letters(&dir.path().join("json_dead.jsonl")), json_dead);
    assert_eq!(dead_letters(&dir.path().join("csv_dead.jsonl")), csv_dead);
    assert_eq!(dead_letters(&dir.path().join("old_dead.jsonl")), old_dead);
    let n_dead = json_dead.len() + csv_dead.len() + old_dead.len();
    assert!(
        result.stderr.contains(&format!("dead letters: {n_dead}")),
        "{}",
        result.stderr
    );

    // Every valid record in its window: the rows equal the oracle's, so none was late.
    assert_eq!(
        rows(&dir.path().join("json_out.jsonl")),
        oracle(&json_events)
    );
    assert_eq!(rows(&dir.path().join("csv_out.jsonl")), oracle(&csv_events));
    let old = rows(&dir.path().join("old_out.jsonl"));
    assert!(old[0].1.starts_with("1850-03-0"), "{:?}", old[0]);
    assert_eq!(old, oracle(&old_events));
    // The summary agrees: the windows took in every valid record and counted none late.
    let mut records_in = 0;
    for line in result.stderr.lines().filter(|l| l.contains(" aggregate {")) {
        let columns: Vec<&str> = line.split_whitespace().rev().take(4).collect();
        // Reversed: wm lag, late, records out, records in.
        assert_eq!(columns[1], "0", "late records: {line}");
        records_in += columns[3].parse::<usize>().expect("records in");
    }
    assert_eq!(
        records_in,
        json_events.len() + csv_events.len() + old_events.len(),
        "{}",
        result.stderr
    );
}
