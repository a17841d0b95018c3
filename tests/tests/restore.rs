//! Restoring a checkpoint into a changed pipeline: every change that alters what an operator's
//! state means is refused, naming the operator and what changed; the changes documented as
//! compatible (a filter's constant, a watermark delay, a select's expression, comments) are
//! accepted, and the run that resumes gives the same output as one that never stopped.
//!
//! The table compiles both pipelines with the real compiler (no rustc: the plans are what the
//! generated binaries would declare) and asks the runtime's check, the one a binary runs on
//! start; the end-to-end tests build the binaries, kill the first mid-run and start the
//! second on its checkpoint folder.

use std::path::Path;

use weir_compiler::{Options, SourceMap};
use weir_runtime::checkpoint::manifest::{Kind, Manifest, SlotEntry};
use weir_tests::s3::Checkpoints;
use weir_tests::{
    build, kill_at_checkpoint, kill_at_checkpoint_in, run, sorted_lines, ttl_events, ttl_expected,
    ttl_expected_sums, TTL_PIPELINE,
};

/// The participants a binary built from `text` declares, and its fingerprint.
fn plan(text: &str) -> (String, Vec<SlotEntry>) {
    let mut sources = SourceMap::new();
    let id = sources.add("p.weir", text.to_string());
    let compiled = weir_compiler::compile(&sources, id, &Options::default()).unwrap_or_else(|d| {
        panic!(
            "{}",
            weir_compiler::diagnostics::render(&sources, &d, false)
        )
    });
    let plan = weir_compiler::codegen::state::plan(&compiled.physical, &compiled.info.topo_order);
    let slots = plan
        .ids
        .iter()
        .map(|(op, id)| SlotEntry {
            id: id.clone(),
            instances: 1,
            label: format!("{op} {}", compiled.physical.node(*op).label),
            shape: plan.shapes[op].clone(),
        })
        .collect();
    (plan.fingerprint, slots)
}

/// Whether a checkpoint taken by `old` restores into `new`: the runtime's verdict.
fn restore(old: &str, new: &str) -> Result<(), String> {
    let (fingerprint, slots) = plan(old);
    let m = Manifest {
        id: 7,
        kind: Kind::Checkpoint,
        created_ms: 0,
        fingerprint,
        slots,
        parts: Vec::new(),
        commits: Vec::new(),
        notes: Vec::new(),
    };
    let (fingerprint, slots) = plan(new);
    weir_runtime::checkpoint::compat::check(&m, &slots, &fingerprint, "chk")
}

const BASE: &str = r#"
schema Bid { auction: i64, bidder: i64, price: i64, ts: timestamp }
schema Auction { id: i64, seller: i64, expires: timestamp, ts: timestamp }
source bids: Bid = file(path: "bids.jsonl") format json
    event_time ts watermark 1s
source auctions: Auction = file(path: "auctions.jsonl") format json
    event_time ts watermark 1s

let per_auction = bids
    |> filter price > 10
    |> key_by auction
    |> window tumble(5s)
    |> aggregate { n: count(), top: max(price) }

let hops = bids
    |> key_by bidder
    |> window hop(size: 10s, slide: 2s)
    |> aggregate { n: count() }

let sessions = bids
    |> key_by bidder
    |> window session(gap: 3s)
    |> aggregate { n: count() }

let matched = auctions
    |> interval_join bids as b on id = b.auction within(0s, 10s)
    |> select { id, seller, price: b.price }

let held = auctions
    |> join bids as b on id = b.auction and b.price > 100 ttl(20s)
    |> select { id, price: b.price }

let best = bids
    |> top 3 by auction order by price desc

let recent = bids
    |> top 2 by bidder order by price desc ttl(30s)

let firsts = bids
    |> dedup by bidder keep first

let spent = bids
    |> aggregate by bidder { total: sum(price) } ttl(1m)

