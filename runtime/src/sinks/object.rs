//! File sinks on object storage: `file(path: "s3://bucket/prefix/out.jsonl")`, the Hive and
//! `parts` forms, Parquet and Avro under an `s3://` folder (feature `object-store`, which the
//! compiler enables for a pipeline with such a sink).
//!
//! An object store cannot append to an object nor rename one, so a sink's bytes are staged in
//! a local file (in the system's temporary folder) and uploaded whole, as a hidden pending
//! object beside the target (`.out.jsonl.<token>.pending`); publishing it is a server-side
//! copy to its final name and a delete of the pending object ([`publish`]), which is what a
//! rename commit action means when its paths are `s3://` URLs
//! ([`crate::checkpoint::CommitAction`]). Publishing is idempotent: a pending object that is
//! gone while its target is there was published before, so recovery can run a manifest's
//! actions again.
//!
//! The objects themselves are named by the sinks ([`crate::sinks::committed`],
//! [`crate::sinks::parquet`]): without checkpoints a line or Avro sink writes the object its
//! path names once, at the end of input; with them, every checkpoint epoch that has rows
//! becomes an object of its own, `out-000001.jsonl`, `out-000002.jsonl`, ...

use std::path::Path;

/// Whether a sink path names an object store (`s3://...`).
pub fn is_object_path(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("s3://"))
}

/// `s3://bucket/a/b` as (`s3://bucket`, `a/b`).
pub fn split(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("`{url}` is not an s3:// URL"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || key.trim_matches('/').is_empty() {
        return Err(format!(
            "`{url}`: a sink on object storage needs a bucket and a key (s3://bucket/out.jsonl)"
        ));
    }
    Ok((format!("s3://{bucket}"), key.trim_matches('/').to_string()))
}

/// The parent "folder" of a key (`a/b` for `a/b/c`, empty for `c`) and its last segment.
pub fn parent_and_name(key: &str) -> (&str, &str) {
    match key.rsplit_once('/') {
        Some((dir, name)) => (dir, name),
        None => ("", key),
    }
}

/// `dir/name`, or `name` when `dir` is empty.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A local file to stage an object's bytes in, unique to this process. The first call of a
/// process removes the staged files of processes that are gone (a killed run cannot remove
/// its own; what they held was never published, and a restart writes it again).
pub fn staging_file(what: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| {
        crate::stop::remove_left_by_gone_processes(&std::env::temp_dir(), "weir-sink-", ".staged")
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tag = crate::hash::route(&what);
    std::env::temp_dir().join(format!(
        "weir-sink-{}-{n}-{tag:016x}.staged",
        std::process::id()
    ))
}

#[cfg(feature = "object-store")]
pub use with_store::*;

#[cfg(feature = "object-store")]
mod with_store {
    use std::path::Path;

    use object_store::{ObjectStore, ObjectStoreExt};

    use crate::checkpoint::store::Bucket;

    /// A bucket a sink writes to, by its `s3://bucket` URL.
    #[derive(Clone)]
    pub struct Objects {
        bucket: Bucket,
    }

    impl Objects {
        /// Connects to the bucket of `url` (`s3://bucket/...`), with the credentials of the
        /// standard AWS variables and files, as checkpoints on object storage do.
        pub fn connect(url: &str) -> Result<(Objects, String), String> {
            let (bucket, key) = super::split(url)?;
            let bucket = Bucket::open(&bucket)?;
            Ok((Objects { bucket }, key))
        }

        pub fn url(&self, key: &str) -> String {
            format!("{}/{key}", self.bucket.url())
        }

        fn error(&self, what: &str, key: &str, e: object_store::Error) -> String {
            format!("cannot {what} {}: {e}", self.url(key))
        }

        /// Uploads the local file `local` as the object `key` (in parts when it is large);
        /// the object appears whole or not at all.
        pub fn upload(&self, local: &Path, key: &str) -> Result<(), String> {
            self.bucket.put_file(key, local)
        }

        /// The object `key`'s bytes, if it exists.
        pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
            self.bucket.get(key)
        }

        /// Writes `bytes` as the object `key`.
        pub fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
            self.bucket.put(key, bytes)
        }

        pub fn exists(&self, key: &str) -> Result<bool, String> {
            self.bucket.exists(key)
        }

        pub fn delete(&self, key: &str) -> Result<(), String> {
            match self
                .bucket
                .block(self.bucket.store.delete(&self.bucket.path(key)))
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.error("delete", key, e)),
            }
        }

        /// Makes the pending object `from` the object `to`: a copy, then the pending one is
        /// deleted. Safe to repeat: when `from` is gone and `to` is there, it was done before.
        pub fn publish(&self, from: &str, to: &str) -> Result<(), String> {
            let (source, target) = (self.bucket.path(from), self.bucket.path(to));
            match self.bucket.block(self.bucket.store.copy(&source, &target)) {
                Ok(()) => self.delete(from),
                Err(object_store::Error::NotFound { .. }) => {
                    if self.exists(to)? {
                        Ok(())
                    } else {
                        Err(format!(
                            "cannot commit {}: neither it nor its pending object {} exists",
                            self.url(to),
                            self.url(from)
                        ))
                    }
                }
                Err(e) => Err(self.error("copy", from, e)),
            }
        }

        /// The names of the objects directly under the folder `dir` (a key prefix).
        pub fn names_in(&self, dir: &str) -> Result<Vec<String>, String> {
            let path = self.bucket.path(dir);
            let listed = self
                .bucket
                .block(self.bucket.store.list_with_delimiter(Some(&path)))
                .map_err(|e| self.error("list", dir, e))?;
            let mut names: Vec<String> = listed
                .objects
                .iter()
                .filter_map(|o| o.location.filename().map(str::to_string))
                .collect();
            names.sort();
            Ok(names)
        }

        /// Every object's key under the folder `dir`, at any depth.
        pub fn keys_under(&self, dir: &str) -> Result<Vec<String>, String> {
            self.bucket.keys_under(dir)
        }
    }

    thread_local! {
        /// Connections of this thread, by bucket: commit actions run on a run's checkpoint
        /// thread, which publishes an object or more at every checkpoint (a client costs a
        /// TLS setup and a listing; a cache, never state of a run).
        static CONNECTED: std::cell::RefCell<Vec<(String, Objects)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }

    /// A connection to the bucket of `url`, reused on this thread, and the key.
    pub fn connected(url: &str) -> Result<(Objects, String), String> {
        let (bucket, key) = super::split(url)?;
        let cached = CONNECTED.with(|c| {
            c.borrow()
                .iter()
                .find(|(b, _)| *b == bucket)
                .map(|(_, o)| o.clone())
        });
        if let Some(objects) = cached {
            return Ok((objects, key));
        }
        let (objects, key) = Objects::connect(url)?;
        CONNECTED.with(|c| c.borrow_mut().push((bucket, objects.clone())));
        Ok((objects, key))
    }

    /// Publishes the pending object `from` as `to` (both `s3://bucket/key`), see
    /// [`Objects::publish`].
    pub fn publish(from: &str, to: &str) -> Result<(), String> {
        let (objects, from_key) = connected(from)?;
        let (to_bucket, to_key) = super::split(to)?;
        if objects.url("") != format!("{to_bucket}/") {
            return Err(format!(
                "cannot commit {to}: its pending object {from} is in another bucket"
            ));
        }
        objects.publish(&from_key, &to_key)
    }
}

