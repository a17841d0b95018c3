//! The Parquet file sink, read back by DuckDB: the rows of its files (Hive partition folders
//! included) equal the rows a JSON file sink of the same run wrote (another writer of the same
//! stream is the oracle), with every type, nulls, several instances and rolled files; and a
//! checkpointed run killed again and again (SIGKILL) leaves exactly the rows of a run that was
//! never killed, with no half-written or pending file in sight; files rolled by time
//! (`roll_interval`) under a slow input hold the input between them.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use weir_tests::duckdb::{query, sql_string};
use weir_tests::{build, kill_repeatedly, run};

/// Rows as canonical text (keys sorted), sorted: the same multiset whatever the order.
fn canonical(rows: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut rows: Vec<String> = rows
        .into_iter()
        .map(|v| serde_json::to_string(&v).expect("JSON"))
        .collect();
    rows.sort();
    rows
}

/// Every row of the Parquet files under `dir`, partition folders read as columns.
fn parquet_rows(dir: &Path) -> Vec<String> {
    let glob = dir.join("**").join("*.parquet");
    canonical(query(&format!(
        "SELECT * FROM read_parquet({}, hive_partitioning = true)",
        sql_string(&glob.display().to_string())
    )))
}

/// The rows of a JSON-lines file.
fn json_rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    canonical(
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))),
    )
}

/// Asserts two sorted row lists are equal, naming the first difference (not printing them).
fn assert_same_rows(what: &str, got: &[String], want: &[String]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: {} rows against {} expected; first difference at sorted row {i}: {} against {}",
            got.len(),
            want.len(),
            got[i],
            want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: rows");
}

