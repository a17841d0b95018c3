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
//! each names `file:line:col` and underlines the offending text, typos get a "did you mean"
//! hint, and no input, however broken, makes the compiler panic.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use weir_compiler::diagnostics::{render, render_short};
use weir_compiler::{compile, Diagnostic, Options, SourceMap};

/// The case folder, relative to the crate: also the prefix of the names the reports show.
const CASES: &str = "tests/cases/errors";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Compiles `text` as a file named `name`; returns every diagnostic, warnings included.
fn compile_text(name: &str, text: &str) -> (SourceMap, Vec<Diagnostic>) {
    let mut sources = SourceMap::new();
    let file = sources.add(name, text);
    let diagnostics = match compile(&sources, file, &Options::default()) {
        Ok(compiled) => compiled.warnings,
        Err(diagnostics) => diagnostics,
    };
    (sources, diagnostics)
}

fn errors(diagnostics: &[Diagnostic]) -> impl Iterator<Item = &Diagnostic> {
    diagnostics.iter().filter(|d| d.is_error())
}

/// One case file: its name relative to the crate, its snapshot name and its text.
struct Case {
    name: String,
    stem: String,
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
            Case {
                name: format!("{CASES}/{file_name}"),
                stem: stem.to_string(),
                text: std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display())),
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
        let (sources, diagnostics) = compile_text(&case.name, &case.text);
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
    let mut inputs: Vec<(String, String)> = cases().into_iter().map(|c| (c.name, c.text)).collect();
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

/// A tiny deterministic PRNG (xorshift64*), so the fuzz test needs no dependency and every
/// run sees the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Words, tokens and literals the mutations insert: the language's own vocabulary, edge-case
/// literals, and characters that trouble lexers.
const TOKENS: &[&str] = &[
    "schema",
    "source",
    "let",
    "sink",
    "filter",
    "select",
    "key_by",
    "window",
    "aggregate",
    "by",
    "format",
    "event_time",
    "watermark",
    "and",
    "or",
    "not",
    "case",
    "when",
    "then",
    "else",
    "end",
    "is",
    "null",
    "true",
    "false",
    "as",
    "cast",
    "if",
    "bids",
    "price",
    "auction",
    "date_time",
    "channel",
    "url",
    "extra",
    "count",
    "max",
    "sum",
    "avg",
    "min",
    "lower",
    "concat",
    "regexp_extract",
    "date_format",
    "count_char",
    "coalesce",
    "abs",
    "split_index",
    "tumble",
    "hop",
    "nexmark",
    "file",
    "stdin",
    "stdout",
    "checksum",
    "csv",
    "json",
    "path",
    "header",
    "delimiter",
    "stream",
    "events",
    "i64",
    "f64",
    "string",
    "timestamp",
    "duration",
    "|>",
    "->",
    "(",
    ")",
    "{",
    "}",
    ",",
    ":",
    "=",
    "==",
    "!=",
    "<>",
    "<",
    "<=",
    ">",
    ">=",
    "+",
    "-",
    "*",
    "/",
    "%",
    "?",
    "\"",
    "'",
    "\n",
    " ",
    "//",
    "10s",
    "0ms",
    "1.5s",
    "4x",
    "1e999",
    "99999999999999999999",
    "-9223372036854775808",
    "1_000",
    "0.908",
    "\"x\"",
    "''",
    "'c'",
    "\"\\u{zz}\"",
    "\"\\q\"",
    "\"(&|^)\"",
    "\"[\"",
    "\"yyyy-MM-dd\"",
    "\"QQ\"",
    "é",
    "\u{FEFF}",
    "\t",
    "\r\n",
    "\\",
    "日本",
    "((((",
    "))))",
    "case when true then",
];

fn mutate(rng: &mut Rng, text: &str, seeds: &[String]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let len = chars.len();
        let at = if len == 0 { 0 } else { rng.below(len + 1) };
        match rng.below(8) {
            // Delete a few characters.
            0 if len > 0 => {
                let end = (at + 1 + rng.below(8)).min(len);
                chars.drain(at.min(len)..end);
            }
            // Insert a token, with or without spaces around it.
            1 | 2 => {
                let token = rng.pick(TOKENS);
                let spaced = if rng.below(2) == 0 {
                    format!(" {token} ")
                } else {
                    token.to_string()
                };
                chars.splice(at..at, spaced.chars());
            }
            // Duplicate a range.
            3 if len > 0 => {
                let start = at.min(len - 1);
                let end = (start + 1 + rng.below(40)).min(len);
                let copy: Vec<char> = chars[start..end].to_vec();
                let to = rng.below(len + 1);
                chars.splice(to..to, copy);
            }
            // Swap two lines.
            4 => {
                let text: String = chars.iter().collect();
                let mut lines: Vec<&str> = text.split('\n').collect();
                if lines.len() > 1 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                }
                chars = lines.join("\n").chars().collect();
            }
            // Replace a word with a token.
            5 if len > 0 => {
                let start = at.min(len - 1);
                let end = chars[start..]
                    .iter()
                    .position(|c| !c.is_alphanumeric() && *c != '_')
                    .map_or(len, |p| start + p)
                    .max(start + 1);
                let token = rng.pick(TOKENS);
                chars.splice(start..end, token.chars());
            }
            // Truncate.
            6 => chars.truncate(at),
            // Splice in a piece of another seed.
            _ => {
                let other: Vec<char> = rng.pick(seeds).chars().collect();
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(80)).min(other.len());
                    chars.splice(at..at, other[start..end].iter().copied());
                }
            }
        }
    }
    chars.into_iter().collect()
}

