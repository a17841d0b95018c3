//! The compiler's diagnostics, tested from the outside.
//!
//! `tests/cases/errors/*.weir` holds one small pipeline per error kind. Each file starts with
//! `// expect: E0201` (several codes separated by commas when one mistake gives more than one
//! error). [`error_cases`] compiles every file, checks that exactly the expected error codes
//! come out, and snapshots the rendered report in `tests/snapshots/` (one snapshot per file,
//! named after it). To add a case, write the file and run
//! `INSTA_UPDATE=always cargo test -p weir-compiler --test diagnostics`, then review the new
//! `.snap` file: the message, the underlined text and the hint.
//!
//! The other tests check properties of every report: all errors of a file come out in one run,
//! each names `file:line:col` and underlines the offending text, and typos get a "did you mean"
//! hint. That no input, however broken, makes the compiler panic or take long is
//! `tests/fuzz.rs`'s to check.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use weir_compiler::diagnostics::{render, render_short};
use weir_compiler::{compile, Diagnostic, Options, SourceMap};

/// The case folder, relative to the crate: also the prefix of the names the reports show.
const CASES: &str = "tests/cases/errors";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `text` (bytes, as read from a file) as a file named `name`; returns every
/// diagnostic, warnings included.
fn compile_text(name: &str, text: impl AsRef<[u8]>) -> (SourceMap, Vec<Diagnostic>) {
    let mut sources = SourceMap::new();
    let file = sources.add_bytes(name, text.as_ref());
    let diagnostics = match compile(&sources, file, &Options::default()) {
        Ok(compiled) => compiled.warnings,
        Err(diagnostics) => diagnostics,
    };
    (sources, diagnostics)
}

fn errors(diagnostics: &[Diagnostic]) -> impl Iterator<Item = &Diagnostic> {
    diagnostics.iter().filter(|d| d.is_error())
}

/// One case file: its name relative to the crate, its snapshot name, its bytes (not always
/// UTF-8: `not_utf8.weir` is not) and its text (with U+FFFD where the bytes are not UTF-8).
struct Case {
    name: String,
    stem: String,
    bytes: Vec<u8>,
    text: String,
}

/// Every case file, sorted by name.
fn cases() -> Vec<Case> {
    let dir = crate_dir().join(CASES);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "weir"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let file_name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let stem = path.file_stem().and_then(|n| n.to_str()).expect("stem");
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            Case {
                name: format!("{CASES}/{file_name}"),
                stem: stem.to_string(),
                text: String::from_utf8_lossy(&bytes).into_owned(),
                bytes,
            }
        })
        .collect()
}

/// The codes named by the `// expect: E0201, E0202` first line.
fn expected_codes(case: &Case) -> BTreeSet<String> {
    let first = case.text.lines().next().unwrap_or("");
    let Some(list) = first.strip_prefix("// expect:") else {
        panic!("{}: the first line must be `// expect: E....`", case.name);
    };
    let codes: BTreeSet<String> = list
        .split(',')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect();
    for code in &codes {
        let well_formed = code.len() == 5
            && code.starts_with('E')
            && code[1..].bytes().all(|b| b.is_ascii_digit());
        assert!(well_formed, "{}: `{code}` is not an error code", case.name);
    }
    assert!(!codes.is_empty(), "{}: no expected code", case.name);
    codes
}

#[test]
fn error_cases() {
    let cases = cases();
    assert!(
        cases.len() >= 20,
        "expected at least 20 cases in {CASES}, found {}",
        cases.len()
    );
    let mut problems = Vec::new();
    let mut reports = Vec::new();
    for case in &cases {
        let expected = expected_codes(case);
        let (sources, diagnostics) = compile_text(&case.name, &case.bytes);
        let produced: BTreeSet<String> = errors(&diagnostics).map(|d| d.code.to_string()).collect();
        if produced.is_empty() {
            problems.push(format!("{}: compiled without errors", case.name));
        }
        let missing: Vec<_> = expected.difference(&produced).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{}: expected {missing:?}, got {produced:?}",
                case.name
            ));
        }
        // More codes than expected is a cascade or a second mistake in the case file.
        let extra: Vec<_> = produced.difference(&expected).collect();
        if !extra.is_empty() {
            problems.push(format!(
                "{}: unexpected {extra:?} besides {expected:?}",
                case.name
            ));
        }
        reports.push((case, render(&sources, &diagnostics, false)));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (case, report) in reports {
        insta::with_settings!({ description => case.name.as_str(), omit_expression => true }, {
            insta::assert_snapshot!(case.stem.as_str(), report);
        });
    }
}

