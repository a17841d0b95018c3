//! The PostgreSQL sink against a real server (`.ci/run` starts one): each test writes fresh
//! tables, reads them back with psql and compares them with the same stream written to a file
//! by the same run (the file sink is the oracle: another writer of the same rows).

use std::time::{Duration, Instant};

use weir_tests::postgres::{query, server, unique_table};
use weir_tests::running::Running;
use weir_tests::{build, run};

/// CSV lines sorted, for comparing tables whatever the order rows came in.
fn sorted(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut lines: Vec<String> = lines.into_iter().collect();
    lines.sort();
    lines
}

/// An append stream is copied in: the table holds exactly the rows the file sink wrote, with
/// every type (optional fields as NULL, text with commas and quotes, timestamps in UTC).
#[test]
fn an_append_stream_is_copied_into_a_table() {
    let Some(url) = server() else { return };
    let table = unique_table("bids");
    let text = format!(
        "source bids = nexmark(stream: \"bid\", events: 20000)\n\
         let some = bids\n    \
           |> filter auction % 3 = 0\n    \
           |> select {{ auction, price, dollars: cast(price as f64) / 100.0, big: price > 1000000,\n      \
                      channel, note: case when bidder % 2 = 0 then null else \"a, \\\"quoted\\\" note\" end,\n      \
                      at: date_time }}\n\
         sink some -> postgres(url: \"{url}\", table: \"{table}\")\n\
         sink some -> file(path: \"some.csv\") format csv\n"
    );
    let binary = build("postgres_append", &text, false);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&binary, &["--parallelism", "2"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let file = std::fs::read_to_string(dir.path().join("some.csv")).expect("file");
    let want = sorted(file.lines().map(str::to_string));
    assert!(want.len() > 1000, "{}", want.len());
    // The same text as the CSV sink writes: f64 in Rust's shortest form (`1.0` where
    // PostgreSQL prints `1`), null as nothing, a string with a comma or quote quoted.
    let got = sorted(query(
        &url,
        &format!(
            "SELECT auction, price, \
             CASE WHEN dollars = trunc(dollars) THEN dollars::text || '.0' ELSE dollars::text END, \
             big, channel, \
             CASE WHEN note IS NULL THEN '' ELSE '\"' || replace(note, '\"', '\"\"') || '\"' END, \
             to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM \"{table}\""
        ),
    ));
    assert_eq!(got.len(), want.len());
    let normalize = |l: &str| l.replace(",t,", ",true,").replace(",f,", ",false,");
    let got: Vec<String> = sorted(got.iter().map(|l| normalize(l)));
    assert_eq!(got, want);
    // The columns weir made.
    let columns = query(
        &url,
        &format!(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = '{table}' ORDER BY ordinal_position"
        ),
    );
    assert_eq!(
        columns,
        [
            "auction,bigint,NO",
            "price,bigint,NO",
            "dollars,double precision,NO",
            "big,boolean,NO",
            "channel,text,NO",
            "note,text,YES",
            "at,timestamp with time zone,NO",
        ]
    );
}

/// An updating stream's changes are applied by key: the table is the final table the file
/// sink writes, one row per key; a table whose columns do not fit stops the run at start.
#[test]
fn an_updating_stream_is_kept_as_a_live_table() {
    let Some(url) = server() else { return };
    let table = unique_table("per_auction");
    let text = format!(
        "source bids = nexmark(stream: \"bid\", events: 30000)\n\
         let per_auction = bids |> aggregate by auction {{ n: count(), top: max(price) }}\n\
         sink per_auction -> postgres(url: \"{url}\", table: \"{table}\")\n\
         sink per_auction -> file(path: \"per_auction.csv\") format csv\n"
    );
    let binary = build("postgres_upsert", &text, false);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let file = std::fs::read_to_string(dir.path().join("per_auction.csv")).expect("file");
    let want = sorted(file.lines().map(str::to_string));
    assert!(want.len() > 100, "{}", want.len());
    let got = sorted(query(
        &url,
        &format!("SELECT auction, n, top FROM \"{table}\""),
    ));
    assert_eq!(got, want);
    let key = query(
        &url,
        &format!(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a \
             ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = '\"{table}\"'::regclass AND i.indisprimary"
        ),
    );
    assert_eq!(key, ["auction"]);

    // A table of the same name with another type: the run stops before reading anything.
    let other = unique_table("mismatch");
    query(
        &url,
        &format!("CREATE TABLE \"{other}\" (auction TEXT, n BIGINT, top BIGINT)"),
    );
    let text = text.replace(&table, &other);
    let binary = build("postgres_mismatch", &text, false);
    let out = run(&binary, &[], dir.path(), None);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("column `auction` is text, the stream's field is bigint"),
        "{}",
        out.stderr
    );
}

