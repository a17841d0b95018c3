//! Top-N per key over an updating stream (`top N by k order by ...` after an operator that
//! revises rows, e.g. Nexmark q6: a seller's last 10 winning bids, whose prices change as bids
//! arrive).
//!
//! A revised row first leaves its partition (its previous version is found by the input's
//! upsert key), then enters again at its new place; a deleted row leaves. Since a row below
//! the top N can move up when one above it leaves, every row is kept, not only the N best.
//! Changed ranks are emitted at the next flush (watermark, barrier, end): an upsert for each
//! rank whose row changed, a delete for each rank a shrunk partition no longer fills.
//! Runs as one instance, so every version of a row meets its predecessor whatever its
//! partition.
//!
//! With a TTL ([`KeyTtl`]), a partition's rows are dropped, silently, once the watermark
//! passes its last write plus the TTL. The rows of an updating stream carry no event time, so
//! a change writes its partition at the watermark of its arrival (changes before the first
//! watermark count from it): a partition expires after the watermark has moved on by the TTL
//! without a change to it. A later version of a dropped row enters as a new row; a delete
//! of one is ignored.
//!
//! Both maps (each partition's rows, each input row's current version) are [`Keyed`] maps:
//! on disk with `--state disk`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::Hash;

use crate::checkpoint::{Snapshot, StateSlot};
use crate::collector::Collector;
use crate::keyed::Keyed;
use crate::metrics::{OpCounters, OpMetrics};
use crate::ops::change::{Change, FLUSH_EVERY};
use crate::ops::key_ttl::{KeyTtl, Stamp, Written};
use crate::ops::top_n::RankSpec;
use crate::state::State;

/// The input's upsert key, for a top-N over an updating stream.
pub trait UpsertKey: RankSpec {
    type UpKey: Hash + Eq + Clone + State;
    fn up_key(row: &Self::In) -> Self::UpKey;
}

struct Dirty<T> {
    /// Lowest rank index that changed.
    from: usize,
    /// Ranks shown before the change.
    shown: usize,
    /// A row of the partition (for the key fields of deletes when it empties).
    template: T,
}

