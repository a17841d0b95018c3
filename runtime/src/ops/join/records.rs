//! The records a two-sided join holds per key, what the regular and the interval join share:
//! in a hash map of [`Sides`], or with `--state disk` in the process's LSM store
//! ([`OnDisk`](super::disk::OnDisk)), checkpointed in one format and, with incremental
//! checkpoints, as deltas of the keys that changed.
//!
//! # Deltas
//!
//! In memory the join lists the keys that change between checkpoints (once each, the first
//! time: [`Saved::listed`] in the key's [`Sides`], set by [`note_changed`]) and a delta
//! writes only those: for each, the records added at the end of each side since the last
//! checkpoint and the `matched` flags when one was set, or the key whole when it is new or
//! lost records (to a TTL or a watermark), or a tombstone when it is gone. On disk the join
//! lists the keys that change with what each held at the last checkpoint and writes the same
//! delta from the store (arrival numbers are in the entries' keys), so either backend
//! restores the other's chain. Expiry indexes are not in deltas: a restore that applied some
//! builds them again from the records ([`Records::each_time`]).

use crate::checkpoint::spill;
use crate::hash::FastMap;
use crate::state::{State, StateError};

use super::{Held, JoinSpec, Saved, Sides};

/// The [`Snapshot`](crate::checkpoint::Snapshot) methods of a join whose records are a
/// `records: Records<S>` field: a full part is the records then the fields after `full:`, a
/// delta the changed keys ([`Records::save_delta`]) then the fields after `delta:`.
macro_rules! records_snapshot {
    (full: $($full:ident),+; delta: $($delta:ident),+) => {
        fn save_state(&self, out: &mut Vec<u8>) {
            self.records.save(out);
            $($crate::state::State::save(&self.$full, out);)+
        }

        fn load_state(&mut self, input: &mut &[u8]) -> Result<(), $crate::state::StateError> {
            self.records.load(input)?;
            $(self.$full = $crate::state::State::load(input)?;)+
            Ok(())
        }

        fn track_changes(&mut self) {
            self.records.track_changes();
        }

        fn delta_ready(&self) -> bool {
            self.records.delta_ready()
        }

        fn save_delta(&mut self, out: &mut Vec<u8>) {
            self.records.save_delta(out);
            $($crate::state::State::save(&self.$delta, out);)+
        }

        fn saved_full(&mut self) {
            self.records.saved_full();
        }

        fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), $crate::state::StateError> {
            self.records.load_delta(input)?;
            $(self.$delta = $crate::state::State::load(input)?;)+
            Ok(())
        }
    };
}
pub(crate) use records_snapshot;

/// A join's records (see the module docs).
pub(crate) struct Records<S: JoinSpec> {
    /// In memory: each key's records.
    pub map: FastMap<S::Key, Sides<S::Left, S::Right>>,
    /// With incremental checkpoints in memory: the keys changed since the last checkpoint,
    /// each listed once; `None` when the join does not track changes.
    pub changed: Option<Vec<S::Key>>,
    /// With `--state disk`: the records, in the LSM store (`map` stays empty).
    #[cfg(feature = "state-disk")]
    pub disk: Option<super::disk::OnDisk<S::Key>>,
}

/// Lists `key` as changed the first time its `sides` change after a checkpoint.
#[inline]
pub(crate) fn note_changed<K, L, R>(
    changed: &mut Option<Vec<K>>,
    sides: &mut Sides<L, R>,
    key: impl FnOnce() -> K,
) {
    if let Some(changed) = changed {
        if !sides.saved.listed {
            sides.saved.listed = true;
            changed.push(key());
        }
    }
}

impl<S: JoinSpec> Records<S> {
    /// Empty, on the process's store if it has one.
    pub fn new() -> Self {
        Records {
            map: FastMap::default(),
            changed: None,
            #[cfg(feature = "state-disk")]
            disk: super::disk::OnDisk::open(),
        }
    }

    /// Records lost by a key with `sides` were removed: a delta writes it whole.
    pub fn rewritten(
        changed: &mut Option<Vec<S::Key>>,
        key: &S::Key,
        sides: &mut Sides<S::Left, S::Right>,
    ) {
        sides.saved.rewritten = true;
        note_changed(changed, sides, || key.clone());
    }

