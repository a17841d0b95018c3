//! The CLI's Rust functions (`weir run FILE --rust udfs.rs`): signatures read from the Rust
//! file, calls type-checked against them in the pipeline text, the file compiled into the
//! pipeline's crate as `mod udfs` (`src/udfs.rs`); rustc's errors in that file, or about a
//! function that does not fit its call, shown at the user's file and line, never as a bug in
//! weir.

use weir_compiler::driver::{BuildConfig, DriverError, ModuleFile};
use weir_compiler::rust_file::rustc_errors;
use weir_compiler::rust_file::{functions as functions_from_rust, module_text, DECLARATION};
use weir_compiler::sema::udf::{with_udfs, with_udfs_calls};
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

/// Builds `pipeline` with the Rust functions of `udfs` as the CLI does (`--rust udfs.rs`).
fn build_with_rust(name: &str, udfs: &str, pipeline: &str) -> std::path::PathBuf {
    let functions = functions_from_rust(udfs).unwrap();
    let mut sources = SourceMap::new();
    let id = sources.add("udf.weir", pipeline);
    let mut compiled = match with_udfs(&functions, || compile(&sources, id, &Options::default())) {
        Ok(c) => c,
        Err(d) => panic!(
            "{}",
            weir_compiler::diagnostics::render(&sources, &d, false)
        ),
    };
    compiled.rust.push_str(DECLARATION);
    let module = weir_compiler::driver::ModuleFile {
        name: "udfs.rs".to_string(),
        text: module_text(udfs),
    };
    weir_compiler::driver::build_with(
        &compiled.rust,
        &[module],
        name,
        &weir_compiler::driver::BuildConfig::from_env().expect("a cache directory"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .binary
}

#[test]
fn cli_pipeline_calls_rust_functions() {
    let binary = build_with_rust("test_rust_functions", UDFS, PIPELINE);
    let input =
        "a,500,NL,2024-01-01 00:00:01\na,200,US,2024-01-01 00:00:02\nb,30,US,2024-01-01 00:00:03\n";
    let dir = tempfile::tempdir().unwrap();
    let out = run(&binary, &["--quiet"], dir.path(), Some(input));
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

/// A Rust function's float result that is NaN or infinite is an error value, as for float
/// arithmetic: the record goes to the dead letters with the call, the others go on.
#[test]
fn a_non_finite_result_of_a_rust_function_is_a_dead_letter() {
    let udfs = "pub fn per_unit(amount: f64, units: f64) -> f64 {\n    amount / units\n}\n";
    let pipeline = "schema Tx { card: string, amount: f64, units: f64 }\n\
        source txs: Tx = stdin() format csv(header: false)\n\
        sink txs |> select { card, p: per_unit(amount, units) } -> stdout() format json\n";
    let binary = build_with_rust("test_rust_functions_non_finite", udfs, pipeline);
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &binary,
        &[],
        dir.path(),
        Some("a,3,2\nb,3,0\nc,0,0\nd,1,4\n"),
    );
    assert!(out.success, "{}", out.stderr);
    let rows: Vec<_> = json_rows(&out.stdout)
        .iter()
        .map(|r| (r["card"].as_str().unwrap().to_string(), r["p"].as_f64()))
        .collect();
    assert_eq!(
        rows,
        [("a".to_string(), Some(1.5)), ("d".to_string(), Some(0.25))]
    );
    let letters = json_rows(
        &std::fs::read_to_string(dir.path().join("dead_letters.jsonl")).unwrap_or_default(),
    );
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert!(
        letters
            .iter()
            .all(|l| l["reason"] == "float result is not finite in `per_unit(amount, units)`"),
        "{letters:?}"
    );
    assert!(
        out.stderr.contains("non-finite float results: 2"),
        "{}",
        out.stderr
    );
}

/// What `weir build p.weir --rust udfs.rs` reports for a Rust file that does not compile (the
/// CLI's steps): the rendered diagnostics, or the driver's error when none is the user's.
fn failure_report(name: &str, udfs: &str, pipeline: &str) -> String {
    let mut sources = SourceMap::new();
    let id = sources.add("p.weir", pipeline);
    let file = sources.add("udfs.rs", udfs);
    let functions = match functions_from_rust(udfs) {
        Ok(f) => f,
        Err(e) => {
            let d = e.diagnostic(file).expect("the error has a place");
            return weir_compiler::diagnostics::render(&sources, &[d], false);
        }
    };
    let (compiled, calls) =
        with_udfs_calls(&functions, || compile(&sources, id, &Options::default()));
    let mut compiled = compiled.expect("the pipeline checks");
    compiled.rust.push_str(DECLARATION);
    let module = ModuleFile {
        name: "udfs.rs".to_string(),
        text: module_text(udfs),
    };
    match weir_compiler::driver::build_with(
        &compiled.rust,
        &[module],
        name,
        &BuildConfig::from_env().expect("a cache directory"),
    ) {
        Ok(_) => panic!("{name} compiles"),
        Err(DriverError::Compile { errors, output, .. }) => {
            let mapped = rustc_errors(&sources, file, &functions, &calls, &errors);
            if mapped.diagnostics.is_empty() {
                return output;
            }
            weir_compiler::diagnostics::render(&sources, &mapped.diagnostics, false)
        }
        Err(e) => panic!("{e}"),
    }
}

/// The report names the user's file and line, shows the offending text, and does not blame
/// weir.
fn assert_users(report: &str, at: &str, text: &str) {
    assert!(report.contains(at), "no {at} in:\n{report}");
    assert!(report.contains(text), "no {text:?} in:\n{report}");
    assert!(!report.contains("bug in weir"), "{report}");
    assert!(!report.contains("main.rs"), "{report}");
}

#[test]
fn a_type_error_in_a_rust_function_points_at_its_line() {
    let udfs = UDFS.replace(
        "if country == \"NL\"",
        "let factor: i64 = 2.5;\n    if country == \"NL\"",
    );
    let report = failure_report("test_udf_type_error", &udfs, PIPELINE);
    assert_users(&report, "udfs.rs:5:23", "let factor: i64 = 2.5;");
    assert!(report.contains("mismatched types"), "{report}");
    assert!(
        report.contains("expected `i64`, found floating-point number"),
        "{report}"
    );
}

#[test]
fn a_missing_function_points_at_its_call_in_the_rust_file() {
    let udfs = UDFS.replace("amount / 100.0", "scale(amount)");
    let report = failure_report("test_udf_missing_function", &udfs, PIPELINE);
    assert_users(&report, "udfs.rs:5:26", "scale(amount)");
    assert!(report.contains("cannot find function `scale`"), "{report}");
}

#[test]
fn a_function_that_does_not_fit_its_call_points_at_both() {
    let udfs = format!("{UDFS}\npub fn tag(country: &str) -> &str {{\n    country\n}}\n");
    let pipeline = PIPELINE.replace(
        "score: risk(amount, country)",
        "score: risk(amount, country), tag: tag(country)",
    );
    let report = failure_report("test_udf_signature", &udfs, &pipeline);
    // The pipeline's call, and the function's definition.
    assert_users(&report, "p.weir:5:70", "tag: tag(country)");
    assert!(
        report.contains("calls `tag` as `fn(&str) -> String`"),
        "{report}"
    );
    assert_users(
        &report,
        "udfs.rs:26:8",
        "pub fn tag(country: &str) -> &str {",
    );
    assert!(
        report.contains("does not fit the way the pipeline calls it"),
        "{report}"
    );
}

#[test]
fn syntax_errors_and_unsupported_types_point_at_the_rust_file() {
    let udfs = UDFS.replace("amount / 100.0 }", "amount / 100.0 ");
    let report = failure_report("test_udf_syntax", &udfs, PIPELINE);
    assert_users(&report, "udfs.rs:", "not valid Rust");
    let udfs = UDFS.replace("country: &str", "country: &[u8]");
    let report = failure_report("test_udf_unsupported", &udfs, PIPELINE);
    assert_users(
        &report,
        "udfs.rs:4:35",
        "pub fn risk(amount: f64, country: &[u8]) -> f64 {",
    );
    assert!(report.contains("has no weir type"), "{report}");
}
