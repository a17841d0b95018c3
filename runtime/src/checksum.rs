//! The order-independent checksum used by the `checksum()` sink.
//!
//! Each row hashes its fields in order into a 64-bit value; a sink's checksum is the wrapping
//! sum of its rows' hashes. The sum does not depend on row order or on how rows were spread
//! over parallel instances, so runs with different parallelism can be compared.

/// Hashes the fields of one row. Every field goes through one of the `write_*` methods.
#[derive(Clone, Copy, Debug)]
pub struct RowHasher {
    state: u64,
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

impl Default for RowHasher {
    fn default() -> Self {
        RowHasher {
            state: 0x243F_6A88_85A3_08D3,
        }
    }
}

impl RowHasher {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    fn mix(&mut self, v: u64) {
        self.state = (self.state.rotate_left(5) ^ v).wrapping_mul(K);
    }

    #[inline]
    pub fn write_i64(&mut self, v: i64) {
        self.mix(v as u64);
    }

    #[inline]
    pub fn write_f64(&mut self, v: f64) {
        self.mix(v.to_bits());
    }

    #[inline]
    pub fn write_bool(&mut self, v: bool) {
        self.mix(v as u64 + 1);
    }

    #[inline]
    pub fn write_str(&mut self, s: &str) {
        let bytes = s.as_bytes();
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let mut last = [0u8; 8];
        let rest = chunks.remainder();
        last[..rest.len()].copy_from_slice(rest);
        self.mix(u64::from_le_bytes(last));
        self.mix(bytes.len() as u64);
    }

    #[inline]
    pub fn write_null(&mut self) {
        self.mix(0xDEAD_BEEF_0000_0001);
    }

    /// The row's hash, finalized so that similar rows spread well.
    #[inline]
    pub fn finish(&self) -> u64 {
        let mut x = self.state;
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(a: i64, s: &str) -> u64 {
        let mut h = RowHasher::new();
        h.write_i64(a);
        h.write_str(s);
        h.finish()
    }

    #[test]
    fn distinguishes_rows_and_field_boundaries() {
        assert_ne!(row(1, "ab"), row(2, "ab"));
        assert_ne!(row(1, "ab"), row(1, "ba"));
        assert_ne!(row(1, ""), row(1, "\0"));
        assert_eq!(row(7, "same"), row(7, "same"));
    }
}