/// Compiles, renders and locates everything. Fails when the compiler panics, reports a span
/// outside the text, reports one error twice, or fails without an error.
fn survives(text: &str) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sources = SourceMap::new();
        let file = sources.add("fuzz.weir", text);
        let (failed, diagnostics) = match compile(&sources, file, &Options::default()) {
            Ok(compiled) => (false, compiled.warnings),
            Err(diagnostics) => (true, diagnostics),
        };
        let _ = render(&sources, &diagnostics, false);
        let _ = render_short(&sources, &diagnostics);
        for d in &diagnostics {
            let _ = sources.line_col(d.primary.span.file, d.primary.span.end);
            let _ = sources.snippet(d.primary.span);
        }
        (failed, diagnostics)
    }));
    let Ok((failed, diagnostics)) = outcome else {
        return Err("the compiler panicked".into());
    };
    if failed && !diagnostics.iter().any(Diagnostic::is_error) {
        return Err("compilation failed without an error".into());
    }
    for (i, d) in diagnostics.iter().enumerate() {
        let span = d.primary.span;
        if span.start > span.end || span.end as usize > text.len() {
            return Err(format!("{} has span {span:?} outside the text", d.code));
        }
        let twin = diagnostics[i + 1..]
            .iter()
            .any(|e| e.code == d.code && e.primary.span == span && e.message == d.message);
        if twin {
            return Err(format!("{} `{}` is reported twice", d.code, d.message));
        }
    }
    Ok(())
}

#[test]
fn mutated_pipelines_never_panic_nor_misreport() {
    let examples = crate_dir().join("../examples");
    let mut seeds: Vec<String> = Vec::new();
    for dir in ["nexmark", "clicks"] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(examples.join(dir))
            .map(|entries| {
                entries
                    .map(|e| e.expect("directory entry").path())
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "weir") {
                seeds.push(std::fs::read_to_string(&path).expect("example"));
            }
        }
    }
    assert!(seeds.len() >= 5, "expected the example pipelines as seeds");
    seeds.extend(cases().into_iter().map(|c| c.text));
    // Pathological inputs, each once.
    let long_chain = format!(
        "source b = nexmark(stream: \"bid\")\nlet q = b |> filter {} > 0\nsink q -> stdout()\n",
        vec!["price"; 2000].join(" + ")
    );
    let deep_case = format!(
        "source b = nexmark(stream: \"bid\")\nlet q = b |> select {{ x: {}1{} }}\nsink q -> stdout()\n",
        "case when true then ".repeat(200),
        " end".repeat(200)
    );
    let fixed = [
        String::new(),
        "\n".repeat(3),
        "sink".into(),
        "let".into(),
        "source b = nexmark(".into(),
        "\"".into(),
        "é\u{FEFF}日本".into(),
        "source b = nexmark(stream: \"bid\")\r\nsink b -> stdout()\r\n".into(),
        long_chain,
        deep_case,
        "(".repeat(10_000),
        "{".repeat(10_000),
    ];
    let mut failures: Vec<(String, String)> = Vec::new();
    for text in &fixed {
        if let Err(problem) = survives(text) {
            failures.push((problem, text.clone()));
        }
    }
    // `WEIR_FUZZ_ITERATIONS` and `WEIR_FUZZ_SEED` run a longer or different search.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let iterations = env("WEIR_FUZZ_ITERATIONS", 3000);
    let mut rng = Rng(env("WEIR_FUZZ_SEED", 0x5eed_1234_abcd_0001) | 1);
    for _ in 0..iterations {
        let seed = rng.pick(&seeds).clone();
        let text = mutate(&mut rng, &seed, &seeds);
        if let Err(problem) = survives(&text) {
            failures.push((problem, text));
        }
    }
    if let Some((problem, text)) = failures.first() {
        panic!(
            "{} input(s) failed; the first one: {problem}, on\n{text}",
            failures.len()
        );
    }
}
