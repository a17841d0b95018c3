//! Commit actions: how a sink's output becomes visible once the checkpoint covering it is
//! complete, and again (idempotently) when a restart recovers that checkpoint.
//!
//! A file sink writes each checkpoint epoch's rows to a pending file beside its target. The
//! manifest of a checkpoint lists the appends that make those rows visible; they run after
//! the manifest is durable, and a restart runs the latest manifest's appends again before
//! anything else. An append knows the target's length before it, so running it twice, or
//! after a crash half-way through it, leaves exactly one copy of the rows.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One step that publishes output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitAction {
    /// Append `pending` (of `size` bytes) to `target`, whose committed length before it is
    /// `before`; then delete `pending`.
    Append {
        pending: PathBuf,
        target: PathBuf,
        before: u64,
        size: u64,
    },
    /// Move `from` to `to` (a whole file written aside, e.g. a final table). Both may be
    /// `s3://` URLs: a pending object published by a copy and a delete
    /// ([`crate::sinks::object`]).
    Rename { from: PathBuf, to: PathBuf },
}

impl CommitAction {
    /// Runs the action; safe to repeat, and safe after a crash in the middle of an earlier run.
    pub fn apply(&self) -> Result<(), String> {
        match self {
            CommitAction::Append {
                pending,
                target,
                before,
                size,
            } => append(pending, target, *before, *size),
            CommitAction::Rename { from, to } if crate::sinks::object::is_object_path(from) => {
                crate::sinks::object::publish(&from.to_string_lossy(), &to.to_string_lossy())
            }
            CommitAction::Rename { from, to } => {
                if from.exists() {
                    std::fs::rename(from, to).map_err(|e| {
                        format!("cannot move {} to {}: {e}", from.display(), to.display())
                    })?;
                    sync_parent(to);
                    Ok(())
                } else if to.exists() {
                    Ok(()) // done before
                } else {
                    Err(format!(
                        "cannot commit {}: neither it nor {} exists",
                        to.display(),
                        from.display()
                    ))
                }
            }
        }
    }

    /// Takes back what [`apply`](Self::apply) published, for a checkpoint that recovery
    /// rejects (another sink never committed it): an append is cut off again (the target is
    /// truncated to its length before it, which later appends start from). A rename is kept:
    /// renames only publish a finished run's final tables.
    pub fn undo(&self) -> Result<(), String> {
        if let CommitAction::Append {
            pending,
            target,
            before,
            ..
        } = self
        {
            let len = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
            if len > *before {
                let file = OpenOptions::new()
                    .write(true)
                    .open(target)
                    .map_err(|e| format!("cannot open {}: {e}", target.display()))?;
                file.set_len(*before)
                    .and_then(|_| file.sync_all())
                    .map_err(|e| format!("cannot truncate {}: {e}", target.display()))?;
            }
            let _ = std::fs::remove_file(pending);
        }
        Ok(())
    }
}

fn append(pending: &Path, target: &Path, before: u64, size: u64) -> Result<(), String> {
    let len = std::fs::metadata(target).map(|m| m.len()).unwrap_or(0);
    if !pending.exists() {
        if len >= before + size {
            return Ok(()); // appended and cleaned up before
        }
        return Err(format!(
            "cannot commit to {}: its pending part {} is gone and the file is {len} bytes, not {}",
            target.display(),
            pending.display(),
            before + size
        ));
    }
    if len < before {
        return Err(format!(
            "cannot commit to {}: it is {len} bytes, shorter than the {before} committed before \
             (was it changed by something else?)",
            target.display()
        ));
    }
    let io = |what: &str, e: std::io::Error| format!("{what} {}: {e}", target.display());
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(target)
        .map_err(|e| io("cannot open", e))?;
    // Anything past `before` is a partial earlier attempt at this same append.
    out.set_len(before).map_err(|e| io("cannot truncate", e))?;
    out.seek(SeekFrom::Start(before))
        .map_err(|e| io("cannot seek in", e))?;
    let mut input = File::open(pending)
        .map_err(|e| format!("cannot read pending part {}: {e}", pending.display()))?;
    let copied = std::io::copy(&mut input, &mut out).map_err(|e| io("cannot append to", e))?;
    if copied != size {
        return Err(format!(
            "pending part {} holds {copied} bytes, the checkpoint says {size}",
            pending.display()
        ));
    }
    out.sync_data().map_err(|e| io("cannot sync", e))?;
    std::fs::remove_file(pending)
        .map_err(|e| format!("cannot remove {}: {e}", pending.display()))?;
    Ok(())
}

/// Makes a rename or a new file durable by syncing its folder (best effort: not every
/// platform can open a folder).
pub(crate) fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_append_runs_once_however_often_it_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        std::fs::write(&target, "one\n").unwrap();
        let pending = dir.path().join("out.txt.pending");
        std::fs::write(&pending, "two\n").unwrap();
        let action = CommitAction::Append {
            pending: pending.clone(),
            target: target.clone(),
            before: 4,
            size: 4,
        };
        action.apply().unwrap();
        action.apply().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "one\ntwo\n");
        assert!(!pending.exists());
    }

    #[test]
    fn a_half_done_append_is_redone_from_the_committed_length() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        // A crash left part of the pending rows in the target.
        std::fs::write(&target, "one\ntw").unwrap();
        let pending = dir.path().join("p");
        std::fs::write(&pending, "two\n").unwrap();
        CommitAction::Append {
            pending,
            target: target.clone(),
            before: 4,
            size: 4,
        }
        .apply()
        .unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn a_missing_pending_part_is_an_error_unless_already_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.txt");
        std::fs::write(&target, "one\n").unwrap();
        let action = CommitAction::Append {
            pending: dir.path().join("gone"),
            target,
            before: 4,
            size: 4,
        };
        assert!(action.apply().unwrap_err().contains("is gone"));
    }
}
