//! Gantry's own configuration: `gantry.yaml` plus environment variables, validated once at start.
//!
//! Precedence: built-in defaults < the file (`GANTRY_CONFIG` or `--config`) < `GANTRY_*`
//! variables. String values in the file may use `${NAME}` to read an environment variable
//! (`$${` writes a literal `${`). Unknown keys are rejected with their path. See
//! docs/configuration.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{Redactor, Secret};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// A local directory of manifests (`manifests`, `GANTRY_MANIFESTS`); `None` when only git
    /// sources are configured.
    pub manifests: Option<PathBuf>,
    /// Git sources of manifests Gantry fetches itself (`sources`, `GANTRY_SOURCE_*`).
    pub sources: Vec<crate::domain::ManifestSource>,
    pub api_token: Option<Secret>,
    pub github: GithubConfig,
    pub queue: QueueConfig,
    pub pipeline: crate::pipeline::PipelineConfig,
    /// Endpoint for every AWS service (an emulator such as moto); normally unset, so the
    /// standard AWS configuration applies (`AWS_ENDPOINT_URL`, profiles, task role).
    pub aws_endpoint: Option<String>,
    /// Bounds on what HTTP clients may hold (`http.*`).
    pub http: HttpLimits,
    /// How failed reports are retried and Discord edits spaced (`reporting` in gantry.yaml).
    pub reporting: ReportSettings,
    /// Attempts per AWS call, the SDK's own retries (`awsMaxAttempts`, default 8).
    pub aws_max_attempts: u32,
    /// Credentials Gantry did not get through its own settings but holds in its environment
    /// (AWS keys): scrubbed like the rest.
    pub environment_secrets: Vec<Secret>,
    /// EventBridge bus that receives every deployment transition; unset: none is published.
    pub eventbridge_bus: Option<String>,
    /// The API key EventBridge's connection sends in `x-gantry-key` to `/hooks/eventbridge`;
    /// unset: the endpoint rejects everything.
    pub eventbridge_api_key: Option<Secret>,
    pub images: ImagesConfig,
    pub discord: DiscordConfig,
    /// Gantry's public base URL, for links in reports (`/api/v1/deployments/ID`).
    pub public_url: Option<String>,
    /// Polling remotes for pushes whose webhook never came (`polling`).
    pub polling: crate::plan::poll::PollSettings,
    /// Checking live services and sites for drift from their release (`drift`).
    pub drift: crate::plan::drift::DriftSettings,
}

/// Discord: notifications (bot token) and the interactions endpoint.
#[derive(Debug, Clone, Default)]
pub struct DiscordConfig {
    /// The application's Ed25519 public key (interactions are verified against it).
    pub public_key: Option<[u8; 32]>,
    pub application_id: Option<u64>,
    pub bot_token: Option<Secret>,
    /// Register commands in this guild (instant) instead of globally.
    pub guild_id: Option<u64>,
    /// Discord's API base (a proxy, or a fake in tests); default `https://discord.com`.
    pub api_url: Option<String>,
    /// Who may run mutating commands; empty: nobody (read-only commands only).
    pub permissions: Vec<crate::plan::chatops::Permission>,
}

/// Authentication as a GitHub App (installation tokens are minted and refreshed from it).
#[derive(Debug, Clone)]
pub struct GithubApp {
    pub app_id: u64,
    pub installation_id: u64,
    pub private_key: Secret,
}

/// Image builds (`images:`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImagesConfig {
    /// Registry host -> URL it is reached at (`http://` only for loopback addresses).
    pub registry_endpoints: std::collections::BTreeMap<String, String>,
    /// A containers/docker auth file for registries other than ECR.
    pub auth_file: Option<PathBuf>,
    /// Images of one app built at once.
    pub concurrency: usize,
    /// The buildah executable.
    pub buildah: String,
    /// Where `kaniko` builds run; unset: the kaniko builder is not available.
    pub kaniko: Option<crate::images::kaniko::KanikoConfig>,
}

#[derive(Debug, Clone)]
pub struct GithubConfig {
    /// Every secret accepted for `X-Hub-Signature-256`; more than one during rotation.
    pub webhook_secrets: Vec<Secret>,
    /// Token for cloning private repositories over https.
    pub token: Option<Secret>,
    pub max_body_bytes: usize,
    /// GitHub's API base (GitHub Enterprise, or a fake in tests); default api.github.com.
    pub api_url: Option<String>,
    pub app: Option<GithubApp>,
}

