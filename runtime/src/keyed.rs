//! Keyed state: the per-key values of a stateful operator, in memory or spilled to disk.
//!
//! [`Keyed`] is a map from keys to values with two backends, chosen once per run:
//!
//! - **memory** (the default): a hash map, exactly what the operators held before there was a
//!   choice; nothing is weighed or copied.
//! - **disk** (`--state disk`, runtime feature `state-disk`, see [`disk`]): the most recently
//!   used keys stay decoded in memory, in an LRU cache whose entries are weighed in bytes; when
//!   the caches of all operators together pass the budget (`--state-memory`), the coldest keys
//!   are written to an embedded LSM store (fjall) and dropped from memory, and read back when a
//!   record of theirs arrives. The store is scratch space for this process only: it is emptied
//!   at start and deleted at exit. What survives a crash is the checkpoint, which a disk-backed
//!   map writes in the same format as a hash map ([`State`]), so a checkpoint taken with one
//!   backend restores with the other.
//!
//! Operators call [`Keyed::get_or_insert_with`] and [`Keyed::get_mut`] and, after changing a
//! value, tell the map by how much it grew ([`Keyed::grew`], which may spill other keys) or
//! ask it to weigh the value again ([`Keyed::reweigh`]). Both are no-ops in memory, and
//! [`Keyed::weighs`] says whether the caller needs to measure at all.

use std::hash::Hash;

use crate::hash::FastMap;
use crate::state::{State, StateError};

mod changes;
#[cfg(feature = "state-disk")]
pub mod disk;

#[cfg(test)]
pub(crate) use changes::check_chain;
pub(crate) use changes::keyed_deltas;
pub use changes::Changed;

/// Sets up the backend `args` ask for (`--state disk`) for the run of `context`: call once,
/// before any operator of the run is built. In memory there is nothing to set up.
pub fn install(
    args: &crate::args::RunArgs,
    context: &crate::context::RunContext,
) -> Result<(), String> {
    if args.state != crate::args::StateBackend::Disk {
        return Ok(());
    }
    #[cfg(feature = "state-disk")]
    {
        let dir = args.state_dir.clone().unwrap_or_else(std::env::temp_dir);
        context.set_state_store(std::sync::Arc::new(disk::Store::create(
            &dir,
            args.state_memory,
        )?))
    }
    #[cfg(not(feature = "state-disk"))]
    {
        let _ = context;
        Err(
            "--state disk: this binary has no disk state backend; build it with \
         `weir build --state-disk` (`weir run` does when its arguments have --state disk)"
                .into(),
        )
    }
}

/// Closes the disk store of the run of `context` and removes its scratch folder, once the
/// run's tasks are done (nothing in memory).
pub fn close_store(context: &crate::context::RunContext) {
    #[cfg(feature = "state-disk")]
    if let Some(store) = context.state_store() {
        store.close();
    }
    #[cfg(not(feature = "state-disk"))]
    let _ = context;
}

/// A key-value map of operator state, in memory or spilled to disk (see the module docs).
pub struct Keyed<K, V> {
    pub(crate) backend: Backend<K, V>,
}

pub(crate) enum Backend<K, V> {
    Memory(FastMap<K, V>),
    #[cfg(feature = "state-disk")]
    Disk(Box<disk::Spilled<K, V>>),
}

impl<K: Hash + Eq + Clone + State, V: State> Default for Keyed<K, V> {
    fn default() -> Self {
        Keyed::new()
    }
}

impl<K: Hash + Eq + Clone + State, V: State> Keyed<K, V> {
    /// An empty map on the backend of the calling thread's run: on disk when it was started
    /// with `--state disk`, else in memory.
    pub fn new() -> Self {
        #[cfg(feature = "state-disk")]
        if let Some(spilled) = disk::Spilled::open() {
            return Keyed {
                backend: Backend::Disk(Box::new(spilled)),
            };
        }
        Keyed::in_memory()
    }

    /// An empty map in memory, whatever the run's backend.
    pub fn in_memory() -> Self {
        Keyed {
            backend: Backend::Memory(FastMap::default()),
        }
    }

