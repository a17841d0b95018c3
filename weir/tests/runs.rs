//! Embedded runs in one process are independent: a run that fails leaves the runs after it
//! and the runs beside it alone (its own test binary, so that a failing run here can never
//! disturb the other tests of the crate).

weir::pipeline!(file = "tests/pipelines/big_clicks.weir");

use big_clicks::memory::{ClicksInput, Inputs};

fn row(page: &str, ts: i64, duration_ms: i64) -> ClicksInput {
    ClicksInput {
        user: "u".into(),
        page: page.into(),
        ts,
        duration_ms,
    }
}

fn quiet() -> weir::RunArgs {
    weir::RunArgs {
        quiet: true,
        ..Default::default()
    }
}

/// A run that fails: a record whose event time is out of range is a dead letter, and the
/// dead-letter file cannot be created.
fn failing_run() -> Result<big_clicks::memory::Outputs, weir::runtime::embed::Error> {
    let dir = std::env::temp_dir().join(format!("weir-runs-missing-{}", std::process::id()));
    let args = weir::RunArgs {
        dead_letters: Some(dir.join("no-such-folder").join("dead.jsonl")),
        ..quiet()
    };
    let inputs = Inputs {
        clicks: vec![row("a", 0, 150), row("a", i64::MAX, 150)].into(),
    };
    big_clicks::memory::run(args, inputs)
}

/// Sorted `(page, window_start, views, longest_ms)` of a run's output.
fn views(out: big_clicks::memory::Outputs) -> Vec<(String, i64, i64, i64)> {
    let mut rows: Vec<_> = out
        .views
        .into_iter()
        .map(|r| (r.page, r.window_start, r.views, r.longest_ms))
        .collect();
    rows.sort();
    rows
}

fn healthy_rows() -> Vec<ClicksInput> {
    (0..200)
        .map(|i| row(if i % 2 == 0 { "a" } else { "b" }, i * 1_000, 100 + i))
        .collect()
}

/// What [`healthy_rows`] must give: per page and minute, the count and the longest click.
fn healthy_expected() -> Vec<(String, i64, i64, i64)> {
    let mut out = Vec::new();
    for minute in 0..4i64 {
        for (page, parity) in [("a", 0), ("b", 1)] {
            let in_minute: Vec<i64> = (0..200)
                .filter(|i| i % 2 == parity && i * 1_000 / 60_000 == minute)
                .collect();
            if let Some(last) = in_minute.last() {
                out.push((
                    page.to_string(),
                    minute * 60_000,
                    in_minute.len() as i64,
                    100 + last,
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_failed_run_leaves_later_runs_alone() {
    let err = failing_run().unwrap_err();
    assert!(
        err.to_string().contains("dead-letter file"),
        "unexpected error: {err}"
    );
    let out = big_clicks::memory::run(
        quiet(),
        Inputs {
            clicks: healthy_rows().into(),
        },
    )
    .expect("a run after a failed one succeeds");
    assert_eq!(views(out), healthy_expected());
}

#[test]
fn a_run_beside_a_failing_one_is_unaffected() {
    // The healthy run reads from a channel that stays open until the other run has failed,
    // so the two are certainly running at the same time.
    let (tx, rx) = std::sync::mpsc::channel();
    let healthy = std::thread::spawn(move || {
        big_clicks::memory::run(
            quiet(),
            Inputs {
                clicks: weir::runtime::embed::Records::channel(rx),
            },
        )
    });
    let mut rows = healthy_rows().into_iter();
    for r in rows.by_ref().take(100) {
        tx.send(r).unwrap();
    }
    let err = failing_run().unwrap_err();
    assert!(err.to_string().contains("dead-letter file"), "{err}");
    for r in rows {
        tx.send(r).unwrap();
    }
    drop(tx);
    let out = healthy
        .join()
        .unwrap()
        .expect("the healthy run succeeds next to a failing one");
    assert_eq!(views(out), healthy_expected());
}
