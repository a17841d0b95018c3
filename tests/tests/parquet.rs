//! The Parquet file sink, read back by DuckDB: the rows of its files (Hive partition folders
//! included) equal the rows a JSON file sink of the same run wrote (another writer of the same
//! stream is the oracle), with every type, nulls, several instances and rolled files; and a
//! checkpointed run killed again and again (SIGKILL) leaves exactly the rows of a run that was
//! never killed, with no half-written or pending file in sight.

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
