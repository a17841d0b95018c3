//! weir's CSV decoding against the splitter it replaced, over generated lines: quoted cells,
//! doubled quotes, delimiters inside quotes, CRLF, empty cells, unicode, wrong column counts,
//! unterminated quotes, text after a closing quote, and random edits of all of those.
//!
//! The reference is the old decoder: `split_line` (kept here as it was: every cell of the
//! line into a vector of `Cow`s), then the column count, then the fields in order. The
//! decoder that replaced it finds only the columns a pipeline reads and counts the rest, so it
//! must reach the same verdict on every line: the same dead-letter reason, word for word, or
//! the same values.
//!
//! Floats are read by the rule the README states, independently of weir's parser: a number
//! `str::parse::<f64>` accepts whose value is finite; NaN, infinities and numbers beyond the
//! range (`1e400`) are dead letters.
//!
//! Two levels: `split_columns` itself against the reference over 200,000 lines and several
//! column choices (no compiler involved), and two compiled pipelines over 100,000 lines in a
//! file, one reading every column and one reading two, their dead letters and outputs compared
//! record by record (a line whose quoted cell is still open at its end goes on over the next,
//! as RFC 4180 and DuckDB read it: the test groups the lines by its own scan).

use std::borrow::Cow;

use serde_json::Value;
use weir_runtime::formats::csv::{split_columns, Cell};
use weir_runtime::formats::{parse_i64, parse_timestamp, DecodeError};
use weir_tests::{build, format_ts, run, Rng};

/// The splitter weir used before `split_columns`, verbatim but for its name: the reference.
fn reference_split_line<'a>(
    line: &'a str,
    delimiter: u8,
    cells: &mut Vec<(Cow<'a, str>, bool)>,
) -> Result<(), DecodeError> {
    cells.clear();
    if delimiter == b'"' || !delimiter.is_ascii() {
        return Err(DecodeError::new(format!(
            "invalid CSV delimiter `{}` (must be an ASCII character other than `\"`)",
            char::from(delimiter).escape_debug()
        )));
    }
    let line = line.strip_suffix('\r').unwrap_or(line);
    let b = line.as_bytes();
    let mut pos = 0;
    loop {
        if b.get(pos) == Some(&b'"') {
            // Quoted cell: runs to the next quote that is not doubled.
            let open = pos;
            let content_start = pos + 1;
            let mut i = content_start;
            let mut doubled = false;
            let close = loop {
                match b[i..].iter().position(|&c| c == b'"') {
                    None => {
                        return Err(DecodeError::new(format!(
                            "invalid CSV at column {}: unterminated quoted cell",
                            open + 1
                        )))
                    }
                    Some(off) => {
                        let q = i + off;
                        if b.get(q + 1) == Some(&b'"') {
                            doubled = true;
                            i = q + 2;
                        } else {
                            break q;
                        }
                    }
                }
            };
            let content = &line[content_start..close];
            let text = if doubled {
                Cow::Owned(content.replace("\"\"", "\""))
            } else {
                Cow::Borrowed(content)
            };
            cells.push((text, true));
            pos = close + 1;
            match b.get(pos) {
                None => return Ok(()),
                Some(&c) if c == delimiter => pos += 1,
                Some(_) => {
                    return Err(DecodeError::new(format!(
                        "invalid CSV at column {}: text after the closing quote of a cell",
                        pos + 1
                    )))
                }
            }
        } else {
            match b[pos..].iter().position(|&c| c == delimiter) {
                None => {
                    cells.push((Cow::Borrowed(&line[pos..]), false));
                    return Ok(());
                }
                Some(off) => {
                    cells.push((Cow::Borrowed(&line[pos..pos + off]), false));
                    pos += off + 1;
                }
            }
        }
    }
}

