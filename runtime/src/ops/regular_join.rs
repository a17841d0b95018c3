//! Regular join: an unbounded inner equi-join of two insert-only streams.
//!
//! A left and a right record match when their keys are equal and not null
//! ([`JoinSpec::is_null_key`]) and [`JoinSpec::join`] accepts the pair. Every arriving record
//! probes the other side's stored records of its key, emits every match immediately (the
//! partners in their arrival order, `join` always called as `(left, right)`), and is then stored.
//! Each pair is therefore emitted exactly once, when its second record arrives, whatever the
//! arrival order. The output is insert-only; there is no outer variant (it would have to retract
//! its `left_only` rows when a match arrives later).
//!
//! # State, TTL and lateness
//!
//! Without a TTL every record is kept until `finish`, nothing is late and event time plays no
//! part: the result is the full join of everything received.
//!
//! With a TTL, state expires in event time: on watermark `w`, records with `t + ttl < w` are
//! removed from both sides (only the keys with expiring records are visited; a key with no
//! records left is removed). An arriving record with `t + ttl < w` would be expired at once: it
//! is late, counted in `late`, handed to the late output if any, else dropped (it does not
//! probe). So with a TTL a pair is emitted iff, when the later of the two arrives, both satisfy
//! `t + ttl >= w` for the watermark `w` of that moment. A negative TTL counts as 0.
//!
//! On processing time ([`RegularJoin::on_processing_time`], `ttl(1h, time: processing)`) a
//! record's time is the wall clock when it arrived, and records expire on the runtime's ticks
//! once the wall clock passes that plus the TTL; nothing is late, and watermarks (if the
//! streams have any) expire nothing.
//! [`RegularJoin::state_size`] counts the stored records.
//!
//! With `--state disk` the records are kept in the process's LSM store instead of a hash map,
//! in lists per key and side (`ops::join::disk`); a checkpoint writes them in the hash map's
//! format, so it restores on either backend.
//!
//! # Incremental checkpoints
//!
//! With incremental checkpoints on (the default), a checkpoint may write only the keys that
//! changed since the last one ([`Snapshot::save_delta`]), in the format both joins share
//! (`ops::join::records`): the records added at the end of each side and the `matched` flags
//! set, or the key whole when it is new or lost records to the TTL, or a tombstone when it
//! is gone. Its expiry index is not in deltas: a restore that applied some builds it again
//! from the records.
//!
//! # Output watermark
//!
//! The watermark is forwarded unchanged. A row may come from records of any age (without a TTL)
//! or down to `w - ttl` (with one), so the output has no event time a downstream window could
//! rely on; the code generator should treat it as not time-ordered.

use crate::checkpoint::{Snapshot, StateSlot};
use crate::collector::{Collector, Discard};
use crate::hash::FastMap;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::window_aggregate::now_ms;

use super::join::records::{note_changed, records_snapshot, Records};
use super::join::{emit, shrink_map, Either, ExpiryIndex, Held, JoinSpec, Sides};
use crate::checkpoint::snapshot_incremental;

#[cfg(feature = "state-disk")]
mod disk;

pub struct RegularJoin<S: JoinSpec, N, D = Discard> {
    ttl: Option<i64>,
    /// The TTL counts on the wall clock since arrival.
    processing: bool,
    /// Each key's records, in memory or on disk.
    records: Records<S>,
    /// With a TTL: records of both sides expire at `t + ttl` (saturating).
    expiry: ExpiryIndex<S::Key>,
    /// Records stored, both sides.
    buffered: usize,
    watermark: i64,
    finished: bool,
    next: N,
    late: D,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
    /// Left outer: a left record that never matched is emitted with a null right side when it
    /// expires (its `ttl` passed), or at the end of input.
    left_outer: bool,
}

