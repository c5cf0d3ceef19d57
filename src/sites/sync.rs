//! Carries out a site sync: scan, read the remote state, plan, then act in the safe order —
//! assets, documents, manifest and release record, deletions past their grace period, edge
//! function, CDN invalidation. A failure stops before the manifest is written, so the next
//! sync simply plans again from what is really in the bucket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use super::ports::{Cdn, CdnError, EdgeOutcome, ObjectStore, ObjectStoreError};
use super::scan::{scan, ScanError, Scanned};
use super::S3Target;
use crate::domain::{Grace, ObjectHeaders, RemoteObject, SiteManifest, MANIFEST_KEY};
use crate::plan::edge::{function_code, EdgeRules};
use crate::plan::headers::HeaderRules;
use crate::plan::invalidation::plan_invalidation;
use crate::plan::site::{plan_sync, Action};

#[derive(Debug, Clone)]
pub struct SyncOptions {
    pub target: S3Target,
    pub rules: HeaderRules,
    pub grace: Grace,
    pub concurrency: usize,
    pub dry_run: bool,
    pub distribution: Option<String>,
    /// Above this many paths, invalidations collapse to wildcards.
    pub max_invalidation_paths: usize,
    pub wait_invalidation: Option<Duration>,
    /// Name and rules of the site's edge function, when it has edge rules.
    pub edge: Option<(String, EdgeRules)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error(transparent)]
    Store(#[from] ObjectStoreError),
    #[error(transparent)]
    Cdn(#[from] CdnError),
    #[error("the manifest object {key} is corrupt ({message}); delete it to let Gantry rebuild it from the bucket")]
    CorruptManifest { key: String, message: String },
    #[error("the site has edge rules but no CloudFront distribution is configured")]
    EdgeWithoutDistribution,
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub target: String,
    pub dry_run: bool,
    pub files: usize,
    pub uploads: Vec<String>,
    pub header_updates: Vec<String>,
    pub unchanged: usize,
    pub newly_stale: Vec<String>,
    pub deletes: Vec<String>,
    pub invalidation_paths: Vec<String>,
    pub invalidation_id: Option<String>,
    pub edge_function: Option<String>,
    pub release: u64,
    pub bytes_uploaded: u64,
    /// Requests that changed the bucket: PUT, COPY, multipart parts count as one.
    pub write_requests: u64,
}

/// Observes progress (a terminal bar, or structured log lines).
pub trait Progress: Send + Sync {
    fn start(&self, phase: &str, total: u64);
    fn advance(&self, key: &str);
    fn finish(&self);
}

/// Progress reported as log lines every 10%.
pub struct LogProgress {
    total: AtomicU64,
    done: AtomicU64,
}

impl Default for LogProgress {
    fn default() -> Self {
        Self {
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }
}

impl Progress for LogProgress {
    fn start(&self, phase: &str, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        if total > 0 {
            tracing::info!(phase, total, "site sync phase started");
        }
    }
    fn advance(&self, key: &str) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.total.load(Ordering::Relaxed).max(1);
        if done == total || done % (total / 10).max(1) == 0 {
            tracing::info!(done, total, last = key, "site sync progress");
        }
    }
    fn finish(&self) {}
}

pub async fn sync(
    dir: &Path,
    opts: &SyncOptions,
    store: &dyn ObjectStore,
    cdn: Option<&dyn Cdn>,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SyncReport, SiteError> {
    if opts.edge.is_some() && opts.distribution.is_none() {
        return Err(SiteError::EdgeWithoutDistribution);
    }
    let root = dir.to_path_buf();
    let rules = opts.rules.clone();
    let scanned = tokio::task::spawn_blocking(move || scan(&root, &rules))
        .await
        .expect("scan task panicked")?;
    let t = &opts.target;
    let manifest_key = format!("{}{MANIFEST_KEY}", t.prefix);
    let (listing, manifest_body) = tokio::try_join!(
        store.list(&t.bucket, &t.prefix),
        store.get(&t.bucket, &manifest_key)
    )?;
    let manifest: SiteManifest = match manifest_body {
        Some(body) => serde_json::from_slice(&body).map_err(|e| SiteError::CorruptManifest {
            key: manifest_key.clone(),
            message: e.to_string(),
        })?,
        None => SiteManifest::default(),
    };
    let remote: Vec<RemoteObject> = listing
        .into_iter()
        .filter_map(|o| {
            o.key.strip_prefix(&t.prefix).map(|k| RemoteObject {
                key: k.to_owned(),
                ..o
            })
        })
        .collect();
    let local: Vec<_> = scanned.iter().map(|s| s.file.clone()).collect();
    let plan = plan_sync(&local, &remote, &manifest, now, opts.grace);
    let invalidation = match &opts.distribution {
        Some(_) => plan_invalidation(&plan.invalidate, opts.max_invalidation_paths),
        None => vec![],
    };
    let mut report = SyncReport {
        target: t.to_string(),
        dry_run: opts.dry_run,
        files: local.len(),
        uploads: plan
            .actions()
            .filter(|a| matches!(a, Action::Upload(_)))
            .map(|a| a.file().key.clone())
            .collect(),
        header_updates: plan
            .actions()
            .filter(|a| matches!(a, Action::Retag(_)))
            .map(|a| a.file().key.clone())
            .collect(),
        unchanged: local.len() - plan.assets.len() - plan.documents.len(),
        newly_stale: plan.newly_stale.clone(),
        deletes: plan.deletes.clone(),
        invalidation_paths: invalidation.clone(),
        release: plan.manifest.release,
        ..Default::default()
    };
    if opts.dry_run {
        return Ok(report);
    }
    let paths: BTreeMap<&str, &PathBuf> = scanned
        .iter()
        .map(|s: &Scanned| (s.file.key.as_str(), &s.path))
        .collect();
    let mut manifest = plan.manifest.clone();
    let written = Arc::new(AtomicU64::new(0));
    for (phase, actions) in [("assets", &plan.assets), ("documents", &plan.documents)] {
        let etags = execute(
            phase,
            actions,
            &paths,
            t,
            opts.concurrency,
            store,
            progress,
            &written,
        )
        .await?;
        for (key, etag) in etags {
            if let Some(e) = manifest.files.get_mut(&key) {
                e.etag = etag;
            }
        }
    }
    report.bytes_uploaded = plan
        .actions()
        .filter(|a| matches!(a, Action::Upload(_)))
        .map(|a| a.file().size)
        .sum();
    if plan.changed {
        write_manifest(store, t, &manifest).await?;
        written.fetch_add(2, Ordering::Relaxed);
    }
    if !plan.deletes.is_empty() {
        let keys: Vec<String> = plan
            .deletes
            .iter()
            .map(|k| format!("{}{k}", t.prefix))
            .collect();
        store.delete(&t.bucket, &keys).await?;
        written.fetch_add(keys.len().div_ceil(1000) as u64, Ordering::Relaxed);
    }
    if let (Some(cdn), Some(dist)) = (cdn, &opts.distribution) {
        if let Some((name, rules)) = &opts.edge {
            let outcome = cdn
                .ensure_edge_function(dist, name, &function_code(rules))
                .await?;
            report.edge_function = Some(format!(
                "{name}: {}",
                match outcome {
                    EdgeOutcome::Unchanged => "unchanged",
                    EdgeOutcome::Created => "created and published",
                    EdgeOutcome::Updated => "updated and published",
                }
            ));
        }
        if !invalidation.is_empty() {
            let id = cdn.invalidate(dist, &invalidation).await?;
            if let Some(timeout) = opts.wait_invalidation {
                cdn.wait_invalidation(dist, &id, timeout).await?;
            }
            report.invalidation_id = Some(id);
        }
    }
    report.write_requests = written.load(Ordering::Relaxed);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    phase: &str,
    actions: &[Action],
    paths: &BTreeMap<&str, &PathBuf>,
    t: &S3Target,
    concurrency: usize,
    store: &dyn ObjectStore,
    progress: &dyn Progress,
    written: &AtomicU64,
) -> Result<Vec<(String, String)>, ObjectStoreError> {
    progress.start(phase, actions.len() as u64);
    // Collected first: a lazily mapped iterator here trips rustc's Send inference (HRTB).
    let futures: Vec<_> = actions
        .iter()
        .map(|a| async move {
            let f = a.file();
            let key = format!("{}{}", t.prefix, f.key);
            let etag = match a {
                Action::Upload(_) => {
                    store
                        .put_file(&t.bucket, &key, paths[f.key.as_str()], f.size, &f.headers)
                        .await?
                }
                Action::Retag(_) => store.retag(&t.bucket, &key, &f.headers).await?,
            };
            written.fetch_add(1, Ordering::Relaxed);
            progress.advance(&f.key);
            Ok::<_, ObjectStoreError>((f.key.clone(), etag))
        })
        .collect();
    let results = stream::iter(futures)
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<_>>()
        .await;
    progress.finish();
    results
}

/// The manifest, and a release record (`.gantry/releases/<n>.json`) for rollback and audit.
async fn write_manifest(
    store: &dyn ObjectStore,
    t: &S3Target,
    manifest: &SiteManifest,
) -> Result<(), ObjectStoreError> {
    let headers = ObjectHeaders {
        content_type: "application/json".into(),
        cache_control: "no-store".into(),
    };
    let body = serde_json::to_vec_pretty(manifest).expect("manifest serialises");
    let release_key = format!("{}.gantry/releases/{:08}.json", t.prefix, manifest.release);
    let release = serde_json::to_vec_pretty(&serde_json::json!({
        "release": manifest.release,
        "at": manifest.updated_at,
        "files": manifest.files.iter().map(|(k, e)| (k.clone(), e.sha256.clone())).collect::<BTreeMap<_, _>>(),
    }))
    .expect("release serialises");
    store
        .put_bytes(&t.bucket, &release_key, release, &headers)
        .await?;
    store
        .put_bytes(
            &t.bucket,
            &format!("{}{MANIFEST_KEY}", t.prefix),
            body,
            &headers,
        )
        .await?;
    Ok(())
}
