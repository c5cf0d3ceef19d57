//! The use-cases people and webhooks ask for: take in a push, deploy, roll back, pause, resume,
//! and the views the API and chat answer with (apps at a glance, history, a service diff).
//!
//! HTTP (the JSON API, `/hooks/github`, Discord's interactions) and the CLI only translate to
//! and from these; every path enqueues, pauses and audits exactly alike. A use-case works over
//! the store, the manifests and the queue handle, asks `plan::*` what to do, and answers with
//! its own error type: it knows nothing of HTTP status codes or Discord responses.

pub mod autopromote;
pub mod drift;
pub mod poll;
pub mod sources;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::domain::{
    git, AppManifest, AuditRecord, Deployment, DeploymentId, ManifestSource, PauseKind, Paused,
    PushEvent, Release, RevisionState, SourceRevision, Trigger,
};
use crate::manifests::ManifestSet;
use crate::plan::intake::{plan_push, request, restore_request, IntakeDecision};
use crate::ports::ServiceDeployer;
use crate::queue::QueueHandle;
use crate::store::{DeliveryOutcome, DeliveryRecord, Store, StoreError};

/// Why a use-case refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The app, deployment or release asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong (both `ref` and `sha`, a short sha, ...).
    #[error("{0}")]
    Invalid(String),
    /// This Gantry cannot do it (no AWS access for a diff, ...).
    #[error("{0}")]
    Unavailable(String),
    /// The caller may not do this (audited).
    #[error("{0}")]
    Forbidden(String),
    #[error("the store failed: {0}")]
    Store(#[from] StoreError),
}

/// A deployment that was queued.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: DeploymentId,
    pub git_ref: String,
}

/// A rollback that was queued.
#[derive(Debug, Clone)]
pub struct RolledBack {
    pub id: DeploymentId,
    pub restores: DeploymentId,
    pub paused: String,
}

/// A promotion that was queued.
#[derive(Debug, Clone)]
pub struct Promoted {
    pub id: DeploymentId,
    /// The environment's app the release came from, and the deployment that made it.
    pub source: String,
    pub release: DeploymentId,
    pub sha: String,
    /// The hold put on the target (a release older than the source's newest).
    pub held: Option<String>,
}

/// An approval or rejection that was recorded.
#[derive(Debug, Clone)]
pub struct Judged {
    pub deployment: DeploymentId,
    /// Whether it counts towards the required approvals (the author's own does not).
    pub counted: bool,
    /// False when this person had already given their verdict (the first stands).
    pub recorded: bool,
}

/// One app at a glance.
#[derive(Debug, Clone)]
pub struct AppOverview {
    pub manifest: AppManifest,
    pub last: Option<Deployment>,
    pub paused: Option<Paused>,
    /// What runs: the newest good release.
    pub release: Option<Release>,
    /// How the live state differs from that release, if it does.
    pub drift: Option<crate::domain::drift::Drift>,
}

/// The use-cases over one store, manifest set and queue.
pub struct Control {
    store: Arc<dyn Store>,
    manifests: Arc<RwLock<ManifestSet>>,
    queue: QueueHandle,
    ecs: Option<Arc<dyn ServiceDeployer>>,
    /// Scheduled jobs' rules, for `/diff`.
    jobs: Option<Arc<dyn crate::ports::JobScheduler>>,
    /// Git sources of manifests: a push of one's branch is a new revision, taken in as
    /// pending and decided by `sources::SourceSync`.
    sources: Vec<ManifestSource>,
    /// Wakes `SourceSync` when a revision is taken in.
    revisions: Arc<tokio::sync::Notify>,
}

/// The delivery record of a push (webhook or poll).
fn push_record(
    delivery: &str,
    event: &str,
    push: &PushEvent,
    outcome: crate::domain::Intake,
    reason: Option<String>,
) -> DeliveryRecord {
    DeliveryRecord {
        id: delivery.to_owned(),
        event: event.to_owned(),
        repo: Some(push.repository.full_name.clone()),
        git_ref: Some(push.git_ref.clone()),
        sha: Some(push.after.clone()),
        outcome,
        reason,
    }
}

/// How many releases a rollback looks back through for its target.
const ROLLBACK_DEPTH: usize = 200;

