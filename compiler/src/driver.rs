//! From generated Rust to a binary: writes the pipeline's crate into a cache directory,
//! compiles it with cargo against the runtime (the checkout's, or the copy embedded here), and caches the binary by a hash of
//! everything that goes into it.
//!
//! Compile latency decides whether generated code is pleasant to use, so:
//! - all pipelines share one target directory: the runtime and its dependencies compile once;
//! - each pipeline file keeps one crate directory (named after the file and a hash of its
//!   path), so rustc's incremental cache makes a one-line pipeline change cheap to rebuild;
//! - a finished binary is stored under the hash of its source, the runtime's fingerprint and
//!   the profile; an unchanged pipeline runs without invoking cargo at all;
//! - a pipeline enables only the runtime features its generated source asks for (`kafka`
//!   compiles librdkafka, so pipelines without Kafka do not pay for it);
//! - cargo runs against a copy of the workspace's `Cargo.lock`: `--offline` from a checkout,
//!   where the set-up command fetched the workspace's dependencies; an installed `weir`
//!   builds against the runtime compiled into it ([`embedded`]), and its first build may
//!   fetch the runtime's dependencies from crates.io.
//!
//! Cargo reports in JSON (`--message-format=json`): a failed build returns rustc's errors as
//! [`RustcDiagnostic`]s, so an error in a module the user wrote (a `--rust` file, kept as its
//! own file in the crate) can be shown at the user's file and line
//! ([`crate::rust_file`]); the rest is a bug in weir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The folders weir keeps in a cache directory: `crates/NAME_PATHHASH` (a generated crate per
/// pipeline file), `target` (cargo's, shared), `bin` (finished binaries by hash), `runtime`
/// (the embedded runtime, unpacked by fingerprint).
pub const CACHE_FOLDERS: [&str; 4] = ["crates", "target", "bin", "runtime"];

/// The runtime's source fingerprint, computed by this crate's build script.
pub const RUNTIME_FINGERPRINT: &str = env!("WEIR_RUNTIME_FINGERPRINT");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Optimized (the default; what benchmarks use).
    Release,
    /// Unoptimized, fastest to compile.
    Dev,
}

/// Where the generated crates find `weir-runtime`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeSource {
    /// A directory holding the runtime crate (a checkout's `runtime/`).
    Path(PathBuf),
    /// The copy compiled into this program ([`embedded`]), written into the cache on first use.
    Embedded,
}

#[derive(Clone, Debug)]
pub struct BuildConfig {
    pub cache_dir: PathBuf,
    pub runtime: RuntimeSource,
    /// A `Cargo.lock` to pin dependency versions (the workspace's); with the embedded runtime,
    /// the embedded copy of it is used instead.
    pub lockfile: Option<PathBuf>,
    pub profile: Profile,
    pub offline: bool,
    /// Show cargo's output while compiling.
    pub verbose: bool,
    /// Compile the runtime's HTTP endpoint in (its feature `http`), so that the binary
    /// serves metrics with `--http ADDR`. Off by default: tokio, hyper and the Prometheus
    /// encoder add about 25 CPU-seconds to the first build (docs/observing.md).
    pub http: bool,
    /// Compile checkpoints on object storage in (the runtime's feature `object-store`), so
    /// that the binary takes `--checkpoint-dir s3://bucket/prefix`. Off by default: the S3
    /// client (object_store, reqwest, rustls with aws-lc) makes the first build of a
    /// pipeline much longer (docs/operations.md has the figure).
    pub object_store: bool,
    /// Compile the disk state backend in (the runtime's feature `state-disk`), so that the
    /// binary takes `--state disk`. Off by default: fjall adds about 30 CPU-seconds to the
    /// first build (docs/performance.md).
    pub state_disk: bool,
    /// Link the binary with the system's allocator instead of mimalloc (the runtime's feature
    /// `mimalloc`, on by default): `WEIR_SYSTEM_ALLOCATOR=1`, for memory tools that hook
    /// malloc, or to measure what the allocator is worth.
    pub system_allocator: bool,
}

