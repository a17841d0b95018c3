//! Window join: pairs with equal keys in the same tumbling event-time window.
//!
//! Both sides are assigned to the window `[floor(t / size) * size, +size)` of their event time
//! (epoch-aligned, [`floor_to`]). A left and a right record match when they are in the same
//! window, their keys are equal and not null ([`JoinSpec::is_null_key`]), and
//! [`JoinSpec::join`] accepts the pair.
//!
//! # Emission
//!
//! Nothing is emitted on arrival. When the watermark `w` reaches a window's end (`end <= w`) the
//! window fires, before the watermark is forwarded: windows in ascending order, keys ascending,
//! then left records in arrival order and, for each, right records in arrival order. With
//! `left_outer`, a left record none of whose pairs matched emits `left_only` in its place in that
//! order (after its would-be pairs). `finish` fires every window still open.
//!
//! # State and cleanup
//!
//! Per window, per key, the records of both sides in arrival order; a firing window is removed
//! whole, so state holds only windows that have not fired. Null-key right records are never
//! stored (they cannot match); null-key left records are stored only for `left_outer` (they fire
//! as `left_only`). [`WindowJoin::state_size`] counts the buffered records.
//!
//! With `--state disk` the records are lists of the process's LSM store, per window, key and
//! side (`window_join/disk.rs`), and only their counts stay in memory; a checkpoint writes
//! them in the in-memory format, so it restores on either backend. Checkpoints are always
//! full: the state is bounded by the open windows.
//!
//! # Lateness
//!
//! A record whose window has already fired (`end <= w` on arrival) is late: counted in `late`,
//! handed to the late output if there is one, else dropped. A record below the watermark whose
//! window is still open is not late: it still joins completely.
//!
//! # Output watermark
//!
//! The watermark is forwarded unchanged, after the windows it fires. So rows fired by `w` come
//! from records with times below `w` (but at or above the window start, which is at or above
//! `window end - size`); the window end, or `end - 1`, is a valid event time for the output (it
//! is above every previously forwarded watermark), a record's own time is not. The window of a
//! pair is `floor_to(S::left_time(l), size)`; `join` can compute it if the output needs it.

use std::collections::BTreeMap;

use crate::checkpoint::{snapshot, Snapshot, StateSlot};
use crate::collector::{Collector, Discard};
use crate::functions::floor_to;
use crate::hash::FastMap;
use crate::metrics::{OpCounters, OpMetrics};
use crate::state::{State, StateError};

use super::join::{emit, Either, JoinSpec};

#[cfg(feature = "state-disk")]
mod disk;

/// The records of one key in one window, each side in arrival order.
struct Group<L, R> {
    left: Vec<L>,
    right: Vec<R>,
}

impl<L: State, R: State> State for Group<L, R> {
    fn save(&self, out: &mut Vec<u8>) {
        self.left.save(out);
        self.right.save(out);
    }
    fn load(input: &mut &[u8]) -> Result<Self, StateError> {
        Ok(Group {
            left: State::load(input)?,
            right: State::load(input)?,
        })
    }
}

/// The groups of one window, by key.
type Groups<S> =
    FastMap<<S as JoinSpec>::Key, Group<<S as JoinSpec>::Left, <S as JoinSpec>::Right>>;

pub struct WindowJoin<S: JoinSpec, N, D = Discard> {
    size_ms: i64,
    left_outer: bool,
    /// Window start -> key -> records. Ordered by window so firing walks a prefix.
    windows: BTreeMap<i64, Groups<S>>,
    /// Records buffered, both sides.
    buffered: usize,
    watermark: i64,
    finished: bool,
    next: N,
    late: D,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
    /// With `--state disk`: the records, in the LSM store (`windows` stays empty).
    #[cfg(feature = "state-disk")]
    disk: Option<disk::OnDisk<S::Key>>,
}

