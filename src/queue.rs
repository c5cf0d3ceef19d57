//! The durable per-app deployment queue over the store.
//!
//! Level-triggered: whenever it is woken (a new deployment, a finished one, or a periodic
//! tick) it asks the store to claim what may start now — per app at most one running, the
//! newest queued winning and older queued ones superseded, and at most `max_concurrent`
//! running in all. On start it first resumes deployments a crash left `running`.
//!
//! Before claiming, it gates what has not started (`plan::gate`, from the spec it was queued
//! with): one still lacking the approvals its environment requires waits in
//! `awaiting_approval` (a rejection or the timeout ends it), one outside its deploy windows in
//! `waiting` with the reason, and either goes back to `queued` when approved, when a window
//! opens or when someone overrides it. A window that closes never stops a deployment that has
//! started.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::task::TaskTracker;

use crate::domain::{Deployment, DeploymentId, DeploymentState};
use crate::pipeline::{Cancel, Engine, RunOutcome};
use crate::plan::gate::Decision;
use crate::ports::{Clock, SystemClock};
use crate::store::Store;

/// Wakes the queue after something was enqueued.
#[derive(Clone, Default)]
pub struct QueueHandle {
    notify: Arc<Notify>,
}

impl QueueHandle {
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

pub struct Queue {
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    handle: QueueHandle,
    permits: Arc<Semaphore>,
    tracker: TaskTracker,
    cancel: Cancel,
    clock: Arc<dyn Clock>,
}

/// Longest wait between two looks at the queue when nothing wakes it.
const TICK: Duration = Duration::from_secs(5);

impl Queue {
    pub fn new(
        store: Arc<dyn Store>,
        engine: Arc<Engine>,
        max_concurrent: usize,
        cancel: Cancel,
    ) -> Self {
        Self {
            store,
            engine,
            handle: QueueHandle::default(),
            permits: Arc::new(Semaphore::new(max_concurrent)),
            tracker: TaskTracker::new(),
            cancel,
            clock: Arc::new(SystemClock),
        }
    }

    /// Reads the time for deploy windows from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Moves each deployment that has not started to where its gate (`plan::gate`: approvals,
    /// then deploy windows) says it is now: `queued`, `awaiting_approval` or `waiting`, or
    /// ends it when it was rejected or its approvals timed out.
    /// Returns the highest id it looked at: only those may be claimed in this pass.
    async fn gate(&self) -> DeploymentId {
        let pending = match self.store.not_started().await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the deployments waiting to start");
                return 0;
            }
        };
        let seen = pending.iter().map(|d| d.id).max().unwrap_or(0);
        let now = self.clock.now();
        for d in pending {
            let approvals = if crate::plan::gate::needs_approval(&d) {
                match self.store.approvals(d.id).await {
                    Ok(a) => a,
                    Err(e) => {
                        // Nothing may start unjudged: claim nothing in this pass.
                        tracing::error!(deployment.id = d.id, error = %e, "cannot read approvals");
                        return 0;
                    }
                }
            } else {
                vec![]
            };
            let (state, reason) = match crate::plan::gate::decide(&d, &approvals, now) {
                Decision::Start => (DeploymentState::Queued, None),
                Decision::Wait { state, reason } => (state, Some(reason)),
                Decision::Cancel(reason) => {
                    tracing::info!(deployment.id = d.id, app = %d.app, reason = %reason, "deployment cancelled before it started");
                    if let Err(e) = self
                        .store
                        .finish(d.id, DeploymentState::Failed, Some(reason))
                        .await
                    {
                        tracing::error!(deployment.id = d.id, error = %e, "cannot cancel the deployment");
                    }
                    continue;
                }
            };
            if d.state == state && d.reason == reason {
                continue;
            }
            if let Some(r) = &reason {
                tracing::info!(deployment.id = d.id, app = %d.app, reason = %r, "deployment waits before it starts");
            }
            if let Err(e) = self.store.set_gate(d.id, state, reason).await {
                tracing::error!(deployment.id = d.id, error = %e, "cannot record why the deployment waits");
                return 0;
            }
        }
        seen
    }

    pub fn handle(&self) -> QueueHandle {
        self.handle.clone()
    }

    /// Runs until `cancel.stop` fires, then waits for every started deployment to finish or
    /// be left resumable.
    pub async fn run(self) {
        match self.store.running().await {
            Ok(left) => {
                for dep in left {
                    tracing::info!(deployment.id = dep.id, app = %dep.app, "resuming deployment left running");
                    let permit = self
                        .permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("semaphore closed");
                    self.spawn(dep, permit);
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot list deployments to resume"),
        }
        loop {
            let gated = self.gate().await;
            let available = self.permits.available_permits();
            if available > 0 && gated > 0 {
                match self.store.claim_up_to(available, gated).await {
                    Ok(claimed) => {
                        for dep in claimed {
                            let permit = self
                                .permits
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("semaphore closed");
                            self.spawn(dep, permit);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot claim deployments"),
                }
            }
            tokio::select! {
                _ = self.handle.notify.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
                _ = self.cancel.stop.cancelled() => break,
            }
        }
        self.tracker.close();
        self.tracker.wait().await;
    }

    fn spawn(&self, dep: Deployment, permit: tokio::sync::OwnedSemaphorePermit) {
        let engine = self.engine.clone();
        let store = self.store.clone();
        let handle = self.handle.clone();
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            let (id, app) = (dep.id, dep.app.clone());
            match engine.run(dep, cancel).await {
                Ok(RunOutcome::Succeeded) => {}
                Ok(RunOutcome::Failed(_)) | Ok(RunOutcome::Interrupted) => {}
                Err(e) => {
                    // The store failed under the engine: record it if the store still answers,
                    // otherwise the deployment stays `running` and resumes on restart.
                    tracing::error!(deployment.id = id, app = %app, error = %e, "deployment aborted by a store error");
                    let _ = store.finish(id, DeploymentState::Failed, Some(format!("internal error: {e}"))).await;
                }
            }
            drop(permit);
            handle.wake();
        });
    }
}
