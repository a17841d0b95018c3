//! Integer overflow never gives a wrong number: a record whose expressions overflow (in a
//! select, a filter, the select before a `key_by`, timestamp + duration, an aggregate's
//! argument) is sent to the dead letters with the expression, the rest of the stream is
//! unaffected, and an integer `sum` whose total leaves the `i64` range is null for its group
//! and window. The summary counts them all. Fused and unfused plans agree.

use serde_json::Value;
use weir_tests::{build, json_rows, run};

/// 2015-07-15 00:00:00 UTC.
const BASE: i64 = 1_436_918_400_000;
const BIG: i64 = 5_000_000_000_000_000_000;

/// (id, qty, price, delta, ts offset in ms)
const ORDERS: [(i64, i64, i64, i64, i64); 5] = [
    (1, 2, 3, 0, 0),
    // qty + price and ts + qty overflow.
    (2, i64::MAX, 1, 0, 1000),
    // qty * price, price * 3 and qty * price (in the aggregate) overflow.
    (3, 2, BIG, 0, 2000),
    // price * 3 overflows; with the record above, sum(price) leaves the range.
    (3, 1, BIG, 0, 3000),
    // abs(delta) overflows.
    (5, 1, 0, i64::MIN, 4000),
];

/// [`ORDERS`] as JSON lines in `dir/orders.jsonl`.
fn write_orders(dir: &std::path::Path) {
    let input: String = ORDERS
        .iter()
        .map(|(id, qty, price, delta, dt)| {
            format!(
                "{{\"id\":{id},\"qty\":{qty},\"price\":{price},\"delta\":{delta},\"ts\":{}}}\n",
                BASE + dt
            )
        })
        .collect();
    std::fs::write(dir.join("orders.jsonl"), input).expect("write input");
}

fn rows(dir: &std::path::Path, file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let mut rows = json_rows(&text);
    rows.sort_by_key(|r| r.to_string());
    rows
}

fn pairs(rows: &[Value], a: &str, b: &str) -> Vec<(Value, Value)> {
    let mut out: Vec<_> = rows.iter().map(|r| (r[a].clone(), r[b].clone())).collect();
    out.sort_by_key(|p| format!("{p:?}"));
    out
}

fn check(no_fusion: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    write_orders(dir.path());
    let text = format!(
        "schema Order {{ id: i64, qty: i64, price: i64, delta: i64, ts: timestamp }}\n\
         source orders: Order = file(path: \"{}\") format json event_time ts watermark 1s\n\
         let totals = orders |> select {{ id, total: qty * price, a: abs(delta) }}\n\
         let big = orders |> filter qty + price > 100 |> select {{ id }}\n\
         let keyed = orders |> select {{ k: price * 3, ts }} |> key_by k |> window tumble(10s) \
             |> aggregate {{ n: count(*) }}\n\
         let later = orders |> select {{ id, due: ts + cast(qty as duration) }}\n\
         let sums = orders |> window tumble(10s) |> aggregate by id {{ n: count(*), s: sum(price) }}\n\
         let products = orders |> window tumble(10s) |> aggregate by id {{ s: sum(qty * price) }}\n\
         sink totals -> file(path: \"{}\") format json\n\
         sink big -> file(path: \"{}\") format json\n\
         sink keyed -> file(path: \"{}\") format json\n\
         sink later -> file(path: \"{}\") format json\n\
         sink sums -> file(path: \"{}\") format json\n\
         sink products -> file(path: \"{}\") format json\n",
        path("orders.jsonl"),
        path("totals.jsonl"),
        path("big.jsonl"),
        path("keyed.jsonl"),
        path("later.jsonl"),
        path("sums.jsonl"),
        path("products.jsonl"),
    );
    let binary = build("overflow", &text, no_fusion);
    let dead = path("dead.jsonl");
    let result = run(&binary, &["--dead-letters", &dead], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let d = dir.path();

    let totals = rows(d, "totals.jsonl");
    assert_eq!(
        pairs(&totals, "id", "total"),
        pairs(
            &json_rows(&format!(
                "{{\"id\":1,\"total\":6}}\n{{\"id\":2,\"total\":{}}}\n{{\"id\":3,\"total\":{BIG}}}\n",
                i64::MAX
            )),
            "id",
            "total"
        )
    );
    let big: Vec<_> = rows(d, "big.jsonl")
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(big, vec![Value::from(3), Value::from(3)]);
    let keyed = rows(d, "keyed.jsonl");
    let keyed: Vec<(i64, i64)> = pairs(&keyed, "k", "n")
        .iter()
        .map(|(a, b)| (a.as_i64().unwrap(), b.as_i64().unwrap()))
        .collect();
    assert_eq!(keyed, vec![(0, 1), (3, 1), (9, 1)]);
    let later: Vec<i64> = rows(d, "later.jsonl")
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(later, vec![1, 3, 5]);
    assert_eq!(rows(d, "later.jsonl").len(), 4);

    // sum(price) of id 3 leaves the range: null, not a wrapped number; count is unaffected.
    let sums = rows(d, "sums.jsonl");
    let sums: Vec<(i64, i64, Value)> = sums
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().unwrap(),
                r["n"].as_i64().unwrap(),
                r["s"].clone(),
            )
        })
        .collect();
    assert_eq!(
        sums,
        vec![
            (1, 1, Value::from(3)),
            (2, 1, Value::from(1)),
            (3, 2, Value::Null),
            (5, 1, Value::from(0)),
        ]
    );
    // The record whose argument overflows is left out of its window.
    let products = rows(d, "products.jsonl");
    let products: Vec<(i64, Value)> = products
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["s"].clone()))
        .collect();
    assert_eq!(
        products,
        vec![
            (1, Value::from(6)),
            (2, Value::from(i64::MAX)),
            (3, Value::from(BIG)),
            (5, Value::from(0)),
        ]
    );

    // Dead letters: 2 (totals) + 1 (big) + 2 (keyed) + 1 (later) + 1 (products).
    let letters: Vec<Value> = json_rows(&std::fs::read_to_string(&dead).unwrap_or_default());
    assert_eq!(letters.len(), 7, "{letters:?}");
    let reasons: std::collections::BTreeSet<String> = letters
        .iter()
        .map(|l| l["reason"].as_str().unwrap().to_string())
        .collect();
    for expected in [
        "integer overflow in `qty * price`",
        "integer overflow in `abs(delta)`",
        "integer overflow in `qty + price`",
        "integer overflow in `price * 3`",
        "integer overflow in `ts + cast(qty as duration)`",
    ] {
        assert!(reasons.contains(expected), "{expected} not in {reasons:?}");
    }
    assert!(
        letters
            .iter()
            .all(|l| l["operator"].is_string() && l["record"].is_string()),
        "{letters:?}"
    );
    assert!(
        result.stderr.contains("dead letters: 7"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("integer overflows: 8"),
        "{}",
        result.stderr
    );
}

