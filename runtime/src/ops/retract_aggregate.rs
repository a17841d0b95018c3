//! Unbounded aggregation over an updating stream: accumulators that can take a row back
//! out, so that a revised input row replaces its earlier version. With a TTL a group that
//! sees no change for the TTL is dropped with the input rows it holds.
//!
//! The input rows and the groups are keyed state ([`Keyed`]): in memory, or with `--state
//! disk` spilled to disk past the memory budget; with a TTL, so are the lists of each
//! group's rows that expiry drops with it. With incremental checkpoints a delta writes the
//! rows and groups changed since the last checkpoint ([`Changed`]).

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::checkpoint::{Snapshot, StateSlot};
use crate::collector::Collector;
use crate::hash::FastSet;
use crate::keyed::{Changed, Keyed};
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::change::{Change, FLUSH_EVERY};
use crate::ops::key_ttl::{KeyTtl, Stamp, Written};
use crate::state::{State, StateError};

/// The per-query part of an aggregate over an updating stream: accumulators that can take a
/// row back out (`retract`), so that a revised input row replaces its earlier version.
pub trait RetractAggregate {
    type In: Clone + State;
    /// The input's upsert key (which earlier row a change revises).
    type UpKey: Hash + Eq + Ord + Clone + State;
    /// The group key.
    type Key: Hash + Eq + Ord + Clone + State;
    type Acc: State;
    type Out;
    fn up_key(row: &Self::In) -> Self::UpKey;
    fn key(row: &Self::In) -> Self::Key;
    fn new_acc() -> Self::Acc;
    fn add(acc: &mut Self::Acc, row: &Self::In);
    fn retract(acc: &mut Self::Acc, row: &Self::In);
    /// Rows in the group now (a group with none is deleted).
    fn rows(acc: &Self::Acc) -> i64;
    fn output(key: &Self::Key, acc: &Self::Acc) -> Self::Out;
    /// About how many bytes the accumulator's encoded form has beyond its fixed part, as
    /// [`WindowAggregate::acc_size`](super::WindowAggregate::acc_size).
    fn acc_size(acc: &Self::Acc) -> usize {
        let _ = acc;
        0
    }
}

