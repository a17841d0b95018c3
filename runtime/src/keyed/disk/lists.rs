//! Lists of records per key on the disk store: what the regular join keeps there.
//!
//! Each record has an arrival number, and a key's list (`key ‖ list`: the key's [`State`]
//! encoding, which is self-delimiting, and a list tag) is its records in arrival order.
//! Callers see one entry per record, `key ‖ list ‖ arrival` (big-endian, so [`arrival`] reads
//! it back), and never how the lists are stored:
//!
//! - **Written back, in chunks.** The lists used recently are in memory (an LRU cache weighed
//!   against the map's share of the budget, like the other maps' caches). Appending to a list
//!   appends in memory; so do rewriting and removing a record of a cached list. A list is
//!   written when the cache drops it, as one entry of the store, a *chunk*: its key is
//!   `key ‖ list ‖ arrival of its first record`, its value each record's arrival, length and
//!   bytes. A list that only grew since it was last written gets one more chunk (its new
//!   records); one whose written records changed is written again as one chunk.
//! - Before, every record was an entry of the store, written when it arrived: Nexmark q9 on
//!   disk made one insert (journal write and memtable search) per bid, and the store's
//!   flush and compaction threads took a fifth of the machine moving them. A key's records
//!   that arrive while it is hot are now one insert.
//! - **Reading** a cached list reads nothing; a list whose cache holds only its newest records
//!   (appended to, never read) reads its chunks first. Scans for checkpoints see the cache as
//!   well as the store, so nothing needs writing before a checkpoint.
//! - **A list written whole is one chunk keyed 0**, and a read takes that chunk with a point
//!   read, which the store's filters answer without a search; it searches the store for the
//!   list's chunks only when they may be more than that one. Which lists may have chunks in
//!   the store, and which may have more than chunk 0, Bloom filters of the lists' prefixes
//!   say (see `filter`): a list they have not seen reads nothing, and starts whole in the
//!   cache. A caller that counts a list's records (the window join) may say how many instead.
//!   (q9 on disk spent 44 % of its join's time searching for auctions its bids outran; see
//!   `docs/performance.md`.)
//!
//! Chunks of a list never interleave: a list's new records arrived after everything written
//! of it, so its chunks in key order are its records in arrival order.

use std::ops::Bound;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use lru::LruCache;

use super::filter::{Filters, MIN_LISTS, SLICE};
use super::{current, each_entry, failed, tighten_timer_slack, Store};
use crate::hash::BuildFastHasher;

/// The length of `list ‖ arrival` at the end of an entry's key.
pub const ENTRY_SUFFIX: usize = 9;

/// The arrival number of an entry (its key's last 8 bytes).
pub fn arrival(entry: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&entry[entry.len() - 8..]);
    u64::from_be_bytes(bytes)
}

/// An entry's key (or a chunk's): `key ‖ list ‖ arrival`.
fn entry_key(out: &mut Vec<u8>, prefix: &[u8], arrival: u64) {
    out.clear();
    out.extend_from_slice(prefix);
    out.extend_from_slice(&arrival.to_be_bytes());
}

/// What a cached record weighs: its bytes, its slot in the list (arrival and vector header,
/// with the list's spare capacity), the allocation's rounding.
fn record_weight(value: &[u8]) -> usize {
    value.len() + 80
}

/// What a cached list weighs besides its records: its prefix, the LRU's node and slot.
fn list_weight(prefix: &[u8]) -> usize {
    prefix.len() + 128
}

/// A list in the cache.
#[derive(Default)]
struct Cached {
    /// Records in arrival order: (arrival, value).
    records: Vec<(u64, Vec<u8>)>,
    /// `records` is the whole list; else the store holds the records before them.
    whole: bool,
    /// The first `clean` records are in the store as they are (only when `whole`).
    clean: usize,
    /// The arrival numbers that key the list's chunks in the store (only when `whole`).
    chunks: Vec<u64>,
    /// A written record was rewritten or removed: the list is written again whole.
    rewrite: bool,
    /// What it weighs.
    weight: usize,
}

impl Cached {
    fn dirty(&self) -> bool {
        self.rewrite || self.clean < self.records.len()
    }

