//! Line-oriented sources: files and stdin, in JSON lines or CSV. Each line is decoded by a
//! generated decoder that parses only the fields the pipeline uses; a line that fails to
//! decode goes to the dead-letter output with its line number and the reason, and the source
//! goes on.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::dead_letter::DeadLetters;
use crate::formats::DecodeError;
use crate::metrics::Metrics;
use crate::sources::{EventTime, WatermarkTracker};

/// Where a line source reads from.
pub enum Input<'a> {
    File(&'a Path),
    Stdin,
}

/// Reads lines from `input`, decodes each with `decode` and pushes the records into `chain`.
/// `skip_header` drops the first line (a CSV header). Empty lines are skipped.
/// Returns an error only when the input cannot be opened or read.
#[allow(clippy::too_many_arguments)]
pub fn run<T, D, C>(
    name: &str,
    input: Input<'_>,
    skip_header: bool,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    mut decode: D,
    event_time: Option<EventTime<T>>,
    mut slot: StateSlot,
    mut chain: C,
) -> Result<(), String>
where
    D: FnMut(&str) -> Result<T, DecodeError>,
    C: Collector<T>,
{
    let mut tracker = event_time
        .as_ref()
        .map(|et| WatermarkTracker::periodic(et.max_out_of_orderness_ms));
    // Position: bytes consumed and lines read (restored from a checkpoint).
    let mut offset = 0u64;
    let mut line_no = 0u64;
    if let Some(bytes) = slot.take_restored() {
        let (o, l, max_seen, emitted): (u64, u64, i64, i64) = crate::state::decode(&bytes)
            .map_err(|e| format!("source `{name}`: cannot restore its position: {e}"))?;
        (offset, line_no) = (o, l);
        if let Some(t) = tracker.as_mut() {
            t.restore(max_seen, emitted);
        }
    }
    let reader: Box<dyn Read> = match input {
        Input::File(path) => match File::open(path).and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            Ok(f)
        }) {
            Ok(file) => Box::new(file),
            Err(err) => {
                chain.watermark(i64::MAX);
                chain.finish();
                return Err(format!(
                    "source `{name}`: cannot open {}: {err}",
                    path.display()
                ));
            }
        },
        Input::Stdin if slot.is_active() => {
            chain.watermark(i64::MAX);
            chain.finish();
            return Err(format!(
                "source `{name}`: stdin cannot be read again after a restart, so it cannot be \
                 checkpointed; read from a file (or Kafka) to use --checkpoint-dir"
            ));
        }
        Input::Stdin => Box::new(std::io::stdin()),
    };
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut buf = Vec::new();
    let mut produced = 0u64;
    let mut result = Ok(());
    let mut pace = super::Pacer::new(1);
    // A checkpoint's part: bytes and lines read, the highest time seen, the last watermark.
    let part = |offset: u64, line_no: u64, tracker: Option<&WatermarkTracker>| {
        let (max_seen, emitted) = WatermarkTracker::position_of(tracker);
        crate::state::encode(&(offset, line_no, max_seen, emitted))
    };
    loop {
        if line_no.is_multiple_of(64) {
            pace.wait(produced);
        }
        if let Some(id) = slot.barrier_due() {
            slot.save(id, &part(offset, line_no, tracker.as_ref()), Vec::new());
            chain.barrier(id);
        }
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(n) => offset += n as u64,
            Err(err) => {
                result = Err(format!(
                    "source `{name}`: read error after line {line_no}: {err}"
                ));
                break;
            }
        }
        line_no += 1;
        if skip_header && line_no == 1 {
            continue;
        }
        let mut bytes = buf.as_slice();
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest;
        }
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            bytes = rest;
        }
        let line = match std::str::from_utf8(bytes) {
            Ok(line) => line,
            Err(err) => {
                let raw = String::from_utf8_lossy(bytes);
                dead_letters.write(name, line_no, &format!("invalid UTF-8: {err}"), &raw);
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match decode(line) {
            Ok(record) => {
                produced += 1;
                chain.push(&record);
                if let (Some(tracker), Some(et)) = (tracker.as_mut(), event_time.as_ref()) {
                    if let Some(wm) = tracker.observe((et.time)(&record)) {
                        chain.watermark(wm);
                    }
                }
            }
            Err(err) => dead_letters.write(name, line_no, &err.to_string(), line),
        }
    }
    metrics.add_source_records(produced);
    if let Some(id) = slot.input_ended() {
        slot.save(id, &part(offset, line_no, tracker.as_ref()), Vec::new());
        chain.barrier(id);
    }
    chain.watermark(i64::MAX);
    chain.finish();
    result
}

/// Reads a whole file of lines into memory (the table of a lookup join), decoding each line;
/// malformed lines go to the dead-letter output like a source's.
pub fn read_all<T, D>(
    name: &str,
    path: &Path,
    skip_header: bool,
    dead_letters: &DeadLetters,
    mut decode: D,
) -> Result<Vec<T>, String>
where
    D: FnMut(&str) -> Result<T, DecodeError>,
{
    let text = std::fs::read(path)
        .map_err(|err| format!("table `{name}`: cannot read {}: {err}", path.display()))?;
    let mut out = Vec::new();
    for (i, bytes) in text.split(|b| *b == b'\n').enumerate() {
        let line_no = i as u64 + 1;
        if skip_header && line_no == 1 {
            continue;
        }
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let line = match std::str::from_utf8(bytes) {
            Ok(line) => line,
            Err(err) => {
                dead_letters.write(
                    name,
                    line_no,
                    &format!("invalid UTF-8: {err}"),
                    &String::from_utf8_lossy(bytes),
                );
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match decode(line) {
            Ok(record) => out.push(record),
            Err(err) => dead_letters.write(name, line_no, &err.to_string(), line),
        }
    }
    Ok(out)
}
