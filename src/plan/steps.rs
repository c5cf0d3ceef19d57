//! The ordered steps a deployment of an app runs, derived from what its spec declares.

use crate::domain::{AppSpec, StepKind};

/// Steps in execution order: verify (when the app names AWS resources), fetch, then build,
/// images, services, scheduled jobs and sites when declared, then report (which records the
/// release). Jobs follow the services (a job runs the release only once its services do) and
/// precede the sites, so a failed site sync puts both back.
pub fn steps_for(spec: &AppSpec) -> Vec<StepKind> {
    let mut steps = Vec::new();
    if !spec.services.is_empty()
        || !spec.sites.is_empty()
        || !spec.images.is_empty()
        || !spec.jobs.is_empty()
    {
        steps.push(StepKind::Verify);
    }
    steps.push(StepKind::FetchSource);
    if spec.build.is_some() {
        steps.push(StepKind::Build);
    }
    if !spec.images.is_empty() {
        steps.push(StepKind::PublishImages);
    }
    if !spec.services.is_empty() {
        steps.push(StepKind::RollServices);
    }
    if !spec.jobs.is_empty() {
        steps.push(StepKind::ScheduleJobs);
    }
    if !spec.sites.is_empty() {
        steps.push(StepKind::SyncSites);
    }
    steps.push(StepKind::Report);
    steps
}

/// Steps of a rollback: the recorded release is put back as it was, nothing is built.
pub fn steps_for_restore(spec: &AppSpec) -> Vec<StepKind> {
    steps_for(spec)
        .into_iter()
        .filter(|k| !matches!(k, StepKind::Build | StepKind::PublishImages))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::scaffold_app;

    #[test]
    fn minimal_app_fetches_and_reports() {
        let app = scaffold_app("web", "acme/web", "main");
        let mut spec = app.spec;
        spec.build = None;
        assert_eq!(
            steps_for(&spec),
            vec![StepKind::FetchSource, StepKind::Report]
        );
    }
}
