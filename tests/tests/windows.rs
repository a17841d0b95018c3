//! Every window kind and every aggregate, on a file of events, against naive oracles written
//! here: hop, cumulate and session windows; count distinct, filtered aggregates, first and
//! last values. Fused and unfused plans and several parallelisms must agree.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};
use weir_tests::{build, format_ts, json_rows, run};

struct Event {
    key: String,
    user: i64,
    v: i64,
    ts: i64,
}

/// Events with timestamps a little out of order (within the 5 s watermark bound) and gaps
/// between bursts, so sessions split and merge.
fn events() -> Vec<Event> {
    let mut out = Vec::new();
    let mut state = 987_654_321u64;
    let mut t = 1_000_000i64;
    for i in 0..3000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Every 300 events a pause of 40 s ends every session.
        t += if i % 300 == 299 {
            40_000
        } else {
            100 + ((state >> 50) % 200) as i64
        };
        let jitter = ((state >> 33) % 2000) as i64;
        out.push(Event {
            key: format!("k{}", (state >> 40) % 5),
            user: ((state >> 20) % 40) as i64,
            v: ((state >> 10) % 1000) as i64,
            ts: t - jitter,
        });
    }
    out
}

fn write_events(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("events.jsonl");
    let lines: Vec<String> = events()
        .iter()
        .map(|e| {
            format!(
                r#"{{"key":"{}","user":{},"v":{},"ts":{}}}"#,
                e.key, e.user, e.v, e.ts
            )
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

/// The source has one reader whatever `--parallelism` (first/last values break ties of event
/// time by the file's order, which several readers do not keep, and lateness depends on it).
fn pipeline(path: &std::path::Path, window: &str) -> String {
    format!(
        "schema E {{ key: string, user: i64, v: i64, ts: timestamp }}\n\
         source e: E = file(path: \"{}\", parallelism: 1) format json event_time ts watermark 5s\n\
         let w = e |> key_by key |> window {window} |> aggregate {{\n\
             n: count(),\n\
             users: count(distinct user),\n\
             big: count(*) filter (where v >= 500),\n\
             big_sum: sum(v) filter (where v >= 900),\n\
             first: first_value(v),\n\
             last: last_value(v),\n\
             lo: min(v),\n\
         }}\n\
         sink w -> stdout() format json\n",
        path.display()
    )
}

#[derive(Default)]
struct Acc {
    n: i64,
    users: BTreeSet<i64>,
    big: i64,
    big_sum: Option<i64>,
    /// (event time, value) of the earliest and the latest record.
    first: Option<(i64, i64)>,
    last: Option<(i64, i64)>,
    lo: Option<i64>,
}

impl Acc {
    fn add(&mut self, e: &Event) {
        self.n += 1;
        self.users.insert(e.user);
        if e.v >= 500 {
            self.big += 1;
        }
        if e.v >= 900 {
            self.big_sum = Some(self.big_sum.unwrap_or(0) + e.v);
        }
        // By event time; a tie keeps the first arrival for `first`, the last for `last`.
        if self.first.is_none_or(|(t, _)| e.ts < t) {
            self.first = Some((e.ts, e.v));
        }
        if self.last.is_none_or(|(t, _)| e.ts >= t) {
            self.last = Some((e.ts, e.v));
        }
        self.lo = Some(self.lo.map_or(e.v, |m| m.min(e.v)));
    }

    fn row(&self, key: &str, start: i64, end: i64) -> String {
        json!({"key": key, "window_start": format_ts(start), "window_end": format_ts(end), "n": self.n,
               "users": self.users.len(), "big": self.big, "big_sum": self.big_sum, "first": self.first.map(|f| f.1),
               "last": self.last.map(|l| l.1), "lo": self.lo})
        .to_string()
    }
}

/// Oracle for fixed windows: `windows(ts)` lists the (start, end) of each window holding ts.
/// Records are added in file order, which is arrival order (first/last break ties by it).
fn fixed_oracle(windows: impl Fn(i64) -> Vec<(i64, i64)>) -> Vec<String> {
    let mut groups: BTreeMap<(String, i64, i64), Acc> = BTreeMap::new();
    for e in events() {
        for (start, end) in windows(e.ts) {
            groups
                .entry((e.key.clone(), start, end))
                .or_default()
                .add(&e);
        }
    }
    let mut rows: Vec<String> = groups
        .iter()
        .map(|((k, s, e), acc)| acc.row(k, *s, *e))
        .collect();
    rows.sort();
    rows
}

fn check(name: &str, window: &str, want: Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let text = pipeline(&write_events(dir.path()), window);
    assert!(
        want.len() > 20,
        "{name}: the oracle has too few rows to prove much"
    );
    for (no_fusion, parallelism) in [(false, "1"), (false, "3"), (true, "2")] {
        let result = run(
            &build(name, &text, no_fusion),
            &["--parallelism", parallelism],
            dir.path(),
            None,
        );
        assert!(result.success, "{}", result.stderr);
        let mut got: Vec<String> = json_rows(&result.stdout)
            .iter()
            .map(Value::to_string)
            .collect();
        got.sort();
        assert_eq!(
            got.len(),
            want.len(),
            "{name}: row count (parallelism {parallelism})"
        );
        assert_eq!(
            got, want,
            "{name}: parallelism {parallelism}, no_fusion {no_fusion}"
        );
        assert!(result.stderr.contains("late") && !result.stderr.contains("panicked"));
    }
}

#[test]
fn hopping_windows() {
    let want = fixed_oracle(|ts| {
        let mut out = Vec::new();
        let mut start = ts.div_euclid(2000) * 2000;
        while start + 6000 > ts {
            out.push((start, start + 6000));
            start -= 2000;
        }
        out
    });
    check("win_hop", "hop(size: 6s, slide: 2s)", want);
}

#[test]
fn cumulating_windows() {
    let want = fixed_oracle(|ts| {
        let start = ts.div_euclid(10_000) * 10_000;
        (1..=5)
            .map(|k| (start, start + k * 2000))
            .filter(|(_, end)| *end > ts)
            .collect()
    });
    check("win_cumulate", "cumulate(step: 2s, size: 10s)", want);
}

#[test]
fn session_windows() {
    // Sessions per key: sort each key's events by time and cut where the gap is > 3 s (sessions
    // that touch merge, as in Flink). That
    // equals incremental merging because no event is late (bursts end with a 40 s pause, far
    // beyond the 5 s bound). first/last follow event time, ties arrival order, within a session.
    let gap = 3000;
    let all = events();
    let mut by_key: BTreeMap<String, Vec<(i64, usize)>> = BTreeMap::new();
    for (i, e) in all.iter().enumerate() {
        by_key.entry(e.key.clone()).or_default().push((e.ts, i));
    }
    let mut want = Vec::new();
    for (key, mut list) in by_key {
        list.sort();
        let mut sessions: Vec<Vec<usize>> = Vec::new();
        let mut last_end = i64::MIN;
        for (ts, i) in list {
            if ts > last_end {
                sessions.push(Vec::new());
            }
            sessions.last_mut().unwrap().push(i);
            last_end = last_end.max(ts + gap);
        }
        for mut members in sessions {
            let start = members.iter().map(|i| all[*i].ts).min().unwrap();
            let end = members.iter().map(|i| all[*i].ts).max().unwrap() + gap;
            members.sort(); // arrival order
            let mut acc = Acc::default();
            for i in members {
                acc.add(&all[i]);
            }
            want.push(acc.row(&key, start, end));
        }
    }
    want.sort();
    check("win_session", "session(gap: 3s)", want);
}

#[test]
fn late_records_are_counted_not_aggregated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.jsonl");
    // The 4th record is 20 s behind with a 1 s bound: its window has fired.
    let lines = [(1, 1000), (1, 12_000), (1, 25_000), (1, 2000), (1, 26_000)];
    let text: Vec<String> = lines
        .iter()
        .map(|(k, ts)| format!(r#"{{"k":{k},"ts":{ts}}}"#))
        .collect();
    std::fs::write(&path, text.join("\n")).unwrap();
    // A file's watermarks come every 256 records, so pad the file with on-time records to
    // make the watermark pass before the late one arrives.
    let mut padded: Vec<String> = text.iter().take(2).cloned().collect();
    padded.extend((0..300).map(|i| format!(r#"{{"k":2,"ts":{}}}"#, 20_000 + i)));
    padded.extend(text.iter().skip(2).cloned());
    std::fs::write(&path, padded.join("\n")).unwrap();
    let pipeline = format!(
        "schema E {{ k: i64, ts: timestamp }}\n\
         source e: E = file(path: \"{}\") format json event_time ts watermark 1s\n\
         sink e |> window tumble(10s) |> aggregate by k {{ n: count() }} -> stdout() format json\n",
        path.display()
    );
    let result = run(&build("win_late", &pipeline, false), &[], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let rows = json_rows(&result.stdout);
    let ones: Vec<&Value> = rows.iter().filter(|r| r["k"] == 1).collect();
    // The record at 2000 came after the watermark passed 10 s: the [0, 10s) window holds only
    // the record at 1000.
    assert_eq!(ones.len(), 3, "{rows:?}");
    assert_eq!(ones[0]["n"], 1, "{rows:?}");
    assert_eq!(ones[2]["n"], 2, "{rows:?}");
    assert!(
        result
            .stderr
            .lines()
            // The summary's columns end with: records in, records out, late, wm lag.
            .any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                l.contains("aggregate by k") && cols.len() >= 2 && cols[cols.len() - 2] == "1"
            }),
        "{}",
        result.stderr
    );
}

#[test]
fn allowed_lateness_updates_a_fired_window() {
    // As in `late_records_are_counted_not_aggregated`, the record at 2 s arrives after its
    // window fired; with 30 s of allowed lateness it still counts: the window's row is emitted
    // again (stdout shows both versions) and the file sink keeps the final one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.jsonl");
    let mut lines: Vec<String> = vec![
        r#"{"k":1,"ts":1000}"#.into(),
        r#"{"k":1,"ts":12000}"#.into(),
    ];
    lines.extend((0..300).map(|i| format!(r#"{{"k":2,"ts":{}}}"#, 20_000 + i)));
    lines.extend([
        r#"{"k":1,"ts":25000}"#.into(),
        r#"{"k":1,"ts":2000}"#.into(),
        r#"{"k":1,"ts":26000}"#.into(),
    ]);
    std::fs::write(&path, lines.join("\n")).unwrap();
    let out = dir.path().join("table.jsonl");
    let pipeline = format!(
        "schema E {{ k: i64, ts: timestamp }}\n\
         source e: E = file(path: \"{}\") format json event_time ts watermark 1s\n\
         let w = e |> window tumble(10s, lateness: 30s) |> aggregate by k {{ n: count() }}\n\
         sink w -> stdout() format json\n\
         sink w -> file(path: \"{}\") format json\n",
        path.display(),
        out.display()
    );
    let result = run(
        &build("win_lateness", &pipeline, false),
        &[],
        dir.path(),
        None,
    );
    assert!(result.success, "{}", result.stderr);
    let changes = json_rows(&result.stdout);
    let first_window: Vec<i64> = changes
        .iter()
        .filter(|r| r["k"] == 1 && r["window_start"] == "1970-01-01 00:00:00.000")
        .map(|r| {
            assert_eq!(r["op"], "+U");
            r["n"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(first_window, vec![1, 2], "{changes:?}");
    let table = json_rows(&std::fs::read_to_string(&out).unwrap());
    let row = table
        .iter()
        .find(|r| r["k"] == 1 && r["window_start"] == "1970-01-01 00:00:00.000")
        .unwrap();
    assert_eq!(row["n"], 2);
    assert_eq!(table.len(), 4, "{table:?}"); // k1: [0,10) [10,20) [20,30); k2: [20,30)
}

#[test]
fn late_records_go_to_a_named_side_output() {
    // The same input as above: the record at 2 s is late for [0, 10 s). Declared with
    // `late: too_late`, it arrives on that stream, which is sunk like any other.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("late.jsonl");
    let mut lines: Vec<String> = vec![
        r#"{"k":1,"ts":1000,"v":"a"}"#.into(),
        r#"{"k":1,"ts":12000,"v":"b"}"#.into(),
    ];
    lines.extend((0..300).map(|i| format!(r#"{{"k":2,"ts":{},"v":"x"}}"#, 20_000 + i)));
    lines.extend([
        r#"{"k":1,"ts":25000,"v":"c"}"#.into(),
        r#"{"k":1,"ts":2000,"v":"late"}"#.into(),
    ]);
    std::fs::write(&path, lines.join("\n")).unwrap();
    let late_file = dir.path().join("late_out.jsonl");
    let pipeline = format!(
        "schema E {{ k: i64, ts: timestamp, v: string }}\n\
         source e: E = file(path: \"{}\", parallelism: 1) format json event_time ts watermark 1s\n\
         let w = e |> window tumble(10s, late: too_late) |> aggregate by k {{ n: count() }}\n\
         sink w -> stdout() format json\n\
         sink too_late |> select {{ k, ts, v }} -> file(path: \"{}\") format json\n",
        path.display(),
        late_file.display()
    );
    for no_fusion in [false, true] {
        let result = run(
            &build("win_late_output", &pipeline, no_fusion),
            &["--parallelism", "2"],
            dir.path(),
            None,
        );
        assert!(result.success, "{}", result.stderr);
        let late = json_rows(&std::fs::read_to_string(&late_file).unwrap());
        assert_eq!(
            late,
            vec![json!({"k": 1, "ts": "1970-01-01 00:00:02.000", "v": "late"})]
        );
        let rows = json_rows(&result.stdout);
        assert_eq!(rows.iter().filter(|r| r["k"] == 1).count(), 3);
    }
}

/// Records exactly `gap` apart are one session, as in Flink (a session window of a record
/// is `[ts, ts + gap)`, and windows that touch merge): 0 s, 10 s and 20 s make one session
/// `[0 s, 30 s)`; 41 s starts another.
#[test]
fn sessions_that_touch_merge() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = [0i64, 10_000, 20_000, 41_000]
        .iter()
        .map(|ts| format!("{{\"k\":\"a\",\"ts\":{}}}\n", 1_700_000_000_000 + ts))
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), lines).unwrap();
    let text = "schema E { k: string, ts: timestamp }\n\
                source e: E = file(path: \"in.jsonl\") event_time ts watermark 0s\n\
                let s = e |> key_by k |> window session(gap: 10s) |> aggregate { n: count() }\n\
                sink s -> file(path: \"out.jsonl\") format json\n";
    let binary = weir_tests::build("win_session_touch", text, false);
    let out = weir_tests::run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let got: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let counts: Vec<(i64, String, String)> = got
        .iter()
        .map(|r| {
            (
                r["n"].as_i64().unwrap(),
                r["window_start"].as_str().unwrap().to_string(),
                r["window_end"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        vec![
            (
                3,
                "2023-11-14 22:13:20.000".to_string(),
                "2023-11-14 22:13:50.000".to_string()
            ),
            (
                1,
                "2023-11-14 22:14:01.000".to_string(),
                "2023-11-14 22:14:11.000".to_string()
            ),
        ]
    );
}

/// A regular file's watermarks come at the same records whatever the speed of the run (every
/// 256 records: a file is read to its end and never trickles), so which records are late and
/// which keys a TTL expires do not depend on it: a run paced at 400 records a second gives
/// the rows of a run at full speed. (With watermarks also on the wall clock, as stdin has
/// them, the paced run, which reads in bursts of 64 records every 160 ms, saw one every 128
/// records and dropped other late records.)
#[test]
fn a_file_gives_the_same_late_records_and_expiries_at_any_speed() {
    const PIPELINE: &str = r#"
schema Bid { auction: i64, bidder: i64, price: i64, ts: timestamp }
source bids: Bid = file(path: "bids.jsonl") format json
    event_time ts watermark 1s

sink bids |> aggregate by auction { n: count(), total: sum(price) } ttl(2s)
    -> file(path: "out/sums.jsonl")
sink bids |> key_by auction |> window tumble(size: 5s) |> aggregate { n: count() }
    |> select { auction, n, window_start } -> file(path: "out/windows.jsonl")
"#;
    let mut rng = weir_tests::Rng(5);
    let mut text = String::new();
    // 10 ms apart, up to 3 s out of order: with a 1 s bound some are late.
    for i in 0..2_400i64 {
        let ts = 1_700_000_000_000 + i * 10 - rng.below(3_000) as i64;
        let (auction, bidder, price) = (rng.below(50), rng.below(30), rng.below(1_000));
        text.push_str(&format!(
            "{{\"auction\":{auction},\"bidder\":{bidder},\"price\":{price},\"ts\":{ts}}}\n"
        ));
    }
    let binary = build("file_watermarks_by_count", PIPELINE, false);
    let outputs = |pace: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bids.jsonl"), &text).unwrap();
        let mut args = vec!["--quiet", "--parallelism", "1"];
        if let Some(rate) = pace {
            args.extend(["--rate-limit", rate]);
        }
        let out = run(&binary, &args, dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        ["sums", "windows"].map(|file| {
            let mut lines: Vec<String> =
                std::fs::read_to_string(dir.path().join("out").join(format!("{file}.jsonl")))
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect();
            lines.sort();
            lines
        })
    };
    let fast = outputs(None);
    let counted = |rows: &[String]| -> i64 {
        rows.iter()
            .map(|line| {
                serde_json::from_str::<Value>(line).unwrap()["n"]
                    .as_i64()
                    .unwrap()
            })
            .sum()
    };
    // Both depend on the watermarks: keys expired, and late records were dropped.
    assert!(counted(&fast[0]) < 2_400, "no key expired");
    assert!(counted(&fast[1]) < 2_400, "no record was late");
    let paced = outputs(Some("400"));
    assert_eq!(
        paced[0], fast[0],
        "the TTL'd sums differ at 400 records a second"
    );
    assert_eq!(
        paced[1], fast[1],
        "the windows differ at 400 records a second"
    );
}
