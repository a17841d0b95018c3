//! Encodes rows with a generated encoder and writes them to stdout or a file, buffered.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::metrics::{OpCounters, OpMetrics};
use crate::sinks::committed::CommittedFile;

/// Where a writer sink writes.
pub enum Output {
    Stdout,
    File(BufWriter<File>),
    /// A file in a checkpointed run: rows are published when checkpoints complete.
    Committed(CommittedFile),
}

/// Opens a sink's output; a file is created (or truncated) along with its parent folders.
/// In a checkpointed run the file is left alone until the sink knows what was committed. An
/// `s3://` path is always a committed file: without checkpoints its object is written at the
/// end of input ([`crate::sinks::object`]).
pub fn open_output(path: Option<&Path>) -> Result<Output, String> {
    let path = path.map(crate::scale_out::task_path);
    let path = path.as_deref();
    if let Some(path) = path {
        crate::context::claim_file(path, crate::context::FileUse::Writes, "this sink")?;
    }
    match path {
        None => Ok(Output::Stdout),
        Some(path)
            if crate::checkpoint::enabled() || crate::sinks::object::is_object_path(path) =>
        {
            Ok(Output::Committed(CommittedFile::new(path)?))
        }
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|err| format!("cannot create folder {}: {err}", parent.display()))?;
            }
            let file = File::create(path)
                .map_err(|err| format!("cannot create {}: {err}", path.display()))?;
            Ok(Output::File(BufWriter::with_capacity(1 << 16, file)))
        }
    }
}

/// The file a sink with `parts: true` writes from instance `instance`: `folder/part-N.EXT`.
pub fn part_path(folder: &Path, instance: usize, extension: &str) -> PathBuf {
    folder.join(format!("part-{instance}.{extension}"))
}

/// Readies the folder of a sink writing `count` part files (called once, before any instance
/// opens its part): creates it, and outside checkpointed runs removes the part files an
/// earlier run with more instances left (`part-N.EXT` for `N >= count`), so that the folder
/// holds this run's output alone, as a plain file sink truncates its file. In a checkpointed
/// run nothing is removed: each part is a committed file that knows what was published.
pub fn prepare_parts(folder: &Path, extension: &str, count: usize) -> Result<(), String> {
    if crate::sinks::object::is_object_path(folder) {
        return prepare_object_parts(folder, extension, count);
    }
    std::fs::create_dir_all(folder)
        .map_err(|err| format!("cannot create folder {}: {err}", folder.display()))?;
    if crate::checkpoint::enabled() {
        return Ok(());
    }
    let entries = std::fs::read_dir(folder)
        .map_err(|err| format!("cannot read folder {}: {err}", folder.display()))?;
    let suffix = format!(".{extension}");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let stale = name
            .to_str()
            .and_then(|n| n.strip_prefix("part-"))
            .and_then(|n| n.strip_suffix(suffix.as_str()))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|index| index >= count);
        if stale {
            let path = entry.path();
            std::fs::remove_file(&path)
                .map_err(|err| format!("cannot remove {}: {err}", path.display()))?;
        }
    }
    Ok(())
}

/// [`prepare_parts`] on object storage: outside checkpointed runs the objects of instances
/// `count..` (`part-N.EXT`, and `part-N-000001.EXT` of a checkpointed run) are deleted.
#[cfg(feature = "object-store")]
fn prepare_object_parts(folder: &Path, extension: &str, count: usize) -> Result<(), String> {
    let url = folder.to_string_lossy();
    let (objects, dir) = crate::sinks::object::Objects::connect(&url)?;
    if crate::checkpoint::enabled() {
        return Ok(());
    }
    let suffix = format!(".{extension}");
    for name in objects.names_in(&dir)? {
        let stale = name
            .strip_prefix("part-")
            .and_then(|n| n.strip_suffix(suffix.as_str()))
            .map(|n| n.split_once('-').map_or(n, |(index, _)| index))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|index| index >= count);
        if stale {
            objects.delete(&crate::sinks::object::join(&dir, &name))?;
        }
    }
    Ok(())
}

#[cfg(not(feature = "object-store"))]
fn prepare_object_parts(folder: &Path, _extension: &str, _count: usize) -> Result<(), String> {
    Err(crate::sinks::object::missing(&folder.to_string_lossy()))
}

const FLUSH_AT: usize = 1 << 16;

pub struct Writer<E> {
    output: Output,
    encode: E,
    buf: Vec<u8>,
    /// Rows encoded into `buf` and not yet written.
    buffered: u64,
    /// `records_out` counts rows written without an error, not rows received: after a write
    /// error the summary says what reached the output.
    stats: OpCounters,
    metrics: OpMetrics,
    failed: bool,
    slot: StateSlot,
    /// Written before every row and the header (a preview's `[sink] `); usually empty.
    prefix: Vec<u8>,
}

