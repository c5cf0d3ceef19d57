//! What deploying an app would change in ECS, per service: desired count and a readable
//! task definition diff against what the service runs (`gantry diff`, Discord's `/diff`);
//! per scheduled job, its rule's settings and task definition against what the rule runs.

use std::collections::BTreeMap;

use crate::domain::taskdef::TaskDefinition;
use crate::domain::AppSpec;
use crate::plan::taskdef_diff::{render_service_diff, render_task_diff, with_images};
use crate::ports::{EcsError, JobScheduler, ScheduleError, ServiceDeployer};

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{path}: {message}")]
    TaskDefinition { path: String, message: String },
    #[error(transparent)]
    Ecs(#[from] EcsError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

fn load(
    file: &str,
    content: Option<&str>,
    containers: &BTreeMap<String, String>,
    images: &BTreeMap<String, String>,
) -> Result<TaskDefinition, DiffError> {
    let bad = |message: String| DiffError::TaskDefinition {
        path: file.to_owned(),
        message,
    };
    let text = match content {
        Some(text) => text.to_owned(),
        None => std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?,
    };
    let td =
        TaskDefinition::from_json(&text).map_err(|e| bad(format!("not a task definition: {e}")))?;
    Ok(with_images(
        &td,
        &containers
            .iter()
            .filter_map(|(c, image)| images.get(image).map(|r| (c.clone(), r.clone())))
            .collect(),
    ))
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
        let desired = load(
            &svc.task_definition,
            svc.task_definition_content.as_deref(),
            &svc.containers,
            images,
        )?;
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
        out.push_str(&render_service_diff(
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
        let desired = load(
            &job.task_definition,
            job.task_definition_content.as_deref(),
            &job.containers,
            images,
        )?;
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
