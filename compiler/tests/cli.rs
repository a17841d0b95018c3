//! The `weir` command line, run as a user runs it: `--message-format json` (one JSON object
//! per diagnostic and line on stderr, for editors), what `weir explain` says about time and
//! updates, and the preview mode of `weir run --limit`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn weir(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the weir binary runs")
}

/// Every line of stderr, each parsed as a JSON object.
fn json_lines(out: &Output) -> Vec<Value> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\nstderr:\n{stderr}"))
        })
        .collect()
}

const BROKEN: &str = "source bids = nexmark(stream: \"bid\", events: 1000)
let q = bids |> select { c: lowr(channel) }
let j = bids |> join bids as b
sink q -> stdout()
sink j -> stdout()
";

#[test]
fn json_diagnostics_carry_code_message_hints_and_spans() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("p.weir"), BROKEN).expect("write");
    for command in ["check", "explain", "emit", "build", "run"] {
        let mut args = vec![command, "p.weir", "--message-format", "json"];
        if command == "build" {
            args.extend(["-o", "p.bin"]);
        }
        let out = weir(dir.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(out.stdout.is_empty(), "{command}: nothing on stdout");
        let objects = json_lines(&out);
        let codes: Vec<&str> = objects.iter().filter_map(|o| o["code"].as_str()).collect();
        assert_eq!(codes, ["E0210", "E0019"], "{command}: {objects:#?}");

        let unknown = &objects[0];
        assert_eq!(unknown["type"], "diagnostic");
        assert_eq!(unknown["severity"], "error");
        assert_eq!(unknown["message"], "unknown function `lowr`");
        assert_eq!(unknown["file"], "p.weir");
        let hints: Vec<&str> = unknown["hints"]
            .as_array()
            .expect("hints")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(hints[0], "did you mean `lower`?");
        assert!(hints[1].contains("--rust FILE.rs"), "{hints:?}");
        let spans = unknown["spans"].as_array().expect("spans");
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        // `lowr` on line 2: byte offsets into the file, 1-based columns, the end exclusive.
        let start = BROKEN.find("lowr").expect("lowr");
        assert_eq!(span["byte_start"], start);
        assert_eq!(span["byte_end"], start + 4);
        assert_eq!(span["line_start"], 2);
        assert_eq!(span["line_end"], 2);
        let column = BROKEN
            .lines()
            .nth(1)
            .expect("line 2")
            .find("lowr")
            .expect("lowr")
            + 1;
        assert_eq!(span["column_start"], column);
        assert_eq!(span["column_end"], column + 4);
        assert_eq!(span["is_primary"], true);
        assert_eq!(span["label"], "not a built-in or declared function");
        let rendered = unknown["rendered"].as_str().expect("rendered");
        assert!(rendered.contains("p.weir:2:"), "{rendered}");

        let join = &objects[1];
        assert_eq!(join["message"], "missing `on` in a join");
        assert_eq!(join["spans"][0]["line_start"], 3);
    }
}

