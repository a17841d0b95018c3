//! Sinks for updating streams (see `ops::change`). How each writes a changelog:
//! - stdout prints every change as it comes, the row with its operation first: JSON lines
//!   get an `"op"` member (`"+U"` upsert, `"-D"` delete), CSV lines an op column;
//! - a file is written as the final table, one row per key in key order (an upsert by key),
//!   when the input ends;
//! - the checksum sink hashes the final table.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use crate::checkpoint::{Snapshot, StateSlot};
use crate::collector::Collector;
use crate::metrics::{Metrics, OpCounters, OpMetrics};
use crate::ops::change::Change;
use crate::sinks::Output;
use crate::state::State;

/// How the operation is put in front of an encoded row.
#[derive(Clone, Copy, Debug)]
pub enum OpStyle {
    Json,
    Csv { delimiter: u8 },
}

/// Writes every change to stdout (or a file) as it arrives.
pub struct ChangelogWriter<E> {
    output: Output,
    style: OpStyle,
    encode: E,
    row: Vec<u8>,
    buf: Vec<u8>,
    /// Changes in `buf`; `records_out` counts those written without an error.
    buffered: u64,
    failed: bool,
    stats: OpCounters,
    metrics: OpMetrics,
    /// Written before every change and the header (a preview's `[sink] `); usually empty.
    prefix: Vec<u8>,
}

impl<E> ChangelogWriter<E> {
    /// Starts every line (the header's too) with `prefix`.
    pub fn with_prefix(mut self, prefix: &[u8]) -> Self {
        if !self.buf.is_empty() {
            self.buf.splice(0..0, prefix.iter().copied());
        }
        self.prefix = prefix.to_vec();
        self
    }

    pub fn new(
        metrics: OpMetrics,
        output: Output,
        style: OpStyle,
        header: &[u8],
        encode: E,
    ) -> Self {
        ChangelogWriter {
            output,
            style,
            encode,
            row: Vec::new(),
            buf: header.to_vec(),
            buffered: 0,
            failed: false,
            stats: metrics.counters(),
            metrics,
            prefix: Vec::new(),
        }
    }

    fn flush(&mut self) {
        let rows = std::mem::take(&mut self.buffered);
        if self.failed {
            self.buf.clear();
            return;
        }
        let result = match &mut self.output {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&self.buf).and_then(|_| out.flush())
            }
            Output::File(file) => file.write_all(&self.buf).and_then(|_| file.flush()),
            Output::Committed(file) => file.write_all(&self.buf),
        };
        match result {
            Ok(()) => self.stats.records_out += rows,
            Err(err) => {
                self.failed = true;
                if err.kind() != std::io::ErrorKind::BrokenPipe {
                    crate::context::report_error(format!(
                        "sink `{}`: write failed: {err}",
                        self.metrics.name()
                    ));
                }
            }
        }
        self.buf.clear();
    }
}

impl<T, E: FnMut(&T, &mut Vec<u8>)> Collector<Change<T>> for ChangelogWriter<E> {
    fn push(&mut self, change: &Change<T>) {
        self.stats.records_in += 1;
        self.buffered += 1;
        let op = match change {
            Change::Upsert(_) => "+U",
            Change::Delete(_) => "-D",
        };
        self.row.clear();
        (self.encode)(change.row(), &mut self.row);
        self.buf.extend_from_slice(&self.prefix);
        match self.style {
            OpStyle::Json => {
                self.buf.extend_from_slice(b"{\"op\":\"");
                self.buf.extend_from_slice(op.as_bytes());
                self.buf.extend_from_slice(b"\"");
                // The encoded row is `{...}\n`: splice its members in after the op.
                match self.row.get(1..) {
                    Some(b"}\n") | None => self.buf.extend_from_slice(b"}\n"),
                    Some(rest) => {
                        self.buf.push(b',');
                        self.buf.extend_from_slice(rest);
                    }
                }
            }
            OpStyle::Csv { delimiter } => {
                self.buf.extend_from_slice(op.as_bytes());
                self.buf.push(delimiter);
                self.buf.extend_from_slice(&self.row);
            }
        }
        if self.buf.len() >= 1 << 16 {
            self.flush();
        }
    }
    fn watermark(&mut self, _watermark: i64) {
        if !self.buf.is_empty() {
            self.flush();
        }
    }
    /// A changelog on stdout is at least once: after a restart, changes since the last
    /// checkpoint are printed again.
    fn barrier(&mut self, _checkpoint: u64) {
        if !self.buf.is_empty() {
            self.flush();
        }
    }
    fn tick(&mut self) {
        if !self.buf.is_empty() {
            self.flush();
        }
    }
    fn finish(&mut self) {
        self.flush();
        self.metrics.report(&self.stats);
    }
}

