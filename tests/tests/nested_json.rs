//! Nested JSON end to end: a file of orders with nested records and arrays read by a compiled
//! pipeline that takes fields by path (`payload.customer.id`), elements by index (`tags[1]`),
//! `cardinality` and `array_contains`, explodes an array with `unnest`, and writes whole nested
//! values back out. DuckDB, reading the same file with `read_json` and explicit STRUCT and
//! LIST columns, is the oracle for every output; lines with a mistyped or missing nested
//! member must be dead letters whose reason names the path.

use serde_json::{json, Value};
use weir_tests::duckdb::{self, assert_same_rows, sql_string};
use weir_tests::{build, dead_letter_reasons, json_rows, run};

/// The orders, as DuckDB reads them: the same types the pipeline's schema declares.
const COLUMNS: &str = "{'order_id': 'BIGINT', \
     'payload': 'STRUCT(customer STRUCT(id BIGINT, name VARCHAR), note VARCHAR)', \
     'tags': 'VARCHAR[]', \
     'items': 'STRUCT(sku VARCHAR, qty BIGINT)[]'}";

const SCHEMA: &str = "schema Order {
    order_id: i64,
    payload: { customer: { id: i64, name: string }, note: string? },
    tags: [string],
    items: [{ sku: string, qty: i64 }]?,
}
";

