//! Build caches between deployments: a store of directories, per app and cache name, keyed
//! by the build's key files. `adapters::build_cache::DirCache` implements [`BuildCache`];
//! `plan::cache` decides keys, which entry a build starts from and what is evicted.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

/// One cache of one app, under the key the build computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSlot {
    pub app: String,
    pub name: String,
    pub key: String,
}

/// What a restore put in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// The entry saved under this key.
    Exact { bytes: u64 },
    /// The newest entry of the cache, saved under another key (`saved_at`: Unix ms).
    Older { bytes: u64, saved_at: i64 },
    /// Nothing stored for this cache.
    Miss,
}

/// What a save stored, and what it evicted to stay in bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Saved {
    pub bytes: u64,
    pub files: u64,
    pub evicted: usize,
    pub evicted_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The build's directories are not what a cache may be put in or taken from (a symlink
    /// on the way, a file where the directory goes).
    #[error("{0}")]
    Unsafe(String),
    #[error(
        "{what} is larger than the whole cache ({limit} bytes, `pipeline.cacheSize`); not saved"
    )]
    TooLarge { what: String, limit: u64 },
    #[error("{what} holds more than {limit} files; not saved")]
    TooManyFiles { what: String, limit: u64 },
}

impl CacheError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// Where a cache directory is in a deployment's workspace: `root` (the workspace, made by
/// the daemon) joined with `rel` (made of plain components; any of them may have been made
/// a symlink by the build, which the store refuses to follow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDir {
    pub root: PathBuf,
    pub rel: PathBuf,
}

impl CacheDir {
    pub fn new(root: &Path, rel: impl Into<PathBuf>) -> Self {
        Self {
            root: root.to_path_buf(),
            rel: rel.into(),
        }
    }
}

#[async_trait]
pub trait BuildCache: Send + Sync {
    /// Puts a copy of the slot's entry (or of the newest entry of its cache) at `dir`, which
    /// must not exist yet (or be empty); the stored entry is left as it is.
    async fn restore(&self, slot: &CacheSlot, dir: &CacheDir) -> Result<Restored, CacheError>;
    /// Stores what is at `dir` under the slot (replacing an entry with the same key) and
    /// evicts down to the store's bound. `None`: there is no directory to save.
    async fn save(&self, slot: &CacheSlot, dir: &CacheDir) -> Result<Option<Saved>, CacheError>;
}
