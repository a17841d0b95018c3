//! What the join operators share: the two-input record type [`Either`], the per-query
//! [`JoinSpec`] trait generated for every two-input join, and [`route_by_key`], the routing
//! function of the exchanges that feed a join.
//!
//! | operator | matches | state | emits | late |
//! |---|---|---|---|---|
//! | [`IntervalJoin`](super::IntervalJoin) | equal keys, `lt + lower <= rt <= lt + upper` | records until no future record can match them | on the arrival completing a pair | `t < watermark` |
//! | [`WindowJoin`](super::WindowJoin) | equal keys, same tumbling window | records per window | when the watermark passes the window end | window already fired |
//! | [`RegularJoin`](super::RegularJoin) | equal keys | every record (or until `t + ttl < watermark`) | on the arrival completing a pair; left outer: an unmatched left record when it expires (or at the end) | with a TTL: `t + ttl < watermark` |
//! | [`LookupJoin`](super::LookupJoin) | equal keys against a static table | the table | per input record | never |
//!
//! # Two inputs, one channel
//!
//! A two-input operator runs in a task with a single input channel of `Either<L, R>`: the
//! exchanges of both upstream sides send into the same channels, each wrapping its records as
//! [`Either::Left`] or [`Either::Right`], and both must route with [`route_by_key`] so that equal
//! keys from either side reach the same instance. The task's input loop forwards the minimum
//! watermark over all upstream instances of both sides, so a join sees one watermark.
//!
//! # Null keys
//!
//! SQL equi-joins never match a null key, not even with another null key, but Rust's `==` on
//! `Option` does. [`JoinSpec::is_null_key`] says which keys match nothing: such records are never
//! stored and never probe (a left record of an outer join still gets its `left_only` row). This
//! keeps null keys out of the join state instead of piling them up under one key.
//!
//! # Matches and the extra condition
//!
//! [`JoinSpec::join`] is the rest of the `ON` condition and the projection: a pair for which it
//! returns `None` is not a match, so under `left_outer` a left record whose every candidate was
//! refused still emits `left_only`, as in SQL.

use std::collections::BTreeMap;
use std::hash::Hash;

#[cfg(feature = "state-disk")]
pub(crate) mod disk;
pub(crate) mod records;

use crate::collector::Collector;
use crate::hash::{route, FastMap};
use crate::metrics::OpCounters;
use crate::state::{State, StateError};

/// A record of a two-input operator's input channel, tagged with the side it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Either<L, R> {
    Left(L),
    Right(R),
}

/// The per-query part of a two-input join, generated for each join step.
pub trait JoinSpec {
    /// Records of the left input. Joins store them, hence `Clone`.
    type Left: Clone + State;
    /// Records of the right input.
    type Right: Clone + State;
    /// The equi-join key (a tuple for several columns). `Ord` makes emission order deterministic.
    type Key: Hash + Eq + Ord + Clone + State;
    /// A joined row.
    type Out;
    fn left_key(l: &Self::Left) -> Self::Key;
    fn right_key(r: &Self::Right) -> Self::Key;
    /// Event time in ms (used by interval and window joins, and by TTL expiry).
    fn left_time(l: &Self::Left) -> i64;
    fn right_time(r: &Self::Right) -> i64;
    /// Extra join condition and projection of a pair with equal keys; `None` drops the pair
    /// (and does not count as a match for `left_outer`).
    fn join(l: &Self::Left, r: &Self::Right) -> Option<Self::Out>;
    /// Projection of an unmatched left record for LEFT OUTER variants (right side null).
    fn left_only(l: &Self::Left) -> Self::Out;
    /// Whether `key` can match nothing (SQL: one of its columns is null). Default: never.
    #[inline]
    fn is_null_key(_key: &Self::Key) -> bool {
        false
    }
}

/// The routing hash of a join input record: the [`route`] of its join key, the same function
/// for both sides. Every exchange into a join must use it (`Exchange::new(.., route_by_key::<S>)`).
#[inline]
pub fn route_by_key<S: JoinSpec>(record: &Either<S::Left, S::Right>) -> u64 {
    match record {
        Either::Left(l) => route(&S::left_key(l)),
        Either::Right(r) => route(&S::right_key(r)),
    }
}

