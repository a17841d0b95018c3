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
sink per -> stdout()
sink sessions -> stdout()
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
        "window: none (one row per key, revised by every record)",
        "stream: updating, upsert key (auction, window_start, window_end), made so by `window \
         with allowed lateness`",
        "stream: updating, upsert key (bidder), made so by `aggregate`",
        "input: updating, upsert key (bidder), made so by `aggregate`",
        "(gather, late records)",
    ] {
        assert!(physical.contains(line), "no `{line}` in\n{physical}");
    }
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
