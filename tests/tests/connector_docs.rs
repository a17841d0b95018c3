//! The connector pages' examples (`docs/connectors/*.md`) are real: every example a page shows
//! is, word for word, a file under `examples/connectors/` (so the two cannot drift), and each
//! file is built and run here against the services `.ci/run` starts, its output checked
//! against an oracle computed in the test: the CSV input read by the csv crate, the Nexmark
//! model's bids windowed in plain Rust, the same rows read back from Kafka and PostgreSQL.
//!
//! The Kafka and PostgreSQL examples name the addresses `.ci/run` uses by default; the test
//! points them at `WEIR_KAFKA_BROKERS` and `WEIR_POSTGRES_URL` and at topics and tables of its
//! own. Without those variables these two tests say so and pass, except under `CI=true`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use weir_tests::duckdb::{nexmark_bids, query, sql_string};
use weir_tests::{build, run, workspace};

/// An example marker: the fenced block after it is the named file.
const MARKER: &str = "<!-- example: ";

/// Every `(page, example path, block text)` of the connector pages.
fn page_examples() -> Vec<(PathBuf, String, String)> {
    let dir = workspace().join("docs/connectors");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    let mut out = Vec::new();
    for page in pages {
        let text = std::fs::read_to_string(&page).expect("a page");
        let mut rest = text.as_str();
        while let Some(at) = rest.find(MARKER) {
            rest = &rest[at + MARKER.len()..];
            let end = rest.find(" -->").expect("a marker ends with ` -->`");
            let path = rest[..end].to_string();
            rest = &rest[end..];
            let open = rest.find("```").expect("a fenced block after the marker");
            let body = &rest[open..];
            let start = body.find('\n').expect("a fence line") + 1;
            let close = body[start..].find("\n```").expect("a closing fence") + start + 1;
            out.push((page.clone(), path, body[start..close].to_string()));
            rest = &body[close..];
        }
    }
    out
}

/// The text of `examples/connectors/NAME.weir`.
fn example(name: &str) -> String {
    weir_tests::example(&format!("connectors/{name}.weir"))
}

/// A temporary folder holding a copy of `examples/connectors/data`, where examples run.
fn run_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = workspace().join("examples/connectors/data");
    std::fs::create_dir(dir.path().join("data")).expect("data folder");
    for entry in std::fs::read_dir(&data)
        .expect("examples/connectors/data")
        .flatten()
    {
        std::fs::copy(
            entry.path(),
            dir.path().join("data").join(entry.file_name()),
        )
        .expect("copy data");
    }
    dir
}

/// The lines of a JSON-lines file as values.
fn json_file(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect()
}

/// The cells of a CSV file without quotes, the header line left out.
fn csv_cells(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The rows of `examples/connectors/data/orders.csv` that fit the `Order` schema (an
/// integer amount): `(id, customer, amount, ts, coupon)`.
fn orders() -> Vec<(i64, String, i64, String, Option<String>)> {
    csv_cells(&workspace().join("examples/connectors/data/orders.csv"))
        .into_iter()
        .filter_map(|r| {
            let amount = r[2].parse().ok()?;
            let coupon = Some(r[4].clone()).filter(|c| !c.is_empty());
            Some((
                r[0].parse().expect("an id"),
                r[1].clone(),
                amount,
                r[3].clone(),
                coupon,
            ))
        })
        .collect()
}

/// Every example block of every page equals its file, and every file is on a page.
#[test]
fn every_page_example_is_its_file() {
    let examples = page_examples();
    let mut shown = Vec::new();
    for (page, path, block) in &examples {
        let file = std::fs::read_to_string(workspace().join(path))
            .unwrap_or_else(|e| panic!("{}: cannot read example {path}: {e}", page.display()));
        assert_eq!(
            block,
            &file,
            "{}: the example block differs from {path}; copy the file into the page",
            page.display()
        );
        shown.push(path.clone());
    }
    let mut files: Vec<String> = std::fs::read_dir(workspace().join("examples/connectors"))
        .expect("examples/connectors")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "weir"))
        .map(|e| format!("examples/connectors/{}", e.file_name().to_string_lossy()))
        .collect();
    files.sort();
    shown.sort();
    shown.dedup();
    assert_eq!(shown, files, "every connector example is shown on a page");
}

