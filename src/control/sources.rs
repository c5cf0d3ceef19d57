//! Desired state from git: the manifests in force are the union of a local directory (for
//! development) and the newest applied revision of each git source. A push or poll of a
//! source's branch records the revision as pending (with the delivery, in one transaction);
//! [`SourceSync`] then fetches it, loads and validates it, asks `plan::gitops` which apps it
//! changes, and records the decision together with the deployments it causes. A refused
//! revision leaves the one in force alone and records, per app it touches, a failed deployment
//! carrying the problems (file:line), which the reporters post where the author looks.
//!
//! Level-triggered: every pending revision is processed until decided, also after a restart;
//! deciding one twice records nothing the second time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Control;
use crate::domain::{
    ManifestRevision, ManifestSource, Release, RevisionState, SourceRevision, Trigger,
};
use crate::manifests::{self, ManifestErrors, ManifestSet};
use crate::plan::gitops::{reconcile, refusals, Revision};
use crate::ports::{FetchRequest, RemoteRefs, Revision as FetchRevision, SourceFetcher, StepLog};

/// The key of the local directory among the parts.
pub const LOCAL: &str = "";

/// The manifests in force, part by part (the local directory, each git source), and their
/// union, which everything else reads.
pub struct Desired {
    parts: Mutex<BTreeMap<String, ManifestSet>>,
    flat: Arc<RwLock<ManifestSet>>,
}

impl Desired {
    pub fn new(flat: Arc<RwLock<ManifestSet>>) -> Self {
        let local = flat.read().expect("manifests lock poisoned").clone();
        Self {
            parts: Mutex::new([(LOCAL.to_owned(), local)].into()),
            flat,
        }
    }

    /// The union in force.
    pub fn flat(&self) -> ManifestSet {
        self.flat.read().expect("manifests lock poisoned").clone()
    }

    /// One part as in force.
    pub fn part(&self, key: &str) -> ManifestSet {
        self.parts
            .lock()
            .expect("parts lock poisoned")
            .get(key)
            .cloned()
            .unwrap_or_default()
    }

    /// The union with `set` in place of part `key`, refused when two parts define one app.
    pub fn with(&self, key: &str, set: &ManifestSet) -> Result<ManifestSet, ManifestErrors> {
        union_with(&self.parts.lock().expect("parts lock poisoned"), key, set)
    }

    /// Puts `set` in force as part `key` (the union checked by [`Desired::with`] first).
    pub fn install(&self, key: &str, set: ManifestSet) -> Result<(), ManifestErrors> {
        let mut parts = self.parts.lock().expect("parts lock poisoned");
        let flat = union_with(&parts, key, &set)?;
        parts.insert(key.to_owned(), set);
        *self.flat.write().expect("manifests lock poisoned") = flat;
        Ok(())
    }
}

/// Every part but `key`, and `set` in its place.
fn union_with(
    parts: &BTreeMap<String, ManifestSet>,
    key: &str,
    set: &ManifestSet,
) -> Result<ManifestSet, ManifestErrors> {
    manifests::merge(
        parts
            .iter()
            .filter(|(k, _)| k.as_str() != key)
            .map(|(_, v)| v)
            .chain(std::iter::once(set)),
    )
}

/// The most problems a refusal lists (the rest are counted).
const MAX_LISTED: usize = 20;
/// Fetch attempts of one revision before it is refused.
const MAX_FETCH_ATTEMPTS: u32 = 5;
/// Checkouts of a source kept on disk (the one in force among them).
const KEEP_CHECKOUTS: usize = 3;

/// Fetches, validates and reconciles revisions of the git sources.
pub struct SourceSync {
    control: Arc<Control>,
    desired: Arc<Desired>,
    fetcher: Arc<dyn SourceFetcher>,
    refs: Arc<dyn RemoteRefs>,
    sources: Vec<ManifestSource>,
    root: PathBuf,
    /// Called with each set put in force (the daemon learns the secrets it names).
    on_install: Arc<dyn Fn(&ManifestSet) + Send + Sync>,
    adopted: Mutex<BTreeMap<String, bool>>,
    attempts: Mutex<BTreeMap<(String, String), u32>>,
    /// Where plan previews of pull requests are posted (none: they are not).
    forge: Option<Arc<dyn crate::ports::Forge>>,
    /// How often pending work is looked at when nothing wakes the loop.
    pub idle: Duration,
}