impl BuildConfig {
    /// The defaults, by where this program runs.
    ///
    /// - From a checkout (the program is in the checkout's `target/`: `target/release/weir`,
    ///   the tests): the cache is `target/weir` of the checkout and the crates build against
    ///   its `runtime/`, `--offline` (the set-up command fetched every dependency).
    /// - Anywhere else (`cargo install --path compiler`): the cache is
    ///   `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`, and the crates build against the
    ///   runtime embedded in this program; cargo may then fetch the runtime's dependencies
    ///   from crates.io on the first build (the versions pinned by the embedded `Cargo.lock`).
    ///
    /// `WEIR_CACHE_DIR` moves the cache, `WEIR_RUNTIME_PATH` names a runtime directory,
    /// `WEIR_ONLINE=1` lets cargo download from a checkout too.
    pub fn from_env() -> Result<BuildConfig, DriverError> {
        let checkout = checkout();
        let cache_dir = match (std::env::var_os("WEIR_CACHE_DIR"), &checkout) {
            (Some(dir), _) if !dir.is_empty() => absolute(Path::new(&dir)),
            (_, Some(workspace)) => workspace.join("target/weir"),
            (_, None) => user_cache_dir().ok_or(DriverError::NoCacheDir)?,
        };
        let runtime = match (std::env::var_os("WEIR_RUNTIME_PATH"), &checkout) {
            (Some(dir), _) if !dir.is_empty() => RuntimeSource::Path(absolute(Path::new(&dir))),
            (_, Some(workspace)) => RuntimeSource::Path(workspace.join("runtime")),
            (_, None) => RuntimeSource::Embedded,
        };
        let lockfile = checkout
            .as_ref()
            .map(|w| w.join("Cargo.lock"))
            .filter(|p| p.exists());
        let online = std::env::var("WEIR_ONLINE").is_ok_and(|v| v == "1");
        Ok(BuildConfig {
            cache_dir,
            runtime,
            lockfile,
            profile: Profile::Release,
            offline: checkout.is_some() && !online,
            verbose: false,
            http: false,
            object_store: false,
            state_disk: false,
            system_allocator: std::env::var("WEIR_SYSTEM_ALLOCATOR").is_ok_and(|v| v == "1"),
        })
    }
}

/// The checkout this program was built from, if it runs from that checkout's `target/`.
fn checkout() -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .ok()?;
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    (exe.starts_with(workspace.join("target")) && workspace.join("runtime/Cargo.toml").is_file())
        .then_some(workspace)
}

/// `$XDG_CACHE_HOME/weir`, else `$HOME/.cache/weir` (the XDG base directory rules: a
/// relative `XDG_CACHE_HOME` is ignored).
pub fn user_cache_dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    from("XDG_CACHE_HOME")
        .or_else(|| from("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("weir"))
}

/// `path` made absolute against the current directory (unchanged when that fails).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The runtime's sources compiled into this program: `(path in the crate, contents)`.
pub fn embedded() -> &'static [(&'static str, &'static [u8])] {
    include!(concat!(env!("OUT_DIR"), "/runtime_files.rs"))
}

/// The workspace's `Cargo.lock`, compiled into this program.
const EMBEDDED_LOCK: &str = include!(concat!(env!("OUT_DIR"), "/runtime_lock.rs"));

/// Writes the embedded runtime into `cache_dir/runtime/FINGERPRINT` unless it is there, and
/// returns that directory. Written into a temporary folder and renamed, so that a concurrent
/// build never sees half the files.
pub fn unpack_runtime(cache_dir: &Path) -> Result<PathBuf, DriverError> {
    let parent = cache_dir.join("runtime");
    let dir = parent.join(RUNTIME_FINGERPRINT);
    if dir.join("Cargo.toml").is_file() {
        return Ok(dir);
    }
    let tmp = parent.join(format!(".{RUNTIME_FINGERPRINT}.tmp{}", std::process::id()));
    for (name, contents) in embedded() {
        let path = tmp.join(name);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(io(folder))?;
        }
        std::fs::write(&path, contents).map_err(io(&path))?;
    }
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        // Another build put it there first.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.join("Cargo.toml").is_file() {
            return Err(io(&dir)(e));
        }
    }
    Ok(dir)
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot write the pipeline crate in {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is an absolute path (set WEIR_CACHE_DIR or pass --cache-dir)")]
    NoCacheDir,
    #[error("cannot run cargo: {0}")]
    Cargo(std::io::Error),
    #[error("cargo needs a crate that is not downloaded, and builds from a checkout are offline:\n{output}\nhelp: run `cargo fetch --locked` in the checkout once (it downloads every crate the lockfile names, those of optional runtime features too), or set WEIR_ONLINE=1")]
    Offline {
        /// cargo's own output.
        output: String,
    },
    #[error("compiling the generated pipeline failed (a bug in weir; the crate is in {crate_dir}):\n{output}")]
    Compile {
        crate_dir: PathBuf,
        /// rustc's rendered errors, then cargo's own output.
        output: String,
        /// rustc's errors.
        errors: Vec<RustcDiagnostic>,
    },
}

