//! Line sources read in blocks and split among readers: a file read by N instances (byte
//! ranges at line boundaries, `--parallelism N`) gives exactly the records and dead letters
//! (with the file's line numbers) of one reader; each split checkpoints its own position, so
//! a killed run resumes exactly once; stdin still hands on a line when it arrives.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weir_tests::{build, kill_at_checkpoint, run, sorted_lines, window_bids, WINDOW_PIPELINE};

const PASS: &str = r#"
schema Bid { auction: i64, price: i64, note: string }
source bids: Bid = file(path: "bids.jsonl", dead_letters: "dead.jsonl") format json
sink bids |> select { auction, price, n: length(note) } -> file(path: "out.jsonl")
"#;

/// A file with every kind of line a reader meets: CR LF ends, empty and blank lines, a
/// malformed record, invalid UTF-8, a line of 3 MiB (longer than the read buffer), and a
/// last line without `\n`. Returns its bytes and, per line number, whether the line is bad.
fn awkward_file() -> (Vec<u8>, Vec<u64>) {
    let mut text = Vec::new();
    let mut bad = Vec::new();
    let line = |i: u64, note: &str| {
        format!(
            "{{\"auction\":{i},\"price\":{},\"note\":\"{note}\"}}",
            i * 3 % 101
        )
    };
    for i in 1..=400u64 {
        match i % 37 {
            5 => text.extend_from_slice(b"\r\n"),
            6 => text.extend_from_slice(b"   \n"),
            7 => {
                text.extend_from_slice(format!("{{\"auction\":\"x{i}\"}}\n").as_bytes());
                bad.push(i);
            }
            8 => {
                text.extend_from_slice(b"{\"auction\":1,\"price\":2,\"note\":\"\xff\xfe\"}\n");
                bad.push(i);
            }
            9 => text.extend_from_slice(format!("{}\r\n", line(i, "crlf")).as_bytes()),
            _ if i == 200 => {
                let long = "y".repeat(3 << 20);
                text.extend_from_slice(format!("{}\n", line(i, &long)).as_bytes());
            }
            _ => text.extend_from_slice(format!("{}\n", line(i, "ü")).as_bytes()),
        }
    }
    text.extend_from_slice(line(401, "last, no newline").as_bytes());
    (text, bad)
}

/// The sorted output and the sorted line numbers of the dead letters of `binary` run with
/// `readers` readers over `input`.
fn outputs(binary: &Path, input: &[u8], readers: usize) -> (Vec<String>, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bids.jsonl"), input).unwrap();
    let readers = readers.to_string();
    let out = run(
        binary,
        &["--quiet", "--parallelism", &readers],
        dir.path(),
        None,
    );
    assert!(out.success, "{} readers: {}", readers, out.stderr);
    let mut lines: Vec<u64> = std::fs::read_to_string(dir.path().join("dead.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["line"].as_u64().unwrap()
        })
        .collect();
    lines.sort_unstable();
    (sorted_lines(&dir.path().join("out.jsonl")), lines)
}

/// Split reading gives the multiset of records of one reader, and dead letters with the
/// file's line numbers, whatever the split count: boundaries land inside lines, on line
/// starts, inside the 3 MiB line and inside a CR LF pair.
#[test]
fn every_split_count_reads_the_records_of_one_reader() {
    let binary = build("splits_pass", PASS, false);
    let (input, bad) = awkward_file();
    let (one, one_dead) = outputs(&binary, &input, 1);
    // 401 lines: 10 empty or blank, 2 × 11 bad.
    assert_eq!(one.len(), 401 - 2 * 11 - 2 * 11, "{one:?}");
    assert_eq!(one_dead, bad);
    assert!(
        one.iter().any(|l| l.contains("\"n\":16")),
        "the last line is lost"
    );
    for readers in [2, 3, 4, 7] {
        let (many, many_dead) = outputs(&binary, &input, readers);
        assert_eq!(many, one, "{readers} readers");
        assert_eq!(
            many_dead, bad,
            "{readers} readers: dead-letter line numbers"
        );
    }
}

