//! A file sink's output under checkpoints: exactly once, visible only when committed.
//!
//! Rows of each checkpoint epoch go to a pending file beside the target
//! (`.out.jsonl.<pid>-<n>.pending`). At a barrier the pending file is synced and handed to the
//! checkpoint as an append; the target grows only when the checkpoint is complete (see
//! [`crate::checkpoint::commit`]). The target's committed length is this sink's state: a
//! restart truncates anything past it (nothing should be there) and deletes pending files no
//! manifest published, so rows are neither lost nor written twice.
//!
//! On object storage (an `s3://` target, see [`crate::sinks::object`]) nothing can be appended:
//! each epoch's rows (after the header, see [`CommittedFile::takes_header`]) are staged in a
//! local file, uploaded at the barrier as a hidden pending object, and published as an object
//! of their own, `out-000001.jsonl`, `out-000002.jsonl`, ..., when the checkpoint completes.
//! The state is then the number of objects published; a restart deletes pending objects and
//! numbered objects past that number. Without checkpoints the one object the path names is
//! written at the end of input.

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
    /// The target on object storage, if it is an `s3://` URL.
    object: Option<Box<ObjectTarget>>,
}

/// Where a committed file on object storage goes; `committed` counts its published objects.
struct ObjectTarget {
    /// `s3://bucket`.
    bucket: String,
    /// The target's folder (a key prefix, maybe empty) and name.
    dir: String,
    name: String,
    /// The name split at its extension: `out` and `.jsonl`.
    stem: String,
    extension: String,
    /// What every object starts with (a CSV header, an Avro file's header).
    header: Vec<u8>,
    /// Names this run's pending objects.
    #[cfg_attr(not(feature = "object-store"), allow(dead_code))]
    token: String,
    #[cfg(feature = "object-store")]
    objects: Option<crate::sinks::object::Objects>,
}

impl ObjectTarget {
    fn new(url: &str) -> Result<ObjectTarget, String> {
        use crate::sinks::object::{parent_and_name, split};
        let (bucket, key) = split(url)?;
        let (dir, name) = parent_and_name(&key);
        let (stem, extension) = match name.rfind('.').filter(|&i| i > 0) {
            Some(i) => (&name[..i], &name[i..]),
            None => (name, ""),
        };
        let token = format!(
            "{:012x}",
            crate::hash::route(&(std::time::SystemTime::now(), std::process::id(), url))
                & 0xffff_ffff_ffff
        );
        Ok(ObjectTarget {
            bucket,
            dir: dir.to_string(),
            name: name.to_string(),
            stem: stem.to_string(),
            extension: extension.to_string(),
            header: Vec::new(),
            token,
            #[cfg(feature = "object-store")]
            objects: None,
        })
    }

    fn url(&self, name: &str) -> PathBuf {
        PathBuf::from(format!(
            "{}/{}",
            self.bucket,
            crate::sinks::object::join(&self.dir, name)
        ))
    }

    /// The object of epoch `number` (from 1): `out-000001.jsonl`.
    fn numbered(&self, number: u64) -> String {
        format!("{}-{number:06}{}", self.stem, self.extension)
    }

    /// The number of an epoch object's name, if it is one of this target's.
    #[cfg_attr(not(feature = "object-store"), allow(dead_code))]
    fn number_of(&self, name: &str) -> Option<u64> {
        let digits = name
            .strip_prefix(self.stem.as_str())?
            .strip_prefix('-')?
            .strip_suffix(self.extension.as_str())?;
        if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    #[cfg_attr(not(feature = "object-store"), allow(dead_code))]
    fn pending_name(&self, seq: u64) -> String {
        format!(".{}.{}-{seq}.pending", self.name, self.token)
    }

    /// Connects, and deletes what no checkpoint published: pending objects, epoch objects
    /// past `committed`, and on a fresh start the object the path names.
    #[cfg(feature = "object-store")]
    fn start(&mut self, committed: u64, fresh: bool) -> Result<(), String> {
        let (objects, _) = crate::sinks::object::connected(&format!(
            "{}/{}",
            self.bucket,
            crate::sinks::object::join(&self.dir, &self.name)
        ))?;
        let pending = format!(".{}.", self.name);
        for name in objects.names_in(&self.dir)? {
            let stale = (name.starts_with(&pending) && name.ends_with(".pending"))
                || self.number_of(&name).is_some_and(|n| n > committed)
                || (fresh && name == self.name);
            if stale {
                objects.delete(&crate::sinks::object::join(&self.dir, &name))?;
            }
        }
        self.objects = Some(objects);
        Ok(())
    }

    #[cfg(not(feature = "object-store"))]
    fn start(&mut self, _committed: u64, _fresh: bool) -> Result<(), String> {
        Err(crate::sinks::object::missing(&self.bucket))
    }

    /// Uploads the staged file `local` as the pending object of `seq`; returns its URL.
    #[cfg(feature = "object-store")]
    fn upload(&self, local: &Path, seq: u64) -> Result<PathBuf, String> {
        let objects = self
            .objects
            .as_ref()
            .ok_or_else(|| format!("{}: not connected", self.bucket))?;
        let name = self.pending_name(seq);
        objects.upload(local, &crate::sinks::object::join(&self.dir, &name))?;
        Ok(self.url(&name))
    }

    #[cfg(not(feature = "object-store"))]
    fn upload(&self, _local: &Path, _seq: u64) -> Result<PathBuf, String> {
        Err(crate::sinks::object::missing(&self.bucket))
    }
}

impl CommittedFile {
    /// A committed file at `target`, a path or an `s3://` URL (an error only for a URL
    /// without a bucket or key).
    pub fn new(target: &Path) -> Result<CommittedFile, String> {
        let object = if crate::sinks::object::is_object_path(target) {
            Some(Box::new(ObjectTarget::new(&target.to_string_lossy())?))
        } else {
            None
        };
        Ok(CommittedFile {
            target: target.to_path_buf(),
            committed: 0,
            pending: None,
            seq: 0,
            uncommitted: Vec::new(),
            started: false,
            object,
        })
    }