/// files.weir: the dead letter, the JSON lines, the CSV part files and the Parquet folders
/// hold what the csv crate reads from the input.
#[test]
fn files_example() {
    let binary = build("doc_files", &example("files"), false);
    let dir = run_dir();
    let out = run(&binary, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let want: Vec<_> = orders().into_iter().filter(|o| o.2 >= 10).collect();
    assert_eq!(want.len(), 5, "the big orders of orders.csv");

    let mut got = json_file(&dir.path().join("out/big.jsonl"));
    got.sort_by_key(|v| v["id"].as_i64());
    let want_json: Vec<Value> = want
        .iter()
        .map(|(id, customer, amount, ts, coupon)| {
            json!({
                "id": id, "customer": customer, "amount": amount, "ts": format!("{ts}.000"),
                "coupon": coupon, "day": &ts[..10],
            })
        })
        .collect();
    assert_eq!(got, want_json, "out/big.jsonl");

    // The part files: one header each, the rows between them.
    let mut csv_ids = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("out/big_csv"))
        .expect("part files")
        .flatten()
    {
        let text = std::fs::read_to_string(entry.path()).expect("a part file");
        assert_eq!(
            text.lines().next(),
            Some("id,customer,amount,ts,coupon,day")
        );
        for r in csv_cells(&entry.path()) {
            csv_ids.push(r[0].parse::<i64>().expect("an id"));
        }
    }
    csv_ids.sort();
    let want_ids: Vec<i64> = want.iter().map(|o| o.0).collect();
    assert_eq!(csv_ids, want_ids, "out/big_csv");

    // Parquet, read by DuckDB with the day folders as a column.
    let glob = dir.path().join("out/lake/**/*.parquet");
    let rows = query(&format!(
        "SELECT id, day, amount FROM read_parquet({}, hive_partitioning = true) ORDER BY id",
        sql_string(&glob.display().to_string())
    ));
    let want_rows: Vec<Value> = want
        .iter()
        .map(|(id, _, amount, ts, _)| json!({"id": id, "day": &ts[..10], "amount": amount}))
        .collect();
    assert_eq!(rows, want_rows, "out/lake");

    // The line whose amount is not a number, with its line number.
    let dead = json_file(&dir.path().join("out/dead_letters.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["line"], 7, "{dead:?}");
}

/// nested_json.weir: the Lyon orders flattened, and the revenue per item and hour after
/// `unnest`, each equal to what the test computes from `data/orders.jsonl` read by
/// serde_json; the line with a text customer id is the one dead letter, its path named.
#[test]
fn nested_json_example() {
    let binary = build("doc_nested_json", &example("nested_json"), false);
    let dir = run_dir();
    let out = run(&binary, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let orders: Vec<Value> = json_file(&workspace().join("examples/connectors/data/orders.jsonl"))
        .into_iter()
        .filter(|o| o["customer"]["id"].is_i64())
        .collect();
    assert_eq!(orders.len(), 6, "the orders that fit the schema");
    let want: Vec<Value> = orders
        .iter()
        .filter(|o| o["customer"]["address"]["city"] == "Lyon")
        .map(|o| {
            let tags = o["tags"].as_array().expect("tags");
            json!({
                "id": o["id"],
                "name": o["customer"]["name"],
                "zip": o["customer"]["address"].get("zip").cloned().unwrap_or(Value::Null),
                "first_tag": tags.first().cloned().unwrap_or(Value::Null),
                "gift": tags.iter().any(|t| t == "gift"),
                "n_items": o.get("items").and_then(Value::as_array).map(|a| a.len()),
            })
        })
        .collect();
    assert_eq!(
        json_file(&dir.path().join("out/lyon.jsonl")),
        want,
        "out/lyon.jsonl"
    );

    // (sku, hour) -> (items, revenue), from the items of every order.
    let mut revenue: BTreeMap<(String, String), (i64, f64)> = BTreeMap::new();
    for o in &orders {
        let hour = o["ts"].as_str().expect("ts")[..13].to_string();
        for item in o
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let entry = revenue
                .entry((item["sku"].as_str().expect("sku").to_string(), hour.clone()))
                .or_default();
            entry.0 += 1;
            entry.1 +=
                item["qty"].as_i64().expect("qty") as f64 * item["price"].as_f64().expect("price");
        }
    }
    let mut got: Vec<(String, String, i64, f64)> = json_file(&dir.path().join("out/revenue.jsonl"))
        .iter()
        .map(|r| {
            (
                r["sku"].as_str().expect("sku").to_string(),
                r["window_start"].as_str().expect("window_start")[..13].to_string(),
                r["n"].as_i64().expect("n"),
                r["revenue"].as_f64().expect("revenue"),
            )
        })
        .collect();
    got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let want: Vec<(String, String, i64, f64)> = revenue
        .into_iter()
        .map(|((sku, hour), (n, total))| (sku, hour, n, total))
        .collect();
    assert_eq!(got, want, "out/revenue.jsonl");

    let dead = json_file(&dir.path().join("out/nested_dead_letters.jsonl"));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["line"], 6, "{dead:?}");
    assert_eq!(
        dead[0]["reason"],
        "field `customer.id`: expected an integer, found `\"x14\"`"
    );
}

/// stdio.weir: the readings above 30 °C, converted, as CSV on stdout.
#[test]
fn stdio_example() {
    let binary = build("doc_stdio", &example("stdio"), false);
    let input = [
        ("a", 21.5, "2024-03-01 12:00:00"),
        ("b", 31.0, "2024-03-01 12:00:01"),
        ("a", 35.5, "2024-03-01 12:00:02"),
        ("c", 30.0, "2024-03-01 12:00:03"),
    ];
    let lines: String = input
        .iter()
        .map(|(s, c, t)| format!("{}\n", json!({"sensor": s, "celsius": c, "ts": t})))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&binary, &["--quiet"], dir.path(), Some(&lines));
    assert!(out.success, "{}", out.stderr);
    let mut want = vec!["sensor,fahrenheit,ts".to_string()];
    for (s, c, t) in input.iter().filter(|r| r.1 > 30.0) {
        want.push(format!("{s},{},{t}.000", c * 1.8 + 32.0));
    }
    let got: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(got, want, "stdout");
}

