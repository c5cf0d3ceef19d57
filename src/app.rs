//! The composition root: the one place that names concrete adapters. It builds the store,
//! loads manifests, wires the engine, queue and HTTP server, and owns the shutdown story.
//!
//! Shutdown, in order: a signal (or [`Running::shutdown`]) cancels `stop`; readiness turns
//! false and the listener stops accepting while in-flight requests finish; the queue claims
//! nothing more and running deployments start no new step; after `shutdownGrace` the `abort`
//! token kills steps still running, which stay `running` in the store and resume on the next
//! start. Reporters then get up to 10 s to send what is left. Every spawned task is tracked and
//! awaited.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use tokio::task::JoinHandle;

use crate::adapters::cloudfront::CloudFront;
use crate::adapters::ecs::Ecs;
use crate::adapters::eventbridge::EventBridge;
use crate::adapters::git::GitFetcher;
use crate::adapters::process::{Isolation, ShellRunner};
use crate::adapters::s3::S3Store;
use crate::config::Config;
use crate::control::Control;
use crate::http::{router, AppState};
use crate::manifests;
use crate::pipeline::{Cancel, Engine, Ports, SitePorts};
use crate::queue::Queue;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// How long shutdown waits for reporters to send what is left.
const REPORTER_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A started daemon.
pub struct Running {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    queue: crate::queue::QueueHandle,
    promoter: Arc<tokio::sync::Notify>,
    cancel: Cancel,
    task: JoinHandle<()>,
    reload: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Running {
    /// Reloads the local manifests directory, as SIGHUP does; false when it was invalid (the
    /// previous manifests stay in force) or there is none.
    pub fn reload(&self) -> bool {
        (self.reload)()
    }

    /// Lets the queue and the automatic promoter look now (after the injected clock moved).
    pub fn wake_queue(&self) {
        self.queue.wake();
        self.promoter.notify_one();
    }

    /// Begins shutdown and waits for it to complete.
    pub async fn shutdown(self) {
        self.cancel.stop.cancel();
        let _ = self.task.await;
    }

    /// Waits until the daemon has stopped (after a signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// The build cache store in the data dir (hidden from builds with the rest of it), unless
/// `pipeline.cacheSize` is 0.
fn build_cache(config: &Config) -> anyhow::Result<Option<Arc<dyn crate::ports::BuildCache>>> {
    if config.pipeline.cache_size == 0 {
        tracing::info!("build caches are off (pipeline.cacheSize: 0)");
        return Ok(None);
    }
    let store = crate::adapters::build_cache::DirCache::open(
        config.data_dir.join("cache"),
        config.pipeline.cache_size,
    )
    .context("failed to open the build cache")?;
    Ok(Some(Arc::new(store)))
}

/// Builds everything and starts serving. Returns once the listener is bound.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_with_clock(config, Arc::new(crate::ports::SystemClock)).await
}

/// [`start`], reading the time deploy windows are judged at from `clock` (tests set it).
pub async fn start_with_clock(
    config: Config,
    clock: Arc<dyn crate::ports::Clock>,
) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "failed to create the data dir {}",
            config.data_dir.display()
        )
    })?;
    // Before anything touches the data: a second daemon here would resume the first one's
    // deployments and kill its builds.
    let data_lock = crate::adapters::lockfile::DataDirLock::acquire(&config.data_dir)?;
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&config.data_dir.join("gantry.db"))
            .context("failed to open the store")?,
    );
    let set = match &config.manifests {
        Some(dir) => {
            let set =
                manifests::load_dir(dir).map_err(|e| anyhow::anyhow!("invalid manifests:\n{e}"))?;
            tracing::info!(apps = set.apps.len(), dir = %dir.display(), "manifests loaded");
            set
        }
        None => manifests::ManifestSet::default(),
    };
    if config.api_token.is_none() {
        tracing::warn!("no API token configured: /api/v1 answers 401 and the CLI's client commands (status, deploy, rollback, ...) cannot reach this daemon (set GANTRY_API_TOKEN)");
    }
    if config.github.webhook_secrets.is_empty() {
        tracing::warn!("no GitHub webhook secret configured: every webhook will be rejected (set GANTRY_GITHUB_WEBHOOK_SECRET)");
    }
    let redactor = config.redactor().with(webhook_secrets(&set));
    let fetcher = Arc::new(GitFetcher::new(
        config.data_dir.join("mirrors"),
        config.github.token.clone(),
        redactor.clone(),
    ));
    let aws =
        crate::adapters::aws::load(config.aws_endpoint.as_deref(), config.aws_max_attempts).await;
    let signals = Arc::new(crate::services::signals::EcsSignals::default());
    let objects: Arc<dyn crate::ports::ObjectStore> = Arc::new(S3Store::new(&aws));
    let ecs: Arc<dyn crate::ports::ServiceDeployer> = Arc::new(Ecs::new(&aws));
    let rules: Arc<dyn crate::ports::JobScheduler> =
        Arc::new(crate::adapters::eventbridge::Rules::new(&aws));
    let runner: Arc<dyn crate::ports::CommandRunner> =
        Arc::new(ShellRunner::new(isolation(config.pipeline.isolation)?));
    let images = image_ports(
        &config.images,
        &aws,
        objects.clone(),
        ecs.clone(),
        runner.clone(),
        vec![config.data_dir.clone()],
    )?;
    let sites = SitePorts {
        objects: objects.clone(),
        cdn: Arc::new(CloudFront::new(&aws)),
    };
    let ports = Ports {
        fetcher: fetcher.clone(),
        runner,
        sites: Some(sites),
        ecs: Some(ecs.clone()),
        jobs: Some(rules.clone()),
        images: Some(images),
        signals: Some(signals.clone()),
        inventory: Some(Arc::new(crate::adapters::inventory::AwsInventory::new(
            &aws,
        ))),
        build_cache: build_cache(&config)?,
    };
    let metrics: Arc<dyn crate::ports::Metrics> =
        Arc::new(crate::adapters::prometheus::Prometheus::default());
    let engine = Arc::new(
        Engine::new(
            store.clone(),
            ports,
            config.data_dir.join("work"),
            config.pipeline.clone(),
            redactor.clone(),
        )
        .with_metrics(metrics.clone()),
    );
    // Reporters follow the store; each runs until shutdown, after the queue has stopped.
    let mut live: Vec<Arc<dyn crate::reporting::Reporter>> = Vec::new();
    if let Some(bus) = config.eventbridge_bus.as_deref() {
        let publisher: Arc<dyn crate::ports::EventPublisher> =
            Arc::new(EventBridge::new(&aws, bus));
        live.push(Arc::new(crate::reporting::eventbridge::BusReporter::new(
            publisher,
            store.clone(),
        )));
    }
    let discord = Arc::new(crate::adapters::discord::Discord::new(
        config.discord.bot_token.as_ref(),
        config.discord.api_url.as_deref(),
        config.discord.application_id,
    ));
    live.push(Arc::new(
        crate::reporting::discord::DiscordReporter::new(
            discord.clone(),
            store.clone(),
            Arc::new(|k: &str| std::env::var(k).ok()),
        )
        .with_edit_interval(config.reporting.discord_edit_interval),
    ));
    use crate::adapters::github::{GitHub, GithubAuth};
    let gh = &config.github;
    let auth = match (&gh.app, &gh.token) {
        (Some(app), _) => Some(GithubAuth::App {
            app_id: app.app_id,
            installation_id: app.installation_id,
            private_key: &app.private_key,
        }),
        (None, Some(token)) => Some(GithubAuth::Token(token)),
        (None, None) => None,
    };
    let github =
        GitHub::new(gh.api_url.as_deref(), auth).context("invalid GitHub configuration")?;
    warn_unreportable(&config, &set, github.is_some());
    let forge: Option<Arc<dyn crate::ports::Forge>> =
        github.map(|gh| Arc::new(gh) as Arc<dyn crate::ports::Forge>);
    if let Some(gh) = &forge {
        live.push(Arc::new(crate::reporting::github::GithubReporter::new(
            gh.clone(),
            store.clone(),
            config.public_url.clone(),
        )));
    }
    // Released digests written back to the git sources apps ask it for.
    let revisions_wake = Arc::new(tokio::sync::Notify::new());
    if !config.sources.is_empty() {
        live.push(Arc::new(
            crate::reporting::writeback::LockWriter::new(
                fetcher.clone() as Arc<dyn crate::ports::GitWriter>,
                store.clone(),
                config.sources.clone(),
                revisions_wake.clone(),
            )
            .with_forge(forge.clone()),
        ));
    }
    crate::reporting::prepare(&*store, &live)
        .await
        .context("cannot prepare the reporters' cursors")?;
    let reporters_stop = tokio_util::sync::CancellationToken::new();
    let reporters: Vec<_> = live
        .into_iter()
        .map(|r| {
            tokio::spawn(crate::reporting::run(
                store.clone(),
                r,
                redactor.clone(),
                crate::reporting::ReportingConfig {
                    retry: config.reporting.retry,
                    ..Default::default()
                },
                reporters_stop.clone(),
            ))
        })
        .collect();
    let cancel = Cancel::default();
    let queue = Queue::new(
        store.clone(),
        engine,
        config.queue.max_concurrent,
        cancel.clone(),
    )
    .with_clock(clock.clone());
    let queue_handle = queue.handle();
    let manifests_slot = Arc::new(RwLock::new(set));
    let desired = Arc::new(crate::control::sources::Desired::new(
        manifests_slot.clone(),
    ));
    let control = Arc::new(
        Control::new(
            store.clone(),
            manifests_slot.clone(),
            queue.handle(),
            Some(ecs.clone()),
        )
        .with_sources(config.sources.clone(), revisions_wake.clone())
        .with_jobs(Some(rules.clone())),
    );
    // Git sources of manifests: the revisions in force are read before intake opens.
    let learn = {
        let redactor = redactor.clone();
        Arc::new(move |set: &manifests::ManifestSet| redactor.learn(webhook_secrets(set)))
    };
    let source_sync = Arc::new(
        crate::control::sources::SourceSync::new(
            control.clone(),
            desired.clone(),
            fetcher.clone() as Arc<dyn crate::ports::SourceFetcher>,
            fetcher.clone() as Arc<dyn crate::ports::RemoteRefs>,
            config.sources.clone(),
            config.data_dir.join("manifests"),
            learn,
        )
        .with_forge(forge),
    );
    source_sync.start().await;
    // Drift checks of live services and sites against their releases; stop with intake.
    let drift = Arc::new(crate::control::drift::DriftWatcher::new(
        control.clone(),
        Some(ecs.clone()),
        Some(objects.clone()),
        config.drift,
        signals.any(),
    ));
    let drift_notices = crate::reporting::drift::DriftNotifier::new(
        discord.clone(),
        store.clone(),
        Arc::new(|k: &str| std::env::var(k).ok()),
    );
    // Environments promoted automatically after a soak (`promotion.after`).
    let promoter_wake = Arc::new(tokio::sync::Notify::new());
    let promoter = crate::control::autopromote::AutoPromoter::new(
        control.clone(),
        clock,
        promoter_wake.clone(),
    );
    // Posted until shutdown; what is left stays owed in the store for the next start.
    let drift_notices_task = tokio::spawn(drift_notices.run(reporters_stop.clone()));
    // Polling remotes for pushes whose webhook never came; stops with intake.
    let poller = crate::control::poll::Poller::new(
        control.clone(),
        fetcher.clone() as Arc<dyn crate::ports::RemoteRefs>,
        config.polling,
    );
    let followups = tokio_util::task::TaskTracker::new();
    let verifier = config
        .discord
        .public_key
        .map(|key| {
            crate::adapters::discord::InteractionSignatures::new(key).context(
                "discord.publicKey (GANTRY_DISCORD_PUBLIC_KEY) is not a valid Ed25519 public key",
            )
        })
        .transpose()?;
    let discord_hook = verifier.map(|verifier| {
        Arc::new(crate::http::discord::DiscordHook {
            verifier: Box::new(verifier),
            permissions: config.discord.permissions.clone(),
            replies: config
                .discord
                .application_id
                .map(|_| discord.clone() as Arc<dyn crate::ports::InteractionReplies>),
            tasks: followups.clone(),
            control: control.clone(),
        })
    });
    let state = AppState {
        store: store.clone(),
        control,
        webhook_secrets: Arc::new(config.github.webhook_secrets.clone()),
        api_token: config.api_token.clone(),
        shutting_down: cancel.stop.clone(),
        eventbridge_key: config.eventbridge_api_key.clone(),
        ecs_signals: signals,
        discord: discord_hook,
        drift: Some(drift.clone()),
        metrics,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("failed to listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gantry listening");

    let manifests_dir = config.manifests.clone();
    let desired_for_signals = desired.clone();
    let (reload_dir, reload_desired, reload_redactor) =
        (config.manifests.clone(), desired.clone(), redactor.clone());
    let limits = crate::http::serve::Limits {
        max_connections: config.http.max_connections,
        header_timeout: config.http.header_timeout,
        body_timeout: config.http.body_timeout,
        body_budget: config.http.body_budget,
        max_body: config.github.max_body_bytes,
    };
    let app = router(state, limits);
    let grace = config.pipeline.shutdown_grace;
    let task_cancel = cancel.clone();
    let task = tokio::spawn(async move {
        // Held until shutdown has finished.
        let _data_lock = data_lock;
        let stop = task_cancel.stop.clone();
        let server = crate::http::serve::serve(listener, app, limits, stop);
        let queue_task = tokio::spawn(queue.run());
        let poll_task = tokio::spawn(poller.run(task_cancel.stop.clone()));
        let drift_task = tokio::spawn(drift.run(task_cancel.stop.clone()));
        let promoter_task = tokio::spawn(promoter.run(task_cancel.stop.clone()));
        let sources_task = tokio::spawn(source_sync.run(revisions_wake, task_cancel.stop.clone()));
        let signals = tokio::spawn(watch_signals(
            task_cancel.clone(),
            manifests_dir,
            desired_for_signals,
            redactor,
        ));
        server.await;
        let _ = poll_task.await;
        let _ = drift_task.await;
        let _ = promoter_task.await;
        let _ = sources_task.await;
        // Intake has stopped. Give running steps the grace period, then abort them.
        let abort = task_cancel.abort.clone();
        let aborter = tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            abort.cancel();
        });
        let _ = queue_task.await;
        // The pipeline has stopped: reporters make a last pass over what it recorded, but a
        // remote that hangs does not hold shutdown up (what is left is reported on restart).
        reporters_stop.cancel();
        let _ = drift_notices_task.await;
        for mut reporter in reporters {
            if tokio::time::timeout(REPORTER_GRACE, &mut reporter)
                .await
                .is_err()
            {
                tracing::warn!("a reporter did not finish within {REPORTER_GRACE:?}; stopping it");
                reporter.abort();
            }
        }
        // Deferred chat follow-ups (a /diff) finish or are dropped with the reporters.
        followups.close();
        if tokio::time::timeout(REPORTER_GRACE, followups.wait())
            .await
            .is_err()
        {
            tracing::warn!("chat follow-ups did not finish within {REPORTER_GRACE:?}");
        }
        aborter.abort();
        signals.abort();
        tracing::info!("gantry stopped");
    });
    let reload = Box::new(move || match &reload_dir {
        Some(dir) => reload_local(dir, &reload_desired, &reload_redactor),
        None => false,
    });
    Ok(Running {
        addr,
        store,
        queue: queue_handle,
        promoter: promoter_wake,
        cancel,
        task,
        reload,
    })
}