#[test]
fn json_errors_without_a_place_are_objects_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = weir(
        dir.path(),
        &["check", "missing.weir", "--message-format", "json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let objects = json_lines(&out);
    assert_eq!(objects.len(), 1, "{objects:#?}");
    assert_eq!(objects[0]["severity"], "error");
    assert_eq!(objects[0]["code"], Value::Null);
    assert_eq!(objects[0]["spans"], serde_json::json!([]));
    assert!(objects[0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("cannot read missing.weir")));

    // A file without errors: nothing at all on stderr (no human "ok" line among the JSON).
    std::fs::write(
        dir.path().join("ok.weir"),
        "source bids = nexmark(stream: \"bid\", events: 10)\nsink bids -> stdout()\n",
    )
    .expect("write");
    let out = weir(
        dir.path(),
        &["check", "ok.weir", "--message-format", "json"],
    );
    assert!(out.status.success());
    assert!(json_lines(&out).is_empty());
}

const WINDOWS: &str = "source bids = nexmark(stream: \"bid\", events: 1000)
    event_time date_time watermark 4s
schema Click { user: string, n: i64 }
source clicks: Click = file(path: \"clicks.jsonl\") format json
let per = bids
    |> key_by auction
    |> window hop(size: 10s, slide: 2s, lateness: 1m, late: late_bids)
    |> aggregate { n: count() }
let sessions = bids
    |> key_by bidder
    |> window session(gap: 30m)
    |> aggregate { n: count() }
let totals = bids |> aggregate by bidder { n: count() }
let longest = sessions |> aggregate by window_end { most: max(n) }
let busiest = sessions |> top 1 by window_end order by n desc
sink per -> stdout()
sink sessions -> stdout()
sink longest -> stdout()
sink busiest -> stdout()
sink late_bids -> stdout()
sink totals -> stdout()
sink clicks -> stdout()
";

#[test]
fn explain_shows_windows_watermarks_late_outputs_and_stream_kinds() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("w.weir"), WINDOWS).expect("write");
    let out = weir(dir.path(), &["explain", "w.weir"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, physical) = text.split_once("== physical plan").expect("two plans");
    for line in [
        "event time: `date_time`, watermark 4s behind the newest event time",
        "event time: none",
        "window: hop(size 10s, slide 2s) on event time `date_time`, lateness 1m (a late record \
         revises its window's row), late records -> `late_bids` (op",
        "window: session(gap 30m) on event time `date_time`, late records dropped (counted)",
        "group_aggregate: aggregate by bidder { n: count() }",
        "aggregate: no window; one row per key, revised by every record",
        "final_aggregate: aggregate by window_end { most: max(n) }",
        "final: the key names a window; one row per key when the watermark passes `window_end`",
        "final_top_n: top 1 by window_end order by n desc",
        "final: the key names a window; its rows go out once, when the watermark passes \
         `window_end`",
        "stream: updating, upsert key (auction, window_start, window_end), made so by `window \
         with allowed lateness`",
        "stream: updating, upsert key (bidder), made so by `aggregate`",
        "input: updating, upsert key (bidder), made so by `aggregate`",
        "(gather, late records)",
    ] {
        assert!(physical.contains(line), "no `{line}` in\n{physical}");
    }
    // An aggregate without a window is not a window.
    assert!(!physical.contains("window: none"), "{physical}");
    // The session window's stream is append-only, and so is its sink's input.
    let session = physical
        .split("\nop")
        .find(|op| op.contains("session(gap 30m)"))
        .expect("the session window");
    assert!(session.contains("stream: append"), "{session}");
    // DOT and Mermaid carry the same lines.
    for format in ["dot", "mermaid"] {
        let out = weir(dir.path(), &["explain", "w.weir", "--format", format]);
        let graph = String::from_utf8_lossy(&out.stdout);
        assert!(graph.contains("window: session(gap 30m)"), "{graph}");
        assert!(graph.contains("made so by `aggregate`"), "{graph}");
    }
}

/// `weir explain w.weir | head -1`: a reader that closes the pipe ends the command as it ends
/// other tools, by the broken pipe (SIGPIPE), and not with a panic.
#[cfg(unix)]
#[test]
fn explain_into_a_closed_pipe_ends_without_a_panic() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("w.weir"), WINDOWS).expect("write");
    // The read end is closed before weir starts, so its first write finds the pipe broken.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(dir.path())
        .args(["explain", "w.weir"])
        .stdout(writer)
        .output()
        .expect("the weir binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
}

/// Runs `weir run --dev ARGS` in `dir` with `stdin` piped from `input`, if any.
fn weir_run(dir: &Path, args: &[&str]) -> (Output, std::time::Duration) {
    let started = std::time::Instant::now();
    let mut all = vec!["run", "--dev"];
    all.extend(args);
    let out = weir(dir, &all);
    (out, started.elapsed())
}

/// The lines a preview printed for the sink named `name` (`[name] ` prefix removed).
fn rows_of<'a>(stdout: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("[{name}] ");
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect()
}