/// The old decoder's first steps: split, check the count, take the cells of `columns`.
fn reference_cells(
    line: &str,
    delimiter: u8,
    columns: &[usize],
    n_columns: usize,
) -> Result<Vec<(String, bool)>, String> {
    let mut cells = Vec::new();
    reference_split_line(line, delimiter, &mut cells).map_err(|e| e.message)?;
    if cells.len() != n_columns {
        return Err(format!(
            "expected {} columns, found {}",
            n_columns,
            cells.len()
        ));
    }
    // Each cell's text, and whether it is null (bare and empty) for an optional string.
    Ok(columns
        .iter()
        .map(|&c| {
            let (text, quoted) = &cells[c];
            (text.to_string(), text.is_empty() && !quoted)
        })
        .collect())
}

/// The new splitter, its cells as text and whether each is null.
fn new_cells(
    line: &str,
    delimiter: u8,
    columns: &[usize],
    n_columns: usize,
) -> Result<Vec<(String, bool)>, String> {
    let mut cells = vec![Cell::EMPTY; columns.len()];
    split_columns(line, delimiter, columns, n_columns, &mut cells).map_err(|e| e.message)?;
    for cell in &cells {
        // `is_empty` (null for optional fields) must say what the text says.
        assert_eq!(cell.is_empty(), cell.text().is_empty(), "{line:?}");
    }
    Ok(cells
        .iter()
        .map(|c| (c.text().into_owned(), c.is_null()))
        .collect())
}

/// A cell's content before quoting: numbers, timestamps, words, unicode, quotes, delimiters.
fn content(rng: &mut Rng) -> String {
    const PIECES: [&str; 16] = [
        "42",
        "-7",
        "3.25",
        "2015-07-15 00:00:00.000",
        "abc",
        "é",
        "中文",
        "😀",
        " ",
        ",",
        ";",
        "\"",
        "\"\"",
        "\t",
        "x\"y",
        "9223372036854775808",
    ];
    let mut s = String::new();
    for _ in 0..rng.below(4) {
        s.push_str(PIECES[rng.below(PIECES.len() as u64) as usize]);
    }
    s
}

/// One cell as it appears in a line: bare (even if that breaks the line), or quoted.
fn cell(rng: &mut Rng, text: &str) -> String {
    match rng.below(5) {
        0 | 1 => text.to_string(),
        2 => format!("\"{}\"", text.replace('"', "\"\"")),
        3 => format!("\"{text}\""), // quotes not doubled: often malformed
        _ => {
            if text.contains(['"', ',', ';']) {
                format!("\"{}\"", text.replace('"', "\"\""))
            } else {
                text.to_string()
            }
        }
    }
}

/// A line of about `n` cells joined by `delimiter`, then maybe broken by a few edits.
fn line(
    rng: &mut Rng,
    n: usize,
    delimiter: u8,
    texts: impl Fn(&mut Rng, usize) -> String,
) -> String {
    // Wrong column counts now and then.
    let count = match rng.below(10) {
        0 => n.saturating_sub(1 + rng.below(2) as usize),
        1 => n + 1 + rng.below(2) as usize,
        _ => n,
    };
    let cells: Vec<String> = (0..count)
        .map(|i| {
            let text = texts(rng, i);
            cell(rng, &text)
        })
        .collect();
    let mut line = cells.join(std::str::from_utf8(&[delimiter]).unwrap());
    if rng.below(6) == 0 {
        line.push('\r');
    }
    if rng.below(4) == 0 {
        // Random edits: quotes, delimiters, CRs and letters inserted, bytes deleted.
        const EDITS: [&str; 6] = ["\"", "\"\"", ",", ";", "\r", "q"];
        let mut b = line.into_bytes();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(b.len() as u64 + 1) as usize;
            if rng.below(3) == 0 && at < b.len() {
                b.remove(at);
            } else {
                let edit = EDITS[rng.below(EDITS.len() as u64) as usize].as_bytes();
                b.splice(at..at, edit.iter().copied());
            }
        }
        line = String::from_utf8_lossy(&b).replace('\u{fffd}', "");
    }
    line
}

