//! The GitHub reporter: a commit status per app (`gantry/APP`: pending -> success/failure) and,
//! when the app asks for it, a GitHub deployment per environment with in_progress and final
//! statuses. What was last posted is recorded per deployment, so every transition is posted
//! once and in order (a deployment that finished before it was first reported still shows
//! pending / in_progress first), and a retried step posts nothing new.

use std::sync::Arc;

use async_trait::async_trait;

use super::{PublishError, Reported, Reporter};
use crate::domain::{Deployment, DeploymentState};
use crate::plan::notify::{commit_status, deployment_status, transitions};
use crate::ports::{CommitStatus, Forge};
use crate::store::Store;

pub struct GithubReporter {
    forge: Arc<dyn Forge>,
    store: Arc<dyn Store>,
    /// Gantry's public URL, for links to the deployment.
    public_url: Option<String>,
}

impl GithubReporter {
    pub fn new(forge: Arc<dyn Forge>, store: Arc<dyn Store>, public_url: Option<String>) -> Self {
        Self {
            forge,
            store,
            public_url,
        }
    }

    fn link(&self, d: &Deployment) -> Option<String> {
        self.public_url
            .as_ref()
            .map(|u| format!("{u}/api/v1/deployments/{}", d.id))
    }

    async fn state(&self, d: &Deployment, key: &str) -> Result<Option<String>, PublishError> {
        self.store
            .reporter_state(d.id, key)
            .await
            .map_err(store_err)
    }

    async fn record(&self, d: &Deployment, key: &str, value: &str) -> Result<(), PublishError> {
        self.store
            .set_reporter_state(d.id, key, value)
            .await
            .map_err(store_err)
    }

    async fn statuses(&self, d: &Deployment, sha: &str) -> Result<(), PublishError> {
        let Some((state, description)) = commit_status(d.state) else {
            return Ok(());
        };
        let last = self.state(d, "github-status").await?;
        for state in transitions(last.as_deref(), "pending", state) {
            let description = if state == "pending" && d.state.is_terminal() {
                "deploying"
            } else {
                description
            };
            let status = CommitStatus {
                state: state.into(),
                context: format!("gantry/{}", d.app),
                description: format!("#{} {description}", d.id),
                target_url: self.link(d),
            };
            self.forge
                .commit_status(&d.spec.source.repo, sha, &status)
                .await?;
            self.record(d, "github-status", state).await?;
        }
        Ok(())
    }

    /// A status on the manifests' commit when they live in another repository (a config
    /// repository): whoever changed them sees what came of it, a refusal included.
    async fn manifest_statuses(&self, d: &Deployment) -> Result<(), PublishError> {
        let (Some(repo), Some(sha)) = (&d.manifests.repo, &d.manifests.sha) else {
            return Ok(());
        };
        if repo.eq_ignore_ascii_case(&d.spec.source.repo) && d.sha.as_deref() == Some(sha) {
            return Ok(());
        }
        let Some((state, description)) = commit_status(d.state) else {
            return Ok(());
        };
        // A refusal says its first problem; the rest is behind the link and in the history.
        let problem = d
            .reason
            .as_deref()
            .filter(|_| d.steps.is_empty())
            .and_then(|r| r.lines().nth(1));
        let last = self.state(d, "github-manifests-status").await?;
        for state in transitions(last.as_deref(), "pending", state) {
            let description = match (state, problem) {
                ("pending", _) if d.state.is_terminal() => format!("#{} deploying", d.id),
                ("failure", Some(p)) => p.chars().take(140).collect(),
                _ => format!("#{} {description}", d.id),
            };
            let status = CommitStatus {
                state: state.into(),
                context: format!("gantry/{}", d.app),
                description,
                target_url: self.link(d),
            };
            self.forge.commit_status(repo, sha, &status).await?;
            self.record(d, "github-manifests-status", state).await?;
        }
        Ok(())
    }

    async fn deployments(&self, d: &Deployment, sha: &str) -> Result<(), PublishError> {
        let repo = &d.spec.source.repo;
        let id = match self.state(d, "github-deployment").await? {
            Some(id) => id.parse::<u64>().map_err(|_| PublishError {
                target: "github",
                message: format!("recorded GitHub deployment id `{id}` is not a number"),
            })?,
            None if d.state == DeploymentState::Superseded => return Ok(()),
            None => {
                let id = self
                    .forge
                    .create_deployment(
                        repo,
                        sha,
                        &d.spec.environment,
                        &format!("gantry deployment #{} of {}", d.id, d.app),
                    )
                    .await?;
                self.record(d, "github-deployment", &id.to_string()).await?;
                id
            }
        };
        let state = deployment_status(d.state);
        let last = self.state(d, "github-deployment-status").await?;
        let first = if state == "queued" {
            "queued"
        } else {
            "in_progress"
        };
        let link = self.link(d);
        for state in transitions(last.as_deref(), first, state) {
            let description = d
                .reason
                .clone()
                .unwrap_or_else(|| format!("#{} {state}", d.id));
            let description: String = description.chars().take(140).collect();
            self.forge
                .deployment_status(repo, id, state, &description, link.as_deref())
                .await?;
            self.record(d, "github-deployment-status", state).await?;
        }
        Ok(())
    }
}

fn store_err(e: crate::store::StoreError) -> PublishError {
    PublishError {
        target: "github",
        message: e.to_string(),
    }
}

#[async_trait]
impl Reporter for GithubReporter {
    fn name(&self) -> &'static str {
        "github"
    }

    #[tracing::instrument(skip_all, fields(deployment.id = d.id, app = %d.app))]
    async fn report(&self, d: &Deployment) -> Result<Reported, PublishError> {
        self.manifest_statuses(d).await?;
        let Some(settings) = &d.spec.notifications.github else {
            return Ok(Reported::Done);
        };
        let Some(sha) = d.sha.clone() else {
            return Ok(Reported::Done);
        };
        if settings.statuses {
            self.statuses(d, &sha).await?;
        }
        if settings.deployments {
            self.deployments(d, &sha).await?;
        }
        Ok(Reported::Done)
    }
}