/// `http.*`: what one client, or many, may hold of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub body_budget: usize,
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Deployments of different apps that may run at once.
    pub max_concurrent: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: invalid YAML: {message}")]
    Yaml { file: PathBuf, message: String },
    #[error("{file}: {path}: {message}")]
    Field {
        file: PathBuf,
        path: String,
        message: String,
    },
    #[error("{origin}: {message}")]
    Value { origin: String, message: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    manifests: Option<PathBuf>,
    api_token: Option<String>,
    #[serde(default)]
    github: RawGithub,
    #[serde(default)]
    queue: RawQueue,
    #[serde(default)]
    pipeline: RawPipeline,
    #[serde(default)]
    reporting: RawReporting,
    #[serde(default)]
    http: RawHttp,
    aws_endpoint: Option<String>,
    aws_max_attempts: Option<usize>,
    event_bridge_bus: Option<String>,
    event_bridge_api_key: Option<String>,
    #[serde(default)]
    images: RawImages,
    #[serde(default)]
    discord: RawDiscord,
    public_url: Option<String>,
    #[serde(default)]
    polling: RawPolling,
    #[serde(default)]
    drift: RawDrift,
    #[serde(default)]
    sources: Vec<RawSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSource {
    name: Option<String>,
    repo: String,
    url: Option<String>,
    branch: Option<String>,
    path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolling {
    interval: Option<String>,
    jitter: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDrift {
    interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawImages {
    #[serde(default)]
    registry_endpoints: std::collections::BTreeMap<String, String>,
    auth_file: Option<PathBuf>,
    concurrency: Option<usize>,
    buildah: Option<String>,
    kaniko: Option<RawKaniko>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawKaniko {
    cluster: String,
    task_definition: String,
    #[serde(default = "default_kaniko_container")]
    container: String,
    bucket: String,
    #[serde(default = "default_kaniko_prefix")]
    prefix: String,
    #[serde(default)]
    subnets: Vec<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    #[serde(default)]
    assign_public_ip: bool,
}

fn default_kaniko_container() -> String {
    "kaniko".into()
}

fn default_kaniko_prefix() -> String {
    "gantry/kaniko/".into()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawGithub {
    webhook_secrets: Option<Vec<String>>,
    token: Option<String>,
    max_body_bytes: Option<usize>,
    api_url: Option<String>,
    app_id: Option<u64>,
    installation_id: Option<u64>,
    app_private_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawDiscord {
    public_key: Option<String>,
    application_id: Option<String>,
    bot_token: Option<String>,
    guild_id: Option<String>,
    api_url: Option<String>,
    #[serde(default)]
    permissions: Vec<RawPermission>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPermission {
    #[serde(default)]
    apps: Vec<String>,
    #[serde(default)]
    environments: Vec<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    commands: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawQueue {
    max_concurrent: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPipeline {
    step_log_bytes: Option<usize>,
    build_timeout: Option<String>,
    shutdown_grace: Option<String>,
    ecs_poll: Option<String>,
    #[serde(default)]
    retry: RawRetry,
    isolation: Option<String>,
    verify: Option<bool>,
    cache_size: Option<RawSize>,
}

/// A size in gantry.yaml: a number of bytes, or text such as `5 GiB` or `500MB`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

/// Parses a size: bytes, or a number with a unit (`KB`, `MiB`, `GiB`, ...).
fn size(origin: &str, text: &str) -> Result<u64, ConfigError> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return Ok(n);
    }
    text.parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| ConfigError::Value {
            origin: origin.into(),
            message: format!("`{text}` is not a size ({e}); e.g. `5 GiB`, `500MB`, or 0 for none"),
        })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawReporting {
    #[serde(default)]
    retry: RawRetry,
    discord_edit_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawHttp {
    max_connections: Option<usize>,
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    body_budget_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawRetry {
    retries: Option<usize>,
    base: Option<String>,
    cap: Option<String>,
}

/// `reporting` in gantry.yaml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSettings {
    /// Backoff of a failed report (Discord, GitHub, EventBridge).
    pub retry: crate::plan::retry::RetryPolicy,
    /// Shortest gap between edits of a running deployment's Discord message.
    pub discord_edit_interval: std::time::Duration,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            retry: crate::plan::retry::RetryPolicy::REPORTS,
            discord_edit_interval: std::time::Duration::from_secs(3),
        }
    }
}

/// A retry policy from `ORIGIN.{retries,base,cap}` and the variables `vars` names for them
/// (retries, base, cap), each falling back to `default`.
fn retry_policy(
    env: &dyn Fn(&str) -> Option<String>,
    origin: &str,
    [retries_var, base_var, cap_var]: [&str; 3],
    raw: RawRetry,
    default: crate::plan::retry::RetryPolicy,
) -> Result<crate::plan::retry::RetryPolicy, ConfigError> {
    Ok(crate::plan::retry::RetryPolicy {
        retries: number(env, retries_var, &format!("{origin}.retries"), raw.retries)?
            .map_or(default.retries, |n| n.min(100) as u32),
        base: duration(
            &format!("{origin}.base ({base_var})"),
            pick(env, base_var, raw.base),
            default.base,
        )?,
        cap: duration(
            &format!("{origin}.cap ({cap_var})"),
            pick(env, cap_var, raw.cap),
            default.cap,
        )?,
    })
}

/// Variables of Gantry's environment that hold credentials of other tools.
const SECRET_ENVIRONMENT: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
pub const DEFAULT_MAX_BODY: usize = 5 * 1024 * 1024;

impl Config {
    /// Loads the configuration from `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with(file, &|k| std::env::var(k).ok())
    }

    /// As [`Config::load`], reading variables through `env` (for tests).
    pub fn load_with(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file = file.map(Path::to_path_buf).or_else(|| {
            env("GANTRY_CONFIG")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        });
        let raw = match &file {
            Some(path) => read_file(path, env)?,
            None => RawConfig::default(),
        };
        Self::from_raw(raw, env)
    }

    fn from_raw(
        mut raw: RawConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let pick = |var: &str, file_value: Option<String>| pick(env, var, file_value);
        let listen_s = pick("GANTRY_LISTEN", raw.listen).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_s.parse().map_err(|_| ConfigError::Value {
            origin: "listen (GANTRY_LISTEN)".into(),
            message: format!("`{listen_s}` is not an address like 0.0.0.0:8080"),
        })?;
        let data_dir = pick("GANTRY_DATA_DIR", raw.data_dir.map(path_string))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let sources = sources_config(std::mem::take(&mut raw.sources), env)?;
        // With git sources, a local directory only when one is named.
        let manifests = pick("GANTRY_MANIFESTS", raw.manifests.map(path_string))
            .map(PathBuf::from)
            .or_else(|| sources.is_empty().then(|| PathBuf::from("./manifests")));
        let api_token = pick("GANTRY_API_TOKEN", raw.api_token).map(Secret::new);
        let github_app = github_app(&raw.github, env)?;
        let webhook_secrets: Vec<Secret> =
            match env("GANTRY_GITHUB_WEBHOOK_SECRET").filter(|v| !v.is_empty()) {
                Some(list) => list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Secret::new)
                    .collect(),
                None => raw
                    .github
                    .webhook_secrets
                    .unwrap_or_default()
                    .into_iter()
                    .map(Secret::new)
                    .collect(),
            };
        let token = pick("GANTRY_GITHUB_TOKEN", raw.github.token).map(Secret::new);
        let max_body_bytes = number(
            env,
            "GANTRY_MAX_BODY_BYTES",
            "github.maxBodyBytes",
            raw.github.max_body_bytes,
        )?
        .unwrap_or(DEFAULT_MAX_BODY);
        let max_concurrent = number(
            env,
            "GANTRY_MAX_CONCURRENT",
            "queue.maxConcurrent",
            raw.queue.max_concurrent,
        )?
        .unwrap_or(4);
        if max_concurrent == 0 {
            return Err(ConfigError::Value {
                origin: "queue.maxConcurrent (GANTRY_MAX_CONCURRENT)".into(),
                message: "must be at least 1".into(),
            });
        }
        let step_log_bytes = number(
            env,
            "GANTRY_STEP_LOG_BYTES",
            "pipeline.stepLogBytes",
            raw.pipeline.step_log_bytes,
        )?
        .unwrap_or(64 * 1024);
        let build_timeout = duration(
            "pipeline.buildTimeout (GANTRY_BUILD_TIMEOUT)",
            pick("GANTRY_BUILD_TIMEOUT", raw.pipeline.build_timeout),
            Duration::from_secs(30 * 60),
        )?;
        let ecs_poll = duration(
            "pipeline.ecsPoll (GANTRY_ECS_POLL)",
            pick("GANTRY_ECS_POLL", raw.pipeline.ecs_poll),
            Duration::from_secs(5),
        )?;
        let shutdown_grace = duration(
            "pipeline.shutdownGrace (GANTRY_SHUTDOWN_GRACE)",
            pick("GANTRY_SHUTDOWN_GRACE", raw.pipeline.shutdown_grace),
            Duration::from_secs(10),
        )?;
        let images = images_config(raw.images, env, ecs_poll)?;
        let polling = polling_config(raw.polling, env)?;
        let drift = drift_config(raw.drift, env)?;
        let discord = discord_config(raw.discord, env)?;
        let aws_max_attempts = match number(
            env,
            "GANTRY_AWS_MAX_ATTEMPTS",
            "awsMaxAttempts",
            raw.aws_max_attempts,
        )? {
            None => 8,
            Some(n @ 1..=20) => n as u32,
            Some(n) => {
                return Err(ConfigError::Value {
                    origin: "awsMaxAttempts (GANTRY_AWS_MAX_ATTEMPTS)".into(),
                    message: format!("{n} is not between 1 and 20"),
                })
            }
        };
        let http = HttpLimits {
            max_connections: number(
                env,
                "GANTRY_MAX_CONNECTIONS",
                "http.maxConnections",
                raw.http.max_connections,
            )?
            .unwrap_or(512)
            .max(1),
            header_timeout: duration(
                "http.headerTimeout (GANTRY_HEADER_TIMEOUT)",
                pick("GANTRY_HEADER_TIMEOUT", raw.http.header_timeout),
                Duration::from_secs(10),
            )?,
            body_timeout: duration(
                "http.bodyTimeout (GANTRY_BODY_TIMEOUT)",
                pick("GANTRY_BODY_TIMEOUT", raw.http.body_timeout),
                Duration::from_secs(10),
            )?,
            body_budget: number(
                env,
                "GANTRY_BODY_BUDGET_BYTES",
                "http.bodyBudgetBytes",
                raw.http.body_budget_bytes,
            )?
            .unwrap_or(32 * 1024 * 1024)
            .max(max_body_bytes),
        };
        let isolation = match pick("GANTRY_BUILD_ISOLATION", raw.pipeline.isolation) {
            None => crate::pipeline::IsolationMode::Auto,
            Some(v) => v.trim().parse().map_err(|message| ConfigError::Value {
                origin: "pipeline.isolation (GANTRY_BUILD_ISOLATION)".into(),
                message,
            })?,
        };
        let verify = match env("GANTRY_VERIFY").filter(|v| !v.is_empty()) {
            None => raw.pipeline.verify.unwrap_or(true),
            Some(v) => match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(ConfigError::Value {
                        origin: "pipeline.verify (GANTRY_VERIFY)".into(),
                        message: format!("`{other}` is not true or false"),
                    })
                }
            },
        };
        let cache_origin = "pipeline.cacheSize (GANTRY_CACHE_SIZE)";
        let cache_size = match env("GANTRY_CACHE_SIZE").filter(|v| !v.is_empty()) {
            Some(v) => size(cache_origin, &v)?,
            None => match raw.pipeline.cache_size {
                None => 5 << 30,
                Some(RawSize::Bytes(n)) => n,
                Some(RawSize::Text(t)) => size(cache_origin, &t)?,
            },
        };
        let retry = retry_policy(
            env,
            "pipeline.retry",
            ["GANTRY_RETRIES", "GANTRY_RETRY_BASE", "GANTRY_RETRY_CAP"],
            raw.pipeline.retry,
            crate::plan::retry::RetryPolicy::default(),
        )?;
        let reporting = ReportSettings {
            retry: retry_policy(
                env,
                "reporting.retry",
                [
                    "GANTRY_REPORT_RETRIES",
                    "GANTRY_REPORT_RETRY_BASE",
                    "GANTRY_REPORT_RETRY_CAP",
                ],
                raw.reporting.retry,
                ReportSettings::default().retry,
            )?,
            discord_edit_interval: duration(
                "reporting.discordEditInterval (GANTRY_DISCORD_EDIT_INTERVAL)",
                pick(
                    "GANTRY_DISCORD_EDIT_INTERVAL",
                    raw.reporting.discord_edit_interval,
                ),
                ReportSettings::default().discord_edit_interval,
            )?,
        };

        Ok(Self {
            images,
            listen,
            data_dir,
            manifests,
            api_token,
            github: GithubConfig {
                webhook_secrets,
                token,
                max_body_bytes,
                api_url: pick("GANTRY_GITHUB_API_URL", raw.github.api_url),
                app: github_app,
            },
            discord,
            public_url: pick("GANTRY_PUBLIC_URL", raw.public_url)
                .map(|u| u.trim_end_matches('/').to_owned()),
            queue: QueueConfig { max_concurrent },
            pipeline: crate::pipeline::PipelineConfig {
                step_log_bytes,
                build_timeout,
                shutdown_grace,
                ecs_poll,
                retry,
                isolation,
                verify,
                cache_size,
            },
            aws_endpoint: pick("GANTRY_AWS_ENDPOINT_URL", raw.aws_endpoint),
            aws_max_attempts,
            http,
            reporting,
            environment_secrets: SECRET_ENVIRONMENT
                .iter()
                .filter_map(|k| env(k).filter(|v| !v.is_empty()))
                .map(Secret::new)
                .collect(),
            eventbridge_bus: pick("GANTRY_EVENTBRIDGE_BUS", raw.event_bridge_bus),
            eventbridge_api_key: pick("GANTRY_EVENTBRIDGE_API_KEY", raw.event_bridge_api_key)
                .map(Secret::new),
            polling,
            drift,
            sources,
        })
    }

    /// Every secret this configuration holds, for scrubbing output.
    /// Scrubs every secret this configuration holds, and each encoding Gantry itself makes
    /// of one (the GitHub token as git's Basic credential).
    pub fn redactor(&self) -> Redactor {
        let encoded = self.github.token.iter().map(|t| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", t.expose()))
        });
        Redactor::new(
            self.api_token
                .iter()
                .chain(self.eventbridge_api_key.iter())
                .chain(self.github.token.iter())
                .chain(self.github.webhook_secrets.iter())
                .chain(self.discord.bot_token.iter())
                .chain(self.github.app.iter().map(|a| &a.private_key))
                .chain(self.environment_secrets.iter()),
        )
        .with(encoded)
    }
}

/// A non-empty environment variable wins over the file's value.
fn pick(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    file_value: Option<String>,
) -> Option<String> {
    env(var).filter(|v| !v.is_empty()).or(file_value)
}

fn parse_id(origin: &str, v: &str) -> Result<u64, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Value {
        origin: origin.into(),
        message: format!("`{v}` is not a numeric id"),
    })
}

