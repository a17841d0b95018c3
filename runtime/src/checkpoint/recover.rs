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

use super::delta::{self, Restored};
use super::manifest::{Kind, Link, Manifest};
use super::mapped::{Bytes, ReadError};
use super::store::Store;
use super::{chk_name, complete_checkpoints, now_ms, Verdict, Verifiers};

/// A checkpoint read whole and checked: its manifest and, for a `checkpoint` kind, what
/// every part restores (its chain's files, see [`super::delta`]).
pub(super) struct Loaded {
    pub manifest: Manifest,
    pub parts: BTreeMap<(String, u32), Restored>,
}

/// Reads the file `link` of instance `instance` of `slot` and checks its size and checksum.
/// A failure of this machine's (see [`ReadError::Local`]) is noted in `local`: it says
/// nothing about the checkpoint.
fn read_file(
    store: &Store,
    slot: &str,
    instance: u32,
    link: &Link,
    own: u64,
    map_from: u64,
    local: &std::cell::Cell<Option<String>>,
) -> Result<Bytes, String> {
    let chk = chk_name(link.checkpoint);
    let key = store.part_key(&chk, slot, instance, link.checksum);
    let file = key.rsplit('/').next().unwrap_or(&key);
    // A file of an earlier checkpoint is named with its folder.
    let name = if link.checkpoint == own {
        file.to_string()
    } else {
        format!("{chk}/{file}")
    };
    let bytes = match store.get_part(&key, map_from) {
        Ok(bytes) => bytes,
        Err(ReadError::Store(e)) => return Err(format!("cannot read {name}: {e}")),
        Err(ReadError::Local(e)) => {
            let why = format!("cannot read {name} back: {e}");
            local.set(Some(why.clone()));
            return Err(why);
        }
    }
    .ok_or_else(|| format!("cannot read {name}: it is missing"))?;
    if bytes.len() as u64 != link.bytes {
        return Err(format!(
            "{name} holds {} bytes, its manifest says {}",
            bytes.len(),
            link.bytes
        ));
    }
    if bytes.checksum() != link.checksum {
        return Err(format!("{name} is damaged (its checksum does not match)"));
    }
    Ok(bytes)
}

/// Reads checkpoint `id` of `store` and checks it against its checksums; the inner error says
/// what is damaged. The outer error is a failure of this machine's (a temporary file, a
/// mapping), which says nothing about the checkpoint: the run must not start, nor set the
/// checkpoint aside. State files of `map_from` bytes or more are mapped, not read (see
/// [`super::mapped`]).
pub(super) fn load(
    store: &Store,
    id: u64,
    map_from: u64,
) -> Result<Result<Loaded, String>, String> {
    let local = std::cell::Cell::new(None);
    let loaded = load_checked(store, id, map_from, &local);
    match local.take() {
        Some(why) => Err(format!("checkpoint {id} in {}: {why}", store.describe())),
        None => Ok(loaded),
    }
}

fn load_checked(
    store: &Store,
    id: u64,
    map_from: u64,
    local: &std::cell::Cell<Option<String>>,
) -> Result<Loaded, String> {
    let chk = chk_name(id);
    let text = store
        .get(&format!("{chk}/MANIFEST"))
        .map_err(|e| format!("cannot read its manifest: {e}"))?
        .ok_or("cannot read its manifest: it is gone")?;
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
            let own = Link {
                checkpoint: id,
                bytes: part.bytes,
                checksum: part.checksum,
            };
            let chain: Vec<Link> = part.links.iter().copied().chain([own]).collect();
            let mut restored = Restored {
                end: part.checksum,
                ..Restored::default()
            };
            for (i, link) in chain.iter().enumerate() {
                let bytes = read_file(store, &part.slot, part.instance, link, id, map_from, local)?;
                if i == 0 {
                    restored.full = bytes;
                    continue;
                }
                let (base, body) = delta::split(&bytes).map_err(|e| {
                    format!(
                        "the state file of {}-{} in {}: {e}",
                        part.slot,
                        part.instance,
                        chk_name(link.checkpoint)
                    )
                })?;
                if base != chain[i - 1].checksum {
                    return Err(format!(
                        "the delta of {}-{} in {} builds on another file than the one before                          it in its chain (in {})",
                        part.slot,
                        part.instance,
                        chk_name(link.checkpoint),
                        chk_name(chain[i - 1].checkpoint)
                    ));
                }
                let header = bytes.len() - body.len();
                restored.deltas.push(bytes.skip(header));
            }
            parts.insert((part.slot.clone(), part.instance), restored);
        }
    }
    Ok(Loaded { manifest, parts })
}

