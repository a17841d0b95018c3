//! The S3-protocol server that checkpoints on object storage are tested against (`.ci/run`
//! starts moto on 127.0.0.1, creates a bucket and exports `WEIR_S3_BUCKET`,
//! `WEIR_S3_ENDPOINT` and the `AWS_*` variables the pipelines read), and where a test keeps
//! its checkpoints: a folder or a fresh prefix of that bucket.

use std::path::{Path, PathBuf};

use weir_runtime::checkpoint::Store;

/// The bucket under test, or `None` (with a message) when none is configured outside CI.
pub fn bucket() -> Option<String> {
    let bucket = std::env::var("WEIR_S3_BUCKET")
        .ok()
        .filter(|b| !b.is_empty());
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty());
    match (bucket, endpoint) {
        (Some(bucket), Some(_)) => Some(bucket),
        _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => panic!(
            "WEIR_S3_BUCKET or AWS_ENDPOINT_URL is not set: under CI the object-storage tests \
             need an S3 server (.ci/run starts one)"
        ),
        _ => {
            eprintln!(
                "skipping: no S3 server (start one, e.g. `moto_server -p 59001`, create a bucket, \
                 and set WEIR_S3_BUCKET, AWS_ENDPOINT_URL=http://127.0.0.1:59001, \
                 AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION; or run .ci/run)"
            );
            None
        }
    }
}

/// `s3://BUCKET/<prefix>-<pid>-<nanos>`: a location no other test or run has used.
pub fn unique_location(prefix: &str) -> Option<String> {
    let bucket = bucket()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Some(format!(
        "s3://{bucket}/{prefix}-{}-{nanos}",
        std::process::id()
    ))
}

/// Where a test's pipeline keeps its checkpoints.
#[derive(Clone, Debug)]
pub enum Checkpoints {
    /// `chk` under the run's working folder.
    Folder,
    /// An `s3://bucket/prefix` location.
    S3(String),
}

impl Checkpoints {
    /// A fresh S3 location, or `None` when there is no server (outside CI).
    pub fn s3(prefix: &str) -> Option<Checkpoints> {
        unique_location(prefix).map(Checkpoints::S3)
    }

    /// The `--checkpoint-dir` value.
    pub fn arg(&self) -> &str {
        match self {
            Checkpoints::Folder => "chk",
            Checkpoints::S3(url) => url,
        }
    }

    /// Builds `text` as a binary that can write here (`name` gets `_s3` for object storage,
    /// which needs the runtime's `object-store` feature).
    pub fn build(&self, name: &str, text: &str) -> PathBuf {
        match self {
            Checkpoints::Folder => crate::build(name, text, false),
            Checkpoints::S3(_) => crate::build_object_store(&format!("{name}_s3"), text),
        }
    }

    fn store(&self, cwd: &Path) -> Store {
        match self {
            Checkpoints::Folder => Store::Folder(cwd.join("chk")),
            Checkpoints::S3(url) => {
                Store::open(Path::new(url)).unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
            }
        }
    }

    /// The id of the newest complete checkpoint (0: none).
    pub fn newest(&self, cwd: &Path) -> u64 {
        let store = self.store(cwd);
        store
            .list_top()
            .unwrap_or_default()
            .iter()
            .filter_map(|n| n.strip_prefix("chk-")?.parse::<u64>().ok())
            .filter(|id| store.exists(&format!("chk-{id}/MANIFEST")).unwrap_or(false))
            .max()
            .unwrap_or(0)
    }

    /// Whether any run has written here yet.
    pub fn used(&self, cwd: &Path) -> bool {
        !self.store(cwd).list_top().unwrap_or_default().is_empty()
    }
}
