//! Source positions: which file and which byte range every AST node came from.
//!
//! Spans are owned values (no lifetimes), so the AST can outlive the text it was parsed from
//! and pest's types never leak out of the parser module.

/// Identifies one source text in a [`SourceMap`](crate::SourceMap).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A byte range `start..end` in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Self {
        Span {
            file,
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span that covers both `self` and `other` (same file assumed).
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One source text with its display name (a path, or `<pipeline!>` for macro input).
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    /// The byte offset where each line starts, so positions are found without a rescan.
    line_starts: Vec<usize>,
    /// Set when the file's bytes were not UTF-8 (see [`SourceMap::add_bytes`]).
    not_utf8: Option<NotUtf8>,
}

impl SourceFile {
    fn new(name: String, text: String, not_utf8: Option<NotUtf8>) -> Self {
        let line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|&(_, b)| b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        SourceFile {
            name,
            text,
            line_starts,
            not_utf8,
        }
    }

    /// Where the file was not UTF-8, if it was read from bytes that were not.
    pub fn not_utf8(&self) -> Option<&NotUtf8> {
        self.not_utf8.as_ref()
    }
}

/// The places where a file's bytes were not UTF-8. Each invalid sequence (one to three bytes,
/// as [`String::from_utf8_lossy`] splits them) is replaced by U+FFFD in the file's text, so
/// positions and underlines work on the text as on any other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotUtf8 {
    /// The first few invalid sequences, in order: the range of the U+FFFD that replaced each
    /// in the text, and the bytes it replaced.
    pub first: Vec<(std::ops::Range<usize>, Vec<u8>)>,
    /// How many invalid sequences the file has in all.
    pub count: usize,
}

impl NotUtf8 {
    /// How many invalid sequences [`NotUtf8::first`] keeps.
    pub const KEPT: usize = 4;
}

/// Decodes `bytes` as UTF-8, replacing each invalid sequence by U+FFFD.
fn decode(bytes: Vec<u8>) -> (String, Option<NotUtf8>) {
    let bytes = match String::from_utf8(bytes) {
        Ok(text) => return (text, None),
        Err(err) => err.into_bytes(),
    };
    let mut text = String::with_capacity(bytes.len() + 16);
    let mut bad = NotUtf8 {
        first: Vec::new(),
        count: 0,
    };
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            let start = text.len();
            text.push(char::REPLACEMENT_CHARACTER);
            if bad.first.len() < NotUtf8::KEPT {
                bad.first
                    .push((start..text.len(), chunk.invalid().to_vec()));
            }
            bad.count += 1;
        }
    }
    (text, Some(bad))
}

/// All source texts of one compilation, indexed by [`FileId`].
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        self.push(SourceFile::new(name.into(), text.into(), None))
    }

    /// Adds a file as read from disk. Bytes that are not UTF-8 are replaced by U+FFFD and
    /// remembered ([`SourceFile::not_utf8`]): the parser reports them with their line and
    /// column instead of parsing the file.
    pub fn add_bytes(&mut self, name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> FileId {
        let (text, not_utf8) = decode(bytes.into());
        self.push(SourceFile::new(name.into(), text, not_utf8))
    }

    fn push(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId(self.files.len() as u32 - 1)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    /// The text a span covers (empty when the span is out of range).
    pub fn snippet(&self, span: Span) -> &str {
        self.get(span.file).text.get(span.range()).unwrap_or("")
    }

    /// 1-based line and column (in characters) of a byte offset. Finds the line by binary
    /// search, so it costs the length of the line, not of the text before it.
    pub fn line_col(&self, file: FileId, offset: u32) -> (usize, usize) {
        let file = self.get(file);
        let text = &file.text;
        let offset = floor_char_boundary(text, (offset as usize).min(text.len()));
        // The first line starts at 0, so at least one line starts at or before `offset`.
        let line = file
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let line_start = file.line_starts[line - 1];
        let col = text[line_start..offset].chars().count() + 1;
        (line, col)
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_of_offsets() {
        let mut sources = SourceMap::new();
        let file = sources.add("a", "ab\né\n\nx");
        let at = |offset| sources.line_col(file, offset);
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3));
        assert_eq!(at(3), (2, 1));
        // After `é` (two bytes), and inside it.
        assert_eq!(at(5), (2, 2));
        assert_eq!(at(4), (2, 1));
        assert_eq!(at(6), (3, 1));
        assert_eq!(at(7), (4, 1));
        assert_eq!(at(99), (4, 2));
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        let mut sources = SourceMap::new();
        let file = sources.add_bytes("a", b"ok \xff\n\xe9t\xc3".to_vec());
        let file = sources.get(file);
        assert_eq!(file.text, "ok \u{FFFD}\n\u{FFFD}t\u{FFFD}");
        let bad = file.not_utf8().expect("not UTF-8");
        assert_eq!(bad.count, 3);
        assert_eq!(bad.first[0], (3..6, vec![0xff]));
        assert_eq!(bad.first[1], (7..10, vec![0xe9]));
        assert_eq!(bad.first[2], (11..14, vec![0xc3]));
        let id = sources.add_bytes("b", "é".as_bytes());
        assert!(sources.get(id).not_utf8().is_none());
    }
}