/// A module of the generated crate beside `src/main.rs`, e.g. the `--rust` file as
/// `src/udfs.rs` (which `main.rs` declares with `mod udfs;`).
#[derive(Clone, Debug)]
pub struct ModuleFile {
    /// The file name in `src/`, e.g. `udfs.rs`.
    pub name: String,
    pub text: String,
}

/// One of rustc's diagnostics, as cargo's JSON messages give it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RustcDiagnostic {
    /// `error`, `warning`, `note`, `help`, ...
    pub level: String,
    pub message: String,
    /// rustc's error code, e.g. `E0308`.
    pub code: Option<String>,
    pub spans: Vec<RustcSpan>,
    /// Notes and help, each with its own spans.
    pub children: Vec<RustcDiagnostic>,
    /// rustc's own rendering (top-level diagnostics only).
    pub rendered: Option<String>,
}

/// A place in a source file, as rustc gives it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RustcSpan {
    /// As cargo passed it to rustc: relative to the package (`src/main.rs`) or absolute.
    pub file_name: String,
    /// 1-based.
    pub line_start: usize,
    pub line_end: usize,
    /// 1-based, in characters.
    pub column_start: usize,
    pub column_end: usize,
    pub is_primary: bool,
    pub label: Option<String>,
    /// The source lines the span covers.
    pub text: Vec<String>,
    /// A suggested replacement.
    pub suggested_replacement: Option<String>,
}

impl RustcDiagnostic {
    /// A diagnostic from its JSON form (the `message` of a `compiler-message`).
    fn from_json(v: &serde_json::Value) -> RustcDiagnostic {
        let text = |v: &serde_json::Value, key: &str| v[key].as_str().map(str::to_string);
        let number = |v: &serde_json::Value, key: &str| {
            v[key]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0)
        };
        let list =
            |v: &serde_json::Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
        RustcDiagnostic {
            level: text(v, "level").unwrap_or_default(),
            message: text(v, "message").unwrap_or_default(),
            code: v["code"]["code"].as_str().map(str::to_string),
            spans: list(v, "spans")
                .iter()
                .map(|s| RustcSpan {
                    file_name: text(s, "file_name").unwrap_or_default(),
                    line_start: number(s, "line_start"),
                    line_end: number(s, "line_end"),
                    column_start: number(s, "column_start"),
                    column_end: number(s, "column_end"),
                    is_primary: s["is_primary"].as_bool().unwrap_or(false),
                    label: text(s, "label"),
                    text: list(s, "text")
                        .iter()
                        .filter_map(|t| t["text"].as_str().map(str::to_string))
                        .collect(),
                    suggested_replacement: text(s, "suggested_replacement"),
                })
                .collect(),
            children: list(v, "children")
                .iter()
                .map(RustcDiagnostic::from_json)
                .collect(),
            rendered: text(v, "rendered"),
        }
    }

    /// The primary span, if any.
    pub fn primary(&self) -> Option<&RustcSpan> {
        self.spans.iter().find(|s| s.is_primary)
    }
}

/// rustc's diagnostics in cargo's JSON output (one message a line; other lines are ignored).
pub fn rustc_diagnostics(stdout: &str) -> Vec<RustcDiagnostic> {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["reason"] == "compiler-message")
        .map(|v| RustcDiagnostic::from_json(&v["message"]))
        .collect()
}

/// What `build` produced.
#[derive(Clone, Debug)]
pub struct Built {
    pub binary: PathBuf,
    /// The binary came from the cache; cargo did not run.
    pub cached: bool,
    pub hash: String,
    pub crate_dir: PathBuf,
    pub elapsed: Duration,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DriverError + '_ {
    move |source| DriverError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A valid crate and binary name from a pipeline's file name.
pub fn crate_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_matches('_').to_string();
    if clean.is_empty() || clean.starts_with(|c: char| c.is_ascii_digit()) {
        format!("p_{clean}")
    } else {
        clean
    }
}