    /// Whether this map weighs its values (on disk), so that callers should say by how much
    /// a value grew ([`Keyed::grew`]); in memory they need not measure anything.
    #[inline]
    pub fn weighs(&self) -> bool {
        !matches!(self.backend, Backend::Memory(_))
    }

    /// The value of `key`, made with `make` if the key has none. On disk, a spilled key is
    /// read back first, and the key becomes the most recently used.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        match &mut self.backend {
            Backend::Memory(map) => map.entry(key).or_insert_with(make),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.get_or_insert_with(key, make),
        }
    }

    /// Changes the value of `key` (made with `make` if the key has none) with `change`. On
    /// disk a new value is weighed whole, and a held one by how much `size` (a cheap measure
    /// of its encoded bytes beyond a fixed part) grew, so that a value that grows large (an
    /// aggregate's distinct set) is not encoded at every change; shrinking is not counted
    /// until the key is spilled and read back.
    #[inline]
    pub fn update(
        &mut self,
        key: K,
        make: impl FnOnce() -> V,
        size: impl Fn(&V) -> usize,
        change: impl FnOnce(&mut V),
    ) {
        match &mut self.backend {
            Backend::Memory(map) => {
                let _ = size;
                change(map.entry(key).or_insert_with(make));
            }
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.update(key, make, size, change),
        }
    }

    /// The value of `key`, if it has one.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match &mut self.backend {
            Backend::Memory(map) => map.get_mut(key),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.get_mut(key),
        }
    }

    /// Sets the value of `key`, which weighs about `bytes` (restores).
    pub fn insert(&mut self, key: K, value: V, bytes: usize) {
        match &mut self.backend {
            Backend::Memory(map) => {
                let _ = bytes;
                map.insert(key, value);
            }
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.insert(key, value, bytes),
        }
    }

    /// Sets the value of `key` and returns the one it had (on disk, weighed again, which may
    /// spill the coldest keys).
    pub fn replace(&mut self, key: K, value: V) -> Option<V> {
        match &mut self.backend {
            Backend::Memory(map) => map.insert(key, value),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.replace(key, value),
        }
    }

    /// Removes `key` and returns its value, if it had one (on disk, a spilled one is read
    /// back).
    pub fn take(&mut self, key: &K) -> Option<V> {
        match &mut self.backend {
            Backend::Memory(map) => map.remove(key),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.take(key),
        }
    }

    /// Shows the value of `key`, if it has one, to `decide`, which may change it (keeping its
    /// encoded size: it is not weighed again): the key is removed and its value returned when
    /// `decide` says [`Verdict::Take`]. On disk a spilled
    /// value is read but not brought into memory (a key looked at to be dropped would push a
    /// live one out), and written back only when `decide` says [`Verdict::Changed`]; a held
    /// one stays where it is in the order of use.
    pub fn take_if(&mut self, key: &K, decide: impl FnOnce(&mut V) -> Verdict) -> Option<V> {
        match &mut self.backend {
            Backend::Memory(map) => match decide(map.get_mut(key)?) {
                Verdict::Take => map.remove(key),
                Verdict::Keep | Verdict::Changed => None,
            },
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.take_if(key, decide),
        }
    }

    /// Removes `key` and its value.
    pub fn remove(&mut self, key: &K) {
        match &mut self.backend {
            Backend::Memory(map) => {
                map.remove(key);
            }
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.remove(key),
        }
    }

    /// After the value of `key` (the key last read or inserted) grew by about `bytes`: counts
    /// them against the memory budget, spilling the coldest keys when it is exceeded.
    #[inline]
    pub fn grew(&mut self, key: &K, bytes: usize) {
        match &mut self.backend {
            Backend::Memory(_) => {
                let _ = (key, bytes);
            }
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.grew(key, bytes),
        }
    }

    /// After the value of `key` (the key last read or inserted) shrank by about `bytes`
    /// encoded: counts them off its weight (never below the key's fixed part), so that a value
    /// that grows and shrinks by turns (a group's list of rows) is not weighed ever larger.
    #[inline]
    pub fn shrank(&mut self, key: &K, bytes: usize) {
        match &mut self.backend {
            Backend::Memory(_) => {
                let _ = (key, bytes);
            }
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.shrank(key, bytes),
        }
    }

    /// Weighs the value of `key` (the key last read or inserted) again after it changed,
    /// spilling the coldest keys if the budget is exceeded.
    pub fn reweigh(&mut self, key: &K) {
        match &mut self.backend {
            Backend::Memory(_) => {
                let _ = key;
            }
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.reweigh(key),
        }
    }

    /// Keys held, in memory and on disk.
    pub fn len(&self) -> usize {
        match &self.backend {
            Backend::Memory(map) => map.len(),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Gives memory back after most keys were removed (in memory; the disk store compacts on
    /// its own).
    pub fn shrink(&mut self) {
        match &mut self.backend {
            Backend::Memory(map) => crate::ops::join::shrink_map(map),
            #[cfg(feature = "state-disk")]
            Backend::Disk(_) => {}
        }
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        match &mut self.backend {
            Backend::Memory(map) => *map = FastMap::default(),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.clear(),
        }
    }

    /// Writes the value of `key` as [`State`] saves it, if it has one (on disk, without
    /// bringing a spilled one into memory).
    pub fn save_value(&self, key: &K, out: &mut Vec<u8>) -> bool
    where
        V: State,
    {
        match &self.backend {
            Backend::Memory(map) => map.get(key).map(|v| v.save(out)).is_some(),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.save_value(key, out),
        }
    }

    /// Calls `f` with every key and value, in no particular order (spilled ones are read back
    /// one at a time and not kept).
    pub fn for_each(&self, mut f: impl FnMut(&K, &V)) {
        match &self.backend {
            Backend::Memory(map) => map.iter().for_each(|(k, v)| f(k, v)),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.for_each(f),
        }
    }

    /// An estimate of the bytes the map holds in memory, for the live view: in memory its
    /// table and `value_bytes` of its values (summed over a sample, see
    /// [`crate::metrics::sampled_total`]); on disk what the backend weighs of what it keeps in
    /// memory (the store's files are not counted).
    pub fn memory_bytes(&self, value_bytes: impl Fn(&V) -> usize) -> usize {
        match &self.backend {
            Backend::Memory(map) => {
                crate::metrics::table_bytes(map)
                    + crate::metrics::sampled_total(map.values(), map.len(), value_bytes)
            }
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.weight(),
        }
    }

    /// Bytes of the map's values held in memory as the disk backend counts them (0 in memory,
    /// where nothing is weighed).
    pub fn weight(&self) -> usize {
        match &self.backend {
            Backend::Memory(_) => 0,
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.weight(),
        }
    }
}

/// What [`Keyed::take_if`] does with a value it showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Leaves it as it was.
    Keep,
    /// Keeps it as changed.
    Changed,
    /// Removes the key and returns the value.
    Take,
}

/// Saved as a hash map of the same keys and values is: a count, then each key and its value.
impl<K: Hash + Eq + Clone + State, V: State> State for Keyed<K, V> {
    fn save(&self, out: &mut Vec<u8>) {
        match &self.backend {
            Backend::Memory(map) => map.save(out),
            #[cfg(feature = "state-disk")]
            Backend::Disk(spilled) => spilled.save(out),
        }
    }

    /// Loads into a map on the run's backend; on disk, keys past the budget are spilled as
    /// they are read, so a restore needs no more memory than the run.
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let mut keyed = Keyed::new();
        let n = u64::load(input)?;
        if n > input.len() as u64 {
            return Err(StateError::Truncated);
        }
        for _ in 0..n {
            let before = input.len();
            let key = K::load(input)?;
            let value = V::load(input)?;
            let bytes = before - input.len();
            keyed.insert(key, value, bytes);
            crate::checkpoint::mapped::release(input);
        }
        Ok(keyed)
    }
}
