//! Points an app's scheduled jobs at a release: each job's task definition registered where
//! it changed (as for services), its EventBridge rule created or updated only where the
//! rule differs, and rules of jobs no longer in the manifest removed. Level-triggered: every
//! decision starts from the live rule, so a resumed step redoes nothing that already holds.

use std::collections::BTreeMap;

use crate::domain::AppSpec;
use crate::plan::jobs;
use crate::ports::{JobScheduler, ScheduleError, ServiceDeployer, StepLog};
use crate::services::rollout::{ensure_registered, load, RolloutError, TaskSource};

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    TaskDefinition(#[from] RolloutError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error("job `{job}`: {message}")]
    Invalid { job: String, message: String },
}

impl JobError {
    pub fn is_transient(&self) -> bool {
        match self {
            Self::TaskDefinition(RolloutError::Ecs(e)) => e.transient,
            Self::Schedule(e) => e.transient,
            _ => false,
        }
    }
}

/// Job name -> the task definition ARN its rule now runs.
pub type Scheduled = BTreeMap<String, String>;

/// Schedules every job of `app`'s `spec` with `images`; `pins` (job name -> task definition
/// ARN) makes a job run exactly that revision, as a rollback does.
pub async fn schedule(
    app: &str,
    spec: &AppSpec,
    images: &BTreeMap<String, String>,
    pins: &BTreeMap<String, String>,
    ecs: &dyn ServiceDeployer,
    rules: &dyn JobScheduler,
    log: &StepLog,
) -> Result<Scheduled, JobError> {
    let mut done = Scheduled::new();
    for job in &spec.jobs {
        let rule = jobs::rule_name(app, &job.name);
        let live = rules.scheduled(&rule).await?;
        let (arn, first_container) = match pins.get(&job.name) {
            Some(pinned) => {
                log.line(format!("{}: restoring {pinned}", job.name));
                let td = ecs
                    .task_definition(pinned)
                    .await
                    .map_err(RolloutError::Ecs)?;
                (pinned.clone(), first_container(&td, &job.name)?)
            }
            None => {
                let desired = load(&TaskSource::of_job(job), images)?;
                let current = live
                    .as_ref()
                    .map(|l| l.task_definition.as_str())
                    .filter(|a| !a.is_empty());
                let (arn, _) = ensure_registered(ecs, &job.name, &desired, current, log).await?;
                (arn, first_container(&desired, &job.name)?)
            }
        };
        let want = jobs::desired(job, &arn, &first_container);
        let changes = jobs::plan(&want, live.as_ref());
        if changes.is_empty() {
            log.line(format!(
                "{}: rule {rule} unchanged ({})",
                job.name, job.schedule
            ));
        } else {
            for c in &changes {
                log.line(format!(
                    "{}: {}: {} -> {}",
                    job.name, c.field, c.live, c.desired
                ));
            }
            rules
                .schedule(&rule, &jobs::description(app, &job.name), &want)
                .await?;
            log.line(format!("{}: rule {rule} put ({})", job.name, job.schedule));
        }
        done.insert(job.name.clone(), arn);
    }
    // Rules of this app's jobs that the manifest no longer has.
    for (rule, description) in rules.rules(&jobs::rule_name(app, "")).await? {
        let Some((owner, job)) = jobs::owner(&description) else {
            continue;
        };
        if owner == app && !spec.jobs.iter().any(|j| j.name == job) {
            rules.unschedule(&rule).await?;
            log.line(format!(
                "{job}: removed rule {rule} (the job is no longer in the manifest)"
            ));
        }
    }
    Ok(done)
}

fn first_container(
    td: &crate::domain::taskdef::TaskDefinition,
    job: &str,
) -> Result<String, JobError> {
    td.container_definitions
        .first()
        .map(|c| c.name.clone())
        .ok_or_else(|| JobError::Invalid {
            job: job.to_owned(),
            message: "the task definition has no container".into(),
        })
}
