//! A two-sided join's records on the disk backend (the regular and the interval join with
//! `--state disk`): each key's records are lists of the process's LSM store ([`Lists`]), one
//! per side, so storing a record appends to its key's list (in memory
//! while the list is cached, written in chunks when it is not: see `keyed::disk::lists`) and
//! reads nothing, and probing reads the other side's list of the key. Records stay encoded:
//! the lists' cache, the store's memtables and its block cache are what the state costs.
//!
//! Nothing per key stays in memory: the lists' Bloom filters (see `keyed::disk::filter`, a
//! few bits a list) tell a probe of a side with nothing under the key to read nothing (in
//! Nexmark's q20 most bids find no auction of category 10 and are only written), and a list
//! written whole to be taken with a point read.
//!
//! The operators keep their rules (see `RegularJoin` and `IntervalJoin`) and call the helpers
//! here: probe a side in arrival order (records whose time does not fit the join's interval
//! are skipped before they are decoded), store a record, remove the records a watermark
//! expires, list the unmatched left records at the end. A left record's match flag is kept
//! for a left outer join (rewritten in place when a right record matches it first).
//! Checkpoints write the records in the in-memory format (`FastMap<Key, Sides>`): keys in the
//! store's order, each with its left and right lists, and deltas in the in-memory join's
//! delta format (see `records`), so either backend restores the other's chain. What a
//! changed key held at the last checkpoint is its records that arrived before it, counted
//! as a delta reads the key's lists.

use crate::checkpoint::spill;
use crate::collector::Collector;
use crate::hash::FastMap;
use crate::keyed::disk::{arrival, Lists, ENTRY_SUFFIX};
use crate::metrics::OpCounters;
use crate::ops::join::{emit, Held, JoinSpec};
use crate::state::{decode, State, StateError};

/// The list of a key's left records.
pub(crate) const LEFT: u8 = 0;
/// The list of a key's right records.
pub(crate) const RIGHT: u8 = 1;

/// The join's records in the store.
pub(crate) struct OnDisk<K> {
    pub lists: Box<Lists>,
    /// With incremental checkpoints: what changed since the last checkpoint.
    changes: Option<Changes<K>>,
}

/// The keys changed since the last checkpoint, for a delta in the in-memory join's format
/// (see the parent module): records that arrived since are its tails.
struct Changes<K> {
    /// The arrival number of the first record after the last checkpoint.
    since: u64,
    /// Each changed key (in the order of its first change) and how.
    keys: FastMap<K, Before>,
    order: Vec<K>,
}

/// How a changed key changed since the last checkpoint besides gaining records.
#[derive(Clone, Copy, Default)]
struct Before {
    /// A left record the checkpoint holds was matched since.
    flags: bool,
    /// Records the checkpoint holds were removed (by the TTL): the key is written whole.
    rewritten: bool,
}

impl<K: std::hash::Hash + Eq + Clone + State> OnDisk<K> {
    /// On the process's store, if it has one.
    pub fn open() -> Option<Self> {
        Self::with(Lists::open())
    }

    pub fn with(lists: Option<Lists>) -> Option<Self> {
        Some(OnDisk {
            lists: Box::new(lists?),
            changes: None,
        })
    }

    /// Starts listing the keys that change (incremental checkpoints).
    pub fn track_changes(&mut self) {
        self.changes = Some(Changes {
            since: self.lists.next_arrival(),
            keys: FastMap::default(),
            order: Vec::new(),
        });
    }

    pub fn tracks_changes(&self) -> bool {
        self.changes.is_some()
    }

    /// A checkpoint holds everything up to now.
    pub fn saved(&mut self) {
        if let Some(changes) = &mut self.changes {
            changes.since = self.lists.next_arrival();
            changes.keys = FastMap::default();
            changes.order.clear();
        }
    }

    /// Notes that `key` changes (listing it the first time since the last checkpoint).
    fn touch(&mut self, key: &K) -> Option<&mut Before> {
        let changes = self.changes.as_mut()?;
        if !changes.keys.contains_key(key) {
            changes.keys.insert(key.clone(), Before::default());
            changes.order.push(key.clone());
        }
        changes.keys.get_mut(key)
    }

    /// How many records the list `list` of `key` (its encoding) holds.
    fn held(&self, key: &[u8], list: u8) -> usize {
        let mut n = 0;
        self.lists.scan_since(key, list, 0, |_, _| n += 1);
        n
    }

