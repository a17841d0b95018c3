//! Scale-out with state: several processes running one compiled pipeline in one Kafka consumer
//! group, where a partition's state moves with the partition.
//!
//! The unit of work is a **task**: one partition number of the pipeline's Kafka topics. The
//! topics must be co-partitioned (the same number of partitions, and all records of one key
//! in the same partition number), as Kafka Streams requires; then a task holds every record
//! of its keys, so its keyed state (windows, joins, aggregates) is complete on its own.
//!
//! `--scale-out --checkpoint-dir DIR` makes the process a supervisor ([`supervisor`], behind
//! the `kafka` feature): it joins the consumer group of the first Kafka source, reads nothing
//! itself, and for each partition the group assigns it runs the pipeline binary again as a
//! child process that reads only that partition and checkpoints into `DIR/partition-N`.
//! When the group takes a partition away the child is stopped before the partition is
//! released: asked to drain (SIGTERM: one more checkpoint, committed, then exit), killed if it
//! does not in time. Whoever gets it next starts a child on the same folder, which resumes
//! from the partition's latest checkpoint: offsets, event time, operator state and sink
//! transactions.
//! A supervisor that dies takes its children with it (they ask the kernel for that), so the
//! group's session timeout is the only wait before another process takes over. A supervisor
//! that is cut off but alive (paused, partitioned from the brokers) may still run a task of a
//! partition the group has given to another process: the checkpoint folder's lock (held by a
//! task for its life) makes the new task wait until the old one is stopped.
//!
//! This module holds what a child needs to know about being a task: its partition (Kafka
//! sources read only it), and the names that must differ between tasks (output files get
//! `.pN` before their extension, transactional ids `-pN`).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::checkpoint::Store;

#[cfg(feature = "kafka")]
pub mod supervisor;

static TASK: OnceLock<i32> = OnceLock::new();

/// The partition this process is the task of (`--task-partition`, set by the supervisor).
pub fn task_partition() -> Option<i32> {
    TASK.get().copied()
}

/// Makes this process the task of `partition`. With `parent`, the process dies with that
/// process (the supervisor that started it): a task must never outlive its supervisor, or it
/// would keep writing while another process runs the same partition.
pub fn become_task(partition: i32, parent: Option<u32>) -> Result<(), String> {
    TASK.set(partition)
        .map_err(|_| "a process can be the task of one partition only".to_string())?;
    if let Some(parent) = parent {
        die_with_parent(parent)?;
    }
    Ok(())
}

#[cfg(all(feature = "kafka", target_os = "linux"))]
fn die_with_parent(parent: u32) -> Result<(), String> {
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of the calling process.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if rc != 0 {
        return Err(format!(
            "cannot tie this task to its supervisor: {}",
            std::io::Error::last_os_error()
        ));
    }
    // The parent may have died before the call above: then nothing would kill us.
    // SAFETY: getppid has no preconditions.
    if unsafe { libc::getppid() } as u32 != parent {
        return Err("the supervisor that started this task is gone".to_string());
    }
    Ok(())
}

#[cfg(not(all(feature = "kafka", target_os = "linux")))]
fn die_with_parent(_parent: u32) -> Result<(), String> {
    Err("tasks of --scale-out need Linux and the runtime's `kafka` feature".to_string())
}

/// `path` as this process writes it: unchanged, or in a task, with `.pN` before the
/// extension (`out/totals.jsonl` becomes `out/totals.p3.jsonl`), so that the tasks of one
/// pipeline never share a file.
pub fn task_path(path: &Path) -> PathBuf {
    match task_partition() {
        None => path.to_path_buf(),
        Some(p) => partition_path(path, p),
    }
}

fn partition_path(path: &Path, partition: i32) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let name = match (stem, path.extension()) {
        (Some(stem), Some(ext)) => format!("{stem}.p{partition}.{}", ext.to_string_lossy()),
        (Some(stem), None) => format!("{stem}.p{partition}"),
        (None, _) => format!("p{partition}"),
    };
    path.with_file_name(name)
}

/// A name that must be unique per task (a Kafka `transactional.id`): `-pN` appended in a
/// task, unchanged otherwise.
pub fn task_name(name: String) -> String {
    match task_partition() {
        None => name,
        Some(p) => format!("{name}-p{p}"),
    }
}

/// The location of partition `partition`'s task under the shared checkpoint location.
pub fn task_dir(dir: &Path, partition: i32) -> PathBuf {
    dir.join(task_folder(partition))
}

/// The name of partition `partition`'s location under the shared one: `partition-N`.
pub fn task_folder(partition: i32) -> String {
    format!("partition-{partition}")
}

/// The name of the file (or object) in which a task's Kafka source leaves the positions of
/// `topic` that its latest checkpoints cover; the supervisor commits them to the group (a
/// task is not a member of the group, so it cannot commit itself).
pub fn offsets_key(topic: &str) -> String {
    let safe: String = topic
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("offsets-{safe}")
}

/// Writes `offsets` (partition, next offset to read) under `key` of a task's checkpoint
/// location, whole: `partition offset` lines.
pub fn write_offsets(store: &Store, key: &str, offsets: &[(i32, i64)]) -> Result<(), String> {
    let text: String = offsets.iter().map(|(p, o)| format!("{p} {o}\n")).collect();
    store.put(key, text.as_bytes())
}

/// Reads what [`write_offsets`] wrote; a missing or garbled file is no offsets.
pub fn read_offsets(store: &Store, key: &str) -> Vec<(i32, i64)> {
    let bytes = store.get(key).ok().flatten().unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| {
            let (p, o) = line.split_once(' ')?;
            Some((p.parse().ok()?, o.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_paths_keep_folder_and_extension() {
        assert_eq!(
            partition_path(Path::new("out/totals.jsonl"), 3),
            PathBuf::from("out/totals.p3.jsonl")
        );
        assert_eq!(
            partition_path(Path::new("totals"), 0),
            PathBuf::from("totals.p0")
        );
        assert_eq!(
            partition_path(Path::new("a.b/t.tar.gz"), 12),
            PathBuf::from("a.b/t.tar.p12.gz")
        );
    }

    #[test]
    fn offsets_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Folder(dir.path().to_path_buf());
        let key = offsets_key("orders/x");
        assert_eq!(key, "offsets-orders_x");
        assert!(read_offsets(&store, &key).is_empty());
        write_offsets(&store, &key, &[(0, 17), (3, 2)]).unwrap();
        assert_eq!(read_offsets(&store, &key), [(0, 17), (3, 2)]);
        // Written through a temporary name, as before.
        assert!(dir.path().join("offsets-orders_x").exists());
    }
}
