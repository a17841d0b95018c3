//! weir's compiler: a plain library behind the CLI, the proc macro and the build.rs API.
//!
//! ```text
//!  .weir text ──parse (weir_dsl)──▶ AST ──sema::check──▶ Program (names, types)
//!      ──ir::lower──▶ Dataflow (petgraph) ──passes::run──▶ optimized Dataflow
//!      ──ir::validate──▶ GraphInfo ──codegen::generate──▶ main.rs (Rust, prettyplease)
//!      ──driver (cargo, cached by hash)──▶ native binary linked to weir_runtime
//! ```
//!
//! Every stage reports problems as [`Diagnostic`]s and keeps going where it can, so one run
//! shows all the mistakes of a file.

pub mod build;
pub mod codegen;
pub mod codes;
pub mod diagnostics;
#[cfg(feature = "driver")]
pub mod driver;
pub mod embed;
pub mod ir;
pub mod ops;
pub mod passes;
pub mod paths;
pub mod preview;
pub mod rust_file;
pub mod sema;

pub use weir_dsl::{Diagnostic, FileId, SourceMap, Span};

use ir::validate::{self, GraphInfo};
use ir::Dataflow;

/// Options that change what the compiler produces.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Skip fusion and chaining: every operator its own function and task.
    pub no_fusion: bool,
    /// The preview build of `weir run --limit N`: every sink prints to stdout (files and
    /// topics are left alone), at most `--limit` rows each ([`preview`]).
    pub preview: bool,
    /// The directory relative paths in the pipeline are resolved against (the CLI: the
    /// pipeline file's); `None` leaves them as written ([`paths`]).
    pub base_dir: Option<std::path::PathBuf>,
}

/// The result of compiling one pipeline file.
pub struct Compiled {
    /// The graph as built from the program, before any pass.
    pub logical: Dataflow,
    /// The graph after the passes.
    pub physical: Dataflow,
    pub info: GraphInfo,
    /// Passes that changed the graph, in order.
    pub passes_applied: Vec<&'static str>,
    /// The generated `main.rs`.
    pub rust: String,
    /// Warnings (compilation succeeded).
    pub warnings: Vec<Diagnostic>,
}

/// Parses and checks a file: the program, or every error found.
pub fn check(sources: &SourceMap, file: FileId) -> (Option<sema::Program>, Vec<Diagnostic>) {
    let text = &sources.get(file).text;
    let (module, mut diagnostics) = weir_dsl::parse_file(sources, file);
    let Some(module) = module else {
        return (None, diagnostics);
    };
    // The parser leaves items with errors out of the module; tell the checker which names
    // they declare, so that their uses do not cascade into "unknown stream" errors.
    let unparsed = diagnostics
        .iter()
        .any(Diagnostic::is_error)
        .then(|| weir_dsl::declared_names(file, text));
    // `.avsc` files are read beside the pipeline file (a macro's inline text: the crate's).
    let dir = std::path::Path::new(&sources.get(file).name)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    let (program, more) = sema::check_partial_in(&module, unparsed.as_ref(), dir);
    diagnostics.extend(more);
    // `weir check` and `weir run` agree: a file without a sink has nothing to run. (Not said
    // beside other errors: the sink may be an item that did not parse.)
    if let Some(program) = program.as_ref().filter(|p| p.sinks.is_empty()) {
        if !diagnostics.iter().any(Diagnostic::is_error) {
            diagnostics.push(no_sink(sources, file, program));
        }
    }
    weir_dsl::diagnostic::sort(&mut diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return (None, diagnostics);
    }
    (program, diagnostics)
}

/// E0501: the program has no sink, pointing at the stream likeliest to need one.
fn no_sink(sources: &SourceMap, file: FileId, program: &sema::Program) -> Diagnostic {
    // Point at the last stream declared: the likeliest one to send somewhere.
    let last_stream = program
        .streams
        .iter()
        .rev()
        .find_map(|s| Some((s.name.clone()?, s.span)));
    let last_source = program.sources.last().map(|s| (s.name.clone(), s.span));
    match last_stream.or(last_source) {
        Some((name, span)) => {
            // Underline the first line of the declaration only.
            let text = &sources.get(file).text;
            let end = text
                .get(span.range())
                .and_then(|t| t.find('\n'))
                .map_or(span.end, |i| span.start + i as u32);
            let span = Span { end, ..span };
            Diagnostic::error(
                "E0501",
                span,
                "this file has no `sink`, so there is nothing to run",
            )
            .with_label("not sent to any sink")
            .with_hint(format!("add one, e.g. `sink {name} -> stdout()`"))
        }
        None => Diagnostic::error(
            "E0501",
            Span::new(file, 0, 0),
            "this file has no `sink`, so there is nothing to run",
        )
        .with_hint("declare a `source` and add a sink, e.g. `sink my_stream -> stdout()`"),
    }
}

/// Compiles a file all the way to generated Rust.
pub fn compile(
    sources: &SourceMap,
    file: FileId,
    options: &Options,
) -> Result<Compiled, Vec<Diagnostic>> {
    let (program, warnings) = check(sources, file);
    let Some(mut program) = program else {
        return Err(warnings);
    };
    if let Some(base) = &options.base_dir {
        paths::resolve(&mut program, base);
    }
    if options.preview {
        preview::rewrite_sinks(&mut program);
    }
    let logical = ir::lower::lower(&program, sources);
    let cx = passes::PassCx {
        no_fusion: options.no_fusion,
    };
    let (physical, passes_applied) = passes::run(logical.clone(), &cx);
    let info = match validate::validate(&physical) {
        Ok(info) => validate::GraphInfo {
            inline_exchanges: !options.no_fusion,
            ..info
        },
        Err(err) => {
            return Err(vec![Diagnostic::error(
                "E9999",
                Span::new(file, 0, 0),
                err.to_string(),
            )
            .with_hint(
                "this is a bug in weir; please report it with the pipeline",
            )]);
        }
    };
    let rust = codegen::generate(&physical, &info);
    Ok(Compiled {
        logical,
        physical,
        info,
        passes_applied,
        rust,
        warnings,
    })
}
