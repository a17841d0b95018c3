//! A float result that is not finite (a division by zero, `0.0 / 0.0`, a product beyond the
//! `f64` range) is an error value, as integer overflow is: the record goes to the dead letters
//! with the expression, JSON and CSV sinks agree (neither prints it), a filter's `is null` is
//! never asked about it, and the summary counts it. A float `sum` or `avg` whose total leaves the
//! range is null. Inputs never carry NaN or an infinity: such CSV cells and JSON numbers beyond
//! the range are dead letters, and `cast` of such text is null like any text that is not a
//! number.
//!
//! The oracle is plain Rust over the same rows: IEEE arithmetic with `is_finite`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use weir_tests::{build, json_rows, run};

/// (id, x, y): y = 0 divides by zero, id 4 overflows in `x / y` and `x * 10.0`.
const ROWS: [(i64, f64, f64); 6] = [
    (1, 1.0, 2.0),
    (2, 1.0, 0.0),
    (3, 0.0, 0.0),
    (4, 1e308, 1e-308),
    (5, -3.0, 4.0),
    (6, -1.0, 0.0),
];

fn write_rows(dir: &Path) {
    let text: String = ROWS
        .iter()
        .map(|(id, x, y)| {
            format!(
                "{{\"id\":{id},\"x\":{x:e},\"y\":{y:e},\"ts\":{}}}\n",
                1000 * id
            )
        })
        .collect();
    std::fs::write(dir.join("in.jsonl"), text).expect("write input");
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_default()
}

/// `id -> q` of a CSV file with the header `id,q` (an empty cell is null).
fn csv_pairs(text: &str) -> BTreeMap<i64, Option<f64>> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,q"), "{text}");
    lines
        .map(|l| {
            let (id, q) = l
                .split_once(',')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let q = (!q.is_empty()).then(|| {
                q.parse::<f64>()
                    .unwrap_or_else(|e| panic!("{q:?} in {l:?}: {e}"))
            });
            (id.parse().unwrap(), q)
        })
        .collect()
}

fn json_pairs(text: &str) -> BTreeMap<i64, Option<f64>> {
    json_rows(text)
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["q"].as_f64()))
        .collect()
}

fn ids(text: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = json_rows(text)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ids.sort();
    ids
}