sink per_auction -> file(path: "per_auction.jsonl")
sink hops -> file(path: "hops.jsonl")
sink sessions -> file(path: "sessions.jsonl")
sink matched -> file(path: "matched.jsonl")
sink held -> file(path: "held.jsonl")
sink best -> file(path: "best.jsonl")
sink recent -> file(path: "recent.jsonl")
sink firsts -> file(path: "firsts.jsonl")
sink spent -> file(path: "spent.jsonl")
"#;

/// (what, the text replaced, its replacement, `None` if accepted, else what the message says)
const CHANGES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "tumble size",
        "tumble(5s)",
        "tumble(10s)",
        Some("window was `tumble(5s)`, now `tumble(10s)`"),
    ),
    (
        "tumble to hop",
        "tumble(5s)",
        "hop(size: 5s, slide: 1s)",
        Some("window was `tumble(5s)`, now `hop(size: 5s, slide: 1s)`"),
    ),
    (
        "tumble to session",
        "tumble(5s)",
        "session(gap: 5s)",
        Some("now `session(gap: 5s)`"),
    ),
    (
        "hop slide",
        "hop(size: 10s, slide: 2s)",
        "hop(size: 10s, slide: 5s)",
        Some("now `hop(size: 10s, slide: 5s)`"),
    ),
    (
        "session gap",
        "session(gap: 3s)",
        "session(gap: 4s)",
        Some("window was `session(gap: 3s)`, now `session(gap: 4s)`"),
    ),
    (
        "lateness",
        "tumble(5s)",
        "tumble(5s, lateness: 30s)",
        Some("lateness was `0s`, now `30s`"),
    ),
    (
        "aggregate function",
        "top: max(price)",
        "top: min(price)",
        Some("aggregates was `n: count(); top: max(price)`, now `n: count(); top: min(price)`"),
    ),
    (
        "aggregate argument",
        "top: max(price)",
        "top: max(bidder)",
        Some("now `n: count(); top: max(bidder)`"),
    ),
    (
        "keys",
        "key_by auction\n    |> window tumble(5s)",
        "key_by bidder\n    |> window tumble(5s)",
        Some("keys was `auction`, now `bidder`"),
    ),
    (
        "join kind",
        "interval_join bids as b on id = b.auction within(0s, 10s)",
        "window_join bids as b on id = b.auction tumble(10s)",
        Some("join was `interval`, now `window`"),
    ),
    (
        "left outer",
        "interval_join bids",
        "left interval_join bids",
        Some("join was `interval`, now `left interval`"),
    ),
    (
        "join condition",
        "b.price > 100",
        "b.price > 200",
        Some("condition was"),
    ),
    (
        "join keys",
        "on id = b.auction within",
        "on seller = b.auction within",
        Some("keys was `(id) = (auction)`, now `(seller) = (auction)`"),
    ),
    (
        "interval",
        "within(0s, 10s)",
        "within(0s, 20s)",
        Some("interval was `within(0s, 10s)`, now `within(0s, 20s)`"),
    ),
    (
        "ttl",
        "ttl(20s)",
        "ttl(1m)",
        Some("ttl was `20s`, now `1m`"),
    ),
    (
        "top size",
        "top 3 by auction",
        "top 5 by auction",
        Some("size was `3`, now `5`"),
    ),
    (
        "top order",
        "order by price desc",
        "order by price",
        Some("order was `price desc`, now `price`"),
    ),
    (
        "dedup keep",
        "keep first",
        "keep last",
        Some("ties was `older first (keep first)`, now `newer first (keep last)`"),
    ),
    (
        "top ttl",
        "ttl(30s)",
        "ttl(1m)",
        Some("ttl was `30s by ts`, now `1m by ts`"),
    ),
    (
        "dedup ttl added",
        "keep first",
        "keep first ttl(1h)",
        Some("ttl is new: `1h by ts`"),
    ),
    (
        "aggregate ttl",
        "ttl(1m)",
        "ttl(2m)",
        Some("ttl was `1m by ts`, now `2m by ts`"),
    ),
    (
        "aggregate ttl clock",
        "ttl(1m)",
        "ttl(1m, time: processing)",
        Some("ttl was `1m by ts`, now `1m by processing time`"),
    ),
    (
        "aggregate ttl removed",
        " ttl(1m)",
        "",
        Some("ttl `1m by ts` is gone"),
    ),
    (
        "sink target",
        "\"best.jsonl\"",
        "\"best2.jsonl\"",
        Some("target was"),
    ),
    // Compatible: stateless steps and the watermark delay.
    ("filter constant", "price > 10", "price > 20", None),
    (
        "watermark delay",
        "event_time ts watermark 1s\nsource auctions",
        "event_time ts watermark 5s\nsource auctions",
        None,
    ),
    (
        "select expression",
        "select { id, seller, price: b.price }",
        "select { id, seller, price: b.price * 2 }",
        None,
    ),
    (
        "comments and layout",
        "let best = bids\n",
        "// the best three\nlet   best = bids   // per auction\n",
        None,
    ),
];

