//! The durable per-app deployment queue over the store.
//!
//! Level-triggered: whenever it is woken (a new deployment, a finished one, or a periodic
//! tick) it asks the store to claim what may start now — per app at most one running, the
//! newest queued winning and older queued ones superseded, and at most `max_concurrent`
//! running in all. On start it first resumes deployments a crash left `running`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio_util::task::TaskTracker;

use crate::domain::{Deployment, DeploymentState};
use crate::pipeline::{Cancel, Engine, RunOutcome};
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
}

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
        }
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
            let available = self.permits.available_permits();
            if available > 0 {
                match self.store.claim(available).await {
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
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
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
