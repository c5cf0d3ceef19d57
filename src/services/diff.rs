//! What deploying an app would change in ECS, per service: desired count and a readable
//! task definition diff against what the service runs (`gantry diff`, Discord's `/diff`).

use std::collections::BTreeMap;

use crate::domain::taskdef::TaskDefinition;
use crate::domain::AppSpec;
use crate::plan::taskdef_diff::{render_service_diff, with_images};
use crate::ports::{EcsError, ServiceDeployer};

#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("{path}: {message}")]
    TaskDefinition { path: String, message: String },
    #[error(transparent)]
    Ecs(#[from] EcsError),
}

/// The diff of every service of `spec`, with `images` (image name -> reference) substituted.
pub async fn diff(
    spec: &AppSpec,
    images: &BTreeMap<String, String>,
    ecs: &dyn ServiceDeployer,
) -> Result<String, DiffError> {
    let mut out = String::new();
    for svc in &spec.services {
        let bad = |message: String| DiffError::TaskDefinition {
            path: svc.task_definition.clone(),
            message,
        };
        let text = match &svc.task_definition_content {
            Some(text) => text.clone(),
            None => {
                std::fs::read_to_string(&svc.task_definition).map_err(|e| bad(e.to_string()))?
            }
        };
        let td = TaskDefinition::from_json(&text)
            .map_err(|e| bad(format!("not a task definition: {e}")))?;
        let desired = with_images(
            &td,
            &svc.containers
                .iter()
                .filter_map(|(c, image)| images.get(image).map(|r| (c.clone(), r.clone())))
                .collect(),
        );
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
    Ok(out)
}
