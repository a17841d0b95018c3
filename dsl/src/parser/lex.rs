//! Lexical helpers that run outside pest: splitting a file into item chunks, the pre-scan that
//! rejects unterminated strings and too deep nesting before pest recurses, and describing the
//! token found where a parse error happened.

use std::ops::Range;

use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};

use super::codes;

/// The deepest nesting of `(`, `{`, `[` and `case ... end` the parser accepts. Deeper input is
/// rejected before pest runs, so neither pest nor the AST builder can exhaust the stack.
pub(super) const MAX_NESTING: usize = 128;

/// Words that start an item when they begin a line.
pub(super) const ITEM_KEYWORDS: [&str; 4] = ["schema", "source", "let", "sink"];

/// Step keywords, in the order the language documents them.
pub(super) const STEP_KEYWORDS: [&str; 12] = [
    "filter",
    "select",
    "key_by",
    "window",
    "aggregate",
    "join",
    "interval_join",
    "window_join",
    "lookup_join",
    "left",
    "dedup",
    "top",
];

/// The case-insensitive keywords of expressions; they cannot be used as names.
pub(super) const RESERVED: [&str; 15] = [
    "and", "or", "not", "case", "when", "then", "else", "end", "is", "null", "true", "false", "as",
    "cast", "if",
];

pub(super) fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Splits `text` into chunks that each start at an item keyword in column 1 (followed by
/// whitespace or the end of the text). The first chunk starts at 0 and may hold only comments.
pub(super) fn chunks(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut starts = vec![0];
    let mut line_start = 0;
    loop {
        if line_start > 0 && starts_item(&bytes[line_start..]) {
            starts.push(line_start);
        }
        match bytes[line_start..].iter().position(|&b| b == b'\n') {
            Some(i) => line_start += i + 1,
            None => break,
        }
    }
    let mut ranges: Vec<Range<usize>> = starts.windows(2).map(|w| w[0]..w[1]).collect();
    ranges.push(*starts.last().unwrap_or(&0)..text.len());
    ranges
}

/// Names declared by items, found in the text without a parse: what a checker needs to know
/// of the items the parser had to leave out (their names are then not reported as unknown).
#[derive(Clone, Debug, Default)]
pub struct DeclaredNames {
    /// `source` and `let` names.
    pub streams: Vec<(String, Span)>,
    pub schemas: Vec<(String, Span)>,
}

/// The names that items declare, by the scan [`chunks`] makes, which needs no parse: the word after an
/// item keyword at the start of a line (`let NAME`, `source NAME`, `schema NAME`), after a
/// misspelled one (`lett NAME`), or after any word when a `=` or `:` follows (`stream NAME =`).
pub fn declared_names(file: FileId, text: &str) -> DeclaredNames {
    fn ident_end(bytes: &[u8], start: usize) -> usize {
        let len = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        start + len
    }
    fn next_line(bytes: &[u8], from: usize) -> usize {
        bytes[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| from + i + 1)
    }
    fn skip_spaces(bytes: &[u8], mut i: usize) -> usize {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    }
    let bytes = text.as_bytes();
    let mut out = DeclaredNames::default();
    let mut line_start = 0;
    while line_start < bytes.len() {
        let word_end = ident_end(bytes, line_start);
        if word_end == line_start {
            // Not a word: skipping spaces from here would cross every blank line that
            // follows, once per blank line (quadratic in a long run of them).
            line_start = next_line(bytes, line_start);
            continue;
        }
        let name_start = skip_spaces(bytes, word_end);
        let name_end = ident_end(bytes, name_start);
        let after = skip_spaces(bytes, name_end);
        let word = &text[line_start..word_end];
        let keyword = match ITEM_KEYWORDS.iter().find(|k| **k == word) {
            Some(k) => Some(*k),
            None if word.len() > 2 => crate::diagnostic::did_you_mean(word, ITEM_KEYWORDS),
            None => None,
        };
        let declares = matches!(bytes.get(after), Some(b'=' | b':'));
        let is_name = bytes
            .get(name_start)
            .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_');
        if name_start > word_end && is_name {
            let name = (
                text[name_start..name_end].to_string(),
                Span::new(file, name_start, name_end),
            );
            match keyword {
                Some("schema") => out.schemas.push(name),
                Some("sink") => {}
                Some(_) => out.streams.push(name),
                None if declares => out.streams.push(name),
                None => {}
            }
        }
        line_start = next_line(bytes, line_start);
    }
    out
}

fn starts_item(line: &[u8]) -> bool {
    ITEM_KEYWORDS.iter().any(|kw| {
        line.starts_with(kw.as_bytes())
            && line.get(kw.len()).is_none_or(|c| c.is_ascii_whitespace())
    })
}

/// An opening delimiter that was still open at the end of a chunk.
#[derive(Clone, Copy, Debug)]
pub(super) struct Open {
    /// `(`, `{`, `[`, or `c` for `case`.
    pub kind: u8,
    pub span: Span,
}

impl Open {
    pub fn describe(self) -> &'static str {
        match self.kind {
            b'(' => "`(`",
            b'{' => "`{`",
            b'[' => "`[`",
            _ => "`case`",
        }
    }
}

