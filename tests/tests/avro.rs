//! `format avro`: Kafka messages (plain Avro bodies and the Confluent wire format with fixed
//! schema ids) on a real Kafka-protocol broker, and Avro object container files. The input
//! is written by fastavro (Python), an implementation independent of the `apache-avro` crate
//! weir uses, and the output read back with it; the expected rows are computed here.
//!
//! The Kafka tests need `WEIR_KAFKA_BROKERS` (`.ci/run` starts a broker); without it they say
//! why and pass locally, and fail under CI. No schema registry is involved: schema ids are
//! the fixed `confluent_id:` of the pipeline.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use weir_tests::avro;
use weir_tests::kafka::{
    broker, consume_bytes, create_topic, produce_bytes, unique, GROUP_PROPERTIES,
    STOP_AFTER_IDLE_MS,
};
use weir_tests::{build, kill_repeatedly, run, Rng, RunOutput};

const BASE_MS: i64 = 1_700_000_000_000;

/// The orders every test reads: `note` is null for every third.
fn order_schema() -> Value {
    json!({
        "type": "record", "name": "Order", "namespace": "shop",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": "string"},
            {"name": "amount", "type": "int"},
            {"name": "price", "type": "double"},
            {"name": "note", "type": ["null", "string"], "default": null},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "ignored", "type": "boolean"}
        ]
    })
}

fn orders(n: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "id": i,
                "customer": format!("c{}", (i * 7) % 5),
                "amount": (i * 37) % 50,
                "price": i as f64 * 0.25,
                "note": if i % 3 == 0 { Value::Null } else { json!(format!("n{i}")) },
                "ts": BASE_MS + i * 250,
                "ignored": i % 2 == 0,
            })
        })
        .collect()
}

/// What the pipelines write: the big orders, with a derived field.
fn big_schema() -> Value {
    json!({
        "type": "record", "name": "Big",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": "string"},
            {"name": "total", "type": "double"},
            {"name": "note", "type": ["null", "string"]},
            {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "flag", "type": ["null", "boolean"]}
        ]
    })
}

/// The rows of [`big_schema`] the pipelines write for `input`, as fastavro reads them.
fn big_oracle(input: &[Value]) -> BTreeSet<String> {
    input
        .iter()
        .filter(|o| o["amount"].as_i64().unwrap() >= 10)
        .map(|o| {
            json!({
                "id": o["id"],
                "customer": o["customer"],
                "total": o["amount"].as_i64().unwrap() as f64 * o["price"].as_f64().unwrap(),
                "note": o["note"],
                "ts": o["ts"],
                "flag": Value::Null,
            })
            .to_string()
        })
        .collect()
}

const PIPELINE: &str = r#"
schema Order { id: i64, customer: string, amount: i64, price: f64, note: string?, ts: timestamp }
source orders: Order = SOURCE
    event_time ts watermark 1s
sink orders
    |> filter amount >= 10
    |> select { id, customer, total: amount * price, note, ts }
    -> SINK
"#;

fn pipeline(source: &str, sink: &str) -> String {
    PIPELINE.replace("SOURCE", source).replace("SINK", sink)
}

fn write_schema(dir: &Path, name: &str, schema: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(schema).unwrap()).unwrap();
    path.display().to_string()
}

fn run_pipeline(binary: &Path, cwd: &Path, extra: &[&str]) -> RunOutput {
    let dead = cwd.join("dead.jsonl").display().to_string();
    let mut args = vec![
        "--kafka-stop-after-idle",
        STOP_AFTER_IDLE_MS,
        "--dead-letters",
        dead.as_str(),
    ];
    args.extend_from_slice(extra);
    let out = run(binary, &args, cwd, None);
    assert!(out.success, "pipeline failed:\n{}", out.stderr);
    out
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("dead.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a dead letter is JSON"))
        .collect()
}

fn as_set(rows: &[Value]) -> BTreeSet<String> {
    rows.iter().map(Value::to_string).collect()
}

