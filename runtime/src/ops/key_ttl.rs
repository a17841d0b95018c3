//! State time-to-live per key for dedup, top-N and unbounded aggregates
//! (`dedup by k keep first ttl(1h)`, `top 3 by k order by price desc ttl(10m)`,
//! `aggregate by k { ... } ttl(1h)`).
//!
//! A key's state lives until the watermark passes the time of its last write plus the TTL:
//! on watermark `w` a key last written at `t` with `t + ttl < w` is dropped (the same rule
//! as a regular join's records). A write is a record that changed the key's state (entered
//! its top N, or replaced its dedup row), not one that was only compared and discarded; the
//! time of a write is the record's event time, or over an updating input, which has none,
//! the watermark when the change arrived. The last write is the latest such time.
//!
//! On processing time (`ttl(1h, processing)`) the time of a write is the wall clock when it
//! happens, and keys expire on the runtime's ticks (every flush interval), by the wall clock,
//! whether the stream has event time or not. Saved last writes are wall-clock times, so the
//! time a run was stopped counts towards expiry after a restore.
//!
//! Expiry is silent: nothing is emitted for a dropped key. A later record for it starts from
//! empty state, as the key's first record did.
//!
//! Which keys are due is found lazily, as timers are in most engines: a key has one entry in
//! the expiry order, at a time no later than its last write, so a write to a key that has
//! one changes only the key's last write (it moved the key's entry in a sorted set before).
//! When the watermark passes an entry's time plus the TTL, the key's last write decides: the
//! key expires, or its entry moves to that write. On the disk backend (`--state disk`) the
//! order keeps its soonest entries in memory and the rest in files of the store's folder
//! ([`Queue`](crate::keyed::disk::Queue)); the last writes stay in memory, a hash map of a
//! time per key (with them and the joins' counts in the store as well, their spills and
//! removals doubled its writes and fjall stalled the writers: a dedup, an aggregate and a
//! join with `ttl(60s)` at 5 M Nexmark events ran at 54 k events/s against 93 k).

use std::collections::BTreeSet;
use std::hash::Hash;

use crate::hash::FastMap;
use crate::ops::window_aggregate::now_ms;
use crate::state::{State, StateError};

/// When each key was last written, and the keys in the order they expire.
pub struct KeyTtl<K> {
    ttl: i64,
    /// Writes and expiry on the wall clock (`ttl(1h, processing)`) instead of event time.
    processing: bool,
    /// Each key's last write and its entry in `order`. In memory on either backend: kept in
    /// the store as well, their spills and removals doubled the store's writes, and fjall
    /// stalled every writer (see the module docs).
    written: FastMap<K, Written>,
    /// One entry per key in `written`, at or before its last write (on disk, also entries
    /// of keys forgotten or moved since, skipped when they come due).
    order: Order<K>,
}

/// A key's last write, and the time of its entry in the order (at or before it).
#[derive(Clone, Copy)]
struct Written {
    last: i64,
    entry: i64,
}

/// The expiry order: `(time, key)` in memory, or the same ordered as bytes in the store.
enum Order<K> {
    /// `stay`: it stays in memory (the run has no store, or the move failed).
    Memory { set: BTreeSet<(i64, K)>, stay: bool },
    #[cfg(feature = "state-disk")]
    Disk(Box<crate::keyed::disk::Queue>),
}

impl<K: Ord + Clone + State> Order<K> {
    /// An order in memory, which moves to the store of the calling thread's run, if it has
    /// one, once it holds [`MOVE_TO_DISK_AT`](crate::keyed::disk::MOVE_TO_DISK_AT) entries.
    fn new() -> Self {
        Order::Memory {
            set: BTreeSet::new(),
            stay: false,
        }
    }

