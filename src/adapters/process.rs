//! Runs build commands: `sh -c`, a clean environment, its own process group (so a timeout or
//! shutdown kills everything it started), output streamed line by line to the step log.

use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::ports::StepLog;
use crate::ports::{CommandError, CommandRunner, CommandSpec};

pub struct ShellRunner;

#[async_trait]
impl CommandRunner for ShellRunner {
    #[tracing::instrument(skip_all, fields(cwd = %spec.cwd.display()))]
    async fn run(
        &self,
        spec: &CommandSpec,
        log: &StepLog,
        cancel: &CancellationToken,
    ) -> Result<(), CommandError> {
        if let Some(pid_file) = &spec.pid_file {
            kill_leftover(pid_file);
        }
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&spec.command)
            .current_dir(&spec.cwd)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(CommandError::Spawn)?;
        let pgid = child.id().map(|p| p as i32);
        if let (Some(pid_file), Some(pgid)) = (&spec.pid_file, pgid) {
            let _ = std::fs::write(pid_file, pgid.to_string());
        }
        let out = pump(child.stdout.take(), log.clone());
        let err = pump(child.stderr.take(), log.clone());
        let result = tokio::select! {
            status = child.wait() => match status {
                Ok(s) if s.success() => Ok(()),
                Ok(s) => match s.code() {
                    Some(code) => Err(CommandError::Exit(code)),
                    None => Err(CommandError::Signal(std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0))),
                },
                Err(e) => Err(CommandError::Spawn(e)),
            },
            _ = tokio::time::sleep(spec.timeout) => Err(CommandError::Timeout(spec.timeout)),
            _ = cancel.cancelled() => Err(CommandError::Cancelled),
        };
        if result.is_err() {
            kill_group(pgid);
            let _ = child.wait().await;
        }
        // The pipes close once every process of the group is gone.
        let _ = tokio::join!(out, err);
        if let Some(pid_file) = &spec.pid_file {
            let _ = std::fs::remove_file(pid_file);
        }
        result
    }
}

/// Kills a whole process group; the group id is the leader's pid (`process_group(0)`).
pub fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid.filter(|p| *p > 0) {
        // SAFETY: killpg has no memory-safety preconditions; a stale id fails with ESRCH.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
    }
}

/// Kills the process group recorded in `pid_file` by an earlier run that never cleaned up.
fn kill_leftover(pid_file: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    if let Ok(pgid) = text.trim().parse::<i32>() {
        tracing::warn!(
            pgid,
            "killing the process group of an interrupted earlier attempt"
        );
        kill_group(Some(pgid));
    }
    let _ = std::fs::remove_file(pid_file);
}

fn pump<R: AsyncRead + Unpin + Send + 'static>(
    stream: Option<R>,
    log: StepLog,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(stream) = stream else { return };
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    log.line(line.trim_end_matches(['\n', '\r']));
                }
            }
        }
    })
}
