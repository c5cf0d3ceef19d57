//! The step implementations. Each re-reads the world before acting and can run twice: fetch
//! reuses a checkout already at the commit, build re-verifies the checkout first, report
//! upserts the release.

use std::collections::BTreeMap;
use std::path::Path;

use super::PipelineConfig;
use crate::domain::{short_sha, Deployment, Release, StepKind};
use crate::store::Store;

use crate::ports::StepLog;
use crate::ports::{
    CommandError, CommandRunner, CommandSpec, FetchError, FetchRequest, FetchedCommit, Revision,
    Sandbox, SourceFetcher,
};

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("command `{command}` {source}\n--- last output ---\n{tail}")]
    Command {
        command: String,
        source: CommandError,
        tail: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("site `{site}`: {message}")]
    Site { site: String, message: String },
    #[error("site `{site}`: {source}")]
    SiteSync {
        site: String,
        #[source]
        source: crate::sites::SiteError,
    },
    #[error(transparent)]
    Image(#[from] crate::images::PublishError),
    #[error(transparent)]
    Rollout(crate::services::rollout::RolloutError),
    #[error(transparent)]
    Jobs(#[from] crate::services::jobs::JobError),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Verify(#[from] crate::verify::VerifyError),
    #[error("cancelled")]
    Cancelled,
}

impl StepError {
    /// Whether running the step again may succeed: the AWS call behind it was throttled,
    /// answered 5xx, timed out or lost its connection. Everything else is final.
    pub fn is_transient(&self) -> bool {
        use crate::services::rollout::RolloutError;
        use crate::sites::SiteError;
        match self {
            Self::Rollout(RolloutError::Ecs(e)) => e.transient,
            Self::Image(e) => e.source.is_transient(),
            Self::Jobs(e) => e.is_transient(),
            Self::Verify(crate::verify::VerifyError::Transient { .. }) => true,
            Self::SiteSync { source, .. } => match source {
                SiteError::Store(e) => e.is_transient(),
                SiteError::Cdn(e) => e.is_transient(),
                _ => false,
            },
            _ => false,
        }
    }
}

pub struct StepContext<'a> {
    pub dep: &'a Deployment,
    pub workspace: &'a Path,
    /// Gantry's data dir (the workspaces' grandparent), hidden from builds.
    pub private_dir: Option<&'a Path>,
    pub log: &'a StepLog,
    pub abort: &'a tokio_util::sync::CancellationToken,
    pub fetcher: &'a dyn SourceFetcher,
    pub runner: &'a dyn CommandRunner,
    pub store: &'a dyn Store,
    pub sites: Option<&'a super::SitePorts>,
    pub ecs: Option<&'a dyn crate::ports::ServiceDeployer>,
    pub jobs: Option<&'a dyn crate::ports::JobScheduler>,
    pub images: Option<&'a crate::images::ImagePorts>,
    pub signals: Option<&'a std::sync::Arc<crate::services::signals::EcsSignals>>,
    pub inventory: Option<&'a dyn crate::ports::Inventory>,
    pub build_cache: Option<&'a dyn crate::ports::BuildCache>,
    pub config: &'a PipelineConfig,
}

