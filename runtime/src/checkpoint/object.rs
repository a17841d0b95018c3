//! Checkpoints in an S3-protocol object store (`--checkpoint-dir s3://bucket/prefix`), through
//! Apache Arrow's `object_store` crate (behind the runtime's `object-store` feature).
//!
//! The client and its credentials come from the standard AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...: `AmazonS3Builder::from_env`), then from the
//! profile of the shared files `~/.aws/credentials` and `~/.aws/config` for what the
//! environment leaves unset ([`super::aws_files`]). Its calls are
//! async; a [`Bucket`] owns a current-thread tokio runtime and blocks on it, which only the
//! checkpoint paths do (sources, operators and sinks at a barrier, the checkpoint thread,
//! recovery at start), never the per-record path.
//!
//! The lock of a folder (`flock`) has no equivalent in an object store, so a run holds a
//! **lease**: the object `LOCK`, created with put-if-absent, naming its holder (a random
//! token, host and process id) and when it expires. The holder renews it every
//! [`RENEW`] with a conditional PUT on the ETag it last wrote; another run takes it over only
//! when it has expired, or when its holder is a process of the same host that is gone (a
//! run killed and started again need not wait), and again only through a conditional PUT,
//! so two runs racing for it cannot both win. A holder that cannot renew before its lease
//! expires, or finds it taken, no longer owns the location: its coordinator writes nothing
//! more there, and its run stops at once (a pipeline binary's ends the process; a library's
//! fails with the error, see [`crate::context::exit_or_stop`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, WriteMultipart,
};

/// The size of each part of a multipart upload (S3 takes at most 10,000 parts: 160 GB).
const UPLOAD_PART: usize = 16 << 20;

/// An object's bytes and its ETag.
type Tagged = (Vec<u8>, Option<String>);

/// How long a lease lasts without renewal.
pub const LEASE: Duration = Duration::from_secs(15);
/// How often its holder renews it.
pub const RENEW: Duration = Duration::from_secs(3);

/// A prefix of a bucket, with the runtime its calls block on.
#[derive(Clone)]
pub struct Bucket {
    pub(crate) store: Arc<AmazonS3>,
    runtime: Arc<tokio::runtime::Runtime>,
    bucket: String,
    /// `a/b` for `s3://bucket/a/b` (empty: the bucket's root).
    prefix: String,
}

