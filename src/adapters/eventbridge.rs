//! `EventPublisher` over Amazon EventBridge: one PutEvents entry per deployment transition.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use crate::domain::{DeploymentEvent, EVENT_DETAIL_TYPE, EVENT_SOURCE};
use crate::ports::{EventPublisher, PublishError};

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

/// What `setup` did with one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupStep {
    pub resource: String,
    pub created: bool,
}

/// Creates, once, what routes ECS events to Gantry: a connection sending the API key in
/// `x-gantry-key`, an API destination at `endpoint/hooks/eventbridge`, a rule on `bus` matching
/// ECS deployment and service events, and the rule's target. Existing pieces are left as they
/// are, so running it again changes nothing.
pub async fn setup(
    config: &aws_config::SdkConfig,
    name: &str,
    bus: &str,
    endpoint: &str,
    api_key: &crate::secret::Secret,
    role_arn: Option<&str>,
) -> Result<Vec<SetupStep>, PublishError> {
    use aws_sdk_eventbridge::types::{
        ApiDestinationHttpMethod, ConnectionAuthorizationType,
        CreateConnectionApiKeyAuthRequestParameters, CreateConnectionAuthRequestParameters, Target,
    };
    let client = Client::new(config);
    let err = |op: &str, e: String| PublishError {
        target: "EventBridge",
        message: format!("{op}: {e}"),
    };
    let mut steps = Vec::new();
    let connection = format!("{name}-connection");
    let connection_arn = match client.describe_connection().name(&connection).send().await {
        Ok(c) => {
            steps.push(SetupStep {
                resource: format!("connection {connection}"),
                created: false,
            });
            c.connection_arn().unwrap_or_default().to_owned()
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            let auth = CreateConnectionAuthRequestParameters::builder()
                .api_key_auth_parameters(
                    CreateConnectionApiKeyAuthRequestParameters::builder()
                        .api_key_name("x-gantry-key")
                        .api_key_value(api_key.expose())
                        .build()
                        .map_err(|e| err("CreateConnection", e.to_string()))?,
                )
                .build();
            let out = client
                .create_connection()
                .name(&connection)
                .authorization_type(ConnectionAuthorizationType::ApiKey)
                .auth_parameters(auth)
                .send()
                .await
                .map_err(|e| err("CreateConnection", DisplayErrorContext(e).to_string()))?;
            steps.push(SetupStep {
                resource: format!("connection {connection}"),
                created: true,
            });
            out.connection_arn().unwrap_or_default().to_owned()
        }
        Err(e) => {
            return Err(err(
                "DescribeConnection",
                DisplayErrorContext(e).to_string(),
            ))
        }
    };
    let destination = format!("{name}-ecs-events");
    let invocation = format!("{}/hooks/eventbridge", endpoint.trim_end_matches('/'));
    let destination_arn = match client
        .describe_api_destination()
        .name(&destination)
        .send()
        .await
    {
        Ok(d) => {
            steps.push(SetupStep {
                resource: format!("API destination {destination}"),
                created: false,
            });
            d.api_destination_arn().unwrap_or_default().to_owned()
        }
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            let out = client
                .create_api_destination()
                .name(&destination)
                .connection_arn(&connection_arn)
                .invocation_endpoint(&invocation)
                .http_method(ApiDestinationHttpMethod::Post)
                .send()
                .await
                .map_err(|e| err("CreateApiDestination", DisplayErrorContext(e).to_string()))?;
            steps.push(SetupStep {
                resource: format!("API destination {destination}"),
                created: true,
            });
            out.api_destination_arn().unwrap_or_default().to_owned()
        }
        Err(e) => {
            return Err(err(
                "DescribeApiDestination",
                DisplayErrorContext(e).to_string(),
            ))
        }
    };
    let rule = format!("{name}-ecs-events");
    let exists = client
        .describe_rule()
        .name(&rule)
        .event_bus_name(bus)
        .send()
        .await
        .is_ok();
    if !exists {
        client
            .put_rule()
            .name(&rule)
            .event_bus_name(bus)
            .event_pattern(r#"{"source": ["aws.ecs"], "detail-type": ["ECS Deployment State Change", "ECS Service Action"]}"#)
            .description("ECS deployment events for Gantry")
            .send()
            .await
            .map_err(|e| err("PutRule", DisplayErrorContext(e).to_string()))?;
    }
    steps.push(SetupStep {
        resource: format!("rule {rule}"),
        created: !exists,
    });
    let targets = client
        .list_targets_by_rule()
        .rule(&rule)
        .event_bus_name(bus)
        .send()
        .await
        .map_err(|e| err("ListTargetsByRule", DisplayErrorContext(e).to_string()))?;
    let has_target = targets.targets().iter().any(|t| t.arn() == destination_arn);
    if !has_target {
        let target = Target::builder()
            .id("gantry")
            .arn(&destination_arn)
            .set_role_arn(role_arn.map(str::to_owned))
            .build()
            .map_err(|e| err("PutTargets", e.to_string()))?;
        client
            .put_targets()
            .rule(&rule)
            .event_bus_name(bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| err("PutTargets", DisplayErrorContext(e).to_string()))?;
    }
    steps.push(SetupStep {
        resource: format!("target of rule {rule}"),
        created: !has_target,
    });
    Ok(steps)
}
