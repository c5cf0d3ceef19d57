//! The Discord reporter: one message per deployment, posted when it starts and edited in
//! place as it progresses. The message id is recorded in the store before anything else
//! happens, so a retried step, a restart or a resumed deployment edits that message and never
//! posts a second one; an edit is skipped when the rendered embed did not change, and while the
//! deployment runs edits are spaced at least [`EDIT_INTERVAL`] apart (the final state is edited
//! at once).

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{PublishError, Reported, Reporter};
use crate::domain::{Deployment, DeploymentState};
use crate::plan::notify::{deployment_embed, edit_due};
use crate::ports::{Chat, ChatTarget};
use crate::secret::Secret;
use crate::store::Store;

const STATE_KEY: &str = "discord";
/// Shortest gap between two edits of a running deployment's message.
pub const EDIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);

/// Reads an environment variable (injected, so tests need not touch the process's).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct DiscordReporter {
    chat: Arc<dyn Chat>,
    store: Arc<dyn Store>,
    env: EnvLookup,
    edit_interval: std::time::Duration,
}

impl DiscordReporter {
    /// `env` reads the variables that `notifications.discord.webhookEnv` names.
    pub fn new(chat: Arc<dyn Chat>, store: Arc<dyn Store>, env: EnvLookup) -> Self {
        Self {
            chat,
            store,
            env,
            edit_interval: EDIT_INTERVAL,
        }
    }

    pub fn with_edit_interval(mut self, interval: std::time::Duration) -> Self {
        self.edit_interval = interval;
        self
    }
}

/// Where an app's chat reports go (`notifications.discord`): a webhook whose URL the named
/// variable holds, or a channel; `None` when the app asks for none.
pub fn target_of(
    spec: &crate::domain::AppSpec,
    env: &EnvLookup,
) -> Result<Option<ChatTarget>, PublishError> {
    let Some(t) = &spec.notifications.discord else {
        return Ok(None);
    };
    if let Some(var) = &t.webhook_env {
        let url = env(var)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| PublishError {
                target: "discord",
                message: format!(
                    "notifications.discord.webhookEnv names `{var}`, which is not set"
                ),
            })?;
        return Ok(Some(ChatTarget::Webhook(Secret::new(url))));
    }
    match &t.channel {
        Some(c) => c
            .parse()
            .map(|id| Some(ChatTarget::Channel(id)))
            .map_err(|_| PublishError {
                target: "discord",
                message: format!("notifications.discord.channel `{c}` is not a channel id"),
            }),
        None => Ok(None),
    }
}

fn store_err(e: crate::store::StoreError) -> PublishError {
    PublishError {
        target: "discord",
        message: e.to_string(),
    }
}

#[async_trait]
impl Reporter for DiscordReporter {
    fn name(&self) -> &'static str {
        "discord"
    }

    #[tracing::instrument(skip_all, fields(deployment.id = d.id, app = %d.app))]
    async fn report(&self, d: &Deployment) -> Result<Reported, PublishError> {
        let Some(target) = target_of(&d.spec, &self.env)? else {
            return Ok(Reported::Done);
        };
        let embed = deployment_embed(d, &d.spec.source.repo);
        let hash = hex::encode(&Sha256::digest(serde_json::to_vec(&embed).expect("JSON"))[..8]);
        let recorded = self
            .store
            .reporter_state(d.id, STATE_KEY)
            .await
            .map_err(store_err)?;
        let now = chrono::Utc::now();
        let id = match recorded.as_deref().map(MessageState::parse).transpose()? {
            Some(m) if m.hash == hash => return Ok(Reported::Done),
            Some(m) => {
                if let Some(at) = edit_due(d, m.edited, now, self.edit_interval) {
                    return Ok(Reported::NotBefore(at));
                }
                self.chat.edit(&target, m.id, &embed).await?;
                m.id
            }
            // A deployment that never started (queued, then superseded) gets no message; one
            // that failed without starting (a refused manifest revision) does.
            // One waiting for approval or its window does, so people see it and can act.
            None if d.started_at.is_none()
                && !matches!(
                    d.state,
                    DeploymentState::Failed
                        | DeploymentState::Waiting
                        | DeploymentState::AwaitingApproval
                ) =>
            {
                return Ok(Reported::Done)
            }
            None => self.chat.post(&target, &embed, &nonce(d)).await?,
        };
        let state = format!("{id} {hash} {}", now.timestamp_millis());
        self.store
            .set_reporter_state(d.id, STATE_KEY, &state)
            .await
            .map_err(store_err)?;
        Ok(Reported::Done)
    }
}

/// The deployment's message nonce: unique to this deployment of this store (its app, id and
/// creation time), 20 hex digits (Discord allows 25).
fn nonce(d: &Deployment) -> String {
    let key = format!("{}/{}/{}", d.app, d.id, d.created_at.timestamp_millis());
    hex::encode(&Sha256::digest(key.as_bytes())[..10])
}

/// What the store holds for a deployment's message: `ID HASH [EDITED_MS]`.
struct MessageState<'a> {
    id: u64,
    hash: &'a str,
    edited: Option<chrono::DateTime<chrono::Utc>>,
}

impl<'a> MessageState<'a> {
    fn parse(v: &'a str) -> Result<Self, PublishError> {
        let mut parts = v.split(' ');
        let bad = || PublishError {
            target: "discord",
            message: format!("recorded message state `{v}` is not `ID HASH [EDITED]`"),
        };
        let id = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let hash = parts.next().ok_or_else(bad)?;
        let edited = parts
            .next()
            .and_then(|ms| ms.parse().ok())
            .and_then(|ms| chrono::TimeZone::timestamp_millis_opt(&chrono::Utc, ms).single());
        Ok(Self { id, hash, edited })
    }
}
