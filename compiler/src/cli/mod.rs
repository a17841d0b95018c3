//! Command-line parsing (clap) and the subcommands.

mod against;
mod bench;
mod bench_files;
mod bench_kafka;
mod bench_postgres;
mod messages;
mod schema;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use weir_compiler::driver::{self, BuildConfig, Profile};
use weir_compiler::driver::{DriverError, ModuleFile};
use weir_compiler::ir::explain::{self, ExplainFormat};
use weir_compiler::rust_file;
use weir_compiler::sema::udf::{with_udfs_calls, Udf};
use weir_compiler::{Compiled, FileId, Options, SourceMap, Span};

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Compile declarative stream pipelines into native binaries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How diagnostics are printed on stderr: `human` (text with the source underlined) or
    /// `json` (one JSON object per diagnostic and line, for editors).
    #[arg(long, global = true, value_enum, default_value = "human")]
    message_format: messages::MessageFormat,
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
    /// The preview build (set by `run --limit`): every sink prints to stdout.
    #[arg(skip)]
    preview: bool,
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
    /// Compile in the HTTP endpoint: the binary's `--http ADDR` then serves Prometheus
    /// metrics (`/metrics`) and a JSON view of the run (`/api/pipeline`). `weir run` turns
    /// it on by itself when the binary's arguments have `--http`.
    #[arg(long)]
    http: bool,
    /// Compile in checkpoints on object storage: the binary's `--checkpoint-dir` then also
    /// takes `s3://bucket/prefix` (credentials from the AWS_* environment variables). `weir
    /// run` turns it on by itself when the binary's arguments have an s3:// checkpoint dir.
    #[arg(long)]
    object_store: bool,
    /// Compile in the disk state backend: the binary's `--state disk` then keeps keyed state
    /// larger than memory in an on-disk LSM store (fjall). `weir run` turns it on by itself
    /// when the binary's arguments have `--state disk`.
    #[arg(long)]
    state_disk: bool,
    #[command(flatten)]
    cache: CacheArgs,
}

#[derive(clap::Args, Clone)]
struct CacheArgs {
    /// The build cache: generated crates, the shared cargo target folder, binaries. Default:
    /// `WEIR_CACHE_DIR`, else `$XDG_CACHE_HOME/weir` or `~/.cache/weir` (from a checkout's
    /// `target/`: `target/weir`). A folder of the project (`--cache-dir .weir`) keeps its
    /// builds apart.
    #[arg(long, value_name = "DIR", global = true)]
    cache_dir: Option<PathBuf>,
}

impl CacheArgs {
    fn config(&self) -> Result<BuildConfig> {
        let mut config = BuildConfig::from_env()?;
        if let Some(dir) = &self.cache_dir {
            config.cache_dir = std::path::absolute(dir)
                .with_context(|| format!("cannot use {} as the cache", dir.display()))?;
        }
        Ok(config)
    }
}