/// Every snapshot of this file belongs to a case or to a test below: a renamed or deleted case
/// leaves no stale snapshot behind.
#[test]
fn no_stale_snapshots() {
    let mut known: BTreeSet<String> = cases().into_iter().map(|c| c.stem).collect();
    known.insert("multiple_errors".to_string());
    let dir = crate_dir().join("tests/snapshots");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut stale = Vec::new();
    for entry in entries {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_string_lossy();
        let Some(rest) = name.strip_prefix("diagnostics__") else {
            continue;
        };
        let stem = rest
            .strip_suffix(".snap")
            .or_else(|| rest.strip_suffix(".snap.new"))
            .unwrap_or(rest);
        if !known.contains(stem) || name.ends_with(".new") {
            stale.push(name.into_owned());
        }
    }
    assert!(stale.is_empty(), "stale or unreviewed snapshots: {stale:?}");
}

const MULTIPLE_ERRORS: &str = r#"schema Click { user: string, ts: timestamp, clicks: int }

source bids = nexmark(stream: "bid", events: 1000)

let expensive = bids |> filter pricee > 100

let cheap = bids |> fliter price < 10

let channels = bids |> select { auction, channel: lowr(channel) }

sink expensive -> stdot()
sink cheap -> stdout()
sink channels -> stdout()
"#;

/// One run reports the mistakes of every item, parse errors and type errors alike, and an item
/// that failed does not make its uses fail again.
#[test]
fn multiple_errors_in_one_run() {
    let name = "tests/multiple_errors.weir";
    let (sources, diagnostics) = compile_text(name, MULTIPLE_ERRORS);
    let codes: Vec<&str> = errors(&diagnostics).map(|d| d.code).collect();
    assert_eq!(
        codes,
        ["E0103", "E0201", "E0010", "E0210", "E0314"],
        "{}",
        render(&sources, &diagnostics, false)
    );
    let lines: BTreeSet<usize> = errors(&diagnostics)
        .map(|d| {
            sources
                .line_col(d.primary.span.file, d.primary.span.start)
                .0
        })
        .collect();
    assert_eq!(lines.len(), 5, "each error is in its own item");
    // `cheap` failed to parse: `sink cheap` is not an unknown stream, and `bids` is not
    // reported as unused (the broken items used it).
    assert!(diagnostics.iter().all(|d| d.code != "E0107"));
    assert!(diagnostics.iter().all(|d| d.is_error()));
    insta::assert_snapshot!("multiple_errors", render(&sources, &diagnostics, false));
}

/// Durations of windows, joins and watermarks may be as long as the 10,000 years timestamps
/// span (3652425d), and no longer (`cases/errors/duration_too_long.weir`).
#[test]
fn the_longest_durations_are_accepted() {
    let text = r#"
schema Click { user: string, ts: timestamp }
source clicks: Click = file(path: "clicks.jsonl") format json
    event_time ts watermark 3652425d
let per_user = clicks
    |> key_by user
    |> window hop(size: 3652425d, slide: 1d, lateness: 3652425d)
    |> aggregate { n: count() }
let pairs = clicks
    |> interval_join clicks as c on user = c.user within(-3652425d, 3652425d)
let joined = clicks |> join clicks as c on user = c.user ttl(3652425d)
sink per_user -> stdout() format json
sink pairs -> stdout() format json
sink joined -> stdout() format json
"#;
    let (sources, diagnostics) = compile_text("tests/longest.weir", text);
    assert_eq!(
        errors(&diagnostics).count(),
        0,
        "{}",
        render(&sources, &diagnostics, false)
    );
    let longer = text.replace("ttl(3652425d)", "ttl(3652426d)");
    let (_, diagnostics) = compile_text("tests/longer.weir", &longer);
    let codes: Vec<&str> = errors(&diagnostics).map(|d| d.code).collect();
    assert_eq!(codes, ["E0323"]);
}

