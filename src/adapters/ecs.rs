//! `ServiceDeployer` over Amazon ECS with aws-sdk-ecs.
//!
//! Task definitions travel as Gantry's own JSON: ECS speaks JSON (awsJson1.1) and the body of
//! RegisterTaskDefinition is exactly the register-task-definition document, so `register`
//! sends that document as the request body through the SDK's client (endpoint, signing,
//! retries included), and `task_definition` reads the raw DescribeTaskDefinition answer.
//! No field a user wrote is lost in a translation to the SDK's types.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, ContainerDefinition,
    ContainerOverride, DeploymentCircuitBreaker, DeploymentConfiguration, LaunchType, LoadBalancer,
    NetworkConfiguration, ServiceConnectClientAlias, ServiceConnectConfiguration,
    ServiceConnectService, ServiceRegistry, TaskOverride,
};
use aws_sdk_ecs::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;

use crate::domain::service::{
    Alias, Connect, ConnectService, Network, Provider, Registry, ServiceSettings, Target,
};
use crate::domain::taskdef::{family_of, TaskDefinition};
use crate::domain::NetworkSpec;
use crate::plan::rollout::DeploymentSnapshot;
use crate::ports::{EcsError, NewService, ServiceDeployer, ServiceState, ServiceUpdate, TaskStop};

pub struct Ecs {
    client: Client,
}

impl Ecs {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }
}

fn err(operation: &'static str) -> impl Fn(bool, String) -> EcsError {
    move |transient, message| EcsError {
        operation,
        message,
        transient,
    }
}

use super::aws::{error_chain as ctx, transient};

/// Keeps the raw body of the response it sees.
#[derive(Debug, Clone, Default)]
struct CaptureBody(Arc<Mutex<Option<Vec<u8>>>>);

impl Intercept for CaptureBody {
    fn name(&self) -> &'static str {
        "gantry-capture-body"
    }

    // After deserialisation the (non-streaming) body has been read into memory.
    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().expect("capture lock") = Some(bytes.to_vec());
        }
        Ok(())
    }
}

fn vpc(n: &NetworkSpec) -> Result<NetworkConfiguration, EcsError> {
    let v = AwsVpcConfiguration::builder()
        .set_subnets(Some(n.subnets.clone()))
        .set_security_groups((!n.security_groups.is_empty()).then(|| n.security_groups.clone()))
        .assign_public_ip(if n.assign_public_ip {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        })
        .build()
        .map_err(|e| err("networkConfiguration")(false, e.to_string()))?;
    Ok(NetworkConfiguration::builder()
        .awsvpc_configuration(v)
        .build())
}

fn network(n: &Network) -> Result<NetworkConfiguration, EcsError> {
    vpc(&NetworkSpec {
        subnets: n.subnets.clone(),
        security_groups: n.security_groups.clone(),
        assign_public_ip: n.assign_public_ip,
    })
}

fn targets(t: &[Target]) -> Vec<LoadBalancer> {
    t.iter()
        .map(|t| {
            LoadBalancer::builder()
                .target_group_arn(&t.target_group_arn)
                .container_name(&t.container_name)
                .container_port(t.container_port)
                .build()
        })
        .collect()
}

fn providers(p: &[Provider]) -> Result<Vec<CapacityProviderStrategyItem>, EcsError> {
    p.iter()
        .map(|p| {
            CapacityProviderStrategyItem::builder()
                .capacity_provider(&p.name)
                .weight(p.weight)
                .base(p.base)
                .build()
                .map_err(|e| err("capacityProviderStrategy")(false, e.to_string()))
        })
        .collect()
}

/// `None`: Service Connect turned off (ECS needs `enabled: false` for that).
fn service_connect(c: Option<&Connect>) -> Result<ServiceConnectConfiguration, EcsError> {
    let bad = |e: aws_smithy_types::error::operation::BuildError| {
        err("serviceConnectConfiguration")(false, e.to_string())
    };
    let Some(c) = c else {
        return Ok(ServiceConnectConfiguration::builder()
            .enabled(false)
            .build());
    };
    let mut services = Vec::new();
    for s in &c.services {
        let mut aliases = Vec::new();
        for a in &s.client_aliases {
            aliases.push(
                ServiceConnectClientAlias::builder()
                    .port(a.port)
                    .set_dns_name(a.dns_name.clone())
                    .build()
                    .map_err(bad)?,
            );
        }
        services.push(
            ServiceConnectService::builder()
                .port_name(&s.port_name)
                .discovery_name(&s.discovery_name)
                .set_client_aliases((!aliases.is_empty()).then_some(aliases))
                .build()
                .map_err(bad)?,
        );
    }
    Ok(ServiceConnectConfiguration::builder()
        .enabled(true)
        .namespace(&c.namespace)
        .set_services((!services.is_empty()).then_some(services))
        .build())
}

