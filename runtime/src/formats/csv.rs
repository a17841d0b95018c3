//! CSV: one record per line, with RFC 4180 quoting within the line.
//!
//! A cell is either bare text (no delimiter inside) or quoted: `"..."` with `""` standing for
//! one quote; a quoted cell may contain the delimiter. Records never span lines: the reader
//! splits input on newlines first, so a quoted cell cannot hold a line break on input (the
//! writer still quotes cells containing `\r` or `\n` so output stays parseable by other tools).
//!
//! Decoding: [`split_columns`] finds only the cells a pipeline reads (the generated decoder
//! passes their column numbers), borrowed from the line as [`Cell`]s in a caller's array, so a
//! line costs no allocation; a quoted cell's doubled quotes are undone only when its text is
//! taken ([`Cell::text`]). A line without any quote (most lines) is split in one pass, a block
//! of bytes at a time ([`super::scan`], SIMD chosen at run time): the cells read come from the
//! delimiters' bit mask, the others are counted. A line holding a quote is walked cell by cell
//! up to the last column read; the rest of it is still checked (quoted cells must be well
//! formed) and its cells counted: one pass, eight bytes at a time, counts its delimiters and
//! looks for a quote, and only a rest holding a quote is walked cell by cell. So the verdicts
//! are those of splitting every cell (the differential test `tests/tests/csv_differential.rs`
//! keeps the old splitter as the reference). The generated decoder converts cells with the
//! parsers in [`super`]. Null and the empty string differ as in PostgreSQL's CSV: a bare empty
//! cell (`a,,b`) is null for an optional field, a quoted one (`a,"",b`) is the empty string
//! for a string field (for other types, both are null).
//!
//! Encoding: the writers append to a byte buffer; null is written as an empty cell (nothing
//! between the delimiters), the empty string as `""`.

use std::borrow::Cow;

use super::{time, DecodeError};

/// One cell of a line, as [`split_columns`] found it: borrowed, quotes not yet undone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cell<'a> {
    /// The cell's text; for a quoted cell, what lies between its quotes, `""` still doubled.
    raw: &'a str,
    /// A quoted cell holding `""`, which [`Cell::text`] turns into `"`.
    doubled: bool,
    /// Whether the cell was quoted: `""` is the empty string, a bare empty cell is null.
    quoted: bool,
}

impl<'a> Cell<'a> {
    /// An empty cell (what a missing optional value reads as).
    pub const EMPTY: Cell<'static> = Cell {
        raw: "",
        doubled: false,
        quoted: false,
    };

    /// Whether the cell holds no text (`a,,b` or `a,"",b`): null for an optional field that
    /// is not a string.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Whether the cell is bare and empty (`a,,b`, not `a,"",b`): null for an optional string.
    #[inline]
    pub fn is_null(&self) -> bool {
        self.raw.is_empty() && !self.quoted
    }

    /// The cell's text: borrowed unless a quoted cell held doubled quotes.
    #[inline(always)]
    pub fn text(&self) -> Cow<'a, str> {
        if self.doubled {
            self.undoubled()
        } else {
            Cow::Borrowed(self.raw)
        }
    }

    /// The text of a cell holding doubled quotes, undone (kept out of line: rare).
    #[cold]
    #[inline(never)]
    fn undoubled(&self) -> Cow<'a, str> {
        Cow::Owned(self.raw.replace("\"\"", "\""))
    }
}

/// Checks a delimiter: an ASCII character other than the quote (the checker accepts no other,
/// so this only guards callers that bypass it).
fn check_delimiter(delimiter: u8) -> Result<(), DecodeError> {
    if delimiter == b'"' || !delimiter.is_ascii() {
        return Err(DecodeError::new(format!(
            "invalid CSV delimiter `{}` (must be an ASCII character other than `\"`)",
            char::from(delimiter).escape_debug()
        )));
    }
    Ok(())
}

