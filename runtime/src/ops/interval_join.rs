//! Interval join: pairs with equal keys whose event times are close.
//!
//! A left record `l` and a right record `r` match when their keys are equal, the key is not null
//! ([`JoinSpec::is_null_key`]), `lt + lower <= rt <= lt + upper` (both bounds inclusive, `lower`
//! may be negative; `lt`, `rt` are their event times) and [`JoinSpec::join`] accepts the pair.
//! A match is emitted as soon as the second record of the pair arrives, whichever side that is:
//! an arriving record probes the other side's buffered records of its key in their arrival order.
//!
//! # State and cleanup
//!
//! Per key, the records of each side in arrival order. On watermark `w` (no later record has
//! a time below `w`), a record is dropped once no future record can match it:
//!
//! - a left record when `lt + upper < w`: a future right record has `rt >= w > lt + upper`;
//! - a right record when `rt - lower < w`: a future left record has `lt >= w > rt - lower`, so
//!   `lt + lower > rt`.
//!
//! Both conditions are tight: a record with `lt + upper >= w` can still match a right record at
//! `rt = max(w, lt + lower)`, and symmetrically. An arriving record that already satisfies its
//! drop condition (possible when both bounds are negative, or both positive) probes but is not
//! stored. Only keys with expiring records are visited (an expiry index), a key with no records
//! left is removed, and [`IntervalJoin::state_size`] counts the buffered records.
//!
//! # Lateness
//!
//! A record with `t < w` (it breaks the watermark's promise) is late: counted in `late`, handed
//! to the late output if there is one, and otherwise ignored (it neither probes nor is stored).
//! The cleanup rule makes this exactly the set of records whose partners may already be gone: a
//! left record's candidate partners have `rt >= lt + lower`, and right records with
//! `rt < w + lower` are the dropped ones, so some candidate may be missing iff `lt < w`; the same
//! holds for right records. Dropping them keeps the result exact: the output is precisely every
//! matching pair of on-time records, however records and watermarks interleave.
//!
//! # Left outer
//!
//! With `left_outer`, a left record that was never part of a match emits `left_only` exactly
//! once, when it is dropped: at the watermark that drops it (rows ordered by left time, then key,
//! then arrival), on arrival if it is not stored (null key, or dead on arrival), or at `finish`
//! for whatever is still buffered. A late left record emits nothing.
//!
//! # Output watermark
//!
//! The operator forwards `w - max(upper, -lower, 0)` (`i64::MAX` as is), not `w`: after it has
//! forwarded `W`, every row it emits comes from records whose left time and right time are both
//! `>= W`. A completed pair has `rt >= w` and `lt >= rt - upper`, or `lt >= w` and
//! `rt >= lt + lower`; a `left_only` row has `lt + upper >= w` of the previous watermark. So the
//! code generator may use the left time, the right time or their maximum as the output's event
//! time, and downstream windows see no late rows.
//!
//! # Disk and incremental checkpoints
//!
//! The records are kept as the regular join keeps them (`ops::join::records`): in a hash map,
//! or with `--state disk` in the process's LSM store, where a probe skips the records outside
//! the interval before it decodes them. A checkpoint writes them in one format either way, and
//! with incremental checkpoints a delta writes only the keys that changed since the last
//! checkpoint (a key that lost records to the watermark is written whole). The expiry indexes
//! are not in deltas: a restore that applied some builds them again from the records.

use crate::checkpoint::{snapshot_incremental, Snapshot, StateSlot};
use crate::collector::{Collector, Discard};
use crate::metrics::{OpCounters, OpMetrics};

use super::join::records::{note_changed, records_snapshot, Records};
use super::join::{emit, shrink_map, Either, ExpiryIndex, Held, JoinSpec, Sides};

#[cfg(feature = "state-disk")]
mod disk;

pub struct IntervalJoin<S: JoinSpec, N, D = Discard> {
    lower: i64,
    upper: i64,
    /// How far the forwarded watermark trails the input's: `max(upper, -lower, 0)`.
    delay: i64,
    left_outer: bool,
    /// Each key's records, in memory or on disk.
    records: Records<S>,
    /// Left records expire at `lt + upper`, right records at `rt - lower` (saturating: exact for
    /// the `expiry < w` test since `w` is an `i64` too).
    left_expiry: ExpiryIndex<S::Key>,
    right_expiry: ExpiryIndex<S::Key>,
    /// Records buffered, both sides.
    buffered: usize,
    /// The input watermark.
    watermark: i64,
    /// The last watermark sent on.
    forwarded: i64,
    finished: bool,
    next: N,
    late: D,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<S: JoinSpec, N: Collector<S::Out>> IntervalJoin<S, N, Discard> {
    /// Joins pairs with `lt + lower_ms <= rt <= lt + upper_ms`. If `lower_ms > upper_ms` no
    /// pair matches (every left record is unmatched).
    pub fn new(
        metrics: OpMetrics,
        lower_ms: i64,
        upper_ms: i64,
        left_outer: bool,
        next: N,
    ) -> Self {
        Self::with_late_output(metrics, lower_ms, upper_ms, left_outer, next, Discard)
    }
}

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    IntervalJoin<S, N, D>
{
    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): keys with
    /// records held, the table of keys and the records held.
    fn measure_state(&mut self, force: bool) {
        use crate::metrics::{entries_bytes, table_bytes};
        if self.stats.state.due(force) {
            let record = entries_bytes::<Held<S::Left>>(1).max(entries_bytes::<Held<S::Right>>(1));
            let bytes = table_bytes(&self.records.map) + self.buffered * record;
            self.stats.state.set(self.records.map.len(), bytes);
        }
    }

