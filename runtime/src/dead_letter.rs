//! The dead-letter output: malformed input records, with where they came from and why they
//! were rejected, one JSON object per line. The file is created when the first dead letter
//! arrives, so a clean run leaves nothing behind (and empties what an earlier run left there).
//!
//! Dead letters are at least once under checkpoints: a run that resumes from a checkpoint
//! appends to the file (never truncates it), and sources flush it at every barrier, so the
//! dead letters of everything a checkpoint covers are on disk once it completes; what a
//! restart replays may be written again. A dead letter that cannot be written (a full disk)
//! fails the run, and the summary counts only those written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::formats::json;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct DeadLetters {
    path: PathBuf,
    out: Arc<Mutex<Output>>,
    metrics: Metrics,
}

#[derive(Default)]
struct Output {
    file: Option<BufWriter<File>>,
    /// Dead letters handed to the file, and how many of them were lost to write errors.
    written: u64,
    lost: u64,
    /// Letters in the buffer, not yet known to be written.
    buffered: u64,
    failed: bool,
}

impl Output {
    fn fail(&mut self, path: &std::path::Path, what: &str, err: std::io::Error) {
        self.lost += self.buffered;
        self.buffered = 0;
        self.file = None;
        if !self.failed {
            self.failed = true;
            crate::context::report_error(format!(
                "cannot {what} dead-letter file {}: {err}; malformed records are lost",
                path.display()
            ));
        }
    }
}

impl DeadLetters {
    pub fn new(path: PathBuf, metrics: Metrics) -> Self {
        let path = crate::scale_out::task_path(&path);
        DeadLetters {
            path,
            out: Arc::new(Mutex::new(Output::default())),
            metrics,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Once the run's files are checked against each other (after `build`, in the run's
    /// context): empties the file an earlier run left, so that it holds this run's dead
    /// letters only, none for a clean run, unless this run resumes from a checkpoint (it then
    /// adds to it) or has written to it already. Not before the check: the path may be a
    /// sink's file or a source's input, which the check refuses to touch.
    pub fn start(&self) {
        let out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out.file.is_some() || out.failed || crate::checkpoint::resumed() {
            return;
        }
        if self.path.is_file() {
            if let Ok(file) = std::fs::OpenOptions::new().write(true).open(&self.path) {
                let _ = file.set_len(0);
            }
        }
    }

    /// Records one rejected input line: `{"source":..,"line":..,"reason":..,"raw":..}`.
    pub fn write(&self, source: &str, line: u64, reason: &str, raw: &str) {
        self.metrics.add_dead_letter();
        self.metrics
            .keep_dead_letter(source, Some(line), reason, raw);
        let mut buf = Vec::with_capacity(raw.len() + reason.len() + 64);
        buf.push(b'{');
        json::write_key(&mut buf, "source");
        json::write_string(&mut buf, source);
        buf.push(b',');
        json::write_key(&mut buf, "line");
        json::write_i64(&mut buf, line as i64);
        buf.push(b',');
        json::write_key(&mut buf, "reason");
        json::write_string(&mut buf, reason);
        buf.push(b',');
        json::write_key(&mut buf, "raw");
        json::write_string(&mut buf, raw);
        buf.extend_from_slice(b"}\n");
        self.append(buf);
    }

    fn append(&self, buf: Vec<u8>) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out.failed {
            out.lost += 1;
            return;
        }
        if out.file.is_none() {
            // A run that resumes from a checkpoint adds to what earlier runs wrote.
            let opened = if crate::checkpoint::resumed() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)
            } else {
                File::create(&self.path)
            };
            match opened {
                Ok(file) => out.file = Some(BufWriter::new(file)),
                Err(err) => {
                    out.buffered = 1;
                    out.fail(&self.path, "create", err);
                    return;
                }
            }
        }
        out.buffered += 1;
        let result = match out.file.as_mut() {
            Some(writer) => writer.write_all(&buf),
            None => Ok(()),
        };
        if let Err(err) = result {
            out.fail(&self.path, "write", err);
        }
    }

    /// Records one record an operator rejected (an integer overflow):
    /// `{"operator":..,"reason":..,"record":..}`, the record in Rust's debug notation.
    pub fn write_rejected(&self, operator: &str, reason: &str, record: &str) {
        self.metrics.add_dead_letter();
        self.metrics
            .keep_dead_letter(operator, None, reason, record);
        let mut buf = Vec::with_capacity(record.len() + reason.len() + 64);
        buf.push(b'{');
        json::write_key(&mut buf, "operator");
        json::write_string(&mut buf, operator);
        buf.push(b',');
        json::write_key(&mut buf, "reason");
        json::write_string(&mut buf, reason);
        buf.push(b',');
        json::write_key(&mut buf, "record");
        json::write_string(&mut buf, record);
        buf.extend_from_slice(b"}\n");
        self.append(buf);
    }

    /// Writes out what is buffered and syncs it (at checkpoints and at the end).
    pub fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out.buffered == 0 {
            return;
        }
        let Some(writer) = out.file.as_mut() else {
            return;
        };
        match writer.flush().and_then(|_| writer.get_ref().sync_data()) {
            Ok(()) => {
                out.written += out.buffered;
                out.buffered = 0;
            }
            Err(err) => out.fail(&self.path, "write", err),
        }
    }

    /// Dead letters written to the file (after [`flush`](Self::flush)), and those lost.
    pub fn counts(&self) -> (u64, u64) {
        let out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        (out.written, out.lost + out.buffered)
    }
}
