//! `POST /hooks/discord`: Discord's HTTP interactions endpoint. The Ed25519 signature
//! (`X-Signature-Ed25519` over `X-Signature-Timestamp` + body, against the application's public
//! key) and the timestamp's age are checked before the body is parsed; anything else gets 401
//! and changes nothing. PING answers PONG. Slash commands are parsed and authorised by
//! `plan::chatops` (deny by default), run through `http::ops` (the same code as the API), and
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
use serde_json::{json, Value};

use super::error::ApiError;
use super::{ops, AppState};
use crate::domain::Trigger;
use crate::plan::chatops::{self, Caller, ChatCommand, Decision, Permission};
use crate::reporting::ports::InteractionReplies;
use crate::services::ports::ServiceDeployer;

/// How old a signed timestamp may be (replays of captured requests are refused).
pub const MAX_AGE_SECONDS: i64 = 300;

/// Checks an interaction's signature (`adapters::discord::InteractionSignatures`).
pub trait VerifyInteraction: Send + Sync {
    fn verify(&self, signature: &str, timestamp: &str, body: &[u8]) -> bool;
}

/// What the interactions endpoint needs besides the shared state.
pub struct DiscordHook {
    pub verifier: Box<dyn VerifyInteraction>,
    pub permissions: Vec<Permission>,
    /// Edits deferred responses; without it `/diff` answers that it cannot.
    pub replies: Option<Arc<dyn InteractionReplies>>,
    pub ecs: Option<Arc<dyn ServiceDeployer>>,
}