fn registries(r: &[Registry]) -> Vec<ServiceRegistry> {
    r.iter()
        .map(|r| {
            ServiceRegistry::builder()
                .registry_arn(&r.registry_arn)
                .set_container_name(r.container_name.clone())
                .set_container_port(r.container_port)
                .set_port(r.port)
                .build()
        })
        .collect()
}

/// Service Connect as the service's primary deployment has it (ECS keeps it per deployment).
fn connect_of(s: &aws_sdk_ecs::types::Service) -> Option<Connect> {
    let primary = s
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))?;
    let c = primary.service_connect_configuration()?;
    if !c.enabled() {
        return None;
    }
    Some(Connect {
        namespace: c.namespace().unwrap_or_default().to_owned(),
        services: c
            .services()
            .iter()
            .map(|s| ConnectService {
                port_name: s.port_name().to_owned(),
                discovery_name: s.discovery_name().unwrap_or(s.port_name()).to_owned(),
                client_aliases: s
                    .client_aliases()
                    .iter()
                    .map(|a| Alias {
                        port: a.port(),
                        dns_name: a.dns_name().map(str::to_owned),
                    })
                    .collect(),
            })
            .collect(),
    })
}

fn deployment_configuration(min: i32, max: i32) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .deployment_circuit_breaker(
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true)
                .build(),
        )
        .maximum_percent(max)
        .minimum_healthy_percent(min)
        .build()
}

/// What DescribeServices says of the settings Gantry manages.
fn settings_of(s: &aws_sdk_ecs::types::Service) -> ServiceSettings {
    let d = ServiceSettings::default();
    let conf = s.deployment_configuration();
    let breaker = conf.and_then(|c| c.deployment_circuit_breaker());
    ServiceSettings {
        desired_count: Some(s.desired_count()),
        network: s
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration())
            .map(|v| Network {
                subnets: v.subnets().to_vec(),
                security_groups: v.security_groups().to_vec(),
                assign_public_ip: v.assign_public_ip() == Some(&AssignPublicIp::Enabled),
            }),
        load_balancers: s
            .load_balancers()
            .iter()
            .map(|l| Target {
                target_group_arn: l.target_group_arn().unwrap_or_default().to_owned(),
                container_name: l.container_name().unwrap_or_default().to_owned(),
                container_port: l.container_port().unwrap_or_default(),
            })
            .collect(),
        health_check_grace_seconds: s.health_check_grace_period_seconds().unwrap_or(0),
        minimum_healthy_percent: conf
            .and_then(|c| c.minimum_healthy_percent())
            .unwrap_or(d.minimum_healthy_percent),
        maximum_percent: conf
            .and_then(|c| c.maximum_percent())
            .unwrap_or(d.maximum_percent),
        circuit_breaker: breaker.is_some_and(|b| b.enable() && b.rollback()),
        capacity_providers: s
            .capacity_provider_strategy()
            .iter()
            .map(|c| Provider {
                name: c.capacity_provider().to_owned(),
                weight: c.weight(),
                base: c.base(),
            })
            .collect(),
        platform_version: s.platform_version().unwrap_or("LATEST").to_owned(),
        enable_execute_command: s.enable_execute_command(),
        service_connect: connect_of(s),
        service_registries: s
            .service_registries()
            .iter()
            .map(|r| Registry {
                registry_arn: r.registry_arn().unwrap_or_default().to_owned(),
                container_name: r.container_name().map(str::to_owned),
                container_port: r.container_port(),
                port: r.port(),
            })
            .collect(),
    }
}

fn snapshot(d: &aws_sdk_ecs::types::Deployment) -> DeploymentSnapshot {
    DeploymentSnapshot {
        id: d.id().unwrap_or_default().to_owned(),
        status: d.status().unwrap_or_default().to_owned(),
        rollout_state: d
            .rollout_state()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        rollout_state_reason: d.rollout_state_reason().map(str::to_owned),
        task_definition: d.task_definition().unwrap_or_default().to_owned(),
        desired: d.desired_count(),
        running: d.running_count(),
    }
}

/// The PRIMARY deployment of a service just created or updated: the one Gantry tracks.
fn primary_id(
    service: Option<&aws_sdk_ecs::types::Service>,
    operation: &'static str,
) -> Result<String, EcsError> {
    service
        .and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| d.status() == Some("PRIMARY"))
        })
        .and_then(|d| d.id())
        .map(str::to_owned)
        .ok_or_else(|| err(operation)(false, "ECS answered without a PRIMARY deployment".into()))
}

