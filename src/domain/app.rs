//! The App resource (`apiVersion: gantry/v1`, `kind: App`) as written in `manifests/`.
//!
//! Field names are camelCase in YAML, as Kubernetes-style manifests are. Every struct rejects
//! unknown fields so a typo is an error with a path, never a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "gantry/v1";
pub const KIND_APP: &str = "App";

/// One `kind: App` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppManifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: AppSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What an app is made of and where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppSpec {
    /// Environment name shown in reports (`production`, `staging`, ...).
    #[serde(default = "default_environment")]
    pub environment: String,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteSpec>,
    /// Scheduled tasks: an ECS task run on a schedule by an EventBridge rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobSpec>,
    #[serde(default, skip_serializing_if = "Notifications::is_empty")]
    pub notifications: Notifications,
    /// How long each service's rollout may take before Gantry fails it and rolls back, e.g.
    /// `15m` (the default).
    #[serde(
        default,
        with = "super::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub rollout_timeout: Option<std::time::Duration>,
    /// ACTIVE task definition revisions kept per family (default 10); older ones that no
    /// service runs are deregistered after a successful rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_revisions: Option<usize>,
    /// For manifests from a git source: record the released image digests in
    /// `gantry.lock.yaml` beside the manifest, committed to the source's branch.
    #[serde(default, skip_serializing_if = "WriteBack::is_off")]
    pub write_back: WriteBack,
    /// Set by Gantry when it expands `spec.environments`: the app this is one environment of
    /// (this instance is named `APP-ENV`, and `environment` is ENV).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_of: Option<String>,
    /// Set from `spec.environments[].promotion`: this environment takes releases only by
    /// promotion from another environment of the app, never from pushes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionSpec>,
    /// Redeploy the last release when the live services or sites drift from it (a held or
    /// paused app is never healed). Off by default: drift is only reported.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub self_heal: bool,
    /// When deployments may start: allow and deny windows (deny wins). A deployment outside
    /// them waits, visibly, until one opens or someone permitted overrides it.
    #[serde(default, skip_serializing_if = "DeployWindows::is_unset")]
    pub windows: DeployWindows,
    /// Who must approve a deployment before it starts (rollbacks and self-heals, which put
    /// back a release that ran, do not wait).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvals: Option<ApprovalSpec>,
}

/// `spec.approvals`: `required` approvals from the identities `from` names, within
/// `timeout` (default 24h) of the deployment being queued; the change's author never counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApprovalSpec {
    pub required: u32,
    /// `discord:USER_ID`, `discord-role:ROLE_ID`, or an API/CLI actor (`cli:bob`).
    #[serde(default)]
    pub from: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// Allow and deny windows of an environment (Argo CD's sync windows: cron + duration + time
/// zone; deny wins over allow; with allow windows, deployments start only inside one).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeployWindows {
    /// The IANA time zone schedules are read in (`Europe/Berlin`); default UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<WindowSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<WindowSpec>,
    /// Who may start a waiting deployment now: `discord:USER_ID`, `discord-role:ROLE_ID`, or
    /// an API/CLI actor (`cli:alice`). Empty: nobody; the deployment waits for its window.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub override_by: Vec<String>,
}

impl DeployWindows {
    pub fn is_unset(&self) -> bool {
        *self == Self::default()
    }
}

/// One window: it opens at every time the five-field cron `schedule` names and stays open
/// for `duration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WindowSpec {
    pub schedule: String,
    pub duration: String,
    /// This window's own time zone; default: the windows' one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// How an environment receives releases when it does not follow a branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PromotionSpec {
    /// The environment whose releases are promoted here.
    pub from: String,
    /// Promote automatically once the source environment's newest release has been healthy
    /// this long (`30m`, `2h`); unset: only on request (`gantry promote`).
    #[serde(
        default,
        with = "super::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub after: Option<std::time::Duration>,
}

impl AppSpec {
    /// The app this spec belongs to: the app it is an environment of, or `name` itself.
    pub fn app_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.environment_of.as_deref().unwrap_or(name)
    }

    /// Whether pushes deploy it (it follows a branch), or only promotions do.
    pub fn follows_branch(&self) -> bool {
        self.promotion.is_none()
    }
}