/// Checks one rendered error: the header names `file:line:col` of the primary span, and the
/// source line holding the span is printed with `^` under exactly the offending text.
fn check_rendered(sources: &SourceMap, d: &Diagnostic) -> Result<(), String> {
    let report = render(sources, std::slice::from_ref(d), false);
    let span = d.primary.span;
    let file = sources.get(span.file);
    let (line, col) = sources.line_col(span.file, span.start);
    let (end_line, end_col) = sources.line_col(span.file, span.end);
    let location = format!("{}:{line}:{col}", file.name);
    if !report.contains(&location) {
        return Err(format!("no `{location}` in\n{report}"));
    }
    let source_line = file.text.lines().nth(line - 1).unwrap_or("");
    let rows: Vec<&str> = report.lines().collect();
    // A source row is `N │ text`; the rows under it are `  │ marks`.
    let source_row = rows.iter().position(|row| {
        row.split_once(" │ ").is_some_and(|(gutter, text)| {
            gutter.trim() == line.to_string() && text.trim_end() == source_line.trim_end()
        })
    });
    let Some(source_row) = source_row else {
        return Err(format!("line {line} is not shown in\n{report}"));
    };
    let marks = rows
        .get(source_row + 1)
        .and_then(|row| row.split_once('│'))
        .map_or("", |(_, marks)| marks.strip_prefix(' ').unwrap_or(marks));
    if end_line != line {
        // A span over several lines is drawn as a bracket that ends in `^`.
        let underlined = rows[source_row..].iter().any(|row| row.contains('^'));
        return match underlined {
            true => Ok(()),
            false => Err(format!("no `^` under line {line} in\n{report}")),
        };
    }
    let width = (end_col - col).max(1);
    let under: String = marks.chars().skip(col - 1).take(width).collect();
    if under != "^".repeat(width) {
        return Err(format!(
            "expected {width} `^` at column {col} of line {line} (`{}`), in\n{report}",
            sources.snippet(span)
        ));
    }
    Ok(())
}

#[test]
fn every_error_shows_its_location_and_underlines_it() {
    let mut inputs: Vec<(String, Vec<u8>)> =
        cases().into_iter().map(|c| (c.name, c.bytes)).collect();
    inputs.push(("tests/multiple_errors.weir".into(), MULTIPLE_ERRORS.into()));
    let mut problems = Vec::new();
    let mut checked = 0;
    for (name, text) in &inputs {
        let (sources, diagnostics) = compile_text(name, text);
        for d in &diagnostics {
            checked += 1;
            if let Err(problem) = check_rendered(&sources, d) {
                problems.push(format!("{name}: {}: {problem}", d.code));
            }
        }
        // The one-line form carries the same location.
        let short = render_short(&sources, &diagnostics);
        for d in &diagnostics {
            let (line, col) = sources.line_col(d.primary.span.file, d.primary.span.start);
            let prefix = format!("{name}:{line}:{col}: ");
            if !short
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(d.code))
            {
                problems.push(format!("{name}: {} missing from\n{short}", d.code));
            }
        }
    }
    assert!(checked > 0);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

/// The hint of the first error with `code`.
fn hints_of(text: &str, code: &str) -> (Vec<String>, String) {
    let (sources, diagnostics) = compile_text("tests/typo.weir", text);
    let report = render(&sources, &diagnostics, false);
    let d = diagnostics
        .iter()
        .find(|d| d.code == code)
        .unwrap_or_else(|| panic!("no {code} in\n{report}"));
    (d.hints.clone(), report)
}

