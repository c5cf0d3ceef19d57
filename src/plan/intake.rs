//! Decides which apps a push deploys.
//!
//! Rules: a deleted ref never deploys; `refs/heads/B` deploys apps whose source repo is the
//! pushed repo and whose branch is `B`; `refs/tags/T` deploys only apps whose `tags` glob
//! matches `T`; an app with path filters deploys only when a changed file matches one of them
//! (when GitHub lists no files, e.g. a push of more commits than it lists, the filters cannot
//! be checked and do not block). Also: the queue entries a deploy or a rollback creates, and
//! which of a push's entries a pause holds back.

use globset::Glob;

use crate::domain::{
    AppManifest, Deployment, Enqueue, NewDeployment, PauseKind, Paused, PushEvent, Release, Trigger,
};

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

/// The outcome of planning one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntakeDecision {
    /// Deploy these apps (names, in manifest order) at `sha`.
    Deploy { apps: Vec<String>, sha: String },
    /// Deploy nothing, for this reason.
    Ignore { reason: String },
}

pub fn plan_push<'a>(
    apps: impl IntoIterator<Item = &'a AppManifest>,
    push: &PushEvent,
) -> IntakeDecision {
    if push.deleted || push.after == ZERO_SHA {
        return IntakeDecision::Ignore {
            reason: format!("{} was deleted", push.git_ref),
        };
    }
    if RefTarget::parse(&push.git_ref).is_none() {
        return IntakeDecision::Ignore {
            reason: format!("{} is neither a branch nor a tag", push.git_ref),
        };
    }
    let mut tracked_ref = false;
    let mut filtered = Vec::new();
    let mut matched = Vec::new();
    for app in apps {
        let src = &app.spec.source;
        if !src.repo.eq_ignore_ascii_case(&push.repository.full_name) {
            continue;
        }
        if !tracks(app, &push.git_ref) {
            continue;
        }
        tracked_ref = true;
        if paths_match(&src.paths, push) {
            matched.push(app.metadata.name.clone());
        } else {
            filtered.push(app.metadata.name.clone());
        }
    }
    if !matched.is_empty() {
        return IntakeDecision::Deploy {
            apps: matched,
            sha: push.after.clone(),
        };
    }
    let reason = if tracked_ref {
        format!(
            "no changed file matches the path filters of {}",
            filtered.join(", ")
        )
    } else {
        format!(
            "no app tracks {} {}",
            push.repository.full_name, push.git_ref
        )
    };
    IntakeDecision::Ignore { reason }
}

/// Whether `app` deploys pushes of `git_ref` (its branch, or a tag its `tags` glob matches);
/// an environment that takes releases by promotion deploys no push.
pub fn tracks(app: &AppManifest, git_ref: &str) -> bool {
    if !app.spec.follows_branch() {
        return false;
    }
    let src = &app.spec.source;
    match RefTarget::parse(git_ref) {
        Some(RefTarget::Branch(b)) => glob_or_eq(&src.branch, b),
        Some(RefTarget::Tag(t)) => src.tags.as_deref().is_some_and(|p| glob_or_eq(p, t)),
        None => false,
    }
}

/// What an earlier delivery of the same repository, ref and sha means for a new one: the
/// poller and webhooks take in each pushed sha once between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Nothing earlier: plan it as usual.
    New,
    /// A poll of a sha intake already saw (by webhook or poll): record nothing.
    Duplicate,
    /// A webhook for a sha the poller already took in: recorded, deploys nothing.
    Ignore(String),
}

/// `event` is the new delivery's (`push` or `poll`); `earlier` the event and id of an earlier
/// delivery of the same repository, ref and sha, a `poll` one preferred when there are both.
pub fn seen_before(event: &str, earlier: Option<(&str, &str)>) -> Seen {
    match (event, earlier) {
        (_, None) => Seen::New,
        ("poll", Some(_)) => Seen::Duplicate,
        (_, Some(("poll", id))) => {
            Seen::Ignore(format!("already taken in by polling (delivery {id})"))
        }
        _ => Seen::New,
    }
}

