//! Fetching source: the exact commit of a repository into a directory. `adapters::git`
//! implements [`SourceFetcher`].

use std::path::PathBuf;

use async_trait::async_trait;

use super::step_log::StepLog;
/// Which commit to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revision {
    /// An exact commit; the checkout is verified to be at it.
    Sha(String),
    /// A branch, tag or other ref, resolved at fetch time.
    Ref(String),
}

#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// `OWNER/NAME`, used to name the cached mirror.
    pub repo: String,
    /// Clone URL, free of credentials.
    pub url: String,
    pub revision: Revision,
    /// Where the checkout goes; reused when it already holds the commit.
    pub dest: PathBuf,
}

/// The commit a fetch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedCommit {
    pub sha: String,
    pub title: String,
    pub author: String,
    /// Commit time, seconds since the epoch.
    pub time: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("git {action} failed: {detail}")]
    Git { action: String, detail: String },
    #[error("checkout is at {actual}, expected {expected}")]
    WrongCommit { expected: String, actual: String },
    #[error("cannot prepare {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Fetches an exact commit of a repository into a directory.
#[async_trait]
pub trait SourceFetcher: Send + Sync {
    async fn fetch(&self, req: &FetchRequest, log: &StepLog) -> Result<FetchedCommit, FetchError>;
}

/// What `git ls-remote` listed: ref name -> sha, branches and tags only.
pub type RemoteHeads = std::collections::BTreeMap<String, String>;

/// Lists a remote's branches and tags without fetching anything.
#[async_trait]
pub trait RemoteRefs: Send + Sync {
    async fn list(&self, url: &str) -> Result<RemoteHeads, FetchError>;
}

/// A file to update on a branch of a repository (Gantry's write-back).
#[derive(Debug, Clone)]
pub struct FileUpdate {
    /// `OWNER/NAME`, naming Gantry's work clone.
    pub repo: String,
    /// Clone and push URL, free of credentials.
    pub url: String,
    pub branch: String,
    /// The file inside the repository, `/`-separated, relative.
    pub path: String,
    pub message: String,
}

/// What preparing an update came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prepared {
    /// The file already says that: nothing to commit.
    Unchanged,
    /// A commit on top of the branch head, not pushed yet.
    Commit { sha: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The branch moved since the commit was prepared: prepare again.
    #[error("the branch moved: {0}")]
    Rejected(String),
    #[error(transparent)]
    Failed(#[from] FetchError),
}

/// Commits a file to a branch and pushes it (Gantry's write-back of released digests).
#[async_trait]
pub trait GitWriter: Send + Sync {
    /// Checks the branch head out, computes the file's new content from its current one
    /// (`None`: no such file) and commits it when it differs. Nothing is pushed.
    async fn prepare(
        &self,
        update: &FileUpdate,
        render: &(dyn for<'a> Fn(Option<&'a str>) -> String + Send + Sync),
    ) -> Result<Prepared, FetchError>;
    /// Pushes a prepared commit to `branch`: the update's own branch never by force;
    /// `replace` (Gantry's own pull-request branch) sets it to the commit whatever it held.
    async fn push(
        &self,
        update: &FileUpdate,
        sha: &str,
        branch: &str,
        replace: bool,
    ) -> Result<(), PushError>;
}