impl<S: JoinSpec, N: Collector<S::Out>> RegularJoin<S, N, Discard> {
    /// An inner join keeping state forever (`ttl_ms: None`) or while `t + ttl >= watermark`.
    pub fn new(metrics: OpMetrics, ttl_ms: Option<i64>, next: N) -> Self {
        Self::with_late_output(metrics, ttl_ms, next, Discard)
    }
}

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    RegularJoin<S, N, D>
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

    /// Like [`RegularJoin::new`], with late records sent to `late` instead of being dropped.
    pub fn with_late_output(metrics: OpMetrics, ttl_ms: Option<i64>, next: N, late: D) -> Self {
        RegularJoin {
            ttl: ttl_ms.map(|ttl| ttl.max(0)),
            processing: false,
            records: Records::new(),
            expiry: ExpiryIndex::new(),
            buffered: 0,
            watermark: i64::MIN,
            finished: false,
            next,
            late,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
            left_outer: false,
        }
    }

    /// Left outer join: unmatched left records are emitted (right side null) when they
    /// expire or at the end of input. The output stays append-only: a left record's row
    /// with nulls comes only once no match can arrive any more.
    pub fn left_outer(mut self) -> Self {
        self.left_outer = true;
        self
    }

    /// The TTL counts on the wall clock since each record arrived, checked at every tick.
    pub fn on_processing_time(mut self) -> Self {
        self.processing = true;
        self
    }

    /// A record's time for its TTL: its event time `time`, or on processing time the wall
    /// clock now.
    #[inline]
    fn stored_time(&self, time: i64) -> i64 {
        if self.processing {
            now_ms()
        } else {
            time
        }
    }

    /// Records stored on both sides (for tests and metrics).
    pub fn state_size(&self) -> usize {
        self.buffered
    }

    /// With a TTL, when a record of time `time` expires; `None` if it is expired already.
    /// Without a TTL, `Some(i64::MAX)`: never.
    #[inline]
    fn expiry_of(&self, time: i64) -> Option<i64> {
        match self.ttl {
            None => Some(i64::MAX),
            Some(ttl) => {
                let expiry = time.saturating_add(ttl);
                (self.processing || expiry >= self.watermark).then_some(expiry)
            }
        }
    }

    /// Counts a record about to be stored under `key` and notes when it expires.
    fn note_stored(&mut self, key: &S::Key, expiry: i64) {
        if self.ttl.is_some() {
            self.expiry.insert(expiry, key.clone());
        }
        self.buffered += 1;
    }

    /// One left record (what `push(&Either::Left(l))` does).
    pub fn push_left(&mut self, l: &S::Left) {
        if self.finished {
            return;
        }
        self.stats.records_in += 1;
        let time = self.stored_time(S::left_time(l));
        let Some(expiry) = self.expiry_of(time) else {
            self.stats.late += 1;
            self.late.push(&Either::Left(l.clone()));
            return;
        };
        let key = S::left_key(l);
        if S::is_null_key(&key) {
            return;
        }
        self.note_stored(&key, expiry);
        #[cfg(feature = "state-disk")]
        if self.records.disk.is_some() {
            return self.push_left_disk(l, &key, time);
        }
        let sides = self.records.map.entry(key).or_insert_with(Sides::new);
        let mut matched = false;
        for h in &sides.right {
            if let Some(out) = S::join(l, &h.record) {
                matched = true;
                emit(&mut self.next, &mut self.stats, &out);
            }
        }
        sides.left.push(Held {
            time,
            matched,
            record: l.clone(),
        });
        note_changed(&mut self.records.changed, sides, || S::left_key(l));
    }

    /// One right record (what `push(&Either::Right(r))` does).
    pub fn push_right(&mut self, r: &S::Right) {
        if self.finished {
            return;
        }
        self.stats.records_in += 1;
        let time = self.stored_time(S::right_time(r));
        let Some(expiry) = self.expiry_of(time) else {
            self.stats.late += 1;
            self.late.push(&Either::Right(r.clone()));
            return;
        };
        let key = S::right_key(r);
        if S::is_null_key(&key) {
            return;
        }
        self.note_stored(&key, expiry);
        #[cfg(feature = "state-disk")]
        if self.records.disk.is_some() {
            return self.push_right_disk(r, &key, time);
        }
        let sides = self.records.map.entry(key).or_insert_with(Sides::new);
        let saved_left = sides.saved.left as usize;
        let mut flags = false;
        for (i, h) in sides.left.iter_mut().enumerate() {
            if let Some(out) = S::join(&h.record, r) {
                flags |= !h.matched && i < saved_left;
                h.matched = true;
                emit(&mut self.next, &mut self.stats, &out);
            }
        }
        sides.saved.flags |= flags;
        sides.right.push(Held {
            time,
            matched: false,
            record: r.clone(),
        });
        note_changed(&mut self.records.changed, sides, || S::right_key(r));
    }

    /// Removes the records with `t + ttl < w`.
    fn expire(&mut self, ttl: i64, w: i64) {
        #[cfg(feature = "state-disk")]
        if self.records.disk.is_some() {
            return self.expire_disk(ttl, w);
        }
        let alive = |time: i64| time.saturating_add(ttl) >= w;
        for key in self.expiry.take_expired(w) {
            let Some(sides) = self.records.map.get_mut(&key) else {
                continue;
            };
            let before = sides.left.len() + sides.right.len();
            if self.left_outer {
                for h in sides.left.iter().filter(|h| !alive(h.time) && !h.matched) {
                    emit(&mut self.next, &mut self.stats, &S::left_only(&h.record));
                }
            }
            sides.left.retain(|h| alive(h.time));
            sides.right.retain(|h| alive(h.time));
            let removed = before - (sides.left.len() + sides.right.len());
            self.buffered -= removed;
            if removed > 0 {
                Records::<S>::rewritten(&mut self.records.changed, &key, sides);
            }
            if sides.is_empty() {
                self.records.map.remove(&key);
            } else {
                sides.compact();
            }
        }
        shrink_map(&mut self.records.map);
    }
}