impl SourceSync {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        control: Arc<Control>,
        desired: Arc<Desired>,
        fetcher: Arc<dyn SourceFetcher>,
        refs: Arc<dyn RemoteRefs>,
        sources: Vec<ManifestSource>,
        root: PathBuf,
        on_install: Arc<dyn Fn(&ManifestSet) + Send + Sync>,
    ) -> Self {
        Self {
            control,
            desired,
            fetcher,
            refs,
            sources,
            root,
            on_install,
            adopted: Mutex::new(BTreeMap::new()),
            attempts: Mutex::new(BTreeMap::new()),
            forge: None,
            idle: Duration::from_secs(30),
        }
    }

    /// Posts plan previews of pull requests through `forge`.
    pub fn with_forge(mut self, forge: Option<Arc<dyn crate::ports::Forge>>) -> Self {
        self.forge = forge;
        self
    }

    /// Puts each source's revision in force as it was at the last stop (or, the first time,
    /// its branch head, adopted without deploying anything). A source that cannot be read
    /// now is retried by [`SourceSync::run`].
    pub async fn start(&self) {
        for source in &self.sources {
            if let Err(e) = self.adopt(source).await {
                tracing::error!(source = %source.name, error = %e, "cannot read the manifest source; retrying");
            }
        }
    }

    /// Processes pending revisions until `stop`, woken by `wake`.
    pub async fn run(self: Arc<Self>, wake: Arc<Notify>, stop: CancellationToken) {
        loop {
            for source in &self.sources {
                if !self.is_adopted(&source.name) {
                    if let Err(e) = self.adopt(source).await {
                        tracing::warn!(source = %source.name, error = %e, "manifest source still unreadable");
                    }
                }
            }
            match self.control.store.pending_revisions(50).await {
                Ok(pending) => {
                    for rev in pending {
                        if stop.is_cancelled() {
                            return;
                        }
                        self.process(rev).await;
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read pending manifest revisions"),
            }
            match self.control.store.pending_previews(20).await {
                Ok(pending) => {
                    for (seq, req, attempts) in pending {
                        if stop.is_cancelled() {
                            return;
                        }
                        self.preview(seq, req, attempts).await;
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read pending plan previews"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(self.idle) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    fn is_adopted(&self, name: &str) -> bool {
        self.adopted
            .lock()
            .expect("adopted lock poisoned")
            .get(name)
            .copied()
            .unwrap_or(false)
    }

    async fn adopt(&self, source: &ManifestSource) -> Result<(), String> {
        let store = &self.control.store;
        let sha = match store
            .applied_revision(&source.name)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(sha) => sha,
            None => {
                let heads = self
                    .refs
                    .list(&source.url)
                    .await
                    .map_err(|e| e.to_string())?;
                let Some(sha) = heads.get(&source.git_ref()).cloned() else {
                    return Err(format!("the remote has no branch `{}`", source.branch));
                };
                sha
            }
        };
        let dir = self.checkout(source, &sha).await?;
        let origin = ManifestRevision::git(&source.repo, &sha);
        let loaded = manifests::load_checkout(&dir, &source.path, &origin)
            .and_then(|set| self.desired.with(&source.name, &set).map(|_| set));
        let mark = |state, detail: Option<String>| SourceRevision {
            source: source.name.clone(),
            sha: sha.clone(),
            state,
            push: None,
            trigger: Trigger::Manifests,
            delivery_id: None,
            detail,
        };
        match loaded {
            Ok(set) => {
                let _ = store.add_revision(mark(RevisionState::Applied, None)).await;
                tracing::info!(source = %source.name, sha = %sha, apps = set.apps.len(), "manifest source in force");
                self.put_in_force(source, set, &sha);
            }
            Err(errors) => {
                let _ = store
                    .add_revision(mark(RevisionState::Refused, Some(errors.to_string())))
                    .await;
                tracing::error!(source = %source.name, sha = %sha, errors = %errors, "the manifest source's head is invalid; none of its apps are in force until a valid revision arrives");
            }
        }
        self.adopted
            .lock()
            .expect("adopted lock poisoned")
            .insert(source.name.clone(), true);
        Ok(())
    }

    fn put_in_force(&self, source: &ManifestSource, set: ManifestSet, sha: &str) {
        (self.on_install)(&set);
        if let Err(e) = self.desired.install(&source.name, set) {
            tracing::error!(source = %source.name, error = %e, "cannot put the manifest source in force");
        }
        prune(&self.source_dir(source), sha);
    }

    fn source_dir(&self, source: &ManifestSource) -> PathBuf {
        self.root.join(slug(&source.name))
    }

    async fn checkout(&self, source: &ManifestSource, sha: &str) -> Result<PathBuf, String> {
        let dest = self.source_dir(source).join(sha);
        let log = StepLog::new(16 * 1024, crate::secret::Redactor::default());
        self.fetcher
            .fetch(
                &FetchRequest {
                    repo: source.repo.clone(),
                    url: source.url.clone(),
                    revision: FetchRevision::Sha(sha.to_owned()),
                    dest: dest.clone(),
                },
                &log,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(dest)
    }

    async fn process(&self, rev: SourceRevision) {
        let store = &self.control.store;
        let Some(source) = self.sources.iter().find(|s| s.name == rev.source) else {
            let _ = store
                .decide_revision(
                    &rev.source,
                    &rev.sha,
                    RevisionState::Refused,
                    Some("the source is no longer configured".into()),
                    vec![],
                )
                .await;
            return;
        };
        let origin = ManifestRevision::git(&source.repo, &rev.sha);
        let dir = match self.checkout(source, &rev.sha).await {
            Ok(dir) => dir,
            Err(e) => {
                let key = (rev.source.clone(), rev.sha.clone());
                let n = {
                    let mut a = self.attempts.lock().expect("attempts lock poisoned");
                    let n = a.entry(key.clone()).or_insert(0);
                    *n += 1;
                    *n
                };
                tracing::warn!(source = %source.name, sha = %rev.sha, attempt = n, error = %e, "cannot fetch the manifest revision");
                if n >= MAX_FETCH_ATTEMPTS {
                    self.attempts
                        .lock()
                        .expect("attempts lock poisoned")
                        .remove(&key);
                    let reason = format!("manifests {origin} could not be fetched: {e}");
                    self.refuse(source, &rev, &origin, reason, vec![]).await;
                }
                return;
            }
        };
        let previous = self.desired.flat();
        let loaded = manifests::load_checkout(&dir, &source.path, &origin).and_then(|set| {
            self.desired
                .with(&source.name, &set)
                .map(|next| (set, next))
        });
        let (part, next) = match loaded {
            Ok(x) => x,
            Err(ManifestErrors(errors)) => {
                let files: Vec<String> = errors
                    .iter()
                    .map(|e| e.file.display().to_string())
                    .collect();
                let mut listed: Vec<String> = errors
                    .iter()
                    .take(MAX_LISTED)
                    .map(|e| head(&e.to_string(), 500))
                    .collect();
                if errors.len() > MAX_LISTED {
                    listed.push(format!("... and {} more", errors.len() - MAX_LISTED));
                }
                let reason = format!(
                    "manifests {origin} refused; {} stays in force:\n{}",
                    self.in_force_label(source).await,
                    listed.join("\n")
                );
                self.refuse(source, &rev, &origin, reason, files).await;
                return;
            }
        };
        let mut releases: BTreeMap<String, Release> = BTreeMap::new();
        for app in &next.apps {
            let name = &app.manifest.metadata.name;
            match store.good_releases(name, 1).await {
                Ok(mut r) => {
                    if let Some((_, release)) = r.pop() {
                        releases.insert(name.clone(), release);
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read releases; retrying the revision");
                    return;
                }
            }
        }
        let prev: Vec<&crate::domain::AppManifest> = previous.manifests().collect();
        let next_apps: Vec<(&crate::domain::AppManifest, ManifestRevision)> = next
            .apps
            .iter()
            .map(|a| (&a.manifest, a.origin.clone()))
            .collect();
        let actor = rev
            .push
            .as_ref()
            .map(|p| p.actor())
            .unwrap_or_else(|| "gantry".into());
        let entries = reconcile(&Revision {
            previous: &prev,
            next: &next_apps,
            push: rev
                .push
                .as_ref()
                .map(|p| (p, rev.trigger, rev.delivery_id.as_deref())),
            releases: &releases,
            adopting: !self.is_adopted(&source.name),
            actor: &actor,
        });
        match store
            .decide_revision(&rev.source, &rev.sha, RevisionState::Applied, None, entries)
            .await
        {
            Ok(ids) => {
                tracing::info!(source = %source.name, sha = %rev.sha, deployments = ?ids, "manifest revision applied");
                self.put_in_force(source, part, &rev.sha);
                self.adopted
                    .lock()
                    .expect("adopted lock poisoned")
                    .insert(source.name.clone(), true);
                if !ids.is_empty() {
                    self.control.queue.wake();
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot record the manifest revision; retrying"),
        }
    }

    /// Posts the plan preview of a pull request: what merging its head would do.
    async fn preview(&self, seq: i64, req: crate::domain::PreviewRequest, attempts: u32) {
        use crate::plan::preview::{plan, refused, AppChange};
        let store = &self.control.store;
        if let Some(app) = req.source.strip_prefix("app:") {
            return self.app_preview(seq, &req, app, attempts).await;
        }
        let (Some(source), Some(forge)) = (
            self.sources.iter().find(|s| s.name == req.source),
            self.forge.as_ref(),
        ) else {
            let _ = store
                .finish_preview(
                    seq,
                    "failed",
                    Some("no such source, or no GitHub access configured".into()),
                )
                .await;
            return;
        };
        let origin = ManifestRevision::git(&source.repo, &req.sha);
        let dest = self
            .root
            .join("previews")
            .join(slug(&source.name))
            .join(&req.sha);
        let log = StepLog::new(16 * 1024, crate::secret::Redactor::default());
        let fetched = self
            .fetcher
            .fetch(
                &FetchRequest {
                    repo: source.repo.clone(),
                    url: source.url.clone(),
                    revision: FetchRevision::Sha(req.sha.clone()),
                    dest: dest.clone(),
                },
                &log,
            )
            .await;
        let preview = match fetched {
            Err(e) => Err(format!("cannot fetch {origin}: {e}")),
            Ok(_) => Ok(
                match manifests::load_checkout(&dest, &source.path, &origin)
                    .and_then(|set| self.desired.with(&source.name, &set).map(|_| set))
                {
                    Err(ManifestErrors(errors)) => {
                        let listed: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                        refused(&origin, &listed)
                    }
                    Ok(set) => {
                        let flat = self.desired.flat();
                        let files: Vec<String> = set
                            .apps
                            .iter()
                            .map(|a| a.file.display().to_string())
                            .collect();
                        let changes: Vec<AppChange<'_>> = set
                            .apps
                            .iter()
                            .zip(&files)
                            .map(|(a, file)| AppChange {
                                next: &a.manifest,
                                file,
                                before: flat.get(&a.manifest.metadata.name).map(|l| &l.manifest),
                            })
                            .collect();
                        let removed: Vec<String> = self
                            .desired
                            .part(&source.name)
                            .apps
                            .iter()
                            .map(|a| a.manifest.metadata.name.clone())
                            .filter(|n| set.get(n).is_none())
                            .collect();
                        let render = |m: &crate::domain::AppManifest, file: &str| {
                            crate::plan::render::render(m, file, &ManifestRevision::default())
                                .unwrap_or_else(|e| format!("(cannot render: {e})\n"))
                        };
                        plan(&origin, &changes, &removed, &render)
                    }
                },
            ),
        };
        let _ = std::fs::remove_dir_all(&dest);
        self.post_preview(seq, &req, preview, forge.as_ref(), attempts)
            .await;
    }

    /// The preview of a pull request on app `name`'s own repository: what merging it would
    /// deploy, from the files GitHub says it changes.
    async fn app_preview(
        &self,
        seq: i64,
        req: &crate::domain::PreviewRequest,
        name: &str,
        attempts: u32,
    ) {
        let (Ok(app), Some(forge)) = (self.control.manifest(name), self.forge.as_ref()) else {
            let _ = self
                .control
                .store
                .finish_preview(
                    seq,
                    "failed",
                    Some("no such app, or no GitHub access configured".into()),
                )
                .await;
            return;
        };
        let preview = forge
            .pull_request_files(&req.repo, req.number)
            .await
            .map(|files| crate::plan::preview::app_plan(&app, &req.sha, files.as_deref()))
            .map_err(|e| e.to_string());
        self.post_preview(seq, req, preview, forge.as_ref(), attempts)
            .await;
    }

    /// Posts a preview (status, then the one comment) and records how that went.
    async fn post_preview(
        &self,
        seq: i64,
        req: &crate::domain::PreviewRequest,
        preview: Result<crate::plan::preview::Preview, String>,
        forge: &dyn crate::ports::Forge,
        attempts: u32,
    ) {
        use crate::plan::preview::MARKER;
        let store = &self.control.store;
        // An app's preview has its own comment and status beside a source's.
        let (context, marker) = match req.source.strip_prefix("app:") {
            Some(app) => (
                format!("gantry/plan/{app}"),
                crate::plan::preview::app_marker(app),
            ),
            None => ("gantry/plan".to_owned(), MARKER.to_owned()),
        };
        let posted = match preview {
            Err(e) => Err(e),
            Ok(p) => {
                let status = crate::ports::CommitStatus {
                    state: p.state.into(),
                    context,
                    description: p.description.clone(),
                    target_url: None,
                };
                match forge.commit_status(&req.repo, &req.sha, &status).await {
                    Err(e) => Err(e.to_string()),
                    Ok(()) => forge
                        .upsert_comment(&req.repo, req.number, &marker, &p.body)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                }
            }
        };
        let (state, detail) = match posted {
            Ok(()) => ("done", None),
            Err(e) if attempts + 1 >= MAX_FETCH_ATTEMPTS => ("failed", Some(e)),
            Err(e) => {
                tracing::warn!(repo = %req.repo, number = req.number, error = %e, "cannot post the plan preview; trying again");
                ("pending", Some(e))
            }
        };
        if let Err(e) = store.finish_preview(seq, state, detail).await {
            tracing::error!(error = %e, "cannot record the plan preview");
        }
    }

    async fn in_force_label(&self, source: &ManifestSource) -> String {
        match self.control.store.applied_revision(&source.name).await {
            Ok(Some(sha)) => format!("{}", ManifestRevision::git(&source.repo, &sha)),
            _ => "the previous revision".into(),
        }
    }

    async fn refuse(
        &self,
        source: &ManifestSource,
        rev: &SourceRevision,
        origin: &ManifestRevision,
        reason: String,
        files: Vec<String>,
    ) {
        let part = self.desired.part(&source.name);
        let apps: Vec<(&crate::domain::AppManifest, String)> = part
            .apps
            .iter()
            .map(|a| (&a.manifest, a.file.display().to_string()))
            .collect();
        let actor = rev
            .push
            .as_ref()
            .map(|p| p.actor())
            .unwrap_or_else(|| "gantry".into());
        let records = refusals(
            &apps,
            &files,
            origin,
            &reason,
            &actor,
            rev.delivery_id.as_deref(),
        );
        tracing::warn!(source = %source.name, sha = %rev.sha, reason = %reason, "manifest revision refused");
        if let Err(e) = self
            .control
            .store
            .decide_revision(
                &rev.source,
                &rev.sha,
                RevisionState::Refused,
                Some(reason),
                records,
            )
            .await
        {
            tracing::error!(error = %e, "cannot record the refused manifest revision; retrying");
        }
    }
}

/// The first `max` characters of `s`, marked when cut.
fn head(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// A directory name for a source: its name made safe, and a hash so two names never meet.
fn slug(name: &str) -> String {
    use sha2::Digest;
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect();
    let h = sha2::Sha256::digest(name.as_bytes());
    format!("{safe}-{}", &hex::encode(h)[..8])
}

/// Removes all but the newest few checkouts of a source (never `keep`).
fn prune(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != keep)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(KEEP_CHECKOUTS - 1);
    for (_, path) in dirs.into_iter().take(excess) {
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove an old manifest checkout");
        }
    }
}
