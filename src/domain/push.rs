//! The parts of a GitHub `push` webhook payload Gantry acts on.
//!
//! Deserialising into these types is also the payload's validation: a push body missing one of
//! the required fields is malformed.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushEvent {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    pub repository: PushRepository,
    #[serde(default)]
    pub commits: Vec<PushCommit>,
    #[serde(default)]
    pub head_commit: Option<PushCommit>,
    #[serde(default)]
    pub pusher: Option<Pusher>,
    #[serde(default)]
    pub sender: Option<Sender>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushRepository {
    pub full_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushCommit {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub added: Vec<String>,
    #[serde(default)]
    pub removed: Vec<String>,
    #[serde(default)]
    pub modified: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pusher {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    pub login: String,
}

impl PushEvent {
    /// Who pushed: the pusher's name, else the sender's login.
    pub fn actor(&self) -> String {
        self.pusher
            .as_ref()
            .map(|p| p.name.clone())
            .or_else(|| self.sender.as_ref().map(|s| s.login.clone()))
            .unwrap_or_else(|| "unknown".into())
    }

    /// Every path the push's commits touched, if GitHub listed them.
    pub fn changed_paths(&self) -> impl Iterator<Item = &str> {
        self.commits
            .iter()
            .chain(self.head_commit.iter())
            .flat_map(|c| c.added.iter().chain(&c.removed).chain(&c.modified))
            .map(String::as_str)
    }
}

/// The parts of a GitHub `pull_request` webhook payload Gantry acts on (plan previews).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub number: u64,
    pub pull_request: PullRequest,
    pub repository: PushRepository,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRequest {
    pub head: PullRequestRef,
    pub base: PullRequestRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullRequestRef {
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
}

impl PullRequestEvent {
    /// Actions that change what the pull request would merge: plan it again.
    pub fn plans(&self) -> bool {
        matches!(self.action.as_str(), "opened" | "synchronize" | "reopened")
    }
}

/// A plan preview to post for a pull request on a manifest source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewRequest {
    /// The source's name.
    pub source: String,
    pub repo: String,
    pub number: u64,
    /// The pull request's head commit.
    pub sha: String,
}

/// The `source` of a preview of a pull request on app `name`'s own repository (source names
/// cannot hold `:`).
pub fn app_preview_source(name: &str) -> String {
    format!("app:{name}")
}
