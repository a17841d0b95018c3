//! weir's JSON-lines decoding against serde_json, line by line, over 100,000 generated lines:
//! valid ones (escapes, unicode, surrogate pairs, numbers at the edges of `i64`, unknown
//! members holding any JSON, nesting, duplicate keys, odd whitespace), and the same lines
//! broken by random edits. Every line serde_json (with weir's documented rules on top) rejects
//! must be a dead letter, and every line it accepts must come out with the same values.
//!
//! weir's rules beyond plain JSON, as the oracle applies them: an `i64` field takes integer
//! literals only (`1.0` and `1e3` are not integers); every occurrence of a duplicated key must
//! fit its field, and the last one wins; a `timestamp` is epoch milliseconds (a number, or a
//! string of digits) within the years 0000 to 9999; unknown members are validated, never
//! converted. Where serde_json cannot stand in for weir (it converts what weir only validates:
//! numbers beyond `f64` and lone surrogates in unknown members; it nests 128 deep where weir
//! allows 256; it reads `-0` as a float), the line is left out of the comparison and counted.
//! This is the safety net for any faster decoder: it must keep every verdict. Half the lines
//! (and their broken copies) are laid out as weir writes them, members in the schema's order
//! without whitespace: those are the lines the generated decoder's fast path takes
//! (`json::InOrder`), falling back to the general decoder at the first surprise.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use weir_tests::{build, format_ts, run, Rng};

const PIPELINE: &str = r#"
schema R { id: i64, price: f64, name: string, ok: bool, note: string?, ts: timestamp }
source r: R = file(path: "in.jsonl") format json
sink r -> file(path: "out.jsonl") format json
"#;

/// The years 0000 to 9999 in epoch milliseconds.
const TS_MIN: i64 = -62_167_219_200_000;
const TS_MAX: i64 = 253_402_300_799_999;

/// A JSON object with its members in order, duplicates kept.
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    out.push((k, v));
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// One decoded record, as weir must write it.
#[derive(Debug, PartialEq)]
struct Row {
    id: i64,
    price: f64,
    name: String,
    ok: bool,
    note: Option<String>,
    ts: String,
}

enum Verdict {
    Accept(Row),
    Reject,
    /// serde_json cannot stand in for weir on this line.
    Undecided,
}

fn timestamp(v: &Value) -> Option<Option<i64>> {
    let ms = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None; // a civil date: not this oracle's business
            }
            s.parse::<i64>().ok()
        }
        _ => return Some(None),
    };
    Some(ms.filter(|ms| (TS_MIN..=TS_MAX).contains(ms)))
}

fn oracle(line: &str) -> Verdict {
    let members = match serde_json::from_str::<Members>(line) {
        Ok(m) => m.0,
        Err(e) => {
            let e = e.to_string();
            let lower = line.to_ascii_lowercase();
            let surrogate = [
                "\\ud8", "\\ud9", "\\uda", "\\udb", "\\udc", "\\udd", "\\ude", "\\udf",
            ]
            .iter()
            .any(|p| lower.contains(p));
            if e.contains("number out of range")
                || e.contains("surrogate")
                || e.contains("recursion limit")
                || e.contains("invalid unicode code point")
                || (surrogate && e.contains("hex escape"))
            {
                return Verdict::Undecided;
            }
            return Verdict::Reject;
        }
    };
    let mut id = None;
    let mut price = None;
    let mut name = None;
    let mut ok = None;
    let mut note: Option<Option<String>> = None;
    let mut ts = None;
    for (key, v) in &members {
        // serde_json reads `-0` as the float -0.0 (to keep its sign), so its text cannot be
        // told from `0.0` here; weir reads the integer literal `-0` as 0.
        if let ("id" | "ts", Value::Number(n)) = (key.as_str(), v) {
            if n.is_f64() && n.as_f64() == Some(0.0) {
                return Verdict::Undecided;
            }
        }
        match (key.as_str(), v) {
            ("note", Value::Null) => note = Some(None),
            ("id" | "price" | "name" | "ok" | "ts", Value::Null) => return Verdict::Reject,
            ("id", Value::Number(n)) if n.as_i64().is_some() => id = n.as_i64(),
            ("price", Value::Number(n)) => price = n.as_f64(),
            ("name", Value::String(s)) => name = Some(s.clone()),
            ("note", Value::String(s)) => note = Some(Some(s.clone())),
            ("ok", Value::Bool(b)) => ok = Some(*b),
            ("ts", v) => match timestamp(v) {
                None => return Verdict::Undecided,
                Some(None) => return Verdict::Reject,
                Some(Some(ms)) => ts = Some(ms),
            },
            ("id" | "price" | "name" | "note" | "ok", _) => return Verdict::Reject,
            _ => {}
        }
    }
    match (id, price, name, ok, ts) {
        (Some(id), Some(price), Some(name), Some(ok), Some(ts)) => Verdict::Accept(Row {
            id,
            price,
            name,
            ok,
            note: note.flatten(),
            ts: format_ts(ts),
        }),
        _ => Verdict::Reject,
    }
}

