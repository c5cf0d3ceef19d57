//! Running commands: a shell command in a clean environment, its output streamed to a step
//! log. `adapters::process::ShellRunner` implements [`CommandRunner`].

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use super::step_log::StepLog;

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
    /// Run isolated from the daemon (a build of a repository's code); `None` for Gantry's
    /// own tools.
    pub sandbox: Option<Sandbox>,
}

/// What an isolated command may see: the machine read-only, `writable` (its workspace)
/// read-write, `hidden` (Gantry's data dir: the store, mirrors, other workspaces) not at all,
/// its own processes only, as an unprivileged user, with only `env`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sandbox {
    pub writable: PathBuf,
    pub hidden: Vec<PathBuf>,
    /// Further directories read-write (buildah's image storage), when they exist.
    pub also_writable: Vec<PathBuf>,
    /// Stays root with its capabilities (buildah needs them for its storage and its chroot
    /// isolation): still its own PID namespace (the daemon and its environment are not
    /// visible, not even to a Dockerfile's `RUN`), the data dir hidden, only `env`. Not a
    /// boundary against a build that attacks the kernel or buildah itself: see
    /// docs/security.md.
    pub privileged: bool,
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
