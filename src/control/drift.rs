//! The drift worker: periodically (`drift.interval`, default 5 minutes) and soon after an ECS
//! event, compares each app's live services and sites with its last good release, records a
//! new drift once (audited, with a chat notice) and its clearing, and where the app asks for
//! `selfHeal` redeploys that release — never on a paused or held app, never beside a
//! deployment in flight, and with a growing wait after a heal that did not clear it.
//!
//! Level-triggered: every check reads the world again; nothing is remembered between checks
//! but what the store records.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{audit_record, Control, ControlError};
use crate::domain::drift::{Drift, DriftChange};
use crate::domain::Trigger;
use crate::plan::drift::{fingerprint, heal, heal_backoff, render, DriftSettings, Heal, HealFacts};
use crate::ports::{ObjectStore, ServiceDeployer};

/// After an ECS event, wait this long for the burst to end before checking.
const EVENT_SETTLE: Duration = Duration::from_secs(5);

/// What one check of one app came to.
#[derive(Debug, Clone)]
pub struct Checked {
    pub app: String,
    /// `None`: nothing was compared (no release yet, or a deployment in flight), see `note`.
    pub change: Option<DriftChange>,
    /// The drift recorded after the check.
    pub drift: Option<Drift>,
    /// The self-heal deployment this check queued.
    pub healed_by: Option<i64>,
    /// Why nothing was compared, or why a drift was not healed.
    pub note: Option<String>,
}

pub struct DriftWatcher {
    control: Arc<Control>,
    ecs: Option<Arc<dyn ServiceDeployer>>,
    objects: Option<Arc<dyn ObjectStore>>,
    settings: DriftSettings,
    events: Arc<Notify>,
}

impl DriftWatcher {
    pub fn new(
        control: Arc<Control>,
        ecs: Option<Arc<dyn ServiceDeployer>>,
        objects: Option<Arc<dyn ObjectStore>>,
        settings: DriftSettings,
        events: Arc<Notify>,
    ) -> Self {
        Self {
            control,
            ecs,
            objects,
            settings,
            events,
        }
    }

    /// Checks every app until `stop`: each interval, and shortly after an ECS event.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        if self.settings.interval.is_none() {
            tracing::info!(
                "drift checks are off (drift.interval); `gantry drift` checks on demand"
            );
        }
        loop {
            let wait = self.settings.interval.unwrap_or(Duration::MAX);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.events.notified(), if self.settings.interval.is_some() => {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(EVENT_SETTLE) => {}
                    }
                }
            }
            // A round cut short loses nothing: each app's result is one transaction.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.round() => {}
            }
        }
    }

    /// Checks every app in the manifests once.
    pub async fn round(&self) -> Vec<Checked> {
        let apps = self.control.app_names();
        let mut out = Vec::with_capacity(apps.len());
        for app in apps {
            match self.check(&app).await {
                Ok(c) => out.push(c),
                Err(e) => tracing::warn!(app = %app, error = %e, "drift check failed"),
            }
        }
        out
    }

    /// Compares `app`'s live services and sites with its last good release, records what it
    /// found, and heals it if the app asks for that and nothing stands in the way.
    #[tracing::instrument(skip_all, fields(app = %app))]
    pub async fn check(&self, app: &str) -> Result<Checked, ControlError> {
        let manifest = self.control.manifest(app)?;
        let store = self.control.store();
        let skipped = |note: &str| Checked {
            app: app.to_owned(),
            change: None,
            drift: None,
            healed_by: None,
            note: Some(note.to_owned()),
        };
        if store.active(app).await? {
            return Ok(skipped("a deployment is queued or running"));
        }
        let started = Utc::now();
        let Some((deployment, release)) = store.good_releases(app, 1).await?.pop() else {
            return Ok(skipped("nothing released yet"));
        };
        let mut items = Vec::new();
        if let Some(ecs) = &self.ecs {
            items.extend(
                crate::services::drift::services(&deployment.spec, &release, ecs.as_ref())
                    .await
                    .map_err(|e| unavailable(app, &e))?,
            );
        }
        if let Some(objects) = &self.objects {
            items.extend(
                crate::sites::drift::sites(&deployment.spec, &release, objects.as_ref())
                    .await
                    .map_err(|e| unavailable(app, &e))?,
            );
        }
        let rendered = render(&items);
        let found = (!items.is_empty()).then(|| (fingerprint(&rendered), rendered));
        let Some(change) = store
            .record_drift(app, deployment.id, found, started)
            .await?
        else {
            return Ok(skipped("a deployment moved while the live state was read"));
        };
        match change {
            DriftChange::Detected => {
                tracing::warn!(release = deployment.id, "drift detected")
            }
            DriftChange::Cleared => tracing::info!("drift cleared"),
            DriftChange::Unchanged | DriftChange::None => {}
        }
        let drift = store.drift_of(app).await?;
        let mut checked = Checked {
            app: app.to_owned(),
            change: Some(change),
            drift: drift.clone(),
            healed_by: None,
            note: None,
        };
        let Some(drift) = drift else {
            return Ok(checked);
        };
        let paused = store.paused().await?.into_iter().find(|p| p.app == app);
        let now = Utc::now();
        match heal(&HealFacts {
            self_heal: manifest.spec.self_heal,
            paused: paused.as_ref(),
            active: false,
            next_heal_at: drift.next_heal_at,
            now,
        }) {
            Heal::Not(why) => checked.note = Some(why),
            Heal::Now => {
                let mut entry = crate::plan::intake::restore_request(
                    &deployment,
                    &release,
                    "gantry".to_owned(),
                );
                entry.deployment.trigger = Trigger::SelfHeal;
                let wait = heal_backoff(drift.heal_attempts + 1);
                let next = now + chrono::Duration::from_std(wait).unwrap_or_default();
                let audit = audit_record(
                    "gantry",
                    "self-heal",
                    app,
                    "queued",
                    Some(format!("redeploys the release of #{}", deployment.id)),
                );
                match store.enqueue_heal(entry, next, audit).await? {
                    Some(id) => {
                        tracing::info!(deployment.id = id, "self-heal queued");
                        self.control.wake_queue();
                        checked.healed_by = Some(id);
                    }
                    None => {
                        checked.note =
                            Some("not healed: paused, held or deploying by then".to_owned())
                    }
                }
            }
        }
        Ok(checked)
    }
}

fn unavailable(app: &str, e: &dyn std::fmt::Display) -> ControlError {
    ControlError::Unavailable(format!("cannot read the live state of `{app}`: {e}"))
}