/// nexmark.weir: each window's count and highest price equal those of the Nexmark model's
/// bids grouped by 10-second window in Rust.
#[test]
fn nexmark_example() {
    let binary = build("doc_nexmark", &example("nexmark"), false);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&binary, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let config = weir_runtime::nexmark::NexmarkConfig {
        events: 10_000,
        rate: 100,
        seed: 7,
        ..Default::default()
    };
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for bid in nexmark_bids(&config) {
        let entry = want
            .entry(bid.date_time - bid.date_time.rem_euclid(10_000))
            .or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(bid.price);
    }
    let rows = json_file(&dir.path().join("out/bids_per_window.jsonl"));
    let got: BTreeMap<String, (i64, i64)> = rows
        .iter()
        .map(|r| {
            let start = r["window_start"]
                .as_str()
                .expect("a window start")
                .to_string();
            (
                start,
                (
                    r["bids"].as_i64().expect("bids"),
                    r["high"].as_i64().expect("high"),
                ),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "windows: {got:?}");
    assert_eq!(
        got.values().copied().collect::<Vec<_>>(),
        want.values().copied().collect::<Vec<_>>(),
        "per-window bids and highest price"
    );
    assert_eq!(
        got.values().map(|v| v.0).sum::<i64>(),
        9_200,
        "the bids of 10 000 events"
    );
}

/// lookup_tables.weir: each order with its customer's tier from customers.csv, null for a
/// customer the table lacks.
#[test]
fn lookup_tables_example() {
    let binary = build("doc_lookup_tables", &example("lookup_tables"), false);
    let dir = run_dir();
    let out = run(&binary, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let path = workspace().join("examples/connectors/data/customers.csv");
    let tiers: BTreeMap<String, String> = csv_cells(&path)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let want: Vec<Value> = orders()
        .into_iter()
        .map(|(id, customer, amount, _, _)| {
            let tier = tiers.get(&customer).cloned();
            json!({"id": id, "customer": customer, "amount": amount, "tier": tier})
        })
        .collect();
    assert!(
        want.iter().any(|v| v["tier"].is_null()),
        "a customer without a tier"
    );
    let mut got = json_file(&dir.path().join("out/tiered.jsonl"));
    got.sort_by_key(|v| v["id"].as_i64());
    assert_eq!(got, want);
}

/// kafka_write.weir then kafka_read.weir, on topics of this test: the bids topic holds
/// every bid once (exactly once, through checkpoints), and the per-channel windows read
/// back add up to them.
#[test]
fn kafka_examples() {
    let Some(brokers) = weir_tests::kafka::broker() else {
        return;
    };
    let bids = weir_tests::kafka::unique("doc-bids");
    let per_channel = weir_tests::kafka::unique("doc-per-channel");
    let group = weir_tests::kafka::unique("doc-group");
    let adapt = |text: String| {
        text.replace("127.0.0.1:9092", &brokers)
            .replace("\"bids-per-channel\"", &format!("{per_channel:?}"))
            .replace("\"bids\"", &format!("{bids:?}"))
            .replace("\"bid-windows\"", &format!("{group:?}"))
    };
    weir_tests::kafka::create_topic(&brokers, &bids, 2);
    let writer = build("doc_kafka_write", &adapt(example("kafka_write")), false);
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "1s",
        "--quiet",
    ];
    let out = run(&writer, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let written = weir_tests::kafka::consume(&brokers, &bids, 9_200);
    assert_eq!(written.len(), 9_200, "the bids topic");
    let auction_keys = written.iter().all(|(key, value)| {
        let v: Value = serde_json::from_str(value).expect("JSON");
        key.as_deref() == Some(v["auction"].to_string().as_str())
    });
    assert!(auction_keys, "every message keyed by its auction");

    let reader = build("doc_kafka_read", &adapt(example("kafka_read")), false);
    let args = [
        "--kafka-stop-after-idle",
        weir_tests::kafka::STOP_AFTER_IDLE_MS,
        "--quiet",
    ];
    let out = run(&reader, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    // The bids the writer wrote are the Nexmark model's (seed 7, 10 000 events).
    let config = weir_runtime::nexmark::NexmarkConfig {
        events: 10_000,
        seed: 7,
        ..Default::default()
    };
    let mut want: BTreeMap<(String, String), i64> = BTreeMap::new();
    for bid in nexmark_bids(&config) {
        let start = weir_tests::format_ts(bid.date_time - bid.date_time.rem_euclid(10_000));
        *want.entry((bid.channel.clone(), start)).or_default() += 1;
    }
    let rows = weir_tests::kafka::consume(&brokers, &per_channel, want.len());
    let got: BTreeMap<(String, String), i64> = rows
        .iter()
        .map(|(key, value)| {
            let v: Value = serde_json::from_str(value).expect("JSON");
            assert_eq!(key.as_deref(), v["channel"].as_str(), "keyed by channel");
            let start = v["window_start"].as_str().expect("a start").to_string();
            let channel = v["channel"].as_str().expect("a channel").to_string();
            ((channel, start), v["bids"].as_i64().expect("bids"))
        })
        .collect();
    assert_eq!(got, want, "bids per channel and window");
}

/// postgres.weir, into a table of this test: one row per auction whose count and highest
/// price equal the Nexmark model's bids grouped in Rust.
#[test]
fn postgres_example() {
    let Some(url) = weir_tests::postgres::server() else {
        return;
    };
    let table = weir_tests::postgres::unique_table("doc_bids_per_auction");
    let text = example("postgres")
        .replace("postgresql://weir:weir@127.0.0.1:55432/weir", &url)
        .replace("\"bids_per_auction\"", &format!("{table:?}"));
    let binary = build("doc_postgres", &text, false);
    let dir = tempfile::tempdir().expect("temp dir");
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "1s",
        "--quiet",
    ];
    let out = run(&binary, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let config = weir_runtime::nexmark::NexmarkConfig {
        events: 10_000,
        seed: 7,
        ..Default::default()
    };
    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for bid in nexmark_bids(&config) {
        let entry = want.entry(bid.auction).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(bid.price);
    }
    let want: Vec<String> = want
        .iter()
        .map(|(auction, (n, high))| format!("{auction},{n},{high}"))
        .collect();
    let got = weir_tests::postgres::query(
        &url,
        &format!("SELECT auction, bids, high FROM {table} ORDER BY auction"),
    );
    assert_eq!(got, want, "the table");
}

/// An example's text with its `.avsc` paths made absolute (the checker reads them relative to
/// the pipeline file, which a test's text has not).
fn with_schemas(text: String) -> String {
    let data = workspace().join("examples/connectors/data");
    ["big_order.avsc", "bid.avsc", "per_auction.avsc"]
        .iter()
        .fold(text, |text, name| {
            text.replace(
                &format!("\"data/{name}\""),
                &format!("{:?}", data.join(name).display().to_string()),
            )
        })
}

/// The Avro schema of `examples/connectors/data/NAME`.
fn avsc(name: &str) -> Value {
    let path = workspace().join("examples/connectors/data").join(name);
    serde_json::from_str(&std::fs::read_to_string(path).expect("the .avsc")).expect("JSON")
}

/// avro_files.weir: the Avro file, read back by fastavro, holds the CSV's big orders.
#[test]
fn avro_files_example() {
    let binary = build(
        "doc_avro_files",
        &with_schemas(example("avro_files")),
        false,
    );
    let dir = run_dir();
    let out = run(&binary, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let file = weir_tests::avro::read_file(&dir.path().join("out/big.avro"));
    assert_eq!(file["codec"], "deflate");
    // Timestamps are epoch milliseconds in the file: shown as text to compare.
    let mut got: Vec<Value> = file["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["ts"] = json!(weir_tests::format_ts(
                r["ts"].as_i64().expect("a timestamp")
            ));
            r
        })
        .collect();
    got.sort_by_key(|v| v["id"].as_i64());
    let want: Vec<Value> = orders()
        .into_iter()
        .filter(|o| o.2 >= 10)
        .map(|(id, customer, amount, ts, coupon)| {
            json!({"id": id, "customer": customer, "amount": amount, "ts": format!("{ts}.000"), "coupon": coupon})
        })
        .collect();
    assert_eq!(want.len(), 5, "the big orders of orders.csv");
    assert_eq!(got, want, "out/big.avro");
}

/// kafka_avro.weir, kafka_upsert.weir then kafka_upsert_read.weir, on topics of this test:
/// the bids in Avro (Confluent id 1) equal the generator's; the upsert topic replayed
/// (values read by fastavro, latest per key) and the table read back by the upsert-Kafka
/// source equal the bids counted per auction here.
#[test]
fn kafka_avro_examples() {
    let Some(brokers) = weir_tests::kafka::broker() else {
        return;
    };
    let bids = weir_tests::kafka::unique("doc-bids-avro");
    let per_auction = weir_tests::kafka::unique("doc-per-auction");
    let adapt = |text: String| {
        with_schemas(text)
            .replace("127.0.0.1:9092", &brokers)
            .replace("\"bids-avro\"", &format!("{bids:?}"))
            .replace("\"bids-per-auction\"", &format!("{per_auction:?}"))
            .replace(
                "\"bid-totals\"",
                &format!("{:?}", weir_tests::kafka::unique("g")),
            )
            .replace(
                "\"auction-table\"",
                &format!("{:?}", weir_tests::kafka::unique("g")),
            )
    };
    weir_tests::kafka::create_topic(&brokers, &bids, 2);
    weir_tests::kafka::create_topic(&brokers, &per_auction, 1);
    let dir = run_dir();
    let idle = [
        "--kafka-stop-after-idle",
        weir_tests::kafka::STOP_AFTER_IDLE_MS,
        "--quiet",
    ];
    let writer = build("doc_kafka_avro", &adapt(example("kafka_avro")), false);
    let out = run(&writer, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);

    let config = weir_runtime::nexmark::NexmarkConfig {
        events: 10_000,
        seed: 7,
        ..Default::default()
    };
    let model = nexmark_bids(&config);
    let written = weir_tests::kafka::consume_bytes(&brokers, &bids, model.len(), "read_committed");
    let values: Vec<Vec<u8>> = written.iter().map(|(_, v)| v.clone()).collect();
    let rows = weir_tests::avro::decode(&avsc("bid.avsc"), &values, Some(1));
    let mut got: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["auction"].as_i64().unwrap(),
                r["bidder"].as_i64().unwrap(),
                r["price"].as_i64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut want_bids: Vec<(i64, i64, i64)> = model
        .iter()
        .map(|b| (b.auction, b.bidder, b.price))
        .collect();
    want_bids.sort();
    assert_eq!(got, want_bids, "the bids topic");

    let mut want: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for bid in &model {
        let entry = want.entry(bid.auction).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(bid.price);
    }
    let upserts = build("doc_kafka_upsert", &adapt(example("kafka_upsert")), false);
    let out = run(&upserts, &idle, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let messages =
        weir_tests::kafka::consume_bytes(&brokers, &per_auction, want.len(), "read_committed");
    let mut table: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (key, value) in &messages {
        let key: Value = serde_json::from_slice(key.as_deref().expect("a key")).expect("JSON");
        let auction = key["auction"].as_i64().expect("keyed by auction");
        assert!(!value.is_empty(), "no deletes here");
        let row = &weir_tests::avro::decode(
            &avsc("per_auction.avsc"),
            std::slice::from_ref(value),
            Some(2),
        )[0];
        assert_eq!(row["auction"].as_i64(), Some(auction));
        table.insert(
            auction,
            (row["bids"].as_i64().unwrap(), row["high"].as_i64().unwrap()),
        );
    }
    assert_eq!(table, want, "the upsert topic replayed");

    let reader = build(
        "doc_kafka_upsert_read",
        &adapt(example("kafka_upsert_read")),
        false,
    );
    let out = run(&reader, &idle, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let got: Vec<Vec<String>> = csv_cells(&dir.path().join("out/per_auction.csv"));
    let want_rows: Vec<Vec<String>> = want
        .iter()
        .map(|(auction, (n, high))| vec![auction.to_string(), n.to_string(), high.to_string()])
        .collect();
    assert_eq!(got, want_rows, "out/per_auction.csv");
}

/// postgres_lookup.weir, with a customers table of this test filled from customers.csv: each
/// order with its customer's tier, null for a customer the table lacks.
#[test]
fn postgres_lookup_example() {
    let Some(url) = weir_tests::postgres::server() else {
        return;
    };
    let table = weir_tests::postgres::unique_table("doc_customers");
    let path = workspace().join("examples/connectors/data/customers.csv");
    let tiers: BTreeMap<String, String> = csv_cells(&path)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    let rows: Vec<String> = tiers
        .iter()
        .map(|(id, tier)| format!("('{id}', '{tier}')"))
        .collect();
    weir_tests::postgres::query(
        &url,
        &format!(
            "CREATE TABLE {table} (id text, tier text); INSERT INTO {table} VALUES {}",
            rows.join(", ")
        ),
    );
    let text = example("postgres_lookup")
        .replace("postgresql://weir:weir@127.0.0.1:55432/weir", &url)
        .replace("\"customers\"", &format!("{table:?}"));
    let binary = build("doc_postgres_lookup", &text, false);
    let dir = run_dir();
    let out = run(&binary, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let want: Vec<Value> = orders()
        .into_iter()
        .map(|(id, customer, amount, _, _)| {
            let tier = tiers.get(&customer).cloned();
            json!({"id": id, "customer": customer, "amount": amount, "tier": tier})
        })
        .collect();
    assert!(
        want.iter().any(|v| v["tier"].is_null()),
        "a customer without a tier"
    );
    let mut got = json_file(&dir.path().join("out/tiered.jsonl"));
    got.sort_by_key(|v| v["id"].as_i64());
    assert_eq!(got, want);
}
