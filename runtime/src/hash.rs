//! A fast, deterministic hasher for keyed state and for routing records to parallel instances.
//!
//! Deterministic on purpose: the same key goes to the same instance in every run and every
//! process, which later lets several processes agree on key ownership. Not resistant to
//! adversarial keys (HashDoS); state sizes are bounded by the user's own key space.

use std::hash::{BuildHasher, Hash, Hasher};

const SEED: u64 = 0x51_7C_C1_B7_27_22_0A_95;

/// Multiply-rotate hasher over 8-byte words.
#[derive(Clone, Copy, Default)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `BuildHasher` for `HashMap`s of keyed state.
#[derive(Clone, Copy, Default)]
pub struct BuildFastHasher;

impl BuildHasher for BuildFastHasher {
    type Hasher = FastHasher;
    #[inline]
    fn build_hasher(&self) -> FastHasher {
        FastHasher::default()
    }
}

/// A `HashMap` with the fast deterministic hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildFastHasher>;

/// A `HashSet` with the fast deterministic hasher (`count(distinct ...)` accumulators).
pub type FastSet<T> = std::collections::HashSet<T, BuildFastHasher>;

/// The routing hash of a key: which parallel instance owns it is `route(key) % n`.
#[inline]
pub fn route<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = FastHasher::default();
    key.hash(&mut h);
    // Finalize so that the low bits used by `% n` depend on every input bit.
    let mut x = h.finish();
    x ^= x >> 29;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 32;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_spread_over_instances() {
        let mut counts = [0u32; 4];
        for key in 0..10_000i64 {
            counts[(route(&key) % 4) as usize] += 1;
        }
        for c in counts {
            assert!((2_200..2_800).contains(&c), "uneven routing: {counts:?}");
        }
        assert_eq!(route("abc"), route("abc"));
        assert_ne!(route("abc"), route("abd"));
    }
}