/// The name of environment `env` of app `app`: `APP-ENV`.
pub fn instance_name(app: &str, env: &str) -> String {
    format!("{app}-{env}")
}

/// Whether and how a successful deployment's digests are written back to git.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WriteBack {
    #[default]
    Off,
    /// A commit on the source's branch.
    Commit,
    /// A commit on Gantry's branch `gantry/lock/APP`, proposed to the source's branch as a
    /// pull request (one open pull request per app, updated by each release).
    PullRequest,
}

impl WriteBack {
    pub fn is_off(&self) -> bool {
        *self == Self::Off
    }
}

/// The branch a pull-request write-back of `app` is pushed to.
pub fn writeback_branch(app: &str) -> String {
    format!("gantry/lock/{app}")
}

fn default_environment() -> String {
    "production".into()
}

/// The git repository an app is built from, and which pushes deploy it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    /// `OWNER/NAME` on GitHub; webhooks are matched on it.
    pub repo: String,
    /// Clone URL override: `https://...`, `file:///...` or an absolute path. Default:
    /// `https://github.com/OWNER/NAME.git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Branch whose pushes deploy the app. Default `main`.
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Glob over tag names (e.g. `v*`); when set, pushed tags that match deploy too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// Globs over changed paths; when set, a push deploys only if a changed file matches one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// How often Gantry polls the repository for pushes whose webhook never came: a duration
    /// of at least 1s (`30s`, `5m`) or `off`. Default: the daemon's `polling.interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll: Option<PollSetting>,
}

/// `spec.source.poll`: `off`, or how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollSetting {
    Off,
    Every(std::time::Duration),
}

impl PollSetting {
    /// The interval, `None` when off.
    pub fn interval(self) -> Option<std::time::Duration> {
        match self {
            Self::Off => None,
            Self::Every(d) => Some(d),
        }
    }
}

impl Serialize for PollSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Off => s.serialize_str("off"),
            Self::Every(d) => s.serialize_str(&super::duration::format(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for PollSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "off" {
            return Ok(Self::Off);
        }
        let every = super::duration::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("{e}; use `off` or e.g. `60s`, `5m`")))?;
        if every < std::time::Duration::from_secs(1) {
            return Err(serde::de::Error::custom(format!(
                "`{text}` polls more often than once a second; use `off` or e.g. `60s`"
            )));
        }
        Ok(Self::Every(every))
    }
}

fn default_branch() -> String {
    "main".into()
}

/// Commands run in the checkout before images and sites are published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BuildSpec {
    /// Shell commands (`sh -c`), run in order; the first failure stops the build.
    pub commands: Vec<String>,
    /// Working directory relative to the checkout root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Literal variables set for the commands (the environment is otherwise clean).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of Gantry's own environment variables passed through (secrets: values redacted
    /// from logs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pass_env: Vec<String>,
    /// Timeout for all commands together, e.g. `30s`, `10m`, `1h`. Default `30m`.
    #[serde(
        default,
        with = "super::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<std::time::Duration>,
    /// Directories kept between this app's deployments (npm's cache, `.next/cache`, pip's
    /// cache), each keyed by the files that decide its contents (lock files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<CacheSpec>,
}

/// A build cache: a directory restored before the build commands and saved after they
/// succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheSpec {
    /// What logs and the cache store call it; default: from `path` (`~/.npm` -> `npm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The directory: relative to the build's working directory, or `~/...` under the
    /// build's home.
    pub path: String,
    /// Files (relative to the working directory) whose contents key the cache, e.g.
    /// `package-lock.json`. A build whose key files changed starts from the newest entry
    /// of this cache, and saves under its new key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
}

impl CacheSpec {
    /// `name`, or one made from `path`: its letters and digits, other runs as `-`.
    pub fn cache_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let mut out = String::new();
        for c in self.path.chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        out.trim_end_matches('-').to_owned()
    }
}

