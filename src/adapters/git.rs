//! Source fetch with the git CLI: a bare mirror per repository under the data dir caches
//! objects; each deployment gets a shallow checkout of exactly one commit from that mirror.
//!
//! The token (for https) is handed to git through `GIT_CONFIG_*` environment variables as an
//! `http.extraHeader`: it never appears on a command line, in `.git/config`, in the store or
//! in logs (output is scrubbed as well).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine as _;
use tokio::process::Command;

use crate::ports::StepLog;
use crate::ports::{
    FetchError, FetchRequest, FetchedCommit, FileUpdate, GitWriter, Prepared, PushError,
    RemoteHeads, RemoteRefs, Revision, SourceFetcher,
};
use crate::secret::{Redactor, Secret};

pub struct GitFetcher {
    mirrors: PathBuf,
    token: Option<Secret>,
    redactor: Redactor,
    /// One lock per mirror: concurrent fetches into one bare repo fight over shallow.lock.
    locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

impl GitFetcher {
    pub fn new(mirrors: PathBuf, token: Option<Secret>, redactor: Redactor) -> Self {
        Self {
            mirrors,
            token,
            redactor,
            locks: Mutex::default(),
        }
    }

    fn mirror_path(&self, repo: &str) -> PathBuf {
        let safe: String = repo
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        self.mirrors.join(format!("{safe}.git"))
    }

    fn lock_for(&self, path: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .expect("lock map poisoned")
            .entry(path.to_path_buf())
            .or_default()
            .clone()
    }

    /// Runs git; on failure the error carries git's (scrubbed) stderr.
    async fn git(
        &self,
        dir: Option<&Path>,
        args: &[&str],
        remote: bool,
    ) -> Result<String, FetchError> {
        let mut cmd = self.command(dir, args, remote);
        let out = cmd.output().await.map_err(|e| FetchError::Git {
            action: args.first().copied().unwrap_or("").into(),
            detail: format!("cannot run git: {e}"),
        })?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(FetchError::Git {
                action: args.first().copied().unwrap_or("").into(),
                detail: self.redactor.redact(stderr.trim()),
            })
        }
    }

    /// A git command with the token (for a remote), no prompts, no system config, and a
    /// parent-death signal.
    fn command(&self, dir: Option<&Path>, args: &[&str], remote: bool) -> Command {
        let mut cmd = Command::new("git");
        if let Some(d) = dir {
            cmd.arg("-C").arg(d);
        }
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the
        // parent; it makes a git orphaned by a killed daemon die with it instead of racing
        // the next fetch.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if let (true, Some(token)) = (remote, &self.token) {
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", token.expose()));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        cmd
    }

    /// `git fetch --depth=1` of one revision into `dir`; `--end-of-options` keeps the URL
    /// and the revision from ever being read as options.
    async fn shallow_fetch(
        &self,
        dir: &Path,
        url: &str,
        revision: &str,
        remote: bool,
    ) -> Result<String, FetchError> {
        self.git(
            Some(dir),
            &[
                "fetch",
                "--depth=1",
                "--no-tags",
                "-q",
                "--end-of-options",
                url,
                revision,
            ],
            remote,
        )
        .await
    }

    async fn has_commit(&self, dir: &Path, sha: &str) -> bool {
        self.git(
            Some(dir),
            &["cat-file", "-e", &format!("{sha}^{{commit}}")],
            false,
        )
        .await
        .is_ok()
    }