pub struct StepOutput {
    pub summary: String,
    /// The commit the step resolved, when it resolved one.
    pub sha: Option<String>,
    /// When that commit was made (its committer time), for lead time.
    pub committed_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn run(kind: StepKind, ctx: StepContext<'_>) -> Result<StepOutput, StepError> {
    match kind {
        StepKind::Verify => verify(&ctx).await,
        StepKind::FetchSource => fetch(&ctx).await,
        StepKind::Build => build(&ctx).await,
        StepKind::Report => report(&ctx).await,
        StepKind::SyncSites => sync_sites(&ctx).await,
        StepKind::RollServices => roll_services(&ctx).await,
        StepKind::ScheduleJobs => schedule_jobs(&ctx).await,
        StepKind::PublishImages => publish_images(&ctx).await,
    }
}

/// Checks the live account for what the manifests name, before anything is built or
/// changed: a missing role, secret or target group fails the deployment here, in seconds.
async fn verify(ctx: &StepContext<'_>) -> Result<StepOutput, StepError> {
    let skipped = |why: &str| StepOutput {
        summary: format!("skipped: {why}"),
        sha: None,
        committed_at: None,
    };
    if !ctx.config.verify {
        ctx.log
            .line("verify is off (pipeline.verify: false); nothing checked");
        return Ok(skipped("pipeline.verify is off"));
    }
    let Some(inventory) = ctx.inventory else {
        ctx.log.line("no AWS configuration; nothing checked");
        return Ok(skipped("no AWS configuration"));
    };
    let report = tokio::select! {
        r = crate::verify::verify(&ctx.dep.spec, None, inventory) => r?,
        _ = ctx.abort.cancelled() => return Err(StepError::Cancelled),
    };
    for w in report.warnings() {
        ctx.log.line(w.to_string());
    }
    let errors: Vec<String> = report.errors().map(|e| e.to_string()).collect();
    if !errors.is_empty() {
        for e in &errors {
            ctx.log.line(e);
        }
        return Err(StepError::Invalid(format!(
            "verify found {} problem(s) in the live account; nothing was built or changed:\n{}",
            errors.len(),
            errors.join("\n")
        )));
    }
    ctx.log.line(format!(
        "{} resource(s) checked: all present and consistent",
        report.checked
    ));
    Ok(StepOutput {
        summary: format!("{} resource(s) checked", report.checked),
        sha: None,
        committed_at: None,
    })
}

fn checkout_dir(ctx: &StepContext<'_>) -> std::path::PathBuf {
    ctx.workspace.join("src")
}

fn fetch_request(ctx: &StepContext<'_>) -> FetchRequest {
    let dep = ctx.dep;
    FetchRequest {
        repo: dep.spec.source.repo.clone(),
        url: dep.spec.clone_url(),
        revision: match &dep.sha {
            Some(sha) => Revision::Sha(sha.clone()),
            None => Revision::Ref(dep.git_ref.clone()),
        },
        dest: checkout_dir(ctx),
    }
}

/// Makes the checkout exactly the deployment's commit (`fresh`: from scratch), unless the
/// step is aborted first.
async fn checkout(ctx: &StepContext<'_>, fresh: bool) -> Result<FetchedCommit, StepError> {
    let req = fetch_request(ctx);
    if fresh {
        let _ = std::fs::remove_dir_all(&req.dest);
    }
    tokio::select! {
        r = ctx.fetcher.fetch(&req, ctx.log) => Ok(r?),
        _ = ctx.abort.cancelled() => Err(StepError::Cancelled),
    }
}

async fn fetch(ctx: &StepContext<'_>) -> Result<StepOutput, StepError> {
    let commit = checkout(ctx, false).await?;
    Ok(StepOutput {
        summary: format!(
            "{} {} ({})",
            short_sha(&commit.sha),
            commit.title,
            commit.author
        ),
        sha: Some(commit.sha),
        committed_at: chrono::DateTime::from_timestamp(commit.time, 0),
    })
}

async fn build(ctx: &StepContext<'_>) -> Result<StepOutput, StepError> {
    let Some(spec) = &ctx.dep.spec.build else {
        return Ok(StepOutput {
            summary: "nothing to build".into(),
            sha: None,
            committed_at: None,
        });
    };
    // The checkout may be gone (a restart on a fresh disk) or dirty (an interrupted build):
    // make it exactly the commit again before building.
    let commit = { checkout(ctx, true).await? };
    let timeout = spec.timeout.unwrap_or(ctx.config.build_timeout);
    let cwd = match &spec.workdir {
        Some(w) => checkout_dir(ctx).join(w),
        None => checkout_dir(ctx),
    };
    // A clean home every attempt: what an interrupted attempt left (a restored cache) goes.
    let home = ctx.workspace.join("home");
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home)
        .map_err(|e| StepError::Invalid(format!("cannot create {}: {e}", home.display())))?;
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("HOME".into(), home.display().to_string()),
        ("LANG".into(), "C.UTF-8".into()),
        ("CI".into(), "true".into()),
        ("GANTRY_APP".into(), ctx.dep.app.clone()),
        ("GANTRY_DEPLOYMENT_ID".into(), ctx.dep.id.to_string()),
        ("GANTRY_SHA".into(), commit.sha.clone()),
        ("GANTRY_REF".into(), ctx.dep.git_ref.clone()),
        ("SOURCE_DATE_EPOCH".into(), commit.time.to_string()),
    ];
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut passed = Vec::new();
    for name in &spec.pass_env {
        match std::env::var(name) {
            Ok(v) => {
                passed.push(v.clone());
                env.push((name.clone(), v));
            }
            Err(_) => {
                return Err(StepError::Invalid(format!(
                    "build.passEnv names `{name}`, which is not set in Gantry's environment"
                )))
            }
        }
    }
    let log = ctx.log.scrubbing(passed);
    let caches = restore_caches(ctx, spec, &log).await;
    use crate::plan::cache::RestoreState;
    // How each declared cache's restore went, for commands that skip work on an exact hit
    // (`[ "$GANTRY_CACHE_NODE_MODULES" = hit ] || npm ci`), as actions/cache's `cache-hit`.
    for c in &spec.caches {
        let name = c.cache_name();
        let state = caches
            .iter()
            .find(|a| a.slot.name == name)
            .map_or(RestoreState::Miss, |a| a.restored)
            .variable_value();
        env.push((crate::plan::cache::hit_variable(&name), state.into()));
    }
    let deadline = std::time::Instant::now() + timeout;
    for command in &spec.commands {
        log.line(format!("$ {command}"));
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        let cmd = CommandSpec {
            command: command.clone(),
            cwd: cwd.clone(),
            env: env.clone(),
            timeout: remaining,
            pid_file: Some(ctx.workspace.join("build.pgid")),
            // The repository's code: it sees its workspace, not Gantry's data or secrets.
            sandbox: Some(Sandbox {
                writable: ctx.workspace.to_path_buf(),
                hidden: ctx.private_dir.iter().map(|p| p.to_path_buf()).collect(),
                ..Sandbox::default()
            }),
        };
        match ctx.runner.run(&cmd, &log, ctx.abort).await {
            Ok(()) => {}
            Err(CommandError::Cancelled) => return Err(StepError::Cancelled),
            Err(CommandError::Timeout(_)) => {
                return Err(StepError::Command {
                    command: command.clone(),
                    source: CommandError::Timeout(timeout),
                    tail: log.tail(20),
                })
            }
            Err(source) => {
                return Err(StepError::Command {
                    command: command.clone(),
                    source,
                    tail: log.tail(20),
                })
            }
        }
    }
    let mut summary = format!("{} command(s) succeeded", spec.commands.len());
    let outcomes = save_caches(ctx, &caches, &log).await;
    if !outcomes.is_empty() {
        summary.push_str("; caches: ");
        summary.push_str(&outcomes.join(", "));
    }
    Ok(StepOutput {
        summary,
        sha: None,
        committed_at: None,
    })
}

