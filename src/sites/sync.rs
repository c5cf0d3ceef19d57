//! Carries out a site sync: scan, read the remote state, plan, then act in the safe order —
//! assets, documents, manifest and release record, deletions past their grace period, edge
//! function, CDN invalidation. A failure stops before the manifest is written, so the next
//! sync simply plans again from what is really in the bucket.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use super::scan::{scan, ScanError, Scanned};
use super::S3Target;
use crate::domain::SiteRelease;
use crate::domain::{blob_key, Grace, ObjectHeaders, RemoteObject, SiteManifest, MANIFEST_KEY};
use crate::plan::edge::{function_code, EdgeRules};
use crate::plan::headers::HeaderRules;
use crate::plan::invalidation::plan_invalidation;
use crate::plan::site::{plan_restore, plan_sync, Action, SitePlan};
use crate::ports::{Cdn, CdnError, EdgeOutcome, ObjectStore, ObjectStoreError};

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
    #[error("no previous release is recorded for this site")]
    NoPreviousRelease,
    #[error(
        "site release {0} is neither the current nor the previous one, so it cannot be restored"
    )]
    NotRetained(u64),
    #[error(transparent)]
    Unrestorable(#[from] crate::plan::site::Unrestorable),
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub target: String,
    pub dry_run: bool,
    pub files: usize,
    pub uploads: Vec<String>,
    pub header_updates: Vec<String>,
    /// Objects put back from retained content (rollback).
    pub restored: Vec<String>,
    pub unchanged: usize,
    /// Objects whose overwritten content was kept for rollback.
    pub retained: Vec<String>,
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

impl SyncReport {
    /// One line saying what the sync did (or would do), for the CLI and the step log.
    pub fn summary(&self) -> String {
        let verb = if self.dry_run { "would" } else { "did" };
        format!(
            "{}: {} files; {verb} upload {} ({} bytes), update headers of {}, restore {}, keep {} unchanged, mark {} stale, delete {}; invalidation paths: {}{}",
            self.target,
            self.files,
            self.uploads.len(),
            self.bytes_uploaded,
            self.header_updates.len(),
            self.restored.len(),
            self.unchanged,
            self.newly_stale.len(),
            self.deletes.len(),
            self.invalidation_paths.len(),
            self.invalidation_id
                .as_ref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default(),
        )
    }
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
    let (remote, manifest) = read_remote(store, &opts.target).await?;
    let local: Vec<_> = scanned.iter().map(|s| s.file.clone()).collect();
    let plan = plan_sync(&local, &remote, &manifest, now, opts.grace);
    let paths: BTreeMap<String, PathBuf> = scanned
        .into_iter()
        .map(|s: Scanned| (s.file.key, s.path))
        .collect();
    carry_out(
        plan,
        local.len(),
        &Content::Files(&paths),
        opts,
        store,
        cdn,
        progress,
    )
    .await
}

/// Puts the site's previous release (or release `to`, which must be the current or the
/// previous one) back in place from what the bucket still holds (objects kept for the grace
/// period and retained copies of overwritten ones), without rebuilding.
pub async fn rollback(
    to: Option<u64>,
    opts: &SyncOptions,
    store: &dyn ObjectStore,
    cdn: Option<&dyn Cdn>,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SyncReport, SiteError> {
    restore(to, false, opts, store, cdn, now, progress).await
}

/// Puts release `release` (the current or the previous one) in place again with the headers
/// `opts.rules` give its files now: a change of cache rules alone, without rebuilding. Files
/// whose headers do not change are left alone.
pub async fn reapply(
    release: u64,
    opts: &SyncOptions,
    store: &dyn ObjectStore,
    cdn: Option<&dyn Cdn>,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SyncReport, SiteError> {
    restore(Some(release), true, opts, store, cdn, now, progress).await
}

async fn restore(
    to: Option<u64>,
    reheader: bool,
    opts: &SyncOptions,
    store: &dyn ObjectStore,
    cdn: Option<&dyn Cdn>,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SyncReport, SiteError> {
    let (remote, manifest) = read_remote(store, &opts.target).await?;
    let mut target = match to {
        Some(n) if n == manifest.release => SiteRelease {
            release: n,
            at: manifest.updated_at,
            files: manifest.files.clone(),
        },
        Some(n) => manifest
            .previous
            .clone()
            .filter(|p| p.release == n)
            .ok_or(SiteError::NotRetained(n))?,
        None => manifest
            .previous
            .clone()
            .ok_or(SiteError::NoPreviousRelease)?,
    };
    if reheader {
        for (key, entry) in target.files.iter_mut() {
            entry.headers = opts.rules.headers(key);
        }
    }
    let plan = plan_restore(&target, &remote, &manifest, now, opts.grace)?;
    carry_out(
        plan,
        target.files.len(),
        &Content::Files(&BTreeMap::new()),
        opts,
        store,
        cdn,
        progress,
    )
    .await
}

/// Where the bytes of the files a plan uploads come from.
enum Content<'a> {
    /// The build output: each key's local file.
    Files(&'a BTreeMap<String, PathBuf>),
    /// Another site target's objects (a promotion): each key's object in `bucket`.
    Objects {
        bucket: &'a str,
        keys: &'a BTreeMap<String, String>,
    },
}

/// Puts release `release` of the site at `from` (another bucket or prefix: the environment
/// it is promoted from) in place at `opts.target`: the same files, with the headers
/// `opts.rules` give them here, copied server-side; nothing is uploaded from here and nothing
/// is built. Each file is read from `from` as it holds it now: at its key while the content
/// there is the release's (current, or kept stale), else from the copy kept of overwritten
/// content.
pub async fn promote(
    from: &S3Target,
    release: u64,
    opts: &SyncOptions,
    store: &dyn ObjectStore,
    cdn: Option<&dyn Cdn>,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<SyncReport, SiteError> {
    if opts.edge.is_some() && opts.distribution.is_none() {
        return Err(SiteError::EdgeWithoutDistribution);
    }
    let (source_listing, source) = read_remote(store, from).await?;
    let files = if source.release == release {
        source.files.clone()
    } else {
        source
            .previous
            .clone()
            .filter(|p| p.release == release)
            .ok_or(SiteError::NotRetained(release))?
            .files
    };
    let present: std::collections::BTreeSet<&str> =
        source_listing.iter().map(|o| o.key.as_str()).collect();
    let mut keys = BTreeMap::new();
    let mut missing = Vec::new();
    for (key, entry) in &files {
        let at_key = source
            .files
            .get(key)
            .map(|c| c.sha256 == entry.sha256)
            .or_else(|| {
                source
                    .stale
                    .get(key)
                    .map(|s| s.sha256.as_deref() == Some(entry.sha256.as_str()))
            })
            .unwrap_or(false);
        let blob = blob_key(&entry.sha256);
        let origin = if at_key && present.contains(key.as_str()) {
            key.clone()
        } else if present.contains(blob.as_str()) {
            blob
        } else {
            missing.push(key.clone());
            continue;
        };
        keys.insert(key.clone(), format!("{}{origin}", from.prefix));
    }
    if !missing.is_empty() {
        return Err(crate::plan::site::Unrestorable { release, missing }.into());
    }
    let local: Vec<crate::domain::LocalFile> = files
        .iter()
        .map(|(key, e)| crate::domain::LocalFile {
            key: key.clone(),
            sha256: e.sha256.clone(),
            md5: e.etag.clone(),
            size: e.size,
            headers: opts.rules.headers(key),
        })
        .collect();
    let (remote, manifest) = read_remote(store, &opts.target).await?;
    let plan = plan_sync(&local, &remote, &manifest, now, opts.grace);
    let content = Content::Objects {
        bucket: &from.bucket,
        keys: &keys,
    };
    carry_out(plan, local.len(), &content, opts, store, cdn, progress).await
}

/// The listing (keys relative to the prefix) and Gantry's manifest object.
pub(super) async fn read_remote(
    store: &dyn ObjectStore,
    t: &S3Target,
) -> Result<(Vec<RemoteObject>, SiteManifest), SiteError> {
    let manifest_key = format!("{}{MANIFEST_KEY}", t.prefix);
    let (listing, body) = tokio::try_join!(
        store.list(&t.bucket, &t.prefix),
        store.get(&t.bucket, &manifest_key)
    )?;
    let manifest = match body {
        Some(body) => serde_json::from_slice(&body).map_err(|e| SiteError::CorruptManifest {
            key: manifest_key,
            message: e.to_string(),
        })?,
        None => SiteManifest::default(),
    };
    let remote = listing
        .into_iter()
        .filter_map(|o| {
            o.key.strip_prefix(&t.prefix).map(|k| RemoteObject {
                key: k.to_owned(),
                ..o
            })
        })
        .collect();
    Ok((remote, manifest))
}

/// Runs a plan in the safe order and reports what it did (or would do, for a dry run).
async fn carry_out(
    plan: SitePlan,
    files: usize,
    content: &Content<'_>,
    opts: &SyncOptions,
    store: &dyn ObjectStore,
    cdn: Option<&dyn Cdn>,
    progress: &dyn Progress,
) -> Result<SyncReport, SiteError> {
    let t = &opts.target;
    let invalidation = match &opts.distribution {
        Some(_) => plan_invalidation(&plan.invalidate, opts.max_invalidation_paths),
        None => vec![],
    };
    let keys = |f: &dyn Fn(&Action) -> bool| {
        plan.actions()
            .filter(|a| f(a))
            .map(|a| a.file().key.clone())
            .collect::<Vec<_>>()
    };
    let mut report = SyncReport {
        target: t.to_string(),
        dry_run: opts.dry_run,
        files,
        uploads: keys(&|a| matches!(a, Action::Upload(_))),
        header_updates: keys(
            &|a| matches!(a, Action::Copy { file, source } if *source == file.key),
        ),
        restored: keys(&|a| matches!(a, Action::Copy { file, source } if *source != file.key)),
        unchanged: files - plan.assets.len() - plan.documents.len(),
        retained: plan.preserve.iter().map(|p| p.key.clone()).collect(),
        newly_stale: plan.newly_stale.clone(),
        deletes: plan.deletes.clone(),
        invalidation_paths: invalidation.clone(),
        release: plan.manifest.release,
        bytes_uploaded: plan
            .actions()
            .filter(|a| matches!(a, Action::Upload(_)))
            .map(|a| a.file().size)
            .sum(),
        ..Default::default()
    };
    if opts.dry_run {
        return Ok(report);
    }
    let written = AtomicU64::new(0);
    // Overwritten content is kept first, so an interrupted sync can still be rolled back.
    for p in &plan.preserve {
        store
            .copy(
                &t.bucket,
                &format!("{}{}", t.prefix, p.key),
                &format!("{}{}", t.prefix, blob_key(&p.sha256)),
                &p.headers,
            )
            .await?;
        written.fetch_add(1, Ordering::Relaxed);
    }
    let mut manifest = plan.manifest.clone();
    if opts.distribution.is_none() {
        // No CDN in front: nothing is owed.
        manifest.pending_invalidation.clear();
    }
    for (phase, actions) in [("assets", &plan.assets), ("documents", &plan.documents)] {
        let etags = execute(
            phase,
            actions,
            content,
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
    if plan.changed {
        put_manifest(store, t, &manifest).await?;
        written.fetch_add(1, Ordering::Relaxed);
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
            let what = match outcome {
                EdgeOutcome::Unchanged => "unchanged",
                EdgeOutcome::Created => "created and published",
                EdgeOutcome::Updated => "updated and published",
            };
            report.edge_function = Some(format!("{name}: {what}"));
        }
        if !invalidation.is_empty() {
            // One release's paths are one invalidation, however often the step runs.
            let reference = {
                use sha2::Digest as _;
                let key = format!("{}/{}\n{}", t.bucket, t.prefix, invalidation.join("\n"));
                let digest = sha2::Sha256::digest(key.as_bytes());
                format!("gantry-{}-{}", manifest.release, hex::encode(&digest[..12]))
            };
            let id = cdn.invalidate(dist, &invalidation, &reference).await?;
            if let Some(timeout) = opts.wait_invalidation {
                cdn.wait_invalidation(dist, &id, timeout).await?;
            }
            report.invalidation_id = Some(id);
            // Owed no more.
            if !manifest.pending_invalidation.is_empty() {
                manifest.pending_invalidation.clear();
                put_manifest(store, t, &manifest).await?;
                written.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    report.write_requests = written.load(Ordering::Relaxed);
    Ok(report)
}

/// A plan uploads only keys it was given content for; anything else is a bug, reported as a
/// failed request rather than a panic.
fn no_content(key: &str) -> ObjectStoreError {
    ObjectStoreError::Request {
        operation: "PutObject",
        key: key.to_owned(),
        message: "no content for this key".into(),
        transient: false,
    }
}

async fn put_manifest(
    store: &dyn ObjectStore,
    t: &S3Target,
    manifest: &SiteManifest,
) -> Result<(), SiteError> {
    let headers = ObjectHeaders {
        content_type: "application/json".into(),
        cache_control: "no-store".into(),
    };
    let body = serde_json::to_vec(manifest).expect("manifest serialises");
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

#[allow(clippy::too_many_arguments)]
async fn execute(
    phase: &str,
    actions: &[Action],
    content: &Content<'_>,
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
                Action::Upload(_) => match content {
                    Content::Files(paths) => {
                        let path = paths.get(&f.key).ok_or_else(|| no_content(&key))?;
                        store
                            .put_file(&t.bucket, &key, path, f.size, &f.headers)
                            .await?
                    }
                    Content::Objects { bucket, keys } => {
                        let source = keys.get(&f.key).ok_or_else(|| no_content(&key))?;
                        store
                            .copy_from(bucket, source, &t.bucket, &key, &f.headers)
                            .await?
                    }
                },
                Action::Copy { source, .. } => {
                    store
                        .copy(
                            &t.bucket,
                            &format!("{}{source}", t.prefix),
                            &key,
                            &f.headers,
                        )
                        .await?
                }
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
