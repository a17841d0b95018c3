//! A file sink's output under checkpoints: exactly once, visible only when committed.
//!
//! Rows of each checkpoint epoch go to a pending file beside the target
//! (`.out.jsonl.<pid>-<n>.pending`). At a barrier the pending file is synced and handed to the
//! checkpoint as an append; the target grows only when the checkpoint is complete (see
//! [`crate::checkpoint::commit`]). The target's committed length is this sink's state: a
//! restart truncates anything past it (nothing should be there) and deletes pending files no
//! manifest published, so rows are neither lost nor written twice.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::checkpoint::{CommitAction, StateSlot};

pub struct CommittedFile {
    target: PathBuf,
    /// The target's length once every append handed over so far is done.
    committed: u64,
    pending: Option<(PathBuf, BufWriter<File>, u64)>,
    seq: u64,
    /// Appends not yet known to be published, with the checkpoint that carries them.
    uncommitted: Vec<(u64, CommitAction)>,
    started: bool,
}

impl CommittedFile {
    pub fn new(target: &Path) -> CommittedFile {
        CommittedFile {
            target: target.to_path_buf(),
            committed: 0,
            pending: None,
            seq: 0,
            uncommitted: Vec::new(),
            started: false,
        }
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Prepares the target: `restored` is the committed length from a checkpoint (fresh start:
    /// none, and the target starts empty, as an unchecked sink would truncate it).
    pub fn start(&mut self, restored: Option<u64>) -> Result<(), String> {
        self.started = true;
        self.committed = restored.unwrap_or(0);
        if let Some(parent) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create folder {}: {e}", parent.display()))?;
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.target)
            .map_err(|e| format!("cannot open {}: {e}", self.target.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.committed {
            return Err(format!(
                "{} is {len} bytes but the checkpoint committed {}: was it changed or replaced?",
                self.target.display(),
                self.committed
            ));
        }
        file.set_len(self.committed)
            .map_err(|e| format!("cannot truncate {}: {e}", self.target.display()))?;
        // Pending parts of epochs no manifest published.
        let (dir, prefix) = self.pending_prefix();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with(&prefix) && name.ends_with(".pending") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    fn pending_prefix(&self) -> (PathBuf, String) {
        let dir = match self.target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = self
            .target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (dir, format!(".{name}."))
    }

    /// Appends encoded rows to the current epoch's pending file.
    pub fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if !self.started {
            self.start(None).map_err(std::io::Error::other)?;
        }
        if self.pending.is_none() {
            let (dir, prefix) = self.pending_prefix();
            self.seq += 1;
            let path = dir.join(format!(
                "{prefix}{}-{}.pending",
                std::process::id(),
                self.seq
            ));
            let file = File::create(&path)?;
            // The pending file's name must survive a power loss once a manifest lists it.
            crate::checkpoint::commit::sync_parent(&path);
            self.pending = Some((path, BufWriter::with_capacity(1 << 16, file), 0));
        }
        let (_, out, size) = self.pending.as_mut().expect("opened above");
        out.write_all(bytes)?;
        *size += bytes.len() as u64;
        Ok(())
    }

    /// Closes the epoch: the pending file becomes an append carried by `checkpoint`.
    fn seal(&mut self, checkpoint: u64) -> Result<(), String> {
        let Some((path, out, size)) = self.pending.take() else {
            return Ok(());
        };
        let file = out
            .into_inner()
            .map_err(|e| format!("cannot write {}: {}", path.display(), e.error()))?;
        file.sync_data()
            .map_err(|e| format!("cannot sync {}: {e}", path.display()))?;
        self.uncommitted.push((
            checkpoint,
            CommitAction::Append {
                pending: path,
                target: self.target.clone(),
                before: self.committed,
                size,
            },
        ));
        self.committed += size;
        Ok(())
    }

    /// At barrier `checkpoint`: seals the epoch; returns the committed length to save and
    /// every append not yet published (they travel with each checkpoint until one completes).
    pub fn seal_for(
        &mut self,
        slot: &StateSlot,
        checkpoint: u64,
    ) -> Result<(u64, Vec<CommitAction>), String> {
        self.seal(checkpoint)?;
        let done = slot.completed();
        self.uncommitted.retain(|(c, _)| *c > done);
        Ok((
            self.committed,
            self.uncommitted.iter().map(|(_, a)| a.clone()).collect(),
        ))
    }

    /// At barrier `checkpoint`: seals the epoch and saves this file's part.
    pub fn barrier(&mut self, slot: &StateSlot, checkpoint: u64) -> Result<(), String> {
        let (committed, actions) = self.seal_for(slot, checkpoint)?;
        slot.save(checkpoint, &crate::state::encode(&committed), actions);
        Ok(())
    }

    /// At the end of input: seals the last epoch and returns every append not yet published.
    pub fn take_final(&mut self, slot: &StateSlot) -> Result<Vec<CommitAction>, String> {
        if !self.started {
            self.start(None)?;
        }
        self.seal(u64::MAX)?;
        let done = slot.completed();
        self.uncommitted.retain(|(c, _)| *c > done);
        Ok(std::mem::take(&mut self.uncommitted)
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// At the end of input: hands the remaining appends to the final commit (or runs them
    /// when this sink is not part of a checkpointed run).
    pub fn finish(&mut self, slot: &StateSlot) -> Result<(), String> {
        let actions = self.take_final(slot)?;
        if slot.is_active() {
            slot.finish(actions);
        } else {
            for a in &actions {
                a.apply()?;
            }
        }
        Ok(())
    }

    /// Writes a whole file aside, published by renaming it over the target at the final
    /// commit (a final table).
    pub fn replace_with(&mut self, bytes: &[u8], slot: &StateSlot) -> Result<(), String> {
        let (dir, prefix) = self.pending_prefix();
        let path = dir.join(format!("{prefix}{}-final.pending", std::process::id()));
        let io = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
        let mut f = File::create(&path).map_err(io)?;
        f.write_all(bytes).and_then(|_| f.sync_data()).map_err(io)?;
        let action = CommitAction::Rename {
            from: path.clone(),
            to: self.target.clone(),
        };
        if slot.is_active() {
            slot.finish(vec![action]);
            Ok(())
        } else {
            action.apply()
        }
    }
}
