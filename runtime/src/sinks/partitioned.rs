//! A file sink partitioned by field values, Hive style: rows go to
//! `PATH/field=value/.../part-0.EXT`, one file per partition, opened when its first row
//! arrives. Partition fields name folders and are left out of the rows themselves.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use crate::collector::Collector;
use crate::metrics::{OpMetrics, OpStats};

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
    file_name: &'static str,
    header: &'static [u8],
    files: BTreeMap<String, BufWriter<File>>,
    partition: P,
    encode: E,
    path: String,
    row: Vec<u8>,
    failed: bool,
    stats: OpStats,
    metrics: OpMetrics,
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
            file_name,
            header,
            files: BTreeMap::new(),
            partition,
            encode,
            path: String::new(),
            row: Vec::new(),
            failed: false,
            stats: OpStats::default(),
            metrics,
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
            let opened = std::fs::create_dir_all(&dir)
                .and_then(|_| File::create(dir.join(self.file_name)))
                .and_then(|file| {
                    let mut w = BufWriter::new(file);
                    w.write_all(self.header)?;
                    Ok(w)
                });
            match opened {
                Ok(w) => {
                    self.files.insert(self.path.clone(), w);
                }
                Err(err) => {
                    eprintln!(
                        "weir: sink `{}`: cannot write {}: {err}",
                        self.metrics.name(),
                        dir.display()
                    );
                    self.failed = true;
                    return;
                }
            }
        }
        self.row.clear();
        (self.encode)(record, &mut self.row);
        if let Some(w) = self.files.get_mut(&self.path) {
            if let Err(err) = w.write_all(&self.row) {
                eprintln!("weir: sink `{}`: write failed: {err}", self.metrics.name());
                self.failed = true;
            }
        }
    }

    fn watermark(&mut self, _watermark: i64) {}

    fn finish(&mut self) {
        for w in self.files.values_mut() {
            if let Err(err) = w.flush() {
                eprintln!("weir: sink `{}`: write failed: {err}", self.metrics.name());
            }
        }
        self.stats.records_out = self.stats.records_in;
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
