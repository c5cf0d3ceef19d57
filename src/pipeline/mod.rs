//! The deployment engine: runs a deployment's recorded steps in order, each idempotent,
//! recording start, end, outcome and a bounded log for every one.
//!
//! A step that already succeeded is skipped, so a deployment resumed after a crash continues
//! at its first unfinished step. Shutdown has two phases: `stop` (no new step starts) and
//! `abort` (the running step is killed and left `running`, to be resumed on restart).
//! The engine never decides what to deploy; the queue hands it deployments.

mod steps;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::{Deployment, DeploymentState, StepState};
use crate::ports::{Cdn, CommandRunner, ObjectStore, ServiceDeployer, SourceFetcher, StepLog};
use crate::secret::Redactor;
use crate::store::{StepEnd, StepRetry, Store, StoreError};
pub use steps::StepError;

/// The engine's settings (`pipeline.*` in gantry.yaml).
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Bytes of output kept per step log (the tail is kept).
    pub step_log_bytes: usize,
    /// Default build timeout when an app sets none.
    pub build_timeout: Duration,
    /// How long shutdown waits for running steps before leaving them to resume.
    pub shutdown_grace: Duration,
    /// First wait between ECS rollout polls; it doubles up to six times this (5 s -> 30 s).
    pub ecs_poll: Duration,
    /// How transient step failures are retried.
    pub retry: crate::plan::retry::RetryPolicy,
    /// How build commands are kept from the daemon (`pipeline.isolation`).
    pub isolation: IsolationMode,
    /// Whether a deployment starts by verifying the live account (`pipeline.verify`).
    pub verify: bool,
    /// Bytes the build caches may take in all (`pipeline.cacheSize`); 0: no build caches.
    pub cache_size: u64,
}

/// `pipeline.isolation`: what a repository's build commands run inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationMode {
    /// A sandbox when this machine can make one (root, bubblewrap), else none, with a
    /// warning at start.
    Auto,
    /// A sandbox, or refuse to start.
    Bubblewrap,
    /// No sandbox: builds run as the daemon's user and could read its environment. Only for
    /// trusted repositories, or where namespaces do not exist (Fargate: use kaniko there).
    None,
}

impl std::str::FromStr for IsolationMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "bubblewrap" => Ok(Self::Bubblewrap),
            "none" => Ok(Self::None),
            other => Err(format!(
                "`{other}` is not an isolation mode: use auto, bubblewrap or none"
            )),
        }
    }
}

/// An error with the causes under it, `: `-separated, each once (a `#[error(transparent)]`
/// or a message that already quotes its source is not repeated).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = e.source();
    }
    out
}

/// How a run of the engine ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded,
    Failed(String),
    /// Stopped by shutdown; the deployment stays `running` and resumes on restart.
    Interrupted,
}

/// Cancellation for one run: `stop` lets the current step finish, `abort` kills it.
#[derive(Clone, Default)]
pub struct Cancel {
    pub stop: CancellationToken,
    pub abort: CancellationToken,
}

/// The site ports, when the daemon has AWS configured.
#[derive(Clone)]
pub struct SitePorts {
    pub objects: Arc<dyn ObjectStore>,
    pub cdn: Arc<dyn Cdn>,
}

/// Everything the steps reach the outside world through. The optional ones are absent on a
/// daemon without AWS or image builders; a step that needs one then fails with why.
#[derive(Clone)]
pub struct Ports {
    pub fetcher: Arc<dyn SourceFetcher>,
    pub runner: Arc<dyn CommandRunner>,
    pub sites: Option<SitePorts>,
    pub ecs: Option<Arc<dyn ServiceDeployer>>,
    /// Scheduled jobs' EventBridge rules.
    pub jobs: Option<Arc<dyn crate::ports::JobScheduler>>,
    pub images: Option<crate::images::ImagePorts>,
    /// ECS events (from `/hooks/eventbridge`) that wake rollout watchers early.
    pub signals: Option<Arc<crate::services::signals::EcsSignals>>,
    /// The live account, for the verify step.
    pub inventory: Option<Arc<dyn crate::ports::Inventory>>,
    /// Build caches kept between an app's deployments (none when `pipeline.cacheSize` is 0).
    pub build_cache: Option<Arc<dyn crate::ports::BuildCache>>,
}

