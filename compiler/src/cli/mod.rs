//! Command-line parsing (clap) and the subcommands.

mod bench;
mod bench_files;
mod bench_kafka;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use weir_compiler::driver::{self, BuildConfig, Profile};
use weir_compiler::ir::explain::{self, ExplainFormat};
use weir_compiler::sema::udf::{with_udfs, Udf};
use weir_compiler::{diagnostics, Compiled, Options, SourceMap};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Compile declarative stream pipelines into native binaries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Dot,
    Mermaid,
}

#[derive(clap::Args, Clone)]
struct CompileArgs {
    /// The pipeline file.
    file: PathBuf,
    /// A Rust file of functions the pipeline calls (`pub fn`s and `weir::Accumulator` impls);
    /// it becomes `mod udfs` of the generated crate.
    #[arg(long)]
    rust: Option<PathBuf>,
    /// Keep every operator separate: no fusion, no chaining (the benchmark baseline).
    #[arg(long)]
    no_fusion: bool,
}

#[derive(clap::Args, Clone)]
struct BuildArgs {
    #[command(flatten)]
    compile: CompileArgs,
    /// Build unoptimized (compiles faster, runs slower).
    #[arg(long)]
    dev: bool,
    /// Show cargo's output.
    #[arg(long, short)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check a pipeline; print every error.
    Check {
        file: PathBuf,
        /// A Rust file of functions the pipeline calls.
        #[arg(long)]
        rust: Option<PathBuf>,
    },
    /// Print the dataflow graph before and after the optimization passes.
    Explain {
        #[command(flatten)]
        compile: CompileArgs,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Print the generated Rust.
    Emit {
        #[command(flatten)]
        compile: CompileArgs,
    },
    /// Compile a pipeline into a native binary.
    Build {
        #[command(flatten)]
        build: BuildArgs,
        /// Where to write the binary.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Compile (or reuse the cached binary) and run a pipeline. Arguments after `--` go to the
    /// pipeline binary (`--events N`, `--parallelism P`, `--generators G`, `--dead-letters PATH`).
    Run {
        #[command(flatten)]
        build: BuildArgs,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Benchmark Nexmark queries on the built-in generator: fused, unfused, and the generator alone;
    /// with `--input json|csv|both`, pipelines reading bids from files instead.
    Bench(bench::BenchArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { file, rust } => {
            let (sources, id) = load(&file)?;
            let (udfs, _) = rust_functions(rust.as_deref())?;
            let (_, diags) = with_udfs(&udfs, || weir_compiler::check(&sources, id));
            print_diagnostics(&sources, &diags);
            if diags.iter().any(|d| d.is_error()) {
                return Ok(ExitCode::FAILURE);
            }
            eprintln!("{}: ok", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { compile, format } => {
            let Some((_, compiled)) = compile_file(&compile)? else {
                return Ok(ExitCode::FAILURE);
            };
            let format = match format {
                Format::Text => ExplainFormat::Text,
                Format::Dot => ExplainFormat::Dot,
                Format::Mermaid => ExplainFormat::Mermaid,
            };
            match format {
                ExplainFormat::Text => {
                    println!("== logical plan (before passes)");
                    print!("{}", explain::render(&compiled.logical, format));
                    println!();
                    let applied = if compiled.passes_applied.is_empty() {
                        "none".to_string()
                    } else {
                        compiled.passes_applied.join(", ")
                    };
                    println!("== physical plan (after passes: {applied})");
                    print!("{}", explain::render(&compiled.physical, format));
                    println!("\n{} task(s)", compiled.info.tasks.len());
                }
                // One graph per document: the optimized one, which is what runs.
                _ => print!("{}", explain::render(&compiled.physical, format)),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Emit { compile } => {
            let Some((_, compiled)) = compile_file(&compile)? else {
                return Ok(ExitCode::FAILURE);
            };
            print!("{}", compiled.rust);
            Ok(ExitCode::SUCCESS)
        }
        Command::Build { build, output } => {
            let Some(built) = build_file(&build)? else {
                return Ok(ExitCode::FAILURE);
            };
            std::fs::copy(&built.binary, &output)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!(
                "built {} in {:.2} s{}",
                output.display(),
                built.elapsed.as_secs_f64(),
                if built.cached { " (cached)" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { build, args } => {
            let Some(built) = build_file(&build)? else {
                return Ok(ExitCode::FAILURE);
            };
            if built.cached {
                eprintln!("weir: cached binary {}", built.hash);
            } else {
                eprintln!("weir: compiled in {:.2} s", built.elapsed.as_secs_f64());
            }
            let status = std::process::Command::new(&built.binary)
                .args(&args)
                .status()
                .with_context(|| format!("cannot start {}", built.binary.display()))?;
            Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ))
        }
        Command::Bench(args) => bench::run(args),
    }
}

/// Reads a pipeline file. Bytes that are not UTF-8 are the checker's to report, with their
/// line and column.
fn load(path: &Path) -> Result<(SourceMap, weir_compiler::FileId)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut sources = SourceMap::new();
    let id = sources.add_bytes(path.display().to_string(), bytes);
    Ok((sources, id))
}

fn print_diagnostics(sources: &SourceMap, diags: &[weir_compiler::Diagnostic]) {
    if !diags.is_empty() {
        let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        eprint!("{}", diagnostics::render(sources, diags, color));
    }
}

/// Compiles a file to Rust; prints diagnostics; `None` when there were errors.
/// The functions of `--rust FILE`, and the module to append to the generated code.
fn rust_functions(path: Option<&Path>) -> Result<(Vec<Udf>, String)> {
    let Some(path) = path else {
        return Ok((Vec::new(), String::new()));
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let udfs = weir_compiler::embed::functions_from_rust(&text)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let module = weir_compiler::embed::rust_module(&text, &path.display().to_string());
    Ok((udfs, module))
}

fn compile_file(args: &CompileArgs) -> Result<Option<(SourceMap, Compiled)>> {
    let (sources, id) = load(&args.file)?;
    let (udfs, module) = rust_functions(args.rust.as_deref())?;
    let options = Options {
        no_fusion: args.no_fusion,
    };
    match with_udfs(&udfs, || weir_compiler::compile(&sources, id, &options)) {
        Ok(mut compiled) => {
            compiled.rust.push_str(&module);
            print_diagnostics(&sources, &compiled.warnings);
            Ok(Some((sources, compiled)))
        }
        Err(diags) => {
            print_diagnostics(&sources, &diags);
            Ok(None)
        }
    }
}

fn build_file(args: &BuildArgs) -> Result<Option<driver::Built>> {
    let Some((_, compiled)) = compile_file(&args.compile)? else {
        return Ok(None);
    };
    let stem = args
        .compile
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = if args.compile.no_fusion {
        format!("{stem}_unfused")
    } else {
        stem
    };
    let mut config = BuildConfig::from_env();
    config.profile = if args.dev {
        Profile::Dev
    } else {
        Profile::Release
    };
    config.verbose = args.verbose;
    if !args.dev {
        eprintln!(
            "weir: compiling {} (release)...",
            args.compile.file.display()
        );
    }
    let built = driver::build(&compiled.rust, &name, &config).map_err(|e| anyhow!(e))?;
    Ok(Some(built))
}