/// File names under `dir` (recursively), relative to it.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("a folder").flatten() {
            if entry.file_type().expect("a type").is_dir() {
                dirs.push(entry.path());
            } else {
                let rel = entry.path().strip_prefix(dir).expect("under").to_path_buf();
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

const TYPES: &str = r#"
source bids = nexmark(stream: "bid", events: 60000, generators: 2)
let rows = bids |> select {
    auction, price, date_time,
    half: price / 2.0,
    big: price > 5000,
    channel,
    note: nullif(channel, "Google"),
    bucket: auction % 3
}
sink rows -> file(path: "rows.jsonl") format json
sink rows -> file(path: "out", partition_by: "bucket", roll_size: "64KiB") format parquet
"#;

/// Every type (i64, f64, bool, string, an optional string with nulls, timestamp), a Hive
/// partition column, two instances (two generator splits) and files rolled at 64 KiB: DuckDB reads back exactly the
/// rows the JSON sink wrote.
#[test]
fn parquet_files_hold_the_rows_the_json_sink_wrote() {
    let binary = build("parquet_types", TYPES, false);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let want = json_rows(&dir.path().join("rows.jsonl"));
    assert_eq!(want.len(), 55_200, "the generator's bids");
    assert!(
        want.iter().any(|r| r.contains("\"note\":null")),
        "some nulls"
    );
    let got = parquet_rows(&dir.path().join("out"));
    assert_same_rows("parquet against JSON", &got, &want);
    // Three partition folders, files of both instances, several files each (rolled), and
    // nothing pending.
    let names = files(&dir.path().join("out"));
    for bucket in 0..3 {
        let folder = format!("bucket={bucket}/");
        for instance in 0..2 {
            let n = names
                .iter()
                .filter(|f| f.starts_with(&format!("{folder}part-{instance}-")))
                .count();
            assert!(
                n >= 2,
                "{folder} instance {instance}: {n} files in {names:?}"
            );
        }
    }
    assert!(names.iter().all(|f| f.ends_with(".parquet")), "{names:?}");
    // A second run replaces the output rather than adding to it.
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert_same_rows(
        "a second run",
        &parquet_rows(&dir.path().join("out")),
        &want,
    );
}

const KILLED: &str = r#"
source bids = nexmark(stream: "bid", events: 1000000)
let rows = bids |> select { auction, bidder, price, date_time, channel, hour: hour(date_time) }
sink rows -> file(path: "out", partition_by: "hour", roll_size: "48KiB") format parquet
"#;

/// SIGKILLed eight times while checkpointing every second: the files published at the end
/// hold every row exactly once (those of files a killed run had not published are written
/// again from the last checkpoint, and its pending files are gone).
#[test]
fn a_killed_parquet_sink_publishes_every_row_exactly_once() {
    let binary = build("parquet_killed", KILLED, false);
    let clean = tempfile::tempdir().expect("temp dir");
    let out = run(&binary, &[], clean.path(), None);
    assert!(out.success, "{}", out.stderr);
    let want = parquet_rows(&clean.path().join("out"));
    assert_eq!(want.len(), 920_000);

    let dir = tempfile::tempdir().expect("temp dir");
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "1s",
        "--rate-limit",
        "80000",
        "--quiet",
    ];
    // About 80 000 rows an interval, ten 8 192-row batches: files roll by size between
    // checkpoints, so nearly every kill lands after such a roll and before the next
    // checkpoint (those files must not be published).
    let mut delays = [1300u64, 1700, 1450, 2100, 1250, 1900, 1600, 1350].into_iter();
    let kills = kill_repeatedly(&binary, dir.path(), &args, 8, || {
        Duration::from_millis(delays.next().unwrap_or(1500))
    });
    assert_eq!(kills, 8);
    // The last run rolls its files at another size and takes no checkpoint before the end
    // (changes a restore accepts): it writes a file per partition, so a file a killed run
    // published too early would not be written over by one of the same name.
    let last = build(
        "parquet_killed_last",
        &KILLED.replace("48KiB", "64MiB"),
        false,
    );
    let mut last_args = args;
    last_args[3] = "600s";
    let out = run(&last, &last_args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let names = files(&dir.path().join("out"));
    assert!(
        names
            .iter()
            .all(|f| f.ends_with(".parquet") && !f.contains("/.")),
        "{names:?}"
    );
    assert_same_rows(
        "killed against never killed",
        &parquet_rows(&dir.path().join("out")),
        &want,
    );
}

const ROLLED_BY_TIME: &str = r#"
source bids = nexmark(stream: "bid", events: 5000)
let rows = bids |> select { auction, bidder, price, date_time }
sink rows -> file(path: "rows.jsonl") format json
sink rows -> file(path: "out", roll_interval: 1s) format parquet
"#;

/// A slow input (1 250 events a second for about four seconds) with `roll_interval: 1s`:
/// several files, whose rows together are the rows the JSON sink wrote; the same with
/// checkpoints (files closed by time wait for the next checkpoint or the end, and are all
/// published).
#[test]
fn parquet_files_roll_by_time() {
    let binary = build("parquet_roll_interval", ROLLED_BY_TIME, false);
    for checkpoints in [false, true] {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = vec!["--rate-limit", "1250", "--quiet"];
        if checkpoints {
            args.extend(["--checkpoint-dir", "chk", "--checkpoint-interval", "600s"]);
        }
        let out = run(&binary, &args, dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        let want = json_rows(&dir.path().join("rows.jsonl"));
        assert_eq!(want.len(), 4_600, "the generator's bids");
        let names = files(&dir.path().join("out"));
        assert!(
            names.len() >= 3 && names.iter().all(|f| f.ends_with(".parquet")),
            "checkpoints {checkpoints}: {names:?}"
        );
        assert_same_rows(
            &format!("files rolled by time (checkpoints {checkpoints})"),
            &parquet_rows(&dir.path().join("out")),
            &want,
        );
    }
}

/// DuckDB writes the input: Hive folders by `day`, several files and row groups, every
/// column type weir reads (BIGINT, INTEGER, DOUBLE, DECIMAL, VARCHAR with NULLs, BOOLEAN,
/// TIMESTAMP in microseconds, DATE) and a wide column the pipeline never uses. Event time
/// rises through the files in path order (one thread writes, in order), as a folder of
/// daily files does.
fn write_sales(dir: &Path, rows: u32) {
    let folder = dir.join("in");
    query(&format!(
        "SET threads = 1; COPY (SELECT i AS id, (i % 1000)::INTEGER AS small, i * 0.5 AS price, \
           ((i % 977) / 4)::DECIMAL(10, 2) AS amount, \
           CASE WHEN i % 7 = 0 THEN NULL ELSE 'n' || (i % 13)::VARCHAR END AS name, \
           i % 3 = 0 AS flag, \
           TIMESTAMP '2024-03-01 00:00:00' + INTERVAL (i * 1500) MILLISECOND \
             + INTERVAL (i % 1000) MICROSECOND AS ts, \
           DATE '2024-03-01' + (i % 5)::INTEGER AS opened, \
           repeat('x', 200) AS wide, \
           'd' || (i // 10000)::VARCHAR AS day \
         FROM range({rows}) t(i)) \
         TO {} (FORMAT parquet, PARTITION_BY (day), ROW_GROUP_SIZE 2048)",
        sql_string(&folder.display().to_string())
    ));
}

const READ: &str = r#"
schema Sale { id: i64, small: i64, price: f64, amount: f64, name: string?, flag: bool,
              ts: timestamp, opened: timestamp, day: string }
source sales: Sale = file(path: "in") format parquet event_time ts watermark 1s
sink sales -> file(path: "rows.jsonl") format json
let per_minute = sales
    |> filter flag
    |> key_by day
    |> window tumble(1m)
    |> aggregate { n: count(), total: sum(small), named: count(name) }
    |> select { day, window_start, n, total, named }
sink per_minute -> file(path: "minutes.jsonl") format json
"#;

/// A Parquet source over a folder DuckDB wrote: every row as DuckDB reads it (the Hive
/// column included), and a windowed aggregate over event time equal to the same query in
/// DuckDB; with two readers and again after a restart from a checkpoint.
#[test]
fn a_parquet_source_reads_what_duckdb_wrote() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_sales(dir.path(), 30_000);
    let glob = sql_string(&dir.path().join("in/**/*.parquet").display().to_string());
    let want = canonical(query(&format!(
        "SELECT id, small, price, amount::DOUBLE AS amount, name, flag, ts, \
           opened::TIMESTAMP AS opened, day \
         FROM read_parquet({glob}, hive_partitioning = true)"
    )));
    assert_eq!(want.len(), 30_000);
    let want_minutes = canonical(query(&format!(
        "SELECT day, time_bucket(INTERVAL 1 MINUTE, ts) AS window_start, count(*) AS n, \
           sum(small) AS total, count(name) AS named \
         FROM read_parquet({glob}, hive_partitioning = true) WHERE flag GROUP BY ALL"
    )));
    let binary = build("parquet_source", READ, false);
    for parallelism in ["1", "2"] {
        let out = run(&binary, &["--parallelism", parallelism], dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        assert!(out.stderr.contains("dead letters: 0"), "{}", out.stderr);
        assert_same_rows(
            &format!("rows, parallelism {parallelism}"),
            &json_rows(&dir.path().join("rows.jsonl")),
            &want,
        );
        assert_same_rows(
            &format!("minutes, parallelism {parallelism}"),
            &json_rows(&dir.path().join("minutes.jsonl")),
            &want_minutes,
        );
    }
}

/// What does not fit: a column of a type the field cannot read and a field no column or
/// folder gives stop the start, naming the file and the column; a null in a field that is
/// not optional is a dead letter, and the run goes on.
#[test]
fn a_parquet_source_refuses_what_does_not_fit() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_sales(dir.path(), 3_000);
    let try_schema = |name: &str, schema: &str| {
        let text = format!(
            "schema Sale {{ {schema} }}\n\
             source sales: Sale = file(path: \"in\") format parquet\n\
             sink sales -> file(path: \"rows.jsonl\") format json\n"
        );
        let binary = build(name, &text, false);
        run(&binary, &[], dir.path(), None)
    };
    let out = try_schema("parquet_wrong_type", "id: i64, name: i64");
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("field `name`: a Utf8 column does not read as i64")
            && out.stderr.contains("day=d0"),
        "{}",
        out.stderr
    );
    let out = try_schema("parquet_no_column", "id: i64, nmae: string");
    assert!(!out.success);
    assert!(
        out.stderr.contains("no column `nmae`") && out.stderr.contains("name"),
        "{}",
        out.stderr
    );
    // `name` is null in every seventh row: 429 of 3 000 rows are dead letters.
    let out = try_schema("parquet_null", "id: i64, name: string");
    assert!(out.success, "{}", out.stderr);
    assert!(out.stderr.contains("dead letters: 429"), "{}", out.stderr);
    let rows = json_rows(&dir.path().join("rows.jsonl"));
    assert_eq!(rows.len(), 3_000 - 429);
}

