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

pub mod codegen;
pub mod diagnostics;
pub mod driver;
pub mod ir;
pub mod ops;
pub mod passes;
pub mod sema;

pub use weir_dsl::{Diagnostic, FileId, SourceMap, Span};

use ir::validate::{self, GraphInfo};
use ir::Dataflow;

/// Options that change what the compiler produces.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Skip fusion and chaining: every operator its own function and task.
    pub no_fusion: bool,
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
    let (module, mut diagnostics) = weir_dsl::parse(file, text);
    let Some(module) = module else {
        return (None, diagnostics);
    };
    let (program, more) = sema::check(&module);
    diagnostics.extend(more);
    weir_dsl::diagnostic::sort(&mut diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        return (None, diagnostics);
    }
    (program, diagnostics)
}

/// Compiles a file all the way to generated Rust.
pub fn compile(
    sources: &SourceMap,
    file: FileId,
    options: &Options,
) -> Result<Compiled, Vec<Diagnostic>> {
    let (program, warnings) = check(sources, file);
    let Some(program) = program else {
        return Err(warnings);
    };
    if program.sinks.is_empty() {
        let span = Span::new(file, 0, 0);
        let mut diagnostics = warnings;
        diagnostics.push(
            Diagnostic::error(
                "E0501",
                span,
                "this file has no `sink`, so there is nothing to run",
            )
            .with_hint("add one, e.g. `sink my_stream -> stdout()`"),
        );
        return Err(diagnostics);
    }
    let logical = ir::lower::lower(&program, sources);
    let cx = passes::PassCx {
        no_fusion: options.no_fusion,
    };
    let (physical, passes_applied) = passes::run(logical.clone(), &cx);
    let info = match validate::validate(&physical) {
        Ok(info) => info,
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