/// Uploads the finished local file `local` as the pending object beside `done` (an `s3://`
/// URL) and deletes it; the action returned publishes it as `done`.
pub fn upload_pending(local: &Path, done: &str) -> Result<crate::checkpoint::CommitAction, String> {
    let (bucket, key) = split(done)?;
    let (dir, name) = parent_and_name(&key);
    let pending = join(dir, &format!(".{name}.pending"));
    let uploaded = upload_to(local, &format!("{bucket}/{pending}"));
    let _ = std::fs::remove_file(local);
    uploaded?;
    Ok(crate::checkpoint::CommitAction::Rename {
        from: format!("{bucket}/{pending}").into(),
        to: done.into(),
    })
}

#[cfg(feature = "object-store")]
fn upload_to(local: &Path, url: &str) -> Result<(), String> {
    let (objects, key) = connected(url)?;
    objects.upload(local, &key)
}

/// Deletes the objects under the folder `base` (an `s3://` URL), at any depth, whose file
/// names `stale` picks.
#[cfg(feature = "object-store")]
pub fn remove_where(base: &str, stale: impl Fn(&str) -> bool) -> Result<(), String> {
    let (objects, dir) = connected(base)?;
    for key in objects.keys_under(&dir)? {
        if stale(parent_and_name(&key).1) {
            objects.delete(&key)?;
        }
    }
    Ok(())
}

/// Without the `object-store` feature every use of an `s3://` sink path is this error.
#[cfg(not(feature = "object-store"))]
pub fn publish(from: &str, _to: &str) -> Result<(), String> {
    Err(missing(from))
}

#[cfg(not(feature = "object-store"))]
fn upload_to(_local: &Path, url: &str) -> Result<(), String> {
    Err(missing(url))
}

#[cfg(not(feature = "object-store"))]
pub fn remove_where(base: &str, _stale: impl Fn(&str) -> bool) -> Result<(), String> {
    Err(missing(base))
}

/// The error of an `s3://` sink path in a binary built without object storage.
pub fn missing(url: &str) -> String {
    format!(
        "`{url}`: this binary was built without object storage; build it with `weir build \
         --object-store` (weir does so by itself for a pipeline whose sink path is s3://)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_key() {
        assert_eq!(
            split("s3://b/a/out.jsonl").unwrap(),
            ("s3://b".to_string(), "a/out.jsonl".to_string())
        );
        assert!(split("s3://b")
            .unwrap_err()
            .contains("needs a bucket and a key"));
        assert!(split("s3:///x").is_err());
        assert_eq!(parent_and_name("a/b/c"), ("a/b", "c"));
        assert_eq!(parent_and_name("c"), ("", "c"));
        assert_eq!(join("", "c"), "c");
        assert!(is_object_path(Path::new("s3://b/x")));
        assert!(!is_object_path(Path::new("out/s3:/x")));
    }

    /// Staged files of a process that is gone are removed; this process's, a live
    /// process's and other files stay.
    #[test]
    fn staged_files_of_gone_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A child that has exited and been waited for: its pid is gone.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let names = [
            format!("weir-sink-{gone}-0-00000000000000aa.staged"),
            format!("weir-sink-{}-0-00000000000000bb.staged", std::process::id()),
            "weir-sink-1-0-00000000000000cc.staged".to_string(), // init: alive
            format!("weir-sink-{gone}-0-notes.txt"),
        ];
        for name in &names {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        crate::stop::remove_left_by_gone_processes(dir.path(), "weir-sink-", ".staged");
        let left: Vec<bool> = names.iter().map(|n| dir.path().join(n).exists()).collect();
        assert_eq!(left, [false, true, true, true]);
    }
}