/// The final table of an updating stream: the latest row per key. In memory a B-tree; on the
/// disk backend (`--state disk`) the rows are in a [`Keyed`] map of the run's store under
/// their key's encoding, so the coldest are spilled past the memory budget like any
/// operator's state, and they are put in key order when the table is written (the keys alone
/// are sorted in memory).
pub struct Table<K, T> {
    memory: BTreeMap<K, T>,
    #[cfg(feature = "state-disk")]
    disk: Option<crate::keyed::Keyed<Vec<u8>, T>>,
}

impl<K: Ord + Clone + State, T: Clone + State> Table<K, T> {
    /// An empty table on the backend of the calling thread's run.
    pub fn new() -> Self {
        Table {
            memory: BTreeMap::new(),
            #[cfg(feature = "state-disk")]
            disk: Some(crate::keyed::Keyed::new()).filter(|k| k.weighs()),
        }
    }

    fn upsert(&mut self, key: K, row: &T) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            let bytes = crate::state::encode(&key);
            let weight = crate::state::encode(row).len();
            return disk.insert(bytes, row.clone(), weight);
        }
        self.memory.insert(key, row.clone());
    }

    fn remove(&mut self, key: &K) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            return disk.remove(&crate::state::encode(key));
        }
        self.memory.remove(key);
    }

    fn get(&mut self, key: &K) -> Option<&T> {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            return disk.get_mut(&crate::state::encode(key)).map(|row| &*row);
        }
        self.memory.get(key)
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.disk {
            return disk.len();
        }
        self.memory.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with every row, in no particular order on disk.
    pub fn for_each(&self, f: impl FnMut(&T)) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.disk {
            let mut f = f;
            return disk.for_each(|_, row| f(row));
        }
        self.memory.values().for_each(f);
    }

    /// Calls `f` with every row, in key order.
    pub fn for_each_in_order(&mut self, f: impl FnMut(&T)) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            let mut f = f;
            let mut keys: Vec<(K, Vec<u8>)> = Vec::with_capacity(disk.len());
            disk.for_each(|bytes, _| {
                if let Ok(key) = crate::state::decode::<K>(bytes) {
                    keys.push((key, bytes.clone()));
                }
            });
            keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (_, bytes) in &keys {
                if let Some(row) = disk.get_mut(bytes) {
                    f(row);
                }
            }
            return;
        }
        self.memory.values().for_each(f);
    }
}

impl<K: Ord + Clone + State, T: Clone + State> Default for Table<K, T> {
    fn default() -> Self {
        Table::new()
    }
}

/// Saved as the in-memory `BTreeMap` saves itself (the count, then each key and row), on
/// either backend, so a checkpoint restores on the other.
impl<K: Ord + Clone + State, T: Clone + State> Table<K, T> {
    fn save(&self, out: &mut Vec<u8>) {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &self.disk {
            disk.len().save(out);
            disk.for_each(|key, row| {
                out.extend_from_slice(key);
                row.save(out);
                crate::checkpoint::spill::between(out);
            });
            return;
        }
        self.memory.save(out);
    }

    fn load(&mut self, input: &mut &[u8]) -> Result<(), crate::state::StateError> {
        #[cfg(feature = "state-disk")]
        if let Some(disk) = &mut self.disk {
            disk.clear();
            let n = usize::load(input)?;
            if n > input.len() {
                return Err(crate::state::StateError::Truncated);
            }
            for _ in 0..n {
                let before = *input;
                K::load(input)?;
                let key = before[..before.len() - input.len()].to_vec();
                let at = input.len();
                let row = T::load(input)?;
                disk.insert(key, row, at - input.len());
                crate::checkpoint::mapped::release(input);
            }
            return Ok(());
        }
        self.memory = State::load(input)?;
        Ok(())
    }
}

