//! DORA's four keys from the store's history, per app (each environment is an app of its
//! own): deployment frequency, lead time for changes (commit time to live), change failure
//! rate and time to restore. Pure: rows and a window in, figures out.
//!
//! A change is a deployment that put something new in place (push, poll, API, Discord,
//! manifests, promotion); rollbacks and self-heals restore, they are not changes. Only
//! changes that ended in the window count; a failed change is restored by the app's next
//! successful deployment of any kind.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{DeploymentId, DeploymentState, Trigger};

/// What the figures need of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: DeploymentId,
    pub app: String,
    pub trigger: Trigger,
    pub state: DeploymentState,
    pub finished_at: Option<DateTime<Utc>>,
    pub committed_at: Option<DateTime<Utc>>,
    /// A promotion's source deployment (its commit time is the change's).
    pub images_from: Option<DeploymentId>,
}

/// One app's figures over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub app: String,
    /// Successful changes in the window.
    pub deployments: usize,
    /// Successful changes per day.
    pub deployments_per_day: f64,
    /// Median commit-to-live time of successful changes, in seconds.
    pub lead_time_seconds: Option<i64>,
    /// Failed changes in the window.
    pub failures: usize,
    /// Failed changes over all changes.
    pub change_failure_rate: Option<f64>,
    /// Median time from a failed change to the app's next successful deployment, in seconds.
    pub time_to_restore_seconds: Option<i64>,
    /// Failed changes not restored yet.
    pub unrestored: usize,
}

fn is_change(t: Trigger) -> bool {
    !matches!(t, Trigger::Rollback | Trigger::SelfHeal)
}

fn median(mut v: Vec<i64>) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2
    })
}

/// The figures of every app with a change that ended in `[since, until)`. `rows` may hold
/// deployments outside the window (earlier promotion sources, later restores).
pub fn figures(rows: &[Row], since: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Figures> {
    let by_id: HashMap<DeploymentId, &Row> = rows.iter().map(|r| (r.id, r)).collect();
    let mut per_app: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        per_app.entry(r.app.as_str()).or_default().push(r);
    }
    let days = ((until - since).num_seconds() as f64 / 86_400.0).max(1.0 / 24.0);
    let mut out = Vec::new();
    for (app, mut list) in per_app {
        list.sort_by_key(|r| (r.finished_at, r.id));
        let in_window = |r: &&&Row| r.finished_at.is_some_and(|f| f >= since && f < until);
        let changes: Vec<&Row> = list
            .iter()
            .filter(in_window)
            .filter(|r| is_change(r.trigger))
            .filter(|r| {
                matches!(
                    r.state,
                    DeploymentState::Succeeded | DeploymentState::Failed
                )
            })
            .copied()
            .collect();
        if changes.is_empty() {
            continue;
        }
        let good: Vec<&Row> = changes
            .iter()
            .filter(|r| r.state == DeploymentState::Succeeded)
            .copied()
            .collect();
        let failed: Vec<&Row> = changes
            .iter()
            .filter(|r| r.state == DeploymentState::Failed)
            .copied()
            .collect();
        let lead: Vec<i64> = good
            .iter()
            .filter_map(|r| {
                let committed = r
                    .committed_at
                    .or_else(|| r.images_from.and_then(|s| by_id.get(&s)?.committed_at))?;
                Some((r.finished_at? - committed).num_seconds().max(0))
            })
            .collect();
        let mut restores = Vec::new();
        let mut unrestored = 0;
        for f in &failed {
            let at = f.finished_at.expect("in the window");
            let next = list
                .iter()
                .filter(|r| r.state == DeploymentState::Succeeded)
                .filter_map(|r| r.finished_at)
                .find(|t| *t > at);
            match next {
                Some(t) => restores.push((t - at).num_seconds()),
                None => unrestored += 1,
            }
        }
        out.push(Figures {
            app: app.to_owned(),
            deployments: good.len(),
            deployments_per_day: good.len() as f64 / days,
            lead_time_seconds: median(lead),
            failures: failed.len(),
            change_failure_rate: Some(failed.len() as f64 / changes.len() as f64),
            time_to_restore_seconds: median(restores),
            unrestored,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap()
    }

    fn row(
        id: i64,
        app: &str,
        trigger: Trigger,
        state: DeploymentState,
        finished: DateTime<Utc>,
        committed: Option<DateTime<Utc>>,
    ) -> Row {
        Row {
            id,
            app: app.into(),
            trigger,
            state,
            finished_at: Some(finished),
            committed_at: committed,
            images_from: None,
        }
    }

    #[test]
    fn a_scripted_history_gives_the_known_figures() {
        use DeploymentState::{Failed, Succeeded};
        let mut rows = vec![
            // Staging: three good pushes with 1h, 2h and 3h lead times over 10 days.
            row(
                1,
                "shop-staging",
                Trigger::Push,
                Succeeded,
                t(1, 10),
                Some(t(1, 9)),
            ),
            row(
                2,
                "shop-staging",
                Trigger::Push,
                Succeeded,
                t(2, 12),
                Some(t(2, 10)),
            ),
            row(
                3,
                "shop-staging",
                Trigger::Push,
                Succeeded,
                t(3, 12),
                Some(t(3, 9)),
            ),
            // Production: a promotion of #2 (lead time from #2's commit: 4h), a failed push
            // restored 30 min later by a rollback, a failed push restored 90 min later by a
            // good push (lead 1h), and a failure never restored.
            row(
                4,
                "shop-production",
                Trigger::Promotion,
                Succeeded,
                t(2, 14),
                None,
            ),
            row(
                5,
                "shop-production",
                Trigger::Push,
                Failed,
                t(4, 10),
                Some(t(4, 9)),
            ),
            row(
                6,
                "shop-production",
                Trigger::Rollback,
                Succeeded,
                t(4, 10) + chrono::Duration::minutes(30),
                None,
            ),
            row(
                7,
                "shop-production",
                Trigger::Push,
                Failed,
                t(5, 10),
                Some(t(5, 9)),
            ),
            row(
                8,
                "shop-production",
                Trigger::Api,
                Succeeded,
                t(5, 11) + chrono::Duration::minutes(30),
                Some(t(5, 10) + chrono::Duration::minutes(30)),
            ),
            row(
                9,
                "shop-production",
                Trigger::Push,
                Failed,
                t(9, 10),
                Some(t(9, 9)),
            ),
            // Outside the window: not counted.
            row(
                10,
                "shop-staging",
                Trigger::Push,
                Succeeded,
                t(20, 10),
                Some(t(20, 9)),
            ),
        ];
        rows[3].images_from = Some(2);
        let f = figures(&rows, t(1, 0), t(11, 0));
        let production = &f[0];
        assert_eq!(production.app, "shop-production");
        assert_eq!(production.deployments, 2);
        assert!((production.deployments_per_day - 0.2).abs() < 1e-9);
        // Lead times 4h (promotion of #2, committed 2nd 10:00) and 1h: median 2.5h.
        assert_eq!(production.lead_time_seconds, Some(9000));
        assert_eq!(production.failures, 3);
        assert_eq!(production.change_failure_rate, Some(0.6));
        // Restores: 30 min and 90 min: median 60 min; one not restored.
        assert_eq!(production.time_to_restore_seconds, Some(3600));
        assert_eq!(production.unrestored, 1);
        let staging = &f[1];
        assert_eq!(staging.deployments, 3);
        assert_eq!(staging.lead_time_seconds, Some(7200));
        assert_eq!(staging.change_failure_rate, Some(0.0));
        assert_eq!(staging.time_to_restore_seconds, None);
    }
}