/// A declared cache this build uses: where it is, its key, how its restore went.
struct ActiveCache {
    slot: crate::ports::CacheSlot,
    dir: crate::ports::CacheDir,
    path: String,
    restored: crate::plan::cache::RestoreState,
}

/// The most bytes of one key file hashed (a lock file is a few MB at most).
const MAX_KEY_FILE_BYTES: u64 = 64 << 20;

/// Restores the build's declared caches before its commands. A cache that cannot be used
/// is logged and left out; it never fails the build.
async fn restore_caches(
    ctx: &StepContext<'_>,
    spec: &crate::domain::BuildSpec,
    log: &StepLog,
) -> Vec<ActiveCache> {
    use crate::plan::cache::{key, place, Place, RestoreState};
    use crate::ports::{CacheDir, CacheSlot, Restored};
    let mut out = Vec::new();
    if spec.caches.is_empty() {
        return out;
    }
    let Some(store) = ctx.build_cache else {
        log.line(
            "build caches are off on this daemon (pipeline.cacheSize: 0); building without them",
        );
        return out;
    };
    let checkout = checkout_dir(ctx);
    let workdir: std::path::PathBuf = std::path::Path::new(spec.workdir.as_deref().unwrap_or(""))
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    for c in &spec.caches {
        let name = c.cache_name();
        let rel = match place(&c.path) {
            Ok(Place::Home(p)) => std::path::Path::new("home").join(p),
            Ok(Place::Workdir(p)) => std::path::Path::new("src").join(&workdir).join(p),
            Err(e) => {
                log.line(format!("cache {name}: skipped: {e}"));
                continue;
            }
        };
        let files = {
            let (checkout, base, files) =
                (checkout.clone(), checkout.join(&workdir), c.key.clone());
            tokio::task::spawn_blocking(move || hash_key_files(&checkout, &base, &files))
                .await
                .unwrap_or_else(|e| Err(e.to_string()))
        };
        let files = match files {
            Ok(f) => f,
            Err(e) => {
                log.line(format!("cache {name}: skipped: {e}"));
                continue;
            }
        };
        let slot = CacheSlot {
            app: ctx.dep.app.clone(),
            key: key(&name, &c.path, &files),
            name,
        };
        let dir = CacheDir::new(ctx.workspace, rel);
        let short = &slot.key[..12];
        let restored = match store.restore(&slot, &dir).await {
            Ok(Restored::Exact { bytes }) => {
                log.line(format!(
                    "cache {} ({}): restored (key {short}, {})",
                    slot.name,
                    c.path,
                    bytesize::ByteSize::b(bytes)
                ));
                RestoreState::Hit
            }
            Ok(Restored::Older { bytes, saved_at }) => {
                let age = (chrono::Utc::now().timestamp_millis() - saved_at).max(0) as u64;
                log.line(format!(
                    "cache {} ({}): restored from an older key (the key files changed; saved {} ago, {}); saving under key {short}",
                    slot.name,
                    c.path,
                    crate::domain::duration::format(std::time::Duration::from_secs(age / 1000)),
                    bytesize::ByteSize::b(bytes)
                ));
                RestoreState::Older
            }
            Ok(Restored::Miss) => {
                log.line(format!(
                    "cache {} ({}): miss (key {short}); starting empty",
                    slot.name, c.path
                ));
                RestoreState::Miss
            }
            Err(e) => {
                log.line(format!(
                    "cache {} ({}): not restored: {e}; building without it",
                    slot.name, c.path
                ));
                continue;
            }
        };
        out.push(ActiveCache {
            slot,
            dir,
            path: c.path.clone(),
            restored,
        });
    }
    out
}

