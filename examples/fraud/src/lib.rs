//! Card-fraud scoring with weir embedded in a Rust crate:
//!
//! - [`model::Transaction`], a `#[derive(weir::Record)]` struct, is the record type of both
//!   pipelines (and reads the CSV file in the tests with its derived decoder);
//! - [`scoring`] is written inline with `weir::pipeline!`: a Rust scalar function
//!   ([`udf::risk`]) scores each transaction, and a Rust aggregate ([`udf::Spread`]) measures
//!   how far apart a card's amounts are in each minute;
//! - [`card_velocity`] comes from `pipelines/card_velocity.weir`, compiled by `build.rs`.

pub mod model {
    //! The transaction record.

    /// One card payment, as in `data/transactions.csv`.
    #[derive(Clone, Debug, PartialEq, weir::Record)]
    pub struct Transaction {
        pub id: i64,
        pub card: String,
        pub merchant: String,
        pub amount: f64,
        /// Unknown for some online payments.
        pub country: Option<String>,
        /// Milliseconds since the epoch.
        #[weir(timestamp)]
        pub ts: i64,
    }
}

pub mod udf {
    //! Functions the pipelines call.

    /// A transaction's risk: the amount in hundreds, doubled abroad and for merchants that
    /// resell easily.
    pub fn risk(amount: f64, country: &str, merchant: &str) -> f64 {
        let mut score = amount / 100.0;
        if country != "NL" {
            score *= 2.0;
        }
        if merchant == "electronics" || merchant == "airline" {
            score *= 1.5;
        }
        score
    }

    /// The spread of amounts: the largest minus the smallest.
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
        fn add(&mut self, amount: f64) {
            self.min = Some(self.min.map_or(amount, |m| m.min(amount)));
            self.max = Some(self.max.map_or(amount, |m| m.max(amount)));
        }
        fn merge(&mut self, later: Self) {
            for v in [later.min, later.max].into_iter().flatten() {
                self.add(v);
            }
        }
        fn result(&self) -> f64 {
            match (self.min, self.max) {
                (Some(min), Some(max)) => max - min,
                _ => 0.0,
            }
        }
    }
}

weir::pipeline! {
    mod scoring;
    use crate::model::Transaction;
    fn risk(amount: f64, country: string, merchant: string) -> f64 = crate::udf::risk;
    aggregate fn spread(amount: f64) -> f64 = crate::udf::Spread;

    schema Transaction { id: i64, card: string, merchant: string, amount: f64, country: string?, ts: timestamp }

    source transactions: Transaction = file(path: "data/transactions.csv") format csv(header: true)
        event_time ts watermark 5s

    // Per card and minute: how risky its payments were, and how far apart their amounts.
    let scores = transactions
        |> select { card, ts, amount, score: coalesce(risk(amount, country, merchant), amount / 50.0) }
        |> window tumble(1m)
        |> aggregate by card { payments: count(), total_risk: sum(score), spread: spread(amount) }
        |> filter total_risk >= 10.0

    sink scores -> file(path: "target/risky_cards.csv") format csv(header: true)
}

weir::include_pipeline!("card_velocity");

/// The pipeline file of [`card_velocity`] once more, through the macro: the same generated code
/// (compared by hash) and the same results as through build.rs.
#[cfg(test)]
mod same_code {
    use crate::model::Transaction;
    use weir::Record;

    weir::pipeline!(
        file = "pipelines/card_velocity.weir",
        mod card_velocity_macro,
        use crate::model::Transaction,
    );

    #[test]
    fn macro_and_build_script_generate_the_same_code() {
        assert_eq!(
            super::card_velocity::GENERATED_CODE_HASH,
            card_velocity_macro::GENERATED_CODE_HASH
        );
        assert_eq!(card_velocity_macro::GENERATED_CODE_HASH.len(), 64);
    }

    #[test]
    fn macro_and_build_script_give_the_same_results() {
        let text = std::fs::read_to_string("data/transactions.csv").unwrap();
        let txs: Vec<Transaction> = text
            .lines()
            .skip(1)
            .map(|l| Transaction::from_csv(l).unwrap())
            .collect();
        let quiet = || weir::RunArgs {
            quiet: true,
            ..Default::default()
        };
        let inputs = super::card_velocity::memory::Inputs {
            transactions: txs.clone().into(),
        };
        let a = super::card_velocity::memory::run(quiet(), inputs).unwrap();
        let inputs = card_velocity_macro::memory::Inputs {
            transactions: txs.into(),
        };
        let b = card_velocity_macro::memory::run(quiet(), inputs).unwrap();
        let mut a: Vec<_> = a
            .velocity
            .iter()
            .map(|r| (r.card.clone(), r.window_start, r.uses))
            .collect();
        let mut b: Vec<_> = b
            .velocity
            .iter()
            .map(|r| (r.card.clone(), r.window_start, r.uses))
            .collect();
        a.sort();
        b.sort();
        assert!(!a.is_empty());
        assert_eq!(a, b);
    }
}