/// `n` orders from a fixed seed: notes present, null or absent; 0 to 3 tags (`a` .. `d`); 0 to
/// 3 items, or `items` null or absent; members in varying order (so both decoding paths run).
fn orders(n: i64) -> String {
    let mut state = 0x0dde_u64;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) % m
    };
    let mut out = String::new();
    for i in 0..n {
        let customer = format!(r#"{{"id":{},"name":"c{}"}}"#, next(50) as i64 - 10, next(7));
        let note = match next(3) {
            0 => String::new(),
            1 => r#","note":null"#.to_string(),
            _ => format!(r#","note":"n\"{}""#, next(9)),
        };
        let payload = if next(2) == 0 {
            format!(r#"{{"customer":{customer}{note}}}"#)
        } else {
            format!(
                r#"{{{}"customer":{customer}}}"#,
                note.trim_start_matches(',').to_string() + if note.is_empty() { "" } else { "," }
            )
        };
        let tags: Vec<String> = (0..next(4))
            .map(|_| format!(r#""{}""#, ["a", "b", "c", "d"][next(4) as usize]))
            .collect();
        let items = match next(5) {
            0 => String::new(),
            1 => r#","items":null"#.to_string(),
            _ => {
                let items: Vec<String> = (0..next(4))
                    .map(|_| format!(r#"{{"sku":"s{}","qty":{}}}"#, next(6), next(20)))
                    .collect();
                format!(r#","items":[{}]"#, items.join(","))
            }
        };
        out.push_str(&format!(
            r#"{{"order_id":{i},"payload":{payload},"tags":[{}]{items}}}"#,
            tags.join(",")
        ));
        out.push('\n');
    }
    out
}

#[test]
fn paths_indexes_unnest_and_round_trips_match_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.jsonl");
    std::fs::write(&input, orders(3000)).unwrap();
    let path = input.display().to_string();
    let text = format!(
        "{SCHEMA}\
         source orders: Order = file(path: \"{path}\") format json\n\
         sink orders\n\
             |> filter payload.customer.id % 3 != 0\n\
             |> select {{ order_id, cid: payload.customer.id, name: payload.customer.name,\n\
                          note: payload.note, n: cardinality(tags), first: tags[1],\n\
                          third: tags[3], has_a: array_contains(tags, 'a'),\n\
                          n_items: cardinality(items), sku2: items[2].sku }}\n\
             -> stdout() format json\n\
         sink orders\n\
             |> unnest items as item\n\
             |> filter item.qty > 3\n\
             |> select {{ order_id, sku: item.sku, qty: item.qty, cid: payload.customer.id }}\n\
             -> file(path: \"unnested.jsonl\") format json\n\
         sink orders |> select {{ order_id, payload, tags, items }} -> file(path: \"copy.jsonl\") format json\n"
    );
    let read = |file: &str| {
        format!(
            "read_json({}, format = 'newline_delimited', columns = {COLUMNS})",
            sql_string(file)
        )
    };
    let want_select = duckdb::query(&format!(
        "SELECT order_id, payload.customer.id AS cid, payload.customer.name AS name, \
                payload.note AS note, len(tags) AS n, tags[1] AS first, tags[3] AS third, \
                list_contains(tags, 'a') AS has_a, len(items) AS n_items, items[2].sku AS sku2 \
         FROM {} WHERE payload.customer.id % 3 <> 0",
        read(&path)
    ));
    let want_unnest = duckdb::query(&format!(
        "SELECT order_id, item.sku AS sku, item.qty AS qty, cid FROM \
         (SELECT order_id, payload.customer.id AS cid, unnest(items) AS item FROM {}) \
         WHERE item.qty > 3",
        read(&path)
    ));
    // Nulls, empty and absent arrays all occur, so the null rules are exercised.
    assert!(want_select.iter().any(|r| r["note"].is_null()));
    assert!(want_select.iter().any(|r| r["first"].is_null()));
    assert!(want_select.iter().any(|r| r["n_items"].is_null()));
    assert!(
        want_unnest.len() > 500,
        "too few items: {}",
        want_unnest.len()
    );

    for (no_fusion, parallelism) in [(false, "1"), (true, "3")] {
        let binary = build("nested_json_duck", &text, no_fusion);
        let out = dir.path().join(format!("run-{parallelism}"));
        std::fs::create_dir_all(&out).unwrap();
        let result = run(&binary, &["--parallelism", parallelism], &out, None);
        assert!(result.success, "{}", result.stderr);
        assert!(
            dead_letter_reasons(&out).is_empty(),
            "{:?}",
            dead_letter_reasons(&out)
        );
        let what = format!("parallelism {parallelism}, no_fusion {no_fusion}");
        assert_same_rows(
            &format!("paths and indexes, {what}"),
            &json_rows(&result.stdout),
            &want_select,
            &[],
        );
        let unnested = std::fs::read_to_string(out.join("unnested.jsonl")).unwrap();
        assert_same_rows(
            &format!("unnest, {what}"),
            &json_rows(&unnested),
            &want_unnest,
            &[],
        );
        // The nested values written out read back, in DuckDB, as the input does.
        let copy = out.join("copy.jsonl").display().to_string();
        let all = |file: &str| {
            duckdb::query(&format!(
                "SELECT order_id, to_json(payload)::VARCHAR AS payload, \
                        to_json(tags)::VARCHAR AS tags, to_json(items)::VARCHAR AS items \
                 FROM {}",
                read(file)
            ))
        };
        assert_same_rows(
            &format!("round trip, {what}"),
            &all(&copy),
            &all(&path),
            &[],
        );
    }
}

#[test]
fn mistyped_or_missing_nested_members_are_dead_letters_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"order_id":1,"payload":{"customer":{"id":1,"name":"a"}},"tags":["x"],"items":[{"sku":"s","qty":1}]}"#,
        r#"{"order_id":2,"payload":{"customer":{"id":"two","name":"b"}},"tags":[],"items":null}"#,
        r#"{"order_id":3,"payload":{"customer":{"name":"c"}},"tags":[]}"#,
        r#"{"order_id":4,"payload":{"customer":{"id":4,"name":"d"}},"tags":["x",7]}"#,
        r#"{"order_id":5,"payload":{"customer":{"id":5,"name":"e"}},"tags":[],"items":[{"sku":"s","qty":1},{"sku":"t","qty":1.5}]}"#,
        r#"{"order_id":6,"payload":{"customer":null},"tags":[]}"#,
        r#"{"order_id":7,"payload":[1],"tags":[]}"#,
        r#"{"order_id":8,"payload":{"customer":{"id":8,"name":"h"}},"tags":null}"#,
        r#"{"order_id":9,"payload":{"customer":{"id":9,"name":"i"}},"tags":["y"],"items":[]}"#,
    ];
    std::fs::write(dir.path().join("orders.jsonl"), lines.join("\n") + "\n").unwrap();
    let text = format!(
        "{SCHEMA}\
         source orders: Order = file(path: \"orders.jsonl\") format json\n\
         sink orders |> select {{ order_id, cid: payload.customer.id, tags, n: cardinality(items) }}\n\
             -> stdout() format json\n"
    );
    let binary = build("nested_json_dead", &text, false);
    let result = run(&binary, &[], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    assert_eq!(
        json_rows(&result.stdout),
        vec![
            json!({"order_id": 1, "cid": 1, "tags": ["x"], "n": 1}),
            json!({"order_id": 9, "cid": 9, "tags": ["y"], "n": 0}),
        ]
    );
    let reasons = dead_letter_reasons(dir.path());
    let expect = [
        (
            2,
            "field `payload.customer.id`: expected an integer, found `\"two\"`",
        ),
        (3, "field `payload.customer`: missing field `id`"),
        (4, "field `tags[2]`: expected a string, found `7`"),
        (5, "field `items[2].qty`: expected an integer, found `1.5`"),
        (
            6,
            "field `payload.customer`: null in a field that is not optional",
        ),
        (7, "field `payload`: expected an object, found `[1]`"),
        (8, "field `tags`: null in a field that is not optional"),
    ];
    let got: Vec<(u64, &str)> = reasons.iter().map(|(l, r)| (*l, r.as_str())).collect();
    assert_eq!(got, expect.to_vec());
}

#[test]
fn null_records_propagate_and_null_elements_follow_sql() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"id":1,"p":{"q":{"v":5}},"xs":[1,null,3]}"#,
        r#"{"id":2,"p":null,"xs":null}"#,
        r#"{"id":3,"p":{"q":null},"xs":[null]}"#,
        r#"{"id":4,"xs":[]}"#,
    ];
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let text = "schema R { id: i64, p: { q: { v: i64 }? }?, xs: [i64?]? }\n\
         source r: R = file(path: \"in.jsonl\") format json\n\
         sink r |> select { id, v: p.q.v, missing: p.q is null, x2: xs[2], n: cardinality(xs),\n\
                            has3: array_contains(xs, 3), has9: array_contains(xs, 9) }\n\
             -> stdout() format json\n\
         sink r |> unnest xs as x |> select { id, x } -> file(path: \"xs.jsonl\") format json\n";
    let binary = build("nested_json_nulls", text, false);
    let result = run(&binary, &[], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let rows: Vec<Value> = json_rows(&result.stdout);
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "v": 5, "missing": false, "x2": null, "n": 3, "has3": true, "has9": null}),
            json!({"id": 2, "v": null, "missing": true, "x2": null, "n": null, "has3": null, "has9": null}),
            json!({"id": 3, "v": null, "missing": true, "x2": null, "n": 1, "has3": null, "has9": null}),
            json!({"id": 4, "v": null, "missing": true, "x2": null, "n": 0, "has3": false, "has9": false}),
        ]
    );
    // Null elements are rows too; a null or empty array gives none.
    let xs = std::fs::read_to_string(dir.path().join("xs.jsonl")).unwrap();
    assert_eq!(
        json_rows(&xs),
        vec![
            json!({"id": 1, "x": 1}),
            json!({"id": 1, "x": null}),
            json!({"id": 1, "x": 3}),
            json!({"id": 3, "x": null}),
        ]
    );
}

