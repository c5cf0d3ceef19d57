//! What reporters need from Discord and GitHub; `adapters::discord` and `adapters::github`
//! implement these with serenity and octocrab.

use async_trait::async_trait;

use super::PublishError;
use crate::plan::notify::Embed;
use crate::secret::Secret;

/// Where a deployment's Discord message goes.
#[derive(Debug, Clone)]
pub enum ChatTarget {
    /// A channel id, posted to with the bot token.
    Channel(u64),
    /// A channel webhook URL (a secret: it carries the webhook's token).
    Webhook(Secret),
}

#[async_trait]
pub trait Chat: Send + Sync {
    /// Posts a new message; returns its id.
    async fn post(&self, target: &ChatTarget, embed: &Embed) -> Result<u64, PublishError>;
    /// Replaces the message's embed.
    async fn edit(
        &self,
        target: &ChatTarget,
        message: u64,
        embed: &Embed,
    ) -> Result<(), PublishError>;
}

/// A commit status as GitHub takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitStatus {
    /// `pending`, `success`, `failure` or `error`.
    pub state: String,
    pub context: String,
    pub description: String,
    pub target_url: Option<String>,
}

#[async_trait]
pub trait Forge: Send + Sync {
    async fn commit_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), PublishError>;
    /// Creates a GitHub deployment of `sha` to `environment`; returns its id.
    async fn create_deployment(
        &self,
        repo: &str,
        sha: &str,
        environment: &str,
        description: &str,
    ) -> Result<u64, PublishError>;
    async fn deployment_status(
        &self,
        repo: &str,
        deployment: u64,
        state: &str,
        description: &str,
        log_url: Option<&str>,
    ) -> Result<(), PublishError>;
}

/// Answers to interactions after the fact (deferred responses).
#[async_trait]
pub trait InteractionReplies: Send + Sync {
    /// Replaces the original response of the interaction with `token`.
    async fn edit_original(&self, token: &str, content: &str) -> Result<(), PublishError>;
}