#[async_trait]
impl ServiceDeployer for Ecs {
    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ServiceState>, EcsError> {
        let out = self
            .client
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| err("DescribeServices")(transient(&e), ctx(e)))?;
        let Some(s) = out
            .services()
            .iter()
            .find(|s| s.status() != Some("INACTIVE"))
        else {
            return Ok(None);
        };
        Ok(Some(ServiceState {
            task_definition: s.task_definition().unwrap_or_default().to_owned(),
            deployments: s.deployments().iter().map(snapshot).collect(),
            settings: settings_of(s),
        }))
    }

    async fn task_definition(&self, arn: &str) -> Result<TaskDefinition, EcsError> {
        let capture = CaptureBody::default();
        self.client
            .describe_task_definition()
            .task_definition(arn)
            .customize()
            .interceptor(capture.clone())
            .send()
            .await
            .map_err(|e| err("DescribeTaskDefinition")(transient(&e), ctx(e)))?;
        let body = capture
            .0
            .lock()
            .expect("capture lock")
            .take()
            .ok_or_else(|| err("DescribeTaskDefinition")(false, "empty answer".into()))?;
        TaskDefinition::from_json(&String::from_utf8_lossy(&body))
            .map_err(|e| err("DescribeTaskDefinition")(false, e.to_string()))
    }

    async fn register(&self, td: &TaskDefinition) -> Result<String, EcsError> {
        let body = serde_json::to_vec(td)
            .map_err(|e| err("RegisterTaskDefinition")(false, e.to_string()))?;
        let len = body.len();
        // The typed input only satisfies the builder; the request body is replaced by `td`.
        let out = self
            .client
            .register_task_definition()
            .family(&td.family)
            .container_definitions(ContainerDefinition::builder().build())
            .customize()
            // Registering is not idempotent: a retry after an answer that was lost would add a
            // second revision. The step's own retry re-plans instead (and reuses that revision).
            .config_override(
                aws_sdk_ecs::config::Builder::default()
                    .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled()),
            )
            .mutate_request(move |req| {
                *req.body_mut() = SdkBody::from(body.clone());
                req.headers_mut().insert("content-length", len.to_string());
            })
            .send()
            .await
            .map_err(|e| err("RegisterTaskDefinition")(transient(&e), ctx(e)))?;
        out.task_definition()
            .and_then(|t| t.task_definition_arn())
            .map(str::to_owned)
            .ok_or_else(|| err("RegisterTaskDefinition")(false, "no ARN in the answer".into()))
    }

    async fn create_service(&self, s: &NewService) -> Result<String, EcsError> {
        let c = &s.settings;
        let mut req = self
            .client
            .create_service()
            .cluster(&s.cluster)
            .service_name(&s.name)
            .task_definition(&s.task_definition)
            .desired_count(s.desired_count)
            .deployment_configuration(deployment_configuration(
                c.minimum_healthy_percent,
                c.maximum_percent,
            ))
            .set_load_balancers(Some(targets(&c.load_balancers)))
            .platform_version(&c.platform_version)
            .enable_execute_command(c.enable_execute_command);
        if c.health_check_grace_seconds > 0 {
            req = req.health_check_grace_period_seconds(c.health_check_grace_seconds);
        }
        // A capacity provider strategy replaces the launch type.
        req = if c.capacity_providers.is_empty() {
            req.launch_type(LaunchType::Fargate)
        } else {
            req.set_capacity_provider_strategy(Some(providers(&c.capacity_providers)?))
        };
        if let Some(n) = &c.network {
            req = req.network_configuration(network(n)?);
        }
        if c.service_connect.is_some() {
            req = req.service_connect_configuration(service_connect(c.service_connect.as_ref())?);
        }
        if !c.service_registries.is_empty() {
            req = req.set_service_registries(Some(registries(&c.service_registries)));
        }
        let out = req
            .send()
            .await
            .map_err(|e| err("CreateService")(transient(&e), ctx(e)))?;
        primary_id(out.service(), "CreateService")
    }

    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        u: &ServiceUpdate,
    ) -> Result<String, EcsError> {
        let mut req = self
            .client
            .update_service()
            .cluster(cluster)
            .service(service)
            .set_task_definition(u.task_definition.clone())
            .set_desired_count(u.desired_count)
            .set_health_check_grace_period_seconds(u.health_check_grace_seconds)
            .set_platform_version(u.platform_version.clone())
            .set_enable_execute_command(u.enable_execute_command);
        if let Some(n) = &u.network {
            req = req.network_configuration(network(n)?);
        }
        if let Some(t) = &u.load_balancers {
            req = req.set_load_balancers(Some(targets(t)));
        }
        if let Some((min, max)) = u.deployment {
            req = req.deployment_configuration(deployment_configuration(min, max));
        }
        if let Some(p) = &u.capacity_providers {
            // Moving between a launch type and a strategy needs a new deployment.
            req = req
                .set_capacity_provider_strategy(Some(providers(p)?))
                .force_new_deployment(true);
        }
        if let Some(c) = &u.service_connect {
            req = req.service_connect_configuration(service_connect(c.as_ref())?);
        }
        if let Some(r) = &u.service_registries {
            req = req.set_service_registries(Some(registries(r)));
        }
        let out = req
            .send()
            .await
            .map_err(|e| err("UpdateService")(transient(&e), ctx(e)))?;
        primary_id(out.service(), "UpdateService")
    }

    async fn run_task(
        &self,
        cluster: &str,
        task_definition: &str,
        network: Option<&NetworkSpec>,
        container: &str,
        command: &[String],
        client_token: &str,
    ) -> Result<String, EcsError> {
        let mut req = self
            .client
            .run_task()
            .client_token(client_token)
            .cluster(cluster)
            .task_definition(task_definition)
            .launch_type(LaunchType::Fargate)
            .count(1)
            .started_by("gantry")
            .overrides(
                TaskOverride::builder()
                    .container_overrides(
                        ContainerOverride::builder()
                            .name(container)
                            .set_command(Some(command.to_vec()))
                            .build(),
                    )
                    .build(),
            );
        if let Some(n) = network {
            req = req.network_configuration(vpc(n)?);
        }
        let out = req
            .send()
            .await
            .map_err(|e| err("RunTask")(transient(&e), ctx(e)))?;
        if let Some(f) = out.failures().first() {
            return Err(err("RunTask")(
                false,
                format!("{} {}", f.reason().unwrap_or(""), f.detail().unwrap_or("")),
            ));
        }
        out.tasks()
            .first()
            .and_then(|t| t.task_arn())
            .map(str::to_owned)
            .ok_or_else(|| err("RunTask")(false, "no task started".into()))
    }

    async fn stop_task(&self, cluster: &str, task: &str, reason: &str) -> Result<(), EcsError> {
        self.client
            .stop_task()
            .cluster(cluster)
            .task(task)
            .reason(reason)
            .send()
            .await
            .map_err(|e| err("StopTask")(transient(&e), ctx(e)))?;
        Ok(())
    }

    async fn task_stopped(&self, cluster: &str, task: &str) -> Result<Option<TaskStop>, EcsError> {
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .tasks(task)
            .send()
            .await
            .map_err(|e| err("DescribeTasks")(transient(&e), ctx(e)))?;
        let Some(t) = out.tasks().first() else {
            return Err(err("DescribeTasks")(
                false,
                format!("task {task} not found"),
            ));
        };
        if t.last_status() != Some("STOPPED") {
            return Ok(None);
        }
        Ok(Some(TaskStop {
            exit_code: t.containers().iter().find_map(|c| c.exit_code()),
            reason: t.stopped_reason().unwrap_or_default().to_owned(),
        }))
    }

    async fn active_revisions(&self, family: &str) -> Result<Vec<String>, EcsError> {
        let mut arns = Vec::new();
        let mut pages = self
            .client
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .sort(aws_sdk_ecs::types::SortOrder::Asc)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| err("ListTaskDefinitions")(transient(&e), ctx(e)))?;
            // family_prefix is a prefix: keep this family's revisions only.
            arns.extend(
                page.task_definition_arns()
                    .iter()
                    .filter(|a| family_of(a) == family)
                    .cloned(),
            );
        }
        Ok(arns)
    }

    async fn in_use(&self, cluster: &str) -> Result<Vec<String>, EcsError> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_services()
            .cluster(cluster)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            names.extend(
                page.map_err(|e| err("ListServices")(transient(&e), ctx(e)))?
                    .service_arns()
                    .iter()
                    .cloned(),
            );
        }
        let mut used = Vec::new();
        for chunk in names.chunks(10) {
            let out = self
                .client
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| err("DescribeServices")(transient(&e), ctx(e)))?;
            for s in out.services() {
                used.extend(s.task_definition().map(str::to_owned));
                used.extend(
                    s.deployments()
                        .iter()
                        .filter_map(|d| d.task_definition().map(str::to_owned)),
                );
            }
        }
        Ok(used)
    }

    async fn deregister(&self, arn: &str) -> Result<(), EcsError> {
        self.client
            .deregister_task_definition()
            .task_definition(arn)
            .send()
            .await
            .map_err(|e| err("DeregisterTaskDefinition")(transient(&e), ctx(e)))?;
        Ok(())
    }
}
