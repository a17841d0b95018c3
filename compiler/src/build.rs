//! The build.rs API: compiles `.weir` files into `$OUT_DIR` for a crate to include with
//! `weir::include_pipeline!("name")`.
//!
//! ```no_run
//! // in build.rs's `fn main`:
//! weir_compiler::build::Pipeline::new("pipelines/fraud.weir")
//!     .header("use crate::model::Transaction;")
//!     .compile_or_exit();
//! ```
//!
//! Each pipeline becomes `$OUT_DIR/weir/<name>.rs` holding `pub mod <name> { ... }` (the
//! module [`crate::embed::compile_module`] generates; the macro generates the same), and
//! cargo is told to rerun the build script when the file changes. Errors are cargo errors
//! (`cargo::error=`), one per diagnostic, with `path:line:col`; the full rendering with the
//! underlined source goes to the build script's stderr.

use std::path::{Path, PathBuf};

use crate::embed::{compile_module, EmbedError, Header};
use crate::SourceMap;

/// One pipeline file to compile.
#[derive(Clone, Debug)]
pub struct Pipeline {
    path: PathBuf,
    header: String,
    name: Option<String>,
}

/// Why a pipeline did not compile: the messages cargo shows.
#[derive(Debug, thiserror::Error)]
#[error("{}", messages.join("\n"))]
pub struct BuildError {
    pub messages: Vec<String>,
}

/// Compiles one pipeline with no header; see [`Pipeline`].
pub fn compile(path: impl AsRef<Path>) {
    Pipeline::new(path).compile_or_exit();
}

impl Pipeline {
    /// `path` is relative to the crate's root (`CARGO_MANIFEST_DIR`).
    pub fn new(path: impl AsRef<Path>) -> Self {
        Pipeline {
            path: path.as_ref().to_path_buf(),
            header: String::new(),
            name: None,
        }
    }

    /// Rust-side declarations, as in the macro: `use crate::model::Transaction;` binds a
    /// schema to a `#[derive(weir::Record)]` type.
    pub fn header(mut self, header: &str) -> Self {
        self.header = header.to_string();
        self
    }

    /// The module's name (default: the file's stem).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Compiles into `$OUT_DIR/weir/<name>.rs`; on errors, prints them as cargo errors and
    /// exits with status 1 (the usual end of a failed build script).
    pub fn compile_or_exit(self) {
        if let Err(err) = self.compile() {
            for message in &err.messages {
                // One cargo error per diagnostic; cargo shows only the first line of each.
                println!("cargo::error={}", message.replace('\n', " "));
            }
            std::process::exit(1);
        }
    }

    /// Compiles into `$OUT_DIR/weir/<name>.rs`, printing `cargo:rerun-if-changed`.
    pub fn compile(self) -> Result<PathBuf, BuildError> {
        let fail = |m: String| BuildError { messages: vec![m] };
        let root = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_default();
        let out_dir = std::env::var_os("OUT_DIR")
            .map(PathBuf::from)
            .ok_or_else(|| fail("OUT_DIR is not set: call this from a build script".into()))?;
        let full = root.join(&self.path);
        println!("cargo:rerun-if-changed={}", full.display());
        let text = std::fs::read(&full)
            .map_err(|e| fail(format!("{}: cannot read: {e}", self.path.display())))?;
        let name = match &self.name {
            Some(n) => n.clone(),
            None => module_name(&self.path),
        };
        let code = generate(&self.path.display().to_string(), &text, &self.header, &name)?;
        let dir = out_dir.join("weir");
        let target = dir.join(format!("{name}.rs"));
        std::fs::create_dir_all(&dir)
            .and_then(|_| write_if_changed(&target, &code))
            .map_err(|e| fail(format!("{}: cannot write: {e}", target.display())))?;
        Ok(target)
    }
}