fn check(no_fusion: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    write_rows(d);
    let text = "schema R { id: i64, x: f64, y: f64, ts: timestamp }\n\
         source r: R = file(path: \"in.jsonl\") format json\n\
         let q = r |> select { id, q: x / y }\n\
         let nulls = r |> filter x / y is null |> select { id }\n\
         let positive = r |> filter x / y > 0.0 |> select { id }\n\
         let scaled = r |> select { id, m: x * 10.0 }\n\
         sink q -> file(path: \"q.jsonl\") format json\n\
         sink q -> file(path: \"q.csv\") format csv(header: true)\n\
         sink nulls -> file(path: \"nulls.jsonl\") format json\n\
         sink positive -> file(path: \"positive.jsonl\") format json\n\
         sink scaled -> file(path: \"scaled.jsonl\") format json\n";
    let binary = build("non_finite", text, no_fusion);
    let out = run(&binary, &["--dead-letters", "dead.jsonl"], d, None);
    assert!(out.success, "{}", out.stderr);

    // The oracle: rows whose quotient is finite, with it.
    let finite: BTreeMap<i64, Option<f64>> = ROWS
        .iter()
        .filter(|(_, x, y)| (x / y).is_finite())
        .map(|(id, x, y)| (*id, Some(x / y)))
        .collect();
    assert_eq!(finite.keys().copied().collect::<Vec<_>>(), vec![1, 5]);
    let json = json_pairs(&read(d, "q.jsonl"));
    let csv = csv_pairs(&read(d, "q.csv"));
    assert_eq!(json, finite, "JSON sink");
    assert_eq!(csv, finite, "CSV sink");

    // `is null` agrees with what is printed: no quotient is ever null (a non-nullable
    // expression is never null, so `is null` is false without evaluating it), and a filter
    // that evaluates the quotient rejects the records the select rejects.
    assert_eq!(ids(&read(d, "nulls.jsonl")), Vec::<i64>::new());
    let positive: Vec<i64> = ROWS
        .iter()
        .filter(|(_, x, y)| (x / y).is_finite() && x / y > 0.0)
        .map(|(id, _, _)| *id)
        .collect();
    assert_eq!(ids(&read(d, "positive.jsonl")), positive);
    let scaled: Vec<i64> = ROWS
        .iter()
        .filter(|(_, x, _)| (x * 10.0).is_finite())
        .map(|(id, _, _)| *id)
        .collect();
    assert_eq!(ids(&read(d, "scaled.jsonl")), scaled);

    // Dead letters: 4 quotients in each of q (once, before its two sinks) and positive, and one
    // product.
    let letters = json_rows(&read(d, "dead.jsonl"));
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for l in &letters {
        assert!(l["operator"].is_string() && l["record"].is_string(), "{l}");
        *reasons
            .entry(l["reason"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = [
        ("float result is not finite in `x / y`".to_string(), 8),
        ("float result is not finite in `x * 10.0`".to_string(), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(reasons, expected, "{letters:?}");
    assert!(out.stderr.contains("dead letters: 9"), "{}", out.stderr);
    assert!(
        out.stderr.contains("non-finite float results: 9"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("integer overflows"), "{}", out.stderr);
}

#[test]
fn non_finite_results_are_dead_letters_in_json_and_csv_alike() {
    check(false);
}

#[test]
fn unfused_operators_reject_non_finite_results_too() {
    check(true);
}

/// A float `sum` or `avg` whose total leaves the range is null for its window and counted (once
/// per row); `count` and the other groups are unaffected.
#[test]
fn float_sums_beyond_the_range_are_null() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let input = "{\"k\":1,\"x\":1e308,\"ts\":0}\n\
                 {\"k\":1,\"x\":1e308,\"ts\":1}\n\
                 {\"k\":2,\"x\":1.5,\"ts\":2}\n\
                 {\"k\":2,\"x\":-1e308,\"ts\":3}\n";
    std::fs::write(d.join("in.jsonl"), input).unwrap();
    let text = "schema R { k: i64, x: f64, ts: timestamp }\n\
         source r: R = file(path: \"in.jsonl\") format json event_time ts watermark 1s\n\
         let w = r |> window tumble(10s) |> aggregate by k { n: count(*), s: sum(x), a: avg(x) }\n\
         sink w -> file(path: \"w.jsonl\") format json\n\
         sink w -> file(path: \"w.csv\") format csv(header: true)\n";
    let out = run(&build("non_finite_sum", text, false), &[], d, None);
    assert!(out.success, "{}", out.stderr);
    let mut rows: Vec<(i64, i64, Value, Value)> = json_rows(&read(d, "w.jsonl"))
        .iter()
        .map(|r| {
            (
                r["k"].as_i64().unwrap(),
                r["n"].as_i64().unwrap(),
                r["s"].clone(),
                r["a"].clone(),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let (s2, a2) = (1.5 + -1e308, (1.5 + -1e308) / 2.0);
    assert_eq!(
        rows,
        vec![
            (1, 2, Value::Null, Value::Null),
            (2, 2, Value::from(s2), Value::from(a2)),
        ]
    );
    // The CSV sink writes the same nulls (empty cells), never `inf`.
    let csv = read(d, "w.csv");
    assert!(
        !csv.to_ascii_lowercase().contains("inf") && !csv.contains("NaN"),
        "{csv}"
    );
    assert_eq!(
        csv.lines().filter(|l| l.starts_with("1,")).count(),
        1,
        "{csv}"
    );
    assert!(
        out.stderr.contains("non-finite float results: 1"),
        "{}",
        out.stderr
    );
}

/// Inputs cannot carry NaN or an infinity: CSV cells `NaN`, `inf`, `Infinity`, `1e400` and a
/// JSON number beyond the range are dead letters with a reason. `cast` of such text is null.
#[test]
fn non_finite_inputs_are_dead_letters_and_casts_of_them_are_null() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let cells = [
        "1.5",
        "NaN",
        "inf",
        "-Infinity",
        "1e400",
        "-1e309",
        "2e308",
        "1e308",
    ];
    let csv: String = cells
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{i},{c},{c}\n"))
        .collect();
    std::fs::write(d.join("in.csv"), csv).unwrap();
    let json: String = cells
        .iter()
        .enumerate()
        .filter(|(_, c)| c.bytes().any(|b| b.is_ascii_digit()))
        .map(|(i, c)| format!("{{\"id\":{i},\"x\":{c},\"s\":\"{c}\"}}\n"))
        .collect();
    std::fs::write(d.join("in.jsonl"), json).unwrap();
    let text = "schema R { id: i64, x: f64, s: string }\n\
         source c: R = file(path: \"in.csv\", dead_letters: \"dead_csv.jsonl\") format csv\n\
         source j: R = file(path: \"in.jsonl\", dead_letters: \"dead_json.jsonl\") format json\n\
         let cs = c |> select { id, x, t: cast(s as f64) }\n\
         let js = j |> select { id, x, t: cast(s as f64) }\n\
         sink cs -> file(path: \"c.jsonl\") format json\n\
         sink js -> file(path: \"j.jsonl\") format json\n";
    let out = run(&build("non_finite_input", text, false), &[], d, None);
    assert!(out.success, "{}", out.stderr);

    let finite: Vec<i64> = cells
        .iter()
        .enumerate()
        .filter(|(_, c)| c.parse::<f64>().is_ok_and(f64::is_finite))
        .map(|(i, _)| i as i64)
        .collect();
    assert_eq!(finite, vec![0, 7]);
    assert_eq!(ids(&read(d, "c.jsonl")), finite);
    assert_eq!(ids(&read(d, "j.jsonl")), finite);
    for row in json_rows(&read(d, "c.jsonl")) {
        assert_eq!(row["x"], row["t"], "{row}");
    }

    let reasons = |file: &str| -> BTreeMap<i64, String> {
        json_rows(&read(d, file))
            .iter()
            .map(|l| {
                (
                    l["line"].as_i64().unwrap() - 1,
                    l["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let csv_reasons = reasons("dead_csv.jsonl");
    assert_eq!(
        csv_reasons.keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5, 6]
    );
    assert_eq!(
        csv_reasons[&1],
        "field `x`: expected a finite number, found `\"NaN\"`"
    );
    assert_eq!(
        csv_reasons[&4],
        "field `x`: number out of range (64-bit float), found `\"1e400\"`"
    );
    // JSON's lines are the cells with digits: 0, 4, 5, 6, 7 on lines 1..=5.
    let json_reasons = reasons("dead_json.jsonl");
    assert_eq!(json_reasons.len(), 3, "{json_reasons:?}");
    assert!(
        json_reasons
            .values()
            .all(|r| r.contains("number out of range (64-bit float)")),
        "{json_reasons:?}"
    );

    // `cast` of text that is no finite number is null, as for any text that is not a number.
    let casts = "schema T { s: string }\n\
         source t: T = file(path: \"casts.csv\") format csv\n\
         let c = t |> select { s, t: cast(s as f64) }\n\
         sink c -> file(path: \"casts.jsonl\") format json\n";
    std::fs::write(d.join("casts.csv"), cells.join("\n") + "\n").unwrap();
    let out = run(&build("non_finite_cast", casts, false), &[], d, None);
    assert!(out.success, "{}", out.stderr);
    let got: Vec<(String, Value)> = json_rows(&read(d, "casts.jsonl"))
        .iter()
        .map(|r| (r["s"].as_str().unwrap().to_string(), r["t"].clone()))
        .collect();
    let want: Vec<(String, Value)> = cells
        .iter()
        .map(|c| {
            let v = c
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map_or(Value::Null, Value::from);
            (c.to_string(), v)
        })
        .collect();
    assert_eq!(got, want);
}

/// A float `sum`/`avg` over an updating stream takes rows back without losing what a large
/// value swamped: `1e16` corrected to `1.0` beside a `1.0` sums to 2, not to 1 (plain
/// `+=`/`-=` gives `1e16 + 1 - 1e16 = 0`); and a total that overflowed (null meanwhile) is a
/// number again once the row that took it out of range is taken back.
#[test]
fn float_sums_of_an_updating_stream_take_rows_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        (1, "a", 1e16),
        (2, "a", 1.0),
        (1, "a", 1.0),
        (3, "b", 0.1),
        (4, "b", 1e20),
        (5, "b", 0.2),
        (4, "b", 0.3),
        // The total overflows, then a row taken back brings it into range again.
        (6, "c", 1.5e308),
        (7, "c", 1.5e308),
        (7, "c", 4.0),
    ];
    let text: String = rows
        .iter()
        .map(|(id, k, f)| format!("{{\"id\":{id},\"k\":\"{k}\",\"f\":{f:e}}}\n"))
        .collect();
    std::fs::write(dir.path().join("in.jsonl"), text).unwrap();
    let pipeline = "schema P { id: i64, k: string, f: f64 }\n\
                    source p: P = file(path: \"in.jsonl\")\n\
                    let tot = p |> dedup by id keep last |> aggregate by k { total: sum(f), mean: avg(f) }\n\
                    sink tot -> file(path: \"out.jsonl\") format json\n";
    let binary = build("float_retract_sum", pipeline, false);
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let got: BTreeMap<String, (f64, f64)> =
        json_rows(&std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap())
            .into_iter()
            .map(|r: Value| {
                (
                    r["k"].as_str().unwrap().to_string(),
                    (r["total"].as_f64().unwrap(), r["mean"].as_f64().unwrap()),
                )
            })
            .collect();
    assert_eq!(got["a"], (2.0, 1.0), "{got:?}");
    assert_eq!(got["c"], (1.5e308 + 4.0, 0.75e308 + 2.0), "{got:?}");
    let (total, mean) = got["b"];
    assert!(
        (total - 0.6).abs() < 1e-12 && (mean - 0.2).abs() < 1e-12,
        "{got:?}"
    );
}