    /// Whether the target is on object storage.
    pub fn is_object(&self) -> bool {
        self.object.is_some()
    }

    /// On object storage, where every epoch is an object of its own, keeps `header` to start
    /// each object with and returns true; elsewhere returns false (the caller writes the
    /// header into the file once, as its first bytes).
    pub fn takes_header(&mut self, header: &[u8]) -> bool {
        match &mut self.object {
            Some(object) => {
                object.header = header.to_vec();
                true
            }
            None => false,
        }
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Prepares the target: `restored` is the committed length from a checkpoint (fresh start:
    /// none, and the target starts empty, as an unchecked sink would truncate it).
    /// On object storage `restored` is the number of objects published.
    pub fn start(&mut self, restored: Option<u64>) -> Result<(), String> {
        self.started = true;
        self.committed = restored.unwrap_or(0);
        if let Some(object) = &mut self.object {
            return object.start(self.committed, restored.is_none());
        }
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
            self.open_pending()?;
        }
        let (_, out, size) = self.pending.as_mut().expect("opened above");
        out.write_all(bytes)?;
        *size += bytes.len() as u64;
        Ok(())
    }

    /// Starts the epoch's pending file (on object storage a local staging file, which
    /// starts with the header).
    fn open_pending(&mut self) -> std::io::Result<()> {
        self.seq += 1;
        if let Some(object) = &self.object {
            let path = crate::sinks::object::staging_file(&object.name);
            let mut out = BufWriter::with_capacity(1 << 16, File::create(&path)?);
            out.write_all(&object.header)?;
            let size = object.header.len() as u64;
            self.pending = Some((path, out, size));
            return Ok(());
        }
        let (dir, prefix) = self.pending_prefix();
        let path = dir.join(format!(
            "{prefix}{}-{}.pending",
            std::process::id(),
            self.seq
        ));
        let file = File::create(&path)?;
        // The pending file's name must survive a power loss once a manifest lists it.
        crate::checkpoint::commit::sync_parent(&path);
        self.pending = Some((path, BufWriter::with_capacity(1 << 16, file), 0));
        Ok(())
    }

    /// On object storage: uploads the epoch's staged file as a pending object, published as
    /// the next numbered object (or, `exact`, as the object the path names) by `checkpoint`.
    fn seal_object(&mut self, checkpoint: u64, exact: bool) -> Result<(), String> {
        let Some((path, out, _)) = self.pending.take() else {
            return Ok(());
        };
        let object = self.object.as_ref().expect("only on object storage");
        let staged = out
            .into_inner()
            .map_err(|e| format!("cannot write {}: {}", path.display(), e.error()));
        let uploaded = staged.and_then(|_| object.upload(&path, self.seq));
        let _ = std::fs::remove_file(&path);
        let pending = uploaded?;
        let number = self.committed + 1;
        let name = if exact {
            object.name.clone()
        } else {
            object.numbered(number)
        };
        self.uncommitted.push((
            checkpoint,
            CommitAction::Rename {
                from: pending,
                to: object.url(&name),
            },
        ));
        self.committed = number;
        Ok(())
    }

    /// Closes the epoch: the pending file becomes an append carried by `checkpoint`.
    fn seal(&mut self, checkpoint: u64) -> Result<(), String> {
        if self.object.is_some() {
            return self.seal_object(checkpoint, false);
        }
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
        if self.object.is_some() && !slot.is_active() {
            // Without checkpoints the one object the path names, even without rows.
            if self.pending.is_none() {
                self.open_pending()
                    .map_err(|e| format!("cannot stage {}: {e}", self.target.display()))?;
            }
            self.seal_object(u64::MAX, true)?;
        } else {
            self.seal(u64::MAX)?;
        }
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
        if self.object.is_some() {
            if !self.started {
                self.start(None)?;
            }
            let object = self.object.as_mut().expect("checked above");
            object.header.clear();
            self.open_pending()
                .and_then(|_| {
                    let (_, out, _) = self.pending.as_mut().expect("opened above");
                    out.write_all(bytes)
                })
                .map_err(|e| format!("cannot stage {}: {e}", self.target.display()))?;
            self.seal_object(u64::MAX, true)?;
            let actions: Vec<CommitAction> = self.uncommitted.drain(..).map(|(_, a)| a).collect();
            if slot.is_active() {
                slot.finish(actions);
                return Ok(());
            }
            return actions.iter().try_for_each(CommitAction::apply);
        }
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
