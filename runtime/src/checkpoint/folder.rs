//! The checkpoint folder on disk: its lock and identity, where each checkpoint and part lives,
//! which checkpoints are complete, and synced writes of parts and manifests.

use std::path::{Path, PathBuf};

use super::manifest::{Kind, Manifest};
use super::*;

/// Rewrites a `final` manifest whose external commits are done without their notes: the run is
/// finished for good, whatever later happens to the markers (see [`finished`]).
pub(super) fn mark_final_done(dir: &Path, m: &Manifest) -> Result<(), String> {
    if m.notes.is_empty() {
        return Ok(());
    }
    let mut done = m.clone();
    done.notes.clear();
    write_manifest(&chk_dir(dir, m.id), &done)
}

/// The folder's id (`dir/ID`), made on first use from the time and the process id.
pub(super) fn folder_id(dir: &Path) -> Result<String, String> {
    let path = dir.join("ID");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let id = text.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{:016x}", crate::hash::route(&(nanos, std::process::id())));
    let tmp = dir.join("ID.tmp");
    write_synced(&tmp, format!("{id}\n").as_bytes())?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    commit::sync_parent(&path);
    Ok(id)
}

/// Locks `dir/LOCK` for this process, waiting while another process holds it: two runs must
/// never write one checkpoint folder (in a scale-out, the task of a partition whose previous
/// owner is cut off but not dead yet waits here until that one is stopped). The kernel
/// releases the lock when the process ends, however it ends.
pub(super) fn lock_folder(dir: &Path) -> Result<std::fs::File, String> {
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut said = false;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                if !said {
                    tracing::info!(
                        "another process is running on {}; waiting until it stops",
                        dir.display()
                    );
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()))
            }
        }
    }
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(super) fn chk_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("chk-{id}"))
}

pub(super) fn part_path(dir: &Path, id: u64, slot: &str, instance: u32) -> PathBuf {
    chk_dir(dir, id).join(format!("{slot}-{instance}.state"))
}

/// Complete checkpoints in `dir`, newest first. Folders of checkpoints that never completed
/// and are older than `incomplete_before` are deleted (at start: all of them; while running:
/// only those older than the newest complete one, never the one being taken).
pub(super) fn complete_checkpoints(dir: &Path, incomplete_before: u64) -> Result<Vec<u64>, String> {
    let mut ids = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix("chk-"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if entry.path().join("MANIFEST").exists() {
            ids.push(id);
        } else if id < incomplete_before {
            // Never completed (abandoned, or the run stopped while taking it).
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// Whether `dir` holds a run that finished: its newest complete checkpoint is the `final` one,
/// with its external commits done (its notes cleared; starting there does nothing). Reads
/// only; removes nothing.
pub fn finished(dir: &Path) -> bool {
    let Ok(ids) = complete_checkpoints(dir, 0) else {
        return false;
    };
    ids.first()
        .and_then(|id| std::fs::read_to_string(chk_dir(dir, *id).join("MANIFEST")).ok())
        .and_then(|text| Manifest::parse(&text).ok())
        .is_some_and(|m| m.kind == Kind::Final && m.notes.is_empty())
}

pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_data())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(super) fn write_manifest(dir: &Path, m: &Manifest) -> Result<(), String> {
    let tmp = dir.join("MANIFEST.tmp");
    write_synced(&tmp, m.render().as_bytes())?;
    let path = dir.join("MANIFEST");
    std::fs::rename(&tmp, &path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    commit::sync_parent(&path);
    Ok(())
}
