//! Drift: where a live service or site no longer matches the release Gantry last put in
//! place (someone changed it by hand, or something else did), as the drift worker records it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::DeploymentId;

/// One way a live resource differs from its release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriftItem {
    /// `service NAME` or `site NAME`.
    pub resource: String,
    /// What differs: an ECS field name, `taskDefinition`, `release`, `objects`.
    pub field: String,
    pub live: String,
    pub released: String,
    /// More lines that show the difference (a task definition diff, changed keys).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// An app's drift as recorded: what differs from which release, since when, and how healing
/// went.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub app: String,
    /// The deployment whose release the live state was compared with.
    pub release: DeploymentId,
    /// A hash of `diff`: the same drift seen again is not new.
    pub fingerprint: String,
    /// The readable diff (`plan::drift::render`).
    pub diff: String,
    pub since: DateTime<Utc>,
    /// Self-heal deployments started for this drift so far.
    pub heal_attempts: u32,
    /// No self-heal before this time (backoff after a heal that did not clear it).
    pub next_heal_at: Option<DateTime<Utc>>,
    /// The last self-heal deployment started.
    pub heal_deployment: Option<DeploymentId>,
}

/// What recording a check's result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftChange {
    /// Drift where there was none (or a different one): reported.
    Detected,
    /// The same drift as recorded: nothing to say.
    Unchanged,
    /// The recorded drift is gone: reported.
    Cleared,
    /// No drift, none recorded.
    None,
}

/// A drift notice owed to the app's chat: detected (with the diff) or cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftNotice {
    pub seq: i64,
    pub app: String,
    /// `detected`, `cleared` or `healing`.
    pub kind: String,
    pub diff: String,
    pub at: DateTime<Utc>,
}