/// Splits one line of `n_columns` cells, keeping only the cells at `columns` (ascending, each
/// below `n_columns`): `cells[k]` receives the cell at column `columns[k]` (counted from 0).
///
/// Handles `"quoted ""cells"", with, delimiters"`. A quote inside a bare cell (`ab"c`) is kept
/// as a literal character. A single trailing `\r` (from CRLF line ends) is ignored. An empty
/// line is one empty cell.
///
/// Errors, the first that applies: a delimiter that is a quote or not ASCII; the first
/// malformed quoted cell anywhere in the line (unterminated, or text after its closing quote,
/// with its byte column); a line with other than `n_columns` cells
/// (`expected 7 columns, found 6`).
#[inline]
pub fn split_columns<'a>(
    line: &'a str,
    delimiter: u8,
    columns: &[usize],
    n_columns: usize,
    cells: &mut [Cell<'a>],
) -> Result<(), DecodeError> {
    check_delimiter(delimiter)?;
    let found = scan(line, delimiter, columns, cells)?;
    if found != n_columns {
        return Err(DecodeError::new(format!(
            "expected {n_columns} columns, found {found}"
        )));
    }
    Ok(())
}

/// Where a file's columns are, found by the names of its header line (`header: true`): the
/// generated decoder of a source with `K` columns read splits each line with
/// [`columns`](Self::columns) and takes read field `i` from `cells[slots[i]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderMap<const K: usize> {
    /// The header positions of the columns read, ascending (what [`split_columns`] takes).
    pub columns: [usize; K],
    /// For each read field, in the decoder's order, its index in `columns`.
    pub slots: [usize; K],
    /// How many cells the header has: every line must have as many.
    pub n_columns: usize,
}

impl<const K: usize> HeaderMap<K> {
    /// Maps the `declared` columns of a schema onto `header` (the file's first line, without
    /// its line end); `read` are the indices into `declared` of the fields the decoder reads.
    /// Extra columns in the header are ignored. A declared name the header lacks, or names
    /// twice, is an error naming it and the header's columns; names match exactly (after a
    /// byte-order mark is dropped), and a match that differs only in case or surrounding
    /// spaces is offered as a hint.
    pub fn new(
        header: &str,
        delimiter: u8,
        declared: &[&str],
        read: [usize; K],
    ) -> Result<Self, String> {
        let header = header.strip_prefix('\u{feff}').unwrap_or(header);
        let names = header_names(header, delimiter)
            .map_err(|e| format!("cannot read the CSV header: {e}"))?;
        let listed = || names.join(", ");
        let mut positions = Vec::with_capacity(declared.len());
        for name in declared {
            let mut at = names.iter().enumerate().filter(|(_, n)| n == name);
            match (at.next(), at.next()) {
                (Some((i, _)), None) => positions.push(i),
                (Some((i, _)), Some((j, _))) => {
                    return Err(format!(
                        "the CSV header names column `{name}` twice (columns {} and {}), so \
                         which one to read is ambiguous",
                        i + 1,
                        j + 1
                    ))
                }
                (None, _) => {
                    let close = names
                        .iter()
                        .find(|n| n.trim().eq_ignore_ascii_case(name.trim()));
                    let hint = match close {
                        Some(n) => format!("; did you mean `{n}`? (names match exactly)"),
                        None => String::new(),
                    };
                    return Err(format!(
                        "the CSV header has no column `{name}` (columns: {}){hint}",
                        listed()
                    ));
                }
            }
        }
        let mut columns = [0usize; K];
        for (c, &field) in columns.iter_mut().zip(read.iter()) {
            *c = positions[field];
        }
        columns.sort_unstable();
        let mut slots = [0usize; K];
        for (s, &field) in slots.iter_mut().zip(read.iter()) {
            *s = columns.partition_point(|&c| c < positions[field]);
        }
        Ok(HeaderMap {
            columns,
            slots,
            n_columns: names.len(),
        })
    }
}

