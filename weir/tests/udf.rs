//! Rust functions called from a pipeline: a scalar function and an aggregate
//! (`weir::Accumulator`), declared in the macro's header with their weir signatures.

pub mod udf {
    /// A made-up risk score: large amounts abroad score high.
    pub fn risk(amount: f64, country: &str) -> f64 {
        if country == "NL" {
            amount / 1000.0
        } else {
            amount / 100.0
        }
    }

    /// The spread (max - min) of the values seen.
    #[derive(Clone, Debug, Default)]
    pub struct Spread {
        min: Option<f64>,
        max: Option<f64>,
    }

    // Its checkpoint encoding: the fields in order.
    weir::state_struct!(Spread { min, max });

    impl weir::Accumulator for Spread {
        type Input = f64;
        type Output = f64;
        fn add(&mut self, v: f64) {
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
        }
        fn merge(&mut self, later: Self) {
            if let Some(v) = later.min {
                self.add(v);
            }
            if let Some(v) = later.max {
                self.add(v);
            }
        }
        fn result(&self) -> f64 {
            self.max.unwrap_or(0.0) - self.min.unwrap_or(0.0)
        }
    }
}

weir::pipeline! {
    mod scored;
    fn risk(amount: f64, country: string) -> f64 = crate::udf::risk;
    aggregate fn spread(amount: f64) -> f64 = crate::udf::Spread;

    schema Tx { card: string, amount: f64, country: string?, ts: timestamp }
    source txs: Tx = file(path: "txs.csv") format csv(header: true)
        event_time ts watermark 0s

    let per_card = txs
        |> select { card, ts, amount, score: risk(amount, country) }
        |> window tumble(10s)
        |> aggregate by card { n: count(), top: max(score), spread: spread(amount) }

    sink per_card -> stdout() format json
}

#[test]
fn scalar_and_aggregate_udfs() {
    let tx = |card: &str, amount: f64, country: Option<&str>, ts: i64| scored::memory::TxsInput {
        card: card.into(),
        amount,
        country: country.map(String::from),
        ts,
    };
    let inputs = scored::memory::Inputs {
        txs: vec![
            tx("a", 500.0, Some("NL"), 1_000),
            tx("a", 200.0, Some("US"), 2_000),
            tx("b", 50.0, None, 3_000),
            tx("a", 90.0, Some("US"), 12_000),
        ]
        .into(),
    };
    let quiet = weir::RunArgs {
        quiet: true,
        ..Default::default()
    };
    let mut rows = scored::memory::run(quiet, inputs).unwrap().per_card;
    rows.sort_by(|x, y| (x.window_start, &x.card).cmp(&(y.window_start, &y.card)));
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.card.as_str(), r.window_start, r.n, r.top, r.spread))
        .collect();
    // A null country makes the score null; max skips it, so card b has no top score.
    assert_eq!(
        got,
        vec![
            ("a", 0, 2, Some(2.0), 300.0),
            ("b", 0, 1, None, 0.0),
            ("a", 10_000, 1, Some(0.9), 0.0),
        ]
    );
}
