//! Automatic promotion: an environment with `promotion: {from, after}` receives its source
//! environment's newest good release once that release has run for `after` with nothing newer
//! tried and no drift (`plan::promote::auto` decides), unless the target is held or paused,
//! busy, or already had it. Level-triggered: each round reads the store again; the promotion
//! itself is the `promote` use-case (audited, actor `gantry (auto-promotion)`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Control, ControlError, Promoted};
use crate::domain::{instance_name, Trigger};
use crate::plan::promote::{auto, Auto, AutoFacts};
use crate::ports::Clock;

/// Longest wait between rounds when nothing wakes the worker.
const TICK: Duration = Duration::from_secs(15);
/// Deployments of the target read to know whether a release was promoted already.
const HISTORY: usize = 50;
pub const ACTOR: &str = "gantry (auto-promotion)";

pub struct AutoPromoter {
    control: Arc<Control>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
}

impl AutoPromoter {
    pub fn new(control: Arc<Control>, clock: Arc<dyn Clock>, wake: Arc<Notify>) -> Self {
        Self {
            control,
            clock,
            wake,
        }
    }

    /// Runs rounds until `stop`: every [`TICK`], and when woken.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            // A round cut short loses nothing: a promotion is one transaction.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.round() => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// One look at every environment that promotes automatically; the promotions queued.
    pub async fn round(&self) -> Vec<Promoted> {
        let targets: Vec<(String, String, String, String, Duration)> = {
            let set = self.control.manifests();
            let m = set.read().expect("manifests lock poisoned");
            m.apps
                .iter()
                .filter_map(|a| {
                    let spec = &a.manifest.spec;
                    let p = spec.promotion.as_ref()?;
                    let base = spec.environment_of.clone()?;
                    Some((
                        a.manifest.metadata.name.clone(),
                        base,
                        p.from.clone(),
                        spec.environment.clone(),
                        p.after?,
                    ))
                })
                .collect()
        };
        let mut out = Vec::new();
        for (target, base, from, to, after) in targets {
            match self.consider(&target, &base, &from, &to, after).await {
                Ok(Some(p)) => out.push(p),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(app = %target, error = %e, "automatic promotion failed")
                }
            }
        }
        out
    }

    #[tracing::instrument(skip_all, fields(app = %target))]
    async fn consider(
        &self,
        target: &str,
        base: &str,
        from: &str,
        to: &str,
        after: Duration,
    ) -> Result<Option<Promoted>, ControlError> {
        let store = self.control.store();
        let source = instance_name(base, from);
        let good = store.good_releases(&source, 1).await?.pop();
        let release = good
            .as_ref()
            .map(|(d, _)| (d.id, d.finished_at.unwrap_or(d.created_at)));
        let source_newest = store
            .deployments(Some(&source), 1)
            .await?
            .pop()
            .map(|d| d.id);
        let source_drifted = store.drift_of(&source).await?.is_some();
        let paused = store.paused().await?.into_iter().find(|p| p.app == target);
        let already = match release {
            Some((id, _)) => store
                .deployments(Some(target), HISTORY)
                .await?
                .iter()
                .any(|d| d.trigger == Trigger::Promotion && d.images_from == Some(id)),
            None => false,
        };
        let decision = auto(&AutoFacts {
            after,
            release,
            source_newest,
            source_drifted,
            target_paused: paused.as_ref(),
            target_active: store.active(target).await?,
            already,
            now: self.clock.now(),
        });
        match decision {
            Auto::Wait(why) => {
                tracing::debug!(reason = %why, "no automatic promotion");
                Ok(None)
            }
            Auto::Promote(id) => {
                let p = self
                    .control
                    .promote(base, from, to, Some(id), ACTOR)
                    .await?;
                tracing::info!(
                    deployment.id = p.id,
                    release = id,
                    "automatic promotion queued"
                );
                Ok(Some(p))
            }
        }
    }
}
