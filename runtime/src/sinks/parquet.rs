//! The Parquet file sink (`file(path: "out") format parquet`): rows gathered into Arrow arrays
//! by a generated [`Columns`], written by Apache Arrow's Parquet writer, snappy-compressed.
//!
//! Every upstream instance writes files of its own, `PATH/part-<instance>-<n>.parquet` (under
//! Hive folders `field=value/` with `partition_by`; the partition fields are left out of the
//! rows, as readers put them back from the folder names). A file ends when it reaches
//! `roll_size` bytes, when it has been open `roll_interval` (processing time, looked at on
//! the flush interval's ticks), at every checkpoint and at the end of input. It is written under a hidden
//! name (`.part-<instance>-<n>.parquet.pending`) and renamed when done, so whoever reads the
//! folder never sees half a file: at once without checkpoints; with them, when the checkpoint
//! that closed it completes, which makes the output exactly once. The sink's state is the
//! number of its next file, so a restarted run never reuses a name; pending files that no
//! completed checkpoint published are deleted when it starts.
//!
//! Under an `s3://` folder a file is written in the system's temporary folder, uploaded as the
//! hidden pending object when it ends, and published by a copy to its name
//! ([`crate::sinks::object`]): the same names, at the same moments.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use arrow_array;
pub use arrow_schema;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::checkpoint::{CommitAction, StateSlot};
use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};

/// Rows gathered in a batch before they go to the writer.
const BATCH_ROWS: usize = 8192;

/// The default of `roll_size:` (bytes of a file before the next one starts).
pub const DEFAULT_ROLL_SIZE: u64 = 128 << 20;

/// A row type's columns as Arrow builders: generated per sink.
pub trait Columns<T> {
    fn new() -> Self;
    /// The Arrow schema of the columns (a field per column, in order).
    fn schema() -> SchemaRef;
    fn push(&mut self, row: &T);
    /// Rows pushed since the last `finish`.
    fn rows(&self) -> usize;
    /// The arrays of the rows pushed since the last call; the builders start empty again.
    fn finish(&mut self) -> Vec<ArrayRef>;
}

/// A file being written.
struct Open<C> {
    /// Where it is written (on object storage, a local staging file).
    pending: PathBuf,
    /// Its name when published (a path, or an `s3://` URL).
    done: PathBuf,
    writer: ArrowWriter<File>,
    columns: C,
    /// When the file was opened (for `roll_interval`).
    opened: Instant,
}

pub struct ParquetSink<T, C, P> {
    base: PathBuf,
    instance: usize,
    roll_size: u64,
    /// How long a file stays open at most (`roll_interval:`), if that is bounded.
    roll_interval: Option<Duration>,
    schema: SchemaRef,
    partition: P,
    open: BTreeMap<String, Open<C>>,
    /// The number of the next file.
    next: u64,
    /// Files closed since the last barrier (published with the next checkpoint).
    closed: Vec<CommitAction>,
    /// Files handed to a checkpoint not yet known to be complete, with its id.
    uncommitted: Vec<(u64, CommitAction)>,
    path: String,
    failed: bool,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
    _rows: std::marker::PhantomData<fn(&T)>,
}

impl<T, C: Columns<T>, P: FnMut(&T, &mut String)> ParquetSink<T, C, P> {
    /// Files of `instance` under `base`; `partition` writes a row's partition folder
    /// (`a=1/b=x`, nothing without `partition_by`); a file ends at `roll_size` bytes and,
    /// with `roll_interval_ms`, once it has been open that many milliseconds.
    pub fn new(
        metrics: OpMetrics,
        base: PathBuf,
        instance: usize,
        roll_size: u64,
        roll_interval_ms: Option<u64>,
        partition: P,
    ) -> Self {
        ParquetSink {
            base,
            instance,
            roll_size: roll_size.max(1),
            roll_interval: roll_interval_ms.map(|ms| Duration::from_millis(ms.max(1))),
            schema: C::schema(),
            partition,
            open: BTreeMap::new(),
            next: 0,
            closed: Vec::new(),
            uncommitted: Vec::new(),
            path: String::new(),
            failed: false,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
            _rows: std::marker::PhantomData,
        }
    }

    /// Takes part in checkpoints through `slot` (the output is then exactly once), and clears
    /// what an earlier run left: its pending files, and on a fresh start its finished files.
    pub fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String> {
        let restored = match slot.take_restored() {
            Some(bytes) => Some(
                crate::state::decode::<u64>(&bytes)
                    .map_err(|e| format!("cannot restore sink `{}`: {e}", self.metrics.name()))?,
            ),
            None => None,
        };
        self.next = restored.unwrap_or(0);
        self.slot = slot;
        self.clear(restored.is_none())
            .map_err(|e| format!("sink `{}`: {e}", self.metrics.name()))?;
        Ok(self)
    }