#[test]
fn typos_get_did_you_mean_hints() {
    const BIDS: &str = "source bids = nexmark(stream: \"bid\", events: 1000)\n";
    let typos = [
        // A field.
        (
            format!("{BIDS}let q = bids |> filter pricee > 100\nsink q -> stdout()\n"),
            "E0201",
            "price",
        ),
        (
            format!("{BIDS}let q = bids |> select {{ auction, pricee }}\nsink q -> stdout()\n"),
            "E0201",
            "price",
        ),
        // A step.
        (
            format!("{BIDS}let q = bids |> fliter price > 100\nsink q -> stdout()\n"),
            "E0010",
            "filter",
        ),
        (
            format!("{BIDS}let q = bids |> selct {{ price }}\nsink q -> stdout()\n"),
            "E0010",
            "select",
        ),
        // Connectors.
        (format!("{BIDS}sink bids -> stdot()\n"), "E0314", "stdout"),
        (
            "source bids = nexmarc(stream: \"bid\")\nsink bids -> stdout()\n".to_string(),
            "E0310",
            "nexmark",
        ),
        // A connector parameter, a nexmark stream, a function, a window, a stream.
        (
            "source bids = nexmark(stream: \"bid\", event: 10)\nsink bids -> stdout()\n"
                .to_string(),
            "E0301",
            "events",
        ),
        (
            "source bids = nexmark(stream: \"bids\")\nsink bids -> stdout()\n".to_string(),
            "E0309",
            "bid",
        ),
        (
            format!("{BIDS}let q = bids |> select {{ c: lowr(channel) }}\nsink q -> stdout()\n"),
            "E0210",
            "lower",
        ),
        (
            format!(
                "{BIDS}    event_time date_time watermark 4s\n\
                 let q = bids |> window tumbel(10s) |> aggregate {{ n: count() }}\n\
                 sink q -> stdout()\n"
            ),
            "E0411",
            "tumble",
        ),
        (
            format!("{BIDS}let q = bidz |> filter price > 1\nsink q -> stdout()\n"),
            "E0107",
            "bids",
        ),
    ];
    for (text, code, suggestion) in typos {
        let (hints, report) = hints_of(&text, code);
        let wanted = format!("did you mean `{suggestion}`?");
        assert!(
            hints.iter().any(|h| h.contains(&wanted)),
            "expected `{wanted}` in the hints of {code}, got {hints:?}:\n{report}"
        );
        assert!(
            report.contains(&format!("hint: {}", hints[0])),
            "the hint is not rendered:\n{report}"
        );
    }
    // No suggestion for a name that is nothing like any field.
    let (hints, _) = hints_of(
        &format!("{BIDS}let q = bids |> filter zzzzzz > 1\nsink q -> stdout()\n"),
        "E0201",
    );
    assert!(
        hints.iter().all(|h| !h.contains("did you mean")),
        "{hints:?}"
    );
}

