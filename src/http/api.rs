//! The JSON API under `/api/v1`, behind a bearer token. Read-only views of apps, deployments
//! and audit records, plus `POST /api/v1/apps/{app}/deploy` for the CLI.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::domain::Trigger;

fn authorize(s: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &s.api_token else {
        return Err(ApiError::Unauthorized(
            "the API is disabled: set GANTRY_API_TOKEN on the server",
        ));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("missing or wrong bearer token"))
    }
}

pub async fn apps(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let out: Vec<Value> = s
        .control
        .overview(None)
        .await?
        .into_iter()
        .map(|a| {
            json!({
                "name": a.manifest.metadata.name,
                "environment": a.manifest.spec.environment,
                "app": a.manifest.spec.app_name(&a.manifest.metadata.name),
                "promotion": a.manifest.spec.promotion,
                "release": a.release,
                "repo": a.manifest.spec.source.repo,
                "branch": a.manifest.spec.source.branch,
                "last_deployment": a.last,
                "paused": a.paused,
                "drift": a.drift,
                "self_heal": a.manifest.spec.self_heal,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// A JSON body that may be left out (no content type): its defaults then.
fn optional<T: Default>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match body {
        Ok(Json(b)) => Ok(b),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(ApiError::from_rejection(e)),
    }
}

#[derive(Deserialize)]
pub struct ListQuery {
    app: Option<String>,
    limit: Option<usize>,
}

pub async fn deployments(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let list = s
        .store
        .deployments(q.app.as_deref(), q.limit.unwrap_or(50).min(500))
        .await?;
    Ok(Json(
        serde_json::to_value(list).expect("deployments serialise"),
    ))
}

pub async fn deployment(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    match s.store.deployment(id, true).await? {
        Some(d) => {
            let mut v = serde_json::to_value(d).expect("deployment serialises");
            let reports = s.control.reports(Some(id), false).await?;
            v["reports"] = serde_json::to_value(reports).expect("reports serialise");
            Ok(Json(v))
        }
        None => Err(ApiError::NotFound(format!(
            "deployment {id} does not exist"
        ))),
    }
}

#[derive(Deserialize)]
pub struct ReportsQuery {
    failing: Option<bool>,
}

/// Reports still owed: `?failing=true` lists only failed ones (with the error and the next
/// attempt), as `gantry status` warns about.
pub async fn reports(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReportsQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let list = s.control.reports(None, q.failing.unwrap_or(false)).await?;
    Ok(Json(serde_json::to_value(list).expect("reports serialise")))
}

#[derive(Deserialize)]
pub struct AuditQuery {
    target: Option<String>,
    limit: Option<usize>,
}

pub async fn audit(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let list = s
        .store
        .audits(q.target.as_deref(), q.limit.unwrap_or(50).min(500))
        .await?;
    Ok(Json(serde_json::to_value(list).expect("audit serialises")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    sha: Option<String>,
    actor: Option<String>,
    /// The environment, for an app with environments.
    env: Option<String>,
}

pub async fn deploy(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<DeployBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&s, &headers)?;
    // No body at all means "deploy the tracked branch".
    let body = optional(body)?;
    let actor = body.actor.clone().unwrap_or_else(|| "api".into());
    let app = s.control.instance(&app, body.env.as_deref())?;
    let q = s
        .control
        .deploy(&app, body.git_ref, body.sha, Trigger::Api, &actor)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": q.id, "app": app, "ref": q.git_ref })),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    to: Option<i64>,
    actor: Option<String>,
    env: Option<String>,
}

/// Redeploys a recorded release exactly and pauses automatic deploys of the app.
pub async fn rollback(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<RollbackBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&s, &headers)?;
    let body = optional(body)?;
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let app = s.control.instance(&app, body.env.as_deref())?;
    let r = s.control.rollback(&app, body.to, &actor).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({ "id": r.id, "app": app, "restores": r.restores, "paused": r.paused, "held": r.paused }),
        ),
    ))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    actor: Option<String>,
    env: Option<String>,
}

/// Lets pushes deploy the app again.
pub async fn resume(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<ResumeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let body = optional(body)?;
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let app = s.control.instance(&app, body.env.as_deref())?;
    let resumed = s.control.resume(&app, &actor).await?;
    Ok(Json(json!({ "app": app, "resumed": resumed })))
}

/// Releases an environment's hold (or pause): automation deploys it again.
pub async fn release_hold(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<ResumeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let body = optional(body)?;
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let app = s.control.instance(&app, body.env.as_deref())?;
    let released = s.control.release_hold(&app, &actor).await?;
    Ok(Json(json!({ "app": app, "released": released })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OverrideBody {
    actor: Option<String>,
    env: Option<String>,
    /// The deployment meant; default: the app's newest one waiting.
    deployment: Option<i64>,
}

/// Starts a deployment that waits for its deploy window now (403 unless the actor is in the
/// windows' `overrideBy`; audited either way).
pub async fn override_window(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<OverrideBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let body = optional(body)?;
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let app = s.control.instance(&app, body.env.as_deref())?;
    let id = s
        .control
        .override_window(&app, body.deployment, &actor, std::slice::from_ref(&actor))
        .await?;
    Ok(Json(json!({ "app": app, "started": id })))
}

/// Approves an app's deployment awaiting approval (403 unless the actor is in
/// `approvals.from`; the author's own approval is recorded and does not count).
pub async fn approve(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<OverrideBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    judge(s, headers, app, body, true).await
}

/// Rejects an app's deployment awaiting approval: it ends without starting.
pub async fn reject(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<OverrideBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    judge(s, headers, app, body, false).await
}

async fn judge(
    s: AppState,
    headers: HeaderMap,
    app: String,
    body: Result<Json<OverrideBody>, JsonRejection>,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let body = optional(body)?;
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let app = s.control.instance(&app, body.env.as_deref())?;
    let j = s
        .control
        .judge(
            &app,
            body.deployment,
            approve,
            &actor,
            std::slice::from_ref(&actor),
        )
        .await?;
    Ok(Json(json!({
        "app": app,
        "deployment": j.deployment,
        "counted": j.counted,
        "recorded": j.recorded,
    })))
}

#[derive(Deserialize)]
pub struct DoraQuery {
    app: Option<String>,
    days: Option<u32>,
}

/// DORA's four keys per app and environment over the last `days` (default 30).
pub async fn dora(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<DoraQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let days = q.days.unwrap_or(30);
    let figures = s
        .control
        .dora(q.app.as_deref(), days, chrono::Utc::now())
        .await?;
    let out: Vec<Value> = figures
        .into_iter()
        .map(|(environment, f)| {
            let mut v = json!(f);
            v["environment"] = json!(environment);
            v
        })
        .collect();
    Ok(Json(json!({ "days": days, "apps": out })))
}

/// Every app's recorded drift.
pub async fn drift(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    Ok(Json(json!(s.control.drifts().await?)))
}

/// Checks one app's drift now (and heals it if it asks for that): what the check found.
pub async fn check_drift(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<ResumeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let body = optional(body)?;
    let app = s.control.instance(&app, body.env.as_deref())?;
    let watcher = s.drift.as_ref().ok_or_else(|| {
        ApiError::from(crate::control::ControlError::Unavailable(
            "this Gantry has no AWS access to read live state".into(),
        ))
    })?;
    let c = watcher.check(&app).await?;
    Ok(Json(json!({
        "app": c.app,
        "change": c.change.map(|c| format!("{c:?}").to_lowercase()),
        "drift": c.drift,
        "healed_by": c.healed_by,
        "note": c.note,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteBody {
    from: String,
    to: String,
    /// A deployment of `from` to promote instead of its newest release (holds `to`).
    release: Option<i64>,
    actor: Option<String>,
}

/// Deploys environment `from`'s release to environment `to`: same digests and site content,
/// `to`'s settings, nothing built.
pub async fn promote(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(app): Path<String>,
    body: Result<Json<PromoteBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&s, &headers)?;
    let Json(body) = body.map_err(ApiError::from_rejection)?;
    let actor = body.actor.unwrap_or_else(|| "api".into());
    let p = s
        .control
        .promote(&app, &body.from, &body.to, body.release, &actor)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": p.id,
            "app": app,
            "from": p.source,
            "release": p.release,
            "sha": p.sha,
            "held": p.held,
        })),
    ))
}

#[derive(Deserialize)]
pub struct ReleasesQuery {
    app: String,
    limit: Option<usize>,
}

/// What exactly each successful deployment put in place (commit, image digests, task
/// definition ARNs, site releases), newest first.
pub async fn releases(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReleasesQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&s, &headers)?;
    let list = s
        .store
        .releases(&q.app, q.limit.unwrap_or(50).min(500))
        .await?;
    Ok(Json(
        serde_json::to_value(list).expect("releases serialise"),
    ))
}
