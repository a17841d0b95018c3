//! Pipelines over real files and stdin: CSV and JSON-lines decoding, windowed aggregation
//! against a naive oracle, dead letters, null semantics, fan-out to several sinks.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use weir_tests::{build, example, format_ts, json_rows, run, workspace};

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Parses `yyyy-MM-dd HH:mm:ss.SSS` (the oracle's own parser, independent of weir's).
fn parse_ts(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm, ss, ms) = (n(11, 13), n(14, 16), n(17, 19), n(20, 23));
    // days from civil (Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400_000 + hh * 3_600_000 + mm * 60_000 + ss * 1000 + ms
}

#[test]
fn clicks_example_matches_a_naive_group_by() {
    let dir = temp();
    let out = dir.path().join("views.csv");
    let dead = dir.path().join("dead.jsonl");
    let text = example("clicks/clicks.weir").replace(
        "../../target/clicks_per_minute.csv",
        &out.display().to_string(),
    );
    let binary = build("clicks", &text, false);
    let result = run(
        &binary,
        &["--dead-letters", &dead.display().to_string()],
        // The library form leaves the pipeline's paths as written: relative to the run's
        // folder, which is the pipeline's here, as for `weir run`.
        &workspace().join("examples/clicks"),
        None,
    );
    assert!(result.success, "{}", result.stderr);

    // Oracle: read the same CSV by hand, drop the malformed line, filter, group by window+page.
    let input = std::fs::read_to_string(workspace().join("examples/clicks/clicks.csv")).unwrap();
    let mut groups: BTreeMap<(i64, String), (i64, i64, i64)> = BTreeMap::new();
    let mut malformed = 0;
    for line in input.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        if cells[2].len() != 23 || !cells[2].starts_with("20") {
            malformed += 1;
            continue;
        }
        let (ts, duration) = (parse_ts(cells[2]), cells[3].parse::<i64>().unwrap());
        if duration < 100 {
            continue;
        }
        let e = groups
            .entry((ts.div_euclid(60_000) * 60_000, cells[1].to_string()))
            .or_insert((0, 0, i64::MIN));
        e.0 += 1;
        e.1 += duration;
        e.2 = e.2.max(duration);
    }
    assert_eq!(malformed, 1, "the example ships exactly one malformed line");
    let mut want: Vec<String> = groups
        .iter()
        .map(|((start, page), (n, sum, max))| {
            format!(
                "{page},{},{},{n},{sum},{max}",
                format_ts(*start),
                format_ts(start + 60_000)
            )
        })
        .collect();
    want.sort();
    let written = std::fs::read_to_string(&out).expect("the sink wrote its file");
    let mut lines = written.lines();
    assert_eq!(
        lines.next(),
        Some("page,window_start,window_end,views,users_time_ms,longest_ms")
    );
    let mut got: Vec<String> = lines.map(str::to_string).collect();
    got.sort();
    assert!(want.len() > 10);
    assert_eq!(got, want);

    let dead_letters = std::fs::read_to_string(&dead).expect("dead letters were written");
    let rows = json_rows(&dead_letters);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["source"], "clicks");
    assert_eq!(rows[0]["raw"], "gus,/docs,not-a-time,300,");
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("field `ts`"),
        "{}",
        rows[0]
    );
    assert!(
        result.stderr.contains("dead letters: 1"),
        "{}",
        result.stderr
    );
}

