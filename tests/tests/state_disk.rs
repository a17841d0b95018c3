//! Keyed state on disk (`--state disk`): the same pipelines, run with the state in memory and
//! with a memory budget far below what they hold (so most keys are spilled to the LSM store and
//! read back), give the same output; and under repeated SIGKILLs a run on disk resumes from its
//! checkpoints to the output of a crash-free run in memory.
//!
//! The in-memory run is the oracle: its operators are checked against brute-force oracles in
//! their own tests, and the disk backend must not change a single row.

use std::path::Path;
use std::time::Duration;

use weir_tests::{
    build_state_disk, build_state_disk_system_allocator, checksum_line, example, kill_repeatedly,
    run, sorted_lines, Rng,
};

/// With 4MiB the operators' caches hold 2.5MiB of decoded values: a few thousand records.
const ON_DISK: [&str; 6] = [
    "--state",
    "disk",
    "--state-dir",
    "state",
    "--state-memory",
    "4MiB",
];

/// The spill store's folder is gone once the run has ended.
fn assert_store_removed(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir.join("state"))
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the state folder: {left:?}");
}

#[test]
fn q20_and_q9_on_disk_give_the_in_memory_checksum() {
    for (name, file) in [("q20", "nexmark/q20.weir"), ("q9", "nexmark/q9.weir")] {
        let binary = build_state_disk(&format!("state_disk_{name}"), &example(file));
        let dir = tempfile::tempdir().unwrap();
        let events = ["--events", "150000", "--quiet"];
        let memory = run(&binary, &events, dir.path(), None);
        assert!(memory.success, "{name}: {}", memory.stderr);
        let mut args = events.to_vec();
        args.extend(ON_DISK);
        let disk = run(&binary, &args, dir.path(), None);
        assert!(disk.success, "{name} on disk: {}", disk.stderr);
        let want = checksum_line(&memory.stdout);
        assert!(!want.contains("rows=0 "), "{name}: {want}");
        assert_eq!(checksum_line(&disk.stdout), want, "{name}");
        assert_store_removed(dir.path());
    }
}

/// Whether a binary links mimalloc: its messages are in the binary's bytes.
fn links_mimalloc(binary: &Path) -> bool {
    let bytes = std::fs::read(binary).expect("reads the binary");
    bytes.windows(10).any(|w| w == b"mimalloc: ")
}

/// A binary links mimalloc unless it is built with the system's allocator, and q9 with
/// either allocator, in memory and on disk, gives the same checksum (the disk runs set
/// mimalloc's options for a small resident set first).
#[test]
fn the_allocator_is_mimalloc_unless_the_system_one_is_asked_for() {
    let text = example("nexmark/q9.weir");
    let mimalloc = build_state_disk("state_disk_q9_mimalloc", &text);
    let system = build_state_disk_system_allocator("state_disk_q9_system_allocator", &text);
    assert!(links_mimalloc(&mimalloc));
    assert!(!links_mimalloc(&system));
    let dir = tempfile::tempdir().unwrap();
    let mut checksums = Vec::new();
    for binary in [&mimalloc, &system] {
        for disk in [false, true] {
            let mut args = vec!["--events", "60000", "--quiet"];
            if disk {
                args.extend(ON_DISK);
            }
            let out = run(binary, &args, dir.path(), None);
            assert!(out.success, "{}", out.stderr);
            checksums.push(checksum_line(&out.stdout));
        }
    }
    assert!(!checksums[0].contains("rows=0 "), "{}", checksums[0]);
    assert!(
        checksums.iter().all(|c| *c == checksums[0]),
        "{checksums:?}"
    );
}

/// Auctions and bids as JSON lines: bids go to random auctions, so keys are read back from
/// the store long after they were spilled; times are out of order within 2 s.
fn auctions_and_bids(dir: &Path, bids: u64, auctions: u64) {
    let mut rng = Rng(7);
    let mut text = String::new();
    for i in 0..auctions {
        let ts = 1_700_000_000_000 + i as i64 * 50;
        let seller = rng.below(40);
        text.push_str(&format!("{{\"id\":{i},\"seller\":{seller},\"ts\":{ts}}}\n"));
    }
    std::fs::write(dir.join("auctions.jsonl"), text).unwrap();
    let mut text = String::new();
    for i in 0..bids {
        let ts = 1_700_000_000_000 + i as i64 * 5 - rng.below(2000) as i64;
        let (auction, bidder, price) = (rng.below(auctions), rng.below(300), rng.below(10_000));
        text.push_str(&format!(
            "{{\"auction\":{auction},\"bidder\":{bidder},\"price\":{price},\"ts\":{ts}}}\n"
        ));
    }
    std::fs::write(dir.join("bids.jsonl"), text).unwrap();
}

