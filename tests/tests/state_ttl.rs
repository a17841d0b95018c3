//! State TTL of dedup, top-N and unbounded aggregates (`ttl(10s)`): a key's state is dropped
//! once the watermark passes its last write plus the TTL, so a key seen again later starts
//! fresh (dedup emits its row again, top-N fills its ranks again, an aggregate counts from
//! zero). Checked against a naive reference over input whose expiries do not depend on when
//! watermarks are sent (`weir_tests::ttl_events`), and on a small hand-written input.

use serde_json::Value;
use weir_tests::{
    build, json_rows, run, ttl_events, ttl_expected, ttl_expected_sums, TTL_PIPELINE,
};

/// A file's JSON lines as sorted texts (keys in one order).
fn table(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows: Vec<String> = json_rows(&text).iter().map(Value::to_string).collect();
    rows.sort();
    rows
}

#[test]
fn a_key_seen_again_after_its_ttl_starts_fresh() {
    let (events, text) = ttl_events(2000, 600);
    let (first, top, generations) = ttl_expected(&events);
    let sums = ttl_expected_sums(&events);
    // Every id comes back many times after its state expired.
    assert!(generations > 5 * 2000, "{generations} generations");
    let binary = build("ttl_dedup_top", TTL_PIPELINE, false);
    for parallelism in ["1", "3"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();
        let out = run(&binary, &["--parallelism", parallelism], dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        assert_eq!(
            table(&dir.path().join("first.jsonl")),
            first,
            "dedup, parallelism {parallelism}"
        );
        assert_eq!(
            table(&dir.path().join("top.jsonl")),
            top,
            "top, parallelism {parallelism}"
        );
        assert_eq!(
            table(&dir.path().join("sums.jsonl")),
            sums,
            "aggregate, parallelism {parallelism}"
        );
    }
    // The same pipeline without the TTL keeps each id's first record: the check above would
    // catch a TTL that never expires.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();
    let forever = build("ttl_none", &TTL_PIPELINE.replace(" ttl(10s)", ""), false);
    let out = run(&forever, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let kept = table(&dir.path().join("first.jsonl"));
    assert_eq!(kept.len(), first.len());
    assert_ne!(kept, first);
    let totals = table(&dir.path().join("sums.jsonl"));
    assert_eq!(totals.len(), sums.len());
    assert_ne!(totals, sums);
}

/// An unbounded aggregate with a TTL on a small hand-written input: key `a` goes quiet for
/// longer than the TTL and comes back. Flink's `table.exec.state.ttl` rule: expiry emits
/// nothing, and the key's next record starts a fresh aggregate whose row replaces the old one.
/// Filler records of key `z` (one every 100 ms of event time) move the watermark on (a file
/// source sends one every 256 records) and keep `z` alive throughout.
#[test]
fn an_aggregate_key_that_comes_back_after_its_ttl_counts_from_zero() {
    const PIPELINE: &str = r#"
schema E { k: string, price: i64, ts: timestamp }
source e: E = file(path: "events.jsonl", parallelism: 1) format json
    event_time ts watermark 1s
let sums = e |> aggregate by k { n: count(), total: sum(price) } ttl(10s)
sink sums -> stdout()
sink sums -> file(path: "sums.jsonl")
"#;
    let base = 1_700_000_000_000i64;
    let mut lines = Vec::new();
    let mut line = |k: &str, price: i64, ms: i64| {
        lines.push(format!(
            "{{\"k\":\"{k}\",\"price\":{price},\"ts\":{}}}",
            base + ms
        ));
    };
    line("a", 5, 0);
    line("a", 7, 1_000);
    // 40 s of filler: `a`, last written at 1 s, expires once the watermark passes 11 s.
    for i in 0..400 {
        line("z", 1, 1_100 + i * 100);
    }
    line("a", 11, 41_500); // a fresh aggregate: n 1, total 11 (not n 3, total 23)
    for i in 0..300 {
        line("z", 1, 41_600 + i * 100);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), lines.join("\n") + "\n").unwrap();
    let binary = build("ttl_aggregate_small", PIPELINE, false);
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    // The final table: `a` as its second life left it, `z` never expired.
    assert_eq!(
        table(&dir.path().join("sums.jsonl")),
        vec![
            serde_json::json!({"k": "a", "n": 1, "total": 11}).to_string(),
            serde_json::json!({"k": "z", "n": 700, "total": 700}).to_string(),
        ]
    );
    // The changes of `a`: its first life (a flush may fall between its two records), then
    // the fresh row. Nothing is emitted when it expires.
    let a: Vec<Value> = json_rows(&out.stdout)
        .into_iter()
        .filter(|r| r["k"] == "a")
        .collect();
    let row =
        |n: i64, total: i64| serde_json::json!({"op": "+U", "k": "a", "n": n, "total": total});
    assert!(
        a == vec![row(2, 12), row(1, 11)] || a == vec![row(1, 5), row(2, 12), row(1, 11)],
        "{a:?}"
    );
}

/// Processing-time TTL (`ttl(200ms, time: processing)`) on a stream without event time: the
/// file is read at 100 records a second, key `a` comes twice, goes quiet for 1.5 s (filler
/// records of `z`) and comes back. Each operator expires it by the wall clock and starts it
/// afresh; the same pipeline without the TTLs keeps its first life. Only `a`'s rows are
/// asserted, and the gap is 7 times the TTL, so a slow machine cannot change the verdict.
#[test]
fn on_processing_time_a_key_quiet_for_longer_than_its_ttl_starts_afresh() {
    const PIPELINE: &str = r#"
schema E { k: string, v: i64 }
source e: E = file(path: "events.jsonl", parallelism: 1) format json
let a = e |> filter k = "a"
sink e |> aggregate by k { n: count(), total: sum(v) } ttl(200ms, time: processing) -> file(path: "sums.jsonl")
sink e |> dedup by k keep first ttl(200ms, time: processing) -> file(path: "first.jsonl")
sink e |> top 1 by k order by v desc ttl(200ms, time: processing) -> file(path: "top.jsonl")
sink a |> join a as o on k = o.k ttl(200ms, time: processing) |> select { v, ov: o.v } -> file(path: "pairs.jsonl")
"#;
    let mut lines = vec![
        r#"{"k":"a","v":5}"#.to_string(),
        r#"{"k":"a","v":7}"#.to_string(),
    ];
    lines.extend((0..150).map(|i| format!(r#"{{"k":"z","v":{i}}}"#)));
    lines.push(r#"{"k":"a","v":1}"#.to_string());
    lines.extend((0..20).map(|i| format!(r#"{{"k":"z","v":{i}}}"#)));
    let text = lines.join("\n") + "\n";
    // Rows of `a` in a file, and the join's pairs that involve the returning record.
    let of_a = |dir: &std::path::Path, name: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        json_rows(&text)
            .into_iter()
            .filter(|r| r["k"] == "a")
            .collect()
    };
    let pairs_with_one = |dir: &std::path::Path| -> Vec<(i64, i64)> {
        let text = std::fs::read_to_string(dir.join("pairs.jsonl")).unwrap();
        let mut pairs: Vec<(i64, i64)> = json_rows(&text)
            .iter()
            .map(|r| (r["v"].as_i64().unwrap(), r["ov"].as_i64().unwrap()))
            .filter(|(v, ov)| *v == 1 || *ov == 1)
            .collect();
        pairs.sort();
        pairs
    };
    let paced = ["--rate-limit", "100"];

    let binary = build("ttl_processing", PIPELINE, false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();
    let out = run(&binary, &paced, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let d = dir.path();
    assert_eq!(
        of_a(d, "sums.jsonl"),
        vec![serde_json::json!({"k": "a", "n": 1, "total": 1})]
    );
    assert_eq!(
        of_a(d, "first.jsonl"),
        vec![serde_json::json!({"k": "a", "v": 1})]
    );
    assert_eq!(
        of_a(d, "top.jsonl"),
        vec![serde_json::json!({"k": "a", "v": 1, "rank": 1})]
    );
    assert_eq!(pairs_with_one(d), vec![(1, 1)]);

    // Without the TTLs the first life stays (the check above would catch a TTL that never
    // expires).
    let forever = build(
        "ttl_processing_none",
        &PIPELINE.replace(" ttl(200ms, time: processing)", ""),
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();
    let out = run(&forever, &paced, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let d = dir.path();
    assert_eq!(
        of_a(d, "sums.jsonl"),
        vec![serde_json::json!({"k": "a", "n": 3, "total": 13})]
    );
    assert_eq!(
        of_a(d, "first.jsonl"),
        vec![serde_json::json!({"k": "a", "v": 5})]
    );
    assert_eq!(
        of_a(d, "top.jsonl"),
        vec![serde_json::json!({"k": "a", "v": 7, "rank": 1})]
    );
    assert_eq!(
        pairs_with_one(d),
        vec![(1, 1), (1, 5), (1, 7), (5, 1), (7, 1)]
    );
}

/// A TTL on an aggregate over an updating stream (a `dedup ... keep last` feeding
/// `aggregate by`): a group that sees no change while the watermark moves on by more than the
/// TTL is dropped with the rows it held, so a later revision of one of them counts as a new
/// row. Group `a` holds ids 1 and 2; 40 s of filler in group `z` (id 3, revised every 10 ms)
/// pass; then id 1 is revised. With the TTL `a` counts 1 row, without it 2.
#[test]
fn a_retracting_aggregate_drops_a_quiet_group_with_its_rows() {
    const PIPELINE: &str = r#"
schema E { id: i64, g: string, v: i64, ts: timestamp }
source e: E = file(path: "events.jsonl", parallelism: 1) format json
    event_time ts watermark 1s
sink e |> dedup by id keep last |> aggregate by g { n: count(), total: sum(v) } ttl(10s) -> file(path: "groups.jsonl")
"#;
    let base = 1_700_000_000_000i64;
    let mut lines = Vec::new();
    let mut line = |id: i64, g: &str, v: i64, ms: i64| {
        lines.push(format!(
            r#"{{"id":{id},"g":"{g}","v":{v},"ts":{}}}"#,
            base + ms
        ));
    };
    line(1, "a", 5, 0);
    line(2, "a", 7, 500);
    // A watermark every 256 records: every 2.56 s of filler.
    for i in 0..4_000 {
        line(3, "z", 1, 1_000 + i * 10);
    }
    line(1, "a", 11, 41_500);
    for i in 0..3_000 {
        line(3, "z", 1, 41_510 + i * 10);
    }
    let text = lines.join("\n") + "\n";
    let groups = |binary: &std::path::Path| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();
        let out = run(binary, &[], dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        table(&dir.path().join("groups.jsonl"))
    };
    let row = |g: &str, n: i64, total: i64| {
        serde_json::json!({"g": g, "n": n, "total": total}).to_string()
    };
    let with_ttl = build("ttl_retract_aggregate", PIPELINE, false);
    assert_eq!(groups(&with_ttl), vec![row("a", 1, 11), row("z", 1, 1)]);
    let forever = build(
        "ttl_retract_aggregate_none",
        &PIPELINE.replace(" ttl(10s)", ""),
        false,
    );
    assert_eq!(groups(&forever), vec![row("a", 2, 18), row("z", 1, 1)]);
}
