//! The generator's random text: `string(max)`, `extra(current, avg)`, the fixed word lists
//! (names, cities, states, channels) and the per-channel urls.
//!
//! The text functions append to a caller-owned `String`, so the `fill_*` hot path allocates
//! nothing once its buffers have grown; the channel urls are looked up in a table built on
//! first use.

use super::rng::Rng;
use std::sync::OnceLock;

/// First names of persons (11).
pub(crate) const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];

/// Last names of persons (9).
pub(crate) const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

/// Cities of persons (10).
pub(crate) const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];

/// States of persons (6), drawn independently of the city.
pub(crate) const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];

/// The hot channels; a bid goes to one of them with probability 1/2.
pub(crate) const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];

/// Number of ordinary channels `channel-0` .. `channel-9999`.
pub(crate) const CHANNELS: u64 = 10_000;

/// Shortest `string(max)` before trimming.
const MIN_STRING_LENGTH: u64 = 3;

/// Characters are generated in chunks of this many bytes on the stack and appended with one
/// `push_str`; a multiple of every `PER_DRAW` below, so the draws a text consumes depend only
/// on its length.
const CHUNK: usize = 96;

/// Fills `buf` with `map(digit)` for random digits in `[0, RADIX)`, `PER_DRAW` digits per
/// 64-bit draw `x`: the first base-`RADIX` digits of the fraction `x / 2^64` (multiply by
/// `RADIX`, the integer part is the digit, keep the fractional part). Together they are the
/// digits of `floor(x * RADIX^PER_DRAW / 2^64)`, uniform over `[0, RADIX^PER_DRAW)` to within
/// a relative `RADIX^PER_DRAW / 2^64`. A short last part takes the first digits of its draw.
///
/// (Computing each digit from that product by constant divisions avoids the serial chain but
/// measured slower: it costs more instructions per digit.)
#[inline]
fn fill_digits<const RADIX: u64, const PER_DRAW: usize>(
    rng: &mut Rng,
    buf: &mut [u8],
    map: impl Fn(u64) -> u8,
) {
    for part in buf.chunks_mut(PER_DRAW) {
        let mut x = rng.next_u64();
        for b in part {
            let m = x as u128 * RADIX as u128;
            *b = map((m >> 64) as u64);
            x = m as u64;
        }
    }
}

/// Appends ASCII bytes to a `String`.
///
/// # Panics
/// If `bytes` is not ASCII (a bug in this module: every generated character is ASCII).
#[inline]
fn push_ascii(out: &mut String, bytes: &[u8]) {
    // The same as `out.push_str(std::str::from_utf8(bytes).unwrap())`, but the ASCII check is
    // cheaper than UTF-8 validation (measured 10 % of the time to generate a bid).
    assert!(bytes.is_ascii(), "generated text is not ASCII");
    // SAFETY: ASCII bytes are valid UTF-8 on their own, so appending them to valid UTF-8
    // keeps the string valid UTF-8.
    unsafe { out.as_mut_vec() }.extend_from_slice(bytes);
}

/// Appends `string(max)` with `special` as the non-letter character: length
/// `3 + uniform[0, max - 3)` (3 if `max <= 3`); each character is `special` with probability
/// 1/13, else a uniform letter `a..z`. When `special` is a space the appended text is trimmed
/// of leading and trailing spaces (spaces inside stay); other special characters are kept.
///
/// Characters come three per 64-bit draw (relative bias below 3e-12). The random draws
/// consumed depend only on the drawn length, never on trimming.
pub(crate) fn push_string(rng: &mut Rng, max: u64, special: u8, out: &mut String) {
    let len = MIN_STRING_LENGTH + rng.below(max.saturating_sub(MIN_STRING_LENGTH));
    let start = out.len();
    let trim = special == b' ';
    // 13 * 26 outcomes: 26 of them (1/13) are the special char, the other 312 are 12 of each
    // letter.
    let map = |d: u64| {
        if d < 26 {
            special
        } else {
            b'a' + (d % 26) as u8
        }
    };
    let mut buf = [0u8; CHUNK];
    let mut left = len as usize;
    let mut leading = trim;
    while left > 0 {
        let n = left.min(CHUNK);
        fill_digits::<{ 13 * 26 }, 3>(rng, &mut buf[..n], map);
        let mut text = &buf[..n];
        if leading {
            let spaces = text.iter().take_while(|&&b| b == b' ').count();
            text = &text[spaces..];
            leading = text.is_empty();
        }
        push_ascii(out, text);
        left -= n;
    }
    if trim {
        let kept = out[start..].trim_end_matches(' ').len();
        out.truncate(start + kept);
    }
}