/// Saves the caches after the build's commands succeeded; what each did, for the summary.
async fn save_caches(ctx: &StepContext<'_>, caches: &[ActiveCache], log: &StepLog) -> Vec<String> {
    let Some(store) = ctx.build_cache else {
        return vec![];
    };
    let mut out = Vec::new();
    for c in caches {
        let name = &c.slot.name;
        match store.save(&c.slot, &c.dir).await {
            Ok(Some(saved)) => {
                let mut line = format!(
                    "cache {name} ({}): saved {} in {} files (key {})",
                    c.path,
                    bytesize::ByteSize::b(saved.bytes),
                    saved.files,
                    &c.slot.key[..12]
                );
                if saved.evicted > 0 {
                    line.push_str(&format!(
                        "; evicted {} older entr{} ({}) to stay within {}",
                        saved.evicted,
                        if saved.evicted == 1 { "y" } else { "ies" },
                        bytesize::ByteSize::b(saved.evicted_bytes),
                        bytesize::ByteSize::b(ctx.config.cache_size)
                    ));
                }
                log.line(line);
            }
            Ok(None) => log.line(format!(
                "cache {name} ({}): nothing to save (the build left no such directory)",
                c.path
            )),
            Err(e) => log.line(format!("cache {name} ({}): not saved: {e}", c.path)),
        }
        out.push(format!("{name} {}", c.restored.summary()));
    }
    out
}

