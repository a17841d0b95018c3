//! Crash tests: a pipeline with checkpoints is killed with SIGKILL at random points and started
//! again, over and over, until it finishes; its committed output must equal a crash-free run's
//! exactly — nothing lost, nothing written twice. The pipelines hold windowed, join and top-N
//! state, so restores of operator state are exercised, not only source offsets.
//!
//! `WEIR_CRASH_KILLS=300 cargo test -p weir-tests --test crash` runs the long mode (the default
//! is 20 kills per pipeline). Kill times come from a seeded generator; `WEIR_CRASH_SEED` picks
//! another sequence.

use std::path::Path;
use std::time::Duration;

use weir_tests::s3::Checkpoints;
use weir_tests::{
    build, checksum_line, kill_at_checkpoint, kill_repeatedly, run, sorted_lines, Rng,
};

fn kills_wanted() -> usize {
    std::env::var("WEIR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn seed() -> u64 {
    std::env::var("WEIR_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_cafe)
}

/// A rate limit that makes a whole run last about half a second per kill wanted (each run
/// lives 40–400 ms before its kill, and resumes from its last checkpoint).
fn rate_for(records: u64, kills: usize) -> String {
    (records * 2 / kills.max(1) as u64).max(1000).to_string()
}

/// What the crash loop saw.
struct Crashed {
    kills: usize,
    restarts_that_resumed: usize,
    /// stdout of the run that finished.
    stdout: String,
}

/// Runs `binary` with checkpoints in `cwd/chk`, killing it after a random 40–400 ms until
/// `kills` kills have landed, then lets it finish.
fn crash_loop(binary: &Path, cwd: &Path, extra: &[&str], kills: usize, rng: &mut Rng) -> Crashed {
    crash_loop_in(&Checkpoints::Folder, binary, cwd, extra, kills, rng)
}

/// [`crash_loop`] with the checkpoints in `at` (a folder or an S3 location).
fn crash_loop_in(
    at: &Checkpoints,
    binary: &Path,
    cwd: &Path,
    extra: &[&str],
    kills: usize,
    rng: &mut Rng,
) -> Crashed {
    let mut args = vec![
        "--checkpoint-dir",
        at.arg(),
        "--checkpoint-interval",
        "30ms",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let landed = kill_repeatedly(binary, cwd, &args, kills, || {
        Duration::from_millis(40 + rng.below(360))
    });
    // The checkpoint folder outlives every kill once a run has made it.
    let resumed = if at.used(cwd) { landed } else { 0 };
    let out = run(binary, &args, cwd, None);
    assert!(out.success, "run failed: {}", out.stderr);
    Crashed {
        kills: landed,
        restarts_that_resumed: resumed,
        stdout: out.stdout,
    }
}

/// One line per crash test, for the long mode's record (`--nocapture` shows it).
fn report(test: &str, crashed: &Crashed, rows: usize) {
    eprintln!(
        "crash: {test}: {} kills, {} restarts resumed from a checkpoint, {rows} rows compared",
        crashed.kills, crashed.restarts_that_resumed
    );
}

/// Pending parts left next to an output: none may remain once a run has finished.
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pending"))
        .collect()
}

const WINDOWS_AND_JOINS: &str = r#"
source bids = nexmark(stream: "bid", events: 400_000, generators: 2)
    event_time date_time watermark 4s
source auctions = nexmark(stream: "auction", events: 400_000, generators: 2)
    event_time date_time watermark 4s

let per_auction = bids
    |> key_by auction
    |> window hop(size: 10s, slide: 5s)
    |> aggregate { n: count(), top: max(price), spent: sum(price) }

let sessions = bids
    |> key_by bidder
    |> window session(gap: 2s)
    |> aggregate { bids: count() }

let best = auctions
    |> join bids as b on id = b.auction and b.date_time >= date_time and b.date_time <= expires ttl(20s)
    |> select { id, category, price: b.price, bidder: b.bidder }
    |> top 3 by category order by price desc

// Keyed by their window: final rows, emitted as windows close (state in flight at a kill).
let hottest = per_auction |> top 2 by window_end order by n desc, auction
let per_window = per_auction |> aggregate by window_start { auctions: count(), most: max(n) }

sink per_auction -> file(path: "out/windows.jsonl")
sink hottest -> file(path: "out/hottest.jsonl")
sink per_window -> file(path: "out/per_window.jsonl")
sink sessions -> file(path: "out/sessions.csv") format csv(header: true)
sink best -> file(path: "out/best.jsonl")
sink per_auction -> checksum()
"#;

#[test]
fn windowed_join_and_top_n_state_survive_sigkill_exactly_once() {
    let binary = build("crash_windows", WINDOWS_AND_JOINS, false);
    // The crash-free reference, without checkpoints.
    let reference = tempfile::tempdir().unwrap();
    let clean = run(&binary, &["--quiet"], reference.path(), None);
    assert!(clean.success, "{}", clean.stderr);

    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(seed());
    // Rate-limited so that the run lives long enough to be killed that often.
    let rate = rate_for(400_000, kills_wanted());
    let crashed = crash_loop(
        &binary,
        dir.path(),
        &["--rate-limit", &rate],
        kills_wanted(),
        &mut rng,
    );
    assert!(
        crashed.kills >= kills_wanted(),
        "only {} kills landed",
        crashed.kills
    );
    assert!(crashed.restarts_that_resumed > 0);
    for file in [
        "windows.jsonl",
        "hottest.jsonl",
        "per_window.jsonl",
        "sessions.csv",
        "best.jsonl",
    ] {
        let want = sorted_lines(&reference.path().join("out").join(file));
        let got = sorted_lines(&dir.path().join("out").join(file));
        assert!(!want.is_empty(), "{file}: the reference is empty");
        assert_eq!(
            got.len(),
            want.len(),
            "{file}: {} rows after {} kills, {} without",
            got.len(),
            crashed.kills,
            want.len()
        );
        assert_eq!(got, want, "{file} differs after {} kills", crashed.kills);
    }
    let rows: usize = ["windows.jsonl", "sessions.csv", "best.jsonl"]
        .iter()
        .map(|f| sorted_lines(&dir.path().join("out").join(f)).len())
        .sum();
    report("windows, a join and top-N (generator)", &crashed, rows);
    // The checksum sink's count and sum were restored too.
    assert_eq!(
        checksum_line(&crashed.stdout),
        checksum_line(&clean.stdout),
        "checksum after {} kills",
        crashed.kills
    );
    assert!(leftovers(&dir.path().join("out")).is_empty());

    // Starting again on a finished run does nothing.
    let again = run(
        &binary,
        &["--checkpoint-dir", "chk", "--quiet"],
        dir.path(),
        None,
    );
    assert!(again.success);
    assert!(again.stderr.contains("holds a run that finished"));
    assert_eq!(
        sorted_lines(&dir.path().join("out/windows.jsonl")).len(),
        sorted_lines(&reference.path().join("out/windows.jsonl")).len()
    );
}

#[test]
fn a_file_source_resumes_at_its_offset_after_sigkill() {
    // A CSV of 200 000 clicks over 20 minutes, out of order within a few seconds.
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("user,page,ts\n");
    let mut rng = Rng(7);
    for i in 0..200_000u64 {
        let ts = 1_700_000_000_000 + i as i64 * 6 - rng.below(3000) as i64;
        csv.push_str(&format!("u{},p{},{ts}\n", rng.below(500), rng.below(40)));
    }
    std::fs::write(dir.path().join("clicks.csv"), &csv).unwrap();
    let text = r#"
schema Click { user: string, page: string, ts: timestamp }
source clicks: Click = file(path: "clicks.csv") format csv(header: true)
    event_time ts watermark 5s
let per_page = clicks
    |> key_by page
    |> window tumble(1m)
    |> aggregate { views: count(), users: count(distinct user) }
sink per_page -> file(path: "out/pages.csv") format csv(header: true)
"#;
    let binary = build("crash_file", text, false);
    let reference = tempfile::tempdir().unwrap();
    std::fs::copy(
        dir.path().join("clicks.csv"),
        reference.path().join("clicks.csv"),
    )
    .unwrap();
    let clean = run(&binary, &["--quiet"], reference.path(), None);
    assert!(clean.success, "{}", clean.stderr);
    let mut rng = Rng(seed() ^ 1);
    let rate = rate_for(200_000, kills_wanted());
    let crashed = crash_loop(
        &binary,
        dir.path(),
        &["--rate-limit", &rate],
        kills_wanted(),
        &mut rng,
    );
    assert!(crashed.kills >= kills_wanted());
    let want = std::fs::read_to_string(reference.path().join("out/pages.csv")).unwrap();
    let got = std::fs::read_to_string(dir.path().join("out/pages.csv")).unwrap();
    // One instance, one output order: the file must be byte for byte the same, header once.
    assert_eq!(got.lines().filter(|l| l.starts_with("page,")).count(), 1);
    assert_eq!(
        sorted_lines(&dir.path().join("out/pages.csv")).len(),
        want.lines().count()
    );
    assert_eq!(
        sorted_lines(&dir.path().join("out/pages.csv")),
        sorted_lines(&reference.path().join("out/pages.csv"))
    );
    report("a window over a CSV file", &crashed, want.lines().count());
}

/// Bids and auctions as JSON lines; the auctions file is far shorter, so its source ends
/// early and the rest of the run is checkpointed with one source finished.
fn two_files(dir: &Path, bids: u64, auctions: u64) {
    let mut rng = Rng(99);
    let mut text = String::new();
    for i in 0..auctions {
        let ts = 1_700_000_000_000 + i as i64 * 50;
        text.push_str(&format!(
            "{{\"id\":{i},\"seller\":{},\"ts\":{ts}}}\n",
            rng.below(40)
        ));
    }
    std::fs::write(dir.join("auctions.jsonl"), text).unwrap();
    let mut text = String::new();
    for i in 0..bids {
        let ts = 1_700_000_000_000 + i as i64 * 5 - rng.below(2000) as i64;
        text.push_str(&format!(
            "{{\"auction\":{},\"bidder\":{},\"price\":{},\"ts\":{ts}}}\n",
            rng.below(auctions),
            rng.below(300),
            rng.below(10_000)
        ));
    }
    std::fs::write(dir.join("bids.jsonl"), text).unwrap();
}

const JOIN_AND_DEDUP: &str = r#"
schema Bid { auction: i64, bidder: i64, price: i64, ts: timestamp }
schema Auction { id: i64, seller: i64, ts: timestamp }
source bids: Bid = file(path: "bids.jsonl") format json
    event_time ts watermark 3s
source auctions: Auction = file(path: "auctions.jsonl") format json
    event_time ts watermark 3s

let sold = bids
    |> join auctions as a on auction = a.id
    |> select { auction, seller: a.seller, bidder, price }

let first_bid = bids
    |> dedup by bidder keep first

sink sold -> file(path: "out/sold.jsonl")
sink first_bid -> file(path: "out/first_bid.csv") format csv(header: true)
"#;

/// A regular join of two files, one of which ends long before the other, and a dedup: under
/// repeated kills the committed output equals a crash-free run's.
#[test]
fn a_join_of_two_files_and_a_dedup_survive_sigkill_exactly_once() {
    join_and_dedup_survive_sigkill(&Checkpoints::Folder);
}

/// The same with the checkpoints in an S3 bucket: every restart takes over the lease of the
/// killed run (a process of this host that is gone) and resumes from the bucket.
#[test]
fn a_join_and_a_dedup_survive_sigkill_with_checkpoints_in_object_storage() {
    if let Some(at) = Checkpoints::s3("crash-two-files") {
        join_and_dedup_survive_sigkill(&at);
    }
}

fn join_and_dedup_survive_sigkill(at: &Checkpoints) {
    let binary = at.build("crash_two_files", JOIN_AND_DEDUP);
    let reference = tempfile::tempdir().unwrap();
    two_files(reference.path(), 150_000, 2_000);
    let clean = run(&binary, &["--quiet"], reference.path(), None);
    assert!(clean.success, "{}", clean.stderr);

    let dir = tempfile::tempdir().unwrap();
    two_files(dir.path(), 150_000, 2_000);
    let mut rng = Rng(seed() ^ 2);
    let rate = rate_for(150_000, kills_wanted());
    let crashed = crash_loop_in(
        at,
        &binary,
        dir.path(),
        // Parts past 16 KiB are written to their files as they are saved (uploaded from
        // there to object storage), so the kills land in the middle of that too.
        &["--rate-limit", &rate, "--checkpoint-buffer", "16KiB"],
        kills_wanted(),
        &mut rng,
    );
    assert!(
        crashed.kills >= kills_wanted(),
        "only {} kills",
        crashed.kills
    );
    let mut rows = 0;
    for file in ["sold.jsonl", "first_bid.csv"] {
        let want = sorted_lines(&reference.path().join("out").join(file));
        assert!(!want.is_empty(), "{file}: the reference is empty");
        let got = sorted_lines(&dir.path().join("out").join(file));
        assert_eq!(
            got.len(),
            want.len(),
            "{file} after {} kills",
            crashed.kills
        );
        assert_eq!(got, want, "{file} differs after {} kills", crashed.kills);
        rows += want.len();
    }
    assert!(leftovers(&dir.path().join("out")).is_empty());
    report(
        "a join of two files (one ends early) and a dedup",
        &crashed,
        rows,
    );
}

#[test]
fn a_checkpoint_of_another_plan_or_parallelism_is_refused() {
    let text = r#"
source bids = nexmark(stream: "bid", events: 2_000_000)
    event_time date_time watermark 4s
let counts = bids |> key_by auction |> window tumble(10s) |> aggregate { n: count() }
sink counts -> file(path: "out/counts.jsonl")
"#;
    let binary = build("crash_plan_a", text, false);
    let dir = tempfile::tempdir().unwrap();
    // Take a checkpoint, then kill.
    kill_at_checkpoint(
        &binary,
        dir.path(),
        &[
            "--checkpoint-dir",
            "chk",
            "--checkpoint-interval",
            "20ms",
            "--rate-limit",
            "200000",
            "--quiet",
        ],
        1,
    );

    let changed = text.replace("{ n: count() }", "{ n: count(), top: max(price) }");
    let other = build("crash_plan_b", &changed, false);
    let refused = run(&other, &["--checkpoint-dir", "chk"], dir.path(), None);
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("different pipeline")
            && refused
                .stderr
                .contains("aggregate { n: count(), top: max(price) }")
            && refused
                .stderr
                .contains("aggregates was `n: count()`, now `n: count(); top: max(price)`"),
        "{}",
        refused.stderr
    );
    let refused = run(
        &binary,
        &["--checkpoint-dir", "chk", "--parallelism", "3"],
        dir.path(),
        None,
    );
    assert!(!refused.success);
    assert!(
        refused.stderr.contains("other parallelism"),
        "{}",
        refused.stderr
    );
    // The same plan resumes and finishes.
    let resumed = run(&binary, &["--checkpoint-dir", "chk"], dir.path(), None);
    assert!(resumed.success, "{}", resumed.stderr);
    assert!(
        resumed.stderr.contains("resuming from checkpoint"),
        "{}",
        resumed.stderr
    );
}