impl<S: JoinSpec, N: Collector<S::Out>> WindowJoin<S, N, Discard> {
    /// Joins within tumbling windows of `size_ms` (at least 1).
    pub fn new(metrics: OpMetrics, size_ms: i64, left_outer: bool, next: N) -> Self {
        Self::with_late_output(metrics, size_ms, left_outer, next, Discard)
    }
}

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    WindowJoin<S, N, D>
{
    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): groups (a
    /// key in a window) with records held, the windows' tables and the records held.
    fn measure_state(&mut self, force: bool) {
        use crate::metrics::{entries_bytes, table_bytes};
        if self.stats.state.due(force) {
            let (mut keys, mut bytes) = (0, 0);
            for groups in self.windows.values() {
                keys += groups.len();
                bytes += table_bytes(groups);
            }
            let record = entries_bytes::<S::Left>(1).max(entries_bytes::<S::Right>(1));
            self.stats.state.set(keys, bytes + self.buffered * record);
        }
    }

    /// Like [`WindowJoin::new`], with late records sent to `late` instead of being dropped.
    pub fn with_late_output(
        metrics: OpMetrics,
        size_ms: i64,
        left_outer: bool,
        next: N,
        late: D,
    ) -> Self {
        WindowJoin {
            size_ms: size_ms.max(1),
            left_outer,
            windows: BTreeMap::new(),
            buffered: 0,
            watermark: i64::MIN,
            finished: false,
            next,
            late,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
            #[cfg(feature = "state-disk")]
            disk: disk::OnDisk::open(),
        }
    }

    /// Records buffered on both sides (for tests and metrics).
    pub fn state_size(&self) -> usize {
        self.buffered
    }

    /// The start of the open window holding `time`, or `None` if that window has fired (or
    /// starts below `i64::MIN`, which times within the accepted ranges never do). The end
    /// saturates: it is only compared with watermarks, which that compares exactly.
    #[inline]
    fn open_window(&self, time: i64) -> Option<i64> {
        let start = floor_to(time, self.size_ms)?;
        (start.saturating_add(self.size_ms) > self.watermark).then_some(start)
    }

    fn group(&mut self, start: i64, key: S::Key) -> &mut Group<S::Left, S::Right> {
        self.buffered += 1;
        self.windows
            .entry(start)
            .or_default()
            .entry(key)
            .or_insert_with(|| Group {
                left: Vec::new(),
                right: Vec::new(),
            })
    }

    /// One left record (what `push(&Either::Left(l))` does).
    pub fn push_left(&mut self, l: &S::Left) {
        if self.finished {
            return;
        }
        self.stats.records_in += 1;
        let Some(start) = self.open_window(S::left_time(l)) else {
            self.stats.late += 1;
            self.late.push(&Either::Left(l.clone()));
            return;
        };
        let key = S::left_key(l);
        if S::is_null_key(&key) && !self.left_outer {
            return;
        }
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            self.buffered += 1;
            return disk.push(start, key, disk::LEFT, l);
        }
        self.group(start, key).left.push(l.clone());
    }

    /// One right record (what `push(&Either::Right(r))` does).
    pub fn push_right(&mut self, r: &S::Right) {
        if self.finished {
            return;
        }
        self.stats.records_in += 1;
        let Some(start) = self.open_window(S::right_time(r)) else {
            self.stats.late += 1;
            self.late.push(&Either::Right(r.clone()));
            return;
        };
        let key = S::right_key(r);
        if S::is_null_key(&key) {
            return;
        }
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            self.buffered += 1;
            return disk.push(start, key, disk::RIGHT, r);
        }
        self.group(start, key).right.push(r.clone());
    }

    /// Fires, in order, every window whose end is at or below `watermark`.
    fn fire_until(&mut self, watermark: i64) {
        let (size, outer) = (self.size_ms, self.left_outer);
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            while let Some(start) = disk.first() {
                if start.saturating_add(size) > watermark {
                    break;
                }
                let (next, stats) = (&mut self.next, &mut self.stats);
                self.buffered -= disk.fire_first(!outer, |lefts, rights| {
                    fire_group::<S, N>(lefts, rights, outer, next, stats)
                });
            }
            return;
        }
        while let Some(entry) = self.windows.first_entry() {
            if entry.key().saturating_add(size) > watermark {
                break;
            }
            let mut groups: Vec<_> = entry.remove().into_iter().collect();
            groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (_, group) in &groups {
                self.buffered -= group.left.len() + group.right.len();
                if group.right.is_empty() && !outer {
                    continue;
                }
                let (next, stats) = (&mut self.next, &mut self.stats);
                fire_group::<S, N>(&group.left, &group.right, outer, next, stats);
            }
        }
    }
}

