//! Rolls an app's ECS services: register what changed, run migrations, then create or update
//! each service in declared order and watch the deployment Gantry started to its verdict.
//!
//! Level-triggered: every decision starts from DescribeServices and the live task definition,
//! so a resumed step redoes nothing that already holds (an unchanged task definition is not
//! registered again; a service already on the desired revision is not updated again).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::domain::taskdef::TaskDefinition;
use crate::domain::{AppSpec, ServiceSpec};
use crate::plan::rollout::{judge, Verdict};
use crate::plan::service_diff;
use crate::plan::taskdef_check::check;
use crate::plan::taskdef_diff::{differs, render_diff, with_images};
use crate::ports::StepLog;
use crate::ports::{EcsError, NewService, ServiceDeployer, ServiceUpdate};

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(transparent)]
    Ecs(#[from] EcsError),
    #[error("service `{service}`: {message}")]
    Invalid { service: String, message: String },
    #[error("migration for service `{service}` {outcome}; no service was changed")]
    Migration { service: String, outcome: String },
    #[error("service `{service}` failed to roll out: {reason}; {rollback}")]
    Failed {
        service: String,
        reason: String,
        rollback: String,
    },
    #[error("cancelled")]
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct RolloutOptions {
    /// Per service; default 15 minutes.
    pub timeout: Duration,
    /// First wait between polls; doubles up to six times this.
    pub poll: Duration,
    /// ACTIVE revisions kept per family; older ones no service uses are deregistered.
    pub keep_revisions: usize,
    /// ECS events that cut a watcher's wait short.
    pub signals: Option<std::sync::Arc<super::signals::EcsSignals>>,
    /// Names this rollout (the deployment) in RunTask client tokens, so a migration asked
    /// for again by a retried or resumed step is the same task, never a second run.
    pub run_key: String,
}

/// What one service ended up running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceResult {
    pub name: String,
    pub task_definition: String,
    pub registered: bool,
    pub updated: bool,
}

struct Prepared<'a> {
    spec: &'a ServiceSpec,
    current: Option<String>,
    /// The live service's settings, when it exists.
    live: Option<crate::ports::ServiceSettings>,
    arn: String,
    registered: bool,
}

fn delay(opts: &RolloutOptions, n: u32) -> Duration {
    (opts.poll * 2u32.pow(n.min(3))).min(opts.poll * 6)
}

async fn pause(d: Duration, abort: &CancellationToken) -> Result<(), RolloutError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = abort.cancelled() => Err(RolloutError::Cancelled),
    }
}

/// Where a task definition comes from: a service's or a scheduled job's fields.
pub struct TaskSource<'a> {
    /// The service or job, for messages.
    pub name: &'a str,
    pub file: &'a str,
    /// The content loaded with the manifests.
    pub content: Option<&'a str>,
    pub containers: &'a BTreeMap<String, String>,
    pub allow_literal_env: &'a [String],
}

impl<'a> TaskSource<'a> {
    pub fn of_service(svc: &'a ServiceSpec) -> Self {
        Self {
            name: &svc.name,
            file: &svc.task_definition,
            content: svc.task_definition_content.as_deref(),
            containers: &svc.containers,
            allow_literal_env: &svc.allow_literal_env,
        }
    }

    pub fn of_job(job: &'a crate::domain::JobSpec) -> Self {
        Self {
            name: &job.name,
            file: &job.task_definition,
            content: job.task_definition_content.as_deref(),
            containers: &job.containers,
            allow_literal_env: &job.allow_literal_env,
        }
    }
}

/// The task definition to run: the loaded content, checked, with the release's images.
pub fn load(
    src: &TaskSource<'_>,
    images: &BTreeMap<String, String>,
) -> Result<TaskDefinition, RolloutError> {
    let invalid = |message: String| RolloutError::Invalid {
        service: src.name.to_owned(),
        message,
    };
    // The content loaded with the manifests the deployment was queued from (a deployment
    // queued before Gantry kept it reads the file).
    let text = match src.content {
        Some(text) => text.to_owned(),
        None => std::fs::read_to_string(src.file)
            .map_err(|e| invalid(format!("cannot read {}: {e}", src.file)))?,
    };
    let td = TaskDefinition::from_json(&text).map_err(|e| invalid(format!("{}: {e}", src.file)))?;
    let problems = check(&td, src.allow_literal_env);
    if !problems.is_empty() {
        let list: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect();
        return Err(invalid(format!("{}: {}", src.file, list.join("; "))));
    }
    // Container name -> image reference (by digest once images are built by Gantry).
    let by_container: BTreeMap<String, String> = src
        .containers
        .iter()
        .filter_map(|(c, image)| images.get(image).map(|r| (c.clone(), r.clone())))
        .collect();
    Ok(with_images(&td, &by_container))
}

