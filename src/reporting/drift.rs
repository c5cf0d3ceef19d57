//! Drift notices in chat: each notice the drift worker recorded (detected with its diff, a
//! self-heal started, cleared) is posted once to the app's Discord target. The notice is an
//! outbox row written with the change it tells of; it is marked posted after the post, and a
//! post repeated after a crash carries the same nonce, so Discord keeps one message.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::domain::drift::DriftNotice;
use crate::plan::notify::drift_embed;
use crate::ports::{Chat, ChatTarget, PublishError};
use crate::reporting::discord::{target_of, EnvLookup};
use crate::store::Store;

/// Notices read per pass.
const BATCH: usize = 50;
/// Longest wait between passes when nothing wakes the loop.
const IDLE: Duration = Duration::from_secs(5);

pub struct DriftNotifier {
    chat: Arc<dyn Chat>,
    store: Arc<dyn Store>,
    env: EnvLookup,
}

impl DriftNotifier {
    pub fn new(chat: Arc<dyn Chat>, store: Arc<dyn Store>, env: EnvLookup) -> Self {
        Self { chat, store, env }
    }

    /// Posts what is owed until `stop`; a failed post is tried again on a later pass.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let mut changes = self.store.changes();
        loop {
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "drift notices not posted; trying again");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = changes.changed() => {}
                _ = tokio::time::sleep(IDLE) => {}
            }
        }
    }

    /// One pass over the owed notices, oldest first; stops at the first failure so notices
    /// of an app stay in order.
    pub async fn pass(&self) -> Result<(), PublishError> {
        let owed = self.store.drift_notices(BATCH).await.map_err(store_err)?;
        for n in owed {
            // The app's newest deployment says where its reports go and its environment.
            let newest = self
                .store
                .deployments(Some(&n.app), 1)
                .await
                .map_err(store_err)?
                .pop();
            if let Some(d) = newest {
                if let Some(target) = target_of(&d.spec, &self.env)? {
                    self.post(&target, &n, &d.spec.environment).await?;
                }
            }
            self.store
                .drift_notice_posted(n.seq)
                .await
                .map_err(store_err)?;
        }
        Ok(())
    }

    async fn post(
        &self,
        target: &ChatTarget,
        n: &DriftNotice,
        environment: &str,
    ) -> Result<(), PublishError> {
        let embed = drift_embed(n, environment);
        self.chat.post(target, &embed, &nonce(n)).await?;
        tracing::info!(app = %n.app, kind = %n.kind, "drift notice posted");
        Ok(())
    }
}

fn store_err(e: crate::store::StoreError) -> PublishError {
    PublishError {
        target: "discord",
        message: e.to_string(),
    }
}

/// Unique to this notice of this store: 20 hex digits (Discord allows 25).
fn nonce(n: &DriftNotice) -> String {
    let key = format!("drift/{}/{}/{}", n.app, n.seq, n.at.timestamp_millis());
    hex::encode(&Sha256::digest(key.as_bytes())[..10])
}