/// The runtime features a generated source asks for on its `// weir-runtime features:` line
/// (written by codegen, near the top).
pub fn runtime_features(rust: &str) -> Vec<String> {
    rust.lines()
        .take(4)
        .find_map(|line| line.strip_prefix(crate::codegen::FEATURES_LINE))
        .map(|list| {
            list.split(',')
                .map(|f| f.trim().to_string())
                .filter(|f| {
                    !f.is_empty()
                        && f.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                })
                .collect()
        })
        .unwrap_or_default()
}

fn manifest(name: &str, runtime: &Path, embedded: bool, features: &[String]) -> String {
    let runtime = runtime
        .display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let features = if features.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = features.iter().map(|f| format!("\"{f}\"")).collect();
        format!(", features = [{}]", list.join(", "))
    };
    // The embedded runtime never changes under a fingerprint: rustc's incremental cache of it
    // would cost its first build time and disk, and never be used.
    let runtime_profile = if embedded {
        "\n[profile.release.package.weir-runtime]\nincremental = false\n"
    } else {
        ""
    };
    format!(
        r#"# @generated by weir
[package]
name = "weir-pipeline-{name}"
version = "0.0.0"
edition = "2021"
publish = false

[[bin]]
name = "{name}"
path = "src/main.rs"

[dependencies]
weir-runtime = {{ path = "{runtime}"{features} }}

[workspace]

[profile.release]
opt-level = 3
debug = false
incremental = true
codegen-units = 16

[profile.dev]
opt-level = 0
debug = false
{runtime_profile}"#
    )
}

fn write_if_changed(path: &Path, contents: &[u8]) -> Result<(), DriverError> {
    if std::fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(()); // keep the mtime: cargo then has nothing to rebuild
    }
    std::fs::write(path, contents).map_err(io(path))
}

/// Builds (or finds in the cache) the binary for generated source `rust`.
pub fn build(rust: &str, name: &str, config: &BuildConfig) -> Result<Built, DriverError> {
    build_with(rust, &[], name, config)
}

/// [`build`] for a crate with modules beside `src/main.rs` (which declares them).
pub fn build_with(
    rust: &str,
    modules: &[ModuleFile],
    name: &str,
    config: &BuildConfig,
) -> Result<Built, DriverError> {
    build_crate(rust, modules, crate_name(name), &crate_name(name), config)
}

/// [`build_with`] for a pipeline read from `file`: its crate is named after the file and a
/// hash of the file's canonical path, so two pipelines of the same file name in different
/// directories never share a crate directory (nor its incremental cache, nor its binary in
/// the shared target directory).
pub fn build_file(
    rust: &str,
    modules: &[ModuleFile],
    name: &str,
    file: &Path,
    config: &BuildConfig,
) -> Result<Built, DriverError> {
    let pipeline = crate_name(name);
    let name = format!("{pipeline}_{}", path_key(file));
    build_crate(rust, modules, name, &pipeline, config)
}