    /// Makes sure the mirror holds the wanted commit; returns its sha.
    async fn update_mirror(
        &self,
        req: &FetchRequest,
        log: &StepLog,
    ) -> Result<(PathBuf, String), FetchError> {
        let mirror = self.mirror_path(&req.repo);
        let lock = self.lock_for(&mirror);
        let _guard = lock.lock().await;
        // This daemon holds the data dir's lock and this mirror's mutex, so no git of its own
        // is working here: anything still running in the mirror, and any lock file, was left
        // by a fetch that was killed.
        recover_mirror(&mirror, log).await;
        if !mirror.join("HEAD").exists() {
            std::fs::create_dir_all(&mirror).map_err(|source| FetchError::Io {
                path: mirror.display().to_string(),
                source,
            })?;
            self.git(Some(&mirror), &["init", "--bare", "-q"], false)
                .await?;
        }
        // Defence in depth: the core validated these, and `--end-of-options` below keeps even
        // a ref starting with `-` from being read as an option.
        match &req.revision {
            Revision::Sha(sha) if crate::domain::git::commit_sha(sha).is_none() => {
                return Err(FetchError::Git {
                    action: "fetch".into(),
                    detail: format!("`{sha}` is not a commit sha"),
                })
            }
            Revision::Ref(r) => {
                crate::domain::git::valid_ref_name(r).map_err(|why| FetchError::Git {
                    action: "fetch".into(),
                    detail: format!("the ref {why}"),
                })?
            }
            _ => {}
        }
        let sha = match &req.revision {
            Revision::Sha(sha) if self.has_commit(&mirror, sha).await => {
                log.line(format!("mirror already has {sha}"));
                sha.clone()
            }
            Revision::Sha(sha) => {
                log.line(format!("fetching {sha} from {}", req.url));
                self.shallow_fetch(&mirror, &req.url, sha, true).await?;
                sha.clone()
            }
            Revision::Ref(r) => {
                log.line(format!("fetching {r} from {}", req.url));
                self.shallow_fetch(&mirror, &req.url, r, true).await?;
                self.git(Some(&mirror), &["rev-parse", "FETCH_HEAD^{commit}"], false)
                    .await?
            }
        };
        // Pin the commit so the mirror's gc keeps it while deployments may still need it.
        self.git(
            Some(&mirror),
            &["update-ref", &format!("refs/gantry/{sha}"), &sha],
            false,
        )
        .await?;
        Ok((mirror, sha))
    }
}

#[async_trait]
impl SourceFetcher for GitFetcher {
    #[tracing::instrument(skip_all, fields(repo = %req.repo))]
    async fn fetch(&self, req: &FetchRequest, log: &StepLog) -> Result<FetchedCommit, FetchError> {
        // Level-triggered: a checkout already at the wanted commit is reused as it is (with
        // what a build step wrote into it). What it holds is read from the record Gantry
        // wrote when it made it, never by running git in it: a build (as another user) may
        // have changed its .git, and a git run there as the daemon could run its hooks or
        // fsmonitor (git itself refuses a tree owned by another user).
        if let Revision::Sha(sha) = &req.revision {
            if req.dest.is_dir() {
                if let Some(commit) = self.recorded_checkout(&req.dest) {
                    if &commit.sha == sha {
                        log.line(format!("checkout already at {sha}"));
                        return Ok(commit);
                    }
                }
            }
        }
        let record = self.checkout_record(&req.dest);
        // A checkout under way is not vouched for until it is complete.
        let _ = std::fs::remove_file(&record);
        let (mirror, sha) = self.update_mirror(req, log).await?;
        if req.dest.exists() {
            std::fs::remove_dir_all(&req.dest).map_err(|source| FetchError::Io {
                path: req.dest.display().to_string(),
                source,
            })?;
        }
        std::fs::create_dir_all(&req.dest).map_err(|source| FetchError::Io {
            path: req.dest.display().to_string(),
            source,
        })?;
        let mirror_url = format!("file://{}", mirror.display());
        self.git(Some(&req.dest), &["init", "-q"], false).await?;
        self.shallow_fetch(&req.dest, &mirror_url, &sha, false)
            .await?;
        self.git(
            Some(&req.dest),
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "-q",
                "--detach",
                "FETCH_HEAD",
            ],
            false,
        )
        .await?;
        let head = self
            .git(Some(&req.dest), &["rev-parse", "HEAD"], false)
            .await?;
        if head != sha {
            return Err(FetchError::WrongCommit {
                expected: sha,
                actual: head,
            });
        }
        let commit = self.describe(&req.dest).await?;
        log.line(format!(
            "checked out {} \"{}\" by {}",
            commit.sha, commit.title, commit.author
        ));
        self.record_checkout(&record, &commit);
        Ok(commit)
    }
}

/// The most `git ls-remote` output read from one remote (about 40,000 refs), and the longest
/// it may take: a remote that sends more, or hangs, fails that look instead of the daemon.
const LS_REMOTE_MAX_BYTES: u64 = 4 << 20;
const LS_REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The most a file written back may be read at (a lock file is a few KB).
const MAX_WRITTEN_FILE: u64 = 1024 * 1024;

impl GitFetcher {
    /// Gantry's own clone of `repo` for write-backs: never a deployment's checkout (no build
    /// has touched it), so running git in it is safe.
    fn work_clone(&self, repo: &str) -> PathBuf {
        let name = self
            .mirror_path(repo)
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".git").to_owned())
            .unwrap_or_default();
        self.mirrors.with_file_name("writeback").join(name)
    }
}

