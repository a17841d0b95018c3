//! The regular join on the disk backend: each stored record is an entry of the process's LSM
//! store ([`Lists`]), under its key's left or right list, so storing a record writes one entry
//! and reads nothing, and probing reads the other side's list of the key. Nothing stays
//! decoded in memory; the store's memtables and block cache are what the state costs.
//!
//! How many records each key holds on each side is kept in memory (a few dozen bytes a key),
//! so a probe of a side with nothing under the key reads nothing: in Nexmark's q20 most bids
//! find no auction of category 10 and are only written.
//!
//! The rules are the in-memory join's (see the parent module): partners in arrival order, a
//! left record's match flag kept for a left outer join (rewritten in place when a right record
//! matches it first), TTL expiry by the keys the expiry index names. Checkpoints write the
//! records in the in-memory format (`FastMap<Key, Sides>`): keys in the store's order, each
//! with its left and right lists.

use crate::collector::Collector;
use crate::hash::FastMap;
use crate::keyed::disk::{Lists, ENTRY_SUFFIX};
use crate::ops::join::{emit, Either, Held, JoinSpec};
use crate::state::{decode, State, StateError};

use super::RegularJoin;

const LEFT: u8 = 0;
const RIGHT: u8 = 1;

/// The join's records in the store, and how many each key holds on each side.
pub(super) struct OnDisk<K> {
    pub lists: Box<Lists>,
    counts: FastMap<K, [u32; 2]>,
}

impl<K: std::hash::Hash + Eq + Clone + State> OnDisk<K> {
    /// On the process's store, if it has one.
    pub fn open() -> Option<Self> {
        Self::with(Lists::open())
    }

    pub fn with(lists: Option<Lists>) -> Option<Self> {
        Some(OnDisk {
            lists: Box::new(lists?),
            counts: FastMap::default(),
        })
    }

    /// Records `key` holds on side `list`.
    fn count(&self, key: &K, list: u8) -> u32 {
        self.counts.get(key).map_or(0, |c| c[usize::from(list)])
    }

    fn add(&mut self, key: &K, list: u8) {
        let counts = match self.counts.get_mut(key) {
            Some(c) => c,
            None => self.counts.entry(key.clone()).or_default(),
        };
        counts[usize::from(list)] += 1;
    }

    fn sub(&mut self, key: &K, list: u8, n: u32) {
        if let Some(c) = self.counts.get_mut(key) {
            c[usize::from(list)] -= n;
            if *c == [0, 0] {
                self.counts.remove(key);
            }
        }
    }

    pub fn clear(&mut self) {
        self.lists.clear();
        self.counts = FastMap::default();
    }
}

/// A stored record's value: what `Held` saves.
fn write_held<T: State>(out: &mut Vec<u8>, time: i64, matched: bool, record: &T) {
    time.save(out);
    matched.save(out);
    record.save(out);
}

fn encoded<K: State>(key: &K) -> Vec<u8> {
    let mut out = Vec::new();
    key.save(&mut out);
    out
}