/// Pushes one output row and counts it.
#[inline]
pub(crate) fn emit<O, N: Collector<O>>(next: &mut N, stats: &mut OpCounters, out: &O) {
    stats.records_out += 1;
    next.push(out);
}

/// A stored record with its event time; `matched` is only used for left records of outer joins.
pub(crate) struct Held<T> {
    pub time: i64,
    pub matched: bool,
    pub record: T,
}

impl<T: State> State for Held<T> {
    fn save(&self, out: &mut Vec<u8>) {
        self.time.save(out);
        self.matched.save(out);
        self.record.save(out);
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        Ok(Held {
            time: State::load(input)?,
            matched: State::load(input)?,
            record: State::load(input)?,
        })
    }
}

impl<L: State, R: State> State for Sides<L, R> {
    fn save(&self, out: &mut Vec<u8>) {
        self.left.save(out);
        self.right.save(out);
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let mut sides = Sides {
            left: State::load(input)?,
            right: State::load(input)?,
            saved: Saved::default(),
        };
        sides.mark_saved();
        Ok(sides)
    }
}

/// Saved as `BTreeMap<i64, Vec<K>>` is: the number of times, then each time with its keys.
/// On disk a time may come more than once and out of order (the order is sorted in memory and
/// within each chunk of the store, not across them), which loading allows.
impl<K: State + Ord> State for ExpiryIndex<K> {
    fn save(&self, out: &mut Vec<u8>) {
        match &self.by_time {
            ByTime::Memory(by_time) => by_time.save(out),
            #[cfg(feature = "state-disk")]
            ByTime::Disk(queue) => {
                use crate::checkpoint::spill;
                let times_at = spill::reserve(out, &0u64.to_le_bytes());
                let (mut times, mut current) = (0u64, None);
                let mut keys = (0, 0u64);
                queue.for_each_timed(|time: i64, key: K| {
                    if current != Some(time) {
                        if current.is_some() {
                            spill::fill(out, keys.0, &keys.1.to_le_bytes());
                        }
                        current = Some(time);
                        times += 1;
                        time.save(out);
                        keys = (spill::reserve(out, &0u64.to_le_bytes()), 0);
                    }
                    key.save(out);
                    keys.1 += 1;
                    spill::between(out);
                });
                if current.is_some() {
                    spill::fill(out, keys.0, &keys.1.to_le_bytes());
                }
                spill::fill(out, times_at, &times.to_le_bytes());
            }
        }
    }
    /// Into an index on the run's backend (see [`ExpiryIndex::from_unsorted`]).
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        let mut all = Vec::new();
        for _ in 0..crate::state::load_len(input)? {
            let time = i64::load(input)?;
            for _ in 0..crate::state::load_len(input)? {
                all.push((time, K::load(input)?));
            }
            crate::checkpoint::mapped::release(input);
        }
        Ok(ExpiryIndex::from_unsorted(all))
    }
}

impl<L: State, R: State> State for Either<L, R> {
    fn save(&self, out: &mut Vec<u8>) {
        match self {
            Either::Left(l) => {
                out.push(0);
                l.save(out);
            }
            Either::Right(r) => {
                out.push(1);
                r.save(out);
            }
        }
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        match u8::load(input)? {
            0 => Ok(Either::Left(State::load(input)?)),
            1 => Ok(Either::Right(State::load(input)?)),
            _ => Err(StateError::Invalid("either")),
        }
    }
}

/// The stored records of one key, each side in arrival order.
pub(crate) struct Sides<L, R> {
    pub left: Vec<Held<L>>,
    pub right: Vec<Held<R>>,
    /// What the last checkpoint holds of this key (incremental checkpoints, see
    /// [`records`]).
    pub saved: Saved,
}

