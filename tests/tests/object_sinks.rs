//! File sinks on object storage (`file(path: "s3://bucket/...")`) against the S3-protocol
//! server `.ci/run` starts (moto): JSON lines, CSV, `parts`, Hive partitions and Parquet.
//! Without checkpoints each writes what the same sink writes to a local folder; with them,
//! a run killed with SIGKILL again and again and then let finish leaves every row in the
//! bucket exactly once (compared with a crash-free run's local files, Parquet read back by
//! DuckDB) and no pending object behind.

use std::collections::BTreeMap;
use std::path::Path;

use weir_runtime::sinks::object::Objects;
use weir_tests::s3::unique_location;
use weir_tests::{build_object_store, duckdb, kill_repeatedly, run, Rng};

/// The same rows to every kind of file sink, in the bucket (`S3`) and, with `LOCAL`, in a
/// local folder: the oracle of a crash-free run.
fn pipeline(s3: &str, local: bool) -> String {
    let mut text = format!(
        r#"
source bids = nexmark(stream: "bid", events: 20_000, generators: 2)
    event_time date_time watermark 1s
let b = bids |> select {{ auction, bidder, price, date_time, second: date_format(date_time, "ss") }}
sink b -> file(path: "{s3}/one.jsonl") format json
sink b -> file(path: "{s3}/table.csv") format csv(header: true)
sink b -> file(path: "{s3}/parts", parts: true) format json
sink b -> file(path: "{s3}/hive", partition_by: "second") format json
sink b -> file(path: "{s3}/lake", roll_size: "64KiB") format parquet
"#
    );
    if local {
        text.push_str(
            r#"sink b -> file(path: "local/one.jsonl") format json
sink b -> file(path: "local/table.csv") format csv(header: true)
sink b -> file(path: "local/hive", partition_by: "second") format json
"#,
        );
    }
    text
}

/// Every object under `url` (an `s3://bucket/prefix`), by key relative to it.
fn objects(url: &str) -> BTreeMap<String, Vec<u8>> {
    let (objects, prefix) = Objects::connect(&format!("{url}/x")).expect("the bucket");
    let prefix = prefix.trim_end_matches("/x").to_string();
    objects
        .keys_under(&prefix)
        .unwrap()
        .into_iter()
        .map(|key| {
            let bytes = objects.get(&key).unwrap().expect("listed");
            (key[prefix.len() + 1..].to_string(), bytes)
        })
        .collect()
}

fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(bytes)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// The rows of the objects whose keys `pick` picks, sorted (`skip_header`: each object's
/// first line is a CSV header, which is returned once).
fn rows_of(
    all: &BTreeMap<String, Vec<u8>>,
    pick: impl Fn(&str) -> bool,
    skip_header: bool,
) -> (Vec<String>, Vec<String>) {
    let (mut rows, mut headers) = (Vec::new(), Vec::new());
    for bytes in all.iter().filter(|(k, _)| pick(k)).map(|(_, b)| b) {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.lines();
        if skip_header {
            headers.push(lines.next().unwrap_or_default().to_string());
        }
        rows.extend(lines.map(str::to_string));
    }
    rows.sort();
    headers.dedup();
    (rows, headers)
}

/// The Parquet objects under `lake/`, downloaded, as DuckDB reads them: sorted rows.
fn parquet_rows(all: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (key, bytes) in all.iter().filter(|(k, _)| k.starts_with("lake/")) {
        let name = key.replace('/', "_");
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let rows = duckdb::query(&format!(
        "SELECT auction, bidder, price, date_time AS t, second \
         FROM read_parquet('{}/*.parquet') ORDER BY ALL",
        dir.path().display()
    ));
    let mut rows: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    rows.sort();
    rows
}

/// The oracle's rows as DuckDB would print them from the local JSON lines.
fn json_rows(lines: &[String]) -> Vec<String> {
    let mut rows: Vec<String> = lines
        .iter()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            serde_json::json!({
                "auction": v["auction"], "bidder": v["bidder"], "price": v["price"],
                "t": v["date_time"], "second": v["second"],
            })
            .to_string()
        })
        .collect();
    rows.sort();
    rows
}

/// The local oracle files of a crash-free run in `cwd`.
struct Oracle {
    one: Vec<String>,
    csv_header: String,
    csv: Vec<String>,
    hive: BTreeMap<String, Vec<String>>,
}

fn oracle(cwd: &Path) -> Oracle {
    let one = sorted_lines(&std::fs::read(cwd.join("local/one.jsonl")).unwrap());
    let csv_text = std::fs::read_to_string(cwd.join("local/table.csv")).unwrap();
    let csv_header = csv_text.lines().next().unwrap().to_string();
    let csv = sorted_lines(csv_text.split_once('\n').unwrap().1.as_bytes());
    let mut hive = BTreeMap::new();
    for entry in std::fs::read_dir(cwd.join("local/hive")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        hive.insert(
            name,
            sorted_lines(&std::fs::read(entry.path().join("part-0.jsonl")).unwrap()),
        );
    }
    assert_eq!(one.len(), 18_400, "the oracle has every bid");
    assert!(hive.len() > 1, "several partitions: {:?}", hive.keys());
    Oracle {
        one,
        csv_header,
        csv,
        hive,
    }
}

