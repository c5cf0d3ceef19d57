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
        if self.platform_version.is_empty() {
            self.platform_version = "LATEST".into();
        }
        self
    }
}
