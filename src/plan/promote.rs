//! Promotion: the deployment that runs one environment's release in another — the same image
//! digests and site content, the target environment's settings, nothing fetched or built.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{AppManifest, DeploymentId, Enqueue, NewDeployment, Paused, Release, Trigger};

/// What is known when deciding an automatic promotion (`promotion.after`).
pub struct AutoFacts<'a> {
    /// How long the source's release must have run healthy.
    pub after: Duration,
    /// The source's newest good release: its deployment and when that deployment finished.
    pub release: Option<(DeploymentId, DateTime<Utc>)>,
    /// The source's newest deployment of any outcome.
    pub source_newest: Option<DeploymentId>,
    pub source_drifted: bool,
    pub target_paused: Option<&'a Paused>,
    /// A deployment of the target is queued, waiting or running.
    pub target_active: bool,
    /// The target already had a promotion of this release (whatever came of it).
    pub already: bool,
    pub now: DateTime<Utc>,
}

/// Whether to promote now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auto {
    /// Promote the release of this deployment of the source.
    Promote(DeploymentId),
    /// Not now, and why.
    Wait(String),
}

/// Promote the source's newest good release once it has run for `after` with nothing newer
/// tried and no drift, unless the target is held or paused, busy, or already had it. A
/// promotion that failed is not tried again: the next release, or a person, moves on.
pub fn auto(f: &AutoFacts<'_>) -> Auto {
    let Some((release, finished)) = f.release else {
        return Auto::Wait("the source has no good release".into());
    };
    if f.already {
        return Auto::Wait(format!("the release of #{release} was promoted already"));
    }
    if f.source_newest != Some(release) {
        return Auto::Wait(format!(
            "the source tried a newer deployment than #{release}: its release is not settled"
        ));
    }
    if f.source_drifted {
        return Auto::Wait("the source has drifted from its release".into());
    }
    if let Some(p) = f.target_paused {
        return Auto::Wait(format!("the target is {}: {}", p.kind.as_str(), p.reason));
    }
    if f.target_active {
        return Auto::Wait("a deployment of the target is in flight".into());
    }
    let due = finished + chrono::Duration::from_std(f.after).unwrap_or(chrono::Duration::MAX);
    if f.now < due {
        return Auto::Wait(format!(
            "the release of #{release} soaks until {}",
            due.format("%Y-%m-%d %H:%M:%S UTC")
        ));
    }
    Auto::Promote(release)
}

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

    #[test]
    fn auto_promotion_waits_for_the_soak_and_respects_holds_and_history() {
        let t0 = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 7, 10, 0, 0).unwrap();
        let base = AutoFacts {
            after: Duration::from_secs(1800),
            release: Some((4, t0)),
            source_newest: Some(4),
            source_drifted: false,
            target_paused: None,
            target_active: false,
            already: false,
            now: t0 + chrono::Duration::minutes(29),
        };
        assert!(
            matches!(auto(&base), Auto::Wait(w) if w.contains("soaks until 2026-12-07 10:30:00"))
        );
        let due = AutoFacts {
            now: t0 + chrono::Duration::minutes(30),
            ..base
        };
        assert_eq!(auto(&due), Auto::Promote(4));
        let hold = Paused {
            app: "shop-production".into(),
            reason: "rolled back".into(),
            actor: "ana".into(),
            at: t0,
            kind: crate::domain::PauseKind::Hold,
        };
        for blocked in [
            AutoFacts {
                already: true,
                ..due
            },
            AutoFacts {
                source_newest: Some(5),
                ..due
            },
            AutoFacts {
                source_drifted: true,
                ..due
            },
            AutoFacts {
                target_paused: Some(&hold),
                ..due
            },
            AutoFacts {
                target_active: true,
                ..due
            },
            AutoFacts {
                release: None,
                ..due
            },
        ] {
            assert!(matches!(auto(&blocked), Auto::Wait(_)));
        }
    }

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
