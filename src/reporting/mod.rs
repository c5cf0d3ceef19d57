//! Reporters observe deployment transitions and tell the outside world; they never drive the
//! pipeline. The engine broadcasts `DeploymentEvent`s; each reporter runs as its own task.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::domain::DeploymentEvent;

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

/// Publishes every event it receives until the engine's sender is gone. A failed publish is
/// logged and skipped: reporting never holds a deployment up.
pub async fn run(
    mut events: broadcast::Receiver<DeploymentEvent>,
    publisher: Arc<dyn EventPublisher>,
) {
    loop {
        match events.recv().await {
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
