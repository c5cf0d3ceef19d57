//! What a new revision of the manifests means: which apps get a deployment, and of what kind.
//!
//! Rules, per app of the next revision:
//! - a push that also brought the app's code (manifests in the app's own repository) deploys
//!   it as any push does, with the new manifests;
//! - an app whose rendered desired state is unchanged gets nothing;
//! - an app whose change leaves its build alone (same source, build, images, and the same
//!   sites' output directories and buckets) runs its last release's images and site content
//!   with the new settings: verify, roll, re-apply the sites, report; nothing is built;
//! - any other change deploys the commit of the last release through the whole pipeline
//!   (content-addressed images reuse what has the same inputs), or the branch head when the
//!   app has no release yet;
//! - an app new in the revision deploys its branch head, except when the revision is only
//!   being adopted (the first one Gantry reads of a source, at start): adopting changes
//!   nothing that runs;
//! - an environment that takes releases by promotion gets only changes that build nothing
//!   (with the images and site content of its own last release); anything else waits for
//!   its next promotion.
//!
//! A refused revision records, for each app it would have touched, a failed deployment that
//! ran nothing, so the app's history and reports say why its change did not deploy.

use std::collections::BTreeMap;

use crate::domain::{
    AppManifest, AppSpec, Enqueue, ManifestRevision, NewDeployment, PushEvent, Release, StepKind,
    Trigger,
};

use super::intake::{plan_push, request, IntakeDecision};

/// The inputs of one reconcile.
pub struct Revision<'a> {
    /// Every app in force before the revision (all sources).
    pub previous: &'a [&'a AppManifest],
    /// Every app in force with the revision (all sources), and where each came from.
    pub next: &'a [(&'a AppManifest, ManifestRevision)],
    /// The push that brought the revision, when it came by one (webhook or poll).
    pub push: Option<(&'a PushEvent, Trigger, Option<&'a str>)>,
    /// Each app's newest good release.
    pub releases: &'a BTreeMap<String, Release>,
    /// The first revision read of a source: new apps are adopted, not deployed.
    pub adopting: bool,
    pub actor: &'a str,
}

/// The deployments a revision causes, in the next revision's app order.
pub fn reconcile(r: &Revision<'_>) -> Vec<Enqueue> {
    let pushed: Vec<String> = match r.push {
        Some((push, _, _)) => match plan_push(r.next.iter().map(|(m, _)| *m), push) {
            IntakeDecision::Deploy { apps, .. } => apps,
            IntakeDecision::Ignore { .. } => vec![],
        },
        None => vec![],
    };
    let mut out = Vec::new();
    for (app, revision) in r.next {
        let name = &app.metadata.name;
        let with_revision = |mut e: Enqueue| {
            e.deployment.manifests = revision.clone();
            e
        };
        if let (Some((push, trigger, delivery)), true) = (r.push, pushed.contains(name)) {
            out.push(with_revision(request(
                app,
                Some(push.after.clone()),
                push.git_ref.clone(),
                trigger,
                push.actor(),
                delivery.map(str::to_owned),
            )));
            continue;
        }
        let before = r.previous.iter().find(|p| &p.metadata.name == name);
        let delivery = r.push.and_then(|(_, _, d)| d.map(str::to_owned));
        match (before, r.releases.get(name)) {
            (Some(old), _) if same_desired(&old.spec, &app.spec) => {}
            (None, _) if r.adopting => {}
            // A promoted environment takes new settings with the release it runs, but builds
            // nothing of its own: a change that needs a build, or a first deployment, waits
            // for a promotion.
            (Some(old), Some(release))
                if app.spec.follows_branch() || same_build(&old.spec, &app.spec) =>
            {
                out.push(with_revision(change(
                    app, &old.spec, release, r.actor, delivery,
                )))
            }
            _ if !app.spec.follows_branch() => {}
            _ => out.push(with_revision(request(
                app,
                None,
                format!("refs/heads/{}", app.spec.source.branch),
                Trigger::Manifests,
                r.actor.to_owned(),
                delivery,
            ))),
        }
    }
    out
}

/// The deployment of a manifest change to an app with a release.
fn change(
    app: &AppManifest,
    old: &AppSpec,
    release: &Release,
    actor: &str,
    delivery: Option<String>,
) -> Enqueue {
    let reuse = same_build(old, &app.spec);
    let steps = if reuse {
        reconfigure_steps(&app.spec)
    } else {
        super::steps::steps_for(&app.spec)
    };
    Enqueue {
        steps,
        deployment: NewDeployment {
            app: app.metadata.name.clone(),
            sha: Some(release.sha.clone()),
            git_ref: release.git_ref.clone(),
            trigger: Trigger::Manifests,
            actor: actor.to_owned(),
            delivery_id: delivery,
            restore_from: None,
            images_from: reuse.then_some(release.deployment_id),
            spec: app.spec.clone(),
            manifests: ManifestRevision::default(),
        },
        refused: None,
    }
}

