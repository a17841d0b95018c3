//! Line-oriented sources: files and stdin, in JSON lines or CSV. Each line is decoded by a
//! generated decoder that parses only the fields the pipeline uses; a line that fails to
//! decode goes to the dead-letter output with its line number and the reason, and the source
//! goes on.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::dead_letter::DeadLetters;
use crate::formats::DecodeError;
use crate::metrics::Metrics;
use crate::sources::{EventTime, WatermarkTracker};

/// Where a line source reads from.
pub enum Input {
    /// A file opened by [`open_file`] before any sink opened its output.
    File(OpenedFile),
    Stdin,
}

/// A source's input file, opened when the pipeline starts.
pub struct OpenedFile {
    path: PathBuf,
    file: File,
}

/// Opens the input file of source `name`. Called before any sink opens its output, so that
/// a missing input (or a folder given as one) fails the start before an output file is
/// truncated.
pub fn open_file(name: &str, path: &Path) -> Result<Input, String> {
    let fail =
        |e: &dyn std::fmt::Display| format!("source `{name}`: cannot open {}: {e}", path.display());
    let file = File::open(path).map_err(|e| fail(&e))?;
    if file.metadata().map_err(|e| fail(&e))?.is_dir() {
        return Err(fail(&"it is a folder, not a file"));
    }
    Ok(Input::File(OpenedFile {
        path: path.to_path_buf(),
        file,
    }))
}

/// How many bytes at the start of a file and before a checkpointed position are checked on
/// restore: enough to tell a replaced file from the one the checkpoint read, cheap to read at
/// every checkpoint.
const SAMPLE: u64 = 4096;

/// The checksum of the (up to) [`SAMPLE`] first bytes of `file` and the (up to) [`SAMPLE`]
/// bytes before `offset`: what a checkpoint keeps to recognise its input.
fn position_checksum(file: &File, offset: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let head = offset.min(SAMPLE);
    let start = offset.saturating_sub(SAMPLE).max(head);
    let mut buf = vec![0u8; (head + offset - start) as usize];
    file.read_exact_at(&mut buf[..head as usize], 0)?;
    file.read_exact_at(&mut buf[head as usize..], start)?;
    Ok(crate::checkpoint::manifest::checksum(&buf))
}

/// Checks that `input` is still the file a checkpoint read up to `offset`: as long, with the
/// same first bytes and the same bytes just before that position.
fn check_position(name: &str, input: &OpenedFile, offset: u64, sample: u64) -> Result<(), String> {
    let path = input.path.display();
    let len = input
        .file
        .metadata()
        .map_err(|e| format!("source `{name}`: cannot read {path}: {e}"))?
        .len();
    let advice = "restore the file the checkpoint read, or remove the checkpoint folder to \
                  start over";
    if len < offset {
        return Err(format!(
            "source `{name}`: {path} is {len} bytes, but the checkpoint had read {offset} bytes \
             of it: it was replaced or cut short, so weir cannot tell where to resume; {advice}"
        ));
    }
    let now = position_checksum(&input.file, offset)
        .map_err(|e| format!("source `{name}`: cannot read {path}: {e}"))?;
    if now != sample {
        return Err(format!(
            "source `{name}`: the first bytes of {path}, or those before position {offset} \
             where the checkpoint resumes, are not the ones the checkpoint read: the file was \
             replaced or changed, so weir cannot tell where to resume; {advice}"
        ));
    }
    Ok(())
}

/// Reads lines from `input`, decodes each with `decode` and pushes the records into `chain`.
/// `skip_header` drops the first line (a CSV header). Empty lines are skipped.
/// Returns an error only when the input cannot be read, or is not the one a restored
/// checkpoint read.
#[allow(clippy::too_many_arguments)]
pub fn run<T, D, C>(
    name: &str,
    input: Input,
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
    let fail = |chain: &mut C, message: String| {
        chain.watermark(i64::MAX);
        chain.finish();
        Err(message)
    };
    if let Some(bytes) = slot.take_restored() {
        let (o, l, max_seen, emitted, sample): (u64, u64, i64, i64, u64) =
            match crate::state::decode(&bytes) {
                Ok(position) => position,
                Err(e) => {
                    return fail(
                        &mut chain,
                        format!("source `{name}`: cannot restore its position: {e}"),
                    )
                }
            };
        if let Input::File(file) = &input {
            if let Err(e) = check_position(name, file, o, sample) {
                return fail(&mut chain, e);
            }
        }
        (offset, line_no) = (o, l);
        if let Some(t) = tracker.as_mut() {
            t.restore(max_seen, emitted);
        }
    }
    // A second handle on the file, to read the bytes before a position at checkpoints.
    let mut checked: Option<File> = None;
    let reader: Box<dyn Read> = match input {
        Input::File(OpenedFile { path, mut file }) => {
            if let Err(err) = file.seek(SeekFrom::Start(offset)) {
                return fail(
                    &mut chain,
                    format!("source `{name}`: cannot read {}: {err}", path.display()),
                );
            }
            checked = file.try_clone().ok();
            Box::new(file)
        }
        Input::Stdin if slot.is_active() => {
            return fail(
                &mut chain,
                format!(
                    "source `{name}`: stdin cannot be read again after a restart, so it cannot \
                     be checkpointed; read from a file (or Kafka) to use --checkpoint-dir"
                ),
            );
        }
        Input::Stdin => Box::new(std::io::stdin()),
    };
    let mut reader = BufReader::with_capacity(1 << 16, reader);
    let mut buf = Vec::new();
    let mut produced = 0u64;
    let mut result = Ok(());
    let mut pace = super::Pacer::new(1);
    // A checkpoint's part: bytes and lines read, the highest time seen, the last watermark,
    // and the checksum of the bytes before the position (checked on restore).
    let part = |offset: u64, line_no: u64, tracker: Option<&WatermarkTracker>| {
        let (max_seen, emitted) = WatermarkTracker::position_of(tracker);
        let sample = checked
            .as_ref()
            .and_then(|f| position_checksum(f, offset).ok())
            .unwrap_or(0);
        crate::state::encode(&(offset, line_no, max_seen, emitted, sample))
    };
    loop {
        if line_no.is_multiple_of(64) {
            pace.wait(produced);
            if crate::stop::sources_stopped() {
                crate::stop::note_stopped_early();
                break;
            }
        }
        if let Some(id) = slot.barrier_due() {
            // The dead letters of what the checkpoint covers are durable once it completes
            // (a restart replays only what follows).
            dead_letters.flush();
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
    if result.is_err() {
        chain.watermark(i64::MAX);
        chain.finish();
        return result;
    }
    // Every dead letter of what was read is out before the final position is saved.
    dead_letters.flush();
    slot.end_of_input(|| part(offset, line_no, tracker.as_ref()), &mut chain);
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
