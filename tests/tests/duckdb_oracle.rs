//! DuckDB as a second, independent oracle for windowed queries: the test writes the events a
//! pipeline reads (Nexmark bids from the runtime's generator, or a JSON-lines file) to a file,
//! runs the same query as SQL in DuckDB over that file, and compares the pipeline's output
//! with DuckDB's rows as multisets.
//!
//! Floats: an `avg` of i64 values is compared exactly. Both sides sum the integers exactly
//! (weir in i128, DuckDB in HUGEINT) and do one IEEE division of two exactly representable
//! doubles (|sum| < 2^53), so they must agree bit for bit. A `sum` or `avg` of f64 values is
//! compared to a relative 1e-12: DuckDB adds in its own order (per thread, then combining
//! partial states), weir in arrival order, and float addition is not associative. The values
//! are positive, so there is no cancellation and the rounding differences stay near n·2^-53.
//! (With DuckDB 2.0.1 and these small files they happen to agree exactly; nothing promises it.)

use serde_json::{json, Value};
use weir_runtime::nexmark::NexmarkConfig;
use weir_tests::duckdb::{
    self, assert_same_rows, nexmark_bids, read_bids, sql_string, write_bids_csv,
};
use weir_tests::{build, example, format_ts, json_rows, run, to_stdout};

const EVENTS: u64 = 200_000;

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Builds a Nexmark example (JSON on stdout) twice: as written, and with a slower generator
/// (`rate: 1_000`, so `EVENTS` events span 200 s of event time and many windows) whose bids
/// come out of order within groups of 500 events (at most 1 s apart, under the 4 s watermark
/// bound, so none is late). Runs each on `EVENTS` events with one generator split, then with
/// two splits and two keyed instances. Each run's rows must equal, as a multiset, `sql` (with
/// `{bids}` standing for the bids table) in DuckDB over the bids of the same generator run
/// written to CSV.
fn check_nexmark(name: &str, file: &str, sql: &str) {
    let text = to_stdout(&example(file));
    let source = "nexmark(stream: \"bid\", ";
    assert!(text.contains(source), "{file} has no bid source");
    let slow = text.replace(source, &format!("{source}rate: 1_000, out_of_order: 500, "));
    let events = EVENTS.to_string();
    for (variant, text, rate, group) in [
        ("", &text, NexmarkConfig::default().rate, 1),
        ("_ooo", &slow, 1_000, 500),
    ] {
        let binary = build(&format!("duck_{name}{variant}"), text, false);
        for generators in [1u32, 2] {
            let config = NexmarkConfig {
                events: EVENTS,
                generators,
                rate,
                out_of_order_group: group,
                ..NexmarkConfig::default()
            };
            let dir = temp();
            let csv = dir.path().join("bids.csv");
            write_bids_csv(&csv, &nexmark_bids(&config));
            let want = duckdb::query(&sql.replace("{bids}", &read_bids(&csv)));
            let splits = generators.to_string();
            let args = [
                "--events",
                &events,
                "--generators",
                &splits,
                "--parallelism",
                &splits,
                "--quiet",
            ];
            let result = run(&binary, &args, dir.path(), None);
            assert!(result.success, "{name}{variant}: {}", result.stderr);
            assert_same_rows(
                &format!("{name}{variant} with {generators} split(s)"),
                &json_rows(&result.stdout),
                &want,
                &[],
            );
        }
    }
}

#[test]
fn the_oracle_prints_weirs_formats() {
    let rows = duckdb::query(
        "SELECT epoch_ms(1436918400123) AS ts, 'it''s' AS s, 42 AS i, \
         CAST(5 AS HUGEINT) AS big, 2.5::DOUBLE AS f, 3.0::DOUBLE AS whole, \
         CAST(NULL AS BIGINT) AS n, true AS b, 1.25::DECIMAL(5, 2) AS d \
         FROM range(2)",
    );
    let row = json!({"ts": "2015-07-15 00:00:00.123", "s": "it's", "i": 42,
                     "big": 5, "f": 2.5, "whole": 3.0,
                     "n": null, "b": true, "d": 1.25});
    assert_eq!(rows, vec![row.clone(), row]);
    assert!(rows[0]["whole"].is_f64() && rows[0]["i"].is_i64());
}

#[test]
fn max_price_per_window_matches_duckdb() {
    // Tumbling windows as DuckDB buckets them: `time_bucket` with the epoch as origin.
    check_nexmark(
        "max_price_per_window",
        "nexmark/max_price_per_window.weir",
        "SELECT time_bucket(INTERVAL '10 seconds', date_time, TIMESTAMP '1970-01-01') AS window_start, \
                window_start + INTERVAL '10 seconds' AS window_end, \
                max(price) AS max_price \
         FROM {bids} GROUP BY ALL",
    );
}

