//! Judges an ECS rollout from what `DescribeServices` reports, for the deployment Gantry
//! itself started (tracked by id, never by "whatever is PRIMARY now"). Success needs that
//! deployment PRIMARY, `rolloutState` COMPLETED and running = desired; a FAILED rollout, a
//! circuit-breaker rollback (another deployment became PRIMARY), a vanished deployment or the
//! timeout are failures. Pure: the caller supplies the snapshot and the elapsed time.

use std::time::Duration;

/// One entry of a service's `deployments` as DescribeServices reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSnapshot {
    pub id: String,
    /// `PRIMARY`, `ACTIVE` or `INACTIVE`.
    pub status: String,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub rollout_state: String,
    pub rollout_state_reason: Option<String>,
    pub task_definition: String,
    pub desired: i32,
    pub running: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    InProgress {
        running: i32,
        desired: i32,
    },
    Succeeded,
    /// The rollout failed; ECS may already have rolled back (`rolled_back_to`).
    Failed {
        reason: String,
        rolled_back_to: Option<String>,
    },
}

pub fn judge(
    tracked: &str,
    deployments: &[DeploymentSnapshot],
    elapsed: Duration,
    timeout: Duration,
) -> Verdict {
    let primary = deployments.iter().find(|d| d.status == "PRIMARY");
    let Some(mine) = deployments.iter().find(|d| d.id == tracked) else {
        return Verdict::Failed {
            reason: format!("deployment {tracked} disappeared from the service"),
            rolled_back_to: primary.map(|p| p.task_definition.clone()),
        };
    };
    if mine.rollout_state == "FAILED" {
        let rolled_back_to = primary
            .filter(|p| p.id != tracked)
            .map(|p| p.task_definition.clone());
        return Verdict::Failed {
            reason: mine
                .rollout_state_reason
                .clone()
                .unwrap_or_else(|| "the rollout failed".into()),
            rolled_back_to,
        };
    }
    if let Some(p) = primary.filter(|p| p.id != tracked) {
        return Verdict::Failed {
            reason: format!(
                "deployment {} replaced it (circuit breaker rollback or another update)",
                p.id
            ),
            rolled_back_to: Some(p.task_definition.clone()),
        };
    }
    if mine.status == "PRIMARY" && mine.rollout_state == "COMPLETED" && mine.running == mine.desired
    {
        return Verdict::Succeeded;
    }
    if elapsed >= timeout {
        return Verdict::Failed {
            reason: format!(
                "not complete after {}s ({} of {} tasks running)",
                timeout.as_secs(),
                mine.running,
                mine.desired
            ),
            rolled_back_to: None,
        };
    }
    Verdict::InProgress {
        running: mine.running,
        desired: mine.desired,
    }
}

/// How long to wait before poll number `n` (0-based): 5 s, doubling, at most 30 s.
pub fn poll_delay(n: u32) -> Duration {
    Duration::from_secs((5u64 << n.min(3)).min(30))
}

/// A RunTask client token: `parts` hashed to 64 hex characters (ECS's limit), so the same
/// run asked for twice is one task.
pub fn client_token(parts: &[&str]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(parts.join("\0").as_bytes()))
}

#[cfg(test)]
mod tests {

    #[test]
    fn client_tokens_fit_ecs_and_name_one_run() {
        let t = client_token(&["web/12/1700", "migration", "api", "arn:td:3"]);
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(
            t,
            client_token(&["web/12/1700", "migration", "api", "arn:td:3"])
        );
        assert_ne!(
            t,
            client_token(&["web/13/1800", "migration", "api", "arn:td:3"])
        );
        // Parts are separated, so they cannot run into each other.
        assert_ne!(client_token(&["ab", "c"]), client_token(&["a", "bc"]));
    }

    use super::*;

    fn d(id: &str, status: &str, state: &str, td: &str, running: i32) -> DeploymentSnapshot {
        DeploymentSnapshot {
            id: id.into(),
            status: status.into(),
            rollout_state: state.into(),
            rollout_state_reason: (state == "FAILED")
                .then(|| "ECS deployment circuit breaker: tasks failed to start.".into()),
            task_definition: td.into(),
            desired: 2,
            running,
        }
    }

    const T: Duration = Duration::from_secs(900);

    #[test]
    fn success_needs_primary_completed_and_all_tasks_running() {
        let old = d("old", "ACTIVE", "COMPLETED", "web:1", 2);
        assert_eq!(
            judge(
                "new",
                &[d("new", "PRIMARY", "IN_PROGRESS", "web:2", 1), old.clone()],
                Duration::ZERO,
                T
            ),
            Verdict::InProgress {
                running: 1,
                desired: 2
            }
        );
        assert_eq!(
            judge(
                "new",
                &[d("new", "PRIMARY", "COMPLETED", "web:2", 1)],
                Duration::ZERO,
                T
            ),
            Verdict::InProgress {
                running: 1,
                desired: 2
            }
        );
        assert_eq!(
            judge(
                "new",
                &[d("new", "PRIMARY", "COMPLETED", "web:2", 2)],
                Duration::ZERO,
                T
            ),
            Verdict::Succeeded
        );
    }

    #[test]
    fn a_circuit_breaker_rollback_is_never_success() {
        // The rollback deployment completes: "steady state", but not ours.
        let after = [
            d("rb", "PRIMARY", "COMPLETED", "web:1", 2),
            d("new", "ACTIVE", "FAILED", "web:2", 0),
        ];
        let v = judge("new", &after, Duration::ZERO, T);
        assert!(
            matches!(&v, Verdict::Failed { reason, rolled_back_to: Some(td) } if reason.contains("circuit breaker") && td == "web:1"),
            "{v:?}"
        );
        // And once the failed deployment is drained away.
        let v = judge("new", &after[..1], Duration::ZERO, T);
        assert!(
            matches!(&v, Verdict::Failed { reason, .. } if reason.contains("disappeared")),
            "{v:?}"
        );
    }

    #[test]
    fn a_hanging_rollout_times_out() {
        let hang = [
            d("new", "PRIMARY", "IN_PROGRESS", "web:2", 0),
            d("old", "ACTIVE", "COMPLETED", "web:1", 2),
        ];
        assert!(matches!(
            judge("new", &hang, Duration::from_secs(899), T),
            Verdict::InProgress { .. }
        ));
        let v = judge("new", &hang, Duration::from_secs(900), T);
        assert!(
            matches!(&v, Verdict::Failed { reason, rolled_back_to: None } if reason.contains("not complete after 900s")),
            "{v:?}"
        );
    }

    #[test]
    fn polling_backs_off_from_5_to_30_seconds() {
        let delays: Vec<u64> = (0..6).map(|n| poll_delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 30, 30, 30]);
    }
}