    /// Like [`IntervalJoin::new`], with late records sent to `late` instead of being dropped.
    pub fn with_late_output(
        metrics: OpMetrics,
        lower_ms: i64,
        upper_ms: i64,
        left_outer: bool,
        next: N,
        late: D,
    ) -> Self {
        IntervalJoin {
            lower: lower_ms,
            upper: upper_ms,
            delay: Self::watermark_delay(lower_ms, upper_ms),
            left_outer,
            records: Records::new(),
            left_expiry: ExpiryIndex::new(),
            right_expiry: ExpiryIndex::new(),
            buffered: 0,
            watermark: i64::MIN,
            forwarded: i64::MIN,
            finished: false,
            next,
            late,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    /// How far the output watermark trails the input watermark: `max(upper, -lower, 0)`.
    pub fn watermark_delay(lower_ms: i64, upper_ms: i64) -> i64 {
        upper_ms
            .max(lower_ms.checked_neg().unwrap_or(i64::MAX))
            .max(0)
    }

    /// Records buffered on both sides (for tests and metrics).
    pub fn state_size(&self) -> usize {
        self.buffered
    }

    /// One left record (what `push(&Either::Left(l))` does).
    pub fn push_left(&mut self, l: &S::Left) {
        if self.finished {
            return;
        }
        self.stats.records_in += 1;
        let time = S::left_time(l);
        if time < self.watermark {
            self.stats.late += 1;
            self.late.push(&Either::Left(l.clone()));
            return;
        }
        let key = S::left_key(l);
        let matched = if S::is_null_key(&key) {
            false
        } else {
            let expiry = time.saturating_add(self.upper);
            let store = expiry >= self.watermark;
            if store {
                self.left_expiry.insert(expiry, key.clone());
                self.buffered += 1;
            }
            #[cfg(feature = "state-disk")]
            if self.records.disk.is_some() {
                let matched = self.push_left_disk(l, &key, time, store);
                if self.left_outer && !matched && !store {
                    emit(&mut self.next, &mut self.stats, &S::left_only(l));
                }
                return;
            }
            if store {
                let sides = self.records.map.entry(key).or_insert_with(Sides::new);
                let matched = probe_rights::<S, N>(
                    l,
                    time,
                    &sides.right,
                    (self.lower, self.upper),
                    &mut self.next,
                    &mut self.stats,
                );
                sides.left.push(Held {
                    time,
                    matched,
                    record: l.clone(),
                });
                note_changed(&mut self.records.changed, sides, || S::left_key(l));
                return;
            }
            // Dead on arrival (upper < 0): it can still match what is buffered.
            match self.records.map.get(&key) {
                Some(sides) => probe_rights::<S, N>(
                    l,
                    time,
                    &sides.right,
                    (self.lower, self.upper),
                    &mut self.next,
                    &mut self.stats,
                ),
                None => false,
            }
        };
        if self.left_outer && !matched {
            emit(&mut self.next, &mut self.stats, &S::left_only(l));
        }
    }

    /// One right record (what `push(&Either::Right(r))` does).
    pub fn push_right(&mut self, r: &S::Right) {
        if self.finished {
            return;
        }
        self.stats.records_in += 1;
        let time = S::right_time(r);
        if time < self.watermark {
            self.stats.late += 1;
            self.late.push(&Either::Right(r.clone()));
            return;
        }
        let key = S::right_key(r);
        if S::is_null_key(&key) {
            return;
        }
        let bounds = (self.lower, self.upper);
        let expiry = time.saturating_sub(self.lower);
        let store = expiry >= self.watermark;
        if store {
            self.right_expiry.insert(expiry, key.clone());
            self.buffered += 1;
        }
        #[cfg(feature = "state-disk")]
        if self.records.disk.is_some() {
            return self.push_right_disk(r, &key, time, store);
        }
        if store {
            let sides = self.records.map.entry(key).or_insert_with(Sides::new);
            let flags = probe_lefts::<S, N>(
                r,
                time,
                (&mut sides.left, sides.saved.left as usize),
                bounds,
                &mut self.next,
                &mut self.stats,
            );
            sides.saved.flags |= flags;
            sides.right.push(Held {
                time,
                matched: false,
                record: r.clone(),
            });
            note_changed(&mut self.records.changed, sides, || S::right_key(r));
        } else if let Some(sides) = self.records.map.get_mut(&key) {
            // Dead on arrival (lower > 0): it can still match what is buffered.
            let flags = probe_lefts::<S, N>(
                r,
                time,
                (&mut sides.left, sides.saved.left as usize),
                bounds,
                &mut self.next,
                &mut self.stats,
            );
            if flags {
                sides.saved.flags = true;
                note_changed(&mut self.records.changed, sides, || S::right_key(r));
            }
        }
    }

    /// Drops what watermark `w` makes unmatchable; emits `left_only` rows for unmatched left
    /// records, ordered by left time, then key, then arrival.
    fn expire(&mut self, w: i64) {
        let (lower, upper, outer) = (self.lower, self.upper, self.left_outer);
        let mut unmatched: Vec<(i64, S::Out)> = Vec::new();
        #[cfg(feature = "state-disk")]
        if self.records.disk.is_some() {
            self.expire_disk(w, &mut unmatched);
            return self.emit_by_time(unmatched);
        }
        let changed = &mut self.records.changed;
        for key in self.left_expiry.take_expired(w) {
            let Some(sides) = self.records.map.get_mut(&key) else {
                continue;
            };
            let before = sides.left.len();
            sides.left.retain(|h| {
                let keep = h.time.saturating_add(upper) >= w;
                if !keep && outer && !h.matched {
                    unmatched.push((h.time, S::left_only(&h.record)));
                }
                keep
            });
            self.buffered -= before - sides.left.len();
            if before > sides.left.len() {
                Records::<S>::rewritten(changed, &key, sides);
            }
            if sides.is_empty() {
                self.records.map.remove(&key);
            } else {
                sides.compact();
            }
        }
        for key in self.right_expiry.take_expired(w) {
            let Some(sides) = self.records.map.get_mut(&key) else {
                continue;
            };
            let before = sides.right.len();
            sides.right.retain(|h| h.time.saturating_sub(lower) >= w);
            self.buffered -= before - sides.right.len();
            if before > sides.right.len() {
                Records::<S>::rewritten(changed, &key, sides);
            }
            if sides.is_empty() {
                self.records.map.remove(&key);
            } else {
                sides.compact();
            }
        }
        shrink_map(&mut self.records.map);
        self.emit_by_time(unmatched);
    }

    /// Emits `left_only` rows gathered by key (in key order), then arrival: a stable sort by
    /// time gives (time, key, arrival).
    fn emit_by_time(&mut self, mut unmatched: Vec<(i64, S::Out)>) {
        unmatched.sort_by_key(|(time, _)| *time);
        for (_, out) in &unmatched {
            emit(&mut self.next, &mut self.stats, out);
        }
    }
}

/// Probes the buffered right records of a key with an arriving left record; true if any pair
/// matched.
fn probe_rights<S: JoinSpec, N: Collector<S::Out>>(
    l: &S::Left,
    lt: i64,
    rights: &[Held<S::Right>],
    bounds: (i64, i64),
    next: &mut N,
    stats: &mut OpCounters,
) -> bool {
    let mut matched = false;
    for h in rights {
        if in_interval(lt, h.time, bounds) {
            if let Some(out) = S::join(l, &h.record) {
                matched = true;
                emit(next, stats, &out);
            }
        }
    }
    matched
}

/// Probes the buffered left records of a key with an arriving right record, marking those that
/// match; true if one of the first `saved` (those the last checkpoint holds) was matched for
/// the first time.
fn probe_lefts<S: JoinSpec, N: Collector<S::Out>>(
    r: &S::Right,
    rt: i64,
    (lefts, saved): (&mut [Held<S::Left>], usize),
    bounds: (i64, i64),
    next: &mut N,
    stats: &mut OpCounters,
) -> bool {
    let mut flags = false;
    for (i, h) in lefts.iter_mut().enumerate() {
        if in_interval(h.time, rt, bounds) {
            if let Some(out) = S::join(&h.record, r) {
                flags |= !h.matched && i < saved;
                h.matched = true;
                emit(next, stats, &out);
            }
        }
    }
    flags
}

/// `lt + lower <= rt <= lt + upper`, without overflow.
#[inline]
fn in_interval(lt: i64, rt: i64, (lower, upper): (i64, i64)) -> bool {
    let d = rt as i128 - lt as i128;
    lower as i128 <= d && d <= upper as i128
}

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    Collector<Either<S::Left, S::Right>> for IntervalJoin<S, N, D>
{
    #[inline]
    fn push(&mut self, record: &Either<S::Left, S::Right>) {
        match record {
            Either::Left(l) => self.push_left(l),
            Either::Right(r) => self.push_right(r),
        }
    }

    fn watermark(&mut self, watermark: i64) {
        if self.finished || watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        self.expire(watermark);
        self.measure_state(watermark == i64::MAX);
        let out = if watermark == i64::MAX {
            watermark
        } else {
            watermark.saturating_sub(self.delay)
        };
        if out > self.forwarded {
            self.forwarded = out;
            self.next.watermark(out);
        }
        self.late.watermark(watermark);
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.measure_state(true);
        snapshot_incremental(self, checkpoint);
        self.next.barrier(checkpoint);
        self.late.barrier(checkpoint);
    }

    fn tick(&mut self) {
        self.measure_state(false);
        self.next.tick();
        self.late.tick();
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        // Unmatched rows are final only at the end of the input, not at a stop.
        if self.left_outer && !crate::stop::stopped_early() {
            let unmatched: Vec<(i64, S::Out)> = self.unmatched_lefts();
            self.emit_by_time(unmatched);
        }
        self.records.clear();
        self.left_expiry.clear();
        self.right_expiry.clear();
        self.buffered = 0;
        self.measure_state(true);
        self.metrics.report(&self.stats);
        self.next.finish();
        self.late.finish();
    }
}

impl<S: JoinSpec, N, D> IntervalJoin<S, N, D> {
    /// Every left record held that never matched, with its `left_only` row, by key, then
    /// arrival.
    fn unmatched_lefts(&self) -> Vec<(i64, S::Out)> {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.records.disk {
            let lefts = disk.unmatched_lefts::<S::Left>().into_iter();
            return lefts
                .map(|(_, h)| (h.time, S::left_only(&h.record)))
                .collect();
        }
        let mut keys: Vec<_> = self.records.map.iter().collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
        keys.iter()
            .flat_map(|(_, sides)| sides.left.iter())
            .filter(|h| !h.matched)
            .map(|h| (h.time, S::left_only(&h.record)))
            .collect()
    }
}

impl<S: JoinSpec, N, D> Snapshot for IntervalJoin<S, N, D> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }

