//! What reporters say, pure: the Discord message of a deployment (one per deployment, edited in
//! place, so it is rendered whole from the deployment's recorded state every time), and the
//! GitHub commit-status and deployment-status states a deployment maps to.

use chrono::{DateTime, Utc};

use crate::domain::{Deployment, DeploymentEvent, DeploymentState, StepChange, StepState, Trigger};

pub const COLOR_RUNNING: u32 = 0x3b82f6;
pub const COLOR_SUCCESS: u32 = 0x22c55e;
pub const COLOR_FAILURE: u32 = 0xef4444;
pub const COLOR_NEUTRAL: u32 = 0x9ca3af;
pub const COLOR_ROLLBACK: u32 = 0xf59e0b;

/// A Discord embed, in Gantry's terms (the adapter turns it into serenity's builder).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Embed {
    pub title: String,
    pub url: Option<String>,
    pub description: String,
    pub color: u32,
    pub fields: Vec<Field>,
    pub footer: String,
    /// Buttons under the message (Discord components; channel messages only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
}

/// A button under a message: clicking it sends an interaction with `custom_id`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Button {
    pub label: String,
    pub custom_id: String,
    /// Green (approve) or red (reject).
    pub danger: bool,
}

/// The custom ids of a deployment's approval buttons.
pub fn approval_ids(id: crate::domain::DeploymentId) -> (String, String) {
    (
        format!("gantry:approve:{id}"),
        format!("gantry:reject:{id}"),
    )
}

/// The deployment and verdict an approval button stands for.
pub fn parse_approval_id(custom_id: &str) -> Option<(crate::domain::DeploymentId, bool)> {
    let rest = custom_id.strip_prefix("gantry:")?;
    let (verb, id) = rest.split_once(':')?;
    let approve = match verb {
        "approve" => true,
        "reject" => false,
        _ => return None,
    };
    let id: crate::domain::DeploymentId = id.parse().ok().filter(|i| *i > 0)?;
    Some((id, approve))
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Field {
    pub name: String,
    pub value: String,
    pub inline: bool,
}

fn short(sha: &str) -> &str {
    crate::domain::short_sha(sha)
}

/// Discord's limits: 1024 characters a field value, 4096 a description.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let tail: String = s
        .chars()
        .rev()
        .take(max.saturating_sub(2))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…\n{tail}")
}

fn duration(d: &Deployment, i: usize) -> String {
    let s = &d.steps[i];
    match (s.started_at, s.finished_at) {
        (Some(a), Some(b)) => {
            let ms = (b - a).num_milliseconds().max(0);
            if ms < 1000 {
                format!(" {ms} ms")
            } else {
                format!(" {:.1} s", ms as f64 / 1000.0)
            }
        }
        _ => String::new(),
    }
}

/// The first `max` characters of `s` (a diff reads from its top), marked when cut.
fn head(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((at, _)) => format!("{}…\n", &s[..at]),
    }
}

/// The chat notice of a drift: detected (with the diff), a self-heal started, or cleared.
pub fn drift_embed(n: &crate::domain::drift::DriftNotice, environment: &str) -> Embed {
    let (what, color, description) = match n.kind.as_str() {
        "detected" => (
            "drift detected",
            COLOR_ROLLBACK,
            format!(
                "The live state differs from the last release:\n```\n{}```",
                head(&n.diff, 3900)
            ),
        ),
        "healing" => (
            "self-heal started",
            COLOR_RUNNING,
            format!("Redeploying the last release: {}", clip(&n.diff, 200)),
        ),
        _ => (
            "drift cleared",
            COLOR_SUCCESS,
            "The live state matches the last release again.".to_owned(),
        ),
    };
    Embed {
        title: format!("{} → {environment}: {what}", n.app),
        url: None,
        description,
        color,
        fields: vec![],
        footer: format!("gantry drift · notice {}", n.seq),
        buttons: vec![],
    }
}