/// `path` inside `root`, refused when any part of it is a symlink or not what it must be (a
/// directory, then a regular file or nothing): a repository cannot make the write-back read
/// or write outside its tree.
fn inside(root: &Path, path: &str) -> Result<PathBuf, FetchError> {
    let bad = |why: &str| FetchError::Git {
        action: "write-back".into(),
        detail: format!("`{path}` {why}"),
    };
    crate::domain::valid_source_path(path).map_err(&bad)?;
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut at = root.to_path_buf();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let last = i + 1 == parts.len();
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => return Err(bad("goes through a symlink")),
            Ok(m) if last && !m.is_file() => return Err(bad("is not a regular file")),
            Ok(m) if !last && !m.is_dir() => return Err(bad("is not inside a directory")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && last => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&at).map_err(|source| FetchError::Io {
                    path: at.display().to_string(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(FetchError::Io {
                    path: at.display().to_string(),
                    source,
                })
            }
        }
    }
    Ok(at)
}

#[async_trait]
impl GitWriter for GitFetcher {
    #[tracing::instrument(skip_all, fields(repo = %u.repo, path = %u.path))]
    async fn prepare(
        &self,
        u: &FileUpdate,
        render: &(dyn for<'a> Fn(Option<&'a str>) -> String + Send + Sync),
    ) -> Result<Prepared, FetchError> {
        crate::domain::git::valid_ref_name(&u.branch).map_err(|why| FetchError::Git {
            action: "write-back".into(),
            detail: format!("the branch {why}"),
        })?;
        let dir = self.work_clone(&u.repo);
        let lock = self.lock_for(&dir);
        let _guard = lock.lock().await;
        if !dir.join(".git").is_dir() {
            std::fs::create_dir_all(&dir).map_err(|source| FetchError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            self.git(Some(&dir), &["init", "-q"], false).await?;
        }
        let branch = format!("refs/heads/{}", u.branch);
        self.shallow_fetch(&dir, &u.url, &branch, true).await?;
        self.git(
            Some(&dir),
            &[
                "checkout",
                "-q",
                "-f",
                "-B",
                "gantry-writeback",
                "FETCH_HEAD",
            ],
            false,
        )
        .await?;
        self.git(Some(&dir), &["clean", "-q", "-fdx"], false)
            .await?;
        let file = inside(&dir, &u.path)?;
        let current = match crate::images::context::read_bounded(&file, MAX_WRITTEN_FILE) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(FetchError::Io {
                    path: u.path.clone(),
                    source,
                })
            }
        };
        let next = render(current.as_deref());
        if current.as_deref() == Some(next.as_str()) {
            return Ok(Prepared::Unchanged);
        }
        std::fs::write(&file, next).map_err(|source| FetchError::Io {
            path: u.path.clone(),
            source,
        })?;
        self.git(Some(&dir), &["add", "--", &u.path], false).await?;
        self.git(
            Some(&dir),
            &[
                "-c",
                "user.name=Gantry",
                "-c",
                "user.email=gantry@users.noreply.github.com",
                "-c",
                "commit.gpgsign=false",
                "commit",
                "-q",
                "--no-verify",
                "-m",
                &u.message,
            ],
            false,
        )
        .await?;
        let sha = self.git(Some(&dir), &["rev-parse", "HEAD"], false).await?;
        Ok(Prepared::Commit { sha })
    }

    #[tracing::instrument(skip_all, fields(repo = %u.repo, sha = %sha))]
    async fn push(
        &self,
        u: &FileUpdate,
        sha: &str,
        branch: &str,
        replace: bool,
    ) -> Result<(), PushError> {
        if crate::domain::git::commit_sha(sha).is_none() {
            return Err(PushError::Failed(FetchError::Git {
                action: "push".into(),
                detail: format!("`{sha}` is not a commit sha"),
            }));
        }
        crate::domain::git::valid_ref_name(branch).map_err(|why| {
            PushError::Failed(FetchError::Git {
                action: "push".into(),
                detail: format!("the branch {why}"),
            })
        })?;
        let dir = self.work_clone(&u.repo);
        let lock = self.lock_for(&dir);
        let _guard = lock.lock().await;
        let refspec = format!(
            "{}{sha}:refs/heads/{branch}",
            if replace { "+" } else { "" }
        );
        match self
            .git(
                Some(&dir),
                &[
                    "push",
                    "-q",
                    "--no-verify",
                    "--end-of-options",
                    &u.url,
                    &refspec,
                ],
                true,
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(FetchError::Git { detail, .. })
                if detail.contains("[rejected]")
                    || detail.contains("non-fast-forward")
                    || detail.contains("fetch first") =>
            {
                Err(PushError::Rejected(detail))
            }
            Err(e) => Err(PushError::Failed(e)),
        }
    }
}

