//! The disk backend of [`Keyed`](super::Keyed): an LRU cache of decoded values in front of
//! an embedded LSM store (fjall), with one memory budget for the whole run.
//!
//! [`Store::create`] (from `--state disk --state-dir DIR --state-memory SIZE`) opens one fjall
//! database in a folder of its own under `DIR` (`weir-<pid>-<n>`, the process's `n`th run;
//! folders of processes that are gone are removed first); the run holds it in its context
//! ([`RunContext`](crate::context::RunContext)), so two runs in one process never share a
//! store or a budget. It splits the budget: 3/8 for the caches of decoded values of the
//! operators that keep them ([`Spilled`], top-N), 1/8 for fjall's block cache, 1/4 for its
//! memtables (each map's at most 1/8), the rest for what fjall and the run keep besides. Each
//! map gets a partition of its own (fjall's keyspaces), compacted size-tiered. Keys and values
//! are stored in their checkpoint encoding ([`State`]). The regular join keeps lists of
//! records instead, written back in chunks ([`Lists`]).
//!
//! A value is weighed as its encoded size times [`MEMORY_PER_ENCODED_BYTE`] (the decoded
//! form's headers and allocations) plus [`OVERHEAD_PER_KEY`]. A map's cache may weigh more
//! than an equal share of the caches' budget while the caches together stay within it; once
//! they do not, a map past its share writes its least recently used keys to its keyspace and
//! drops them from memory, down to its share, at its next change (see [`Store::over`]).
//! A key read back stays
//! on disk as well (a later spill overwrites it), so reading costs no write.
//!
//! The store holds nothing a restart needs: checkpoints write every key, cached or spilled,
//! in the format of an in-memory map. A failure of the store (a full disk) fails the run
//! with an error, as a failed checkpoint does.

use std::hash::Hash;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use lru::LruCache;

use super::Verdict;
use crate::hash::BuildFastHasher;
use crate::state::State;

mod filter;
mod lists;
pub use lists::{arrival, Lists, ENTRY_SUFFIX};
mod queue;
pub use queue::{Queue, MOVE_TO_DISK_AT};

/// Decoded values take about this many bytes of memory per byte of their encoding (string
/// and vector headers, allocation rounding), measured on the Nexmark records.
pub const MEMORY_PER_ENCODED_BYTE: usize = 2;
/// What a cached key costs besides its value: the LRU's node and hash slot, the entry.
pub const OVERHEAD_PER_KEY: usize = 96;

/// A run's store and budget (see the module docs).
pub struct Store {
    /// `None` once the store is closed (at the end of the run, before its folder is removed).
    db: std::sync::Mutex<Option<fjall::Keyspace>>,
    folder: PathBuf,
    /// Bytes the caches of all maps may weigh together.
    cache_budget: usize,
    /// Bytes they weigh now.
    used: AtomicUsize,
    /// Maps holding a cache now: each may weigh an equal share of the budget.
    maps: AtomicUsize,
    memtable: u64,
    next_keyspace: AtomicU64,
}

/// How many stores this process has made: each run's folder gets its own number.
static STORES_MADE: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// A run's disk store in a new folder under `dir`, with `budget` bytes of memory for the
    /// state (see the module docs).
    pub fn create(dir: &Path, budget: u64) -> Result<Store, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the state folder {}: {e}", dir.display()))?;
        // The folders of killed runs (a run cannot remove its own when killed).
        crate::stop::remove_left_by_gone_processes(dir, "weir-", "");
        let n = STORES_MADE.fetch_add(1, Ordering::Relaxed);
        Store::open(
            &dir.join(format!("weir-{}-{n}", std::process::id())),
            budget,
        )
    }

    /// The store's folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Bytes the caches of all the run's maps weigh now (for tests and the summary).
    pub fn cached_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// A store in `folder` (emptied first) with `budget` bytes of memory.
    fn open(folder: &Path, budget: u64) -> Result<Store, String> {
        let _ = std::fs::remove_dir_all(folder);
        let budget = budget.max(4 << 20);
        let memtable = (budget / 8).clamp(1 << 20, 64 << 20);
        let db = fjall::Config::new(folder)
            .cache_size(budget / 8)
            // Memtables, sealed ones waiting for their flush included.
            .max_write_buffer_size(budget / 4)
            // The journal is scratch like the rest (nothing is recovered from it), but when
            // it is full fjall flushes every keyspace holding its oldest part: small
            // keyspaces (a sink's table) were flushed as tiny runs faster than they were
            // compacted, and writes to them stalled. On disk, not in memory.
            .max_journaling_size((budget * 2).max(512 << 20))
            // One thread each: the pipeline's tasks need the cores more.
            .flush_workers(1)
            .compaction_workers(1)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| format!("cannot open the state store in {}: {e}", folder.display()))?;
        Ok(Store {
            db: std::sync::Mutex::new(Some(db)),
            folder: folder.to_path_buf(),
            cache_budget: usize::try_from(budget / 8 * 3).unwrap_or(usize::MAX),
            used: AtomicUsize::new(0),
            maps: AtomicUsize::new(0),
            memtable,
            next_keyspace: AtomicU64::new(0),
        })
    }
}

