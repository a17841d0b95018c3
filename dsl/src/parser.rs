//! The parser: text -> [`Module`] plus every diagnostic found, never panicking.
//!
//! How a file is parsed:
//!
//! 1. [`lex::chunks`] splits the text at item keywords (`schema`, `source`, `let`, `sink`) that
//!    start a line, so a mistake in one item does not hide the mistakes in the next ones.
//! 2. [`lex::prescan`] rejects unterminated strings and nesting deeper than
//!    [`lex::MAX_NESTING`] in a chunk before pest recurses into it.
//! 3. pest parses the chunk with `grammar.pest`; on failure, [`errors`] turns pest's
//!    expectations into a message, and the items before the error are kept.
//! 4. [`build`] turns pairs into the AST, resolving operator precedence without recursion and
//!    reporting bad literals, chained comparisons and too deep expressions. An item with any
//!    error is left out of the module.
//!
//! pest's types never leave this module; the AST holds owned [`Span`](crate::Span)s.
//!
//! # Error codes
//!
//! | code    | message (examples)                                                    |
//! |---------|-----------------------------------------------------------------------|
//! | `E0001` | expected `,` or `}` after a field, found `b`                          |
//! | `E0002` | expected an expression, found `)`                                     |
//! | `E0003` | unterminated string literal                                           |
//! | `E0004` | unknown escape sequence `\q` / invalid unicode escape `\u{zz}`        |
//! | `E0005` | unknown duration unit `x` in `10x`                                    |
//! | `E0006` | duration `1.5s` is not a whole number                                 |
//! | `E0007` | integer literal out of range (also float and duration literals)       |
//! | `E0008` | `a < b < c`: comparisons cannot be chained                            |
//! | `E0009` | `end` is a reserved keyword                                           |
//! | `E0010` | unknown step `fliter`                                                 |
//! | `E0011` | missing `\|>` before `filter`                                         |
//! | `E0012` | expected an item, found `lett`                                        |
//! | `E0013` | `(` nested too deeply                                                 |
//! | `E0014` | expression is too deeply nested                                       |
//! | `E0015` | missing target type in `cast`                                         |
//! | `E0016` | source file too large                                                 |
//! | `E0017` | the file is not valid UTF-8                                           |
//! | `E0018` | `10 sec` is not a duration (write `10s`)                               |
//! | `E0019` | missing `on` in a join                                                |
//! | `E0099` | internal parser error: unexpected parse tree (a bug in weir)          |

mod build;
mod errors;
mod lex;

pub use lex::{declared_names, DeclaredNames};

use pest::Parser as _;

use crate::ast::{Item, Module};
use crate::diagnostic::{self, Diagnostic};
use crate::span::{FileId, NotUtf8, SourceMap, Span};

/// The stable codes of the parser's diagnostics; see the table in the module docs.
pub(crate) mod codes {
    pub const UNEXPECTED_TOKEN: &str = "E0001";
    pub const EXPECTED_EXPRESSION: &str = "E0002";
    pub const UNTERMINATED_STRING: &str = "E0003";
    pub const INVALID_ESCAPE: &str = "E0004";
    pub const UNKNOWN_DURATION_UNIT: &str = "E0005";
    pub const FRACTIONAL_DURATION: &str = "E0006";
    pub const LITERAL_OUT_OF_RANGE: &str = "E0007";
    pub const CHAINED_COMPARISON: &str = "E0008";
    pub const RESERVED_KEYWORD: &str = "E0009";
    pub const UNKNOWN_STEP: &str = "E0010";
    pub const MISSING_PIPE: &str = "E0011";
    pub const UNKNOWN_ITEM: &str = "E0012";
    pub const NESTING_TOO_DEEP: &str = "E0013";
    pub const EXPRESSION_TOO_DEEP: &str = "E0014";
    pub const CAST_WITHOUT_TYPE: &str = "E0015";
    pub const FILE_TOO_LARGE: &str = "E0016";
    pub const NOT_UTF8: &str = "E0017";
    pub const SPACED_DURATION: &str = "E0018";
    pub const JOIN_WITHOUT_ON: &str = "E0019";
    pub const INTERNAL: &str = "E0099";
}

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct WeirParser;

