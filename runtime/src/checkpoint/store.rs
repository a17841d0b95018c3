//! Where checkpoints are kept: a folder (a plain path or `file:///abs/path`), or a prefix of
//! an S3-protocol object store (`s3://bucket/prefix`, [`super::object`], behind the runtime's
//! `object-store` feature).
//!
//! Checkpointing needs few operations: write a state file, write a manifest (the step that
//! makes a checkpoint complete), read, list checkpoints, delete or set one aside, hold the
//! one-writer lock, and the location's id. Keys are relative and `/`-separated
//! (`chk-3/MANIFEST`); a folder keeps exactly the bytes and names it always had.
//!
//! The atomic rules differ by kind, with the same outcome (a checkpoint has a whole manifest
//! or none, and whole state files before it):
//! - a folder writes the manifest under a temporary name, syncs it and renames it into place;
//!   its lock is `flock` on `LOCK`, which the kernel drops when the process ends;
//! - an object store has no rename, but a PUT is whole or absent: state objects get unique
//!   names (their checksum is in the name, so two writers of one checkpoint never replace
//!   each other's), and the manifest object is created with put-if-absent, so only one
//!   writer can complete a checkpoint id. The lock is a lease object (see
//!   [`super::object`]).

use std::path::{Path, PathBuf};

use super::commit;

/// A connection to a bucket, which the file sinks on object storage use too.
#[cfg(feature = "object-store")]
pub use super::object::Bucket;

/// A checkpoint location.
pub enum Store {
    Folder(PathBuf),
    #[cfg(feature = "object-store")]
    Object(super::object::Bucket),
}

/// The lock a run holds on its location for its whole life.
pub enum Lock {
    Folder(#[allow(dead_code)] std::fs::File),
    #[cfg(feature = "object-store")]
    Object(#[allow(dead_code)] super::object::Lease),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How a `--checkpoint-dir` value names its location.
enum Location<'a> {
    Folder(PathBuf),
    S3(&'a str),
}

fn parse(location: &Path) -> Result<Location<'_>, String> {
    let Some(text) = location.to_str() else {
        return Ok(Location::Folder(location.to_path_buf()));
    };
    if let Some(path) = text.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(format!(
                "`{text}`: a file:// location needs an absolute path (file:///abs/path)"
            ));
        }
        return Ok(Location::Folder(PathBuf::from(path)));
    }
    if text.starts_with("s3://") {
        return Ok(Location::S3(text));
    }
    if let Some((scheme, _)) = text.split_once("://") {
        if !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "`{text}`: checkpoints go to a folder, file:///abs/path or s3://bucket/prefix, \
                 not {scheme}://"
            ));
        }
    }
    Ok(Location::Folder(location.to_path_buf()))
}

/// Whether `location` names an object store (`s3://`).
pub fn is_object_store(location: &Path) -> bool {
    matches!(parse(location), Ok(Location::S3(_)))
}

impl Store {
    /// The location `--checkpoint-dir` names; an object store is reached (and its bucket
    /// checked) here.
    pub fn open(location: &Path) -> Result<Store, String> {
        match parse(location)? {
            Location::Folder(dir) => Ok(Store::Folder(dir)),
            #[cfg(feature = "object-store")]
            Location::S3(url) => super::object::Bucket::open(url).map(Store::Object),
            #[cfg(not(feature = "object-store"))]
            Location::S3(url) => Err(format!(
                "`{url}`: this binary was built without object storage; build it with \
                 `weir build --object-store` (`weir run` does so by itself when given an s3:// \
                 --checkpoint-dir), or use a folder"
            )),
        }
    }

    /// The location as a user wrote it (a path, or `s3://bucket/prefix`).
    pub fn describe(&self) -> String {
        match self {
            Store::Folder(dir) => dir.display().to_string(),
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.url(),
        }
    }

    /// The location `name` under this one (a scale-out task's `partition-N`).
    pub fn child(&self, name: &str) -> Store {
        match self {
            Store::Folder(dir) => Store::Folder(dir.join(name)),
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => Store::Object(bucket.child(name)),
        }
    }

