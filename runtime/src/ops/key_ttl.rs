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
//! A key's last write is kept with its value ([`Written`], the operator's [`Stamp`]), in the
//! operator's [`Keyed`] map: spilled with it past the memory budget on the disk backend,
//! saved with it in checkpoints and deltas, and read with it when the key is touched anyway.
//! An operator without a TTL keeps `()` there, which takes no memory and no bytes.
//!
//! Which keys are due is found lazily, as timers are in most engines: a key has one entry in
//! the expiry order, at a time no later than its last write, so a write to a key that has
//! one changes only the key's last write. When the watermark passes an entry's time plus the
//! TTL, the key's last write decides: the key expires, or its entry moves to that write. On
//! the disk backend (`--state disk`) the order keeps its soonest entries in memory and the
//! rest in files of the store's folder ([`Queue`](crate::keyed::disk::Queue)). The order is
//! not saved: a restore builds it from the last writes.

use std::collections::BTreeSet;
use std::hash::Hash;

use crate::keyed::{Keyed, Verdict};
use crate::ops::window_aggregate::now_ms;
use crate::state::{State, StateError};

/// The `with_ttl` and `with_processing_ttl` builders of an operator whose `stamped(ttl)`
/// returns it as `$op`, keeping a [`Written`] beside each key's value.
macro_rules! ttl_builders {
    ($op:ty) => {
        /// Drops a key's state once the watermark passes its last write plus `ttl_ms` (expiry
        /// emits nothing; the key's next record starts afresh).
        pub fn with_ttl(self, ttl_ms: i64) -> $op {
            self.stamped($crate::ops::key_ttl::KeyTtl::new(ttl_ms))
        }

        /// [`with_ttl`](Self::with_ttl) on the wall clock: a key expires `ttl_ms` after its
        /// last write, checked at every tick.
        pub fn with_processing_ttl(self, ttl_ms: i64) -> $op {
            self.stamped($crate::ops::key_ttl::KeyTtl::new(ttl_ms).on_processing_time())
        }
    };
}
pub(crate) use ttl_builders;

/// The keys of a TTL in the order they expire (their last writes are with their values).
pub struct KeyTtl<K> {
    ttl: i64,
    /// Writes and expiry on the wall clock (`ttl(1h, processing)`) instead of event time.
    processing: bool,
    /// One entry per key written, at or before its last write (on disk, also entries of keys
    /// forgotten or moved since, skipped when they come due).
    order: Order<K>,
}

/// A key's last write, and the time of its entry in the order (at or before it): what an
/// operator with a TTL keeps beside each key's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    last: i64,
    entry: i64,
}

impl Default for Written {
    /// Not written yet (no entry in the order).
    fn default() -> Self {
        Written {
            last: i64::MIN,
            entry: i64::MAX,
        }
    }
}

impl Written {
    fn is_set(&self) -> bool {
        self.entry <= self.last
    }

    /// The last write (for tests).
    #[cfg(test)]
    pub(crate) fn last(&self) -> i64 {
        self.last
    }
}

/// Both times, so that a key spilled and read back keeps its entry in the order.
impl State for Written {
    fn save(&self, out: &mut Vec<u8>) {
        self.last.save(out);
        self.entry.save(out);
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        Ok(Written {
            last: i64::load(input)?,
            entry: i64::load(input)?,
        })
    }
}

/// What an operator keeps beside each key's value for its TTL: a [`Written`] with one, `()`
/// (nothing, in memory or in bytes) without.
pub trait Stamp: State + Copy + Default + 'static {
    fn written(&mut self) -> Option<&mut Written>;
    fn get(&self) -> Option<Written>;
}

impl Stamp for () {
    #[inline]
    fn written(&mut self) -> Option<&mut Written> {
        None
    }
    #[inline]
    fn get(&self) -> Option<Written> {
        None
    }
}

