//! CSV decoders side by side on the same bid lines (as weir's CSV encoder writes them): the
//! decoder weir generates today (`csv::split_columns`: only the columns read, borrowed, the
//! rest counted) and the one it generated before (every cell split into a vector of `Cow`s,
//! then the count checked), for every field and for two (`auction`, `price`).

use std::borrow::Cow;
use std::time::Instant;

use weir_runtime::formats::csv::{split_columns, Cell};
use weir_runtime::formats::{parse_i64, time, DecodeError};

/// The splitter weir's CSV decoders used before `split_columns`, kept to measure against.
fn old_split_line<'a>(
    line: &'a str,
    delimiter: u8,
    cells: &mut Vec<Cow<'a, str>>,
) -> Result<(), DecodeError> {
    cells.clear();
    let line = line.strip_suffix('\r').unwrap_or(line);
    let b = line.as_bytes();
    let mut pos = 0;
    loop {
        if b.get(pos) == Some(&b'"') {
            let open = pos;
            let mut i = pos + 1;
            let mut doubled = false;
            let close = loop {
                match b[i..].iter().position(|&c| c == b'"') {
                    None => {
                        return Err(DecodeError::new(format!(
                            "invalid CSV at column {}: unterminated quoted cell",
                            open + 1
                        )))
                    }
                    Some(off) if b.get(i + off + 1) == Some(&b'"') => {
                        doubled = true;
                        i += off + 2;
                    }
                    Some(off) => break i + off,
                }
            };
            let content = &line[open + 1..close];
            cells.push(if doubled {
                Cow::Owned(content.replace("\"\"", "\""))
            } else {
                Cow::Borrowed(content)
            });
            pos = close + 1;
            match b.get(pos) {
                None => return Ok(()),
                Some(&c) if c == delimiter => pos += 1,
                Some(_) => return Err(DecodeError::new("text after the closing quote")),
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

fn sum(fields: [i64; 4], strings: [&str; 3]) -> u64 {
    let mut h = 0u64;
    for v in fields {
        h = h.wrapping_mul(31).wrapping_add(v as u64);
    }
    for s in strings {
        h = h.wrapping_mul(31).wrapping_add(s.len() as u64);
    }
    h
}

fn old_full(line: &str) -> Result<u64, DecodeError> {
    let mut cells = Vec::with_capacity(7);
    old_split_line(line, b',', &mut cells)?;
    if cells.len() != 7 {
        return Err(DecodeError::new("column count"));
    }
    Ok(sum(
        [
            parse_i64(&cells[0])?,
            parse_i64(&cells[1])?,
            parse_i64(&cells[2])?,
            time::parse_timestamp(&cells[5])?,
        ],
        [&cells[3], &cells[4], &cells[6]],
    ))
}

fn new_full(line: &str) -> Result<u64, DecodeError> {
    let mut cells = [Cell::EMPTY; 7];
    split_columns(line, b',', &[0, 1, 2, 3, 4, 5, 6], 7, &mut cells)?;
    Ok(sum(
        [
            parse_i64(&cells[0].text())?,
            parse_i64(&cells[1].text())?,
            parse_i64(&cells[2].text())?,
            time::parse_timestamp(&cells[5].text())?,
        ],
        [&cells[3].text(), &cells[4].text(), &cells[6].text()],
    ))
}

fn old_two(line: &str) -> Result<u64, DecodeError> {
    let mut cells = Vec::with_capacity(7);
    old_split_line(line, b',', &mut cells)?;
    if cells.len() != 7 {
        return Err(DecodeError::new("column count"));
    }
    Ok(sum(
        [parse_i64(&cells[0])?, parse_i64(&cells[2])?, 0, 0],
        [""; 3],
    ))
}

fn new_two(line: &str) -> Result<u64, DecodeError> {
    let mut cells = [Cell::EMPTY; 2];
    split_columns(line, b',', &[0, 2], 7, &mut cells)?;
    Ok(sum(
        [
            parse_i64(&cells[0].text())?,
            parse_i64(&cells[1].text())?,
            0,
            0,
        ],
        [""; 3],
    ))
}

/// Decodes every line `rounds` times; the best time and the checksum.
fn measure(
    text: &str,
    rounds: usize,
    decode: impl Fn(&str) -> Result<u64, DecodeError>,
) -> (f64, u64) {
    let mut best = f64::MAX;
    let mut total = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let mut s = 0u64;
        for line in text.split_terminator('\n') {
            s = s.wrapping_add(decode(line).expect("a bid line decodes"));
        }
        best = best.min(started.elapsed().as_secs_f64());
        total = s;
    }
    (best, total)
}

/// Prints the table; panics if the two decoders disagree.
pub fn compare(text: &str, lines: usize, rounds: usize) {
    let mb = text.len() as f64 / 1e6;
    println!(
        "== CSV decoders: {lines} bid lines, {mb:.1} MB ({:.0} bytes a line), best of {rounds} rounds, one core",
        text.len() as f64 / lines as f64
    );
    println!(
        "{:<36} {:>10} {:>12} {:>10}",
        "decoder", "MB/s", "lines/s", "vs floor"
    );
    let (floor, _) = measure(text, rounds, |l| Ok(l.len() as u64));
    let row = |name: &str, secs: f64| {
        println!(
            "{name:<36} {:>10.0} {:>12.0} {:>10.2}",
            mb / secs,
            lines as f64 / secs,
            floor / secs
        );
    };
    row("floor: lines split, nothing decoded", floor);
    for (case, old, new) in [
        (
            "every field",
            old_full as fn(&str) -> Result<u64, DecodeError>,
            new_full as fn(&str) -> Result<u64, DecodeError>,
        ),
        ("two fields (auction, price)", old_two, new_two),
    ] {
        println!("-- {case}");
        let (t_old, sum_old) = measure(text, rounds, old);
        row("weir before (split_line, Vec<Cow>)", t_old);
        let (t_new, sum_new) = measure(text, rounds, new);
        assert_eq!(sum_old, sum_new, "the two CSV decoders disagree");
        row("weir (split_columns)", t_new);
    }
}