impl Bucket {
    /// Connects to `s3://bucket/prefix` and checks that it can be listed.
    pub fn open(url: &str) -> Result<Bucket, String> {
        let rest = url.strip_prefix("s3://").unwrap_or(url);
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{url}`: no bucket (s3://bucket/prefix)"));
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let profile = super::aws_files::load(|v| std::env::var(v).ok(), home.as_deref())
            .map_err(|e| format!("`{url}`: {e}"))?;
        if let Some(v) = profile.access_key_id {
            builder = builder.with_access_key_id(v);
        }
        if let Some(v) = profile.secret_access_key {
            builder = builder.with_secret_access_key(v);
        }
        if let Some(v) = profile.session_token {
            builder = builder.with_token(v);
        }
        if let Some(v) = profile.region {
            builder = builder.with_region(v);
        }
        let endpoint = std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .or(profile.endpoint_url);
        if let Some(v) = &endpoint {
            builder = builder.with_endpoint(v);
        }
        // An endpoint the user gave as http:// (a local S3 server) is meant to be used.
        if endpoint.is_some_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        let store = builder.build().map_err(|e| {
            format!("`{url}`: {e} (see the AWS_* environment variables and ~/.aws/credentials)")
        })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the object-store client: {e}"))?;
        let bucket = Bucket {
            store: Arc::new(store),
            runtime: Arc::new(runtime),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        };
        bucket
            .block(bucket.store.list_with_delimiter(Some(&bucket.path(""))))
            .map_err(|e| format!("cannot list {url}: {e}"))?;
        Ok(bucket)
    }

    pub(crate) fn block<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub(crate) fn path(&self, key: &str) -> ObjectPath {
        match (self.prefix.is_empty(), key.is_empty()) {
            (true, _) => ObjectPath::from(key),
            (false, true) => ObjectPath::from(self.prefix.as_str()),
            (false, false) => ObjectPath::from(format!("{}/{key}", self.prefix)),
        }
    }

    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    pub fn child(&self, name: &str) -> Bucket {
        let mut child = self.clone();
        child.prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        };
        child
    }

    fn error(&self, what: &str, key: &str, e: object_store::Error) -> String {
        format!("cannot {what} {}/{key}: {e}", self.url())
    }

    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.get_tagged(key)?.map(|(bytes, _)| bytes))
    }

    /// A state file: read into memory when under `map_from` bytes, else downloaded in ranges of
    /// [`UPLOAD_PART`] bytes to a temporary file (unlinked at once) and mapped, so a large part
    /// is never held in memory whole.
    pub fn get_part(
        &self,
        key: &str,
        map_from: u64,
    ) -> Result<Option<super::mapped::Bytes>, super::mapped::ReadError> {
        use super::mapped::ReadError;
        use std::io::Write;
        let path = self.path(key);
        let size = match self.block(self.store.head(&path)) {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ReadError::Store(self.error("read", key, e))),
        };
        if size < map_from {
            let bytes = self.get(key).map_err(ReadError::Store)?;
            return Ok(bytes.map(super::mapped::Bytes::owned));
        }
        let local = |e: std::io::Error| {
            ReadError::Local(format!(
                "cannot download {key} to a temporary file in {}: {e}",
                std::env::temp_dir().display()
            ))
        };
        let file = tempfile::tempfile().map_err(local)?;
        let mut writer = std::io::BufWriter::new(&file);
        let mut at = 0;
        while at < size {
            let end = (at + UPLOAD_PART as u64).min(size);
            let bytes = self
                .block(self.store.get_range(&path, at..end))
                .map_err(|e| ReadError::Store(self.error("read", key, e)))?;
            writer.write_all(&bytes).map_err(local)?;
            at = end;
        }
        writer.flush().map_err(local)?;
        drop(writer);
        super::mapped::Bytes::of_file(file, size, std::path::Path::new(key), map_from).map(Some)
    }

    /// The object's bytes and ETag.
    fn get_tagged(&self, key: &str) -> Result<Option<Tagged>, String> {
        let path = self.path(key);
        self.block(async {
            match self.store.get(&path).await {
                Ok(got) => {
                    let tag = got.meta.e_tag.clone();
                    let bytes = got.bytes().await.map_err(|e| self.error("read", key, e))?;
                    Ok(Some((bytes.to_vec(), tag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.error("read", key, e)),
            }
        })
    }

    pub fn exists(&self, key: &str) -> Result<bool, String> {
        let path = self.path(key);
        match self.block(self.store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error("read", key, e)),
        }
    }

    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        self.put_mode(key, bytes, PutMode::Overwrite).map(|_| ())
    }

    /// Uploads the file at `file` as `key`: with one PUT when it holds at most
    /// [`UPLOAD_PART`] bytes, else in parts of that size (S3's multipart upload), two in
    /// flight at a time, never holding the whole file in memory. The object appears whole or
    /// not at all: a failed upload is aborted, so the store keeps none of its parts.
    pub fn put_file(&self, key: &str, file: &std::path::Path) -> Result<(), String> {
        use std::io::Read;
        let io = |e: std::io::Error| format!("cannot read {}: {e}", file.display());
        let mut f = std::fs::File::open(file).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        if len <= UPLOAD_PART as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            f.read_to_end(&mut bytes).map_err(io)?;
            return self.put(key, &bytes);
        }
        let path = self.path(key);
        self.block(async {
            let upload = self
                .store
                .put_multipart(&path)
                .await
                .map_err(|e| self.error("start an upload of", key, e))?;
            let mut write = WriteMultipart::new_with_chunk_size(upload, UPLOAD_PART);
            let mut buf = vec![0u8; UPLOAD_PART];
            loop {
                let n = match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = write.abort().await;
                        return Err(io(e));
                    }
                };
                if let Err(e) = write.wait_for_capacity(2).await {
                    let _ = write.abort().await;
                    return Err(self.error("write", key, e));
                }
                write.write(&buf[..n]);
            }
            write
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.error("write", key, e))
        })
    }

    fn put_mode(&self, key: &str, bytes: &[u8], mode: PutMode) -> Result<Option<String>, String> {
        self.put_raw(key, bytes, mode)
            .map_err(|e| self.error("write", key, e))
    }

    /// One PUT; its ETag.
    fn put_raw(
        &self,
        key: &str,
        bytes: &[u8],
        mode: PutMode,
    ) -> object_store::Result<Option<String>> {
        let path = self.path(key);
        let payload = PutPayload::from(bytes.to_vec());
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        self.block(self.store.put_opts(&path, payload, options))
            .map(|done| done.e_tag)
    }

    pub fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool, String> {
        match self.put_raw(key, bytes, PutMode::Create) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.error("create", key, e)),
        }
    }

    /// The first path segments under the prefix: objects and "folders".
    pub fn list_top(&self) -> Result<Vec<String>, String> {
        let listed = self
            .block(self.store.list_with_delimiter(Some(&self.path(""))))
            .map_err(|e| self.error("list", "", e))?;
        let names = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        Ok(names)
    }

    /// Every object under `name/`, as keys relative to the prefix.
    pub(crate) fn keys_under(&self, name: &str) -> Result<Vec<String>, String> {
        let mut keys = Vec::new();
        let mut pending = vec![name.to_string()];
        while let Some(dir) = pending.pop() {
            let listed = self
                .block(self.store.list_with_delimiter(Some(&self.path(&dir))))
                .map_err(|e| self.error("list", &dir, e))?;
            for object in &listed.objects {
                if let Some(file) = object.location.filename() {
                    keys.push(format!("{dir}/{file}"));
                }
            }
            for sub in &listed.common_prefixes {
                if let Some(file) = sub.filename() {
                    pending.push(format!("{dir}/{file}"));
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    pub fn remove_all(&self, name: &str) -> Result<(), String> {
        for key in self.keys_under(name)? {
            match self.block(self.store.delete(&self.path(&key))) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.error("delete", &key, e)),
            }
        }
        Ok(())
    }

    pub fn move_all(&self, from: &str, to: &str) -> Result<(), String> {
        let keys = self.keys_under(from)?;
        for key in &keys {
            let target = format!("{to}{}", &key[from.len()..]);
            self.block(self.store.copy(&self.path(key), &self.path(&target)))
                .map_err(|e| self.error("copy", key, e))?;
        }
        self.remove_all(from)
    }

    /// Takes the lease on this location, waiting while another live run holds it, and keeps
    /// renewing it on a thread of its own.
    pub fn lease(&self) -> Result<Lease, String> {
        let token = format!(
            "{:016x}",
            crate::hash::route(&(super::now_ms(), std::process::id(), self.url()))
        );
        let host = hostname();
        let mut said = false;
        let tag = loop {
            let content = lease_text(&token, &host);
            if self.put_if_absent("LOCK", content.as_bytes())? {
                let (_, tag) = self
                    .get_tagged("LOCK")?
                    .ok_or_else(|| format!("{}/LOCK vanished after it was made", self.url()))?;
                break tag;
            }
            let Some((held, tag)) = self.get_tagged("LOCK")? else {
                continue; // released in between: try again
            };
            let holder = Holder::parse(&String::from_utf8_lossy(&held));
            if holder.free_for(&host) {
                let update = PutMode::Update(UpdateVersion {
                    e_tag: tag,
                    version: None,
                });
                if let Ok(tag) = self.put_mode("LOCK", content.as_bytes(), update) {
                    break tag;
                }
                continue; // another run took it first
            }
            if !said {
                tracing::info!(
                    "another process holds {}/LOCK ({}); waiting until it stops or its \
                     lease expires",
                    self.url(),
                    holder.describe()
                );
                said = true;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let lease = Lease {
            bucket: self.clone(),
            token,
            host,
            tag: Arc::new(Mutex::new(tag)),
            released: Arc::new(AtomicBool::new(false)),
            lost: Arc::new(AtomicBool::new(false)),
            run: Arc::new(Mutex::new(None)),
        };
        lease.keep_alive()?;
        Ok(lease)
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).replace(' ', "_")
}

fn lease_text(token: &str, host: &str) -> String {
    let expires = super::now_ms() + LEASE.as_millis() as i64;
    format!(
        "weir-lease 1\nowner {token}\nhost {host}\npid {}\nexpires_ms {expires}\n",
        std::process::id()
    )
}

/// Who holds a lease, as its object says.
#[derive(Debug, Default)]
struct Holder {
    host: String,
    pid: u32,
    expires_ms: i64,
}

impl Holder {
    fn parse(text: &str) -> Holder {
        let mut holder = Holder::default();
        for line in text.lines() {
            match line.split_once(' ') {
                Some(("host", v)) => holder.host = v.to_string(),
                Some(("pid", v)) => holder.pid = v.parse().unwrap_or(0),
                Some(("expires_ms", v)) => holder.expires_ms = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        holder
    }

    /// Whether the lease may be taken over: expired, or held by a process of this host that
    /// no longer runs.
    fn free_for(&self, host: &str) -> bool {
        if super::now_ms() > self.expires_ms {
            return true;
        }
        self.host == host && self.pid != 0 && !process_alive(self.pid)
    }

    fn describe(&self) -> String {
        format!("process {} on {}", self.pid, self.host)
    }
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A held lease; see the module's documentation.
pub struct Lease {
    bucket: Bucket,
    token: String,
    host: String,
    tag: Arc<Mutex<Option<String>>>,
    released: Arc<AtomicBool>,
    /// Another run may own the location now: nothing more is written there.
    lost: Arc<AtomicBool>,
    /// The run that holds the lease (set when its checkpoints start): the one stopped when it
    /// is lost.
    run: Arc<Mutex<Option<crate::context::RunContext>>>,
}

impl Lease {
    /// Tells the lease which run to stop when it is lost.
    pub fn attach(&self, run: crate::context::RunContext) {
        *self.run.lock().unwrap_or_else(|e| e.into_inner()) = Some(run);
    }

    /// Whether the lease was lost (see the module docs).
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    fn keep_alive(&self) -> Result<(), String> {
        let bucket = self.bucket.clone();
        let (token, host) = (self.token.clone(), self.host.clone());
        let tag = self.tag.clone();
        let released = self.released.clone();
        let (lost, run) = (self.lost.clone(), self.run.clone());
        let spawned = std::thread::Builder::new()
            .name("checkpoint-lease".into())
            .spawn(move || {
                let mut renewed = Instant::now();
                loop {
                    let slept = Instant::now();
                    while slept.elapsed() < RENEW {
                        if released.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let mut current = tag.lock().unwrap_or_else(|e| e.into_inner());
                    let update = PutMode::Update(UpdateVersion {
                        e_tag: current.clone(),
                        version: None,
                    });
                    let text = lease_text(&token, &host);
                    match bucket.put_raw("LOCK", text.as_bytes(), update) {
                        Ok(new) => {
                            *current = new;
                            renewed = Instant::now();
                        }
                        Err(e)
                            if renewed.elapsed() + RENEW >= LEASE
                                || matches!(e, object_store::Error::Precondition { .. }) =>
                        {
                            lost.store(true, Ordering::Relaxed);
                            let message = format!(
                                "lost the lease on {}/LOCK ({e}); another run may own the \
                                 checkpoints now, so this one stops",
                                bucket.url()
                            );
                            tracing::error!("{message}");
                            let run = run.lock().unwrap_or_else(|e| e.into_inner()).clone();
                            if let Some(run) = run {
                                let _run = run.enter();
                                crate::context::exit_or_stop(1, &message);
                            }
                            return;
                        }
                        Err(e) => {
                            tracing::warn!("cannot renew the checkpoint lease yet: {e}");
                        }
                    }
                }
            });
        spawned
            .map(|_| ())
            .map_err(|e| format!("cannot start the checkpoint lease thread: {e}"))
    }

    /// Gives the lease up (the run is over): the next run need not wait for it to expire.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::Relaxed) {
            return;
        }
        let current = self.tag.lock().unwrap_or_else(|e| e.into_inner());
        // Only if it is still ours: a conditional overwrite with an expired lease, then the
        // delete (S3 has no conditional delete).
        let done = PutMode::Update(UpdateVersion {
            e_tag: current.clone(),
            version: None,
        });
        let text = format!("weir-lease 1\nowner {}\nexpires_ms 0\n", self.token);
        if self.bucket.put_mode("LOCK", text.as_bytes(), done).is_ok() {
            let _ = self
                .bucket
                .block(self.bucket.store.delete(&self.bucket.path("LOCK")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_free_when_expired_or_its_local_holder_is_gone() {
        let live = Holder {
            host: "h".into(),
            pid: std::process::id(),
            expires_ms: super::super::now_ms() + 10_000,
        };
        assert!(!live.free_for("h"));
        let expired = Holder {
            expires_ms: 1,
            ..Holder::parse(&lease_text("t", "h"))
        };
        assert!(expired.free_for("elsewhere"));
        // A pid that cannot be running (above the kernel's pid_max).
        let gone = Holder {
            host: "h".into(),
            pid: 1 << 30,
            expires_ms: super::super::now_ms() + 10_000,
        };
        assert!(gone.free_for("h"));
        assert!(!gone.free_for("other-host"));
    }
}
