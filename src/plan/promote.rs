//! Promotion: the deployment that runs one environment's release in another — the same image
//! digests and site content, the target environment's settings, nothing fetched or built.

use crate::domain::{AppManifest, Enqueue, NewDeployment, Release, Trigger};

/// The queue entry promoting `release` (another environment's) to `target`; refused when the
/// release lacks an image or a site the target runs.
pub fn request(
    target: &AppManifest,
    release: &Release,
    trigger: Trigger,
    actor: &str,
) -> Result<Enqueue, String> {
    let spec = &target.spec;
    let missing: Vec<String> = spec
        .images
        .iter()
        .filter(|i| !release.images.contains_key(&i.name))
        .map(|i| format!("image `{}`", i.name))
        .chain(
            spec.sites
                .iter()
                .filter(|s| !release.sites.contains_key(&s.name))
                .map(|s| format!("site `{}`", s.name)),
        )
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "release #{} of `{}` has no {}: promote a release that built them",
            release.deployment_id,
            release.app,
            missing.join(", ")
        ));
    }
    Ok(Enqueue {
        steps: super::gitops::reconfigure_steps(spec),
        deployment: NewDeployment {
            app: target.metadata.name.clone(),
            sha: Some(release.sha.clone()),
            git_ref: release.git_ref.clone(),
            trigger,
            actor: actor.to_owned(),
            delivery_id: None,
            restore_from: None,
            images_from: Some(release.deployment_id),
            spec: spec.clone(),
            manifests: Default::default(),
        },
        refused: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::StepKind;
    use crate::manifests::scaffold_app;

    fn release() -> Release {
        Release {
            app: "shop-staging".into(),
            deployment_id: 4,
            sha: "a".repeat(40),
            git_ref: "refs/heads/main".into(),
            images: [("api".to_owned(), "r/api@sha256:1".to_owned())].into(),
            sites: Default::default(),
            services: Default::default(),
            jobs: Default::default(),
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_promotion_runs_the_release_with_the_targets_settings_and_builds_nothing() {
        let mut target = scaffold_app("shop-production", "acme/shop", "main");
        target.spec.images =
            vec![serde_yaml::from_str("{name: api, repository: r/api, context: api}").unwrap()];
        let e = request(&target, &release(), Trigger::Api, "alice").unwrap();
        let d = &e.deployment;
        assert_eq!(d.app, "shop-production");
        assert_eq!(d.images_from, Some(4));
        assert_eq!(d.sha.as_deref(), Some("a".repeat(40).as_str()));
        assert!(!e.steps.iter().any(|k| matches!(
            k,
            StepKind::FetchSource | StepKind::Build | StepKind::PublishImages
        )));
        target.spec.images[0].name = "web".into();
        let err = request(&target, &release(), Trigger::Api, "alice").unwrap_err();
        assert!(err.contains("image `web`"), "{err}");
    }
}