/// Appends `n` uniform letters `a..z`, six per 64-bit draw (relative bias below 2e-11).
pub(crate) fn push_letters(rng: &mut Rng, n: u64, out: &mut String) {
    out.reserve(n as usize);
    let mut buf = [0u8; CHUNK];
    let mut left = n as usize;
    while left > 0 {
        let k = left.min(CHUNK);
        fill_digits::<26, 6>(rng, &mut buf[..k], |d| b'a' + d as u8);
        push_ascii(out, &buf[..k]);
        left -= k;
    }
}

/// The length of `extra(current, avg)`: with `d = avg - current` (empty if not positive) and
/// `delta = round(d / 5)`, `d - delta + uniform[0, 2 delta)`, so about `d - 1/2` on average.
pub(crate) fn extra_len(rng: &mut Rng, current: u64, avg: u64) -> u64 {
    let Some(d) = avg.checked_sub(current) else {
        return 0;
    };
    // round(0.2 d) for an integer d >= 0 (0.2 d is never exactly .5 away from an integer).
    let delta = (d + 2) / 5;
    d - delta + rng.below(2 * delta)
}

/// Appends `extra(current, avg)`: random letters bringing a record of `current` bytes to about
/// `avg` bytes.
pub(crate) fn push_extra(rng: &mut Rng, current: u64, avg: u64, out: &mut String) {
    let n = extra_len(rng, current, avg);
    push_letters(rng, n, out);
}

/// Appends a url `https://www.nexmark.com/<s1>/<s2>/<s3>/item.htm?query=1` with each `sK =
/// string(5, '_')` drawn from `rng`.
fn push_base_url(rng: &mut Rng, out: &mut String) {
    out.push_str("https://www.nexmark.com/");
    for _ in 0..3 {
        push_string(rng, 5, b'_', out);
        out.push('/');
    }
    out.push_str("item.htm?query=1");
}

/// The channel id of ordinary channel `c` as it appears in urls: `abs(bit-reverse(c))` on a
/// 32-bit signed integer, with the absolute value taken without overflow (channel 1 reverses
/// to `i32::MIN`, whose absolute value is 2147483648).
pub(crate) fn channel_id(c: u64) -> u32 {
    (c as u32 as i32).reverse_bits().unsigned_abs()
}

/// Appends the fixed url of channel `key`: for an ordinary channel `c` in `0..10000`, a base
/// url drawn from a generator private to the channel, followed for 9 channels in 10 (also
/// decided by that generator) by `&channel_id=` and [`channel_id`]`(c)`; for hot channel `i`
/// (`key = 10000 + i`), a base url drawn from its own generator, without a channel id.
fn push_url(key: u64, out: &mut String) {
    let mut rng = Rng::for_channel(key);
    push_base_url(&mut rng, out);
    if key < CHANNELS && rng.below(10) > 0 {
        out.push_str("&channel_id=");
        out.push_str(itoa::Buffer::new().format(channel_id(key)));
    }
}

/// The urls of the 10 000 ordinary channels followed by those of the 4 hot channels, built on
/// first use (about 0.8 MB; a lookup is cheaper than drawing a url per bid).
struct UrlTable {
    /// All urls, concatenated.
    text: String,
    /// `ends[k]`: where url `k` ends in `text` (it starts where url `k - 1` ends).
    ends: Vec<u32>,
}

static URLS: OnceLock<UrlTable> = OnceLock::new();

fn url(key: usize) -> &'static str {
    let table = URLS.get_or_init(|| {
        let n = CHANNELS as usize + HOT_CHANNELS.len();
        let mut text = String::with_capacity(80 * n);
        let mut ends = Vec::with_capacity(n);
        for key in 0..n {
            push_url(key as u64, &mut text);
            ends.push(u32::try_from(text.len()).expect("url table below 4 GB"));
        }
        UrlTable { text, ends }
    });
    let start = if key == 0 { 0 } else { table.ends[key - 1] };
    &table.text[start as usize..table.ends[key] as usize]
}