/// The embed for a deployment as it stands. `repo` is `OWNER/NAME` on GitHub.
pub fn deployment_embed(d: &Deployment, repo: &str) -> Embed {
    let rollback = d.trigger == Trigger::Rollback || d.restore_from.is_some();
    let (verdict, color) = match d.state {
        DeploymentState::Queued => ("queued", COLOR_NEUTRAL),
        DeploymentState::Waiting => ("waiting for its window", COLOR_NEUTRAL),
        DeploymentState::AwaitingApproval => ("awaiting approval", COLOR_ROLLBACK),
        DeploymentState::Running => ("running", COLOR_RUNNING),
        DeploymentState::Succeeded if rollback => ("rolled back", COLOR_ROLLBACK),
        DeploymentState::Succeeded => ("succeeded", COLOR_SUCCESS),
        DeploymentState::Failed => ("failed", COLOR_FAILURE),
        DeploymentState::Superseded => ("superseded", COLOR_NEUTRAL),
    };
    let env = &d.spec.environment;
    let title = format!("{} → {env}: {verdict} (#{})", d.app, d.id);
    let url = d
        .sha
        .as_ref()
        .map(|sha| format!("https://github.com/{repo}/commit/{sha}"));
    // The fetch step's outcome is "<short sha> <title> (<author>)".
    let commit = d
        .steps
        .iter()
        .find(|s| s.kind == crate::domain::StepKind::FetchSource)
        .and_then(|s| s.outcome.clone())
        .filter(|_| d.sha.is_some());
    let mut description = match (&d.sha, &commit) {
        (Some(sha), Some(line)) => {
            let rest = line.strip_prefix(short(sha)).unwrap_or(line).trim();
            format!(
                "[`{}`](https://github.com/{repo}/commit/{sha}) {rest}",
                short(sha)
            )
        }
        (Some(sha), None) => format!("[`{}`](https://github.com/{repo}/commit/{sha})", short(sha)),
        (None, _) => format!("`{}` (commit not resolved yet)", d.git_ref),
    };
    if let Some(from) = d.restore_from {
        description.push_str(&format!(
            "\nRollback: restores the release of deployment #{from}"
        ));
    }
    if let (Some(mrepo), Some(msha)) = (&d.manifests.repo, &d.manifests.sha) {
        description.push_str(&format!(
            "\nManifests: [`{mrepo}@{}`](https://github.com/{mrepo}/commit/{msha})",
            short(msha)
        ));
    }
    match (d.images_from, d.trigger) {
        (Some(from), Trigger::Promotion) => description.push_str(&format!(
            "\nPromotion: the release of deployment #{from} (same images and site content), nothing built"
        )),
        (Some(from), _) => description.push_str(&format!(
            "\nManifest change: runs the images of deployment #{from}, nothing built"
        )),
        (None, _) => {}
    }
    description.push_str(&format!("\nby {} ({})", d.actor, d.trigger.as_str()));
    let steps: Vec<String> = d
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mark = match s.state {
                StepState::Pending => "⏳",
                StepState::Running => "🔄",
                StepState::Succeeded => "✅",
                StepState::Failed => "❌",
            };
            format!("{mark} {}{}", s.kind.as_str(), duration(d, i))
        })
        .collect();
    let mut fields = vec![Field {
        name: "Steps".into(),
        value: clip(&steps.join("\n"), 1024),
        inline: false,
    }];
    if let Some(reason) = &d.reason {
        fields.push(Field {
            name: if d.state == DeploymentState::Failed {
                "Reason"
            } else {
                "Note"
            }
            .into(),
            value: clip(reason, 1024),
            inline: false,
        });
    }
    if d.state == DeploymentState::Failed {
        let tail = d
            .steps
            .iter()
            .find(|s| s.state == StepState::Failed)
            .and_then(|s| s.log.as_deref())
            .map(|log| {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(10)..].join("\n")
            })
            .filter(|t| !t.trim().is_empty());
        if let Some(t) = tail {
            fields.push(Field {
                name: "Last log lines".into(),
                value: format!("```\n{}\n```", clip(&t.replace("```", "'''"), 1000)),
                inline: false,
            });
        }
    }
    let buttons = if d.state == DeploymentState::AwaitingApproval {
        let (approve, reject) = approval_ids(d.id);
        vec![
            Button {
                label: "Approve".into(),
                custom_id: approve,
                danger: false,
            },
            Button {
                label: "Reject".into(),
                custom_id: reject,
                danger: true,
            },
        ]
    } else {
        vec![]
    };
    Embed {
        title,
        url,
        description: clip(&description, 4096),
        color,
        fields,
        footer: format!("gantry · {} · {}", d.app, d.git_ref),
        buttons,
    }
}