impl<S: JoinSpec, N: Collector<S::Out>, D: Collector<Either<S::Left, S::Right>>>
    Collector<Either<S::Left, S::Right>> for RegularJoin<S, N, D>
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
        if let Some(ttl) = self.ttl.filter(|_| !self.processing) {
            self.expire(ttl, watermark);
        }
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
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
        if let Some(ttl) = self.ttl.filter(|_| self.processing && !self.finished) {
            self.expire(ttl, now_ms());
        }
        self.next.tick();
        self.late.tick();
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        // Unmatched rows are final only at the end of the input, not at a stop.
        #[cfg(feature = "state-disk")]
        if self.records.disk.is_some() {
            self.finish_disk();
        }
        if self.left_outer && !crate::stop::stopped_early() {
            // Every left record still held that never matched, by key, then arrival.
            let mut keys: Vec<_> = self.records.map.iter().collect();
            keys.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let unmatched: Vec<S::Out> = keys
                .iter()
                .flat_map(|(_, sides)| sides.left.iter())
                .filter(|h| !h.matched)
                .map(|h| S::left_only(&h.record))
                .collect();
            for out in &unmatched {
                emit(&mut self.next, &mut self.stats, out);
            }
        }
        self.records.map = FastMap::default();
        self.expiry.clear();
        self.buffered = 0;
        self.measure_state(true);
        self.metrics.report(&self.stats);
        self.next.finish();
        self.late.finish();
    }
}

