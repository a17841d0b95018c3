//! What a pipeline binary prints on stderr besides its errors: the progress line on a
//! terminal (run under `script`, which gives it a pseudo-terminal), and nothing of it when
//! stderr is not one or with `--quiet`.

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
}
