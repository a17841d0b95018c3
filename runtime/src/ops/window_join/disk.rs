//! The window join on the disk backend: each window's records are lists of the process's
//! LSM store ([`Lists`]), one per key and side, under `window start ‖ key` (the start
//! big-endian with its sign bit flipped, so a window's lists are together and windows are in
//! time order in the store). How many records each key holds on each side of each window is
//! kept in memory (a few dozen bytes per key and window), so firing a window walks its keys in
//! order, reads each key's two lists once and removes them. Checkpoints write the records in
//! the in-memory format (windows, then keys in order, each with its left and right records),
//! so either backend restores the other's.

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::checkpoint::spill;
use crate::hash::FastMap;
use crate::keyed::disk::Lists;
use crate::ops::join::disk::broken;
use crate::state::{decode, State, StateError};

pub(super) const LEFT: u8 = 0;
pub(super) const RIGHT: u8 = 1;

/// The join's records in the store, and how many each key of each window holds.
pub(super) struct OnDisk<K> {
    lists: Box<Lists>,
    /// Window start -> key -> records held on the left and on the right.
    index: BTreeMap<i64, FastMap<K, [u32; 2]>>,
}

/// The lists' key of `key` in the window starting at `start`.
fn prefix<K: State>(start: i64, key: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    out.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    key.save(&mut out);
    out
}

impl<K: Hash + Eq + Ord + Clone + State> OnDisk<K> {
    /// On the process's store, if it has one.
    pub fn open() -> Option<Self> {
        Self::with(Lists::open())
    }

    pub fn with(lists: Option<Lists>) -> Option<Self> {
        Some(OnDisk {
            lists: Box::new(lists?),
            index: BTreeMap::new(),
        })
    }

    /// Appends a record to the list `side` of `key` in the window starting at `start`.
    pub fn push<T: State>(&mut self, start: i64, key: K, side: u8, record: &T) {
        let bytes = prefix(start, &key);
        let counts = self.index.entry(start).or_default().entry(key).or_default();
        counts[usize::from(side)] += 1;
        let empty = counts[usize::from(side)] == 1;
        self.lists.push(&bytes, side, empty, |out| record.save(out));
    }

    /// The start of the first window held.
    pub fn first(&self) -> Option<i64> {
        self.index.first_key_value().map(|(start, _)| *start)
    }

    /// Removes the first window: calls `f` with each key's left and right records (keys in
    /// order, records in arrival order), except keys with no right record when `skip_lonely`
    /// (they would emit nothing); returns how many records it held.
    pub fn fire_first<L: State, R: State>(
        &mut self,
        skip_lonely: bool,
        mut f: impl FnMut(&[L], &[R]),
    ) -> usize {
        let Some((start, keys)) = self.index.pop_first() else {
            return 0;
        };
        let mut keys: Vec<_> = keys.into_iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut held = 0;
        for (key, [left, right]) in keys {
            held += (left + right) as usize;
            let bytes = prefix(start, &key);
            if right > 0 || !skip_lonely {
                let rights: Vec<R> = self.read(&bytes, RIGHT, right as usize);
                let lefts: Vec<L> = self.read(&bytes, LEFT, left as usize);
                f(&lefts, &rights);
            }
            for (side, n) in [(LEFT, left), (RIGHT, right)] {
                if n > 0 {
                    self.lists.remove_list(&bytes, side);
                }
            }
        }
        held
    }

    fn read<T: State>(&mut self, bytes: &[u8], side: u8, held: usize) -> Vec<T> {
        let mut records = Vec::new();
        self.lists
            .read(bytes, side, Some(held), |_, value| match decode(value) {
                Ok(record) => records.push(record),
                Err(e) => broken(e),
            });
        records
    }

    /// Empties the store's lists and the index.
    pub fn clear(&mut self) {
        self.lists.clear();
        self.index.clear();
    }

    /// Writes the records as the in-memory join saves its windows: the number of windows,
    /// then each window's start, number of keys and keys (in order), each with its left and
    /// its right records.
    pub fn save(&self, out: &mut Vec<u8>) {
        (self.index.len() as u64).save(out);
        for (start, keys) in &self.index {
            start.save(out);
            (keys.len() as u64).save(out);
            let mut keys: Vec<_> = keys.iter().collect();
            keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for (key, _) in keys {
                key.save(out);
                let bytes = prefix(*start, key);
                for side in [LEFT, RIGHT] {
                    let at = spill::reserve(out, &0u64.to_le_bytes());
                    let mut n = 0u64;
                    self.lists.scan_since(&bytes, side, 0, |_, value| {
                        out.extend_from_slice(value);
                        n += 1;
                        spill::between(out);
                    });
                    spill::fill(out, at, &n.to_le_bytes());
                }
            }
        }
    }

    /// Reads what either backend saved (see [`OnDisk::save`]) into the store.
    pub fn load<L: State, R: State>(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.clear();
        let windows = u64::load(input)?;
        for _ in 0..windows {
            let start = i64::load(input)?;
            let keys = u64::load(input)?;
            if keys > input.len() as u64 {
                return Err(StateError::Truncated);
            }
            for _ in 0..keys {
                let key = K::load(input)?;
                let bytes = prefix(start, &key);
                let mut counts = [0u32; 2];
                for side in [LEFT, RIGHT] {
                    let n = u64::load(input)?;
                    if n > input.len() as u64 {
                        return Err(StateError::Truncated);
                    }
                    for _ in 0..n {
                        let before = *input;
                        if side == LEFT {
                            L::load(input)?;
                        } else {
                            R::load(input)?;
                        }
                        let value = &before[..before.len() - input.len()];
                        self.lists
                            .push(&bytes, side, false, |out| out.extend_from_slice(value));
                        crate::checkpoint::mapped::release(input);
                    }
                    counts[usize::from(side)] = u32::try_from(n)
                        .map_err(|_| StateError::Invalid("a window join's list"))?;
                }
                self.index.entry(start).or_default().insert(key, counts);
            }
        }
        Ok(())
    }
}