#[async_trait]
impl RemoteRefs for GitFetcher {
    #[tracing::instrument(skip_all)]
    async fn list(&self, url: &str) -> Result<RemoteHeads, FetchError> {
        use tokio::io::AsyncReadExt as _;
        let fail = |detail: String| FetchError::Git {
            action: "ls-remote".into(),
            detail,
        };
        // `--end-of-options` keeps a URL starting with `-` from being read as an option. Run
        // in the mirrors directory, Gantry's own, never whatever the daemon was started in.
        std::fs::create_dir_all(&self.mirrors)
            .map_err(|e| fail(format!("cannot create {}: {e}", self.mirrors.display())))?;
        let mut cmd = self.command(
            Some(&self.mirrors),
            &["ls-remote", "--heads", "--tags", "--end-of-options", url],
            true,
        );
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| fail(format!("cannot run git: {e}")))?;
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let read = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut so = (&mut stdout).take(LS_REMOTE_MAX_BYTES + 1);
            let mut se = (&mut stderr).take(64 * 1024);
            let (a, b) = tokio::join!(so.read_to_end(&mut out), se.read_to_end(&mut err));
            a.and(b).map(|_| (out, err))
        };
        let (out, err) = match tokio::time::timeout(LS_REMOTE_TIMEOUT, read).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => return Err(fail(format!("reading its output: {e}"))),
            Err(_) => {
                let _ = child.kill().await;
                return Err(fail(format!(
                    "no answer within {}s",
                    LS_REMOTE_TIMEOUT.as_secs()
                )));
            }
        };
        if out.len() as u64 > LS_REMOTE_MAX_BYTES {
            let _ = child.kill().await;
            return Err(fail(format!(
                "the remote lists more than {} MiB of refs",
                LS_REMOTE_MAX_BYTES >> 20
            )));
        }
        let status = child
            .wait()
            .await
            .map_err(|e| fail(format!("waiting for git: {e}")))?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err);
            return Err(fail(self.redactor.redact(stderr.trim())));
        }
        Ok(parse_ls_remote(&String::from_utf8_lossy(&out)))
    }
}

/// `SHA<TAB>REF` lines; a tag's peeled line (`REF^{}`, the commit an annotated tag points
/// to) replaces the tag object's sha, since a deployment names a commit.
fn parse_ls_remote(text: &str) -> RemoteHeads {
    let mut heads = RemoteHeads::new();
    let mut peeled = Vec::new();
    for line in text.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        match name.strip_suffix("^{}") {
            Some(tag) => peeled.push((tag.to_owned(), sha.to_owned())),
            None => {
                heads.insert(name.to_owned(), sha.to_owned());
            }
        }
    }
    for (tag, sha) in peeled {
        heads.insert(tag, sha);
    }
    heads
}

impl GitFetcher {
    /// Where the commit a checkout holds is recorded: beside the mirrors, which no build sees.
    fn checkout_record(&self, dest: &Path) -> PathBuf {
        use sha2::Digest as _;
        let key = hex::encode(&sha2::Sha256::digest(dest.as_os_str().as_encoded_bytes())[..16]);
        self.mirrors.join(".checkouts").join(key)
    }

    fn record_checkout(&self, record: &Path, c: &FetchedCommit) {
        let body = format!("{}\0{}\0{}\0{}", c.sha, c.title, c.author, c.time);
        if let Some(dir) = record.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(record, body) {
            tracing::warn!(path = %record.display(), error = %e, "cannot record a checkout; the next step checks it out again");
        }
    }

    fn recorded_checkout(&self, dest: &Path) -> Option<FetchedCommit> {
        let body = std::fs::read_to_string(self.checkout_record(dest)).ok()?;
        let mut parts = body.split('\0');
        let sha = parts.next()?.to_owned();
        if crate::domain::git::commit_sha(&sha).as_deref() != Some(sha.as_str()) {
            return None;
        }
        Some(FetchedCommit {
            sha,
            title: parts.next().unwrap_or_default().to_owned(),
            author: parts.next().unwrap_or_default().to_owned(),
            time: parts.next().and_then(|t| t.parse().ok()).unwrap_or(0),
        })
    }

