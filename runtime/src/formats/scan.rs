//! Byte-scanning kernels of the decoders and encoders.
//!
//! * Finding the end of a plain run in a JSON string: the first byte that is `"`, `\` or a
//!   control character (below 0x20, which JSON forbids unescaped). The decoder's hot loop and
//!   the encoder's escape search. [`string_stop`] takes 32 bytes at a time with AVX2 when the
//!   CPU has it, 16 with SSE2 (every x86-64 CPU has it), and 8 at a time with portable
//!   word-at-a-time arithmetic elsewhere (aarch64 included; NEON is not written yet): the
//!   instruction set is chosen when the pipeline runs, so a binary built on any x86-64 machine
//!   runs on any other. All paths give the same answer; the tests run every path the machine
//!   can run against a byte-by-byte reference. The choice is made once and cached ([`level`]);
//!   `WEIR_SIMD=scalar|sse2|avx2` caps it, which is how the tests and benchmarks reach the
//!   slower paths on a fast machine.
//! * Splitting a CSV line that holds no quote (`csv_cells`): the cells a decoder reads and
//!   the count of the others, from a bit mask of the delimiters of each block of 32 bytes
//!   (AVX2), 16 (SSE2) or 8 (words); and whether a CSV cell must be quoted
//!   (`csv_needs_quotes`), 32 or 16 bytes at a time. Chosen at run time like the JSON scan.
//! * Word-at-a-time searches in safe code (eight bytes in a `u64` with the classic bit
//!   tricks; a word that holds a match is looked at byte by byte): what makes a CSV cell need
//!   quotes (the delimiter, `"`, `\r`, `\n`), and the CSV decoder's count of delimiters in the
//!   tail of a line it does not split.

use std::sync::atomic::{AtomicU8, Ordering};

/// Instruction sets the kernels can use, slowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Word-at-a-time arithmetic on `u64`: any CPU.
    Scalar = 1,
    /// 16-byte vectors: every x86-64 CPU.
    Sse2 = 2,
    /// 32-byte vectors: x86-64 CPUs since 2013.
    Avx2 = 3,
}

impl Level {
    /// The name `WEIR_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Sse2 => "sse2",
            Level::Avx2 => "avx2",
        }
    }
}

/// 0: not decided yet; otherwise a [`Level`] as `u8`.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The best level this CPU supports, capped by `WEIR_SIMD` if set (an unknown value is
/// ignored). Detected on first use, then a relaxed load.
#[inline]
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        1 => Level::Scalar,
        2 => Level::Sse2,
        3 => Level::Avx2,
        _ => detect(),
    }
}

#[cold]
fn detect() -> Level {
    let cap = match std::env::var("WEIR_SIMD").as_deref() {
        Ok("scalar") => Level::Scalar,
        Ok("sse2") => Level::Sse2,
        _ => Level::Avx2,
    };
    let level = supported().min(cap);
    LEVEL.store(level as u8, Ordering::Relaxed);
    level
}

/// The best level the CPU running this process supports.
pub fn supported() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        // (Every AVX2 CPU has `popcnt`, which the AVX2 kernels also use.)
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            Level::Avx2
        } else {
            Level::Sse2
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Level::Scalar
    }
}

/// The position of the first byte at or after `pos` that ends the plain run of a JSON string:
/// `"`, `\` or a byte below 0x20; `b.len()` if there is none.
#[inline]
pub fn string_stop(b: &[u8], pos: usize) -> usize {
    string_stop_at(level(), b, pos)
}