    /// Makes the location exist (a folder; an object store needs nothing).
    pub fn create(&self) -> Result<(), String> {
        match self {
            Store::Folder(dir) => std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display())),
            #[cfg(feature = "object-store")]
            Store::Object(_) => Ok(()),
        }
    }

    /// Takes the one-writer lock, waiting while another process holds it.
    pub fn lock(&self) -> Result<Lock, String> {
        match self {
            Store::Folder(dir) => super::folder::lock_folder(dir).map(Lock::Folder),
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.lease().map(Lock::Object),
        }
    }

    /// The bytes under `key`, or `None` when there is nothing.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Store::Folder(dir) => {
                let path = dir.join(key);
                match std::fs::read(&path) {
                    Ok(bytes) => Ok(Some(bytes)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(format!("cannot read {}: {e}", path.display())),
                }
            }
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.get(key),
        }
    }

    /// A state file's bytes, or `None` when there is none: one of `map_from` bytes or more
    /// mapped from its file (an object store's downloaded to a temporary file first), see
    /// [`super::mapped`].
    pub fn get_part(
        &self,
        key: &str,
        map_from: u64,
    ) -> Result<Option<super::mapped::Bytes>, super::mapped::ReadError> {
        use super::mapped::ReadError;
        match self {
            Store::Folder(dir) => {
                let path = dir.join(key);
                let failed = |e: std::io::Error| {
                    ReadError::Store(format!("cannot read {}: {e}", path.display()))
                };
                let file = match std::fs::File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(failed(e)),
                };
                let len = file.metadata().map_err(failed)?.len();
                super::mapped::Bytes::of_file(file, len, &path, map_from).map(Some)
            }
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.get_part(key, map_from),
        }
    }

    /// Writes `bytes` under `key`, whole: a folder through a temporary name, synced and
    /// renamed (the parent folder is made when missing).
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        match self {
            Store::Folder(dir) => {
                let path = dir.join(key);
                let mut tmp = path.as_os_str().to_owned();
                tmp.push(".tmp");
                let tmp = PathBuf::from(tmp);
                super::folder::write_synced(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                commit::sync_parent(&path);
                Ok(())
            }
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.put(key, bytes),
        }
    }

    /// Creates `key` with `bytes` unless something is there already (`false` then). On an
    /// object store only one of several writers racing for one key gets `true`.
    pub fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool, String> {
        match self {
            Store::Folder(dir) => {
                use std::io::Write;
                let path = dir.join(key);
                let mut file = match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                    Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
                };
                file.write_all(bytes)
                    .and_then(|_| file.sync_data())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                commit::sync_parent(&path);
                Ok(true)
            }
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.put_if_absent(key, bytes),
        }
    }

    /// The names directly under the location (a folder's entries; an object store's first
    /// path segments).
    pub fn list_top(&self) -> Result<Vec<String>, String> {
        match self {
            Store::Folder(dir) => {
                let entries = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
                };
                Ok(entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .collect())
            }
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.list_top(),
        }
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &str) -> Result<bool, String> {
        match self {
            Store::Folder(dir) => Ok(dir.join(key).exists()),
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.exists(key),
        }
    }

    /// Deletes everything under `name/`.
    pub fn remove_all(&self, name: &str) -> Result<(), String> {
        match self {
            Store::Folder(dir) => {
                let path = dir.join(name);
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(format!("cannot remove {}: {e}", path.display())),
                }
            }
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => bucket.remove_all(name),
        }
    }

    /// Moves everything under `from/` to `to/` (a folder renames it; an object store copies
    /// and deletes, object by object). Returns where it went, as a user would look for it.
    pub fn move_all(&self, from: &str, to: &str) -> Result<String, String> {
        match self {
            Store::Folder(dir) => {
                let target = dir.join(to);
                std::fs::rename(dir.join(from), &target).map_err(|e| e.to_string())?;
                Ok(target.display().to_string())
            }
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => {
                bucket.move_all(from, to)?;
                Ok(format!("{}/{to}", bucket.url()))
            }
        }
    }

    /// Prepares the location of checkpoint `id`'s files (a folder makes `chk-<id>/`).
    pub fn begin(&self, chk: &str) -> Result<(), String> {
        match self {
            Store::Folder(dir) => {
                let path = dir.join(chk);
                if !path.exists() {
                    std::fs::create_dir_all(&path)
                        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                    commit::sync_parent(&path);
                }
                Ok(())
            }
            #[cfg(feature = "object-store")]
            Store::Object(_) => Ok(()),
        }
    }

    /// Writes a state file: a folder straight to its name, synced (only the manifest written
    /// after it makes it part of a checkpoint), or renames the part's synced file there; an
    /// object store with one PUT, or uploads the file in parts.
    pub fn put_part(&self, key: &str, part: super::spill::View<'_>) -> Result<(), String> {
        use super::spill::View;
        match (self, part) {
            (Store::Folder(dir), View::Memory(bytes)) => {
                super::folder::write_synced(&dir.join(key), bytes)
            }
            (Store::Folder(dir), View::File { path, .. }) => {
                let target = dir.join(key);
                std::fs::rename(path, &target).map_err(|e| {
                    format!(
                        "cannot move {} to {}: {e}",
                        path.display(),
                        target.display()
                    )
                })?;
                commit::sync_parent(&target);
                Ok(())
            }
            #[cfg(feature = "object-store")]
            (Store::Object(bucket), View::Memory(bytes)) => bucket.put(key, bytes),
            #[cfg(feature = "object-store")]
            (Store::Object(bucket), View::File { path, .. }) => bucket.put_file(key, path),
        }
    }

    /// The name of a state file in checkpoint folder `chk`: `<slot>-<instance>.state` in a
    /// folder; with the checksum of its bytes before `.state` in an object store, so that the
    /// objects of two writers never share a name.
    pub fn part_key(&self, chk: &str, slot: &str, instance: u32, checksum: u64) -> String {
        match self {
            Store::Folder(_) => {
                let _ = checksum;
                format!("{chk}/{slot}-{instance}.state")
            }
            #[cfg(feature = "object-store")]
            Store::Object(_) => format!("{chk}/{slot}-{instance}-{checksum:016x}.state"),
        }
    }

    /// Writes the manifest that completes checkpoint folder `chk`. `fresh`: the checkpoint
    /// must not be complete already; an object store then creates the manifest with
    /// put-if-absent and refuses when another writer completed that id first. A folder is
    /// locked to one writer and renames the manifest into place.
    pub fn put_manifest(&self, chk: &str, bytes: &[u8], fresh: bool) -> Result<(), String> {
        let key = format!("{chk}/MANIFEST");
        match self {
            Store::Folder(_) => {
                let _ = fresh; // one writer: the lock is the folder's guard
                self.put(&key, bytes)
            }
            #[cfg(feature = "object-store")]
            Store::Object(bucket) => {
                if !fresh {
                    return bucket.put(&key, bytes);
                }
                if bucket.put_if_absent(&key, bytes)? {
                    Ok(())
                } else {
                    Err(format!(
                        "{}/{chk} was completed by another writer (two runs on one checkpoint \
                         location?); this run stops",
                        bucket.url()
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_folders_and_object_stores() {
        assert!(matches!(
            parse(Path::new("chk")),
            Ok(Location::Folder(p)) if p == Path::new("chk")
        ));
        assert!(matches!(
            parse(Path::new("file:///data/chk")),
            Ok(Location::Folder(p)) if p == Path::new("/data/chk")
        ));
        assert!(parse(Path::new("file://data/chk"))
            .err()
            .unwrap()
            .contains("absolute"));
        assert!(matches!(
            parse(Path::new("s3://bucket/a/b")),
            Ok(Location::S3("s3://bucket/a/b"))
        ));
        assert!(parse(Path::new("gs://bucket/a"))
            .err()
            .unwrap()
            .contains("not gs://"));
        assert!(is_object_store(Path::new("s3://b/p")));
        assert!(!is_object_store(Path::new("/tmp/s3")));
    }

    #[cfg(not(feature = "object-store"))]
    #[test]
    fn without_the_feature_an_s3_location_says_how_to_get_it() {
        let err = Store::open(Path::new("s3://bucket/chk")).err().unwrap();
        assert!(err.contains("weir build --object-store"), "{err}");
    }

    #[test]
    fn put_if_absent_on_a_folder_creates_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::Folder(dir.path().to_path_buf());
        assert!(store.put_if_absent("ID", b"a\n").unwrap());
        assert!(!store.put_if_absent("ID", b"b\n").unwrap());
        assert_eq!(store.get("ID").unwrap().unwrap(), b"a\n");
        assert_eq!(store.get("nothing").unwrap(), None);
    }
}