    async fn describe(&self, dest: &Path) -> Result<FetchedCommit, FetchError> {
        let out = self
            .git(
                Some(dest),
                &["log", "-1", "--format=%H%x00%s%x00%an%x00%ct"],
                false,
            )
            .await?;
        let mut parts = out.split('\0');
        let mut next = || parts.next().unwrap_or_default().to_owned();
        Ok(FetchedCommit {
            sha: next(),
            title: next(),
            author: next(),
            time: next().parse().unwrap_or(0),
        })
    }
}
/// Kills processes still working in `mirror` (a git left by a killed daemon) and removes the
/// lock files such a git leaves (`shallow.lock`, `config.lock`, `refs/**.lock`, ...), which
/// would otherwise fail every later fetch with "File exists".
async fn recover_mirror(mirror: &Path, log: &StepLog) {
    if !mirror.exists() {
        return;
    }
    let orphans = processes_in(mirror);
    for pid in &orphans {
        log.line(format!(
            "stopping git process {pid} left in the mirror by an earlier fetch"
        ));
        // SAFETY: kill has no memory-safety preconditions; a gone pid fails with ESRCH.
        unsafe {
            libc::kill(*pid, libc::SIGKILL);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !orphans.is_empty()
        && !processes_in(mirror).is_empty()
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for lock in stale_locks(mirror) {
        if std::fs::remove_file(&lock).is_ok() {
            log.line(format!(
                "removed {} left by an interrupted fetch",
                lock.strip_prefix(mirror).unwrap_or(&lock).display()
            ));
        }
    }
}

/// Pids whose working directory is inside `dir` (git runs with `-C dir`).
fn processes_in(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    let own = std::process::id() as i32;
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != own)
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir))
        })
        .collect()
}

fn stale_locks(mirror: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![mirror.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() && (dir != mirror || e.file_name() == "refs") {
                dirs.push(path);
            } else if kind.is_file() && path.extension().is_some_and(|x| x == "lock") {
                out.push(path);
            }
        }
    }
    out
}

/// The commit a local checkout is at (for `gantry image build` in a user's CI).
pub fn local_head(dir: &Path) -> Option<String> {
    local_git(dir, &["rev-parse", "HEAD"])
}

/// The commit time of a local checkout's HEAD, seconds since the epoch, as git prints it.
pub fn local_commit_time(dir: &Path) -> Option<String> {
    local_git(dir, &["log", "-1", "--format=%ct"])
}

/// The `origin` remote's URL of a local checkout.
pub fn local_origin(dir: &Path) -> Option<String> {
    local_git(dir, &["remote", "get-url", "origin"])
}

fn local_git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ls_remote_lines_with_peeled_tags() {
        let a = "1".repeat(40);
        let b = "2".repeat(40);
        let c = "3".repeat(40);
        let text = format!(
            "{a}\trefs/heads/main\n{b}\trefs/tags/v1\n{c}\trefs/tags/v1^{{}}\nnot a line\n"
        );
        let heads = parse_ls_remote(&text);
        assert_eq!(heads.len(), 2);
        assert_eq!(heads["refs/heads/main"], a);
        // The annotated tag names its commit, not the tag object.
        assert_eq!(heads["refs/tags/v1"], c);
    }

    #[tokio::test]
    async fn a_url_that_looks_like_an_option_is_only_ever_a_url() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("pwned");
        // Where git runs is a repository with a reachable `origin`: read as an option, the URL
        // would make git list that remote with `touch` as its upload-pack.
        let run = |dir: &Path, args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        let bare = tmp.path().join("b.git");
        let mirrors = tmp.path().join("m");
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::create_dir_all(&mirrors).unwrap();
        run(&bare, &["init", "-q", "--bare"]);
        run(&mirrors, &["init", "-q"]);
        run(
            &mirrors,
            &["remote", "add", "origin", &bare.display().to_string()],
        );
        let git = GitFetcher::new(mirrors, None, Redactor::default());
        let url = format!("--upload-pack=touch {}", marker.display());
        assert!(git.list(&url).await.is_err());
        assert!(!marker.exists());
    }
}
