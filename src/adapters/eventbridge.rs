//! `EventPublisher` over Amazon EventBridge: one PutEvents entry per deployment transition.

use async_trait::async_trait;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;

use super::aws::{error_chain, transient};
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

/// Scheduled jobs' rules on the default event bus.
pub struct Rules {
    client: Client,
}

impl Rules {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }
}

fn rule_err(operation: &'static str) -> impl Fn(bool, String) -> crate::ports::ScheduleError {
    move |transient, message| crate::ports::ScheduleError {
        operation,
        message,
        transient,
    }
}

#[async_trait]
impl crate::ports::JobScheduler for Rules {
    async fn scheduled(
        &self,
        rule: &str,
    ) -> Result<Option<crate::domain::service::ScheduledTask>, crate::ports::ScheduleError> {
        use aws_sdk_eventbridge::types::{AssignPublicIp, RuleState};
        let described = match self.client.describe_rule().name(rule).send().await {
            Ok(d) => d,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(rule_err("DescribeRule")(transient(&e), error_chain(e))),
        };
        let targets = self
            .client
            .list_targets_by_rule()
            .rule(rule)
            .send()
            .await
            .map_err(|e| rule_err("ListTargetsByRule")(transient(&e), error_chain(e)))?;
        let target = targets
            .targets()
            .iter()
            .find(|t| t.id() == crate::plan::jobs::TARGET_ID);
        let ecs = target.and_then(|t| t.ecs_parameters());
        let vpc = ecs
            .and_then(|p| p.network_configuration())
            .and_then(|n| n.awsvpc_configuration());
        Ok(Some(crate::domain::service::ScheduledTask {
            schedule: described
                .schedule_expression()
                .unwrap_or_default()
                .to_owned(),
            enabled: described.state() == Some(&RuleState::Enabled),
            cluster: target.map(|t| t.arn().to_owned()).unwrap_or_default(),
            task_definition: ecs
                .map(|p| p.task_definition_arn().to_owned())
                .unwrap_or_default(),
            role_arn: target
                .and_then(|t| t.role_arn())
                .unwrap_or_default()
                .to_owned(),
            network: crate::domain::service::Network {
                subnets: vpc.map(|v| v.subnets().to_vec()).unwrap_or_default(),
                security_groups: vpc
                    .map(|v| v.security_groups().to_vec())
                    .unwrap_or_default(),
                assign_public_ip: vpc.and_then(|v| v.assign_public_ip())
                    == Some(&AssignPublicIp::Enabled),
            },
            platform_version: ecs
                .and_then(|p| p.platform_version())
                .unwrap_or("LATEST")
                .to_owned(),
            command: target
                .and_then(|t| t.input())
                .and_then(crate::plan::jobs::parse_input),
        }))
    }

    async fn schedule(
        &self,
        rule: &str,
        description: &str,
        task: &crate::domain::service::ScheduledTask,
    ) -> Result<(), crate::ports::ScheduleError> {
        use aws_sdk_eventbridge::types::{
            AssignPublicIp, AwsVpcConfiguration, EcsParameters, LaunchType, NetworkConfiguration,
            RuleState, Target,
        };
        let put = self
            .client
            .put_rule()
            .name(rule)
            .description(description)
            .schedule_expression(&task.schedule)
            .state(if task.enabled {
                RuleState::Enabled
            } else {
                RuleState::Disabled
            })
            .send()
            .await
            .map_err(|e| rule_err("PutRule")(transient(&e), error_chain(e)))?;
        let bad = |e: aws_smithy_types::error::operation::BuildError| {
            rule_err("PutTargets")(false, e.to_string())
        };
        let cluster =
            crate::plan::jobs::cluster_arn(put.rule_arn().unwrap_or_default(), &task.cluster)
                .ok_or_else(|| rule_err("PutRule")(false, "no rule ARN in the answer".into()))?;
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(task.network.subnets.clone()))
            .set_security_groups(
                (!task.network.security_groups.is_empty())
                    .then(|| task.network.security_groups.clone()),
            )
            .assign_public_ip(if task.network.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
            .map_err(bad)?;
        let ecs = EcsParameters::builder()
            .task_definition_arn(&task.task_definition)
            .task_count(1)
            .launch_type(LaunchType::Fargate)
            .platform_version(&task.platform_version)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(vpc)
                    .build(),
            )
            .build()
            .map_err(bad)?;
        let target = Target::builder()
            .id(crate::plan::jobs::TARGET_ID)
            .arn(cluster)
            .role_arn(&task.role_arn)
            .set_input(crate::plan::jobs::input(&task.command))
            .ecs_parameters(ecs)
            .build()
            .map_err(bad)?;
        let out = self
            .client
            .put_targets()
            .rule(rule)
            .targets(target)
            .send()
            .await
            .map_err(|e| rule_err("PutTargets")(transient(&e), error_chain(e)))?;
        if out.failed_entry_count() > 0 {
            let first = out
                .failed_entries()
                .iter()
                .find_map(|e| e.error_message())
                .unwrap_or("unknown error");
            return Err(rule_err("PutTargets")(false, first.to_owned()));
        }
        Ok(())
    }

    async fn rules(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, String)>, crate::ports::ScheduleError> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_rules()
                .name_prefix(prefix)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| rule_err("ListRules")(transient(&e), error_chain(e)))?;
            for r in page.rules() {
                if let Some(name) = r.name() {
                    out.push((
                        name.to_owned(),
                        r.description().unwrap_or_default().to_owned(),
                    ));
                }
            }
            token = page.next_token().map(str::to_owned);
            // Bounded: an account has at most a few hundred rules per bus.
            if token.is_none() || out.len() > 10_000 {
                return Ok(out);
            }
        }
    }

    async fn unschedule(&self, rule: &str) -> Result<(), crate::ports::ScheduleError> {
        self.client
            .remove_targets()
            .rule(rule)
            .ids(crate::plan::jobs::TARGET_ID)
            .send()
            .await
            .map_err(|e| rule_err("RemoveTargets")(transient(&e), error_chain(e)))?;
        self.client
            .delete_rule()
            .name(rule)
            .send()
            .await
            .map_err(|e| rule_err("DeleteRule")(transient(&e), error_chain(e)))?;
        Ok(())
    }
}