/// The steps of a change that builds nothing: the release's images and site content, put in
/// place with the new settings.
pub fn reconfigure_steps(spec: &AppSpec) -> Vec<StepKind> {
    super::steps::steps_for(spec)
        .into_iter()
        .filter(|k| {
            !matches!(
                k,
                StepKind::FetchSource | StepKind::Build | StepKind::PublishImages
            )
        })
        .collect()
}

/// Whether two specs ask for the same thing running: equal, but for where the manifests were
/// read from (task definition files are compared by content).
pub fn same_desired(a: &AppSpec, b: &AppSpec) -> bool {
    comparable(a) == comparable(b)
}

fn comparable(spec: &AppSpec) -> AppSpec {
    let mut s = spec.clone();
    for svc in &mut s.services {
        svc.task_definition.clear();
    }
    for job in &mut s.jobs {
        job.task_definition.clear();
    }
    s
}

/// Whether a change leaves what the build produces alone: same source, build and images, and
/// each site built from the same directory into the same place.
pub fn same_build(a: &AppSpec, b: &AppSpec) -> bool {
    let sites = |s: &AppSpec| -> Vec<(String, String, String, String)> {
        s.sites
            .iter()
            .map(|x| {
                (
                    x.name.clone(),
                    x.dir.clone(),
                    x.bucket.clone(),
                    x.prefix.clone(),
                )
            })
            .collect()
    };
    a.source.repo == b.source.repo
        && a.source.url == b.source.url
        && a.build == b.build
        && a.images == b.images
        && sites(a) == sites(b)
}