#[derive(Debug, Clone, Copy)]
enum RefTarget<'a> {
    Branch(&'a str),
    Tag(&'a str),
}

impl<'a> RefTarget<'a> {
    fn parse(r: &'a str) -> Option<Self> {
        if let Some(b) = r.strip_prefix("refs/heads/") {
            Some(Self::Branch(b))
        } else {
            r.strip_prefix("refs/tags/").map(Self::Tag)
        }
    }
}

fn glob_or_eq(pattern: &str, value: &str) -> bool {
    if !pattern.contains(['*', '?', '[', '{']) {
        return pattern == value;
    }
    Glob::new(pattern)
        .map(|g| g.compile_matcher().is_match(value))
        .unwrap_or(false)
}

fn paths_match(filters: &[String], push: &PushEvent) -> bool {
    any_path_matches(filters, push.changed_paths())
}

/// Whether a change touching `changed` deploys an app with `source.paths` `filters`: no
/// filters, or no list of changed paths, deploys; otherwise one path must match.
pub fn any_path_matches<'a>(filters: &[String], changed: impl Iterator<Item = &'a str>) -> bool {
    if filters.is_empty() {
        return true;
    }
    let mut changed = changed.peekable();
    if changed.peek().is_none() {
        return true;
    }
    let mut builder = globset::GlobSetBuilder::new();
    for f in filters {
        if let Ok(g) = Glob::new(f) {
            builder.add(g);
        }
    }
    let Ok(set) = builder.build() else {
        return true;
    };
    changed.any(|p| set.is_match(p))
}

/// The queue entry for deploying `app` at `sha` (or `git_ref` when the sha is unknown).
pub fn request(
    app: &AppManifest,
    sha: Option<String>,
    git_ref: String,
    trigger: Trigger,
    actor: String,
    delivery_id: Option<String>,
) -> Enqueue {
    Enqueue {
        steps: super::steps::steps_for(&app.spec),
        deployment: NewDeployment {
            app: app.metadata.name.clone(),
            sha,
            git_ref,
            trigger,
            actor,
            delivery_id,
            restore_from: None,
            images_from: None,
            spec: app.spec.clone(),
            manifests: Default::default(),
        },
        refused: None,
    }
}

/// The queue entry that reproduces `target`'s release: its commit and spec, its task
/// definitions and site releases, without building again.
pub fn restore_request(target: &Deployment, release: &Release, actor: String) -> Enqueue {
    Enqueue {
        steps: super::steps::steps_for_restore(&target.spec),
        deployment: NewDeployment {
            app: target.app.clone(),
            sha: Some(release.sha.clone()),
            git_ref: release.git_ref.clone(),
            trigger: Trigger::Rollback,
            actor,
            delivery_id: None,
            restore_from: Some(target.id),
            images_from: None,
            spec: target.spec.clone(),
            // The manifests the restored release ran.
            manifests: target.manifests.clone(),
        },
        refused: None,
    }
}