/// Two joins kept for ever (an inner one, and a left one whose unmatched rows come out at the
/// end, read from every key in memory and on disk), a top-N over the inner join's output, an
/// unwindowed aggregate with a distinct set per bidder, an aggregate over its updating
/// output (which keeps every bidder's row to take it back out), a left interval join
/// (records dropped by the watermark, unmatched auctions out as they expire), a left
/// window join (each minute's records, out when the minute ends), an aggregate over
/// hopping windows (a distinct set per auction and window) and one over session windows:
/// every operator that keeps keyed state on disk. (No TTL: which pairs a TTL lets meet depends
/// on how the two files' reads interleave, in memory as on disk; the runtime's tests check the
/// TTL on disk against an oracle.)
const JOINS_AND_TOP_N: &str = r#"
schema Bid { auction: i64, bidder: i64, price: i64, ts: timestamp }
schema Auction { id: i64, seller: i64, ts: timestamp }
source bids: Bid = file(path: "bids.jsonl") format json
    event_time ts watermark 3s
source auctions: Auction = file(path: "auctions.jsonl") format json
    event_time ts watermark 3s

let sold = bids
    |> join auctions as a on auction = a.id
    |> select { auction, seller: a.seller, bidder, price }

let best = sold |> top 2 by seller order by price desc, bidder, auction

let unsold = auctions
    |> left join bids as b on id = b.auction
    |> select { id, seller, bidder: b.bidder }

let bidders = bids
    |> aggregate by bidder { bids: count(*), auctions: count(distinct auction), top: max(price) }

let spread = bidders
    |> aggregate by auctions { bidders: count(*), bids: sum(bids), top: max(top), low: min(top) }

let near = auctions
    |> left interval_join bids as b on id = b.auction within(-20s, 20s)
    |> select { id, bidder: b.bidder, price: b.price }

let same_minute = auctions
    |> left window_join bids as b on id = b.auction tumble(60s)
    |> select { id, seller, bidder: b.bidder }

let per_window = bids
    |> key_by auction
    |> window hop(size: 60s, slide: 20s)
    |> aggregate { bids: count(), top: max(price), bidders: count(distinct bidder) }
    |> select { auction, bids, top, bidders, window_start }

let sessions = bids
    |> key_by bidder
    |> window session(gap: 5s)
    |> aggregate { bids: count(), top: max(price) }
    |> select { bidder, bids, top, window_start, window_end }

sink sold -> file(path: "out/sold.jsonl")
sink best -> file(path: "out/best.jsonl")
sink unsold -> file(path: "out/unsold.jsonl")
sink bidders -> file(path: "out/bidders.jsonl")
sink spread -> file(path: "out/spread.jsonl")
sink near -> file(path: "out/near.jsonl")
sink same_minute -> file(path: "out/same_minute.jsonl")
sink per_window -> file(path: "out/per_window.jsonl")
sink sessions -> file(path: "out/sessions.jsonl")
"#;

const OUTPUTS: [&str; 9] = [
    "sold.jsonl",
    "best.jsonl",
    "unsold.jsonl",
    "bidders.jsonl",
    "spread.jsonl",
    "near.jsonl",
    "same_minute.jsonl",
    "per_window.jsonl",
    "sessions.jsonl",
];

fn assert_same_output(got: &Path, want: &Path, what: &str) {
    for file in OUTPUTS {
        let want = sorted_lines(&want.join("out").join(file));
        assert!(!want.is_empty(), "{file}: the reference is empty");
        let got = sorted_lines(&got.join("out").join(file));
        assert_eq!(got.len(), want.len(), "{file}: rows {what}");
        assert_eq!(got, want, "{file} differs {what}");
    }
}

