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

/// `GET path` from the endpoint at `addr`: the status and the body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to the endpoint");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The value of the sample of `name` whose labels contain `label`.
fn sample(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// An embedded run followed by a `weir::Watch`: while the run waits for more input on its
/// channel, the handle and its HTTP endpoint show the records read so far; once it has ended,
/// the handle, its Prometheus text and the endpoint show every record, and the rows are those
/// of the same run without a watch.
#[test]
fn a_watch_reads_the_metrics_of_a_run_and_serves_them() {
    let txs = transactions();
    let watch = weir::Watch::new();
    assert!(watch.metrics().is_none(), "no run yet");
    let addr = watch
        .serve_http("127.0.0.1:0")
        .expect("the endpoint starts");
    assert_eq!(http_get(addr, "/metrics").0, 200);

    let (sender, receiver) = std::sync::mpsc::channel();
    let args = quiet().watched(&watch);
    let run = std::thread::spawn(move || {
        let inputs = scoring::memory::Inputs {
            transactions: weir::Records::channel(receiver),
        };
        scoring::memory::run(args, inputs)
    });
    for t in &txs[..30] {
        sender.send(t.clone()).unwrap();
    }
    // The select that scores each transaction runs in the source's task: its counter is live.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let select = loop {
        let found = watch.metrics().and_then(|m| {
            let (name, stats) = m.operators.iter().find(|(n, _)| n.contains(" select "))?;
            Some((name.split(' ').next()?.to_string(), stats.records_in))
        });
        match found {
            Some((id, 30)) => break id,
            _ if std::time::Instant::now() > deadline => panic!("not seen: {found:?}"),
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    let snapshot = watch.metrics().unwrap();
    assert_eq!(snapshot.operator(&select).unwrap().records_in, 30);
    let (status, text) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    let label = format!("operator=\"{select}\"");
    assert_eq!(
        sample(&text, "weir_operator_records_in_total", &label),
        Some(30.0),
        "{text}"
    );
    assert!(!run.is_finished(), "the run waits for more input");

    for t in &txs[30..] {
        sender.send(t.clone()).unwrap();
    }
    drop(sender);
    let watched_rows = run.join().unwrap().expect("the run succeeds").scores;
    let inputs = scoring::memory::Inputs {
        transactions: txs.clone().into(),
    };
    assert_eq!(
        watched_rows.len(),
        scoring::memory::run(quiet(), inputs).unwrap().scores.len()
    );

    let snapshot = watch.metrics().unwrap();
    assert_eq!(snapshot.source("transactions").unwrap().records, 80);
    assert_eq!(snapshot.operator(&select).unwrap().records_in, 80);
    let aggregate = snapshot
        .operators
        .iter()
        .find(|(name, _)| name.contains("aggregate by card"))
        .map(|(_, stats)| stats)
        .unwrap();
    assert_eq!(aggregate.records_in, 80);
    // Every window fired at the end of input: no state is left.
    assert_eq!(aggregate.state_keys, Some(0));
    assert_eq!(snapshot.dead_letters, 0);
    let text = watch.prometheus_text().unwrap();
    let records = "weir_source_records_total";
    assert_eq!(
        sample(&text, records, "source=\"transactions\""),
        Some(80.0)
    );
    let (_, scraped) = http_get(addr, "/metrics");
    assert_eq!(
        sample(&scraped, records, "source=\"transactions\""),
        Some(80.0)
    );
    let (status, json) = http_get(addr, "/api/pipeline");
    assert_eq!(status, 200);
    assert!(json.contains("\"name\":\"transactions\""), "{json}");
}