/// Each key file (relative to `base`, inside `checkout`) with the SHA-256 of its contents,
/// `None` when it does not exist. A key file must be a regular file in the checkout: a
/// symlink out of it, a FIFO or a huge file is refused.
fn hash_key_files(
    checkout: &Path,
    base: &Path,
    files: &[String],
) -> Result<Vec<(String, Option<String>)>, String> {
    use sha2::{Digest, Sha256};
    use std::io::Read as _;
    let root = checkout
        .canonicalize()
        .map_err(|e| format!("cannot read the checkout: {e}"))?;
    let mut out = Vec::new();
    for f in files {
        let path = base.join(f);
        let meta = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push((f.clone(), None));
                continue;
            }
            Err(e) => return Err(format!("key file `{f}`: {e}")),
            Ok(m) => m,
        };
        let inside = path
            .canonicalize()
            .map(|p| p.starts_with(&root))
            .unwrap_or(false);
        if !meta.is_file() || !inside {
            return Err(format!(
                "key file `{f}` is not a regular file in the checkout (a symlink, a directory or a special file)"
            ));
        }
        if meta.len() > MAX_KEY_FILE_BYTES {
            return Err(format!(
                "key file `{f}` is {} bytes, more than the {MAX_KEY_FILE_BYTES} hashed",
                meta.len()
            ));
        }
        let mut h = Sha256::new();
        let mut file = std::fs::File::open(&path)
            .map_err(|e| format!("key file `{f}`: {e}"))?
            .take(MAX_KEY_FILE_BYTES);
        std::io::copy(&mut file, &mut h).map_err(|e| format!("key file `{f}`: {e}"))?;
        out.push((f.clone(), Some(hex::encode(h.finalize()))));
    }
    Ok(out)
}

async fn publish_images(ctx: &StepContext<'_>) -> Result<StepOutput, StepError> {
    use crate::images::{publish::scratch_dir, publish_all, BuildError, Commit};
    let ports = ctx
        .images
        .ok_or_else(|| StepError::Invalid("this daemon has no image builders configured".into()))?;
    // The checkout may be gone (a restart on a fresh disk): make it exactly the commit again.
    // A build step that ran before left its output in it, which images may include.
    let commit = checkout(ctx, false).await?;
    let source_url = format!("https://github.com/{}", ctx.dep.spec.source.repo);
    let commit = Commit {
        tag: commit.sha.clone(),
        sha: commit.sha,
        epoch: crate::plan::oci::FIXED_EPOCH,
        source_url,
    };
    // What earlier releases used, newest first: an image whose inputs did not change is
    // reused from there (re-tagged), not rebuilt.
    let mut previous: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (_, release) in ctx.store.good_releases(&ctx.dep.app, 5).await? {
        for (name, reference) in release.images {
            let refs = previous.entry(name).or_default();
            if !refs.contains(&reference) {
                refs.push(reference);
            }
        }
    }
    let published = publish_all(
        ports,
        &ctx.dep.spec.images,
        &checkout_dir(ctx),
        &commit,
        &scratch_dir(ctx.workspace),
        ctx.config.build_timeout,
        &previous,
        ctx.log,
        ctx.abort,
    )
    .await
    .map_err(|e| match e.source {
        BuildError::Cancelled => StepError::Cancelled,
        _ => StepError::Image(e),
    })?;
    let mut release = current_release(ctx, &commit.sha).await?;
    for p in &published {
        release.images.insert(p.name.clone(), p.reference.clone());
    }
    let built = published.iter().filter(|p| !p.skipped).count();
    ctx.store.record_release(release).await?;
    Ok(StepOutput {
        summary: format!(
            "{} image(s), {built} built, {} reused",
            published.len(),
            published.len() - built
        ),
        sha: None,
        committed_at: None,
    })
}

async fn report(ctx: &StepContext<'_>) -> Result<StepOutput, StepError> {
    let dep = ctx.dep;
    let sha = dep
        .sha
        .clone()
        .ok_or_else(|| StepError::Invalid("no commit was resolved for this deployment".into()))?;
    let mut release = current_release(ctx, &sha).await?;
    release.created_at = chrono::Utc::now();
    ctx.store.record_release(release).await?;
    ctx.log
        .line(format!("recorded release of {} at {sha}", dep.app));
    Ok(StepOutput {
        summary: format!("release recorded at {}", short_sha(&sha)),
        sha: None,
        committed_at: None,
    })
}