fn discord_config(
    raw: RawDiscord,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DiscordConfig, ConfigError> {
    let pick = |var: &str, file_value: Option<String>| pick(env, var, file_value);
    let public_key = match pick("GANTRY_DISCORD_PUBLIC_KEY", raw.public_key) {
        Some(hex_key) => {
            let bytes = hex::decode(hex_key.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok());
            let key = bytes.ok_or_else(|| ConfigError::Value {
                origin: "discord.publicKey (GANTRY_DISCORD_PUBLIC_KEY)".into(),
                message: "must be the application's public key: 64 hex digits".into(),
            })?;
            Some(key)
        }
        None => None,
    };
    let id = |var: &str, key: &str, v: Option<String>| -> Result<Option<u64>, ConfigError> {
        pick(var, v)
            .map(|v| parse_id(&format!("discord.{key} ({var})"), &v))
            .transpose()
    };
    let mut permissions: Vec<RawPermission> = raw.permissions;
    if let Some(json) = env("GANTRY_DISCORD_PERMISSIONS").filter(|v| !v.is_empty()) {
        permissions = serde_json::from_str(&json).map_err(|e| ConfigError::Value {
            origin: "GANTRY_DISCORD_PERMISSIONS".into(),
            message: format!("must be a JSON list like discord.permissions: {e}"),
        })?;
    }
    let permissions = permissions
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            for g in &p.apps {
                if globset::Glob::new(g).is_err() {
                    return Err(ConfigError::Value {
                        origin: format!("discord.permissions[{i}].apps"),
                        message: format!("`{g}` is not a valid glob"),
                    });
                }
            }
            if p.roles.is_empty() && p.users.is_empty() {
                return Err(ConfigError::Value {
                    origin: format!("discord.permissions[{i}]"),
                    message: "names no roles and no users: it would grant nothing".into(),
                });
            }
            for c in &p.commands {
                if !["deploy", "rollback", "pause", "resume"].contains(&c.as_str()) {
                    return Err(ConfigError::Value {
                        origin: format!("discord.permissions[{i}].commands"),
                        message: format!("`{c}` is not a command that needs a permission (deploy, rollback, pause, resume)"),
                    });
                }
            }
            Ok(crate::plan::chatops::Permission {
                apps: p.apps,
                environments: p.environments,
                roles: p.roles,
                users: p.users,
                commands: p.commands,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(DiscordConfig {
        public_key,
        application_id: id(
            "GANTRY_DISCORD_APPLICATION_ID",
            "applicationId",
            raw.application_id,
        )?,
        bot_token: pick("GANTRY_DISCORD_BOT_TOKEN", raw.bot_token).map(Secret::new),
        guild_id: id("GANTRY_DISCORD_GUILD_ID", "guildId", raw.guild_id)?,
        api_url: pick("GANTRY_DISCORD_API_URL", raw.api_url),
        permissions,
    })
}

fn github_app(
    raw: &RawGithub,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<GithubApp>, ConfigError> {
    let pick = |var: &str, file_value: Option<String>| pick(env, var, file_value);
    let app_id = pick("GANTRY_GITHUB_APP_ID", raw.app_id.map(|v| v.to_string()));
    let installation = pick(
        "GANTRY_GITHUB_INSTALLATION_ID",
        raw.installation_id.map(|v| v.to_string()),
    );
    let key = pick("GANTRY_GITHUB_APP_PRIVATE_KEY", raw.app_private_key.clone());
    match (app_id, installation, key) {
        (None, None, None) => Ok(None),
        (Some(a), Some(i), Some(k)) => Ok(Some(GithubApp {
            app_id: parse_id("github.appId (GANTRY_GITHUB_APP_ID)", &a)?,
            installation_id: parse_id("github.installationId (GANTRY_GITHUB_INSTALLATION_ID)", &i)?,
            private_key: Secret::new(k),
        })),
        _ => Err(ConfigError::Value {
            origin: "github.appId / installationId / appPrivateKey".into(),
            message: "a GitHub App needs all three: the app id, the installation id and the private key (PEM)".into(),
        }),
    }
}

fn images_config(
    raw: RawImages,
    env: &dyn Fn(&str) -> Option<String>,
    poll: Duration,
) -> Result<ImagesConfig, ConfigError> {
    let mut registry_endpoints = raw.registry_endpoints;
    if let Some(list) = env("GANTRY_REGISTRY_ENDPOINTS").filter(|v| !v.is_empty()) {
        for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (host, url) = pair.split_once('=').ok_or_else(|| ConfigError::Value {
                origin: "GANTRY_REGISTRY_ENDPOINTS".into(),
                message: format!("`{pair}` is not REGISTRY=URL"),
            })?;
            registry_endpoints.insert(host.trim().to_owned(), url.trim().to_owned());
        }
    }
    crate::domain::check_endpoints(&registry_endpoints).map_err(|e| ConfigError::Value {
        origin: "images.registryEndpoints (GANTRY_REGISTRY_ENDPOINTS)".into(),
        message: e.to_string(),
    })?;
    let concurrency = number(
        env,
        "GANTRY_IMAGE_CONCURRENCY",
        "images.concurrency",
        raw.concurrency,
    )?
    .unwrap_or(2)
    .max(1);
    let kaniko = raw.kaniko.map(|k| crate::images::kaniko::KanikoConfig {
        cluster: k.cluster,
        task_definition: k.task_definition,
        container: k.container,
        bucket: k.bucket,
        prefix: k.prefix,
        network: (!k.subnets.is_empty()).then_some(crate::domain::NetworkSpec {
            subnets: k.subnets,
            security_groups: k.security_groups,
            assign_public_ip: k.assign_public_ip,
        }),
        poll,
    });
    Ok(ImagesConfig {
        registry_endpoints,
        auth_file: env("GANTRY_REGISTRY_AUTH_FILE")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or(raw.auth_file),
        concurrency,
        buildah: env("GANTRY_BUILDAH")
            .filter(|v| !v.is_empty())
            .or(raw.buildah)
            .unwrap_or_else(|| "buildah".into()),
        kaniko,
    })
}

fn path_string(p: PathBuf) -> String {
    p.to_string_lossy().into_owned()
}

fn number(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    key: &str,
    file_value: Option<usize>,
) -> Result<Option<usize>, ConfigError> {
    match env(var).filter(|v| !v.is_empty()) {
        Some(v) => v.trim().parse().map(Some).map_err(|_| ConfigError::Value {
            origin: var.into(),
            message: format!("`{v}` is not a whole number (it sets {key})"),
        }),
        None => Ok(file_value),
    }
}

/// `sources`, and one more from `GANTRY_SOURCE_REPO` (`_BRANCH`, `_PATH`, `_URL`): validated
/// here, so nothing a configuration says reaches git as an option.
fn sources_config(
    mut raw: Vec<RawSource>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<crate::domain::ManifestSource>, ConfigError> {
    use crate::domain::{valid_repo, valid_source_path, ManifestSource};
    if let Some(repo) = env("GANTRY_SOURCE_REPO").filter(|r| !r.is_empty()) {
        raw.push(RawSource {
            name: None,
            repo,
            url: env("GANTRY_SOURCE_URL"),
            branch: env("GANTRY_SOURCE_BRANCH"),
            path: env("GANTRY_SOURCE_PATH"),
        });
    }
    let mut out: Vec<ManifestSource> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let bad = |field: &str, message: String| ConfigError::Value {
            origin: format!("sources[{i}].{field}"),
            message,
        };
        if !valid_repo(&r.repo) {
            return Err(bad("repo", format!("`{}` is not OWNER/NAME", r.repo)));
        }
        let branch = r.branch.unwrap_or_else(|| "main".into());
        crate::domain::git::valid_ref_name(&branch)
            .map_err(|why| bad("branch", format!("`{branch}` {why}")))?;
        let path = r.path.unwrap_or_else(|| ".".into());
        valid_source_path(&path).map_err(|why| bad("path", format!("`{path}` {why}")))?;
        let url = match r.url {
            None => format!("https://github.com/{}.git", r.repo),
            Some(u) if u.starts_with('/') => format!("file://{u}"),
            Some(u) if u.starts_with("https://") || u.starts_with("file://") => {
                if u["https://".len().min(u.len())..]
                    .split('/')
                    .next()
                    .is_some_and(|h| h.contains('@'))
                    && u.starts_with("https://")
                {
                    return Err(bad(
                        "url",
                        "credentials must not be written in the clone URL; set GANTRY_GITHUB_TOKEN"
                            .into(),
                    ));
                }
                u
            }
            Some(_) => {
                return Err(bad(
                    "url",
                    "use https://, file:// or an absolute path".into(),
                ))
            }
        };
        let name = r.name.unwrap_or_else(|| r.repo.clone());
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(bad("name", "must be 1 to 200 printable characters".into()));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(bad(
                "name",
                format!("two sources are named `{name}`; give each a distinct `name`"),
            ));
        }
        out.push(ManifestSource {
            name,
            repo: r.repo,
            url,
            branch,
            path,
        });
    }
    Ok(out)
}

/// `polling`: every 60 s plus up to a quarter of the interval by default; `0` or `off` turns
/// it off (apps with `source.poll` set are still polled).
fn polling_config(
    raw: RawPolling,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::plan::poll::PollSettings, ConfigError> {
    let pick = |var: &str, file_value: Option<String>| pick(env, var, file_value);
    let interval = match pick("GANTRY_POLL_INTERVAL", raw.interval) {
        Some(v) if v.trim() == "off" => None,
        v => Some(duration(
            "polling.interval (GANTRY_POLL_INTERVAL)",
            v,
            Duration::from_secs(60),
        )?),
    }
    .filter(|d| !d.is_zero());
    let jitter = duration(
        "polling.jitter (GANTRY_POLL_JITTER)",
        pick("GANTRY_POLL_JITTER", raw.jitter),
        interval.map_or(Duration::ZERO, |i| i / 4),
    )?;
    Ok(crate::plan::poll::PollSettings { interval, jitter })
}

/// `drift`: every 5 minutes by default; `0` or `off` checks only on demand.
fn drift_config(
    raw: RawDrift,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<crate::plan::drift::DriftSettings, ConfigError> {
    let interval = match pick(env, "GANTRY_DRIFT_INTERVAL", raw.interval) {
        Some(v) if v.trim() == "off" => None,
        v => Some(duration(
            "drift.interval (GANTRY_DRIFT_INTERVAL)",
            v,
            Duration::from_secs(300),
        )?),
    }
    .filter(|d| !d.is_zero());
    Ok(crate::plan::drift::DriftSettings { interval })
}

fn duration(
    origin: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) => crate::domain::duration::parse(&v).map_err(|e| ConfigError::Value {
            origin: origin.into(),
            message: format!("{e}; {}", crate::domain::duration::HINT),
        }),
    }
}

fn read_file(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<RawConfig, ConfigError> {
    let text = crate::manifests::read_bounded(path, crate::manifests::MAX_MANIFEST_BYTES).map_err(
        |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        },
    )?;
    if let Some(line) = crate::manifests::too_deep(&text, crate::manifests::MAX_DEPTH) {
        return Err(ConfigError::Yaml {
            file: path.to_path_buf(),
            message: format!(
                "line {line}: nests deeper than {} levels",
                crate::manifests::MAX_DEPTH
            ),
        });
    }
    let mut value: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| ConfigError::Yaml {
            file: path.to_path_buf(),
            message: e.to_string(),
        })?;
    if value.is_null() {
        return Ok(RawConfig::default());
    }
    interpolate(&mut value, "", env).map_err(|(p, message)| ConfigError::Field {
        file: path.to_path_buf(),
        path: p,
        message,
    })?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        // serde_path_to_error's path already ends at an unknown field's name.
        let p = e.path().to_string();
        let message = e.inner().to_string();
        ConfigError::Field {
            file: path.to_path_buf(),
            path: p,
            message,
        }
    })
}