#[test]
fn every_change_to_an_operators_state_is_refused_and_named_the_rest_restore() {
    assert_eq!(restore(BASE, BASE), Ok(()));
    let mut failures = Vec::new();
    for (what, from, to, expect) in CHANGES {
        assert!(BASE.contains(from), "{what}: `{from}` is not in the base");
        let changed = BASE.replacen(from, to, 1);
        let verdict = restore(BASE, &changed);
        match (expect, &verdict) {
            (None, Ok(())) => {}
            (Some(phrase), Err(message))
                if message.contains(phrase) && message.contains("does not fit") => {}
            _ => failures.push(format!("{what}: expected {expect:?}, got {verdict:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A changed operator is named by its pipeline text, so the operator can be found.
#[test]
fn the_message_names_the_operator() {
    let changed = BASE.replacen("tumble(5s)", "tumble(10s)", 1);
    let message = restore(BASE, &changed).unwrap_err();
    assert!(
        message.contains("aggregate { n: count(), top: max(price) }`: window was"),
        "{message}"
    );
    assert_eq!(message.matches("window was").count(), 1, "{message}");
}

fn write_bids(dir: &Path, n: i64) {
    let mut text = String::new();
    for i in 0..n {
        text.push_str(&format!(
            "{{\"auction\":{},\"price\":{},\"ts\":{}}}\n",
            i % 50,
            (i * 7) % 1000 + 20,
            1_700_000_000_000 + i * 10
        ));
    }
    std::fs::write(dir.join("bids.jsonl"), text).unwrap();
}

const WINDOW: &str = r#"
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

/// The arguments of a first run that is killed once it has a checkpoint.
const FIRST: [&str; 7] = [
    "--checkpoint-dir",
    "chk",
    "--checkpoint-interval",
    "50ms",
    "--rate-limit",
    "20000",
    "--quiet",
];

#[test]
fn a_changed_window_is_refused_at_restore_and_the_output_stays_as_committed() {
    let five = build("restore_tumble5", WINDOW, false);
    let ten = build(
        "restore_tumble10",
        &WINDOW.replace("tumble(5s)", "tumble(10s)"),
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    write_bids(dir.path(), 60_000);
    kill_at_checkpoint(&five, dir.path(), &FIRST, 3);
    let at_kill = std::fs::read(dir.path().join("out.jsonl")).unwrap();
    let refuse = || {
        let out = run(&ten, &["--checkpoint-dir", "chk"], dir.path(), None);
        assert!(!out.success, "the 10s pipeline resumed 5s state");
        assert!(
            out.stderr
                .contains("window was `tumble(5s)`, now `tumble(10s)`"),
            "{}",
            out.stderr
        );
        assert!(!out.stderr.contains("resuming from"), "{}", out.stderr);
        std::fs::read(dir.path().join("out.jsonl")).unwrap()
    };
    // The refused run wrote none of its own rows. A kill between a checkpoint's publication
    // and the append of its rows leaves that append to the next start, which completes it
    // even when it then refuses the plan: the output can only have grown by whole rows the
    // 5 s run committed, and a second refusal changes nothing.
    let committed = refuse();
    assert!(
        committed.starts_with(&at_kill) && (committed.is_empty() || committed.ends_with(b"\n")),
        "the refused run changed the committed output ({} bytes at the kill, {} after)",
        at_kill.len(),
        committed.len()
    );
    assert_eq!(refuse().len(), committed.len(), "a second refusal wrote");
    // And the 5 s pipeline still resumes from it.
    let resumed = run(&five, &["--checkpoint-dir", "chk"], dir.path(), None);
    assert!(resumed.success, "{}", resumed.stderr);
}

/// [`FIRST`] with checkpoints in `chk` (a folder or an `s3://` location).
fn first_in(chk: &str) -> [&str; 7] {
    let mut args = FIRST;
    args[1] = chk;
    args
}

/// A filter constant and a watermark delay are compatible: the resumed run's output equals a
/// run of the new pipeline that never stopped (the data is such that both filters keep every
/// record, and in order, so the delay changes no window).
#[test]
fn a_changed_filter_constant_or_watermark_delay_resumes_and_is_correct() {
    changed_filter_or_delay_resumes(|| Some(Checkpoints::Folder));
}

/// The same with the checkpoints in an S3 bucket (`--checkpoint-dir s3://...`).
#[test]
fn a_changed_filter_constant_or_watermark_delay_resumes_from_object_storage() {
    changed_filter_or_delay_resumes(|| Checkpoints::s3("restore-changed"));
}

fn changed_filter_or_delay_resumes(location: impl Fn() -> Option<Checkpoints>) {
    let Some(first) = location() else {
        return; // no S3 server here (skipped with a message)
    };
    let base = first.build("restore_base", WINDOW);
    for (name, from, to) in [
        ("restore_filter", "price > 10", "price > 15"),
        ("restore_delay", "watermark 1s", "watermark 3s"),
    ] {
        let at = location().expect("a location");
        let changed_text = WINDOW.replace(from, to);
        let changed = at.build(name, &changed_text);
        let reference = tempfile::tempdir().unwrap();
        write_bids(reference.path(), 60_000);
        let clean = run(&changed, &["--quiet"], reference.path(), None);
        assert!(clean.success, "{}", clean.stderr);

        let dir = tempfile::tempdir().unwrap();
        write_bids(dir.path(), 60_000);
        kill_at_checkpoint_in(&base, dir.path(), &first_in(at.arg()), 3, || {
            at.newest(dir.path())
        });
        let out = run(&changed, &["--checkpoint-dir", at.arg()], dir.path(), None);
        assert!(out.success, "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("resuming from checkpoint"),
            "{name}: {}",
            out.stderr
        );
        let want = sorted_lines(&reference.path().join("out.jsonl"));
        assert!(!want.is_empty());
        assert_eq!(sorted_lines(&dir.path().join("out.jsonl")), want, "{name}");
        if let Checkpoints::S3(_) = at {
            // Nothing of it landed in a local folder.
            assert!(!dir.path().join("chk").exists() && !dir.path().join("s3:").exists());
        }
    }
}

/// Dedup, top-N and an unbounded aggregate with a TTL, killed at a checkpoint and resumed: the
/// keys' last writes are part of the state, so keys expire after the restore as in a run that
/// never stopped, and the final tables equal the naive reference (`weir_tests::ttl_expected`,
/// `ttl_expected_sums`).
#[test]
fn ttl_expiry_survives_a_restore() {
    let binary = build("restore_ttl", TTL_PIPELINE, false);
    let (events, text) = ttl_events(2000, 600);
    let (first, top, _) = ttl_expected(&events);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();
    kill_at_checkpoint(&binary, dir.path(), &FIRST, 3);
    let out = run(&binary, &["--checkpoint-dir", "chk"], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    assert!(
        out.stderr.contains("resuming from checkpoint"),
        "{}",
        out.stderr
    );
    let table = |name: &str| {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let mut rows: Vec<String> = weir_tests::json_rows(&text)
            .iter()
            .map(|r| r.to_string())
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(table("first.jsonl"), first);
    assert_eq!(table("top.jsonl"), top);
    assert_eq!(table("sums.jsonl"), ttl_expected_sums(&events));
}