/// The failed records of a refused revision: one per app it touches (an app defined in one of
/// the files with a problem, or, when no known app's file has one, every app of the source).
pub fn refusals(
    apps_of_source: &[(&AppManifest, String)],
    problem_files: &[String],
    revision: &ManifestRevision,
    reason: &str,
    actor: &str,
    delivery: Option<&str>,
) -> Vec<Enqueue> {
    let touched: Vec<&AppManifest> = {
        let hit: Vec<&AppManifest> = apps_of_source
            .iter()
            .filter(|(_, file)| problem_files.iter().any(|p| p == file))
            .map(|(m, _)| *m)
            .collect();
        if hit.is_empty() {
            apps_of_source.iter().map(|(m, _)| *m).collect()
        } else {
            hit
        }
    };
    touched
        .into_iter()
        .map(|app| Enqueue {
            steps: vec![],
            deployment: NewDeployment {
                app: app.metadata.name.clone(),
                sha: None,
                git_ref: format!("refs/heads/{}", app.spec.source.branch),
                trigger: Trigger::Manifests,
                actor: actor.to_owned(),
                delivery_id: delivery.map(str::to_owned),
                restore_from: None,
                images_from: None,
                spec: app.spec.clone(),
                manifests: revision.clone(),
            },
            refused: Some(reason.to_owned()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AppManifest;
    use crate::manifests::scaffold_app;

    fn release(app: &str, id: i64) -> Release {
        Release {
            app: app.into(),
            deployment_id: id,
            sha: "b".repeat(40),
            git_ref: "refs/heads/main".into(),
            images: Default::default(),
            sites: Default::default(),
            services: Default::default(),
            jobs: Default::default(),
            created_at: chrono::Utc::now(),
        }
    }

    fn rev() -> ManifestRevision {
        ManifestRevision::git("acme/config", &"c".repeat(40))
    }

    #[test]
    fn only_changed_apps_deploy_and_a_settings_change_builds_nothing() {
        let web = scaffold_app("web", "acme/web", "main");
        let api = scaffold_app("api", "acme/api", "main");
        let mut api2 = api.clone();
        api2.spec.rollout_timeout = Some(std::time::Duration::from_secs(90));
        let releases: BTreeMap<String, Release> = [("api".to_string(), release("api", 7))].into();
        let next = [(&web, rev()), (&api2, rev())];
        let out = reconcile(&Revision {
            previous: &[&web, &api],
            next: &next,
            push: None,
            releases: &releases,
            adopting: false,
            actor: "octo",
        });
        assert_eq!(out.len(), 1, "{out:?}");
        let d = &out[0].deployment;
        assert_eq!(d.app, "api");
        assert_eq!(d.trigger, Trigger::Manifests);
        assert_eq!(d.images_from, Some(7));
        assert_eq!(d.sha.as_deref(), Some("b".repeat(40).as_str()));
        assert_eq!(d.manifests, rev());
        assert!(!out[0].steps.contains(&StepKind::Build));
        assert!(!out[0].steps.contains(&StepKind::FetchSource));
    }

    #[test]
    fn a_build_change_runs_the_whole_pipeline_at_the_released_commit() {
        let api = scaffold_app("api", "acme/api", "main");
        let mut api2 = api.clone();
        api2.spec
            .build
            .as_mut()
            .unwrap()
            .commands
            .push("make".into());
        let releases: BTreeMap<String, Release> = [("api".to_string(), release("api", 7))].into();
        let next = [(&api2, rev())];
        let out = reconcile(&Revision {
            previous: &[&api],
            next: &next,
            push: None,
            releases: &releases,
            adopting: false,
            actor: "octo",
        });
        assert_eq!(out[0].deployment.images_from, None);
        assert!(out[0].steps.contains(&StepKind::Build));
        assert_eq!(
            out[0].deployment.sha.as_deref(),
            Some("b".repeat(40).as_str())
        );
    }

    #[test]
    fn a_promoted_environment_takes_settings_but_never_builds_from_a_revision() {
        let mut prod = scaffold_app("shop-production", "acme/shop", "main");
        prod.spec.promotion = Some(crate::domain::PromotionSpec {
            from: "staging".into(),
            after: None,
        });
        let mut settings = prod.clone();
        settings.spec.rollout_timeout = Some(std::time::Duration::from_secs(90));
        let mut build = prod.clone();
        build
            .spec
            .build
            .as_mut()
            .unwrap()
            .commands
            .push("make".into());
        let releases: BTreeMap<String, Release> =
            [("shop-production".to_string(), release("shop-production", 9))].into();
        let run = |next: &AppManifest, releases: &BTreeMap<String, Release>, before: bool| {
            let next = [(next, rev())];
            let previous = [&prod];
            reconcile(&Revision {
                previous: if before { &previous } else { &[] },
                next: &next,
                push: None,
                releases,
                adopting: false,
                actor: "octo",
            })
        };
        let out = run(&settings, &releases, true);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].deployment.images_from, Some(9));
        assert!(
            run(&build, &releases, true).is_empty(),
            "waits for a promotion"
        );
        assert!(
            run(&prod, &BTreeMap::new(), false).is_empty(),
            "new: nothing yet"
        );
    }

    #[test]
    fn new_apps_deploy_their_branch_unless_adopted() {
        let api = scaffold_app("api", "acme/api", "main");
        let next = [(&api, rev())];
        let mut r = Revision {
            previous: &[],
            next: &next,
            push: None,
            releases: &BTreeMap::new(),
            adopting: true,
            actor: "octo",
        };
        assert!(reconcile(&r).is_empty());
        r.adopting = false;
        let out = reconcile(&r);
        assert_eq!(out[0].deployment.sha, None);
        assert_eq!(out[0].deployment.git_ref, "refs/heads/main");
    }

    #[test]
    fn paths_alone_are_not_a_change() {
        let mut a = scaffold_app("api", "acme/api", "main").spec;
        a.services.push(crate::domain::ServiceSpec {
            name: "s".into(),
            cluster: "c".into(),
            task_definition: "/data/manifests/x/aaa/td.json".into(),
            containers: Default::default(),
            desired_count: Some(1),
            autoscaled: false,
            network: None,
            load_balancer: None,
            migration: None,
            allow_literal_env: vec![],
            health_check_grace: None,
            deployment: None,
            capacity_providers: vec![],
            platform_version: None,
            enable_execute_command: false,
            service_connect: None,
            service_registries: vec![],
            task_definition_content: Some("{}".into()),
        });
        let mut b = a.clone();
        b.services[0].task_definition = "/data/manifests/x/bbb/td.json".into();
        assert!(same_desired(&a, &b));
        b.services[0].task_definition_content = Some("{\"cpu\":\"512\"}".into());
        assert!(!same_desired(&a, &b));
    }

    #[test]
    fn refusals_name_the_apps_whose_files_have_problems() {
        let web = scaffold_app("web", "acme/web", "main");
        let api = scaffold_app("api", "acme/api", "main");
        let apps = [
            (&web, "apps/web.yaml".into()),
            (&api, "apps/api.yaml".into()),
        ];
        let out = refusals(
            &apps,
            &["apps/api.yaml".into()],
            &rev(),
            "bad",
            "octo",
            None,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].deployment.app, "api");
        assert_eq!(out[0].refused.as_deref(), Some("bad"));
        assert!(out[0].steps.is_empty());
        // A problem in a file no app came from touches every app of the source.
        let out = refusals(
            &apps,
            &["apps/new.yaml".into()],
            &rev(),
            "bad",
            "octo",
            None,
        );
        assert_eq!(out.len(), 2);
    }
}