/// What the last checkpoint holds of a key's [`Sides`], for a join that writes deltas:
/// between checkpoints records are only added at the end of each side, unless some were
/// removed (`rewritten`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Saved {
    /// Records of each side the last checkpoint holds: the first ones.
    pub left: u32,
    pub right: u32,
    /// The key is in the join's list of changed keys.
    pub listed: bool,
    /// The `matched` flag of one of the first `left` left records was set since.
    pub flags: bool,
    /// The key is new or lost records since: a delta writes it whole.
    pub rewritten: bool,
}

impl<L, R> Sides<L, R> {
    /// A key with no records, new since the last checkpoint.
    pub fn new() -> Self {
        Sides {
            left: Vec::new(),
            right: Vec::new(),
            saved: Saved {
                rewritten: true,
                ..Saved::default()
            },
        }
    }

    /// Notes that the last checkpoint holds the key as it is now.
    pub fn mark_saved(&mut self) {
        self.saved = Saved {
            left: self.left.len() as u32,
            right: self.right.len() as u32,
            ..Saved::default()
        };
    }

    pub fn is_empty(&self) -> bool {
        self.left.is_empty() && self.right.is_empty()
    }

    /// Gives memory back after a burst: a buffer that is mostly empty is shrunk.
    pub fn compact(&mut self) {
        shrink_vec(&mut self.left);
        shrink_vec(&mut self.right);
    }
}

fn shrink_vec<T>(v: &mut Vec<T>) {
    if v.capacity() > 16 && v.len() * 4 < v.capacity() {
        v.shrink_to(v.len() * 2);
    }
}

/// Shrinks a keyed state map that has lost most of its keys (amortized: at most one rehash per
/// quartering).
pub(crate) fn shrink_map<K: Hash + Eq, V>(map: &mut FastMap<K, V>) {
    if map.capacity() > 64 && map.len() * 4 < map.capacity() {
        map.shrink_to(map.len() * 2);
    }
}

/// Which keys hold records that expire at which time, so that a watermark visits only the keys
/// with something to drop instead of the whole state. A record with expiry `e` is dropped by the
/// first watermark `w > e`. On the disk backend (`--state disk`) the index is a keyspace of the
/// store ([`Queue`](crate::keyed::disk::Queue)), so a TTL over more records than fit in memory
/// costs no memory for it.
pub(crate) struct ExpiryIndex<K> {
    by_time: ByTime<K>,
    /// Entries held in memory.
    held: usize,
    /// It stays in memory (the run has no store, or the move failed).
    #[cfg_attr(not(feature = "state-disk"), allow(dead_code))]
    stay: bool,
}

enum ByTime<K> {
    Memory(BTreeMap<i64, Vec<K>>),
    #[cfg(feature = "state-disk")]
    Disk(Box<crate::keyed::disk::Queue>),
}

impl<K: Ord + State> ExpiryIndex<K> {
    /// An index in memory, which moves to the store of the calling thread's run, if it has
    /// one, once it holds [`MOVE_TO_DISK_AT`](crate::keyed::disk::MOVE_TO_DISK_AT) entries.
    pub fn new() -> Self {
        ExpiryIndex {
            by_time: ByTime::Memory(BTreeMap::new()),
            held: 0,
            stay: false,
        }
    }

    /// An index of `entries`, inserted in time order (in any other order, an index on disk
    /// writes chunks that each span every time, and reads and writes them again as the
    /// front passes).
    pub fn from_unsorted(mut entries: Vec<(i64, K)>) -> Self {
        entries.sort_unstable();
        let mut index = ExpiryIndex::new();
        for (time, key) in entries {
            index.insert(time, key);
        }
        index
    }

    /// An index in `store` (tests of a join on disk outside a run).
    #[cfg(all(test, feature = "state-disk"))]
    pub fn on_disk(store: &std::sync::Arc<crate::keyed::disk::Store>) -> Self {
        ExpiryIndex {
            by_time: ByTime::Disk(Box::new(
                crate::keyed::disk::Queue::on(store.clone()).expect("opens"),
            )),
            held: 0,
            stay: false,
        }
    }