/// A container image built from the checkout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImageSpec {
    /// Name services refer to the image by.
    pub name: String,
    /// Repository, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/api`.
    pub repository: String,
    /// Build context relative to the checkout. Default `.`.
    #[serde(default = "default_context")]
    pub context: String,
    /// Dockerfile relative to the context (`buildah`, `kaniko`). Default `Dockerfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// `layer`, `buildah` or `kaniko`. Default: `layer` when `base` is set, else `buildah`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<BuilderKind>,
    /// Base image the `layer` builder adds the context onto, e.g. `python:3.12-slim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Directory in the image the context is copied to (`layer`). Default `/app`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `--build-arg`s for Dockerfile builds.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_args: BTreeMap<String, String>,
    /// Globs (relative to the context) left out of the image, on top of `.dockerignore`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// A moving tag (e.g. `latest`) set besides the git sha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// Create the ECR repository when it does not exist.
    #[serde(default)]
    pub create_repository: bool,
}

impl ImageSpec {
    /// The builder this image uses, defaults applied.
    pub fn builder_kind(&self) -> BuilderKind {
        match (self.builder, &self.base) {
            (Some(b), _) => b,
            (None, Some(_)) => BuilderKind::Layer,
            (None, None) => BuilderKind::Buildah,
        }
    }

    pub fn dockerfile_path(&self) -> &str {
        self.dockerfile.as_deref().unwrap_or("Dockerfile")
    }
}

fn default_context() -> String {
    ".".into()
}

/// An ECS service rolled to the new images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceSpec {
    pub name: String,
    pub cluster: String,
    /// Task definition JSON file, relative to the manifest's directory.
    pub task_definition: String,
    /// Container name -> image name (from `images`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub containers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSpec>,
    /// A one-off task (e.g. a database migration) that must exit 0 before the service rolls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationSpec>,
    /// Environment variables allowed to hold literal values despite secret-looking names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_literal_env: Vec<String>,
    /// The count is Application Auto Scaling's: `desiredCount` is sent when the service is
    /// created and never on an update (where it would fight the scaler).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub autoscaled: bool,
    /// How long ECS ignores failing load balancer health checks of a new task, e.g. `60s`.
    #[serde(
        default,
        with = "super::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub health_check_grace: Option<std::time::Duration>,
    /// The rolling update's bounds (ECS defaults: 100 and 200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentBounds>,
    /// Capacity providers instead of the FARGATE launch type, e.g. Fargate Spot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capacity_providers: Vec<CapacityProvider>,
    /// Fargate platform version (default `LATEST`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    /// ECS Exec into the service's tasks.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub enable_execute_command: bool,
    /// ECS Service Connect: the service joins a Cloud Map namespace as a client and offers
    /// its named ports to the namespace's other services. Absent: Service Connect is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_connect: Option<ServiceConnectSpec>,
    /// Cloud Map service registries (service discovery by DNS) the tasks register with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_registries: Vec<ServiceRegistrySpec>,
    /// The task definition file's content as loaded with the manifests: a deployment rolls
    /// the file that was in force when it was queued, not what the file says when its roll
    /// runs. Set by loading; a manifest that writes it is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentBounds {
    /// Lowest share of the desired count kept running during an update, in percent.
    #[serde(default = "DeploymentBounds::default_min")]
    pub minimum_healthy_percent: u32,
    /// Highest share of the desired count running during an update, in percent.
    #[serde(default = "DeploymentBounds::default_max")]
    pub maximum_percent: u32,
}

impl DeploymentBounds {
    fn default_min() -> u32 {
        100
    }
    fn default_max() -> u32 {
        200
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CapacityProvider {
    /// `FARGATE`, `FARGATE_SPOT`, or a cluster's own provider.
    pub provider: String,
    #[serde(default = "CapacityProvider::default_weight")]
    pub weight: u32,
    #[serde(default)]
    pub base: u32,
}

impl CapacityProvider {
    fn default_weight() -> u32 {
        1
    }
}

/// A scheduled task: the task definition run on `schedule` by an EventBridge rule Gantry
/// keeps (`gantry-APP-JOB`), pointed at the release's task definition revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JobSpec {
    pub name: String,
    pub cluster: String,
    /// Task definition JSON file, relative to the manifest's directory.
    pub task_definition: String,
    /// Container name -> image name (from `images`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub containers: BTreeMap<String, String>,
    /// An EventBridge schedule expression: `rate(1 hour)` or `cron(0 3 * * ? *)` (UTC).
    pub schedule: String,
    pub network: NetworkSpec,
    /// The IAM role EventBridge assumes to run the task (`ecs:RunTask`, `iam:PassRole`).
    pub role_arn: String,
    /// Overrides the command of the task definition's first container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// A disabled job keeps its rule, switched off.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_literal_env: Vec<String>,
    /// The task definition's content as loaded (see `ServiceSpec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_content: Option<String>,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `serviceConnect` of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceConnectSpec {
    /// The Cloud Map namespace's ARN (ECS reports the ARN, so a name would always differ).
    pub namespace: String,
    /// Ports this service offers; none: the service is a client only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ConnectServiceSpec>,
}

/// One port a service offers through Service Connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConnectServiceSpec {
    /// A `portMappings[].name` of the task definition.
    pub port_name: String,
    /// The name in Cloud Map (default: the port name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_name: Option<String>,
    /// The names and ports clients reach it by (default: `discoveryName.namespace` on the
    /// container port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_aliases: Vec<ClientAliasSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientAliasSpec {
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
}