#[test]
fn split_columns_agrees_with_the_old_splitter() {
    let mut rng = Rng(0x00c5_7d1f);
    let (mut accepted, mut rejected) = (0, 0);
    for i in 0..200_000 {
        let delimiter = if i % 4 == 3 { b';' } else { b',' };
        let n = 1 + rng.below(8) as usize;
        let text = line(&mut rng, n, delimiter, |rng, _| content(rng));
        let choices: [Vec<usize>; 6] = [
            Vec::new(),
            vec![0],
            (0..n).collect(),
            vec![n - 1],
            (0..n).step_by(2).collect(),
            (1..n.min(3)).collect(),
        ];
        for columns in &choices {
            for n_columns in [n, n + 1] {
                let want = reference_cells(&text, delimiter, columns, n_columns);
                let got = new_cells(&text, delimiter, columns, n_columns);
                assert_eq!(
                    got, want,
                    "line {text:?}, columns {columns:?} of {n_columns}"
                );
                if want.is_ok() {
                    accepted += 1;
                } else {
                    rejected += 1;
                }
            }
        }
    }
    // Both verdicts are common.
    assert!(
        accepted > 200_000 && rejected > 200_000,
        "{accepted} {rejected}"
    );
    // A delimiter no splitter accepts fails the same way.
    for delimiter in [b'"', 0xc3] {
        assert_eq!(
            new_cells("a", delimiter, &[0], 1),
            reference_cells("a", delimiter, &[0], 1)
        );
    }
}

/// Columns: `id: i64, name: string, note: string?, price: f64, ts: timestamp`.
const SCHEMA: &str = "schema R { id: i64, name: string, note: string?, price: f64, ts: timestamp }";

/// A cell's text for column `i` of the schema: mostly valid, sometimes not.
fn field_text(rng: &mut Rng, i: usize) -> String {
    if rng.below(8) == 0 {
        return content(rng);
    }
    match i {
        0 => (rng.below(2_000_000) as i64 - 1_000_000).to_string(),
        3 if rng.below(6) == 0 => {
            const EDGES: [&str; 10] = [
                "NaN",
                "inf",
                "-Infinity",
                "+infinity",
                "1e400",
                "-1e309",
                "1.7976931348623157e308",
                "-1.7976931348623157e308",
                "5e-324",
                "1e-400",
            ];
            EDGES[rng.below(EDGES.len() as u64) as usize].to_string()
        }
        3 => format!("{}.{}", rng.below(1000), rng.below(100)),
        4 => format_ts(1_436_918_400_000 + rng.below(1_000_000_000) as i64),
        _ => content(rng),
    }
}

/// A float cell by the README's rule: finite numbers only, with the decoder's messages.
fn reference_f64(cell: &str) -> Result<Value, DecodeError> {
    let quoted = || {
        let cut: String = cell.chars().take(40).collect();
        let dots = if cut.len() < cell.len() { "..." } else { "" };
        format!("`{cut:?}{dots}`")
    };
    match cell.parse::<f64>() {
        Ok(v) => match serde_json::Number::from_f64(v) {
            Some(n) => Ok(Value::Number(n)),
            None if cell.bytes().any(|b| b.is_ascii_digit()) => Err(DecodeError::new(format!(
                "number out of range (64-bit float), found {}",
                quoted()
            ))),
            None => Err(DecodeError::new(format!(
                "expected a finite number, found {}",
                quoted()
            ))),
        },
        Err(_) => Err(DecodeError::new(format!(
            "expected a number, found {}",
            quoted()
        ))),
    }
}

/// The old decoder's verdict on a line for the columns `fields` (declared order), as the JSON
/// sink would write the record: conversion errors in field order, each naming its field.
fn reference_record(line: &str, fields: &[&str]) -> Result<Value, String> {
    const NAMES: [&str; 5] = ["id", "name", "note", "price", "ts"];
    let mut cells = Vec::new();
    reference_split_line(line, b',', &mut cells).map_err(|e| e.message)?;
    if cells.len() != NAMES.len() {
        return Err(format!(
            "expected {} columns, found {}",
            NAMES.len(),
            cells.len()
        ));
    }
    let mut out = serde_json::Map::new();
    for name in fields {
        let column = NAMES.iter().position(|n| n == name).unwrap();
        let (cell, quoted) = &cells[column];
        let cell: &str = cell;
        let in_field = |e: DecodeError| e.in_field(name).message;
        let value = match *name {
            "id" => Value::from(parse_i64(cell).map_err(in_field)?),
            "price" => reference_f64(cell).map_err(in_field)?,
            "ts" => Value::from(format_ts(parse_timestamp(cell).map_err(in_field)?)),
            "note" if cell.is_empty() && !quoted => Value::Null,
            _ => Value::from(cell),
        };
        out.insert(name.to_string(), value);
    }
    Ok(Value::Object(out))
}