/// The revision that runs `desired`: `current` when it already is exactly that, else the
/// family's newest revision when that is, else a new registration. Returns the ARN and
/// whether it differs from `current`. `name` prefixes the log lines.
pub async fn ensure_registered(
    ecs: &dyn ServiceDeployer,
    name: &str,
    desired: &TaskDefinition,
    current: Option<&str>,
    log: &StepLog,
) -> Result<(String, bool), RolloutError> {
    let live = match current {
        Some(arn) => Some(ecs.task_definition(arn).await?),
        None => None,
    };
    if let (Some(arn), Some(live)) = (current, &live) {
        if !differs(live, desired) {
            log.line(format!("{name}: task definition unchanged ({arn})"));
            return Ok((arn.to_owned(), false));
        }
    }
    match &live {
        // Nothing to compare with: what it is, not 40 lines of `+`.
        None => {
            let containers: Vec<String> = desired
                .container_definitions
                .iter()
                .map(|c| format!("{} ({})", c.name, c.image))
                .collect();
            log.line(format!(
                "{name}: new task definition of family {}: {}",
                desired.family,
                containers.join(", ")
            ));
        }
        Some(_) => {
            for line in render_diff(live.as_ref(), desired).lines() {
                log.line(format!("{name}: {line}"));
            }
        }
    }
    match newest_if_same(ecs, desired, current).await? {
        Some(arn) => {
            log.line(format!(
                "{name}: reusing {arn}, the family's newest revision, which is exactly this"
            ));
            Ok((arn, true))
        }
        None => {
            let arn = ecs.register(desired).await?;
            log.line(format!("{name}: registered {arn}"));
            Ok((arn, true))
        }
    }
}