/// Unbounded aggregation of an updating stream: each change first retracts the previous
/// version of its row (by the input's upsert key) and then adds the new one. Groups that lose
/// their last row are deleted. Runs as one instance, so every version of a row meets its
/// predecessor whatever its group.
///
/// With a TTL ([`KeyTtl`]) a group is written by every change that adds a row to it or takes
/// one out, at the watermark of its arrival (the rows of an updating stream carry no event
/// time), or at the wall clock on processing time. An expired group is dropped silently with
/// its input rows, so a later revision of one of them enters as a new row and a delete of
/// one is ignored. `T` is what each group keeps beside its accumulator for a TTL: nothing, or
/// its last change once built [`with_ttl`](Self::with_ttl).
pub struct RetractAggregateOp<A: RetractAggregate, N, T: Stamp = ()> {
    /// The current version of every input row, by its upsert key.
    previous: Keyed<A::UpKey, A::In>,
    groups: Keyed<A::Key, (A::Acc, T)>,
    dirty: BTreeMap<A::Key, ()>,
    ttl: Option<GroupTtl<A>>,
    /// With incremental checkpoints: the rows and the groups changed since the last one.
    changed_rows: Changed<A::UpKey>,
    changed_groups: Changed<A::Key>,
    /// The last watermark (the time of writes on event time).
    watermark: i64,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<A: RetractAggregate, N: Collector<Change<A::Out>>> RetractAggregateOp<A, N> {
    pub fn new(metrics: OpMetrics, next: N) -> Self {
        RetractAggregateOp {
            previous: Keyed::new(),
            groups: Keyed::new(),
            dirty: BTreeMap::new(),
            ttl: None,
            changed_rows: Changed::default(),
            changed_groups: Changed::default(),
            watermark: i64::MIN,
            next,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    crate::ops::key_ttl::ttl_builders!(RetractAggregateOp<A, N, Written>);

    /// The operator with `times`, each group keeping its last change (built before any state:
    /// `with_state` comes after).
    fn stamped(self, times: KeyTtl<A::Key>) -> RetractAggregateOp<A, N, Written> {
        debug_assert!(self.groups.is_empty(), "a TTL is set before any state");
        RetractAggregateOp {
            previous: self.previous,
            groups: Keyed::new(),
            dirty: self.dirty,
            ttl: Some(GroupTtl::new(times)),
            changed_rows: self.changed_rows,
            changed_groups: Changed::default(),
            watermark: self.watermark,
            next: self.next,
            stats: self.stats,
            metrics: self.metrics,
            slot: self.slot,
        }
    }
}

impl<A: RetractAggregate, N: Collector<Change<A::Out>>, T: Stamp> RetractAggregateOp<A, N, T> {
    /// Groups held, and input rows held.
    pub fn state_size(&self) -> (usize, usize) {
        (self.groups.len(), self.previous.len())
    }

    /// Takes the earlier version `old` of a row out of its group; `returns`: the new version
    /// goes back into the same group, so the group's members stay as they are. Whether the
    /// group was there.
    fn take_back(&mut self, old: &A::In, returns: bool) -> bool {
        let key = A::key(old);
        let held = match self.groups.get_mut(&key) {
            Some((acc, stamp)) => {
                // Taking a row out shrinks the accumulator, if anything: its weight stays.
                A::retract(acc, old);
                self.changed_groups.note(&key);
                if let Some(ttl) = &mut self.ttl {
                    ttl.times.write_now(&key, self.watermark, stamp);
                    if !returns {
                        ttl.leave(&key, &A::up_key(old));
                    }
                }
                true
            }
            None => false,
        };
        self.dirty.insert(key, ());
        held
    }

    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): groups, and
    /// the groups' and the input rows' tables with the TTL's bookkeeping.
    fn measure_state(&mut self, force: bool) {
        if self.stats.state.due(force) {
            let ttl = self.ttl.as_ref().map_or(0, |t| {
                let member = std::mem::size_of::<A::UpKey>();
                t.times.approx_bytes() + t.members.memory_bytes(|set| set.len() * member)
            });
            let bytes = self.groups.memory_bytes(|_| 0) + self.previous.memory_bytes(|_| 0) + ttl;
            self.stats.state.set(self.groups.len(), bytes);
        }
    }

    fn expire_by_clock(&mut self) {
        if let Some(ttl) = &mut self.ttl {
            let GroupTtl { times, members } = ttl;
            let mut held = Held::<A> {
                previous: &mut self.previous,
                changed_rows: &mut self.changed_rows,
                changed_groups: &mut self.changed_groups,
            };
            times.tick(&mut self.groups, |key, _| held.drop_group(members, &key));
        }
    }

    fn flush(&mut self) {
        for (key, ()) in std::mem::take(&mut self.dirty) {
            let Some((acc, stamp)) = self.groups.get_mut(&key) else {
                continue;
            };
            let out = A::output(&key, acc);
            self.stats.records_out += 1;
            if A::rows(acc) <= 0 {
                if let Some(ttl) = &mut self.ttl {
                    ttl.times.forget(&key, stamp);
                    ttl.members.remove(&key);
                }
                self.groups.remove(&key);
                self.next.push(&Change::Delete(out));
            } else {
                self.next.push(&Change::Upsert(out));
            }
        }
    }
}

impl<A: RetractAggregate, N: Collector<Change<A::Out>>, T: Stamp> Collector<Change<A::In>>
    for RetractAggregateOp<A, N, T>
{
    fn push(&mut self, change: &Change<A::In>) {
        self.stats.records_in += 1;
        match change {
            Change::Upsert(row) => {
                let up = A::up_key(row);
                self.changed_rows.note(&up);
                let key = A::key(row);
                // A revision within its group (the common case) leaves the members alone.
                let mut stays = false;
                if let Some(old) = self.previous.replace(up, row.clone()) {
                    let same = A::key(&old) == key;
                    stays = self.take_back(&old, same) && same;
                }
                let (ttl, watermark) = (&mut self.ttl, self.watermark);
                self.groups.update(
                    key.clone(),
                    || (A::new_acc(), T::default()),
                    |(acc, _)| A::acc_size(acc),
                    |(acc, stamp)| {
                        A::add(acc, row);
                        if let Some(ttl) = ttl {
                            ttl.times.write_now(&key, watermark, stamp);
                        }
                    },
                );
                self.changed_groups.note(&key);
                if let Some(ttl) = &mut self.ttl {
                    if !stays {
                        ttl.join(&key, A::up_key(row));
                    }
                }
                self.dirty.insert(key, ());
            }
            Change::Delete(row) => {
                let up = A::up_key(row);
                if let Some(old) = self.previous.take(&up) {
                    self.changed_rows.note(&up);
                    self.take_back(&old, false);
                }
            }
        }
        if self.dirty.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
    /// Pending changes go out first, then expired groups are dropped (silently).
    fn watermark(&mut self, watermark: i64) {
        self.flush();
        if let Some(ttl) = &mut self.ttl {
            let GroupTtl { times, members } = ttl;
            if self.watermark == i64::MIN && !times.is_processing_time() {
                let changed = &mut self.changed_groups;
                times.restamp(i64::MIN, watermark, &mut self.groups, |key| {
                    changed.note(key)
                });
            }
            let mut held = Held::<A> {
                previous: &mut self.previous,
                changed_rows: &mut self.changed_rows,
                changed_groups: &mut self.changed_groups,
            };
            times.on_watermark(watermark, &mut self.groups, |key, _| {
                held.drop_group(members, &key)
            });
        }
        self.watermark = self.watermark.max(watermark);
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
    }
    crate::ops::change::flushed_at_barrier_tick_and_finish!();
}

/// A retracting aggregate's TTL: the groups in the order they expire (each group's last
/// change is beside its accumulator), and the input rows each group holds (to drop them with
/// it). The members are keyed state like the rows (spilled past the budget with
/// `--state disk`), but not saved: they follow from the rows.
struct GroupTtl<A: RetractAggregate> {
    times: KeyTtl<A::Key>,
    members: Members<A>,
}

/// The upsert keys of the input rows in each group.
type Members<A> = Keyed<<A as RetractAggregate>::Key, FastSet<<A as RetractAggregate>::UpKey>>;

/// What a member weighs in a group's set, for the disk backend's budget: its in-memory size
/// (a string's 24 bytes, as an aggregate's distinct set counts it).
fn member_set_size<A: RetractAggregate>(set: &FastSet<A::UpKey>) -> usize {
    set.len() * std::mem::size_of::<A::UpKey>()
}

impl<A: RetractAggregate> GroupTtl<A> {
    fn new(times: KeyTtl<A::Key>) -> Self {
        GroupTtl {
            times,
            members: Keyed::new(),
        }
    }

    /// The row `up` joined group `key`.
    fn join(&mut self, key: &A::Key, up: A::UpKey) {
        self.members
            .update(key.clone(), FastSet::default, member_set_size::<A>, |set| {
                set.insert(up);
            });
    }

    /// The row `up` left group `key`.
    fn leave(&mut self, key: &A::Key, up: &A::UpKey) {
        if let Some(set) = self.members.get_mut(key) {
            set.remove(up);
            if set.is_empty() {
                self.members.remove(key);
            } else {
                // As `join` counted it in: rows that move between groups leave the weights
                // as they were.
                self.members.shrank(key, std::mem::size_of::<A::UpKey>());
            }
        }
    }
}

/// The state expiry drops from beside the groups, borrowed beside the TTL.
struct Held<'a, A: RetractAggregate> {
    previous: &'a mut Keyed<A::UpKey, A::In>,
    changed_rows: &'a mut Changed<A::UpKey>,
    changed_groups: &'a mut Changed<A::Key>,
}

impl<A: RetractAggregate> Held<'_, A> {
    /// Drops the input rows of the expired group `key` (gone from the groups).
    fn drop_group(&mut self, members: &mut Members<A>, key: &A::Key) {
        self.changed_groups.note(key);
        for up in members.take(key).unwrap_or_default() {
            self.previous.remove(&up);
            self.changed_rows.note(&up);
        }
    }
}

/// Which input rows each group holds, from the rows.
fn members_of<A: RetractAggregate>(previous: &Keyed<A::UpKey, A::In>) -> Members<A> {
    let mut members = Members::<A>::new();
    previous.for_each(|up, row| {
        members.update(A::key(row), FastSet::default, member_set_size::<A>, |set| {
            set.insert(up.clone());
        });
    });
    members
}

impl<A: RetractAggregate, N, T: Stamp> Snapshot for RetractAggregateOp<A, N, T> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    // The rows, and the groups (with a TTL, each with its last change, then the watermark:
    // the time of the writes that come before the next one).
    fn save_state(&self, out: &mut Vec<u8>) {
        self.previous.save(out);
        self.groups.save(out);
        if self.ttl.is_some() {
            self.watermark.save(out);
        }
    }

    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        self.previous = State::load(input)?;
        self.groups = State::load(input)?;
        if self.ttl.is_some() {
            self.watermark = i64::load(input)?;
        }
        Ok(())
    }

    /// Every change lists the row it revises and the groups it touches, and expiry the group
    /// and rows it drops ([`Changed`]); the groups' section carries their last changes.
    fn track_changes(&mut self) {
        self.changed_rows.track();
        self.changed_groups.track();
    }

    fn delta_ready(&self) -> bool {
        self.changed_rows.ready()
    }

    fn save_delta(&mut self, out: &mut Vec<u8>) {
        self.changed_rows.save(&mut self.previous, out);
        self.changed_groups.save(&mut self.groups, out);
        if self.ttl.is_some() {
            self.watermark.save(out);
        }
    }

    fn saved_full(&mut self) {
        self.changed_rows.clear();
        self.changed_groups.clear();
    }

    fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        Changed::load(&mut self.previous, input, "an aggregate delta's row")?;
        Changed::load(&mut self.groups, input, "an aggregate delta's group")?;
        if self.ttl.is_some() {
            self.watermark = i64::load(input)?;
        }
        Ok(())
    }

    /// Checkpoints carry neither which rows each group holds nor the expiry order: both are
    /// built, from the rows and from the groups' last changes, once the full part and its
    /// deltas are read.
    fn restored(&mut self, _deltas: usize) {
        if let Some(ttl) = self.ttl.as_mut() {
            ttl.members = members_of::<A>(&self.previous);
            ttl.times.rebuild(&self.groups);
        }
    }
}