/// [`string_stop`] with a given level (which must be supported: see [`supported`]).
#[inline]
pub fn string_stop_at(level: Level, b: &[u8], pos: usize) -> usize {
    if pos >= b.len() {
        return b.len();
    }
    #[cfg(target_arch = "x86_64")]
    {
        match level {
            // SAFETY: `Avx2` is only chosen (by `detect`, or by a caller that checked
            // `supported`) when the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::string_stop_avx2(b, pos) },
            Level::Sse2 => return x86::string_stop_sse2(b, pos),
            Level::Scalar => {}
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = level;
    string_stop_words(b, pos)
}

/// A mask whose lowest set bit is the high bit of the first stop byte of the little-endian
/// word `w` (other bits may be set above it; only the lowest one is exact: borrows only run
/// upwards).
#[inline(always)]
fn word_stops(w: u64) -> u64 {
    zero_mask(w ^ splat(b'"')) | zero_mask(w ^ splat(b'\\')) | less_mask(w, 0x20)
}

/// [`string_stop`] eight bytes at a time, with plain integer arithmetic.
fn string_stop_words(b: &[u8], mut pos: usize) -> usize {
    while let Some(chunk) = b.get(pos..pos + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let stops = word_stops(u64::from_le_bytes(word));
        if stops != 0 {
            return pos + (stops.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    string_stop_bytes(b, pos)
}

/// [`string_stop`] one byte at a time: the reference, and the tail of the wider paths.
#[inline]
fn string_stop_bytes(b: &[u8], mut pos: usize) -> usize {
    while let Some(&c) = b.get(pos) {
        if json_escaped(c) {
            return pos;
        }
        pos += 1;
    }
    b.len()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// The 16-byte step: a mask of the stop bytes of `v`.
    #[inline(always)]
    fn stops16(v: __m128i) -> u32 {
        // SAFETY: SSE2 is part of x86-64, so these intrinsics are always available.
        unsafe {
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // `v <= 0x1f` (unsigned) exactly when `min(v, 0x1f) == v`.
            let limit = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, limit), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
        }
    }

    pub(super) fn string_stop_sse2(b: &[u8], mut pos: usize) -> usize {
        while pos + 16 <= b.len() {
            // SAFETY: `pos + 16 <= b.len()`, so the 16 bytes read are inside `b`; the load is
            // unaligned.
            let v = unsafe { _mm_loadu_si128(b.as_ptr().add(pos).cast()) };
            let mask = stops16(v);
            if mask != 0 {
                return pos + mask.trailing_zeros() as usize;
            }
            pos += 16;
        }
        super::string_stop_words(b, pos)
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn string_stop_avx2(b: &[u8], mut pos: usize) -> usize {
        let quote = _mm256_set1_epi8(b'"' as i8);
        let backslash = _mm256_set1_epi8(b'\\' as i8);
        let limit = _mm256_set1_epi8(0x1f);
        while pos + 32 <= b.len() {
            // SAFETY: `pos + 32 <= b.len()`, so the 32 bytes read are inside `b`; the load is
            // unaligned.
            let v = unsafe { _mm256_loadu_si256(b.as_ptr().add(pos).cast()) };
            let hits = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)),
                _mm256_cmpeq_epi8(_mm256_min_epu8(v, limit), v),
            );
            let mask = _mm256_movemask_epi8(hits) as u32;
            if mask != 0 {
                return pos + mask.trailing_zeros() as usize;
            }
            pos += 32;
        }
        string_stop_sse2(b, pos)
    }

    /// The 16-byte step of [`csv_needs_quotes_sse2`]: whether `v` holds the delimiter `d`, a
    /// quote, `\r` or `\n`.
    #[inline(always)]
    fn special16(v: __m128i, d: __m128i) -> bool {
        // SAFETY: SSE2 is part of x86-64.
        unsafe {
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let cr = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\r' as i8));
            let lf = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8));
            let hits = _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, d), quote),
                _mm_or_si128(cr, lf),
            );
            _mm_movemask_epi8(hits) != 0
        }
    }

    /// [`super::csv_needs_quotes`] 16 bytes at a time; `b` holds at least 16.
    pub(super) fn csv_needs_quotes_sse2(b: &[u8], delimiter: u8) -> bool {
        assert!(b.len() >= 16);
        // SAFETY: SSE2 is part of x86-64; every load reads 16 bytes inside `b` (the last one
        // ends at its end, overlapping the one before), unaligned.
        unsafe {
            let d = _mm_set1_epi8(delimiter as i8);
            let mut pos = 0;
            while pos + 16 <= b.len() {
                if special16(_mm_loadu_si128(b.as_ptr().add(pos).cast()), d) {
                    return true;
                }
                pos += 16;
            }
            pos < b.len() && special16(_mm_loadu_si128(b.as_ptr().add(b.len() - 16).cast()), d)
        }
    }

    /// [`super::csv_needs_quotes`] 32 bytes at a time, the rest 16 at a time; `b` holds at
    /// least 16.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn csv_needs_quotes_avx2(b: &[u8], delimiter: u8) -> bool {
        let d = _mm256_set1_epi8(delimiter as i8);
        let quote = _mm256_set1_epi8(b'"' as i8);
        let cr = _mm256_set1_epi8(b'\r' as i8);
        let lf = _mm256_set1_epi8(b'\n' as i8);
        if b.len() < 32 {
            return csv_needs_quotes_sse2(b, delimiter);
        }
        let special = |at: usize| {
            // SAFETY: callers pass `at + 32 <= b.len()`: the 32 bytes read lie inside `b`;
            // unaligned.
            let v = unsafe { _mm256_loadu_si256(b.as_ptr().add(at).cast()) };
            let hits = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, d), _mm256_cmpeq_epi8(v, quote)),
                _mm256_or_si256(_mm256_cmpeq_epi8(v, cr), _mm256_cmpeq_epi8(v, lf)),
            );
            _mm256_movemask_epi8(hits) != 0
        };
        let mut pos = 0;
        while pos + 32 <= b.len() {
            if special(pos) {
                return true;
            }
            pos += 32;
        }
        // The rest: the last 32 bytes (overlapping the block before).
        pos < b.len() && special(b.len() - 32)
    }

    /// CSV blocks of 16 bytes.
    struct Sse2Blocks {
        delimiter: __m128i,
        quote: __m128i,
    }

    impl super::CsvBlocks for Sse2Blocks {
        const WIDTH: usize = 16;

        #[inline(always)]
        fn masks(&self, b: &[u8], pos: usize) -> (u32, u32) {
            assert!(pos + 16 <= b.len());
            // SAFETY: the 16 bytes read lie inside `b` (checked above); the load is
            // unaligned; SSE2 is part of x86-64.
            unsafe {
                let v = _mm_loadu_si128(b.as_ptr().add(pos).cast());
                (
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, self.delimiter)) as u32,
                    _mm_movemask_epi8(_mm_cmpeq_epi8(v, self.quote)) as u32,
                )
            }
        }
    }

    pub(super) fn csv_cells_sse2(
        b: &[u8],
        delimiter: u8,
        columns: &[usize],
        cells: &mut [(usize, usize)],
    ) -> Option<usize> {
        // SAFETY: SSE2 is part of x86-64.
        let blocks = unsafe {
            Sse2Blocks {
                delimiter: _mm_set1_epi8(delimiter as i8),
                quote: _mm_set1_epi8(b'"' as i8),
            }
        };
        super::csv_cells_with(&blocks, b, delimiter, columns, cells)
    }

    /// CSV blocks of 32 bytes; only made by [`csv_cells_avx2`].
    struct Avx2Blocks {
        delimiter: __m256i,
        quote: __m256i,
    }

    impl super::CsvBlocks for Avx2Blocks {
        const WIDTH: usize = 32;

        #[inline(always)]
        fn masks(&self, b: &[u8], pos: usize) -> (u32, u32) {
            assert!(pos + 32 <= b.len());
            // SAFETY: the 32 bytes read lie inside `b` (checked above); the load is
            // unaligned; an `Avx2Blocks` exists only inside `csv_cells_avx2`, which runs
            // only on CPUs with AVX2.
            unsafe {
                let v = _mm256_loadu_si256(b.as_ptr().add(pos).cast());
                (
                    _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, self.delimiter)) as u32,
                    _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, self.quote)) as u32,
                )
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and `popcnt`.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn csv_cells_avx2(
        b: &[u8],
        delimiter: u8,
        columns: &[usize],
        cells: &mut [(usize, usize)],
    ) -> Option<usize> {
        let blocks = Avx2Blocks {
            delimiter: _mm256_set1_epi8(delimiter as i8),
            quote: _mm256_set1_epi8(b'"' as i8),
        };
        super::csv_cells_with(&blocks, b, delimiter, columns, cells)
    }
}

