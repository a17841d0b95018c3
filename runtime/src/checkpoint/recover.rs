//! Recovery: which checkpoint a run resumes from.
//!
//! A checkpoint is used only once it is known to be intact: its manifest's checksum matches,
//! and every state file it lists has the size and checksum its `part` line says. A damaged
//! checkpoint (a flipped bit, a truncated or missing file) is moved aside as
//! `damaged-chk-N-<time>` with a message saying why, and the run falls back to the newest
//! intact one before it: file sinks cut their targets back to what that one committed, so
//! nothing is written twice. If none is intact, the run refuses to start rather than guess.
//! A fall back over a checkpoint whose output went out through an external commit (a Kafka
//! transaction) cannot take that output back, so it is refused too.
//!
//! Then the external commits the chosen checkpoint notes are verified (see
//! [`super::Verifier`]); one whose commit never happened is taken back and the one before it
//! used.

use std::collections::BTreeMap;
use std::path::Path;

use super::manifest::{checksum, Kind, Manifest};
use super::{chk_dir, complete_checkpoints, externally_committed, now_ms, part_path, Verdict};

/// A checkpoint read whole and checked: its manifest and, for a `checkpoint` kind, the bytes
/// of every part.
pub(super) struct Loaded {
    pub manifest: Manifest,
    pub parts: BTreeMap<(String, u32), Vec<u8>>,
}

/// Reads checkpoint `id` of `dir` and checks it against its checksums; the error says what
/// is damaged.
pub(super) fn load(dir: &Path, id: u64) -> Result<Loaded, String> {
    let path = chk_dir(dir, id).join("MANIFEST");
    let text = std::fs::read(&path).map_err(|e| format!("cannot read its manifest: {e}"))?;
    let text = std::str::from_utf8(&text)
        .map_err(|_| "its manifest is damaged (not UTF-8)".to_string())?;
    let manifest = Manifest::parse(text).map_err(|e| format!("its manifest: {e}"))?;
    if manifest.id != id {
        return Err(format!(
            "its manifest says it is checkpoint {}, not {id}",
            manifest.id
        ));
    }
    let mut parts = BTreeMap::new();
    if manifest.kind == Kind::Checkpoint {
        for part in &manifest.parts {
            let p = part_path(dir, id, &part.slot, part.instance);
            let name = p
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let bytes = std::fs::read(&p).map_err(|e| format!("cannot read {name}: {e}"))?;
            if bytes.len() as u64 != part.bytes {
                return Err(format!(
                    "{name} holds {} bytes, its manifest says {}",
                    bytes.len(),
                    part.bytes
                ));
            }
            if checksum(&bytes) != part.checksum {
                return Err(format!("{name} is damaged (its checksum does not match)"));
            }
            parts.insert((part.slot.clone(), part.instance), bytes);
        }
    }
    Ok(Loaded { manifest, parts })
}

/// Moves a damaged checkpoint out of the way (kept for inspection, never read again).
fn set_aside(dir: &Path, id: u64, prefix: &str) -> Result<std::path::PathBuf, String> {
    let aside = dir.join(format!("{prefix}-chk-{id}-{}", now_ms()));
    std::fs::rename(chk_dir(dir, id), &aside)
        .map_err(|e| format!("cannot move checkpoint {id} aside: {e}"))?;
    Ok(aside)
}