/// `T` is what each partition keeps for a TTL: nothing, or its last change once built
/// [`with_ttl`](Self::with_ttl).
pub struct RetractTopNOp<S: UpsertKey, N, T: Stamp = ()> {
    n: usize,
    /// Every row per partition, best first; equal rows keep arrival order.
    rows: Keyed<S::Key, (Vec<S::In>, T)>,
    /// The current version of each input row.
    previous: Keyed<S::UpKey, S::In>,
    dirty: BTreeMap<S::Key, Dirty<S::In>>,
    ttl: Option<KeyTtl<S::Key>>,
    /// The last watermark (for the time of writes with a TTL).
    watermark: i64,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<S: UpsertKey, N: Collector<Change<S::Out>>> RetractTopNOp<S, N> {
    pub fn new(metrics: OpMetrics, n: usize, next: N) -> Self {
        RetractTopNOp {
            n: n.max(1),
            rows: Keyed::new(),
            previous: Keyed::new(),
            dirty: BTreeMap::new(),
            ttl: None,
            watermark: i64::MIN,
            next,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    crate::ops::key_ttl::ttl_builders!(RetractTopNOp<S, N, Written>);

    /// The operator with `ttl`, each partition keeping its last change (built before any state:
    /// `with_state` comes after).
    fn stamped(self, ttl: KeyTtl<S::Key>) -> RetractTopNOp<S, N, Written> {
        debug_assert!(self.rows.is_empty(), "a TTL is set before any state");
        RetractTopNOp {
            n: self.n,
            rows: Keyed::new(),
            previous: self.previous,
            dirty: self.dirty,
            ttl: Some(ttl),
            watermark: self.watermark,
            next: self.next,
            stats: self.stats,
            metrics: self.metrics,
            slot: self.slot,
        }
    }
}

impl<S: UpsertKey, N: Collector<Change<S::Out>>, T: Stamp> RetractTopNOp<S, N, T> {
    /// Measures the state for the live view (see [`crate::metrics::StateGauge`]): keys, and
    /// the tables of rows per key (rows counted on a sample of the keys) and of input
    /// rows, with the TTL's bookkeeping.
    fn measure_state(&mut self, force: bool) {
        if self.stats.state.due(force) {
            let row = crate::metrics::entries_bytes::<S::In>(1);
            let ttl = self.ttl.as_ref().map_or(0, |t| t.approx_bytes());
            let bytes = self.rows.memory_bytes(|(rows, _)| rows.capacity() * row)
                + self.previous.memory_bytes(|_| 0)
                + ttl;
            self.stats.state.set(self.rows.len(), bytes);
        }
    }

    fn expire_by_clock(&mut self) {
        if let Some(ttl) = &mut self.ttl {
            let (rows, previous) = (&mut self.rows, &mut self.previous);
            ttl.tick(rows, |_, dropped| {
                for row in dropped {
                    previous.remove(&S::up_key(&row));
                }
            });
        }
    }

    /// Partitions held, and input rows held.
    pub fn state_size(&self) -> (usize, usize) {
        (self.rows.len(), self.previous.len())
    }

    fn touch(&mut self, key: &S::Key, at: usize, shown_before: usize, template: &S::In) {
        match self.dirty.get_mut(key) {
            Some(d) => d.from = d.from.min(at),
            None => {
                self.dirty.insert(
                    key.clone(),
                    Dirty {
                        from: at,
                        shown: shown_before,
                        template: template.clone(),
                    },
                );
            }
        }
    }

    fn remove(&mut self, old: &S::In) {
        let key = S::key(old);
        let up = S::up_key(old);
        let Some((rows, stamp)) = self.rows.get_mut(&key) else {
            return;
        };
        let shown = rows.len().min(self.n);
        let Some(at) = rows.iter().position(|r| S::up_key(r) == up) else {
            return;
        };
        rows.remove(at);
        if rows.is_empty() {
            if let Some(ttl) = &mut self.ttl {
                ttl.forget(&key, stamp);
            }
            self.rows.remove(&key);
        } else if let Some(ttl) = &mut self.ttl {
            ttl.write_now(&key, self.watermark, stamp);
        }
        if at < self.n {
            self.touch(&key, at, shown, old);
        }
    }

    fn insert(&mut self, row: &S::In) {
        let key = S::key(row);
        let (n, mut shown, mut at) = (self.n, 0, 0);
        // On disk a partition is weighed by its rows' inline size as it grows.
        let size = |(rows, _): &(Vec<S::In>, T)| rows.len() * std::mem::size_of::<S::In>();
        let (ttl, watermark) = (&mut self.ttl, self.watermark);
        let new = || (Vec::new(), T::default());
        self.rows.update(key.clone(), new, size, |(rows, stamp)| {
            shown = rows.len().min(n);
            at = rows.partition_point(|r| S::compare(r, row) != Ordering::Greater);
            rows.insert(at, row.clone());
            if let Some(ttl) = ttl {
                ttl.write_now(&key, watermark, stamp);
            }
        });
        if at < self.n {
            self.touch(&key, at, shown, row);
        }
    }

    fn flush(&mut self) {
        for (key, d) in std::mem::take(&mut self.dirty) {
            let rows: &[S::In] = self.rows.get_mut(&key).map_or(&[], |r| r.0.as_slice());
            let shown = rows.len().min(self.n);
            for (i, row) in rows.iter().enumerate().take(shown).skip(d.from) {
                self.stats.records_out += 1;
                self.next
                    .push(&Change::Upsert(S::output(row, i as i64 + 1)));
            }
            for rank in shown.max(d.from)..d.shown {
                self.stats.records_out += 1;
                let template = rows.first().unwrap_or(&d.template);
                self.next
                    .push(&Change::Delete(S::output(template, rank as i64 + 1)));
            }
        }
    }
}

impl<S: UpsertKey, N: Collector<Change<S::Out>>, T: Stamp> Collector<Change<S::In>>
    for RetractTopNOp<S, N, T>
{
    fn push(&mut self, change: &Change<S::In>) {
        self.stats.records_in += 1;
        let row = change.row();
        if let Some(old) = self.previous.take(&S::up_key(row)) {
            self.remove(&old);
        }
        if let Change::Upsert(row) = change {
            self.insert(row);
            self.previous.replace(S::up_key(row), row.clone());
        }
        if self.dirty.len() >= FLUSH_EVERY {
            self.flush();
        }
    }
    /// Pending changes go out first, then expired partitions are dropped (silently).
    fn watermark(&mut self, watermark: i64) {
        self.flush();
        if let Some(ttl) = &mut self.ttl {
            let (rows, previous) = (&mut self.rows, &mut self.previous);
            if self.watermark == i64::MIN && !ttl.is_processing_time() {
                ttl.restamp(i64::MIN, watermark, rows, |_| {});
            }
            ttl.on_watermark(watermark, rows, |_, dropped| {
                for row in dropped {
                    previous.remove(&S::up_key(&row));
                }
            });
        }
        self.watermark = self.watermark.max(watermark);
        self.measure_state(watermark == i64::MAX);
        self.next.watermark(watermark);
    }
    crate::ops::change::flushed_at_barrier_tick_and_finish!();
}

impl<S: UpsertKey, N, T: Stamp> Snapshot for RetractTopNOp<S, N, T> {
    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }
    // The rows (with a TTL, each partition's with its last change), the current versions,
    // and with a TTL the watermark: the time of the writes that come before the next one.
    fn save_state(&self, out: &mut Vec<u8>) {
        self.rows.save(out);
        self.previous.save(out);
        if self.ttl.is_some() {
            self.watermark.save(out);
        }
    }

    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), crate::state::StateError> {
        self.rows = State::load(input)?;
        self.previous = State::load(input)?;
        if self.ttl.is_some() {
            self.watermark = i64::load(input)?;
        }
        Ok(())
    }

    /// The expiry order is not saved: it follows from the last changes.
    fn restored(&mut self, _deltas: usize) {
        if let Some(ttl) = &mut self.ttl {
            ttl.rebuild(&self.rows);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// (id, seller, price): top 2 per seller by price, upsert key id.
    struct Top;
    impl RankSpec for Top {
        type In = (i64, i64, i64);
        type Key = i64;
        type Out = (i64, i64, i64, i64); // seller, rank, id, price
        fn key(r: &Self::In) -> i64 {
            r.1
        }
        fn compare(a: &Self::In, b: &Self::In) -> Ordering {
            b.2.cmp(&a.2)
        }
        fn output(r: &Self::In, rank: i64) -> Self::Out {
            (r.1, rank, r.0, r.2)
        }
    }
    impl UpsertKey for Top {
        type UpKey = i64;
        fn up_key(r: &Self::In) -> i64 {
            r.0
        }
    }

    /// (seller, rank) -> (id, price)
    type Ranks = BTreeMap<(i64, i64), (i64, i64)>;

    /// The table the changes describe.
    #[derive(Clone, Default)]
    struct Table(Rc<RefCell<Ranks>>);
    impl Collector<Change<(i64, i64, i64, i64)>> for Table {
        fn push(&mut self, c: &Change<(i64, i64, i64, i64)>) {
            let (s, rank, id, price) = *c.row();
            match c {
                Change::Upsert(_) => self.0.borrow_mut().insert((s, rank), (id, price)),
                Change::Delete(_) => self.0.borrow_mut().remove(&(s, rank)),
            };
        }
        fn watermark(&mut self, _: i64) {}
        fn barrier(&mut self, _: u64) {}
        fn tick(&mut self) {}
        fn finish(&mut self) {}
    }

    /// The table a naive recomputation gives for the current rows.
    fn naive(current: &BTreeMap<i64, (i64, i64)>) -> Ranks {
        let mut by_seller: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
        for (id, (seller, price)) in current {
            by_seller.entry(*seller).or_default().push((*id, *price));
        }
        let mut out = BTreeMap::new();
        for (seller, mut rows) in by_seller {
            rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            for (i, (id, price)) in rows.into_iter().take(2).enumerate() {
                out.insert((seller, i as i64 + 1), (id, price));
            }
        }
        out
    }

    #[test]
    fn revisions_and_deletes_keep_the_top_n_of_the_current_rows() {
        revisions_against_the_naive_table(&mut |_| {});
    }

    /// The same with both maps on disk, a cache so small that most partitions and rows are
    /// written and read back; and a checkpoint of it restores in memory.
    #[cfg(feature = "state-disk")]
    #[test]
    fn on_disk_revisions_and_deletes_keep_the_top_n_and_restore_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 1 << 10);
        let op = revisions_against_the_naive_table(&mut |op| {
            op.rows = Keyed::spilled_to(&store);
            op.previous = Keyed::spilled_to(&store);
        });
        assert!(op.rows.weighs());
        let mut bytes = Vec::new();
        op.save_state(&mut bytes);
        let metrics = Metrics::new();
        let mut memory = RetractTopNOp::<Top, _>::new(metrics.op("top"), 2, Table::default());
        memory.load_state(&mut bytes.as_slice()).unwrap();
        assert!(!memory.rows.weighs());
        assert_eq!(memory.state_size(), op.state_size());
        let mut again = Vec::new();
        memory.save_state(&mut again);
        assert_eq!(again.len(), bytes.len());
    }

    /// Random upserts and deletes into an operator `setup` prepares, checked against the
    /// naive table after every few steps; returns the operator.
    fn revisions_against_the_naive_table(
        setup: &mut dyn FnMut(&mut RetractTopNOp<Top, Table>),
    ) -> RetractTopNOp<Top, Table> {
        let table = Table::default();
        let metrics = Metrics::new();
        let mut op = RetractTopNOp::<Top, _>::new(metrics.op("top"), 2, table.clone());
        setup(&mut op);
        let mut current: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        // Distinct prices, so the order has no ties and the naive table is unambiguous.
        let mut x = 0x9e37_79b9_u64;
        for step in 0..3000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 40) as i64;
            let seller = id % 3;
            let price = (x >> 8) as i64 % 1_000_000 * 4000 + step;
            if x.is_multiple_of(5) {
                op.push(&Change::Delete((id, seller, 0)));
                current.remove(&id);
            } else {
                op.push(&Change::Upsert((id, seller, price)));
                current.insert(id, (seller, price));
            }
            if step.rem_euclid(7) == 0 {
                op.watermark(step);
                assert_eq!(*table.0.borrow(), naive(&current), "after step {step}");
            }
        }
        op.watermark(3000);
        assert_eq!(*table.0.borrow(), naive(&current));
        assert_eq!(op.state_size().1, current.len());
        op
    }

    /// A change that arrives after a restore, before the next watermark, writes its
    /// partition at the watermark saved (it wrote nothing before the watermark was saved).
    #[test]
    fn after_a_restore_a_change_writes_at_the_watermark_saved() {
        let metrics = Metrics::new();
        let make = || RetractTopNOp::<Top, _>::new(metrics.op("top"), 2, Table::default());
        let mut op = make().with_ttl(10);
        op.watermark(100);
        op.push(&Change::Upsert((1, 7, 50))); // seller 7 written at 100
        op.watermark(105);
        let mut bytes = Vec::new();
        op.save_state(&mut bytes);
        let mut restored = make().with_ttl(10);
        restored.load_state(&mut bytes.as_slice()).unwrap();
        restored.restored(0);
        restored.push(&Change::Upsert((2, 7, 40))); // seller 7 written at 105
        restored.watermark(111); // 105 + 10 is not < 111: kept
        assert_eq!(restored.state_size(), (1, 2));
        restored.watermark(116);
        assert_eq!(restored.state_size(), (0, 0));
    }

    #[test]
    fn with_a_ttl_a_partition_expires_after_the_watermark_moves_on_without_a_change() {
        let table = Table::default();
        let metrics = Metrics::new();
        let mut op = RetractTopNOp::<Top, _>::new(metrics.op("top"), 2, table.clone()).with_ttl(10);
        op.push(&Change::Upsert((1, 7, 50))); // before the first watermark: counts from it
        op.push(&Change::Upsert((2, 8, 40)));
        op.watermark(100);
        op.push(&Change::Upsert((3, 8, 30))); // seller 8 written at 100
        op.watermark(110); // 100 + 10 is not < 110: both kept
        assert_eq!(op.state_size(), (2, 3));
        op.push(&Change::Upsert((2, 8, 45))); // seller 8 written at 110
        op.watermark(111); // seller 7 (last change at 100) expires, silently
        assert_eq!(op.state_size(), (1, 2));
        // A later version of the expired row enters as a new row; a delete of it is ignored.
        op.push(&Change::Delete((1, 7, 0)));
        op.push(&Change::Upsert((1, 7, 20)));
        op.watermark(121); // seller 8 (110) expires; seller 7 (111) lives
        assert_eq!(op.state_size(), (1, 1));
        op.finish();
        // Expiry emits nothing: the table keeps the rows last sent.
        let want: Ranks = [((7, 1), (1, 20)), ((8, 1), (2, 45)), ((8, 2), (3, 30))]
            .into_iter()
            .collect();
        assert_eq!(*table.0.borrow(), want);
        // A saved state restores the partition times.
        let mut bytes = Vec::new();
        op.save_state(&mut bytes);
        let mut restored =
            RetractTopNOp::<Top, _>::new(metrics.op("top"), 2, Table::default()).with_ttl(10);
        restored.load_state(&mut bytes.as_slice()).unwrap();
        restored.restored(0);
        restored.watermark(121);
        assert_eq!(restored.state_size(), (1, 1));
        restored.watermark(122);
        assert_eq!(restored.state_size(), (0, 0));
    }
}
