//! The poller: the fallback for a webhook that never came. Every source (a clone URL the
//! manifests name) is listed with `git ls-remote` every interval plus jitter; refs that moved
//! are taken in through [`Control::poll`], exactly as a push would be, and the store takes
//! each repository, ref and sha in once whether the poll or a webhook saw it first.
//!
//! [`Poller::round`] is the level-triggered step, given the time; [`Poller::run`] only loops
//! over it until shutdown. What `plan::poll` decides is tested with injected instants.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Control;
use crate::plan::poll::{self, PollSettings, RemoteHeads, Schedule};
use crate::ports::RemoteRefs;
use crate::store::DeliveryOutcome;

/// How long the poller sleeps when no source is due at all (nothing polled yet, or none).
const IDLE: Duration = Duration::from_secs(30);

pub struct Poller {
    control: Arc<Control>,
    refs: Arc<dyn RemoteRefs>,
    settings: PollSettings,
    schedule: Schedule,
    /// What each app tracked at its source's previous look: (url, app) -> refs.
    previous: HashMap<(String, String), RemoteHeads>,
    /// Sources whose last listing failed: warned about once, not every interval.
    failing: std::collections::HashSet<String>,
    /// The git sources of manifests, polled like apps tracking their branch (a name no app
    /// can have: `source:NAME`).
    manifest_sources: Vec<crate::domain::AppManifest>,
}

impl Poller {
    pub fn new(control: Arc<Control>, refs: Arc<dyn RemoteRefs>, settings: PollSettings) -> Self {
        let manifest_sources = control
            .sources()
            .iter()
            .map(|s| {
                let mut m = crate::manifests::scaffold_app(
                    &format!("source:{}", s.name),
                    &s.repo,
                    &s.branch,
                );
                m.spec.source.url = Some(s.url.clone());
                m.spec.build = None;
                m
            })
            .collect();
        Self {
            manifest_sources,
            control,
            refs,
            settings,
            schedule: Schedule::default(),
            previous: HashMap::new(),
            failing: Default::default(),
        }
    }

    /// Looks at every source due at `now` and takes in what moved; returns when the next
    /// source is due. A failed listing is logged and tried again at the next interval; a ref
    /// whose intake failed is tried again at the next look.
    pub async fn round(&mut self, now: std::time::Instant) -> Option<std::time::Instant> {
        let (sources, apps) = {
            let set = self.control.manifests();
            let set = set.read().expect("manifests lock poisoned");
            let all = || set.manifests().chain(self.manifest_sources.iter());
            let sources = poll::sources(all(), self.settings.interval);
            let apps: HashMap<String, crate::domain::AppManifest> = sources
                .iter()
                .flat_map(|s| s.apps.iter())
                .filter_map(|a| {
                    all()
                        .find(|m| &m.metadata.name == a)
                        .map(|m| (a.clone(), m.clone()))
                })
                .collect();
            (sources, apps)
        };
        self.failing
            .retain(|url| sources.iter().any(|s| &s.url == url));
        self.previous.retain(|(url, app), _| {
            sources
                .iter()
                .any(|s| &s.url == url && s.apps.contains(app))
        });
        for i in self.schedule.due(&sources, now) {
            let source = &sources[i];
            self.schedule.looked(source, now, self.settings.jitter);
            let seen = match self.refs.list(&source.url).await {
                Ok(seen) => {
                    if self.failing.remove(&source.url) {
                        tracing::info!(repo = %source.repo, "polling: the remote's refs can be listed again");
                    }
                    seen
                }
                Err(e) => {
                    if self.failing.insert(source.url.clone()) {
                        tracing::warn!(repo = %source.repo, error = %e, "polling: cannot list the remote's refs; trying again every interval (said once until it recovers)");
                    } else {
                        tracing::debug!(repo = %source.repo, error = %e, "polling: still cannot list the remote's refs");
                    }
                    continue;
                }
            };
            let mine: Vec<(&crate::domain::AppManifest, Option<RemoteHeads>)> = source
                .apps
                .iter()
                .filter_map(|a| apps.get(a))
                .map(|m| {
                    let key = (source.url.clone(), m.metadata.name.clone());
                    (m, self.previous.get(&key).cloned())
                })
                .collect();
            let views: Vec<_> = mine.iter().map(|(m, p)| (*m, p.as_ref())).collect();
            let taken = poll::take_in(&views, &seen);
            let mut failed = Vec::new();
            for (git_ref, sha) in &taken {
                match self.control.poll(&source.repo, git_ref, sha).await {
                    Ok(DeliveryOutcome::Recorded {
                        deployments,
                        record,
                    }) => tracing::info!(
                        repo = %source.repo,
                        git_ref = %git_ref,
                        sha = %sha,
                        deployments = ?deployments,
                        reason = record.reason.as_deref().unwrap_or(""),
                        "polling: found a push no webhook brought"
                    ),
                    Ok(DeliveryOutcome::Duplicate) => tracing::debug!(
                        repo = %source.repo, git_ref = %git_ref, sha = %sha,
                        "polling: already taken in"
                    ),
                    Err(e) => {
                        tracing::warn!(repo = %source.repo, git_ref = %git_ref, error = %e, "polling: cannot take the push in; trying again at the next look");
                        failed.push(git_ref.clone());
                    }
                }
            }
            // Remember what each app tracked, except refs whose intake failed (and refs past
            // this look's bound), so the next look takes them in again.
            let skipped: Vec<&String> = if taken.len() == poll::MAX_TAKEN_PER_LOOK {
                let last = &taken[taken.len() - 1].0;
                seen.keys().filter(|r| *r > last).collect()
            } else {
                vec![]
            };
            for (m, prev) in &mine {
                let mut tracked = poll::tracked_by(m, &seen);
                let prev = prev.as_ref();
                for r in failed.iter().chain(skipped.iter().copied()) {
                    match prev.and_then(|p| p.get(r)) {
                        Some(old) => tracked.insert(r.clone(), old.clone()),
                        None => tracked.remove(r),
                    };
                }
                // A first look that could not take everything in stays a first look.
                if prev.is_none() && !(failed.is_empty() && skipped.is_empty()) {
                    continue;
                }
                self.previous
                    .insert((source.url.clone(), m.metadata.name.clone()), tracked);
            }
        }
        self.schedule.next_wake()
    }

    /// Runs rounds until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let now = std::time::Instant::now();
            // A round cut short loses nothing: each intake is one transaction.
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = self.round(now) => next.unwrap_or(now + IDLE),
            };
            let wait = next.saturating_duration_since(std::time::Instant::now());
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep_until(Instant::now() + wait) => {}
            }
        }
    }
}
