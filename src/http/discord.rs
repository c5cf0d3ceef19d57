//! `POST /hooks/discord`: Discord's HTTP interactions endpoint. The Ed25519 signature
//! (`X-Signature-Ed25519` over `X-Signature-Timestamp` + body, against the application's public
//! key) and the timestamp's age are checked before the body is parsed; anything else gets 401
//! and changes nothing. PING answers PONG. Slash commands are parsed and authorised by
//! `plan::chatops` (deny by default), run through `control` (the same use-cases as the API), and
//! every one is audited with who asked, what, and the outcome. Production deploys and
//! rollbacks answer with a confirmation button first; `/diff` is deferred and answered by a
//! follow-up edit.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::task::TaskTracker;

use super::error::ApiError;
use super::AppState;
use crate::control::{Control, ControlError};
use crate::domain::Trigger;
use crate::plan::chatops::{self, AppLine, Caller, ChatCommand, Decision, Permission, Reply};
use crate::ports::{InteractionReplies, VerifyInteraction};

/// How old a signed timestamp may be (replays of captured requests are refused).
pub const MAX_AGE_SECONDS: i64 = 300;

/// What the interactions endpoint needs besides the shared state.
pub struct DiscordHook {
    pub verifier: Box<dyn VerifyInteraction>,
    pub permissions: Vec<Permission>,
    /// Edits deferred responses; without it `/diff` answers that it cannot.
    pub replies: Option<Arc<dyn InteractionReplies>>,
    /// Deferred follow-ups in flight; shutdown waits for them.
    pub tasks: TaskTracker,
    /// The use-cases, for follow-ups that outlive the request.
    pub control: Arc<Control>,
}

// The parts of Discord's interaction object Gantry reads (unknown fields are ignored, so
// Discord adding fields never breaks the endpoint).
#[derive(Debug, Deserialize)]
struct Interaction {
    #[serde(default)]
    id: String,
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    token: String,
    data: Option<Data>,
    member: Option<Member>,
    user: Option<User>,
}

