//! An Avro object container file read as a source (feature `avro`): one reader (a container
//! file is not split by byte ranges here), the file's records resolved by the `apache-avro`
//! crate from the schema the file was written with to the pipeline's (a field the pipeline
//! does not read is skipped, an `int` read as a `long`), each moved into the reused record by
//! the generated decoder. A record the decoder refuses (a null where the pipeline has no
//! optional field, an event time out of range) is a dead letter, numbered by its place in the
//! file (its `raw` says where it is: the value is half moved into the record by then); a file that is not Avro, or whose schema cannot be read as the pipeline's, fails the
//! run. The position a checkpoint keeps is the number of records read.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::dead_letter::DeadLetters;
use crate::formats::avro::{Avro, Value};
use crate::formats::DecodeError;
use crate::metrics::Metrics;
use crate::sources::{EventTime, Pacer, WatermarkTracker};
use crate::tick::Ticker;

/// A source's Avro file, checked to exist when the pipeline starts (before any sink opens
/// its output: a missing input must not cost the previous output).
#[derive(Clone, Debug)]
pub struct AvroInput {
    path: PathBuf,
    /// A regular file, not a named pipe: it never trickles (see the line sources).
    regular: bool,
}

pub fn open_file(name: &str, path: &Path) -> Result<AvroInput, String> {
    let fail =
        |e: &dyn std::fmt::Display| format!("source `{name}`: cannot open {}: {e}", path.display());
    let metadata = std::fs::metadata(path).map_err(|e| fail(&e))?;
    if metadata.is_dir() {
        return Err(fail(&"it is a folder, not a file"));
    }
    Ok(AvroInput {
        path: path.to_path_buf(),
        regular: metadata.is_file(),
    })
}

/// Reads the file into `chain` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn run<T, D, C>(
    name: &str,
    input: &AvroInput,
    avro: &Avro,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    mut decode: D,
    event_time: Option<EventTime<T>>,
    mut slot: StateSlot,
    chain: C,
) -> Result<(), String>
where
    T: Default,
    D: FnMut(&mut Value, &mut T) -> Result<(), DecodeError>,
    C: Collector<T>,
{
    let mut chain = metrics.source(name, chain);
    // By count alone from a regular file, as the line sources do.
    let mut tracker = event_time.as_ref().map(|et| {
        let bound = et.max_out_of_orderness_ms;
        if input.regular {
            WatermarkTracker::new(bound)
        } else {
            WatermarkTracker::periodic(bound)
        }
    });
    let path = input.path.display().to_string();
    // Records read so far (the position), of which the first `skip` were read before a restart.
    let mut read = 0u64;
    let mut skip = 0u64;
    if let Some(bytes) = slot.take_restored() {
        match crate::state::decode::<(u64, i64, i64)>(&bytes) {
            Ok((n, max_seen, emitted)) => {
                skip = n;
                if let Some(t) = tracker.as_mut() {
                    t.restore(max_seen, emitted);
                }
            }
            Err(e) => {
                return super::fail(
                    &mut chain,
                    format!("source `{name}`: cannot restore its position: {e}"),
                )
            }
        }
    }
    let file = match File::open(&input.path) {
        Ok(f) => f,
        Err(e) => {
            return super::fail(
                &mut chain,
                format!("source `{name}`: cannot open {path}: {e}"),
            )
        }
    };
    let reader = match apache_avro::Reader::with_schema(avro.schema(), BufReader::new(file)) {
        Ok(r) => r,
        Err(e) => {
            return super::fail(
                &mut chain,
                format!("source `{name}`: {path} is not an Avro file of the source's schema: {e}"),
            )
        }
    };
    let mut record = T::default();
    let mut produced = 0u64;
    let mut result = Ok(());
    let mut pace = Pacer::new(1);
    let mut ticker = Ticker::new();
    // (While a restart skips what the restored checkpoint covered, that is the position.)
    let part = |read: u64, tracker: Option<&WatermarkTracker>| {
        let (max_seen, emitted) = WatermarkTracker::position_of(tracker);
        crate::state::encode(&(read.max(skip), max_seen, emitted))
    };
    for value in reader {
        if read.is_multiple_of(64)
            && !super::pace_and_tick(
                &mut pace,
                produced,
                &mut ticker,
                tracker.as_mut(),
                &mut chain,
            )
        {
            break;
        }
        if let Some(id) = slot.barrier_due() {
            dead_letters.flush();
            slot.save(id, &part(read, tracker.as_ref()), Vec::new());
            chain.barrier(id);
        }
        let mut value = match value {
            Ok(v) => v,
            Err(e) => {
                result = Err(format!(
                    "source `{name}`: {path}: cannot read record {}: {e}",
                    read + 1
                ));
                break;
            }
        };
        read += 1;
        if read <= skip {
            continue;
        }
        match decode(&mut value, &mut record) {
            Ok(()) => {
                produced += 1;
                chain.push(&record);
                if let (Some(tracker), Some(et)) = (tracker.as_mut(), event_time.as_ref()) {
                    if let Some(wm) = tracker.observe((et.time)(&record)) {
                        chain.watermark(wm);
                    }
                }
            }
            Err(err) => dead_letters.write(
                name,
                read,
                &format!("record {read}: {err}"),
                // The value is half moved into the record by now: the raw says where it is.
                &format!("record {read} of {path}"),
            ),
        }
    }
    metrics.add_source_records(produced);
    if result.is_err() {
        chain.watermark(i64::MAX);
        chain.finish();
        return result;
    }
    dead_letters.flush();
    slot.end_of_input(|| part(read, tracker.as_ref()), &mut chain);
    result
}
