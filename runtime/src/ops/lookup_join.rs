//! Lookup join: each record of one stream against a static table loaded before the pipeline
//! starts (a dimension table from a file).
//!
//! A single-input operator (a `Collector<S::In>`, no [`Either`](super::Either)): every record is
//! joined on arrival with the table rows of its key, in the table's row order, and every row
//! [`LookupSpec::join`] accepts is emitted. With `left_outer`, a record no row matched emits
//! `left_only` instead. A record whose key is null ([`LookupSpec::is_null_key`]) matches nothing.
//!
//! State is the table alone, never modified, so nothing expires and nothing is late; watermarks
//! pass through unchanged and the output keeps the input's event time. The table is held in an
//! `Arc`: parallel instances can share one copy (`new` accepts the table or an `Arc` of it).
//! [`lookup_table`] builds a table from rows and a key function.
//!
//! A table declared with `refresh: 30s` is read again every 30 seconds by a thread of its own
//! ([`TableFeed`]); each instance takes the new rows on its next tick (within the flush
//! interval), never in the middle of a record. Records joined before see the old rows, those
//! after the new: nothing already emitted is revised (a processing-time lookup, as a lookup
//! cache with a TTL gives). A read that fails keeps the rows there are and says why on stderr.

use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::collector::Collector;
use crate::hash::FastMap;
use crate::metrics::{OpCounters, OpMetrics};

use super::join::emit;

/// The per-query part of a lookup join, generated for each lookup join step.
pub trait LookupSpec {
    /// Records of the stream.
    type In;
    /// Rows of the table.
    type Row;
    type Key: Hash + Eq;
    type Out;
    /// The lookup key of a stream record.
    fn key(record: &Self::In) -> Self::Key;
    /// Extra join condition and projection of a record and a row with its key; `None` drops
    /// the pair (and does not count as a match for `left_outer`).
    fn join(record: &Self::In, row: &Self::Row) -> Option<Self::Out>;
    /// Projection of a record no row matched, for LEFT OUTER (table side null).
    fn left_only(record: &Self::In) -> Self::Out;
    /// Whether `key` can match nothing (SQL: one of its columns is null). Default: never.
    #[inline]
    fn is_null_key(_key: &Self::Key) -> bool {
        false
    }
}

/// A lookup table: key -> rows with that key, in load order.
pub type LookupTable<K, R> = FastMap<K, Vec<R>>;

/// Builds a lookup table from rows and their key function, keeping the rows' order per key.
/// Rows whose key is null should be filtered out first (they can never be looked up).
pub fn lookup_table<K: Hash + Eq, R>(
    rows: impl IntoIterator<Item = R>,
    mut key: impl FnMut(&R) -> K,
) -> LookupTable<K, R> {
    let mut table: LookupTable<K, R> = FastMap::default();
    for row in rows {
        table.entry(key(&row)).or_default().push(row);
    }
    table
}

/// The latest rows of a table read again every so often (`refresh:`), shared by the lookup
/// joins that read it: a version number and the rows.
pub struct TableFeed<R> {
    latest: Arc<Mutex<(u64, Arc<Vec<R>>)>>,
}

impl<R> Clone for TableFeed<R> {
    fn clone(&self) -> Self {
        TableFeed {
            latest: self.latest.clone(),
        }
    }
}

impl<R: Send + Sync + 'static> TableFeed<R> {
    /// Starts a thread that calls `read` every `every_ms` and publishes the rows it returns
    /// (`None`: the table is as it was, nothing to publish). The thread ends once no lookup
    /// join holds the feed any more (it checks when it wakes up).
    pub fn start(
        table: &str,
        every_ms: i64,
        rows: Vec<R>,
        mut read: impl FnMut() -> Result<Option<Vec<R>>, String> + Send + 'static,
    ) -> Result<TableFeed<R>, String> {
        let latest = Arc::new(Mutex::new((0, Arc::new(rows))));
        let feed = TableFeed {
            latest: latest.clone(),
        };
        let every = Duration::from_millis(every_ms.max(1) as u64);
        let name = table.to_string();
        let spawned = std::thread::Builder::new()
            .name(format!("refresh-{table}"))
            .spawn(move || loop {
                std::thread::sleep(every);
                if Arc::strong_count(&latest) == 1 {
                    return;
                }
                match read() {
                    Ok(None) => {}
                    Ok(Some(rows)) => {
                        let mut latest = latest.lock().unwrap_or_else(|e| e.into_inner());
                        latest.0 += 1;
                        latest.1 = Arc::new(rows);
                    }
                    Err(e) => tracing::warn!(
                        "table `{name}`: reading it again failed, the joins keep its previous rows: {e}"
                    ),
                }
            });
        spawned.map_err(|e| {
            format!("table `{table}`: cannot start the thread that reads it again: {e}")
        })?;
        Ok(feed)
    }
}

impl<R> TableFeed<R> {
    /// The rows, if newer than version `seen`, with their version.
    fn newer_than(&self, seen: u64) -> Option<(u64, Arc<Vec<R>>)> {
        let latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        (latest.0 > seen).then(|| (latest.0, latest.1.clone()))
    }
}

/// What a refreshed lookup join checks on each tick: a new table, built from newer rows.
type Reload<K, R> = Box<dyn FnMut() -> Option<LookupTable<K, R>>>;

/// Builds a lookup table from a table's rows (generated per join: it knows the key).
pub type BuildTable<K, R> = fn(Vec<R>) -> LookupTable<K, R>;