/// The sandbox builds run in, as `pipeline.isolation` asks and this machine allows.
fn isolation(mode: crate::pipeline::IsolationMode) -> anyhow::Result<Isolation> {
    use crate::pipeline::IsolationMode;
    let chosen = match mode {
        IsolationMode::Auto => Isolation::detect(),
        IsolationMode::Bubblewrap => Isolation::require().map_err(anyhow::Error::msg)?,
        IsolationMode::None => Isolation::None,
    };
    match &chosen {
        Isolation::None => tracing::warn!(
            "build commands are not isolated (pipeline.isolation {mode:?}): they run as Gantry's user and could read its environment; deploy only trusted repositories, or use kaniko"
        ),
        Isolation::Bubblewrap { uid, .. } => {
            tracing::info!(uid, "build commands run in a bubblewrap sandbox")
        }
    }
    Ok(chosen)
}

/// Warns at start about reports the manifests ask for that this configuration cannot send.
fn warn_unreportable(config: &Config, set: &manifests::ManifestSet, github: bool) {
    let wants_github: Vec<String> = set
        .apps
        .iter()
        .filter(|a| {
            a.manifest
                .spec
                .notifications
                .github
                .as_ref()
                .is_some_and(|g| g.statuses || g.deployments)
        })
        .map(|a| a.manifest.metadata.name.clone())
        .collect();
    if !github && !wants_github.is_empty() {
        tracing::warn!(apps = ?wants_github, "apps ask for GitHub commit statuses or deployments but no GitHub token or App is configured (GANTRY_GITHUB_TOKEN, GANTRY_GITHUB_APP_*): nothing will be reported to GitHub");
    }
    if config.discord.bot_token.is_none() {
        let channels: Vec<String> = set
            .apps
            .iter()
            .filter(|a| {
                a.manifest
                    .spec
                    .notifications
                    .discord
                    .as_ref()
                    .is_some_and(|d| d.channel.is_some())
            })
            .map(|a| a.manifest.metadata.name.clone())
            .collect();
        if !channels.is_empty() {
            tracing::warn!(apps = ?channels, "apps post to Discord channels but GANTRY_DISCORD_BOT_TOKEN is not set: Discord will refuse those messages");
        }
    }
}

