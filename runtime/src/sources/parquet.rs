//! The Parquet file source (`file(path: "data") format parquet`): a file, or every `.parquet`
//! file under a folder (Hive folders `field=value/` give the values of fields the files do not
//! hold), read with Apache Arrow's Parquet reader.
//!
//! - **Projection**: only the columns of the fields the pipeline uses are read (the record
//!   type is the source's projected schema), so a wide file costs what its used columns cost.
//! - **Types** are checked when the source opens, before any sink does: every field must be a
//!   column of every file (or a Hive folder's value) of a type that reads as the field's
//!   (integers of any width as `i64`, floats and decimals as `f64`, strings of every Arrow
//!   kind, timestamps of every unit and dates as `timestamp`). Anything else stops the start
//!   with the file, the column and both types named.
//! - **Rows** that do not fit (a null in a field that is not optional, an unsigned value past
//!   `i64`, a float that is NaN or infinite, a timestamp outside the years 0000 to 9999, a
//!   Hive value that is not a number) go to the dead-letter output with the file and
//!   row number; the source goes on.
//! - **Parallelism**: the work is the row groups of the files in path order; instance `i` of
//!   `n` reads the groups `i`, `i + n`, ...
//! - **Checkpoints**: the position is the row group and the rows read of it (with a
//!   fingerprint of the files, so a restore over changed input is refused, not misread).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float16Type, Float32Type, Float64Type, Int16Type,
    Int32Type, Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use crate::checkpoint::StateSlot;
use crate::collector::Collector;
use crate::dead_letter::DeadLetters;
use crate::formats::time::TimeRange;
use crate::metrics::Metrics;
use crate::sources::lines::Split;
use crate::sources::{EventTime, WatermarkTracker};
use crate::tick::Ticker;

/// Rows per batch read.
const BATCH_ROWS: usize = 4096;

/// How a field is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    I64,
    F64,
    Bool,
    /// Milliseconds since the epoch.
    Timestamp,
    String,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::I64 => "i64",
            Kind::F64 => "f64",
            Kind::Bool => "bool",
            Kind::Timestamp => "timestamp",
            Kind::String => "string",
        }
    }

    /// Whether a column of Arrow type `t` reads as this kind.
    fn reads(self, t: &DataType) -> bool {
        use DataType as D;
        match self {
            Kind::I64 => matches!(
                t,
                D::Int8
                    | D::Int16
                    | D::Int32
                    | D::Int64
                    | D::UInt8
                    | D::UInt16
                    | D::UInt32
                    | D::UInt64
            ),
            Kind::F64 => matches!(
                t,
                D::Float16
                    | D::Float32
                    | D::Float64
                    | D::Decimal128(..)
                    | D::Int8
                    | D::Int16
                    | D::Int32
                    | D::Int64
            ),
            Kind::Bool => matches!(t, D::Boolean),
            Kind::Timestamp => matches!(t, D::Timestamp(..) | D::Date32 | D::Date64),
            Kind::String => matches!(t, D::Utf8 | D::LargeUtf8 | D::Utf8View),
        }
    }
}

/// A record read from Parquet rows: generated per source.
pub trait ParquetRecord: Default {
    /// The fields read, in order: name, kind, optional.
    const FIELDS: &'static [(&'static str, Kind, bool)];
    /// Reads `row` into the record (its strings' buffers are reused); the reason when the row
    /// does not fit.
    fn read(&mut self, row: &Row<'_>) -> Result<(), String>;
}

/// One column of a batch, as the reader hands it out.
enum Column {
    Array(ArrayRef),
    /// A Hive folder's value (`None`: the folder says null).
    Constant(Option<String>),
}

/// A row of a batch, in the order of [`ParquetRecord::FIELDS`].
pub struct Row<'a> {
    columns: &'a [Column],
    fields: &'static [(&'static str, Kind, bool)],
    index: usize,
}