/// The delimiter and quote bytes of a block of a CSV line, one bit per byte, lowest bit
/// first: what [`csv_cells_at`] walks.
trait CsvBlocks {
    /// Bytes per block (at most 32).
    const WIDTH: usize;
    /// The masks of the delimiters and of the quotes in `b[pos..pos + WIDTH]`, which must lie
    /// inside `b`.
    fn masks(&self, b: &[u8], pos: usize) -> (u32, u32);
}

/// The masks byte by byte: blocks of 8 with the word tricks, and the tail of every level.
struct WordBlocks {
    delimiter: u8,
}

impl CsvBlocks for WordBlocks {
    const WIDTH: usize = 8;

    #[inline(always)]
    fn masks(&self, b: &[u8], pos: usize) -> (u32, u32) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[pos..pos + 8]);
        let x = u64::from_le_bytes(word);
        // One bit per byte: the high bit of each byte, gathered by the multiplication.
        let gather = |high: u64| ((high >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u32;
        (
            gather(zero_bytes(x ^ splat(self.delimiter))),
            gather(zero_bytes(x ^ splat(b'"'))),
        )
    }
}

/// Splits a CSV line without quotes: the cells of `line` at `columns` (ascending) go into
/// `cells` as `(start, end)` byte ranges, and the result is the number of cells of the line.
/// `None` when the line holds a quote: the caller's cell-by-cell walk handles those lines
/// (`cells` may then hold some ranges already; the walk overwrites them).
#[inline(always)]
fn csv_cells_with<B: CsvBlocks>(
    blocks: &B,
    b: &[u8],
    delimiter: u8,
    columns: &[usize],
    cells: &mut [(usize, usize)],
) -> Option<usize> {
    let wanted = columns.len().min(cells.len());
    let (mut next, mut column, mut cell_start, mut delimiters) = (0, 0, 0, 0);
    let mut pos = 0;
    // Takes the cells ending at the delimiters of `mask` (a block at `base`); counts the rest.
    let mut take = |mut mask: u32, base: usize| {
        while mask != 0 && next < wanted {
            let at = base + mask.trailing_zeros() as usize;
            if columns[next] == column {
                cells[next] = (cell_start, at);
                next += 1;
            }
            column += 1;
            delimiters += 1;
            cell_start = at + 1;
            mask &= mask - 1;
        }
        delimiters += mask.count_ones() as usize;
    };
    while pos + B::WIDTH <= b.len() {
        let (delims, quotes) = blocks.masks(b, pos);
        if quotes != 0 {
            return None;
        }
        take(delims, pos);
        pos += B::WIDTH;
    }
    // The tail, one byte at a time.
    let (mut delims, mut quotes) = (0u32, 0u32);
    for (i, &c) in b[pos..].iter().enumerate() {
        delims |= u32::from(c == delimiter) << i;
        quotes |= u32::from(c == b'"') << i;
    }
    if quotes != 0 {
        return None;
    }
    take(delims, pos);
    // The last cell runs to the end of the line.
    if next < wanted && columns[next] == column {
        cells[next] = (cell_start, b.len());
    }
    Some(delimiters + 1)
}

