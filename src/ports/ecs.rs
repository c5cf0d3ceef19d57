//! What a rollout needs from ECS. `adapters::ecs::Ecs` implements it with aws-sdk-ecs.

use async_trait::async_trait;

pub use crate::domain::service::ServiceSettings;
use crate::domain::taskdef::TaskDefinition;
use crate::domain::NetworkSpec;
use crate::plan::rollout::DeploymentSnapshot;
pub use crate::plan::service_diff::ServiceUpdate;

#[derive(Debug, thiserror::Error)]
#[error("ECS {operation}: {message}")]
pub struct EcsError {
    pub operation: &'static str,
    pub message: String,
    /// Throttling, 5xx, a dropped connection: the same call may succeed later.
    pub transient: bool,
}

/// A service as DescribeServices reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    pub task_definition: String,
    pub deployments: Vec<DeploymentSnapshot>,
    /// Everything else Gantry manages of it, as reported (compare with `normalised`).
    pub settings: ServiceSettings,
}

/// Everything CreateService needs (circuit breaker with rollback on; the FARGATE launch type
/// unless capacity providers are given).
#[derive(Debug, Clone)]
pub struct NewService {
    pub cluster: String,
    pub name: String,
    pub task_definition: String,
    pub desired_count: i32,
    pub settings: ServiceSettings,
}

/// How a one-off task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStop {
    pub exit_code: Option<i32>,
    pub reason: String,
}

#[async_trait]
pub trait ServiceDeployer: Send + Sync {
    async fn describe_service(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ServiceState>, EcsError>;
    /// A registered task definition in Gantry's JSON form.
    async fn task_definition(&self, arn: &str) -> Result<TaskDefinition, EcsError>;
    /// Registers `td` exactly as written; returns the new revision's ARN.
    async fn register(&self, td: &TaskDefinition) -> Result<String, EcsError>;
    /// Creates the service; returns the id of the deployment it started.
    async fn create_service(&self, s: &NewService) -> Result<String, EcsError>;
    /// Sends the fields `update` holds; returns the id of the service's primary deployment
    /// afterwards (a new one when the update replaces tasks).
    async fn update_service(
        &self,
        cluster: &str,
        service: &str,
        update: &ServiceUpdate,
    ) -> Result<String, EcsError>;
    /// Starts a one-off Fargate task running `command` in `container`; returns its ARN.
    /// `client_token` (at most 64 characters) makes it idempotent: asked again with the same
    /// token (a retry after a lost answer, a resumed step), ECS returns the task it started
    /// instead of starting a second one.
    async fn run_task(
        &self,
        cluster: &str,
        task_definition: &str,
        network: Option<&NetworkSpec>,
        container: &str,
        command: &[String],
        client_token: &str,
    ) -> Result<String, EcsError>;
    /// Stops a one-off task (a cancelled kaniko build), with `reason` shown by ECS.
    async fn stop_task(&self, cluster: &str, task: &str, reason: &str) -> Result<(), EcsError>;
    /// `None` while the task has not stopped.
    async fn task_stopped(&self, cluster: &str, task: &str) -> Result<Option<TaskStop>, EcsError>;
    /// ACTIVE revisions of a family, oldest first.
    async fn active_revisions(&self, family: &str) -> Result<Vec<String>, EcsError>;
    /// Task definitions the services of a cluster run (any of their deployments).
    async fn in_use(&self, cluster: &str) -> Result<Vec<String>, EcsError>;
    async fn deregister(&self, arn: &str) -> Result<(), EcsError>;
}

#[derive(Debug, thiserror::Error)]
#[error("EventBridge {operation}: {message}")]
pub struct ScheduleError {
    pub operation: &'static str,
    pub message: String,
    pub transient: bool,
}

/// Scheduled jobs' rules (EventBridge rules with one ECS target).
/// `adapters::eventbridge::Rules` implements it with aws-sdk-eventbridge.
#[async_trait]
pub trait JobScheduler: Send + Sync {
    /// The rule and its Gantry target; `None` when the rule does not exist.
    async fn scheduled(
        &self,
        rule: &str,
    ) -> Result<Option<crate::domain::service::ScheduledTask>, ScheduleError>;
    /// Creates or replaces the rule and its one target (idempotent).
    async fn schedule(
        &self,
        rule: &str,
        description: &str,
        task: &crate::domain::service::ScheduledTask,
    ) -> Result<(), ScheduleError>;
    /// Rules whose names start with `prefix`: (name, description).
    async fn rules(&self, prefix: &str) -> Result<Vec<(String, String)>, ScheduleError>;
    /// Removes the rule's targets, then the rule.
    async fn unschedule(&self, rule: &str) -> Result<(), ScheduleError>;
}
