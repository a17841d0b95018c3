//! The checkpoint location's lock and identity, where each checkpoint lives, which
//! checkpoints are complete, and synced writes of files (the folder's part of
//! [`super::store`]).

use std::path::Path;

use super::manifest::{Kind, Manifest};
use super::store::Store;
use super::*;

/// Rewrites a `final` manifest whose external commits are done without their notes: the run is
/// finished for good, whatever later happens to the markers (see [`finished`]).
pub(super) fn mark_final_done(store: &Store, m: &Manifest) -> Result<(), String> {
    if m.notes.is_empty() {
        return Ok(());
    }
    let mut done = m.clone();
    done.notes.clear();
    write_manifest(store, m.id, &done, false)
}

/// The location's id (`ID`), made on first use from the time and the process id (under the
/// lock, so by one run only).
pub(super) fn folder_id(store: &Store) -> Result<String, String> {
    if let Some(text) = store.get("ID")? {
        let text = String::from_utf8_lossy(&text);
        let id = text.trim();
        if !id.is_empty() {
            return Ok(id.to_string());
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let id = format!("{:016x}", crate::hash::route(&(nanos, std::process::id())));
    store.put("ID", format!("{id}\n").as_bytes())?;
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

/// The name of checkpoint `id`'s folder (or object prefix): `chk-<id>`.
pub(super) fn chk_name(id: u64) -> String {
    format!("chk-{id}")
}

/// Complete checkpoints of `store`, newest first. Checkpoints that never completed and are
/// older than `incomplete_before` are deleted (at start: all of them; while running: only
/// those older than the newest complete one, never the one being taken).
pub(super) fn complete_checkpoints(
    store: &Store,
    incomplete_before: u64,
) -> Result<Vec<u64>, String> {
    let mut ids = Vec::new();
    for name in store.list_top()? {
        let Some(id) = name
            .strip_prefix("chk-")
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if store.exists(&format!("{name}/MANIFEST"))? {
            ids.push(id);
        } else if id < incomplete_before {
            // Never completed (abandoned, or the run stopped while taking it).
            let _ = store.remove_all(&name);
        }
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// Whether `store` holds a run that finished: its newest complete checkpoint is the `final`
/// one, with its external commits done (its notes cleared; starting there does nothing).
/// Reads only; removes nothing.
pub fn finished(store: &Store) -> bool {
    let Ok(ids) = complete_checkpoints(store, 0) else {
        return false;
    };
    ids.first()
        .and_then(|id| {
            store
                .get(&format!("{}/MANIFEST", chk_name(*id)))
                .ok()
                .flatten()
        })
        .and_then(|bytes| String::from_utf8(bytes).ok())
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

/// Writes checkpoint `id`'s manifest, which makes it complete (see
/// [`Store::put_manifest`]; `fresh`: a new checkpoint, not a rewrite of a complete one).
pub(super) fn write_manifest(
    store: &Store,
    id: u64,
    m: &Manifest,
    fresh: bool,
) -> Result<(), String> {
    store.put_manifest(&chk_name(id), m.render().as_bytes(), fresh)
}
