//! Reporters tell the outside world (Discord, GitHub, EventBridge) what the store records; they
//! never drive the pipeline. Reporting is level-triggered and at-least-once: each [`Reporter`]
//! runs its own loop over the deployments whose recorded state changed since its cursor (a
//! store-wide revision, moved by the store in the same transaction as the change), plus the
//! reports it still owes. A failed report is kept in the store with its (redacted) error and
//! tried again after a capped backoff, so a crash, a restart or an unreachable Discord loses
//! nothing: after it, every deployment is reported exactly as it ended. Reporters themselves
//! record what they last told the outside world, so a report done twice changes nothing.

pub mod discord;
pub mod drift;
pub mod eventbridge;
pub mod github;
pub mod writeback;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Deployment, DeploymentId};
use crate::plan::retry::RetryPolicy;
use crate::ports::PublishError;
use crate::secret::Redactor;
use crate::store::{PendingReport, ReportPass, Store, StoreError};

/// Pending rows a pass reads to know attempts so far; beyond it a failing report starts its
/// count again (bounded memory when a target is down for days).
const MAX_OWED: usize = 10_000;

/// What a report came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// The outside world shows the deployment as recorded (or the reporter has nothing to say).
    Done,
    /// Held back (an edit coalesced with later ones): visit again at this time, or sooner if
    /// the deployment changes.
    NotBefore(DateTime<Utc>),
}

/// Something that mirrors a deployment's recorded state somewhere (Discord, GitHub, a bus).
#[async_trait]
pub trait Reporter: Send + Sync {
    /// Stable: it keys the reporter's cursor and pending reports in the store.
    fn name(&self) -> &'static str;
    /// Brings the outside world in line with `d`; safe to call again with the same state.
    async fn report(&self, d: &Deployment) -> Result<Reported, PublishError>;
}

/// How reporters retry and batch.
#[derive(Debug, Clone, Copy)]
pub struct ReportingConfig {
    /// Backoff of failed reports; once `retries` are used up the report is given up (still
    /// shown as failing) until the deployment changes again.
    pub retry: RetryPolicy,
    /// Deployments read per pass.
    pub batch: usize,
    /// Longest wait between passes when nothing wakes the loop (a safety net: the store's
    /// change signal normally wakes it).
    pub idle: Duration,
    /// Shortest gap between passes, so a burst of writes costs one pass.
    pub debounce: Duration,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::REPORTS,
            batch: 50,
            idle: Duration::from_secs(5),
            debounce: Duration::from_millis(50),
        }
    }
}

/// Prepares every reporter's cursor (a reporter configured for the first time starts at the
/// store's current revision instead of reporting history). Call before the queue starts, so
/// no change can fall between a new cursor and the first deployment.
pub async fn prepare(store: &dyn Store, reporters: &[Arc<dyn Reporter>]) -> Result<(), StoreError> {
    for r in reporters {
        store.init_report_cursor(r.name()).await?;
    }
    Ok(())
}

/// Runs one reporter until `stop` fires; then it makes one last pass (what the stopping
/// pipeline recorded last is reported before the daemon exits) and returns.
pub async fn run(
    store: Arc<dyn Store>,
    reporter: Arc<dyn Reporter>,
    redactor: Redactor,
    config: ReportingConfig,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut changes = store.changes();
    let name = reporter.name();
    loop {
        let next = match pass(&*store, &*reporter, &redactor, &config).await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(reporter = name, error = %e, "reporter cannot read or record its work; trying again");
                Some(Utc::now() + chrono::Duration::from_std(config.idle).unwrap_or_default())
            }
        };
        if stop.is_cancelled() {
            return;
        }
        let wait = next
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(config.idle)
            .min(config.idle);
        tokio::select! {
            _ = stop.cancelled() => continue,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(wait) => {}
        }
        tokio::time::sleep(config.debounce).await;
    }
}