#[test]
fn joins_and_top_n_on_disk_give_the_in_memory_output() {
    let binary = build_state_disk("state_disk_joins", JOINS_AND_TOP_N);
    let memory = tempfile::tempdir().unwrap();
    auctions_and_bids(memory.path(), 120_000, 3_000);
    let out = run(&binary, &["--quiet"], memory.path(), None);
    assert!(out.success, "{}", out.stderr);

    let disk = tempfile::tempdir().unwrap();
    auctions_and_bids(disk.path(), 120_000, 3_000);
    let mut args = vec!["--quiet"];
    args.extend(ON_DISK);
    let out = run(&binary, &args, disk.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert_same_output(disk.path(), memory.path(), "on disk");
    assert_store_removed(disk.path());
}

#[test]
fn state_on_disk_survives_sigkill_exactly_once() {
    let kills: usize = std::env::var("WEIR_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let binary = build_state_disk("state_disk_crash", JOINS_AND_TOP_N);
    let reference = tempfile::tempdir().unwrap();
    auctions_and_bids(reference.path(), 120_000, 3_000);
    let clean = run(&binary, &["--quiet"], reference.path(), None);
    assert!(clean.success, "{}", clean.stderr);

    let dir = tempfile::tempdir().unwrap();
    auctions_and_bids(dir.path(), 120_000, 3_000);
    // About half a second of input per kill wanted.
    let rate = (120_000 * 2 / kills.max(1) as u64).max(1000).to_string();
    let mut args = vec![
        "--checkpoint-dir",
        "chk",
        "--checkpoint-interval",
        "30ms",
        "--quiet",
        "--rate-limit",
        &rate,
        // Parts past 16 KiB go to their files as they are saved: kills land there too.
        "--checkpoint-buffer",
        "16KiB",
    ];
    args.extend(ON_DISK);
    let mut rng = Rng(0x5eed_d15c);
    let landed = kill_repeatedly(&binary, dir.path(), &args, kills, || {
        Duration::from_millis(40 + rng.below(360))
    });
    assert!(landed >= kills, "only {landed} kills landed");
    let out = run(&binary, &args, dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert_same_output(
        dir.path(),
        reference.path(),
        &format!("after {landed} kills"),
    );
    assert_store_removed(dir.path());
    // The checkpoints were taken on disk and restored on disk; one restores in memory too:
    // the finished folder is recognised by a run without --state disk.
    let again = run(
        &binary,
        &["--checkpoint-dir", "chk", "--quiet"],
        dir.path(),
        None,
    );
    assert!(again.success, "{}", again.stderr);
}

/// State TTLs, on the generator at parallelism 1 without ticks, where which keys expire is
/// fixed by the input: the generator's watermarks come every 256 events (with two sources or
/// instances it depends on how their reads interleave), and
/// without ticks each dedup sends the same versions of its rows (an aggregate over an updating
/// stream is written by each version that reaches it: docs/operations.md, "State TTL"). A
/// dedup keeping each bidder's last bid feeding an aggregate per auction (which keeps each
/// group's rows to drop them with it, and takes a bidder's row out of one auction when it
/// moves to another), an aggregate per bidder, a dedup keeping each auction's first bid, and
/// a top-N per bidder, all forgetting a key 100 ms after its last write (200,000 events span
/// 20 s). On disk with a 4 MiB budget they give the rows they give in memory. (How much of it spills
/// is not checked here: the runtime's tests check each operator with every key spilled.)
const TTLS: &str = r#"
source bids = nexmark(stream: "bid", events: 200_000)
    event_time date_time watermark 2s

sink bids
    |> dedup by bidder keep last ttl(100ms)
    |> aggregate by auction { bidders: count(), best: max(price), total: sum(price) } ttl(100ms)
    -> file(path: "out/groups.jsonl")
sink bids |> aggregate by bidder { bids: count(), top: max(price) } ttl(100ms)
    -> file(path: "out/bidders.jsonl")
sink bids |> dedup by auction keep first ttl(100ms) -> file(path: "out/firsts.jsonl")
sink bids |> top 2 by bidder order by price desc, auction ttl(100ms)
    -> file(path: "out/best.jsonl")
sink bids |> aggregate by channel { n: count() } -> file(path: "out/channels.jsonl")
"#;

#[test]
fn ttls_on_disk_expire_what_they_expire_in_memory() {
    let binary = build_state_disk("state_disk_ttls", TTLS);
    let files = ["groups", "bidders", "firsts", "best", "channels"];
    let outputs = |disk: bool| {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--quiet", "--parallelism", "1", "--flush-interval", "1h"];
        if disk {
            args.extend(ON_DISK);
        }
        let out = run(&binary, &args, dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        if disk {
            assert_store_removed(dir.path());
        }
        files.map(|file| sorted_lines(&dir.path().join("out").join(format!("{file}.jsonl"))))
    };
    let memory = outputs(false);
    assert!(memory.iter().all(|rows| !rows.is_empty()));
    // The TTL expired bidders: their last rows count fewer bids than there were.
    let total = |rows: &[String], field: &str| -> i64 {
        rows.iter()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).unwrap();
                row[field].as_i64().unwrap()
            })
            .sum()
    };
    let (counted, bids) = (total(&memory[1], "bids"), total(&memory[4], "n"));
    assert!(
        counted < bids,
        "{counted} bids counted per bidder of {bids}: nothing expired"
    );
    // The retracting aggregate expired auctions: without its TTL each bidder's row is in one
    // auction's count (an auction left with none is deleted), so the counts add up to the
    // bidders; an expired auction's last row stays in the table while its bidders' rows,
    // dropped with it, enter other auctions as new rows.
    let in_auctions = total(&memory[0], "bidders");
    assert!(
        in_auctions > memory[1].len() as i64,
        "{in_auctions} bidders in auctions, {} bidders: no auction expired",
        memory[1].len()
    );
    let disk = outputs(true);
    for (file, (got, want)) in files.iter().zip(disk.iter().zip(&memory)) {
        assert_eq!(got.len(), want.len(), "{file}: rows on disk");
        if let Some((got, want)) = got.iter().zip(want).find(|(got, want)| got != want) {
            panic!("{file} differs on disk: {got} where memory has {want}");
        }
    }
}