/// Confluent wire format both ways: fastavro's messages with id 7 in, messages with id 8 out,
/// read back by fastavro checking the header; messages with another id, another magic byte or
/// a broken body are dead letters with the reason.
#[test]
fn confluent_avro_from_kafka_to_kafka() {
    let Some(brokers) = broker() else { return };
    let (input, output, group) = (unique("avro-in"), unique("avro-out"), unique("g"));
    create_topic(&brokers, &input, 2);
    create_topic(&brokers, &output, 1);
    let rows = orders(300);
    let mut messages: Vec<(i32, Vec<u8>)> = avro::encode(&order_schema(), &rows, Some(7))
        .into_iter()
        .enumerate()
        .map(|(i, m)| ((i % 2) as i32, m))
        .collect();
    let good = messages[0].1.clone();
    let mut other_id = good.clone();
    other_id[4] = 9;
    let mut magic = good.clone();
    magic[0] = 1;
    let truncated = good[..good.len() - 3].to_vec();
    let hex = |m: &[u8]| m.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let bad_raws = BTreeSet::from([hex(&other_id), hex(&magic), hex(&truncated)]);
    messages.extend([(0, other_id), (1, magic), (0, truncated)]);
    produce_bytes(&brokers, &input, &messages);

    let dir = tempfile::tempdir().unwrap();
    let order_avsc = write_schema(dir.path(), "order.avsc", &order_schema());
    let big_avsc = write_schema(dir.path(), "big.avsc", &big_schema());
    let text = pipeline(
        &format!(
            r#"kafka(topic: "{input}", brokers: "{brokers}", group: "{group}", properties: "{GROUP_PROPERTIES}")
    format avro(schema: "{order_avsc}", confluent_id: 7)"#
        ),
        &format!(
            r#"kafka(topic: "{output}", brokers: "{brokers}", key: customer)
    format avro(schema: "{big_avsc}", confluent_id: 8)"#
        ),
    );
    let binary = build("avro_confluent_kafka", &text, false);
    let out = run_pipeline(&binary, dir.path(), &[]);

    let want = big_oracle(&rows);
    let got = consume_bytes(&brokers, &output, want.len(), "read_committed");
    let bodies: Vec<Vec<u8>> = got.iter().map(|(_, p)| p.clone()).collect();
    let decoded = avro::decode(&big_schema(), &bodies, Some(8));
    assert_eq!(decoded.len(), want.len(), "messages written");
    assert_eq!(as_set(&decoded), want);
    // Keys are the customer, as text.
    assert!(got
        .iter()
        .zip(&decoded)
        .all(|((k, _), row)| k.as_deref() == row["customer"].as_str().map(str::as_bytes)));

    let dead = dead_letters(dir.path());
    let reasons: BTreeSet<String> = dead
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dead.len(), 3, "{dead:?}");
    assert!(
        reasons.iter().any(|r| r.contains("schema id 9, not 7")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("magic byte 1")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("not an Avro record")),
        "{reasons:?}"
    );
    // A binary message's dead letter holds its bytes in hex.
    let raws: BTreeSet<String> = dead
        .iter()
        .map(|d| d["raw"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(raws, bad_raws);
    assert!(out.stderr.contains("dead letters: 3"), "{}", out.stderr);
}

/// Plain Avro bodies (no header), the schema written inline in the pipeline.
#[test]
fn plain_avro_with_an_inline_schema() {
    let Some(brokers) = broker() else { return };
    let (input, output, group) = (
        unique("avro-plain-in"),
        unique("avro-plain-out"),
        unique("g"),
    );
    create_topic(&brokers, &input, 1);
    create_topic(&brokers, &output, 1);
    let rows = orders(100);
    let messages: Vec<(i32, Vec<u8>)> = avro::encode(&order_schema(), &rows, None)
        .into_iter()
        .map(|m| (0, m))
        .collect();
    produce_bytes(&brokers, &input, &messages);
    // SQL-style quotes: the JSON's double quotes need no escaping.
    let inline = |schema: &Value| schema.to_string().replace('\'', "''");
    let text = pipeline(
        &format!(
            r#"kafka(topic: "{input}", brokers: "{brokers}", group: "{group}", properties: "{GROUP_PROPERTIES}")
    format avro(schema: '{}')"#,
            inline(&order_schema())
        ),
        &format!(
            r#"kafka(topic: "{output}", brokers: "{brokers}") format avro(schema: '{}')"#,
            inline(&big_schema())
        ),
    );
    let binary = build("avro_plain_kafka", &text, false);
    let dir = tempfile::tempdir().unwrap();
    run_pipeline(&binary, dir.path(), &[]);
    let want = big_oracle(&rows);
    let got = consume_bytes(&brokers, &output, want.len(), "read_committed");
    let bodies: Vec<Vec<u8>> = got.into_iter().map(|(_, p)| p).collect();
    assert_eq!(as_set(&avro::decode(&big_schema(), &bodies, None)), want);
    assert!(dead_letters(dir.path()).is_empty());
}

/// The schema fastavro writes the input files with: `amount` an `int` where the pipeline's
/// `.avsc` says so too, and a field the pipeline's schema does not have at all (resolution
/// skips it).
fn file_writer_schema() -> Value {
    let mut schema = order_schema();
    schema["fields"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "extra", "type": "string"}));
    schema
}