/// Parses one file. Returns the module (when the text parsed far enough to build one) and all
/// diagnostics found, sorted by position. Never panics, whatever the input.
///
/// The module holds the items that parsed without error; it is `None` only when there were
/// errors and no item survived. Callers should not analyse a module that came with errors as
/// if it were complete: items with errors are missing from it.
pub fn parse(file: FileId, text: &str) -> (Option<Module>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    if u32::try_from(text.len()).is_err() {
        let span = Span::new(file, 0, 0);
        diagnostics.push(
            Diagnostic::error(codes::FILE_TOO_LARGE, span, "source file too large")
                .with_label("files must be smaller than 4 GiB"),
        );
        return (None, diagnostics);
    }
    let mut items = Vec::new();
    for chunk in lex::chunks(text) {
        parse_chunk(file, text, chunk, &mut items, &mut diagnostics);
    }
    diagnostic::sort(&mut diagnostics);
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    let module = (!failed || !items.is_empty()).then_some(Module { items });
    (module, diagnostics)
}

/// Parses one file of `sources`: as [`parse`] does, except that a file whose bytes were not
/// UTF-8 ([`SourceMap::add_bytes`]) gives one error saying where, and no module.
pub fn parse_file(sources: &SourceMap, file: FileId) -> (Option<Module>, Vec<Diagnostic>) {
    let source = sources.get(file);
    match source.not_utf8() {
        Some(bad) => (None, vec![not_utf8(file, bad)]),
        None => parse(file, &source.text),
    }
}

/// The error for a file that is not UTF-8: the first invalid bytes underlined, a few more
/// marked, and how many there are in all.
fn not_utf8(file: FileId, bad: &NotUtf8) -> Diagnostic {
    let describe = |bytes: &[u8]| {
        let hex: String = bytes.iter().map(|b| format!("\\x{b:02X}")).collect();
        format!("`{hex}`")
    };
    let Some(((first_range, first_bytes), rest)) = bad.first.split_first() else {
        return Diagnostic::error(
            codes::NOT_UTF8,
            Span::new(file, 0, 0),
            "the file is not valid UTF-8",
        )
        .with_hint("save the file as UTF-8: weir reads pipeline files as UTF-8 text");
    };
    let span = |range: &std::ops::Range<usize>| Span::new(file, range.start, range.end);
    let mut diagnostic = Diagnostic::error(
        codes::NOT_UTF8,
        span(first_range),
        "the file is not valid UTF-8",
    )
    .with_label(format!("{} is not UTF-8", describe(first_bytes)));
    for (range, bytes) in rest {
        diagnostic = diagnostic.with_secondary(
            span(range),
            format!("{} is not UTF-8 either", describe(bytes)),
        );
    }
    diagnostic =
        diagnostic.with_hint("save the file as UTF-8: weir reads pipeline files as UTF-8 text");
    if bad.count > bad.first.len() {
        diagnostic = diagnostic.with_hint(format!(
            "{} places in the file are not UTF-8; the first {} are marked",
            bad.count,
            bad.first.len()
        ));
    }
    diagnostic
}

fn parse_chunk(
    file: FileId,
    text: &str,
    chunk: std::ops::Range<usize>,
    items: &mut Vec<Item>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let scan = lex::prescan(file, text, chunk.clone());
    if !scan.errors.is_empty() {
        diagnostics.extend(scan.errors);
        return;
    }
    let source = &text[chunk.clone()];
    let mut builder = build::Builder::new(file, chunk.start);
    match WeirParser::parse(Rule::module, source) {
        Ok(pairs) => {
            for pair in pairs.flat_map(|module| module.into_inner()) {
                if pair.as_rule() != Rule::EOI {
                    items.extend(builder.item(pair));
                }
            }
        }
        Err(error) => {
            let cx = errors::ErrorContext {
                file,
                text,
                chunk: chunk.clone(),
                unclosed: &scan.unclosed,
            };
            diagnostics.push(errors::from_pest(&error, &cx));
            // Keep the items before the one that ran into the error.
            if let Ok(pairs) = WeirParser::parse(Rule::items_prefix, source) {
                let parsed: Vec<_> = pairs.flat_map(|prefix| prefix.into_inner()).collect();
                let complete = parsed.len().saturating_sub(1);
                for pair in parsed.into_iter().take(complete) {
                    items.extend(builder.item(pair));
                }
            }
        }
    }
    diagnostics.append(&mut builder.diagnostics);
}
