//! An Avro object container file (feature `avro`): the header (schema, codec: `null` unless
//! the format says `deflate`, a random sync marker), then blocks of up to [`BLOCK_ROWS`] records, each written by the
//! `apache-avro` crate's writer. A block ends when it is full, at a checkpoint barrier and at
//! the end of input, so the file is whole after every checkpoint.
//!
//! Under checkpoints the file is a [`CommittedFile`], as a JSON or CSV file sink's is: blocks
//! of an epoch are appended when its checkpoint completes, and a restart truncates the file
//! to what was committed and goes on with the same sync marker (kept in the checkpoint with
//! the committed length), so the file reads as one however often the run was killed.

use apache_avro::{Codec, DeflateSettings, Writer};

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::formats::avro::{Avro, Value};
use crate::metrics::{OpCounters, OpMetrics};
use crate::sinks::Output;

/// Records per block.
pub const BLOCK_ROWS: usize = 4096;

pub struct AvroFileSink<F> {
    output: Output,
    avro: Avro,
    values: F,
    /// Records of the block being gathered.
    rows: Vec<Value>,
    /// The file's sync marker, which every block ends with.
    marker: [u8; 16],
    /// The header, until it is written (empty once written, or when resuming a file).
    header: Vec<u8>,
    /// How blocks are compressed (named in the header).
    codec: Codec,
    stats: OpCounters,
    metrics: OpMetrics,
    failed: bool,
    slot: StateSlot,
}

impl<F> AvroFileSink<F> {
    /// A sink writing the records `values` makes of each row, in a new file with `avro`'s
    /// schema (or, once [`AvroFileSink::with_state`] restored one, the file so far).
    pub fn new(
        metrics: OpMetrics,
        mut output: Output,
        avro: Avro,
        codec: &str,
        values: F,
    ) -> Result<Self, String> {
        let codec = match codec {
            "deflate" => Codec::Deflate(DeflateSettings::default()),
            "null" => Codec::Null,
            other => {
                return Err(format!(
                    "sink `{}`: unknown Avro codec `{other}`",
                    metrics.name()
                ))
            }
        };
        let mut writer = Writer::with_codec(avro.schema(), Vec::new(), codec);
        let header = writer
            .flush()
            .and_then(|_| writer.into_inner())
            .map_err(|e| format!("sink `{}`: the Avro header: {e}", metrics.name()))?;
        // The header ends with the sync marker.
        let marker = apache_avro::read_marker(&header);
        // On object storage every object is a whole container file: each starts with it.
        let repeated = match &mut output {
            Output::Committed(file) => file.takes_header(&header),
            _ => false,
        };
        let header = if repeated { Vec::new() } else { header };
        Ok(AvroFileSink {
            output,
            avro,
            values,
            rows: Vec::with_capacity(BLOCK_ROWS),
            marker,
            header,
            codec,
            stats: metrics.counters(),
            metrics,
            failed: false,
            slot: StateSlot::inert(),
        })
    }

    /// Takes part in checkpoints through `slot`: the file is then written exactly once.
    pub fn with_state(mut self, mut slot: StateSlot) -> Result<Self, String> {
        if let Output::Committed(file) = &mut self.output {
            let name = self.metrics.name().to_string();
            let restored = match slot.take_restored() {
                Some(bytes) => Some(
                    crate::state::decode::<(u64, Vec<u8>)>(&bytes)
                        .map_err(|e| format!("cannot restore sink `{name}`: {e}"))?,
                ),
                None => None,
            };
            if let Some((len, marker)) = &restored {
                if *len > 0 && !file.is_object() {
                    // The header is in the committed part already; blocks go on with its marker.
                    self.header.clear();
                    self.marker = marker.as_slice().try_into().map_err(|_| {
                        format!(
                            "cannot restore sink `{name}`: a sync marker of {} bytes",
                            marker.len()
                        )
                    })?;
                }
            }
            file.start(restored.map(|(len, _)| len))
                .map_err(|e| format!("sink `{name}`: {e}"))?;
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

    /// Writes the header if not yet written, and the gathered records as one block.
    fn flush(&mut self) {
        if self.failed {
            self.rows.clear();
            return;
        }
        let mut bytes = std::mem::take(&mut self.header);
        let n = self.rows.len() as u64;
        if !self.rows.is_empty() {
            let mut writer =
                Writer::append_to_with_codec(self.avro.schema(), bytes, self.codec, self.marker);
            let block = self
                .rows
                .drain(..)
                .try_for_each(|row| writer.append(row).map(drop))
                .and_then(|()| writer.into_inner());
            bytes = match block {
                Ok(bytes) => bytes,
                Err(e) => return self.fail(&format!("cannot write an Avro record: {e}")),
            };
        }
        if bytes.is_empty() {
            return;
        }
        let result = match &mut self.output {
            Output::File(file) => std::io::Write::write_all(file, &bytes),
            Output::Committed(file) => file.write_all(&bytes),
            Output::Stdout => std::io::Write::write_all(&mut std::io::stdout().lock(), &bytes),
        };
        match result {
            Ok(()) => self.stats.records_out += n,
            Err(err) => self.fail(&format!("write failed: {err}")),
        }
    }
}

impl<T, F: FnMut(&T) -> Value> Collector<T> for AvroFileSink<F> {
    #[inline]
    fn push(&mut self, record: &T) {
        self.stats.records_in += 1;
        self.rows.push((self.values)(record));
        if self.rows.len() >= BLOCK_ROWS {
            self.flush();
        }
    }

    fn watermark(&mut self, _watermark: i64) {}

    /// A plain file gets what is gathered once per flush interval (a block), so a trickling
    /// input shows up as it comes; a checkpointed file publishes at commits anyway.
    fn tick(&mut self) {
        if !self.rows.is_empty() && !matches!(self.output, Output::Committed(_)) {
            self.flush();
        }
    }

    fn barrier(&mut self, checkpoint: u64) {
        self.flush();
        if let Output::Committed(file) = &mut self.output {
            match file.seal_for(&self.slot, checkpoint) {
                Ok((committed, actions)) => {
                    let state = crate::state::encode(&(committed, self.marker.to_vec()));
                    self.slot.save(checkpoint, &state, actions);
                }
                Err(err) => self.fail(&err),
            }
        }
    }

    fn finish(&mut self) {
        self.flush();
        match &mut self.output {
            Output::File(file) => {
                if let Err(err) = std::io::Write::flush(file) {
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