    /// Saves every record in the in-memory map's format, from either backend.
    pub fn save(&self, out: &mut Vec<u8>) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.disk {
            return super::disk::save_records(&disk.lists, out);
        }
        self.map.save(out);
    }

    /// Replaces the records with what [`Records::save`] wrote (by either backend).
    pub fn load(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            disk.clear();
            return super::disk::load_records::<S>(disk, input);
        }
        self.map = State::load(input)?;
        Ok(())
    }

    /// Empties both backends' records.
    pub fn clear(&mut self) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            disk.clear();
        }
        self.map = FastMap::default();
    }

    pub fn track_changes(&mut self) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            return disk.track_changes();
        }
        self.changed = Some(Vec::new());
    }

    pub fn delta_ready(&self) -> bool {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.disk {
            return disk.tracks_changes();
        }
        self.changed.is_some()
    }

    /// Per changed key: the key, then `0` (gone), `1` and its [`Sides`] (whole), or `2`, how
    /// many records of each side the last checkpoint holds, the records added after them
    /// on each side, and `1` with the `matched` flags of the first left records or `0`;
    /// all after the number of keys.
    pub fn save_delta(&mut self, out: &mut Vec<u8>) {
        let count_at = spill::reserve(out, &0u64.to_le_bytes());
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            let count = disk.save_delta(out);
            spill::fill(out, count_at, &count.to_le_bytes());
            return;
        }
        let keys = self
            .changed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut count = 0u64;
        for key in keys {
            match self.map.get_mut(&key) {
                None => {
                    key.save(out);
                    out.push(0);
                }
                Some(sides) if sides.saved.listed => {
                    key.save(out);
                    save_sides_delta(sides.saved, sides, out);
                    sides.mark_saved();
                }
                Some(_) => continue, // listed twice: written already
            }
            count += 1;
            spill::between(out);
        }
        spill::fill(out, count_at, &count.to_le_bytes());
    }

    /// A full checkpoint holds everything up to now.
    pub fn saved_full(&mut self) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            disk.saved();
        }
        if let Some(changed) = &mut self.changed {
            changed.clear();
            for sides in self.map.values_mut() {
                sides.mark_saved();
            }
        }
    }

    /// Applies what [`Records::save_delta`] wrote (by either backend).
    pub fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            return super::disk::load_delta::<S>(disk, input);
        }
        let count = u64::load(input)?;
        if count > input.len() as u64 {
            return Err(StateError::Truncated);
        }
        for _ in 0..count {
            let key = S::Key::load(input)?;
            match u8::load(input)? {
                0 => {
                    self.map.remove(&key);
                }
                1 => {
                    let sides: Sides<S::Left, S::Right> = State::load(input)?;
                    self.map.insert(key, sides);
                }
                2 => {
                    let (left, right) = (usize::load(input)?, usize::load(input)?);
                    let sides = self.map.entry(key).or_insert_with(Sides::new);
                    if sides.left.len() != left || sides.right.len() != right {
                        return Err(StateError::Invalid(
                            "a join delta that does not fit the state before it",
                        ));
                    }
                    load_tail(&mut sides.left, input)?;
                    load_tail(&mut sides.right, input)?;
                    match u8::load(input)? {
                        0 => {}
                        1 => {
                            for h in &mut sides.left[..left] {
                                h.matched = bool::load(input)?;
                            }
                        }
                        _ => return Err(StateError::Invalid("a join delta's flags")),
                    }
                    sides.mark_saved();
                }
                _ => return Err(StateError::Invalid("a join delta's entry")),
            }
        }
        Ok(())
    }

    /// Calls `f` with every record's key, side (true: left) and time, to build expiry
    /// indexes again after a restore.
    pub fn each_time(&self, mut f: impl FnMut(&S::Key, bool, i64)) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.disk {
            return super::disk::times(disk, |key, list, time| {
                f(&key, list == super::disk::LEFT, time)
            });
        }
        for (key, sides) in &self.map {
            for h in &sides.left {
                f(key, true, h.time);
            }
            for h in &sides.right {
                f(key, false, h.time);
            }
        }
    }
}

/// A changed key's entry after its tag: `1` and the key whole, or `2` and its tails and flags.
fn save_sides_delta<L: State, R: State>(saved: Saved, sides: &Sides<L, R>, out: &mut Vec<u8>) {
    if saved.rewritten {
        out.push(1);
        sides.save(out);
        return;
    }
    let (left, right) = (saved.left as usize, saved.right as usize);
    out.push(2);
    left.save(out);
    right.save(out);
    save_tail(&sides.left[left..], out);
    save_tail(&sides.right[right..], out);
    if saved.flags {
        out.push(1);
        for h in &sides.left[..left] {
            h.matched.save(out);
        }
    } else {
        out.push(0);
    }
}

/// Records added at the end of a side: their count, then each.
fn save_tail<T: State>(held: &[Held<T>], out: &mut Vec<u8>) {
    held.len().save(out);
    for h in held {
        h.save(out);
    }
}

/// Reads what [`save_tail`] wrote onto the end of `side`.
fn load_tail<T: State>(side: &mut Vec<Held<T>>, input: &mut &[u8]) -> Result<(), StateError> {
    let n = usize::load(input)?;
    if n > input.len() {
        return Err(StateError::Truncated);
    }
    side.reserve(n);
    for _ in 0..n {
        side.push(Held::load(input)?);
    }
    Ok(())
}
