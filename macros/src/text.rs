//! The pipeline text of an inline `pipeline! { ... }`, rebuilt from its tokens, and the way
//! back from a byte range of that text to the tokens (for diagnostics).
//!
//! rustc hands a proc macro tokens, not text, but tells each token's line and column. Placing
//! every token at its own line and column (less the indentation of the block) gives back the
//! text as written, minus comments: the weir parser sees the same layout (it splits items at
//! line starts), and each diagnostic's byte range maps to the tokens it covers, whose spans
//! rustc underlines. Literals keep their source spelling (`10s`, `"a\tb"`).

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};

/// One token of the text: where it is in the text and the span it came from.
struct Piece {
    start: usize,
    end: usize,
    span: Span,
}

/// The rebuilt text and its token map.
pub struct Text {
    pub text: String,
    pieces: Vec<Piece>,
}

/// A token flattened: its text, span, and whether it is a punctuation joined to the next.
struct Leaf {
    text: String,
    span: Span,
    joint: bool,
}

fn flatten(tokens: TokenStream, out: &mut Vec<Leaf>) {
    for tree in tokens {
        match tree {
            TokenTree::Group(g) => {
                let (open, close) = match g.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                if !open.is_empty() {
                    out.push(Leaf {
                        text: open.into(),
                        span: g.span_open(),
                        joint: false,
                    });
                }
                flatten(g.stream(), out);
                if !close.is_empty() {
                    out.push(Leaf {
                        text: close.into(),
                        span: g.span_close(),
                        joint: false,
                    });
                }
            }
            TokenTree::Punct(p) => out.push(Leaf {
                text: p.as_char().to_string(),
                span: p.span(),
                joint: p.spacing() == proc_macro2::Spacing::Joint,
            }),
            TokenTree::Ident(i) => out.push(Leaf {
                text: i.to_string(),
                span: i.span(),
                joint: false,
            }),
            TokenTree::Literal(l) => out.push(Leaf {
                text: l.span().source_text().unwrap_or_else(|| l.to_string()),
                span: l.span(),
                joint: false,
            }),
        }
    }
}

impl Text {
    /// Rebuilds the text of `tokens`; `position` gives a span's 1-based line and 0-based
    /// column, when known.
    pub fn rebuild(tokens: TokenStream, position: impl Fn(Span) -> Option<(usize, usize)>) -> Text {
        let mut leaves = Vec::new();
        flatten(tokens, &mut leaves);
        let positions: Vec<Option<(usize, usize)>> =
            leaves.iter().map(|l| position(l.span)).collect();
        // The block's indentation: the smallest column of a token that starts a line.
        let mut indent = usize::MAX;
        let mut last_line = 0;
        for p in positions.iter().flatten() {
            if p.0 != last_line {
                indent = indent.min(p.1);
                last_line = p.0;
            }
        }
        let indent = if indent == usize::MAX { 0 } else { indent };
        let mut text = String::new();
        let mut pieces = Vec::with_capacity(leaves.len());
        let (mut line, mut col) = (positions.iter().flatten().next().map_or(1, |p| p.0), 0);
        let mut prev_joint = false;
        for (leaf, pos) in leaves.into_iter().zip(positions) {
            match pos {
                Some((l, c)) if l > line => {
                    for _ in line..l {
                        text.push('\n');
                    }
                    let c = c.saturating_sub(indent);
                    text.extend(std::iter::repeat_n(' ', c));
                    (line, col) = (l, c);
                }
                Some((l, c)) if l == line && c.saturating_sub(indent) > col => {
                    let c = c.saturating_sub(indent);
                    text.extend(std::iter::repeat_n(' ', c - col));
                    col = c;
                }
                _ if prev_joint || text.is_empty() => {}
                _ => {
                    text.push(' ');
                    col += 1;
                }
            }
            let start = text.len();
            text.push_str(&leaf.text);
            pieces.push(Piece {
                start,
                end: text.len(),
                span: leaf.span,
            });
            match leaf.text.rfind('\n') {
                // A string literal spanning lines.
                Some(i) => {
                    line += leaf.text.matches('\n').count();
                    col = leaf.text[i + 1..].chars().count();
                }
                None => col += leaf.text.chars().count(),
            }
            prev_joint = leaf.joint;
        }
        text.push('\n');
        Text { text, pieces }
    }

    /// The spans of the first and last tokens that the byte range `start..end` touches (for an
    /// empty range, the token at or after it, else the last one).
    pub fn spans(&self, start: usize, end: usize) -> Option<(Span, Span)> {
        let touched: Vec<&Piece> = self
            .pieces
            .iter()
            .filter(|p| p.start < end.max(start + 1) && p.end > start)
            .collect();
        match (touched.first(), touched.last()) {
            (Some(first), Some(last)) => Some((first.span, last.span)),
            _ => {
                let p = self
                    .pieces
                    .iter()
                    .find(|p| p.start >= start)
                    .or(self.pieces.last())?;
                Some((p.span, p.span))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_positions_tokens_are_spaced_and_joined_punctuation_kept() {
        let tokens: TokenStream = "let a = b |> filter x >= 10s".parse().unwrap();
        let t = Text::rebuild(tokens, |_| None);
        assert_eq!(t.text, "let a = b |> filter x >= 10s\n");
        assert_eq!(t.pieces.len(), 11);
        // `filter` is bytes 13..19.
        assert_eq!(&t.text[t.pieces[6].start..t.pieces[6].end], "filter");
        assert!(t.spans(13, 19).is_some());
        assert!(t.spans(500, 500).is_some());
    }
}