impl Stamp for Written {
    #[inline]
    fn written(&mut self) -> Option<&mut Written> {
        Some(self)
    }
    #[inline]
    fn get(&self) -> Option<Written> {
        Some(*self)
    }
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
        crate::metrics::entries_bytes::<(i64, K)>(entries) + bytes
    }

    /// A negative TTL counts as 0. On the backend of the calling thread's run.
    pub fn new(ttl_ms: i64) -> Self {
        KeyTtl {
            ttl: ttl_ms.max(0),
            processing: false,
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

    /// Records a write of `key`, whose stamp is `stamp`, at event time `time`, or at the
    /// wall clock's now on processing time.
    #[inline]
    pub fn write_now(&mut self, key: &K, time: i64, stamp: &mut impl Stamp) {
        if let Some(written) = stamp.written() {
            let time = if self.processing { now_ms() } else { time };
            self.write(key, time, written);
        }
    }

    /// On event time, removes the keys the watermark expires ([`expire`](Self::expire)).
    pub fn on_watermark<V: State, T: Stamp>(
        &mut self,
        watermark: i64,
        state: &mut Keyed<K, (V, T)>,
        drop: impl FnMut(K, V),
    ) {
        if !self.processing {
            self.expire(watermark, state, drop);
        }
    }

    /// On processing time, removes the keys the wall clock expires.
    pub fn tick<V: State, T: Stamp>(
        &mut self,
        state: &mut Keyed<K, (V, T)>,
        drop: impl FnMut(K, V),
    ) {
        if self.processing && !state.is_empty() {
            self.expire(now_ms(), state, drop);
        }
    }

    /// Records a write of `key` at `time` in its stamp `written` (the last write stays the
    /// latest time). A key written before keeps its entry in the order.
    pub fn write(&mut self, key: &K, time: i64, written: &mut Written) {
        if written.is_set() {
            written.last = written.last.max(time);
        } else {
            *written = Written {
                last: time,
                entry: time,
            };
            self.order.insert(time, key);
        }
    }

    /// Forgets `key`, stamped `stamp`, whose state is gone for another reason.
    pub fn forget(&mut self, key: &K, stamp: &impl Stamp) {
        if let Some(written) = stamp.get().filter(Written::is_set) {
            self.order.remove(written.entry, key);
        }
    }

    /// Removes from `state` the keys with `last write + ttl < watermark`, calling `drop` with
    /// each and its value, in the order of their entries (expiry is silent: no operator emits
    /// anything for a key it drops, so the order shows nowhere).
    pub fn expire<V: State, T: Stamp>(
        &mut self,
        watermark: i64,
        state: &mut Keyed<K, (V, T)>,
        mut drop: impl FnMut(K, V),
    ) {
        // `last + ttl < watermark`, without overflow: `last < watermark - ttl`.
        let Some(bound) = watermark.checked_sub(self.ttl) else {
            return;
        };
        self.order.pop_below(bound, |time, key| {
            let mut again = None;
            let taken = state.take_if(&key, |(_, stamp)| {
                // (An entry the key has left: skipped.)
                let Some(written) = stamp.written().filter(|w| w.entry == time) else {
                    return Verdict::Keep;
                };
                if written.last < bound {
                    return Verdict::Take;
                }
                written.entry = written.last;
                again = Some(written.last);
                Verdict::Changed
            });
            match taken {
                Some((value, _)) => {
                    drop(key, value);
                    None
                }
                None => again.map(|time| (time, key)),
            }
        });
    }

    /// Moves the writes stamped `from` to `to` (writes stamped with the watermark before the
    /// first one arrived, `i64::MIN`, count from the first watermark), calling `moved` with
    /// each key moved.
    pub fn restamp<V: State, T: Stamp>(
        &mut self,
        from: i64,
        to: i64,
        state: &mut Keyed<K, (V, T)>,
        mut moved: impl FnMut(&K),
    ) {
        let Some(past) = from.checked_add(1) else {
            return;
        };
        self.order.pop_below(past, |time, key| {
            let (mut again, mut restamped) = (None, false);
            state.take_if(&key, |(_, stamp)| {
                let Some(written) = stamp.written().filter(|w| w.entry == time) else {
                    return Verdict::Keep;
                };
                if written.last == from {
                    written.last = to;
                    restamped = true;
                }
                written.entry = written.last;
                again = Some(written.last);
                Verdict::Changed
            });
            if restamped {
                moved(&key);
            }
            Some((again?, key))
        });
    }

    /// Builds the order from the stamps in `state` (after a restore: checkpoints carry the
    /// stamps, not the order), inserted in time order (in random order, an order on disk would
    /// write chunks that each span every time, and read and write them again as the front
    /// passes).
    pub fn rebuild<V: State, T: Stamp>(&mut self, state: &Keyed<K, (V, T)>) {
        let mut all: Vec<(i64, K)> = Vec::new();
        state.for_each(|key, (_, stamp)| {
            if let Some(written) = stamp.get().filter(Written::is_set) {
                all.push((written.entry, key.clone()));
            }
        });
        all.sort_unstable();
        self.order.clear();
        for (entry, key) in all {
            self.order.insert(entry, &key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys with nothing but their stamps, as an operator's map holds them.
    type Stamps = Keyed<i64, ((), Written)>;

    fn write(ttl: &mut KeyTtl<i64>, state: &mut Stamps, key: i64, time: i64) {
        let value = state.get_or_insert_with(key, Default::default);
        ttl.write(&key, time, &mut value.1);
    }

    fn expired(ttl: &mut KeyTtl<i64>, state: &mut Stamps, watermark: i64) -> Vec<i64> {
        let mut keys = Vec::new();
        ttl.expire(watermark, state, |k, ()| keys.push(k));
        keys
    }

    fn last_writes(state: &Stamps) -> Vec<(i64, i64)> {
        let mut all = Vec::new();
        state.for_each(|k, (_, w)| all.push((*k, w.last)));
        all.sort();
        all
    }

    /// A saved map read back, and the order built from it.
    fn restored(ttl: &mut KeyTtl<i64>, state: &mut Stamps) {
        let bytes = crate::state::encode(&*state);
        let read: Stamps = crate::state::decode(&bytes).unwrap();
        state.clear();
        read.for_each(|k, v| state.insert(*k, *v, 24));
        ttl.rebuild(state);
    }

    /// Random writes, forgets, restamps, restores and expiry against a naive model (each
    /// key's last write; expiry drops every key with `last + ttl < watermark`), in memory and
    /// with the stamps and the order in a store whose cache holds a few keys.
    #[test]
    fn expiry_matches_a_naive_model_in_memory_and_on_disk() {
        use crate::ops::join::testing::Rng;
        #[cfg(feature = "state-disk")]
        let dir = tempfile::tempdir().unwrap();
        #[cfg(feature = "state-disk")]
        let store = crate::keyed::disk::tests::store(dir.path(), 4 << 10);
        // The keys' own store holds 2 or 3 of them in memory (few are live at once).
        #[cfg(feature = "state-disk")]
        let keys_dir = tempfile::tempdir().unwrap();
        #[cfg(feature = "state-disk")]
        let keys_store = crate::keyed::disk::tests::store(keys_dir.path(), 256);
        type Make = Box<dyn Fn() -> (KeyTtl<i64>, Stamps)>;
        #[cfg_attr(not(feature = "state-disk"), allow(unused_mut))]
        let mut backends: Vec<Make> = vec![Box::new(|| (KeyTtl::new(30), Keyed::in_memory()))];
        #[cfg(feature = "state-disk")]
        backends.push(Box::new(move || {
            let ttl = KeyTtl {
                ttl: 30,
                processing: false,
                order: Order::Disk(Box::new(
                    crate::keyed::disk::Queue::on(store.clone()).expect("opens"),
                )),
            };
            (ttl, Keyed::spilled_to(&keys_store))
        }));
        for make in &backends {
            for seed in 1..=5u64 {
                let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let (mut ttl, mut state) = make();
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
                            write(&mut ttl, &mut state, key, time);
                            let last = model.entry(key).or_insert(time);
                            *last = (*last).max(time);
                        }
                        12 => {
                            if let Some(value) = state.take(&key) {
                                ttl.forget(&key, &value.1);
                            }
                            model.remove(&key);
                        }
                        13 => {
                            let (fresh, _) = make();
                            ttl = fresh;
                            restored(&mut ttl, &mut state);
                        }
                        _ => {
                            let to = if watermark == i64::MIN {
                                40
                            } else {
                                watermark + 7
                            };
                            if watermark == i64::MIN {
                                let mut moved = Vec::new();
                                ttl.restamp(i64::MIN, to, &mut state, |k| moved.push(*k));
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
                            let mut got = expired(&mut ttl, &mut state, watermark);
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
                    assert_eq!(state.len(), model.len(), "seed {seed} step {step}: keys");
                    // (The only kind of order without the disk backend.)
                    #[allow(irrefutable_let_patterns)]
                    if let Order::Memory { set, .. } = &ttl.order {
                        // Exactly one entry per key: forgets take theirs.
                        assert_eq!(set.len(), model.len(), "seed {seed} step {step}: order");
                    }
                }
                let all: Vec<(i64, i64)> = model.into_iter().collect();
                assert_eq!(last_writes(&state), all, "seed {seed}: last writes");
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
            let mut state = Stamps::new();
            let n = crate::keyed::disk::MOVE_TO_DISK_AT as i64 + 1_000;
            for key in 0..n {
                write(&mut ttl, &mut state, key, n - key); // later keys expire first
            }
            assert!(matches!(ttl.order, Order::Disk(_)));
            write(&mut ttl, &mut state, n - 1, 1_000_000); // postponed
            let mut got = expired(&mut ttl, &mut state, n - 500);
            got.sort();
            // last write + 10 < n - 500: last write n - key < n - 510, key > 510.
            let want: Vec<i64> = (511..n - 1).collect();
            assert_eq!(got, want);
            assert_eq!(state.len(), 512);
        })
    }

    #[test]
    fn a_key_expires_when_its_last_write_plus_ttl_falls_below_the_watermark() {
        let mut ttl = KeyTtl::<i64>::new(10);
        let mut state = Stamps::in_memory();
        write(&mut ttl, &mut state, 1, 100);
        write(&mut ttl, &mut state, 2, 105);
        write(&mut ttl, &mut state, 1, 90); // older than the last write: no change
        assert_eq!(expired(&mut ttl, &mut state, 110), Vec::<i64>::new()); // 100 + 10 is not < 110
        assert_eq!(expired(&mut ttl, &mut state, 111), vec![1]);
        write(&mut ttl, &mut state, 2, 120); // a newer write postpones key 2
        assert_eq!(expired(&mut ttl, &mut state, 116), Vec::<i64>::new());
        assert_eq!(expired(&mut ttl, &mut state, 131), vec![2]);
        assert!(state.is_empty() && ttl.order.in_memory() == (0, 0));
    }

    #[test]
    fn forget_restamp_and_a_restore_keep_the_order() {
        let mut ttl = KeyTtl::<i64>::new(5);
        let mut state = Stamps::in_memory();
        write(&mut ttl, &mut state, 1, i64::MIN);
        write(&mut ttl, &mut state, 2, i64::MIN);
        write(&mut ttl, &mut state, 3, 50);
        let gone = state.take(&3).unwrap();
        ttl.forget(&3, &gone.1);
        ttl.restamp(i64::MIN, 40, &mut state, |_| {});
        let mut restored_ttl = KeyTtl::<i64>::new(5);
        restored(&mut restored_ttl, &mut state);
        assert_eq!(
            expired(&mut restored_ttl, &mut state, 45),
            Vec::<i64>::new()
        );
        assert_eq!(expired(&mut restored_ttl, &mut state, 46), vec![1, 2]);
        assert!(state.is_empty());
    }

    /// A stamp keeps both its times through its bytes (a key spilled and read back keeps its
    /// entry in the order), and `()` takes no bytes at all.
    #[test]
    fn a_stamp_is_saved_whole_and_no_stamp_takes_no_bytes() {
        let written = Written {
            last: 90,
            entry: 40,
        };
        let bytes = crate::state::encode(&(7i64, written));
        assert_eq!(
            crate::state::decode::<(i64, Written)>(&bytes),
            Ok((7, written))
        );
        assert_eq!(
            crate::state::encode(&(7i64, ())),
            crate::state::encode(&7i64)
        );
    }

    #[test]
    fn on_processing_time_keys_expire_by_the_wall_clock_at_ticks_only() {
        let mut ttl = KeyTtl::<i64>::new(200).on_processing_time();
        let mut state = Stamps::in_memory();
        let mut keys = Vec::new();
        let value = state.get_or_insert_with(1, Default::default);
        ttl.write_now(&1, 0, &mut value.1); // the event time given is ignored
        ttl.on_watermark(i64::MAX, &mut state, |k, ()| keys.push(k)); // watermarks expire nothing
        ttl.tick(&mut state, |k, ()| keys.push(k)); // not 200 ms yet
        std::thread::sleep(std::time::Duration::from_millis(400));
        let value = state.get_or_insert_with(2, Default::default);
        ttl.write_now(&2, 0, &mut value.1);
        ttl.tick(&mut state, |k, ()| keys.push(k));
        assert_eq!(keys, vec![1]);
        assert_eq!(state.len(), 1);
    }
}