fn file_rows(n: i64) -> Vec<Value> {
    orders(n)
        .into_iter()
        .map(|mut o| {
            o["extra"] = json!("x");
            o
        })
        .collect()
}

/// An Avro file written by fastavro (deflate blocks, a writer schema with a field more) read
/// by a pipeline that writes an Avro file and a JSON-lines file; fastavro reads the Avro
/// output back. A record whose event time is outside the source's range is a dead letter.
#[test]
fn avro_files_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = file_rows(2_000);
    // Year 2300: outside the default event-time range.
    rows[10]["ts"] = json!(10_413_792_000_000i64);
    let input = dir.path().join("orders.avro");
    avro::write_file(&input, &file_writer_schema(), &rows, "deflate");
    let order_avsc = write_schema(dir.path(), "order.avsc", &order_schema());
    let big_avsc = write_schema(dir.path(), "big.avsc", &big_schema());
    let (out_avro, out_json) = (
        dir.path().join("out/big.avro"),
        dir.path().join("out/big.jsonl"),
    );
    let text = format!(
        r#"
schema Order {{ id: i64, customer: string, amount: i64, price: f64, note: string?, ts: timestamp }}
source orders: Order = file(path: "{}") format avro(schema: "{order_avsc}")
    event_time ts watermark 1s
let big = orders
    |> filter amount >= 10
    |> select {{ id, customer, total: amount * price, note, ts }}
sink big -> file(path: "{}") format avro(schema: "{big_avsc}", codec: "deflate")
sink big -> file(path: "{}") format json(timestamps: "epoch_ms")
"#,
        input.display(),
        out_avro.display(),
        out_json.display()
    );
    let binary = build("avro_files", &text, false);
    let dead = dir.path().join("dead.jsonl").display().to_string();
    let out = run(
        &binary,
        &["--dead-letters", dead.as_str()],
        dir.path(),
        None,
    );
    assert!(out.success, "{}", out.stderr);

    let mut kept: Vec<Value> = rows.clone();
    kept.remove(10);
    let want = big_oracle(&kept);
    let read = avro::read_file(&out_avro);
    let got = read["rows"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "rows in the Avro file");
    assert_eq!(as_set(got), want);
    assert_eq!(read["schema"]["name"], "Big");
    assert_eq!(read["codec"], "deflate");
    // The JSON-lines sink of the same run agrees, field by field.
    let json_rows: Vec<Value> = std::fs::read_to_string(&out_json)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v["flag"] = Value::Null;
            v
        })
        .collect();
    assert_eq!(as_set(&json_rows), want);

    let dead = dead_letters(dir.path());
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("record 11: ") && reason.contains("outside"),
        "{reason}"
    );
}

