//! A file sink partitioned by field values, Hive style: rows go to
//! `PATH/field=value/.../part-0.EXT`, one file per partition, opened when its first row
//! arrives. Partition fields name folders and are left out of the rows themselves.
//!
//! In a checkpointed run every partition file is a [`CommittedFile`]: exactly once, published
//! at checkpoints; the committed length of every partition is this sink's state. Under an
//! `s3://` folder every partition is a committed file too, checkpoints or not (objects
//! `part-0-000001.jsonl`, ... with them, `part-0.jsonl` at the end of input without; see
//! [`crate::sinks::object`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};
use crate::sinks::committed::CommittedFile;

enum PartOut {
    Plain(BufWriter<File>),
    Committed(CommittedFile),
}

/// Appends a partition value to a path, made safe for a folder name (`/` and `\` become `_`,
/// an empty value or `.`/`..` becomes `_`).
pub fn push_value(out: &mut String, value: &str) {
    if value.is_empty() || value == "." || value == ".." {
        out.push('_');
        return;
    }
    out.extend(value.chars().map(|c| {
        if c == '/' || c == '\\' || c == '\0' {
            '_'
        } else {
            c
        }
    }));
}

pub struct PartitionedWriter<P, E> {
    base: PathBuf,
    /// The file in each partition folder (`.pN` added in a scale-out task).
    file_name: PathBuf,
    header: &'static [u8],
    files: BTreeMap<String, PartOut>,
    partition: P,
    encode: E,
    path: String,
    row: Vec<u8>,
    failed: bool,
    stats: OpCounters,
    metrics: OpMetrics,
    slot: StateSlot,
}

impl<P, E> PartitionedWriter<P, E> {
    /// `partition(row, out)` appends the row's partition folders (`dt=…/hm=…`) to `out`.
    pub fn new(
        metrics: OpMetrics,
        base: PathBuf,
        file_name: &'static str,
        header: &'static [u8],
        partition: P,
        encode: E,
    ) -> Self {
        PartitionedWriter {
            base,
            file_name: crate::scale_out::task_path(std::path::Path::new(file_name)),
            header,
            files: BTreeMap::new(),
            partition,
            encode,
            path: String::new(),
            row: Vec::new(),
            failed: false,
            stats: metrics.counters(),
            metrics,
            slot: StateSlot::inert(),
        }
    }

    /// Takes part in checkpoints through `slot`: every partition is then written exactly once.
    pub fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String> {
        if let Some(bytes) = slot.take_restored() {
            let committed: BTreeMap<String, u64> = crate::state::decode(&bytes)
                .map_err(|e| format!("cannot restore sink `{}`: {e}", self.metrics.name()))?;
            for (path, len) in committed {
                let error = |e| format!("sink `{}`: {e}", self.metrics.name());
                let mut file = CommittedFile::new(&self.base.join(&path).join(&self.file_name))
                    .map_err(error)?;
                file.takes_header(self.header);
                file.start(Some(len)).map_err(error)?;
                self.files.insert(path, PartOut::Committed(file));
            }
        }
        self.slot = slot;
        Ok(self)
    }

    fn open(&self, dir: &std::path::Path) -> std::io::Result<PartOut> {
        let path = dir.join(&self.file_name);
        if self.slot.is_active() || crate::sinks::object::is_object_path(&path) {
            let mut file = CommittedFile::new(&path).map_err(std::io::Error::other)?;
            if !file.takes_header(self.header) {
                std::fs::create_dir_all(dir)?;
            }
            file.start(None).map_err(std::io::Error::other)?;
            if !file.is_object() {
                file.write_all(self.header)?;
            }
            Ok(PartOut::Committed(file))
        } else {
            std::fs::create_dir_all(dir)?;
            let mut w = BufWriter::new(File::create(path)?);
            w.write_all(self.header)?;
            Ok(PartOut::Plain(w))
        }
    }

    /// Partitions written so far (for tests).
    pub fn partitions(&self) -> usize {
        self.files.len()
    }
}