/// The registry client and the image builders, as configured (also used by `gantry image`).
pub fn image_ports(
    config: &crate::config::ImagesConfig,
    aws: &crate::adapters::aws::SdkConfig,
    objects: Arc<dyn crate::ports::ObjectStore>,
    ecs: Arc<dyn crate::ports::ServiceDeployer>,
    runner: Arc<dyn crate::ports::CommandRunner>,
    hidden: Vec<std::path::PathBuf>,
) -> anyhow::Result<crate::images::ImagePorts> {
    use crate::images::{buildah::Buildah, kaniko::Kaniko, layer::LayerBuilder, Builder};
    use crate::ports::Registry;
    let ecr = Arc::new(crate::adapters::ecr::Ecr::new(aws));
    let registry: Arc<dyn Registry> = Arc::new(
        crate::adapters::registry::HttpRegistry::new(
            config.registry_endpoints.clone(),
            config.auth_file.clone(),
            Some(ecr),
        )
        .context("invalid registry configuration")?,
    );
    let kaniko = config
        .kaniko
        .clone()
        .map(|k| Arc::new(Kaniko::new(k, objects, ecs, registry.clone())) as Arc<dyn Builder>);
    Ok(crate::images::ImagePorts {
        layer: Arc::new(LayerBuilder::new(registry.clone())),
        buildah: Arc::new(
            Buildah::new(registry.clone(), runner, config.buildah.clone()).hiding(hidden),
        ),
        kaniko,
        registry,
        concurrency: config.concurrency,
    })
}