/// A multiset for `min`/`max` over an updating stream: values with their counts.
pub type Multiset<T> = BTreeMap<T, i64>;

/// A float total that rows are added to and taken back from. Plain `+=`/`-=` loses the
/// small values a large one swamps and never gets them back when the large one leaves
/// (`1e16 + 1 - 1e16` is 0); this keeps the rounding error of every step beside the total
/// (Neumaier's compensated sum), which gives them back. Infinite and NaN values are counted
/// apart, so that taking one back makes the total finite again (with plain sums an
/// `inf - inf` made it NaN for good).
///
/// Finite values too large to add without overflowing (beyond 2^900) go to a second total
/// scaled down by 2^-200 (exact: a power of two), so that a total that overflows while such a
/// value is in it is finite again once it is taken back (`1e308 + 1e308 - 1e308` is
/// `1e308`, where a plain total stays infinite for good). The smaller values cannot overflow
/// their total: that would take 2^123 of them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FloatSum {
    sum: f64,
    compensation: f64,
    /// The values beyond [`LARGE`], times [`SCALE_DOWN`].
    large: f64,
    large_compensation: f64,
    positive_infinities: i64,
    negative_infinities: i64,
    nans: i64,
}

crate::state_struct!(FloatSum {
    sum,
    compensation,
    large,
    large_compensation,
    positive_infinities,
    negative_infinities,
    nans
});