pub struct Engine {
    store: Arc<dyn Store>,
    ports: Ports,
    work_dir: PathBuf,
    config: PipelineConfig,
    redactor: Redactor,
    metrics: Arc<dyn crate::ports::Metrics>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        ports: Ports,
        work_dir: PathBuf,
        config: PipelineConfig,
        redactor: Redactor,
    ) -> Self {
        Self {
            store,
            ports,
            work_dir,
            config,
            redactor,
            metrics: Arc::new(crate::ports::NoMetrics),
        }
    }

    /// Counts deployments and steps into `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<dyn crate::ports::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    fn count_end(&self, dep: &Deployment, state: DeploymentState) {
        let seconds = dep
            .started_at
            .map(|s| (chrono::Utc::now() - s).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or_default();
        self.metrics
            .deployment_finished(&dep.app, &dep.spec.environment, state.as_str(), seconds);
    }

    /// Runs (or resumes) a deployment that the store has marked `running`.
    #[tracing::instrument(skip_all, fields(deployment.id = dep.id, app = %dep.app))]
    pub async fn run(&self, mut dep: Deployment, cancel: Cancel) -> Result<RunOutcome, StoreError> {
        let workspace = self.work_dir.join(dep.id.to_string());
        let started = std::time::Instant::now();
        for i in 0..dep.steps.len() {
            let step = dep.steps[i].clone();
            if step.state == StepState::Succeeded {
                continue;
            }
            if cancel.stop.is_cancelled() {
                tracing::info!(step = %step.kind, "shutting down before step; deployment will resume");
                return Ok(RunOutcome::Interrupted);
            }
            // One log for every attempt of this run, so a retry shows what came before it.
            let log = StepLog::new(self.config.step_log_bytes, self.redactor.clone());
            let mut retry = 0;
            let result = loop {
                let attempt = self.store.step_started(dep.id, step.index).await?;
                if retry > 0 {
                    log.line(format!("{}: attempt {attempt}", step.kind));
                } else if attempt > 1 {
                    log.line(format!("resuming {}: attempt {attempt}", step.kind));
                }
                tracing::info!(step = %step.kind, attempt, git.sha = dep.sha.as_deref().unwrap_or(""), "step started");
                let step_started = std::time::Instant::now();
                let result = self
                    .with_log_flusher(
                        &dep,
                        step.index,
                        &log,
                        steps::run(step.kind, self.context(&dep, &workspace, &log, &cancel)),
                    )
                    .await;
                let duration_ms = step_started.elapsed().as_millis() as u64;
                let err = match result {
                    Err(err) if err.is_transient() => err,
                    other => break (other, duration_ms),
                };
                retry += 1;
                let Some(wait) = self.config.retry.backoff(retry, fastrand::f64()) else {
                    log.line(format!(
                        "giving up after {attempt} attempts: the error was transient every time"
                    ));
                    break (Err(err), duration_ms);
                };
                let reason = self.redactor.redact(&err.to_string());
                let next_at = chrono::Utc::now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero());
                log.line(format!(
                    "attempt {attempt} failed with a transient error: {reason}"
                ));
                log.line(format!(
                    "retry {retry} of {} in {} (at {})",
                    self.config.retry.retries,
                    crate::domain::duration::format(Duration::from_millis(wait.as_millis() as u64)),
                    next_at.format("%H:%M:%S UTC")
                ));
                tracing::warn!(step = %step.kind, attempt, retry, wait_ms = wait.as_millis() as u64, error = %reason, "transient step failure; retrying");
                self.store
                    .step_retrying(
                        dep.id,
                        step.index,
                        StepRetry {
                            outcome: format!("retrying after: {reason}"),
                            log: log.snapshot(),
                            next_at,
                        },
                    )
                    .await?;
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    // Shutdown while waiting: the step is `running` and runs again on restart.
                    _ = cancel.stop.cancelled() => break (Err(StepError::Cancelled), 0),
                }
            };
            let (result, duration_ms) = result;
            match result {
                Ok(out) => {
                    if let Some(sha) = out.sha {
                        self.store.set_sha(dep.id, &sha, out.committed_at).await?;
                        dep.sha = Some(sha);
                        dep.committed_at = out.committed_at;
                    }
                    tracing::info!(step = %step.kind, duration_ms, outcome = %out.summary, "step succeeded");
                    self.metrics.step_finished(
                        step.kind.as_str(),
                        "succeeded",
                        duration_ms as f64 / 1000.0,
                    );
                    self.store
                        .step_finished(
                            dep.id,
                            step.index,
                            StepEnd {
                                state: StepState::Succeeded,
                                outcome: out.summary,
                                log: log.snapshot(),
                            },
                        )
                        .await?;
                }
                Err(StepError::Cancelled) => {
                    log.line("interrupted by shutdown; this step runs again on restart");
                    self.store
                        .step_log(dep.id, step.index, log.snapshot())
                        .await?;
                    tracing::info!(step = %step.kind, duration_ms, "step interrupted; deployment will resume");
                    return Ok(RunOutcome::Interrupted);
                }
                Err(err) => {
                    let mut reason = format!(
                        "step {} failed: {}",
                        step.kind,
                        self.redactor.redact(&error_chain(&err))
                    );
                    // All or nothing: what earlier steps of this deployment changed goes back.
                    let ctx = self.context(&dep, &workspace, &log, &cancel);
                    if let Some(note) = steps::put_back(&ctx, step.kind).await {
                        reason.push_str("; ");
                        reason.push_str(&self.redactor.redact(&note));
                    }
                    tracing::warn!(step = %step.kind, duration_ms, error = %reason, "step failed");
                    self.metrics.step_finished(
                        step.kind.as_str(),
                        "failed",
                        duration_ms as f64 / 1000.0,
                    );
                    self.store
                        .step_finished(
                            dep.id,
                            step.index,
                            StepEnd {
                                state: StepState::Failed,
                                outcome: reason.clone(),
                                log: log.snapshot(),
                            },
                        )
                        .await?;
                    self.store
                        .finish(dep.id, DeploymentState::Failed, Some(reason.clone()))
                        .await?;
                    self.count_end(&dep, DeploymentState::Failed);
                    self.cleanup(&workspace).await;
                    return Ok(RunOutcome::Failed(reason));
                }
            }
        }
        self.store
            .finish(dep.id, DeploymentState::Succeeded, None)
            .await?;
        self.count_end(&dep, DeploymentState::Succeeded);
        tracing::info!(
            duration_ms = started.elapsed().as_millis() as u64,
            "deployment succeeded"
        );
        self.cleanup(&workspace).await;
        Ok(RunOutcome::Succeeded)
    }

    fn context<'a>(
        &'a self,
        dep: &'a Deployment,
        workspace: &'a std::path::Path,
        log: &'a StepLog,
        cancel: &'a Cancel,
    ) -> steps::StepContext<'a> {
        steps::StepContext {
            dep,
            workspace,
            private_dir: self.work_dir.parent(),
            log,
            abort: &cancel.abort,
            fetcher: self.ports.fetcher.as_ref(),
            runner: self.ports.runner.as_ref(),
            store: self.store.as_ref(),
            sites: self.ports.sites.as_ref(),
            ecs: self.ports.ecs.as_deref(),
            jobs: self.ports.jobs.as_deref(),
            images: self.ports.images.as_ref(),
            signals: self.ports.signals.as_ref(),
            inventory: self.ports.inventory.as_deref(),
            build_cache: self.ports.build_cache.as_deref(),
            config: &self.config,
        }
    }

    /// Runs `fut` while persisting the log every second, so a crash keeps what was printed.
    async fn with_log_flusher<F: std::future::Future>(
        &self,
        dep: &Deployment,
        index: u32,
        log: &StepLog,
        fut: F,
    ) -> F::Output {
        let flush = async {
            let mut seen = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let v = log.version();
                if v != seen {
                    seen = v;
                    if let Err(e) = self.store.step_log(dep.id, index, log.snapshot()).await {
                        tracing::warn!(error = %e, "cannot persist step log");
                    }
                }
            }
        };
        tokio::select! {
            out = fut => out,
            _ = flush => unreachable!("the flusher never ends"),
        }
    }

    async fn cleanup(&self, workspace: &std::path::Path) {
        if workspace.exists() {
            if let Err(e) = tokio::fs::remove_dir_all(workspace).await {
                tracing::warn!(error = %e, path = %workspace.display(), "cannot remove workspace");
            }
        }
    }
}
