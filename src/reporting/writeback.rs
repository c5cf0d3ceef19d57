//! The write-back reporter: after an app's successful deployment from a git source, the image
//! digests it released are recorded in `gantry.lock.yaml` beside the app's manifest, committed
//! to the source's branch with trailers naming the deployment (`spec.writeBack: commit`), or
//! proposed to it as a pull request from Gantry's branch `gantry/lock/APP`
//! (`spec.writeBack: pullRequest`; one open pull request per app, its branch set to each new
//! lock commit; merging it changes no manifest, so it deploys nothing).
//!
//! No loop and no empty commits: the lock renders deterministically and is committed only when
//! its bytes change; the commit's sha is recorded as a revision of the source *before* it is
//! pushed, so its webhook and its poll find it already known and start nothing (lock files are
//! not manifests, so the revision changes no app's desired state either). A push the branch
//! moved under is prepared again on the new head; the abandoned commit is decided refused.

use std::sync::Arc;

use async_trait::async_trait;

use super::{PublishError, Reported, Reporter};
use crate::domain::{
    writeback_branch, Deployment, DeploymentState, ManifestSource, RevisionState, SourceRevision,
    Trigger, WriteBack,
};
use crate::plan::lock::{commit_message, lock_path, upsert};
use crate::ports::{FileUpdate, Forge, GitWriter, Prepared, PushError};
use crate::store::Store;

/// Attempts when the branch keeps moving under the push.
const MAX_REBASES: usize = 3;

pub struct LockWriter {
    writer: Arc<dyn GitWriter>,
    store: Arc<dyn Store>,
    sources: Vec<ManifestSource>,
    /// Wakes the sources' worker, which decides the recorded write-back revision.
    wake: Arc<tokio::sync::Notify>,
    /// Opens write-back pull requests.
    forge: Option<Arc<dyn Forge>>,
}

impl LockWriter {
    pub fn new(
        writer: Arc<dyn GitWriter>,
        store: Arc<dyn Store>,
        sources: Vec<ManifestSource>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            writer,
            store,
            sources,
            wake,
            forge: None,
        }
    }

    /// Pull-request write-backs go through `forge` (GitHub).
    pub fn with_forge(mut self, forge: Option<Arc<dyn Forge>>) -> Self {
        self.forge = forge;
        self
    }

    /// `spec.writeBack: pullRequest`: the lock commit on Gantry's branch, and the pull
    /// request from it (found open, or opened).
    async fn propose(
        &self,
        d: &Deployment,
        update: &FileUpdate,
        render: &(dyn for<'a> Fn(Option<&'a str>) -> String + Send + Sync),
    ) -> Result<Reported, PublishError> {
        let forge = self.forge.as_ref().ok_or_else(|| {
            failed(
                "writeBack: pullRequest needs GitHub access (GANTRY_GITHUB_TOKEN or a GitHub App)",
            )
        })?;
        let sha = match self.writer.prepare(update, render).await.map_err(failed)? {
            // The branch already has these digests: nothing to propose.
            Prepared::Unchanged => return Ok(Reported::Done),
            Prepared::Commit { sha } => sha,
        };
        let branch = writeback_branch(&d.app);
        self.writer
            .push(update, &sha, &branch, true)
            .await
            .map_err(failed)?;
        let title = update.message.lines().next().unwrap_or_default().to_owned();
        let body = format!(
            "Gantry released deployment #{} of `{}`; merging records its image digests in `{}`.\n\n```\n{}```\n\nMerging deploys nothing: a lock file is not a manifest.",
            d.id, d.app, update.path, update.message
        );
        let number = forge
            .open_pull_request(&update.repo, &branch, &update.branch, &title, &body)
            .await?;
        tracing::info!(sha = %sha, pull_request = number, "released digests proposed");
        Ok(Reported::Done)
    }

    /// The source a deployment's manifest came from, and the manifest's file in it.
    fn source_of<'a>(&'a self, d: &Deployment) -> Option<(&'a ManifestSource, String)> {
        let repo = d.manifests.repo.as_deref()?;
        let file = d.manifests.file.clone()?;
        self.sources
            .iter()
            .filter(|s| s.repo.eq_ignore_ascii_case(repo))
            .find(|s| {
                let dir = s.path.trim_start_matches("./").trim_end_matches('/');
                dir == "." || dir.is_empty() || file.starts_with(&format!("{dir}/"))
            })
            .map(|s| (s, file))
    }
}

fn failed(message: impl std::fmt::Display) -> PublishError {
    PublishError {
        target: "git",
        message: message.to_string(),
    }
}

#[async_trait]
impl Reporter for LockWriter {
    fn name(&self) -> &'static str {
        "git"
    }

    #[tracing::instrument(skip_all, fields(deployment.id = d.id, app = %d.app))]
    async fn report(&self, d: &Deployment) -> Result<Reported, PublishError> {
        if d.state != DeploymentState::Succeeded || d.spec.write_back.is_off() {
            return Ok(Reported::Done);
        }
        let Some((source, file)) = self.source_of(d) else {
            return Ok(Reported::Done);
        };
        // Only the app's newest release is what runs.
        let newest = self
            .store
            .good_releases(&d.app, 1)
            .await
            .map_err(failed)?
            .into_iter()
            .next();
        let Some((_, release)) = newest.filter(|(n, _)| n.id == d.id) else {
            return Ok(Reported::Done);
        };
        if release.images.is_empty() {
            return Ok(Reported::Done);
        }
        let update = FileUpdate {
            repo: source.repo.clone(),
            url: source.url.clone(),
            branch: source.branch.clone(),
            path: lock_path(&file),
            message: commit_message(&d.app, d.id, &release.images),
        };
        let render = |current: Option<&str>| upsert(current, &d.app, &release.images);
        if d.spec.write_back == WriteBack::PullRequest {
            return self.propose(d, &update, &render).await;
        }
        for _ in 0..MAX_REBASES {
            let sha = match self
                .writer
                .prepare(&update, &render)
                .await
                .map_err(failed)?
            {
                Prepared::Unchanged => return Ok(Reported::Done),
                Prepared::Commit { sha } => sha,
            };
            // Known before it exists remotely: its webhook and poll start nothing.
            self.store
                .add_revision(SourceRevision {
                    source: source.name.clone(),
                    sha: sha.clone(),
                    state: RevisionState::Pending,
                    push: None,
                    trigger: Trigger::Manifests,
                    delivery_id: None,
                    detail: Some(format!("written back by Gantry for deployment #{}", d.id)),
                })
                .await
                .map_err(failed)?;
            let pushed = self.writer.push(&update, &sha, &update.branch, false).await;
            if pushed.is_err() {
                // The commit never reached the branch: nothing is left to decide about it.
                self.store
                    .decide_revision(
                        &source.name,
                        &sha,
                        RevisionState::Refused,
                        Some("a write-back commit that was not pushed".into()),
                        vec![],
                    )
                    .await
                    .map_err(failed)?;
            }
            match pushed {
                Ok(()) => {
                    tracing::info!(sha = %sha, path = %update.path, "released digests written back");
                    self.wake.notify_one();
                    return Ok(Reported::Done);
                }
                Err(PushError::Rejected(why)) => {
                    tracing::info!(reason = %why, "the branch moved; writing back on its new head");
                }
                Err(PushError::Failed(e)) => return Err(failed(e)),
            }
        }
        Err(failed(format!(
            "the branch `{}` kept moving; trying again later",
            source.branch
        )))
    }
}