impl<E> Writer<E> {
    /// `header` is written first (e.g. a CSV header line), if not empty.
    pub fn new(metrics: OpMetrics, mut output: Output, header: &[u8], encode: E) -> Self {
        let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
        let repeated = match &mut output {
            Output::Committed(file) => file.takes_header(header),
            _ => false,
        };
        if !repeated {
            buf.extend_from_slice(header);
        }
        Writer {
            output,
            encode,
            buf,
            buffered: 0,
            stats: metrics.counters(),
            metrics,
            failed: false,
            slot: StateSlot::inert(),
            prefix: Vec::new(),
        }
    }

    /// Starts every line (the header's too) with `prefix`.
    pub fn with_prefix(mut self, prefix: &[u8]) -> Self {
        if !self.buf.is_empty() {
            self.buf.splice(0..0, prefix.iter().copied());
        }
        self.prefix = prefix.to_vec();
        self
    }

    /// Takes part in checkpoints through `slot`: a file is then written exactly once.
    pub fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String> {
        if let Output::Committed(file) = &mut self.output {
            let restored =
                match slot.take_restored() {
                    Some(bytes) => Some(crate::state::decode::<u64>(&bytes).map_err(|e| {
                        format!("cannot restore sink `{}`: {e}", self.metrics.name())
                    })?),
                    None => None,
                };
            if restored.unwrap_or(0) > 0 && !file.is_object() {
                self.buf.clear(); // the header is in the committed part already
            }
            file.start(restored)
                .map_err(|e| format!("sink `{}`: {e}", self.metrics.name()))?;
        }
        self.slot = slot;
        Ok(self)
    }

    /// Fails the run (rows would be lost) and gives up the checkpoint in flight.
    fn fail(&mut self, err: &str) {
        if !self.failed {
            crate::context::report_error(format!("sink `{}`: {err}", self.metrics.name()));
        }
        self.slot.abandon();
        self.failed = true;
    }

    fn flush(&mut self) {
        if self.failed {
            self.buf.clear();
            self.buffered = 0;
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
        let rows = std::mem::take(&mut self.buffered);
        if result.is_ok() {
            self.stats.records_out += rows;
        }
        if let Err(err) = result {
            // A closed stdout (`| head`) ends the output quietly; a full disk fails the run.
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                self.failed = true;
            } else {
                self.fail(&format!("write failed: {err}"));
            }
        }
        self.buf.clear();
    }
}

impl<T, E: FnMut(&T, &mut Vec<u8>)> Collector<T> for Writer<E> {
    #[inline]
    fn push(&mut self, record: &T) {
        self.stats.records_in += 1;
        self.buffered += 1;
        self.buf.extend_from_slice(&self.prefix);
        (self.encode)(record, &mut self.buf);
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Rows reach a terminal as event time advances, not only when the buffer fills.
    fn watermark(&mut self, _watermark: i64) {
        if matches!(self.output, Output::Stdout) && !self.buf.is_empty() {
            self.flush();
        }
    }

    /// Stdout and a plain file get what is buffered once per flush interval, so a trickling
    /// input shows up as it comes; a checkpointed file publishes at commits anyway.
    fn tick(&mut self) {
        if !self.buf.is_empty() && !matches!(self.output, Output::Committed(_)) {
            self.flush();
        }
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.flush();
        if let Output::Committed(file) = &mut self.output {
            if let Err(err) = file.barrier(&self.slot, checkpoint) {
                self.fail(&err);
            }
        }
    }

    fn finish(&mut self) {
        self.flush();
        match &mut self.output {
            Output::File(file) => {
                if let Err(err) = file.flush() {
                    self.fail(&format!("write failed: {err}"));
                }
            }
            Output::Committed(file) => {
                if let Err(err) = file.finish(&self.slot) {
                    self.fail(&err);
                }
            }
            Output::Stdout => {}
        }
        self.metrics.report(&self.stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_parts_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("out");
        std::fs::create_dir_all(&folder).unwrap();
        for name in [
            "part-0.jsonl",
            "part-1.jsonl",
            "part-2.jsonl",
            "part-10.jsonl",
            "part-2.csv",
            "part-x.jsonl",
            "part-.jsonl",
            "part-3.p1.jsonl",
            "notes.txt",
        ] {
            std::fs::write(folder.join(name), b"x").unwrap();
        }
        prepare_parts(&folder, "jsonl", 2).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "notes.txt",
                "part-.jsonl",
                "part-0.jsonl",
                "part-1.jsonl",
                "part-2.csv",
                "part-3.p1.jsonl",
                "part-x.jsonl"
            ]
        );
        assert_eq!(part_path(&folder, 1, "csv"), folder.join("part-1.csv"));
        // A folder that does not exist yet is created.
        prepare_parts(&dir.path().join("a/b"), "csv", 1).unwrap();
        assert!(dir.path().join("a/b").is_dir());
    }
}
