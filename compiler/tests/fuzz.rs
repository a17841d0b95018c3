//! The checker under hostile input: no input makes it panic or misreport, and every input is
//! checked in time linear in its size.
//!
//! [`mutated_pipelines_are_checked_in_bounded_time`] is a deterministic mutation fuzzer: it takes
//! every pipeline of the repository (examples and test cases), mutates its bytes (deletions,
//! insertions of tokens, duplicated ranges, invalid UTF-8, unclosed brackets, a prefix such as
//! `distinct(` repeated many times, long blank runs, deep nesting) and runs each result through
//! what `weir check` runs: decoding, parsing and checking, then rendering the diagnostics; one
//! case in four goes through all of `weir build` instead (lowering, passes, code generation).
//! Each input must finish within [`time_bound`] of its size; the slowest one is named in the
//! report. 10,000 cases run by default; the long mode runs more:
//!
//! ```text
//! WEIR_FUZZ_CASES=1000000 cargo test --release -p weir-compiler --test fuzz
//! ```
//!
//! `WEIR_FUZZ_SEED` picks other inputs; a failure prints the seed and the case number that
//! reproduce it, and writes the input to `fuzz-failure.weir` in the test's temporary folder.
//!
//! [`checking_time_grows_linearly`] measures hostile patterns at two sizes (among them the two
//! that once took exponential and quadratic time: unclosed `distinct(`, blank lines before a
//! syntax error) and fails when the time grows faster than the size.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use weir_compiler::diagnostics::{render, render_short};
use weir_compiler::{check, compile, Diagnostic, Options, SourceMap};

// ---------------------------------------------------------------------------------------------
// Running the checker with a time limit

/// The time any input may take: a fixed budget (a build without optimizations, on a busy
/// machine) plus a budget per KiB. An input of a few KiB takes a few milliseconds; time
/// exponential in the nesting depth or quadratic in the size goes far past the bound.
fn time_bound(len: usize) -> Duration {
    Duration::from_millis(1_500) + Duration::from_millis(25) * (len / 1024) as u32
}

/// What one input did.
struct Outcome {
    /// Time spent in the compiler and the renderer.
    elapsed: Duration,
    /// `Err` when the compiler panicked or misreported.
    verdict: Result<(), String>,
}

/// How far an input goes.
#[derive(Clone, Copy, Debug)]
enum Stage {
    /// What `weir check` runs: parsing and checking.
    Check,
    /// What `weir build` runs before cargo: also lowering, passes and code generation.
    Compile,
}

/// Runs the compiler in a worker thread, so that an input that never finishes fails the test
/// (after a wait longer than its bound) instead of hanging it. The worker of a timed-out input is left
/// running; the test fails and the process exits.
struct Checker {
    inputs: Sender<(Vec<u8>, Stage)>,
    outcomes: Receiver<Outcome>,
}

#[derive(Debug)]
struct Hung;