/// This deployment's release as recorded so far (steps add to it), or a fresh one.
async fn current_release(ctx: &StepContext<'_>, sha: &str) -> Result<Release, StepError> {
    let dep = ctx.dep;
    if let Some(release) = ctx.store.release_of(dep.id).await? {
        return Ok(release);
    }
    // A manifest change alone runs the images of the release it starts from.
    let images = match dep.images_from {
        Some(id) => restored_release(ctx, id).await?.images,
        None => Default::default(),
    };
    Ok(Release {
        app: dep.app.clone(),
        deployment_id: dep.id,
        sha: sha.to_owned(),
        git_ref: dep.git_ref.clone(),
        images,
        sites: Default::default(),
        services: Default::default(),
        jobs: Default::default(),
        created_at: chrono::Utc::now(),
    })
}

/// The release a rollback deployment reproduces.
/// After `failed` failed for good: puts back what earlier steps of this deployment changed, so
/// a release is all or nothing, and says what it did. Services rolled by this deployment go
/// back to the task definitions of the app's last good release when a later step (its
/// scheduled jobs, a site sync) fails, and so do its jobs' rules; a failed rollout puts its
/// own services back itself.
pub async fn put_back(ctx: &StepContext<'_>, failed: StepKind) -> Option<String> {
    if !matches!(failed, StepKind::SyncSites | StepKind::ScheduleJobs)
        || ctx.dep.restore_from.is_some()
    {
        return None;
    }
    let ecs = ctx.ecs?;
    let mine = ctx.store.release_of(ctx.dep.id).await.ok()??;
    let (_, previous) = ctx
        .store
        .good_releases(&ctx.dep.app, 1)
        .await
        .ok()?
        .into_iter()
        .next()?;
    let mut restored = Vec::new();
    for svc in &ctx.dep.spec.services {
        let (Some(now), Some(before)) = (
            mine.services.get(&svc.name),
            previous.services.get(&svc.name),
        ) else {
            continue;
        };
        if now == before {
            continue;
        }
        let back = crate::ports::ServiceUpdate {
            task_definition: Some(before.clone()),
            ..Default::default()
        };
        match ecs.update_service(&svc.cluster, &svc.name, &back).await {
            Ok(_) => {
                ctx.log.line(format!(
                    "{}: put back to {before} (the deployment failed after rolling it)",
                    svc.name
                ));
                restored.push(format!("{} to {before}", svc.name));
            }
            Err(e) => {
                ctx.log
                    .line(format!("{}: cannot put it back to {before}: {e}", svc.name));
                restored.push(format!("{} NOT put back ({e})", svc.name));
            }
        }
    }
    let mut said = Vec::new();
    if !restored.is_empty() {
        said.push(format!(
            "the services this deployment rolled were put back: {}",
            restored.join(", ")
        ));
    }
    if let (Some(rules), false) = (ctx.jobs, ctx.dep.spec.jobs.is_empty()) {
        // The jobs of the last good release, as they were; jobs it did not have go.
        let mut spec = ctx.dep.spec.clone();
        spec.jobs.retain(|j| previous.jobs.contains_key(&j.name));
        match crate::services::jobs::schedule(
            &ctx.dep.app,
            &spec,
            &previous.images,
            &previous.jobs,
            ecs,
            rules,
            ctx.log,
        )
        .await
        {
            Ok(jobs) => said.push(format!(
                "the scheduled jobs were put back to the last good release ({} job(s))",
                jobs.len()
            )),
            Err(e) => said.push(format!("the scheduled jobs were NOT put back ({e})")),
        }
    }
    (!said.is_empty()).then(|| said.join("; "))
}

async fn restored_release(
    ctx: &StepContext<'_>,
    id: crate::domain::DeploymentId,
) -> Result<Release, StepError> {
    ctx.store.release_of(id).await?.ok_or_else(|| {
        StepError::Invalid(format!("deployment #{id} recorded no release to restore"))
    })
}

