//! Rendering diagnostics for people: `error[E0201]: message`, then `file:line:col`, the source
//! line with the offending text underlined, and hints. Used by the CLI and build.rs; the proc
//! macro maps the same [`Diagnostic`] values onto its input tokens instead.

use codespan_reporting::diagnostic::{
    Diagnostic as Report, Label, LabelStyle, Severity as ReportSeverity,
};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor};
use weir_dsl::{Diagnostic, Severity, SourceMap};

/// Renders diagnostics as text; with `color`, with ANSI colors for a terminal.
pub fn render(sources: &SourceMap, diagnostics: &[Diagnostic], color: bool) -> String {
    let mut files = SimpleFiles::new();
    let ids: Vec<usize> = sources
        .files()
        .map(|(_, f)| files.add(f.name.clone(), f.text.clone()))
        .collect();
    let mut buffer = if color {
        termcolor::Buffer::ansi()
    } else {
        termcolor::Buffer::no_color()
    };
    let config = term::Config::default();
    for d in diagnostics {
        let file = ids[d.primary.span.file.0 as usize];
        let clamp = |span: weir_dsl::Span| {
            let len = sources.get(span.file).text.len();
            let start = (span.start as usize).min(len);
            let end = (span.end as usize).clamp(start, len);
            start..end
        };
        let mut labels = vec![Label::new(LabelStyle::Primary, file, clamp(d.primary.span))
            .with_message(d.primary.message.clone())];
        for s in &d.secondary {
            labels.push(
                Label::new(
                    LabelStyle::Secondary,
                    ids[s.span.file.0 as usize],
                    clamp(s.span),
                )
                .with_message(s.message.clone()),
            );
        }
        let severity = match d.severity {
            Severity::Error => ReportSeverity::Error,
            Severity::Warning => ReportSeverity::Warning,
        };
        let report = Report::new(severity)
            .with_code(d.code)
            .with_message(d.message.clone())
            .with_labels(labels)
            .with_notes(d.hints.iter().map(|h| format!("hint: {h}")).collect());
        if term::emit(&mut buffer, &config, &files, &report).is_err() {
            // Rendering failed (a span outside its file); fall back to one plain line.
            let (line, col) = sources.line_col(d.primary.span.file, d.primary.span.start);
            let name = &sources.get(d.primary.span.file).name;
            let plain = format!(
                "error[{}]: {}\n  --> {name}:{line}:{col}\n",
                d.code, d.message
            );
            return String::from_utf8_lossy(buffer.as_slice()).into_owned() + &plain;
        }
    }
    String::from_utf8_lossy(buffer.as_slice()).into_owned()
}

/// One line per diagnostic: `file:line:col: error[E0201]: message` (for cargo and editors).
pub fn render_short(sources: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        let (line, col) = sources.line_col(d.primary.span.file, d.primary.span.start);
        let name = &sources.get(d.primary.span.file).name;
        let kind = if d.is_error() { "error" } else { "warning" };
        out.push_str(&format!(
            "{name}:{line}:{col}: {kind}[{}]: {}\n",
            d.code, d.message
        ));
    }
    out
}