/// `weir run --limit N` on an unbounded-looking generator (100 million events) with a file
/// sink and a checksum sink: each sink prints exactly N rows to stdout, the file is never
/// written, the run ends at once with exit code 0 and says the limit was reached.
#[test]
fn preview_prints_the_first_rows_of_every_sink_and_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("p.weir"),
        "source bids = nexmark(stream: \"bid\", events: 100_000_000)
    event_time date_time watermark 4s
let cheap = bids |> filter price < 1000 |> select { auction, price }
let per = bids |> key_by auction |> window tumble(10s) |> aggregate { n: count() }
sink cheap -> file(path: \"out/cheap.jsonl\") format json
sink per -> checksum()
",
    )
    .expect("write");
    // The first run builds the binary; the second one is timed.
    for attempt in 0..2 {
        let (out, elapsed) = weir_run(dir.path(), &["p.weir", "--limit", "7"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let cheap = rows_of(&stdout, "cheap");
        let per = rows_of(&stdout, "per");
        assert_eq!(cheap.len(), 7, "{stdout}");
        assert_eq!(per.len(), 7, "{stdout}");
        assert_eq!(
            stdout.lines().count(),
            14,
            "nothing else on stdout:\n{stdout}"
        );
        for row in cheap {
            let v: Value = serde_json::from_str(row).expect("a JSON row");
            assert!(v["price"].as_i64().is_some_and(|p| p < 1000), "{row}");
        }
        for row in per {
            let v: Value = serde_json::from_str(row).expect("a JSON row");
            assert!(v["n"].as_i64().is_some_and(|n| n > 0), "{row}");
        }
        assert!(
            stderr.contains("weir: preview limit reached: 7 rows from each sink; stopped"),
            "{stderr}"
        );
        assert!(!dir.path().join("out").exists(), "a preview writes no file");
        // All 100 million events would take minutes.
        if attempt == 1 {
            assert!(elapsed.as_secs() < 20, "the preview took {elapsed:?}");
        }
    }
}

/// A preview of a file source: the rows are the pipeline's first rows (one reader keeps the
/// file's order, so the oracle is the file itself), unprefixed with a single sink; a limit
/// larger than the input prints everything and says the input ended first.
#[test]
fn preview_of_a_file_prints_its_first_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lines: Vec<String> = (0..50_000)
        .map(|i| format!("{{\"id\":{i},\"amount\":{}}}", (i * 7919) % 1000))
        .collect();
    std::fs::write(dir.path().join("orders.jsonl"), lines.join("\n") + "\n").expect("write");
    std::fs::write(
        dir.path().join("big.weir"),
        "schema Order { id: i64, amount: i64 }
source orders: Order = file(path: \"orders.jsonl\", parallelism: 1) format json
let big = orders |> filter amount >= 500
sink big -> file(path: \"big.jsonl\") format json
",
    )
    .expect("write");
    let expected: Vec<String> = (0..50_000)
        .filter(|i| (i * 7919) % 1000 >= 500)
        .map(|i| format!("{{\"id\":{i},\"amount\":{}}}", (i * 7919) % 1000))
        .collect();
    let (out, _) = weir_run(dir.path(), &["big.weir", "--limit", "25"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<&str> = stdout.lines().collect();
    assert_eq!(rows, expected[..25], "{stderr}");
    assert!(
        stderr.contains("preview limit reached: 25 rows from the sink"),
        "{stderr}"
    );
    assert!(!dir.path().join("big.jsonl").exists());

    let (out, _) = weir_run(dir.path(), &["big.weir", "--limit", "1000000"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), expected.len());
    assert!(
        stderr.contains("the input ended before every sink had 1000000 rows"),
        "{stderr}"
    );

    // `--limit` given to a binary that is not a preview build is refused before its file
    // sink opens (and empties) its output.
    let out = weir(dir.path(), &["build", "--dev", "big.weir", "-o", "big.bin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = dir.path().join("big.bin");
    let run_bin = |args: &[&str]| {
        std::process::Command::new(&bin)
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("the built pipeline runs")
    };
    assert!(run_bin(&["--quiet"]).status.success());
    let written = std::fs::read_to_string(dir.path().join("big.jsonl")).expect("output");
    assert_eq!(written.lines().count(), expected.len());
    let out = run_bin(&["--limit", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--limit needs a preview build"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("big.jsonl")).expect("output"),
        written
    );
}

/// stdin that never closes (`tail -f log | weir run p.weir --limit 3`): once the sink has its
/// rows the run ends, even though the source is still waiting for input.
#[test]
fn preview_of_stdin_that_stays_open_ends() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("s.weir"),
        "schema Line { n: i64 }
source lines: Line = stdin() format json
let odd = lines |> filter n % 2 = 1
sink odd -> stdout() format json
",
    )
    .expect("write");
    // Build first, so the timed run below is only the run.
    let (out, _) = weir_run(dir.path(), &["s.weir", "--limit", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(dir.path())
        .args(["run", "--dev", "s.weir", "--limit", "3"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let text: String = (0..20).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    stdin.write_all(text.as_bytes()).expect("write stdin");
    stdin.flush().expect("flush");
    let started = std::time::Instant::now();
    // stdin stays open (held here) while we wait for the process to end on its own.
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed().as_secs() > 30 {
            let _ = child.kill();
            panic!("the preview did not stop with stdin open");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    drop(stdin);
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, "{\"n\":1}\n{\"n\":3}\n{\"n\":5}\n", "{stderr}");
    assert!(stderr.contains("preview limit reached: 3 rows"), "{stderr}");
}

/// `weir schema infer` prints a schema a pipeline can read the file with: every line decodes
/// (no dead letters), optional fields where values were missing, nested objects and arrays
/// as nested types, and the members in the order the file writes them.
#[test]
fn an_inferred_schema_reads_its_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("events.jsonl"),
        "{\"id\":1,\"user\":\"ann\",\"price\":9,\"ts\":\"2023-11-14 22:13:20\",\"tags\":[\"a\"],\"geo\":{\"lat\":1.5}}\n\
         {\"id\":2,\"user\":null,\"price\":3.5,\"ts\":\"2023-11-14T22:13:21Z\",\"ok\":true}\n\
         {\"id\":3,\"price\":1,\"ts\":\"2023-11-14 22:13:22.5\",\"ok\":false}\n",
    )
    .expect("write");
    let out = weir(dir.path(), &["schema", "infer", "events.jsonl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let schema = String::from_utf8(out.stdout).expect("UTF-8");
    let fields: Vec<&str> = schema
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && l.ends_with(','))
        .collect();
    assert_eq!(
        fields,
        [
            "id: i64,",
            "user: string?,",
            "price: f64,",
            "ts: timestamp,",
            "tags: [string]?,",
            "geo: { lat: f64 }?,",
            "ok: bool?,"
        ],
        "{schema}"
    );
    let pipeline = format!(
        "{schema}\nsource events: Events = file(path: \"events.jsonl\") format json\n\
         sink events -> stdout() format json\n"
    );
    std::fs::write(dir.path().join("p.weir"), pipeline).expect("write");
    let (out, _) = weir_run(dir.path(), &["p.weir", "--", "--quiet"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(
        stdout.contains("\"ts\":\"2023-11-14 22:13:22.500\""),
        "{stdout}"
    );
    assert!(!dir.path().join("dead_letters.jsonl").exists());

    // CSV: the header names the fields; an empty cell makes one optional.
    std::fs::write(
        dir.path().join("orders.csv"),
        "id,name,amount\n1,ann,10\n2,,3.5\n",
    )
    .expect("write");
    let out = weir(dir.path(), &["schema", "infer", "orders.csv"]);
    let schema = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(
        schema.contains("schema Orders {\n    id: i64,\n    name: string?,\n    amount: f64,\n}"),
        "{schema}"
    );
    let out = weir(dir.path(), &["schema", "infer", "notes.txt"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--format json or --format csv"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `weir run FILE -- --http ADDR` builds the binary with the HTTP endpoint (the runtime's
/// `http` feature) by itself: the binary serves instead of refusing the flag.
#[test]
fn run_with_http_builds_the_endpoint_in() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("observed.weir"),
        "source bids = nexmark(stream: \"bid\", events: 1000)
sink bids -> checksum()
",
    )
    .expect("write");
    let (out, _) = weir_run(
        dir.path(),
        &["observed.weir", "--", "--http", "127.0.0.1:0", "--quiet"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("weir: http: serving /metrics and /api/pipeline on http://127.0.0.1:"),
        "{stderr}"
    );
}

/// A keyed tumbling window over `bids.jsonl`: the pipeline `weir check --against` is asked
/// about, with one compatible and one incompatible change.
const WINDOWED: &str = r#"
schema Bid { auction: i64, price: i64, ts: timestamp }
source bids: Bid = file(path: "bids.jsonl") format json
    event_time ts watermark 1s
let w = bids
    |> filter price > 10
    |> key_by auction
    |> window tumble(5s)
    |> aggregate { n: count(), top: max(price) }
sink w -> file(path: "out.jsonl")
"#;

/// The newest checkpoint of `dir` with a manifest (0: none).
fn newest_checkpoint(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .filter(|e| e.path().join("MANIFEST").exists())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix("chk-")?.parse().ok())
            .max()
            .unwrap_or(0)
    })
}

/// `weir check --against`: a real run of the pipeline is killed once it has checkpoints,
/// then the same file and a changed filter constant are said to restore (exit 0) and a changed
/// window is refused naming the aggregate (exit 1), without running anything; the binaries
/// of the changed pipelines, started on the folder, decide the same.
#[test]
fn check_against_a_checkpoint_says_what_a_restore_would() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path();
    let bids: String = (0..60_000i64)
        .map(|i| {
            format!(
                "{{\"auction\":{},\"price\":{},\"ts\":{}}}\n",
                i % 50,
                (i * 7) % 1000 + 20,
                1_700_000_000_000 + i * 10
            )
        })
        .collect();
    std::fs::write(d.join("bids.jsonl"), bids).expect("write");
    let files = [
        ("same.weir", WINDOWED.to_string()),
        ("filter.weir", WINDOWED.replace("price > 10", "price > 15")),
        ("window.weir", WINDOWED.replace("tumble(5s)", "tumble(10s)")),
    ];
    for (name, text) in &files {
        std::fs::write(d.join(name), text).expect("write");
        let bin = name.replace(".weir", ".bin");
        let out = weir(d, &["build", name, "-o", &bin]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Before any run the folder holds nothing to restore.
    let out = weir(d, &["check", "--against", "chk", "same.weir"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("holds no complete checkpoint"), "{stderr}");

    // A run killed once it has three checkpoints.
    let mut child = Command::new(d.join("same.bin"))
        .current_dir(d)
        .args(["--checkpoint-dir", "chk", "--checkpoint-interval", "50ms"])
        .args(["--rate-limit", "20000", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the pipeline runs");
    let started = std::time::Instant::now();
    while newest_checkpoint(&d.join("chk")) < 3 {
        assert!(started.elapsed().as_secs() < 60, "no checkpoint 3 in 60 s");
        assert!(
            child.try_wait().expect("poll").is_none(),
            "the run ended first"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();

    for name in ["same.weir", "filter.weir"] {
        let out = weir(d, &["check", "--against", "chk", name]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("can be restored by"), "{name}: {stdout}");
    }
    let changed = "`op2 aggregate { n: count(), top: max(price) }`: window was `tumble(5s)`, now `tumble(10s)`";
    let out = weir(d, &["check", "--against", "chk", "window.weir"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(changed), "{stderr}");
    assert!(stderr.contains("its state does not fit"), "{stderr}");

    // The binaries agree: the 10 s window refuses the checkpoint with the same words (and
    // writes nothing), the changed filter resumes from it.
    let refused = Command::new(d.join("window.bin"))
        .current_dir(d)
        .args(["--checkpoint-dir", "chk", "--quiet"])
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(changed), "{stderr}");
    let resumed = Command::new(d.join("filter.bin"))
        .current_dir(d)
        .args(["--checkpoint-dir", "chk"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("resuming from checkpoint"), "{stderr}");
}