/// The generated file for a pipeline's text, formatted; errors as `path:line:col: ...`
/// messages (the full rendering goes to stderr). The text may be the file's bytes: where they
/// are not UTF-8 is an error with its position.
pub fn generate(
    path: &str,
    text: impl AsRef<[u8]>,
    header: &str,
    name: &str,
) -> Result<String, BuildError> {
    let header = Header::parse_str(header).map_err(|e| BuildError {
        messages: vec![format!("weir header of {path}: {e}")],
    })?;
    let mut sources = SourceMap::new();
    let file = sources.add_bytes(path, text.as_ref());
    match compile_module(&sources, file, &header, name) {
        Ok(module) => {
            for d in &module.warnings {
                let (line, col) = sources.line_col(file, d.primary.span.start);
                println!(
                    "cargo:warning={path}:{line}:{col}: warning[{}]: {}",
                    d.code, d.message
                );
            }
            Ok(crate::codegen::format_file(module.tokens))
        }
        Err(EmbedError::Header(e)) => Err(BuildError {
            messages: vec![format!("weir header of {path}: {e}")],
        }),
        Err(EmbedError::Pipeline(diagnostics)) => {
            eprint!(
                "{}",
                crate::diagnostics::render(&sources, &diagnostics, false)
            );
            let (shown, more) = crate::diagnostics::shown(&diagnostics);
            let mut messages: Vec<String> = shown
                .into_iter()
                .filter(|d| d.is_error())
                .map(|d| {
                    let (line, col) = sources.line_col(file, d.primary.span.start);
                    let mut m = format!("{path}:{line}:{col}: error[{}]: {}", d.code, d.message);
                    for hint in &d.hints {
                        m.push_str(&format!(" (hint: {hint})"));
                    }
                    m
                })
                .collect();
            if !more.is_empty() {
                messages.push(format!("{path}: {more}"));
            }
            Err(BuildError { messages })
        }
    }
}

/// A module name from a file name: its stem, with anything not allowed in an identifier as `_`.
pub fn module_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

/// Writes only when the content differs, so an unchanged pipeline does not rebuild the crate.
fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names() {
        assert_eq!(
            module_name(Path::new("pipelines/fraud-score.weir")),
            "fraud_score"
        );
        assert_eq!(module_name(Path::new("9lives.weir")), "_9lives");
    }

    #[test]
    fn errors_carry_file_line_col() {
        let text = "schema A { x: i64 }\nsource a: A = file(path: \"a.csv\") format csv\nsink a |> filter y > 1 -> stdout()\n";
        let err = generate("p/a.weir", text, "", "a").unwrap_err();
        assert_eq!(err.messages.len(), 1);
        assert!(
            err.messages[0].starts_with("p/a.weir:3:18: error[E"),
            "{}",
            err.messages[0]
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_error_with_their_position() {
        let text = b"source a = stdin()\nsink a |> filter x = \"\xE9t\xE9\" -> stdout()\n";
        let err = generate("a.weir", text, "", "a").unwrap_err();
        assert_eq!(err.messages.len(), 1, "{:?}", err.messages);
        assert!(
            err.messages[0].starts_with("a.weir:2:23: error[E0017]: the file is not valid UTF-8"),
            "{}",
            err.messages[0]
        );
    }

    #[test]
    fn at_most_so_many_errors_are_reported() {
        let keys = vec!["x"; 300].join(", ");
        let text = format!("schema A {{ x: i64 }}\nsource a: A = stdin() format csv\nsink a |> key_by {keys} -> stdout()\n");
        let err = generate("a.weir", text, "", "a").unwrap_err();
        assert_eq!(err.messages.len(), crate::diagnostics::MAX_SHOWN + 1);
        assert_eq!(
            err.messages.last().map(String::as_str),
            Some("a.weir: 199 more errors not shown")
        );
    }

    #[test]
    fn a_name_that_is_no_identifier_is_an_error() {
        let text = "schema A { x: i64 }\nsource a: A = file(path: \"a.csv\") format csv\nsink a -> stdout()\n";
        let err = generate("a.weir", text, "", "my-pipeline").unwrap_err();
        assert!(
            err.messages[0].contains("cannot name a module"),
            "{:?}",
            err.messages
        );
        assert!(generate("a.weir", text, "mod ok;", "my-pipeline").is_ok());
    }

    #[test]
    fn generates_a_module() {
        let text = "schema A { x: i64 }\nsource a: A = file(path: \"a.csv\") format csv\nsink a |> filter x > 1 -> stdout()\n";
        let code = generate("a.weir", text, "", "a").unwrap();
        assert!(code.contains("pub mod a {"));
        assert!(code.contains("pub mod memory {"));
        assert!(code.contains("::weir::runtime::embed::run"));
        assert!(!code.contains("weir_runtime"));
    }
}