    pub fn clear(&mut self) {
        self.lists.clear();
    }
}

/// A stored record's value: what `Held` saves.
fn write_held<T: State>(out: &mut Vec<u8>, time: i64, matched: bool, record: &T) {
    time.save(out);
    matched.save(out);
    record.save(out);
}

/// A key's encoding: the prefix of its lists.
pub(crate) fn encoded<K: State>(key: &K) -> Vec<u8> {
    let mut out = Vec::new();
    key.save(&mut out);
    out
}

/// Reports a stored record that does not decode (the store is damaged).
pub(crate) fn broken(e: StateError) {
    crate::context::report_error(format!("state store: cannot decode a record: {e}"));
}

/// A stored record's time: the first field of its value.
fn time_of(value: &[u8]) -> Option<i64> {
    i64::load(&mut &value[..]).map_err(broken).ok()
}

impl<K: std::hash::Hash + Eq + Clone + State> OnDisk<K> {
    /// Probes the right records of a key (`bytes` is its encoding) with an arriving left
    /// record: emits each pair [`JoinSpec::join`] accepts among the records whose time
    /// `fits`, in arrival order; true if one matched.
    pub fn probe_rights<S: JoinSpec<Key = K>, N: Collector<S::Out>>(
        &mut self,
        bytes: &[u8],
        l: &S::Left,
        fits: impl Fn(i64) -> bool,
        next: &mut N,
        stats: &mut OpCounters,
    ) -> bool {
        let mut matched = false;
        self.lists.read(bytes, RIGHT, None, |_, value| {
            if !time_of(value).is_some_and(&fits) {
                return;
            }
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
        matched
    }

    /// Probes the left records of `key` with an arriving right record, like
    /// [`OnDisk::probe_rights`]; with `mark` (a left outer join) a left record matched for
    /// the first time has its flag rewritten.
    pub fn probe_lefts<S: JoinSpec<Key = K>, N: Collector<S::Out>>(
        &mut self,
        (key, bytes): (&K, &[u8]),
        r: &S::Right,
        mark: bool,
        fits: impl Fn(i64) -> bool,
        next: &mut N,
        stats: &mut OpCounters,
    ) {
        let since = self.changes.as_ref().map_or(0, |c| c.since);
        let mut flags = false;
        // Left records matched for the first time: their flag is rewritten after the scan.
        let mut now_matched: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.lists.read(bytes, LEFT, None, |entry, value| {
            if !time_of(value).is_some_and(&fits) {
                return;
            }
            match decode::<Held<S::Left>>(value) {
                Ok(h) => {
                    if let Some(out) = S::join(&h.record, r) {
                        emit(next, stats, &out);
                        if mark && !h.matched {
                            let mut value = value.to_vec();
                            value[MATCHED_AT] = 1;
                            flags |= arrival(entry) < since;
                            now_matched.push((entry.to_vec(), value));
                        }
                    }
                }
                Err(e) => broken(e),
            }
        });
        for (entry, value) in &now_matched {
            self.lists.replace(entry, value);
        }
        if flags {
            if let Some(before) = self.touch(key) {
                before.flags = true;
            }
        }
    }

    /// Stores a record at the end of the list `list` of `key`.
    pub fn store<T: State>(
        &mut self,
        (key, bytes): (&K, &[u8]),
        list: u8,
        (time, matched): (i64, bool),
        record: &T,
    ) {
        self.touch(key);
        self.lists.push(bytes, list, false, |out| {
            write_held(out, time, matched, record)
        });
    }

    /// Removes the records of the list `list` of `key` whose time is `dead`, calling `gone`
    /// with each one's value first (in arrival order); returns how many.
    pub fn remove_where(
        &mut self,
        key: &K,
        list: u8,
        dead: impl Fn(i64) -> bool,
        mut gone: impl FnMut(&[u8]),
    ) -> usize {
        let removed = self.lists.retain(&encoded(key), list, None, |value| {
            let expired = time_of(value).is_some_and(&dead);
            if expired {
                gone(value);
            }
            !expired
        });
        if removed > 0 {
            if let Some(before) = self.touch(key) {
                before.rewritten = true;
            }
        }
        removed
    }

    /// Every left record never matched, with its key, by key (in the key type's order) and
    /// then arrival.
    pub fn unmatched_lefts<L: State>(&self) -> Vec<(K, Held<L>)>
    where
        K: Ord,
    {
        let mut unmatched: Vec<(K, Held<L>)> = Vec::new();
        self.lists.for_each(|entry, value| {
            let (key, list) = entry.split_at(entry.len() - ENTRY_SUFFIX);
            if list[0] != LEFT || value.get(MATCHED_AT) != Some(&0) {
                return;
            }
            match (decode::<K>(key), decode::<Held<L>>(value)) {
                (Ok(key), Ok(h)) => unmatched.push((key, h)),
                (Err(e), _) | (_, Err(e)) => broken(e),
            }
        });
        // Stable: a key's records stay in arrival order.
        unmatched.sort_by(|a, b| a.0.cmp(&b.0));
        unmatched
    }
}

/// Writes the stored records as the in-memory join saves its map: the number of keys, then
/// each key with its left and its right records (`Sides`).
pub(crate) fn save_records(disk: &Lists, out: &mut Vec<u8>) {
    let at = spill::reserve(out, &0u64.to_le_bytes());
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
        spill::between(out);
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
    spill::fill(out, at, &keys.to_le_bytes());
}

/// Reads records saved by either backend (the in-memory map's format) into the store, one
/// record at a time.
pub(crate) fn load_records<S: JoinSpec>(
    disk: &mut OnDisk<S::Key>,
    input: &mut &[u8],
) -> Result<(), StateError> {
    let keys = u64::load(input)?;
    for _ in 0..keys {
        let key = encoded(&S::Key::load(input)?);
        load_list::<S>(disk, &key, LEFT, input)?;
        load_list::<S>(disk, &key, RIGHT, input)?;
    }
    Ok(())
}

/// Appends to the list `list` of a key the records of a saved list (a count, then each
/// record as `Held` saves it).
fn load_list<S: JoinSpec>(
    disk: &mut OnDisk<S::Key>,
    key: &[u8],
    list: u8,
    input: &mut &[u8],
) -> Result<(), StateError> {
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
            .push(key, list, false, |out| out.extend_from_slice(value));
        crate::checkpoint::mapped::release(input);
    }
    Ok(())
}

/// Writes the records of the list `list` of `key` that arrived at `since` or later as a saved
/// list: their count, then each.
fn save_list(lists: &Lists, key: &[u8], list: u8, since: u64, out: &mut Vec<u8>) {
    let at = spill::reserve(out, &0u64.to_le_bytes());
    let mut n = 0u64;
    lists.scan_since(key, list, since, |_, value| {
        out.extend_from_slice(value);
        n += 1;
        spill::between(out);
    });
    spill::fill(out, at, &n.to_le_bytes());
}

/// Writes how many records of each list of `key` arrived before `since` (what the last
/// checkpoint holds), then each list's records that arrived since as a saved list: one pass
/// over each list.
fn save_tails(lists: &Lists, key: &[u8], since: u64, out: &mut Vec<u8>) {
    let counts_at = spill::reserve(out, &[0; 16]);
    let mut before = [0u64; 2];
    for list in [LEFT, RIGHT] {
        let at = spill::reserve(out, &0u64.to_le_bytes());
        let mut n = 0u64;
        lists.scan_since(key, list, 0, |entry, value| {
            if arrival(entry) < since {
                before[usize::from(list)] += 1;
            } else {
                out.extend_from_slice(value);
                n += 1;
                spill::between(out);
            }
        });
        spill::fill(out, at, &n.to_le_bytes());
    }
    let mut counts = [0; 16];
    counts[..8].copy_from_slice(&before[0].to_le_bytes());
    counts[8..].copy_from_slice(&before[1].to_le_bytes());
    spill::fill(out, counts_at, &counts);
}

/// Where a left record's `matched` flag is in its value (after its time).
const MATCHED_AT: usize = 8;

impl<K: std::hash::Hash + Eq + Clone + State> OnDisk<K> {
    /// Writes an entry of the in-memory join's delta for each key changed since the last
    /// checkpoint (see its `save_delta`), reading the records from the store, and returns
    /// how many; the next delta starts here. A key that lost records is written whole (`1`),
    /// or as gone (`0`); another as how many records of each side the last checkpoint holds
    /// (those that arrived before it), the records added since and, when left records the
    /// checkpoint holds were matched since, their flags (`2`).
    pub fn save_delta(&mut self, out: &mut Vec<u8>) -> u64 {
        let Some(changes) = self.changes.as_mut() else {
            return 0;
        };
        let (since, order, keys) = (
            changes.since,
            std::mem::take(&mut changes.order),
            std::mem::take(&mut changes.keys),
        );
        for key in &order {
            let before = keys.get(key).copied().unwrap_or_default();
            let bytes = encoded(key);
            out.extend_from_slice(&bytes);
            if !before.rewritten {
                out.push(2);
                save_tails(&self.lists, &bytes, since, out);
                if before.flags {
                    out.push(1);
                    self.lists.scan_since(&bytes, LEFT, 0, |entry, value| {
                        if arrival(entry) < since {
                            out.push(value.get(MATCHED_AT).copied().unwrap_or(0));
                        }
                    });
                } else {
                    out.push(0);
                }
            } else if self.held(&bytes, LEFT) + self.held(&bytes, RIGHT) == 0 {
                out.push(0);
            } else {
                out.push(1);
                save_list(&self.lists, &bytes, LEFT, 0, out);
                save_list(&self.lists, &bytes, RIGHT, 0, out);
            }
            spill::between(out);
        }
        self.saved();
        order.len() as u64
    }

