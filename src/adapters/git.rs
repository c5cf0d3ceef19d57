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
use crate::ports::{FetchError, FetchRequest, FetchedCommit, Revision, SourceFetcher};
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
        if !mirror.join("HEAD").exists() {
            std::fs::create_dir_all(&mirror).map_err(|source| FetchError::Io {
                path: mirror.display().to_string(),
                source,
            })?;
            self.git(Some(&mirror), &["init", "--bare", "-q"], false)
                .await?;
        }
        let sha = match &req.revision {
            Revision::Sha(sha) if self.has_commit(&mirror, sha).await => {
                log.line(format!("mirror already has {sha}"));
                sha.clone()
            }
            Revision::Sha(sha) => {
                log.line(format!("fetching {sha} from {}", req.url));
                self.git(
                    Some(&mirror),
                    &["fetch", "--depth=1", "--no-tags", "-q", &req.url, sha],
                    true,
                )
                .await?;
                sha.clone()
            }
            Revision::Ref(r) => {
                log.line(format!("fetching {r} from {}", req.url));
                self.git(
                    Some(&mirror),
                    &["fetch", "--depth=1", "--no-tags", "-q", &req.url, r],
                    true,
                )
                .await?;
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
        // Level-triggered: a checkout already at the wanted commit is reused as it is.
        if let Revision::Sha(sha) = &req.revision {
            if req.dest.join(".git").exists() {
                if let Ok(head) = self
                    .git(Some(&req.dest), &["rev-parse", "HEAD"], false)
                    .await
                {
                    if &head == sha {
                        log.line(format!("checkout already at {sha}"));
                        return self.describe(&req.dest).await;
                    }
                }
            }
        }
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
        self.git(
            Some(&req.dest),
            &["fetch", "--depth=1", "--no-tags", "-q", &mirror_url, &sha],
            false,
        )
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
        Ok(commit)
    }
}

impl GitFetcher {
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