/// Every cell of a header line, quotes undone.
fn header_names(line: &str, delimiter: u8) -> Result<Vec<String>, DecodeError> {
    check_delimiter(delimiter)?;
    let n = scan(line, delimiter, &[], &mut [])?;
    let columns: Vec<usize> = (0..n).collect();
    let mut cells = vec![Cell::EMPTY; n];
    scan(line, delimiter, &columns, &mut cells)?;
    Ok(cells.iter().map(|c| c.text().into_owned()).collect())
}

/// The end of the quoted cell whose opening quote is at `open`: the index of its closing
/// quote, and whether it holds doubled quotes.
#[inline]
fn quoted_end(b: &[u8], open: usize) -> Result<(usize, bool), DecodeError> {
    let mut i = open + 1;
    let mut doubled = false;
    loop {
        match memchr::memchr(b'"', &b[i..]) {
            None => {
                return Err(DecodeError::new(format!(
                    "invalid CSV at column {}: unterminated quoted cell",
                    open + 1
                )))
            }
            Some(off) => {
                let q = i + off;
                if b.get(q + 1) == Some(&b'"') {
                    doubled = true;
                    i = q + 2;
                } else {
                    return Ok((q, doubled));
                }
            }
        }
    }
}

/// After a quoted cell closing at `close`: the index of the delimiter that follows, or `None`
/// at the end of the line.
#[inline]
fn after_quote(b: &[u8], close: usize, delimiter: u8) -> Result<Option<usize>, DecodeError> {
    let pos = close + 1;
    match b.get(pos) {
        None => Ok(None),
        Some(&c) if c == delimiter => Ok(Some(pos)),
        Some(_) => Err(DecodeError::new(format!(
            "invalid CSV at column {}: text after the closing quote of a cell",
            pos + 1
        ))),
    }
}

/// Lines reading up to this many columns take [`scan`]'s one-pass path when they hold no
/// quote (its cell bounds live on the stack); lines reading more are walked cell by cell.
const FAST_COLUMNS: usize = 16;

/// Walks the line's cells, filling `cells` for `columns`; returns how many cells the line has.
/// Errors only for malformed quoted cells (the first one in the line).
fn scan<'a>(
    line: &'a str,
    delimiter: u8,
    columns: &[usize],
    cells: &mut [Cell<'a>],
) -> Result<usize, DecodeError> {
    // (A byte test: `strip_suffix('\r')` compares through `memcmp`.)
    let line = match line.as_bytes().last() {
        Some(b'\r') => &line[..line.len() - 1],
        _ => line,
    };
    let b = line.as_bytes();
    let wanted = columns.len().min(cells.len());
    // Most lines hold no quote: one pass over the line finds the cells read and counts the
    // others (`scan::csv_cells`, a block of bytes at a time).
    let mut ranges = [(0usize, 0usize); FAST_COLUMNS];
    if wanted <= FAST_COLUMNS {
        if let Some(n) = super::scan::csv_cells(b, delimiter, &columns[..wanted], &mut ranges) {
            for (cell, &(start, end)) in cells.iter_mut().zip(&ranges[..wanted]) {
                // (Delimiters are ASCII, so a cell's bounds are character boundaries.)
                *cell = Cell {
                    raw: line.get(start..end).unwrap_or_default(),
                    doubled: false,
                    quoted: false,
                };
            }
            return Ok(n);
        }
    }
    let mut pos = 0;
    let mut column = 0;
    let mut next = 0;
    // Cells up to the last one wanted, one at a time.
    while next < wanted {
        let (cell, end) = if b.get(pos) == Some(&b'"') {
            let (close, doubled) = quoted_end(b, pos)?;
            let cell = Cell {
                raw: &line[pos + 1..close],
                doubled,
                quoted: true,
            };
            (cell, after_quote(b, close, delimiter)?)
        } else {
            let end = memchr::memchr(delimiter, &b[pos..]).map(|off| pos + off);
            let raw = &line[pos..end.unwrap_or(b.len())];
            (
                Cell {
                    raw,
                    doubled: false,
                    quoted: false,
                },
                end,
            )
        };
        if columns[next] == column {
            cells[next] = cell;
            next += 1;
        }
        column += 1;
        match end {
            None => return Ok(column),
            Some(delimiter_at) => pos = delimiter_at + 1,
        }
    }
    // The rest (at least one more cell starts at `pos`) is only checked and counted.
    Ok(column + count_cells(b, pos, delimiter)?)
}