async fn sync_sites(ctx: &StepContext<'_>) -> Result<StepOutput, StepError> {
    use crate::plan::edge::{function_name, EdgeRules};
    use crate::plan::headers::HeaderRules;
    use crate::sites::{sync, sync::LogProgress, S3Target, SyncOptions};

    let ports = ctx.sites.ok_or_else(|| {
        StepError::Invalid("this daemon has no AWS configuration for site syncs".into())
    })?;
    let sha =
        ctx.dep.sha.clone().ok_or_else(|| {
            StepError::Invalid("no commit was resolved for this deployment".into())
        })?;
    // A rollback puts the recorded site release back, and a manifest change alone puts the
    // release it starts from in place again with the new rules, instead of syncing a build.
    let reheader = ctx.dep.restore_from.is_none() && ctx.dep.images_from.is_some();
    let restored = match ctx.dep.restore_from.or(ctx.dep.images_from) {
        Some(id) => Some(restored_release(ctx, id).await?),
        None => None,
    };
    let mut summaries = Vec::new();
    for site in &ctx.dep.spec.sites {
        let err = |message: String| StepError::Site {
            site: site.name.clone(),
            message,
        };
        // A promotion's release was put in place at another environment's target: its
        // content is copied from there.
        let (restore_to, promote_from) = match &restored {
            Some(release) => {
                let id = release.sites.get(&site.name).ok_or_else(|| {
                    err("the release it starts from recorded no release of this site".into())
                })?;
                let from = crate::sites::S3Target::parse(&id.target).map_err(err)?;
                let here = crate::sites::S3Target::of(site);
                (Some(id.release), (from != here).then_some(from))
            }
            None => (None, None),
        };
        let dir = checkout_dir(ctx).join(&site.dir);
        if restore_to.is_none() && !dir.is_dir() {
            return Err(err(format!(
                "the build output `{}` does not exist; does the build write it?",
                site.dir
            )));
        }
        let user: Vec<(String, String)> = site
            .cache_control
            .iter()
            .map(|r| (r.glob.clone(), r.value.clone()))
            .collect();
        let rules = HeaderRules::new(site.preset, &user, None).map_err(|e| err(e.to_string()))?;
        let edge = EdgeRules {
            redirects: site.redirects.clone(),
            pretty_urls: site.pretty_urls,
            spa: site.spa,
        };
        let opts = SyncOptions {
            target: S3Target::new(&site.bucket, &site.prefix),
            rules,
            grace: {
                let d = crate::domain::Grace::default();
                crate::domain::Grace {
                    days: site.grace_days.unwrap_or(d.days),
                    releases: site.grace_releases.unwrap_or(d.releases),
                }
            },
            concurrency: 16,
            dry_run: false,
            distribution: site.distribution.clone(),
            max_invalidation_paths: 100,
            wait_invalidation: None,
            edge: (!edge.is_empty()).then(|| (function_name(&ctx.dep.app, &site.name), edge)),
        };
        let progress = LogProgress::default();
        let cdn: Option<&dyn crate::ports::Cdn> =
            site.distribution.as_ref().map(|_| ports.cdn.as_ref());
        let work = async {
            match (restore_to, promote_from.as_ref()) {
                (Some(n), Some(from)) => {
                    ctx.log.line(format!(
                        "{}: release {n} of {from}, copied to {}",
                        site.name, opts.target
                    ));
                    crate::sites::promote(
                        from,
                        n,
                        &opts,
                        ports.objects.as_ref(),
                        cdn,
                        chrono::Utc::now(),
                        &progress,
                    )
                    .await
                }
                (Some(n), None) if reheader => {
                    crate::sites::reapply(
                        n,
                        &opts,
                        ports.objects.as_ref(),
                        cdn,
                        chrono::Utc::now(),
                        &progress,
                    )
                    .await
                }
                (Some(n), None) => {
                    crate::sites::rollback(
                        Some(n),
                        &opts,
                        ports.objects.as_ref(),
                        cdn,
                        chrono::Utc::now(),
                        &progress,
                    )
                    .await
                }
                (None, _) => {
                    sync(
                        &dir,
                        &opts,
                        ports.objects.as_ref(),
                        cdn,
                        chrono::Utc::now(),
                        &progress,
                    )
                    .await
                }
            }
        };
        let report = tokio::select! {
            r = work => r.map_err(|source| StepError::SiteSync {
                site: site.name.clone(),
                source,
            })?,
            _ = ctx.abort.cancelled() => return Err(StepError::Cancelled),
        };
        let line = format!("{}, release {}", report.summary(), report.release);
        ctx.log.line(&line);
        if let Some(e) = &report.edge_function {
            ctx.log.line(format!("edge function {e}"));
        }
        let mut release = current_release(ctx, &sha).await?;
        release.sites.insert(
            site.name.clone(),
            crate::domain::SiteReleaseId {
                target: report.target.clone(),
                release: report.release,
            },
        );
        ctx.store.record_release(release).await?;
        summaries.push(format!("{} release {}", site.name, report.release));
    }
    Ok(StepOutput {
        summary: summaries.join(", "),
        sha: None,
        committed_at: None,
    })
}