/// Rolls every service of `spec`; `images` maps image names to the references to deploy;
/// `pins` (service name -> task definition ARN) makes a service run exactly that revision,
/// as a rollback does, instead of its task definition file.
pub async fn roll(
    spec: &AppSpec,
    images: &BTreeMap<String, String>,
    pins: &BTreeMap<String, String>,
    ecs: &dyn ServiceDeployer,
    opts: &RolloutOptions,
    log: &StepLog,
    abort: &CancellationToken,
) -> Result<Vec<ServiceResult>, RolloutError> {
    // 1. Desired task definitions, registered only where they differ from what runs.
    let mut prepared = Vec::new();
    for svc in &spec.services {
        let state = ecs.describe_service(&svc.cluster, &svc.name).await?;
        let current = state.as_ref().map(|s| s.task_definition.clone());
        if let Some(pinned) = pins.get(&svc.name) {
            log.line(format!("{}: restoring {pinned}", svc.name));
            prepared.push(Prepared {
                spec: svc,
                live: state.as_ref().map(|s| s.settings.clone()),
                current,
                arn: pinned.clone(),
                registered: false,
            });
            continue;
        }
        let desired = load(&TaskSource::of_service(svc), images)?;
        let (arn, registered) =
            ensure_registered(ecs, &svc.name, &desired, current.as_deref(), log).await?;
        prepared.push(Prepared {
            spec: svc,
            live: state.as_ref().map(|s| s.settings.clone()),
            current,
            arn,
            registered,
        });
    }
    // 2. Migrations, all before any service changes.
    for p in prepared.iter().filter(|p| p.registered) {
        let Some(m) = &p.spec.migration else { continue };
        log.line(format!(
            "{}: running migration in container {}: {}",
            p.spec.name,
            m.container,
            m.command.join(" ")
        ));
        let task = ecs
            .run_task(
                &p.spec.cluster,
                &p.arn,
                p.spec.network.as_ref(),
                &m.container,
                &m.command,
                &crate::plan::rollout::client_token(&[
                    &opts.run_key,
                    "migration",
                    &p.spec.name,
                    &p.arn,
                ]),
            )
            .await?;
        let started = Instant::now();
        let mut n = 0;
        let stop = loop {
            if let Some(stop) = ecs.task_stopped(&p.spec.cluster, &task).await? {
                break stop;
            }
            if started.elapsed() >= opts.timeout {
                return Err(RolloutError::Migration {
                    service: p.spec.name.clone(),
                    outcome: format!("did not stop within {}s", opts.timeout.as_secs()),
                });
            }
            pause(delay(opts, n), abort).await?;
            n += 1;
        };
        match stop.exit_code {
            Some(0) => log.line(format!("{}: migration exited 0", p.spec.name)),
            code => {
                let code = code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "without an exit code".into());
                return Err(RolloutError::Migration {
                    service: p.spec.name.clone(),
                    outcome: format!("exited {code} ({})", stop.reason),
                });
            }
        }
    }
    // 3. Services in declared order, each watched to its verdict. What each update changed is
    // kept, so a later service's failure puts the earlier ones back (all or nothing).
    let mut results = Vec::new();
    let mut undo: Vec<(&ServiceSpec, ServiceUpdate)> = Vec::new();
    for p in &prepared {
        let svc = p.spec;
        let want = service_diff::desired(svc);
        let deployment = match &p.live {
            None => {
                log.line(format!(
                    "{}: creating service in cluster {}",
                    svc.name, svc.cluster
                ));
                ecs.create_service(&NewService {
                    cluster: svc.cluster.clone(),
                    name: svc.name.clone(),
                    task_definition: p.arn.clone(),
                    desired_count: svc.desired_count.unwrap_or(1) as i32,
                    settings: want,
                })
                .await?
            }
            Some(live) => {
                // The whole service, not only its task definition: every field that differs.
                let (changes, mut update) = service_diff::plan(&want, live);
                for c in &changes {
                    log.line(format!(
                        "{}: {}: {} -> {}",
                        svc.name, c.field, c.live, c.desired
                    ));
                }
                if p.current.as_deref() != Some(p.arn.as_str()) {
                    update.task_definition = Some(p.arn.clone());
                }
                if update.is_empty() {
                    log.line(format!(
                        "{}: service unchanged (task definition and settings); not updated",
                        svc.name
                    ));
                    results.push(ServiceResult {
                        name: svc.name.clone(),
                        task_definition: p.arn.clone(),
                        registered: false,
                        updated: false,
                    });
                    continue;
                }
                log.line(format!(
                    "{}: updating service ({})",
                    svc.name,
                    summary(&update)
                ));
                let id = ecs.update_service(&svc.cluster, &svc.name, &update).await?;
                // The way back: the live settings and task definition from before.
                let mut back = service_diff::plan(&live.clone().normalised(), &want).1;
                if update.task_definition.is_some() {
                    back.task_definition = p.current.clone();
                }
                if svc.autoscaled {
                    back.desired_count = None;
                }
                undo.push((svc, back));
                if !update.replaces_tasks() {
                    log.line(format!(
                        "{}: applied; nothing in it replaces tasks, so there is no deployment to watch",
                        svc.name
                    ));
                    results.push(ServiceResult {
                        name: svc.name.clone(),
                        task_definition: p.arn.clone(),
                        registered: p.registered,
                        updated: true,
                    });
                    continue;
                }
                id
            }
        };
        log.line(format!("{}: watching deployment {deployment}", svc.name));
        if let Err(failure) = watch(svc, &deployment, ecs, opts, log, abort).await? {
            let rollback = match (&p.current, failure.rolled_back_to) {
                (_, Some(td)) => format!("ECS rolled the service back to {td}"),
                (Some(previous), None) => {
                    let back = ServiceUpdate {
                        task_definition: Some(previous.clone()),
                        ..ServiceUpdate::default()
                    };
                    ecs.update_service(&svc.cluster, &svc.name, &back).await?;
                    format!("Gantry rolled the service back to {previous}")
                }
                (None, None) => "the service was new, so there is nothing to roll back to".into(),
            };
            log.line(format!("{}: {}; {rollback}", svc.name, failure.reason));
            // All or nothing: the services this rollout already changed go back too.
            let mut rollback = rollback;
            let mut restored = Vec::new();
            for (other, back) in undo.iter().rev().filter(|(o, _)| o.name != svc.name) {
                if back.is_empty() {
                    continue;
                }
                ecs.update_service(&other.cluster, &other.name, back)
                    .await?;
                let to = back
                    .task_definition
                    .clone()
                    .unwrap_or_else(|| "its previous settings".into());
                log.line(format!(
                    "{}: put back to {to} ({} failed)",
                    other.name, svc.name
                ));
                restored.push(format!("{} to {to}", other.name));
            }
            if !restored.is_empty() {
                rollback.push_str(&format!(
                    "; the deployment's other services were put back: {}",
                    restored.join(", ")
                ));
            }
            return Err(RolloutError::Failed {
                service: svc.name.clone(),
                reason: failure.reason,
                rollback,
            });
        }
        results.push(ServiceResult {
            name: svc.name.clone(),
            task_definition: p.arn.clone(),
            registered: p.registered,
            updated: true,
        });
    }
    housekeeping(&prepared, ecs, opts.keep_revisions, log).await?;
    Ok(results)
}