pub struct LookupJoin<S: LookupSpec, N> {
    table: Arc<LookupTable<S::Key, S::Row>>,
    reload: Option<Reload<S::Key, S::Row>>,
    left_outer: bool,
    finished: bool,
    next: N,
    stats: OpCounters,
    metrics: OpMetrics,
}

impl<S: LookupSpec, N: Collector<S::Out>> LookupJoin<S, N> {
    /// Joins against `table`: a [`LookupTable`], or an `Arc` of one shared by instances.
    pub fn new(
        metrics: OpMetrics,
        table: impl Into<Arc<LookupTable<S::Key, S::Row>>>,
        left_outer: bool,
        next: N,
    ) -> Self {
        LookupJoin {
            table: table.into(),
            reload: None,
            left_outer,
            finished: false,
            next,
            stats: metrics.counters(),
            metrics,
        }
    }

    /// Takes the rows `feed` publishes, from version 1 on (version 0 is the table `new` was
    /// given), building each table with `build` on the tick after it arrives.
    pub fn refreshed_by(
        mut self,
        feed: TableFeed<S::Row>,
        build: BuildTable<S::Key, S::Row>,
    ) -> Self
    where
        S::Row: Clone + 'static,
        S::Key: 'static,
    {
        let mut seen = 0;
        self.reload = Some(Box::new(move || {
            let (version, rows) = feed.newer_than(seen)?;
            seen = version;
            Some(build(rows.as_ref().clone()))
        }));
        self
    }

    /// Rows in the table (for tests and metrics).
    pub fn state_size(&self) -> usize {
        self.table.values().map(Vec::len).sum()
    }
}

impl<S: LookupSpec, N: Collector<S::Out>> Collector<S::In> for LookupJoin<S, N> {
    #[inline]
    fn push(&mut self, record: &S::In) {
        if self.finished {
            return;
        }
        self.stats.records_in += 1;
        let key = S::key(record);
        let mut matched = false;
        if !S::is_null_key(&key) {
            if let Some(rows) = self.table.get(&key) {
                for row in rows {
                    if let Some(out) = S::join(record, row) {
                        matched = true;
                        emit(&mut self.next, &mut self.stats, &out);
                    }
                }
            }
        }
        if self.left_outer && !matched {
            emit(&mut self.next, &mut self.stats, &S::left_only(record));
        }
    }

    fn watermark(&mut self, watermark: i64) {
        if !self.finished {
            self.next.watermark(watermark);
        }
    }
    /// The table is read from its file again on restart: nothing to save.
    fn barrier(&mut self, checkpoint: u64) {
        self.next.barrier(checkpoint);
    }
    fn tick(&mut self) {
        if self.finished {
            return;
        }
        if let Some(table) = self.reload.as_mut().and_then(|reload| reload()) {
            self.table = Arc::new(table);
        }
        self.next.tick();
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.metrics.report(&self.stats);
        self.next.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::ops::join::testing::Log;

    /// Stream records are (key, name); table rows are (key, name). A row whose name starts
    /// with `!` fails the extra condition; key -1 is null.
    struct Lookup;

    impl LookupSpec for Lookup {
        type In = (i64, &'static str);
        type Row = (i64, &'static str);
        type Key = i64;
        type Out = String;
        fn key(r: &(i64, &'static str)) -> i64 {
            r.0
        }
        fn join(r: &(i64, &'static str), row: &(i64, &'static str)) -> Option<String> {
            (!row.1.starts_with('!')).then(|| format!("{}+{}", r.1, row.1))
        }
        fn left_only(r: &(i64, &'static str)) -> String {
            format!("{}+null", r.1)
        }
        fn is_null_key(key: &i64) -> bool {
            *key < 0
        }
    }

    fn table() -> LookupTable<i64, (i64, &'static str)> {
        let rows = [
            (1, "one"),
            (2, "two"),
            (1, "uno"),
            (3, "!three"),
            (-1, "null"),
        ];
        lookup_table(rows, |row| row.0)
    }

    #[test]
    fn the_table_keeps_row_order_per_key() {
        let t = table();
        assert_eq!(t[&1], [(1, "one"), (1, "uno")]);
        assert_eq!(t[&2], [(2, "two")]);
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn inner_lookup_emits_every_accepted_row_in_table_order() {
        let log = Log::default();
        let metrics = Metrics::new();
        let mut j = LookupJoin::<Lookup, _>::new(metrics.op("lookup"), table(), false, log.clone());
        assert_eq!(j.state_size(), 5);
        for r in [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (-1, "e")] {
            j.push(&r);
        }
        j.watermark(7);
        j.finish();
        j.push(&(1, "after"));
        j.watermark(8);
        j.finish();
        assert_eq!(log.take(), ["a+one", "a+uno", "b+two", "wm 7", "end"]);
        let stats = &metrics.ops()[0].1;
        assert_eq!((stats.records_in, stats.records_out, stats.late), (5, 3, 0));
    }

    #[test]
    fn left_outer_lookup_emits_left_only_once_for_unmatched_records() {
        let log = Log::default();
        let metrics = Metrics::new();
        let shared = Arc::new(table());
        let mut j =
            LookupJoin::<Lookup, _>::new(metrics.op("lookup"), shared.clone(), true, log.clone());
        for r in [(1, "a"), (3, "refused"), (4, "missing"), (-1, "null")] {
            j.push(&r);
        }
        j.finish();
        assert_eq!(
            log.take(),
            [
                "a+one",
                "a+uno",
                "refused+null",
                "missing+null",
                "null+null",
                "end"
            ]
        );
        assert_eq!(Arc::strong_count(&shared), 2); // shared, not copied
        let stats = &metrics.ops()[0].1;
        assert_eq!((stats.records_in, stats.records_out), (4, 5));
    }
}