/// GitHub commit-status state for a deployment, `None` when nothing should be posted.
pub fn commit_status(state: DeploymentState) -> Option<(&'static str, &'static str)> {
    Some(match state {
        DeploymentState::Queued => ("pending", "queued"),
        DeploymentState::Waiting => ("pending", "waiting for its deploy window"),
        DeploymentState::AwaitingApproval => ("pending", "awaiting approval"),
        DeploymentState::Running => ("pending", "deploying"),
        DeploymentState::Succeeded => ("success", "deployed"),
        DeploymentState::Failed => ("failure", "deployment failed"),
        DeploymentState::Superseded => ("error", "superseded by a newer deployment"),
    })
}

/// GitHub deployment-status state for a deployment.
pub fn deployment_status(state: DeploymentState) -> &'static str {
    match state {
        DeploymentState::Queued | DeploymentState::Waiting | DeploymentState::AwaitingApproval => {
            "queued"
        }
        DeploymentState::Running => "in_progress",
        DeploymentState::Succeeded => "success",
        DeploymentState::Failed => "failure",
        DeploymentState::Superseded => "inactive",
    }
}

/// The states still to post, in order, to move from `last` (what was posted, if anything) to
/// `target`: a deployment first reported after it finished still shows `first` before it.
pub fn transitions(
    last: Option<&str>,
    first: &'static str,
    target: &'static str,
) -> Vec<&'static str> {
    match last {
        Some(l) if l == target => vec![],
        None if target != first => vec![first, target],
        _ => vec![target],
    }
}

/// The events a deployment has published to the bus by now, derived from its recorded state
/// (docs/events.md): `running` when it started, one per finished step (`running`, or `failed`
/// with the reason for the step that failed), and the verdict. The list only grows as the
/// deployment moves on, so a reporter that published the first N publishes the rest.
pub fn bus_events(d: &Deployment) -> Vec<DeploymentEvent> {
    let Some(started) = d.started_at else {
        return Vec::new();
    };
    let mut out = vec![DeploymentEvent::of(
        d,
        DeploymentState::Running,
        None,
        None,
        started,
    )];
    let mut failed_step = false;
    for s in &d.steps {
        let state = match s.state {
            StepState::Succeeded => DeploymentState::Running,
            StepState::Failed => DeploymentState::Failed,
            StepState::Pending | StepState::Running => break,
        };
        failed_step |= state == DeploymentState::Failed;
        let change = StepChange {
            kind: s.kind,
            state: s.state,
            outcome: s.outcome.clone(),
        };
        let reason = (state == DeploymentState::Failed)
            .then(|| d.reason.clone().or_else(|| s.outcome.clone()))
            .flatten();
        out.push(DeploymentEvent::of(
            d,
            state,
            Some(change),
            reason,
            s.finished_at.unwrap_or(started),
        ));
        if failed_step {
            break;
        }
    }
    let at = d.finished_at.unwrap_or(started);
    match d.state {
        DeploymentState::Succeeded => {
            out.push(DeploymentEvent::of(d, d.state, None, None, at));
        }
        DeploymentState::Failed if !failed_step => {
            out.push(DeploymentEvent::of(d, d.state, None, d.reason.clone(), at));
        }
        _ => {}
    }
    out
}

