//! `EventPublisher` over Amazon EventBridge: one PutEvents entry per deployment transition.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::domain::{DeploymentEvent, EVENT_DETAIL_TYPE, EVENT_SOURCE};
use crate::reporting::{EventPublisher, PublishError};

pub struct EventBridge {
    client: Client,
    bus: String,
}

impl EventBridge {
    pub fn new(config: &aws_config::SdkConfig, bus: &str) -> Self {
        Self {
            client: Client::new(config),
            bus: bus.to_owned(),
        }
    }
}

#[async_trait]
impl EventPublisher for EventBridge {
    async fn publish(&self, event: &DeploymentEvent) -> Result<(), PublishError> {
        let err = |message: String| PublishError {
            target: "EventBridge",
            message,
        };
        let detail = serde_json::to_string(event).map_err(|e| err(e.to_string()))?;
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(EVENT_DETAIL_TYPE)
            .detail(detail)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| err(DisplayErrorContext(e).to_string()))?;
        if out.failed_entry_count() > 0 {
            let first = out
                .entries()
                .iter()
                .find_map(|e| e.error_message())
                .unwrap_or("unknown error");
            return Err(err(format!("the event was rejected: {first}")));
        }
        Ok(())
    }
}