fn broken(e: StateError) {
    crate::context::report_error(format!("state store: cannot decode a record: {e}"));
}

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    RegularJoin<S, N, D>
{
    pub(super) fn push_left_disk(&mut self, l: &S::Left, key: &S::Key, time: i64) {
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        disk.add(key, LEFT);
        let probe = disk.count(key, RIGHT) > 0;
        let (disk, key) = (&mut disk.lists, encoded(key));
        let mut matched = false;
        let (next, stats) = (&mut self.next, &mut self.stats);
        disk.read(&key, RIGHT, probe, |_, value| {
            match decode::<Held<S::Right>>(value) {
                Ok(h) => {
                    if let Some(out) = S::join(l, &h.record) {
                        matched = true;
                        emit(next, stats, &out);
                    }
                }
                Err(e) => broken(e),
            }
        });
        disk.push(&key, LEFT, |out| write_held(out, time, matched, l));
    }

    pub(super) fn push_right_disk(&mut self, r: &S::Right, key: &S::Key, time: i64) {
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        disk.add(key, RIGHT);
        let probe = disk.count(key, LEFT) > 0;
        let (disk, key) = (&mut disk.lists, encoded(key));
        let left_outer = self.left_outer;
        // Left records matched for the first time: their flag is rewritten after the scan.
        let mut now_matched: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let (next, stats) = (&mut self.next, &mut self.stats);
        disk.read(&key, LEFT, probe, |entry, value| {
            match decode::<Held<S::Left>>(value) {
                Ok(h) => {
                    if let Some(out) = S::join(&h.record, r) {
                        emit(next, stats, &out);
                        if left_outer && !h.matched {
                            let mut value = Vec::new();
                            write_held(&mut value, h.time, true, &h.record);
                            now_matched.push((entry.to_vec(), value));
                        }
                    }
                }
                Err(e) => broken(e),
            }
        });
        for (entry, value) in &now_matched {
            disk.replace(entry, value);
        }
        disk.push(&key, RIGHT, |out| write_held(out, time, false, r));
    }

    /// Removes the records with `t + ttl < w` of the keys the expiry index names (a left
    /// outer join first emits the unmatched ones).
    pub(super) fn expire_disk(&mut self, ttl: i64, w: i64) {
        let alive = |time: i64| time.saturating_add(ttl) >= w;
        let keys = self.expiry.take_expired(w);
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        let mut gone: Vec<Vec<u8>> = Vec::new();
        for key in keys {
            let bytes = encoded(&key);
            let before = gone.len();
            let probe = disk.count(&key, LEFT) > 0;
            disk.lists.read(&bytes, LEFT, probe, |entry, value| {
                match decode::<Held<S::Left>>(value) {
                    Ok(h) if !alive(h.time) => {
                        if self.left_outer && !h.matched {
                            emit(&mut self.next, &mut self.stats, &S::left_only(&h.record));
                        }
                        gone.push(entry.to_vec());
                    }
                    Ok(_) => {}
                    Err(e) => broken(e),
                }
            });
            let left = gone.len() - before;
            let probe = disk.count(&key, RIGHT) > 0;
            disk.lists.read(&bytes, RIGHT, probe, |entry, value| {
                // A right record's time is the first field of its value.
                match i64::load(&mut &value[..]) {
                    Ok(time) if !alive(time) => gone.push(entry.to_vec()),
                    Ok(_) => {}
                    Err(e) => broken(e),
                }
            });
            let right = gone.len() - before - left;
            disk.sub(&key, LEFT, left as u32);
            disk.sub(&key, RIGHT, right as u32);
        }
        self.buffered -= gone.len();
        for entry in &gone {
            disk.lists.remove(entry);
        }
    }

    /// At the end: a left outer join's unmatched records (by key, then arrival), then the
    /// store is emptied.
    pub(super) fn finish_disk(&mut self) {
        let Some(disk) = self.disk.as_mut() else {
            return;
        };
        if self.left_outer && !crate::stop::stopped_early() {
            let mut unmatched: Vec<(S::Key, S::Out)> = Vec::new();
            disk.lists.for_each(|entry, value| {
                let (key, list) = entry.split_at(entry.len() - ENTRY_SUFFIX);
                if list[0] != LEFT {
                    return;
                }
                match (decode::<S::Key>(key), decode::<Held<S::Left>>(value)) {
                    (Ok(key), Ok(h)) if !h.matched => {
                        unmatched.push((key, S::left_only(&h.record)));
                    }
                    (Ok(_), Ok(_)) => {}
                    (Err(e), _) | (_, Err(e)) => broken(e),
                }
            });
            // Stable: a key's records stay in arrival order.
            unmatched.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, out) in &unmatched {
                emit(&mut self.next, &mut self.stats, out);
            }
        }
        disk.clear();
    }
}

/// Writes the stored records as the in-memory join saves its map: the number of keys, then
/// each key with its left and its right records (`Sides`).
pub(super) fn save_records(disk: &Lists, out: &mut Vec<u8>) {
    let at = out.len();
    0u64.save(out);
    let mut keys = 0u64;
    // The current key's encoding and its two lists, as saved values.
    let mut current: Option<Vec<u8>> = None;
    let mut lists: [(u64, Vec<u8>); 2] = [(0, Vec::new()), (0, Vec::new())];
    let flush = |key: &[u8], lists: &mut [(u64, Vec<u8>); 2], out: &mut Vec<u8>| {
        out.extend_from_slice(key);
        for (n, bytes) in lists.iter_mut() {
            n.save(out);
            out.extend_from_slice(bytes);
            *n = 0;
            bytes.clear();
        }
    };
    disk.for_each(|entry, value| {
        let (key, list) = entry.split_at(entry.len() - ENTRY_SUFFIX);
        if current.as_deref() != Some(key) {
            if let Some(previous) = current.replace(key.to_vec()) {
                flush(&previous, &mut lists, out);
            }
            keys += 1;
        }
        let side = &mut lists[usize::from(list[0] == RIGHT)];
        side.0 += 1;
        side.1.extend_from_slice(value);
    });
    if let Some(last) = current {
        flush(&last, &mut lists, out);
    }
    out[at..at + 8].copy_from_slice(&keys.to_le_bytes());
}

/// Reads records saved by either backend (the in-memory map's format) into the store, one
/// record at a time.
pub(super) fn load_records<S: JoinSpec>(
    disk: &mut OnDisk<S::Key>,
    input: &mut &[u8],
) -> Result<(), StateError> {
    let keys = u64::load(input)?;
    for _ in 0..keys {
        let decoded = S::Key::load(input)?;
        let key = encoded(&decoded);
        for list in [LEFT, RIGHT] {
            let n = u64::load(input)?;
            if n > input.len() as u64 {
                return Err(StateError::Truncated);
            }
            for _ in 0..n {
                let before = *input;
                if list == LEFT {
                    Held::<S::Left>::load(input)?;
                } else {
                    Held::<S::Right>::load(input)?;
                }
                let value = &before[..before.len() - input.len()];
                disk.lists
                    .push(&key, list, |out| out.extend_from_slice(value));
                disk.add(&decoded, list);
            }
        }
    }
    Ok(())
}