impl Control {
    pub fn new(
        store: Arc<dyn Store>,
        manifests: Arc<RwLock<ManifestSet>>,
        queue: QueueHandle,
        ecs: Option<Arc<dyn ServiceDeployer>>,
    ) -> Self {
        Self {
            store,
            manifests,
            queue,
            ecs,
            jobs: None,
            sources: vec![],
            revisions: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Compares scheduled jobs' rules in `diff` through `jobs`.
    pub fn with_jobs(mut self, jobs: Option<Arc<dyn crate::ports::JobScheduler>>) -> Self {
        self.jobs = jobs;
        self
    }

    /// Takes pushes of these git sources' branches in as manifest revisions, notifying `wake`.
    pub fn with_sources(
        mut self,
        sources: Vec<ManifestSource>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        self.sources = sources;
        self.revisions = wake;
        self
    }

    /// The git sources of manifests.
    pub fn sources(&self) -> &[ManifestSource] {
        &self.sources
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The manifests in force (replaced whole on reload).
    pub fn manifests(&self) -> Arc<RwLock<ManifestSet>> {
        self.manifests.clone()
    }

    /// The app's manifest as loaded now.
    pub fn manifest(&self, app: &str) -> Result<AppManifest, ControlError> {
        self.loaded(app).map(|a| a.manifest)
    }

    /// The app's manifest as loaded now, with where it came from.
    pub fn loaded(&self, app: &str) -> Result<crate::manifests::LoadedApp, ControlError> {
        let m = self.manifests.read().expect("manifests lock poisoned");
        m.get(app)
            .cloned()
            .ok_or_else(|| ControlError::NotFound(format!("no app named `{app}` in the manifests")))
    }

    /// The app of environment `env` of `app`. Without `env`: `app` itself when it names one
    /// app (`APP-ENV`, or an app without environments); an app with environments must say
    /// which.
    pub fn instance(&self, app: &str, env: Option<&str>) -> Result<String, ControlError> {
        // Names come from callers: only a name an app could have is looked up or echoed.
        if let Some(e) = env.filter(|e| !crate::domain::is_dns_label(e)) {
            return Err(ControlError::Invalid(format!(
                "an environment name is a lowercase DNS label, not {} characters of something else",
                e.len()
            )));
        }
        if !crate::domain::is_dns_label(app) {
            return Err(ControlError::NotFound(
                "no app by that name: app names are lowercase DNS labels".into(),
            ));
        }
        let m = self.manifests.read().expect("manifests lock poisoned");
        let envs: Vec<&crate::domain::AppManifest> = m
            .manifests()
            .filter(|a| a.spec.environment_of.as_deref() == Some(app))
            .collect();
        let names = || {
            envs.iter()
                .map(|a| a.spec.environment.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match env {
            None if m.get(app).is_some() => Ok(app.to_owned()),
            None if !envs.is_empty() => Err(ControlError::Invalid(format!(
                "`{app}` has environments {}: say which (`--env NAME`)",
                names()
            ))),
            None => Err(ControlError::NotFound(format!(
                "no app named `{app}` in the manifests"
            ))),
            Some(e) => {
                if let Some(a) = envs.iter().find(|a| a.spec.environment == e) {
                    return Ok(a.metadata.name.clone());
                }
                match m.get(app) {
                    Some(a) if a.manifest.spec.environment == e => Ok(app.to_owned()),
                    _ if envs.is_empty() => Err(ControlError::NotFound(format!(
                        "no app named `{app}` with environment `{e}` in the manifests"
                    ))),
                    _ => Err(ControlError::NotFound(format!(
                        "`{app}` has no environment `{e}` (it has {})",
                        names()
                    ))),
                }
            }
        }
    }

    /// Queues a deployment of environment `to` of `app` with the exact release of
    /// environment `from` (its newest good release, or deployment `release` of it): the same
    /// image digests and site content, `to`'s settings, nothing fetched or built. Promoting
    /// anything but the source's newest release puts a hold on `to`, in the same transaction.
    pub async fn promote(
        &self,
        app: &str,
        from: &str,
        to: &str,
        release: Option<DeploymentId>,
        actor: &str,
    ) -> Result<Promoted, ControlError> {
        let source = self.instance(app, Some(from))?;
        let target = self.instance(app, Some(to))?;
        if source == target {
            return Err(ControlError::Invalid(format!(
                "`{from}` and `{to}` are the same environment"
            )));
        }
        let loaded = self.loaded(&target)?;
        let good = self.store.good_releases(&source, ROLLBACK_DEPTH).await?;
        let newest = good.first().map(|(d, _)| d.id).ok_or_else(|| {
            ControlError::NotFound(format!("`{source}` has no successful release to promote"))
        })?;
        let (_, chosen) = match release {
            None => good.first(),
            Some(id) => good.iter().find(|(d, _)| d.id == id),
        }
        .cloned()
        .ok_or_else(|| {
            ControlError::NotFound(format!(
                "deployment #{} of `{source}` did not succeed or recorded no release",
                release.unwrap_or_default()
            ))
        })?;
        let mut entry =
            crate::plan::promote::request(&loaded.manifest, &chosen, Trigger::Promotion, actor)
                .map_err(ControlError::Invalid)?;
        entry.deployment.manifests = loaded.origin;
        let short = crate::domain::short_sha(&chosen.sha).to_owned();
        let held = (chosen.deployment_id != newest).then(|| {
            format!(
                "promoted deployment #{} ({short}) of `{from}`, older than its newest #{newest}, by {actor}",
                chosen.deployment_id
            )
        });
        let hold = held.as_ref().map(|reason| Paused {
            app: target.clone(),
            reason: reason.clone(),
            actor: actor.to_owned(),
            at: chrono::Utc::now(),
            kind: PauseKind::Hold,
        });
        let audit = audit_record(
            actor,
            "promote",
            &target,
            "queued",
            Some(format!(
                "release of #{} ({short}) from `{source}`{}",
                chosen.deployment_id,
                if held.is_some() { "; held" } else { "" }
            )),
        );
        let id = self.store.enqueue_audited(entry, hold, audit).await?;
        self.queue.wake();
        Ok(Promoted {
            id,
            source,
            release: chosen.deployment_id,
            sha: chosen.sha,
            held,
        })
    }

    /// Releases the hold (or pause) on `app`: automation deploys it again. `false` when it
    /// had none.
    pub async fn release_hold(&self, app: &str, actor: &str) -> Result<bool, ControlError> {
        self.manifest(app)?;
        let released = self.store.resume(app).await?;
        let outcome = if released { "released" } else { "was not held" };
        self.audit(actor, "hold.release", app, outcome, None)
            .await?;
        Ok(released)
    }

    /// Records who asked for what, and what came of it.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: Option<String>,
    ) -> Result<(), ControlError> {
        self.store
            .audit(audit_record(actor, action, target, outcome, detail))
            .await?;
        Ok(())
    }

    /// Takes in a verified push: plans which apps it deploys, records the delivery with
    /// them in one transaction (apps paused by then take none), and wakes the queue.
    pub async fn push(
        &self,
        delivery: &str,
        event: &str,
        push: &PushEvent,
    ) -> Result<DeliveryOutcome, ControlError> {
        self.intake(delivery, event, push, Trigger::Push, push.actor())
            .await
    }

    /// Takes in a ref the poller found moved on `repo` (a push whose webhook never came), as a
    /// push would be, under a delivery id made from the repository, ref and sha: taken in
    /// once, and not at all when a webhook already brought that sha.
    pub async fn poll(
        &self,
        repo: &str,
        git_ref: &str,
        sha: &str,
    ) -> Result<DeliveryOutcome, ControlError> {
        let push = PushEvent {
            git_ref: git_ref.to_owned(),
            after: sha.to_owned(),
            deleted: false,
            repository: crate::domain::PushRepository {
                full_name: repo.to_owned(),
            },
            commits: vec![],
            head_commit: None,
            pusher: None,
            sender: None,
        };
        let delivery = crate::plan::poll::delivery_id(repo, git_ref, sha);
        self.intake(
            &delivery,
            "poll",
            &push,
            Trigger::Poll,
            "gantry (poll)".into(),
        )
        .await
    }

    async fn intake(
        &self,
        delivery: &str,
        event: &str,
        push: &PushEvent,
        trigger: Trigger,
        actor: String,
    ) -> Result<DeliveryOutcome, ControlError> {
        // Nothing from the payload reaches git or the store unchecked.
        let mut push = push.clone();
        push.after = git::commit_sha(&push.after).ok_or_else(|| {
            ControlError::Invalid("`after` is not a 40-character commit sha".into())
        })?;
        git::valid_ref_name(&push.git_ref)
            .map_err(|why| ControlError::Invalid(format!("`ref` {why}")))?;
        let push = &push;
        // A push of a manifest source's branch is a new revision: the sources' worker plans
        // it (and the app deploys it brings) with the manifests it carries.
        let revisions: Vec<SourceRevision> = self
            .sources
            .iter()
            .filter(|s| s.tracks(&push.repository.full_name, &push.git_ref))
            .filter(|_| !push.deleted)
            .map(|s| SourceRevision {
                source: s.name.clone(),
                sha: push.after.clone(),
                state: RevisionState::Pending,
                push: Some(push.clone()),
                trigger,
                delivery_id: Some(delivery.to_owned()),
                detail: None,
            })
            .collect();
        if !revisions.is_empty() {
            let record = push_record(
                delivery,
                event,
                push,
                crate::domain::Intake::Queued,
                Some(
                    "a new revision of the manifests: deployments follow once it is validated"
                        .into(),
                ),
            );
            let out = self
                .store
                .record_revision_delivery(record, revisions)
                .await?;
            if matches!(out, DeliveryOutcome::Recorded { .. }) {
                self.revisions.notify_one();
            }
            return Ok(out);
        }
        let decision = {
            let manifests = self.manifests.read().expect("manifests lock poisoned");
            match plan_push(manifests.manifests(), push) {
                IntakeDecision::Deploy { apps, sha } => Ok(apps
                    .iter()
                    .filter_map(|name| manifests.get(name))
                    .map(|app| {
                        let mut e = request(
                            &app.manifest,
                            Some(sha.clone()),
                            push.git_ref.clone(),
                            trigger,
                            actor.clone(),
                            Some(delivery.to_owned()),
                        );
                        e.deployment.manifests = app.origin.clone();
                        e
                    })
                    .collect::<Vec<_>>()),
                IntakeDecision::Ignore { reason } => Err(reason),
            }
        };
        let (outcome, reason, entries) = match decision {
            Ok(entries) => (crate::domain::Intake::Queued, None, entries),
            Err(reason) => (crate::domain::Intake::Ignored, Some(reason), vec![]),
        };
        let record = push_record(delivery, event, push, outcome, reason);
        let out = self.store.record_delivery(record, entries).await?;
        if matches!(&out, DeliveryOutcome::Recorded { deployments, .. } if !deployments.is_empty())
        {
            self.queue.wake();
        }
        Ok(out)
    }

    /// Takes in a verified `pull_request` event: a pull request against a manifest source's
    /// branch gets a plan preview (a commit status and one comment, edited in place on every
    /// push to it), recorded with the delivery and posted by the sources' worker.
    pub async fn pull_request(
        &self,
        delivery: &str,
        event: &str,
        pr: &crate::domain::PullRequestEvent,
    ) -> Result<DeliveryOutcome, ControlError> {
        let sha = git::commit_sha(&pr.pull_request.head.sha).ok_or_else(|| {
            ControlError::Invalid("`pull_request.head.sha` is not a 40-character commit sha".into())
        })?;
        let repo = &pr.repository.full_name;
        let base = &pr.pull_request.base.git_ref;
        let mut previews: Vec<crate::domain::PreviewRequest> = if pr.plans() {
            self.sources
                .iter()
                .filter(|s| s.repo.eq_ignore_ascii_case(repo) && &s.branch == base)
                .map(|s| crate::domain::PreviewRequest {
                    source: s.name.clone(),
                    repo: s.repo.clone(),
                    number: pr.number,
                    sha: sha.clone(),
                })
                .collect()
        } else {
            vec![]
        };
        // The apps built from this repository's branch: what merging would deploy.
        if pr.plans() {
            let m = self.manifests.read().expect("manifests lock poisoned");
            for a in &m.apps {
                let src = &a.manifest.spec.source;
                if src.repo.eq_ignore_ascii_case(repo) && &src.branch == base {
                    previews.push(crate::domain::PreviewRequest {
                        source: crate::domain::app_preview_source(&a.manifest.metadata.name),
                        repo: src.repo.clone(),
                        number: pr.number,
                        sha: sha.clone(),
                    });
                }
            }
        }
        let (outcome, reason) = match (pr.plans(), previews.is_empty()) {
            (false, _) => (
                crate::domain::Intake::Ignored,
                format!(
                    "pull request action `{}` changes nothing to plan",
                    pr.action
                ),
            ),
            (true, true) => (
                crate::domain::Intake::Ignored,
                format!(
                    "no manifest source or app tracks {repo} {}",
                    pr.pull_request.base.git_ref
                ),
            ),
            (true, false) => (
                crate::domain::Intake::Queued,
                format!("plan preview of #{} pending", pr.number),
            ),
        };
        let record = DeliveryRecord {
            id: delivery.to_owned(),
            event: event.to_owned(),
            repo: Some(repo.clone()),
            git_ref: None,
            sha: None,
            outcome,
            reason: Some(reason),
        };
        let out = self.store.record_preview_delivery(record, previews).await?;
        self.revisions.notify_one();
        Ok(out)
    }

    /// Records a delivery of an event Gantry does not act on (`ping` answers pong).
    pub async fn other_event(
        &self,
        delivery: &str,
        event: &str,
    ) -> Result<DeliveryOutcome, ControlError> {
        let (outcome, reason) = if event == "ping" {
            (crate::domain::Intake::Ping, None)
        } else {
            (
                crate::domain::Intake::Ignored,
                Some(format!("Gantry does not act on `{event}` events")),
            )
        };
        let record = DeliveryRecord {
            id: delivery.to_owned(),
            event: event.to_owned(),
            repo: None,
            git_ref: None,
            sha: None,
            outcome,
            reason,
        };
        Ok(self.store.record_delivery(record, vec![]).await?)
    }

    /// Queues a deployment of `app` at `sha`, or at `git_ref` (default: the tracked branch).
    pub async fn deploy(
        &self,
        app: &str,
        git_ref: Option<String>,
        sha: Option<String>,
        trigger: Trigger,
        actor: &str,
    ) -> Result<Queued, ControlError> {
        if git_ref.is_some() && sha.is_some() {
            return Err(ControlError::Invalid(
                "give either `ref` or `sha`, not both".into(),
            ));
        }
        let sha = match sha {
            Some(s) => Some(git::commit_sha(&s).ok_or_else(|| {
                ControlError::Invalid(format!("`{s}` is not a full 40-character commit sha"))
            })?),
            None => None,
        };
        if let Some(r) = &git_ref {
            git::valid_ref_name(r).map_err(|why| {
                ControlError::Invalid(format!("`{r}` is not a git ref name: it {why}"))
            })?;
        }
        let loaded = self.loaded(app)?;
        let manifest = loaded.manifest;
        if let Some(p) = &manifest.spec.promotion {
            return Err(ControlError::Invalid(format!(
                "`{app}` takes releases by promotion: `gantry promote {} --from {} --to {}`",
                manifest.spec.app_name(app),
                p.from,
                manifest.spec.environment
            )));
        }
        if git_ref.is_none()
            && sha.is_none()
            && manifest.spec.source.branch.contains(['*', '?', '[', '{'])
        {
            return Err(ControlError::Invalid(format!(
                "`{app}` tracks the branch pattern `{}`: say which ref to deploy",
                manifest.spec.source.branch
            )));
        }
        let git_ref =
            git_ref.unwrap_or_else(|| format!("refs/heads/{}", manifest.spec.source.branch));
        let mut entry = request(
            &manifest,
            sha,
            git_ref.clone(),
            trigger,
            actor.to_owned(),
            None,
        );
        entry.deployment.manifests = loaded.origin;
        let audit = audit_record(
            actor,
            "deploy",
            app,
            "queued",
            Some(format!("of {git_ref}")),
        );
        let id = self.store.enqueue_audited(entry, None, audit).await?;
        self.queue.wake();
        Ok(Queued { id, git_ref })
    }

    /// Queues an exact redeploy of a recorded release (`to`, default: the one before the
    /// current) and pauses automatic deploys of the app, in one transaction.
    pub async fn rollback(
        &self,
        app: &str,
        to: Option<DeploymentId>,
        actor: &str,
    ) -> Result<RolledBack, ControlError> {
        self.manifest(app)?;
        let (target, release) = self.rollback_target(app, to).await?;
        let short = crate::domain::short_sha(&release.sha);
        let paused = format!(
            "rolled back to deployment #{} ({short}) by {actor}",
            target.id
        );
        let pause = Paused {
            app: app.to_owned(),
            reason: paused.clone(),
            actor: actor.to_owned(),
            at: chrono::Utc::now(),
            kind: PauseKind::Hold,
        };
        let audit = audit_record(
            actor,
            "rollback",
            app,
            "queued",
            Some(format!("restores #{}; held", target.id)),
        );
        let entry = restore_request(&target, &release, actor.to_owned());
        let id = self
            .store
            .enqueue_audited(entry, Some(pause), audit)
            .await?;
        self.queue.wake();
        Ok(RolledBack {
            id,
            restores: target.id,
            paused,
        })
    }

    async fn rollback_target(
        &self,
        app: &str,
        to: Option<DeploymentId>,
    ) -> Result<(Deployment, Release), ControlError> {
        let mut good = self.store.good_releases(app, ROLLBACK_DEPTH).await?;
        match to {
            Some(id) => good.into_iter().find(|(d, _)| d.id == id).ok_or_else(|| {
                ControlError::NotFound(format!(
                    "deployment #{id} of `{app}` did not succeed or recorded no release"
                ))
            }),
            // The last release that succeeded, unless it is what runs now (the newest
            // deployment succeeded): then the one before it.
            None => {
                let newest = self.store.deployments(Some(app), 1).await?.pop();
                let live_is_last_good = match (&newest, good.first()) {
                    (Some(n), Some((g, _))) => n.id == g.id,
                    _ => false,
                };
                let pick = usize::from(live_is_last_good);
                if good.len() > pick {
                    Ok(good.swap_remove(pick))
                } else {
                    Err(ControlError::NotFound(format!(
                        "`{app}` has no earlier successful release to roll back to"
                    )))
                }
            }
        }
    }

    /// Stops pushes from deploying `app` until it is resumed.
    pub async fn pause(&self, app: &str, actor: &str) -> Result<(), ControlError> {
        self.manifest(app)?;
        self.store
            .pause(Paused {
                app: app.to_owned(),
                reason: format!("paused by {actor}"),
                actor: actor.to_owned(),
                at: chrono::Utc::now(),
                kind: PauseKind::Pause,
            })
            .await?;
        self.audit(actor, "pause", app, "paused", None).await
    }

    /// Lets pushes deploy `app` again; `false` when it was not paused.
    pub async fn resume(&self, app: &str, actor: &str) -> Result<bool, ControlError> {
        self.manifest(app)?;
        let resumed = self.store.resume(app).await?;
        let outcome = if resumed { "resumed" } else { "was not paused" };
        self.audit(actor, "resume", app, outcome, None).await?;
        Ok(resumed)
    }

    /// Every app in the manifests (or only `only`) with its last deployment and pause.
    pub async fn overview(&self, only: Option<&str>) -> Result<Vec<AppOverview>, ControlError> {
        let apps: Vec<AppManifest> = {
            let m = self.manifests.read().expect("manifests lock poisoned");
            m.apps
                .iter()
                .map(|a| a.manifest.clone())
                .filter(|a| only.is_none_or(|o| o == a.metadata.name))
                .collect()
        };
        let paused = self.store.paused().await?;
        let drifts = self.store.drifts().await?;
        let mut out = Vec::with_capacity(apps.len());
        for manifest in apps {
            let name = &manifest.metadata.name;
            let last = self.store.deployments(Some(name), 1).await?.pop();
            let paused = paused.iter().find(|p| &p.app == name).cloned();
            let release = self
                .store
                .good_releases(name, 1)
                .await?
                .pop()
                .map(|(_, r)| r);
            let drift = drifts.iter().find(|d| &d.app == name).cloned();
            out.push(AppOverview {
                manifest,
                last,
                paused,
                release,
                drift,
            });
        }
        Ok(out)
    }

    /// The newest deployments of an app in the manifests.
    pub async fn history(&self, app: &str, limit: usize) -> Result<Vec<Deployment>, ControlError> {
        self.manifest(app)?;
        Ok(self.store.deployments(Some(app), limit).await?)
    }

    /// What deploying `app` would change in ECS, per service and job, with the image digests of its
    /// newest successful release (what runs now), like `gantry diff --sha`.
    pub async fn diff(&self, app: &str) -> Result<String, ControlError> {
        let manifest = self.manifest(app)?;
        let ecs = self.ecs.clone().ok_or_else(|| {
            ControlError::Unavailable("this Gantry has no AWS access for ECS".into())
        })?;
        let images: BTreeMap<String, String> = self
            .store
            .good_releases(app, 1)
            .await?
            .pop()
            .map(|(_, r)| r.images)
            .unwrap_or_default();
        crate::services::diff::diff(
            app,
            &manifest.spec,
            &images,
            ecs.as_ref(),
            self.jobs.as_deref(),
        )
        .await
        .map_err(|e| ControlError::Unavailable(format!("cannot diff `{app}`: {e}")))
    }

    /// Claims a chat interaction for handling; `false` when it was handled before (a replay
    /// of a signed request), which must then change nothing.
    pub async fn claim_interaction(&self, id: &str) -> Result<bool, ControlError> {
        Ok(self.store.first_interaction(id).await?)
    }

    /// Reports still owed (of one deployment, or all): failures with their redacted errors
    /// and next attempt, and, unless `failing`, edits held back to coalesce.
    pub async fn reports(
        &self,
        deployment: Option<DeploymentId>,
        failing: bool,
    ) -> Result<Vec<crate::store::PendingReport>, ControlError> {
        Ok(self
            .store
            .pending_reports(None, deployment, failing, 200)
            .await?)
    }

    /// Starts `app`'s deployment that waits for its deploy window (`deployment`, default the
    /// newest waiting) now, if `who` (the caller's identities: the actor, and for Discord
    /// `discord:ID` and `discord-role:ID`) is in its windows' `overrideBy`. Audited either way;
    /// a refusal changes nothing else.
    pub async fn override_window(
        &self,
        app: &str,
        deployment: Option<DeploymentId>,
        actor: &str,
        who: &[String],
    ) -> Result<DeploymentId, ControlError> {
        self.manifest(app)?;
        let d = self
            .store
            .not_started()
            .await?
            .into_iter()
            .filter(|d| d.app == app && deployment.is_none_or(|id| d.id == id))
            .max_by_key(|d| d.id)
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "no deployment of `{app}` is waiting to start{}",
                    deployment
                        .map(|id| format!(" with id #{id}"))
                        .unwrap_or_default()
                ))
            })?;
        let detail = format!(
            "deployment #{}: {}",
            d.id,
            d.reason.as_deref().unwrap_or("queued")
        );
        if !crate::plan::window::granted(&d.spec.windows.override_by, who) {
            self.audit(actor, "window.override", app, "denied", Some(detail))
                .await?;
            return Err(ControlError::Forbidden(format!(
                "`{actor}` may not start `{app}` outside its deploy windows (spec.windows.overrideBy)"
            )));
        }
        let record = audit_record(actor, "window.override", app, "started", Some(detail));
        if !self.store.override_window(d.id, record).await? {
            return Err(ControlError::Invalid(format!(
                "deployment #{} of `{app}` has already started",
                d.id
            )));
        }
        self.queue.wake();
        Ok(d.id)
    }