    // A delta: the changed keys, then the count of records and the watermarks.
    records_snapshot!(
        full: left_expiry, right_expiry, buffered, watermark, forwarded;
        delta: buffered, watermark, forwarded
    );

    /// Deltas do not carry the expiry indexes: they are built again from the records.
    fn restored(&mut self, deltas: usize) {
        if deltas == 0 {
            return;
        }
        let (lower, upper) = (self.lower, self.upper);
        let (mut left, mut right) = (Vec::new(), Vec::new());
        self.records.each_time(|key, is_left, time| {
            if is_left {
                left.push((time.saturating_add(upper), key.clone()));
            } else {
                right.push((time.saturating_sub(lower), key.clone()));
            }
        });
        self.left_expiry = ExpiryIndex::from_unsorted(left);
        self.right_expiry = ExpiryIndex::from_unsorted(right);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::ops::join::testing::{left, random_input, right, In, LateLog, Log, Spec, Step};

    fn op(lower: i64, upper: i64, outer: bool) -> (IntervalJoin<Spec, Log>, Log, Metrics) {
        let log = Log::default();
        let metrics = Metrics::new();
        let op = IntervalJoin::new(metrics.op("join"), lower, upper, outer, log.clone());
        (op, log, metrics)
    }

    fn feed(op: &mut impl Collector<In>, records: &[In]) {
        for r in records {
            op.push(r);
        }
    }

    #[test]
    fn a_pair_is_emitted_when_its_second_record_arrives_in_either_order() {
        let (mut j, log, _) = op(-5, 10, false);
        j.push(&left(1, 100, "a"));
        assert!(log.take().is_empty());
        j.push(&right(1, 104, "b"));
        assert_eq!(log.take(), ["a+b"]);
        j.push(&right(2, 100, "c"));
        assert!(log.take().is_empty());
        j.push(&left(2, 98, "d"));
        assert_eq!(log.take(), ["d+c"]);
        j.push(&right(3, 100, "x")); // other keys do not match
        j.push(&left(4, 100, "y"));
        assert!(log.take().is_empty());
    }

    #[test]
    fn both_bounds_are_inclusive_with_a_negative_lower_bound() {
        // lt - 5 <= rt <= lt + 10, left at 100: rights in [95, 110] match.
        let rights = [(94, "r94"), (95, "r95"), (110, "r110"), (111, "r111")];
        let (mut j, log, _) = op(-5, 10, false);
        j.push(&left(1, 100, "l"));
        for (t, name) in rights {
            j.push(&right(1, t, name));
        }
        assert_eq!(log.take(), ["l+r95", "l+r110"]);
        // Rights first: the same pairs.
        let (mut j, log, _) = op(-5, 10, false);
        for (t, name) in rights {
            j.push(&right(1, t, name));
        }
        j.push(&left(1, 100, "l"));
        assert_eq!(log.take(), ["l+r95", "l+r110"]);
    }

    #[test]
    fn bounds_may_both_be_positive_or_both_negative_or_empty() {
        let cases: [(i64, i64, &[&str]); 4] = [
            (2, 5, &["l+r102", "l+r103", "l+r104", "l+r105"]),
            (-5, -2, &["l+r95", "l+r96", "l+r97", "l+r98"]),
            (0, 0, &["l+r100"]),
            (3, 1, &[]),
        ];
        for (lower, upper, want) in cases {
            for rights_first in [false, true] {
                let (mut j, log, _) = op(lower, upper, false);
                let rights: Vec<In> = (94..=106).map(|t| right(1, t, &format!("r{t}"))).collect();
                if !rights_first {
                    j.push(&left(1, 100, "l"));
                }
                feed(&mut j, &rights);
                if rights_first {
                    j.push(&left(1, 100, "l"));
                }
                assert_eq!(
                    log.take(),
                    want,
                    "[{lower}, {upper}] rights first: {rights_first}"
                );
            }
        }
    }

    #[test]
    fn duplicates_on_both_sides_give_the_cross_product_in_arrival_order() {
        let (mut j, log, _) = op(0, 10, false);
        feed(
            &mut j,
            &[
                left(1, 0, "a1"),
                left(1, 1, "a2"),
                right(1, 5, "b1"),
                right(1, 5, "b2"),
                left(1, 2, "a3"),
                right(1, 5, "b1"),
            ],
        );
        assert_eq!(
            log.take(),
            ["a1+b1", "a2+b1", "a1+b2", "a2+b2", "a3+b1", "a3+b2", "a1+b1", "a2+b1", "a3+b1"]
        );
    }

    #[test]
    fn the_extra_condition_filters_pairs() {
        let (mut j, log, _) = op(0, 10, true);
        feed(
            &mut j,
            &[left(1, 0, "a"), right(1, 5, "!no"), right(1, 6, "yes")],
        );
        assert_eq!(log.take(), ["a+yes"]);
        j.finish();
        assert_eq!(log.take(), ["end"]); // a matched: no left_only
    }

    #[test]
    fn a_left_record_is_dropped_exactly_when_no_future_right_can_match() {
        // lower -5, upper 10: left at 100 is kept while 110 >= w.
        let (mut j, log, _) = op(-5, 10, false);
        j.push(&left(1, 100, "l"));
        j.push(&left(1, 99, "k")); // expires at 109: visits the key, where l must stay
        j.watermark(110);
        assert_eq!(j.state_size(), 1);
        j.push(&right(1, 110, "r110")); // on time and still matches
        assert_eq!(log.take(), ["wm 100", "l+r110"]);
        j.watermark(111);
        // The left record is gone; the right one (110 - (-5) = 115 >= 111) stays.
        assert_eq!(j.state_size(), 1);
        j.push(&right(1, 111, "r111"));
        assert_eq!(log.take(), ["wm 101"]);
    }

    #[test]
    fn a_right_record_is_dropped_exactly_when_no_future_left_can_match() {
        // lower 2, upper 5: right at 100 matches lefts in [95, 98]; kept while 98 >= w.
        let (mut j, log, _) = op(2, 5, false);
        j.push(&right(1, 100, "r"));
        j.push(&right(1, 99, "q")); // expires at 97: visits the key, where r must stay
        j.watermark(98);
        assert_eq!(j.state_size(), 1);
        j.push(&left(1, 98, "l98"));
        assert_eq!(log.take(), ["wm 93", "l98+r"]);
        j.watermark(99);
        assert_eq!(j.state_size(), 1); // only l98 (98 + 5 >= 99)
        j.push(&left(1, 99, "l99")); // 99 + 2 > 100: no match anyway
        assert_eq!(log.take(), ["wm 94"]);
    }

    #[test]
    fn records_that_can_never_match_a_future_record_are_not_stored() {
        // Both bounds negative: a left at w expires at w - 3 < w but can match buffered rights.
        let (mut j, log, _) = op(-10, -3, true);
        j.push(&right(1, 92, "r92")); // expires at 102
        j.watermark(100);
        assert_eq!(j.state_size(), 1);
        j.push(&left(1, 100, "l")); // rights in [90, 97]
        j.push(&left(1, 101, "m")); // rights in [91, 98]
        j.push(&left(2, 102, "n")); // rights in [92, 99]: none buffered, and none can come
        assert_eq!(log.take(), ["wm 90", "l+r92", "m+r92", "n+null"]);
        assert_eq!(j.state_size(), 1);
        // Both bounds positive: a right at w expires at w - 2 < w.
        let (mut j, log, _) = op(2, 5, false);
        j.push(&left(1, 97, "l")); // rights in [99, 102], expires at 102
        j.watermark(99);
        j.push(&right(1, 100, "r"));
        assert_eq!(log.take(), ["wm 94", "l+r"]);
        assert_eq!(j.state_size(), 1);
    }

    #[test]
    fn cleanup_frees_state_and_removes_keys() {
        let (mut j, log, _) = op(-5, 10, false);
        for k in 0..100 {
            for t in 0..10 {
                j.push(&left(k, t * 10, "l"));
                j.push(&right(k + 1000, t * 10, "r"));
            }
        }
        assert_eq!(j.state_size(), 2000);
        assert_eq!(j.records.map.len(), 200);
        j.watermark(100); // lefts with t + 10 < 100: t <= 80; rights with t + 5 < 100: t <= 90
        assert_eq!(j.state_size(), 100); // lefts at 90
        assert_eq!(j.records.map.len(), 100);
        j.watermark(101);
        assert_eq!(j.state_size(), 0);
        assert!(j.records.map.is_empty());
        assert!(
            j.records.map.capacity() < 200,
            "capacity {}",
            j.records.map.capacity()
        );
        assert_eq!(j.left_expiry.len(), 0);
        assert_eq!(j.right_expiry.len(), 0);
        assert_eq!(log.take(), ["wm 90", "wm 91"]);
    }

    #[test]
    fn late_records_are_counted_and_dropped_but_a_time_at_the_watermark_is_on_time() {
        let late = LateLog::default();
        let log = Log::default();
        let metrics = Metrics::new();
        let mut j = IntervalJoin::<Spec, _, _>::with_late_output(
            metrics.op("join"),
            -5,
            10,
            true,
            log.clone(),
            late.clone(),
        );
        j.push(&left(1, 100, "a"));
        j.watermark(105);
        j.push(&right(1, 104, "late")); // a is still buffered, but 104 < 105
        j.push(&left(1, 104, "late2"));
        j.push(&right(1, 105, "b"));
        j.finish();
        assert_eq!(log.take(), ["wm 95", "a+b", "end"]);
        assert_eq!(*late.0.borrow(), ["R late", "L late2", "end"]);
        let stats = &metrics.ops()[0].1;
        assert_eq!((stats.records_in, stats.records_out, stats.late), (4, 1, 2));
    }

    #[test]
    fn an_unmatched_left_record_emits_left_only_once_when_it_is_dropped() {
        let (mut j, log, metrics) = op(0, 10, true);
        feed(
            &mut j,
            &[
                left(2, 5, "k2t5"),
                left(1, 5, "k1t5"),
                left(1, 0, "k1t0"),
                left(1, 5, "k1t5b"),
                left(3, 1, "matched"),
                right(3, 11, "r"),
                left(4, 30, "late_to_die"),
            ],
        );
        assert_eq!(log.take(), ["matched+r"]);
        j.watermark(15); // t + 10 < 15: t < 5
        assert_eq!(log.take(), ["k1t0+null", "wm 5"]);
        j.watermark(16); // t = 5 dies: ordered by time, then key, then arrival
        assert_eq!(log.take(), ["k1t5+null", "k1t5b+null", "k2t5+null", "wm 6"]);
        j.watermark(30);
        j.watermark(i64::MAX);
        j.finish();
        assert_eq!(log.take(), ["wm 20", "late_to_die+null", "wm max", "end"]);
        let stats = &metrics.ops()[0].1;
        assert_eq!((stats.records_in, stats.records_out, stats.late), (7, 6, 0));
    }

    #[test]
    fn left_only_rows_of_one_watermark_are_ordered_by_time_then_key_then_arrival() {
        let (mut j, log, _) = op(0, 10, true);
        feed(
            &mut j,
            &[
                left(1, 5, "k1t5"),
                left(2, 3, "k2t3"),
                left(3, 4, "k3t4"),
                left(1, 4, "k1t4"),
                left(1, 4, "k1t4b"),
            ],
        );
        j.watermark(100);
        assert_eq!(
            log.take(),
            [
                "k2t3+null",
                "k1t4+null",
                "k1t4b+null",
                "k3t4+null",
                "k1t5+null",
                "wm 90"
            ]
        );
    }

    #[test]
    fn finish_emits_left_only_for_what_is_still_buffered_then_ends() {
        let (mut j, log, _) = op(0, 10, true);
        feed(
            &mut j,
            &[
                left(2, 7, "b"),
                left(1, 7, "a"),
                left(1, 3, "c"),
                left(-1, 0, "null"),
            ],
        );
        assert_eq!(log.take(), ["null+null"]); // a null key matches nothing, ever
        j.finish();
        assert_eq!(log.take(), ["c+null", "a+null", "b+null", "end"]);
        assert_eq!(j.state_size(), 0);
        // Nothing after the end.
        j.push(&right(1, 7, "r"));
        j.push(&left(1, 7, "d"));
        j.watermark(100);
        j.finish();
        assert!(log.take().is_empty());
    }

    #[test]
    fn null_keys_never_match_and_are_not_stored() {
        let (mut j, log, _) = op(0, 10, false);
        feed(
            &mut j,
            &[left(-1, 0, "a"), right(-1, 0, "b"), left(-1, 0, "c")],
        );
        assert_eq!(j.state_size(), 0);
        j.finish();
        assert_eq!(log.take(), ["end"]);
    }

    #[test]
    fn the_output_watermark_trails_by_the_interval() {
        assert_eq!(IntervalJoin::<Spec, Log>::watermark_delay(-5, 10), 10);
        assert_eq!(IntervalJoin::<Spec, Log>::watermark_delay(-20, 10), 20);
        assert_eq!(IntervalJoin::<Spec, Log>::watermark_delay(2, 5), 5);
        assert_eq!(IntervalJoin::<Spec, Log>::watermark_delay(-5, -2), 5);
        assert_eq!(IntervalJoin::<Spec, Log>::watermark_delay(0, 0), 0);
        assert_eq!(
            IntervalJoin::<Spec, Log>::watermark_delay(i64::MIN, 0),
            i64::MAX
        );
        let (mut j, log, _) = op(-20, 10, false);
        j.watermark(i64::MIN + 5); // saturates to i64::MIN: nothing to forward
        j.watermark(100);
        j.watermark(100);
        j.watermark(90);
        j.watermark(101);
        j.watermark(i64::MAX);
        assert_eq!(log.take(), ["wm 80", "wm 81", "wm max"]);
    }

    #[test]
    fn emission_order_is_deterministic() {
        let input = random_input(7, 3000);
        let run = || {
            let (mut j, log, _) = op(-7, 13, true);
            for step in &input {
                match step {
                    Step::Rec(r) => j.push(r),
                    Step::Wm(w) => j.watermark(*w),
                }
            }
            j.finish();
            log.take()
        };
        let first = run();
        assert!(first.len() > 1000);
        assert_eq!(first, run());
    }

    /// Compares the operator with a brute-force join of the on-time records, and checks that no
    /// row is emitted with a time below the watermark already forwarded.
    #[test]
    fn matches_a_brute_force_oracle_on_random_input() {
        let bounds = [(-7, 13), (0, 0), (3, 9), (-9, -3), (5, 2), (-30, 30)];
        for seed in 1..6u64 {
            let input = random_input(seed, 2000);
            for (lower, upper) in bounds {
                for outer in [false, true] {
                    check_against_oracle(&input, lower, upper, outer);
                }
            }
        }
    }

    fn check_against_oracle(input: &[Step], lower: i64, upper: i64, outer: bool) {
        let (mut j, log, metrics) = op(lower, upper, outer);
        let mut times = std::collections::HashMap::new();
        let (mut lefts, mut rights) = (Vec::new(), Vec::new());
        let mut wm = i64::MIN;
        let mut forwarded = i64::MIN;
        let mut got = Vec::new();
        let mut late = 0;
        for step in input {
            match step {
                Step::Rec(rec) => {
                    let (Either::Left(x) | Either::Right(x)) = rec;
                    times.insert(x.name.clone(), x.time);
                    if x.time < wm {
                        late += 1;
                    } else if matches!(rec, Either::Left(_)) {
                        lefts.push(x.clone());
                    } else {
                        rights.push(x.clone());
                    }
                    j.push(rec);
                }
                Step::Wm(w) => {
                    wm = wm.max(*w);
                    j.watermark(*w);
                }
            }
            check_rows(log.take(), &times, &mut forwarded, &mut got);
        }
        j.finish();
        check_rows(log.take(), &times, &mut forwarded, &mut got);
        let mut want = Vec::new();
        for l in &lefts {
            let mut matched = false;
            for r in &rights {
                if l.key >= 0
                    && l.key == r.key
                    && l.time + lower <= r.time
                    && r.time <= l.time + upper
                {
                    if let Some(out) = Spec::join(l, r) {
                        matched = true;
                        want.push(out);
                    }
                }
            }
            if outer && !matched {
                want.push(Spec::left_only(l));
            }
        }
        assert!(late > 0, "the input should have late records");
        assert!((lower > upper && !outer) || !want.is_empty());
        got.sort();
        want.sort();
        assert_eq!(got, want, "[{lower}, {upper}] outer {outer}");
        assert_eq!(j.state_size(), 0);
        let stats = &metrics.ops()[0].1;
        assert_eq!(stats.late, late);
        assert_eq!(stats.records_out, want.len() as u64);
        assert_eq!(stats.records_in, (lefts.len() + rights.len()) as u64 + late);
    }

    /// Moves the rows of `log` to `got`, checking that each comes from records at or above the
    /// last forwarded watermark.
    fn check_rows(
        log: Vec<String>,
        times: &std::collections::HashMap<String, i64>,
        forwarded: &mut i64,
        got: &mut Vec<String>,
    ) {
        for row in log {
            if let Some(w) = row.strip_prefix("wm ") {
                *forwarded = w.parse().unwrap_or(i64::MAX);
                continue;
            }
            if row == "end" {
                continue;
            }
            let (l, r) = row.split_once('+').unwrap();
            assert!(times[l] >= *forwarded, "{row} below {forwarded}");
            if r != "null" {
                assert!(times[r] >= *forwarded, "{row} below {forwarded}");
            }
            got.push(row);
        }
    }

    fn feed_steps(j: &mut IntervalJoin<Spec, Log>, steps: &[Step]) {
        for step in steps {
            match step {
                Step::Rec(rec) => j.push(rec),
                Step::Wm(w) => j.watermark(*w),
            }
        }
    }

    /// The join's state in a canonical order (from either backend, through a checkpoint):
    /// per key, its records with time and flag, then the counters and watermarks.
    fn canonical(j: &IntervalJoin<Spec, Log>) -> Vec<String> {
        let mut bytes = Vec::new();
        j.save_state(&mut bytes);
        let (mut m, _, _) = op(j.lower, j.upper, j.left_outer);
        m.load_state(&mut &bytes[..]).unwrap();
        let mut keys: Vec<_> = m.records.map.iter().collect();
        keys.sort_unstable_by_key(|(k, _)| **k);
        let mut out: Vec<String> = keys
            .iter()
            .map(|(k, sides)| {
                let side = |held: &[Held<crate::ops::join::testing::Rec>], flags: bool| {
                    held.iter()
                        .map(|h| {
                            let star = if flags && h.matched { "*" } else { "" };
                            format!("{}@{}{star}", h.record.name, h.time)
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                };
                // Only a left outer join keeps its flags on disk.
                let flags = j.left_outer;
                format!(
                    "{k}: [{}] [{}]",
                    side(&sides.left, flags),
                    side(&sides.right, false)
                )
            })
            .collect();
        out.push(format!(
            "buffered {} wm {} fwd {} expiring {:?} {:?}",
            m.buffered,
            m.watermark,
            m.forwarded,
            j.left_expiry.entries(),
            j.right_expiry.entries()
        ));
        out
    }

    /// A chain of a full part and deltas taken along a random input (records come and go
    /// with the watermark, left records get matched later): restoring any prefix of the chain
    /// gives the state the join had there, and the run resumed from it emits what the rest of
    /// a run without checkpoints emits.
    #[test]
    fn a_chain_of_deltas_restores_the_state_it_was_taken_of() {
        chain_of_deltas(&mut |_, _| {}, 1..4);
    }

    /// Deltas hold only the keys that changed: with many keys held and one touched, a delta
    /// is a small part of a full checkpoint.
    #[test]
    fn a_delta_holds_only_what_changed() {
        let (mut j, _, _) = op(-1000, 1000, false);
        j.track_changes();
        for k in 0..10_000 {
            j.push(&left(k, 0, "l"));
        }
        let mut full = Vec::new();
        j.save_state(&mut full);
        j.saved_full();
        j.push(&right(7, 5, "r"));
        let mut delta = Vec::new();
        j.save_delta(&mut delta);
        assert!(
            delta.len() * 100 < full.len(),
            "{} of {}",
            delta.len(),
            full.len()
        );
    }

    /// The chain on disk restored on disk and in memory, and an in-memory chain restored on
    /// disk; and runs on disk give the in-memory rows in the same order.
    #[cfg(feature = "state-disk")]
    #[test]
    fn on_disk_gives_the_in_memory_rows_and_chains_restore_on_either_backend() {
        use crate::keyed::disk::Lists;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 1 << 16);
        let on = || crate::ops::join::disk::OnDisk::with(Lists::on(store.clone()));
        for seed in 1..4u64 {
            let input = random_input(seed, 2000);
            for (lower, upper) in [(-7, 13), (3, 9), (-9, -3), (-30, 30)] {
                for outer in [false, true] {
                    let run = |disk: bool| {
                        let (mut j, log, _) = op(lower, upper, outer);
                        if disk {
                            j.records.disk = on();
                            j.left_expiry = ExpiryIndex::on_disk(&store);
                            j.right_expiry = ExpiryIndex::on_disk(&store);
                        }
                        feed_steps(&mut j, &input);
                        j.finish();
                        assert_eq!(j.state_size(), 0);
                        log.take()
                    };
                    let memory = run(false);
                    assert!(memory.len() > 100);
                    assert_eq!(run(true), memory, "seed {seed} [{lower}, {upper}] {outer}");
                }
            }
        }
        for (a_disk, b_disk) in [(true, true), (true, false), (false, true)] {
            chain_of_deltas(
                &mut |j, restored| {
                    if (restored && b_disk) || (!restored && a_disk) {
                        j.records.disk = on();
                        j.left_expiry = ExpiryIndex::on_disk(&store);
                        j.right_expiry = ExpiryIndex::on_disk(&store);
                    }
                },
                1..3,
            );
        }
    }

    /// Takes a chain along random inputs with the join `backend(j, false)` sets up, and
    /// restores it into joins `backend(j, true)` sets up.
    fn chain_of_deltas(
        backend: &mut dyn FnMut(&mut IntervalJoin<Spec, Log>, bool),
        seeds: std::ops::Range<u64>,
    ) {
        for seed in seeds {
            let input = random_input(seed, 1500);
            // Wide intervals: keys keep their records across checkpoints (deltas carry tails and
            // flags); narrow ones: keys lose records (written whole).
            let bounds = [
                (-7, 13, true),
                (0, 40, false),
                (-9, -3, true),
                (-400, 400, true),
            ];
            for (lower, upper, outer) in bounds {
                let make = || op(lower, upper, outer);
                let (mut whole, whole_log, _) = make();
                feed_steps(&mut whole, &input);
                whole.finish();
                let want = whole_log.take();

                let (mut a, a_log, _) = make();
                backend(&mut a, false);
                a.track_changes();
                // Per checkpoint: where it was cut, its part, the state, the rows out so far.
                type Taken = (usize, Vec<u8>, Vec<String>, Vec<String>);
                let mut chain: Vec<Taken> = Vec::new();
                let mut emitted = Vec::new();
                let mut at = 0;
                for (n, cut) in (1..input.len()).step_by(97).enumerate() {
                    feed_steps(&mut a, &input[at..cut]);
                    at = cut;
                    emitted.extend(a_log.take());
                    let mut bytes = Vec::new();
                    if n == 0 {
                        a.save_state(&mut bytes);
                        a.saved_full();
                    } else {
                        a.save_delta(&mut bytes);
                    }
                    chain.push((cut, bytes, canonical(&a), emitted.clone()));
                }
                for crash in [0, 1, 3, chain.len() / 2, chain.len() - 1] {
                    let (mut b, b_log, _) = make();
                    backend(&mut b, true);
                    b.load_state(&mut &chain[0].1[..]).unwrap();
                    for (_, delta, _, _) in &chain[1..=crash] {
                        let mut input = &delta[..];
                        b.load_delta(&mut input).unwrap();
                        assert!(input.is_empty());
                    }
                    b.restored(crash);
                    let what = format!("seed {seed} [{lower}, {upper}] {outer} crash {crash}");
                    assert_eq!(canonical(&b), chain[crash].2, "{what}");
                    b.track_changes();
                    feed_steps(&mut b, &input[chain[crash].0..]);
                    b.finish();
                    let mut got = chain[crash].3.clone();
                    got.extend(b_log.take());
                    assert_eq!(got, want, "{what}");
                }
            }
        }
    }
}
