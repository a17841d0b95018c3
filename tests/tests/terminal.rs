//! What a pipeline binary prints on stderr: the progress line on a terminal (run under
//! `script`, which gives it a pseudo-terminal) and nothing of it when stderr is not one or
//! with `--quiet`; its messages as JSON lines (`--log-format json`); the run summary as one
//! JSON object (`--summary json`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A file source read at a limited rate, so that a run lasts a couple of seconds.
const FILE_PIPELINE: &str = r#"
schema Click { user: string, n: i64 }
source clicks: Click = file("clicks.jsonl") format json
let big = clicks |> filter n >= 0
sink big -> file("out.jsonl") format json
"#;

const LINES: u64 = 60_000;

fn binary() -> &'static PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| weir_tests::build("terminal_file", FILE_PIPELINE, false))
}

/// A folder holding `clicks.jsonl` with [`LINES`] lines.
fn input() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..LINES)
        .map(|i| format!("{{\"user\":\"u{}\",\"n\":{i}}}\n", i % 97))
        .collect();
    std::fs::write(dir.path().join("clicks.jsonl"), text).unwrap();
    dir
}

/// Whether `script` (util-linux) is there to give the binary a pseudo-terminal.
fn script() -> bool {
    let found = Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("\n*** SKIPPING the terminal tests: no `script` (util-linux) ***\n");
    }
    found
}

/// Runs `binary args` on a pseudo-terminal in `dir`; returns what it wrote to it.
fn on_terminal(binary: &Path, args: &str, dir: &Path) -> String {
    let out = Command::new("script")
        .args(["-qec", &format!("{} {args}", binary.display()), "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn the_progress_line_shows_on_a_terminal_only() {
    let dir = input();
    // Not a terminal: the summary and nothing else.
    let plain = weir_tests::run(binary(), &["--rate-limit", "30000"], dir.path(), None);
    assert!(plain.success, "{}", plain.stderr);
    assert!(
        plain.stderr.starts_with("weir: run summary\n"),
        "{}",
        plain.stderr
    );
    assert!(!plain.stderr.contains("ETA"), "{}", plain.stderr);
    assert!(!plain.stderr.contains('\x1b'), "{:?}", plain.stderr);
    assert!(!plain.stderr.contains('\r'), "{:?}", plain.stderr);
    let quiet = weir_tests::run(binary(), &["--quiet"], dir.path(), None);
    assert!(quiet.success, "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "");

    if !script() {
        return;
    }
    // On a terminal: records, their rate, the bytes of the file read and an ETA, then the
    // summary once the line is cleared.
    let shown = on_terminal(binary(), "--rate-limit 30000", dir.path());
    let size = std::fs::metadata(dir.path().join("clicks.jsonl"))
        .unwrap()
        .len();
    assert!(shown.contains(" records · "), "{shown:?}");
    assert!(shown.contains("/s · ["), "{shown:?}");
    assert!(shown.contains("ETA "), "{shown:?}");
    let total = format!("/{:.2} MiB", size as f64 / (1024.0 * 1024.0));
    assert!(shown.contains(&total), "{total} in {shown:?}");
    let summary = shown.find("weir: run summary").expect("the summary");
    let last_line = shown.rfind(" records · ").unwrap();
    assert!(last_line < summary, "{shown:?}");
    assert!(shown[summary..].contains(&format!("events: {LINES} ")));
    // `--quiet` on a terminal: nothing at all.
    let quiet = on_terminal(binary(), "--rate-limit 30000 --quiet", dir.path());
    assert_eq!(quiet, "", "{quiet:?}");

    // Rows printed on the same terminal (a stdout sink): no line drawn through them.
    let to_stdout = weir_tests::build(
        "terminal_stdout",
        &FILE_PIPELINE.replace("file(\"out.jsonl\")", "stdout()"),
        false,
    );
    let shown = on_terminal(&to_stdout, "--rate-limit 30000", dir.path());
    assert!(shown.contains("{\"user\":\"u0\",\"n\":0}"), "{shown:?}");
    assert!(!shown.contains(" records · "), "{shown:?}");
    assert!(shown.contains("weir: run summary"));
}

/// Every line of `stderr` as JSON (panics on one that is not).
fn json_lines(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}")))
        .collect()
}

#[test]
fn log_format_json_prints_one_json_object_per_line() {
    let dir = input();
    // An error: the input is missing. The classic line by default, JSON when asked.
    let empty = tempfile::tempdir().unwrap();
    let text = weir_tests::run(binary(), &[], empty.path(), None);
    assert!(!text.success);
    assert!(
        text.stderr
            .starts_with("weir: error: source `clicks`: cannot open clicks.jsonl"),
        "{}",
        text.stderr
    );
    let json = weir_tests::run(binary(), &["--log-format", "json"], empty.path(), None);
    assert!(!json.success);
    let lines = json_lines(&json.stderr);
    assert_eq!(lines.len(), 1, "{}", json.stderr);
    assert_eq!(lines[0]["level"], "error");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("source `clicks`: cannot open clicks.jsonl"),
        "{}",
        lines[0]
    );
    assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));

    // A run with checkpoints, then a second start on its finished folder: every line is
    // JSON, the summary last.
    let args = ["--log-format", "json", "--checkpoint-dir", "chk"];
    let first = weir_tests::run(binary(), &args, dir.path(), None);
    assert!(first.success, "{}", first.stderr);
    let lines = json_lines(&first.stderr);
    let summary = lines.last().unwrap();
    assert_eq!(summary["status"], "finished", "{summary}");
    assert_eq!(summary["checkpoints"]["dir"], "chk", "{summary}");
    let again = weir_tests::run(binary(), &args, dir.path(), None);
    assert!(again.success, "{}", again.stderr);
    let lines = json_lines(&again.stderr);
    assert_eq!(lines.len(), 1, "{}", again.stderr);
    assert_eq!(lines[0]["level"], "info");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("holds a run that finished"),
        "{}",
        lines[0]
    );
    // The same message as a classic line.
    let classic = weir_tests::run(binary(), &["--checkpoint-dir", "chk"], dir.path(), None);
    assert!(
        classic
            .stderr
            .starts_with("weir: chk holds a run that finished"),
        "{}",
        classic.stderr
    );
    let bad = weir_tests::run(binary(), &["--log-format", "xml"], dir.path(), None);
    assert_eq!(bad.code, Some(2));
    assert!(
        bad.stderr.contains("`xml` is not `text` or `json`"),
        "{}",
        bad.stderr
    );
}