/// NaN, the infinities and timestamps past the year 9999 are dead letters, as they are in
/// CSV and JSON lines: a record's float is finite and its timestamp in the years 0000 to
/// 9999. (A NaN was read as a number: a JSON sink printed `"x":null` for a field that is not
/// optional, with no dead letter and exit code 0; the year 12000 went through as well.) The
/// same holds for a Hive folder's value.
#[test]
fn a_parquet_source_refuses_nan_infinities_and_timestamps_past_9999() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("in");
    query(&format!(
        "COPY (SELECT * FROM (VALUES \
           (1, 1.5::DOUBLE, TIMESTAMP '2024-01-01 00:00:00', '1'), \
           (2, 'nan'::DOUBLE, TIMESTAMP '2024-01-01 00:00:01', '1'), \
           (3, 'inf'::DOUBLE, TIMESTAMP '2024-01-01 00:00:02', '1'), \
           (4, '-inf'::DOUBLE, TIMESTAMP '2024-01-01 00:00:03', '1'), \
           (5, 2.5::DOUBLE, TIMESTAMP '2024-01-01 00:00:04', '1'), \
           (6, 3.5::DOUBLE, TIMESTAMP '12000-01-01 00:00:00', '1'), \
           (7, 4.5::REAL, TIMESTAMP '2024-01-01 00:00:06', 'nan')) t(id, x, ts, y)) \
         TO {} (FORMAT parquet, PARTITION_BY (y))",
        sql_string(&folder.display().to_string())
    ));
    let text = "schema R { id: i64, x: f64, ts: timestamp, y: f64 }\n\
                source r: R = file(path: \"in\") format parquet\n\
                sink r -> file(path: \"rows.jsonl\") format json\n";
    let binary = build("parquet_non_finite", text, false);
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let ids: Vec<i64> = std::fs::read_to_string(dir.path().join("rows.jsonl"))
        .expect("rows")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            assert!(v["x"].is_f64(), "{l}");
            v["id"].as_i64().expect("id")
        })
        .collect();
    assert_eq!(ids, vec![1, 5], "{}", out.stderr);
    let reasons = weir_tests::dead_letter_reasons(dir.path());
    let reasons: Vec<&str> = reasons.values().map(String::as_str).collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    for want in [
        "`x`: NaN is not",
        "`x`: inf is not",
        "`x`: -inf is not",
        "`y`: NaN is not",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(want)),
            "{want}: {reasons:?}"
        );
    }
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("outside the years 0000 to 9999")),
        "{reasons:?}"
    );
}

