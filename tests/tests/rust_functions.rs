//! The CLI's Rust functions (`weir run FILE --rust udfs.rs`): signatures read from the Rust
//! file, calls type-checked against them in the pipeline text, the file compiled into the
//! pipeline's crate as `mod udfs`.

use weir_compiler::rust_file::{functions as functions_from_rust, module_text, DECLARATION};
use weir_compiler::sema::udf::with_udfs;
use weir_compiler::{compile, Options, SourceMap};
use weir_tests::{json_rows, run};

const UDFS: &str = r#"//! Functions for the test pipeline.
use weir::Accumulator;

pub fn risk(amount: f64, country: &str) -> f64 {
    if country == "NL" { amount / 100.0 } else { amount / 10.0 }
}

#[derive(Clone, Debug, Default)]
pub struct Spread { min: Option<f64>, max: Option<f64> }

weir::state_struct!(Spread { min, max });

impl Accumulator for Spread {
    type Input = f64;
    type Output = f64;
    fn add(&mut self, v: f64) {
        self.min = Some(self.min.map_or(v, |m| m.min(v)));
        self.max = Some(self.max.map_or(v, |m| m.max(v)));
    }
    fn merge(&mut self, later: Self) {
        for v in [later.min, later.max].into_iter().flatten() { self.add(v); }
    }
    fn result(&self) -> f64 { self.max.unwrap_or(0.0) - self.min.unwrap_or(0.0) }
}
"#;

const PIPELINE: &str = r#"schema Tx { card: string, amount: f64, country: string, ts: timestamp }
source txs: Tx = stdin() format csv(header: false)
    event_time ts watermark 0s
let scored = txs
    |> select { card, ts, amount, score: risk(amount, country) }
    |> window tumble(10s)
    |> aggregate by card { n: count(), top: max(score), spread: spread(amount) }
sink scored -> stdout() format json
"#;

#[test]
fn cli_pipeline_calls_rust_functions() {
    let udfs = functions_from_rust(UDFS).unwrap();
    let mut sources = SourceMap::new();
    let id = sources.add("udf.weir", PIPELINE);
    let mut compiled = match with_udfs(&udfs, || compile(&sources, id, &Options::default())) {
        Ok(c) => c,
        Err(d) => panic!(
            "{}",
            weir_compiler::diagnostics::render(&sources, &d, false)
        ),
    };
    compiled.rust.push_str(DECLARATION);
    let module = weir_compiler::driver::ModuleFile {
        name: "udfs.rs".to_string(),
        text: module_text(UDFS),
    };
    let built = weir_compiler::driver::build_with(
        &compiled.rust,
        &[module],
        "test_rust_functions",
        &weir_compiler::driver::BuildConfig::from_env(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let input =
        "a,500,NL,2024-01-01 00:00:01\na,200,US,2024-01-01 00:00:02\nb,30,US,2024-01-01 00:00:03\n";
    let dir = tempfile::tempdir().unwrap();
    let out = run(&built.binary, &["--quiet"], dir.path(), Some(input));
    assert!(out.success, "{}", out.stderr);
    let mut rows = json_rows(&out.stdout);
    rows.sort_by_key(|r| r["card"].as_str().unwrap_or_default().to_string());
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["card"], "a");
    assert_eq!(rows[0]["n"], 2);
    assert_eq!(rows[0]["top"], 20.0);
    assert_eq!(rows[0]["spread"], 300.0);
    assert_eq!(rows[1]["top"], 3.0);
    assert_eq!(rows[1]["spread"], 0.0);
}

#[test]
fn cli_type_errors_point_at_the_pipeline() {
    let udfs = functions_from_rust(UDFS).unwrap();
    let text = PIPELINE.replace("risk(amount, country)", "risk(country, amount)");
    let mut sources = SourceMap::new();
    let id = sources.add("udf.weir", text);
    let Err(diags) = with_udfs(&udfs, || compile(&sources, id, &Options::default())) else {
        panic!("a type error")
    };
    let rendered = weir_compiler::diagnostics::render(&sources, &diags, false);
    assert!(
        rendered.contains("argument 1 of `risk` must be f64, found string"),
        "{rendered}"
    );
    assert!(rendered.contains("udf.weir:5:"), "{rendered}");
}
