//! What reporters need from the outside: an event bus (EventBridge), chat (Discord), a forge
//! (GitHub), and checking Discord's interaction signatures. `adapters::eventbridge`,
//! `adapters::discord` and `adapters::github` implement these.

use async_trait::async_trait;

use crate::domain::DeploymentEvent;
use crate::plan::notify::Embed;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
#[error("{target}: {message}")]
pub struct PublishError {
    pub target: &'static str,
    pub message: String,
}

/// Somewhere deployment events go (an EventBridge bus, later Discord and GitHub).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    async fn publish(&self, event: &DeploymentEvent) -> Result<(), PublishError>;
}

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
    /// Posts a new message; returns its id. `nonce` (at most 25 characters) is unique to the
    /// message: posted again within minutes (a crash between the post and recording its id),
    /// Discord returns the message it created then instead of posting a second one. Channel
    /// messages only: webhook executes have no nonce.
    async fn post(
        &self,
        target: &ChatTarget,
        embed: &Embed,
        nonce: &str,
    ) -> Result<u64, PublishError>;
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
    /// The paths pull request `number` changes; `None` when GitHub lists more than it
    /// returns (3,000 files).
    async fn pull_request_files(
        &self,
        repo: &str,
        number: u64,
    ) -> Result<Option<Vec<String>>, PublishError>;
    /// The open pull request from `head` (a branch of `repo`) into `base`, opened with
    /// `title` and `body` when there is none. Returns its number.
    async fn open_pull_request(
        &self,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<u64, PublishError>;
    /// Puts `body` on pull request (issue) `number` as the one comment holding `marker`:
    /// edits that comment when there is one, else creates it. Returns the comment's id.
    async fn upsert_comment(
        &self,
        repo: &str,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<u64, PublishError>;
}

/// Answers to interactions after the fact (deferred responses).
#[async_trait]
pub trait InteractionReplies: Send + Sync {
    /// Replaces the original response of the interaction with `token`.
    async fn edit_original(&self, token: &str, content: &str) -> Result<(), PublishError>;
}

/// Checks an interaction's signature (Ed25519 over timestamp + body, against the
/// application's public key).
pub trait VerifyInteraction: Send + Sync {
    fn verify(&self, signature: &str, timestamp: &str, body: &[u8]) -> bool;
}
