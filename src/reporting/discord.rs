//! The Discord reporter: one message per deployment, posted when it starts and edited in
//! place as it progresses. The message id is recorded in the store before anything else
//! happens, so a retried step, a restart or a resumed deployment edits that message and never
//! posts a second one; an edit is skipped when the rendered embed did not change.

use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{PublishError, Reporter};
use crate::domain::Deployment;
use crate::plan::notify::deployment_embed;
use crate::ports::{Chat, ChatTarget};
use crate::secret::Secret;
use crate::store::Store;

const STATE_KEY: &str = "discord";

/// Reads an environment variable (injected, so tests need not touch the process's).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub struct DiscordReporter {
    chat: Arc<dyn Chat>,
    store: Arc<dyn Store>,
    env: EnvLookup,
}

impl DiscordReporter {
    /// `env` reads the variables that `notifications.discord.webhookEnv` names.
    pub fn new(chat: Arc<dyn Chat>, store: Arc<dyn Store>, env: EnvLookup) -> Self {
        Self { chat, store, env }
    }

    fn target(&self, d: &Deployment) -> Result<Option<ChatTarget>, PublishError> {
        let Some(t) = &d.spec.notifications.discord else {
            return Ok(None);
        };
        if let Some(var) = &t.webhook_env {
            let url = (self.env)(var)
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
    async fn report(&self, d: &Deployment) -> Result<(), PublishError> {
        let Some(target) = self.target(d)? else {
            return Ok(());
        };
        let embed = deployment_embed(d, &d.spec.source.repo);
        let hash = hex::encode(&Sha256::digest(serde_json::to_vec(&embed).expect("JSON"))[..8]);
        let recorded = self
            .store
            .reporter_state(d.id, STATE_KEY)
            .await
            .map_err(store_err)?;
        match recorded.as_deref().and_then(|v| v.split_once(' ')) {
            Some((_, h)) if h == hash => Ok(()),
            Some((id, _)) => {
                let id: u64 = id.parse().map_err(|_| PublishError {
                    target: "discord",
                    message: format!("recorded message id `{id}` is not a number"),
                })?;
                self.chat.edit(&target, id, &embed).await?;
                self.store
                    .set_reporter_state(d.id, STATE_KEY, &format!("{id} {hash}"))
                    .await
                    .map_err(store_err)
            }
            None => {
                let id = self.chat.post(&target, &embed).await?;
                self.store
                    .set_reporter_state(d.id, STATE_KEY, &format!("{id} {hash}"))
                    .await
                    .map_err(store_err)
            }
        }
    }
}