impl<S: JoinSpec, N, D> Snapshot for RegularJoin<S, N, D> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    // A delta: the changed keys, then the count of records and the watermark.
    records_snapshot!(full: expiry, buffered, watermark; delta: buffered, watermark);

    /// Deltas do not carry the expiry index: it is built again from the records.
    fn restored(&mut self, deltas: usize) {
        let Some(ttl) = self.ttl.filter(|_| deltas > 0) else {
            return;
        };
        let mut entries = Vec::new();
        self.records
            .each_time(|key, _, time| entries.push((time.saturating_add(ttl), key.clone())));
        self.expiry = ExpiryIndex::from_unsorted(entries);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::ops::join::testing::{left, random_input, right, In, LateLog, Log, Spec, Step};

    fn op(ttl: Option<i64>) -> (RegularJoin<Spec, Log>, Log, Metrics) {
        let log = Log::default();
        let metrics = Metrics::new();
        let op = RegularJoin::new(metrics.op("join"), ttl, log.clone());
        (op, log, metrics)
    }

    fn feed(op: &mut impl Collector<In>, records: &[In]) {
        for r in records {
            op.push(r);
        }
    }

    #[test]
    fn left_outer_emits_unmatched_left_rows_when_they_expire_or_at_the_end() {
        let (j, log, _) = op(Some(10));
        let mut j = j.left_outer();
        feed(
            &mut j,
            &[
                left(1, 100, "a"), // matched below
                left(2, 100, "b"), // never matched: out when it expires
                left(3, 100, "c"), // only a refused candidate: still unmatched
                right(1, 105, "x"),
                right(3, 105, "!y"),
                left(4, 200, "d"),  // never matched, still held at the end
                left(-1, 200, "n"), // a null key matches nothing and is never stored
            ],
        );
        assert_eq!(log.take(), ["a+x"]);
        j.watermark(111); // 100 + 10 < 111: a, b, c expire
        assert_eq!(log.take(), ["b+null", "c+null", "wm 111"]);
        j.watermark(i64::MAX);
        j.finish();
        // d expired at the final watermark; nothing is emitted twice.
        assert_eq!(log.take(), ["d+null", "wm max", "end"]);
    }

    #[test]
    fn left_outer_without_ttl_emits_unmatched_rows_at_the_end() {
        let (j, log, _) = op(None);
        let mut j = j.left_outer();
        feed(
            &mut j,
            &[left(2, 1, "b"), left(1, 1, "a"), right(1, 2, "x")],
        );
        j.watermark(i64::MAX);
        j.finish();
        assert_eq!(log.take(), ["a+x", "wm max", "b+null", "end"]);
    }

    #[test]
    fn matches_are_emitted_on_arrival_in_either_order() {
        let (mut j, log, _) = op(None);
        j.push(&left(1, 0, "a"));
        assert!(log.take().is_empty());
        j.push(&right(1, 1_000_000, "b")); // times do not matter
        assert_eq!(log.take(), ["a+b"]);
        j.push(&right(2, 5, "c"));
        j.push(&left(2, -5, "d"));
        assert_eq!(log.take(), ["d+c"]);
        j.push(&left(3, 0, "e"));
        j.push(&right(4, 0, "f"));
        assert!(log.take().is_empty());
        assert_eq!(j.state_size(), 6);
    }

    #[test]
    fn duplicates_give_the_cross_product_in_arrival_order() {
        let (mut j, log, metrics) = op(None);
        feed(
            &mut j,
            &[
                left(1, 0, "a1"),
                left(1, 0, "a2"),
                right(1, 0, "b1"),
                right(1, 0, "!no"),
                right(1, 0, "b1"),
                left(1, 0, "a3"),
            ],
        );
        j.finish();
        assert_eq!(
            log.take(),
            ["a1+b1", "a2+b1", "a1+b1", "a2+b1", "a3+b1", "a3+b1", "end"]
        );
        let stats = &metrics.ops()[0].1;
        assert_eq!((stats.records_in, stats.records_out, stats.late), (6, 6, 0));
    }

    #[test]
    fn without_a_ttl_nothing_expires_and_nothing_is_late() {
        let (mut j, log, metrics) = op(None);
        j.push(&left(1, 0, "a"));
        j.watermark(1_000);
        j.push(&right(1, 10, "b")); // far below the watermark: still joins
        j.watermark(i64::MAX);
        assert_eq!(j.state_size(), 2);
        j.finish();
        assert_eq!(log.take(), ["wm 1000", "a+b", "wm max", "end"]);
        assert_eq!(j.state_size(), 0);
        assert_eq!(metrics.ops()[0].1.late, 0);
    }

    #[test]
    fn with_a_ttl_records_expire_when_time_plus_ttl_falls_below_the_watermark() {
        let (mut j, log, _) = op(Some(10));
        j.push(&left(1, 100, "a"));
        j.push(&right(2, 105, "x"));
        j.watermark(110); // 100 + 10 >= 110: kept
        assert_eq!(j.state_size(), 2);
        j.push(&right(1, 200, "b"));
        assert_eq!(log.take(), ["wm 110", "a+b"]);
        j.watermark(111); // a expires; x (115) stays
        assert_eq!(j.state_size(), 2);
        j.push(&right(1, 201, "c"));
        assert_eq!(log.take(), ["wm 111"]);
        j.watermark(i64::MAX);
        assert_eq!(j.state_size(), 0);
        assert!(j.records.map.is_empty());
        assert_eq!(j.expiry.len(), 0);
    }

    #[test]
    fn with_a_ttl_expired_arrivals_are_late() {
        let late = LateLog::default();
        let log = Log::default();
        let metrics = Metrics::new();
        let mut j = RegularJoin::<Spec, _, _>::with_late_output(
            metrics.op("join"),
            Some(10),
            log.clone(),
            late.clone(),
        );
        j.push(&left(1, 100, "a"));
        j.watermark(105);
        j.push(&right(1, 94, "late")); // 94 + 10 < 105
        j.push(&right(1, 95, "b")); // 95 + 10 >= 105: on time, though below the watermark
        j.finish();
        assert_eq!(log.take(), ["wm 105", "a+b", "end"]);
        assert_eq!(*late.0.borrow(), ["R late", "end"]);
        let stats = &metrics.ops()[0].1;
        assert_eq!((stats.records_in, stats.records_out, stats.late), (3, 1, 1));
    }

    #[test]
    fn expiry_frees_state_across_many_keys() {
        let (mut j, _, _) = op(Some(0));
        for k in 0..1000 {
            j.push(&left(k, k, "l"));
            j.push(&right(k + 5000, k, "r"));
        }
        assert_eq!(j.state_size(), 2000);
        j.watermark(500);
        assert_eq!(j.state_size(), 1000);
        assert_eq!(j.records.map.len(), 1000);
        j.watermark(1000);
        assert_eq!(j.state_size(), 0);
        assert!(j.records.map.is_empty());
        assert!(j.records.map.capacity() < 1000);
    }

    #[test]
    fn null_keys_never_match_and_nothing_follows_finish() {
        let (mut j, log, _) = op(None);
        feed(&mut j, &[left(-1, 0, "a"), right(-1, 0, "b")]);
        assert_eq!(j.state_size(), 0);
        j.push(&left(1, 0, "c"));
        j.finish();
        j.push(&right(1, 0, "d"));
        j.watermark(10);
        j.finish();
        assert_eq!(log.take(), ["end"]);
    }

    #[test]
    fn matches_a_brute_force_oracle_on_random_input() {
        for seed in 1..6u64 {
            let input = random_input(seed, 1500);
            for ttl in [None, Some(0), Some(15), Some(60)] {
                check_against_oracle(&input, ttl);
            }
        }
    }

    /// The oracle tests with the records in an LSM store, inner and left outer, and a
    /// checkpoint of a join on disk restored in memory and the other way round.
    #[cfg(feature = "state-disk")]
    #[test]
    fn on_disk_matches_the_brute_force_oracle_and_the_in_memory_join() {
        use crate::keyed::disk::Lists;
        let on = |store: &std::sync::Arc<crate::keyed::disk::Store>| {
            crate::ops::join::disk::OnDisk::with(Lists::on(store.clone()))
        };
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 1 << 20);
        for seed in 1..4u64 {
            let input = random_input(seed, 1500);
            for ttl in [None, Some(15)] {
                check_with(&input, ttl, &mut |j| {
                    j.records.disk = on(&store);
                    j.expiry = ExpiryIndex::on_disk(&store);
                });
            }
        }
        // Left outer, on disk and in memory: the same rows in the same order.
        let input = random_input(9, 1500);
        for ttl in [None, Some(15)] {
            let run = |disk: bool| {
                let (j, log, _) = op(ttl);
                let mut j = j.left_outer();
                if disk {
                    j.records.disk = on(&store);
                    j.expiry = ExpiryIndex::on_disk(&store);
                }
                for step in &input {
                    match step {
                        Step::Rec(rec) => j.push(rec),
                        Step::Wm(w) => j.watermark(*w),
                    }
                }
                j.finish();
                log.take()
            };
            assert_eq!(run(true), run(false), "ttl {ttl:?}");
        }
        // Half the input, a checkpoint, the rest after a restore on the other backend.
        for (from_disk, to_disk) in [(true, false), (false, true)] {
            let (mut a, log_a, _) = op(None);
            if from_disk {
                a.records.disk = on(&store);
            }
            let (mut b, log_b, _) = op(None);
            if to_disk {
                b.records.disk = on(&store);
            }
            let (mut whole, log_whole, _) = op(None);
            let (first, rest) = input.split_at(input.len() / 2);
            for step in first {
                if let Step::Rec(rec) = step {
                    a.push(rec);
                    whole.push(rec);
                }
            }
            let mut bytes = Vec::new();
            a.save_state(&mut bytes);
            b.load_state(&mut &bytes[..]).unwrap();
            assert_eq!(b.state_size(), a.state_size());
            for step in rest {
                if let Step::Rec(rec) = step {
                    b.push(rec);
                    whole.push(rec);
                }
            }
            b.finish();
            whole.finish();
            let mut got = log_a.take();
            got.extend(log_b.take());
            assert_eq!(got, log_whole.take(), "from disk {from_disk}");
        }
    }

    /// The join's state in a canonical order: per key, its records with time and flag.
    fn canonical(j: &RegularJoin<Spec, Log>) -> Vec<String> {
        let mut keys: Vec<_> = j.records.map.iter().collect();
        keys.sort_unstable_by_key(|(k, _)| **k);
        let mut out: Vec<String> = keys
            .iter()
            .map(|(k, sides)| {
                let side = |held: &[Held<crate::ops::join::testing::Rec>]| {
                    held.iter()
                        .map(|h| {
                            format!(
                                "{}@{}{}",
                                h.record.name,
                                h.time,
                                if h.matched { "*" } else { "" }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                };
                format!("{k}: [{}] [{}]", side(&sides.left), side(&sides.right))
            })
            .collect();
        out.push(format!("buffered {} wm {}", j.buffered, j.watermark));
        out
    }

    /// A chain of a full part and deltas taken along a random input (keys come and go with
    /// the TTL, left records get matched later): restoring any prefix of the chain gives the
    /// state the join had there, and the run resumed from it emits what the rest of a run
    /// without checkpoints emits.
    #[test]
    fn a_chain_of_deltas_restores_the_state_it_was_taken_of() {
        chain_of_deltas(&mut |_, _| {}, 1..5);
    }

    /// The chain on disk, restored on disk and in memory, and an in-memory chain restored on
    /// disk: each backend writes deltas the other applies.
    #[cfg(feature = "state-disk")]
    #[test]
    fn a_chain_of_deltas_restores_on_either_backend() {
        use crate::keyed::disk::Lists;
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 1 << 20);
        for (a_disk, b_disk) in [(true, true), (true, false), (false, true)] {
            chain_of_deltas(
                &mut |j, restored| {
                    if (restored && b_disk) || (!restored && a_disk) {
                        j.records.disk =
                            crate::ops::join::disk::OnDisk::with(Lists::on(store.clone()));
                    }
                },
                1..3,
            );
        }
    }

    /// [`canonical`] of a join on either backend.
    fn canonical_any(j: &RegularJoin<Spec, Log>) -> Vec<String> {
        let mut bytes = Vec::new();
        j.save_state(&mut bytes);
        let (mut m, _, _) = op(None);
        m.load_state(&mut &bytes[..]).unwrap();
        canonical(&m)
    }

    /// Takes a chain along random inputs with the join `backend(j, false)` sets up, and
    /// restores it into joins `backend(j, true)` sets up (see the test above).
    fn chain_of_deltas(
        backend: &mut dyn FnMut(&mut RegularJoin<Spec, Log>, bool),
        seeds: std::ops::Range<u64>,
    ) {
        for seed in seeds {
            let input = random_input(seed, 1500);
            for (ttl, outer) in [
                (None, false),
                (Some(15), true),
                (Some(0), false),
                (None, true),
            ] {
                let make = || {
                    let (j, log, _) = op(ttl);
                    if outer {
                        (j.left_outer(), log)
                    } else {
                        (j, log)
                    }
                };
                let feed_steps = |j: &mut RegularJoin<Spec, Log>, steps: &[Step]| {
                    for step in steps {
                        match step {
                            Step::Rec(rec) => j.push(rec),
                            Step::Wm(w) => j.watermark(*w),
                        }
                    }
                };
                let (mut whole, whole_log) = make();
                feed_steps(&mut whole, &input);
                whole.finish();
                let want = whole_log.take();

                let (mut a, a_log) = make();
                backend(&mut a, false);
                a.track_changes();
                let mut chain: Vec<(usize, Vec<u8>, Vec<String>)> = Vec::new();
                let cuts: Vec<usize> = (1..input.len()).step_by(97).collect();
                let mut at = 0;
                for (n, &cut) in cuts.iter().enumerate() {
                    feed_steps(&mut a, &input[at..cut]);
                    at = cut;
                    let mut bytes = Vec::new();
                    if n == 0 {
                        a.save_state(&mut bytes);
                        a.saved_full();
                    } else {
                        a.save_delta(&mut bytes);
                    }
                    chain.push((cut, bytes, canonical_any(&a)));
                }
                let emitted_before: Vec<Vec<String>> = {
                    // What `a` emitted up to each cut: replay, as the log is shared.
                    let (mut r, r_log) = make();
                    let mut at = 0;
                    cuts.iter()
                        .map(|&cut| {
                            feed_steps(&mut r, &input[at..cut]);
                            at = cut;
                            r_log.0.borrow().clone()
                        })
                        .collect()
                };
                drop(a_log);
                for crash in [0, 1, 3, chain.len() / 2, chain.len() - 1] {
                    let (mut b, b_log) = make();
                    backend(&mut b, true);
                    b.load_state(&mut &chain[0].1[..]).unwrap();
                    for (_, delta, _) in &chain[1..=crash] {
                        let mut input = &delta[..];
                        b.load_delta(&mut input).unwrap();
                        assert!(input.is_empty());
                    }
                    b.restored(crash);
                    let what = format!("seed {seed} ttl {ttl:?} outer {outer} crash {crash}");
                    assert_eq!(canonical_any(&b), chain[crash].2, "{what}");
                    b.track_changes();
                    feed_steps(&mut b, &input[chain[crash].0..]);
                    b.finish();
                    let mut got = emitted_before[crash].clone();
                    got.extend(b_log.take());
                    assert_eq!(got, want, "{what}");
                }
                // Without a TTL keys only grow: a delta applied with the one before it
                // skipped does not fit, and is refused.
                if ttl.is_none() && chain.len() > 3 {
                    let (mut c, _) = make();
                    backend(&mut c, true);
                    c.load_state(&mut &chain[0].1[..]).unwrap();
                    let skipped = c.load_delta(&mut &chain[2].1[..]);
                    assert!(skipped.is_err(), "seed {seed}");
                }
            }
        }
    }

    /// Deltas are small when few keys change: a join holding many keys writes only the
    /// records added since the last checkpoint.
    #[test]
    fn a_delta_holds_only_what_changed() {
        let (mut j, _, _) = op(None);
        j.track_changes();
        for k in 0..10_000 {
            j.push(&left(k, k, "l"));
        }
        let mut full = Vec::new();
        j.save_state(&mut full);
        j.saved_full();
        j.push(&right(7, 1, "r"));
        j.push(&left(10_001, 1, "n"));
        let mut delta = Vec::new();
        j.save_delta(&mut delta);
        assert!(
            delta.len() * 1000 < full.len(),
            "{} vs {}",
            delta.len(),
            full.len()
        );
        // Nothing changed: an empty delta.
        let mut empty = Vec::new();
        j.save_delta(&mut empty);
        assert!(empty.len() <= 8 + 8 + 8);
    }

    fn check_against_oracle(input: &[Step], ttl: Option<i64>) {
        check_with(input, ttl, &mut |_| {})
    }

    /// Simulates the documented rule: a pair is emitted iff, when the later record arrives,
    /// both have `t + ttl >= w`; rows in the exact order (partners in arrival order).
    fn check_with(
        input: &[Step],
        ttl: Option<i64>,
        setup: &mut dyn FnMut(&mut RegularJoin<Spec, Log>),
    ) {
        let (mut j, log, metrics) = op(ttl);
        setup(&mut j);
        let alive = |t: i64, w: i64| ttl.is_none_or(|ttl| t + ttl >= w);
        let mut stored: Vec<In> = Vec::new();
        let mut want = Vec::new();
        let mut wm = i64::MIN;
        let mut late = 0;
        for step in input {
            match step {
                Step::Rec(rec) => {
                    let (Either::Left(x) | Either::Right(x)) = rec;
                    j.push(rec);
                    if !alive(x.time, wm) {
                        late += 1;
                        continue;
                    }
                    for other in &stored {
                        let (l, r) = match (rec, other) {
                            (Either::Left(l), Either::Right(r))
                            | (Either::Right(r), Either::Left(l)) => (l, r),
                            _ => continue,
                        };
                        let (Either::Left(o) | Either::Right(o)) = other;
                        if l.key >= 0 && l.key == r.key && alive(o.time, wm) {
                            if let Some(out) = Spec::join(l, r) {
                                want.push(out);
                            }
                        }
                    }
                    stored.push(rec.clone());
                }
                Step::Wm(w) => {
                    wm = wm.max(*w);
                    j.watermark(*w);
                }
            }
        }
        j.finish();
        let got: Vec<String> = log
            .take()
            .into_iter()
            .filter(|row| !row.starts_with("wm ") && row != "end")
            .collect();
        assert!(!want.is_empty() && (ttl.is_none() || late > 0));
        // Partners are probed in arrival order, as the oracle iterates them.
        assert_eq!(got, want, "ttl {ttl:?}");
        let stats = &metrics.ops()[0].1;
        assert_eq!(stats.late, late);
        assert_eq!(stats.records_out, want.len() as u64);
    }
}