/// The cells of `b[pos..]`, checking its quoted cells.
#[inline]
fn count_cells(b: &[u8], mut pos: usize, delimiter: u8) -> Result<usize, DecodeError> {
    // One pass for the common case, cheaper than a `memchr` for a quote and then a count.
    if let Some(delimiters) = super::scan::count_unquoted(&b[pos..], delimiter) {
        // No quote: every delimiter separates two cells.
        return Ok(1 + delimiters);
    }
    let mut count = 0;
    loop {
        count += 1;
        let end = if b.get(pos) == Some(&b'"') {
            let (close, _) = quoted_end(b, pos)?;
            after_quote(b, close, delimiter)?
        } else {
            memchr::memchr(delimiter, &b[pos..]).map(|off| pos + off)
        };
        match end {
            None => return Ok(count),
            Some(delimiter_at) => pos = delimiter_at + 1,
        }
    }
}

/// Appends one cell, quoting it (and doubling its quotes) when it contains the delimiter, a
/// quote, `\r` or `\n`, or starts or ends with a space or tab. An empty string is written as
/// `""`, so that it reads back as the empty string and not as null.
pub fn write_cell(out: &mut Vec<u8>, s: &str, delimiter: u8) {
    let b = s.as_bytes();
    let needs_quotes = b.is_empty()
        || matches!(b.first(), Some(b' ' | b'\t'))
        || matches!(b.last(), Some(b' ' | b'\t'))
        || super::scan::csv_needs_quotes(b, delimiter);
    if !needs_quotes {
        out.extend_from_slice(b);
        return;
    }
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    for i in memchr::memchr_iter(b'"', b) {
        out.extend_from_slice(&b[run_start..=i]);
        out.push(b'"');
        run_start = i + 1;
    }
    out.extend_from_slice(&b[run_start..]);
    out.push(b'"');
}

/// Appends an integer.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends a float in the shortest form that reads back to the same value (`1.0`, `0.1`,
/// `1e20`). Values are finite (decoders reject NaN and infinities, and arithmetic that would
/// give one sends its record to the dead letters); NaN or an infinity from elsewhere (a Rust
/// record) is written as null, an empty cell, as the JSON encoder writes `null`.
#[inline]
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    }
}

/// A float's text as [`write_f64`] writes it, for cells that need quoting.
pub fn f64_text(v: f64) -> String {
    if v.is_finite() {
        ryu::Buffer::new().format_finite(v).to_string()
    } else {
        String::new()
    }
}

/// Appends `true` or `false`.
pub fn write_bool(out: &mut Vec<u8>, v: bool) {
    out.extend_from_slice(if v { b"true" } else { b"false" });
}

/// Appends a timestamp in the canonical form `yyyy-MM-dd HH:mm:ss.SSS`, unquoted (it contains
/// a space, `-`, `:` and `.`, so with one of those as the delimiter, format it and use
/// [`write_cell`] instead).
pub fn write_timestamp(out: &mut Vec<u8>, ts: i64) {
    time::write_timestamp_bytes(ts, out);
}

/// Appends a timestamp through [`write_cell`] (for a delimiter its text can hold): ISO 8601
/// with `Z` if `iso`, else the canonical form.
pub fn write_timestamp_cell(out: &mut Vec<u8>, ts: i64, iso: bool, delimiter: u8) {
    let mut text = Vec::with_capacity(32);
    if iso {
        time::write_timestamp_iso(ts, None, &mut text);
    } else {
        time::write_timestamp_bytes(ts, &mut text);
    }
    // (ASCII only.)
    write_cell(out, &String::from_utf8_lossy(&text), delimiter);
}

