//! Reporters observe deployment transitions and tell the outside world; they never drive the
//! pipeline. The engine broadcasts `DeploymentEvent`s. [`run`] publishes them as they are
//! (EventBridge); [`observe`] is level-triggered: for each deployment that changed it reads the
//! deployment as recorded and lets each [`Reporter`] (Discord, GitHub) bring the outside world
//! in line with it, so events that arrive together cost one update.

pub mod discord;
pub mod github;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::{Deployment, DeploymentEvent};
use crate::ports::{EventPublisher, PublishError};
use crate::store::Store;

/// Publishes every event it receives until the engine's sender is gone. A failed publish is
/// logged and skipped: reporting never holds a deployment up.
pub async fn run(
    mut events: broadcast::Receiver<DeploymentEvent>,
    publisher: Arc<dyn EventPublisher>,
) {
    loop {
        match events.recv().await {
            // A step starting is shown by the live reporters; the published schema carries
            // deployment starts, finished steps and verdicts (docs/events.md).
            Ok(event)
                if event
                    .step
                    .as_ref()
                    .is_some_and(|s| s.state == crate::domain::StepState::Running) => {}
            Ok(event) => {
                if let Err(e) = publisher.publish(&event).await {
                    tracing::warn!(deployment.id = event.deployment_id, app = %event.app, error = %e, "cannot publish deployment event");
                }
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "reporter fell behind; some deployment events were not published"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Something that mirrors a deployment's recorded state somewhere (Discord, GitHub).
#[async_trait]
pub trait Reporter: Send + Sync {
    fn name(&self) -> &'static str;
    /// Brings the outside world in line with `d`; safe to call again with the same state.
    async fn report(&self, d: &Deployment) -> Result<(), PublishError>;
}

/// Runs until the engine's sender is gone: for every deployment an event names (events waiting
/// together are folded into one pass per deployment), reads it from the store and hands it to
/// each reporter. Failures are logged and skipped: reporting never holds a deployment up.
pub async fn observe(
    mut events: broadcast::Receiver<DeploymentEvent>,
    store: Arc<dyn Store>,
    reporters: Vec<Arc<dyn Reporter>>,
) {
    loop {
        let mut ids = match events.recv().await {
            Ok(e) => vec![e.deployment_id],
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "reporters fell behind; catching up from the store");
                match store.deployments(None, 50).await {
                    Ok(list) => list.into_iter().map(|d| d.id).collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read deployments to catch up");
                        continue;
                    }
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut closed = false;
        loop {
            match events.try_recv() {
                Ok(e) => ids.push(e.deployment_id),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(broadcast::error::TryRecvError::Closed) => {
                    closed = true;
                    break;
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
            }
        }
        let mut seen = std::collections::HashSet::new();
        ids.retain(|id| seen.insert(*id));
        for id in ids {
            let d = match store.deployment(id, true).await {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(deployment.id = id, error = %e, "cannot read a deployment to report it");
                    continue;
                }
            };
            for r in &reporters {
                if let Err(e) = r.report(&d).await {
                    tracing::warn!(reporter = r.name(), deployment.id = id, app = %d.app, error = %e, "cannot report deployment");
                }
            }
        }
        if closed {
            return;
        }
    }
}
