//! Nexmark pipelines embedded from the repository's examples: generator sources stay
//! generators in the `memory` form, and an updating stream's sink collects its changes.

use std::collections::BTreeMap;

use weir::runtime::ops::Change;

weir::pipeline!(file = "../examples/nexmark/q4.weir");
weir::pipeline!(file = "../examples/nexmark/q5.weir");

fn args(events: u64) -> weir::RunArgs {
    weir::RunArgs {
        events: Some(events),
        quiet: true,
        ..Default::default()
    }
}

#[test]
fn updating_results_arrive_as_changes() {
    let changes = q4::memory::run(args(20_000), q4::memory::Inputs::default())
        .unwrap()
        .q4;
    assert!(!changes.is_empty());
    // Replaying the changes gives one row per category.
    let mut table = BTreeMap::new();
    for change in &changes {
        match change {
            Change::Upsert(row) => {
                table.insert(row.category, row.avg_final);
            }
            Change::Delete(row) => {
                table.remove(&row.category);
            }
        }
    }
    assert!(!table.is_empty() && table.len() <= changes.len());
    assert!(table.values().all(|avg| *avg > 0.0));
}

#[test]
fn generator_pipelines_are_deterministic_in_memory() {
    let run = || {
        let mut rows = q5::memory::run(args(20_000), q5::memory::Inputs::default())
            .unwrap()
            .q5;
        rows.sort_by_key(|r| (r.starttime, r.auction));
        rows
    };
    let first = run();
    assert!(!first.is_empty());
    assert_eq!(first, run());
}
