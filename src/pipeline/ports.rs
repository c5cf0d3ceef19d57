//! The narrow ports the pipeline needs from the outside world; adapters implement them.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::log::StepLog;

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

/// A shell command to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub command: String,
    pub cwd: PathBuf,
    /// The complete environment: nothing is inherited.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// Where the runner records the command's process group while it runs. A group left
    /// there by a crashed daemon is killed before the command starts again, so a resumed
    /// step never races its orphaned previous attempt.
    pub pid_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("exited with status {0}")]
    Exit(i32),
    #[error("killed by signal {0}")]
    Signal(i32),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("cancelled")]
    Cancelled,
    #[error("cannot start: {0}")]
    Spawn(std::io::Error),
}

/// Runs a command, streaming its output to the step log.
#[async_trait]
pub trait CommandRunner: Send + Sync {
    async fn run(
        &self,
        spec: &CommandSpec,
        log: &StepLog,
        cancel: &CancellationToken,
    ) -> Result<(), CommandError>;
}
