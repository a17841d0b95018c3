//! Runs both pipelines on `data/transactions.csv` and checks them against the same rules
//! evaluated in plain Rust; runs the inline pipeline once more as written (file in, file out).

use std::collections::{BTreeMap, BTreeSet};

use weir::Record;
use weir_example_fraud::model::Transaction;
use weir_example_fraud::{card_velocity, scoring, udf};

fn transactions() -> Vec<Transaction> {
    let text = std::fs::read_to_string("data/transactions.csv").expect("the data file");
    text.lines()
        .skip(1)
        .map(|line| Transaction::from_csv(line).expect("a valid line"))
        .collect()
}

fn quiet() -> weir::RunArgs {
    weir::RunArgs {
        quiet: true,
        ..Default::default()
    }
}

fn minute(ts: i64) -> i64 {
    ts - ts.rem_euclid(60_000)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9 * a.abs().max(1.0)
}

#[test]
fn the_data_decodes_with_the_derived_record() {
    let txs = transactions();
    assert_eq!(txs.len(), 80);
    assert!(txs.iter().any(|t| t.country.is_none()));
    assert_eq!(txs[0].card, "4000-02");
}

#[test]
fn scoring_matches_plain_rust() {
    let txs = transactions();
    // (card, minute) -> (payments, total risk, min amount, max amount)
    let mut expected: BTreeMap<(String, i64), (i64, f64, f64, f64)> = BTreeMap::new();
    for t in &txs {
        let score = match &t.country {
            Some(c) => udf::risk(t.amount, c, &t.merchant),
            None => t.amount / 50.0,
        };
        let e =
            expected
                .entry((t.card.clone(), minute(t.ts)))
                .or_insert((0, 0.0, f64::MAX, f64::MIN));
        e.0 += 1;
        e.1 += score;
        e.2 = e.2.min(t.amount);
        e.3 = e.3.max(t.amount);
    }
    expected.retain(|_, e| e.1 >= 10.0);
    assert!(expected.len() >= 3, "the data has risky cards");

    let inputs = scoring::memory::Inputs {
        transactions: txs.into(),
    };
    let rows = scoring::memory::run(quiet(), inputs).unwrap().scores;
    let got: BTreeMap<(String, i64), _> = rows
        .iter()
        .map(|r| ((r.card.clone(), r.window_start), r))
        .collect();
    assert_eq!(got.len(), rows.len(), "one row per card and minute");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (key, (n, risk, min, max)) in &expected {
        let r = got[key];
        assert_eq!(r.payments, *n, "{key:?}");
        assert!(
            r.total_risk.is_some_and(|total| close(total, *risk)),
            "{key:?}: {:?} vs {risk}",
            r.total_risk
        );
        assert!(close(r.spread, max - min), "{key:?}");
        assert_eq!(r.window_end, key.1 + 60_000);
    }
}

#[test]
fn velocity_matches_plain_rust() {
    let txs = transactions();
    let mut groups: BTreeMap<(String, i64), Vec<&Transaction>> = BTreeMap::new();
    for t in &txs {
        groups
            .entry((t.card.clone(), minute(t.ts)))
            .or_default()
            .push(t);
    }
    groups.retain(|_, ts| ts.len() >= 3);
    assert!(!groups.is_empty(), "the data has fast cards");

    let inputs = card_velocity::memory::Inputs {
        transactions: txs.clone().into(),
    };
    let mut rows = card_velocity::memory::run(quiet(), inputs)
        .unwrap()
        .velocity;
    rows.sort_by(|a, b| (&a.card, a.window_start).cmp(&(&b.card, b.window_start)));
    assert_eq!(rows.len(), groups.len());
    for (r, ((card, start), ts)) in rows.iter().zip(&groups) {
        assert_eq!((&r.card, r.window_start), (card, *start));
        assert_eq!(r.uses, ts.len() as i64);
        assert!(close(
            r.spent.expect("a finite sum"),
            ts.iter().map(|t| t.amount).sum::<f64>()
        ));
        assert_eq!(
            r.largest,
            ts.iter().map(|t| t.amount).fold(f64::MIN, f64::max)
        );
        let countries: BTreeSet<_> = ts.iter().filter_map(|t| t.country.as_ref()).collect();
        assert_eq!(r.countries, countries.len() as i64);
    }
}

#[test]
fn scoring_runs_as_written_on_the_file() {
    scoring::run(quiet()).unwrap();
    let written = std::fs::read_to_string("target/risky_cards.csv").unwrap();
    let inputs = scoring::memory::Inputs {
        transactions: transactions().into(),
    };
    let in_memory = scoring::memory::run(quiet(), inputs).unwrap().scores;
    let mut lines = written.lines();
    assert_eq!(
        lines.next(),
        Some("card,window_start,window_end,payments,total_risk,spread")
    );
    assert_eq!(lines.count(), in_memory.len());
}