    /// The start of this instance's file names (`part-3-`; `part-3.p1-` in a scale-out task).
    fn stem(&self) -> String {
        let name = crate::scale_out::task_path(Path::new(&format!("part-{}", self.instance)));
        format!("{}-", name.display())
    }

    /// Deletes this instance's pending files under the base folder, and its finished ones
    /// when `finished_too` (a fresh start replaces the output, as other file sinks do).
    fn clear(&self, finished_too: bool) -> Result<(), String> {
        let stem = self.stem();
        let stale = |name: &str| {
            let pending = name.starts_with(&format!(".{stem}")) && name.ends_with(".pending");
            let finished = name.starts_with(&stem) && name.ends_with(".parquet");
            pending || (finished_too && finished)
        };
        if crate::sinks::object::is_object_path(&self.base) {
            return crate::sinks::object::remove_where(&self.base.to_string_lossy(), stale);
        }
        let mut dirs = vec![self.base.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push(path);
                    continue;
                }
                if stale(&entry.file_name().to_string_lossy()) {
                    std::fs::remove_file(&path)
                        .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
                }
            }
        }
        Ok(())
    }

    fn open_file(&mut self) -> Result<Open<C>, String> {
        let dir = self.base.join(&self.path);
        let name = format!("{}{}.parquet", self.stem(), self.next);
        self.next += 1;
        let done = dir.join(&name);
        let pending = if crate::sinks::object::is_object_path(&dir) {
            crate::sinks::object::staging_file(&name)
        } else {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create folder {}: {e}", dir.display()))?;
            dir.join(format!(".{name}.pending"))
        };
        let file = File::create(&pending)
            .map_err(|e| format!("cannot create {}: {e}", pending.display()))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by("weir".to_string())
            .build();
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(props))
            .map_err(|e| format!("cannot write {}: {e}", pending.display()))?;
        Ok(Open {
            pending,
            done,
            writer,
            columns: C::new(),
            opened: Instant::now(),
        })
    }

    /// Writes the rows gathered in `open` to its file.
    fn write_batch(schema: &SchemaRef, open: &mut Open<C>) -> Result<(), String> {
        let rows = open.columns.rows();
        if rows == 0 {
            return Ok(());
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batch =
            RecordBatch::try_new_with_options(schema.clone(), open.columns.finish(), &options)
                .map_err(|e| format!("cannot gather rows: {e}"))?;
        open.writer
            .write(&batch)
            .map_err(|e| format!("cannot write {}: {e}", open.pending.display()))
    }

    /// Finishes `open`'s file (its footer, synced to disk); it is published by renaming it.
    fn close(schema: &SchemaRef, mut open: Open<C>) -> Result<CommitAction, String> {
        Self::write_batch(schema, &mut open)?;
        let file = open
            .writer
            .into_inner()
            .map_err(|e| format!("cannot write {}: {e}", open.pending.display()))?;
        file.sync_data()
            .map_err(|e| format!("cannot sync {}: {e}", open.pending.display()))?;
        if crate::sinks::object::is_object_path(&open.done) {
            return crate::sinks::object::upload_pending(
                &open.pending,
                &open.done.to_string_lossy(),
            );
        }
        Ok(CommitAction::Rename {
            from: open.pending,
            to: open.done,
        })
    }

    /// Closes every open file; without checkpoints each is published at once.
    fn close_all(&mut self) -> Result<(), String> {
        for (_, open) in std::mem::take(&mut self.open) {
            let action = Self::close(&self.schema, open)?;
            self.publish(action)?;
        }
        Ok(())
    }

    fn publish(&mut self, action: CommitAction) -> Result<(), String> {
        if self.slot.is_active() {
            self.closed.push(action);
            Ok(())
        } else {
            action.apply()
        }
    }

    fn fail(&mut self, err: &str) {
        if !self.failed {
            crate::context::report_error(format!("sink `{}`: {err}", self.metrics.name()));
        }
        self.slot.abandon();
        self.failed = true;
    }

    /// Closes the files that have been open `roll_interval` or longer.
    fn roll_old(&mut self) -> Result<(), String> {
        let Some(interval) = self.roll_interval else {
            return Ok(());
        };
        let now = Instant::now();
        let old: Vec<String> = self
            .open
            .iter()
            .filter(|(_, open)| now.duration_since(open.opened) >= interval)
            .map(|(path, _)| path.clone())
            .collect();
        for path in old {
            let open = self.open.remove(&path).expect("listed above");
            let action = Self::close(&self.schema, open)?;
            self.publish(action)?;
        }
        Ok(())
    }

    fn push_row(&mut self, row: &T) -> Result<(), String> {
        self.path.clear();
        (self.partition)(row, &mut self.path);
        if !self.open.contains_key(&self.path) {
            let open = self.open_file()?;
            self.open.insert(self.path.clone(), open);
        }
        let open = self.open.get_mut(&self.path).expect("opened above");
        open.columns.push(row);
        if open.columns.rows() < BATCH_ROWS {
            return Ok(());
        }
        Self::write_batch(&self.schema, open)?;
        let size = open.writer.bytes_written() + open.writer.in_progress_size();
        if size as u64 >= self.roll_size {
            let open = self.open.remove(&self.path).expect("open above");
            let action = Self::close(&self.schema, open)?;
            self.publish(action)?;
        }
        Ok(())
    }
}