impl Row<'_> {
    fn array(&self, c: usize) -> Result<Option<&ArrayRef>, Option<&str>> {
        match &self.columns[c] {
            Column::Array(a) if a.is_null(self.index) => Err(None),
            Column::Array(a) => Ok(Some(a)),
            Column::Constant(v) => Err(v.as_deref()),
        }
    }

    /// The reason a field that is not optional cannot be null.
    pub fn null(&self, c: usize) -> String {
        format!("field `{}` is null", self.fields[c].0)
    }

    fn constant<T: std::str::FromStr>(&self, c: usize, text: &str) -> Result<T, String> {
        text.parse().map_err(|_| {
            format!(
                "field `{}`: the folder's value {text:?} is not {}",
                self.fields[c].0,
                self.fields[c].1.name()
            )
        })
    }

    pub fn i64(&self, c: usize) -> Result<Option<i64>, String> {
        let a = match self.array(c) {
            Ok(Some(a)) => a,
            Ok(None) | Err(None) => return Ok(None),
            Err(Some(text)) => return self.constant(c, text).map(Some),
        };
        let i = self.index;
        Ok(Some(match a.data_type() {
            DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
            DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
            DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
            DataType::Int64 => a.as_primitive::<Int64Type>().value(i),
            DataType::UInt8 => a.as_primitive::<UInt8Type>().value(i).into(),
            DataType::UInt16 => a.as_primitive::<UInt16Type>().value(i).into(),
            DataType::UInt32 => a.as_primitive::<UInt32Type>().value(i).into(),
            DataType::UInt64 => {
                let v = a.as_primitive::<UInt64Type>().value(i);
                i64::try_from(v).map_err(|_| {
                    format!("field `{}`: {v} is past the largest i64", self.fields[c].0)
                })?
            }
            other => return Err(unreadable(self.fields[c], other)),
        }))
    }

    pub fn f64(&self, c: usize) -> Result<Option<f64>, String> {
        let a = match self.array(c) {
            Ok(Some(a)) => a,
            Ok(None) | Err(None) => return Ok(None),
            Err(Some(text)) => return self.constant(c, text).and_then(|v| self.finite(c, v)),
        };
        let i = self.index;
        let v = match a.data_type() {
            DataType::Float16 => a.as_primitive::<Float16Type>().value(i).to_f64(),
            DataType::Float32 => a.as_primitive::<Float32Type>().value(i).into(),
            DataType::Float64 => a.as_primitive::<Float64Type>().value(i),
            DataType::Decimal128(_, scale) => {
                let v = a.as_primitive::<Decimal128Type>().value(i);
                v as f64 / 10f64.powi(i32::from(*scale))
            }
            DataType::Int8 => a.as_primitive::<Int8Type>().value(i).into(),
            DataType::Int16 => a.as_primitive::<Int16Type>().value(i).into(),
            DataType::Int32 => a.as_primitive::<Int32Type>().value(i).into(),
            DataType::Int64 => a.as_primitive::<Int64Type>().value(i) as f64,
            other => return Err(unreadable(self.fields[c], other)),
        };
        self.finite(c, v)
    }

    /// `v` if it is finite. Every other input refuses NaN and the infinities (a CSV cell, a
    /// JSON number beyond the range): a float in a record is finite, which sinks (they write
    /// no other) and aggregates (`max` of a NaN depends on the order) rely on.
    fn finite(&self, c: usize, v: f64) -> Result<Option<f64>, String> {
        if v.is_finite() {
            Ok(Some(v))
        } else {
            Err(format!(
                "field `{}`: {v} is not a finite number",
                self.fields[c].0
            ))
        }
    }

    pub fn bool(&self, c: usize) -> Result<Option<bool>, String> {
        match self.array(c) {
            Ok(Some(a)) => match a.data_type() {
                DataType::Boolean => Ok(Some(a.as_boolean().value(self.index))),
                other => Err(unreadable(self.fields[c], other)),
            },
            Ok(None) | Err(None) => Ok(None),
            Err(Some(text)) => self.constant(c, text).map(Some),
        }
    }

    /// Milliseconds since the epoch (sub-millisecond digits dropped toward the past).
    pub fn timestamp(&self, c: usize) -> Result<Option<i64>, String> {
        let a = match self.array(c) {
            Ok(Some(a)) => a,
            Ok(None) | Err(None) => return Ok(None),
            Err(Some(text)) => {
                return match crate::formats::time::parse_timestamp(text) {
                    Ok(ms) => Ok(Some(ms)),
                    Err(_) => Err(format!(
                        "field `{}`: the folder's value {text:?} is not a timestamp",
                        self.fields[c].0
                    )),
                }
            }
        };
        let i = self.index;
        let ms = match a.data_type() {
            DataType::Timestamp(TimeUnit::Second, _) => a
                .as_primitive::<TimestampSecondType>()
                .value(i)
                .saturating_mul(1000),
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                a.as_primitive::<TimestampMillisecondType>().value(i)
            }
            DataType::Timestamp(TimeUnit::Microsecond, _) => a
                .as_primitive::<TimestampMicrosecondType>()
                .value(i)
                .div_euclid(1000),
            DataType::Timestamp(TimeUnit::Nanosecond, _) => a
                .as_primitive::<TimestampNanosecondType>()
                .value(i)
                .div_euclid(1_000_000),
            DataType::Date32 => i64::from(a.as_primitive::<Date32Type>().value(i)) * 86_400_000,
            DataType::Date64 => a.as_primitive::<Date64Type>().value(i),
            other => return Err(unreadable(self.fields[c], other)),
        };
        // As every other input: a timestamp lies in the years 0000 to 9999 (the text form
        // writes no other, and time functions and windows count on the bound).
        if TimeRange::TIMESTAMPS.contains(ms) {
            Ok(Some(ms))
        } else {
            Err(format!(
                "field `{}`: timestamp {ms} ms is outside the years 0000 to 9999",
                self.fields[c].0
            ))
        }
    }

    pub fn str(&self, c: usize) -> Result<Option<&str>, String> {
        match self.array(c) {
            Ok(Some(a)) => match a.data_type() {
                DataType::Utf8 => Ok(Some(a.as_string::<i32>().value(self.index))),
                DataType::LargeUtf8 => Ok(Some(a.as_string::<i64>().value(self.index))),
                DataType::Utf8View => Ok(Some(a.as_string_view().value(self.index))),
                other => Err(unreadable(self.fields[c], other)),
            },
            Ok(None) => Ok(None),
            Err(v) => Ok(v),
        }
    }
}

