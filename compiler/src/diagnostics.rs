//! Rendering diagnostics for people: `error[E0201]: message`, then `file:line:col`, the source
//! line with the offending text underlined, and hints. Used by the CLI and build.rs; the proc
//! macro maps the same [`Diagnostic`] values onto its input tokens instead.

use codespan_reporting::diagnostic::{
    Diagnostic as Report, Label, LabelStyle, Severity as ReportSeverity,
};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, termcolor};
use weir_dsl::{Diagnostic, Severity, SourceMap};

/// The most diagnostics one report shows; a last line counts the others. Each diagnostic shows
/// its source line, so thousands of errors on one long line would make a report quadratic in
/// the size of the file.
pub const MAX_SHOWN: usize = 100;

/// The diagnostics a report shows, in their order: errors first up to [`MAX_SHOWN`], then
/// warnings while there is room; and a line counting those left out (empty when none are).
pub fn shown(diagnostics: &[Diagnostic]) -> (Vec<&Diagnostic>, String) {
    let n_errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let shown_errors = n_errors.min(MAX_SHOWN);
    let shown_warnings = (diagnostics.len() - n_errors).min(MAX_SHOWN - shown_errors);
    let (mut errors, mut warnings) = (0, 0);
    let shown: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| {
            let (count, room) = match d.is_error() {
                true => (&mut errors, shown_errors),
                false => (&mut warnings, shown_warnings),
            };
            *count += 1;
            *count <= room
        })
        .collect();
    let hidden_errors = n_errors - shown_errors;
    let hidden_warnings = diagnostics.len() - n_errors - shown_warnings;
    let plural = |n: usize, what: &str| match n {
        1 => format!("1 more {what}"),
        n => format!("{n} more {what}s"),
    };
    let more = match (hidden_errors, hidden_warnings) {
        (0, 0) => String::new(),
        (e, 0) => format!("{} not shown", plural(e, "error")),
        (0, w) => format!("{} not shown", plural(w, "warning")),
        (e, w) => format!(
            "{} and {} not shown",
            plural(e, "error"),
            plural(w, "warning")
        ),
    };
    (shown, more)
}

/// Renders diagnostics as text; with `color`, with ANSI colors for a terminal. Shows at most
/// [`MAX_SHOWN`] of them.
pub fn render(sources: &SourceMap, diagnostics: &[Diagnostic], color: bool) -> String {
    let (diagnostics, more) = shown(diagnostics);
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
    let mut text = String::from_utf8_lossy(buffer.as_slice()).into_owned();
    if !more.is_empty() {
        text.push_str(&format!("note: {more}\n"));
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;
    use weir_dsl::Span;

    #[test]
    fn a_report_shows_errors_first_and_counts_the_rest() {
        let mut sources = SourceMap::new();
        let file = sources.add("a.weir", "x".repeat(500));
        let at = |i: usize| Span::new(file, i, i + 1);
        // Warnings first in the text, then more errors than a report shows.
        let mut diagnostics: Vec<Diagnostic> = (0..10)
            .map(|i| Diagnostic::warning("W0001", at(i), "a warning"))
            .collect();
        diagnostics.extend(
            (10..10 + MAX_SHOWN + 5).map(|i| Diagnostic::error("E0001", at(i), "an error")),
        );
        let (listed, more) = shown(&diagnostics);
        assert_eq!(listed.len(), MAX_SHOWN);
        assert!(listed.iter().all(|d| d.is_error()));
        assert_eq!(more, "5 more errors and 10 more warnings not shown");
        let report = render(&sources, &diagnostics, false);
        assert_eq!(report.matches("error[E0001]").count(), MAX_SHOWN);
        assert!(report.ends_with("note: 5 more errors and 10 more warnings not shown\n"));

        let few = &diagnostics[..12];
        assert_eq!(shown(few).0.len(), 12);
        assert_eq!(shown(few).1, "");
        assert!(!render(&sources, few, false).contains("not shown"));
    }
}