impl<T, C: Columns<T>, P: FnMut(&T, &mut String)> Collector<T> for ParquetSink<T, C, P> {
    fn push(&mut self, row: &T) {
        self.stats.records_in += 1;
        if self.failed {
            return;
        }
        match self.push_row(row) {
            Ok(()) => self.stats.records_out += 1,
            Err(err) => self.fail(&err),
        }
    }

    fn watermark(&mut self, _watermark: i64) {}

    /// With `roll_interval`, the files open that long end (and are published as any other
    /// closed file: at once, or with the next completed checkpoint).
    fn tick(&mut self) {
        if self.failed {
            return;
        }
        if let Err(err) = self.roll_old() {
            self.fail(&err);
        }
    }

    /// Every open file ends at a checkpoint: its rows are published when the checkpoint
    /// completes (a Parquet file cannot grow once its footer is written).
    fn barrier(&mut self, checkpoint: u64) {
        if self.failed {
            return;
        }
        if let Err(err) = self.close_all() {
            self.fail(&err);
            return;
        }
        self.uncommitted
            .extend(self.closed.drain(..).map(|a| (checkpoint, a)));
        let done = self.slot.completed();
        self.uncommitted.retain(|(c, _)| *c > done);
        let actions = self.uncommitted.iter().map(|(_, a)| a.clone()).collect();
        self.slot
            .save(checkpoint, &crate::state::encode(&self.next), actions);
    }

    fn finish(&mut self) {
        if !self.failed {
            match self.close_all() {
                Err(err) => self.fail(&err),
                Ok(()) if self.slot.is_active() => {
                    let done = self.slot.completed();
                    self.uncommitted.retain(|(c, _)| *c > done);
                    let mut actions: Vec<CommitAction> =
                        self.uncommitted.drain(..).map(|(_, a)| a).collect();
                    actions.append(&mut self.closed);
                    self.slot.finish(actions);
                }
                Ok(()) => {}
            }
        }
        self.metrics.report(&self.stats);
    }
}

/// Removes the files of instances `instances..` left in `base` by an earlier run with more
/// of them (each instance clears its own when it starts).
pub fn prepare(base: &Path, instances: usize) -> Result<(), String> {
    let stale = move |name: &str| {
        let rest = name.strip_prefix('.').unwrap_or(name);
        let Some(rest) = rest.strip_prefix("part-") else {
            return false;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let is_ours = name.ends_with(".parquet") || name.ends_with(".parquet.pending");
        is_ours
            && rest[digits.len()..].starts_with(['-', '.'])
            && digits.parse::<usize>().is_ok_and(|i| i >= instances)
    };
    if crate::sinks::object::is_object_path(base) {
        return crate::sinks::object::remove_where(&base.to_string_lossy(), stale);
    }
    let mut dirs = vec![base.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            } else if stale(&entry.file_name().to_string_lossy()) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| format!("cannot remove {}: {e}", entry.path().display()))?;
            }
        }
    }
    Ok(())
}

/// An Arrow schema field (for generated [`Columns::schema`]).
pub fn field(name: &str, ty: arrow_schema::DataType, nullable: bool) -> arrow_schema::Field {
    arrow_schema::Field::new(name, ty, nullable)
}

/// The Arrow type of a weir timestamp: milliseconds, UTC.
pub fn timestamp_type() -> arrow_schema::DataType {
    arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Millisecond, Some("UTC".into()))
}

/// A builder of timestamp columns of [`timestamp_type`].
pub fn timestamp_builder() -> arrow_array::builder::TimestampMillisecondBuilder {
    arrow_array::builder::TimestampMillisecondBuilder::new().with_timezone("UTC")
}

/// A finished column as an [`ArrayRef`].
pub fn array<A: arrow_array::Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}