/// The fixed url of ordinary channel `c` (`0..10000`); see [`push_url`].
pub(crate) fn channel_url(c: u64) -> &'static str {
    url(c as usize)
}

/// The fixed url of hot channel `i` (`0..4`); see [`push_url`].
pub(crate) fn hot_url(i: usize) -> &'static str {
    url(CHANNELS as usize + i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_has_no_outer_spaces_and_bounded_length() {
        let mut rng = Rng::for_event(0, 42);
        let mut s = String::new();
        let mut saw_inner_space = false;
        for _ in 0..20_000 {
            s.clear();
            push_string(&mut rng, 20, b' ', &mut s);
            assert!(s.len() < 20, "{s:?}");
            assert!(!s.starts_with(' ') && !s.ends_with(' '), "{s:?}");
            assert!(s.bytes().all(|b| b == b' ' || b.is_ascii_lowercase()));
            saw_inner_space |= s.contains(' ');
        }
        assert!(saw_inner_space);
    }

    #[test]
    fn string_appends_and_trims_only_its_own_part() {
        let mut rng = Rng::for_event(0, 43);
        for _ in 0..1_000 {
            let mut s = String::from("x ");
            push_string(&mut rng, 7, b' ', &mut s);
            assert!(s.starts_with("x "));
            assert!(s.len() == 2 || !s.ends_with(' '), "{s:?}");
        }
    }

    #[test]
    fn string_special_fraction_near_one_in_thirteen() {
        let mut rng = Rng::for_event(0, 44);
        let mut s = String::new();
        for _ in 0..20_000 {
            push_string(&mut rng, 5, b'_', &mut s);
        }
        let specials = s.bytes().filter(|&b| b == b'_').count() as f64;
        let frac = specials / s.len() as f64;
        assert!((frac - 1.0 / 13.0).abs() < 0.005, "{frac}");
        // Lengths 3 or 4, never trimmed.
        assert!(s.len() >= 3 * 20_000 && s.len() <= 4 * 20_000);
    }

    #[test]
    fn extra_average_near_target() {
        let mut rng = Rng::for_event(0, 45);
        let n = 20_000;
        let total: u64 = (0..n).map(|_| extra_len(&mut rng, 32, 100)).sum();
        let avg = total as f64 / n as f64;
        // d = 68, delta = 14: uniform over [54, 82), mean 67.5.
        assert!((avg - 67.5).abs() < 0.5, "{avg}");
        assert_eq!(extra_len(&mut rng, 120, 100), 0);
        assert_eq!(extra_len(&mut rng, 100, 100), 0);
        // d = 2: delta 0, exactly 2.
        assert_eq!(extra_len(&mut rng, 98, 100), 2);
    }

    #[test]
    fn urls_have_the_documented_shape() {
        let mut with_id = 0;
        for c in 0..CHANNELS {
            let url = channel_url(c);
            let rest = url.strip_prefix("https://www.nexmark.com/").unwrap();
            let (path, query) = rest.split_once("/item.htm?query=1").unwrap();
            let dirs: Vec<&str> = path.split('/').collect();
            assert_eq!(dirs.len(), 3, "{url}");
            for d in dirs {
                assert!((3..=4).contains(&d.len()), "{url}");
                assert!(d.bytes().all(|b| b == b'_' || b.is_ascii_lowercase()));
            }
            if !query.is_empty() {
                assert_eq!(query, format!("&channel_id={}", channel_id(c)));
                with_id += 1;
            }
            // Fixed per channel: the table holds what push_url draws.
            let mut again = String::new();
            push_url(c, &mut again);
            assert_eq!(url, again);
        }
        assert!((8_800..9_200).contains(&with_id), "{with_id}");
        for i in 0..4 {
            assert!(hot_url(i).starts_with("https://www.nexmark.com/"));
            assert!(hot_url(i).ends_with("/item.htm?query=1"));
        }
    }

    #[test]
    fn channel_ids() {
        assert_eq!(channel_id(0), 0);
        assert_eq!(channel_id(1), 2_147_483_648);
        assert_eq!(channel_id(2), 1_073_741_824);
        // 3 reverses to 0xC000_0000 = -1073741824.
        assert_eq!(channel_id(3), 1_073_741_824);
        assert_eq!(channel_id(4), 536_870_912);
    }
}