/// Where a CSV line stands at its end (RFC 4180), written here apart from the runtime's
/// scanner: a cell that starts with `"` is quoted, `""` in it is a quote, and a quoted cell
/// still open at the line's end goes on over the next line.
#[derive(Clone, Copy, PartialEq)]
enum LineEnd {
    Start,
    Plain,
    Quoted,
    /// A quote inside a quoted cell: its end, or the first of a doubled one.
    QuoteInQuoted,
}

fn scan(line: &str, mut state: LineEnd) -> LineEnd {
    for c in line.chars() {
        state = match (state, c) {
            (LineEnd::Start, '"') => LineEnd::Quoted,
            (LineEnd::Quoted, '"') => LineEnd::QuoteInQuoted,
            (LineEnd::QuoteInQuoted, '"') => LineEnd::Quoted,
            (LineEnd::Quoted, _) => LineEnd::Quoted,
            (_, ',') => LineEnd::Start,
            _ => LineEnd::Plain,
        };
    }
    state
}

/// The records of a file of `lines`: (the number of the line each starts on, its text with
/// the line ends inside it, whether its quoted cells are all closed).
fn records(lines: &[String]) -> Vec<(u64, String, bool)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = i;
        let mut text = lines[i].clone();
        let mut state = scan(&lines[i], LineEnd::Start);
        while state == LineEnd::Quoted && i + 1 < lines.len() {
            i += 1;
            text.push('\n');
            text.push_str(&lines[i]);
            state = scan(&lines[i], LineEnd::Quoted);
        }
        out.push((first as u64 + 1, text, state != LineEnd::Quoted));
        i += 1;
    }
    out
}