    fn insert(&mut self, time: i64, key: &K) {
        match self {
            Order::Memory { set, stay } => {
                set.insert((time, key.clone()));
                #[cfg(feature = "state-disk")]
                if !*stay && set.len() > crate::keyed::disk::MOVE_TO_DISK_AT {
                    match crate::keyed::disk::Queue::open() {
                        Some(mut queue) => {
                            for (time, key) in std::mem::take(set) {
                                queue.insert_timed(time, &key);
                            }
                            *self = Order::Disk(Box::new(queue));
                        }
                        None => *stay = true,
                    }
                }
                #[cfg(not(feature = "state-disk"))]
                let _ = stay;
            }
            #[cfg(feature = "state-disk")]
            Order::Disk(queue) => queue.insert_timed(time, key),
        }
    }

    /// Removes the entry `(time, key)` (in memory; on disk it is skipped when it comes due).
    fn remove(&mut self, time: i64, key: &K) {
        match self {
            Order::Memory { set, .. } => {
                set.remove(&(time, key.clone()));
            }
            #[cfg(feature = "state-disk")]
            Order::Disk(_) => {}
        }
    }

    /// Removes the entries with a time before `bound`, in order, calling `f` with each; the
    /// entries `f` returns are inserted once all are taken.
    fn pop_below(&mut self, bound: i64, mut f: impl FnMut(i64, K) -> Option<(i64, K)>) {
        let mut again = Vec::new();
        match self {
            Order::Memory { set, .. } => {
                while set.first().is_some_and(|(time, _)| *time < bound) {
                    let Some((time, key)) = set.pop_first() else {
                        break;
                    };
                    again.extend(f(time, key));
                }
            }
            #[cfg(feature = "state-disk")]
            Order::Disk(queue) => {
                queue.pop_timed_below(bound, |_, time, key| again.extend(f(time, key)));
            }
        }
        for (time, key) in again {
            self.insert(time, &key);
        }
    }

    /// Entries held in memory, and bytes of them on disk's memory side.
    fn in_memory(&self) -> (usize, usize) {
        match self {
            Order::Memory { set, .. } => (set.len(), 0),
            #[cfg(feature = "state-disk")]
            Order::Disk(queue) => (0, queue.memory_bytes()),
        }
    }

    fn clear(&mut self) {
        match self {
            Order::Memory { set, .. } => set.clear(),
            #[cfg(feature = "state-disk")]
            Order::Disk(queue) => queue.clear(),
        }
    }
}

impl<K: Hash + Eq + Ord + Clone + State> KeyTtl<K> {
    /// Approximate bytes of its bookkeeping in memory (see [`crate::metrics::table_bytes`]).
    pub fn approx_bytes(&self) -> usize {
        let (entries, bytes) = self.order.in_memory();
        crate::metrics::table_bytes(&self.written)
            + crate::metrics::entries_bytes::<(i64, K)>(entries)
            + bytes
    }

    /// A negative TTL counts as 0. On the backend of the calling thread's run.
    pub fn new(ttl_ms: i64) -> Self {
        KeyTtl {
            ttl: ttl_ms.max(0),
            processing: false,
            written: FastMap::default(),
            order: Order::new(),
        }
    }

    /// Counts on the wall clock: [`write_now`](Self::write_now) stamps writes with it and
    /// [`tick`](Self::tick) expires by it; watermarks expire nothing
    /// ([`on_watermark`](Self::on_watermark)).
    pub fn on_processing_time(mut self) -> Self {
        self.processing = true;
        self
    }

    /// Whether writes and expiry count on the wall clock.
    pub fn is_processing_time(&self) -> bool {
        self.processing
    }

    /// Records a write of `key` at event time `time`, or at the wall clock's now on
    /// processing time.
    pub fn write_now(&mut self, key: &K, time: i64) {
        let time = if self.processing { now_ms() } else { time };
        self.write(key, time);
    }

    /// On event time, removes the keys the watermark expires ([`expire`](Self::expire)).
    pub fn on_watermark(&mut self, watermark: i64, drop: impl FnMut(K)) {
        if !self.processing {
            self.expire(watermark, drop);
        }
    }

