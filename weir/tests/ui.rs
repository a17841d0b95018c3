//! Compile-fail tests: each `ui/*.rs` must fail to compile with exactly the errors in its
//! `.stderr` (regenerate with `TRYBUILD=overwrite cargo test -p weir --test ui`, then review).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
