//! Open fixed windows on the disk backend: every (window, key) accumulator is an entry of one
//! [`Keyed`] map, on the process's store behind its cache, and each open window's keys are
//! listed in memory (the key alone, in the order they came), so a window fires by taking its
//! keys' accumulators in key order. Sessions, and fired windows kept for their allowed
//! lateness, stay in memory. Checkpoints write the open windows in the in-memory format
//! (windows in order, each with its keys and accumulators), so either backend restores the
//! other's.

use std::collections::BTreeMap;

use crate::keyed::Keyed;
use crate::state::{State, StateError};

use super::WindowAggregate;

/// A window: (end, start).
type Window = (i64, i64);

/// A fired window: its keys in order, each with its accumulator.
type Fired<K, Acc> = (Window, Vec<(K, Acc)>);

pub(super) struct OnDisk<A: WindowAggregate> {
    /// (end, start, key) → accumulator.
    accs: Keyed<(i64, i64, A::Key), A::Acc>,
    /// Each open window's keys.
    keys: BTreeMap<Window, Vec<A::Key>>,
}

impl<A: WindowAggregate> OnDisk<A> {
    /// On the calling run's store, if it has one.
    pub fn open() -> Option<Self> {
        Self::with(Keyed::new())
    }

    /// On the store `accs` is on; `None` when it is in memory.
    pub fn with(accs: Keyed<(i64, i64, A::Key), A::Acc>) -> Option<Self> {
        accs.weighs().then(|| OnDisk {
            accs,
            keys: BTreeMap::new(),
        })
    }

    /// Adds `record` to its key's accumulator in `window`.
    #[inline]
    pub fn add(&mut self, (end, start): Window, record: &A::In) {
        let key = A::key(record);
        let mut new = false;
        let make = || {
            new = true;
            A::new_acc()
        };
        let entry = (end, start, key);
        self.accs
            .update(entry.clone(), make, A::acc_size, |acc| A::add(acc, record));
        if new {
            self.keys.entry((end, start)).or_default().push(entry.2);
        }
    }

    /// Removes the first open window if it ends at or before `watermark`: its keys in order,
    /// each with its accumulator.
    pub fn take_first(&mut self, watermark: i64) -> Option<Fired<A::Key, A::Acc>> {
        let entry = self.keys.first_entry()?;
        if entry.key().0 > watermark {
            return None;
        }
        let ((end, start), mut keys) = entry.remove_entry();
        keys.sort_unstable();
        let mut groups = Vec::with_capacity(keys.len());
        for key in keys {
            let entry = (end, start, key);
            if let Some(acc) = self.accs.take(&entry) {
                groups.push((entry.2, acc));
            }
        }
        Some(((end, start), groups))
    }

    /// Keys with an accumulator in an open window.
    pub fn len(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    /// Writes the open windows as the in-memory operator saves them: the number of windows,
    /// then each window, its number of keys and each key with its accumulator.
    /// Each key's accumulator is read on its own (a point read for a spilled one), so the
    /// part is written as it is read (see [`crate::checkpoint::spill`]).
    pub fn save(&self, out: &mut Vec<u8>) {
        use crate::checkpoint::spill;
        (self.keys.len() as u64).save(out);
        for (&(end, start), keys) in &self.keys {
            (end, start).save(out);
            let at = spill::reserve(out, &0u64.to_le_bytes());
            let mut n = 0u64;
            let mut acc = Vec::new();
            for key in keys {
                acc.clear();
                // A listed key always has an accumulator; one without would be skipped.
                if self.accs.save_value(&(end, start, key.clone()), &mut acc) {
                    key.save(out);
                    out.extend_from_slice(&acc);
                    n += 1;
                }
                spill::between(out);
            }
            spill::fill(out, at, &n.to_le_bytes());
        }
    }

    /// Replaces the open windows with what either backend saved (see [`OnDisk::save`]).
    pub fn load(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.accs.clear();
        self.keys.clear();
        let windows = u64::load(input)?;
        for _ in 0..windows {
            let (end, start) = Window::load(input)?;
            let n = u64::load(input)?;
            if n > input.len() as u64 {
                return Err(StateError::Truncated);
            }
            let keys = self.keys.entry((end, start)).or_default();
            for _ in 0..n {
                let before = input.len();
                let key = A::Key::load(input)?;
                let acc = A::Acc::load(input)?;
                keys.push(key.clone());
                self.accs
                    .insert((end, start, key), acc, before - input.len());
                crate::checkpoint::mapped::release(input);
            }
        }
        Ok(())
    }
}