/// A pipeline writing an Avro file (deflate blocks) under checkpoints, killed eight times: the
/// file fastavro reads at the end holds every row once, as one file (one header, one sync
/// marker).
#[test]
fn an_avro_file_sink_survives_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let rows = file_rows(8_000);
    let input = dir.path().join("orders.avro");
    avro::write_file(&input, &file_writer_schema(), &rows, "null");
    let order_avsc = write_schema(dir.path(), "order.avsc", &order_schema());
    let big_avsc = write_schema(dir.path(), "big.avsc", &big_schema());
    let out_avro = dir.path().join("big.avro");
    let text = format!(
        r#"
schema Order {{ id: i64, customer: string, amount: i64, price: f64, note: string?, ts: timestamp }}
source orders: Order = file(path: "{}") format avro(schema: "{order_avsc}")
    event_time ts watermark 1s
sink orders
    |> filter amount >= 10
    |> select {{ id, customer, total: amount * price, note, ts }}
    -> file(path: "{}") format avro(schema: "{big_avsc}", codec: "deflate")
"#,
        input.display(),
        out_avro.display()
    );
    let binary = build("avro_file_crash", &text, false);
    let kills = 8;
    // About 0.6 s of reading per kill, so the kills land before the input ends.
    let rate = (rows.len() / kills).to_string();
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "100ms",
        "--rate-limit",
        rate.as_str(),
        "--quiet",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let landed = kill_repeatedly(&binary, dir.path(), &args, kills, || {
        Duration::from_millis(300 + rng.below(700))
    });
    assert!(landed >= kills, "only {landed} kills landed");
    let last = run(&binary, &args, dir.path(), None);
    assert!(last.success, "{}", last.stderr);

    let want = big_oracle(&rows);
    let read = avro::read_file(&out_avro);
    assert_eq!(read["codec"], "deflate");
    let got = read["rows"].as_array().unwrap().clone();
    let distinct = as_set(&got);
    eprintln!(
        "crash: an Avro file sink: {landed} kills, {} rows read back, {} distinct",
        got.len(),
        distinct.len()
    );
    assert_eq!(got.len(), want.len(), "no row written twice");
    assert_eq!(distinct, want);
}

/// The exactly-once Kafka sink writing Confluent Avro, killed eight times: a read_committed
/// reader (fastavro decoding) finds every big order once.
#[test]
fn an_exactly_once_avro_kafka_sink_survives_sigkill() {
    let Some(brokers) = broker() else { return };
    let (input, output, group) = (unique("avro-eos-in"), unique("avro-eos-out"), unique("g"));
    create_topic(&brokers, &input, 2);
    create_topic(&brokers, &output, 1);
    let rows = orders(6_000);
    let messages: Vec<(i32, Vec<u8>)> = avro::encode(&order_schema(), &rows, Some(7))
        .into_iter()
        .enumerate()
        .map(|(i, m)| ((i % 2) as i32, m))
        .collect();
    produce_bytes(&brokers, &input, &messages);
    let dir = tempfile::tempdir().unwrap();
    let order_avsc = write_schema(dir.path(), "order.avsc", &order_schema());
    let big_avsc = write_schema(dir.path(), "big.avsc", &big_schema());
    let text = pipeline(
        &format!(
            r#"kafka(topic: "{input}", brokers: "{brokers}", group: "{group}", parallelism: 2, properties: "{GROUP_PROPERTIES}")
    format avro(schema: "{order_avsc}", confluent_id: 7)"#
        ),
        &format!(
            r#"kafka(topic: "{output}", brokers: "{brokers}", delivery: "exactly_once")
    format avro(schema: "{big_avsc}", confluent_id: 8)"#
        ),
    );
    let binary = build("avro_kafka_exactly_once_crash", &text, false);
    let kills = 8;
    let rate = (rows.len() * 2 / kills).to_string();
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "100ms",
        "--rate-limit",
        rate.as_str(),
        "--kafka-stop-after-idle",
        STOP_AFTER_IDLE_MS,
        "--quiet",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let landed = kill_repeatedly(&binary, dir.path(), &args, kills, || {
        Duration::from_millis(300 + rng.below(700))
    });
    assert!(landed >= kills, "only {landed} kills landed");
    let last = run(&binary, &args, dir.path(), None);
    assert!(last.success, "{}", last.stderr);

    let want = big_oracle(&rows);
    let got = consume_bytes(&brokers, &output, want.len(), "read_committed");
    let bodies: Vec<Vec<u8>> = got.into_iter().map(|(_, p)| p).collect();
    let decoded = avro::decode(&big_schema(), &bodies, Some(8));
    let distinct = as_set(&decoded);
    eprintln!(
        "crash: Kafka to an exactly-once Avro Kafka sink: {landed} kills, {} messages, {} distinct",
        decoded.len(),
        distinct.len()
    );
    assert_eq!(decoded.len(), want.len(), "no message twice");
    assert_eq!(distinct, want);
}