/// Splits a push's entries into those that go and, when some were held back because their
/// app is paused (after a rollback), why: paused apps take no automatic deploys.
pub fn hold_paused(entries: Vec<Enqueue>, paused: &[Paused]) -> (Vec<Enqueue>, Option<String>) {
    let pause_of = |e: &Enqueue| paused.iter().find(|p| p.app == e.deployment.app);
    let (held, go): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| pause_of(e).is_some());
    let why: Vec<String> = held
        .iter()
        .filter_map(pause_of)
        .map(|p| match p.kind {
            PauseKind::Pause => format!(
                "app `{}` is paused ({}): run `gantry resume {}` to deploy again",
                p.app, p.reason, p.app
            ),
            PauseKind::Hold => format!(
                "app `{}` is held ({}): run `gantry hold release {}` to deploy again",
                p.app, p.reason, p.app
            ),
        })
        .collect();
    (go, (!why.is_empty()).then(|| why.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_and_webhooks_take_a_sha_in_once_between_them() {
        assert_eq!(seen_before("push", None), Seen::New);
        assert_eq!(seen_before("poll", None), Seen::New);
        // A poll of a sha any delivery already brought records nothing.
        assert_eq!(seen_before("poll", Some(("push", "gh-1"))), Seen::Duplicate);
        assert_eq!(
            seen_before("poll", Some(("poll", "poll-1"))),
            Seen::Duplicate
        );
        // A webhook after the poll is recorded and deploys nothing, naming the poll.
        match seen_before("push", Some(("poll", "poll-1"))) {
            Seen::Ignore(why) => assert!(why.contains("poll-1"), "{why}"),
            other => panic!("{other:?}"),
        }
        // Webhook after webhook stays as it was: each delivery id is its own request.
        assert_eq!(seen_before("push", Some(("push", "gh-1"))), Seen::New);
    }
    use crate::manifests::scaffold_app;

    fn app(name: &str, repo: &str, branch: &str) -> AppManifest {
        scaffold_app(name, repo, branch)
    }

    fn push(r: &str, files: &[&str]) -> PushEvent {
        serde_json::from_value(serde_json::json!({
            "ref": r, "after": "a".repeat(40), "deleted": false,
            "repository": {"full_name": "Acme/Web"},
            "commits": [{"id": "x", "added": [], "removed": [], "modified": files}],
            "pusher": {"name": "octo"}
        }))
        .unwrap()
    }

    #[test]
    fn branch_push_deploys_tracking_apps_only() {
        let apps = [
            app("web", "acme/web", "main"),
            app("other", "acme/web", "dev"),
            app("x", "acme/api", "main"),
        ];
        assert_eq!(
            plan_push(&apps, &push("refs/heads/main", &[])),
            IntakeDecision::Deploy {
                apps: vec!["web".into()],
                sha: "a".repeat(40)
            }
        );
    }

    #[test]
    fn deletions_and_untracked_tags_never_deploy() {
        let apps = [app("web", "acme/web", "main")];
        let mut p = push("refs/heads/main", &[]);
        p.deleted = true;
        assert!(matches!(
            plan_push(&apps, &p),
            IntakeDecision::Ignore { .. }
        ));
        assert!(matches!(
            plan_push(&apps, &push("refs/tags/v1", &[])),
            IntakeDecision::Ignore { .. }
        ));
        let mut tagged = app("web", "acme/web", "main");
        tagged.spec.source.tags = Some("v*".into());
        assert!(matches!(
            plan_push([&tagged], &push("refs/tags/v1", &[])),
            IntakeDecision::Deploy { .. }
        ));
    }

    #[test]
    fn path_filters_gate_deploys() {
        let mut a = app("api", "acme/web", "main");
        a.spec.source.paths = vec!["api/**".into()];
        let d = plan_push([&a], &push("refs/heads/main", &["web/index.html"]));
        assert!(
            matches!(&d, IntakeDecision::Ignore { reason } if reason.contains("path filters")),
            "{d:?}"
        );
        assert!(matches!(
            plan_push([&a], &push("refs/heads/main", &["api/main.py"])),
            IntakeDecision::Deploy { .. }
        ));
    }

    #[test]
    fn a_promoted_environment_tracks_no_push() {
        let mut app = crate::manifests::scaffold_app("shop-production", "o/r", "main");
        assert!(tracks(&app, "refs/heads/main"));
        app.spec.promotion = Some(crate::domain::PromotionSpec {
            from: "staging".into(),
            after: None,
        });
        assert!(!tracks(&app, "refs/heads/main"));
    }

    #[test]
    fn paused_apps_are_held_with_the_reason() {
        let e = |app: &str| {
            request(
                &crate::manifests::scaffold_app(app, "o/r", "main"),
                None,
                "refs/heads/main".into(),
                Trigger::Push,
                "octo".into(),
                None,
            )
        };
        let paused = vec![Paused {
            app: "api".into(),
            reason: "rolled back by mona".into(),
            actor: "mona".into(),
            at: chrono::Utc::now(),
            kind: PauseKind::Pause,
        }];
        let (go, why) = hold_paused(vec![e("api"), e("web")], &paused);
        assert_eq!(go.len(), 1);
        assert_eq!(go[0].deployment.app, "web");
        assert_eq!(
            why.as_deref(),
            Some("app `api` is paused (rolled back by mona): run `gantry resume api` to deploy again")
        );
        let (go, why) = hold_paused(vec![e("web")], &paused);
        assert_eq!((go.len(), why), (1, None));
    }
}