/// Finite values of at least this size go to [`FloatSum`]'s scaled total: 2^900.
const LARGE: f64 = f64::from_bits((1023 + 900) << 52);
/// 2^-200 and 2^200: what scales the large values down, and their total back up.
const SCALE_DOWN: f64 = f64::from_bits((1023 - 200) << 52);
const SCALE_UP: f64 = f64::from_bits((1023 + 200) << 52);

/// Adds `v` to the compensated total `(sum, compensation)` (Neumaier's step). Neither the
/// total nor `v` may be large enough to overflow (see [`FloatSum`]).
#[inline]
fn compensated_add(sum: &mut f64, compensation: &mut f64, v: f64) {
    let t = *sum + v;
    if sum.abs() >= v.abs() {
        *compensation += (*sum - t) + v;
    } else {
        *compensation += (v - t) + *sum;
    }
    *sum = t;
}

impl FloatSum {
    #[inline]
    pub fn add(&mut self, v: f64) {
        self.step(v, 1);
    }

    #[inline]
    pub fn remove(&mut self, v: f64) {
        self.step(-v, -1);
    }

    #[inline]
    fn step(&mut self, v: f64, count: i64) {
        if v.is_nan() {
            self.nans += count;
        } else if v == f64::INFINITY {
            // (A removed -inf arrives here negated, as +inf with count -1.)
            if count > 0 {
                self.positive_infinities += 1;
            } else {
                self.negative_infinities -= 1;
            }
        } else if v == f64::NEG_INFINITY {
            if count > 0 {
                self.negative_infinities += 1;
            } else {
                self.positive_infinities -= 1;
            }
        } else if v.abs() >= LARGE {
            compensated_add(
                &mut self.large,
                &mut self.large_compensation,
                v * SCALE_DOWN,
            );
        } else {
            compensated_add(&mut self.sum, &mut self.compensation, v);
        }
    }