/// The CPU time this thread has used: what checking costs, whatever else the machine runs
/// (wall time on a loaded CI machine varies by more than the growth the tests look for).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant Linux defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Checker {
    fn new() -> Self {
        let (inputs, worker_inputs) = mpsc::channel::<(Vec<u8>, Stage)>();
        let (worker_outcomes, outcomes) = mpsc::channel();
        std::thread::Builder::new()
            .name("checker".into())
            // The stack `weir check` has (a main thread's); the default of a spawned thread, 2
            // MiB, is too little for the checker on expressions near the depth limit in a build
            // without optimizations.
            .stack_size(8 << 20)
            .spawn(move || {
                for (input, stage) in worker_inputs {
                    let start = thread_cpu_time();
                    let verdict = survives(&input, stage);
                    let outcome = Outcome {
                        elapsed: thread_cpu_time().saturating_sub(start),
                        verdict,
                    };
                    if worker_outcomes.send(outcome).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the checker thread");
        Checker { inputs, outcomes }
    }

    /// Runs `input` through `stage`; `Err(Hung)` when it takes more than `wait`.
    fn run(&self, input: &[u8], stage: Stage, wait: Duration) -> Result<Outcome, Hung> {
        self.inputs
            .send((input.to_vec(), stage))
            .map_err(|_| Hung)?;
        match self.outcomes.recv_timeout(wait) {
            Ok(outcome) => Ok(outcome),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => Err(Hung),
        }
    }
}

/// Checks or compiles `input` and renders the diagnostics, as the CLI does. Fails when the
/// compiler panics, reports a span outside the text, reports one error twice, or fails without
/// an error.
fn survives(input: &[u8], stage: Stage) -> Result<(), String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sources = SourceMap::new();
        let file = sources.add_bytes("fuzz.weir", input);
        let (failed, diagnostics) = match stage {
            Stage::Check => {
                let (program, diagnostics) = check(&sources, file);
                (program.is_none(), diagnostics)
            }
            Stage::Compile => match compile(&sources, file, &Options::default()) {
                Ok(compiled) => (false, compiled.warnings),
                Err(diagnostics) => (true, diagnostics),
            },
        };
        let _ = render(&sources, &diagnostics, false);
        let _ = render_short(&sources, &diagnostics);
        for d in &diagnostics {
            let _ = sources.line_col(d.primary.span.file, d.primary.span.end);
            let _ = sources.snippet(d.primary.span);
        }
        (failed, diagnostics, sources.get(file).text.len())
    }));
    let Ok((failed, diagnostics, len)) = outcome else {
        return Err("the compiler panicked".into());
    };
    if failed && !diagnostics.iter().any(Diagnostic::is_error) {
        return Err("compilation failed without an error".into());
    }
    for (i, d) in diagnostics.iter().enumerate() {
        let spans = std::iter::once(d.primary.span).chain(d.secondary.iter().map(|l| l.span));
        for span in spans {
            if span.start > span.end || span.end as usize > len {
                return Err(format!("{} has span {span:?} outside the text", d.code));
            }
        }
        let twin = diagnostics[i + 1..].iter().any(|e| {
            e.code == d.code && e.primary.span == d.primary.span && e.message == d.message
        });
        if twin {
            return Err(format!("{} `{}` is reported twice", d.code, d.message));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// A tiny deterministic PRNG (xorshift64*), so the fuzzer needs no dependency and a seed gives
/// the same inputs on every machine.
struct Rng(u64);

impl Rng {
    /// The generator of case `index` under `seed`: each case can be replayed on its own.
    fn for_case(seed: u64, index: u64) -> Self {
        // splitmix64 of the pair, so that neighbouring cases start far apart.
        let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number in `1..=max`, small ones much likelier than large ones.
    fn count(&mut self, max: usize) -> usize {
        let scale = 1 + self.below(max.max(1));
        1 + self.below(scale)
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
    "join",
    "interval_join",
    "window_join",
    "lookup_join",
    "left",
    "dedup",
    "keep",
    "first",
    "last",
    "top",
    "order",
    "asc",
    "desc",
    "on",
    "within",
    "ttl",
    "where",
    "distinct",
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
    "bidder",
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
    "session",
    "nexmark",
    "file",
    "stdin",
    "stdout",
    "checksum",
    "kafka",
    "csv",
    "json",
    "path",
    "header",
    "delimiter",
    "stream",
    "events",
    "topic",
    "i64",
    "f64",
    "string",
    "bool",
    "timestamp",
    "duration",
    "|>",
    "->",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    ".",
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
    "\u{FFFD}",
    "\t",
    "\r\n",
    "\\",
    "日本",
    "((((",
    "))))",
    "case when true then",
];

/// Prefixes that open something: repeated, they nest (`distinct(distinct(...`).
const OPENERS: &[&str] = &[
    "distinct(",
    "distinct (",
    "count(distinct ",
    "count(distinct(",
    "f(",
    "(",
    "-(",
    "not ",
    "if(",
    "if(x, ",
    "cast(",
    "case when ",
    "case when x then ",
    "f(a, ",
    "f(a: ",
    "a.b(",
    "count(x) filter (where ",
    "{",
    "[",
    "select { a: ",
    "x + ",
    "- ",
];

/// Byte sequences that are not UTF-8: a lone continuation byte, a truncated sequence, an
/// overlong encoding, a surrogate, bytes never used.
const NOT_UTF8: &[&[u8]] = &[
    b"\x80",
    b"\xC3",
    b"\xE2\x82",
    b"\xF0\x9F\x98",
    b"\xC0\xAF",
    b"\xED\xA0\x80",
    b"\xFF",
    b"\xFE\xFF",
    b"\xF8\x88\x80\x80\x80",
];

/// One random change to `text`.
fn mutate_once(rng: &mut Rng, text: &mut Vec<u8>, seeds: &[Vec<u8>]) {
    let len = text.len();
    let at = rng.below(len + 1);
    let insert = |text: &mut Vec<u8>, at: usize, piece: &[u8]| {
        text.splice(at..at, piece.iter().copied());
    };
    match rng.below(16) {
        // Delete a few bytes (possibly half of a multi-byte character).
        0 | 1 if len > 0 => {
            let end = (at + rng.count(16)).min(len);
            text.drain(at.min(len)..end);
        }
        // Insert a token, with or without spaces around it.
        2 | 3 => {
            let token = rng.pick(TOKENS);
            let piece = match rng.below(2) {
                0 => format!(" {token} "),
                _ => token.to_string(),
            };
            insert(text, at, piece.as_bytes());
        }
        // Duplicate a range elsewhere.
        4 if len > 0 => {
            let start = at.min(len - 1);
            let end = (start + rng.count(64)).min(len);
            let copy = text[start..end].to_vec();
            insert(text, rng.below(len + 1), &copy);
        }
        // Swap two lines.
        5 => {
            let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            if lines.len() > 1 {
                let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                lines.swap(a, b);
            }
            *text = lines.join(&b'\n');
        }
        // Replace a word with a token.
        6 if len > 0 => {
            let start = at.min(len - 1);
            let end = text[start..]
                .iter()
                .position(|b| !b.is_ascii_alphanumeric() && *b != b'_')
                .map_or(len, |p| start + p)
                .max(start + 1);
            text.splice(start..end, rng.pick(TOKENS).bytes());
        }
        // Truncate.
        7 => text.truncate(at),
        // Splice in a piece of another pipeline.
        8 => {
            let other = rng.pick(seeds);
            if !other.is_empty() {
                let start = rng.below(other.len());
                let end = (start + rng.count(120)).min(other.len());
                insert(text, at, &other[start..end]);
            }
        }
        // Bytes that are not UTF-8, or a flipped high bit.
        9 => match rng.below(3) {
            0 if len > 0 => text[at.min(len - 1)] ^= 0x80,
            _ => {
                let bad = *rng.pick::<&[u8]>(NOT_UTF8);
                insert(text, at, bad);
            }
        },
        // Unclosed brackets.
        10 => {
            let bracket = *rng.pick(&["(", "{", "[", "case ", "\"", "'"]);
            insert(text, at, bracket.repeat(rng.count(200)).as_bytes());
        }
        // A prefix repeated: `distinct(distinct(distinct(...`, closed or not.
        11 => {
            let opener = rng.pick(OPENERS);
            let n = rng.count(150);
            let mut piece = opener.repeat(n);
            if rng.below(3) == 0 {
                piece.push('x');
                piece.push_str(&")".repeat(n));
            }
            insert(text, at, piece.as_bytes());
        }
        // A long run of blank lines, spaces, carriage returns or comments.
        12 => {
            let blank = *rng.pick(&["\n", " ", "\r\n", "\t", "// c\n", "\n\n  \n"]);
            insert(text, at, blank.repeat(rng.count(1_000)).as_bytes());
        }
        // Deep but balanced nesting around a word.
        13 => {
            let n = rng.count(140);
            let piece = format!("{}price{}", "(".repeat(n), ")".repeat(n));
            insert(text, at, piece.as_bytes());
        }
        // A line repeated many times: many items, many errors.
        14 if len > 0 => {
            let start = text[..at.min(len)]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let end = text[start..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(len, |p| start + p + 1);
            let line = text[start..end].to_vec();
            for _ in 0..rng.count(50) {
                insert(text, end, &line);
            }
        }
        // A short range repeated many times in place.
        _ if len > 0 => {
            let start = at.min(len - 1);
            let end = (start + rng.count(12)).min(len);
            let piece = text[start..end].repeat(rng.count(100));
            insert(text, end, &piece);
        }
        _ => insert(text, at, rng.pick(TOKENS).as_bytes()),
    }
}

/// Case `index` of `seed`: a pipeline of the repository with one to six mutations. One case in
/// a thousand also gets a run of 50,000 to 100,000 blank lines: what is quadratic in the size
/// shows only on large inputs, which would make every case slow.
fn case(seed: u64, index: u64, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut rng = Rng::for_case(seed, index);
    let mut text = rng.pick(seeds).clone();
    for _ in 0..rng.count(6) {
        mutate_once(&mut rng, &mut text, seeds);
    }
    if rng.below(1000) == 0 {
        let blank = *rng.pick(&["\n", "  \n", "\r\n", "// c\n"]);
        let at = rng.below(text.len() + 1);
        let run = blank.repeat(50_000 + rng.below(50_001));
        text.splice(at..at, run.bytes());
    }
    text
}

/// Every `.weir` file under the examples, the test cases and the facade's test pipelines.
fn seeds() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = Vec::new();
    let mut dirs: Vec<PathBuf> = ["examples", "compiler/tests/cases", "weir/tests/pipelines"]
        .iter()
        .map(|d| root.join(d))
        .collect();
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "weir") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(
        files.len() >= 50,
        "expected the repository's pipelines, found {files:?}"
    );
    files
        .iter()
        .map(|p| std::fs::read(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display())))
        .collect()
}

/// Pathological inputs checked once each, before the random ones.
fn fixed_inputs() -> Vec<Vec<u8>> {
    const HEAD: &str = "source b = nexmark(stream: \"bid\")\n";
    let texts = [
        String::new(),
        "\n".repeat(3),
        "sink".into(),
        "let".into(),
        "source b = nexmark(".into(),
        "\"".into(),
        "é\u{FEFF}日本".into(),
        "source b = nexmark(stream: \"bid\")\r\nsink b -> stdout()\r\n".into(),
        format!(
            "{HEAD}let q = b |> filter {} > 0\nsink q -> stdout()\n",
            vec!["price"; 2000].join(" + ")
        ),
        format!(
            "{HEAD}let q = b |> select {{ x: {}1{} }}\nsink q -> stdout()\n",
            "case when true then ".repeat(200),
            " end".repeat(200)
        ),
        "(".repeat(10_000),
        "{".repeat(10_000),
        format!(
            "{HEAD}let q = b |> aggregate {{ x: count({}",
            "distinct(".repeat(120)
        ),
        format!("{HEAD}{}let q = b |> filter )\n", "\n".repeat(200_000)),
    ];
    let mut inputs: Vec<Vec<u8>> = texts.into_iter().map(String::into_bytes).collect();
    inputs.push(b"\xFF\xFE\x00s\x00o\x00u\x00r\x00c\x00e".to_vec());
    inputs.push([HEAD.as_bytes(), &[0xC3; 50_000]].concat());
    inputs
}

// ---------------------------------------------------------------------------------------------
// The tests

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

/// The slowest input so far, relative to its bound.
struct Slowest {
    label: String,
    len: usize,
    elapsed: Duration,
}

#[test]
fn mutated_pipelines_are_checked_in_bounded_time() {
    let seed = env_u64("WEIR_FUZZ_SEED", 0x5EED_1234_ABCD_0001);
    let first = env_u64("WEIR_FUZZ_FIRST", 0);
    let cases = env_u64("WEIR_FUZZ_CASES", 10_000);
    let replay = format!("WEIR_FUZZ_SEED={seed:#x}");
    let seeds = seeds();
    let checker = Checker::new();
    let started = Instant::now();
    let mut slowest: Option<Slowest> = None;
    let mut failures: Vec<(String, Vec<u8>, String)> = Vec::new();
    let mut total_bytes = 0usize;
    let mut n_run = 0usize;

    let fixed = fixed_inputs();
    let inputs = fixed
        .iter()
        .enumerate()
        .map(|(i, input)| (format!("fixed input {i}"), Stage::Compile, input.clone()))
        .chain((first..first + cases).map(|index| {
            let label =
                format!("case {index} ({replay} WEIR_FUZZ_FIRST={index} WEIR_FUZZ_CASES=1)");
            let stage = match index % 4 {
                0 => Stage::Compile,
                _ => Stage::Check,
            };
            (label, stage, case(seed, index, &seeds))
        }));
    for (label, stage, input) in inputs {
        let bound = time_bound(input.len());
        total_bytes += input.len();
        n_run += 1;
        // Past the bound the input fails anyway; wait a little longer to measure how long it
        // takes, then call it hung.
        let outcome = match checker.run(&input, stage, bound * 2 + Duration::from_secs(5)) {
            Ok(outcome) => outcome,
            Err(Hung) => {
                failures.push((label, input, "did not finish".into()));
                break;
            }
        };
        let ratio = |s: &Slowest| s.elapsed.as_secs_f64() / time_bound(s.len).as_secs_f64();
        let this = Slowest {
            label: label.clone(),
            len: input.len(),
            elapsed: outcome.elapsed,
        };
        if slowest.as_ref().is_none_or(|s| ratio(&this) > ratio(s)) {
            slowest = Some(this);
        }
        if let Err(problem) = outcome.verdict {
            failures.push((label, input, problem));
        } else if outcome.elapsed > bound {
            let problem = format!(
                "took {:.2?} for {} bytes, more than the bound of {bound:.2?}",
                outcome.elapsed,
                input.len()
            );
            failures.push((label, input, problem));
        }
    }
    let slowest = slowest.map_or(String::new(), |s| {
        format!("{} ({} bytes) in {:.2?}", s.label, s.len, s.elapsed)
    });
    let summary = format!(
        "{n_run} inputs ({} fixed, {} KiB in all) in {:.2?}; the slowest that finished: {slowest}",
        fixed.len(),
        total_bytes / 1024,
        started.elapsed(),
    );
    eprintln!("{summary}");
    if let Some((label, input, problem)) = failures.first() {
        let saved = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failure.weir");
        let saved = match std::fs::write(&saved, input) {
            Ok(()) => format!("saved in {}", saved.display()),
            Err(e) => format!("not saved: {e}"),
        };
        let shown = String::from_utf8_lossy(&input[..input.len().min(2000)]).into_owned();
        let others: String = failures[1..]
            .iter()
            .take(10)
            .map(|(label, _, problem)| format!("\n  {label}: {problem}"))
            .collect();
        panic!(
            "{} input(s) failed; the first: {label}: {problem}\n{summary}\nthe input ({} bytes, {saved}), its first 2000 bytes:\n{shown}\nthe next failures:{others}",
            failures.len(),
            input.len(),
        );
    }
}

/// The time `make(n)` takes to check, the least of three runs (one run can be slowed down by
/// the machine, none can be sped up).
fn time_of(checker: &Checker, what: &str, input: &[u8]) -> Duration {
    (0..3)
        .map(
            |_| match checker.run(input, Stage::Check, Duration::from_secs(120)) {
                Ok(Outcome {
                    elapsed,
                    verdict: Ok(()),
                }) => elapsed,
                Ok(Outcome {
                    verdict: Err(problem),
                    ..
                }) => panic!("{what}: {problem}"),
                Err(Hung) => panic!("{what} ({} bytes) did not finish in 2 minutes", input.len()),
            },
        )
        .min()
        .unwrap_or_default()
}

/// Hostile patterns at two sizes, eight times apart: the time may grow eightfold, and a little
/// more for noise, but not the 64 times of a quadratic algorithm (nor the exponential growth of
/// backtracking, which does not finish at all).
#[test]
fn checking_time_grows_linearly() {
    const HEAD: &str = "source b = nexmark(stream: \"bid\")\n";
    const SINK: &str = "\nsink q -> stdout()\n";
    type Make = fn(usize) -> Vec<u8>;
    let patterns: &[(&str, usize, Make)] = &[
        // Issue 10: unclosed `distinct(`, as deep as the nesting limit allows, in many items.
        ("unclosed `distinct(` in items", 5, |n| {
            let item = format!(
                "let q = b |> aggregate {{ x: count({}\n",
                "distinct(".repeat(100)
            );
            format!("{HEAD}{}", item.repeat(n)).into_bytes()
        }),
        ("nested `distinct(` at depth n", 12, |n| {
            format!("{HEAD}let q = b |> filter {}{SINK}", "distinct(".repeat(n)).into_bytes()
        }),
        // Issue 10: blank lines before a syntax error.
        ("blank lines before an error", 6_000, |n| {
            format!("{HEAD}{}let q = b |> filter ){SINK}", "\n".repeat(n)).into_bytes()
        }),
        ("blank lines inside an expression", 6_000, |n| {
            format!("{HEAD}let q = b |> filter {}){SINK}", "\n".repeat(n)).into_bytes()
        }),
        ("indented blank lines", 2_000, |n| {
            format!("{HEAD}{}let q = b |> filter ){SINK}", "   \n".repeat(n)).into_bytes()
        }),
        ("comment lines", 1_000, |n| {
            format!(
                "{HEAD}{}let q = b |> filter ){SINK}",
                "// a comment\n".repeat(n)
            )
            .into_bytes()
        }),
        ("an error in every item", 50, |n| {
            format!("{HEAD}{}", "let q = b |> filter )\n".repeat(n)).into_bytes()
        }),
        ("unclosed calls in every item", 25, |n| {
            format!(
                "{HEAD}{}",
                "let q = b |> select { x: count(distinct(f(\n".repeat(n)
            )
            .into_bytes()
        }),
        ("many items", 25, |n| {
            let items: String = (0..n)
                .map(|i| format!("let q{i} = b |> filter price > {i}\n"))
                .collect();
            format!("{HEAD}{items}sink q0 -> stdout()\n").into_bytes()
        }),
        ("long operator chain", 30, |n| {
            format!(
                "{HEAD}let q = b |> filter {} > 0{SINK}",
                vec!["price"; n].join(" + ")
            )
            .into_bytes()
        }),
        ("errors on one line", 250, |n| {
            format!(
                "{HEAD}let q = b |> filter {} > 0{SINK}",
                vec!["1x"; n].join(" + ")
            )
            .into_bytes()
        }),
        ("a key listed many times", 250, |n| {
            format!(
                "{HEAD}let q = b |> key_by {}{SINK}",
                vec!["price"; n].join(", ")
            )
            .into_bytes()
        }),
        ("bytes that are not UTF-8", 5_000, |n| {
            let mut text = format!("{HEAD}let q = b |> filter url = \"").into_bytes();
            text.extend(b"x\xFF".repeat(n));
            text.extend(format!("\"{SINK}").bytes());
            text
        }),
    ];
    let checker = Checker::new();
    let mut problems = Vec::new();
    let mut report = Vec::new();
    for &(what, n, make) in patterns {
        let small = make(n);
        let large = make(8 * n);
        // Warm up (allocator, lazily built tables), then measure.
        let _ = time_of(&checker, what, &small);
        let t_small = time_of(&checker, what, &small);
        let t_large = time_of(&checker, what, &large);
        let growth = t_large.as_secs_f64() / t_small.as_secs_f64().max(1e-4);
        let line = format!(
            "{what}: {} bytes in {t_small:.2?}, {} bytes in {t_large:.2?} ({growth:.1}x)",
            small.len(),
            large.len()
        );
        if growth > 24.0 && t_large > Duration::from_millis(50) {
            problems.push(line.clone());
        }
        report.push(line);
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        problems.is_empty(),
        "checking time grows faster than the input:\n{}",
        problems.join("\n")
    );
}