// The parts of Discord's interaction object Gantry reads (unknown fields are ignored, so
// Discord adding fields never breaks the endpoint).
#[derive(Debug, Deserialize)]
struct Interaction {
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
    let result = match interaction.kind {
        PING => Ok(json!({ "type": 1 })),
        APPLICATION_COMMAND => command(&s, &hook, &interaction).await,
        MESSAGE_COMPONENT => component(&s, &hook, &interaction).await,
        other => Err(ApiError::BadRequest(format!(
            "unsupported interaction type {other}"
        ))),
    };
    match result {
        Ok(v) => (StatusCode::OK, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
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

/// A message only the caller sees; mentions never ping anyone.
fn ephemeral(content: &str) -> Value {
    json!({"type": 4, "data": {"content": content, "flags": 64, "allowed_mentions": {"parse": []}}})
}

fn public(content: &str) -> Value {
    json!({"type": 4, "data": {"content": content, "allowed_mentions": {"parse": []}}})
}

/// Replaces the message a button was on (and removes its buttons).
fn update(content: &str) -> Value {
    json!({"type": 7, "data": {"content": content, "components": [], "allowed_mentions": {"parse": []}}})
}

fn environment(s: &AppState, cmd: &ChatCommand) -> Result<Option<String>, ApiError> {
    match cmd.app() {
        Some(app) => Ok(Some(ops::manifest(s, app)?.spec.environment)),
        None => Ok(None),
    }
}

async fn command(s: &AppState, hook: &DiscordHook, i: &Interaction) -> Result<Value, ApiError> {
    let (who, actor) = caller(i);
    let data = i
        .data
        .as_ref()
        .ok_or_else(|| ApiError::BadRequest("a command without data".into()))?;
    let name = data.name.clone().unwrap_or_default();
    let options: Vec<(String, String)> = data
        .options
        .iter()
        .map(|o| {
            let v = match &o.value {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            (o.name.clone(), v)
        })
        .collect();
    let cmd = match ChatCommand::parse(&name, &options) {
        Ok(c) => c,
        Err(e) => return Ok(ephemeral(&e)),
    };
    let target = cmd.app().unwrap_or("*").to_owned();
    let env = match environment(s, &cmd) {
        Ok(e) => e,
        Err(ApiError::NotFound(m)) => {
            ops::audit(s, &actor, cmd.name(), &target, "rejected", Some(m.clone())).await?;
            return Ok(ephemeral(&m));
        }
        Err(e) => return Err(e),
    };
    match chatops::decide(&cmd, env.as_deref(), &who, &hook.permissions) {
        Decision::Deny(reason) => deny(s, &actor, &cmd, &target, reason).await,
        Decision::Confirm => {
            let now = chrono::Utc::now().timestamp();
            let Some(id) = chatops::confirm_id(&cmd, now) else {
                return Ok(ephemeral(
                    "that ref is too long to confirm with a button; deploy it with `gantry deploy`",
                ));
            };
            ops::audit(s, &actor, cmd.name(), &target, "confirmation asked", None).await?;
            let what = match &cmd {
                ChatCommand::Deploy { app, git_ref } => format!(
                    "Deploy `{app}` ({}) to **production**?",
                    git_ref.as_deref().unwrap_or("its branch")
                ),
                ChatCommand::Rollback { app, to } => format!(
                    "Roll `{app}` back in **production** to {}? Automatic deploys will pause.",
                    to.map_or("the previous release".to_owned(), |t| format!(
                        "deployment #{t}"
                    ))
                ),
                _ => unreachable!("only deploys and rollbacks are confirmed"),
            };
            Ok(json!({"type": 4, "data": {
                "content": format!("{what} (expires in {} minutes)", chatops::CONFIRM_SECONDS / 60),
                "flags": 64,
                "allowed_mentions": {"parse": []},
                "components": [{"type": 1, "components": [
                    {"type": 2, "style": 4, "label": "Confirm", "custom_id": id},
                    {"type": 2, "style": 2, "label": "Cancel", "custom_id": chatops::CANCEL_ID}
                ]}]
            }}))
        }
        Decision::Allow => run(s, hook, &cmd, &actor, &i.token, false).await,
    }
}

async fn component(s: &AppState, hook: &DiscordHook, i: &Interaction) -> Result<Value, ApiError> {
    let (who, actor) = caller(i);
    let id = i
        .data
        .as_ref()
        .and_then(|d| d.custom_id.clone())
        .unwrap_or_default();
    if id == chatops::CANCEL_ID {
        ops::audit(s, &actor, "confirm", "*", "cancelled", None).await?;
        return Ok(update("Cancelled. Nothing was changed."));
    }
    let cmd = match chatops::parse_confirm(&id, chrono::Utc::now().timestamp()) {
        Ok(c) => c,
        Err(e) => return Ok(update(&e)),
    };
    let target = cmd.app().unwrap_or("*").to_owned();
    let env = environment(s, &cmd)?;
    // The clicker must hold the permission too (anyone in the channel can click).
    match chatops::decide(&cmd, env.as_deref(), &who, &hook.permissions) {
        Decision::Deny(reason) => deny(s, &actor, &cmd, &target, reason).await,
        Decision::Allow | Decision::Confirm => run(s, hook, &cmd, &actor, &i.token, true).await,
    }
}

/// Refuses a command (ephemerally) and audits the refusal.
async fn deny(
    s: &AppState,
    actor: &str,
    cmd: &ChatCommand,
    target: &str,
    reason: String,
) -> Result<Value, ApiError> {
    ops::audit(s, actor, cmd.name(), target, "denied", Some(reason.clone())).await?;
    Ok(ephemeral(&format!("⛔ {reason}. Nothing was changed.")))
}

/// Carries out an authorised command; `from_button` answers by updating the button's message.
async fn run(
    s: &AppState,
    hook: &DiscordHook,
    cmd: &ChatCommand,
    actor: &str,
    token: &str,
    from_button: bool,
) -> Result<Value, ApiError> {
    let reply = |text: String| {
        if from_button {
            update(&text)
        } else {
            public(&text)
        }
    };
    let outcome = match cmd {
        ChatCommand::Deploy { app, git_ref } => {
            ops::deploy(s, app, git_ref.clone(), None, Trigger::Discord, actor)
                .await
                .map(|q| format!("🚀 Deployment #{} of `{app}` ({}) queued by {actor}.", q.id, q.git_ref))
        }
        ChatCommand::Rollback { app, to } => ops::rollback(s, app, *to, actor).await.map(|r| {
            format!(
                "⏪ Rolling `{app}` back to deployment #{} as #{}; automatic deploys are paused until `/resume {app}`.",
                r.restores, r.id
            )
        }),
        ChatCommand::Pause { app } => ops::pause(s, app, actor)
            .await
            .map(|()| format!("⏸️ `{app}` is paused: pushes will not deploy it until `/resume {app}`.")),
        ChatCommand::Resume { app } => ops::resume(s, app, actor).await.map(|r| {
            if r {
                format!("▶️ `{app}` resumed: pushes deploy it again.")
            } else {
                format!("`{app}` was not paused.")
            }
        }),
        ChatCommand::Status { app } => {
            let text = status(s, app.as_deref()).await?;
            ops::audit(s, actor, "status", app.as_deref().unwrap_or("*"), "answered", None).await?;
            return Ok(ephemeral(&text));
        }
        ChatCommand::History { app } => {
            let text = history(s, app).await?;
            ops::audit(s, actor, "history", app, "answered", None).await?;
            return Ok(ephemeral(&text));
        }
        ChatCommand::Diff { app } => return diff(s, hook, app, actor, token).await,
    };
    match outcome {
        Ok(text) => Ok(reply(text)),
        // Not-found and bad requests are the caller's to fix: say so, audit the refusal.
        Err(ApiError::NotFound(m)) | Err(ApiError::BadRequest(m)) => {
            ops::audit(
                s,
                actor,
                cmd.name(),
                cmd.app().unwrap_or("*"),
                "rejected",
                Some(m.clone()),
            )
            .await?;
            Ok(if from_button {
                update(&m)
            } else {
                ephemeral(&m)
            })
        }
        Err(e) => Err(e),
    }
}

async fn status(s: &AppState, only: Option<&str>) -> Result<String, ApiError> {
    let apps: Vec<(String, String)> = {
        let m = s.manifests.read().expect("manifests lock poisoned");
        m.apps
            .iter()
            .map(|a| {
                (
                    a.manifest.metadata.name.clone(),
                    a.manifest.spec.environment.clone(),
                )
            })
            .filter(|(n, _)| only.is_none_or(|o| o == n))
            .collect()
    };
    if apps.is_empty() {
        return Ok(match only {
            Some(a) => format!("no app named `{a}` in the manifests"),
            None => "no apps in the manifests".into(),
        });
    }
    let paused = s.store.paused().await?;
    let mut lines = Vec::new();
    for (app, env) in apps {
        let last = s.store.deployments(Some(&app), 1).await?.pop();
        let mut line = match last {
            Some(d) => format!(
                "**{app}** ({env}): #{} {} `{}`",
                d.id,
                d.state,
                d.sha.as_deref().map_or("-", |s| &s[..s.len().min(7)])
            ),
            None => format!("**{app}** ({env}): never deployed"),
        };
        if let Some(p) = paused.iter().find(|p| p.app == app) {
            line.push_str(&format!(" — paused: {}", p.reason));
        }
        lines.push(line);
    }
    Ok(lines.join("\n"))
}

async fn history(s: &AppState, app: &str) -> Result<String, ApiError> {
    ops::manifest(s, app)?;
    let list = s.store.deployments(Some(app), 10).await?;
    if list.is_empty() {
        return Ok(format!("`{app}` has no deployments yet"));
    }
    Ok(list
        .iter()
        .map(|d| {
            format!(
                "#{} {} `{}` {} by {} ({})",
                d.id,
                d.state,
                d.sha.as_deref().map_or("-", |s| &s[..s.len().min(7)]),
                d.git_ref,
                d.actor,
                d.created_at.format("%Y-%m-%d %H:%M UTC")
            )
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

/// Answers at once with a deferred response; the diff follows as an edit of it.
async fn diff(
    s: &AppState,
    hook: &DiscordHook,
    app: &str,
    actor: &str,
    token: &str,
) -> Result<Value, ApiError> {
    let manifest = match ops::manifest(s, app) {
        Ok(m) => m,
        Err(ApiError::NotFound(m)) => return Ok(ephemeral(&m)),
        Err(e) => return Err(e),
    };
    let (Some(replies), Some(ecs)) = (hook.replies.clone(), hook.ecs.clone()) else {
        return Ok(ephemeral(
            "/diff needs a bot token (GANTRY_DISCORD_BOT_TOKEN) and AWS access on this Gantry",
        ));
    };
    ops::audit(s, actor, "diff", app, "answered", None).await?;
    let token = token.to_owned();
    let app = app.to_owned();
    tokio::spawn(async move {
        let text =
            match crate::services::diff::diff(&manifest.spec, &Default::default(), ecs.as_ref())
                .await
            {
                Ok(d) if d.is_empty() => format!("`{app}` declares no ECS services"),
                Ok(d) => {
                    let clipped: String = d.chars().take(1900).collect();
                    format!("```diff\n{clipped}\n```")
                }
                Err(e) => format!("cannot diff `{app}`: {e}"),
            };
        if let Err(e) = replies.edit_original(&token, &text).await {
            tracing::warn!(app = %app, error = %e, "cannot send the /diff follow-up");
        }
    });
    Ok(json!({"type": 5, "data": {"flags": 64}}))
}