/// "did you mean" for an unknown function is driven by the function table: every function,
/// misspelled by one letter, is suggested (so functions added to the table are covered).
#[test]
fn every_function_is_suggested_for_its_typo() {
    const BIDS: &str = "source bids = nexmark(stream: \"bid\", events: 1000)\n";
    let mut missed = Vec::new();
    for f in weir_compiler::sema::functions::FUNCTIONS {
        let typo = format!("{}q", f.name);
        let text =
            format!("{BIDS}let q = bids |> select {{ x: {typo}(price) }}\nsink q -> stdout()\n");
        let (hints, _) = hints_of(&text, "E0210");
        let wanted = format!("did you mean `{}`?", f.name);
        if !hints.iter().any(|h| h == &wanted) {
            missed.push(format!("{typo}: {hints:?}"));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}

/// An unknown function may be a Rust function not declared yet: the hint says how to declare
/// one, and a declared Rust function is a "did you mean" candidate like a built-in one.
#[test]
fn unknown_functions_point_at_rust_functions() {
    use weir_compiler::sema::types::Type;
    use weir_compiler::sema::udf::{with_udfs, Udf};
    let text = "source bids = nexmark(stream: \"bid\", events: 1000)\n\
                let q = bids |> select { r: risk_scor(price) }\nsink q -> stdout()\n";
    let (hints, report) = hints_of(text, "E0210");
    assert!(
        hints.iter().any(|h| h.contains("--rust FILE.rs")),
        "no pointer to --rust in {hints:?}:\n{report}"
    );
    assert!(
        hints.iter().all(|h| !h.contains("did you mean")),
        "{hints:?}"
    );
    let udf = Udf {
        name: "risk_score".into(),
        params: vec![("amount".into(), Type::I64)],
        result: Type::F64,
        path: "udfs::risk_score".into(),
        aggregate: false,
    };
    let (hints, report) = with_udfs(&[udf], || hints_of(text, "E0210"));
    assert!(
        hints.iter().any(|h| h == "did you mean `risk_score`?"),
        "{hints:?}:\n{report}"
    );
}

/// `weir check` and `weir run` agree: on every case file, checking reports exactly the errors
/// compiling reports (a file without a sink was once "ok" to `weir check` and refused by
/// `weir run`).
#[test]
fn check_reports_what_compile_reports() {
    for case in cases() {
        let mut sources = SourceMap::new();
        let file = sources.add_bytes(&case.name, case.bytes.clone());
        let (_, checked) = weir_compiler::check(&sources, file);
        let (_, compiled) = compile_text(&case.name, &case.bytes);
        let codes = |d: &[Diagnostic]| errors(d).map(|d| d.code).collect::<Vec<_>>();
        assert_eq!(codes(&checked), codes(&compiled), "{}", case.name);
    }
}

/// A `top`, `dedup` or `aggregate by` whose key names a window (its end, or the start of a
/// tumbling or hopping window, also through a renaming `select`) is final when the window
/// closes: an append stream, which a `filter`, a join, a later window and a Kafka sink take.
/// A key without the window, a cumulating window's start (several windows share it) and a
/// window with allowed lateness (its rows are revised) keep the stream updating.
#[test]
fn results_keyed_by_a_window_are_append_streams() {
    let head = "schema Order { id: i64, customer: string, amount: i64, ts: timestamp }\n\
        source orders: Order = kafka(topic: \"orders\", brokers: \"127.0.0.1:9092\")\n\
            event_time ts watermark 4s\n";
    let sink = "sink out -> kafka(topic: \"out\", brokers: \"127.0.0.1:9092\")\n";
    let append = [
        "let out = orders |> key_by customer |> window tumble(1h) |> aggregate { n: count() }\n\
             |> top 3 by window_start order by n desc |> filter n > 1\n",
        "let out = orders |> key_by customer |> window hop(size: 1h, slide: 10m)\n\
             |> aggregate { n: count() } |> select { customer, n, start: window_start, stop: window_end }\n\
             |> dedup by start keep first\n",
        "let out = orders |> key_by customer |> window session(gap: 5m) |> aggregate { n: count() }\n\
             |> aggregate by window_end { sessions: count(), most: max(n) }\n\
             |> window tumble(1d) |> aggregate { busiest: max(most) }\n",
    ];
    for (i, text) in append.iter().enumerate() {
        let (_, diagnostics) =
            compile_text(&format!("append{i}.weir"), format!("{head}{text}{sink}"));
        let errs: Vec<_> = errors(&diagnostics).map(|d| d.message.clone()).collect();
        assert!(errs.is_empty(), "case {i}: {errs:?}");
    }
    let updating = [
        "let out = orders |> key_by customer |> window tumble(1h) |> aggregate { n: count() }\n\
             |> top 3 by customer order by n desc |> filter n > 1\n",
        "let out = orders |> key_by customer |> window cumulate(step: 10m, size: 1h)\n\
             |> aggregate { n: count() } |> top 3 by window_start order by n desc |> filter n > 1\n",
        "let out = orders |> key_by customer |> window tumble(1h, lateness: 1m)\n\
             |> aggregate { n: count() } |> top 3 by window_end order by n desc |> filter n > 1\n",
    ];
    for (i, text) in updating.iter().enumerate() {
        let (_, diagnostics) =
            compile_text(&format!("updating{i}.weir"), format!("{head}{text}{sink}"));
        let codes: BTreeSet<String> = errors(&diagnostics).map(|d| d.code.to_string()).collect();
        assert!(codes.contains("E0430"), "case {i}: {codes:?}");
    }
}

/// A stream defined and never used compiles, with warning `W0001` on its name.
#[test]
fn unused_streams_are_warned_about() {
    let text = "source bids = nexmark(stream: \"bid\", events: 10)\n\
                let cheap = bids |> filter price < 10\n\
                sink bids -> stdout()\n";
    let mut sources = SourceMap::new();
    let file = sources.add_bytes("unused.weir", text.as_bytes());
    let compiled = compile(&sources, file, &Options::default()).expect("warnings only");
    let codes: Vec<&str> = compiled.warnings.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["W0001"]);
    let report = render_short(&sources, &compiled.warnings);
    assert!(report.contains("`cheap` is never used"), "{report}");
    assert!(report.contains("unused.weir:2:"), "{report}");
}

/// Every code the compiler's source writes is in `weir_compiler::codes::CODES`; every row
/// there has a case in `tests/cases/errors/` or names the test that covers it; and
/// `docs/errors.md` lists every code, the parser's included.
#[test]
fn every_code_is_registered_tested_and_documented() {
    use weir_compiler::codes::{lookup, CODES};
    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("source folder") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    /// Every `"E0123"` or `"W0123"` string literal in `text`.
    fn literals(text: &str) -> Vec<String> {
        let b = text.as_bytes();
        (0..b.len().saturating_sub(6))
            .filter(|&i| {
                b[i] == b'"'
                    && matches!(b[i + 1], b'E' | b'W')
                    && b[i + 2..i + 6].iter().all(u8::is_ascii_digit)
                    && b[i + 6] == b'"'
            })
            .map(|i| text[i + 1..i + 6].to_string())
            .collect()
    }
    let mut problems = Vec::new();
    // Ascending and unique, errors then warnings.
    for pair in CODES.windows(2) {
        if pair[0].code.starts_with(pair[1].code.as_bytes()[0] as char)
            && pair[0].code >= pair[1].code
        {
            problems.push(format!("{} is not before {}", pair[0].code, pair[1].code));
        }
    }
    // Written in the source, so registered. (`E00..` are the parser's.)
    let mut files = Vec::new();
    rust_files(&crate_dir().join("src"), &mut files);
    files.sort();
    let mut used = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source file");
        for code in literals(&text) {
            if code.starts_with("E00") {
                continue;
            }
            if lookup(&code).is_none() {
                problems.push(format!(
                    "{}: `{code}` is not in codes::CODES",
                    file.display()
                ));
            }
            used.insert(code);
        }
    }
    // Registered, so used, and tested.
    let covered: BTreeSet<String> = cases().iter().flat_map(expected_codes).collect();
    for code in CODES {
        if !used.contains(code.code) {
            problems.push(format!(
                "`{}` is in codes::CODES but no source file gives it",
                code.code
            ));
        }
        if code.tested_by.is_none() && !covered.contains(code.code) {
            problems.push(format!("`{}` has no case in {CASES}", code.code));
        }
        if code.tested_by.is_some() && covered.contains(code.code) {
            problems.push(format!("`{}` has a case: drop its `tested_by`", code.code));
        }
    }
    // Documented, the parser's codes too.
    let docs =
        std::fs::read_to_string(crate_dir().join("../docs/errors.md")).expect("docs/errors.md");
    let parser = std::fs::read_to_string(crate_dir().join("../dsl/src/parser.rs")).expect("parser");
    let parser_codes: BTreeSet<String> = literals(&parser).into_iter().collect();
    assert!(parser_codes.len() >= 15, "{parser_codes:?}");
    for code in CODES.iter().map(|c| c.code.to_string()).chain(parser_codes) {
        if !docs.contains(&format!("`{code}`")) {
            problems.push(format!("docs/errors.md does not list `{code}`"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