/// What an update sends, for the log.
fn summary(u: &ServiceUpdate) -> String {
    let mut parts = Vec::new();
    if let Some(td) = &u.task_definition {
        parts.push(format!("task definition {td}"));
    }
    for (set, name) in [
        (u.desired_count.is_some(), "desired count"),
        (u.network.is_some(), "network"),
        (u.load_balancers.is_some(), "load balancers"),
        (u.health_check_grace_seconds.is_some(), "health-check grace"),
        (u.deployment.is_some(), "deployment configuration"),
        (u.capacity_providers.is_some(), "capacity providers"),
        (u.platform_version.is_some(), "platform version"),
        (u.enable_execute_command.is_some(), "execute command"),
        (u.service_connect.is_some(), "service connect"),
        (u.service_registries.is_some(), "service registries"),
    ] {
        if set {
            parts.push(name.to_owned());
        }
    }
    parts.join(", ")
}

/// The family's newest ACTIVE revision when it is exactly `desired` and not what runs: what a
/// register whose answer was lost (a dropped connection, a crash before the step recorded it)
/// left behind. Reusing it keeps a retried or resumed rollout from registering twice.
async fn newest_if_same(
    ecs: &dyn ServiceDeployer,
    desired: &TaskDefinition,
    current: Option<&str>,
) -> Result<Option<String>, RolloutError> {
    let Some(newest) = ecs.active_revisions(&desired.family).await?.pop() else {
        return Ok(None);
    };
    if Some(newest.as_str()) == current {
        return Ok(None);
    }
    let td = ecs.task_definition(&newest).await?;
    Ok((!differs(&td, desired)).then_some(newest))
}

/// Keeps the newest `keep` ACTIVE revisions of each family the app rolled, and deregisters
/// older ones that no service of the cluster runs.
async fn housekeeping(
    prepared: &[Prepared<'_>],
    ecs: &dyn ServiceDeployer,
    keep: usize,
    log: &StepLog,
) -> Result<(), RolloutError> {
    let mut done = std::collections::BTreeSet::new();
    for p in prepared.iter().filter(|p| p.registered) {
        let family = crate::domain::taskdef::family_of(&p.arn).to_owned();
        if !done.insert((p.spec.cluster.clone(), family.clone())) {
            continue;
        }
        let active = ecs.active_revisions(&family).await?;
        if active.len() <= keep {
            continue;
        }
        let used = ecs.in_use(&p.spec.cluster).await?;
        for arn in &active[..active.len() - keep] {
            if used.contains(arn) {
                continue;
            }
            ecs.deregister(arn).await?;
            log.line(format!("{}: deregistered old revision {arn}", p.spec.name));
        }
    }
    Ok(())
}

/// Why a watched deployment failed, and what ECS already rolled back to.
struct WatchFailure {
    reason: String,
    rolled_back_to: Option<String>,
}

async fn watch(
    svc: &ServiceSpec,
    deployment: &str,
    ecs: &dyn ServiceDeployer,
    opts: &RolloutOptions,
    log: &StepLog,
    abort: &CancellationToken,
) -> Result<Result<(), WatchFailure>, RolloutError> {
    let woken = opts
        .signals
        .as_ref()
        .map(|s| s.waiter(&super::signals::key(&svc.cluster, &svc.name)));
    let started = Instant::now();
    let mut n = 0;
    let mut last = None;
    loop {
        let state = ecs.describe_service(&svc.cluster, &svc.name).await?;
        let deployments = state.map(|s| s.deployments).unwrap_or_default();
        match judge(deployment, &deployments, started.elapsed(), opts.timeout) {
            Verdict::Succeeded => {
                log.line(format!("{}: deployment {deployment} completed", svc.name));
                return Ok(Ok(()));
            }
            Verdict::Failed {
                reason,
                rolled_back_to,
            } => {
                return Ok(Err(WatchFailure {
                    reason,
                    rolled_back_to,
                }))
            }
            Verdict::InProgress { running, desired } => {
                if last != Some((running, desired)) {
                    log.line(format!("{}: {running}/{desired} tasks running", svc.name));
                    last = Some((running, desired));
                }
            }
        }
        match &woken {
            Some(notify) => tokio::select! {
                r = pause(delay(opts, n), abort) => r?,
                _ = notify.notified() => {}
            },
            None => pause(delay(opts, n), abort).await?,
        }
        n += 1;
    }
}
