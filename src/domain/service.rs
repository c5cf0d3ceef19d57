//! An ECS service's configuration besides its task definition, in one comparable shape: what
//! a manifest asks for (`plan::service_diff::desired`) and what DescribeServices reports (the
//! ECS adapter) are both turned into [`ServiceSettings`], normalised the way ecspresso does
//! (ECS defaults filled in, lists sorted), so a difference is a real one.

/// One load balancer target of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: i32,
}

/// The service's network (awsvpc).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Network {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Provider {
    pub name: String,
    pub weight: i32,
    pub base: i32,
}

/// Service Connect as configured: the namespace ARN and the ports offered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Connect {
    pub namespace: String,
    pub services: Vec<ConnectService>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnectService {
    pub port_name: String,
    /// Filled with the port name when not given (as ECS does).
    pub discovery_name: String,
    pub client_aliases: Vec<Alias>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Alias {
    pub port: i32,
    /// `None` on the desired side: ECS picks `discoveryName.namespace`, any live name fits.
    pub dns_name: Option<String>,
}

impl Connect {
    /// Whether the live configuration is what `self` asks for, reading an alias without a
    /// DNS name as "ECS's default".
    pub fn satisfied_by(&self, live: &Connect) -> bool {
        self.namespace == live.namespace
            && self.services.len() == live.services.len()
            && self.services.iter().zip(&live.services).all(|(d, l)| {
                d.port_name == l.port_name
                    && d.discovery_name == l.discovery_name
                    && d.client_aliases.len() == l.client_aliases.len()
                    && d.client_aliases
                        .iter()
                        .zip(&l.client_aliases)
                        .all(|(a, b)| {
                            a.port == b.port && (a.dns_name.is_none() || a.dns_name == b.dns_name)
                        })
            })
    }
}

/// One Cloud Map registry of the service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Registry {
    pub registry_arn: String,
    pub container_name: Option<String>,
    pub container_port: Option<i32>,
    pub port: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSettings {
    /// `None` when the count is left to auto scaling (desired side) or not reported.
    pub desired_count: Option<i32>,
    pub network: Option<Network>,
    pub load_balancers: Vec<Target>,
    pub health_check_grace_seconds: i32,
    pub minimum_healthy_percent: i32,
    pub maximum_percent: i32,
    /// The deployment circuit breaker, with rollback (Gantry always asks for both).
    pub circuit_breaker: bool,
    /// Empty: the FARGATE launch type.
    pub capacity_providers: Vec<Provider>,
    pub platform_version: String,
    pub enable_execute_command: bool,
    /// `None`: Service Connect off.
    pub service_connect: Option<Connect>,
    pub service_registries: Vec<Registry>,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        Self {
            desired_count: None,
            network: None,
            load_balancers: Vec::new(),
            health_check_grace_seconds: 0,
            minimum_healthy_percent: 100,
            maximum_percent: 200,
            circuit_breaker: true,
            capacity_providers: Vec::new(),
            platform_version: "LATEST".into(),
            enable_execute_command: false,
            service_connect: None,
            service_registries: Vec::new(),
        }
    }
}

impl ServiceSettings {
    /// Lists sorted and emptiness folded, so two reports of one configuration compare equal.
    pub fn normalised(mut self) -> Self {
        if let Some(n) = &mut self.network {
            n.subnets.sort();
            n.subnets.dedup();
            n.security_groups.sort();
            n.security_groups.dedup();
        }
        self.load_balancers.sort();
        self.capacity_providers.sort();
        if let Some(c) = &mut self.service_connect {
            for s in &mut c.services {
                s.client_aliases.sort();
            }
            c.services.sort();
        }
        self.service_registries.sort();
        if self.platform_version.is_empty() {
            self.platform_version = "LATEST".into();
        }
        self
    }
}

/// A scheduled task as Gantry keeps it: an EventBridge rule with one ECS target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledTask {
    /// `rate(...)` or `cron(...)`.
    pub schedule: String,
    pub enabled: bool,
    /// The cluster's name or ARN (EventBridge reports the ARN).
    pub cluster: String,
    pub task_definition: String,
    /// The role EventBridge assumes to run the task.
    pub role_arn: String,
    pub network: Network,
    pub platform_version: String,
    /// A container's command override: (container, command).
    pub command: Option<(String, Vec<String>)>,
}