/// The type mapping of docs/avro.md, read and written: `int`, `float` and an `enum` read as
/// `i64`, `f64` and `string`; `timestamp-micros` read (rounded down to ms) and written; unions
/// with `null` first or last, null and not.
#[test]
fn every_mapped_type_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let micros = json!({"type": "long", "logicalType": "timestamp-micros"});
    let input_schema = json!({
        "type": "record", "name": "Kinds",
        "fields": [
            {"name": "i", "type": "int"},
            {"name": "f", "type": "float"},
            {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
            {"name": "us", "type": micros},
            {"name": "o", "type": ["null", "long"]},
            {"name": "s", "type": ["string", "null"]},
            {"name": "b", "type": "boolean"}
        ]
    });
    let output_schema = json!({
        "type": "record", "name": "Out",
        "fields": [
            {"name": "i", "type": "long"},
            {"name": "f", "type": "double"},
            {"name": "e", "type": "string"},
            {"name": "us", "type": micros},
            {"name": "o", "type": ["null", "long"]},
            {"name": "s", "type": ["string", "null"]},
            {"name": "b", "type": ["null", "boolean"]}
        ]
    });
    let rows: Vec<Value> = (0..50i64)
        .map(|k| {
            json!({
                "i": k - 25,
                "f": k as f64 / 8.0 + 0.1,
                "e": if k % 2 == 0 { "RED" } else { "GREEN" },
                "us": 1_700_000_000_000_000i64 + k * 1_234_567,
                "o": if k % 3 == 0 { Value::Null } else { json!(k * 1_000_000_007) },
                "s": if k % 4 == 0 { Value::Null } else { json!(format!("s{k}")) },
                "b": k % 5 == 0,
            })
        })
        .collect();
    let input = dir.path().join("kinds.avro");
    avro::write_file(&input, &input_schema, &rows, "null");
    let in_avsc = write_schema(dir.path(), "in.avsc", &input_schema);
    let out_avsc = write_schema(dir.path(), "out.avsc", &output_schema);
    let output = dir.path().join("out.avro");
    let text = format!(
        r#"
schema Kinds {{ i: i64, f: f64, e: string, us: timestamp, o: i64?, s: string?, b: bool }}
source kinds: Kinds = file(path: "{}") format avro(schema: "{in_avsc}")
sink kinds -> file(path: "{}") format avro(schema: "{out_avsc}")
"#,
        input.display(),
        output.display()
    );
    let binary = build("avro_kinds", &text, false);
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);

    let want: Vec<Value> = rows
        .iter()
        .map(|r| {
            let us = r["us"].as_i64().unwrap();
            json!({
                "i": r["i"],
                // A float holds the value to 24 bits.
                "f": r["f"].as_f64().unwrap() as f32 as f64,
                "e": r["e"],
                // Read as ms (rounded down), written back as micros; fastavro's reading as ms.
                "us": us.div_euclid(1000),
                "o": r["o"],
                "s": r["s"],
                "b": r["b"],
            })
        })
        .collect();
    let got = avro::read_file(&output)["rows"].as_array().unwrap().clone();
    assert_eq!(got, want);
}

