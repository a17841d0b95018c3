//! Byte-scanning kernels of the decoders, with the instruction set chosen when the pipeline
//! runs: a binary built on any x86-64 machine runs on any other.
//!
//! The hot loop of JSON decoding is finding the end of a string: the first byte that is `"`,
//! `\` or a control character (below 0x20, which JSON forbids unescaped). [`string_stop`]
//! finds it 32 bytes at a time with AVX2 when the CPU has it, 16 at a time with SSE2 (every
//! x86-64 CPU has it), and 8 at a time with portable word-at-a-time arithmetic elsewhere
//! (aarch64 included; NEON is not written yet). All paths give the same answer; the tests run
//! every path the machine can run against a byte-by-byte reference.
//!
//! The choice is made once and cached ([`level`]); `WEIR_SIMD=scalar|sse2|avx2` caps it,
//! which is how the tests and benchmarks reach the slower paths on a fast machine.

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
        if std::arch::is_x86_feature_detected!("avx2") {
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

/// Whether byte `c` ends a plain run of a JSON string.
#[inline(always)]
fn is_stop(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// A mask whose lowest set bit is the high bit of the first stop byte of the little-endian
/// word `w` (other bits may be set above it; only the lowest one is exact).
#[inline(always)]
fn word_stops(w: u64) -> u64 {
    // A zero byte of `x` shows as the high bit of that byte of `(x - ONES) & !x`; the lowest
    // one is exact (borrows only run upwards).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    let quote = zero(w ^ (ONES * u64::from(b'"')));
    let backslash = zero(w ^ (ONES * u64::from(b'\\')));
    // A byte below 0x20 shows the same way in `w - 0x20..` (for bytes below 0x80).
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    (quote | backslash | control) & HIGHS
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
        if is_stop(c) {
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
