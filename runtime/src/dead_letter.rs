//! The dead-letter output: malformed input records, with where they came from and why they
//! were rejected, one JSON object per line. The file is created when the first dead letter
//! arrives, so a clean run leaves nothing behind.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::formats::json;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct DeadLetters {
    path: PathBuf,
    out: Arc<Mutex<Option<BufWriter<File>>>>,
    metrics: Metrics,
}

impl DeadLetters {
    pub fn new(path: PathBuf, metrics: Metrics) -> Self {
        DeadLetters {
            path: crate::scale_out::task_path(&path),
            out: Arc::new(Mutex::new(None)),
            metrics,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Records one rejected input line: `{"source":..,"line":..,"reason":..,"raw":..}`.
    pub fn write(&self, source: &str, line: u64, reason: &str, raw: &str) {
        self.metrics.add_dead_letter();
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
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out.is_none() {
            match File::create(&self.path) {
                Ok(file) => *out = Some(BufWriter::new(file)),
                Err(err) => {
                    eprintln!(
                        "weir: cannot create dead-letter file {}: {err}",
                        self.path.display()
                    );
                    return;
                }
            }
        }
        if let Some(writer) = out.as_mut() {
            if let Err(err) = writer.write_all(&buf) {
                eprintln!(
                    "weir: cannot write dead-letter file {}: {err}",
                    self.path.display()
                );
            }
        }
    }

    pub fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(writer) = out.as_mut() {
            let _ = writer.flush();
        }
    }
}