/// NaN and the infinities in a `double` or a `float` are dead letters, as in CSV cells and
/// JSON numbers: a record's float is finite. (They were read as numbers: a JSON sink printed
/// `"x":null` for a field that is not optional, and the run ended well with no dead letter.)
/// fastavro writes the file, NaN and infinities included.
#[test]
fn an_avro_nan_or_infinity_is_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let schema = json!({
        "type": "record", "name": "M",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "x", "type": "double"},
            {"name": "f", "type": ["null", "float"]}
        ]
    });
    let avsc = write_schema(dir.path(), "m.avsc", &schema);
    let input = dir.path().join("in.avro");
    // serde_json holds no NaN: the rows are written by Python, which reads `float('nan')`.
    let script = format!(
        "import fastavro, json\n\
         schema = fastavro.parse_schema(json.loads({schema:?}))\n\
         nan, inf = float('nan'), float('inf')\n\
         rows = [(1, 1.5, 1.0), (2, nan, 1.0), (3, inf, None), (4, -inf, 1.0), \
                 (5, 2.5, inf), (6, 3.5, None), (7, 4.5, nan)]\n\
         with open({path:?}, 'wb') as f:\n    \
             fastavro.writer(f, schema, [{{'id': i, 'x': x, 'f': g}} for i, x, g in rows])\n",
        schema = schema.to_string(),
        path = input.display().to_string(),
    );
    let status = std::process::Command::new("python3")
        .args(["-c", &script])
        .status()
        .expect("python3 runs");
    assert!(status.success(), "fastavro wrote the file");
    let text = format!(
        "schema M {{ id: i64, x: f64, f: f64? }}\n\
         source m: M = file(path: \"in.avro\") format avro(schema: \"{avsc}\")\n\
         sink m -> file(path: \"rows.jsonl\") format json\n"
    );
    let binary = build("avro_non_finite", &text, false);
    let dead = dir.path().join("dead.jsonl").display().to_string();
    let out = run(
        &binary,
        &["--dead-letters", dead.as_str()],
        dir.path(),
        None,
    );
    assert!(out.success, "{}", out.stderr);
    let rows: Vec<Value> = std::fs::read_to_string(dir.path().join("rows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want = vec![
        json!({"id": 1, "x": 1.5, "f": 1.0}),
        json!({"id": 6, "x": 3.5, "f": null}),
    ];
    assert_eq!(rows, want, "{}", out.stderr);
    let reasons: Vec<String> = dead_letters(dir.path())
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:?}");
    for (record, what) in [(2, "NaN"), (3, "inf"), (4, "-inf"), (5, "inf"), (7, "NaN")] {
        let want = format!("record {record}: ");
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with(&want) && r.contains(&format!("{what} is not a finite"))),
            "{want}{what}: {reasons:?}"
        );
    }
}