    /// Approves (`approve`) or rejects `app`'s deployment awaiting approval (`deployment`,
    /// default the newest), if `who` (the caller's identities) is in `approvals.from`. The
    /// author's own approval is recorded but does not count. Audited either way.
    pub async fn judge(
        &self,
        app: &str,
        deployment: Option<DeploymentId>,
        approve: bool,
        actor: &str,
        who: &[String],
    ) -> Result<Judged, ControlError> {
        self.manifest(app)?;
        let action = if approve { "approve" } else { "reject" };
        let d = self
            .store
            .not_started()
            .await?
            .into_iter()
            .filter(|d| {
                d.app == app
                    && deployment.is_none_or(|id| d.id == id)
                    && crate::plan::gate::needs_approval(d)
            })
            .max_by_key(|d| d.id)
            .ok_or_else(|| {
                ControlError::NotFound(format!(
                    "no deployment of `{app}` awaits approval{}",
                    deployment
                        .map(|id| format!(" with id #{id}"))
                        .unwrap_or_default()
                ))
            })?;
        let from = d
            .spec
            .approvals
            .as_ref()
            .map(|a| a.from.as_slice())
            .unwrap_or_default();
        let detail = format!("deployment #{}", d.id);
        if !crate::plan::window::granted(from, who) {
            self.audit(actor, action, app, "denied", Some(detail))
                .await?;
            return Err(ControlError::Forbidden(format!(
                "`{actor}` may not {action} deployments of `{app}` (spec.approvals.from)"
            )));
        }
        let counted = !approve || crate::plan::gate::counts(&d.actor, actor);
        let outcome = match (approve, counted) {
            (false, _) => "rejected",
            (true, true) => "approved",
            (true, false) => "approved by the author: does not count",
        };
        let approval = crate::domain::Approval {
            actor: actor.to_owned(),
            approve,
            counted,
            at: chrono::Utc::now(),
        };
        let recorded = self
            .store
            .record_approval(
                d.id,
                approval,
                audit_record(actor, action, app, outcome, Some(detail)),
            )
            .await?;
        self.queue.wake();
        Ok(Judged {
            deployment: d.id,
            counted,
            recorded,
        })
    }