/// Emits the rows of one key in a firing window: for each left record in arrival order, its
/// pairs with the right records in arrival order, or with `outer` its `left_only` row when
/// none matched.
fn fire_group<S: JoinSpec, N: Collector<S::Out>>(
    lefts: &[S::Left],
    rights: &[S::Right],
    outer: bool,
    next: &mut N,
    stats: &mut OpCounters,
) {
    for l in lefts {
        let mut matched = false;
        for r in rights {
            if let Some(out) = S::join(l, r) {
                matched = true;
                emit(next, stats, &out);
            }
        }
        if outer && !matched {
            emit(next, stats, &S::left_only(l));
        }
    }
}

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    Collector<Either<S::Left, S::Right>> for WindowJoin<S, N, D>
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
        self.fire_until(watermark);
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
        self.late.watermark(watermark);
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.measure_state(true);
        snapshot(self, &self.slot, checkpoint);
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
        if !crate::stop::stopped_early() {
            self.fire_until(i64::MAX);
        }
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            disk.clear();
        }
        self.measure_state(true);
        self.metrics.report(&self.stats);
        self.next.finish();
        self.late.finish();
    }
}

impl<S: JoinSpec, N, D> Snapshot for WindowJoin<S, N, D> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }

    fn save_state(&self, out: &mut Vec<u8>) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.disk {
            disk.save(out);
        } else {
            self.windows.save(out);
        }
        #[cfg(not(feature = "state-disk"))]
        self.windows.save(out);
        self.buffered.save(out);
        self.watermark.save(out);
    }

    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), StateError> {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            disk.load::<S::Left, S::Right>(input)?;
        } else {
            self.windows = State::load(input)?;
        }
        #[cfg(not(feature = "state-disk"))]
        {
            self.windows = State::load(input)?;
        }
        self.buffered = State::load(input)?;
        self.watermark = State::load(input)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::ops::join::testing::{left, random_input, right, In, LateLog, Log, Spec, Step};

    fn op(size: i64, outer: bool) -> (WindowJoin<Spec, Log>, Log, Metrics) {
        let log = Log::default();
        let metrics = Metrics::new();
        let op = WindowJoin::new(metrics.op("join"), size, outer, log.clone());
        (op, log, metrics)
    }

    fn feed(op: &mut impl Collector<In>, records: &[In]) {
        for r in records {
            op.push(r);
        }
    }

    #[test]
    fn pairs_in_the_same_window_fire_when_the_watermark_reaches_its_end() {
        for rights_first in [false, true] {
            let (mut j, log, _) = op(10, false);
            let l = [left(1, 3, "a"), left(1, 10, "c")];
            let r = [right(1, 9, "b"), right(1, 19, "d"), right(1, 20, "e")];
            if rights_first {
                feed(&mut j, &r);
                feed(&mut j, &l);
            } else {
                feed(&mut j, &l);
                feed(&mut j, &r);
            }
            assert!(log.take().is_empty()); // nothing on arrival
            j.watermark(9);
            assert_eq!(log.take(), ["wm 9"]);
            j.watermark(10); // [0, 10) fires
            assert_eq!(log.take(), ["a+b", "wm 10"]);
            j.watermark(25); // [10, 20) fires; [20, 30) is open
            assert_eq!(log.take(), ["c+d", "wm 25"]);
            j.finish();
            assert_eq!(log.take(), ["end"]);
        }
    }

    #[test]
    fn output_is_ordered_by_window_then_key_then_left_then_right_arrival() {
        let (mut j, log, _) = op(10, false);
        feed(
            &mut j,
            &[
                right(2, 15, "r2w10"),
                left(2, 5, "l2a"),
                right(2, 1, "r2a"),
                left(1, 12, "l1w10"),
                left(2, 6, "l2b"),
                right(1, 11, "r1w10"),
                right(2, 2, "r2b"),
                left(2, 14, "l2w10"),
                right(1, 3, "r1a"),
                left(1, 4, "l1a"),
            ],
        );
        j.watermark(i64::MAX);
        assert_eq!(
            log.take(),
            [
                "l1a+r1a",
                "l2a+r2a",
                "l2a+r2b",
                "l2b+r2a",
                "l2b+r2b",
                "l1w10+r1w10",
                "l2w10+r2w10",
                "wm max",
            ]
        );
    }

    #[test]
    fn windows_are_epoch_aligned_for_negative_times() {
        let (mut j, log, _) = op(10, false);
        feed(
            &mut j,
            &[
                left(1, -1, "a"),
                right(1, -10, "b"),
                right(1, 0, "c"),
                left(1, -11, "d"),
            ],
        );
        j.watermark(0);
        assert_eq!(log.take(), ["a+b", "wm 0"]); // [-10, 0); d is in [-20, -10) alone
        j.finish();
        assert_eq!(log.take(), ["end"]);
    }

    #[test]
    fn duplicates_give_the_cross_product() {
        let (mut j, log, _) = op(100, false);
        feed(
            &mut j,
            &[
                left(1, 1, "a"),
                right(1, 2, "x"),
                left(1, 1, "a"),
                right(1, 3, "y"),
                right(1, 2, "x"),
            ],
        );
        j.finish();
        assert_eq!(
            log.take(),
            ["a+x", "a+y", "a+x", "a+x", "a+y", "a+x", "end"]
        );
    }

    #[test]
    fn left_outer_emits_left_only_once_in_place_for_unmatched_left_records() {
        let (mut j, log, metrics) = op(10, true);
        feed(
            &mut j,
            &[
                left(1, 1, "a"),
                left(2, 2, "lonely"),
                left(1, 3, "b"),
                right(1, 4, "x"),
                right(1, 5, "!refused"),
                left(3, 6, "refused_only"),
                right(3, 7, "!no"),
                left(-1, 8, "null"),
                right(-1, 8, "null_r"),
                left(1, 15, "next_window"),
            ],
        );
        assert_eq!(j.state_size(), 9); // the null-key right record is not stored
        j.watermark(10);
        assert_eq!(
            log.take(),
            [
                "null+null",
                "a+x",
                "b+x",
                "lonely+null",
                "refused_only+null",
                "wm 10"
            ]
        );
        j.watermark(20);
        j.watermark(30);
        j.finish();
        assert_eq!(log.take(), ["next_window+null", "wm 20", "wm 30", "end"]);
        let stats = &metrics.ops()[0].1;
        assert_eq!(
            (stats.records_in, stats.records_out, stats.late),
            (10, 6, 0)
        );
    }

    #[test]
    fn records_for_a_fired_window_are_late_but_an_open_window_accepts_old_times() {
        let late = LateLog::default();
        let log = Log::default();
        let metrics = Metrics::new();
        let mut j = WindowJoin::<Spec, _, _>::with_late_output(
            metrics.op("join"),
            10,
            true,
            log.clone(),
            late.clone(),
        );
        j.push(&left(1, 5, "a"));
        j.watermark(10); // [0, 10) fires: a+null
        j.watermark(15);
        j.push(&right(1, 6, "late_r")); // [0, 10) has fired
        j.push(&left(1, 9, "late_l"));
        j.push(&left(1, 12, "b")); // 12 < 15, but [10, 20) is open
        j.push(&right(1, 19, "c"));
        j.finish();
        assert_eq!(log.take(), ["a+null", "wm 10", "wm 15", "b+c", "end"]);
        assert_eq!(*late.0.borrow(), ["R late_r", "L late_l", "end"]);
        let stats = &metrics.ops()[0].1;
        assert_eq!((stats.records_in, stats.records_out, stats.late), (5, 2, 2));
    }

    #[test]
    fn fired_windows_free_their_state() {
        let (mut j, log, _) = op(10, false);
        for t in 0..100 {
            j.push(&left(t % 7, t, "l"));
            j.push(&right(t % 5 + 100, t, "r")); // never matches
        }
        assert_eq!(j.state_size(), 200);
        assert_eq!(j.windows.len(), 10);
        j.watermark(50);
        assert_eq!(j.state_size(), 100);
        assert_eq!(j.windows.len(), 5);
        j.watermark(100);
        assert_eq!(j.state_size(), 0);
        assert!(j.windows.is_empty());
        assert_eq!(log.take(), ["wm 50", "wm 100"]);
    }

    #[test]
    fn nothing_is_emitted_after_finish() {
        let (mut j, log, _) = op(10, true);
        j.push(&left(1, 5, "a"));
        j.finish();
        j.push(&left(1, 6, "b"));
        j.push(&right(1, 6, "c"));
        j.watermark(100);
        j.finish();
        assert_eq!(log.take(), ["a+null", "end"]);
        assert_eq!(j.state_size(), 0);
    }

    #[test]
    fn matches_a_brute_force_oracle_on_random_input() {
        for seed in 1..6u64 {
            let input = random_input(seed, 2000);
            for size in [1, 7, 30] {
                for outer in [false, true] {
                    check_against_oracle(&input, size, outer);
                }
            }
        }
    }

    fn check_against_oracle(input: &[Step], size: i64, outer: bool) {
        let (mut j, log, metrics) = op(size, outer);
        let (mut lefts, mut rights) = (Vec::new(), Vec::new());
        let mut wm = i64::MIN;
        let mut late = 0;
        for step in input {
            match step {
                Step::Rec(rec) => {
                    let (Either::Left(x) | Either::Right(x)) = rec;
                    if floor_to(x.time, size).unwrap() + size <= wm {
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
        }
        j.finish();
        // Window, key, left arrival, right arrival: the exact order.
        let mut want: Vec<(i64, i64, usize, String)> = Vec::new();
        for (i, l) in lefts.iter().enumerate() {
            let window = floor_to(l.time, size).unwrap();
            let mut matched = false;
            for r in &rights {
                if l.key >= 0 && l.key == r.key && floor_to(r.time, size).unwrap() == window {
                    if let Some(out) = Spec::join(l, r) {
                        matched = true;
                        want.push((window, l.key, i, out));
                    }
                }
            }
            if outer && !matched {
                want.push((window, l.key, i, Spec::left_only(l)));
            }
        }
        want.sort_by_key(|(window, key, i, _)| (*window, *key, *i)); // stable: rights in order
        let want: Vec<String> = want.into_iter().map(|w| w.3).collect();
        let got: Vec<String> = log
            .take()
            .into_iter()
            .filter(|row| !row.starts_with("wm ") && row != "end")
            .collect();
        assert!(
            late > 0 && !want.is_empty(),
            "the input should exercise the join"
        );
        assert_eq!(got, want, "size {size} outer {outer}");
        let stats = &metrics.ops()[0].1;
        assert_eq!(stats.late, late);
        assert_eq!(stats.records_out, want.len() as u64);
        assert_eq!(j.state_size(), 0);
    }

    /// On disk (with a cache so small that most lists are written and read back), the rows
    /// of the in-memory join in the same order; and a checkpoint taken halfway on either
    /// backend, restored on the other, resumes to the same rows.
    #[cfg(feature = "state-disk")]
    #[test]
    fn on_disk_gives_the_in_memory_rows_and_checkpoints_cross_backends() {
        use crate::keyed::disk::Lists;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 1 << 12);
        let on = || disk::OnDisk::with(Lists::on(store.clone()));
        let feed_steps = |j: &mut WindowJoin<Spec, Log>, steps: &[Step]| {
            for step in steps {
                match step {
                    Step::Rec(rec) => j.push(rec),
                    Step::Wm(w) => j.watermark(*w),
                }
            }
        };
        for seed in 1..4u64 {
            let input = random_input(seed, 2000);
            for size in [1, 7, 30] {
                for outer in [false, true] {
                    let what = format!("seed {seed} size {size} outer {outer}");
                    let (mut memory, log, _) = op(size, outer);
                    memory.disk = None;
                    feed_steps(&mut memory, &input);
                    memory.finish();
                    let want = log.take();
                    assert!(want.len() > 50, "{what}");
                    let (mut j, log, _) = op(size, outer);
                    j.disk = on();
                    feed_steps(&mut j, &input);
                    j.finish();
                    assert_eq!(log.take(), want, "{what}");
                    assert_eq!(j.state_size(), 0);
                    for (from_disk, to_disk) in [(true, false), (false, true), (true, true)] {
                        let (mut a, log_a, _) = op(size, outer);
                        a.disk = if from_disk { on() } else { None };
                        let (first, rest) = input.split_at(input.len() / 2);
                        feed_steps(&mut a, first);
                        let mut bytes = Vec::new();
                        a.save_state(&mut bytes);
                        let (mut b, log_b, _) = op(size, outer);
                        b.disk = if to_disk { on() } else { None };
                        b.load_state(&mut &bytes[..]).unwrap();
                        assert_eq!(b.state_size(), a.state_size());
                        feed_steps(&mut b, rest);
                        b.finish();
                        let mut got = log_a.take();
                        got.extend(log_b.take());
                        assert_eq!(got, want, "{what} from disk {from_disk} to {to_disk}");
                    }
                }
            }
        }
    }
}