/// An updating stream to Kafka as upsert Avro, and back: per-customer totals over orders that
/// change customers (`dedup by id keep last`) written as Avro values in the Confluent wire
/// format, keyed by `{"customer":...}`, a customer left without orders as a tombstone (null
/// value); fastavro reads the values back. A second pipeline reads the topic with the
/// upsert-Kafka source in Avro: its final table, like the topic replayed here (latest value per
/// key, tombstones delete), equals the totals computed from the input.
#[test]
fn an_updating_stream_goes_to_kafka_as_upsert_avro_and_back() {
    let Some(brokers) = broker() else { return };
    let (input, output) = (unique("avro-moves"), unique("avro-totals"));
    create_topic(&brokers, &input, 1);
    create_topic(&brokers, &output, 1);
    // Two versions of 60 orders: the second never names c4.
    let version = |v: i64| -> Vec<Value> {
        (0..60i64)
            .map(|i| {
                let customers = if v == 1 { 4 } else { 5 };
                json!({
                    "id": i,
                    "customer": format!("c{}", (i * 7 + v) % customers),
                    "amount": (i * 13 + v * 5) % 40,
                    "price": 1.0,
                    "note": Value::Null,
                    "ts": BASE_MS + v * 1000 + i,
                    "ignored": false,
                })
            })
            .collect()
    };
    let (first, second) = (version(0), version(1));
    let messages = |rows: &[Value]| -> Vec<(i32, Vec<u8>)> {
        avro::encode(&order_schema(), rows, Some(7))
            .into_iter()
            .map(|m| (0, m))
            .collect()
    };
    let totals_schema = json!({
        "type": "record", "name": "Totals",
        "fields": [
            {"name": "customer", "type": "string"},
            {"name": "n", "type": "long"},
            {"name": "total", "type": ["null", "long"]}
        ]
    });
    let dir = tempfile::tempdir().unwrap();
    let order_avsc = write_schema(dir.path(), "order.avsc", &order_schema());
    let totals_avsc = write_schema(dir.path(), "totals.avsc", &totals_schema);
    let writer = format!(
        r#"schema Order {{ id: i64, customer: string, amount: i64, price: f64, note: string?, ts: timestamp }}
source orders: Order = kafka(topic: "{input}", brokers: "{brokers}", group: "{group}", properties: "{GROUP_PROPERTIES}")
    format avro(schema: "{order_avsc}", confluent_id: 7)
let totals = orders
    |> dedup by id keep last
    |> aggregate by customer {{ n: count(), total: sum(amount) }}
sink totals -> kafka(topic: "{output}", brokers: "{brokers}") format avro(schema: "{totals_avsc}", confluent_id: 8)
"#,
        group = unique("g"),
    );
    let binary = build("avro_upsert_kafka_sink", &writer, false);
    produce_bytes(&brokers, &input, &messages(&first));
    let child = std::process::Command::new(&binary)
        .args(["--kafka-stop-after-idle", "8000"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the pipeline starts");
    let key_c4 = br#"{"customer":"c4"}"#.to_vec();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !consume_bytes(&brokers, &output, 1, "read_committed")
        .iter()
        .any(|(k, _)| k.as_deref() == Some(key_c4.as_slice()))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no row of c4 on the topic"
        );
    }
    produce_bytes(&brokers, &input, &messages(&second));
    let out = child.wait_with_output().expect("the pipeline ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The oracle: the last version of each order, totalled per customer.
    let mut want: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for order in &second {
        let e = want
            .entry(order["customer"].as_str().unwrap().to_string())
            .or_default();
        e.0 += 1;
        e.1 += order["amount"].as_i64().unwrap();
    }
    assert_eq!(want.len(), 4, "c4 ends with no orders");

    // The topic replayed: values read by fastavro, tombstones delete.
    let got = consume_bytes(&brokers, &output, 1, "read_committed");
    let mut table: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    let mut tombstones = Vec::new();
    for (key, value) in &got {
        let key: Value = serde_json::from_slice(key.as_deref().expect("every message has a key"))
            .expect("a JSON key");
        let customer = key["customer"]
            .as_str()
            .expect("the upsert key")
            .to_string();
        if value.is_empty() {
            table.remove(&customer);
            tombstones.push(customer);
            continue;
        }
        let row = avro::decode(&totals_schema, std::slice::from_ref(value), Some(8));
        assert_eq!(row[0]["customer"].as_str(), Some(customer.as_str()));
        table.insert(
            customer,
            (
                row[0]["n"].as_i64().unwrap(),
                row[0]["total"].as_i64().unwrap(),
            ),
        );
    }
    assert_eq!(table, want, "{} messages", got.len());
    assert_eq!(tombstones, ["c4"], "{} messages", got.len());

    // Read back by the upsert-Kafka source, in Avro.
    let reader = format!(
        r#"schema Totals {{ customer: string, n: i64, total: i64? }}
source totals: Totals = kafka(topic: "{output}", brokers: "{brokers}", group: "{group}", properties: "{GROUP_PROPERTIES}", upsert_key: "customer")
    format avro(schema: "{totals_avsc}", confluent_id: 8)
sink totals -> file(path: "totals.csv") format csv(header: false)
"#,
        group = unique("g"),
    );
    let binary = build("avro_upsert_kafka_source", &reader, false);
    run_pipeline(&binary, dir.path(), &[]);
    let want_csv: String = want
        .iter()
        .map(|(customer, (n, total))| format!("{customer},{n},{total}\n"))
        .collect();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("totals.csv")).unwrap(),
        want_csv
    );
    assert!(dead_letters(dir.path()).is_empty());
}