#[test]
fn summary_json_counts_what_the_sink_wrote() {
    let dir = input();
    // Three malformed lines among the good ones: dead letters.
    let path = dir.path().join("clicks.jsonl");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("not json\n{\"user\":\"x\",\"n\":\"many\"}\n{\"user\":7}\n");
    std::fs::write(&path, text).unwrap();
    let out = weir_tests::run(binary(), &["--summary", "json"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    // The summary is the one line on stderr, and JSON.
    let lines = json_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    let summary = &lines[0];
    let written = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(written, LINES);
    let operators = summary["operators"].as_array().unwrap();
    let sink = operators
        .iter()
        .find(|op| op["name"].as_str().unwrap().contains("-> file out.jsonl"))
        .unwrap_or_else(|| panic!("no sink in {summary}"));
    assert_eq!(sink["records_in"].as_u64(), Some(written), "{summary}");
    assert_eq!(sink["records_out"].as_u64(), Some(written), "{summary}");
    assert_eq!(summary["sources"][0]["name"], "clicks");
    assert_eq!(summary["sources"][0]["records"].as_u64(), Some(written));
    // Events: the records the source decoded (not the malformed lines).
    assert_eq!(summary["events"].as_u64(), Some(written));
    assert_eq!(summary["dead_letters"], 3);
    assert_eq!(summary["dead_letter_files"][0]["written"], 3, "{summary}");
    assert_eq!(summary["status"], "finished");
    assert_eq!(summary["errors"].as_array().unwrap().len(), 0);
    assert!(summary["checkpoints"].is_null());
    assert!(summary["elapsed_seconds"].as_f64().unwrap() > 0.0);
    // `--quiet` wins: no summary at all.
    let quiet = weir_tests::run(
        binary(),
        &["--summary", "json", "--quiet"],
        dir.path(),
        None,
    );
    assert_eq!(quiet.stderr, "");
}

/// A Kafka source read at a limited rate on a terminal: the progress line shows the total
/// consumer lag of its partitions while the backlog is read.
#[test]
fn the_progress_line_shows_the_kafka_lag() {
    use weir_tests::kafka::{broker, create_topic, produce, unique, GROUP_PROPERTIES};
    let Some(brokers) = broker() else { return };
    if !script() {
        return;
    }
    let (topic, group) = (unique("progress"), unique("g"));
    create_topic(&brokers, &topic, 2);
    let messages: Vec<(i32, String)> = (0..1200)
        .map(|i| (i % 2, format!(r#"{{"user":"u{}","n":{i}}}"#, i % 7)))
        .collect();
    produce(&brokers, &topic, &messages);
    let text = format!(
        r#"
schema Click {{ user: string, n: i64 }}
source clicks: Click = kafka(topic: "{topic}", brokers: "{brokers}", group: "{group}",
    start: "earliest", properties: "{GROUP_PROPERTIES}")
sink clicks -> file("out.jsonl") format json
"#
    );
    // The same runtime as the HTTP tests' Kafka pipelines: one build of librdkafka.
    let binary = weir_tests::build_http("terminal_kafka", &text);
    let dir = tempfile::tempdir().unwrap();
    let shown = on_terminal(
        &binary,
        "--rate-limit 300 --kafka-stop-after-idle 1500",
        dir.path(),
    );
    let lags: Vec<u64> = shown
        .match_indices("kafka lag ")
        .filter_map(|(at, key)| {
            let rest = &shown[at + key.len()..];
            let digits: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ',')
                .filter(|c| c.is_ascii_digit())
                .collect();
            digits.parse().ok()
        })
        .collect();
    assert!(lags.iter().any(|lag| *lag > 0), "no lag shown: {shown:?}");
    assert!(lags.iter().all(|lag| *lag <= 1200), "{lags:?}");
    assert!(shown.contains("events: 1200 "), "{shown:?}");
}

/// A stderr that has gone away (the reading end of its pipe closed, as `2>&1 | head` leaves
/// it) does not end the run: it writes every row and exits 0, with its messages (the HTTP
/// endpoint's address) and its summary lost. It used to panic on the first message.
#[test]
fn a_closed_stderr_does_not_fail_the_run() {
    let dir = input();
    let binary = weir_tests::build_http("terminal_closed_stderr", FILE_PIPELINE);
    for args in [
        &["--http", "127.0.0.1:0"][..],
        &["--log-format", "json"][..],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let status = Command::new(&binary)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(writer)
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}: {status}");
        let out = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
        assert_eq!(out.lines().count() as u64, LINES, "{args:?}");
    }
}