    /// On processing time, removes the keys the wall clock expires.
    pub fn tick(&mut self, drop: impl FnMut(K)) {
        if self.processing && !self.written.is_empty() {
            self.expire(now_ms(), drop);
        }
    }

    /// Records a write of `key` at `time` (the last write stays the latest time). A key
    /// written before keeps its entry in the order.
    pub fn write(&mut self, key: &K, time: i64) {
        match self.written.get_mut(key) {
            Some(w) => w.last = w.last.max(time),
            None => {
                let w = Written {
                    last: time,
                    entry: time,
                };
                self.written.insert(key.clone(), w);
                self.order.insert(time, key);
            }
        }
    }

    /// Forgets `key` (its state is gone for another reason).
    pub fn forget(&mut self, key: &K) {
        if let Some(w) = self.written.remove(key) {
            self.order.remove(w.entry, key);
        }
    }

    /// Removes the keys with `last write + ttl < watermark`, calling `drop` for each, in the
    /// order of their entries (expiry is silent: no operator emits anything for a key it
    /// drops, so the order shows nowhere).
    pub fn expire(&mut self, watermark: i64, mut drop: impl FnMut(K)) {
        // `last + ttl < watermark`, without overflow: `last < watermark - ttl`.
        let Some(bound) = watermark.checked_sub(self.ttl) else {
            return;
        };
        let written = &mut self.written;
        self.order.pop_below(bound, |time, key| {
            let w = written.get_mut(&key).filter(|w| w.entry == time)?;
            if w.last < bound {
                written.remove(&key);
                drop(key);
                None
            } else {
                w.entry = w.last;
                Some((w.last, key))
            }
        });
    }

    /// Moves the writes stamped `from` to `to` (writes stamped with the watermark before the
    /// first one arrived, `i64::MIN`, count from the first watermark), calling `moved` with
    /// each key moved.
    pub fn restamp(&mut self, from: i64, to: i64, mut moved: impl FnMut(&K)) {
        let Some(past) = from.checked_add(1) else {
            return;
        };
        let written = &mut self.written;
        self.order.pop_below(past, |time, key| {
            let w = written.get_mut(&key).filter(|w| w.entry == time)?;
            if w.last == from {
                w.last = to;
                moved(&key);
            }
            w.entry = w.last;
            Some((w.last, key))
        });
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.written.len()
    }

    pub fn is_empty(&self) -> bool {
        self.written.is_empty()
    }

    /// Each key with its last write, by key (for tests).
    #[cfg(test)]
    pub(crate) fn last_writes(&self) -> Vec<(K, i64)> {
        let mut all: Vec<_> = self
            .written
            .iter()
            .map(|(k, w)| (k.clone(), w.last))
            .collect();
        all.sort();
        all
    }

    /// The last writes, as a hash map of them is saved (the order is rebuilt on load).
    pub fn save(&self, out: &mut Vec<u8>) {
        (self.written.len() as u64).save(out);
        for (key, w) in &self.written {
            key.save(out);
            w.last.save(out);
            crate::checkpoint::spill::between(out);
        }
    }

    /// The last writes of `keys` (those that changed since the last checkpoint), for a delta:
    /// each key with its last write, or as gone when it has none (expired or removed).
    pub fn save_delta(&self, keys: &BTreeSet<K>, out: &mut Vec<u8>) {
        crate::checkpoint::delta::save_keyed(keys, out, |key, out| match self.written.get(key) {
            Some(w) => {
                w.last.save(out);
                true
            }
            None => false,
        });
    }

