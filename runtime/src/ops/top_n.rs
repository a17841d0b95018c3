//! Dedup and top-N per key over an append stream: an updating stream keyed by the
//! partition key and rank (see [`super::change`] for how changes are batched).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::Hash;

use crate::checkpoint::{snapshot_fields, Snapshot, StateSlot};
use crate::collector::Collector;
use crate::keyed::{Changed, Keyed};
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::change::{Change, FLUSH_EVERY};
use crate::ops::key_ttl::{KeyTtl, Stamp, Written};
use crate::state::State;

/// The per-query part of dedup and top-N.
pub trait RankSpec {
    type In: Clone + State;
    /// The partition (dedup) key.
    type Key: Hash + Eq + Ord + Clone + State;
    type Out;
    fn key(record: &Self::In) -> Self::Key;
    /// Ordering of rows within a partition: `Less` means `a` ranks before `b`.
    fn compare(a: &Self::In, b: &Self::In) -> Ordering;
    /// The output row for a record at `rank` (1-based).
    fn output(record: &Self::In, rank: i64) -> Self::Out;
    /// The record's event time: when it writes its key, for a TTL, and, when the key names a
    /// window, the window's end, at which its partition is final
    /// ([`FinalTopNOp`](super::FinalTopNOp)). Generated only for those.
    fn event_time(_record: &Self::In) -> i64 {
        i64::MIN
    }
}

