//! How the CLI reports diagnostics: as text for people (the default), or with
//! `--message-format json` as one JSON object per line on stderr, for editors and scripts.
//!
//! The JSON form follows rustc's `--error-format=json`: each object stands alone on its line,
//! spans carry byte offsets and 1-based lines and columns (columns in characters; the end is
//! exclusive, just after the last character), and `rendered` holds the text a person would
//! see. Fields: `type` (`"diagnostic"`), `code` (`"E0210"`, or null for an error that is not
//! about the pipeline's text, such as a file that cannot be read), `severity` (`"error"` or
//! `"warning"`), `message`, `hints` (a list of strings), `file` (the primary span's file, or
//! null), `spans` (primary first: `file`, `byte_start`, `byte_end`, `line_start`,
//! `column_start`, `line_end`, `column_end`, `is_primary`, `label`) and `rendered`.

use std::sync::OnceLock;

use clap::ValueEnum;
use serde_json::{json, Value};
use weir_compiler::{diagnostics, Diagnostic, SourceMap};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum MessageFormat {
    /// `error[E0201]: ...` with the source line underlined.
    #[default]
    Human,
    /// One JSON object per diagnostic and line, on stderr.
    Json,
}

static FORMAT: OnceLock<MessageFormat> = OnceLock::new();

/// Sets the format for this process (once, from the command line).
pub fn set_format(format: MessageFormat) {
    let _ = FORMAT.set(format);
}

pub fn format() -> MessageFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Whether the CLI's own status lines (`ok`, `compiling ...`) are printed: not when stderr
/// carries JSON, where every line must be an object.
pub fn human() -> bool {
    format() == MessageFormat::Human
}

/// The JSON object of one diagnostic.
pub fn to_json(sources: &SourceMap, d: &Diagnostic) -> Value {
    let span = |label: &weir_dsl::Label, is_primary: bool| {
        let s = label.span;
        let (line_start, column_start) = sources.line_col(s.file, s.start);
        let (line_end, column_end) = sources.line_col(s.file, s.end);
        json!({
            "file": sources.get(s.file).name,
            "byte_start": s.start,
            "byte_end": s.end,
            "line_start": line_start,
            "column_start": column_start,
            "line_end": line_end,
            "column_end": column_end,
            "is_primary": is_primary,
            "label": label.message,
        })
    };
    let mut spans = vec![span(&d.primary, true)];
    spans.extend(d.secondary.iter().map(|l| span(l, false)));
    json!({
        "type": "diagnostic",
        "code": d.code,
        "severity": if d.is_error() { "error" } else { "warning" },
        "message": d.message,
        "hints": d.hints,
        "file": sources.get(d.primary.span.file).name,
        "spans": spans,
        "rendered": diagnostics::render(sources, std::slice::from_ref(d), false),
    })
}

/// An error that is not about a place in the pipeline (a file that cannot be read, a failed
/// build), as a JSON object without spans.
pub fn error_json(message: &str) -> Value {
    json!({
        "type": "diagnostic",
        "code": Value::Null,
        "severity": "error",
        "message": message,
        "hints": [],
        "file": Value::Null,
        "spans": [],
        "rendered": format!("error: {message}\n"),
    })
}

/// Prints diagnostics on stderr in the chosen format: at most
/// [`diagnostics::MAX_SHOWN`] of them, then a line counting the others.
pub fn print(sources: &SourceMap, diags: &[Diagnostic], color: bool) {
    if diags.is_empty() {
        return;
    }
    match format() {
        MessageFormat::Human => eprint!("{}", diagnostics::render(sources, diags, color)),
        MessageFormat::Json => {
            let (shown, more) = diagnostics::shown(diags);
            let mut out = String::new();
            for d in shown {
                out.push_str(&to_json(sources, d).to_string());
                out.push('\n');
            }
            if !more.is_empty() {
                let note = json!({ "type": "note", "message": more });
                out.push_str(&note.to_string());
                out.push('\n');
            }
            eprint!("{out}");
        }
    }
}

/// Prints an error that is not a diagnostic of the pipeline text.
pub fn print_error(message: &str) {
    match format() {
        MessageFormat::Human => eprintln!("error: {message}"),
        MessageFormat::Json => eprintln!("{}", error_json(message)),
    }
}