    /// Applies what [`save_delta`](Self::save_delta) wrote: a listed key's last write becomes
    /// the saved one (or the key is forgotten).
    pub fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        crate::checkpoint::delta::load_keyed(input, "a TTL delta's entry", |key: K, value| {
            match value {
                Some(input) => {
                    let last = i64::load(input)?;
                    match self.written.get_mut(&key) {
                        // Its entry is still at or before the last write.
                        Some(w) if w.entry <= last => w.last = last,
                        _ => {
                            self.forget(&key);
                            self.write(&key, last);
                        }
                    }
                }
                None => self.forget(&key),
            }
            Ok(())
        })
    }

    /// Loads the last writes and builds the order from them, inserted in time order (in
    /// random order, an order on disk would write chunks that each span every time, and read
    /// and write them again as the front passes).
    pub fn load(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        let saved: FastMap<K, i64> = State::load(input)?;
        let mut all: Vec<(i64, K)> = saved.into_iter().map(|(k, t)| (t, k)).collect();
        all.sort_unstable();
        self.written = FastMap::default();
        self.order.clear();
        for (last, key) in all {
            self.write(&key, last);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(ttl: &mut KeyTtl<i64>, watermark: i64) -> Vec<i64> {
        let mut keys = Vec::new();
        ttl.expire(watermark, |k| keys.push(k));
        keys
    }

    /// Random writes, forgets, restamps, saves and expiry against a naive model (each key's
    /// last write; expiry drops every key with `last + ttl < watermark`), in memory and with
    /// the last writes and the order in a store whose cache holds a few keys.
    #[test]
    fn expiry_matches_a_naive_model_in_memory_and_on_disk() {
        use crate::ops::join::testing::Rng;
        #[cfg(feature = "state-disk")]
        let dir = tempfile::tempdir().unwrap();
        #[cfg(feature = "state-disk")]
        let store = crate::keyed::disk::tests::store(dir.path(), 4 << 10);
        #[cfg_attr(not(feature = "state-disk"), allow(unused_mut))]
        let mut backends: Vec<Box<dyn Fn() -> KeyTtl<i64>>> = vec![Box::new(|| KeyTtl::new(30))];
        #[cfg(feature = "state-disk")]
        backends.push(Box::new(move || KeyTtl {
            ttl: 30,
            processing: false,
            written: FastMap::default(),
            order: Order::Disk(Box::new(
                crate::keyed::disk::Queue::on(store.clone()).expect("opens"),
            )),
        }));
        for make in &backends {
            for seed in 1..=5u64 {
                let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let mut ttl = make();
                let mut model: std::collections::BTreeMap<i64, i64> = Default::default();
                let mut watermark = i64::MIN;
                for step in 0..4_000 {
                    let key = rng.below(300) as i64;
                    match rng.below(20) {
                        0..=11 => {
                            // Mostly around the watermark, sometimes before the first one.
                            let time = if watermark == i64::MIN {
                                if rng.below(2) == 0 {
                                    i64::MIN
                                } else {
                                    rng.below(50) as i64
                                }
                            } else {
                                watermark + rng.below(60) as i64 - 20
                            };
                            ttl.write(&key, time);
                            let last = model.entry(key).or_insert(time);
                            *last = (*last).max(time);
                        }
                        12 => {
                            ttl.forget(&key);
                            model.remove(&key);
                        }
                        13 => {
                            let mut bytes = Vec::new();
                            ttl.save(&mut bytes);
                            ttl = make();
                            ttl.load(&mut bytes.as_slice()).unwrap();
                        }
                        _ => {
                            let to = if watermark == i64::MIN {
                                40
                            } else {
                                watermark + 7
                            };
                            if watermark == i64::MIN {
                                let mut moved = Vec::new();
                                ttl.restamp(i64::MIN, to, |k| moved.push(*k));
                                moved.sort();
                                let want: Vec<i64> = model
                                    .iter_mut()
                                    .filter(|(_, t)| **t == i64::MIN)
                                    .map(|(k, t)| {
                                        *t = to;
                                        *k
                                    })
                                    .collect();
                                assert_eq!(moved, want, "seed {seed} step {step}: restamped");
                            }
                            watermark = to;
                            let mut got = expired(&mut ttl, watermark);
                            got.sort();
                            let want: Vec<i64> = model
                                .iter()
                                .filter(|(_, t)| t.saturating_add(30) < watermark)
                                .map(|(k, _)| *k)
                                .collect();
                            model.retain(|_, t| t.saturating_add(30) >= watermark);
                            assert_eq!(got, want, "seed {seed} step {step}: expired");
                        }
                    }
                    assert_eq!(ttl.len(), model.len(), "seed {seed} step {step}: keys");
                    // (The only kind of order without the disk backend.)
                    #[allow(irrefutable_let_patterns)]
                    if let Order::Memory { set, .. } = &ttl.order {
                        // Exactly one entry per key: forgets take theirs.
                        assert_eq!(set.len(), model.len(), "seed {seed} step {step}: order");
                    }
                }
                let all: Vec<(i64, i64)> = model.into_iter().collect();
                assert_eq!(ttl.last_writes(), all, "seed {seed}: last writes");
            }
        }
    }

    /// On a run with a disk store, the order moves there once it holds `MOVE_TO_DISK_AT`
    /// entries, and keys expire as they did in memory.
    #[cfg(feature = "state-disk")]
    #[test]
    fn a_large_order_moves_to_the_runs_store() {
        crate::keyed::disk::tests::in_a_run_on_disk(|| {
            let mut ttl = KeyTtl::<i64>::new(10);
            let n = crate::keyed::disk::MOVE_TO_DISK_AT as i64 + 1_000;
            for key in 0..n {
                ttl.write(&key, n - key); // later keys expire first
            }
            assert!(matches!(ttl.order, Order::Disk(_)));
            ttl.write(&(n - 1), 1_000_000); // postponed
            let mut got = expired(&mut ttl, n - 500);
            got.sort();
            // last write + 10 < n - 500: last write n - key < n - 510, key > 510.
            let want: Vec<i64> = (511..n - 1).collect();
            assert_eq!(got, want);
            assert_eq!(ttl.len(), 512);
        })
    }

    #[test]
    fn a_key_expires_when_its_last_write_plus_ttl_falls_below_the_watermark() {
        let mut ttl = KeyTtl::<i64>::new(10);
        ttl.write(&1, 100);
        ttl.write(&2, 105);
        ttl.write(&1, 90); // older than the last write: no change
        assert_eq!(expired(&mut ttl, 110), Vec::<i64>::new()); // 100 + 10 is not < 110
        assert_eq!(expired(&mut ttl, 111), vec![1]);
        ttl.write(&2, 120); // a newer write postpones key 2
        assert_eq!(expired(&mut ttl, 116), Vec::<i64>::new());
        assert_eq!(expired(&mut ttl, 131), vec![2]);
        assert!(ttl.is_empty() && ttl.order.in_memory() == (0, 0));
    }

    #[test]
    fn forget_restamp_and_a_saved_state_keep_the_order() {
        let mut ttl = KeyTtl::<i64>::new(5);
        ttl.write(&1, i64::MIN);
        ttl.write(&2, i64::MIN);
        ttl.write(&3, 50);
        ttl.forget(&3);
        ttl.restamp(i64::MIN, 40, |_| {});
        let mut bytes = Vec::new();
        ttl.save(&mut bytes);
        let mut restored = KeyTtl::<i64>::new(5);
        restored.load(&mut bytes.as_slice()).unwrap();
        assert_eq!(expired(&mut restored, 45), Vec::<i64>::new());
        assert_eq!(expired(&mut restored, 46), vec![1, 2]);
        assert_eq!(restored.len(), 0);
    }

    #[test]
    fn on_processing_time_keys_expire_by_the_wall_clock_at_ticks_only() {
        let mut ttl = KeyTtl::<i64>::new(200).on_processing_time();
        ttl.write_now(&1, 0); // the event time given is ignored
        let mut keys = Vec::new();
        ttl.on_watermark(i64::MAX, |k| keys.push(k)); // watermarks expire nothing
        ttl.tick(|k| keys.push(k)); // not 200 ms yet
        std::thread::sleep(std::time::Duration::from_millis(400));
        ttl.write_now(&2, 0);
        ttl.tick(|k| keys.push(k));
        assert_eq!(keys, vec![1]);
        assert_eq!(ttl.len(), 1);
    }
}