/// A store left open when its run ends (a thread of the run still holds it) is closed by its
/// last holder.
impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

impl Store {
    /// Closes the store and removes its folder (its contents are scratch), once the run's
    /// operators are gone: fjall's flush and compaction threads are joined first, so none of
    /// them writes into a folder being removed. A map still holding a keyspace keeps what it
    /// has in memory; what it writes later is lost, which no one reads after the run.
    pub fn close(&self) {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner()).take();
        if db.is_some() {
            drop(db);
            let _ = std::fs::remove_dir_all(&self.folder);
        }
    }

    /// What one map's cache may weigh: an equal share of the budget. (The maps live on the
    /// threads of their operators, so one cannot evict another's keys; with one budget for
    /// all, a map that only grows, such as a sink's final table, took the whole of it and the
    /// join's cache of probed lists was starved: q9's join read every probe from the store.)
    fn quota(&self) -> usize {
        self.cache_budget / self.maps.load(Ordering::Relaxed).max(1)
    }

    /// Whether a map whose cache weighs `weight` must spill: it is past its share and the
    /// caches together are past the budget. A map may borrow what the others leave unused
    /// (q16's aggregate, whose sets outgrew its half, thrashed reading them back while the
    /// sink's small table left its half empty); when the budget is reached, each map past
    /// its share gives the excess back at its next change. A map that stays idle keeps what
    /// it borrowed until then, so the caches can pass the budget by that much.
    fn over(&self, weight: usize) -> bool {
        weight > self.quota() && self.used.load(Ordering::Relaxed) > self.cache_budget
    }

    /// Counts `bytes` more in a map's cache (`weight`) and in the caches' total.
    fn charge(&self, weight: &mut usize, bytes: usize) {
        *weight += bytes;
        self.used.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` less in a map's cache (`weight`) and in the caches' total.
    fn release(&self, weight: &mut usize, bytes: usize) {
        *weight -= bytes;
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A map that weighed `weight` is dropped: it leaves the total and the quota's count.
    fn left(&self, weight: usize) {
        self.used.fetch_sub(weight, Ordering::Relaxed);
        self.maps.fetch_sub(1, Ordering::Relaxed);
    }

    /// The store of a new map, counted in the quota until the map is dropped.
    fn joined(self: Arc<Self>) -> Arc<Self> {
        self.maps.fetch_add(1, Ordering::Relaxed);
        self
    }

    /// A new partition (fjall's name for a keyspace of its own) named `name`.
    fn partition(&self, name: &str) -> fjall::Result<fjall::PartitionHandle> {
        let db = self.db.lock().unwrap_or_else(|e| e.into_inner());
        let Some(db) = db.as_ref() else {
            return Err(fjall::Error::Io(std::io::Error::other("the run has ended")));
        };
        db.open_partition(
            name,
            fjall::PartitionCreateOptions::default()
                // Size-tiered: a spilled record is rewritten by fewer compactions than with
                // leveled (q20 on disk: 2.4x the throughput, docs/performance.md).
                .compaction_strategy(fjall::compaction::Strategy::SizeTiered(Default::default()))
                .max_memtable_size(u32::try_from(self.memtable).unwrap_or(u32::MAX))
                .manual_journal_persist(true),
        )
    }

    /// Replaces `partition` with an empty one (fjall 2 has no clear). The old one is left in
    /// the store, not deleted: fjall 2.11 panics in its flush thread when a partition is
    /// deleted while one of its memtables is being flushed (its flush queue loses the task),
    /// which poisons the store's locks and fails the run. What it holds goes with the store's
    /// folder at the end of the run; `clear` runs only when a checkpoint is restored.
    ///
    /// The old one's memtable is sealed first, so that it is flushed: fjall counts the bytes
    /// of every memtable against the store's write buffer until it is flushed, and an old
    /// partition is never written again to fill and seal it. With a small budget
    /// (`--state-memory 4MiB`, a 1 MiB write buffer) the memtables of a few cleared
    /// partitions held the buffer full, and every writer of the run waited in fjall's write
    /// halt for ever (seen once in the state-on-disk crash test, after a restore).
    fn clear(&self, partition: &mut fjall::PartitionHandle) {
        if let Err(e) = partition.rotate_memtable() {
            failed("seal a cleared partition's memtable", e);
        }
        let id = self.next_keyspace.fetch_add(1, Ordering::Relaxed);
        match self.partition(&format!("c{id}")) {
            Ok(fresh) => *partition = fresh,
            Err(e) => failed("clear a partition", e),
        }
    }
}

/// The disk store of the calling thread's run, if it spills state to disk.
fn current() -> Option<Arc<Store>> {
    crate::context::with(|c| c.state_store().cloned())
}

/// Makes the calling thread's short sleeps as short as asked, once per thread. fjall slows a
/// writer while a keyspace has 20 or more runs waiting for compaction, by sleeping 1 µs per
/// write (doubling per run past 20); Linux rounds a sleep up by the thread's timer slack,
/// 50 µs by default, so each of those writes waited about 60 µs (q9 on disk at 5 M events:
/// about 3,000 such sleeps a second). A slack of 1 µs makes the delay the one
/// fjall means.
fn tighten_timer_slack() {
    thread_local! {
        static DONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    DONE.with(|done| {
        if !done.replace(true) {
            // SAFETY: PR_SET_TIMERSLACK sets a number of the calling thread; nothing is read
            // or written through pointers.
            unsafe {
                libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
            }
        }
    });
}

/// Calls `f` with each key and value `items` (a scan of a keyspace) yields; a failed read is
/// reported (`cannot read {what}`) and ends the scan.
fn each_entry(
    items: impl Iterator<Item = fjall::Result<fjall::KvPair>>,
    what: &str,
    mut f: impl FnMut(&[u8], &[u8]),
) {
    for item in items {
        match item {
            Ok((k, v)) => f(&k, &v),
            Err(e) => {
                failed(&format!("read {what}"), e);
                return;
            }
        }
    }
}

/// A store error fails the run, and no checkpoint may complete after it: one taken while
/// the store could not be read might lack keys, and a restart would trust it.
fn failed(what: &str, e: impl std::fmt::Display) {
    crate::context::report_error(format!("state store: cannot {what}: {e}"));
    if let Some(c) = crate::checkpoint::coordinator() {
        c.abandon();
    }
}

struct Entry<V> {
    value: V,
    /// What it counts against the budget.
    weight: usize,
    /// The keyspace holds a copy (possibly older: the cached value is the current one).
    on_disk: bool,
}

/// One map's cache and keyspace.
pub(crate) struct Spilled<K, V> {
    store: Arc<Store>,
    keyspace: fjall::PartitionHandle,
    cache: LruCache<K, Entry<V>, BuildFastHasher>,
    /// Keys whose only copy is in the keyspace.
    disk_only: usize,
    /// What this map's cache weighs.
    weight: usize,
    buf: Vec<u8>,
}

fn weigh(encoded: usize) -> usize {
    encoded * MEMORY_PER_ENCODED_BYTE + OVERHEAD_PER_KEY
}

impl<K: Hash + Eq + Clone + State, V: State> Spilled<K, V> {
    /// A map with a keyspace of its own, if the process has a store (`None` also when the
    /// keyspace cannot be made: the error fails the run).
    pub fn open() -> Option<Self> {
        Spilled::on(current()?)
    }

    fn on(store: Arc<Store>) -> Option<Self> {
        let id = store.next_keyspace.fetch_add(1, Ordering::Relaxed);
        let keyspace = store.partition(&format!("s{id}"));
        match keyspace {
            Ok(keyspace) => Some(Spilled {
                store: store.joined(),
                keyspace,
                cache: LruCache::unbounded_with_hasher(BuildFastHasher),
                disk_only: 0,
                weight: 0,
                buf: Vec::new(),
            }),
            Err(e) => {
                failed("make a keyspace", e);
                None
            }
        }
    }

    fn encode_key(buf: &mut Vec<u8>, key: &K) {
        buf.clear();
        key.save(buf);
    }

    fn add_weight(&mut self, bytes: usize) {
        self.store.charge(&mut self.weight, bytes);
    }

    fn sub_weight(&mut self, bytes: usize) {
        self.store.release(&mut self.weight, bytes);
    }

    /// Spills the least recently used keys while the caches weigh more than their budget
    /// (keeping at least `keep` keys of this map in memory).
    fn spill(&mut self, keep: usize) {
        tighten_timer_slack();
        let mut value = Vec::new();
        while self.store.over(self.weight) && self.cache.len() > keep {
            let Some((key, entry)) = self.cache.pop_lru() else {
                break;
            };
            Self::encode_key(&mut self.buf, &key);
            value.clear();
            entry.value.save(&mut value);
            if let Err(e) = self.keyspace.insert(self.buf.as_slice(), value.as_slice()) {
                failed("write a key", e);
                // Kept in memory: the run fails, but its state stays whole.
                self.cache.push(key, entry);
                return;
            }
            self.disk_only += 1;
            self.sub_weight(entry.weight);
        }
    }

    /// The value of `key` in the keyspace, if it is there, with its encoded length (leaves the
    /// key encoded in `buf`).
    fn read(&mut self, key: &K) -> Option<(V, usize)> {
        if self.disk_only == 0 {
            return None;
        }
        Self::encode_key(&mut self.buf, key);
        let bytes = match self.keyspace.get(self.buf.as_slice()) {
            Ok(bytes) => bytes?,
            Err(e) => {
                failed("read a key", e);
                return None;
            }
        };
        match crate::state::decode::<V>(&bytes) {
            Ok(value) => Some((value, bytes.len())),
            Err(e) => {
                failed("decode a key", e);
                None
            }
        }
    }

    /// Reads `key` back from the keyspace into the cache, if it is there.
    fn load(&mut self, key: &K) -> bool {
        let Some((value, encoded)) = self.read(key) else {
            return false;
        };
        self.spill(0);
        let weight = weigh(encoded);
        self.add_weight(weight);
        self.disk_only -= 1;
        self.cache.push(
            key.clone(),
            Entry {
                value,
                weight,
                on_disk: true,
            },
        );
        true
    }

    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.cache.contains(&key) && !self.load(&key) {
            self.spill(0);
            let weight = OVERHEAD_PER_KEY;
            self.add_weight(weight);
            self.cache.push(
                key.clone(),
                Entry {
                    value: make(),
                    weight,
                    on_disk: false,
                },
            );
        }
        &mut self
            .cache
            .get_mut(&key)
            .expect("cached or inserted above")
            .value
    }

    /// [`Keyed::update`]: one lookup when the key is cached.
    pub fn update(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
        size: impl Fn(&V) -> usize,
        change: impl FnOnce(&mut V),
    ) {
        if let Some(entry) = self.cache.get_mut(&key) {
            let before = size(&entry.value);
            change(&mut entry.value);
            let after = size(&entry.value);
            if after > before {
                let bytes = (after - before) * MEMORY_PER_ENCODED_BYTE;
                entry.weight += bytes;
                self.add_weight(bytes);
                self.spill(1);
            }
            return;
        }
        // Read back from the keyspace, or new: weighed whole.
        change(self.get_or_insert_with(key.clone(), make));
        self.reweigh(&key);
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if !self.cache.contains(key) && !self.load(key) {
            return None;
        }
        self.cache.get_mut(key).map(|e| &mut e.value)
    }

    pub fn insert(&mut self, key: K, value: V, bytes: usize) {
        self.remove(&key);
        self.spill(0);
        let weight = weigh(bytes);
        self.add_weight(weight);
        self.cache.push(
            key,
            Entry {
                value,
                weight,
                on_disk: false,
            },
        );
    }

    pub fn replace(&mut self, key: K, value: V) -> Option<V> {
        let old = match self.get_mut(&key) {
            Some(held) => Some(std::mem::replace(held, value)),
            None => {
                self.get_or_insert_with(key.clone(), || value);
                None
            }
        };
        self.reweigh(&key);
        old
    }

    pub fn take(&mut self, key: &K) -> Option<V> {
        if !self.cache.contains(key) && !self.load(key) {
            return None;
        }
        let entry = self.cache.pop(key)?;
        self.sub_weight(entry.weight);
        if entry.on_disk {
            Self::encode_key(&mut self.buf, key);
            if let Err(e) = self.keyspace.remove(self.buf.as_slice()) {
                failed("remove a key", e);
            }
        }
        Some(entry.value)
    }

    pub fn take_if(&mut self, key: &K, decide: impl FnOnce(&mut V) -> Verdict) -> Option<V> {
        if let Some(entry) = self.cache.peek_mut(key) {
            return match decide(&mut entry.value) {
                Verdict::Take => self.take(key),
                Verdict::Keep | Verdict::Changed => None,
            };
        }
        // (`read` leaves the key in `buf`.)
        let (mut value, _) = self.read(key)?;
        match decide(&mut value) {
            Verdict::Keep => None,
            Verdict::Changed => {
                let mut bytes = Vec::new();
                value.save(&mut bytes);
                if let Err(e) = self.keyspace.insert(self.buf.as_slice(), bytes) {
                    failed("write a key", e);
                }
                None
            }
            Verdict::Take => {
                if let Err(e) = self.keyspace.remove(self.buf.as_slice()) {
                    failed("remove a key", e);
                }
                self.disk_only -= 1;
                Some(value)
            }
        }
    }

    pub fn remove(&mut self, key: &K) {
        let on_disk = match self.cache.pop(key) {
            Some(entry) => {
                self.sub_weight(entry.weight);
                entry.on_disk
            }
            None => {
                // Spilled, or not held at all.
                Self::encode_key(&mut self.buf, key);
                let held = self.disk_only > 0
                    && self
                        .keyspace
                        .contains_key(self.buf.as_slice())
                        .unwrap_or_else(|e| {
                            failed("read a key", e);
                            false
                        });
                if held {
                    self.disk_only -= 1;
                }
                held
            }
        };
        if on_disk {
            Self::encode_key(&mut self.buf, key);
            if let Err(e) = self.keyspace.remove(self.buf.as_slice()) {
                failed("remove a key", e);
            }
        }
    }

    pub fn grew(&mut self, key: &K, encoded: usize) {
        let bytes = encoded * MEMORY_PER_ENCODED_BYTE;
        if let Some(entry) = self.cache.peek_mut(key) {
            entry.weight += bytes;
            self.add_weight(bytes);
        }
        self.spill(1);
    }

    pub fn shrank(&mut self, key: &K, encoded: usize) {
        if let Some(entry) = self.cache.peek_mut(key) {
            let less = (encoded * MEMORY_PER_ENCODED_BYTE)
                .min(entry.weight.saturating_sub(OVERHEAD_PER_KEY));
            entry.weight -= less;
            self.sub_weight(less);
        }
    }

    pub fn reweigh(&mut self, key: &K) {
        let Some(entry) = self.cache.peek_mut(key) else {
            return;
        };
        self.buf.clear();
        entry.value.save(&mut self.buf);
        let old = entry.weight;
        let new = weigh(self.buf.len());
        entry.weight = new;
        self.sub_weight(old);
        self.add_weight(new);
        self.spill(1);
    }

    pub fn len(&self) -> usize {
        self.cache.len() + self.disk_only
    }

    pub fn weight(&self) -> usize {
        self.weight
    }

    pub fn clear(&mut self) {
        let spilled = self.disk_only > 0 || self.cache.iter().any(|(_, e)| e.on_disk);
        self.cache.clear();
        let weight = self.weight;
        self.sub_weight(weight);
        if spilled {
            self.store.clear(&mut self.keyspace);
        }
        self.disk_only = 0;
    }

    /// Calls `f` with every spilled key and value that is not cached (decoded one at a time).
    fn for_each_spilled(&self, mut f: impl FnMut(&[u8], &[u8], K)) {
        if self.disk_only == 0 {
            return;
        }
        each_entry(self.keyspace.iter(), "the keyspace", |k, v| {
            match crate::state::decode::<K>(k) {
                // A cached key's copy on disk is older than the cache's.
                Ok(key) if !self.cache.contains(&key) => f(k, v, key),
                Ok(_) => {}
                Err(e) => failed("decode a key", e),
            }
        });
    }

    /// Writes the value of `key` as [`State`] saves it, if it has one, without bringing it
    /// into the cache (a spilled value is copied as it is stored).
    pub fn save_value(&self, key: &K, out: &mut Vec<u8>) -> bool {
        if let Some(entry) = self.cache.peek(key) {
            entry.value.save(out);
            return true;
        }
        if self.disk_only == 0 {
            return false;
        }
        let mut buf = Vec::new();
        Self::encode_key(&mut buf, key);
        match self.keyspace.get(buf.as_slice()) {
            Ok(Some(bytes)) => {
                out.extend_from_slice(&bytes);
                true
            }
            Ok(None) => false,
            Err(e) => {
                failed("read a key", e);
                false
            }
        }
    }

    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        for (k, e) in self.cache.iter() {
            f(k, &e.value);
        }
        self.for_each_spilled(|_, v, key| match crate::state::decode::<V>(v) {
            Ok(value) => f(&key, &value),
            Err(e) => failed("decode a key", e),
        });
    }

    /// Saves the map as a hash map of the same keys and values is saved: a count, then each
    /// key and its value (spilled ones copied as they are stored).
    pub fn save(&self, out: &mut Vec<u8>) {
        use crate::checkpoint::spill;
        let at = spill::reserve(out, &0u64.to_le_bytes());
        let mut n = 0u64;
        for (k, e) in self.cache.iter() {
            k.save(out);
            e.value.save(out);
            n += 1;
            spill::between(out);
        }
        self.for_each_spilled(|k, v, _| {
            out.extend_from_slice(k);
            out.extend_from_slice(v);
            n += 1;
            spill::between(out);
        });
        spill::fill(out, at, &n.to_le_bytes());
    }
}

impl<K, V> Drop for Spilled<K, V> {
    fn drop(&mut self) {
        // The keyspace is not deleted (see `Store::clear`): it goes with the store's folder.
        self.store.left(self.weight);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::hash::FastMap;
    use crate::keyed::{Backend, Keyed};

    /// A store of its own (no run's) whose caches may weigh `cache_budget` bytes.
    pub(crate) fn store(dir: &Path, cache_budget: usize) -> Arc<Store> {
        let mut store = Store::open(&dir.join("store"), 16 << 20).expect("opens");
        store.cache_budget = cache_budget;
        Arc::new(store)
    }

    /// Calls `f` on this thread as part of a run with a disk store of its own (what a run's
    /// operators open with `--state disk`).
    pub(crate) fn in_a_run_on_disk<T>(f: impl FnOnce() -> T) -> T {
        use crate::context::{RunContext, Settings};
        let dir = tempfile::tempdir().unwrap();
        let context = RunContext::new(Settings::default());
        let store = Store::create(dir.path(), 16 << 20).unwrap();
        context.set_state_store(Arc::new(store)).unwrap();
        let _run = context.enter();
        f()
    }

    impl<K: Hash + Eq + Clone + State, V: State> Keyed<K, V> {
        pub(crate) fn spilled_to(store: &Arc<Store>) -> Self {
            Keyed {
                backend: Backend::Disk(Box::new(Spilled::on(store.clone()).expect("opens"))),
            }
        }
    }

    /// Two runs in one process with `--state disk` in two folders: each run's maps spill to
    /// its own store, under its own folder and budget, and a thread outside both runs keeps
    /// its maps in memory (there was one store per process: the second run's maps went to
    /// the first run's folder).
    #[test]
    fn each_run_spills_to_its_own_store() {
        use crate::context::{RunContext, Settings};
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let run = |dir: &Path, keys: i64| {
            let context = RunContext::new(Settings::default());
            let store = Arc::new(Store::create(dir, 4 << 20).unwrap());
            context.set_state_store(store.clone()).unwrap();
            assert!(context.set_state_store(store.clone()).is_err());
            let worker = {
                let context = context.clone();
                std::thread::spawn(move || {
                    let _run = context.enter();
                    let mut map: Keyed<i64, Vec<u8>> = Keyed::new();
                    assert!(map.weighs(), "on the run's disk store");
                    for k in 0..keys {
                        map.get_or_insert_with(k, || vec![7; 2000]);
                        map.grew(&k, 2000);
                    }
                    map
                })
            };
            (context, store, worker)
        };
        let (ca, sa, wa) = run(a.path(), 4000);
        let (cb, sb, wb) = run(b.path(), 10);
        let (map_a, map_b) = (wa.join().unwrap(), wb.join().unwrap());
        assert!(sa.folder().starts_with(a.path()) && sb.folder().starts_with(b.path()));
        assert_ne!(sa.folder(), sb.folder());
        // Run a spilled (8 MB of values over a 1.5 MB cache), run b did not.
        assert!(
            sa.cached_bytes() <= sa.cache_budget + 4096,
            "{}",
            sa.cached_bytes()
        );
        assert!(sb.cached_bytes() > 10 * 2000 && sb.cached_bytes() < 64 << 10);
        let size = |dir: &Path| -> u64 {
            walk(dir)
                .iter()
                .map(|f| f.metadata().map_or(0, |m| m.len()))
                .sum()
        };
        assert!(size(sa.folder()) > size(sb.folder()) + (1 << 20));
        assert!(!Keyed::<i64, i64>::new().weighs(), "no run: in memory");
        drop((map_a, map_b));
        let folder = sa.folder().to_path_buf();
        crate::keyed::close_store(&ca);
        assert!(!folder.exists(), "closed at the end of the run");
        let folder = sb.folder().to_path_buf();
        assert!(folder.exists());
        drop((cb, sb));
        assert!(!folder.exists(), "the last holder closes a store left open");
    }

    /// Maps made and dropped, and cleared, while fjall flushes their memtables: the run goes
    /// on and the store closes cleanly. (Deleting a partition with a flush under way made
    /// fjall's flush thread panic, which poisoned the store's locks: the end of a q9 run on
    /// disk panicked in CI.)
    #[test]
    fn maps_dropped_and_cleared_while_flushing_leave_the_store_working() {
        // The failure hung the drop of the store (its flush thread gone): wait with a limit.
        let (done, finished) = std::sync::mpsc::channel();
        let body = std::thread::spawn(move || {
            drop_and_clear_while_flushing();
            let _ = done.send(());
        });
        let waited = finished.recv_timeout(std::time::Duration::from_secs(300));
        assert!(waited.is_ok() || body.is_finished(), "the store hung");
        body.join().expect("no panic");
    }

    fn drop_and_clear_while_flushing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), 1 << 20);
        let folder = store.folder().to_path_buf();
        let value = vec![3u8; 512];
        for round in 0..12u64 {
            let mut lists = Lists::on(store.clone()).expect("opens");
            // 4 MB per round over 1 MiB memtables: several flushes queued at the drop.
            for i in 0..8000u64 {
                lists.push(&(round * 10_000 + i).to_be_bytes(), 0, true, |out| {
                    out.extend_from_slice(&value)
                });
            }
            if round % 3 == 0 {
                lists.clear();
                let mut n = 0;
                lists.for_each(|_, _| n += 1);
                assert_eq!(n, 0, "cleared");
            }
        }
        let mut map: Keyed<u64, Vec<u8>> = Keyed::spilled_to(&store);
        for k in 0..4000u64 {
            map.get_or_insert_with(k, || value.clone());
            map.grew(&k, value.len());
        }
        assert_eq!(map.get_mut(&3999).map(|v| v.len()), Some(512));
        drop(map);
        drop(store);
        assert!(!folder.exists());
    }

    /// Every file under `dir`.
    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    fn rng(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    /// Random inserts, appends, replacements, reads, removals and takes over more keys than the budget holds, against
    /// a hash map: the same keys and values, whether cached or spilled; a checkpoint of the
    /// spilled map decodes as that hash map, and loads back into either backend.
    #[test]
    fn spilled_map_holds_what_a_hash_map_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), 64 << 10);
        let mut map: Keyed<(i64, String), Vec<u64>> = Keyed::spilled_to(&store);
        let mut oracle: FastMap<(i64, String), Vec<u64>> = FastMap::default();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for step in 0..40_000u64 {
            let k = (rng(&mut seed) % 3000) as i64;
            let key = (k, format!("key-{k}"));
            match rng(&mut seed) % 10 {
                0 => {
                    map.remove(&key);
                    oracle.remove(&key);
                }
                1 => {
                    let got = map.get_mut(&key).map(|v| v.clone());
                    assert_eq!(got.as_ref(), oracle.get(&key), "step {step}");
                }
                2 if step % 3 == 0 => {
                    assert_eq!(map.take(&key), oracle.remove(&key), "step {step}");
                }
                3 if step % 3 == 0 => {
                    let value = vec![step; (step % 5) as usize];
                    let old = map.replace(key.clone(), value.clone());
                    assert_eq!(old, oracle.insert(key, value), "step {step}");
                }
                _ if step % 2 == 0 => {
                    map.get_or_insert_with(key.clone(), Vec::new).push(step);
                    map.grew(&key, 8);
                    oracle.entry(key).or_default().push(step);
                }
                _ => {
                    map.update(key.clone(), Vec::new, |v| v.len() * 8, |v| v.push(step));
                    oracle.entry(key).or_default().push(step);
                }
            }
        }
        assert_eq!(map.len(), oracle.len());
        let Backend::Disk(spilled) = &map.backend else {
            unreachable!()
        };
        assert!(spilled.disk_only > 1000, "{} spilled", spilled.disk_only);
        // The caches stay near the budget (one value over it at most).
        assert!(
            cached(&store) < (64 << 10) + 4096,
            "{} cached",
            cached(&store)
        );

        let mut seen = FastMap::default();
        map.for_each(|k, v| {
            seen.insert(k.clone(), v.clone());
        });
        assert_eq!(seen, oracle);

        let bytes = crate::state::encode(&map);
        let decoded: FastMap<(i64, String), Vec<u64>> = crate::state::decode(&bytes).unwrap();
        assert_eq!(decoded, oracle);
        // A checkpoint taken in memory restores on disk and back.
        let in_memory = crate::state::encode(&oracle);
        let mut restored: Keyed<(i64, String), Vec<u64>> = Keyed::spilled_to(&store);
        let mut input = &in_memory[..];
        let n = u64::load(&mut input).unwrap();
        for _ in 0..n {
            let before = input.len();
            let k = State::load(&mut input).unwrap();
            let v = State::load(&mut input).unwrap();
            restored.insert(k, v, before - input.len());
        }
        assert_eq!(restored.len(), oracle.len());
        let again: FastMap<(i64, String), Vec<u64>> =
            crate::state::decode(&crate::state::encode(&restored)).unwrap();
        assert_eq!(again, oracle);

        map.clear();
        assert_eq!(map.len(), 0);
        let empty: FastMap<(i64, String), Vec<u64>> =
            crate::state::decode(&crate::state::encode(&map)).unwrap();
        assert!(empty.is_empty());
        drop(map);
        drop(restored);
        assert_eq!(cached(&store), 0);
    }

    /// A map may weigh more than its share while the caches together stay within the budget;
    /// once they do not, it spills back to its share at its next change.
    #[test]
    fn a_map_borrows_what_the_others_leave_and_gives_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let budget = 64 << 10;
        let store = store(dir.path(), budget);
        let mut a: Keyed<i64, Vec<u64>> = Keyed::spilled_to(&store);
        let mut b: Keyed<i64, Vec<u64>> = Keyed::spilled_to(&store);
        let value = |k: i64| vec![k as u64; 30];
        let fill = |map: &mut Keyed<i64, Vec<u64>>, keys: std::ops::Range<i64>| {
            for k in keys {
                map.update(k, || value(k), |v| v.len() * 8, |_| {});
            }
        };
        // About 600 bytes a key: 80 keys are 3/4 of the budget, past a's half.
        fill(&mut a, 0..80);
        assert!(a.weight() > budget / 2 && cached(&store) <= budget);
        let Backend::Disk(spilled) = &a.backend else {
            unreachable!()
        };
        assert_eq!(spilled.disk_only, 0, "a spilled while the budget had room");
        // b takes its half: the caches pass the budget, and a gives back at its next change.
        fill(&mut b, 1000..1060);
        assert!(b.weight() <= budget / 2 + 1024, "{}", b.weight());
        fill(&mut a, 80..81);
        assert!(a.weight() <= budget / 2, "{}", a.weight());
        assert!(cached(&store) <= budget + 1024, "{}", cached(&store));
        // Every key is still there, in memory or on disk.
        for k in (0..81).chain(1000..1060) {
            let map = if k < 1000 { &mut a } else { &mut b };
            assert_eq!(map.get_mut(&k), Some(&mut value(k)), "key {k}");
        }
    }

    /// A value that grows and shrinks by turns (`update`, then `shrank`) weighs what it did,
    /// and never less than a key's fixed part.
    #[test]
    fn a_value_that_shrinks_gives_its_weight_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), 1 << 20);
        let mut map: Keyed<i64, Vec<u64>> = Keyed::spilled_to(&store);
        map.update(1, Vec::new, |v| v.len() * 8, |v| v.push(1));
        let start = map.weight();
        for round in 0..100 {
            map.update(1, Vec::new, |v| v.len() * 8, |v| v.push(round));
            map.get_mut(&1).unwrap().pop();
            map.shrank(&1, 8);
        }
        assert_eq!(map.weight(), start);
        assert_eq!(cached(&store), start);
        map.shrank(&1, 1 << 20);
        assert_eq!(map.weight(), OVERHEAD_PER_KEY);
        assert_eq!(cached(&store), OVERHEAD_PER_KEY);
    }

    fn cached(store: &Store) -> usize {
        store.used.load(Ordering::Relaxed)
    }
}