/// Appends a timestamp in ISO 8601 with `Z` (`timestamps: "iso8601"`).
pub fn write_timestamp_iso(out: &mut Vec<u8>, ts: i64) {
    time::write_timestamp_iso(ts, None, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_maps_the_columns_read_by_name() {
        // Declared a, b, c; read c and a; the file has c, x, "a", b.
        let map = HeaderMap::new("\u{feff}c,x,\"a\",b", b',', &["a", "b", "c"], [2, 0]).unwrap();
        assert_eq!(map.n_columns, 4);
        assert_eq!(map.columns, [0, 2]);
        assert_eq!(map.slots, [0, 1]);
        let mut cells = [Cell::EMPTY; 2];
        split_columns("C,X,A,B", b',', &map.columns, map.n_columns, &mut cells).unwrap();
        assert_eq!(cells[map.slots[0]].text(), "C");
        assert_eq!(cells[map.slots[1]].text(), "A");
        // Read in the other order: the slots follow.
        let map = HeaderMap::new("c,x,a,b", b',', &["a", "b", "c"], [0, 2]).unwrap();
        assert_eq!((map.columns, map.slots), ([0, 2], [1, 0]));
    }

    #[test]
    fn a_header_without_a_declared_name_is_an_error() {
        let err = HeaderMap::new("A ,b", b',', &["a", "b"], [1]).unwrap_err();
        assert_eq!(
            err,
            "the CSV header has no column `a` (columns: A , b); did you mean `A `? \
             (names match exactly)"
        );
        let err = HeaderMap::new("a;b;a", b';', &["a", "b"], [1]).unwrap_err();
        assert!(
            err.contains("names column `a` twice (columns 1 and 3)"),
            "{err}"
        );
        let err = HeaderMap::new("a,\"b", b',', &["a"], [0]).unwrap_err();
        assert!(err.starts_with("cannot read the CSV header: "), "{err}");
        // An undeclared column named twice does not matter.
        assert!(HeaderMap::new("x,a,x", b',', &["a"], [0]).is_ok());
    }

    /// Every cell of a line (up to 64), through the same scan as [`split_columns`].
    fn split(line: &str, delimiter: u8) -> Result<Vec<String>, DecodeError> {
        check_delimiter(delimiter)?;
        let columns: Vec<usize> = (0..64).collect();
        let mut cells = [Cell::EMPTY; 64];
        let found = scan(line, delimiter, &columns, &mut cells)?;
        assert!(found <= 64, "{line:?}");
        Ok(cells[..found]
            .iter()
            .map(|c| c.text().into_owned())
            .collect())
    }

    #[test]
    fn bare_cells() {
        assert_eq!(split("a,b,c", b',').unwrap(), ["a", "b", "c"]);
        assert_eq!(split("", b',').unwrap(), [""]);
        assert_eq!(split(",", b',').unwrap(), ["", ""]);
        assert_eq!(split("a,,", b',').unwrap(), ["a", "", ""]);
        assert_eq!(split(" a , b ", b',').unwrap(), [" a ", " b "]);
        assert_eq!(split("a\tb", b'\t').unwrap(), ["a", "b"]);
        assert_eq!(split("a;b,c", b';').unwrap(), ["a", "b,c"]);
        assert_eq!(split("é,中😀", b',').unwrap(), ["é", "中😀"]);
        assert_eq!(split("ab\"c,d", b',').unwrap(), ["ab\"c", "d"]);
        assert_eq!(split("a,b\r", b',').unwrap(), ["a", "b"]);
    }

    #[test]
    fn quoted_cells() {
        assert_eq!(
            split(r#""quoted ""cells"", with, commas",x"#, b',').unwrap(),
            [r#"quoted "cells", with, commas"#, "x"]
        );
        assert_eq!(split(r#""""#, b',').unwrap(), [""]);
        assert_eq!(split(r#""""""#, b',').unwrap(), ["\""]);
        assert_eq!(split(r#"a,"",b"#, b',').unwrap(), ["a", "", "b"]);
        assert_eq!(split(r#""a","b""#, b',').unwrap(), ["a", "b"]);
        assert_eq!(split(r#""a","#, b',').unwrap(), ["a", ""]);
        assert_eq!(split("\"x\r\ny\"", b',').unwrap(), ["x\r\ny"]);
        assert_eq!(split("\"a\"\r", b',').unwrap(), ["a"]);
    }

    #[test]
    fn quoted_cells_borrow_unless_doubled() {
        let mut cells = [Cell::EMPTY; 2];
        split_columns(r#""a,b","c""d""#, b',', &[0, 1], 2, &mut cells).unwrap();
        assert!(matches!(cells[0].text(), Cow::Borrowed("a,b")));
        assert!(matches!(cells[1].text(), Cow::Owned(s) if s == "c\"d"));
        assert!(!cells[1].is_empty());
        split_columns(r#""",x"#, b',', &[0, 1], 2, &mut cells).unwrap();
        assert!(cells[0].is_empty());
    }

    #[test]
    fn only_the_columns_asked_for() {
        let line = r#"a,"b,""c""",,d,"e""#;
        let mut cells = [Cell::EMPTY; 2];
        split_columns(line, b',', &[1, 3], 5, &mut cells).unwrap();
        assert_eq!(cells[0].text(), "b,\"c\"");
        assert_eq!(cells[1].text(), "d");
        let mut none: [Cell; 0] = [];
        split_columns(line, b',', &[], 5, &mut none).unwrap();
        split_columns("", b',', &[], 1, &mut none).unwrap();
        split_columns("x\r", b',', &[0], 1, &mut cells[..1]).unwrap();
        assert_eq!(cells[0].text(), "x");
    }

    #[test]
    fn column_counts_are_checked_past_the_last_column_read() {
        let err = |line: &str, columns: &[usize], n: usize| {
            let mut cells = vec![Cell::EMPTY; columns.len()];
            split_columns(line, b',', columns, n, &mut cells)
                .unwrap_err()
                .message
        };
        assert_eq!(err("a,b,c", &[0], 4), "expected 4 columns, found 3");
        assert_eq!(err("a,b,c,d,e", &[0], 4), "expected 4 columns, found 5");
        assert_eq!(err("a,b", &[3], 4), "expected 4 columns, found 2");
        assert_eq!(err(r#"a,"b,c",d"#, &[], 4), "expected 4 columns, found 3");
        assert_eq!(err(r#"a,b"c,d,e"#, &[0], 3), "expected 3 columns, found 4");
        // A malformed quoted cell anywhere comes first, even past the columns read.
        assert_eq!(
            err(r#"a,b,"c"#, &[0], 2),
            "invalid CSV at column 5: unterminated quoted cell"
        );
        assert_eq!(
            err(r#"a,b,"c"d,e"#, &[0], 9),
            "invalid CSV at column 8: text after the closing quote of a cell"
        );
    }

    #[test]
    fn malformed_lines() {
        assert_eq!(
            split(r#"a,"bc"#, b',').unwrap_err().message,
            "invalid CSV at column 3: unterminated quoted cell"
        );
        assert_eq!(
            split(r#""ab"c,d"#, b',').unwrap_err().message,
            "invalid CSV at column 5: text after the closing quote of a cell"
        );
        assert!(split(r#""a"""#, b',').is_err());
        assert!(split(r#""a" ,b"#, b',').is_err());
        assert!(split("\"", b',').is_err());
        assert!(split("a", b'"').is_err());
        assert!(split("a", 0xC3).is_err());
    }

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writing_cells() {
        assert_eq!(written(|o| write_cell(o, "plain", b',')), "plain");
        // The empty string is quoted, so it reads back as itself and not as null.
        assert_eq!(written(|o| write_cell(o, "", b',')), r#""""#);
        assert_eq!(written(|o| write_cell(o, "a,b", b',')), r#""a,b""#);
        assert_eq!(written(|o| write_cell(o, "a,b", b';')), "a,b");
        assert_eq!(written(|o| write_cell(o, "a;b", b';')), r#""a;b""#);
        assert_eq!(
            written(|o| write_cell(o, "say \"hi\"", b',')),
            r#""say ""hi""""#
        );
        assert_eq!(written(|o| write_cell(o, "\"", b',')), r#""""""#);
        assert_eq!(written(|o| write_cell(o, "l1\nl2", b',')), "\"l1\nl2\"");
        assert_eq!(written(|o| write_cell(o, " pad", b',')), "\" pad\"");
        assert_eq!(written(|o| write_cell(o, "pad\t", b',')), "\"pad\t\"");
        assert_eq!(written(|o| write_cell(o, "in side", b',')), "in side");
        assert_eq!(written(|o| write_cell(o, "é😀", b',')), "é😀");
    }

    #[test]
    fn writing_values() {
        assert_eq!(written(|o| write_i64(o, -42)), "-42");
        assert_eq!(written(|o| write_i64(o, i64::MAX)), "9223372036854775807");
        assert_eq!(written(|o| write_f64(o, 2.0)), "2.0");
        assert_eq!(written(|o| write_f64(o, 0.1)), "0.1");
        // NaN and infinities are null (an empty cell), as in JSON.
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(written(|o| write_f64(o, v)), "");
            assert_eq!(f64_text(v), "");
        }
        for v in [-0.0, 1e-300, 123.456, f64::MAX, -f64::MAX] {
            let s = written(|o| write_f64(o, v));
            assert_eq!(f64_text(v), s);
            let back = crate::formats::parse_f64(&s).unwrap();
            assert!(back.to_bits() == v.to_bits(), "{s}");
        }
        assert_eq!(written(|o| write_bool(o, true)), "true");
        assert_eq!(
            written(|o| write_timestamp(o, 1_436_918_400_000)),
            "2015-07-15 00:00:00.000"
        );
    }

    #[test]
    fn write_then_split_round_trips() {
        let cells = [
            "",
            "a",
            " a",
            "a ",
            ",",
            "\"",
            "\"\"",
            "a,\"b\",c",
            "x\ny",
            "x\r",
            "é,😀",
            ";",
            "\t",
            "end\"",
        ];
        for delimiter in [b',', b';', b'\t', b'|'] {
            let mut line = Vec::new();
            for (i, c) in cells.iter().enumerate() {
                if i > 0 {
                    line.push(delimiter);
                }
                write_cell(&mut line, c, delimiter);
            }
            let line = String::from_utf8(line).unwrap();
            assert_eq!(split(&line, delimiter).unwrap(), cells, "{line:?}");
            // Each cell on its own, too (an empty line is one empty cell).
            for c in cells {
                let mut one = Vec::new();
                write_cell(&mut one, c, delimiter);
                let one = String::from_utf8(one).unwrap();
                assert_eq!(split(&one, delimiter).unwrap(), [c], "{one:?}");
            }
        }
    }

    #[test]
    fn fuzz_never_panics() {
        let alphabet = [
            "a", ",", "\"", ";", " ", "\r", "\n", "é", "😀", "\t", "\"\"", "x\"",
        ];
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        for _ in 0..30_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut line = String::new();
            let mut r = x;
            for _ in 0..(r % 16) {
                r /= 16;
                if r == 0 {
                    r = x.rotate_left(17) | 1;
                }
                line.push_str(alphabet[(r % alphabet.len() as u64) as usize]);
            }
            for delimiter in [b',', b';', b'\t', b'"', 0xff] {
                if let Ok(owned) = split(&line, delimiter) {
                    // Whatever splits must survive a write/split round trip.
                    let mut out = Vec::new();
                    for (i, c) in owned.iter().enumerate() {
                        if i > 0 {
                            out.push(delimiter);
                        }
                        write_cell(&mut out, c, delimiter);
                    }
                    let again = String::from_utf8(out).unwrap();
                    assert_eq!(
                        split(&again, delimiter).unwrap(),
                        owned,
                        "{line:?} -> {again:?}"
                    );
                }
            }
        }
    }
}