/// One entry of `serviceRegistries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceRegistrySpec {
    /// The Cloud Map service's ARN.
    pub registry_arn: String,
    /// For SRV records: the container and port registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkSpec {
    pub subnets: Vec<String>,
    /// Default: the VPC's default security group.
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub assign_public_ip: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadBalancerSpec {
    pub target_group_arn: String,
    pub container_name: String,
    pub container_port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MigrationSpec {
    pub container: String,
    pub command: Vec<String>,
}

/// A static site synced to S3 and served by CloudFront.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SiteSpec {
    pub name: String,
    /// Build output directory relative to the checkout (e.g. `out` for a Next.js export).
    pub dir: String,
    pub bucket: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// `nextjs` or `plain`.
    #[serde(default)]
    pub preset: Preset,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_control: Vec<CacheRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<HostRedirect>,
    #[serde(default)]
    pub pretty_urls: bool,
    /// A single-page app (an admin web, a React/Vue build): every path without a file
    /// extension serves `/index.html` at the edge, where the app's router takes over.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spa: bool,
    /// Days an object that left the build is kept before deletion. Default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_days: Option<i64>,
    /// Releases an object that left the build is kept for before deletion. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_releases: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheRule {
    pub glob: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostRedirect {
    pub from: String,
    pub to: String,
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    301
}

/// Where results are reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Notifications {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discord: Option<DiscordTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubReporting>,
}

impl Notifications {
    pub fn is_empty(&self) -> bool {
        self.discord.is_none() && self.github.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscordTarget {
    /// Channel id (bot token mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Name of the environment variable holding a channel webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GithubReporting {
    #[serde(default = "yes")]
    pub statuses: bool,
    #[serde(default)]
    pub deployments: bool,
}

fn yes() -> bool {
    true
}

impl AppSpec {
    /// The URL `git fetch` uses for this app's repository.
    pub fn clone_url(&self) -> String {
        match &self.source.url {
            Some(url) if url.starts_with('/') => format!("file://{url}"),
            Some(url) => url.clone(),
            None => format!("https://github.com/{}.git", self.source.repo),
        }
    }
}

/// Which backend builds an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderKind {
    /// In-process OCI assembly onto a base image.
    Layer,
    /// `buildah bud` of a Dockerfile.
    Buildah,
    /// A Dockerfile built by kaniko in a one-off ECS task.
    Kaniko,
}

impl BuilderKind {
    pub const ALL: [BuilderKind; 3] = [Self::Layer, Self::Buildah, Self::Kaniko];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Layer => "layer",
            Self::Buildah => "buildah",
            Self::Kaniko => "kaniko",
        }
    }
}

impl std::fmt::Display for BuilderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for BuilderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| format!("unknown builder `{s}`: use `layer`, `buildah` or `kaniko`"))
    }
}

/// A site's header preset: the Cache-Control rules added after the manifest's own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// `_next/static/**` immutable; HTML and RSC payloads (`*.txt`) revalidated.
    Nextjs,
    /// HTML revalidated.
    #[default]
    Plain,
}

impl Preset {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nextjs => "nextjs",
            Self::Plain => "plain",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "nextjs" => Ok(Self::Nextjs),
            "plain" => Ok(Self::Plain),
            _ => Err(format!("unknown preset `{s}`: use `nextjs` or `plain`")),
        }
    }
}
