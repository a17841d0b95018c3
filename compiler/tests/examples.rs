//! Snapshots of every example: the graph before and after the passes (text and DOT), and the
//! generated Rust. Generated code must be byte-for-byte deterministic: compiling twice gives
//! the same text.

use std::path::{Path, PathBuf};

use weir_compiler::ir::explain;
use weir_compiler::{compile, Options, SourceMap};

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)
            .expect("examples folder exists")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "weir") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 8, "expected the examples, found {files:?}");
    files
}

fn name(path: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    path.strip_prefix(&root)
        .unwrap_or(path)
        .with_extension("")
        .to_string_lossy()
        .replace('/', "__")
}

fn compile_file(path: &Path, no_fusion: bool) -> weir_compiler::Compiled {
    let mut sources = SourceMap::new();
    let text = std::fs::read_to_string(path).expect("example is readable");
    // Named by its full path, so that the `.avsc` files an example names are read beside it.
    let id = sources.add(path.display().to_string(), text);
    match compile(
        &sources,
        id,
        &Options {
            no_fusion,
            ..Options::default()
        },
    ) {
        Ok(c) => c,
        Err(d) => panic!(
            "{}",
            weir_compiler::diagnostics::render(&sources, &d, false)
        ),
    }
}

#[test]
fn graphs_before_and_after_passes() {
    for path in examples() {
        let compiled = compile_file(&path, false);
        let text = format!(
            "== before passes\n{}\n== after passes ({})\n{}\n== dot\n{}",
            explain::text(&compiled.logical),
            compiled.passes_applied.join(", "),
            explain::text(&compiled.physical),
            explain::dot(&compiled.physical),
        );
        insta::assert_snapshot!(format!("graph__{}", name(&path)), text);
    }
}

#[test]
fn generated_code() {
    for path in examples() {
        let compiled = compile_file(&path, false);
        insta::assert_snapshot!(format!("rust__{}", name(&path)), compiled.rust);
    }
}

#[test]
fn generated_code_is_deterministic() {
    for path in examples() {
        for no_fusion in [false, true] {
            let a = compile_file(&path, no_fusion).rust;
            let b = compile_file(&path, no_fusion).rust;
            assert_eq!(a, b, "{}: two compilations differ", path.display());
        }
    }
}

#[test]
fn fusion_changes_the_plan() {
    // q14 has a filter and a select: fused they are one operator in one task with the source
    // and the sink; unfused every operator is a task of its own.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nexmark/q14.weir");
    let fused = compile_file(&path, false);
    let unfused = compile_file(&path, true);
    assert_eq!(fused.info.tasks.len(), 1);
    assert_eq!(unfused.info.tasks.len(), 4);
    assert!(fused.passes_applied.contains(&"fuse_stateless"));
    assert!(!unfused.passes_applied.contains(&"fuse_stateless"));
    assert!(fused.rust.contains("_fused"));
    assert!(!unfused.rust.contains("_fused"));
}

#[test]
fn single_instance_exchanges_are_inlined_only_with_fusion() {
    // max_price_per_window: a global window fed by the source's instances, then a checksum
    // sink. Fused, the window may run in the source's task when there is one source instance;
    // the unfused baseline keeps every task a thread of its own.
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/nexmark/max_price_per_window.weir");
    let fused = compile_file(&path, false);
    let unfused = compile_file(&path, true);
    assert!(
        fused.rust.contains("Route::Here(Inline::new("),
        "{}",
        fused.rust
    );
    assert!(!unfused.rust.contains("Inline::new("));
}

#[test]
fn projection_is_pushed_into_file_decoders() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clicks/clicks.weir");
    let compiled = compile_file(&path, false);
    let text = explain::text(&compiled.physical);
    assert!(text.contains("reads only: page, ts, duration_ms"), "{text}");
    // The unused columns are never converted: only the read fields are written into the
    // record. The header check still names every declared column.
    assert!(compiled.rust.contains("&mut into.page"));
    assert!(compiled.rust.contains("in_field(\"duration_ms\")"));
    for unread in ["referrer", "user"] {
        assert!(
            !compiled.rust.contains(&format!("into.{unread}")),
            "{unread} should not be decoded"
        );
    }
    assert!(compiled
        .rust
        .contains("[\"user\", \"page\", \"ts\", \"duration_ms\", \"referrer\"]"));
}

#[test]
fn a_preview_prints_an_avro_sinks_rows_as_json() {
    // `weir run --limit N` rewrites every sink to stdout, which takes no Avro: the rows of an
    // Avro sink are previewed as JSON lines.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/avro/from_kafka.weir");
    let mut sources = SourceMap::new();
    let text = std::fs::read_to_string(&path).expect("example is readable");
    let id = sources.add(path.display().to_string(), text);
    let options = Options {
        preview: true,
        ..Options::default()
    };
    let compiled = compile(&sources, id, &options).unwrap_or_else(|d| {
        panic!(
            "{}",
            weir_compiler::diagnostics::render(&sources, &d, false)
        )
    });
    assert!(!compiled.rust.contains("AvroFileSink"));
    assert!(
        compiled.rust.contains("json::write_i64"),
        "{}",
        compiled.rust
    );
}

#[test]
fn a_fused_chain_binds_a_select_only_for_the_steps_that_read_it() {
    // A filter after the first select reads its record through `r1`; the last select's
    // value is returned, never bound to a reference.
    let text = "source bids = nexmark(stream: \"bid\", events: 1000)\n\
                let big = bids\n    \
                |> select { auction, cents: price * 100 }\n    \
                |> filter cents > 5000\n    \
                |> select { auction }\n\
                sink big -> checksum()\n";
    let mut sources = SourceMap::new();
    let id = sources.add("fused.weir".to_string(), text.to_string());
    let compiled = match compile(&sources, id, &Options::default()) {
        Ok(c) => c,
        Err(d) => panic!(
            "{}",
            weir_compiler::diagnostics::render(&sources, &d, false)
        ),
    };
    let rust = &compiled.rust;
    let bindings: Vec<&str> = rust
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("let r") && l.contains(" = &s"))
        .collect();
    assert_eq!(bindings, ["let r0 = &s0;"], "{rust}");
    assert!(rust.contains("r0.cents"), "{rust}");
}