#[test]
fn hot_auctions_match_duckdb() {
    // Windows by arithmetic on epoch milliseconds this time; `cast(mean as i64)` truncates
    // toward zero, which `trunc` does (a plain CAST in DuckDB would round).
    check_nexmark(
        "hot_auctions",
        "nexmark/hot_auctions.weir",
        "SELECT auction, \
                epoch_ms(CAST(floor(epoch_ms(date_time) / 10000) AS BIGINT) * 10000 + 10000) AS window_end, \
                count(*) AS bids, min(price) AS low, max(price) AS high, \
                CAST(trunc(avg(price)) AS BIGINT) AS mean \
         FROM {bids} \
         GROUP BY auction, floor(epoch_ms(date_time) / 10000) \
         HAVING count(*) > 40",
    );
}

#[test]
fn keyed_windows_over_a_json_file_match_duckdb() {
    // Timestamps jitter back by up to 3 s under a 5 s watermark bound: out of order, never
    // late, so every record counts. Key k6 never has a score (the field is absent), so its
    // windows have null score aggregates; other keys miss one score in 8 (explicit null).
    let dir = temp();
    let input = dir.path().join("events.jsonl");
    let mut lines = Vec::new();
    let mut state = 0x5eed_u64;
    for i in 0..6000i64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = ((state >> 33) % 3000) as i64;
        let ts = format_ts(1_436_918_400_000 + i * 40 - jitter);
        let k = (state >> 40) % 7;
        let v = ((state >> 20) % 100_000) as i64 - 30_000;
        let score = match ((state >> 50) % 8, k) {
            (_, 6) => String::new(),
            (0, _) => r#","score":null"#.to_string(),
            (s, _) => format!(
                r#","score":{}"#,
                (((state >> 8) % 100_000) as f64 + 1.0) / 100.0 + s as f64 / 3.0
            ),
        };
        lines.push(format!(r#"{{"key":"k{k}","v":{v}{score},"ts":"{ts}"}}"#));
    }
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let path = input.display().to_string();

    let text = format!(
        "schema E {{ key: string, v: i64, score: f64?, ts: timestamp }}\n\
         source e: E = file(path: \"{path}\") format json event_time ts watermark 5s\n\
         let w = e\n\
             |> key_by key\n\
             |> window tumble(2s)\n\
             |> aggregate {{ n: count(), total: sum(v), low: min(v), high: max(v), mean: avg(v),\n\
                             score_sum: sum(score), score_avg: avg(score), score_max: max(score) }}\n\
         sink w -> stdout() format json\n"
    );
    let want = duckdb::query(&format!(
        "SELECT key, \
                time_bucket(INTERVAL '2 seconds', ts, TIMESTAMP '1970-01-01') AS window_start, \
                window_start + INTERVAL '2 seconds' AS window_end, \
                count(*) AS n, sum(v) AS total, min(v) AS low, max(v) AS high, avg(v) AS mean, \
                sum(score) AS score_sum, avg(score) AS score_avg, max(score) AS score_max \
         FROM read_json({}, format = 'newline_delimited', \
              columns = {{'key': 'VARCHAR', 'v': 'BIGINT', 'score': 'DOUBLE', 'ts': 'TIMESTAMP'}}, \
              timestampformat = '%Y-%m-%d %H:%M:%S.%g') \
         GROUP BY ALL",
        sql_string(&path)
    ));
    assert!(
        want.iter().any(|r| r["score_sum"].is_null()) && want.iter().any(|r| r["n"] != json!(1)),
        "the data should give null aggregates and multi-record windows"
    );
    let windows: Vec<&Value> = want.iter().filter(|r| r["key"] == "k0").collect();
    assert!(windows.len() > 50, "too few windows: {}", windows.len());

    for (no_fusion, parallelism) in [(false, "1"), (false, "3"), (true, "2")] {
        let binary = build("duck_keyed_json", &text, no_fusion);
        let result = run(&binary, &["--parallelism", parallelism], dir.path(), None);
        assert!(result.success, "{}", result.stderr);
        assert_same_rows(
            &format!("keyed JSON windows, parallelism {parallelism}, no_fusion {no_fusion}"),
            &json_rows(&result.stdout),
            &want,
            &["score_sum", "score_avg"],
        );
    }
}