    /// Every (expiry, key) noted, without repeats (for tests comparing indexes).
    #[cfg(test)]
    pub fn entries(&self) -> std::collections::BTreeSet<(i64, K)>
    where
        K: Clone,
    {
        match &self.by_time {
            ByTime::Memory(by_time) => by_time
                .iter()
                .flat_map(|(t, keys)| keys.iter().map(|k| (*t, k.clone())))
                .collect(),
            #[cfg(feature = "state-disk")]
            ByTime::Disk(queue) => {
                let mut all = std::collections::BTreeSet::new();
                queue.for_each_timed(|t, k| {
                    all.insert((t, k));
                });
                all
            }
        }
    }

    /// Notes that `key` holds a record expiring at `expiry`.
    pub fn insert(&mut self, expiry: i64, key: K) {
        match &mut self.by_time {
            ByTime::Memory(by_time) => {
                let keys = by_time.entry(expiry).or_default();
                if keys.last() != Some(&key) {
                    keys.push(key);
                    self.held += 1;
                }
                #[cfg(feature = "state-disk")]
                if !self.stay && self.held > crate::keyed::disk::MOVE_TO_DISK_AT {
                    match crate::keyed::disk::Queue::open() {
                        Some(mut queue) => {
                            for (time, keys) in std::mem::take(by_time) {
                                for key in keys {
                                    queue.insert_timed(time, &key);
                                }
                            }
                            self.by_time = ByTime::Disk(Box::new(queue));
                            self.held = 0;
                        }
                        None => self.stay = true,
                    }
                }
            }
            #[cfg(feature = "state-disk")]
            ByTime::Disk(queue) => queue.insert_timed(expiry, &key),
        }
    }