/// Splits a CSV line that holds no quote in one pass, a block of bytes at a time: the byte
/// ranges of the cells at `columns` (ascending) go into `cells`, and the result is the number
/// of cells in the line; `None` when the line holds a quote anywhere (nothing to say about
/// it: the caller walks it cell by cell). A cell at a column beyond the line's last is left
/// as it was.
#[inline]
pub(crate) fn csv_cells(
    b: &[u8],
    delimiter: u8,
    columns: &[usize],
    cells: &mut [(usize, usize)],
) -> Option<usize> {
    csv_cells_at(level(), b, delimiter, columns, cells)
}

/// [`csv_cells`] with a given level (which must be supported: see [`supported`]).
#[inline]
pub(crate) fn csv_cells_at(
    level: Level,
    b: &[u8],
    delimiter: u8,
    columns: &[usize],
    cells: &mut [(usize, usize)],
) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        match level {
            // SAFETY: `Avx2` is only chosen (by `detect`, or by a caller that checked
            // `supported`) when the CPU has AVX2 and `popcnt`.
            Level::Avx2 => return unsafe { x86::csv_cells_avx2(b, delimiter, columns, cells) },
            Level::Sse2 => return x86::csv_cells_sse2(b, delimiter, columns, cells),
            Level::Scalar => {}
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = level;
    csv_cells_with(&WordBlocks { delimiter }, b, delimiter, columns, cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every level this machine can run.
    fn levels() -> Vec<Level> {
        [Level::Scalar, Level::Sse2, Level::Avx2]
            .into_iter()
            .filter(|l| *l <= supported())
            .collect()
    }

    #[test]
    fn every_level_agrees_with_the_byte_loop() {
        // Every stop byte (and a few plain ones) at every position of strings of every
        // length up to 80, from every start: covers each vector width and every tail.
        let specials = [b'"', b'\\', 0x00, 0x1f, 0x0a];
        let plain = [b'a', 0x20, 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'];
        for level in levels() {
            for len in 0..80 {
                for at in 0..=len {
                    for &s in specials.iter().chain(&plain) {
                        let mut b: Vec<u8> = (0..len).map(|i| plain[i % plain.len()]).collect();
                        if at < len {
                            b[at] = s;
                        }
                        for start in [0, 1, 7, 15, 16, 31, 33].into_iter().filter(|s| *s <= len) {
                            assert_eq!(
                                string_stop_at(level, &b, start),
                                string_stop_bytes(&b, start),
                                "{level:?} len {len} byte {s:#x} at {at} from {start}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn csv_cells_agree_with_a_plain_split_at_every_level() {
        let mut x = 0x0bad_cafe_f00d_1234u64;
        let alphabet = [b'a', b'7', b',', b';', b' ', 0xc3, 0xa9, b'\t', b'"'];
        for len in (0..100).chain([127, 128, 129, 255, 256, 257, 1000]) {
            for round in 0..60 {
                let text: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // A quote in about one line of three; delimiters often.
                        let n = if round % 3 == 0 { 9 } else { 8 };
                        alphabet[(x % n) as usize]
                    })
                    .collect();
                for delimiter in [b',', b';', b'\t'] {
                    let all: Vec<(usize, usize)> = {
                        let mut start = 0;
                        let mut out = Vec::new();
                        for (i, &c) in text.iter().enumerate() {
                            if c == delimiter {
                                out.push((start, i));
                                start = i + 1;
                            }
                        }
                        out.push((start, text.len()));
                        out
                    };
                    let quoted = text.contains(&b'"');
                    let columns: Vec<usize> = [0usize, 1, 2, 5, 9, 30, 70]
                        .into_iter()
                        .filter(|c| (x >> (c % 7)) & 1 == 1 || *c == 0)
                        .collect();
                    for level in levels() {
                        let mut cells = vec![(usize::MAX, 0); columns.len()];
                        let got = csv_cells_at(level, &text, delimiter, &columns, &mut cells);
                        if quoted {
                            assert_eq!(got, None, "{level:?} {text:?}");
                            continue;
                        }
                        assert_eq!(got, Some(all.len()), "{level:?} {text:?}");
                        for (k, &c) in columns.iter().enumerate() {
                            if c < all.len() {
                                assert_eq!(cells[k], all[c], "{level:?} column {c} {text:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn csv_needs_quotes_agrees_with_a_byte_loop_at_every_level() {
        let specials = [b',', b';', b'"', b'\r', b'\n'];
        for level in levels() {
            for len in 0..100 {
                for at in 0..=len {
                    for &s in specials.iter().chain(&[b'a', 0xc3]) {
                        let mut b = vec![b'x'; len];
                        if at < len {
                            b[at] = s;
                        }
                        for delimiter in [b',', b'\t'] {
                            let want = b
                                .iter()
                                .any(|&c| c == delimiter || c == b'"' || c == b'\r' || c == b'\n');
                            assert_eq!(
                                csv_needs_quotes_at(level, &b, delimiter),
                                want,
                                "{level:?} len {len} byte {s:#x} at {at}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_first_of_several_stops_wins() {
        // A later stop byte must not mask an earlier one (borrows in the word path).
        for level in levels() {
            let mut b = vec![b'x'; 70];
            b[40] = 0x00;
            b[41] = b'"';
            b[9] = b'\\';
            assert_eq!(string_stop_at(level, &b, 0), 9, "{level:?}");
            assert_eq!(string_stop_at(level, &b, 10), 40, "{level:?}");
            b[40] = 0x01;
            assert_eq!(string_stop_at(level, &b, 10), 40, "{level:?}");
            assert_eq!(string_stop_at(level, &b, 70), 70, "{level:?}");
            assert_eq!(string_stop_at(level, &b, 90), 70, "{level:?}");
        }
    }

    #[test]
    fn pseudo_random_bytes() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for level in levels() {
            for _ in 0..2000 {
                let len = (x % 200) as usize;
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        // Mostly plain bytes, now and then a stop byte.
                        if x.is_multiple_of(37) {
                            [b'"', b'\\', 0x03][(x % 3) as usize]
                        } else {
                            0x20 + (x % 0xe0) as u8
                        }
                    })
                    .collect();
                let start = (x % (len as u64 + 1)) as usize;
                assert_eq!(
                    string_stop_at(level, &b, start),
                    string_stop_bytes(&b, start)
                );
            }
        }
    }
}

// Word-at-a-time searches.

/// `b` repeated in every byte of a word.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

const LOW: u64 = splat(0x01);
const HIGH: u64 = splat(0x80);

/// The high bits of the zero bytes of `x`: the lowest one exact (the first zero byte always
/// sets its high bit, and no byte sets it without a zero byte at or below it).
#[inline(always)]
const fn zero_mask(x: u64) -> u64 {
    x.wrapping_sub(LOW) & !x & HIGH
}

/// The high bits of the bytes of `x` below `n` (`n <= 128`), the lowest one exact as in
/// [`zero_mask`].
#[inline(always)]
const fn less_mask(x: u64, n: u8) -> u64 {
    x.wrapping_sub(splat(n)) & !x & HIGH
}

/// Whether any byte of `x` is zero.
#[inline(always)]
const fn has_zero(x: u64) -> bool {
    zero_mask(x) != 0
}

/// Whether any byte of `x` equals `b`.
#[inline(always)]
const fn has_byte(x: u64, b: u8) -> bool {
    has_zero(x ^ splat(b))
}

/// Whether any byte of `x` is below `n` (`n <= 128`). Exact for the same reason as
/// [`has_zero`].
#[cfg(test)]
const fn has_less(x: u64, n: u8) -> bool {
    less_mask(x, n) != 0
}

/// Whether a JSON string must escape `c`.
#[inline(always)]
pub(crate) fn json_escaped(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// The index of the first byte at or after `from` that a JSON string escapes, or `b.len()`.
#[inline]
pub(crate) fn next_json_escape(b: &[u8], from: usize) -> usize {
    string_stop(b, from)
}

/// Whether a CSV cell holding `b` must be quoted for the delimiter: it holds the delimiter, a
/// quote, `\r` or `\n` (the spaces at its ends are the caller's to check).
#[inline]
pub(crate) fn csv_needs_quotes(b: &[u8], delimiter: u8) -> bool {
    csv_needs_quotes_at(level(), b, delimiter)
}

/// [`csv_needs_quotes`] with a given level (which must be supported: see [`supported`]).
#[inline]
pub(crate) fn csv_needs_quotes_at(level: Level, b: &[u8], delimiter: u8) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if b.len() >= 16 {
            match level {
                // SAFETY: `Avx2` is only chosen (by `detect`, or by a caller that checked
                // `supported`) when the CPU has AVX2.
                Level::Avx2 => return unsafe { x86::csv_needs_quotes_avx2(b, delimiter) },
                Level::Sse2 => return x86::csv_needs_quotes_sse2(b, delimiter),
                Level::Scalar => {}
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = level;
    csv_needs_quotes_words(b, delimiter)
}

/// [`csv_needs_quotes`] eight bytes at a time: short cells, and other CPUs.
#[inline]
fn csv_needs_quotes_words(b: &[u8], delimiter: u8) -> bool {
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
mod word_tests {
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