/// A random string with escapes, unicode and surrogate pairs, as JSON text.
fn string(rng: &mut Rng) -> String {
    let mut s = String::from("\"");
    for _ in 0..rng.below(12) {
        match rng.below(12) {
            0 => s.push_str("\\\""),
            1 => s.push_str("\\\\"),
            2 => s.push_str(["\\n", "\\t", "\\r", "\\b", "\\f", "\\/"][rng.below(6) as usize]),
            3 => s.push_str(&format!("\\u{:04x}", 0x20 + rng.below(0xd700))),
            4 => s.push_str("\\ud83d\\ude00"),
            5 => s.push_str(["é", "ß", "中", "😀", "\u{2028}"][rng.below(5) as usize]),
            _ => s.push(char::from(b'a' + rng.below(26) as u8)),
        }
    }
    s.push('"');
    s
}

fn number(rng: &mut Rng, integer: bool) -> String {
    let edge = [
        "0",
        "-0",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
    ];
    match rng.below(10) {
        0 => edge[rng.below(edge.len() as u64) as usize].to_string(),
        1 if !integer => ["1.5e300", "-2.5E-300", "0.1", "1e3", "1.0", "5e-324"]
            [rng.below(6) as usize]
            .to_string(),
        2 if integer => ["1.0", "1e3", "2E2"][rng.below(3) as usize].to_string(),
        _ if integer => (rng.below(2_000_000) as i64 - 1_000_000).to_string(),
        _ => format!("{}.{}", rng.below(100_000), rng.below(1000)),
    }
}

/// Any JSON value, nested at most `depth` deep.
fn any(rng: &mut Rng, depth: u32) -> String {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => string(rng),
        1 => {
            let integer = rng.below(2) == 0;
            number(rng, integer)
        }
        2 => ["true", "false"][rng.below(2) as usize].to_string(),
        3 => "null".to_string(),
        4 => format!("{}", rng.below(10)),
        5 => {
            let items: Vec<String> = (0..rng.below(4)).map(|_| any(rng, depth - 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => {
            let items: Vec<String> = (0..rng.below(4))
                .map(|i| format!("\"k{i}\":{}", any(rng, depth - 1)))
                .collect();
            format!("{{{}}}", items.join(","))
        }
    }
}

fn ws(rng: &mut Rng) -> &'static str {
    [" ", "", "", "", "\t", "  "][rng.below(6) as usize]
}

/// A line that is valid JSON, usually a valid record, sometimes with a wrong type, a missing
/// field, a duplicate, unknown members or deep nesting.
fn valid_line(rng: &mut Rng) -> String {
    let ts = TS_MIN / 2 + rng.below((TS_MAX / 2 - TS_MIN / 2) as u64) as i64;
    let mut members: Vec<(String, String)> = vec![
        ("id".into(), number(rng, true)),
        ("price".into(), number(rng, false)),
        ("name".into(), string(rng)),
        ("ok".into(), ["true", "false"][rng.below(2) as usize].into()),
        (
            "ts".into(),
            match rng.below(8) {
                0 => format!("\"{ts}\""),
                1 => ["99999999999999999", "-99999999999999999", "\"x\"", "1.5"]
                    [rng.below(4) as usize]
                    .into(),
                _ => ts.to_string(),
            },
        ),
    ];
    match rng.below(3) {
        0 => members.push(("note".into(), string(rng))),
        1 => members.push(("note".into(), "null".into())),
        _ => {}
    }
    for _ in 0..rng.below(3) {
        members.push((format!("extra{}", rng.below(5)), any(rng, 4)));
    }
    match rng.below(20) {
        0 => {
            let i = rng.below(members.len() as u64) as usize;
            members.remove(i);
        }
        1 => {
            let i = rng.below(members.len() as u64) as usize;
            members[i].1 = any(rng, 1);
        }
        2 | 3 => {
            let i = rng.below(members.len() as u64) as usize;
            let dup = (members[i].0.clone(), any(rng, 1));
            members.push(dup);
        }
        4 => {
            let depth = [50, 100, 300][rng.below(3) as usize];
            members.push((
                "deep".into(),
                format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
            ));
        }
        5 => members.push(("i\\u0064".into(), number(rng, true))),
        _ => {}
    }
    // Half the lines are laid out as weir writes them: the schema's members in its order,
    // no whitespace (the decoder's fast path takes those); the others are shuffled and spaced.
    if rng.below(2) == 0 {
        let order = ["id", "price", "name", "ok", "note", "ts"];
        let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
        members.sort_by_key(|(k, _)| rank(k));
        let body: Vec<String> = members
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        return format!("{{{}}}", body.join(","));
    }
    for i in (1..members.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        members.swap(i, j);
    }
    let body: Vec<String> = members
        .iter()
        .map(|(k, v)| {
            let (a, b, c, d) = (ws(rng), ws(rng), ws(rng), ws(rng));
            format!("{a}\"{k}\"{b}:{c}{v}{d}")
        })
        .collect();
    let (before, after) = (ws(rng), ws(rng));
    format!("{before}{{{}}}{after}", body.join(","))
}

/// `line` with a few random edits.
fn broken(rng: &mut Rng, line: &str) -> String {
    const ALPHABET: &[u8] = b"{}[]\",:0123456789.eE+-tfnul\\ xa/";
    let mut b: Vec<u8> = line.bytes().collect();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(b.len() as u64 + 1) as usize;
        match rng.below(3) {
            0 if at < b.len() => {
                b.remove(at);
            }
            1 if at < b.len() => b[at] = ALPHABET[rng.below(ALPHABET.len() as u64) as usize],
            _ => b.insert(at, ALPHABET[rng.below(ALPHABET.len() as u64) as usize]),
        }
    }
    // Edits are ASCII and land on any byte: keep the line UTF-8 (weir's invalid-UTF-8 dead
    // letters are tested elsewhere) by dropping what a cut character left.
    String::from_utf8_lossy(&b).replace('\u{fffd}', "")
}

