//! Deployments, their steps and the releases they record.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{AppSpec, PushEvent};

pub type DeploymentId = i64;

/// Where a deployment's life stands. `Queued -> Running -> {Succeeded, Failed}`, or
/// `Queued -> Superseded` when a newer one for the same app arrives first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    Queued,
    /// Queued, but outside its deploy windows: starts when one opens (or on an override).
    Waiting,
    /// Queued, but waiting for the approvals its environment requires.
    AwaitingApproval,
    Running,
    Succeeded,
    Failed,
    Superseded,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Waiting => "waiting",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Superseded => "superseded",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Superseded)
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeploymentState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "queued" => Self::Queued,
            "waiting" => Self::Waiting,
            "awaiting_approval" => Self::AwaitingApproval,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "superseded" => Self::Superseded,
            other => return Err(format!("unknown deployment state `{other}`")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for StepState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            other => return Err(format!("unknown step state `{other}`")),
        })
    }
}

/// The kinds of pipeline step, in the order a deployment runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// The live account has what the manifests name (roles, secrets, target groups, ...).
    Verify,
    FetchSource,
    Build,
    PublishImages,
    RollServices,
    SyncSites,
    /// Scheduled tasks (EventBridge rules running an ECS task) pointed at this release.
    ScheduleJobs,
    Report,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::FetchSource => "fetch_source",
            Self::Build => "build",
            Self::PublishImages => "publish_images",
            Self::RollServices => "roll_services",
            Self::SyncSites => "sync_sites",
            Self::ScheduleJobs => "schedule_jobs",
            Self::Report => "report",
        }
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StepKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "verify" => Self::Verify,
            "fetch_source" => Self::FetchSource,
            "build" => Self::Build,
            "publish_images" => Self::PublishImages,
            "roll_services" => Self::RollServices,
            "sync_sites" => Self::SyncSites,
            "schedule_jobs" => Self::ScheduleJobs,
            "report" => Self::Report,
            other => return Err(format!("unknown step `{other}`")),
        })
    }
}

/// What started a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Push,
    /// A moved ref found by polling the remote (a webhook that never came).
    Poll,
    Api,
    Discord,
    Rollback,
    /// A new revision of the manifests changed the app's desired state (or was refused).
    Manifests,
    /// Another environment's release, promoted here.
    Promotion,
    /// The last release redeployed because the live state drifted from it (`selfHeal`).
    #[serde(rename = "self-heal")]
    SelfHeal,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Push => "push",
            Self::Poll => "poll",
            Self::Api => "api",
            Self::Discord => "discord",
            Self::Rollback => "rollback",
            Self::Manifests => "manifests",
            Self::Promotion => "promotion",
            Self::SelfHeal => "self-heal",
        }
    }
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "push" => Self::Push,
            "poll" => Self::Poll,
            "api" => Self::Api,
            "discord" => Self::Discord,
            "rollback" => Self::Rollback,
            "manifests" => Self::Manifests,
            "promotion" => Self::Promotion,
            "self-heal" => Self::SelfHeal,
            other => return Err(format!("unknown trigger `{other}`")),
        })
    }
}

/// A request to deploy one app at one revision, before the store gives it an id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDeployment {
    pub app: String,
    /// Exact commit when known (pushes); `None` means resolve `git_ref` at fetch time.
    pub sha: Option<String>,
    pub git_ref: String,
    pub trigger: Trigger,
    pub actor: String,
    pub delivery_id: Option<String>,
    /// For a rollback: the deployment whose release this one reproduces.
    pub restore_from: Option<DeploymentId>,
    /// For a deployment of a manifest change alone: the deployment whose release's images it
    /// runs (nothing is built or pushed).
    pub images_from: Option<DeploymentId>,
    /// The app's spec as it was when the deployment was requested: a resumed or re-read
    /// deployment always runs what was asked for, whatever the manifests say later.
    pub spec: AppSpec,
    /// Which revision of the manifests `spec` comes from.
    pub manifests: ManifestRevision,
}

/// Where an app's manifest came from: a local directory, or a commit of a git source (a
/// config repository, or a directory of the app's own repository).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRevision {
    /// The source's repository (`owner/name`); `None` for a local directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    /// The commit of that repository the manifest was read at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
    /// The manifest's file inside that repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl ManifestRevision {
    pub fn git(repo: &str, sha: &str) -> Self {
        Self {
            repo: Some(repo.to_owned()),
            sha: Some(sha.to_owned()),
            file: None,
        }
    }
}

