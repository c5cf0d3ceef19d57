//! Deployment lifecycle events: what reporters observe, and what Gantry publishes to
//! EventBridge (source `gantry`, detail-type `Gantry Deployment State Change`). The detail
//! schema is documented in docs/events.md.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Deployment, DeploymentState, StepKind, StepState, Trigger};

pub const EVENT_SOURCE: &str = "gantry";
pub const EVENT_DETAIL_TYPE: &str = "Gantry Deployment State Change";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentEvent {
    pub deployment_id: i64,
    pub app: String,
    pub environment: String,
    pub sha: Option<String>,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub trigger: Trigger,
    pub actor: String,
    /// The deployment's state after this transition.
    pub state: DeploymentState,
    /// The step that just changed, when the transition is a step's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepChange {
    pub kind: StepKind,
    pub state: StepState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl DeploymentEvent {
    pub fn of(
        dep: &Deployment,
        state: DeploymentState,
        step: Option<StepChange>,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            deployment_id: dep.id,
            app: dep.app.clone(),
            environment: dep.spec.environment.clone(),
            sha: dep.sha.clone(),
            git_ref: dep.git_ref.clone(),
            trigger: dep.trigger,
            actor: dep.actor.clone(),
            state,
            step,
            reason,
            at,
        }
    }
}