    /// Removes every entry with `expiry < watermark`; returns their keys sorted, without repeats.
    pub fn take_expired(&mut self, watermark: i64) -> Vec<K> {
        let mut keys: Vec<K> = match &mut self.by_time {
            ByTime::Memory(by_time) => {
                if by_time
                    .first_key_value()
                    .is_none_or(|(expiry, _)| *expiry >= watermark)
                {
                    return Vec::new();
                }
                let later = by_time.split_off(&watermark);
                let expired = std::mem::replace(by_time, later);
                let keys: Vec<K> = expired.into_values().flatten().collect();
                self.held -= keys.len();
                keys
            }
            #[cfg(feature = "state-disk")]
            ByTime::Disk(queue) => {
                let mut keys = Vec::new();
                queue.pop_timed_below(watermark, |_, _, key| keys.push(key));
                keys
            }
        };
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// Distinct expiry times indexed (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize
    where
        K: Clone,
    {
        self.entries()
            .iter()
            .map(|(t, _)| *t)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }

    pub fn clear(&mut self) {
        match &mut self.by_time {
            ByTime::Memory(by_time) => by_time.clear(),
            #[cfg(feature = "state-disk")]
            ByTime::Disk(queue) => queue.clear(),
        }
        self.held = 0;
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! A join spec, records and a sink shared by the join operators' tests.

    use std::cell::RefCell;
    use std::fmt::Display;
    use std::rc::Rc;

    use super::{Either, JoinSpec};
    use crate::collector::Collector;

    /// A test record: a key (negative = null), an event time and a name for the output.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Rec {
        pub key: i64,
        pub time: i64,
        pub name: String,
    }

    crate::state_struct!(Rec { key, time, name });

    pub type In = Either<Rec, Rec>;

    pub fn left(key: i64, time: i64, name: &str) -> In {
        Either::Left(Rec {
            key,
            time,
            name: name.to_string(),
        })
    }

    pub fn right(key: i64, time: i64, name: &str) -> In {
        Either::Right(Rec {
            key,
            time,
            name: name.to_string(),
        })
    }

    /// Joins on `key`; a right record whose name starts with `!` fails the extra condition.
    /// Output rows are `"left+right"`, or `"left+null"` for an unmatched left record.
    pub struct Spec;

    impl JoinSpec for Spec {
        type Left = Rec;
        type Right = Rec;
        type Key = i64;
        type Out = String;
        fn left_key(l: &Rec) -> i64 {
            l.key
        }
        fn right_key(r: &Rec) -> i64 {
            r.key
        }
        fn left_time(l: &Rec) -> i64 {
            l.time
        }
        fn right_time(r: &Rec) -> i64 {
            r.time
        }
        fn join(l: &Rec, r: &Rec) -> Option<String> {
            if r.name.starts_with('!') {
                None
            } else {
                Some(format!("{}+{}", l.name, r.name))
            }
        }
        fn left_only(l: &Rec) -> String {
            format!("{}+null", l.name)
        }
        fn is_null_key(key: &i64) -> bool {
            *key < 0
        }
    }

    /// Records rows, watermarks (`wm N`, `wm max`) and the end (`end`), in order.
    #[derive(Clone, Default)]
    pub struct Log(pub Rc<RefCell<Vec<String>>>);

    impl Log {
        /// Everything logged since the last call.
        pub fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.borrow_mut())
        }
    }

    impl<T: Display + ?Sized> Collector<T> for Log {
        fn push(&mut self, record: &T) {
            self.0.borrow_mut().push(record.to_string());
        }
        fn watermark(&mut self, wm: i64) {
            let line = if wm == i64::MAX {
                "wm max".to_string()
            } else {
                format!("wm {wm}")
            };
            self.0.borrow_mut().push(line);
        }
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {
            self.0.borrow_mut().push("end".into());
        }
    }

    /// Records late records by name.
    #[derive(Clone, Default)]
    pub struct LateLog(pub Rc<RefCell<Vec<String>>>);

    impl Collector<In> for LateLog {
        fn push(&mut self, record: &In) {
            let name = match record {
                Either::Left(l) => format!("L {}", l.name),
                Either::Right(r) => format!("R {}", r.name),
            };
            self.0.borrow_mut().push(name);
        }
        fn watermark(&mut self, _wm: i64) {}
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {
            self.0.borrow_mut().push("end".into());
        }
    }

    /// A small deterministic generator for randomized tests (xorshift64*).
    pub struct Rng(pub u64);

    impl Rng {
        pub fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
        }
    }

    /// One step of a test input: a record or a watermark.
    pub enum Step {
        Rec(In),
        Wm(i64),
    }

    /// A random input: keys 0..5 and -1 (null), times advancing with jitter, watermarks trailing
    /// the maximum by 20 every ~10 records, and some very late records. Left names are `l{i}`,
    /// right names `r{i}`; every 7th right record fails the extra condition (`!r{i}`).
    pub fn random_input(seed: u64, n: usize) -> Vec<Step> {
        let mut rng = Rng(seed | 1);
        let mut steps = Vec::new();
        let mut base = 0i64;
        let mut wm = i64::MIN;
        for i in 0..n {
            base += rng.below(4) as i64;
            let jitter = if rng.below(20) == 0 {
                rng.below(120) as i64
            } else {
                rng.below(20) as i64
            };
            let time = base - jitter;
            let key = rng.below(6) as i64 - 1;
            if rng.below(2) == 0 {
                steps.push(Step::Rec(left(key, time, &format!("l{i}"))));
            } else if i % 7 == 0 {
                steps.push(Step::Rec(right(key, time, &format!("!r{i}"))));
            } else {
                steps.push(Step::Rec(right(key, time, &format!("r{i}"))));
            }
            if rng.below(10) == 0 && base - 20 > wm {
                wm = base - 20;
                steps.push(Step::Wm(wm));
            }
        }
        steps.push(Step::Wm(i64::MAX));
        steps
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{left, right, Spec};
    use super::*;

    /// On a run with a disk store, an index moves there once it holds
    /// `MOVE_TO_DISK_AT` entries, with all of them, and expires as an in-memory one does.
    #[cfg(feature = "state-disk")]
    #[test]
    fn a_large_expiry_index_moves_to_the_runs_store() {
        crate::keyed::disk::tests::in_a_run_on_disk(|| {
            let mut index = ExpiryIndex::<i64>::new();
            let mut memory = BTreeMap::<i64, Vec<i64>>::new();
            let n = crate::keyed::disk::MOVE_TO_DISK_AT as i64 + 1_000;
            for i in 0..n {
                index.insert(i / 3, i % 7);
                memory.entry(i / 3).or_default().push(i % 7);
                assert_eq!(
                    matches!(index.by_time, ByTime::Disk(_)),
                    i as usize >= crate::keyed::disk::MOVE_TO_DISK_AT,
                    "entry {i}"
                );
            }
            for w in [10, 50_000, n / 3 + 1] {
                let later = memory.split_off(&w);
                let mut want: Vec<i64> = std::mem::replace(&mut memory, later)
                    .into_values()
                    .flatten()
                    .collect();
                want.sort_unstable();
                want.dedup();
                assert_eq!(index.take_expired(w), want, "watermark {w}");
            }
            assert!(index.entries().is_empty());
        })
    }

    /// An expiry index in the store, past what it holds in memory, saves and loads (in
    /// memory) the same entries, and takes the same keys as an in-memory one.
    #[cfg(feature = "state-disk")]
    #[test]
    fn an_expiry_index_on_disk_saves_loads_and_expires_as_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 1 << 20);
        let mut disk = ExpiryIndex::<i64>::on_disk(&store);
        let mut memory = ExpiryIndex::<i64>::new();
        let mut rng = testing::Rng(7);
        for i in 0..150_000i64 {
            let (time, key) = (i / 50 + rng.below(40) as i64, rng.below(1_000) as i64);
            disk.insert(time, key);
            memory.insert(time, key);
        }
        let mut bytes = Vec::new();
        disk.save(&mut bytes);
        let mut loaded: ExpiryIndex<i64> = State::load(&mut bytes.as_slice()).unwrap();
        assert_eq!(loaded.entries(), memory.entries());
        for w in [5, 900, 2_000, 3_100, i64::MAX] {
            let want = memory.take_expired(w);
            assert_eq!(disk.take_expired(w), want, "watermark {w}");
            assert_eq!(loaded.take_expired(w), want, "watermark {w}, loaded");
        }
    }

    #[test]
    fn both_sides_route_a_key_to_the_same_instance() {
        for key in 0..100 {
            let l = route_by_key::<Spec>(&left(key, 0, "a"));
            let r = route_by_key::<Spec>(&right(key, 99, "b"));
            assert_eq!(l, r);
            assert_eq!(l, route(&key));
        }
    }

    #[test]
    fn the_expiry_index_hands_out_keys_strictly_below_the_watermark_once() {
        let mut index = ExpiryIndex::new();
        index.insert(10, 3);
        index.insert(10, 3);
        index.insert(10, 1);
        index.insert(5, 3);
        index.insert(11, 2);
        assert_eq!(index.take_expired(5), Vec::<i64>::new()); // 5 < 5 is false
        assert_eq!(index.take_expired(6), vec![3]);
        assert_eq!(index.take_expired(10), Vec::<i64>::new());
        assert_eq!(index.take_expired(11), vec![1, 3]);
        assert_eq!(index.len(), 1);
        assert_eq!(index.take_expired(11), Vec::<i64>::new());
        assert_eq!(index.take_expired(i64::MAX), vec![2]);
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn mostly_empty_state_is_shrunk() {
        let mut map: FastMap<i64, i64> = FastMap::default();
        for i in 0..1000 {
            map.insert(i, i);
        }
        for i in 0..990 {
            map.remove(&i);
        }
        shrink_map(&mut map);
        assert!(map.capacity() < 100, "capacity {}", map.capacity());
        let mut sides: Sides<i64, i64> = Sides::new();
        for t in 0..1000 {
            sides.left.push(Held {
                time: t,
                matched: false,
                record: t,
            });
        }
        sides.left.truncate(3);
        sides.compact();
        assert!(sides.left.capacity() < 16);
    }
}