#[test]
fn overflowing_records_are_dead_letters_and_overflowing_sums_are_null() {
    check(false);
}

#[test]
fn unfused_filters_and_selects_reject_overflows_too() {
    check(true);
}

/// An expression no operator takes the flag for yet (a join key, a top-N's order) does not
/// leave the flag raised for the next operator on its thread: before, the select after such a
/// join blamed its own, innocent record and sent it to the dead letters.
#[test]
fn an_overflow_in_a_join_key_or_an_order_is_not_blamed_on_the_next_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_orders(dir.path());
    let text = "schema Order { id: i64, qty: i64, price: i64, delta: i64, ts: timestamp }\n\
         source orders: Order = file(path: \"orders.jsonl\", parallelism: 1) format json\n\
         source again: Order = file(path: \"orders.jsonl\", parallelism: 1) format json\n\
         let joined = orders |> join again as a on price * 3 = a.price * 3 \
             |> select { id, n: id + 1 }\n\
         let ranked = orders |> top 2 by id order by qty * price desc |> select { id, rank, n: id + 1 }\n\
         sink joined -> file(path: \"joined.jsonl\") format json\n\
         sink ranked -> stdout() format json\n";
    let out = run(
        &build("overflow_unflagged", text, false),
        &[],
        dir.path(),
        None,
    );
    assert!(out.success, "{}", out.stderr);
    assert!(
        !dir.path().join("dead_letters.jsonl").exists(),
        "{}",
        std::fs::read_to_string(dir.path().join("dead_letters.jsonl")).unwrap_or_default()
    );
    // Every record of the join's left side met itself (and id 3's two records met each
    // other): the select after the join lost none of them.
    let joined = rows(dir.path(), "joined.jsonl");
    assert!(joined.len() >= ORDERS.len(), "{joined:?}");
}

/// Integer division: by zero is null (as in SQL), while `i64::MIN / -1`, whose quotient is
/// outside the range, is an overflow like `+` and `*` (it used to be a null with no word).
#[test]
fn the_one_overflowing_quotient_is_a_dead_letter_and_division_by_zero_is_null() {
    let dir = tempfile::tempdir().expect("temp dir");
    let min = i64::MIN;
    std::fs::write(
        dir.path().join("pairs.csv"),
        format!("{min},-1\n7,0\n-7,2\n{min},1\n"),
    )
    .expect("input");
    let text = "schema P { a: i64, b: i64 }\n\
                source pairs: P = file(path: \"pairs.csv\") format csv\n\
                let q = pairs |> select { a, b, q: a / b, r: a % b }\n\
                sink q -> file(path: \"q.jsonl\") format json\n";
    let binary = build("overflow_quotient", text, false);
    let result = run(&binary, &["--dead-letters", "dead.jsonl"], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    let got: Vec<String> = rows(dir.path(), "q.jsonl")
        .iter()
        .map(|r| format!("{},{},{},{}", r["a"], r["b"], r["q"], r["r"]))
        .collect();
    let mut got = got;
    got.sort();
    let mut want = vec![
        "7,0,null,null".to_string(),
        "-7,2,-3,-1".to_string(),
        format!("{min},1,{min},0"),
    ];
    want.sort();
    assert_eq!(got, want);
    let letters = json_rows(&std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap());
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["reason"], "integer overflow in `a / b`");
}
