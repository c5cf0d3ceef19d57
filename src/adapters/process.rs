//! Runs build commands: `sh -c`, a clean environment, its own process group (so a timeout or
//! shutdown kills everything it started), output streamed line by line to the step log.
//!
//! A command with a [`Sandbox`] (a repository's build) runs under bubblewrap when isolation is
//! on: new PID, IPC and UTS namespaces (the daemon's processes, and so its environment, are
//! not there to read), the filesystem read-only but for its workspace and a private `/tmp`,
//! Gantry's data dir replaced by an empty tmpfs, and `setpriv` dropping to an unprivileged
//! user with no groups. bubblewrap itself starts with only the command's variables, so even
//! the sandbox's pid 1 holds none of Gantry's.

use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::ports::StepLog;
use crate::ports::{CommandError, CommandRunner, CommandSpec, Sandbox};

/// How sandboxed commands are isolated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// As the daemon's user, in its namespaces: only a clean environment. For machines with
    /// no namespaces (Fargate) and trusted repositories.
    None,
    Bubblewrap {
        bwrap: std::path::PathBuf,
        setpriv: std::path::PathBuf,
        uid: u32,
        gid: u32,
    },
}

impl Isolation {
    /// Bubblewrap as `nobody` (65534) when running as root with `bwrap` and `setpriv` on the
    /// PATH; otherwise none.
    pub fn detect() -> Self {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        match (root, which("bwrap"), which("setpriv")) {
            (true, Some(bwrap), Some(setpriv)) => Self::Bubblewrap {
                bwrap,
                setpriv,
                uid: 65534,
                gid: 65534,
            },
            _ => Self::None,
        }
    }

    /// Bubblewrap, or why it cannot be used here.
    pub fn require() -> Result<Self, String> {
        match Self::detect() {
            Self::None => Err("build isolation needs root, bubblewrap (`bwrap`) and `setpriv` (util-linux); install bubblewrap or set pipeline.isolation: none".into()),
            b => Ok(b),
        }
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub struct ShellRunner {
    isolation: Isolation,
}

impl ShellRunner {
    pub fn new(isolation: Isolation) -> Self {
        Self { isolation }
    }

    fn command(&self, spec: &CommandSpec) -> Result<Command, CommandError> {
        let (
            Some(sandbox),
            Isolation::Bubblewrap {
                bwrap,
                setpriv,
                uid,
                gid,
            },
        ) = (&spec.sandbox, &self.isolation)
        else {
            let mut cmd = Command::new("sh");
            cmd.arg("-c").arg(&spec.command).current_dir(&spec.cwd);
            return Ok(cmd);
        };
        let mut cmd = Command::new(bwrap);
        if sandbox.privileged {
            cmd.args(bwrap_args(sandbox, &spec.cwd))
                .args(["sh", "-c"])
                .arg(&spec.command)
                .current_dir("/");
            return Ok(cmd);
        }
        hand_over(&sandbox.writable, *uid, *gid).map_err(CommandError::Spawn)?;
        cmd.args(bwrap_args(sandbox, &spec.cwd))
            .arg(setpriv)
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--clear-groups", "--", "sh", "-c"])
            .arg(&spec.command)
            .current_dir("/");
        Ok(cmd)
    }
}

/// bubblewrap's arguments up to the command it runs.
fn bwrap_args(sandbox: &Sandbox, cwd: &std::path::Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = [
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--perms",
        "1777",
        "--tmpfs",
        "/tmp",
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    for dir in &sandbox.hidden {
        args.extend(["--tmpfs".into(), dir.into()]);
        // The directories down to the workspace inside the emptied data dir, traversable by
        // the build user (bubblewrap would make them 0700, root's).
        if let Ok(rest) = sandbox.writable.strip_prefix(dir) {
            let mut at = dir.clone();
            let parts: Vec<_> = rest.components().collect();
            for part in parts.iter().take(parts.len().saturating_sub(1)) {
                at.push(part);
                args.extend([
                    "--perms".into(),
                    "0755".into(),
                    "--dir".into(),
                    at.clone().into(),
                ]);
            }
        }
    }
    for dir in sandbox.also_writable.iter().filter(|d| d.is_dir()) {
        args.extend(["--bind".into(), dir.into(), dir.into()]);
    }
    args.extend([
        "--bind".into(),
        sandbox.writable.clone().into(),
        sandbox.writable.clone().into(),
    ]);
    if sandbox.privileged {
        // bubblewrap drops a root caller's capabilities unless told otherwise.
        args.extend(["--cap-add".into(), "ALL".into()]);
    }
    args.extend(["--chdir".into(), cwd.into(), "--".into()]);
    args
}

/// Gives the build user its workspace (the checkout was made by the daemon).
fn hand_over(dir: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        std::os::unix::fs::lchown(&p, Some(uid), Some(gid))?;
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

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
        let mut cmd = self.command(spec)?;
        cmd.env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(CommandError::Spawn)?;
        let pgid = child.id().map(|p| p as i32);
        if let (Some(pid_file), Some(pgid)) = (&spec.pid_file, pgid) {
            // The group's leader is named by pid, boot and start time: after a reboot or once
            // the pid is reused, the record no longer matches and nothing is killed.
            let identity = process_identity(pgid).unwrap_or_default();
            let _ = std::fs::write(pid_file, format!("{pgid} {identity}"));
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

/// Kills the process group recorded in `pid_file` by an earlier run that never cleaned up,
/// but only when its leader is still the process that was recorded (same boot, same start
/// time): a pid reused by someone else's process is left alone.
fn kill_leftover(pid_file: &std::path::Path) {
    let Ok(text) = std::fs::read_to_string(pid_file) else {
        return;
    };
    let _ = std::fs::remove_file(pid_file);
    let Some((pgid, recorded)) = text.trim().split_once(' ') else {
        return;
    };
    let Ok(pgid) = pgid.parse::<i32>() else {
        return;
    };
    match process_identity(pgid) {
        Some(now) if now == recorded => {
            tracing::warn!(
                pgid,
                "killing the process group of an interrupted earlier attempt"
            );
            kill_group(Some(pgid));
        }
        Some(_) => {
            tracing::info!(pgid, "the recorded process group is gone; its pid now belongs to another process, left alone");
        }
        None => {}
    }
}

/// `BOOT_ID START_TIME` of a live process (start time in clock ticks since boot, field 22 of
/// `/proc/PID/stat`), or `None` when there is no such process.
pub fn process_identity(pid: i32) -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count after the last `)`.
    let start = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .to_owned();
    Some(format!("{} {start}", boot.trim()))
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

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn a_leftover_record_whose_process_is_not_ours_kills_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("build.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        // Recorded with another start time: the pid was reused by an unrelated process.
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        std::fs::write(&pid_file, format!("{pgid} {} 1", boot.trim())).unwrap();
        kill_leftover(&pid_file);
        assert!(
            child.try_wait().unwrap().is_none(),
            "an unrelated process was killed"
        );
        // The same process, recorded as it is: it is ours, and it is killed.
        let identity = process_identity(pgid).unwrap();
        std::fs::write(&pid_file, format!("{pgid} {identity}")).unwrap();
        kill_leftover(&pid_file);
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(!pid_file.exists());
    }
}