/// More readers than lines, and a split boundary at every byte of a short file: the records
/// are those of one reader, each once.
#[test]
fn more_readers_than_lines() {
    let binary = build("splits_tiny", PASS, false);
    let input = b"{\"auction\":1,\"price\":1,\"note\":\"a\"}\r\n{\"auction\":\"bad\"}\n\n{\"auction\":3,\"price\":3,\"note\":\"abc\"}";
    let (one, one_dead) = outputs(&binary, input, 1);
    assert_eq!(one.len(), 2);
    assert_eq!(one_dead, vec![2]);
    for readers in [2, 5, 16, 64] {
        assert_eq!(
            outputs(&binary, input, readers),
            (one.clone(), one_dead.clone()),
            "{readers} readers"
        );
    }
    // An empty file with several readers.
    assert_eq!(outputs(&binary, b"", 4), (Vec::new(), Vec::new()));
}

/// A CSV header is skipped once, by the reader whose range holds the file's first line.
#[test]
fn the_csv_header_is_skipped_once() {
    let text = r#"
schema Row { k: i64, v: string }
source rows: Row = file(path: "rows.csv") format csv(header: true)
sink rows -> file(path: "out.csv") format csv(header: false)
"#;
    let binary = build("splits_csv_header", text, false);
    let mut input = String::from("k,v\n");
    for i in 0..500 {
        input.push_str(&format!("{i},value {i}\n"));
    }
    for readers in ["1", "2", "3"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rows.csv"), &input).unwrap();
        let out = run(
            &binary,
            &["--quiet", "--parallelism", readers],
            dir.path(),
            None,
        );
        assert!(out.success, "{}", out.stderr);
        assert!(!out.stderr.contains("dead"), "{}", out.stderr);
        let mut expected: Vec<String> = (0..500).map(|i| format!("{i},value {i}")).collect();
        expected.sort();
        assert_eq!(sorted_lines(&dir.path().join("out.csv")), expected);
    }
}