/// When a deployment's Discord message may next be edited: a finished deployment's final state
/// at once; while it runs, at most one edit every `interval` after `last_edit` (what a channel
/// wants instead of an edit per step). `None`: now.
pub fn edit_due(
    d: &Deployment,
    last_edit: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    interval: std::time::Duration,
) -> Option<DateTime<Utc>> {
    if d.state.is_terminal() {
        return None;
    }
    let due = last_edit? + chrono::Duration::from_std(interval).ok()?;
    (due > now).then_some(due)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Step, StepKind};
    use chrono::TimeZone;

    fn at(s: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn step(
        i: u32,
        kind: StepKind,
        state: StepState,
        outcome: Option<&str>,
        log: Option<&str>,
    ) -> Step {
        let done = matches!(state, StepState::Succeeded | StepState::Failed);
        Step {
            index: i,
            kind,
            state,
            attempts: u32::from(state != StepState::Pending),
            started_at: (state != StepState::Pending).then(|| at(i as i64 * 10)),
            finished_at: done.then(|| at(i as i64 * 10 + 4)),
            outcome: outcome.map(str::to_owned),
            next_retry_at: None,
            log: log.map(str::to_owned),
        }
    }

    fn deployment(state: DeploymentState, steps: Vec<Step>) -> Deployment {
        let mut spec = crate::manifests::scaffold_app("portfolio", "hosu/portfolio", "main").spec;
        spec.environment = "production".into();
        Deployment {
            id: 12,
            app: "portfolio".into(),
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
            git_ref: "refs/heads/main".into(),
            trigger: Trigger::Push,
            actor: "hosu".into(),
            delivery_id: None,
            restore_from: None,
            images_from: None,
            manifests: Default::default(),
            state,
            reason: None,
            created_at: at(0),
            started_at: Some(at(0)),
            finished_at: None,
            window_override: None,
            committed_at: None,
            spec,
            steps,
        }
    }

    const FETCHED: &str = "0123456 Add the projects page (Hosu Kim)";

    /// A step that succeeded with `outcome`.
    fn done(i: u32, kind: StepKind, outcome: Option<&str>) -> Step {
        step(i, kind, StepState::Succeeded, outcome, None)
    }

    #[test]
    fn start_embed() {
        let d = deployment(
            DeploymentState::Running,
            vec![
                done(0, StepKind::FetchSource, Some(FETCHED)),
                step(1, StepKind::Build, StepState::Running, None, None),
                step(2, StepKind::Report, StepState::Pending, None, None),
            ],
        );
        insta::assert_yaml_snapshot!(deployment_embed(&d, "hosu/portfolio"));
    }

    #[test]
    fn success_embed() {
        let mut d = deployment(
            DeploymentState::Succeeded,
            vec![
                done(0, StepKind::FetchSource, Some(FETCHED)),
                done(
                    1,
                    StepKind::PublishImages,
                    Some("1 image(s), 1 built, 0 reused"),
                ),
                done(2, StepKind::RollServices, Some("1 service(s), 1 rolled")),
                done(3, StepKind::Report, None),
            ],
        );
        d.finished_at = Some(at(40));
        insta::assert_yaml_snapshot!(deployment_embed(&d, "hosu/portfolio"));
    }

    #[test]
    fn failure_embed() {
        let mut d = deployment(
            DeploymentState::Failed,
            vec![
                done(0, StepKind::FetchSource, Some(FETCHED)),
                step(1, StepKind::Build, StepState::Failed, Some("failed"), Some("$ npm ci\nadded 812 packages\n$ npm run build\nError: Cannot find module 'next'\n```injected```")),
                step(2, StepKind::Report, StepState::Pending, None, None),
            ],
        );
        d.reason = Some("step build failed: command `npm run build` exited with status 1".into());
        insta::assert_yaml_snapshot!(deployment_embed(&d, "hosu/portfolio"));
    }

    #[test]
    fn rollback_embed() {
        let mut d = deployment(
            DeploymentState::Succeeded,
            vec![
                done(0, StepKind::FetchSource, Some(FETCHED)),
                done(1, StepKind::RollServices, Some("1 service(s), 1 rolled")),
                done(2, StepKind::Report, None),
            ],
        );
        d.trigger = Trigger::Rollback;
        d.restore_from = Some(9);
        d.actor = "discord:hosu".into();
        d.reason = Some("automatic deploys paused until `gantry resume portfolio`".into());
        insta::assert_yaml_snapshot!(deployment_embed(&d, "hosu/portfolio"));
    }

    #[test]
    fn each_state_is_posted_once_and_the_first_one_never_skipped() {
        assert_eq!(
            transitions(None, "pending", "success"),
            vec!["pending", "success"]
        );
        assert_eq!(transitions(None, "pending", "pending"), vec!["pending"]);
        assert_eq!(
            transitions(Some("pending"), "pending", "failure"),
            vec!["failure"]
        );
        assert!(transitions(Some("success"), "pending", "success").is_empty());
    }

    #[test]
    fn states_map_to_github() {
        assert_eq!(
            commit_status(DeploymentState::Running),
            Some(("pending", "deploying"))
        );
        assert_eq!(commit_status(DeploymentState::Failed).unwrap().0, "failure");
        assert_eq!(deployment_status(DeploymentState::Succeeded), "success");
    }

    #[test]
    fn bus_events_grow_with_the_deployment_and_end_with_its_verdict() {
        let mut d = deployment(
            DeploymentState::Running,
            vec![
                step(
                    0,
                    StepKind::FetchSource,
                    StepState::Succeeded,
                    Some("abc"),
                    None,
                ),
                step(1, StepKind::Build, StepState::Running, None, None),
                step(2, StepKind::Report, StepState::Pending, None, None),
            ],
        );
        let running = bus_events(&d);
        let kinds = |es: &[DeploymentEvent]| -> Vec<(DeploymentState, Option<StepKind>)> {
            es.iter()
                .map(|e| (e.state, e.step.as_ref().map(|s| s.kind)))
                .collect()
        };
        assert_eq!(
            kinds(&running),
            vec![
                (DeploymentState::Running, None),
                (DeploymentState::Running, Some(StepKind::FetchSource)),
            ]
        );
        d.steps[1] = step(1, StepKind::Build, StepState::Failed, Some("exit 2"), None);
        let failed_step = bus_events(&d);
        assert_eq!(
            failed_step[..2],
            running[..],
            "earlier events do not change"
        );
        assert_eq!(failed_step.len(), 3);
        assert_eq!(failed_step[2].state, DeploymentState::Failed);
        assert_eq!(failed_step[2].reason.as_deref(), Some("exit 2"));
        d.state = DeploymentState::Failed;
        d.reason = Some("build: exit 2".into());
        d.finished_at = Some(at(30));
        let done = bus_events(&d);
        assert_eq!(done.len(), 3, "the failed step is the verdict: {done:#?}");
        // A deployment that fails outside a step still ends with a verdict.
        d.steps[1] = step(1, StepKind::Build, StepState::Pending, None, None);
        assert_eq!(
            kinds(&bus_events(&d)).last(),
            Some(&(DeploymentState::Failed, None))
        );
        // One that never started publishes nothing.
        d.started_at = None;
        assert!(bus_events(&d).is_empty());
    }

    #[test]
    fn running_edits_are_spaced_and_the_final_one_is_not() {
        let iv = std::time::Duration::from_secs(3);
        let d = deployment(DeploymentState::Running, vec![]);
        assert_eq!(edit_due(&d, None, at(0), iv), None);
        assert_eq!(edit_due(&d, Some(at(0)), at(1), iv), Some(at(3)));
        assert_eq!(edit_due(&d, Some(at(0)), at(3), iv), None);
        let done = deployment(DeploymentState::Succeeded, vec![]);
        assert_eq!(edit_due(&done, Some(at(0)), at(1), iv), None);
    }
}