    /// DORA's four keys per app (environment) over the `days` before `now`: only apps in the
    /// manifests (or `only`), with their environment.
    pub async fn dora(
        &self,
        only: Option<&str>,
        days: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<(String, crate::plan::dora::Figures)>, ControlError> {
        if !(1..=366).contains(&days) {
            return Err(ControlError::Invalid(format!(
                "`days` must be 1 to 366, not {days}"
            )));
        }
        let envs = self.environments();
        let since = now - chrono::Duration::days(i64::from(days));
        let rows = self.store.dora_rows(since).await?;
        Ok(crate::plan::dora::figures(&rows, since, now)
            .into_iter()
            .filter(|f| only.is_none_or(|o| o == f.app))
            .filter_map(|f| envs.get(&f.app).map(|e| (e.clone(), f)))
            .collect())
    }

    /// The gauges `/metrics` shows, read from the store now: deployments not ended by app and
    /// state, drifted apps, and every app in the manifests.
    pub async fn gauges(&self) -> Result<crate::ports::Gauges, ControlError> {
        let envs = self.environments();
        let env_of = |app: &str| envs.get(app).cloned().unwrap_or_default();
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        let pending = self.store.not_started().await?;
        let running = self.store.running().await?;
        for d in pending.iter().chain(running.iter()) {
            *counts
                .entry((d.app.clone(), d.state.as_str().to_owned()))
                .or_default() += 1;
        }
        Ok(crate::ports::Gauges {
            deployments: counts
                .into_iter()
                .map(|((app, state), n)| (app.clone(), env_of(&app), state, n))
                .collect(),
            drifted: self
                .store
                .drifts()
                .await?
                .into_iter()
                .map(|d| {
                    let env = env_of(&d.app);
                    (d.app, env)
                })
                .collect(),
            apps: envs.into_iter().collect(),
            // One replica runs everything until leader election lands (issue 15).
            leader: true,
        })
    }

    /// Every app in the manifests in force, with its environment.
    fn environments(&self) -> BTreeMap<String, String> {
        let m = self.manifests.read().expect("manifests lock poisoned");
        m.apps
            .iter()
            .map(|a| {
                (
                    a.manifest.metadata.name.clone(),
                    a.manifest.spec.environment.clone(),
                )
            })
            .collect()
    }

    /// The names of every app in the manifests in force.
    pub fn app_names(&self) -> Vec<String> {
        let m = self.manifests.read().expect("manifests lock poisoned");
        m.apps
            .iter()
            .map(|a| a.manifest.metadata.name.clone())
            .collect()
    }

    /// Lets the queue look for work now (a deployment was queued outside a use-case here).
    pub fn wake_queue(&self) {
        self.queue.wake();
    }

    /// Every app's recorded drift.
    pub async fn drifts(&self) -> Result<Vec<crate::domain::drift::Drift>, ControlError> {
        Ok(self.store.drifts().await?)
    }

    /// Whether a `/diff` can be answered here.
    pub fn can_diff(&self) -> bool {
        self.ecs.is_some()
    }
}

fn audit_record(
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: Option<String>,
) -> AuditRecord {
    AuditRecord {
        at: chrono::Utc::now(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.to_owned(),
        outcome: outcome.to_owned(),
        detail,
    }
}