impl<T, P: FnMut(&T, &mut String), E: FnMut(&T, &mut Vec<u8>)> Collector<T>
    for PartitionedWriter<P, E>
{
    fn push(&mut self, record: &T) {
        self.stats.records_in += 1;
        if self.failed {
            return;
        }
        self.path.clear();
        (self.partition)(record, &mut self.path);
        if !self.files.contains_key(&self.path) {
            let dir = self.base.join(&self.path);
            match self.open(&dir) {
                Ok(w) => {
                    self.files.insert(self.path.clone(), w);
                }
                Err(err) => {
                    crate::context::report_error(format!(
                        "sink `{}`: cannot write {}: {err}",
                        self.metrics.name(),
                        dir.display()
                    ));
                    self.slot.abandon();
                    self.failed = true;
                    return;
                }
            }
        }
        self.row.clear();
        (self.encode)(record, &mut self.row);
        if let Some(w) = self.files.get_mut(&self.path) {
            let written = match w {
                PartOut::Plain(w) => w.write_all(&self.row),
                PartOut::Committed(w) => w.write_all(&self.row),
            };
            if let Err(err) = written {
                crate::context::report_error(format!(
                    "sink `{}`: write failed: {err}",
                    self.metrics.name()
                ));
                self.slot.abandon();
                self.failed = true;
            }
        }
    }

    fn watermark(&mut self, _watermark: i64) {}

    /// Plain partition files get what is buffered once per flush interval; committed ones
    /// are published at checkpoints.
    fn tick(&mut self) {
        if self.failed {
            return;
        }
        for w in self.files.values_mut() {
            if let PartOut::Plain(w) = w {
                if let Err(err) = w.flush() {
                    crate::context::report_error(format!(
                        "sink `{}`: write failed: {err}",
                        self.metrics.name()
                    ));
                    self.slot.abandon();
                    self.failed = true;
                    return;
                }
            }
        }
    }

    fn barrier(&mut self, checkpoint: u64) {
        if !self.slot.is_active() {
            return;
        }
        // One part for the whole sink: the committed length of every partition and the
        // appends of all of them.
        let mut actions = Vec::new();
        let mut committed = BTreeMap::new();
        for (path, w) in self.files.iter_mut() {
            if let PartOut::Committed(file) = w {
                match file.seal_for(&self.slot, checkpoint) {
                    Ok((len, mut a)) => {
                        committed.insert(path.clone(), len);
                        actions.append(&mut a);
                    }
                    Err(err) => {
                        crate::context::report_error(format!(
                            "sink `{}`: {err}",
                            self.metrics.name()
                        ));
                        self.slot.abandon();
                        self.failed = true;
                    }
                }
            }
        }
        self.slot
            .save(checkpoint, &crate::state::encode(&committed), actions);
    }

    fn finish(&mut self) {
        let mut actions = Vec::new();
        for w in self.files.values_mut() {
            let result = match w {
                PartOut::Plain(w) => w.flush().map_err(|e| e.to_string()),
                PartOut::Committed(file) => file.take_final(&self.slot).map(|mut a| {
                    actions.append(&mut a);
                }),
            };
            if let Err(err) = result {
                crate::context::report_error(format!(
                    "sink `{}`: write failed: {err}",
                    self.metrics.name()
                ));
            }
        }
        if self.slot.is_active() {
            self.slot.finish(actions);
        } else {
            for a in &actions {
                if let Err(err) = a.apply() {
                    crate::context::report_error(format!("sink `{}`: {err}", self.metrics.name()));
                }
            }
        }
        let records = self.stats.records_in.get();
        self.stats.records_out.set(records);
        self.metrics.report(&self.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_cannot_escape_the_base_folder() {
        let mut s = String::new();
        push_value(&mut s, "../etc/passwd");
        assert_eq!(s, ".._etc_passwd");
        let mut s = String::new();
        push_value(&mut s, "..");
        assert_eq!(s, "_");
    }
}