/// What the pre-scan found in one chunk.
#[derive(Debug, Default)]
pub(super) struct Prescan {
    /// Unterminated strings and too deep nesting; when not empty, pest is not run on the chunk.
    pub errors: Vec<Diagnostic>,
    /// Delimiters still open at the end of the chunk, innermost last.
    pub unclosed: Vec<Open>,
}

/// Scans `text[range]` for unterminated strings and nesting deeper than [`MAX_NESTING`].
pub(super) fn prescan(file: FileId, text: &str, range: Range<usize>) -> Prescan {
    let bytes = text.as_bytes();
    let end = range.end;
    let mut scan = Prescan::default();
    let mut i = range.start;
    while i < end {
        let c = bytes[i];
        match c {
            b'/' if bytes.get(i + 1) == Some(&b'/') && i + 1 < end => {
                i = line_end(bytes, i, end);
            }
            b'"' | b'\'' => match string_end(bytes, i, end) {
                Ok(after) => i = after,
                Err(line_end) => {
                    let span = Span::new(file, i, line_end);
                    let closing = if c == b'"' { "`\"`" } else { "`'`" };
                    scan.errors.push(
                        Diagnostic::error(
                            codes::UNTERMINATED_STRING,
                            span,
                            "unterminated string literal",
                        )
                        .with_label(format!("missing closing {closing}"))
                        .with_hint("string literals end on the line they start on"),
                    );
                    i = line_end;
                }
            },
            b'(' | b'{' | b'[' => {
                if !open(&mut scan, file, c, i, i + 1) {
                    return scan;
                }
                i += 1;
            }
            b')' | b'}' | b']' => {
                close(&mut scan, |k| k != b'c');
                i += 1;
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < end && is_ident_char(bytes[i]) {
                    i += 1;
                }
                let word = &text[start..i];
                if word.eq_ignore_ascii_case("case") {
                    if !open(&mut scan, file, b'c', start, i) {
                        return scan;
                    }
                } else if word.eq_ignore_ascii_case("end") {
                    close(&mut scan, |k| k == b'c');
                }
            }
            c if c.is_ascii_digit() => {
                // Skip the whole number, so `1e5` or `10s` is not read as a word.
                while i < end && is_ident_char(bytes[i]) {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    scan
}

/// Pushes an opening delimiter; returns false (after recording an error) when too deep.
fn open(scan: &mut Prescan, file: FileId, kind: u8, start: usize, end: usize) -> bool {
    let open = Open {
        kind,
        span: Span::new(file, start, end),
    };
    if scan.unclosed.len() >= MAX_NESTING {
        scan.errors.push(
            Diagnostic::error(
                codes::NESTING_TOO_DEEP,
                open.span,
                format!("{} nested too deeply", open.describe()),
            )
            .with_label(format!("more than {MAX_NESTING} levels of nesting"))
            .with_hint("split the expression, or move parts of it into separate steps"),
        );
        return false;
    }
    scan.unclosed.push(open);
    true
}

/// Pops the innermost delimiter when `matches` accepts it (a stray closer is pest's to report).
fn close(scan: &mut Prescan, matches: impl Fn(u8) -> bool) {
    if scan.unclosed.last().is_some_and(|o| matches(o.kind)) {
        scan.unclosed.pop();
    }
}

fn line_end(bytes: &[u8], from: usize, end: usize) -> usize {
    bytes[from..end]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(end, |p| from + p)
}

/// The position after the string literal starting at `start`, or `Err(end of its line)` when
/// it is not closed on its line. Mirrors `dq_string` and `sq_string` in the grammar.
fn string_end(bytes: &[u8], start: usize, end: usize) -> Result<usize, usize> {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < end {
        match bytes[i] {
            b'\n' => break,
            b'\\' if quote == b'"' => {
                if bytes.get(i + 1).is_none_or(|&b| b == b'\n') || i + 1 >= end {
                    break;
                }
                i += 2;
            }
            b if b == quote => {
                if quote == b'\'' && i + 1 < end && bytes[i + 1] == b'\'' {
                    i += 2;
                } else {
                    return Ok(i + 1);
                }
            }
            _ => i += 1,
        }
    }
    let mut stop = line_end(bytes, start, end);
    // Do not underline the `\r` of a CRLF line ending.
    if stop > start + 1 && bytes[stop - 1] == b'\r' {
        stop -= 1;
    }
    Err(stop)
}

/// The token that starts at `pos`, for "found ..." in error messages.
#[derive(Clone, Debug)]
pub(super) struct Found {
    /// `None` at the end of the text.
    pub kind: Option<FoundKind>,
    pub range: Range<usize>,
    /// How a message names it: "`)`", "keyword `end`", "end of input".
    pub description: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FoundKind {
    /// A name or an unreserved keyword (`price`, `filter`).
    Word,
    /// A reserved expression keyword (`end`, `AND`).
    Reserved,
    Number,
    Str,
    Punct,
}

impl Found {
    pub fn text<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.range.clone()).unwrap_or("")
    }
}

/// Describes the token at `pos` in `text`.
pub(super) fn found_at(text: &str, mut pos: usize) -> Found {
    pos = pos.min(text.len());
    while !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let bytes = text.as_bytes();
    let Some(&c) = bytes.get(pos) else {
        return Found {
            kind: None,
            range: pos..pos,
            description: "end of input".into(),
        };
    };
    let token_end = |mut i: usize, f: fn(u8) -> bool| {
        while i < bytes.len() && f(bytes[i]) {
            i += 1;
        }
        i
    };
    let (kind, end) = if is_ident_start(c) {
        let end = token_end(pos, is_ident_char);
        let kind = if is_reserved(&text[pos..end]) {
            FoundKind::Reserved
        } else {
            FoundKind::Word
        };
        (kind, end)
    } else if c.is_ascii_digit() {
        (
            FoundKind::Number,
            token_end(pos, |b| is_ident_char(b) || b == b'.'),
        )
    } else if c == b'"' || c == b'\'' {
        let end = string_end(bytes, pos, bytes.len()).unwrap_or_else(|e| e);
        (FoundKind::Str, end)
    } else {
        const TWO: [&str; 7] = ["|>", "->", "<=", ">=", "!=", "<>", "=="];
        let two = TWO.iter().any(|t| text[pos..].starts_with(t));
        let len = if two {
            2
        } else {
            text[pos..].chars().next().map_or(1, char::len_utf8)
        };
        (FoundKind::Punct, pos + len)
    };
    let snippet = &text[pos..end];
    let description = match kind {
        FoundKind::Reserved => format!("keyword `{snippet}`"),
        FoundKind::Str => {
            let short: String = snippet.chars().take(24).collect();
            let dots = if short.len() < snippet.len() {
                "..."
            } else {
                ""
            };
            format!("string `{short}{dots}`")
        }
        _ => format!("`{}`", snippet.escape_debug()),
    };
    Found {
        kind: Some(kind),
        range: pos..end,
        description,
    }
}

/// The end of the last token before `pos`: skips back over whitespace and `//` comments.
pub(super) fn end_of_previous_token(text: &str, floor: usize, pos: usize) -> usize {
    let bytes = text.as_bytes();
    let mut i = pos.min(bytes.len());
    loop {
        while i > floor && bytes[i - 1].is_ascii_whitespace() {
            i -= 1;
        }
        // If the line we stepped back onto ends in a comment, skip the comment too.
        let line_start = bytes[floor..i]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(floor, |p| floor + p + 1);
        match comment_start(bytes, line_start, i) {
            Some(c) if c < i => i = c,
            _ => return i,
        }
    }
}

/// Where a `//` comment starts on the line `bytes[line_start..line_end]`, skipping strings.
fn comment_start(bytes: &[u8], line_start: usize, line_end: usize) -> Option<usize> {
    let mut i = line_start;
    while i < line_end {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => return Some(i),
            b'"' | b'\'' => i = string_end(bytes, i, line_end).unwrap_or(line_end),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_start_at_item_keywords_in_column_one() {
        let text = "// c\nschema A {}\n  let x = a\nsink x -> s\nsinks\nlet";
        let starts: Vec<usize> = chunks(text).iter().map(|r| r.start).collect();
        assert_eq!(starts, vec![0, 5, 29, 47]);
        assert_eq!(chunks("").len(), 1);
    }

    #[test]
    fn declared_names_are_found_without_a_parse() {
        let text = "schema A { x: i64 }\nsource s: A = file(path: 1 +)\nlett t = s |>\n\
                    stream u = t\nsink t -> stdout()\n  let indented = 1\n";
        let names = declared_names(FileId(0), text);
        let streams: Vec<&str> = names.streams.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(streams, ["s", "t", "u"]);
        assert_eq!(names.schemas.len(), 1);
        let (name, span) = &names.schemas[0];
        assert_eq!((name.as_str(), &text[span.range()]), ("A", "A"));
    }

    #[test]
    fn prescan_finds_unterminated_strings_and_deep_nesting() {
        let text = "let a = b |> filter x = \"abc\nlet";
        let scan = prescan(FileId(0), text, 0..text.len());
        assert_eq!(scan.errors.len(), 1);
        assert_eq!(&text[scan.errors[0].primary.span.range()], "\"abc");

        let deep = "(".repeat(MAX_NESTING + 1);
        let scan = prescan(FileId(0), &deep, 0..deep.len());
        assert_eq!(scan.errors[0].code, codes::NESTING_TOO_DEEP);
        assert_eq!(scan.errors[0].primary.span.start as usize, MAX_NESTING);
    }

    #[test]
    fn found_tokens_are_described() {
        assert_eq!(found_at("a |> b", 2).description, "`|>`");
        assert_eq!(found_at("x END", 2).description, "keyword `END`");
        assert_eq!(found_at("x", 1).description, "end of input");
        assert_eq!(found_at("10x + 1", 0).range, 0..3);
        assert_eq!(found_at("é", 0).range, 0..2);
    }

    #[test]
    fn previous_token_skips_comments() {
        let text = "a, b // note, with \"quote\"\n  \n}";
        assert_eq!(end_of_previous_token(text, 0, text.len() - 1), 4);
    }
}