    fn position(&self, arrival: u64) -> Option<usize> {
        self.records
            .binary_search_by_key(&arrival, |(a, _)| *a)
            .ok()
    }
}

/// Decodes a chunk's records: calls `f` with each arrival and value.
fn each_in_chunk(mut chunk: &[u8], mut f: impl FnMut(u64, &[u8])) {
    while chunk.len() >= 12 {
        let arrival = u64::from_le_bytes(chunk[..8].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(chunk[8..12].try_into().unwrap_or_default()) as usize;
        let Some(value) = chunk.get(12..12 + len) else {
            break;
        };
        f(arrival, value);
        chunk = &chunk[12 + len..];
    }
    if !chunk.is_empty() {
        failed("read a list", "a chunk is cut short");
    }
}

fn write_record(out: &mut Vec<u8>, arrival: u64, value: &[u8]) {
    out.extend_from_slice(&arrival.to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}

/// Lists of records per key (see the module docs): each map's own keyspace and cache.
pub struct Lists {
    keyspace: fjall::PartitionHandle,
    store: Arc<Store>,
    next: u64,
    /// Reused buffers: an entry's key, a chunk's value, a list's prefix.
    entry: Vec<u8>,
    chunk: Vec<u8>,
    prefix: Vec<u8>,
    /// `key ‖ list` → the list, or its newest records.
    cache: LruCache<Vec<u8>, Cached, BuildFastHasher>,
    /// What the cache weighs.
    weight: usize,
    /// Which lists may have records (in the cache or the store), and which chunks.
    filters: Filters,
}

impl Lists {
    /// Lists with a keyspace of their own, if the process has a store.
    pub fn open() -> Option<Lists> {
        Lists::on(current()?)
    }

    pub(crate) fn on(store: Arc<Store>) -> Option<Lists> {
        let id = store.next_keyspace.fetch_add(1, Ordering::Relaxed);
        let keyspace = store.partition(&format!("l{id}"));
        match keyspace {
            Ok(keyspace) => Some(Lists {
                keyspace,
                store: store.joined(),
                next: 0,
                entry: Vec::new(),
                chunk: Vec::new(),
                prefix: Vec::new(),
                cache: LruCache::unbounded_with_hasher(BuildFastHasher),
                weight: 0,
                filters: Filters::new(MIN_LISTS),
            }),
            Err(e) => {
                failed("make a keyspace", e);
                None
            }
        }
    }

    fn prefix(key: &[u8], list: u8) -> Vec<u8> {
        let mut prefix = Vec::with_capacity(key.len() + ENTRY_SUFFIX);
        prefix.extend_from_slice(key);
        prefix.push(list);
        prefix
    }

    fn add_weight(&mut self, bytes: usize) {
        self.store.charge(&mut self.weight, bytes);
    }

    fn sub_weight(&mut self, bytes: usize) {
        self.store.release(&mut self.weight, bytes);
    }

    /// Appends to the list `list` of `key` (an encoded key) the value `write` writes.
    ///
    /// `empty` says the caller knows the list holds nothing (the window join counts each
    /// key's records); else the filters tell (see the module docs). A list it starts in the
    /// cache is then whole, and reading it reads nothing from the store; else its first read
    /// looks there.
    pub fn push(&mut self, key: &[u8], list: u8, empty: bool, write: impl FnOnce(&mut Vec<u8>)) {
        let arrival = self.next;
        self.next += 1;
        // Written into a buffer, then copied: the record's allocation is its size.
        self.chunk.clear();
        write(&mut self.chunk);
        let value = self.chunk.clone();
        let added = record_weight(&value);
        self.entry.clear();
        self.entry.extend_from_slice(key);
        self.entry.push(list);
        let added = match self.cache.get_mut(self.entry.as_slice()) {
            Some(cached) => {
                cached.records.push((arrival, value));
                cached.weight += added;
                added
            }
            None => {
                let prefix = self.entry.clone();
                let unseen = self.filters.enters(&prefix);
                let weight = list_weight(&prefix) + added;
                debug_assert!(
                    !empty || {
                        let mut none = true;
                        self.each_chunk(&prefix, |_, _| none = false);
                        none
                    },
                    "a list said to be empty has chunks in the store"
                );
                let cached = Cached {
                    records: vec![(arrival, value)],
                    whole: empty || unseen,
                    weight,
                    ..Cached::default()
                };
                self.cache.push(prefix, cached);
                weight
            }
        };
        self.add_weight(added);
        self.trim();
        // A rebuild of the filters goes on as lists are appended to, not only as chunks are
        // written: a store whose lists all fit in the cache (a window join's) writes none.
        self.rebuild_filters();
    }

    /// Writes the least recently used lists and drops them while the cache must spill
    /// (past its share of the budget when the caches together are past it).
    fn trim(&mut self) {
        while self.store.over(self.weight) {
            let Some((prefix, cached)) = self.cache.pop_lru() else {
                break;
            };
            self.sub_weight(cached.weight);
            self.write(&prefix, &cached);
        }
    }

    /// Writes what the store lacks of a list leaving the cache.
    fn write(&mut self, prefix: &[u8], cached: &Cached) {
        if !cached.dirty() {
            if cached.whole && cached.records.is_empty() {
                // Emptied before it was ever written: it has no records left anywhere.
                self.list_gone();
            }
            return;
        }
        tighten_timer_slack();
        let from = if cached.rewrite {
            for &chunk in &cached.chunks {
                entry_key(&mut self.entry, prefix, chunk);
                if let Err(e) = self.keyspace.remove(self.entry.as_slice()) {
                    failed("remove a record", e);
                }
            }
            0
        } else {
            cached.clean
        };
        let Some(&(first, _)) = cached.records.get(from) else {
            if cached.rewrite {
                // Its chunks are removed and it has no records left.
                self.list_gone();
            }
            return;
        };
        self.chunk.clear();
        for (arrival, value) in &cached.records[from..] {
            write_record(&mut self.chunk, *arrival, value);
        }
        // A list written whole is its one chunk, keyed 0: `load` finds it without a search.
        let first = if cached.whole && (cached.rewrite || cached.chunks.is_empty()) {
            0
        } else {
            first
        };
        entry_key(&mut self.entry, prefix, first);
        if let Err(e) = self
            .keyspace
            .insert(self.entry.as_slice(), self.chunk.as_slice())
        {
            failed("write a record", e);
        }
        if first != 0 {
            self.filters.split_written(prefix);
        }
        self.rebuild_filters();
    }

    /// Notes that a list has no records left (see `filter`): a rebuild of the filters that
    /// this begins first takes every list in the cache.
    fn list_gone(&mut self) {
        if self.filters.gone() {
            for (prefix, _) in self.cache.iter() {
                self.filters.cached_at_rebuild(prefix);
            }
            self.rebuild_filters();
        }
    }

    /// Reads the next slice of the store's keys into the filters' rebuild, if one is under
    /// way (see `filter`).
    fn rebuild_filters(&mut self) {
        let Some(after) = self.filters.rebuilding() else {
            return;
        };
        let from = match after {
            Some(key) => Bound::Excluded(key.to_vec()),
            None => Bound::Unbounded,
        };
        let mut keys = Vec::with_capacity(SLICE);
        for item in self.keyspace.range((from, Bound::Unbounded)).take(SLICE) {
            match item {
                Ok((key, _)) => keys.push(key.to_vec()),
                Err(e) => return failed("read the keyspace", e),
            }
        }
        self.filters.scanned(&keys);
    }

    /// Calls `f` with each chunk key and value of the list `prefix` in the store.
    fn each_chunk(&self, prefix: &[u8], f: impl FnMut(&[u8], &[u8])) {
        each_entry(self.keyspace.prefix(prefix), "a list", f);
    }

    /// Like [`Lists::each_chunk`], but reads nothing for a list the filters have not seen and
    /// takes a list with no chunk but the one keyed 0 with a point read.
    fn stored_chunks(&self, prefix: &[u8], mut f: impl FnMut(&[u8], &[u8])) {
        match self.filters.chunks(prefix) {
            None => return,
            Some(true) => return self.each_chunk(prefix, f),
            Some(false) => {}
        }
        let mut entry = Vec::with_capacity(prefix.len() + 8);
        entry_key(&mut entry, prefix, 0);
        match self.keyspace.get(entry.as_slice()) {
            Ok(Some(chunk)) => f(&entry, &chunk),
            Ok(None) => {}
            Err(e) => failed("read a list", e),
        }
    }

    /// Makes the list `prefix` whole in the cache (reading what the store has of it) and the
    /// most recently used. `held`, when the caller counts the list's records, saves reads:
    /// none when the cache has that many; else a point read of the chunk keyed 0 (a list
    /// written whole, see [`Lists::write`]), which the store's filters answer without a
    /// search, and a search of the list's chunks only when that is not all of them. Without
    /// it, the filters tell what to read ([`Lists::stored_chunks`]).
    fn load(&mut self, prefix: &[u8], held: Option<usize>) {
        if held.is_none() && !self.filters.stored(prefix) {
            // No records anywhere: the cache need not be looked at.
            debug_assert!(
                self.cache.peek(prefix).is_none(),
                "a cached list the filters do not hold"
            );
            return;
        }
        let cached = self.cache.get(prefix);
        if cached.is_some_and(|c| c.whole) {
            return;
        }
        let tail = cached.map_or(0, |c| c.records.len());
        let mut records = Vec::new();
        let mut chunks = Vec::new();
        let mut found = held == Some(tail);
        if held.is_none() {
            self.stored_chunks(prefix, |k, v| {
                chunks.push(arrival(k));
                each_in_chunk(v, |a, value| records.push((a, value.to_vec())));
            });
            found = true;
        } else if !found {
            entry_key(&mut self.entry, prefix, 0);
            match self.keyspace.get(self.entry.as_slice()) {
                Ok(Some(chunk)) => {
                    // Counted before copied: a list of several chunks is searched anyway.
                    let mut n = 0;
                    each_in_chunk(&chunk, |_, _| n += 1);
                    found = held == Some(n + tail);
                    if found {
                        each_in_chunk(&chunk, |a, value| records.push((a, value.to_vec())));
                        chunks.push(0);
                    }
                }
                Ok(None) => {}
                Err(e) => failed("read a list", e),
            }
        }
        if !found {
            self.each_chunk(prefix, |k, v| {
                chunks.push(arrival(k));
                each_in_chunk(v, |a, value| records.push((a, value.to_vec())));
            });
        }
        debug_assert!(
            !found || {
                let mut stored = 0;
                self.each_chunk(prefix, |_, v| each_in_chunk(v, |_, _| stored += 1));
                stored == records.len()
            },
            "a list's count of records, or the filters, say less than the store holds"
        );
        let mut added: usize = records.iter().map(|(_, v)| record_weight(v)).sum();
        if records.is_empty() && tail == 0 {
            // Nothing anywhere (a false "maybe" of the filters): nothing to cache.
            return;
        }
        match self.cache.get_mut(prefix) {
            Some(cached) => {
                // Its newest records, appended since it was last written.
                cached.clean = records.len();
                records.append(&mut cached.records);
                cached.records = records;
                cached.chunks = chunks;
                cached.whole = true;
                cached.weight += added;
            }
            None => {
                added += list_weight(prefix);
                let cached = Cached {
                    clean: records.len(),
                    records,
                    whole: true,
                    chunks,
                    rewrite: false,
                    weight: added,
                };
                self.cache.push(prefix.to_vec(), cached);
            }
        }
        self.add_weight(added);
    }

    /// Calls `f` with each entry key and value of the list `list` of `key`, in arrival order.
    /// `held` is how many records it has, when the caller counts them; else the filters tell
    /// what to read (see [`Lists::load`]). A list read from the store stays in the cache;
    /// reading one with no records caches nothing.
    pub fn read(
        &mut self,
        key: &[u8],
        list: u8,
        held: Option<usize>,
        mut f: impl FnMut(&[u8], &[u8]),
    ) {
        if held == Some(0) {
            return;
        }
        let mut prefix = std::mem::take(&mut self.prefix);
        prefix.clear();
        prefix.extend_from_slice(key);
        prefix.push(list);
        self.load(&prefix, held);
        if let Some(cached) = self.cache.peek(&prefix) {
            let mut entry = Vec::with_capacity(prefix.len() + 8);
            for (a, value) in &cached.records {
                entry_key(&mut entry, &prefix, *a);
                f(&entry, value);
            }
            self.trim();
        }
        self.prefix = prefix;
    }

    /// Calls `f` with each entry key and value of the list `list` of `key` whose arrival
    /// number is `since` or later, in arrival order (checkpoints: the cache is read, not
    /// changed).
    pub fn scan_since(&self, key: &[u8], list: u8, since: u64, mut f: impl FnMut(&[u8], &[u8])) {
        let prefix = Lists::prefix(key, list);
        let cached = self.cache.peek(&prefix);
        let mut entry = Vec::with_capacity(prefix.len() + 8);
        // What the store has of a list arrived before the cache's first record of it: when
        // that is `since` or earlier, the cache has all that is asked for (a disk join's
        // delta reads its changed keys' new records this way, most of them without a search).
        let cached_since = |c: &Cached| c.whole || c.records.first().is_some_and(|r| r.0 <= since);
        if !cached.is_some_and(cached_since) {
            self.stored_chunks(&prefix, |_, v| {
                each_in_chunk(v, |a, value| {
                    if a >= since {
                        entry_key(&mut entry, &prefix, a);
                        f(&entry, value);
                    }
                });
            });
        }
        for (a, value) in cached.map_or(&[][..], |c| &c.records[..]) {
            if *a >= since {
                entry_key(&mut entry, &prefix, *a);
                f(&entry, value);
            }
        }
    }

    /// The arrival number the next record gets: a record with a smaller one arrived before.
    pub fn next_arrival(&self) -> u64 {
        self.next
    }

    /// Replaces the value of an entry (`entry` as [`Lists::read`] gave it).
    pub fn replace(&mut self, entry: &[u8], value: &[u8]) {
        let (prefix, a) = (&entry[..entry.len() - 8], arrival(entry));
        self.load(prefix, None);
        let mut change = 0isize;
        if let Some(cached) = self.cache.peek_mut(prefix) {
            if let Some(i) = cached.position(a) {
                let old = &mut cached.records[i].1;
                change = record_weight(value) as isize - record_weight(old) as isize;
                old.clear();
                old.extend_from_slice(value);
                cached.rewrite |= i < cached.clean;
                cached.weight = cached.weight.wrapping_add_signed(change);
            }
        }
        if change >= 0 {
            self.add_weight(change as usize);
        } else {
            self.sub_weight(change.unsigned_abs());
        }
        self.trim();
    }

    /// Removes an entry.
    pub fn remove(&mut self, entry: &[u8]) {
        let (prefix, a) = (&entry[..entry.len() - 8], arrival(entry));
        self.load(prefix, None);
        let mut removed = 0;
        if let Some(cached) = self.cache.peek_mut(prefix) {
            if let Some(i) = cached.position(a) {
                removed = record_weight(&cached.records.remove(i).1);
                if i < cached.clean {
                    cached.rewrite = true;
                    cached.clean -= 1;
                }
                cached.weight -= removed;
            }
        }
        self.sub_weight(removed);
        self.trim();
    }

    /// Keeps the records of the list `list` of `key` for which `keep` (called with each
    /// value, in arrival order) says so, in one pass over the list; returns how many went.
    /// (Removing them one by one with [`Lists::remove`] shifts the list each time: an
    /// interval join expiring the front of a long list made that quadratic.)
    /// `held` is how many records the list has, if the caller counts them (see
    /// [`Lists::read`]).
    pub fn retain(
        &mut self,
        key: &[u8],
        list: u8,
        held: Option<usize>,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> usize {
        if held == Some(0) {
            return 0;
        }
        let prefix = Lists::prefix(key, list);
        self.load(&prefix, held);
        let (mut removed, mut weight) = (0, 0);
        if let Some(cached) = self.cache.peek_mut(&prefix) {
            let (clean, mut i, mut removed_clean) = (cached.clean, 0, 0);
            cached.records.retain(|(_, value)| {
                let kept = keep(value);
                if !kept {
                    removed += 1;
                    weight += record_weight(value);
                    removed_clean += usize::from(i < clean);
                }
                i += 1;
                kept
            });
            if removed_clean > 0 {
                cached.rewrite = true;
                cached.clean -= removed_clean;
            }
            cached.weight -= weight;
        }
        self.sub_weight(weight);
        self.trim();
        removed
    }

    /// Removes the list `list` of `key` whole: its cached records and its chunks in the store
    /// (a fired window's lists).
    pub fn remove_list(&mut self, key: &[u8], list: u8) {
        let prefix = Lists::prefix(key, list);
        let cached = self.cache.pop(&prefix);
        if let Some(c) = &cached {
            self.sub_weight(c.weight);
        }
        let cached_before = cached.is_some();
        let chunks = match cached {
            Some(c) if c.whole => c.chunks,
            _ => {
                let mut chunks = Vec::new();
                self.stored_chunks(&prefix, |k, _| chunks.push(arrival(k)));
                chunks
            }
        };
        if !chunks.is_empty() {
            tighten_timer_slack();
        }
        if cached_before || !chunks.is_empty() {
            self.list_gone();
        }
        for chunk in chunks {
            entry_key(&mut self.entry, &prefix, chunk);
            if let Err(e) = self.keyspace.remove(self.entry.as_slice()) {
                failed("remove a record", e);
            }
        }
    }

    /// Calls `f` with every entry key and value, keys' lists one after the other, each in
    /// arrival order: the store's chunks merged with the cache.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], &[u8])) {
        let mut cached: Vec<(&Vec<u8>, &Cached)> = self.cache.iter().collect();
        cached.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut next = 0;
        let mut entry = Vec::new();
        let mut emit = |prefix: &[u8], c: &Cached, f: &mut dyn FnMut(&[u8], &[u8])| {
            for (a, value) in &c.records {
                entry_key(&mut entry, prefix, *a);
                f(&entry, value);
            }
        };
        let mut chunk_entry = Vec::new();
        each_entry(self.keyspace.iter(), "the keyspace", |k, v| {
            let prefix = &k[..k.len() - 8];
            while let Some(&(p, c)) = cached.get(next) {
                if p.as_slice() >= prefix {
                    break;
                }
                emit(p, c, &mut f);
                next += 1;
            }
            // A whole cached list replaces its chunks; it is emitted once the scan passes it.
            if cached
                .get(next)
                .is_some_and(|(p, c)| p.as_slice() == prefix && c.whole)
            {
                return;
            }
            each_in_chunk(v, |a, value| {
                entry_key(&mut chunk_entry, prefix, a);
                f(&chunk_entry, value);
            });
        });
        for &(p, c) in &cached[next..] {
            emit(p, c, &mut f);
        }
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.store.clear(&mut self.keyspace);
        self.cache.clear();
        self.sub_weight(self.weight);
        self.filters = Filters::new(self.filters.min());
    }
}

impl Drop for Lists {
    fn drop(&mut self) {
        // The keyspace is not deleted (see `Store::clear`): it goes with the store's folder.
        self.store.left(self.weight);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::keyed::disk::tests::store;

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    type Model = BTreeMap<Vec<u8>, Vec<(u64, Vec<u8>)>>;

    fn entries_of(model: &Model) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        for (prefix, records) in model {
            for (a, value) in records {
                let mut entry = Vec::new();
                entry_key(&mut entry, prefix, *a);
                out.push((entry, value.clone()));
            }
        }
        out
    }

    fn key(k: u64) -> Vec<u8> {
        k.to_be_bytes().to_vec()
    }

    /// A list the cache dropped and then appended to: a scan since an arrival that its cached
    /// records start at or before reads only them, an earlier one the store's chunk as well;
    /// a read with the count takes the chunk keyed 0 (the list was written whole) and then
    /// has the list whole.
    #[test]
    fn a_list_dropped_then_appended_to_is_scanned_and_read_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = store(dir.path(), 2_000);
        let mut lists = Lists::on(store).expect("opens");
        let (a, other) = (key(1), key(2));
        let scan = |lists: &Lists, since: u64| {
            let mut seen = Vec::new();
            lists.scan_since(&a, 0, since, |e, v| seen.push((arrival(e), v.to_vec())));
            seen
        };
        let mut want = Vec::new();
        for i in 0..3u8 {
            want.push((lists.next_arrival(), vec![i; 10]));
            lists.push(&a, 0, i == 0, |out| out.extend_from_slice(&[i; 10]));
        }
        // Other lists crowd `a` out of the cache: it is written as one chunk, keyed 0.
        for i in 0..40u8 {
            lists.push(&other, i % 4, false, |out| out.extend_from_slice(&[i; 60]));
        }
        let prefix = Lists::prefix(&a, 0);
        assert!(
            lists.cache.peek(&prefix).is_none(),
            "dropped from the cache"
        );
        let mut chunk = Vec::new();
        entry_key(&mut chunk, &prefix, 0);
        assert!(
            matches!(lists.keyspace.get(&chunk), Ok(Some(_))),
            "written as chunk 0"
        );
        let first_new = lists.next_arrival();
        for i in 3..5u8 {
            want.push((lists.next_arrival(), vec![i; 10]));
            lists.push(&a, 0, false, |out| out.extend_from_slice(&[i; 10]));
        }
        assert!(
            lists.cache.peek(&prefix).is_some_and(|c| !c.whole),
            "its newest records"
        );
        assert_eq!(
            scan(&lists, first_new),
            want[3..].to_vec(),
            "the cache's alone"
        );
        assert_eq!(scan(&lists, first_new + 1), want[4..].to_vec());
        assert_eq!(
            scan(&lists, first_new - 1),
            want[3..].to_vec(),
            "none in the store"
        );
        assert_eq!(
            scan(&lists, want[1].0),
            want[1..].to_vec(),
            "the store's too"
        );
        assert_eq!(scan(&lists, 0), want, "all");
        let mut read = Vec::new();
        lists.read(&a, 0, Some(want.len()), |e, v| {
            read.push((arrival(e), v.to_vec()))
        });
        assert_eq!(read, want, "read with its count");
        let cached = lists.cache.peek(&prefix).expect("cached");
        assert!(cached.whole && cached.chunks == [0], "whole, from chunk 0");
    }

    /// Lists that go are forgotten by the filters: lists removed whole from a cache that
    /// never spills (a window join's fired windows: the rebuild they start reads the store as
    /// records are appended, with no chunk ever written, and ends), and lists emptied by
    /// `retain` (a TTL's keys), counted as they leave the cache.
    #[test]
    fn the_filters_forget_lists_that_go() {
        for (budget, emptied) in [(1usize << 20, false), (600, true)] {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = store(dir.path(), budget);
            let mut lists = Lists::on(store).expect("opens");
            lists.filters = Filters::new(8);
            for k in 0..1_000u64 {
                lists.push(&key(k), 0, false, |out| out.extend_from_slice(b"record"));
                if emptied {
                    assert_eq!(lists.retain(&key(k), 0, None, |_| false), 1);
                } else {
                    lists.remove_list(&key(k), 0);
                }
            }
            assert!(lists.filters.rebuilt > 5, "{}", lists.filters.rebuilt);
            let remembered = (0..1_000u64)
                .filter(|&k| lists.filters.stored(&Lists::prefix(&key(k), 0)))
                .count();
            assert!(
                remembered < 100,
                "{remembered} of 1,000 lists gone still said to be there (budget {budget})"
            );
            let mut all = 0;
            lists.for_each(|_, _| all += 1);
            assert_eq!(all, 0);
        }
    }

    /// Random appends, reads (with the list's count or without), rewrites and removals (of
    /// records, of some records in one pass and of whole lists) on lists of a few keys, with
    /// caches from nothing (every list written at once) to everything, and filters rebuilt
    /// all the time (sized for 8 lists) or never: the lists hold what a map of vectors
    /// holds, read, scanned since an arrival number and iterated whole. (A read checks that
    /// the filters say the store has every list it has: see `load`.)
    #[test]
    fn lists_hold_what_vectors_hold_whatever_the_cache() {
        let configs = [
            (0usize, 7u64, 23, MIN_LISTS),
            (0, 5, 40, 8),
            (600, 11, 23, 8),
            (4_000, 13, 60, 8),
            (1 << 20, 17, 23, MIN_LISTS),
        ];
        for (budget, seed, keys, min) in configs {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = store(dir.path(), budget);
            let mut lists = Lists::on(store.clone()).expect("opens");
            lists.filters = Filters::new(min);
            let mut model = Model::new();
            let mut seed = seed;
            for step in 0..8_000u64 {
                let k = key(rng(&mut seed) % keys);
                let list = (rng(&mut seed) % 2) as u8;
                let prefix = Lists::prefix(&k, list);
                match rng(&mut seed) % 10 {
                    0..=4 => {
                        let len = (rng(&mut seed) % 40) as usize;
                        let value = vec![step as u8; len];
                        let arrival = lists.next_arrival();
                        // Said (or not, as a caller who does not count may) when it is.
                        let empty = step % 2 == 0
                            && model.get(&prefix).is_none_or(|r: &Vec<_>| r.is_empty());
                        lists.push(&k, list, empty, |out| out.extend_from_slice(&value));
                        model.entry(prefix).or_default().push((arrival, value));
                    }
                    5 | 6 => {
                        let mut seen = Vec::new();
                        let want = model.get(&prefix).cloned().unwrap_or_default();
                        let held = (step % 3 != 0).then_some(want.len());
                        lists.read(&k, list, held, |e, v| seen.push((arrival(e), v.to_vec())));
                        assert_eq!(seen, want, "read, step {step}, budget {budget}");
                    }
                    7 => {
                        let want = model.get(&prefix).cloned().unwrap_or_default();
                        if let Some((a, _)) = want.get(rng(&mut seed) as usize % want.len().max(1))
                        {
                            let mut entry = Vec::new();
                            entry_key(&mut entry, &prefix, *a);
                            let value = vec![0xEE; (rng(&mut seed) % 50) as usize];
                            lists.replace(&entry, &value);
                            let records = model.get_mut(&prefix).expect("listed");
                            let i = records.iter().position(|(b, _)| b == a).expect("held");
                            records[i].1 = value;
                        }
                    }
                    8 if step % 3 == 0 => {
                        lists.remove_list(&k, list);
                        model.remove(&prefix);
                    }
                    8 if step % 3 == 1 => {
                        let byte = (rng(&mut seed) % 256) as u8;
                        let odd = |v: &[u8]| v.first().is_some_and(|b| (b ^ byte) % 2 == 1);
                        let records = model.entry(prefix).or_default();
                        let held = (step % 2 == 0).then_some(records.len());
                        let removed = lists.retain(&k, list, held, |v| !odd(v));
                        let before = records.len();
                        records.retain(|(_, v)| !odd(v));
                        assert_eq!(removed, before - records.len(), "retain, step {step}");
                    }
                    8 => {
                        let want = model.get(&prefix).cloned().unwrap_or_default();
                        if let Some((a, _)) = want.get(rng(&mut seed) as usize % want.len().max(1))
                        {
                            let mut entry = Vec::new();
                            entry_key(&mut entry, &prefix, *a);
                            lists.remove(&entry);
                            let records = model.get_mut(&prefix).expect("listed");
                            records.retain(|(b, _)| b != a);
                        }
                    }
                    _ => {
                        let since = rng(&mut seed) % (lists.next_arrival() + 1);
                        let mut seen = Vec::new();
                        lists.scan_since(&k, list, since, |e, v| {
                            seen.push((arrival(e), v.to_vec()))
                        });
                        let want: Vec<_> = model
                            .get(&prefix)
                            .map(|r| r.iter().filter(|(a, _)| *a >= since).cloned().collect())
                            .unwrap_or_default();
                        assert_eq!(seen, want, "scan, step {step}, budget {budget}");
                    }
                }
                if step % 500 == 0 {
                    let mut all = Vec::new();
                    lists.for_each(|e, v| all.push((e.to_vec(), v.to_vec())));
                    assert_eq!(all, entries_of(&model), "all, step {step}, budget {budget}");
                }
                assert!(
                    lists.weight <= budget || lists.cache.is_empty(),
                    "the cache keeps to its share, step {step}"
                );
            }
            let mut all = Vec::new();
            lists.for_each(|e, v| all.push((e.to_vec(), v.to_vec())));
            assert_eq!(all, entries_of(&model), "at the end, budget {budget}");
            if min == 8 {
                assert!(
                    lists.filters.rebuilt > 0,
                    "rebuilt {}",
                    lists.filters.rebuilt
                );
            }
            if budget == 0 {
                assert!(lists.cache.is_empty(), "nothing stays cached");
            }
            lists.clear();
            let mut all = 0;
            lists.for_each(|_, _| all += 1);
            assert_eq!(all, 0, "cleared");
        }
    }
}