#[test]
fn json_lines_decode_as_serde_json_says() {
    let n: usize = std::env::var("WEIR_JSON_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut rng = Rng(0x0dec_0de5);
    let mut lines = Vec::with_capacity(n);
    while lines.len() < n {
        let line = valid_line(&mut rng);
        let line = if rng.below(3) == 0 {
            broken(&mut rng, &line)
        } else {
            line
        };
        if line.trim().is_empty() || line.contains(['\n', '\r']) {
            continue;
        }
        lines.push(line);
    }
    let binary = build("json_differential", PIPELINE, false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.jsonl"), lines.join("\n") + "\n").unwrap();
    let out = run(&binary, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);

    let written: Vec<Value> = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dead = weir_tests::dead_letter_reasons(dir.path());
    let mut rows = written.iter();
    let (mut accepted, mut rejected, mut undecided) = (0, 0, 0);
    let mut failures = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let number = i as u64 + 1;
        let verdict = oracle(line);
        let weir_rejected = dead.get(&number);
        match (verdict, weir_rejected) {
            (Verdict::Undecided, Some(_)) => undecided += 1,
            (Verdict::Undecided, None) => {
                undecided += 1;
                rows.next();
            }
            (Verdict::Reject, Some(_)) => rejected += 1,
            (Verdict::Reject, None) => {
                let got = rows.next();
                failures.push(format!(
                    "line {number} accepted, serde_json rejects it: {line}\n  weir wrote {got:?}"
                ));
            }
            (Verdict::Accept(_), Some(reason)) => {
                failures.push(format!(
                    "line {number} rejected ({reason}), serde_json accepts it: {line}"
                ));
            }
            (Verdict::Accept(want), None) => {
                accepted += 1;
                let v = rows.next().expect("a row per accepted line");
                let got = Row {
                    id: v["id"].as_i64().unwrap(),
                    price: v["price"].as_f64().unwrap(),
                    name: v["name"].as_str().unwrap().to_string(),
                    ok: v["ok"].as_bool().unwrap(),
                    note: v["note"].as_str().map(str::to_string),
                    ts: v["ts"].as_str().unwrap().to_string(),
                };
                if got != want {
                    failures.push(format!(
                        "line {number}: {line}\n  weir {got:?}\n  want {want:?}"
                    ));
                }
            }
        }
        if failures.len() >= 20 {
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(rows.next().is_none(), "more rows than accepted lines");
    eprintln!(
        "json differential: {accepted} accepted, {rejected} rejected, {undecided} left out, of {}",
        lines.len()
    );
    // The portable path (no SIMD) gives the same output and the same dead letters.
    let scalar = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("in.jsonl"), scalar.path().join("in.jsonl")).unwrap();
    let status = std::process::Command::new(&binary)
        .arg("--quiet")
        .current_dir(scalar.path())
        .env("WEIR_SIMD", "scalar")
        .status()
        .unwrap();
    assert!(status.success());
    for file in ["out.jsonl", "dead_letters.jsonl"] {
        assert!(
            std::fs::read(dir.path().join(file)).unwrap()
                == std::fs::read(scalar.path().join(file)).unwrap(),
            "{file} differs with WEIR_SIMD=scalar"
        );
    }
    // The mix stays meaningful: most lines are decided, both ways.
    assert!(
        accepted > n / 3 && rejected > n / 10,
        "{accepted} accepted, {rejected} rejected"
    );
    // (About 6 %: broken lines that hold surrogate pairs, and `-0`.)
    assert!(undecided < n / 10, "{undecided} undecided");
}
