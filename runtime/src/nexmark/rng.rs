//! The generator's small deterministic random number generator.
//!
//! Every event gets its own generator, seeded from its event id and the configured seed, so an
//! event's fields do not depend on which split generated it or where a source resumed.
//! The state is xoshiro256** (Blackman and Vigna), filled from a SplitMix64 sequence.
//!
//! Everything here is bit-for-bit reproducible on every platform: only integer arithmetic and
//! IEEE-754 `+ - * round` are used (no libm `pow`/`exp`, whose last bit may differ between
//! platforms), so a stream generated on one machine can be compared with one generated on
//! another.

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Salts separating the seed spaces of events and of channel urls.
const EVENT_SALT: u64 = 0x6E65_786D_6172_6B31; // "nexmark1"
const CHANNEL_SALT: u64 = 0x6368_616E_6E65_6C31; // "channel1"

/// SplitMix64's output function: a bijective 64-bit mixer.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256**: 256 bits of state, one 64-bit output per step.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose state is four consecutive SplitMix64 outputs starting at `key`.
    #[inline]
    fn from_key(key: u64) -> Rng {
        let mut x = key;
        let mut next = || {
            x = x.wrapping_add(GOLDEN_GAMMA);
            mix64(x)
        };
        // SplitMix64 outputs are a bijection of consecutive states, so the four words are
        // never all zero (which xoshiro cannot leave).
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The generator of event `id` under `seed`.
    #[inline]
    pub(crate) fn for_event(seed: u64, id: u64) -> Rng {
        Rng::from_key(id ^ mix64(seed ^ EVENT_SALT))
    }

    /// The generator of the url of channel `key` (independent of the configured seed: a
    /// channel's url is a property of the channel).
    #[inline]
    pub(crate) fn for_channel(key: u64) -> Rng {
        Rng::from_key(key ^ CHANNEL_SALT)
    }

    /// The next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, n)`; 0 when `n` is 0. Multiply-shift reduction (Lemire) without the
    /// rejection step: the bias is below `n / 2^64`, far below anything measurable.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    #[inline]
    pub(crate) fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// `10^(6u)` for `u` in `[0, 1)`, relative error below 1e-14, computed with `+ - *` only so the
/// result is the same on every platform.
///
/// `10^y = 2^t` with `t = y log2(10)`; `t = n + f` with integer `n` and `|f| <= 1/2`;
/// `2^f = e^r` with `r = f ln 2`, `|r| <= 0.347`, by its Taylor series up to `r^13`
/// (remainder below 2e-16, evaluated by Estrin's scheme); finally scaled by the exact power
/// `2^n`.
#[inline]
pub(crate) fn pow10_6u(u: f64) -> f64 {
    const C: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5040.0,
        1.0 / 40320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let t = u * (6.0 * std::f64::consts::LOG2_10);
    // Nearest integer (t >= 0, so truncating t + 1/2 is exact and needs no libm call).
    let n = (t + 0.5) as u64;
    let r = (t - n as f64) * std::f64::consts::LN_2;
    // Estrin's scheme: pairs, then pairs of pairs, ... (a short dependency chain).
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let p01 = C[0] + C[1] * r;
    let p23 = C[2] + C[3] * r;
    let p45 = C[4] + C[5] * r;
    let p67 = C[6] + C[7] * r;
    let p89 = C[8] + C[9] * r;
    let p1011 = C[10] + C[11] * r;
    let p1213 = C[12] + C[13] * r;
    let p0_3 = p01 + p23 * r2;
    let p4_7 = p45 + p67 * r2;
    let p8_11 = p89 + p1011 * r2;
    let p0_7 = p0_3 + p4_7 * r4;
    let p8_13 = p8_11 + p1213 * r4;
    let p = p0_7 + p8_13 * r8;
    // n is in [0, 20]: 2^n is an exact double.
    p * f64::from_bits((1023 + n) << 52)
}

/// A price in cents: `round(10^(6u) * 100)`, log-uniform in `[100, 100_000_000]`.
#[inline]
pub(crate) fn price(rng: &mut Rng) -> i64 {
    let y = pow10_6u(rng.unit_f64()) * 100.0;
    // y is in [100, 1e8]: y + 0.5 is exact there, so truncating it is round-half-up, the same
    // as `f64::round` for positive numbers, without the libm call.
    (y + 0.5) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow10_matches_std_closely() {
        let mut rng = Rng::for_event(0, 1);
        let mut us: Vec<f64> = (0..100_000).map(|_| rng.unit_f64()).collect();
        us.extend([0.0, 1.0 / 6.0, 0.5, 1.0 - f64::EPSILON, 0.999_999_999]);
        for u in us {
            let ours = pow10_6u(u);
            let std = 10f64.powf(6.0 * u);
            assert!(
                ((ours - std) / std).abs() < 1e-14,
                "u={u}: ours {ours}, std {std}"
            );
        }
        assert_eq!(pow10_6u(0.0), 1.0);
    }

    #[test]
    fn different_ids_and_seeds_give_different_streams() {
        let a = Rng::for_event(0, 7).next_u64();
        let b = Rng::for_event(0, 8).next_u64();
        let c = Rng::for_event(1, 7).next_u64();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, Rng::for_event(0, 7).next_u64());
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut rng = Rng::for_event(3, 3);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10) as usize] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn known_xoshiro_output() {
        // Reference vector: xoshiro256** with state [1, 2, 3, 4] outputs 11520, 0, 1509978240.
        let mut rng = Rng { s: [1, 2, 3, 4] };
        assert_eq!(rng.next_u64(), 11520);
        assert_eq!(rng.next_u64(), 0);
        assert_eq!(rng.next_u64(), 1_509_978_240);
    }
}
