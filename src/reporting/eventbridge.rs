//! The bus reporter: publishes a deployment's events (`plan::notify::bus_events`, derived from
//! its recorded state) to an [`EventPublisher`] in order, recording after each how many were
//! published. A crash between a publish and its record publishes that one event again
//! (at-least-once; consumers key on `deploymentId` + `state` + `step`), never skips one.

use std::sync::Arc;

use async_trait::async_trait;

use super::{PublishError, Reported, Reporter};
use crate::domain::Deployment;
use crate::plan::notify::bus_events;
use crate::ports::EventPublisher;
use crate::store::Store;

const STATE_KEY: &str = "eventbridge";

pub struct BusReporter {
    publisher: Arc<dyn EventPublisher>,
    store: Arc<dyn Store>,
}

impl BusReporter {
    pub fn new(publisher: Arc<dyn EventPublisher>, store: Arc<dyn Store>) -> Self {
        Self { publisher, store }
    }
}

fn store_err(e: crate::store::StoreError) -> PublishError {
    PublishError {
        target: "EventBridge",
        message: e.to_string(),
    }
}

#[async_trait]
impl Reporter for BusReporter {
    fn name(&self) -> &'static str {
        "eventbridge"
    }

    #[tracing::instrument(skip_all, fields(deployment.id = d.id, app = %d.app))]
    async fn report(&self, d: &Deployment) -> Result<Reported, PublishError> {
        let events = bus_events(d);
        let published: usize = self
            .store
            .reporter_state(d.id, STATE_KEY)
            .await
            .map_err(store_err)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for (i, event) in events.iter().enumerate().skip(published) {
            self.publisher.publish(event).await?;
            self.store
                .set_reporter_state(d.id, STATE_KEY, &(i + 1).to_string())
                .await
                .map_err(store_err)?;
        }
        Ok(Reported::Done)
    }
}