fn unreadable(field: (&str, Kind, bool), t: &DataType) -> String {
    format!(
        "field `{}`: a {t} column does not read as {}",
        field.0,
        field.1.name()
    )
}

/// One file of the input.
struct InputFile {
    path: PathBuf,
    meta: ArrowReaderMetadata,
    /// Per field: the file's column (its index among the file's top-level columns), or the
    /// value of the field's Hive folder.
    sources: Vec<FieldSource>,
}

#[derive(Clone)]
enum FieldSource {
    Column(usize),
    Folder(Option<String>),
}

/// The input of a Parquet source: its files, checked against the record's fields, and the
/// row groups to read, shared by the source's instances.
pub struct Input {
    name: String,
    files: Vec<InputFile>,
    /// `(file, row group, rows)` in path order.
    groups: Vec<(usize, usize, u64)>,
    /// Of the file names, sizes and row groups: a restore over other input is refused.
    fingerprint: u64,
}

/// Lists the `.parquet` files of `path` (the file itself, or every one under the folder, in
/// path order; names starting with `.` or `_` are skipped, as writers use them for files not
/// done yet) and checks them against `T`'s fields.
pub fn open<T: ParquetRecord>(name: &str, path: &Path) -> Result<Arc<Input>, String> {
    let what = |e: &dyn std::fmt::Display| format!("source `{name}`: {}: {e}", path.display());
    let meta = std::fs::metadata(path).map_err(|e| what(&e))?;
    let mut paths = Vec::new();
    if meta.is_dir() {
        collect(path, &mut paths).map_err(|e| what(&e))?;
        paths.sort();
        if paths.is_empty() {
            return Err(what(&"no .parquet file in this folder"));
        }
    } else {
        paths.push(path.to_path_buf());
    }
    let mut files = Vec::new();
    let mut groups = Vec::new();
    let mut print = String::new();
    for (f, p) in paths.iter().enumerate() {
        let file = File::open(p).map_err(|e| format!("source `{name}`: {}: {e}", p.display()))?;
        let meta = ArrowReaderMetadata::load(&file, Default::default())
            .map_err(|e| format!("source `{name}`: {}: not a Parquet file: {e}", p.display()))?;
        let folders = hive_values(p.strip_prefix(path).unwrap_or(p));
        let schema = meta.schema().clone();
        let mut sources = Vec::new();
        for field in T::FIELDS {
            let (fname, kind, _) = *field;
            let source = match schema.fields().iter().position(|c| c.name() == fname) {
                Some(i) => {
                    let t = schema.field(i).data_type();
                    if !kind.reads(t) {
                        return Err(format!(
                            "source `{name}`: {}: {}",
                            p.display(),
                            unreadable(*field, t)
                        ));
                    }
                    FieldSource::Column(i)
                }
                None => match folders.iter().find(|(k, _)| k == fname) {
                    Some((_, v)) => FieldSource::Folder(v.clone()),
                    None => {
                        let columns: Vec<&str> =
                            schema.fields().iter().map(|c| c.name().as_str()).collect();
                        return Err(format!(
                            "source `{name}`: {}: no column `{fname}` (nor a `{fname}=` folder); \
                             the file's columns: {}",
                            p.display(),
                            columns.join(", ")
                        ));
                    }
                },
            };
            sources.push(source);
        }
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let row_groups = meta.metadata().row_groups();
        print.push_str(&format!("{}:{size}:{};", p.display(), row_groups.len()));
        for (g, rg) in row_groups.iter().enumerate() {
            groups.push((f, g, rg.num_rows().max(0) as u64));
        }
        files.push(InputFile {
            path: p.clone(),
            meta,
            sources,
        });
    }
    Ok(Arc::new(Input {
        name: name.to_string(),
        files,
        groups,
        fingerprint: crate::hash::route(&print),
    }))
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect(&path, out)?;
        } else if name.ends_with(".parquet") {
            out.push(path);
        }
    }
    Ok(())
}