#[derive(Debug, Deserialize)]
struct Data {
    name: Option<String>,
    #[serde(default)]
    options: Vec<OptionValue>,
    custom_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OptionValue {
    name: String,
    value: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Member {
    user: Option<User>,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct User {
    id: String,
    username: Option<String>,
}

const PING: u8 = 1;
const APPLICATION_COMMAND: u8 = 2;
const MESSAGE_COMPONENT: u8 = 3;

fn unauthorized(message: &'static str) -> Response {
    ApiError::Unauthorized(message).into_response()
}

pub async fn interactions(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(hook) = s.discord.clone() else {
        return unauthorized(
            "Discord interactions are not configured: set GANTRY_DISCORD_PUBLIC_KEY",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return ApiError::from_rejection(e).into_response(),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) = (
        header("x-signature-ed25519"),
        header("x-signature-timestamp"),
    ) else {
        return unauthorized("missing X-Signature-Ed25519 or X-Signature-Timestamp");
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return unauthorized("X-Signature-Timestamp is not a unix time");
    };
    if (chrono::Utc::now().timestamp() - ts).abs() > MAX_AGE_SECONDS {
        return unauthorized("stale X-Signature-Timestamp");
    }
    if !hook.verifier.verify(signature, timestamp, &body) {
        return unauthorized("bad interaction signature");
    }
    let interaction: Interaction = match serde_json::from_slice(&body) {
        Ok(i) => i,
        Err(e) => return ApiError::BadRequest(format!("not an interaction: {e}")).into_response(),
    };
    let control = s.control.as_ref();
    // A captured, correctly signed interaction may be posted again within the timestamp
    // window: each id is acted on once.
    if matches!(interaction.kind, APPLICATION_COMMAND | MESSAGE_COMPONENT) {
        if interaction.id.is_empty() || interaction.id.len() > 32 {
            return ApiError::BadRequest("an interaction needs its id".into()).into_response();
        }
        match control.claim_interaction(&interaction.id).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(interaction = %interaction.id, "replayed interaction refused");
                let reply = Reply::ephemeral(
                    "This interaction was already handled; nothing was done again.",
                );
                return (StatusCode::OK, Json(reply.to_json())).into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let result = match interaction.kind {
        PING => Ok(Reply::pong()),
        APPLICATION_COMMAND => command(control, &hook, &interaction).await,
        MESSAGE_COMPONENT => component(control, &hook, &interaction).await,
        other => Err(ControlError::Invalid(format!(
            "unsupported interaction type {other}"
        ))),
    };
    match result {
        Ok(reply) => (StatusCode::OK, Json(reply.to_json())).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

fn options(data: &Data) -> Vec<(String, String)> {
    data.options
        .iter()
        .map(|o| {
            let v = match &o.value {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (o.name.clone(), v)
        })
        .collect()
}

/// What the endpoint makes of a (verified) body: the command a slash command or a
/// confirmation button asks for, or why it is not one. The same parsing `interactions` does,
/// callable without a signature (the fuzz targets use it).
pub fn parse_interaction(
    body: &[u8],
    now: i64,
) -> Result<Option<Result<ChatCommand, String>>, String> {
    let i: Interaction = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let _ = caller(&i);
    Ok(i.data.as_ref().map(|d| match (&d.custom_id, &d.name) {
        (Some(id), _) => chatops::parse_confirm(id, now),
        (None, name) => ChatCommand::parse(name.as_deref().unwrap_or_default(), &options(d)),
    }))
}

fn caller(i: &Interaction) -> (Caller, String) {
    let user = i
        .member
        .as_ref()
        .and_then(|m| m.user.as_ref())
        .or(i.user.as_ref());
    let id = user.map(|u| u.id.clone()).unwrap_or_default();
    let actor = match user.and_then(|u| u.username.as_deref()) {
        Some(name) => format!("discord:{name} ({id})"),
        None => format!("discord:{id}"),
    };
    let roles = i
        .member
        .as_ref()
        .map(|m| m.roles.clone())
        .unwrap_or_default();
    (Caller { user_id: id, roles }, actor)
}

/// The environment a command acts on: a promotion's target, else the app's own.
fn environment(c: &Control, cmd: &ChatCommand) -> Result<Option<String>, ControlError> {
    if let ChatCommand::Promote { app, to, .. } = cmd {
        c.instance(app, Some(to))?;
        return Ok(Some(to.clone()));
    }
    match cmd.app() {
        Some(app) => Ok(Some(c.manifest(app)?.spec.environment)),
        None => Ok(None),
    }
}

async fn command(c: &Control, hook: &DiscordHook, i: &Interaction) -> Result<Reply, ControlError> {
    let (who, actor) = caller(i);
    let data = i
        .data
        .as_ref()
        .ok_or_else(|| ControlError::Invalid("a command without data".into()))?;
    let name = data.name.clone().unwrap_or_default();
    let cmd = match ChatCommand::parse(&name, &options(data)) {
        Ok(c) => c,
        Err(e) => return Ok(Reply::ephemeral(e)),
    };
    let target = cmd.app().unwrap_or("*").to_owned();
    let env = match environment(c, &cmd) {
        Ok(e) => e,
        Err(ControlError::NotFound(m)) => {
            c.audit(&actor, cmd.name(), &target, "rejected", Some(m.clone()))
                .await?;
            return Ok(Reply::ephemeral(m));
        }
        Err(e) => return Err(e),
    };
    match chatops::decide(&cmd, env.as_deref(), &who, &hook.permissions) {
        Decision::Deny(reason) => deny(c, &actor, &cmd, &target, reason).await,
        Decision::Confirm => {
            let now = chrono::Utc::now().timestamp();
            let Some(id) = chatops::confirm_id(&cmd, now) else {
                return Ok(Reply::ephemeral(
                    "that ref is too long to confirm with a button; deploy it with `gantry deploy`",
                ));
            };
            c.audit(&actor, cmd.name(), &target, "confirmation asked", None)
                .await?;
            Ok(Reply::confirm(&cmd, id))
        }
        Decision::Allow => run(c, hook, &cmd, &actor, &i.token, false).await,
    }
}

async fn component(
    c: &Control,
    hook: &DiscordHook,
    i: &Interaction,
) -> Result<Reply, ControlError> {
    let (who, actor) = caller(i);
    let id = i
        .data
        .as_ref()
        .and_then(|d| d.custom_id.clone())
        .unwrap_or_default();
    if let Some((deployment, approve)) = crate::plan::notify::parse_approval_id(&id) {
        return approval(c, &who, &actor, deployment, approve).await;
    }
    if id == chatops::CANCEL_ID {
        c.audit(&actor, "confirm", "*", "cancelled", None).await?;
        return Ok(Reply::update("Cancelled. Nothing was changed."));
    }
    let cmd = match chatops::parse_confirm(&id, chrono::Utc::now().timestamp()) {
        Ok(c) => c,
        Err(e) => return Ok(Reply::update(e)),
    };
    let target = cmd.app().unwrap_or("*").to_owned();
    let env = environment(c, &cmd)?;
    // The clicker must hold the permission too (anyone in the channel can click).
    match chatops::decide(&cmd, env.as_deref(), &who, &hook.permissions) {
        Decision::Deny(reason) => deny(c, &actor, &cmd, &target, reason).await,
        Decision::Allow | Decision::Confirm => run(c, hook, &cmd, &actor, &i.token, true).await,
    }
}

/// An Approve or Reject button on a deployment's message: the clicker's Discord identities
/// must be in the environment's `approvals.from` (checked and audited by `control`).
async fn approval(
    c: &Control,
    who: &Caller,
    actor: &str,
    deployment: i64,
    approve: bool,
) -> Result<Reply, ControlError> {
    let Some(d) = c.store().deployment(deployment, false).await? else {
        return Ok(Reply::ephemeral(format!(
            "deployment #{deployment} does not exist"
        )));
    };
    let mut identities = vec![format!("discord:{}", who.user_id)];
    identities.extend(who.roles.iter().map(|r| format!("discord-role:{r}")));
    let text = match c
        .judge(&d.app, Some(deployment), approve, actor, &identities)
        .await
    {
        Ok(j) if !j.recorded => format!("You had already given your verdict on #{deployment}."),
        Ok(_) if !approve => format!(
            "❌ Deployment #{deployment} of `{}` rejected: it will not start.",
            d.app
        ),
        Ok(j) if !j.counted => format!(
            "Your approval of #{deployment} is recorded but does not count: it is your own change."
        ),
        Ok(_) => format!(
            "✅ Deployment #{deployment} of `{}` approved by {actor}.",
            d.app
        ),
        Err(ControlError::Forbidden(m) | ControlError::NotFound(m)) => m,
        Err(e) => return Err(e),
    };
    Ok(Reply::ephemeral(text))
}

/// Refuses a command (ephemerally) and audits the refusal.
async fn deny(
    c: &Control,
    actor: &str,
    cmd: &ChatCommand,
    target: &str,
    reason: String,
) -> Result<Reply, ControlError> {
    let text = chatops::denied(&reason);
    c.audit(actor, cmd.name(), target, "denied", Some(reason))
        .await?;
    Ok(Reply::ephemeral(text))
}

/// Carries out an authorised command; `from_button` answers by updating the button's message.
async fn run(
    c: &Control,
    hook: &DiscordHook,
    cmd: &ChatCommand,
    actor: &str,
    token: &str,
    from_button: bool,
) -> Result<Reply, ControlError> {
    let outcome = match cmd {
        ChatCommand::Deploy { app, git_ref } => {
            c.deploy(app, git_ref.clone(), None, Trigger::Discord, actor)
                .await
                .map(|q| format!("🚀 Deployment #{} of `{app}` ({}) queued by {actor}.", q.id, q.git_ref))
        }
        ChatCommand::Rollback { app, to } => c.rollback(app, *to, actor).await.map(|r| {
            format!(
                "⏪ Rolling `{app}` back to deployment #{} as #{}; `{app}` is held: automatic deploys wait for `/release-hold {app}`.",
                r.restores, r.id
            )
        }),
        ChatCommand::Promote { app, from, to } => c
            .promote(app, from, to, None, actor)
            .await
            .map(|p| {
                format!(
                    "⏩ Promoting `{app}` from `{from}` to `{to}` as #{}: the release of #{} ({}), nothing rebuilt.",
                    p.id,
                    p.release,
                    crate::domain::short_sha(&p.sha)
                )
            }),
        ChatCommand::ReleaseHold { app } => c.release_hold(app, actor).await.map(|r| {
            if r {
                format!("▶️ `{app}`'s hold is released: automation deploys it again.")
            } else {
                format!("`{app}` was not held.")
            }
        }),
        ChatCommand::Pause { app } => c
            .pause(app, actor)
            .await
            .map(|()| format!("⏸️ `{app}` is paused: pushes will not deploy it until `/resume {app}`.")),
        ChatCommand::Resume { app } => c.resume(app, actor).await.map(|r| {
            if r {
                format!("▶️ `{app}` resumed: pushes deploy it again.")
            } else {
                format!("`{app}` was not paused.")
            }
        }),
        ChatCommand::Status { app } => {
            let apps = c.overview(app.as_deref()).await?;
            let lines: Vec<AppLine<'_>> = apps
                .iter()
                .map(|a| AppLine {
                    name: &a.manifest.metadata.name,
                    environment: &a.manifest.spec.environment,
                    last: a.last.as_ref(),
                    paused: a.paused.as_ref(),
                    release: a.release.as_ref(),
                    drifted: a.drift.is_some(),
                })
                .collect();
            let text = chatops::status_text(&lines, app.as_deref());
            c.audit(actor, "status", app.as_deref().unwrap_or("*"), "answered", None)
                .await?;
            return Ok(Reply::ephemeral(text));
        }
        ChatCommand::History { app } => {
            let text = chatops::history_text(app, &c.history(app, 10).await?);
            c.audit(actor, "history", app, "answered", None).await?;
            return Ok(Reply::ephemeral(text));
        }
        ChatCommand::Diff { app } => return diff(c, hook, app, actor, token).await,
    };
    match outcome {
        Ok(text) if from_button => Ok(Reply::update(text)),
        Ok(text) => Ok(Reply::public(text)),
        // Not-found and bad requests are the caller's to fix: say so, audit the refusal.
        Err(ControlError::NotFound(m)) | Err(ControlError::Invalid(m)) => {
            c.audit(
                actor,
                cmd.name(),
                cmd.app().unwrap_or("*"),
                "rejected",
                Some(m.clone()),
            )
            .await?;
            Ok(if from_button {
                Reply::update(m)
            } else {
                Reply::ephemeral(m)
            })
        }
        Err(e) => Err(e),
    }
}

/// Answers at once with a deferred response; the diff follows as an edit of it, from a task
/// that shutdown waits for.
async fn diff(
    c: &Control,
    hook: &DiscordHook,
    app: &str,
    actor: &str,
    token: &str,
) -> Result<Reply, ControlError> {
    if let Err(ControlError::NotFound(m)) = c.manifest(app) {
        return Ok(Reply::ephemeral(m));
    }
    let (Some(replies), true) = (hook.replies.clone(), c.can_diff()) else {
        return Ok(Reply::ephemeral(
            "/diff needs a bot token (GANTRY_DISCORD_BOT_TOKEN) and AWS access on this Gantry",
        ));
    };
    c.audit(actor, "diff", app, "answered", None).await?;
    let (token, app) = (token.to_owned(), app.to_owned());
    let control = hook.control.clone();
    hook.tasks.spawn(async move {
        let text = match control.diff(&app).await {
            Ok(d) => chatops::diff_text(&app, &d),
            Err(e) => e.to_string(),
        };
        if let Err(e) = replies.edit_original(&token, &text).await {
            tracing::warn!(app = %app, error = %e, "cannot send the /diff follow-up");
        }
    });
    Ok(Reply::deferred())
}