/// What a restart in a folder would resume from ([`inspect`]).
pub struct Inspection {
    /// The manifest of the newest intact checkpoint, if any.
    pub manifest: Option<Manifest>,
    /// The damaged newer checkpoints a restart falls back over, each with why.
    pub damaged: Vec<(u64, String)>,
}

/// The checkpoint a restart in `dir` would resume from, read without changing anything (no
/// damaged checkpoint is moved aside, no incomplete one removed, no external commit
/// verified).
pub fn inspect(dir: &std::path::Path) -> Result<Inspection, String> {
    let store = Store::open(dir)?;
    let mut damaged = Vec::new();
    for id in complete_checkpoints(&store, 0)? {
        match load(&store, id, super::spill::SPILL_AT as u64)? {
            Ok(loaded) => {
                return Ok(Inspection {
                    manifest: Some(loaded.manifest),
                    damaged,
                })
            }
            Err(why) => damaged.push((id, why)),
        }
    }
    Ok(Inspection {
        manifest: None,
        damaged,
    })
}

/// Moves a damaged checkpoint out of the way (kept for inspection, never read again).
fn set_aside(store: &Store, id: u64, prefix: &str) -> Result<String, String> {
    let aside = format!("{prefix}-chk-{id}-{}", now_ms());
    store
        .move_all(&chk_name(id), &aside)
        .map_err(|e| format!("cannot move checkpoint {id} aside: {e}"))
}

/// The checkpoint to resume from, if any: intact, and with its external commits made.
/// State files of `map_from` bytes or more are mapped.
pub(super) fn choose(
    store: &Store,
    verifiers: &Verifiers,
    map_from: u64,
) -> Result<Option<Loaded>, String> {
    let candidates = complete_checkpoints(store, u64::MAX)?;
    // The newest intact checkpoint, and the damaged ones newer than it.
    let mut damaged = Vec::new();
    let mut intact = None;
    for (i, &id) in candidates.iter().enumerate() {
        match load(store, id, map_from)? {
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
            store.describe(),
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
                store.describe(),
                newest.manifest.id,
                listing(&damaged)
            ));
        }
        for (id, why) in &damaged {
            let aside = set_aside(store, *id, "damaged")?;
            tracing::warn!(
                "checkpoint {id} in {} is damaged ({why}); it is kept as {aside}",
                store.describe(),
            );
        }
        tracing::info!(
            "falling back to checkpoint {}, the newest intact one",
            newest.manifest.id
        );
    }
    let older = &candidates[index + 1..];
    verified(store, verifiers, newest, older, map_from)
}

/// Checks the external commits `newest` notes; falls back to the one before when its commit
/// never happened.
fn verified(
    store: &Store,
    verifiers: &Verifiers,
    newest: Loaded,
    older: &[u64],
    map_from: u64,
) -> Result<Option<Loaded>, String> {
    let id = newest.manifest.id;
    let verdict = verifiers.externally_committed(&newest.manifest)?;
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
            store.describe(),
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
        let aside = set_aside(store, id, "rejected")?;
        tracing::info!(
            "no checkpoint in {} has every sink's commit; starting from the beginning \
             (checkpoint {id} is kept as {aside})",
            store.describe(),
        );
        return Ok(None);
    };
    let loaded = load(store, before, map_from)?.map_err(|why| {
        format!(
            "checkpoint {id} in {} was never committed and checkpoint {before} before it is \
             damaged ({why}); weir stops. To start over, remove the folder",
            store.describe()
        )
    })?;
    // Forgotten, so that a new checkpoint can take its id.
    store
        .remove_all(&chk_name(id))
        .map_err(|e| format!("cannot remove checkpoint {id}: {e}"))?;
    Ok(Some(loaded))
}
