//! CSV: one record per line, with RFC 4180 quoting within the line.
//!
//! A cell is either bare text (no delimiter inside) or quoted: `"..."` with `""` standing for
//! one quote; a quoted cell may contain the delimiter. Records never span lines: the reader
//! splits input on newlines first, so a quoted cell cannot hold a line break on input (the
//! writer still quotes cells containing `\r` or `\n` so output stays parseable by other tools).
//!
//! [`split_line`] borrows cells from the line and only allocates for quoted cells with doubled
//! quotes. The generated decoder converts cells with the parsers in [`super`]; an empty cell is
//! null for optional fields. The writers append to a byte buffer; null is written as an empty
//! cell (nothing between the delimiters).

use std::borrow::Cow;

use super::{time, DecodeError};

/// Splits one line into cells, replacing the contents of `cells`.
///
/// Handles `"quoted ""cells"", with, delimiters"`. A quote inside a bare cell (`ab"c`) is kept
/// as a literal character. A single trailing `\r` (from CRLF line ends) is ignored. An empty
/// line gives one empty cell.
///
/// Errors: an unterminated quoted cell, text after a closing quote, or a delimiter that is a
/// quote or not ASCII.
pub fn split_line<'a>(
    line: &'a str,
    delimiter: u8,
    cells: &mut Vec<Cow<'a, str>>,
) -> Result<(), DecodeError> {
    cells.clear();
    if delimiter == b'"' || !delimiter.is_ascii() {
        return Err(DecodeError::new(format!(
            "invalid CSV delimiter `{}` (must be an ASCII character other than `\"`)",
            char::from(delimiter).escape_debug()
        )));
    }
    let line = line.strip_suffix('\r').unwrap_or(line);
    let b = line.as_bytes();
    let mut pos = 0;
    loop {
        if b.get(pos) == Some(&b'"') {
            // Quoted cell: runs to the next quote that is not doubled.
            let open = pos;
            let content_start = pos + 1;
            let mut i = content_start;
            let mut doubled = false;
            let close = loop {
                match b[i..].iter().position(|&c| c == b'"') {
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
                            break q;
                        }
                    }
                }
            };
            let content = &line[content_start..close];
            cells.push(if doubled {
                Cow::Owned(content.replace("\"\"", "\""))
            } else {
                Cow::Borrowed(content)
            });
            pos = close + 1;
            match b.get(pos) {
                None => return Ok(()),
                Some(&c) if c == delimiter => pos += 1,
                Some(_) => {
                    return Err(DecodeError::new(format!(
                        "invalid CSV at column {}: text after the closing quote of a cell",
                        pos + 1
                    )))
                }
            }
        } else {
            match b[pos..].iter().position(|&c| c == delimiter) {
                None => {
                    cells.push(Cow::Borrowed(&line[pos..]));
                    return Ok(());
                }
                Some(off) => {
                    cells.push(Cow::Borrowed(&line[pos..pos + off]));
                    pos += off + 1;
                }
            }
        }
    }
}

/// Appends one cell, quoting it (and doubling its quotes) when it contains the delimiter, a
/// quote, `\r` or `\n`, or starts or ends with a space or tab. An empty string is written as
/// nothing, the same as null.
pub fn write_cell(out: &mut Vec<u8>, s: &str, delimiter: u8) {
    let b = s.as_bytes();
    let needs_quotes = b
        .iter()
        .any(|&c| c == delimiter || c == b'"' || c == b'\r' || c == b'\n')
        || matches!(b.first(), Some(b' ' | b'\t'))
        || matches!(b.last(), Some(b' ' | b'\t'));
    if !needs_quotes {
        out.extend_from_slice(b);
        return;
    }
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut run_start = 0;
    for (i, &c) in b.iter().enumerate() {
        if c == b'"' {
            out.extend_from_slice(&b[run_start..=i]);
            out.push(b'"');
            run_start = i + 1;
        }
    }
    out.extend_from_slice(&b[run_start..]);
    out.push(b'"');
}

/// Appends an integer.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends a float in the shortest form that reads back to the same value (`1.0`, `0.1`,
/// `1e20`). NaN and infinities are written as `NaN`, `Infinity` and `-Infinity`, which
/// [`super::parse_f64`] reads back.
pub fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v > 0.0 {
        out.extend_from_slice(b"Infinity");
    } else {
        out.extend_from_slice(b"-Infinity");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str, delimiter: u8) -> Result<Vec<String>, DecodeError> {
        let mut cells = Vec::new();
        split_line(line, delimiter, &mut cells)?;
        Ok(cells.into_iter().map(Cow::into_owned).collect())
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
        let mut cells = Vec::new();
        split_line(r#""a,b","c""d""#, b',', &mut cells).unwrap();
        assert!(matches!(cells[0], Cow::Borrowed("a,b")));
        assert!(matches!(&cells[1], Cow::Owned(s) if s == "c\"d"));
    }

    #[test]
    fn cells_vector_is_reused() {
        let mut cells = Vec::new();
        split_line("a,b,c,d", b',', &mut cells).unwrap();
        split_line("x", b',', &mut cells).unwrap();
        assert_eq!(cells, ["x"]);
        assert!(split_line("\"x", b',', &mut cells).is_err());
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
        assert_eq!(written(|o| write_cell(o, "", b',')), "");
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
        assert_eq!(written(|o| write_f64(o, f64::NAN)), "NaN");
        assert_eq!(written(|o| write_f64(o, f64::INFINITY)), "Infinity");
        assert_eq!(written(|o| write_f64(o, f64::NEG_INFINITY)), "-Infinity");
        for v in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            1e-300,
            123.456,
        ] {
            let s = written(|o| write_f64(o, v));
            let back = crate::formats::parse_f64(&s).unwrap();
            assert!(
                back.to_bits() == v.to_bits() || (v.is_nan() && back.is_nan()),
                "{s}"
            );
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
            let mut cells = Vec::new();
            for delimiter in [b',', b';', b'\t', b'"', 0xff] {
                if split_line(&line, delimiter, &mut cells).is_ok() {
                    // Whatever splits must survive a write/split round trip.
                    let owned: Vec<String> = cells.iter().map(|c| c.to_string()).collect();
                    let mut out = Vec::new();
                    for (i, c) in owned.iter().enumerate() {
                        if i > 0 {
                            out.push(delimiter);
                        }
                        write_cell(&mut out, c, delimiter);
                    }
                    let again = String::from_utf8(out).unwrap();
                    let mut cells2 = Vec::new();
                    split_line(&again, delimiter, &mut cells2).unwrap();
                    assert_eq!(cells2, owned, "{line:?} -> {again:?}");
                }
            }
        }
    }
}