/// The `field=value` folders of a file's path below the source's folder (percent-escapes
/// decoded; Hive's default partition name is null).
fn hive_values(relative: &Path) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let parts: Vec<_> = relative.components().collect();
    for c in parts.iter().take(parts.len().saturating_sub(1)) {
        let text = c.as_os_str().to_string_lossy();
        if let Some((k, v)) = text.split_once('=') {
            let v = percent_decode(v);
            let v = (v != "__HIVE_DEFAULT_PARTITION__").then_some(v);
            out.push((percent_decode(k), v));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A checkpoint's part: the position in the instance's groups (index, rows read of it), the
/// watermark tracker's `(max seen, emitted)`, and the input's fingerprint.
type Position = (u64, u64, i64, i64, u64);

/// Reads the row groups of `input` that are instance `split.index`'s, into `chain`.
#[allow(clippy::too_many_arguments)]
pub fn run<T, C>(
    input: &Input,
    split: Split,
    metrics: &Metrics,
    dead_letters: &DeadLetters,
    event_time: Option<EventTime<T>>,
    mut slot: StateSlot,
    chain: C,
) -> Result<(), String>
where
    T: ParquetRecord,
    C: Collector<T>,
{
    let name = input.name.as_str();
    let mut chain = metrics.source(name, chain);
    // By count alone: a Parquet file is read to its end and never trickles, so a run over
    // it sees watermarks at the same records whatever its speed.
    let mut tracker = event_time
        .as_ref()
        .map(|et| WatermarkTracker::new(et.max_out_of_orderness_ms));
    let count = split.count.max(1);
    let mine: Vec<(usize, usize, u64)> = input
        .groups
        .iter()
        .enumerate()
        .filter(|(i, _)| i % count == split.index)
        .map(|(_, g)| *g)
        .collect();
    let (mut group, mut done) = (0usize, 0u64);
    if let Some(bytes) = slot.take_restored() {
        match crate::state::decode::<Position>(&bytes) {
            Ok((g, d, max_seen, emitted, print)) => {
                if print != input.fingerprint {
                    return super::fail(
                        &mut chain,
                        format!(
                            "source `{name}`: the Parquet files are not the ones the checkpoint \
                             read (a file was added, removed or changed): restore needs the same \
                             input"
                        ),
                    );
                }
                (group, done) = (g as usize, d);
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
    let part = |group: usize, done: u64, tracker: Option<&WatermarkTracker>| {
        let (max_seen, emitted) = WatermarkTracker::position_of(tracker);
        crate::state::encode(&(group as u64, done, max_seen, emitted, input.fingerprint))
    };
    let mut record = T::default();
    let mut produced = 0u64;
    let mut pace = super::Pacer::new(count as u32);
    let mut ticker = Ticker::new();
    let mut result = Ok(());
    'groups: while group < mine.len() {
        let (f, g, rows) = mine[group];
        let file = &input.files[f];
        if done >= rows {
            group += 1;
            done = 0;
            continue;
        }
        let batches = match read_group(file, g, done as usize) {
            Ok(b) => b,
            Err(e) => {
                result = Err(format!(
                    "source `{name}`: {}: row group {g}: {e}",
                    file.path.display()
                ));
                break;
            }
        };
        // The row number in the file of the group's first row, for dead letters.
        let first_row: u64 = input
            .groups
            .iter()
            .filter(|(ff, gg, _)| *ff == f && *gg < g)
            .map(|(_, _, r)| r)
            .sum();
        for batch in batches {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    result = Err(format!(
                        "source `{name}`: {}: row group {g}: {e}",
                        file.path.display()
                    ));
                    break 'groups;
                }
            };
            let columns = columns_of(file, &batch);
            for index in 0..batch.num_rows() {
                if done.is_multiple_of(64)
                    && !super::pace_and_tick(
                        &mut pace,
                        produced,
                        &mut ticker,
                        tracker.as_mut(),
                        &mut chain,
                    )
                {
                    break 'groups;
                }
                if let Some(id) = slot.barrier_due() {
                    dead_letters.flush();
                    slot.save(id, &part(group, done, tracker.as_ref()), Vec::new());
                    chain.barrier(id);
                }
                let row = Row {
                    columns: &columns,
                    fields: T::FIELDS,
                    index,
                };
                done += 1;
                match record.read(&row) {
                    Ok(()) => {
                        produced += 1;
                        chain.push(&record);
                        if let (Some(tracker), Some(et)) = (tracker.as_mut(), event_time.as_ref()) {
                            if let Some(wm) = tracker.observe((et.time)(&record)) {
                                chain.watermark(wm);
                            }
                        }
                    }
                    Err(reason) => {
                        let at = first_row + done;
                        let raw = format!("{} row {at}", file.path.display());
                        dead_letters.write(name, at, &reason, &raw);
                    }
                }
            }
        }
        group += 1;
        done = 0;
    }
    metrics.add_source_records(produced);
    if let Err(e) = result {
        return super::fail(&mut chain, e);
    }
    dead_letters.flush();
    slot.end_of_input(|| part(group, done, tracker.as_ref()), &mut chain);
    Ok(())
}

/// The batches of row group `g` of `file` from its row `skip`, with only the columns the
/// record reads.
fn read_group(
    file: &InputFile,
    g: usize,
    skip: usize,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, String> {
    let handle = File::open(&file.path).map_err(|e| e.to_string())?;
    let mut roots: Vec<usize> = file
        .sources
        .iter()
        .filter_map(|s| match s {
            FieldSource::Column(i) => Some(*i),
            FieldSource::Folder(_) => None,
        })
        .collect();
    roots.sort_unstable();
    roots.dedup();
    let mask = ProjectionMask::roots(file.meta.metadata().file_metadata().schema_descr(), roots);
    ParquetRecordBatchReaderBuilder::new_with_metadata(handle, file.meta.clone())
        .with_projection(mask)
        .with_row_groups(vec![g])
        .with_offset(skip)
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| e.to_string())
}

/// A batch's columns in the order of the record's fields.
fn columns_of(file: &InputFile, batch: &RecordBatch) -> Vec<Column> {
    let schema = file.meta.schema();
    file.sources
        .iter()
        .map(|s| match s {
            FieldSource::Column(i) => {
                let column_name = schema.field(*i).name();
                match batch.column_by_name(column_name) {
                    Some(a) => Column::Array(a.clone()),
                    None => Column::Constant(None),
                }
            }
            FieldSource::Folder(v) => Column::Constant(v.clone()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_folders_give_values() {
        let got = hive_values(Path::new(
            "day=2024-01-02/kind=a%2Fb/x=__HIVE_DEFAULT_PARTITION__/part-0.parquet",
        ));
        assert_eq!(
            got,
            vec![
                ("day".to_string(), Some("2024-01-02".to_string())),
                ("kind".to_string(), Some("a/b".to_string())),
                ("x".to_string(), None),
            ]
        );
        assert_eq!(hive_values(Path::new("part-0.parquet")), vec![]);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }
}
