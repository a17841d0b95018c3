//! What an operator does to a running pipeline, and what the machine does to it: input files
//! replaced under a checkpoint, a failed start, a full disk, dead letters across restarts,
//! bounded sources that end early under repeated crashes, and SIGTERM / Ctrl-C. Each test
//! failed before the fix it guards (see issue 10's notes).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir_tests::{
    build, kill_at_checkpoint, kill_repeatedly, newest_checkpoint, run, sorted_lines, window_bids,
    Rng, WINDOW_PIPELINE,
};

fn spawn(binary: &Path, args: &[&str], dir: &Path) -> Child {
    Command::new(binary)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a pipeline is running (its output file exists: signal handlers are installed
/// before outputs open), then a little longer, so that it has read part of its input.
fn running(output: &Path) {
    let started = Instant::now();
    while !output.exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no output");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(400));
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The sorted output (`out.jsonl`) of a clean run of `binary` over `n` valid bids.
fn reference_output(binary: &Path, n: i64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bids.jsonl"), window_bids(n, 0)).unwrap();
    let out = run(binary, &["--quiet"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    sorted_lines(&dir.path().join("out.jsonl"))
}

/// The input replaced by a shorter file, or by other bytes, under a checkpoint: the restart
/// refuses instead of resuming at a position that means nothing in the new file.
#[test]
fn a_replaced_input_file_is_refused_at_restore() {
    let binary = build("faults_replaced", WINDOW_PIPELINE, false);
    for (what, replacement) in [
        ("shorter", window_bids(100, 0)),
        (
            // The same lines in the opposite order: as long, other bytes everywhere.
            "same length, other bytes",
            window_bids(40_000, 0)
                .lines()
                .rev()
                .map(|l| format!("{l}\n"))
                .collect(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bids.jsonl"), window_bids(40_000, 0)).unwrap();
        // Four seconds of input at this rate: the kill lands mid-run on a loaded machine.
        let args = [
            "--checkpoint-dir",
            "chk",
            "--checkpoint-interval",
            "50ms",
            "--rate-limit",
            "10000",
        ];
        kill_at_checkpoint(&binary, dir.path(), &args, 3);
        std::fs::write(dir.path().join("bids.jsonl"), replacement).unwrap();
        let out = run(&binary, &["--checkpoint-dir", "chk"], dir.path(), None);
        assert!(
            !out.success,
            "{what}: resumed on a replaced file: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("weir cannot tell where to resume"),
            "{what}: {}",
            out.stderr
        );
    }
}

/// A start that fails (a missing input, a folder given as input) leaves the previous output
/// as it was.
#[test]
fn a_failed_start_keeps_the_previous_output() {
    let binary = build("faults_failed_start", WINDOW_PIPELINE, false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("out.jsonl"), "previous output\n").unwrap();
    // No input file.
    let out = run(&binary, &[], dir.path(), None);
    assert!(!out.success);
    assert!(
        out.stderr.contains("cannot open bids.jsonl"),
        "{}",
        out.stderr
    );
    // A folder as input.
    std::fs::create_dir(dir.path().join("bids.jsonl")).unwrap();
    let out = run(&binary, &[], dir.path(), None);
    assert!(!out.success);
    assert!(out.stderr.contains("it is a folder"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(),
        "previous output\n"
    );
}

/// A full disk (`/dev/full`) fails the run, and the summary says what was really written.
#[test]
fn a_write_error_fails_the_run_and_the_summary_counts_only_what_was_written() {
    let text = WINDOW_PIPELINE.replace("\"out.jsonl\"", "\"/dev/full\"");
    let binary = build("faults_full_disk", &text, false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bids.jsonl"), window_bids(20_000, 100)).unwrap();
    let out = run(&binary, &["--dead-letters", "/dev/full"], dir.path(), None);
    assert!(!out.success, "{}", out.stderr);
    assert!(
        out.stderr.contains("No space left on device"),
        "{}",
        out.stderr
    );
    // The sink's line: records in, and 0 out (written).
    let sink = out
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with("op2 sink0 w -> file /dev/full"))
        .unwrap_or_else(|| panic!("{}", out.stderr));
    let fields: Vec<&str> = sink.split_whitespace().collect();
    let n = fields.len();
    assert_ne!(fields[n - 4], "0", "{sink}");
    assert_eq!(fields[n - 3], "0", "{sink}");
    assert!(
        !out.stderr.contains("dead letters written to"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("200 dead letters could not be written to /dev/full"),
        "{}",
        out.stderr
    );
}

/// Dead letters are at least once across restarts: every malformed line of the input is in
/// the dead-letter file after repeated kills (a restarted run appends; sources flush at
/// every checkpoint).
#[test]
fn dead_letters_survive_restarts() {
    let binary = build("faults_dead_letters", WINDOW_PIPELINE, false);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bids.jsonl"), window_bids(40_000, 97)).unwrap();
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "30ms",
        "--rate-limit",
        "20000",
    ];
    let mut rng = Rng(7);
    let kills = kill_repeatedly(&binary, dir.path(), &args, 12, || {
        Duration::from_millis(100 + rng.below(200))
    });
    assert!(kills >= 6, "only {kills} kills landed");
    let out = run(&binary, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let letters = std::fs::read_to_string(dir.path().join("dead_letters.jsonl")).unwrap();
    for i in (0..40_000).filter(|i| i % 97 == 96) {
        assert!(
            letters.contains(&format!("broken-{i}\\\"")),
            "dead letter of line {} is lost after {kills} kills",
            i + 1
        );
    }
}

const TWO_FILES: &str = r#"
schema Bid { auction: i64, price: i64, ts: timestamp }
source short: Bid = file(path: "short.jsonl") format json
    event_time ts watermark 1s
source long: Bid = file(path: "long.jsonl") format json
    event_time ts watermark 1s
let joined = long
    |> interval_join short as s on auction = s.auction within(-1h, 1h)
    |> select { auction, price, other: s.price }
let w = long
    |> key_by auction
    |> window tumble(5s)
    |> aggregate { n: count() }
sink joined -> file(path: "joined.jsonl")
sink w -> file(path: "windows.jsonl")
"#;

/// A bounded source that has read all its input does not stop checkpoints: a pipeline whose
/// short input ends at once keeps checkpointing, and under repeated kills finishes with
/// exactly the output of a run that never stopped.
#[test]
fn checkpoints_go_on_after_a_source_has_ended() {
    let binary = build("faults_two_files", TWO_FILES, false);
    let write = |dir: &Path| {
        std::fs::write(dir.join("short.jsonl"), window_bids(50, 0)).unwrap();
        std::fs::write(dir.join("long.jsonl"), window_bids(30_000, 0)).unwrap();
    };
    let reference = tempfile::tempdir().unwrap();
    write(reference.path());
    let clean = run(&binary, &["--quiet"], reference.path(), None);
    assert!(clean.success, "{}", clean.stderr);

    let dir = tempfile::tempdir().unwrap();
    write(dir.path());
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "30ms",
        "--rate-limit",
        "15000",
    ];
    // The short source ends within milliseconds; checkpoints must still come.
    kill_at_checkpoint(&binary, dir.path(), &args, 8);
    let mut rng = Rng(11);
    let kills = kill_repeatedly(&binary, dir.path(), &args, 10, || {
        Duration::from_millis(150 + rng.below(200))
    });
    let out = run(&binary, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    for file in ["joined.jsonl", "windows.jsonl"] {
        let want = sorted_lines(&reference.path().join(file));
        assert!(!want.is_empty(), "{file}");
        assert_eq!(
            sorted_lines(&dir.path().join(file)),
            want,
            "{file} after {kills} kills"
        );
    }
}

/// SIGTERM without checkpoints: the sources stop, the sink flushes what is complete (no
/// window is emitted before its end), the summary is printed, the exit code is 143; Ctrl-C
/// (SIGINT) is 130.
#[test]
fn sigterm_and_ctrl_c_stop_a_file_pipeline_gracefully() {
    let binary = build("faults_sigterm", WINDOW_PIPELINE, false);
    let complete = reference_output(&binary, 40_000);
    for (name, code) in [("TERM", 143), ("INT", 130)] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bids.jsonl"), window_bids(40_000, 0)).unwrap();
        let child = spawn(&binary, &["--rate-limit", "20000"], dir.path());
        running(&dir.path().join("out.jsonl"));
        signal(&child, name);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "SIG{name}: {stderr}");
        assert!(stderr.contains("run summary"), "SIG{name}: {stderr}");
        assert!(
            stderr.contains(&format!("stopped by SIG{name} before the end of the input")),
            "{stderr}"
        );
        let got = sorted_lines(&dir.path().join("out.jsonl"));
        assert!(
            !got.is_empty() && got.len() < complete.len(),
            "SIG{name}: {} rows",
            got.len()
        );
        for row in &got {
            assert!(
                complete.contains(row),
                "SIG{name}: an incomplete window: {row}"
            );
        }
    }
}

/// SIGTERM with checkpoints: one last checkpoint, exit 143, and the next start resumes from
/// it and finishes with exactly the output of a run that never stopped.
#[test]
fn sigterm_takes_a_last_checkpoint_and_the_next_start_resumes_there() {
    let binary = build("faults_sigterm_checkpoint", WINDOW_PIPELINE, false);
    let want = reference_output(&binary, 40_000);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bids.jsonl"), window_bids(40_000, 0)).unwrap();
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "10s",
        "--rate-limit",
        "20000",
    ];
    let child = spawn(&binary, &args, dir.path());
    running(&dir.path().join("out.jsonl"));
    signal(&child, "TERM");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    // No periodic checkpoint was due yet (10 s): the one it names is the stop's own.
    assert!(
        stderr.contains("stopped by SIGTERM after checkpoint 1"),
        "{stderr}"
    );
    let resumed = run(&binary, &args, dir.path(), None);
    assert!(resumed.success, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("resuming from checkpoint 1"),
        "{}",
        resumed.stderr
    );
    assert_eq!(sorted_lines(&dir.path().join("out.jsonl")), want);
}

/// A second signal exits at once: here the first cannot stop the run (its sink is blocked
/// writing to a stdout pipe that nobody reads, so the graceful stop cannot finish), the second
/// ends it. (An idle stdin no longer serves: sources wake up every flush interval and see the
/// stop.)
#[test]
fn a_second_signal_exits_at_once() {
    let text = "source bids = nexmark(stream: \"bid\", events: 100_000_000)\n\
                sink bids -> stdout() format json\n";
    let binary = build("faults_blocked_sink", text, false);
    let dir = tempfile::tempdir().unwrap();
    // stdout stays piped and unread (the child keeps its handle until the end), so the pipe
    // fills within milliseconds and the sink blocks in `write`.
    let mut child = Command::new(&binary)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the sink is blocked, so the first signal cannot end the run"
    );
    signal(&child, "TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still running");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(143));
}

/// Bit flips in a checkpoint (a state file or the manifest of the newest one): the restart
/// notices, falls back to the newest intact checkpoint, and the output is still exactly a
/// crash-free run's. Before checksums, most flips gave wrong output with exit code 0.
#[test]
fn flipped_bits_in_a_checkpoint_fall_back_and_the_output_stays_exact() {
    let binary = build("faults_bit_flips", WINDOW_PIPELINE, false);
    let want = reference_output(&binary, 30_000);
    let args = [
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "40ms",
        "--rate-limit",
        "15000",
    ];
    let mut rng = Rng(2024);
    for round in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bids.jsonl"), window_bids(30_000, 0)).unwrap();
        kill_at_checkpoint(&binary, dir.path(), &args, 4);
        let chk = dir.path().join("chk");
        let newest = chk.join(format!("chk-{}", newest_checkpoint(&chk)));
        let mut files: Vec<_> = std::fs::read_dir(&newest)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            .collect();
        files.sort();
        let victim = &files[rng.below(files.len() as u64) as usize];
        let mut bytes = std::fs::read(victim).unwrap();
        let bit = rng.below(bytes.len() as u64 * 8) as usize;
        bytes[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(victim, bytes).unwrap();
        let out = run(&binary, &args, dir.path(), None);
        let what = format!("round {round}: bit {bit} of {}", victim.display());
        assert!(out.success, "{what}: {}", out.stderr);
        assert!(out.stderr.contains("is damaged"), "{what}: {}", out.stderr);
        assert_eq!(sorted_lines(&dir.path().join("out.jsonl")), want, "{what}");
    }
}