/// A short hash of `file`'s canonical path (of the path as given when it has none).
pub fn path_key(file: &Path) -> String {
    let canonical = file.canonicalize().unwrap_or_else(|_| absolute(file));
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn build_crate(
    rust: &str,
    modules: &[ModuleFile],
    name: String,
    pipeline: &str,
    config: &BuildConfig,
) -> Result<Built, DriverError> {
    let started = Instant::now();
    let runtime = match &config.runtime {
        RuntimeSource::Path(path) => path.canonicalize().unwrap_or_else(|_| path.clone()),
        RuntimeSource::Embedded => unpack_runtime(&config.cache_dir)?,
    };
    let embedded = config.runtime == RuntimeSource::Embedded;
    let mut features = runtime_features(rust);
    if config.http {
        features.push("http".to_string());
    }
    if config.object_store && !features.iter().any(|f| f == "object-store") {
        features.push("object-store".to_string());
    }
    if config.state_disk {
        features.push("state-disk".to_string());
    }
    // A binary of its own: records cross threads, which mimalloc frees without a lock.
    if !config.system_allocator {
        features.push("mimalloc".to_string());
    }
    let manifest = manifest(&name, &runtime, embedded, &features);
    let profile = match config.profile {
        Profile::Release => "release",
        Profile::Dev => "dev",
    };
    let mut hasher = Sha256::new();
    let module_parts = modules
        .iter()
        .flat_map(|m| [m.name.as_str(), m.text.as_str()]);
    for part in [rust, &manifest, RUNTIME_FINGERPRINT, profile]
        .into_iter()
        .chain(module_parts)
    {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let hash: String = hasher
        .finalize()
        .iter()
        .take(10)
        .map(|b| format!("{b:02x}"))
        .collect();
    let bin_dir = config.cache_dir.join("bin");
    let binary = bin_dir.join(format!("{name}-{hash}"));
    let crate_dir = config.cache_dir.join("crates").join(&name);
    if binary.exists() {
        return Ok(Built {
            binary,
            cached: true,
            hash,
            crate_dir,
            elapsed: started.elapsed(),
        });
    }
    std::fs::create_dir_all(crate_dir.join("src")).map_err(io(&crate_dir))?;
    std::fs::create_dir_all(&bin_dir).map_err(io(&bin_dir))?;
    write_if_changed(&crate_dir.join("Cargo.toml"), manifest.as_bytes())?;
    write_if_changed(&crate_dir.join("src/main.rs"), rust.as_bytes())?;
    for module in modules {
        write_if_changed(
            &crate_dir.join("src").join(&module.name),
            module.text.as_bytes(),
        )?;
    }
    match (&config.runtime, &config.lockfile) {
        (RuntimeSource::Embedded, _) => {
            write_if_changed(&crate_dir.join("Cargo.lock"), EMBEDDED_LOCK.as_bytes())?
        }
        (RuntimeSource::Path(_), Some(lock)) => {
            if let Ok(contents) = std::fs::read(lock) {
                write_if_changed(&crate_dir.join("Cargo.lock"), &contents)?;
            }
        }
        (RuntimeSource::Path(_), None) => {}
    }
    let target_dir = config.cache_dir.join("target");
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.arg("build")
        .arg("--manifest-path")
        .arg(crate_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--message-format=json")
        // The pipeline's name, which the binary's metrics carry (`option_env!` in the
        // generated `build`; rustc records it, so cargo rebuilds when it changes).
        .env("WEIR_PIPELINE", pipeline);
    if config.profile == Profile::Release {
        cmd.arg("--release");
    }
    if config.offline {
        cmd.arg("--offline");
    }
    // Settings of an enclosing cargo invocation (tests, build scripts) must not leak in.
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    // rustc's messages come as JSON on stdout; cargo's progress on stderr, shown when verbose.
    cmd.stdout(std::process::Stdio::piped());
    if config.verbose {
        cmd.stderr(std::process::Stdio::inherit());
    }
    let out = cmd.output().map_err(DriverError::Cargo)?;
    let diagnostics = rustc_diagnostics(&String::from_utf8_lossy(&out.stdout));
    if config.verbose {
        for d in diagnostics.iter().filter(|d| d.level != "error") {
            eprint!("{}", d.rendered.as_deref().unwrap_or_default());
        }
    }
    if !out.status.success() {
        let errors: Vec<RustcDiagnostic> = diagnostics
            .into_iter()
            .filter(|d| d.level.starts_with("error"))
            .collect();
        let mut output: String = errors
            .iter()
            .filter_map(|d| d.rendered.as_deref())
            .collect();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if errors.is_empty() && stderr.contains("but --offline was specified") {
            return Err(DriverError::Offline {
                output: stderr.trim_end().to_string(),
            });
        }
        output.push_str(&stderr);
        return Err(DriverError::Compile {
            crate_dir,
            output,
            errors,
        });
    }
    let produced = target_dir
        .join(if profile == "dev" { "debug" } else { "release" })
        .join(&name);
    // Copy, then rename: a concurrent reader never sees a half-written binary.
    let tmp = bin_dir.join(format!(".{name}-{hash}.tmp{}", std::process::id()));
    std::fs::copy(&produced, &tmp).map_err(io(&produced))?;
    std::fs::rename(&tmp, &binary).map_err(io(&binary))?;
    Ok(Built {
        binary,
        cached: false,
        hash,
        crate_dir,
        elapsed: started.elapsed(),
    })
}