/// The checkpoint to resume from, if any: intact, and with its external commits made.
pub(super) fn choose(dir: &Path) -> Result<Option<Loaded>, String> {
    let candidates = complete_checkpoints(dir, u64::MAX)?;
    // The newest intact checkpoint, and the damaged ones newer than it.
    let mut damaged = Vec::new();
    let mut intact = None;
    for (i, &id) in candidates.iter().enumerate() {
        match load(dir, id) {
            Ok(loaded) => {
                intact = Some((i, loaded));
                break;
            }
            Err(why) => damaged.push((id, why)),
        }
    }
    let listing = |damaged: &[(u64, String)]| {
        damaged
            .iter()
            .map(|(id, why)| format!("  checkpoint {id}: {why}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let Some((index, newest)) = intact else {
        if damaged.is_empty() {
            return Ok(None);
        }
        return Err(format!(
            "no checkpoint in {} is intact, so weir cannot tell where to resume:\n{}\n  \
             to start over, remove the folder (output already committed stays)",
            dir.display(),
            listing(&damaged)
        ));
    };
    if !damaged.is_empty() {
        if !newest.manifest.notes.is_empty() {
            return Err(format!(
                "checkpoint {} in {} is damaged, and falling back to checkpoint {} would \
                 produce again what a sink committed outside weir (a Kafka transaction) after \
                 it, so weir stops:\n{}\n  to start over, remove the folder",
                damaged[0].0,
                dir.display(),
                newest.manifest.id,
                listing(&damaged)
            ));
        }
        for (id, why) in &damaged {
            let aside = set_aside(dir, *id, "damaged")?;
            tracing::warn!(
                "checkpoint {id} in {} is damaged ({why}); it is kept as {}",
                dir.display(),
                aside.display()
            );
        }
        tracing::info!(
            "falling back to checkpoint {}, the newest intact one",
            newest.manifest.id
        );
    }
    let older = &candidates[index + 1..];
    verified(dir, newest, older)
}

/// Checks the external commits `newest` notes; falls back to the one before when its commit
/// never happened.
fn verified(dir: &Path, newest: Loaded, older: &[u64]) -> Result<Option<Loaded>, String> {
    let id = newest.manifest.id;
    let verdict = externally_committed(&newest.manifest)?;
    // Only checkpoint 1 of a folder can lack a marker: every later one completed after a
    // commit of this folder's (markers are per folder). And a marker that is behind with no
    // checkpoint before this one means the one it marks is gone.
    let refuse = match verdict {
        Verdict::NoMarker => id != 1 || !older.is_empty(),
        Verdict::Behind => older.is_empty(),
        Verdict::Committed => false,
    };
    if refuse {
        return Err(format!(
            "checkpoint {id} in {} notes an external commit whose marker is {} (expired group \
             offsets? other brokers?); resuming could duplicate or lose output, so weir stops. \
             Check --kafka-property bootstrap.servers, or remove the folder to start over",
            dir.display(),
            if verdict == Verdict::NoMarker {
                "missing"
            } else {
                "behind, with no checkpoint before it"
            }
        ));
    }
    if verdict == Verdict::Committed {
        return Ok(Some(newest));
    }
    // A sink's external commit of the newest checkpoint never happened (the run died after
    // the manifest, before the commit). Its output elsewhere is taken back, and the run
    // resumes from the checkpoint before it, which is committed everywhere: a sink commits
    // a checkpoint's epoch before it saves its part of the next one.
    tracing::info!(
        "checkpoint {id} is complete but a sink's commit of it never happened; resuming \
         from the one before"
    );
    for action in &newest.manifest.commits {
        action
            .undo()
            .map_err(|e| format!("taking back checkpoint {id}: {e}"))?;
    }
    let Some(&before) = older.first() else {
        // It was the only one: nothing was ever committed, and the run starts over. The
        // folder is kept aside, not deleted, in case the marker was only unreachable (other
        // brokers, expired offsets).
        let aside = set_aside(dir, id, "rejected")?;
        tracing::info!(
            "no checkpoint in {} has every sink's commit; starting from the beginning \
             (checkpoint {id} is kept as {})",
            dir.display(),
            aside.display()
        );
        return Ok(None);
    };
    let loaded = load(dir, before).map_err(|why| {
        format!(
            "checkpoint {id} in {} was never committed and checkpoint {before} before it is \
             damaged ({why}); weir stops. To start over, remove the folder",
            dir.display()
        )
    })?;
    // Forgotten, so that a new checkpoint can take its id.
    std::fs::remove_dir_all(chk_dir(dir, id))
        .map_err(|e| format!("cannot remove checkpoint {id}: {e}"))?;
    Ok(Some(loaded))
}