#[test]
fn malformed_lines_go_to_dead_letters_and_the_rest_goes_on() {
    let dir = temp();
    let input = dir.path().join("in.jsonl");
    let dead = dir.path().join("dead.jsonl");
    let lines = [
        r#"{"id": 1, "name": "a", "score": 1.5}"#,
        r#"{"id": 2, "name": "b", "score": "high"}"#, // wrong type
        r#"{"id": 3, "name": "c"#,                    // truncated
        r#"{"id": 4, "score": 2.0}"#,                 // missing field
        r#"{"id": 5, "name": null, "score": 1.0}"#,   // null in a required field
        "",                                           // blank: skipped, not an error
        r#"[1, 2, 3]"#,                               // not an object
        r#"{"id": 6, "name": "f", "score": 3.25, "extra": {"nested": [1, {"x": null}]}}"#,
        r#"{"id": 7, "name": "g", "score": 1e400}"#, // number out of range
        r#"{"id": 8, "name": "h\u00e9", "score": -0.5} trailing"#,
        r#"{"id": 9, "name": "i\u00e9", "score": -0.5}"#,
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    // A line of invalid UTF-8 too.
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.extend_from_slice(b"{\"id\": 10, \"name\": \"\xff\", \"score\": 0}\n");
    bytes.extend_from_slice(b"{\"id\": 11, \"name\": \"k\", \"score\": 0}\n");
    std::fs::write(&input, bytes).unwrap();
    let text = format!(
        "schema R {{ id: i64, name: string, score: f64 }}\n\
         source rows: R = file(path: \"{}\") format json\n\
         sink rows -> stdout() format json\n",
        input.display()
    );
    let binary = build("dead_letters", &text, false);
    let result = run(
        &binary,
        &["--dead-letters", &dead.display().to_string()],
        dir.path(),
        None,
    );
    assert!(result.success, "{}", result.stderr);
    let ids: Vec<i64> = json_rows(&result.stdout)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 6, 9, 11]);
    let rows = json_rows(&std::fs::read_to_string(&dead).unwrap());
    let lines: Vec<i64> = rows.iter().map(|r| r["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 7, 9, 10, 12]);
    assert!(rows
        .iter()
        .all(|r| !r["reason"].as_str().unwrap().is_empty()));
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("score"),
        "{}",
        rows[0]
    );
    assert!(
        rows[2]["reason"]
            .as_str()
            .unwrap()
            .contains("missing field `name`"),
        "{}",
        rows[2]
    );
    assert_eq!(rows[1]["raw"], r#"{"id": 3, "name": "c"#);
    assert!(
        result.stderr.contains("dead letters: 8"),
        "{}",
        result.stderr
    );
}

#[test]
fn csv_dead_letters_name_the_column_problem() {
    let dir = temp();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        // A quote left open swallows the lines after it up to the end (a quoted cell may
        // hold line ends): it comes last.
        "a,b\n1,x\n2\n4,\"q\"\"uoted\"\n5,plain,extra\nsix,z\n\"3,y\n",
    )
    .unwrap();
    let text = format!(
        "schema R {{ a: i64, b: string }}\n\
         source rows: R = file(path: \"{}\", dead_letters: \"bad.jsonl\") format csv(header: true)\n\
         sink rows -> stdout() format json\n",
        input.display()
    );
    let result = run(
        &build("csv_dead_letters", &text, false),
        &[],
        dir.path(),
        None,
    );
    assert!(result.success, "{}", result.stderr);
    assert_eq!(
        json_rows(&result.stdout),
        vec![json!({"a": 1, "b": "x"}), json!({"a": 4, "b": "q\"uoted"})]
    );
    let rows = json_rows(&std::fs::read_to_string(dir.path().join("bad.jsonl")).unwrap());
    let lines: Vec<i64> = rows.iter().map(|r| r["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, vec![3, 5, 6, 7]);
    assert!(
        rows[0]["reason"]
            .as_str()
            .unwrap()
            .contains("expected 2 columns, found 1"),
        "{}",
        rows[0]
    );
    assert!(
        rows[2]["reason"].as_str().unwrap().contains("field `a`"),
        "{}",
        rows[2]
    );
    assert!(
        rows[3]["reason"]
            .as_str()
            .unwrap()
            .contains("a quoted field is not closed by the end of the input"),
        "{}",
        rows[3]
    );
}

#[test]
fn stdin_json_with_nulls_and_expressions() {
    let input = [
        r#"{"user": "Ana", "amount": 10, "rate": 0.5, "note": "hello world", "ts": "2024-02-29 13:45:00.250"}"#,
        r#"{"user": "bo", "amount": 0, "rate": null, "note": null, "ts": 1700000000000}"#,
        r#"{"user": "Chen", "amount": -7, "rate": 2.0, "ts": "2024-03-01T00:00:00Z"}"#,
    ]
    .join("\n");
    let text = r#"
schema T { user: string, amount: i64, rate: f64?, note: string?, ts: timestamp }
source t: T = stdin() format json
let out = t
    |> filter amount <> 999 and not (user = "nobody")
    |> select {
        user: upper(user),
        len: char_length(user),
        ratio: 100 / amount,
        safe_ratio: coalesce(100 / amount, -1),
        scaled: amount * rate,
        has_note: note is not null,
        first_word: split_index(note, " ", 0),
        second: coalesce(split_index(note, " ", 1), "none"),
        sign: case when amount > 0 then "pos" when amount < 0 then "neg" end,
        big: if(amount >= 10, true, false),
        day: date_format(ts, "yyyy-MM-dd"),
        hour: hour(ts),
        later: ts + 1h,
        as_text: cast(amount as string),
        parsed: cast("42" as i64),
        bad_parse: cast(user as i64),
        flag: cast(" TRUE " as bool),
        at: cast(" 2024-01-02 03:04:05 " as timestamp),
        mod3: amount % 3,
        starts: starts_with(lower(user), "c"),
        joined: concat(user, "-", cast(amount as string)),
    }
sink out -> stdout() format json
"#;
    let result = run(
        &build("stdin_nulls", text, false),
        &[],
        &workspace(),
        Some(&input),
    );
    assert!(result.success, "{}", result.stderr);
    let rows = json_rows(&result.stdout);
    assert_eq!(
        rows[0],
        json!({"user": "ANA", "len": 3, "ratio": 10, "safe_ratio": 10, "scaled": 5.0, "has_note": true,
               "first_word": "hello", "second": "world", "sign": "pos", "big": true, "day": "2024-02-29",
               "hour": 13, "later": "2024-02-29 14:45:00.250", "as_text": "10", "parsed": 42,
               "bad_parse": null, "flag": true, "at": "2024-01-02 03:04:05.000", "mod3": 1, "starts": false, "joined": "Ana-10"})
    );
    // Division by zero and arithmetic on a null are null, not an error; `case` without
    // `else` is null when nothing matches.
    assert_eq!(
        rows[1],
        json!({"user": "BO", "len": 2, "ratio": null, "safe_ratio": -1, "scaled": null, "has_note": false,
               "first_word": null, "second": "none", "sign": null, "big": false, "day": "2023-11-14",
               "hour": 22, "later": "2023-11-14 23:13:20.000", "as_text": "0", "parsed": 42,
               "bad_parse": null, "flag": true, "at": "2024-01-02 03:04:05.000", "mod3": 0, "starts": false, "joined": "bo-0"})
    );
    assert_eq!(rows[2]["ratio"], json!(-14));
    assert_eq!(rows[2]["mod3"], json!(-1));
    assert_eq!(rows[2]["scaled"], json!(-14.0));
    assert_eq!(rows[2]["day"], json!("2024-03-01"));
    assert_eq!(rows[2]["starts"], json!(true));
    assert_eq!(rows.len(), 3);
}

#[test]
fn one_stream_feeds_several_sinks() {
    let dir = temp();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "k,v\na,1\nb,2\na,3\n").unwrap();
    let text = format!(
        "schema R {{ k: string, v: i64 }}\n\
         source rows: R = file(path: \"{}\") format csv(header: true)\n\
         let big = rows |> filter v >= 2\n\
         sink big -> file(path: \"big.jsonl\") format json\n\
         sink big |> select {{ k }} -> file(path: \"keys.csv\") format csv\n\
         sink rows -> stdout() format csv(delimiter: \";\")\n",
        input.display()
    );
    for no_fusion in [false, true] {
        let result = run(&build("fan_out", &text, no_fusion), &[], dir.path(), None);
        assert!(result.success, "{}", result.stderr);
        assert_eq!(result.stdout, "a;1\nb;2\na;3\n");
        let big = std::fs::read_to_string(dir.path().join("big.jsonl")).unwrap();
        assert_eq!(big, "{\"k\":\"b\",\"v\":2}\n{\"k\":\"a\",\"v\":3}\n");
        let keys = std::fs::read_to_string(dir.path().join("keys.csv")).unwrap();
        assert_eq!(keys, "b\na\n");
    }
}

#[test]
fn keyed_windows_agree_across_parallelism_and_fusion() {
    // Out-of-order input within the watermark bound: every record counts, whatever the
    // parallelism, and windows fire at end of input.
    let dir = temp();
    let input = dir.path().join("in.jsonl");
    let mut lines = Vec::new();
    let mut oracle: BTreeMap<(String, i64), (i64, i64, f64, i64)> = BTreeMap::new();
    let mut state = 12345u64;
    for i in 0..5000i64 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let jitter = ((state >> 33) % 3000) as i64;
        let ts = 1_000_000 + i * 50 - jitter;
        let key = format!("k{}", (state >> 40) % 7);
        let v = ((state >> 20) % 1000) as i64 - 300;
        lines.push(format!(r#"{{"key":"{key}","v":{v},"ts":{ts}}}"#));
        let e = oracle
            .entry((key, ts.div_euclid(2000) * 2000))
            .or_insert((0, 0, 0.0, i64::MIN));
        e.0 += 1;
        e.1 += v;
        e.3 = e.3.max(v);
    }
    std::fs::write(&input, lines.join("\n")).unwrap();
    let text = format!(
        "schema E {{ key: string, v: i64, ts: timestamp }}\n\
         source e: E = file(path: \"{}\") format json event_time ts watermark 5s\n\
         let w = e |> key_by key |> window tumble(2s) |> aggregate {{ n: count(), total: sum(v), mean: avg(v), top: max(v) }}\n\
         sink w -> stdout() format json\n",
        input.display()
    );
    let want: Vec<Value> = oracle
        .iter()
        .map(|((key, start), (n, total, _, top))| {
            json!({"key": key, "window_start": format_ts(*start), "window_end": format_ts(start + 2000),
                   "n": n, "total": total, "mean": *total as f64 / *n as f64, "top": top})
        })
        .collect();
    let mut want: Vec<String> = want.iter().map(Value::to_string).collect();
    want.sort();
    for (no_fusion, parallelism) in [(false, "1"), (false, "3"), (true, "2")] {
        let binary = build("keyed_windows", &text, no_fusion);
        let result = run(&binary, &["--parallelism", parallelism], dir.path(), None);
        assert!(result.success, "{}", result.stderr);
        let mut got: Vec<String> = json_rows(&result.stdout)
            .iter()
            .map(Value::to_string)
            .collect();
        got.sort();
        assert_eq!(
            got, want,
            "parallelism {parallelism}, no_fusion {no_fusion}"
        );
    }
}

#[test]
fn a_missing_input_file_fails_with_a_clear_message() {
    let dir = temp();
    let text = "schema R { a: i64 }\nsource r: R = file(path: \"does/not/exist.csv\") format csv\nsink r -> stdout()\n";
    let result = run(&build("missing_file", text, false), &[], dir.path(), None);
    assert!(!result.success);
    assert!(
        result
            .stderr
            .contains("source `r`: cannot open does/not/exist.csv"),
        "{}",
        result.stderr
    );
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
}

#[test]
fn a_stream_joined_with_itself_after_fused_steps() {
    // Regression: the right input of a join was a run of fused steps whose rewiring lost the
    // input port, so every record arrived as the left side and nothing matched.
    let dir = temp();
    let input = dir.path().join("in.jsonl");
    let lines: Vec<String> = (0..50)
        .map(|i| format!(r#"{{"k":{},"v":{},"ts":{}}}"#, i % 5, i, 1000 + i * 100))
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let text = format!(
        "schema E {{ k: i64, v: i64, ts: timestamp }}\n\
         source e: E = file(path: \"{}\") format json event_time ts watermark 1s\n\
         let odd = e |> filter v % 2 = 1 |> select {{ k, v, ts }}\n\
         let pairs = odd |> interval_join odd as o on k = o.k within(0s, 1s) |> select {{ a: v, b: o.v }}\n\
         sink pairs -> stdout() format json\n",
        input.display()
    );
    // Oracle: odd v with the same k (v ≡ k mod 5) and o.ts - ts in [0, 1000] ms: v <= o.v <= v + 10.
    let mut want: Vec<(i64, i64)> = Vec::new();
    for a in (0..50).filter(|v| v % 2 == 1) {
        for b in (0..50).filter(|v| v % 2 == 1) {
            if a % 5 == b % 5 && b >= a && b <= a + 10 {
                want.push((a, b));
            }
        }
    }
    for no_fusion in [false, true] {
        let result = run(
            &build("self_join", &text, no_fusion),
            &["--parallelism", "2"],
            dir.path(),
            None,
        );
        assert!(result.success, "{}", result.stderr);
        let mut got: Vec<(i64, i64)> = json_rows(&result.stdout)
            .iter()
            .map(|r| (r["a"].as_i64().unwrap(), r["b"].as_i64().unwrap()))
            .collect();
        got.sort();
        assert_eq!(got, want, "no_fusion {no_fusion}");
    }
}

/// A left outer regular join with a TTL: every order once per matching payment, and orders
/// without any payment once with nulls (emitted when they expire), as SQL's LEFT JOIN.
#[test]
fn left_outer_regular_join_matches_a_sql_left_join() {
    let dir = temp();
    let base = 1_700_000_000_000i64;
    let mut orders = String::from("id,amount,ts\n");
    let mut payments = String::from("order_id,paid,ts\n");
    let mut want = std::collections::BTreeSet::new();
    for i in 0..300i64 {
        let ts = base + i * 1000;
        orders.push_str(&format!("{i},{},{ts}\n", i * 3));
        // Orders divisible by 3 get no payment, by 5 two payments, others one; payments come
        // 2 s after their order (well within the TTL).
        let n = if i % 3 == 0 {
            0
        } else if i % 5 == 0 {
            2
        } else {
            1
        };
        if n == 0 {
            want.insert(format!("{i},null"));
        }
        for k in 0..n {
            payments.push_str(&format!("{i},{},{}\n", i * 10 + k, ts + 2000));
            want.insert(format!("{i},{}", i * 10 + k));
        }
    }
    std::fs::write(dir.path().join("orders.csv"), orders).unwrap();
    std::fs::write(dir.path().join("payments.csv"), payments).unwrap();
    let text = r#"
schema Order { id: i64, amount: i64, ts: timestamp }
schema Payment { order_id: i64, paid: i64, ts: timestamp }
source orders: Order = file(path: "orders.csv") format csv(header: true)
    event_time ts watermark 1s
source payments: Payment = file(path: "payments.csv") format csv(header: true)
    event_time ts watermark 1s
let joined = orders
    |> left join payments as p on id = p.order_id ttl(30s)
    |> select { id, paid: p.paid }
sink joined -> stdout() format json
"#;
    let out = run(
        &build("left_outer_regular", text, false),
        &["--quiet"],
        dir.path(),
        None,
    );
    assert!(out.success, "{}", out.stderr);
    let rows = json_rows(&out.stdout);
    let got: std::collections::BTreeSet<String> = rows
        .iter()
        .map(|r| format!("{},{}", r["id"], r["paid"]))
        .collect();
    assert_eq!(rows.len(), want.len(), "each row once");
    assert_eq!(got, want);
}

/// Where dead letters go: a source's `dead_letters:` file (shared by the sources naming the
/// same file), the default file for the others, each named in the run summary with its
/// count; `--dead-letters` on the command line wins over both and is the one file named.
#[test]
fn dead_letter_files_are_the_ones_the_summary_names() {
    let dir = temp();
    std::fs::write(dir.path().join("a.jsonl"), "{\"a\":1}\nbad a\n{\"a\":2}\n").unwrap();
    std::fs::write(dir.path().join("b.jsonl"), "bad b1\n{\"a\":3}\nbad b2\n").unwrap();
    std::fs::write(dir.path().join("c.jsonl"), "{\"a\":4}\nbad c\n").unwrap();
    let text = "schema R { a: i64 }\n\
         source a: R = file(path: \"a.jsonl\", dead_letters: \"named.jsonl\") format json\n\
         source b: R = file(path: \"b.jsonl\", dead_letters: \"named.jsonl\") format json\n\
         source c: R = file(path: \"c.jsonl\") format json\n\
         sink a -> stdout() format json\n\
         sink b -> stdout() format json\n\
         sink c -> stdout() format json\n";
    let binary = build("dead_letter_files", text, false);
    let sources_of = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
        let mut v: Vec<String> = json_rows(&text)
            .iter()
            .map(|r| r["source"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };

    let result = run(&binary, &[], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    assert_eq!(sources_of("named.jsonl"), ["a", "b", "b"]);
    assert_eq!(sources_of("dead_letters.jsonl"), ["c"]);
    assert!(
        result
            .stderr
            .contains("3 dead letters written to named.jsonl"),
        "{}",
        result.stderr
    );
    assert!(
        result
            .stderr
            .contains("1 dead letters written to dead_letters.jsonl"),
        "{}",
        result.stderr
    );

    for file in ["named.jsonl", "dead_letters.jsonl"] {
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    let result = run(&binary, &["--dead-letters", "all.jsonl"], dir.path(), None);
    assert!(result.success, "{}", result.stderr);
    assert_eq!(sources_of("all.jsonl"), ["a", "b", "b", "c"]);
    assert!(!dir.path().join("named.jsonl").exists());
    assert!(!dir.path().join("dead_letters.jsonl").exists());
    assert!(
        result
            .stderr
            .contains("4 dead letters written to all.jsonl"),
        "{}",
        result.stderr
    );
    assert!(!result.stderr.contains("named.jsonl"), "{}", result.stderr);
}

/// `--events` and `--generators` size a Nexmark source; given to a pipeline without one they
/// would do nothing, so the run stops at start (before any output is opened) and says why.
#[test]
fn generator_options_on_a_pipeline_without_a_generator_stop_the_run_at_start() {
    let dir = temp();
    std::fs::write(dir.path().join("in.jsonl"), "{\"v\":1}\n").unwrap();
    std::fs::write(dir.path().join("out.jsonl"), "previous output\n").unwrap();
    let text = "schema R { v: i64 }\n\
                source rows: R = file(path: \"in.jsonl\")\n\
                sink rows -> file(path: \"out.jsonl\") format json\n";
    let binary = build("dead_letters_collide", text, false);
    for option in ["--events", "--generators"] {
        let out = run(&binary, &[option, "2"], dir.path(), None);
        assert!(!out.success, "{option}: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("{option}: this pipeline has no nexmark source")),
            "{option}: {}",
            out.stderr
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(),
            "previous output\n"
        );
    }
}

/// The pipeline's own paths are checked when it compiles (E0330); this is the command line's.
/// `--dead-letters` naming a sink's file or a source's input stops the run before anything is
/// written: the first dead letter would have emptied the output (or the input being read).
#[test]
fn dead_letters_on_a_sinks_file_or_a_sources_input_stop_the_run_at_start() {
    let dir = temp();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let input = "{\"v\":1}\nnot json\n{\"v\":2}\n";
    std::fs::write(dir.path().join("in.jsonl"), input).unwrap();
    std::fs::write(dir.path().join("out.jsonl"), "previous output\n").unwrap();
    let text = "schema R { v: i64 }\n\
                source rows: R = file(path: \"in.jsonl\")\n\
                sink rows -> file(path: \"out.jsonl\") format json\n";
    let binary = build("dead_letters_collide", text, false);
    for (path, user, checkpoints) in [
        ("out.jsonl", "this sink", false),
        ("sub/../out.jsonl", "this sink", false),
        ("in.jsonl", "source `rows`", false),
        // A checkpointed run empties an earlier run's dead letters: not before the check.
        ("in.jsonl", "source `rows`", true),
        ("out.jsonl", "this sink", true),
    ] {
        let mut args = vec!["--dead-letters", path];
        if checkpoints {
            args.extend(["--checkpoint-dir", "chk"]);
        }
        let out = run(&binary, &args, dir.path(), None);
        assert!(!out.success, "--dead-letters {path}: {}", out.stderr);
        assert!(
            out.stderr.contains(user)
                && out
                    .stderr
                    .contains("the dead-letter output (--dead-letters)")
                && out.stderr.contains("give one of them another path"),
            "--dead-letters {path}: {}",
            out.stderr
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(),
            "previous output\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("in.jsonl")).unwrap(),
            input
        );
    }
    // Another file is fine, and gets the one dead letter.
    let out = run(
        &binary,
        &["--dead-letters", "sub/dead.jsonl"],
        dir.path(),
        None,
    );
    assert!(out.success, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(),
        "{\"v\":1}\n{\"v\":2}\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sub/dead.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1
    );
    // A clean run after it leaves no dead letter of the earlier run behind.
    std::fs::write(dir.path().join("in.jsonl"), "{\"v\":3}\n").unwrap();
    let out = run(
        &binary,
        &["--dead-letters", "sub/dead.jsonl"],
        dir.path(),
        None,
    );
    assert!(out.success, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("sub/dead.jsonl")).unwrap(),
        ""
    );
}

/// With `header: true` the columns of a CSV file are found by the header's names, whatever
/// their order: swapped, extra and quoted columns, a byte-order mark and CRLF line ends, read
/// by one or several readers, from a file or stdin, as a source or as a lookup table. A line
/// with other than the header's number of cells is a dead letter.
#[test]
fn csv_columns_are_mapped_by_the_header_names() {
    let dir = temp();
    // The schema says k, v, note; the file has them as note, extra, v, k.
    let mut input = String::from("\u{feff}note,\"extra\",\"v\",k\r\n");
    let mut expected = Vec::new();
    for i in 0..300 {
        input.push_str(&format!("n{i},x{i},{},k{}\r\n", i * 10, i % 7));
        if i % 100 == 50 {
            input.push_str("short,line\r\n");
        }
        expected.push(format!("k{},{},n{i},K{}", i % 7, i * 10, i % 7));
    }
    expected.sort();
    std::fs::write(dir.path().join("rows.csv"), &input).unwrap();
    // The lookup table's columns are swapped too: name before key.
    std::fs::write(
        dir.path().join("names.csv"),
        "name,key\n".to_string() + &(0..7).map(|i| format!("K{i},k{i}\n")).collect::<String>(),
    )
    .unwrap();
    let pipeline = |from: &str| {
        format!(
            "schema R {{ k: string, v: i64, note: string }}\n\
             schema N {{ key: string, name: string }}\n\
             source rows: R = {from} format csv(header: true)\n\
             source names: N = file(path: \"names.csv\") format csv(header: true)\n\
             let named = rows |> lookup_join names as n on k = n.key\n    \
               |> select {{ k, v, note, name: n.name }}\n\
             sink named -> file(path: \"out.csv\") format csv\n"
        )
    };
    let from_file = build(
        "csv_by_header",
        &pipeline("file(path: \"rows.csv\")"),
        false,
    );
    for readers in ["1", "2", "3"] {
        let out = run(&from_file, &["--parallelism", readers], dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        assert_eq!(
            weir_tests::sorted_lines(&dir.path().join("out.csv")),
            expected
        );
        let reasons = weir_tests::dead_letter_reasons(dir.path());
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons
                .values()
                .all(|r| r.contains("expected 4 columns, found 2")),
            "{reasons:?}"
        );
    }
    let from_stdin = build("csv_by_header_stdin", &pipeline("stdin()"), false);
    let out = run(&from_stdin, &["--quiet"], dir.path(), Some(&input));
    assert!(out.success, "{}", out.stderr);
    assert_eq!(
        weir_tests::sorted_lines(&dir.path().join("out.csv")),
        expected
    );
}

/// A lookup table read from CSV takes a quoted cell's line ends into the cell, as a CSV
/// source does; a quote left open to the end of the file is a dead letter naming the line the
/// record started on, and the rows before it still join.
#[test]
fn a_csv_lookup_table_may_hold_line_ends_in_quoted_cells() {
    let dir = temp();
    std::fs::write(
        dir.path().join("names.csv"),
        "key,name\nk0,\"two\nlines, and a comma\"\nk1,plain\nk2,\"say \"\"hi\"\"\r\n again\"\nk3,\"never closed\nk4,lost\n",
    )
    .unwrap();
    let text = "schema R { k: string }\n\
                schema N { key: string, name: string }\n\
                source rows: R = stdin() format json\n\
                source names: N = file(path: \"names.csv\") format csv(header: true)\n\
                let named = rows |> lookup_join names as n on k = n.key |> select { k, name: n.name }\n\
                sink named -> stdout() format json\n";
    let binary = build("csv_table_line_ends", text, false);
    let input: String = (0..5).map(|i| format!("{{\"k\":\"k{i}\"}}\n")).collect();
    let out = run(&binary, &["--quiet"], dir.path(), Some(&input));
    assert!(out.success, "{}", out.stderr);
    let mut rows: Vec<(String, String)> = json_rows(&out.stdout)
        .iter()
        .map(|r| {
            (
                r["k"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        [
            ("k0".to_string(), "two\nlines, and a comma".to_string()),
            ("k1".to_string(), "plain".to_string()),
            ("k2".to_string(), "say \"hi\"\r\n again".to_string()),
        ]
    );
    let reasons = weir_tests::dead_letter_reasons(dir.path());
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        [(
            7,
            "a quoted field is not closed by the end of the input".to_string()
        )]
    );
}

/// A column the schema declares and the header lacks stops the run before any output is
/// opened, naming the file, the column and the columns the header has (with a close match as a
/// hint); so does a schema column named twice in the header.
#[test]
fn a_csv_header_without_a_declared_column_is_an_error_at_start() {
    let dir = temp();
    std::fs::write(dir.path().join("out.csv"), "previous output\n").unwrap();
    let text = "schema R { k: string, v: i64 }\n\
                source rows: R = file(path: \"rows.csv\") format csv(header: true)\n\
                sink rows -> file(path: \"out.csv\") format csv\n";
    let binary = build("csv_header_missing", text, false);
    for (header, wanted) in [
        ("K,value\n", "has no column `k`"),
        ("k,value,v,k\n", "names column `k` twice"),
    ] {
        std::fs::write(dir.path().join("rows.csv"), format!("{header}a,1,1,a\n")).unwrap();
        let out = run(&binary, &["--parallelism", "2"], dir.path(), None);
        assert!(!out.success, "{}", out.stdout);
        assert!(out.stderr.contains("rows.csv"), "{}", out.stderr);
        assert!(out.stderr.contains(wanted), "{}", out.stderr);
        assert_eq!(out.stderr.matches(wanted).count(), 1, "{}", out.stderr);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.csv")).unwrap(),
            "previous output\n"
        );
    }
    std::fs::write(dir.path().join("rows.csv"), "K,value\n").unwrap();
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.stderr.contains("columns: K, value"), "{}", out.stderr);
    assert!(out.stderr.contains("did you mean `K`"), "{}", out.stderr);
}

/// `timestamps:` of a source says how timestamps are written in its input, so that epoch
/// seconds are never read as milliseconds; a sink's says how to write them. The oracle is
/// the arithmetic: 1700000000 s is 2023-11-14 22:13:20 UTC.
#[test]
fn timestamps_are_read_and_written_as_the_format_says() {
    let dir = temp();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"id\":1,\"ts\":1700000000}\n\
         {\"id\":2,\"ts\":1700000000.25}\n\
         {\"id\":3,\"ts\":\"1700000001\"}\n\
         {\"id\":4,\"ts\":\"2023-11-14 22:13:20\"}\n\
         {\"id\":5,\"ts\":1700000012}\n",
    )
    .unwrap();
    let text = "schema R { id: i64, ts: timestamp }\n\
        source rows: R = file(path: \"in.jsonl\") format json(timestamps: \"epoch_s\")\n    \
          event_time ts watermark 0s\n\
        let w = rows |> window tumble(10s) |> aggregate { n: count(), last: max(ts) }\n\
        sink rows -> file(path: \"rows.jsonl\") format json(timestamps: \"iso8601\")\n\
        sink rows -> file(path: \"rows.csv\") format csv(timestamps: \"epoch_ms\")\n\
        sink w -> file(path: \"w.csv\") format csv(delimiter: \" \", timestamps: \"iso8601\")\n";
    let out = run(&build("timestamps_as", text, false), &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    assert_eq!(
        read("rows.jsonl"),
        "{\"id\":1,\"ts\":\"2023-11-14T22:13:20.000Z\"}\n\
         {\"id\":2,\"ts\":\"2023-11-14T22:13:20.250Z\"}\n\
         {\"id\":3,\"ts\":\"2023-11-14T22:13:21.000Z\"}\n\
         {\"id\":5,\"ts\":\"2023-11-14T22:13:32.000Z\"}\n"
    );
    assert_eq!(
        read("rows.csv"),
        "1,1700000000000\n2,1700000000250\n3,1700000001000\n5,1700000012000\n"
    );
    assert_eq!(
        read("w.csv"),
        // (No space in the ISO form, so no quotes with a space as delimiter.)
        "2023-11-14T22:13:20.000Z 2023-11-14T22:13:30.000Z 3 2023-11-14T22:13:21.000Z\n\
         2023-11-14T22:13:30.000Z 2023-11-14T22:13:40.000Z 1 2023-11-14T22:13:32.000Z\n"
    );
    let reasons = weir_tests::dead_letter_reasons(dir.path());
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[&4].contains("expected epoch seconds"),
        "{reasons:?}"
    );

    // `text` refuses what the default would read as milliseconds.
    std::fs::write(
        dir.path().join("in.csv"),
        "1,1700000000\n2,2023-11-14 22:13:20\n",
    )
    .unwrap();
    let text = "schema R { id: i64, ts: timestamp }\n\
        source rows: R = file(path: \"in.csv\") format csv(timestamps: \"text\")\n\
        sink rows -> stdout() format csv\n";
    let out = run(
        &build("timestamps_text", text, false),
        &[],
        dir.path(),
        None,
    );
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.stdout, "2,2023-11-14 22:13:20.000\n");
    let reasons = weir_tests::dead_letter_reasons(dir.path());
    assert!(
        reasons[&1].contains("expected a timestamp as text"),
        "{reasons:?}"
    );
}

/// A date pattern as `timestamps:` reads a source's timestamps in the user's own layout
/// (event time included) and writes a sink's; a value in another layout is a dead letter that
/// names the pattern. The oracle is the calendar: 14/11/2023 22:13 is 2023-11-14 22:13:00 UTC.
#[test]
fn timestamps_are_read_and_written_with_a_date_pattern() {
    let dir = temp();
    std::fs::write(
        dir.path().join("in.csv"),
        "id;ts\n\
         1;14/11/2023 22:13\n\
         2;14/11/2023 22:14\n\
         3;2023-11-14 22:15:00\n\
         4;31/02/2023 10:00\n\
         5;14/11/2023 22:29\n",
    )
    .unwrap();
    let text = "schema R { id: i64, ts: timestamp }\n\
        source rows: R = file(path: \"in.csv\")\n    \
          format csv(header: true, delimiter: \";\", timestamps: \"dd/MM/yyyy HH:mm\")\n    \
          event_time ts watermark 0s\n\
        let w = rows |> window tumble(10m) |> aggregate { n: count(), last: max(ts) }\n\
        sink rows -> file(path: \"rows.jsonl\") format json(timestamps: \"yyyy/MM/dd'T'HH:mm\")\n\
        sink w -> file(path: \"w.csv\") format csv(timestamps: \"HH:mm, dd.MM.yy\")\n";
    let out = run(
        &build("timestamps_pattern", text, false),
        &[],
        dir.path(),
        None,
    );
    assert!(out.success, "{}", out.stderr);
    let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).unwrap();
    assert_eq!(
        read("rows.jsonl"),
        "{\"id\":1,\"ts\":\"2023/11/14T22:13\"}\n\
         {\"id\":2,\"ts\":\"2023/11/14T22:14\"}\n\
         {\"id\":5,\"ts\":\"2023/11/14T22:29\"}\n"
    );
    // A written timestamp holding the delimiter is quoted as any CSV cell.
    assert_eq!(
        read("w.csv"),
        "\"22:10, 14.11.23\",\"22:20, 14.11.23\",2,\"22:14, 14.11.23\"\n\
         \"22:20, 14.11.23\",\"22:30, 14.11.23\",1,\"22:29, 14.11.23\"\n"
    );
    let reasons = weir_tests::dead_letter_reasons(dir.path());
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    // (Lines 4 and 5 of the file: ids 3 and 4 after the header.)
    for line in [4, 5] {
        assert!(
            reasons[&line].contains("expected a timestamp written as `dd/MM/yyyy HH:mm`"),
            "{reasons:?}"
        );
    }
}

/// In CSV a bare empty cell is null and a quoted one the empty string, both ways: `is null`
/// agrees with what JSON prints, and CSV output reads back as it was.
#[test]
fn csv_tells_null_from_the_empty_string() {
    let dir = temp();
    std::fs::write(dir.path().join("in.csv"), "1,,\n2,\"\",\"\"\n3,x,7\n").unwrap();
    let text = "schema R { id: i64, note: string?, n: i64? }\n\
        source rows: R = file(path: \"in.csv\") format csv\n\
        let flagged = rows |> select { id, note, n, no_note: note is null, no_n: n is null }\n\
        sink flagged -> file(path: \"out.jsonl\") format json\n\
        sink rows -> file(path: \"out.csv\") format csv\n";
    let out = run(&build("csv_null_empty", text, false), &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let rows = json_rows(&std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap());
    assert_eq!(
        rows,
        vec![
            json!({"id": 1, "note": null, "n": null, "no_note": true, "no_n": true}),
            json!({"id": 2, "note": "", "n": null, "no_note": false, "no_n": true}),
            json!({"id": 3, "note": "x", "n": 7, "no_note": false, "no_n": false}),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.csv")).unwrap(),
        "1,,\n2,\"\",\n3,x,7\n"
    );
}

/// Lines with invalid UTF-8 among many valid ones, in cells and members the pipeline does not
/// read: the file source validates whole stretches of lines at a time, and each bad line must
/// still be a dead letter with the reason std's `from_utf8` gives for that line alone (the
/// oracle), whatever stretch it fell in; every other line is read. Over 1 MiB of input, so
/// stretches and read blocks both end inside it.
#[test]
fn invalid_utf8_in_unread_fields_is_a_dead_letter_per_line() {
    let dir = temp();
    // Bytes that break UTF-8 in different ways: a stray continuation byte, a truncated
    // character, one cut by a `\r`, bytes never valid, a surrogate.
    const BAD: [&[u8]; 5] = [
        b"\x80",
        b"\xe2\x82",
        b"\xc3\r",
        b"\xff\xfe",
        b"\xed\xa0\x80",
    ];
    let mut rng = weir_tests::Rng(0x0bad_0a7f);
    for format in ["csv", "json"] {
        let mut bytes = Vec::new();
        let mut want_dead = BTreeMap::new();
        let mut want_ids = Vec::new();
        let mut id = 0i64;
        while bytes.len() < (1 << 20) + 300_000 {
            id += 1;
            // Mostly valid lines; now and then a run of bad ones.
            let bad = (rng.below(500) == 0
                || (id > 1 && want_dead.contains_key(&(id as u64 - 1)) && rng.below(2) == 0))
                .then(|| BAD[rng.below(BAD.len() as u64) as usize]);
            let note: Vec<u8> = match bad {
                Some(b) => [b"note ".as_slice(), b, b" end"].concat(),
                None => "caf\u{e9} \u{1f600}".as_bytes().to_vec(),
            };
            let mut line = match format {
                "csv" => [format!("{id},").as_bytes(), &note, b",7"].concat(),
                _ => [
                    format!("{{\"id\":{id},\"note\":\"").as_bytes(),
                    &note,
                    b"\",\"n\":7}",
                ]
                .concat(),
            };
            if rng.below(3) == 0 {
                line.push(b'\r');
            }
            let seen = line.strip_suffix(b"\r").unwrap_or(&line);
            match std::str::from_utf8(seen) {
                Ok(_) => want_ids.push(id),
                Err(e) => {
                    want_dead.insert(id as u64, format!("invalid UTF-8: {e}"));
                }
            }
            line.push(b'\n');
            bytes.extend_from_slice(&line);
        }
        assert!(want_dead.len() > 10, "{}", want_dead.len());
        let input = dir.path().join(format!("in.{format}"));
        std::fs::write(&input, &bytes).unwrap();
        let clause = if format == "csv" { "csv" } else { "json" };
        let text = format!(
            "schema R {{ id: i64, note: string, n: i64 }}\n\
             source rows: R = file(path: \"{}\") format {clause}\n\
             sink rows |> select {{ id }} -> file(path: \"out.jsonl\") format json\n",
            input.display()
        );
        let binary = build(&format!("utf8_stretches_{format}"), &text, false);
        let _ = std::fs::remove_file(dir.path().join("dead_letters.jsonl"));
        let result = run(&binary, &["--quiet"], dir.path(), None);
        assert!(result.success, "{}", result.stderr);
        let ids: Vec<i64> = std::fs::read_to_string(dir.path().join("out.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ids.len(), want_ids.len(), "{format}");
        assert!(ids == want_ids, "{format}: the rows read differ");
        assert_eq!(
            weir_tests::dead_letter_reasons(dir.path()),
            want_dead,
            "{format}"
        );
    }
}

#[test]
fn streams_named_like_rust_keywords_and_runtime_types_compile_and_run() {
    // `window` would name its aggregate `WindowAggregate`, the runtime's trait, and `type` is
    // a Rust keyword: the generated names must stay valid and unique.
    let dir = temp();
    let input = dir.path().join("in.csv");
    std::fs::write(
        &input,
        "k,v,ts\na,1,2024-01-01T00:00:01Z\na,2,2024-01-01T00:00:02Z\nb,3,2024-01-01T00:00:03Z\na,5,2024-01-01T00:01:30Z\n",
    )
    .unwrap();
    let text = format!(
        "schema R {{ k: string, v: i64, ts: timestamp }}\n\
         source rows: R = file(path: \"{}\") format csv(header: true) event_time ts watermark 0s\n\
         let window = rows |> filter v >= 2 |> window tumble(1m) |> aggregate by k {{ n: count() }}\n\
         let type = window |> select {{ k, n }}\n\
         sink type -> stdout() format csv\n\
         sink type |> select {{ n }} -> file(path: \"n.csv\") format csv\n",
        input.display()
    );
    for no_fusion in [false, true] {
        let result = run(
            &build("keyword_names", &text, no_fusion),
            &[],
            dir.path(),
            None,
        );
        assert!(result.success, "{}", result.stderr);
        let mut rows: Vec<&str> = result.stdout.lines().collect();
        rows.sort_unstable();
        assert_eq!(rows, ["a,1", "a,1", "b,1"]);
        let n = std::fs::read_to_string(dir.path().join("n.csv")).unwrap();
        assert_eq!(n, "1\n1\n1\n");
    }
}