impl fmt::Display for ManifestRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.repo, &self.sha) {
            (Some(repo), Some(sha)) => write!(f, "{repo}@{}", short_sha(sha)),
            _ => f.write_str("local directory"),
        }
    }
}

/// A manifest revision Gantry has seen for one of its git sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRevision {
    /// The source's name in the configuration.
    pub source: String,
    pub sha: String,
    pub state: RevisionState,
    /// The push that brought it (`None` when Gantry read a branch head itself at start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushEvent>,
    /// How the push came (webhook or poll).
    pub trigger: Trigger,
    pub delivery_id: Option<String>,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `Pending -> {Applied, Refused}`; the newest applied revision of a source is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevisionState {
    Pending,
    Applied,
    Refused,
}

impl RevisionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Applied => "applied",
            Self::Refused => "refused",
        }
    }
}

impl FromStr for RevisionState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => Self::Pending,
            "applied" => Self::Applied,
            "refused" => Self::Refused,
            other => return Err(format!("unknown revision state `{other}`")),
        })
    }
}

/// The 7-character form of a commit sha people read (the whole string when shorter).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// A deployment to create together with the steps it will run.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueue {
    pub deployment: NewDeployment,
    pub steps: Vec<StepKind>,
    /// Recorded as failed at once with this reason, running nothing (a manifest revision
    /// refused: the app's history and reports show why its change did not deploy).
    pub refused: Option<String>,
}

/// What Gantry did with a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Intake {
    /// Deployments were queued.
    Queued,
    /// Nothing to do (the reason is recorded).
    Ignored,
    /// GitHub's `ping` after a webhook is created.
    Ping,
}

impl Intake {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Ignored => "ignored",
            Self::Ping => "ping",
        }
    }
}

impl std::str::FromStr for Intake {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "queued" => Ok(Self::Queued),
            "ignored" => Ok(Self::Ignored),
            "ping" => Ok(Self::Ping),
            other => Err(format!("unknown delivery outcome `{other}`")),
        }
    }
}

/// A deployment as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub app: String,
    pub sha: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub trigger: Trigger,
    pub actor: String,
    pub delivery_id: Option<String>,
    pub restore_from: Option<DeploymentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images_from: Option<DeploymentId>,
    pub manifests: ManifestRevision,
    pub state: DeploymentState,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Who started it outside its deploy windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_override: Option<String>,
    /// When its commit was made (the fetch step reads it), for lead time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub committed_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub spec: AppSpec,
    pub steps: Vec<Step>,
}

/// An approval (or rejection) of a deployment by someone its environment's `approvals.from`
/// names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    pub actor: String,
    pub approve: bool,
    /// Whether it counts towards `required`: the change's author's own approval does not.
    pub counted: bool,
    pub at: DateTime<Utc>,
}

/// One step of a deployment as recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub index: u32,
    pub kind: StepKind,
    pub state: StepState,
    pub attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    /// While a transient failure waits to be retried: when the next attempt starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// What exactly a successful deployment put in place, so it can be reproduced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub app: String,
    pub deployment_id: DeploymentId,
    pub sha: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// Image name -> `repository@sha256:...`.
    #[serde(default)]
    pub images: std::collections::BTreeMap<String, String>,
    /// Site name -> the site release put in place.
    #[serde(default)]
    pub sites: std::collections::BTreeMap<String, super::SiteReleaseId>,
    /// ECS service name -> the task definition ARN it runs.
    #[serde(default)]
    pub services: std::collections::BTreeMap<String, String>,
    /// Scheduled job name -> the task definition ARN its rule runs.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub jobs: std::collections::BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
}

/// An app (an environment) whose automatic deploys are paused or held: pushes, manifest
/// changes, automatic promotion and self-heal leave it alone until it is resumed or released.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Paused {
    pub app: String,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub kind: PauseKind,
}

/// Someone's pause, or the hold a rollback or a promotion of an older release puts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PauseKind {
    Pause,
    Hold,
}

impl PauseKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pause => "pause",
            Self::Hold => "hold",
        }
    }
}

/// An audit record: who did what, when, with what outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: Option<String>,
}