    /// Removes every record of `key` (its encoding).
    fn remove_key(&mut self, key: &[u8]) {
        let mut entries = Vec::new();
        for list in [LEFT, RIGHT] {
            self.lists
                .scan_since(key, list, 0, |entry, _| entries.push(entry.to_vec()));
        }
        for entry in &entries {
            self.lists.remove(entry);
        }
    }
}

/// Applies a delta of either backend's join (see the in-memory `load_delta`) to the store.
pub(crate) fn load_delta<S: JoinSpec>(
    disk: &mut OnDisk<S::Key>,
    input: &mut &[u8],
) -> Result<(), StateError> {
    let count = u64::load(input)?;
    if count > input.len() as u64 {
        return Err(StateError::Truncated);
    }
    for _ in 0..count {
        let key = encoded(&S::Key::load(input)?);
        match u8::load(input)? {
            0 => disk.remove_key(&key),
            1 => {
                disk.remove_key(&key);
                load_list::<S>(disk, &key, LEFT, input)?;
                load_list::<S>(disk, &key, RIGHT, input)?;
            }
            2 => {
                let (left, right) = (usize::load(input)?, usize::load(input)?);
                if disk.held(&key, LEFT) != left || disk.held(&key, RIGHT) != right {
                    return Err(StateError::Invalid(
                        "a join delta that does not fit the state before it",
                    ));
                }
                load_list::<S>(disk, &key, LEFT, input)?;
                load_list::<S>(disk, &key, RIGHT, input)?;
                match u8::load(input)? {
                    0 => {}
                    1 => {
                        let mut saved: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(left);
                        disk.lists.scan_since(&key, LEFT, 0, |entry, value| {
                            if saved.len() < left {
                                saved.push((entry.to_vec(), value.to_vec()));
                            }
                        });
                        for (entry, mut value) in saved {
                            let flag = u8::from(bool::load(input)?);
                            if value.get(MATCHED_AT) != Some(&flag) {
                                if let Some(byte) = value.get_mut(MATCHED_AT) {
                                    *byte = flag;
                                }
                                disk.lists.replace(&entry, &value);
                            }
                        }
                    }
                    _ => return Err(StateError::Invalid("a join delta's flags")),
                }
            }
            _ => return Err(StateError::Invalid("a join delta's entry")),
        }
    }
    Ok(())
}

/// Every stored record's key, side (`LEFT` or `RIGHT`) and time (to build the expiry
/// indexes again after a restore).
pub(crate) fn times<K: State>(disk: &OnDisk<K>, mut f: impl FnMut(K, u8, i64)) {
    disk.lists.for_each(|entry, value| {
        let (key, list) = entry.split_at(entry.len() - ENTRY_SUFFIX);
        match (decode::<K>(key), i64::load(&mut &value[..])) {
            (Ok(key), Ok(time)) => f(key, list[0], time),
            (Err(e), _) | (_, Err(e)) => broken(e),
        }
    });
}