#[test]
fn generated_decoders_reach_the_old_verdicts() {
    let n: usize = std::env::var("WEIR_CSV_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut rng = Rng(0x0c5f_11e5);
    let mut lines = Vec::with_capacity(n);
    while lines.len() < n {
        let text = line(&mut rng, 5, b',', field_text);
        // The file source splits lines and drops one `\r` before a line end, and skips blank
        // lines: keep the generated lines what the decoder will see.
        if text.trim().is_empty() || text.contains('\n') {
            continue;
        }
        lines.push(text);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("in.csv"), lines.join("\n") + "\n").unwrap();

    // Every column read; two read (the decoder skips the others but still counts them).
    let cases: [(&str, &str, &[&str]); 2] = [
        (
            "all",
            "sink r -> file(path: \"out.jsonl\") format json",
            &["id", "name", "note", "price", "ts"],
        ),
        (
            "two",
            "sink r |> select { price, note } -> file(path: \"out.jsonl\") format json",
            &["note", "price"],
        ),
    ];
    for (name, sink, fields) in cases {
        let text = format!("{SCHEMA}\nsource r: R = file(path: \"in.csv\") format csv\n{sink}\n");
        let binary = build(&format!("csv_differential_{name}"), &text, false);
        let _ = std::fs::remove_file(dir.path().join("dead_letters.jsonl"));
        let out = run(&binary, &["--quiet"], dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        let written: Vec<Value> = std::fs::read_to_string(dir.path().join("out.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let dead = weir_tests::dead_letter_reasons(dir.path());
        let mut rows = written.iter();
        let (mut accepted, mut rejected) = (0, 0);
        let mut failures = Vec::new();
        for (number, line, closed) in records(&lines) {
            let line = &line;
            let seen = line.strip_suffix('\r').unwrap_or(line);
            let want = if closed {
                reference_record(seen, fields)
            } else {
                Err("a quoted field is not closed by the end of the input".to_string())
            };
            match (want, dead.get(&number)) {
                (Err(want), Some(got)) => {
                    rejected += 1;
                    if &want != got {
                        failures.push(format!(
                            "line {number} {line:?}: rejected for {got:?}, not {want:?}"
                        ));
                    }
                }
                (Err(want), None) => failures.push(format!(
                    "line {number} {line:?}: accepted as {:?}, the old decoder said {want:?}",
                    rows.next()
                )),
                (Ok(want), Some(got)) => failures.push(format!(
                    "line {number} {line:?}: rejected for {got:?}, the old decoder read {want}"
                )),
                (Ok(want), None) => {
                    accepted += 1;
                    let got = rows.next().expect("a row per accepted line");
                    if got != &want {
                        failures.push(format!("line {number} {line:?}: {got}, not {want}"));
                    }
                }
            }
            if failures.len() >= 20 {
                break;
            }
        }
        assert!(
            failures.is_empty(),
            "{name}: {} differences:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(
            rows.next().is_none(),
            "{name}: more rows than accepted lines"
        );
        // The slower SIMD levels (the one-pass split of lines without quotes, the quote
        // check) give the same bytes: rows and dead letters alike.
        for level in ["scalar", "sse2"] {
            let other = tempfile::tempdir().unwrap();
            std::fs::copy(dir.path().join("in.csv"), other.path().join("in.csv")).unwrap();
            let status = std::process::Command::new(&binary)
                .arg("--quiet")
                .current_dir(other.path())
                .env("WEIR_SIMD", level)
                .status()
                .unwrap();
            assert!(status.success());
            for file in ["out.jsonl", "dead_letters.jsonl"] {
                assert!(
                    std::fs::read(dir.path().join(file)).unwrap()
                        == std::fs::read(other.path().join(file)).unwrap(),
                    "{name}: {file} differs with WEIR_SIMD={level}"
                );
            }
        }
        eprintln!("csv differential ({name}): {accepted} accepted, {rejected} rejected");
        assert!(
            accepted > n / 5 && rejected > n / 5,
            "{name}: {accepted} {rejected}"
        );
    }
}

/// A quoted cell holding line ends is one record, as DuckDB reads the file (not a dead letter
/// and a record made up of the rest); a file with such cells read by two readers stops with
/// an error rather than guess where a record starts.
#[test]
fn quoted_cells_may_hold_line_ends() {
    let dir = tempfile::tempdir().unwrap();
    let input = "id,note,city,amount\n\
                 1,\"call first,\n9, ring twice\",Oslo,100\n\
                 2,plain,Rome,5\n\
                 3,\"three\r\nline \"\"quoted\"\"\nnote\",Oslo,7\n\
                 4,,Rome,1\n";
    std::fs::write(dir.path().join("in.csv"), input).unwrap();
    let text = "schema R { id: i64, note: string?, city: string, amount: i64 }\n\
                source r: R = file(path: \"in.csv\") format csv(header: true)\n\
                sink r -> file(path: \"out.jsonl\") format json\n";
    let binary = build("csv_quoted_line_ends", text, false);
    let out = run(&binary, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert!(out.stderr.contains("dead letters: 0"), "{}", out.stderr);
    let got: Vec<Value> = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let path = dir.path().join("in.csv").display().to_string();
    let want = weir_tests::duckdb::query(&format!(
        "SELECT id, note, city, amount FROM read_csv({}, header = true, quote = '\"', \
         escape = '\"', columns = {{'id': 'BIGINT', 'note': 'VARCHAR', 'city': 'VARCHAR', \
         'amount': 'BIGINT'}}) ORDER BY id",
        weir_tests::duckdb::sql_string(&path)
    ));
    assert_eq!(got, want);
    assert_eq!(got[0]["note"], "call first,\n9, ring twice");
    // Two readers: an error, not a guess.
    let out = run(&binary, &["--parallelism", "2"], dir.path(), None);
    assert!(!out.success);
    assert!(
        out.stderr.contains("a quoted field holds a line end"),
        "{}",
        out.stderr
    );
}