#[derive(Subcommand, Clone, Copy)]
enum CacheCommand {
    /// Print the cache directory.
    Dir,
    /// Delete what weir keeps in the cache directory (crates, binaries, the cargo target
    /// folder, unpacked runtimes).
    Clean,
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print a `schema` guessed from the first lines of a JSON-lines or CSV file (with a
    /// header): each field's narrowest type, `?` where a value was missing.
    Infer {
        file: PathBuf,
        /// The file's format (default: from its extension, .jsonl/.json/.ndjson or .csv/.tsv).
        #[arg(long, value_enum)]
        format: Option<schema::InferFormat>,
        /// The CSV delimiter (one byte; default `,`, or a tab for .tsv).
        #[arg(long)]
        delimiter: Option<char>,
        /// How many lines to sample.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        lines: u64,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Parse and type-check a pipeline; print every error. With `--against DIR`, also say
    /// whether it can restore the checkpoint a restart in DIR would resume from (exit code 1
    /// when it cannot, naming the operators whose state does not fit), running nothing.
    Check {
        file: PathBuf,
        /// A Rust file of functions the pipeline calls.
        #[arg(long)]
        rust: Option<PathBuf>,
        /// A checkpoint folder (a run's `--checkpoint-dir`) to check the pipeline against.
        #[arg(long, value_name = "CHECKPOINT_DIR")]
        against: Option<PathBuf>,
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
        /// Preview: every sink prints its first N rows to stdout (files and Kafka topics are
        /// not written), and the run stops once every sink has N rows or the input ends.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// `run --limit N` (20 by default): the first rows of every sink on stdout, then stop.
    Preview {
        #[command(flatten)]
        build: BuildArgs,
        /// Rows per sink.
        #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// The build cache: where it is (`weir cache dir`), and emptying it (`weir cache clean`).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
        #[command(flatten)]
        cache: CacheArgs,
    },
    /// Schemas: `weir schema infer FILE` prints one guessed from the file's first lines.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Benchmark Nexmark queries on the built-in generator: fused, unfused, and the generator alone;
    /// with `--input json|csv|both`, pipelines reading bids from files instead.
    Bench(bench::BenchArgs),
}

pub fn main() -> ExitCode {
    // `weir explain x.weir | head`: a reader that closes the pipe ends the command quietly,
    // as it ends other command-line tools, instead of `println!` panicking on the write.
    // SAFETY: restores the default action of a signal before any thread is started.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    messages::set_format(cli.message_format);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            messages::print_error(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check {
            file,
            rust,
            against: Some(dir),
        } => {
            let args = CompileArgs {
                file: file.clone(),
                rust,
                no_fusion: false,
                preview: false,
            };
            let Some(CompiledFile { compiled, .. }) = compile_file(&args)? else {
                return Ok(ExitCode::FAILURE);
            };
            match against::verdict(&compiled, &file, &dir) {
                Ok(report) => {
                    print!("{report}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    messages::print_error(&why);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Check {
            file,
            rust,
            against: None,
        } => {
            let (mut sources, id) = load(&file)?;
            let Some(rust) = rust_functions(&mut sources, rust.as_deref())? else {
                return Ok(ExitCode::FAILURE);
            };
            let ((_, diags), _) =
                with_udfs_calls(&rust.udfs, || weir_compiler::check(&sources, id));
            print_diagnostics(&sources, &diags);
            if diags.iter().any(|d| d.is_error()) {
                return Ok(ExitCode::FAILURE);
            }
            if messages::human() {
                eprintln!("{}: ok", file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema {
            command:
                SchemaCommand::Infer {
                    file,
                    format,
                    delimiter,
                    lines,
                },
        } => {
            let tsv = file.extension().is_some_and(|e| e == "tsv");
            let delimiter = match delimiter {
                Some(c) if c.is_ascii() => c as u8,
                Some(c) => {
                    return Err(anyhow!(
                        "the delimiter must be one ASCII character, not `{c}`"
                    ))
                }
                None if tsv => b'\t',
                None => b',',
            };
            let lines = usize::try_from(lines).unwrap_or(usize::MAX);
            print!("{}", schema::infer(&file, format, delimiter, lines)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain { compile, format } => {
            let Some(CompiledFile { compiled, .. }) = compile_file(&compile)? else {
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
            let Some(CompiledFile { compiled, rust, .. }) = compile_file(&compile)? else {
                return Ok(ExitCode::FAILURE);
            };
            print!("{}", compiled.rust);
            if let Some(module) = rust.module {
                print!("\n// src/{}\n{}", module.name, module.text);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Build { build, output } => {
            let Some((built, _)) = build_file(&build)? else {
                return Ok(ExitCode::FAILURE);
            };
            std::fs::copy(&built.binary, &output)
                .with_context(|| format!("cannot write {}", output.display()))?;
            if messages::human() {
                eprintln!(
                    "built {} in {:.2} s{}",
                    output.display(),
                    built.elapsed.as_secs_f64(),
                    if built.cached { " (cached)" } else { "" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview { build, limit, args } => run(Cli {
            command: Command::Run {
                build,
                limit: Some(limit),
                args,
            },
            message_format: cli.message_format,
        }),
        Command::Run {
            mut build,
            limit,
            mut args,
        } => {
            build.compile.preview = limit.is_some();
            // The binary is asked to serve metrics: build it with the endpoint.
            build.http |= args
                .iter()
                .any(|a| a == "--http" || a.starts_with("--http="));
            // Checkpoints on object storage: build it with the S3 client.
            build.object_store |= checkpoints_on_object_storage(&args);
            // State on disk: build it with the LSM store.
            build.state_disk |= state_on_disk(&args);
            let Some((built, kafka_source)) = build_file(&build)? else {
                return Ok(ExitCode::FAILURE);
            };
            if let Some(limit) = limit {
                let mut preview = vec!["--limit".to_string(), limit.to_string()];
                // A preview reads a Kafka topic in a group of its own, so it never moves the
                // committed positions of the pipeline's group.
                let group_given = args.iter().any(|a| a.contains("group.id="));
                if kafka_source && !group_given {
                    preview.push("--kafka-property".into());
                    preview.push(format!("group.id=weir-preview-{}", std::process::id()));
                }
                args.splice(0..0, preview);
            }
            if messages::human() {
                match built.cached {
                    true => eprintln!("weir: cached binary {}", built.hash),
                    false => eprintln!("weir: compiled in {:.2} s", built.elapsed.as_secs_f64()),
                }
            }
            let status = std::process::Command::new(&built.binary)
                .args(&args)
                .status()
                .with_context(|| format!("cannot start {}", built.binary.display()))?;
            Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ))
        }
        Command::Cache { command, cache } => {
            let config = cache.config()?;
            let dir = &config.cache_dir;
            match command {
                CacheCommand::Dir => println!("{}", dir.display()),
                CacheCommand::Clean => {
                    // Only weir's own folders: a mistaken `--cache-dir ~` loses nothing else.
                    for sub in driver::CACHE_FOLDERS {
                        let path = dir.join(sub);
                        match std::fs::remove_dir_all(&path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => {
                                return Err(e)
                                    .with_context(|| format!("cannot delete {}", path.display()))
                            }
                        }
                    }
                    if messages::human() {
                        eprintln!("weir: emptied the cache in {}", dir.display());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
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
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    messages::print(sources, diags, color);
}

/// The `--rust FILE` of a command: its functions, where the pipeline calls them, and the
/// module it becomes in the generated crate.
#[derive(Default)]
struct RustFunctions {
    /// The file in the source map (its diagnostics are shown like the pipeline's).
    file: Option<FileId>,
    udfs: Vec<Udf>,
    calls: Vec<(String, Span)>,
    module: Option<ModuleFile>,
}

/// Reads the functions of `--rust FILE` into `sources`; prints a problem with the file and
/// returns `None`.
fn rust_functions(sources: &mut SourceMap, path: Option<&Path>) -> Result<Option<RustFunctions>> {
    let Some(path) = path else {
        return Ok(Some(RustFunctions::default()));
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = sources.add(path.display().to_string(), text.clone());
    let udfs = match rust_file::functions(&text) {
        Ok(udfs) => udfs,
        Err(e) => match e.diagnostic(file) {
            Some(d) => {
                print_diagnostics(sources, &[d]);
                return Ok(None);
            }
            None => return Err(anyhow!("{}: {e}", path.display())),
        },
    };
    Ok(Some(RustFunctions {
        file: Some(file),
        udfs,
        calls: Vec::new(),
        module: Some(ModuleFile {
            name: rust_file::MODULE_FILE.to_string(),
            text: rust_file::module_text(&text),
        }),
    }))
}

/// A pipeline compiled to Rust, with its sources and its Rust functions.
struct CompiledFile {
    sources: SourceMap,
    compiled: Compiled,
    rust: RustFunctions,
}

/// Compiles a file to Rust; prints diagnostics; `None` when there were errors.
fn compile_file(args: &CompileArgs) -> Result<Option<CompiledFile>> {
    let (mut sources, id) = load(&args.file)?;
    let Some(mut rust) = rust_functions(&mut sources, args.rust.as_deref())? else {
        return Ok(None);
    };
    // Paths in the pipeline are relative to its file (`paths`).
    // (The folder canonical, so that messages name `/data/in.csv`, not `/cwd/../data/in.csv`.)
    let file = std::path::absolute(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let base_dir = file
        .parent()
        .map(|dir| dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf()));
    if let Some(dir) = base_dir.as_ref().filter(|d| d.to_str().is_none()) {
        return Err(anyhow!(
            "the folder of {} ({}) is not UTF-8, so the pipeline's relative paths cannot be \
             resolved against it; move the pipeline to another folder",
            args.file.display(),
            dir.display()
        ));
    }
    let options = Options {
        no_fusion: args.no_fusion,
        preview: args.preview,
        base_dir,
    };
    let (result, calls) = with_udfs_calls(&rust.udfs, || {
        weir_compiler::compile(&sources, id, &options)
    });
    rust.calls = calls;
    match result {
        Ok(mut compiled) => {
            if rust.module.is_some() {
                compiled.rust.push_str(rust_file::DECLARATION);
            }
            print_diagnostics(&sources, &compiled.warnings);
            Ok(Some(CompiledFile {
                sources,
                compiled,
                rust,
            }))
        }
        Err(diags) => {
            print_diagnostics(&sources, &diags);
            Ok(None)
        }
    }
}

/// Builds a pipeline; also says whether it reads a Kafka topic.
fn build_file(args: &BuildArgs) -> Result<Option<(driver::Built, bool)>> {
    let Some(CompiledFile {
        sources,
        compiled,
        rust,
    }) = compile_file(&args.compile)?
    else {
        return Ok(None);
    };
    let stem = args
        .compile
        .file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name = stem;
    if args.compile.no_fusion {
        name.push_str("_unfused");
    }
    if args.compile.preview {
        name.push_str("_preview");
    }
    let kafka_source = compiled.logical.ops().into_iter().any(|op| {
        matches!(
            &compiled.logical.node(op).op,
            weir_compiler::ir::Op::Source { def, .. }
                if matches!(def.kind, weir_compiler::sema::SourceKind::Kafka { .. })
        )
    });
    let mut config = args.cache.config()?;
    config.profile = if args.dev {
        Profile::Dev
    } else {
        Profile::Release
    };
    config.verbose = args.verbose;
    config.http = args.http;
    config.object_store = args.object_store;
    config.state_disk = args.state_disk;
    if !args.dev && messages::human() {
        eprintln!(
            "weir: compiling {} (release)...",
            args.compile.file.display()
        );
    }
    let modules: Vec<ModuleFile> = rust.module.iter().cloned().collect();
    match driver::build_file(&compiled.rust, &modules, &name, &args.compile.file, &config) {
        Ok(built) => Ok(Some((built, kafka_source))),
        Err(DriverError::Compile {
            crate_dir,
            output,
            errors,
        }) => {
            // rustc's errors in the `--rust` file, or about its functions, are the user's.
            let mapped = match rust.file {
                Some(file) => {
                    rust_file::rustc_errors(&sources, file, &rust.udfs, &rust.calls, &errors)
                }
                None => Default::default(),
            };
            if mapped.diagnostics.is_empty() {
                return Err(anyhow!(DriverError::Compile {
                    crate_dir,
                    output,
                    errors,
                }));
            }
            print_diagnostics(&sources, &mapped.diagnostics);
            if mapped.others > 0 && messages::human() {
                eprintln!(
                    "note: {} more error(s) in the generated code, which may follow from these (the crate is in {})",
                    mapped.others,
                    crate_dir.display()
                );
            }
            Ok(None)
        }
        Err(e) => Err(anyhow!(e)),
    }
}

/// Whether a pipeline binary's arguments put its checkpoints on object storage
/// (`--checkpoint-dir s3://...` or `--checkpoint-dir=s3://...`).
fn checkpoints_on_object_storage(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        let value = match a.strip_prefix("--checkpoint-dir") {
            Some("") => args.get(i + 1).map(String::as_str),
            Some(rest) => rest.strip_prefix('='),
            None => None,
        };
        value.is_some_and(|v| v.starts_with("s3://"))
    })
}

/// Whether the binary's arguments ask for keyed state on disk (`--state disk`).
fn state_on_disk(args: &[String]) -> bool {
    args.iter()
        .enumerate()
        .any(|(i, a)| match a.strip_prefix("--state") {
            Some("") => args.get(i + 1).is_some_and(|v| v == "disk"),
            Some(rest) => rest == "=disk",
            None => false,
        })
}

#[cfg(test)]
mod tests {
    use super::{checkpoints_on_object_storage, state_on_disk};

    #[test]
    fn state_disk_in_the_arguments_asks_for_the_disk_backend() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(state_on_disk(&args(&["--state", "disk"])));
        assert!(state_on_disk(&args(&["--quiet", "--state=disk"])));
        assert!(!state_on_disk(&args(&["--state", "memory"])));
        assert!(!state_on_disk(&args(&["--state-dir", "disk"])));
        assert!(!state_on_disk(&args(&["--state"])));
    }

    #[test]
    fn an_s3_checkpoint_dir_asks_for_object_storage() {
        let args = |list: &[&str]| list.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert!(checkpoints_on_object_storage(&args(&[
            "--checkpoint-dir",
            "s3://b/p"
        ])));
        assert!(checkpoints_on_object_storage(&args(&[
            "--quiet",
            "--checkpoint-dir=s3://b/p"
        ])));
        assert!(!checkpoints_on_object_storage(&args(&[
            "--checkpoint-dir",
            "chk"
        ])));
        assert!(!checkpoints_on_object_storage(&args(&["--checkpoint-dir"])));
        assert!(!checkpoints_on_object_storage(&args(&["s3://b/p"])));
    }
}