/// Top-N per key (`top N by k order by ...`); dedup is top-1 with the order "first" or
/// "last". Rows that compare equal keep arrival order (the earlier ranks first). With a TTL
/// ([`KeyTtl`]), a key's rows are dropped once the watermark passes the event time of its
/// last write (a record that entered its top N) plus the TTL, kept beside its rows (the stamp
/// `T`, see [`Stamp`]).
pub struct TopNOp<S: RankSpec, N, T: Stamp = ()> {
    n: usize,
    newer_wins_ties: bool,
    /// The top rows per key, in memory or spilled to disk (see [`crate::keyed`]).
    state: Keyed<S::Key, (Vec<S::In>, T)>,
    ttl: Option<KeyTtl<S::Key>>,
    /// Key -> lowest rank index whose row changed since the last flush.
    dirty: BTreeMap<S::Key, usize>,
    /// With incremental checkpoints: the keys whose rows changed or expired since the last
    /// checkpoint; a delta writes their rows (and with a TTL their last writes).
    changed: Changed<S::Key>,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<S: RankSpec, N: Collector<Change<S::Out>>> TopNOp<S, N> {
    pub fn new(metrics: OpMetrics, n: usize, next: N) -> Self {
        TopNOp {
            n: n.max(1),
            newer_wins_ties: false,
            state: Keyed::new(),
            ttl: None,
            dirty: BTreeMap::new(),
            changed: Changed::default(),
            next,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    /// Rows that compare equal rank the newer first (dedup keep last).
    pub fn newer_wins_ties(mut self) -> Self {
        self.newer_wins_ties = true;
        self
    }

    crate::ops::key_ttl::ttl_builders!(TopNOp<S, N, Written>);

    /// The operator with `ttl`, each key keeping its last write (built before any state:
    /// `with_state` comes after).
    fn stamped(self, ttl: KeyTtl<S::Key>) -> TopNOp<S, N, Written> {
        debug_assert!(self.state.is_empty(), "a TTL is set before any state");
        TopNOp {
            n: self.n,
            newer_wins_ties: self.newer_wins_ties,
            state: Keyed::new(),
            ttl: Some(ttl),
            dirty: self.dirty,
            changed: Changed::default(),
            next: self.next,
            stats: self.stats,
            metrics: self.metrics,
            slot: self.slot,
        }
    }
}

impl<S: RankSpec, N: Collector<Change<S::Out>>, T: Stamp> TopNOp<S, N, T> {
    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): keys, and
    /// the table of rows per key (rows counted on a sample of the keys) with the TTL's
    /// bookkeeping.
    fn measure_state(&mut self, force: bool) {
        if self.stats.state.due(force) {
            let ttl = self.ttl.as_ref().map_or(0, |t| t.approx_bytes());
            let bytes = self
                .state
                .memory_bytes(|(rows, _)| crate::metrics::entries_bytes::<S::In>(rows.capacity()))
                + ttl;
            self.stats.state.set(self.state.len(), bytes);
        }
    }

    fn expire_by_clock(&mut self) {
        if let Some(ttl) = &mut self.ttl {
            let (state, changed) = (&mut self.state, &mut self.changed);
            ttl.tick(state, |key, _| changed.note(&key));
        }
    }

    /// Rows held (for tests and metrics).
    pub fn state_size(&self) -> usize {
        let mut rows = 0;
        self.state.for_each(|_, (v, _)| rows += v.len());
        rows
    }

    /// Keys held.
    pub fn keys(&self) -> usize {
        self.state.len()
    }

    fn flush(&mut self) {
        for (key, from) in std::mem::take(&mut self.dirty) {
            if let Some((rows, _)) = self.state.get_mut(&key) {
                for (i, row) in rows.iter().enumerate().skip(from) {
                    let out = S::output(row, i as i64 + 1);
                    self.stats.records_out += 1;
                    self.next.push(&Change::Upsert(out));
                }
            }
        }
    }
}

impl<S: RankSpec, N: Collector<Change<S::Out>>, T: Stamp> Collector<S::In> for TopNOp<S, N, T> {
    #[inline]
    fn push(&mut self, record: &S::In) {
        self.stats.records_in += 1;
        let key = S::key(record);
        let n = self.n;
        // Most keys hold few rows: start small (dedup holds exactly one).
        let (rows, stamp) = self
            .state
            .get_or_insert_with(key.clone(), || (Vec::with_capacity(n.min(2)), T::default()));
        // After every row that ranks before or equal to it (arrival order breaks ties).
        let at = if self.newer_wins_ties {
            rows.partition_point(|r| S::compare(r, record) == Ordering::Less)
        } else {
            rows.partition_point(|r| S::compare(r, record) != Ordering::Greater)
        };
        if at >= self.n {
            return;
        }
        rows.insert(at, record.clone());
        rows.truncate(self.n);
        if let Some(ttl) = &mut self.ttl {
            ttl.write_now(&key, S::event_time(record), stamp);
        }
        if self.state.weighs() {
            self.state.reweigh(&key);
        }
        self.changed.note(&key);
        let from = self.dirty.entry(key).or_insert(at);
        *from = (*from).min(at);
        if self.dirty.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
    /// Pending changes go out first, then expired keys are dropped (silently).
    fn watermark(&mut self, watermark: i64) {
        self.flush();
        if let Some(ttl) = &mut self.ttl {
            let (state, changed) = (&mut self.state, &mut self.changed);
            ttl.on_watermark(watermark, state, |key, _| changed.note(&key));
        }
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
    }
    crate::ops::change::flushed_at_barrier_tick_and_finish!();
}

impl<S: RankSpec, N, T: Stamp> Snapshot for TopNOp<S, N, T> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    // The rows per key, with a TTL each with its key's last write.
    snapshot_fields!(state);

    // Rows change only when a record enters a key's top N, and are dropped when a key
    // expires: both list the key ([`Changed`]). On disk a delta reads the listed keys back.
    crate::keyed::keyed_deltas!(state, "a top-N delta's entry");

    /// The expiry order is not saved: it follows from the last writes.
    fn restored(&mut self, _deltas: usize) {
        if let Some(ttl) = &mut self.ttl {
            ttl.rebuild(&self.state);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::cell::RefCell;
    use std::rc::Rc;

    struct Top;
    impl RankSpec for Top {
        type In = (i64, i64, &'static str); // (key, score, name)
        type Key = i64;
        type Out = (i64, i64, &'static str);
        fn key(r: &Self::In) -> i64 {
            r.0
        }
        fn compare(a: &Self::In, b: &Self::In) -> Ordering {
            b.1.cmp(&a.1) // score descending
        }
        fn output(r: &Self::In, rank: i64) -> Self::Out {
            (r.0, rank, r.2)
        }
    }

    #[derive(Clone, Default)]
    struct Table(
        Rc<RefCell<BTreeMap<(i64, i64), &'static str>>>,
        Rc<RefCell<usize>>,
    );
    impl Collector<Change<(i64, i64, &'static str)>> for Table {
        fn push(&mut self, c: &Change<(i64, i64, &'static str)>) {
            *self.1.borrow_mut() += 1;
            if let Change::Upsert((k, rank, name)) = c {
                self.0.borrow_mut().insert((*k, *rank), name);
            }
        }
        fn watermark(&mut self, _: i64) {}
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }

    /// (key, time, name), first by time: dedup keep first with a TTL.
    struct First;
    impl RankSpec for First {
        type In = (i64, i64, &'static str);
        type Key = i64;
        type Out = (i64, i64, &'static str);
        fn key(r: &Self::In) -> i64 {
            r.0
        }
        fn compare(a: &Self::In, b: &Self::In) -> Ordering {
            a.1.cmp(&b.1)
        }
        fn output(r: &Self::In, _rank: i64) -> Self::Out {
            (r.0, r.1, r.2)
        }
        fn event_time(r: &Self::In) -> i64 {
            r.1
        }
    }

    #[derive(Clone, Default)]
    struct Log(Rc<RefCell<Vec<Row>>>);
    type Row = (i64, i64, &'static str);
    impl Collector<Change<(i64, i64, &'static str)>> for Log {
        fn push(&mut self, c: &Change<(i64, i64, &'static str)>) {
            self.0.borrow_mut().push(*c.row());
        }
        fn watermark(&mut self, _: i64) {}
        fn barrier(&mut self, _checkpoint: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }

    #[test]
    fn with_a_ttl_a_key_starts_fresh_after_its_last_write_plus_ttl() {
        let log = Log::default();
        let metrics = Metrics::new();
        let mut op = TopNOp::<First, _>::new(metrics.op("dedup"), 1, log.clone()).with_ttl(10);
        op.push(&(1, 100, "a"));
        op.push(&(1, 105, "dup")); // not written: the key still expires at 100 + 10
        op.push(&(2, 104, "b"));
        op.watermark(110); // 100 + 10 is not < 110: kept
        op.push(&(1, 111, "again")); // a duplicate while key 1 lives
        op.watermark(111); // key 1 (last write 100) expires; key 2 (104) lives
        assert_eq!(op.keys(), 1);
        op.push(&(1, 112, "fresh")); // starts fresh: emitted again
        op.push(&(2, 103, "earlier")); // earlier than b: replaces it and writes key 2
        op.watermark(114); // key 2: max(104, 103) + 10 is not < 114
        assert_eq!(op.keys(), 2);
        op.watermark(200);
        assert_eq!(op.keys(), 0);
        op.finish();
        assert_eq!(
            *log.0.borrow(),
            vec![
                (1, 100, "a"),
                (2, 104, "b"),
                (1, 112, "fresh"),
                (2, 103, "earlier")
            ]
        );
    }

    #[test]
    fn with_a_ttl_state_stays_bounded_and_survives_a_snapshot() {
        let metrics = Metrics::new();
        let mut op =
            TopNOp::<First, _>::new(metrics.op("dedup"), 1, Log::default()).with_ttl(1_000);
        // 100,000 keys over 100 s of event time, each seen once: at most ~1.1 s of keys live.
        let mut most = 0;
        for i in 0..100_000i64 {
            op.push(&(i, i, "x"));
            if i % 100 == 99 {
                op.watermark(i - 50);
                most = most.max(op.keys());
            }
        }
        assert!(most <= 1_200, "{most} keys held");
        let mut bytes = Vec::new();
        op.save_state(&mut bytes);
        let mut restored =
            TopNOp::<First, _>::new(metrics.op("dedup"), 1, Log::default()).with_ttl(1_000);
        restored.load_state(&mut bytes.as_slice()).unwrap();
        restored.restored(0);
        assert_eq!(restored.keys(), op.keys());
        // The restored times still expire the keys.
        restored.watermark(100_000 + 1_000);
        assert_eq!(restored.keys(), 0);
    }

    /// A full part and deltas taken along the input restore, at every point, the rows the
    /// operator held there.
    #[test]
    fn a_chain_of_deltas_restores_the_rows_held() {
        chain_of_deltas(
            &|| TopNOp::<Top, _>::new(Metrics::new().op("top"), 2, Table::default()),
            &|op| op,
        );
    }

    /// The same with a TTL: keys expire between checkpoints (and start afresh), and the
    /// restored last writes expire the same keys later.
    #[test]
    fn a_chain_of_deltas_with_a_ttl_restores_the_rows_held_and_their_expiry() {
        let make = || {
            TopNOp::<First, _>::new(Metrics::new().op("dedup"), 2, Table::default()).with_ttl(250)
        };
        chain_of_deltas(&make, &|op| op);
    }

    /// The same on the disk backend, with a cache so small that every key is spilled: a
    /// delta reads its keys back, and applies on either backend.
    #[cfg(feature = "state-disk")]
    #[test]
    fn a_chain_of_deltas_on_disk_restores_the_rows_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 64);
        let on_disk = |mut op: TopNOp<_, _>| {
            op.state = Keyed::spilled_to(&store);
            op
        };
        chain_of_deltas(
            &|| TopNOp::<Top, _>::new(Metrics::new().op("top"), 2, Table::default()),
            &on_disk,
        );
        let make = || {
            TopNOp::<First, _>::new(Metrics::new().op("dedup"), 2, Table::default()).with_ttl(250)
        };
        chain_of_deltas(&make, &|mut op| {
            op.state = Keyed::spilled_to(&store);
            op
        });
    }

    /// Rows per key and, with a TTL, each key's last write.
    type Held = (Vec<(i64, Vec<Row>)>, Vec<(i64, i64)>);

    fn chain_of_deltas<S: RankSpec<In = Row, Key = i64, Out = Row>, T: Stamp>(
        make: &dyn Fn() -> TopNOp<S, Table, T>,
        backend: &dyn Fn(TopNOp<S, Table, T>) -> TopNOp<S, Table, T>,
    ) {
        let step = |op: &mut TopNOp<S, Table, T>, round: i64| {
            for i in 0..50i64 {
                let key = (i * 7 + round) % 13 + (round / 5) * 3;
                op.push(&(key, round * 100 + (i * 31 + round * 17) % 40, "r"));
            }
            op.watermark(round * 100);
        };
        let held = |op: &mut TopNOp<S, Table, T>| -> Held {
            let (mut rows, mut ttl) = (Vec::new(), Vec::new());
            op.state.for_each(|k, (v, stamp)| {
                rows.push((*k, v.clone()));
                ttl.extend(stamp.get().map(|w| (*k, w.last())));
            });
            rows.sort();
            ttl.sort();
            (rows, ttl)
        };
        let (mut op, seen, _) =
            crate::keyed::check_chain(make, backend, 20, &step, &held, &[0, 1, 7, 19]);
        if op.ttl.is_some() {
            // Keys expired along the way, and some are held at the end.
            assert!(
                seen.iter().any(|(rows, _)| rows.len() < 13),
                "nothing expired"
            );
        }
        // A delta lists only the keys whose rows changed: none, nothing.
        let mut empty = Vec::new();
        op.save_delta(&mut empty);
        assert_eq!(empty, 0usize.to_le_bytes().to_vec());
    }

    #[test]
    fn top_n_keeps_the_best_rows_with_arrival_order_for_ties() {
        let table = Table::default();
        let metrics = Metrics::new();
        let mut op = TopNOp::<Top, _>::new(metrics.op("top"), 2, table.clone());
        for r in [
            (1, 5, "a"),
            (1, 7, "b"),
            (2, 1, "x"),
            (1, 7, "c"),
            (1, 9, "d"),
            (1, 1, "e"),
        ] {
            op.push(&r);
        }
        op.watermark(10);
        op.push(&(2, 3, "y"));
        op.finish();
        let got: Vec<_> = table.0.borrow().iter().map(|(k, v)| (*k, *v)).collect();
        // Key 1: d (9), then b (7, before c by arrival). Key 2: y, x.
        assert_eq!(
            got,
            vec![((1, 1), "d"), ((1, 2), "b"), ((2, 1), "y"), ((2, 2), "x")]
        );
        assert_eq!(op.state_size(), 4);
        // Mini-batching: the first flush emits the 3 rows of that moment (not one change per
        // record); then y moves x to rank 2: 2 more.
        assert_eq!(*table.1.borrow(), 3 + 2);
    }
}
