//! Incremental checkpoints: an instance whose operator tracks what changed since its last
//! save writes a delta (what changed, with the checksum of the file it builds on) instead of
//! its whole state, and a full part again from time to time (see [`Policy`]).
//!
//! An instance's chain is a full part and the deltas after it, oldest first, each file in the
//! folder of the checkpoint that wrote it; a manifest lists the chain of each of its parts
//! (`link` lines, see [`super::manifest`]). Restoring loads the full part and applies every
//! delta in order ([`super::Snapshot::load_delta`]). Every file is checked against its
//! checksum, and every delta names the checksum of the file before it: a chain that is
//! missing a file, or whose files do not follow each other, is refused as damaged, never
//! restored in part. A checkpoint folder stays while any kept checkpoint's chain reads from
//! it (see `Coordinator::prune`).
//!
//! A delta file is `weir-delta 1\n`, the little-endian checksum of the file it builds on,
//! then what the operator writes ([`super::Snapshot::save_delta`]).

use super::manifest::Link;
use crate::state::{State, StateError};

const MAGIC: &[u8] = b"weir-delta 1\n";

/// Starts a delta file that builds on the file whose checksum is `base`.
pub fn header(base: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&base.to_le_bytes());
}

/// The delta of a keyed map, for operators whose state is a value per key (top-N, a final
/// table): the count of changed `keys`, then each key with `1` and its value, or `0` when the
/// key is gone. `value` writes a key's value and says whether it has one.
pub fn save_keyed<K: State>(
    keys: &std::collections::BTreeSet<K>,
    out: &mut Vec<u8>,
    mut value: impl FnMut(&K, &mut Vec<u8>) -> bool,
) {
    keys.len().save(out);
    for key in keys {
        key.save(out);
        // `value` writes nothing when it says `false`: the flag is all there is to change.
        let flag = crate::checkpoint::spill::reserve(out, &[1]);
        if !value(key, out) {
            crate::checkpoint::spill::fill(out, flag, &[0]);
        }
        crate::checkpoint::spill::between(out);
    }
}

/// Applies a delta [`save_keyed`] wrote: `apply` gets each key with the input at its value
/// (to load it) or `None` when the key is gone. `what` names the entry in errors.
pub fn load_keyed<K: State>(
    input: &mut &[u8],
    what: &'static str,
    mut apply: impl FnMut(K, Option<&mut &[u8]>) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let count = usize::load(input)?;
    if count > input.len() {
        return Err(StateError::Truncated);
    }
    for _ in 0..count {
        let key = K::load(input)?;
        match u8::load(input)? {
            0 => apply(key, None)?,
            1 => apply(key, Some(input))?,
            _ => return Err(StateError::Invalid(what)),
        }
        super::mapped::release(input);
    }
    Ok(())
}

/// A delta file's base checksum and body; an error says why `bytes` is not a delta.
pub fn split(bytes: &[u8]) -> Result<(u64, &[u8]), String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("it is not a delta (no `weir-delta 1` header)")?;
    if rest.len() < 8 {
        return Err("it is not a delta (its header is cut short)".into());
    }
    let (base, body) = rest.split_at(8);
    let base = u64::from_le_bytes(base.try_into().expect("8 bytes"));
    Ok((base, body))
}

/// What one instance restores: its full part, then the bodies of the deltas to apply on it,
/// in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub full: super::mapped::Bytes,
    pub deltas: Vec<super::mapped::Bytes>,
    /// The checksum of the chain's newest file (what the instance's next delta builds on).
    pub end: u64,
}

/// When an instance writes a full part instead of a delta.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Most deltas in a chain: restore reads at most this many files after the full one.
    pub max_deltas: usize,
    /// A full part is written again once the deltas of the chain add up to this fraction of
    /// the full part's size: a restore then reads at most about (1 + this) times the state,
    /// and the bytes written per checkpoint average about (1 + 1/this) times a delta.
    pub ratio: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_deltas: 30,
            ratio: 1.0,
        }
    }
}

impl Policy {
    /// Whether the next file after `chain` (a full part and its deltas, oldest first) may be
    /// a delta.
    pub fn delta_after(&self, chain: &[Link]) -> bool {
        let Some((full, deltas)) = chain.split_first() else {
            return false;
        };
        let delta_bytes: u64 = deltas.iter().map(|l| l.bytes).sum();
        deltas.len() < self.max_deltas && (delta_bytes as f64) < full.bytes as f64 * self.ratio
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(checkpoint: u64, bytes: u64) -> Link {
        Link {
            checkpoint,
            bytes,
            checksum: checkpoint,
        }
    }

    #[test]
    fn a_delta_names_its_base_and_anything_else_is_refused() {
        let mut out = Vec::new();
        header(0xfeed, &mut out);
        out.extend(b"body");
        assert_eq!(split(&out), Ok((0xfeed, &b"body"[..])));
        assert!(split(b"body").unwrap_err().contains("not a delta"));
        assert!(split(&out[..MAGIC.len() + 3])
            .unwrap_err()
            .contains("cut short"));
    }

    #[test]
    fn a_full_part_comes_again_after_enough_deltas_or_bytes() {
        let policy = Policy {
            max_deltas: 3,
            ratio: 0.5,
        };
        assert!(!policy.delta_after(&[]));
        assert!(policy.delta_after(&[link(1, 100)]));
        assert!(policy.delta_after(&[link(1, 100), link(2, 20), link(3, 20)]));
        // 50 bytes of deltas on a 100-byte part: half of it.
        assert!(!policy.delta_after(&[link(1, 100), link(2, 30), link(3, 20)]));
        // Three deltas already.
        assert!(!policy.delta_after(&[link(1, 100), link(2, 1), link(3, 1), link(4, 1)]));
    }
}
