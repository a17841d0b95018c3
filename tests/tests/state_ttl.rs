//! State TTL of dedup and top-N (`ttl(10s)`): a key's state is dropped once the watermark
//! passes its last write plus the TTL, so a key seen again later starts fresh (dedup emits
//! its row again, top-N fills its ranks again). Checked against a naive reference over input
//! whose expiries do not depend on when watermarks are sent (`weir_tests::ttl_events`).

use serde_json::Value;
use weir_tests::{build, json_rows, run, ttl_events, ttl_expected, TTL_PIPELINE};

/// A file's JSON lines as sorted texts (keys in one order).
fn table(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows: Vec<String> = json_rows(&text).iter().map(Value::to_string).collect();
    rows.sort();
    rows
}

#[test]
fn a_key_seen_again_after_its_ttl_starts_fresh() {
    let (events, text) = ttl_events(2000, 600);
    let (first, top, generations) = ttl_expected(&events);
    // Every id comes back many times after its state expired.
    assert!(generations > 5 * 2000, "{generations} generations");
    let binary = build("ttl_dedup_top", TTL_PIPELINE, false);
    for parallelism in ["1", "3"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();
        let out = run(&binary, &["--parallelism", parallelism], dir.path(), None);
        assert!(out.success, "{}", out.stderr);
        assert_eq!(
            table(&dir.path().join("first.jsonl")),
            first,
            "dedup, parallelism {parallelism}"
        );
        assert_eq!(
            table(&dir.path().join("top.jsonl")),
            top,
            "top, parallelism {parallelism}"
        );
    }
    // The same pipeline without the TTL keeps each id's first record: the check above would
    // catch a TTL that never expires.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.jsonl"), &text).unwrap();
    let forever = build("ttl_none", &TTL_PIPELINE.replace(" ttl(10s)", ""), false);
    let out = run(&forever, &[], dir.path(), None);
    assert!(out.success, "{}", out.stderr);
    let kept = table(&dir.path().join("first.jsonl"));
    assert_eq!(kept.len(), first.len());
    assert_ne!(kept, first);
}
