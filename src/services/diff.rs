//! What deploying an app would change in ECS, per service: desired count and a readable
//! task definition diff against what the service runs (`gantry diff`, Discord's `/diff`);
//! per scheduled job, its rule's settings and task definition against what the rule runs.

use std::collections::BTreeMap;

use crate::domain::taskdef::TaskDefinition;
use crate::domain::AppSpec;
use crate::plan::taskdef_diff::render_task_diff;
use crate::ports::{EcsError, JobScheduler, ScheduleError, ServiceDeployer};
use crate::services::rollout::{RolloutError, TaskSource};

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{path}: {message}")]
    TaskDefinition { path: String, message: String },
    #[error(transparent)]
    Ecs(#[from] EcsError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// The task definition to run, as the roll step loads it (`rollout::load`).
fn load(
    src: &TaskSource<'_>,
    images: &BTreeMap<String, String>,
) -> Result<TaskDefinition, DiffError> {
    crate::services::rollout::load(src, images).map_err(|e| match e {
        RolloutError::Ecs(e) => DiffError::Ecs(e),
        other => DiffError::TaskDefinition {
            path: src.file.to_owned(),
            message: other.to_string(),
        },
    })
}

/// The diff of every service and scheduled job of `app`'s `spec`, with `images` (image name
/// -> reference) substituted. Without `jobs` (no EventBridge access) jobs are listed, not
/// compared.
pub async fn diff(
    app: &str,
    spec: &AppSpec,
    images: &BTreeMap<String, String>,
    ecs: &dyn ServiceDeployer,
    jobs: Option<&dyn JobScheduler>,
) -> Result<String, DiffError> {
    let mut out = String::new();
    for svc in &spec.services {
        let desired = load(&TaskSource::of_service(svc), images)?;
        let state = ecs.describe_service(&svc.cluster, &svc.name).await?;
        let (live, settings) = match &state {
            Some(s) => (
                Some((
                    s.task_definition.clone(),
                    ecs.task_definition(&s.task_definition).await?,
                )),
                crate::plan::service_diff::plan(
                    &crate::plan::service_diff::desired(svc),
                    &s.settings,
                )
                .0,
            ),
            None => (None, Vec::new()),
        };
        let live_ref = live.as_ref().map(|(arn, td)| (arn.as_str(), td));
        out.push_str(&render_task_diff(
            "service",
            &svc.name,
            &svc.cluster,
            live_ref,
            &desired,
            svc.desired_count.map(|c| c as i32),
            &settings,
        ));
    }
    for job in &spec.jobs {
        let Some(rules) = jobs else {
            out.push_str(&format!(
                "job {}: not compared (no EventBridge access)\n",
                job.name
            ));
            continue;
        };
        let desired = load(&TaskSource::of_job(job), images)?;
        let rule = crate::plan::jobs::rule_name(app, &job.name);
        let live = rules.scheduled(&rule).await?;
        let live_td = match live.as_ref().filter(|l| !l.task_definition.is_empty()) {
            Some(l) => Some((
                l.task_definition.clone(),
                ecs.task_definition(&l.task_definition).await?,
            )),
            None => None,
        };
        let first = desired
            .container_definitions
            .first()
            .map(|c| c.name.clone())
            .unwrap_or_default();
        // The revision is the task definition diff's to show; the rest is the rule's.
        let want = crate::plan::jobs::desired(
            job,
            live_td.as_ref().map_or("", |(arn, _)| arn.as_str()),
            &first,
        );
        let settings: Vec<_> = crate::plan::jobs::plan(&want, live.as_ref())
            .into_iter()
            .filter(|c| c.field != "taskDefinitionArn")
            .collect();
        let live_ref = live_td.as_ref().map(|(arn, td)| (arn.as_str(), td));
        out.push_str(&render_task_diff(
            "job",
            &job.name,
            &job.cluster,
            live_ref,
            &desired,
            None,
            &settings,
        ));
    }
    Ok(out)
}
