//! DuckDB as a second, independent oracle for windowed and joined queries: the test writes the
//! events a pipeline reads (Nexmark persons, auctions and bids from the runtime's generator, or
//! a JSON-lines file) to files, runs the same query as SQL in DuckDB over them, and compares
//! the pipeline's output with DuckDB's rows as multisets. The Nexmark examples q3, q5, q7, q8,
//! q11 and q20 are checked this way, each against its Flink SQL written for DuckDB (session
//! windows, which DuckDB lacks, by window functions; hop windows by `generate_series`).
//!
//! Floats: an `avg` of i64 values is compared exactly. Both sides sum the integers exactly
//! (weir in i128, DuckDB in HUGEINT) and do one IEEE division of two exactly representable
//! doubles (|sum| < 2^53), so they must agree bit for bit. A `sum` or `avg` of f64 values is
//! compared to a relative 1e-12: DuckDB adds in its own order (per thread, then combining
//! partial states), weir in arrival order, and float addition is not associative. The values
//! are positive, so there is no cancellation and the rounding differences stay near n·2^-53.
//! (With DuckDB 2.0.1 and these small files they happen to agree exactly; nothing promises it.)

use serde_json::{json, Value};
use weir_runtime::nexmark::{Auction, Bid, NexmarkConfig, Person};
use weir_tests::duckdb::{
    self, assert_same_rows, nexmark_bids, nexmark_events, read_auctions, read_bids, read_persons,
    sql_string, write_auctions_csv, write_bids_csv, write_persons_csv,
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

/// Results keyed by a window are final when it closes: a top-N per hop window, an aggregate
/// per window (`aggregate by window_end, window_start`) and a tumbling window over that
/// aggregate's rows (its `window_end` stays the event time), and a dedup per window, each an
/// append stream, over out-of-order events, at parallelism 1 and 3. DuckDB computes the same
/// from the same file.
#[test]
fn results_keyed_by_a_window_match_duckdb() {
    let dir = temp();
    let input = dir.path().join("events.jsonl");
    let mut lines = Vec::new();
    let mut state = 0xf1a1_u64;
    for i in 0..5000i64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = ((state >> 33) % 3000) as i64;
        let ts = format_ts(1_436_918_400_000 + i * 30 - jitter);
        let k = (state >> 40) % 9;
        let v = ((state >> 20) % 1000) as i64;
        lines.push(format!(r#"{{"key":"k{k}","v":{v},"ts":"{ts}"}}"#));
    }
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let path = input.display().to_string();
    let text = format!(
        "schema E {{ key: string, v: i64, ts: timestamp }}\n\
         source e: E = file(path: \"{path}\") format json event_time ts watermark 4s\n\
         let w = e |> key_by key |> window hop(size: 4s, slide: 2s)\n\
             |> aggregate {{ n: count(), total: sum(v) }}\n\
         let top = w |> top 2 by window_start order by total desc, key |> filter n > 10\n\
         let per = w |> aggregate by window_end, window_start {{ keys: count(), most: max(total) }}\n\
         let per10 = per |> window tumble(10s) |> aggregate {{ windows: count(), best: max(most) }}\n\
         let one = w |> dedup by window_end keep first |> select {{ key, window_end }}\n\
         sink top -> file(path: \"top.jsonl\") format json\n\
         sink per -> file(path: \"per.jsonl\") format json\n\
         sink per10 -> file(path: \"per10.jsonl\") format json\n\
         sink one -> file(path: \"one.jsonl\") format json\n"
    );
    let w = format!(
        "WITH e AS (SELECT * FROM read_json({}, format = 'newline_delimited', \
              columns = {{'key': 'VARCHAR', 'v': 'BIGINT', 'ts': 'TIMESTAMP'}}, \
              timestampformat = '%Y-%m-%d %H:%M:%S.%g')), \
         w AS (SELECT key, epoch_ms(s) AS window_start, epoch_ms(s + 4000) AS window_end, \
                      count(*) AS n, sum(v) AS total \
               FROM (SELECT key, v, unnest(generate_series(epoch_ms(ts) // 2000 * 2000 - 2000, \
                                                           epoch_ms(ts) // 2000 * 2000, 2000)) AS s \
                     FROM e) \
               GROUP BY ALL), \
         per AS (SELECT window_end, window_start, count(*) AS keys, max(total) AS most \
                 FROM w GROUP BY ALL) ",
        sql_string(&path)
    );
    let want_top = duckdb::query(&format!(
        "{w} SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY window_start \
                                                         ORDER BY total DESC, key) AS rank FROM w) \
         WHERE rank <= 2 AND n > 10"
    ));
    let want_per = duckdb::query(&format!("{w} SELECT * FROM per"));
    let want_per10 = duckdb::query(&format!(
        "{w} SELECT time_bucket(INTERVAL '10 seconds', window_end, TIMESTAMP '1970-01-01') AS window_start, \
                time_bucket(INTERVAL '10 seconds', window_end, TIMESTAMP '1970-01-01') \
                    + INTERVAL '10 seconds' AS window_end, \
                count(*) AS windows, max(most) AS best \
         FROM per GROUP BY 1"
    ));
    let window_keys: std::collections::BTreeSet<(String, String)> =
        duckdb::query(&format!("{w} SELECT key, window_end FROM w"))
            .iter()
            .map(|r| (r["key"].to_string(), r["window_end"].to_string()))
            .collect();
    assert!(want_per.len() > 50, "too few windows: {}", want_per.len());
    assert!(
        want_top.len() > 50 && want_top.len() < 2 * want_per.len(),
        "the filter should drop some top rows: {} of {}",
        want_top.len(),
        2 * want_per.len()
    );
    for (no_fusion, parallelism) in [(false, "1"), (false, "3"), (true, "2")] {
        let binary = build("duck_window_final", &text, no_fusion);
        let result = run(&binary, &["--parallelism", parallelism], dir.path(), None);
        assert!(result.success, "{}", result.stderr);
        let read = |name: &str| {
            json_rows(&std::fs::read_to_string(dir.path().join(name)).unwrap_or_default())
        };
        let what = format!("parallelism {parallelism}, no_fusion {no_fusion}");
        assert_same_rows(&format!("top, {what}"), &read("top.jsonl"), &want_top, &[]);
        assert_same_rows(&format!("per, {what}"), &read("per.jsonl"), &want_per, &[]);
        assert_same_rows(
            &format!("per10, {what}"),
            &read("per10.jsonl"),
            &want_per10,
            &[],
        );
        // Which row a dedup keeps among a window's ties is arrival order: check one per window,
        // each a real (key, window).
        let one = read("one.jsonl");
        assert_eq!(one.len(), want_per.len(), "one row per window, {what}");
        for row in &one {
            let pair = (row["key"].to_string(), row["window_end"].to_string());
            assert!(
                window_keys.contains(&pair),
                "{row} is no window's row, {what}"
            );
        }
    }
}

/// Builds a Nexmark example (JSON on stdout instead of its checksum) twice: as written, and
/// with every Nexmark source slower (`rate: 1_000`, so `EVENTS` events span 200 s of event
/// time: many windows and session gaps) and out of order within groups of 500 events (at most
/// 0.5 s apart, under the examples' 4 s watermark bound, so none is late). Runs each on
/// `EVENTS` events from one generator split. Its rows must equal, as a multiset, `sql` in
/// DuckDB over the same generator run written to CSV: `{persons}`, `{auctions}` and `{bids}`
/// in `sql` stand for the three streams' tables. Returns DuckDB's rows for the slow run, for
/// checks that the comparison covers the interesting cases.
fn check_nexmark_query(name: &str, file: &str, sql: &str) -> Vec<Value> {
    let text = to_stdout(&example(file));
    assert!(
        text.contains("-> stdout() format json"),
        "{file} has no checksum sink to replace"
    );
    compare_variants(&format!("duck_{name}"), name, &text, sql, None, &[])
}

/// Runs `text` on the default and the slow, out-of-order generator (see
/// [`check_nexmark_query`]) and compares its rows (stdout, or the file `output` in its
/// folder) with `sql` in DuckDB over the same events; returns DuckDB's rows of the slow run.
fn compare_variants(
    crate_name: &str,
    name: &str,
    text: &str,
    sql: &str,
    output: Option<&str>,
    approx: &[&str],
) -> Vec<Value> {
    let source = "= nexmark(";
    assert!(text.contains(source), "{name} has no nexmark source");
    let slow = text.replace(source, &format!("{source}rate: 1_000, out_of_order: 500, "));
    let mut want = Vec::new();
    for (variant, text, rate, group) in [
        ("", text, NexmarkConfig::default().rate, 1),
        ("_slow_ooo", &slow, 1_000, 500),
    ] {
        let what = format!("{name}{variant}");
        let config = NexmarkConfig {
            events: EVENTS,
            generators: 1,
            rate,
            out_of_order_group: group,
            ..NexmarkConfig::default()
        };
        let events = nexmark_events(&config);
        let dir = temp();
        let mut sql = sql.to_string();
        if sql.contains("{persons}") {
            let csv = dir.path().join("persons.csv");
            write_persons_csv(&csv, &events.persons);
            sql = sql.replace("{persons}", &read_persons(&csv));
        }
        if sql.contains("{auctions}") {
            let csv = dir.path().join("auctions.csv");
            write_auctions_csv(&csv, &events.auctions);
            sql = sql.replace("{auctions}", &read_auctions(&csv));
        }
        if sql.contains("{bids}") {
            let csv = dir.path().join("bids.csv");
            write_bids_csv(&csv, &events.bids);
            sql = sql.replace("{bids}", &read_bids(&csv));
        }
        want = duckdb::query(&sql);

        let binary = build(&format!("{crate_name}{variant}"), text, false);
        let count = EVENTS.to_string();
        let result = run(
            &binary,
            &["--events", &count, "--generators", "1", "--quiet"],
            dir.path(),
            None,
        );
        assert!(result.success, "{what}: {}", result.stderr);
        let rows = match output {
            None => json_rows(&result.stdout),
            Some(file) => json_rows(
                &std::fs::read_to_string(dir.path().join(file)).expect("the output was written"),
            ),
        };
        assert_same_rows(&what, &rows, &want, approx);
    }
    want
}

#[test]
fn the_csv_files_round_trip_through_duckdb() {
    // Quotes, commas, newlines and empty strings (which DuckDB reads as NULL by default when
    // quoted) come back as written; times become timestamps.
    let dir = temp();
    let odd = "a \"quoted\", multi\nline";
    let person = Person {
        id: 7,
        name: odd.to_string(),
        email_address: String::new(),
        city: "Bend".to_string(),
        state: "OR".to_string(),
        date_time: 1_436_918_400_123,
        ..Person::default()
    };
    let auction = Auction {
        id: 8,
        item_name: String::new(),
        description: odd.to_string(),
        date_time: 1_436_918_400_000,
        expires: 1_436_918_401_999,
        seller: 7,
        category: 10,
        ..Auction::default()
    };
    let bid = Bid {
        auction: 8,
        channel: odd.to_string(),
        date_time: -1,
        ..Bid::default()
    };
    let (p, a, b) = (
        dir.path().join("p.csv"),
        dir.path().join("a.csv"),
        dir.path().join("b.csv"),
    );
    write_persons_csv(&p, &[person]);
    write_auctions_csv(&a, &[auction]);
    write_bids_csv(&b, &[bid]);
    let rows = duckdb::query(&format!(
        "SELECT P.name, P.email_address, P.credit_card, P.date_time AS p_time, A.item_name, \
                A.description, A.expires, B.channel, B.extra, B.date_time AS b_time \
         FROM {} P JOIN {} A ON A.seller = P.id JOIN {} B ON B.auction = A.id",
        read_persons(&p),
        read_auctions(&a),
        read_bids(&b)
    ));
    assert_eq!(
        rows,
        vec![json!({"name": odd, "email_address": "", "credit_card": "",
                    "p_time": "2015-07-15 00:00:00.123", "item_name": "", "description": odd,
                    "expires": "2015-07-15 00:00:01.999", "channel": odd, "extra": "",
                    "b_time": "1969-12-31 23:59:59.999"})]
    );
}

#[test]
fn q3_matches_duckdb() {
    check_nexmark_query(
        "q3",
        "nexmark/q3.weir",
        "SELECT P.name, P.city, P.state, A.id \
         FROM {auctions} AS A JOIN {persons} AS P ON A.seller = P.id \
         WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA')",
    );
}

#[test]
fn q7_matches_duckdb() {
    // The maximum price per 10 s tumbling window (epoch-aligned), then every bid at that price
    // with `window_end - 10 s <= date_time <= window_end`: both ends included, so a bid at
    // exactly a window's end can pair with that window too.
    let want = check_nexmark_query(
        "q7",
        "nexmark/q7.weir",
        "WITH bids AS {bids}, \
         B1 AS (SELECT max(price) AS maxprice, \
                       time_bucket(INTERVAL '10 seconds', date_time, TIMESTAMP '1970-01-01') \
                           + INTERVAL '10 seconds' AS window_end \
                FROM bids GROUP BY window_end) \
         SELECT B.auction, B.price, B.bidder, B.date_time, B.extra \
         FROM bids AS B JOIN B1 ON B.price = B1.maxprice \
         WHERE B.date_time BETWEEN B1.window_end - INTERVAL '10 seconds' AND B1.window_end",
    );
    assert!(want.len() > 10, "too few windows: {}", want.len());
}

#[test]
fn q8_matches_duckdb() {
    let want = check_nexmark_query(
        "q8",
        "nexmark/q8.weir",
        "WITH P AS (SELECT id, name, \
                           time_bucket(INTERVAL '10 seconds', date_time, TIMESTAMP '1970-01-01') \
                               AS starttime \
                    FROM {persons} GROUP BY id, name, starttime), \
         A AS (SELECT seller, \
                      time_bucket(INTERVAL '10 seconds', date_time, TIMESTAMP '1970-01-01') \
                          AS starttime \
               FROM {auctions} GROUP BY seller, starttime) \
         SELECT P.id, P.name, P.starttime \
         FROM P JOIN A ON P.id = A.seller AND P.starttime = A.starttime",
    );
    assert!(want.len() > 10, "too few new sellers: {}", want.len());
}

#[test]
fn q11_matches_duckdb() {
    // Sessions by window functions: a bid opens a session when it is its bidder's first or
    // comes 10 s or more after the bidder's previous bid; the running count of those flags is
    // the session number. The sum's frame is RANGE (the default), so bids at the same time
    // share a number whatever order the two window functions put them in.
    let want = check_nexmark_query(
        "q11",
        "nexmark/q11.weir",
        "WITH flagged AS ( \
             SELECT bidder, date_time, \
                    CASE WHEN lag(date_time) OVER (PARTITION BY bidder ORDER BY date_time) IS NULL \
                           OR date_time - lag(date_time) OVER (PARTITION BY bidder ORDER BY date_time) \
                              > INTERVAL '10 seconds' \
                         THEN 1 ELSE 0 END AS new_session \
             FROM {bids}), \
         sessions AS ( \
             SELECT bidder, date_time, \
                    sum(new_session) OVER (PARTITION BY bidder ORDER BY date_time \
                        RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session \
             FROM flagged) \
         SELECT bidder, count(*) AS bid_count, min(date_time) AS starttime, \
                max(date_time) + INTERVAL '10 seconds' AS endtime \
         FROM sessions GROUP BY bidder, session",
    );
    let long = want.iter().filter(|r| r["bid_count"] != json!(1)).count();
    let mut bidders: Vec<&Value> = want.iter().map(|r| &r["bidder"]).collect();
    bidders.sort_by_key(|b| b.to_string());
    bidders.dedup();
    assert!(
        long > 0 && bidders.len() < want.len(),
        "the data should give sessions of several bids and bidders with several sessions"
    );
}

#[test]
fn q20_matches_duckdb() {
    check_nexmark_query(
        "q20",
        "nexmark/q20.weir",
        "SELECT B.auction, B.bidder, B.price, B.channel, B.url, B.date_time, B.extra, \
                A.item_name, A.description, A.initial_bid, A.reserve, \
                A.date_time AS auction_date_time, A.expires, A.seller, A.category, \
                A.extra AS auction_extra \
         FROM {bids} AS B JOIN {auctions} AS A ON B.auction = A.id \
         WHERE A.category = 10",
    );
}

#[test]
fn q5_matches_duckdb() {
    // Hop windows of 10 s every 2 s (epoch-aligned): a bid at t is in the five windows whose
    // starts are the multiples of 2 s in (t - 10 s, t], generated per bid with
    // `generate_series` (both bounds included). Ties for the maximum are all kept.
    let want = check_nexmark_query(
        "q5",
        "nexmark/q5.weir",
        "WITH starts AS ( \
             SELECT auction, \
                    unnest(generate_series(epoch_ms(date_time) // 2000 * 2000 - 8000, \
                                           epoch_ms(date_time) // 2000 * 2000, 2000)) AS start_ms \
             FROM {bids}), \
         counts AS ( \
             SELECT auction, count(*) AS num, epoch_ms(start_ms) AS starttime, \
                    epoch_ms(start_ms + 10000) AS endtime \
             FROM starts GROUP BY auction, start_ms), \
         max_counts AS (SELECT starttime, max(num) AS maxn FROM counts GROUP BY starttime) \
         SELECT C.auction, C.num, C.starttime, C.endtime \
         FROM counts AS C JOIN max_counts AS M \
           ON C.starttime = M.starttime AND C.num >= M.maxn",
    );
    assert!(want.len() > 10, "too few windows: {}", want.len());
}

/// An updating query's final table (its file sink: one row per key after every revision)
/// against `sql` in DuckDB over the same generator run, default and slow out-of-order.
fn check_final_table(name: &str, file: &str, sql: &str, approx: &[&str]) -> Vec<Value> {
    let output = format!("{name}.jsonl");
    let text = example(file).replace(
        &format!("sink {name} -> checksum()"),
        &format!("sink {name} -> file(path: \"{output}\")"),
    );
    assert!(
        text.contains(&format!("\"{output}\"")),
        "{file}: no checksum sink"
    );
    compare_variants(
        &format!("duck_final_{name}"),
        name,
        &text,
        sql,
        Some(&output),
        approx,
    )
}

/// The winning price per auction, as q4 and q6 define it.
const WINNING: &str = "SELECT A.id, A.seller, A.category, A.expires, max(B.price) AS final \
     FROM {auctions} AS A JOIN {bids} AS B ON A.id = B.auction \
     AND B.date_time BETWEEN A.date_time AND A.expires \
     GROUP BY A.id, A.seller, A.category, A.expires";

#[test]
fn q4_final_table_matches_duckdb() {
    check_final_table(
        "q4",
        "nexmark/q4.weir",
        &format!(
            "WITH W AS ({WINNING}) \
             SELECT category, avg(final) AS avg_final FROM W GROUP BY category"
        ),
        &["avg_final"],
    );
}

#[test]
fn q6_final_table_matches_duckdb() {
    let want = check_final_table(
        "q6",
        "nexmark/q6.weir",
        &format!(
            "WITH W AS ({WINNING}), \
             R AS (SELECT *, row_number() OVER \
                   (PARTITION BY seller ORDER BY expires DESC, id DESC) AS rn FROM W) \
             SELECT seller, avg(final) AS avg_final FROM R WHERE rn <= 10 GROUP BY seller"
        ),
        &["avg_final"],
    );
    assert!(want.len() > 100, "too few sellers: {}", want.len());
}

#[test]
fn q9_final_table_matches_duckdb() {
    // Ties on both price and bid time within an auction would make the winner depend on
    // arrival (docs/nexmark.md): the comparison below would show them.
    check_final_table(
        "q9",
        "nexmark/q9.weir",
        "WITH J AS (SELECT A.id, A.item_name, A.description, A.initial_bid, A.reserve, \
             A.date_time, A.expires, A.seller, A.category, A.extra, B.auction, B.bidder, \
             B.price, B.date_time AS bid_date_time, B.extra AS bid_extra \
             FROM {auctions} AS A JOIN {bids} AS B ON A.id = B.auction \
             AND B.date_time BETWEEN A.date_time AND A.expires), \
         R AS (SELECT *, row_number() OVER \
             (PARTITION BY id ORDER BY price DESC, bid_date_time ASC) AS rank FROM J) \
         SELECT * FROM R WHERE rank = 1",
        &[],
    );
}

#[test]
fn q13_lookup_join_matches_duckdb() {
    let side = weir_tests::workspace().join("examples/nexmark/side_input.csv");
    let text = to_stdout(&example("nexmark/q13.weir")).replace(
        "\"side_input.csv\"",
        &format!("{:?}", side.display().to_string()),
    );
    let config = NexmarkConfig {
        events: EVENTS,
        generators: 1,
        ..NexmarkConfig::default()
    };
    let dir = temp();
    let csv = dir.path().join("bids.csv");
    write_bids_csv(&csv, &nexmark_bids(&config));
    let sql = format!(
        "SELECT B.auction, B.bidder, B.price, B.date_time, S.value \
         FROM {} AS B JOIN read_csv({}, header = true, columns = {{'key': 'BIGINT', 'value': 'VARCHAR'}}) AS S \
         ON B.auction % 10000 = S.key",
        read_bids(&csv),
        sql_string(&side.display().to_string())
    );
    let want = duckdb::query(&sql);
    let count = EVENTS.to_string();
    let result = run(
        &build("duck_q13", &text, false),
        &["--events", &count, "--generators", "1", "--quiet"],
        dir.path(),
        None,
    );
    assert!(result.success, "{}", result.stderr);
    assert_same_rows("q13", &json_rows(&result.stdout), &want, &[]);
}

/// Events for the ordering tests: `seq` is the line number (arrival order with one reader),
/// `ts` whole seconds that run up to 3 s behind the newest (out of order under a 5 s
/// watermark bound, never late) with many ties per key, `v` null in one line of 8, and `id`
/// a dedup key with a dozen lines each. Returns the file's path.
fn write_ordering_events(dir: &std::path::Path) -> String {
    let input = dir.join("events.jsonl");
    let mut lines = Vec::new();
    let mut state = 0x0dd_u64;
    for seq in 0..6000i64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let behind = ((state >> 33) % 4) as i64 * 1000;
        let ts = format_ts(1_436_918_400_000 + (seq / 4) * 1000 - behind);
        let k = (state >> 40) % 5;
        let id = (state >> 24) % 500;
        let v = match (state >> 50) % 8 {
            0 => "null".to_string(),
            _ => (((state >> 10) % 100_000) as i64 - 50_000).to_string(),
        };
        lines.push(format!(
            r#"{{"key":"k{k}","id":{id},"seq":{seq},"v":{v},"ts":"{ts}"}}"#
        ));
    }
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    input.display().to_string()
}

/// Rows as sorted JSON texts, to compare DuckDB results whose row order is unspecified.
fn row_set(rows: Vec<Value>) -> Vec<String> {
    let mut texts: Vec<String> = rows.iter().map(Value::to_string).collect();
    texts.sort();
    texts
}

/// The ordering events as a DuckDB table expression.
fn ordering_table(path: &str) -> String {
    format!(
        "read_json({}, format = 'newline_delimited', \
         columns = {{'key': 'VARCHAR', 'id': 'BIGINT', 'seq': 'BIGINT', 'v': 'BIGINT', 'ts': 'TIMESTAMP'}}, \
         timestampformat = '%Y-%m-%d %H:%M:%S.%g')",
        sql_string(path)
    )
}

/// `first_value`/`last_value` take the earliest/latest record by event time (ties: the first
/// arrival for `first_value`, the last for `last_value`; null values skipped), in tumbling and
/// session windows and in an unbounded `aggregate by`: DuckDB's `first`/`last` ordered by
/// (ts, seq) over the non-null values. Arrival order alone gives other answers on this input
/// (checked too), so the comparison would catch an aggregate that ignores event time.
#[test]
fn first_and_last_value_by_event_time_match_duckdb() {
    let dir = temp();
    let path = write_ordering_events(dir.path());
    let table = ordering_table(&path);
    let sessions_out = dir.path().join("sessions.jsonl");
    let totals_out = dir.path().join("totals.jsonl");
    let aggs = "f: first_value(v), l: last_value(v), fs: first_value(seq), ls: last_value(seq)";
    let text = format!(
        "schema E {{ key: string, id: i64, seq: i64, v: i64?, ts: timestamp }}\n\
         source e: E = file(path: \"{path}\", parallelism: 1) format json event_time ts watermark 5s\n\
         let w = e |> key_by key |> window tumble(10s) |> aggregate {{ {aggs} }}\n\
         let s = e |> key_by key |> window session(gap: 2500ms) |> aggregate {{ {aggs} }}\n\
         let u = e |> aggregate by key {{ {aggs} }}\n\
         sink w -> stdout() format json\n\
         sink s -> file(path: \"{}\") format json\n\
         sink u -> file(path: \"{}\") format json\n",
        sessions_out.display(),
        totals_out.display()
    );
    // `order` is the aggregates' ORDER BY: (ts, seq) for event time, seq for arrival.
    let sql_aggs = |order: &str| {
        format!(
            "first(v ORDER BY {order}) FILTER (WHERE v IS NOT NULL) AS f, \
             last(v ORDER BY {order}) FILTER (WHERE v IS NOT NULL) AS l, \
             first(seq ORDER BY {order}) AS fs, last(seq ORDER BY {order}) AS ls"
        )
    };
    let windows = |order: &str| {
        duckdb::query(&format!(
            "SELECT key, time_bucket(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01') AS window_start, \
                    window_start + INTERVAL '10 seconds' AS window_end, {} \
             FROM {table} GROUP BY ALL",
            sql_aggs(order)
        ))
    };
    // Sessions: a new one where a key's next time is 2.5 s or more after the previous one
    // (times are whole seconds, so never exactly 2.5 s: touching sessions cannot occur).
    let sessions = |order: &str| {
        duckdb::query(&format!(
            "WITH G AS (SELECT *, CASE WHEN ts - lag(ts) OVER (PARTITION BY key ORDER BY ts, seq) \
                                <= INTERVAL '2500 milliseconds' THEN 0 ELSE 1 END AS starts FROM {table}), \
                  S AS (SELECT *, sum(starts) OVER (PARTITION BY key ORDER BY ts, seq \
                                ROWS UNBOUNDED PRECEDING) AS session FROM G) \
             SELECT key, min(ts) AS window_start, max(ts) + INTERVAL '2500 milliseconds' AS window_end, {} \
             FROM S GROUP BY key, session",
            sql_aggs(order)
        ))
    };
    let totals = |order: &str| {
        duckdb::query(&format!(
            "SELECT key, {} FROM {table} GROUP BY key",
            sql_aggs(order)
        ))
    };
    let (want_w, want_s, want_u) = (windows("ts, seq"), sessions("ts, seq"), totals("ts, seq"));
    let differ = |a: &[Value], b: Vec<Value>| row_set(a.to_vec()) != row_set(b);
    assert!(
        differ(&want_w, windows("seq")),
        "the input should be out of order"
    );
    assert!(
        differ(&want_s, sessions("seq")),
        "the input should be out of order"
    );
    assert!(
        differ(&want_u, totals("seq")),
        "the input should be out of order"
    );
    // Ties decide some answers: first by (ts, seq) differs from first by (ts, -seq).
    assert!(
        differ(&want_w, windows("ts, seq DESC")),
        "the input should have ties of event time"
    );
    assert!(want_s.len() > 50, "too few sessions: {}", want_s.len());

    let binary = build("duck_first_last", &text, false);
    let result = run(&binary, &["--parallelism", "2"], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    assert_same_rows("tumbling windows", &json_rows(&result.stdout), &want_w, &[]);
    let read = |p: &std::path::Path| json_rows(&std::fs::read_to_string(p).unwrap());
    assert_same_rows("session windows", &read(&sessions_out), &want_s, &[]);
    assert_same_rows("aggregate by key", &read(&totals_out), &want_u, &[]);
}

/// `dedup by id keep first` keeps the row with the earliest event time, `keep last` the one
/// with the latest (ties: the first and the last arrival): DuckDB's row_number over
/// (partition by id order by ts, seq), ascending and descending, on out-of-order input where
/// arrival order alone would choose other rows.
#[test]
fn dedup_keeps_the_earliest_or_latest_by_event_time_as_duckdb() {
    let dir = temp();
    let path = write_ordering_events(dir.path());
    let table = ordering_table(&path);
    let first_out = dir.path().join("first.jsonl");
    let last_out = dir.path().join("last.jsonl");
    let text = format!(
        "schema E {{ key: string, id: i64, seq: i64, v: i64?, ts: timestamp }}\n\
         source e: E = file(path: \"{path}\", parallelism: 1) format json event_time ts watermark 5s\n\
         sink e |> dedup by id keep first -> file(path: \"{}\") format json\n\
         sink e |> dedup by id keep last -> file(path: \"{}\") format json\n",
        first_out.display(),
        last_out.display()
    );
    let ranked = |order: &str| {
        duckdb::query(&format!(
            "SELECT key, id, seq, v, ts FROM (SELECT *, row_number() OVER \
             (PARTITION BY id ORDER BY {order}) AS rn FROM {table}) WHERE rn = 1"
        ))
    };
    let want_first = ranked("ts, seq");
    let want_last = ranked("ts DESC, seq DESC");
    let differ = |a: &[Value], b: Vec<Value>| row_set(a.to_vec()) != row_set(b);
    assert!(
        differ(&want_first, ranked("seq")),
        "the input should be out of order"
    );
    assert!(
        differ(&want_last, ranked("seq DESC")),
        "the input should be out of order"
    );
    assert!(
        differ(&want_first, ranked("ts, seq DESC")),
        "the input should have ties of event time"
    );
    assert_eq!(want_first.len(), 500);

    let binary = build("duck_dedup_order", &text, false);
    let result = run(&binary, &["--parallelism", "2"], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let read = |p: &std::path::Path| json_rows(&std::fs::read_to_string(p).unwrap());
    assert_same_rows("dedup keep first", &read(&first_out), &want_first, &[]);
    assert_same_rows("dedup keep last", &read(&last_out), &want_last, &[]);
}