/// Event-time windows over a file read by two readers are those of one reader (watermarks
/// merge as the minimum, so no record of the slower split is late); killed at a checkpoint,
/// the two-reader run resumes each split from its own position and its output is exactly
/// that of a clean run; a checkpoint of two readers is refused by a run with one.
#[test]
fn split_readers_checkpoint_and_resume_exactly_once() {
    let binary = build("splits_window", WINDOW_PIPELINE, false);
    let reference = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bids.jsonl"), window_bids(40_000, 0)).unwrap();
        let out = run(&binary, &["--quiet"], dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        sorted_lines(&dir.path().join("out.jsonl"))
    };
    assert!(reference.len() > 1000);
    {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bids.jsonl"), window_bids(40_000, 0)).unwrap();
        let out = run(
            &binary,
            &["--quiet", "--parallelism", "2"],
            dir.path(),
            None,
        );
        assert!(out.success, "{}", out.stderr);
        assert_eq!(sorted_lines(&dir.path().join("out.jsonl")), reference);
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bids.jsonl"), window_bids(40_000, 0)).unwrap();
    // Four seconds of input at this rate: the kill lands mid-run on a loaded machine.
    let args = [
        "--parallelism",
        "2",
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "50ms",
        "--rate-limit",
        "10000",
    ];
    kill_at_checkpoint(&binary, dir.path(), &args, 3);
    // Each split's position is its own part: one reader cannot take over two (tried on a copy
    // of the folder).
    let copy = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(dir.path().join("."))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(copied.success());
    let out = run(
        &binary,
        &["--parallelism", "1", "--checkpoint-dir", "chk"],
        copy.path(),
        None,
    );
    assert!(!out.success);
    assert!(
        out.stderr.contains("other parallelism") && out.stderr.contains("source bids"),
        "{}",
        out.stderr
    );
    let out = run(&binary, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert_eq!(sorted_lines(&dir.path().join("out.jsonl")), reference);
}

/// Stdin streams: a line is decoded when it arrives, not when a block fills (stdin stays
/// open while the output is awaited).
#[test]
fn stdin_lines_are_read_as_they_arrive() {
    let text = r#"
schema E { k: i64, ts: timestamp }
source e: E = stdin() format json
    event_time ts watermark 0s
sink e -> stdout() format json
"#;
    let binary = build("splits_stdin_stream", text, false);
    let mut child = Command::new(&binary)
        .arg("--quiet")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = BufReader::new(stdout).read_line(&mut first);
        let _ = tx.send(first);
    });
    // Records trickle in (a watermark is due every 16 records after 200 ms), stdin open.
    let started = Instant::now();
    let mut first = None;
    for i in 0..2000 {
        writeln!(
            stdin,
            "{{\"k\":{i},\"ts\":{}}}",
            1_700_000_000_000i64 + i * 1000
        )
        .unwrap();
        stdin.flush().unwrap();
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(20)) {
            first = Some(line);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let first =
        first.unwrap_or_else(|| panic!("no output after {:?} with stdin open", started.elapsed()));
    assert!(first.contains("\"k\":0"), "{first}");
}

const PARTS: &str = r#"
schema Bid { auction: i64, price: i64, note: string }
source bids: Bid = file(path: "bids.jsonl", dead_letters: "dead.jsonl") format json
sink bids -> file(path: "out", parts: true) format json
"#;

/// The part files in `dir/out`, by name.
fn part_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The parts `out/part-0.jsonl`, `out/part-1.jsonl`, ... of `dir`, concatenated in index
/// order.
fn concatenated_parts(dir: &Path, count: usize) -> Vec<u8> {
    (0..count)
        .flat_map(|i| std::fs::read(dir.join(format!("out/part-{i}.jsonl"))).unwrap())
        .collect()
}

/// A file sink with `parts: true` writes one part per reader, each reader's lines in file
/// order, so the parts in index order are the output of one reader, byte for byte; a run
/// with fewer readers removes the parts an earlier run left beyond its count.
#[test]
fn part_files_hold_each_readers_lines_in_file_order() {
    let binary = build("splits_parts", PARTS, false);
    let (input, bad) = awkward_file();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bids.jsonl"), &input).unwrap();
    let run_with = |readers: usize| {
        let out = run(
            &binary,
            &["--quiet", "--parallelism", &readers.to_string()],
            dir.path(),
            None,
        );
        assert!(out.success, "{readers} readers: {}", out.stderr);
    };
    run_with(1);
    assert_eq!(part_names(dir.path()), ["part-0.jsonl"]);
    let one = concatenated_parts(dir.path(), 1);
    assert_eq!(
        one.iter().filter(|&&b| b == b'\n').count(),
        401 - 2 * 11 - 2 * 11
    );
    for readers in [7, 3, 2, 4] {
        run_with(readers);
        let want: Vec<String> = (0..readers).map(|i| format!("part-{i}.jsonl")).collect();
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(part_names(dir.path()), want_sorted, "{readers} readers");
        assert!(
            concatenated_parts(dir.path(), readers) == one,
            "{readers} readers: the parts in order are not one reader's output"
        );
        let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
        assert_eq!(dead.lines().count(), bad.len(), "{readers} readers");
    }
}

/// Parts in a checkpointed run: each is a committed file of its own, so a run killed at a
/// checkpoint and started again writes every part exactly once.
#[test]
fn part_files_resume_exactly_once() {
    let binary = build(
        "splits_parts_restart",
        &PARTS.replace("note: string", "ts: i64"),
        false,
    );
    let input = window_bids(40_000, 0);
    let reference = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bids.jsonl"), &input).unwrap();
        let out = run(
            &binary,
            &["--quiet", "--parallelism", "2"],
            dir.path(),
            None,
        );
        assert!(out.success, "{}", out.stderr);
        concatenated_parts(dir.path(), 2)
    };
    assert!(reference.len() > 100_000);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bids.jsonl"), &input).unwrap();
    let args = [
        "--parallelism",
        "2",
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "50ms",
        "--rate-limit",
        "10000",
    ];
    kill_at_checkpoint(&binary, dir.path(), &args, 3);
    let out = run(&binary, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert!(
        concatenated_parts(dir.path(), 2) == reference,
        "the parts after a restart differ from an uninterrupted run's"
    );
}
