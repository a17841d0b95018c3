//! Word-at-a-time searches: for the bytes the writers must treat specially (what a JSON
//! string escapes: `"`, `\` and control characters; what makes a CSV cell need quotes: the
//! delimiter, `"`, `\r`, `\n`), and the CSV decoder's count of delimiters in the tail of a
//! line it does not split.
//!
//! Eight bytes are tested at once in a `u64` with the classic bit tricks (no `unsafe`, the
//! same code on every target); a word that holds a match is looked at byte by byte. Text
//! without such bytes, nearly all text, costs a few instructions per eight bytes.

/// `b` repeated in every byte of a word.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const LOW: u64 = splat(0x01);
const HIGH: u64 = splat(0x80);

/// Whether any byte of `x` is zero. Exact: the first zero byte always sets its high bit, and
/// no byte sets it without a zero byte at or below it.
#[inline(always)]
const fn has_zero(x: u64) -> bool {
    x.wrapping_sub(LOW) & !x & HIGH != 0
}

/// Whether any byte of `x` equals `b`.
#[inline(always)]
const fn has_byte(x: u64, b: u8) -> bool {
    has_zero(x ^ splat(b))
}

/// Whether any byte of `x` is below `n` (`n <= 128`). Exact for the same reason as
/// [`has_zero`].
#[inline(always)]
const fn has_less(x: u64, n: u8) -> bool {
    x.wrapping_sub(splat(n)) & !x & HIGH != 0
}

/// Whether a JSON string must escape `c`.
#[inline(always)]
pub(crate) fn json_escaped(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// The index of the first byte at or after `from` that a JSON string escapes, or `b.len()`.
#[inline]
pub(crate) fn next_json_escape(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if has_less(x, 0x20) || has_byte(x, b'"') || has_byte(x, b'\\') {
            break;
        }
        i += 8;
    }
    while i < b.len() && !json_escaped(b[i]) {
        i += 1;
    }
    i
}

/// Whether a CSV cell holding `b` must be quoted for the delimiter: it holds the delimiter, a
/// quote, `\r` or `\n` (the spaces at its ends are the caller's to check).
#[inline]
pub(crate) fn csv_needs_quotes(b: &[u8], delimiter: u8) -> bool {
    let special = |c: u8| c == delimiter || c == b'"' || c == b'\r' || c == b'\n';
    let mut chunks = b.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if has_byte(x, delimiter) || has_byte(x, b'"') || has_byte(x, b'\r') || has_byte(x, b'\n') {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| special(c))
}

/// The high bit of each byte of `x` that is zero, exactly (no borrow between bytes).
#[inline(always)]
const fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = splat(0x7f);
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// How many bytes of `b` are `delimiter`, if none is a quote (`None` otherwise): what a CSV
/// line's tail needs when its cells are only counted.
#[inline]
pub(crate) fn count_unquoted(b: &[u8], delimiter: u8) -> Option<usize> {
    let mut count = 0;
    let mut quotes = false;
    let mut words = b.chunks_exact(8);
    for chunk in &mut words {
        let x = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        // One bit per delimiter, added up in the top byte by the multiplication.
        count += ((zero_bytes(x ^ splat(delimiter)) >> 7).wrapping_mul(LOW) >> 56) as usize;
        quotes |= has_byte(x, b'"');
    }
    for &c in words.remainder() {
        count += usize::from(c == delimiter);
        quotes |= c == b'"';
    }
    (!quotes).then_some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain loop the word-at-a-time searches must agree with.
    fn naive_json(b: &[u8], from: usize) -> usize {
        (from..b.len())
            .find(|&i| json_escaped(b[i]))
            .unwrap_or(b.len())
    }

    #[test]
    fn counts_long_runs() {
        for len in [0, 7, 8, 2040, 2047, 2048, 2049, 5000] {
            let text = vec![b','; len];
            assert_eq!(count_unquoted(&text, b','), Some(len));
            let mut quoted = text.clone();
            quoted.push(b'"');
            assert_eq!(count_unquoted(&quoted, b','), None);
        }
    }

    #[test]
    fn word_tricks_are_exact() {
        for x in [
            0u8, 1, 0x1f, 0x20, 0x21, b'"', b'\\', 0x7f, 0x80, 0xc3, 0xff,
        ] {
            for at in 0..8 {
                for fill in [b'a', 0xff, 0x80, 0x21, 0x00] {
                    let mut bytes = [fill; 8];
                    bytes[at] = x;
                    let w = u64::from_le_bytes(bytes);
                    assert_eq!(has_zero(w), bytes.contains(&0), "{bytes:?}");
                    let zeros = zero_bytes(w).to_le_bytes();
                    for (z, c) in zeros.iter().zip(bytes) {
                        assert_eq!(*z == 0x80, c == 0, "{bytes:?}");
                    }
                    assert_eq!(has_byte(w, b'"'), bytes.contains(&b'"'), "{bytes:?}");
                    assert_eq!(
                        has_less(w, 0x20),
                        bytes.iter().any(|&c| c < 0x20),
                        "{bytes:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn searches_agree_with_byte_loops() {
        let mut x: u64 = 0x5eed_1234_abcd_0001;
        let alphabet = [
            b'a', b'"', b'\\', b'\n', b'\r', 0x01, 0x1f, b' ', b',', b';', 0xc3, 0xa9,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut r = x;
            let text: Vec<u8> = (0..len)
                .map(|i| {
                    r = r.rotate_left(7) ^ i as u64;
                    // Mostly plain letters, so matches fall anywhere in a word.
                    if r.is_multiple_of(5) {
                        alphabet[(r / 5 % alphabet.len() as u64) as usize]
                    } else {
                        b'a' + (r % 26) as u8
                    }
                })
                .collect();
            for from in [0, 1, 7, 8, len / 2, len] {
                let from = from.min(len);
                assert_eq!(
                    next_json_escape(&text, from),
                    naive_json(&text, from),
                    "{text:?}"
                );
            }
            for delimiter in [b',', b';', b'\t', b'|'] {
                let want = (!text.contains(&b'"'))
                    .then(|| text.iter().filter(|&&c| c == delimiter).count());
                assert_eq!(count_unquoted(&text, delimiter), want, "{text:?}");
                let naive = text
                    .iter()
                    .any(|&c| c == delimiter || c == b'"' || c == b'\r' || c == b'\n');
                assert_eq!(csv_needs_quotes(&text, delimiter), naive, "{text:?}");
            }
        }
    }
}
