//! Reads how an app's live ECS services differ from the release Gantry last put in place
//! (`plan::drift::service` decides); read-only, one DescribeServices per service and the two
//! task definitions only where the revision differs.

use crate::domain::drift::DriftItem;
use crate::domain::{AppSpec, Release};
use crate::plan::drift::{service, LiveService};
use crate::plan::service_diff::desired;
use crate::ports::{EcsError, ServiceDeployer};

/// The drift of every service of `spec` that `release` recorded a task definition for.
pub async fn services(
    spec: &AppSpec,
    release: &Release,
    ecs: &dyn ServiceDeployer,
) -> Result<Vec<DriftItem>, EcsError> {
    let mut items = Vec::new();
    for svc in &spec.services {
        let Some(released) = release.services.get(&svc.name) else {
            continue;
        };
        let state = ecs.describe_service(&svc.cluster, &svc.name).await?;
        let want = desired(svc);
        let live = state.as_ref().map(|s| LiveService {
            task_definition: &s.task_definition,
            settings: &s.settings,
        });
        let moved = state
            .as_ref()
            .filter(|s| !same_revision(&s.task_definition, released));
        let tds = match moved {
            Some(s) => Some((
                ecs.task_definition(&s.task_definition).await?,
                ecs.task_definition(released).await?,
            )),
            None => None,
        };
        items.extend(service(
            &svc.name,
            released,
            &want,
            live,
            tds.as_ref().map(|(l, r)| (l, r)),
        ));
    }
    Ok(items)
}

fn same_revision(a: &str, b: &str) -> bool {
    let tail = |s: &str| {
        s.rsplit_once("task-definition/")
            .map_or(s, |(_, r)| r)
            .to_owned()
    };
    tail(a) == tail(b)
}
