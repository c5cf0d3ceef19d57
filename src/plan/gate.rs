//! The gate before a deployment starts: the approvals its environment requires
//! (`spec.approvals`), then its deploy windows (`plan::window`). Decided from the spec the
//! deployment was queued with, what approvals it has, and the time given.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::{Approval, ApprovalSpec, Deployment, DeploymentState, Trigger};

/// How long a deployment waits for its approvals when `approvals.timeout` is not set.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// At most this many approvals may be required.
pub const MAX_REQUIRED: u32 = 10;

/// What the queue does with a deployment that has not started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// It may start.
    Start,
    /// It waits in `state` (`awaiting_approval` or `waiting`), for `reason`.
    Wait {
        state: DeploymentState,
        reason: String,
    },
    /// It ends without starting (rejected, or its approvals timed out).
    Cancel(String),
}

/// Whether deployment `d` must be approved: its environment requires approvals, and it is
/// not a rollback or a self-heal (which put back a release that already ran).
pub fn needs_approval(d: &Deployment) -> bool {
    d.spec.approvals.as_ref().is_some_and(|a| a.required > 0)
        && !matches!(d.trigger, Trigger::Rollback | Trigger::SelfHeal)
}

/// Whether `approver`'s approval of a change by `author` counts: nobody approves their own.
pub fn counts(author: &str, approver: &str) -> bool {
    author != approver
}

fn timeout(spec: &ApprovalSpec) -> Duration {
    spec.timeout
        .as_deref()
        .and_then(|t| crate::domain::duration::parse(t).ok())
        .unwrap_or(DEFAULT_APPROVAL_TIMEOUT)
}

/// The gate's decision for `d` at `now`, given the approvals recorded for it.
pub fn decide(d: &Deployment, approvals: &[Approval], now: DateTime<Utc>) -> Decision {
    if let Some(spec) = d.spec.approvals.as_ref().filter(|_| needs_approval(d)) {
        if let Some(r) = approvals.iter().find(|a| !a.approve) {
            return Decision::Cancel(format!("rejected by {}", r.actor));
        }
        let counted = approvals.iter().filter(|a| a.approve && a.counted).count() as u32;
        if counted < spec.required {
            let deadline = d.created_at
                + chrono::Duration::from_std(timeout(spec)).unwrap_or(chrono::Duration::MAX);
            if now >= deadline {
                return Decision::Cancel(format!(
                    "not approved in time: {counted} of {} approvals by {}",
                    spec.required,
                    deadline.format("%Y-%m-%d %H:%M UTC")
                ));
            }
            let own = approvals.iter().any(|a| a.approve && !a.counted);
            return Decision::Wait {
                state: DeploymentState::AwaitingApproval,
                reason: format!(
                    "awaiting approval: {counted} of {} from {}{}; times out at {}",
                    spec.required,
                    spec.from.join(", "),
                    if own {
                        " (the author's own approval does not count)"
                    } else {
                        ""
                    },
                    deadline.format("%Y-%m-%d %H:%M UTC")
                ),
            };
        }
    }
    match super::window::waits(d, now) {
        Some(reason) => Decision::Wait {
            state: DeploymentState::Waiting,
            reason,
        },
        None => Decision::Start,
    }
}