/// Nested values through stateful operators: a `dedup` keeps whole records (its state, saved
/// at checkpoints, holds them), and an interval join reads a path through the joined
/// stream's alias (`o.who.address.city`). Expected rows are computed from the input by
/// serde_json.
#[test]
fn nested_values_go_through_dedup_and_joins() {
    let dir = tempfile::tempdir().unwrap();
    let data = weir_tests::workspace().join("examples/connectors/data/orders.jsonl");
    std::fs::copy(&data, dir.path().join("orders.jsonl")).unwrap();
    let text = "schema Order {\n\
         id: i64,\n\
         customer: { id: i64, name: string, address: { city: string, zip: string? } },\n\
         tags: [string],\n\
         items: [{ sku: string, qty: i64, price: f64 }]?,\n\
         ts: timestamp,\n\
         }\n\
         source orders: Order = file(path: \"orders.jsonl\") format json event_time ts watermark 5s\n\
         let firsts = orders |> select { cid: customer.id, customer, items } |> dedup by cid keep first\n\
         sink firsts -> file(path: \"firsts.jsonl\") format json\n\
         let other = orders |> select { oid: id, who: customer, ts }\n\
         sink orders\n\
         \x20   |> interval_join other as o on id = o.oid within(0s, 1s)\n\
         \x20   |> select { id, city: o.who.address.city, n: cardinality(items) }\n\
         \x20   -> file(path: \"joined.jsonl\") format json\n\
         sink orders |> key_by customer.address.city |> window tumble(1h) |> aggregate { n: count() }\n\
         \x20   -> file(path: \"per_city.jsonl\") format json\n";
    let binary = build("nested_json_stateful", text, false);
    let result = run(
        &binary,
        &["--checkpoint-dir", "ck", "--checkpoint-interval", "100ms"],
        dir.path(),
        None,
    );
    assert!(result.success, "{}", result.stderr);
    let orders: Vec<Value> = std::fs::read_to_string(&data)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|o| o["customer"]["id"].is_i64())
        .collect();
    // The first order of each customer, its nested values as read (absent `zip` as null).
    let mut firsts: Vec<Value> = Vec::new();
    for o in &orders {
        let cid = &o["customer"]["id"];
        if !firsts.iter().any(|f| &f["cid"] == cid) {
            let mut customer = o["customer"].clone();
            if customer["address"].get("zip").is_none() {
                customer["address"]["zip"] = Value::Null;
            }
            let items = o.get("items").cloned().unwrap_or(Value::Null);
            firsts.push(json!({"cid": cid, "customer": customer, "items": items}));
        }
    }
    let mut got = json_rows(&std::fs::read_to_string(dir.path().join("firsts.jsonl")).unwrap());
    got.sort_by_key(|r| r["cid"].as_i64());
    firsts.sort_by_key(|r| r["cid"].as_i64());
    assert_eq!(got, firsts);
    let joined: Vec<Value> = orders
        .iter()
        .map(|o| {
            json!({
                "id": o["id"],
                "city": o["customer"]["address"]["city"],
                "n": o.get("items").and_then(Value::as_array).map(|a| a.len()),
            })
        })
        .collect();
    let mut got = json_rows(&std::fs::read_to_string(dir.path().join("joined.jsonl")).unwrap());
    got.sort_by_key(|r| r["id"].as_i64());
    assert_eq!(got, joined);
    // Keyed by a path: the key is the field `city`, the path's last part.
    let mut per_city: std::collections::BTreeMap<(String, String), i64> = Default::default();
    for o in &orders {
        let city = o["customer"]["address"]["city"]
            .as_str()
            .unwrap()
            .to_string();
        let hour = o["ts"].as_str().unwrap()[..13].to_string();
        *per_city.entry((city, hour)).or_default() += 1;
    }
    let mut got: Vec<(String, String, i64)> =
        json_rows(&std::fs::read_to_string(dir.path().join("per_city.jsonl")).unwrap())
            .iter()
            .map(|r| {
                (
                    r["city"].as_str().unwrap().to_string(),
                    r["window_start"].as_str().unwrap()[..13].to_string(),
                    r["n"].as_i64().unwrap(),
                )
            })
            .collect();
    got.sort();
    let want: Vec<(String, String, i64)> =
        per_city.into_iter().map(|((c, h), n)| (c, h, n)).collect();
    assert_eq!(got, want);
}