/// Without checkpoints every sink writes at the end of input what its local twin writes:
/// the object the path names, a part per instance, a partition per value, Parquet files.
#[test]
fn file_sinks_on_object_storage_write_what_local_ones_do() {
    let Some(url) = unique_location("file-sinks") else {
        return;
    };
    let binary = build_object_store("object_sinks_plain", &pipeline(&url, true));
    let cwd = tempfile::tempdir().unwrap();
    let out = run(&binary, &["--quiet"], cwd.path(), None);
    assert!(out.success, "{}", out.stderr);
    let want = oracle(cwd.path());
    let all = objects(&url);

    // Two generators interleave differently into each sink: rows are compared as sets.
    assert_eq!(sorted_lines(&all["one.jsonl"]), want.one, "one object");
    let (csv, headers) = rows_of(&all, |k| k == "table.csv", true);
    assert_eq!(headers, std::slice::from_ref(&want.csv_header));
    assert_eq!(csv, want.csv);
    let (parts, _) = rows_of(&all, |k| k.starts_with("parts/part-"), false);
    assert_eq!(parts, want.one, "the parts hold every row once");
    for (partition, rows) in &want.hive {
        let key = format!("hive/{partition}/part-0.jsonl");
        assert_eq!(&sorted_lines(&all[&key]), rows, "{key}");
    }
    assert_eq!(parquet_rows(&all), json_rows(&want.one));
    assert!(
        all.keys().all(|k| !k.contains(".pending")),
        "{:?}",
        all.keys()
    );
    // A second run replaces the output, as a local file sink truncates its file.
    let again = run(&binary, &["--quiet"], cwd.path(), None);
    assert!(again.success, "{}", again.stderr);
    let second = objects(&url);
    assert_eq!(sorted_lines(&second["one.jsonl"]), want.one);
    let (parts, _) = rows_of(&second, |k| k.starts_with("parts/part-"), false);
    assert_eq!(parts, want.one);
    assert_eq!(parquet_rows(&second), json_rows(&want.one));
}

/// With checkpoints, every epoch with rows is an object of its own (`one-000001.jsonl`, ...),
/// published when its checkpoint completes: killed with SIGKILL at random moments and then
/// let finish, the run leaves each row once in every sink and no pending object.
#[test]
fn a_killed_run_writes_each_row_to_object_storage_once() {
    let Some(url) = unique_location("file-sinks-crash") else {
        return;
    };
    let Some(checkpoints) = unique_location("file-sinks-crash-chk") else {
        return;
    };
    let binary = build_object_store("object_sinks_crash", &pipeline(&url, true));
    // The oracle: a crash-free run without checkpoints, in a folder of its own.
    let clean = tempfile::tempdir().unwrap();
    let out = run(&binary, &["--quiet"], clean.path(), None);
    assert!(out.success, "{}", out.stderr);
    let want = oracle(clean.path());

    let cwd = tempfile::tempdir().unwrap();
    let args = [
        "--checkpoint-dir",
        checkpoints.as_str(),
        "--checkpoint-interval",
        "100ms",
        "--rate-limit",
        "4000",
        "--quiet",
    ];
    let seed = std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x005e_ed0b_1ec7_u64);
    let mut rng = Rng(seed);
    let kills = kill_repeatedly(&binary, cwd.path(), &args, 8, || {
        std::time::Duration::from_millis(300 + rng.below(900))
    });
    let out = run(&binary, &args, cwd.path(), None);
    assert!(out.success, "{}", out.stderr);
    eprintln!("object sinks: {kills} kills (seed {seed:#x})");
    assert!(kills >= 4, "only {kills} kills landed");

    let all = objects(&url);
    assert!(
        all.keys().all(|k| !k.contains(".pending")),
        "pending objects left: {:?}",
        all.keys()
            .filter(|k| k.contains(".pending"))
            .collect::<Vec<_>>()
    );
    // The crash-free run's `one.jsonl` was replaced by the checkpointed run's objects.
    assert!(!all.contains_key("one.jsonl"));
    let numbered = |stem: &'static str, ext: &'static str| {
        move |k: &str| {
            k.strip_prefix(stem)
                .and_then(|k| k.strip_suffix(ext))
                .is_some_and(|n| n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()))
        }
    };
    let (one, _) = rows_of(&all, numbered("one-", ".jsonl"), false);
    assert!(
        all.keys().filter(|k| numbered("one-", ".jsonl")(k)).count() > 1,
        "one object per checkpoint epoch: {:?}",
        all.keys()
    );
    assert_eq!(one.len(), want.one.len(), "rows of one-*.jsonl");
    assert_eq!(one, want.one);
    let (csv, headers) = rows_of(&all, numbered("table-", ".csv"), true);
    assert_eq!(
        headers,
        std::slice::from_ref(&want.csv_header),
        "every object has the header"
    );
    assert_eq!(csv, want.csv);
    let (parts, _) = rows_of(&all, |k| k.starts_with("parts/part-"), false);
    assert_eq!(parts, want.one);
    for (partition, rows) in &want.hive {
        let prefix = format!("hive/{partition}/part-0-");
        let (got, _) = rows_of(&all, |k| k.starts_with(&prefix), false);
        assert_eq!(&got, rows, "{partition}");
    }
    assert_eq!(parquet_rows(&all), json_rows(&want.one));
}