/// Replaces `${NAME}` in every string of `value` with the variable's value.
fn interpolate(
    value: &mut serde_yaml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    use serde_yaml::Value;
    match value {
        Value::String(s) => {
            let whole = s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
            let expanded = expand(s, env).map_err(|m| (path.to_owned(), m))?;
            // `key: ${N}` takes the variable's value as YAML would, so numbers stay numbers.
            *value = match serde_yaml::from_str::<serde_yaml::Value>(&expanded) {
                Ok(v @ (Value::Number(_) | Value::Bool(_))) if whole => v,
                _ => Value::String(expanded),
            };
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let child = if path.is_empty() {
                    key.to_owned()
                } else {
                    format!("{path}.{key}")
                };
                interpolate(v, &child, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| "unterminated `${` in value".to_string())?;
            let name = &after[..end];
            let value =
                env(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn starts_from_environment_alone() {
        let env = env_of(&[
            ("GANTRY_LISTEN", "127.0.0.1:9999"),
            ("GANTRY_GITHUB_WEBHOOK_SECRET", "old-secret, new-secret"),
            ("GANTRY_API_TOKEN", "tok-123"),
        ]);
        let c = Config::load_with(None, &env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.github.webhook_secrets.len(), 2);
        assert_eq!(c.github.webhook_secrets[1].expose(), "new-secret");
        assert_eq!(c.github.max_body_bytes, DEFAULT_MAX_BODY);
        assert!(!format!("{c:?}").contains("tok-123"));
    }

    #[test]
    fn file_values_are_interpolated_and_overridden_by_env() {
        let f = write("listen: 127.0.0.1:1\napiToken: ${MY_TOKEN}\ngithub:\n  webhookSecrets: [\"$${literal}\"]\nqueue:\n  maxConcurrent: ${N}\n");
        let c = Config::load_with(
            Some(f.path()),
            &env_of(&[
                ("MY_TOKEN", "abc"),
                ("N", "2"),
                ("GANTRY_LISTEN", "127.0.0.1:2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.api_token.unwrap().expose(), "abc");
        assert_eq!(c.github.webhook_secrets[0].expose(), "${literal}");
        assert_eq!(c.listen.to_string(), "127.0.0.1:2");
        assert_eq!(c.queue.max_concurrent, 2);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_path() {
        let f = write("github:\n  webhookSecret: x\n");
        let e = Config::load_with(Some(f.path()), &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("github.webhookSecret: unknown field `webhookSecret`"),
            "{e}"
        );
    }

    #[test]
    fn missing_variable_names_the_key() {
        let f = write("apiToken: ${NOPE}\n");
        let e = Config::load_with(Some(f.path()), &env_of(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("apiToken: environment variable `NOPE` is not set"),
            "{e}"
        );
    }
}