    /// The total: NaN with a NaN in it or infinities of both signs, an infinity with those of
    /// one sign, else the compensated sum of the finite values (an infinity when that is
    /// beyond the range of an f64).
    #[inline]
    pub fn value(&self) -> f64 {
        match (
            self.nans > 0,
            self.positive_infinities > 0,
            self.negative_infinities > 0,
        ) {
            (true, _, _) | (false, true, true) => f64::NAN,
            (false, true, false) => f64::INFINITY,
            (false, false, true) => f64::NEG_INFINITY,
            (false, false, false) => {
                let small = self.sum + self.compensation;
                let large = self.large + self.large_compensation;
                if large == 0.0 {
                    small
                } else {
                    // (An overflow here is one the small values could not undo: they are
                    // far from 2^1024 in all.)
                    large * SCALE_UP + small
                }
            }
        }
    }
}

/// Adds one occurrence of `v`.
pub fn multiset_add<T: Ord>(set: &mut Multiset<T>, v: T) {
    *set.entry(v).or_insert(0) += 1;
}

/// Removes one occurrence of `v` (if present).
pub fn multiset_remove<T: Ord>(set: &mut Multiset<T>, v: &T) {
    if let Some(n) = set.get_mut(v) {
        *n -= 1;
        if *n <= 0 {
            set.remove(v);
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn float_sums_give_back_what_a_large_value_swamped() {
        let mut s = FloatSum::default();
        s.add(1e16);
        s.add(1.0);
        s.remove(1e16);
        s.add(1.0);
        assert_eq!(s.value(), 2.0);
        s.add(f64::INFINITY);
        assert_eq!(s.value(), f64::INFINITY);
        s.add(f64::NEG_INFINITY);
        assert!(s.value().is_nan());
        s.remove(f64::INFINITY);
        assert_eq!(s.value(), f64::NEG_INFINITY);
        s.remove(f64::NEG_INFINITY);
        s.add(f64::NAN);
        assert!(s.value().is_nan());
        s.remove(f64::NAN);
        assert_eq!(s.value(), 2.0);
        // Many small values under a large one, the large one taken back.
        let mut s = FloatSum::default();
        s.add(1e20);
        for _ in 0..1000 {
            s.add(0.1);
        }
        s.remove(1e20);
        assert!((s.value() - 100.0).abs() < 1e-9, "{}", s.value());
    }

    #[test]
    fn float_sums_come_back_from_an_overflow_when_a_value_is_taken_back() {
        let mut s = FloatSum::default();
        s.add(1e308);
        s.add(1e308);
        // Beyond the range: the caller makes it null.
        assert_eq!(s.value(), f64::INFINITY);
        s.remove(1e308);
        assert_eq!(s.value(), 1e308);
        s.add(-1.5e308);
        s.add(2.5);
        assert_eq!(s.value(), -0.5e308 + 2.5);
        s.remove(1e308);
        s.remove(-1.5e308);
        assert_eq!(s.value(), 2.5);
        // Small values beside a large one, which leaves.
        let mut s = FloatSum::default();
        s.add(f64::MAX);
        s.add(3.0);
        s.add(-f64::MAX);
        assert_eq!(s.value(), 3.0);
        s.add(-f64::MAX);
        s.add(-f64::MAX);
        assert_eq!(s.value(), f64::NEG_INFINITY);
        s.remove(-f64::MAX);
        s.remove(-f64::MAX);
        assert_eq!(s.value(), 3.0);
        // The threshold and the scaling are the powers of two they say.
        assert_eq!(LARGE, 2f64.powi(900));
        assert_eq!(SCALE_DOWN * SCALE_UP, 1.0);
        assert_eq!(SCALE_UP, 2f64.powi(200));
    }

    use super::tests_support::*;
    use super::*;
    use crate::metrics::Metrics;

    #[test]
    fn with_a_ttl_a_quiet_group_is_dropped_with_its_rows() {
        let log = Log::default();
        let metrics = Metrics::new();
        let mut op = RetractAggregateOp::<Sum, _>::new(metrics.op("sum"), log.clone()).with_ttl(10);
        op.push(&Change::Upsert((1, 7, 5))); // before any watermark: stamped at the first
        op.push(&Change::Upsert((2, 8, 1)));
        op.watermark(100); // group 7 and 8 written at 100
        op.push(&Change::Upsert((3, 8, 2))); // group 8 written at 100 again
        op.watermark(105);
        op.push(&Change::Upsert((4, 8, 3))); // group 8 written at 105
        op.watermark(111); // group 7 (100 + 10 < 111) expires with row 1; 8 lives
        assert_eq!(op.state_size(), (1, 3));
        // A revision of the expired row enters as a new row; a delete of one is ignored.
        op.push(&Change::Upsert((1, 7, 6)));
        op.push(&Change::Delete((1, 7, 6)));
        op.push(&Change::Upsert((1, 7, 9)));
        op.watermark(112);
        // Saved and restored, the last writes still expire the groups.
        let mut bytes = Vec::new();
        op.save_state(&mut bytes);
        let mut restored =
            RetractAggregateOp::<Sum, _>::new(metrics.op("sum"), log.clone()).with_ttl(10);
        restored.load_state(&mut bytes.as_slice()).unwrap();
        restored.restored(0);
        assert_eq!(restored.state_size(), (2, 4));
        restored.watermark(116); // group 8 (last write 105) expires
        assert_eq!(restored.state_size(), (1, 1));
        restored.push(&Change::Upsert((2, 8, 4))); // group 8 starts afresh
        restored.finish();
        assert_eq!(
            *log.0.borrow(),
            vec![
                Change::Upsert((7, 1, 5)),
                Change::Upsert((8, 1, 1)),
                Change::Upsert((8, 2, 3)),
                Change::Upsert((8, 3, 6)),
                // Row 1's delete took the fresh group 7 back to no rows (deleted), then 9.
                Change::Upsert((7, 1, 9)),
                Change::Upsert((8, 1, 4)),
            ]
        );
    }

    #[test]
    fn without_a_ttl_a_revision_replaces_its_row() {
        let log = Log::default();
        let metrics = Metrics::new();
        let mut op = RetractAggregateOp::<Sum, _>::new(metrics.op("sum"), log.clone());
        op.push(&Change::Upsert((1, 7, 5)));
        op.watermark(100);
        op.watermark(1_000);
        op.push(&Change::Upsert((1, 7, 6)));
        op.finish();
        assert_eq!(
            *log.0.borrow(),
            vec![Change::Upsert((7, 1, 5)), Change::Upsert((7, 1, 6))]
        );
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// (id, group, value): rows per group and their sum, upsert key id.
    pub struct Sum;
    impl RetractAggregate for Sum {
        type In = (i64, i64, i64);
        type UpKey = i64;
        type Key = i64;
        type Acc = (i64, i64);
        type Out = (i64, i64, i64); // group, rows, sum
        fn up_key(r: &Self::In) -> i64 {
            r.0
        }
        fn key(r: &Self::In) -> i64 {
            r.1
        }
        fn new_acc() -> (i64, i64) {
            (0, 0)
        }
        fn add(acc: &mut (i64, i64), r: &Self::In) {
            acc.0 += 1;
            acc.1 += r.2;
        }
        fn retract(acc: &mut (i64, i64), r: &Self::In) {
            acc.0 -= 1;
            acc.1 -= r.2;
        }
        fn rows(acc: &(i64, i64)) -> i64 {
            acc.0
        }
        fn output(key: &i64, acc: &(i64, i64)) -> Self::Out {
            (*key, acc.0, acc.1)
        }
    }

    pub type Row = (i64, i64, i64);
    #[derive(Clone, Default)]
    pub struct Log(pub Rc<RefCell<Vec<Change<Row>>>>);
    impl Collector<Change<(i64, i64, i64)>> for Log {
        fn push(&mut self, c: &Change<(i64, i64, i64)>) {
            self.0.borrow_mut().push(c.clone());
        }
        fn watermark(&mut self, _: i64) {}
        fn barrier(&mut self, _: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }
}

#[cfg(test)]
mod delta_tests {
    use super::tests_support::*;
    use super::*;
    use crate::metrics::Metrics;

    type Op<T = ()> = RetractAggregateOp<Sum, Log, T>;
    /// Rows, groups, and with a TTL each group's last change and the rows it holds.
    type Held = (
        Vec<(i64, Row)>,
        Vec<(i64, (i64, i64))>,
        Vec<(i64, i64)>,
        Vec<(i64, Vec<i64>)>,
    );

    fn held<T: Stamp>(op: &Op<T>) -> Held {
        let mut rows = Vec::new();
        op.previous.for_each(|k, v| rows.push((*k, *v)));
        rows.sort();
        let (mut groups, mut times) = (Vec::new(), Vec::new());
        op.groups.for_each(|k, (acc, stamp)| {
            groups.push((*k, *acc));
            times.extend(stamp.get().map(|w| (*k, w.last())));
        });
        groups.sort();
        times.sort();
        let mut members = Vec::new();
        if let Some(ttl) = &op.ttl {
            ttl.members.for_each(|k, ups| {
                let mut ups: Vec<i64> = ups.iter().copied().collect();
                ups.sort();
                members.push((*k, ups));
            });
        }
        members.sort();
        (rows, groups, times, members)
    }

    /// Upserts that revise rows into other groups, and deletes, over ids and groups that
    /// drift, so that with a TTL old groups expire with their rows. The first round has no
    /// watermark: its groups, which no later round touches, are stamped at the second's.
    fn round<T: Stamp>(op: &mut Op<T>, round: i64) {
        for i in 0..40i64 {
            let (id, group) = match round {
                // Rows and groups no later round touches: they expire from their stamp.
                0 => (1000 + (i * 13) % 30, 100 + i % 3),
                _ => (round * 10 + (i * 13) % 30, (i * 13) % 7 + round / 3 * 7),
            };
            if i % 7 == 3 {
                op.push(&Change::Delete((id, group, 0)));
            } else {
                op.push(&Change::Upsert((id, group, i - round)));
            }
        }
        if round > 0 {
            op.watermark(round * 100);
        }
    }

    /// With a TTL, each group lists exactly the rows in it (revisions within a group leave
    /// the list alone, moves and deletes change it).
    fn members_follow_rows<T: Stamp>(op: &Op<T>) {
        let (rows, _, _, members) = held(op);
        if op.ttl.is_some() {
            let mut want: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
            for (up, row) in rows {
                want.entry(row.1).or_default().push(up);
            }
            assert_eq!(members, want.into_iter().collect::<Vec<_>>());
        }
    }

    fn chain_of_deltas<T: Stamp>(make: &dyn Fn() -> Op<T>, backend: &dyn Fn(Op<T>) -> Op<T>) {
        let held = |op: &mut Op<T>| held(op);
        let step = |op: &mut Op<T>, r: i64| {
            round(op, r);
            members_follow_rows(op);
        };
        let (op, seen, _) =
            crate::keyed::check_chain(make, backend, 16, &step, &held, &[0, 1, 6, 15]);
        if op.ttl.is_some() {
            let groups = |h: &Held| h.1.len();
            assert!(groups(&seen[15]) < 20, "nothing expired: {:?}", seen[15].1);
        }
    }

    fn plain() -> Op {
        RetractAggregateOp::new(Metrics::new().op("sum"), Log::default())
    }

    fn with_ttl() -> Op<Written> {
        plain().with_ttl(250)
    }

    /// A full part and deltas restore, at every point, the rows, groups and last changes the
    /// operator held.
    #[test]
    fn a_chain_of_deltas_restores_the_rows_and_groups_held() {
        chain_of_deltas(&plain, &|op| op);
        chain_of_deltas(&with_ttl, &|op| op);
    }

    /// The same with every row and group spilled to disk, and the same changes out.
    #[cfg(feature = "state-disk")]
    #[test]
    fn on_disk_the_changes_and_the_deltas_are_those_of_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 64);
        fn on_disk<T: Stamp>(
            store: &std::sync::Arc<crate::keyed::disk::Store>,
        ) -> impl Fn(Op<T>) -> Op<T> + '_ {
            |mut op: Op<T>| {
                op.previous = Keyed::spilled_to(store);
                op.groups = Keyed::spilled_to(store);
                if let Some(ttl) = &mut op.ttl {
                    ttl.members = Keyed::spilled_to(store);
                }
                op
            }
        }
        chain_of_deltas(&plain, &on_disk(&store));
        chain_of_deltas(&with_ttl, &on_disk(&store));
        fn same_changes<T: Stamp>(make: fn() -> Op<T>, on_disk: &dyn Fn(Op<T>) -> Op<T>) {
            let (mut memory, mut disk) = (make(), on_disk(make()));
            let (a, b) = (memory.next.clone(), disk.next.clone());
            for r in 0..16 {
                round(&mut memory, r);
                round(&mut disk, r);
                members_follow_rows(&memory);
                members_follow_rows(&disk);
            }
            memory.finish();
            disk.finish();
            assert_eq!(held(&memory), held(&disk));
            assert!(a.0.borrow().len() > 100);
            assert_eq!(*a.0.borrow(), *b.0.borrow());
        }
        same_changes(plain, &on_disk(&store));
        same_changes(with_ttl, &on_disk(&store));
    }
}