/// The Discord webhook URLs the manifests' `webhookEnv` variables hold, and their tokens: they
/// are secrets, scrubbed like the configured ones.
fn webhook_secrets(set: &manifests::ManifestSet) -> Vec<String> {
    set.apps
        .iter()
        .filter_map(|a| {
            a.manifest
                .spec
                .notifications
                .discord
                .as_ref()?
                .webhook_env
                .clone()
        })
        .filter_map(|var| std::env::var(var).ok())
        .filter(|url| !url.is_empty())
        .flat_map(|url| {
            let token = url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_owned);
            std::iter::once(url).chain(token)
        })
        .collect()
}

/// SIGTERM/SIGINT begin shutdown; SIGHUP reloads the manifests (kept as they were if invalid).
async fn watch_signals(
    cancel: Cancel,
    dir: Option<std::path::PathBuf>,
    desired: Arc<crate::control::sources::Desired>,
    redactor: crate::secret::Redactor,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); cancel.stop.cancel(); return; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); cancel.stop.cancel(); return; }
            _ = hup.recv() => match &dir {
                Some(dir) => { reload_local(dir, &desired, &redactor); }
                None => tracing::info!("SIGHUP: no local manifests directory to reload (git sources follow their branches)"),
            },
        }
    }
}

/// Reloads the local manifests directory (kept as it was if invalid).
fn reload_local(
    dir: &std::path::Path,
    desired: &crate::control::sources::Desired,
    redactor: &crate::secret::Redactor,
) -> bool {
    let loaded = manifests::load_dir(dir).and_then(|set| {
        // Webhook variables the new manifests name are secrets from now on.
        redactor.learn(webhook_secrets(&set));
        desired.install(crate::control::sources::LOCAL, set)
    });
    match loaded {
        Ok(()) => {
            tracing::info!("manifests reloaded");
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "manifests reload failed; keeping the previous ones");
            false
        }
    }
}

/// `gantry serve`: start and run until a signal stops it.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let running = start(config).await?;
    running.wait().await;
    Ok(())
}