async fn roll_services(ctx: &StepContext<'_>) -> Result<StepOutput, StepError> {
    use crate::services::rollout::{roll, RolloutError, RolloutOptions};
    let ecs = ctx
        .ecs
        .ok_or_else(|| StepError::Invalid("this daemon has no AWS configuration for ECS".into()))?;
    let sha =
        ctx.dep.sha.clone().ok_or_else(|| {
            StepError::Invalid("no commit was resolved for this deployment".into())
        })?;
    let timeout = ctx
        .dep
        .spec
        .rollout_timeout
        .unwrap_or(std::time::Duration::from_secs(15 * 60));
    let opts = RolloutOptions {
        timeout,
        poll: ctx.config.ecs_poll,
        keep_revisions: ctx.dep.spec.keep_revisions.unwrap_or(10),
        signals: ctx.signals.cloned(),
        run_key: format!(
            "{}/{}/{}",
            ctx.dep.app,
            ctx.dep.id,
            ctx.dep.created_at.timestamp_millis()
        ),
    };
    let mut release = current_release(ctx, &sha).await?;
    let pins = match ctx.dep.restore_from {
        Some(id) => restored_release(ctx, id).await?.services,
        None => Default::default(),
    };
    let results = roll(
        &ctx.dep.spec,
        &release.images,
        &pins,
        ecs,
        &opts,
        ctx.log,
        ctx.abort,
    )
    .await
    .map_err(|e| match e {
        RolloutError::Cancelled => StepError::Cancelled,
        other => StepError::Rollout(other),
    })?;
    let changed = results.iter().filter(|r| r.updated).count();
    for r in &results {
        release
            .services
            .insert(r.name.clone(), r.task_definition.clone());
    }
    ctx.store.record_release(release).await?;
    Ok(StepOutput {
        summary: format!("{} service(s), {changed} rolled", results.len()),
        sha: None,
        committed_at: None,
    })
}

async fn schedule_jobs(ctx: &StepContext<'_>) -> Result<StepOutput, StepError> {
    let (Some(ecs), Some(rules)) = (ctx.ecs, ctx.jobs) else {
        return Err(StepError::Invalid(
            "this daemon has no AWS configuration for ECS and EventBridge".into(),
        ));
    };
    let sha =
        ctx.dep.sha.clone().ok_or_else(|| {
            StepError::Invalid("no commit was resolved for this deployment".into())
        })?;
    let mut release = current_release(ctx, &sha).await?;
    let pins = match ctx.dep.restore_from {
        Some(id) => restored_release(ctx, id).await?.jobs,
        None => Default::default(),
    };
    let done = crate::services::jobs::schedule(
        &ctx.dep.app,
        &ctx.dep.spec,
        &release.images,
        &pins,
        ecs,
        rules,
        ctx.log,
    )
    .await?;
    let n = done.len();
    release.jobs = done;
    ctx.store.record_release(release).await?;
    Ok(StepOutput {
        summary: format!("{n} job(s) scheduled"),
        sha: None,
        committed_at: None,
    })
}