/// Problems of `spec.approvals`, by field path.
pub fn problems(spec: &ApprovalSpec) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if spec.required == 0 || spec.required > MAX_REQUIRED {
        out.push((
            "spec.approvals.required".to_owned(),
            format!("must be 1 to {MAX_REQUIRED} (leave `approvals` out to require none)"),
        ));
    }
    if spec.from.len() > super::window::MAX_IDENTITIES {
        out.push((
            "spec.approvals.from".to_owned(),
            format!("at most {} identities", super::window::MAX_IDENTITIES),
        ));
    }
    if spec.from.is_empty() {
        out.push((
            "spec.approvals.from".to_owned(),
            "names nobody: no deployment could ever be approved".to_owned(),
        ));
    }
    for (i, who) in spec
        .from
        .iter()
        .take(super::window::MAX_IDENTITIES)
        .enumerate()
    {
        if let Err(e) = super::window::identity(who) {
            out.push((format!("spec.approvals.from[{i}]"), e));
        }
    }
    if let Some(t) = &spec.timeout {
        if let Err(e) = crate::domain::duration::parse(t) {
            out.push(("spec.approvals.timeout".to_owned(), e.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::scaffold_app;
    use chrono::TimeZone;

    fn deployment(trigger: Trigger, actor: &str) -> Deployment {
        let mut spec = scaffold_app("web", "acme/web", "main").spec;
        spec.approvals = Some(ApprovalSpec {
            required: 1,
            from: vec!["cli:alice".into(), "cli:bob".into()],
            timeout: Some("1h".into()),
        });
        Deployment {
            id: 7,
            app: "web".into(),
            sha: None,
            git_ref: "refs/heads/main".into(),
            trigger,
            actor: actor.into(),
            delivery_id: None,
            restore_from: None,
            images_from: None,
            manifests: Default::default(),
            state: DeploymentState::Queued,
            reason: None,
            created_at: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
            started_at: None,
            finished_at: None,
            window_override: None,
            committed_at: None,
            spec,
            steps: vec![],
        }
    }

    fn approval(actor: &str, approve: bool, author: &str) -> Approval {
        Approval {
            actor: actor.into(),
            approve,
            counted: counts(author, actor),
            at: Utc.with_ymd_and_hms(2026, 12, 7, 10, 5, 0).unwrap(),
        }
    }

    #[test]
    fn the_author_alone_never_approves_and_another_approver_starts_it() {
        let d = deployment(Trigger::Api, "cli:alice");
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 10, 10, 0).unwrap();
        assert!(matches!(
            decide(&d, &[], now),
            Decision::Wait {
                state: DeploymentState::AwaitingApproval,
                ..
            }
        ));
        let own = [approval("cli:alice", true, "cli:alice")];
        match decide(&d, &own, now) {
            Decision::Wait { reason, .. } => {
                assert!(reason.contains("0 of 1"), "{reason}");
                assert!(reason.contains("own approval does not count"), "{reason}");
                assert!(
                    reason.contains("times out at 2026-12-07 11:00 UTC"),
                    "{reason}"
                );
            }
            other => panic!("{other:?}"),
        }
        let both = [
            approval("cli:alice", true, "cli:alice"),
            approval("cli:bob", true, "cli:alice"),
        ];
        assert_eq!(decide(&d, &both, now), Decision::Start);
    }

    #[test]
    fn a_rejection_or_the_timeout_cancels_and_restores_never_wait() {
        let d = deployment(Trigger::Push, "github:octocat");
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 10, 10, 0).unwrap();
        assert_eq!(
            decide(&d, &[approval("cli:bob", false, "github:octocat")], now),
            Decision::Cancel("rejected by cli:bob".into())
        );
        let late = Utc.with_ymd_and_hms(2026, 12, 7, 11, 0, 0).unwrap();
        assert!(
            matches!(decide(&d, &[], late), Decision::Cancel(r) if r.contains("not approved in time"))
        );
        assert_eq!(
            decide(&deployment(Trigger::Rollback, "cli:x"), &[], now),
            Decision::Start
        );
        assert_eq!(
            decide(&deployment(Trigger::SelfHeal, "gantry"), &[], now),
            Decision::Start
        );
    }

    #[test]
    fn problems_name_their_fields() {
        let spec = ApprovalSpec {
            required: 0,
            from: vec![],
            timeout: Some("soon".into()),
        };
        let paths: Vec<String> = problems(&spec).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "spec.approvals.required",
                "spec.approvals.from",
                "spec.approvals.timeout"
            ]
        );
    }
}