const COPY: &str = r#"
schema Sale { id: i64, price: f64, name: string?, ts: timestamp, day: string }
source sales: Sale = file(path: "in") format parquet event_time ts watermark 1s
sink sales -> file(path: "rows.jsonl") format json
"#;

/// Killed (SIGKILL) again and again while checkpointing, with two readers: the rows written
/// at the end are every row of the files exactly once.
#[test]
fn a_killed_parquet_source_resumes_where_its_checkpoint_was() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_sales(dir.path(), 40_000);
    let glob = sql_string(&dir.path().join("in/**/*.parquet").display().to_string());
    let want = canonical(query(&format!(
        "SELECT id, price, name, ts, day FROM read_parquet({glob}, hive_partitioning = true)"
    )));
    let binary = build("parquet_source_killed", COPY, false);
    let args = [
        "--parallelism",
        "2",
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "100ms",
        "--rate-limit",
        "5000",
        "--quiet",
    ];
    let mut delays = [600u64, 900, 450, 1100, 700, 800].into_iter();
    let kills = kill_repeatedly(&binary, dir.path(), &args, 6, || {
        Duration::from_millis(delays.next().unwrap_or(700))
    });
    assert_eq!(kills, 6);
    let out = run(&binary, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert_same_rows(
        "killed against DuckDB",
        &json_rows(&dir.path().join("rows.jsonl")),
        &want,
    );
}
