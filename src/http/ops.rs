//! The operations people ask for — deploy, roll back, pause, resume — shared by the JSON API
//! and Discord's slash commands, so both enqueue, pause and audit exactly alike.

use super::error::ApiError;
use super::AppState;
use crate::domain::{AppManifest, AuditRecord, DeploymentId, DeploymentState, Paused, Trigger};

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

pub fn manifest(s: &AppState, app: &str) -> Result<AppManifest, ApiError> {
    let m = s.manifests.read().expect("manifests lock poisoned");
    m.get(app)
        .map(|a| a.manifest.clone())
        .ok_or_else(|| ApiError::NotFound(format!("no app named `{app}` in the manifests")))
}

pub async fn audit(
    s: &AppState,
    actor: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: Option<String>,
) -> Result<(), ApiError> {
    s.store
        .audit(AuditRecord {
            at: chrono::Utc::now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            detail,
        })
        .await?;
    Ok(())
}

/// Queues a deployment of `app` at `sha`, or at `git_ref` (default: the tracked branch).
pub async fn deploy(
    s: &AppState,
    app: &str,
    git_ref: Option<String>,
    sha: Option<String>,
    trigger: Trigger,
    actor: &str,
) -> Result<Queued, ApiError> {
    if git_ref.is_some() && sha.is_some() {
        return Err(ApiError::BadRequest(
            "give either `ref` or `sha`, not both".into(),
        ));
    }
    if let Some(sha) = &sha {
        if sha.len() != 40 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ApiError::BadRequest(format!(
                "`{sha}` is not a full 40-character commit sha"
            )));
        }
    }
    let manifest = manifest(s, app)?;
    if git_ref.is_none()
        && sha.is_none()
        && manifest.spec.source.branch.contains(['*', '?', '[', '{'])
    {
        return Err(ApiError::BadRequest(format!(
            "`{app}` tracks the branch pattern `{}`: say which ref to deploy",
            manifest.spec.source.branch
        )));
    }
    let git_ref = git_ref.unwrap_or_else(|| format!("refs/heads/{}", manifest.spec.source.branch));
    let req = crate::queue::request(
        &manifest,
        sha.map(|s| s.to_ascii_lowercase()),
        git_ref.clone(),
        trigger,
        actor.to_owned(),
        None,
    );
    let id = s.store.enqueue(req).await?;
    audit(
        s,
        actor,
        "deploy",
        app,
        "queued",
        Some(format!("deployment #{id} of {git_ref}")),
    )
    .await?;
    s.queue.wake();
    Ok(Queued { id, git_ref })
}

/// Queues an exact redeploy of a recorded release (`to`, default: the one before the current)
/// and pauses automatic deploys of the app.
pub async fn rollback(
    s: &AppState,
    app: &str,
    to: Option<DeploymentId>,
    actor: &str,
) -> Result<RolledBack, ApiError> {
    manifest(s, app)?;
    // Releases of deployments that succeeded, newest first.
    let mut candidates = Vec::new();
    for r in s.store.releases(app, 200).await? {
        if let Some(d) = s.store.deployment(r.deployment_id, false).await? {
            if d.state == DeploymentState::Succeeded {
                candidates.push((d, r));
            }
        }
    }
    let (target, release) = match to {
        Some(id) => candidates
            .into_iter()
            .find(|(d, _)| d.id == id)
            .ok_or_else(|| {
                ApiError::NotFound(format!(
                    "deployment #{id} of `{app}` did not succeed or recorded no release"
                ))
            })?,
        None => candidates.into_iter().nth(1).ok_or_else(|| {
            ApiError::NotFound(format!(
                "`{app}` has no earlier successful release to roll back to"
            ))
        })?,
    };
    let id = s
        .store
        .enqueue(crate::queue::restore_request(
            &target,
            &release,
            actor.to_owned(),
        ))
        .await?;
    let short = &release.sha[..release.sha.len().min(7)];
    let paused = format!(
        "rolled back to deployment #{} ({short}) by {actor}",
        target.id
    );
    s.store
        .pause(Paused {
            app: app.to_owned(),
            reason: paused.clone(),
            actor: actor.to_owned(),
            at: chrono::Utc::now(),
        })
        .await?;
    audit(
        s,
        actor,
        "rollback",
        app,
        "queued",
        Some(format!(
            "deployment #{id} restores #{}; automatic deploys paused",
            target.id
        )),
    )
    .await?;
    s.queue.wake();
    Ok(RolledBack {
        id,
        restores: target.id,
        paused,
    })
}

/// Stops pushes from deploying `app` until it is resumed.
pub async fn pause(s: &AppState, app: &str, actor: &str) -> Result<(), ApiError> {
    manifest(s, app)?;
    s.store
        .pause(Paused {
            app: app.to_owned(),
            reason: format!("paused by {actor}"),
            actor: actor.to_owned(),
            at: chrono::Utc::now(),
        })
        .await?;
    audit(s, actor, "pause", app, "paused", None).await
}

/// Lets pushes deploy `app` again; `false` when it was not paused.
pub async fn resume(s: &AppState, app: &str, actor: &str) -> Result<bool, ApiError> {
    let resumed = s.store.resume(app).await?;
    let outcome = if resumed { "resumed" } else { "was not paused" };
    audit(s, actor, "resume", app, outcome, None).await?;
    Ok(resumed)
}