/// A key that may be null (the null group of an `aggregate by`) is one row like any other:
/// upserted in place and deleted when the group empties. The table weir makes holds it under
/// a unique constraint with nulls equal; a table whose unique index holds nulls as distinct
/// (where each upsert of the null key would add a row) stops the run at start.
#[test]
fn a_null_key_is_upserted_and_deleted_like_any_other() {
    let Some(url) = server() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    // Ids 1 and 2 each pass through a count of 1 (the null group) and leave it: the null row
    // is written with c = 2, updated to 1, deleted; id 4 leaves it at c = 1 at the end.
    std::fs::write(dir.path().join("rows.csv"), "1\n2\n1\n2\n3\n3\n3\n4\n").expect("rows");
    let table = unique_table("null_key");
    let text = format!(
        "schema R {{ id: i64 }}\n\
         source rows: R = file(path: \"rows.csv\") format csv\n\
         let per_id = rows |> aggregate by id {{ n: count() }}\n\
         let by_n = per_id |> select {{ id, g: case when n = 1 then null else n end }}\n    \
           |> aggregate by g {{ c: count() }}\n\
         sink by_n -> postgres(url: \"{url}\", table: \"{table}\")\n\
         sink by_n -> file(path: \"by_n.csv\") format csv\n"
    );
    let binary = build("postgres_null_key", &text, false);
    let out = run(&binary, &["--parallelism", "1"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let file = std::fs::read_to_string(dir.path().join("by_n.csv")).expect("file");
    let want = sorted(file.lines().map(str::to_string));
    assert_eq!(want, [",1", "2,2", "3,1"]);
    let select = |table: &str| {
        sorted(query(
            &url,
            &format!("SELECT coalesce(g::text, ''), c FROM \"{table}\""),
        ))
    };
    assert_eq!(select(&table), want);

    // A table made by hand with a plain unique index on the key: refused before any row.
    let plain = unique_table("null_key_plain");
    query(
        &url,
        &format!("CREATE TABLE \"{plain}\" (g BIGINT UNIQUE, c BIGINT NOT NULL)"),
    );
    let binary = build(
        "postgres_null_key_plain",
        &text.replace(&table, &plain),
        false,
    );
    let out = run(&binary, &[], dir.path(), None);
    assert!(!out.success);
    assert!(
        out.stderr.contains("holds nulls as distinct") && out.stderr.contains("NULLS NOT DISTINCT"),
        "{}",
        out.stderr
    );
    assert!(select(&plain).is_empty());

    // With nulls equal under its index, the same table is kept right.
    let equal = unique_table("null_key_equal");
    query(
        &url,
        &format!(
            "CREATE TABLE \"{equal}\" (g BIGINT, c BIGINT NOT NULL, UNIQUE NULLS NOT DISTINCT (g))"
        ),
    );
    let binary = build(
        "postgres_null_key_equal",
        &text.replace(&table, &equal),
        false,
    );
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert_eq!(select(&equal), want);

    // A table with no unique index on the key at all: refused, naming what to add.
    let none = unique_table("null_key_none");
    query(
        &url,
        &format!("CREATE TABLE \"{none}\" (g BIGINT, c BIGINT NOT NULL)"),
    );
    let binary = build(
        "postgres_null_key_none",
        &text.replace(&table, &none),
        false,
    );
    let out = run(&binary, &[], dir.path(), None);
    assert!(!out.success);
    assert!(out.stderr.contains("has no unique index"), "{}", out.stderr);
}

/// `delivery: "exactly_once"` survives SIGKILL: a rate-limited run with checkpoints is killed
/// again and again, then run to the end; the table holds every row once. The oracle is the same
/// stream written to a file by a run without kills.
#[test]
fn an_exactly_once_table_survives_sigkill() {
    let Some(url) = server() else { return };
    let table = unique_table("eos");
    let pipeline = |sink: &str| {
        format!(
            "source bids = nexmark(stream: \"bid\", events: 40000)\n\
             let some = bids |> filter auction % 5 = 0 |> select {{ auction, bidder, price, at: date_time }}\n\
             sink some -> {sink}\n"
        )
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let oracle = build(
        "postgres_eos_oracle",
        &pipeline("file(path: \"some.csv\") format csv"),
        false,
    );
    let out = run(&oracle, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let want = sorted(
        std::fs::read_to_string(dir.path().join("some.csv"))
            .expect("file")
            .lines()
            .map(str::to_string),
    );
    let binary = build(
        "postgres_eos",
        &pipeline(&format!(
            "postgres(url: \"{url}\", table: \"{table}\", delivery: \"exactly_once\")"
        )),
        false,
    );
    let kills: usize = std::env::var("WEIR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let args = [
        "--parallelism",
        "2",
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "100ms",
        "--rate-limit",
        "20000",
        "--quiet",
    ];
    let mut rng = weir_tests::Rng(0x2545_f491_4f6c_dd1d);
    let landed = weir_tests::kill_repeatedly(&binary, dir.path(), &args, kills, || {
        std::time::Duration::from_millis(200 + rng.below(400))
    });
    assert!(landed >= kills.min(2), "only {landed} kills landed");
    let last = run(&binary, &args, dir.path(), None);
    assert!(last.success, "{}", last.stderr);
    let got = sorted(query(
        &url,
        &format!(
            "SELECT auction, bidder, price, \
             to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM \"{table}\""
        ),
    ));
    assert_eq!(got.len(), want.len(), "rows after {landed} kills");
    assert_eq!(got, want, "after {landed} kills");
    // One marker row, at the final checkpoint.
    let markers = query(
        &url,
        "SELECT count(*) FROM weir_checkpoints WHERE checkpoint > 0",
    );
    assert!(!markers.is_empty());
}

/// A lookup join's table read from PostgreSQL when the pipeline starts: the join's output
/// equals the same join against the same rows in a CSV file (the file table is the oracle),
/// with `table:` and with `query:`; a row with a NULL in a field that is not optional is a dead
/// letter, and a query with too few columns stops the start.
#[test]
fn a_lookup_join_reads_its_table_from_postgres() {
    let Some(url) = server() else { return };
    let table = unique_table("channels");
    query(
        &url,
        &format!(
            "CREATE TABLE \"{table}\" (code TEXT, fee INTEGER, label VARCHAR(20), since TIMESTAMPTZ); \
             INSERT INTO \"{table}\" VALUES \
             ('Google', 3, 'search', '2015-01-01 00:00:00+00'), \
             ('Facebook', 5, NULL, '2015-02-01 12:30:00+00'), \
             ('Baidu', NULL, 'broken', '2015-03-01 00:00:00+00'), \
             ('Apple', 7, 'store', '2014-12-31 23:59:59.5+00')"
        ),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("channels.csv"),
        "Google,3,search,2015-01-01 00:00:00\nFacebook,5,,2015-02-01 12:30:00\nApple,7,store,2014-12-31 23:59:59.500\n",
    )
    .expect("write");
    let pipeline = |source: &str| {
        format!(
            "schema Channel {{ code: string, fee: i64, label: string?, since: timestamp }}\n\
             source channels: Channel = {source}\n\
             source bids = nexmark(stream: \"bid\", events: 5000)\n\
             let charged = bids\n    \
               |> lookup_join channels as c on channel = c.code\n    \
               |> select {{ auction, price, channel, fee: c.fee, label: c.label, since: c.since }}\n\
             sink charged -> file(path: \"out.csv\") format csv\n"
        )
    };
    let run_with = |name: &str, source: &str| {
        let binary = build(name, &pipeline(source), false);
        let _ = std::fs::remove_file(dir.path().join("out.csv"));
        let _ = std::fs::remove_file(dir.path().join("dead_letters.jsonl"));
        let out = run(&binary, &[], dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        let rows = sorted(
            std::fs::read_to_string(dir.path().join("out.csv"))
                .expect("output")
                .lines()
                .map(str::to_string),
        );
        let dead =
            std::fs::read_to_string(dir.path().join("dead_letters.jsonl")).unwrap_or_default();
        (rows, dead)
    };
    let (want, _) = run_with(
        "postgres_lookup_oracle",
        "file(path: \"channels.csv\") format csv",
    );
    assert!(want.len() > 100, "{}", want.len());
    let (got, dead) = run_with(
        "postgres_lookup_table",
        &format!("postgres(url: \"{url}\", table: \"{table}\")"),
    );
    assert_eq!(got, want);
    assert_eq!(dead.lines().count(), 1, "{dead}");
    assert!(dead.contains("`fee`") && dead.contains("is null"), "{dead}");
    let (got, _) = run_with(
        "postgres_lookup_query",
        &format!(
            "postgres(url: \"{url}\", query: \"SELECT code, fee, label, since FROM {table} WHERE fee IS NOT NULL\")"
        ),
    );
    assert_eq!(got, want);

    let binary = build(
        "postgres_lookup_short",
        &pipeline(&format!(
            "postgres(url: \"{url}\", query: \"SELECT code, fee FROM {table}\")"
        )),
        false,
    );
    let out = run(&binary, &[], dir.path(), None);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("2 column(s), the schema has 4 field(s)"),
        "{}",
        out.stderr
    );
}

/// A PostgreSQL table read again every 200 ms (`refresh:`): once a row changes, records join
/// the new row, every record before joined the old one, and a row added later joins too. The
/// test probes with one record at a time until the change shows (generous deadline).
#[test]
fn a_refreshed_postgres_table_joins_changed_rows() {
    let Some(url) = server() else { return };
    let table = unique_table("rooms");
    query(
        &url,
        &format!(
            "CREATE TABLE \"{table}\" (sensor TEXT, room TEXT); \
             INSERT INTO \"{table}\" VALUES ('a', 'kitchen')"
        ),
    );
    let text = format!(
        "schema Reading {{ sensor: string, value: i64 }}\n\
         schema Place {{ sensor: string, room: string }}\n\
         source readings: Reading = stdin() format json\n\
         source places: Place = postgres(url: \"{url}\", table: \"{table}\", refresh: 200ms)\n\
         let located = readings |> lookup_join places as p on sensor = p.sensor\n    \
           |> select {{ sensor, room: p.room, value }}\n\
         sink located -> stdout() format json\n"
    );
    let binary = build("postgres_refresh", &text, false);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut run = Running::start(&binary, dir.path(), &[]);
    let room = |line: String| -> String {
        let row: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        row["room"].as_str().unwrap_or_default().to_string()
    };
    run.send(r#"{"sensor":"a","value":0}"#);
    assert_eq!(room(run.expect_line("before the change")), "kitchen");
    query(
        &url,
        &format!(
            "UPDATE \"{table}\" SET room = 'attic' WHERE sensor = 'a'; \
             INSERT INTO \"{table}\" VALUES ('b', 'cellar')"
        ),
    );
    let started = Instant::now();
    loop {
        run.send(r#"{"sensor":"a","value":1}"#);
        match room(run.expect_line("while the table changes")).as_str() {
            "attic" => break,
            "kitchen" => {}
            other => panic!("room {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the table was not read again within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    run.send(r#"{"sensor":"a","value":2}"#);
    assert_eq!(room(run.expect_line("after the change")), "attic");
    run.send(r#"{"sensor":"b","value":3}"#);
    assert_eq!(room(run.expect_line("a row added later")), "cellar");
    assert_eq!(run.close(), Vec::<String>::new(), "nothing was held back");
}