/// One pass: every changed deployment (up to a batch) and every due pending report. Returns
/// when the next held-back or retried report is due, if any.
pub async fn pass(
    store: &dyn Store,
    reporter: &dyn Reporter,
    redactor: &Redactor,
    config: &ReportingConfig,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let name = reporter.name();
    let cursor = store.report_cursor(name).await?;
    let changed = store.changed_since(cursor, config.batch).await?;
    let now = Utc::now();
    // What this reporter owes (failures and holds: few, unless a target is down for long).
    let owed: std::collections::HashMap<DeploymentId, PendingReport> = store
        .pending_reports(Some(name), None, false, MAX_OWED)
        .await?
        .into_iter()
        .map(|p| (p.deployment_id, p))
        .collect();
    let mut ids: Vec<DeploymentId> = changed.iter().map(|(id, _)| *id).collect();
    // Owed reports that are due, oldest due first, a batch at a time.
    let mut due: Vec<&PendingReport> = owed
        .values()
        .filter(|p| p.next_at.is_some_and(|at| at <= now))
        .collect();
    due.sort_by_key(|p| p.next_at);
    ids.extend(due.iter().take(config.batch).map(|p| p.deployment_id));
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    let mut out = ReportPass {
        cursor: changed.last().map(|(_, rev)| *rev),
        ..ReportPass::default()
    };
    let mut next: Option<DateTime<Utc>> = None;
    for id in ids {
        let Some(d) = store.deployment(id, true).await? else {
            out.done.push(id);
            continue;
        };
        let before = owed.get(&id);
        match reporter.report(&d).await {
            Ok(Reported::Done) => {
                if before.is_some_and(|p| p.error.is_some()) {
                    tracing::info!(reporter = name, deployment.id = id, app = %d.app, "report delivered after failing");
                }
                out.done.push(id);
            }
            Ok(Reported::NotBefore(at)) => {
                next = Some(next.map_or(at, |n| n.min(at)));
                out.pending.push(PendingReport {
                    deployment_id: id,
                    app: d.app.clone(),
                    reporter: name.to_owned(),
                    attempts: before.map_or(0, |p| p.attempts),
                    next_at: Some(at),
                    error: before.and_then(|p| p.error.clone()),
                    since: before.map_or(now, |p| p.since),
                });
            }
            Err(e) => {
                let attempts = before.map_or(0, |p| p.attempts) + 1;
                let error = redactor.redact(&e.to_string());
                let at = config
                    .retry
                    .backoff(attempts, fastrand::f64())
                    .and_then(|wait| chrono::Duration::from_std(wait).ok())
                    .map(|wait| now + wait);
                match at {
                    Some(at) => {
                        next = Some(next.map_or(at, |n| n.min(at)));
                        tracing::warn!(reporter = name, deployment.id = id, app = %d.app, attempts, retry_at = %at, error = %error, "report failed; it will be retried");
                    }
                    None => {
                        tracing::error!(reporter = name, deployment.id = id, app = %d.app, attempts, error = %error, "report failed and its retries are used up; the next change of the deployment tries again");
                    }
                }
                out.pending.push(PendingReport {
                    deployment_id: id,
                    app: d.app.clone(),
                    reporter: name.to_owned(),
                    attempts,
                    next_at: at,
                    error: Some(error),
                    since: before.map_or(now, |p| p.since),
                });
            }
        }
    }
    // Reports owed but not yet due still set when to look again.
    for p in owed.values() {
        if let Some(at) = p.next_at.filter(|at| *at > now) {
            next = Some(next.map_or(at, |n| n.min(at)));
        }
    }
    if changed.len() == config.batch || due.len() > config.batch {
        // More changes (or due reports) are waiting: come straight back.
        next = Some(now);
    }
    store.record_report_pass(name, out).await?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::domain::DeploymentState;
    use crate::secret::Secret;
    use crate::store::sqlite::SqliteStore;

    /// Records what it was asked to report; fails while `failures` is above zero.
    struct Recorder {
        seen: Mutex<Vec<(DeploymentId, DeploymentState)>>,
        failures: Mutex<u32>,
        hold: Mutex<Option<DateTime<Utc>>>,
    }

    impl Recorder {
        fn new(failures: u32) -> Arc<Self> {
            Arc::new(Self {
                seen: Mutex::new(Vec::new()),
                failures: Mutex::new(failures),
                hold: Mutex::new(None),
            })
        }
    }

    #[async_trait]
    impl Reporter for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        async fn report(&self, d: &Deployment) -> Result<Reported, PublishError> {
            self.seen.lock().unwrap().push((d.id, d.state));
            let mut left = self.failures.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(PublishError {
                    target: "recorder",
                    message: "503 from https://hooks.example/TOKEN-canary-1".into(),
                });
            }
            Ok(match *self.hold.lock().unwrap() {
                Some(at) => Reported::NotBefore(at),
                None => Reported::Done,
            })
        }
    }

    use crate::store::testing::enqueue;

    fn config() -> ReportingConfig {
        ReportingConfig {
            retry: RetryPolicy {
                retries: 2,
                base: Duration::from_millis(1),
                cap: Duration::from_millis(1),
            },
            batch: 2,
            ..Default::default()
        }
    }

    fn redactor() -> Redactor {
        Redactor::new([&Secret::new("TOKEN-canary-1")])
    }

    #[tokio::test]
    async fn every_change_is_reported_once_and_a_failure_is_kept_until_it_is_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let r = Recorder::new(1);
        let reporters: Vec<Arc<dyn Reporter>> = vec![r.clone()];
        // History from before the reporter existed is not reported.
        let old = store.enqueue(enqueue("old")).await.unwrap();
        prepare(&*store, &reporters).await.unwrap();
        let a = store.enqueue(enqueue("a")).await.unwrap();
        let b = store.enqueue(enqueue("b")).await.unwrap();
        let c = store.enqueue(enqueue("c")).await.unwrap();
        let (cfg, red) = (config(), redactor());
        // The batch is 2: the first pass sees a and b, a fails, and it asks to come back.
        let next = pass(&*store, &*r, &red, &cfg).await.unwrap();
        assert!(next.is_some());
        let failing = store
            .pending_reports(Some("recorder"), None, true, 10)
            .await
            .unwrap();
        assert_eq!(failing.len(), 1);
        assert_eq!(failing[0].deployment_id, a);
        assert_eq!(failing[0].app, "a");
        assert_eq!(failing[0].attempts, 1);
        let error = failing[0].error.as_deref().unwrap();
        assert!(!error.contains("TOKEN-canary-1"), "{error}");
        assert!(error.contains("503"), "{error}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        // Next pass: c is new, a is due again and now goes through.
        pass(&*store, &*r, &red, &cfg).await.unwrap();
        assert!(store
            .pending_reports(None, None, false, 10)
            .await
            .unwrap()
            .is_empty());
        let seen: Vec<_> = r.seen.lock().unwrap().iter().map(|s| s.0).collect();
        assert_eq!(seen, vec![a, b, c, a]);
        assert!(!seen.contains(&old));
        // Nothing changed: nothing is reported again, whatever the number of passes.
        pass(&*store, &*r, &red, &cfg).await.unwrap();
        assert_eq!(r.seen.lock().unwrap().len(), 4);
        // A change (a claim; of the old one too) is reported, once.
        let claimed = store.claim(5).await.unwrap();
        assert_eq!(claimed.len(), 4);
        pass(&*store, &*r, &red, &cfg).await.unwrap();
        pass(&*store, &*r, &red, &cfg).await.unwrap();
        let seen = r.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 8, "{seen:?}");
        assert!(seen[4..]
            .iter()
            .all(|(_, s)| *s == DeploymentState::Running));
        // A log line alone is not a change worth reporting.
        store.step_log(a, 0, "hello".into()).await.unwrap();
        pass(&*store, &*r, &red, &cfg).await.unwrap();
        assert_eq!(r.seen.lock().unwrap().len(), 8);
    }

    #[tokio::test]
    async fn retries_are_used_up_then_the_next_change_tries_again_and_holds_are_revisited() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("s.db")).unwrap());
        let r = Recorder::new(10);
        prepare(&*store, &[r.clone() as Arc<dyn Reporter>])
            .await
            .unwrap();
        let a = store.enqueue(enqueue("a")).await.unwrap();
        let (cfg, red) = (config(), redactor());
        for _ in 0..6 {
            pass(&*store, &*r, &red, &cfg).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // First attempt plus two retries, then it gives up but stays visible.
        assert_eq!(r.seen.lock().unwrap().len(), 3);
        let failing = store
            .pending_reports(None, Some(a), true, 10)
            .await
            .unwrap();
        assert_eq!(failing[0].attempts, 3);
        assert_eq!(failing[0].next_at, None);
        *r.failures.lock().unwrap() = 0;
        store.claim(1).await.unwrap();
        pass(&*store, &*r, &red, &cfg).await.unwrap();
        assert_eq!(r.seen.lock().unwrap().len(), 4);
        assert!(store
            .pending_reports(None, Some(a), true, 10)
            .await
            .unwrap()
            .is_empty());
        // A held-back report is visited again when it is due, without any change.
        let soon = Utc::now() + chrono::Duration::milliseconds(20);
        *r.hold.lock().unwrap() = Some(soon);
        store
            .finish(a, DeploymentState::Succeeded, None)
            .await
            .unwrap();
        let next = pass(&*store, &*r, &red, &cfg).await.unwrap();
        assert_eq!(next, Some(soon));
        let held = store
            .pending_reports(None, Some(a), false, 10)
            .await
            .unwrap();
        assert_eq!((held[0].attempts, held[0].error.clone()), (0, None));
        *r.hold.lock().unwrap() = None;
        tokio::time::sleep(Duration::from_millis(30)).await;
        pass(&*store, &*r, &red, &cfg).await.unwrap();
        assert_eq!(r.seen.lock().unwrap().len(), 6);
        assert!(store
            .pending_reports(None, Some(a), false, 10)
            .await
            .unwrap()
            .is_empty());
    }
}