/// Keeps the latest row per key; what it does with the final table is up to `done`.
/// The table is this sink's checkpointed state; in a checkpointed run a file gets the final
/// table at the final commit, written aside and renamed into place.
pub struct Materialize<K, T, KF, D> {
    table: Table<K, T>,
    /// With incremental checkpoints: the keys upserted or deleted since the last checkpoint.
    changed: Option<BTreeSet<K>>,
    key: KF,
    done: Option<D>,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<
        K: Ord + Clone + State,
        T: Clone + State,
        KF: FnMut(&T) -> K,
        D: FnOnce(&mut Table<K, T>, &StateSlot) -> u64,
    > Materialize<K, T, KF, D>
{
    pub fn new(metrics: OpMetrics, key: KF, done: D) -> Self {
        Materialize {
            table: Table::new(),
            changed: None,
            key,
            done: Some(done),
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    /// Takes part in checkpoints through `slot` (restoring the table, from a full part and
    /// its deltas).
    pub fn with_state(self, slot: StateSlot) -> Result<Self, String> {
        Snapshot::with_state(self, slot)
    }
}

/// The table, whole or as a delta: the keys upserted or deleted since the last checkpoint, so
/// that a checkpoint of a large final table writes what changed (`--checkpoint-incremental`).
impl<K: Ord + Clone + State, T: Clone + State, KF, D> Snapshot for Materialize<K, T, KF, D> {
    fn save_state(&self, out: &mut Vec<u8>) {
        self.table.save(out);
    }

    fn load_state(&mut self, input: &mut &[u8]) -> Result<(), crate::state::StateError> {
        self.table.load(input)
    }

    fn slot_mut(&mut self) -> &mut StateSlot {
        &mut self.slot
    }

    fn track_changes(&mut self) {
        self.changed = Some(BTreeSet::new());
    }

    fn delta_ready(&self) -> bool {
        self.changed.is_some()
    }

    /// The changed keys with their rows ([`crate::checkpoint::delta::save_keyed`]).
    fn save_delta(&mut self, out: &mut Vec<u8>) {
        let keys = self
            .changed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        crate::checkpoint::delta::save_keyed(&keys, out, |key, out| match self.table.get(key) {
            Some(row) => {
                row.save(out);
                true
            }
            None => false,
        });
    }

    fn saved_full(&mut self) {
        if let Some(changed) = &mut self.changed {
            changed.clear();
        }
    }

    fn load_delta(&mut self, input: &mut &[u8]) -> Result<(), crate::state::StateError> {
        let table = &mut self.table;
        crate::checkpoint::delta::load_keyed(input, "a final table's delta entry", |key, value| {
            match value {
                None => table.remove(&key),
                Some(input) => table.upsert(key, &T::load(input)?),
            }
            Ok(())
        })
    }
}

impl<
        K: Ord + Clone + State,
        T: Clone + State,
        KF: FnMut(&T) -> K,
        D: FnOnce(&mut Table<K, T>, &StateSlot) -> u64,
    > Collector<Change<T>> for Materialize<K, T, KF, D>
{
    fn push(&mut self, change: &Change<T>) {
        self.stats.records_in += 1;
        match change {
            Change::Upsert(row) => {
                let key = (self.key)(row);
                if let Some(changed) = &mut self.changed {
                    changed.insert(key.clone());
                }
                self.table.upsert(key, row);
            }
            Change::Delete(row) => {
                let key = (self.key)(row);
                self.table.remove(&key);
                if let Some(changed) = &mut self.changed {
                    changed.insert(key);
                }
            }
        }
    }
    fn watermark(&mut self, _watermark: i64) {}
    fn barrier(&mut self, checkpoint: u64) {
        if self.slot.is_active() {
            crate::checkpoint::snapshot_incremental(self, checkpoint);
        }
    }
    /// The table is written at the end.
    fn tick(&mut self) {}
    fn finish(&mut self) {
        if let Some(done) = self.done.take() {
            self.stats
                .records_out
                .set(done(&mut self.table, &self.slot));
        }
        self.metrics.report(&self.stats);
    }
}

/// The final table written to a file, rows in key order.
pub fn write_table<K: Ord + Clone + State, T: Clone + State>(
    name: &'static str,
    mut output: Output,
    header: &'static [u8],
    mut encode: impl FnMut(&T, &mut Vec<u8>),
) -> impl FnOnce(&mut Table<K, T>, &StateSlot) -> u64 {
    move |table: &mut Table<K, T>, slot: &StateSlot| {
        let mut buf = header.to_vec();
        table.for_each_in_order(|row| encode(row, &mut buf));
        let result = match &mut output {
            Output::Stdout => std::io::stdout()
                .lock()
                .write_all(&buf)
                .map_err(|e| e.to_string()),
            Output::File(file) => file
                .write_all(&buf)
                .and_then(|_| file.flush())
                .map_err(|e| e.to_string()),
            Output::Committed(file) => file.replace_with(&buf, slot),
        };
        match result {
            Ok(()) => table.len() as u64,
            Err(err) => {
                crate::context::report_error(format!("sink `{name}`: write failed: {err}"));
                0
            }
        }
    }
}

/// The final table's row count and checksum, reported like the append-only checksum sink.
pub fn checksum_table<K: Ord + Clone + State, T: Clone + State>(
    registry: Metrics,
    sink: &'static str,
    mut hash: impl FnMut(&T) -> u64,
) -> impl FnOnce(&mut Table<K, T>, &StateSlot) -> u64 {
    move |table: &mut Table<K, T>, _slot: &StateSlot| {
        // A sum: the order does not matter.
        let mut sum = 0u64;
        table.for_each(|row| sum = sum.wrapping_add(hash(row)));
        registry.add_checksum(sink, table.len() as u64, sum);
        table.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full table and deltas taken along a stream of upserts and deletes restore, at every
    /// point, the table the sink held there; a delta lists only the keys that changed.
    #[test]
    fn a_chain_of_deltas_restores_the_final_table() {
        chain_of_deltas(&|sink| sink);
    }

    /// The same with the table on the disk backend, all but a few rows spilled (a cache of
    /// 64 bytes), restored on either backend: rows come back in key order.
    #[cfg(feature = "state-disk")]
    #[test]
    fn a_chain_of_deltas_on_disk_restores_the_final_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::keyed::disk::tests::store(dir.path(), 64);
        chain_of_deltas(&|mut sink| {
            sink.table.disk = Some(crate::keyed::Keyed::spilled_to(&store));
            sink
        });
    }

    type Done = fn(&mut Table<i64, (i64, i64)>, &StateSlot) -> u64;
    type Sink = Materialize<i64, (i64, i64), fn(&(i64, i64)) -> i64, Done>;

    fn ordered(table: &mut Table<i64, (i64, i64)>) -> Vec<(i64, i64)> {
        let mut rows = Vec::new();
        table.for_each_in_order(|row| rows.push(*row));
        rows
    }

    fn chain_of_deltas(backend: &dyn Fn(Sink) -> Sink) {
        let metrics = Metrics::new();
        let key: fn(&(i64, i64)) -> i64 = |r| r.0;
        let new = || Materialize::new(metrics.op("sink"), key, (|_, _| 0) as Done);
        let step = |sink: &mut Sink, round: i64| {
            for i in 0..40i64 {
                let key = (i * 7 + round * 3) % 23;
                let row = (key, round * 100 + i);
                if (i + round) % 5 == 0 {
                    sink.push(&Change::Delete(row));
                } else {
                    sink.push(&Change::Upsert(row));
                }
            }
        };
        let held = |sink: &mut Sink| ordered(&mut sink.table);
        let (mut sink, _, chain) =
            crate::keyed::check_chain(&new, backend, 12, &step, &held, &[0, 1, 6, 11]);
        let mut empty = Vec::new();
        sink.save_delta(&mut empty);
        assert_eq!(empty, 0usize.to_le_bytes());
        // A delta holds each changed key once, however often it changed.
        let listed = usize::load(&mut &chain[11][..]).unwrap();
        assert!((1..=23).contains(&listed), "{listed}");
    }
}
