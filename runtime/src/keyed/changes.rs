//! Incremental checkpoints of a [`Keyed`] map: which keys changed since the last checkpoint,
//! and the delta that writes them (see [`crate::checkpoint::delta`]).
//!
//! Operators whose state is a value per key (top-N and dedup, unbounded aggregates) note each
//! key they change or drop. A delta is the changed keys with their values, or as gone. With a
//! TTL the values carry their keys' last writes ([`crate::ops::key_ttl::Written`]), and expiry,
//! which drops keys without a record, notes them too, so a restored key expires when it would
//! have.

use std::collections::BTreeSet;
use std::hash::Hash;

use super::Keyed;
use crate::state::{State, StateError};

/// The keys of a [`Keyed`] map changed since the last checkpoint, once tracking is on
/// ([`Changed::track`], when the run takes incremental checkpoints).
pub struct Changed<K>(Option<BTreeSet<K>>);

impl<K> Default for Changed<K> {
    fn default() -> Self {
        Changed(None)
    }
}

impl<K: Hash + Eq + Ord + Clone + State> Changed<K> {
    /// Starts tracking changes.
    pub fn track(&mut self) {
        self.0 = Some(BTreeSet::new());
    }

    /// Whether changes are tracked (a delta can be written).
    pub fn ready(&self) -> bool {
        self.0.is_some()
    }

    /// Notes that `key`'s value changed or is gone.
    #[inline]
    pub fn note(&mut self, key: &K) {
        if let Some(keys) = &mut self.0 {
            if !keys.contains(key) {
                keys.insert(key.clone());
            }
        }
    }

    /// After a full save: nothing has changed since.
    pub fn clear(&mut self) {
        if let Some(keys) = &mut self.0 {
            keys.clear();
        }
    }

    /// Writes the delta of `state` since the last save, and starts the next one. On disk,
    /// spilled keys are read back.
    pub fn save<V: State>(&mut self, state: &mut Keyed<K, V>, out: &mut Vec<u8>) {
        let keys = self.0.as_mut().map(std::mem::take).unwrap_or_default();
        crate::checkpoint::delta::save_keyed(&keys, out, |key, out| match state.get_mut(key) {
            Some(value) => {
                value.save(out);
                true
            }
            None => false,
        });
    }

    /// Applies a delta [`save`](Self::save) wrote, on `state` as loaded so far. `what` names
    /// an entry in errors.
    pub fn load<V: State>(
        state: &mut Keyed<K, V>,
        input: &mut &[u8],
        what: &'static str,
    ) -> Result<(), StateError> {
        crate::checkpoint::delta::load_keyed(input, what, |key, value| {
            match value {
                None => state.remove(&key),
                Some(input) => {
                    let before = input.len();
                    let value = V::load(input)?;
                    state.insert(key, value, before - input.len());
                }
            }
            Ok(())
        })
    }
}

/// The [`Snapshot`](crate::checkpoint::Snapshot) methods of an operator whose state is the
/// `Keyed` field `$state`, with a `changed: Changed<_>` field: its deltas are the changed keys
/// ([`Changed::save`]). `$what` names a delta's entry in errors.
macro_rules! keyed_deltas {
    ($state:ident, $what:literal) => {
        fn track_changes(&mut self) {
            self.changed.track();
        }

        fn delta_ready(&self) -> bool {
            self.changed.ready()
        }

        fn save_delta(&mut self, out: &mut Vec<u8>) {
            self.changed.save(&mut self.$state, out);
        }

        fn saved_full(&mut self) {
            self.changed.clear();
        }

        fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), $crate::state::StateError> {
            $crate::keyed::Changed::load(&mut self.$state, input, $what)
        }
    };
}
pub(crate) use keyed_deltas;

/// Checks an operator's deltas (for the operators' tests): `step` feeds it round after
/// round, a full part is saved after the first and a delta after each other, and restoring
/// the full part with the deltas up to each of `points` (on a fresh operator, on `backend`
/// for odd ones) gives what `held` saw there, and, fed the rounds after, what it saw after
/// each. Returns the operator, what `held` saw after
/// each round, and the chain's files.
#[cfg(test)]
pub(crate) fn check_chain<Op: crate::checkpoint::Snapshot, H: PartialEq + std::fmt::Debug>(
    make: &dyn Fn() -> Op,
    backend: &dyn Fn(Op) -> Op,
    rounds: i64,
    step: &dyn Fn(&mut Op, i64),
    held: &dyn Fn(&mut Op) -> H,
    points: &[usize],
) -> (Op, Vec<H>, Vec<Vec<u8>>) {
    let mut op = backend(make());
    op.track_changes();
    let (mut chain, mut seen) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        step(&mut op, round);
        let mut bytes = Vec::new();
        if round == 0 {
            op.save_state(&mut bytes);
            op.saved_full();
        } else {
            op.save_delta(&mut bytes);
        }
        chain.push(bytes);
        seen.push(held(&mut op));
    }
    for &upto in points {
        let mut restored = make();
        if upto % 2 == 1 {
            restored = backend(restored);
        }
        restored.load_state(&mut &chain[0][..]).unwrap();
        for delta in &chain[1..=upto] {
            let mut input = &delta[..];
            restored.load_delta(&mut input).unwrap();
            assert!(input.is_empty());
        }
        restored.restored(upto);
        assert_eq!(held(&mut restored), seen[upto], "after {upto} deltas");
        // Run on, it holds what the operator held after each round (what the state does not
        // show, a TTL's expiry order, was rebuilt).
        for round in upto as i64 + 1..rounds {
            step(&mut restored, round);
            let at = round as usize;
            assert_eq!(
                held(&mut restored),
                seen[at],
                "round {at} after {upto} deltas"
            );
        }
    }
    (op, seen, chain)
}
