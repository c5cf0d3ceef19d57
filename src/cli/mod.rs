//! The command line (clap derive): one binary, one subcommand per task. Local commands
//! (`serve`, `init`, `validate`) run here; the others call a running daemon's API.

mod client;
mod diff;
mod discord;
mod ecs;
mod eventbridge;
mod iam;
mod image;
mod import;
mod local;
mod render;
mod site;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// Gantry: GitOps deployments of ECS Fargate services and S3/CloudFront sites.
#[derive(Debug, Parser)]
#[command(name = "gantry", version, about, long_about = None)]
pub struct Cli {
    /// Log line format (also GANTRY_LOG_FORMAT); filter with GANTRY_LOG or RUST_LOG.
    #[arg(
        long,
        global = true,
        env = "GANTRY_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: webhook intake, deploy queue, pipelines, HTTP API.
    Serve {
        /// Configuration file (also GANTRY_CONFIG); optional, environment variables suffice.
        #[arg(long, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Scaffold a minimal, valid App manifest in the manifests directory.
    Init {
        /// App name (lowercase letters, digits, '-').
        app: String,
        /// GitHub repository, OWNER/NAME.
        #[arg(long)]
        repo: String,
        /// Branch whose pushes deploy the app.
        #[arg(long, default_value = "main")]
        branch: String,
        /// Manifests directory (also GANTRY_MANIFESTS).
        #[arg(long, env = "GANTRY_MANIFESTS", default_value = "manifests")]
        manifests: PathBuf,
    },
    /// Validate the configuration and every manifest; exit 1 listing every problem.
    Validate {
        /// Configuration file (also GANTRY_CONFIG).
        #[arg(long, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
        /// Manifests directory; overrides the configuration's.
        #[arg(long)]
        manifests: Option<PathBuf>,
    },
    /// Queue a deployment of APP on the running daemon.
    Deploy {
        app: String,
        /// Ref to deploy (branch, tag or refs/...); default: the app's branch.
        #[arg(long = "ref", conflicts_with = "sha")]
        git_ref: Option<String>,
        /// Exact 40-character commit to deploy.
        #[arg(long)]
        sha: Option<String>,
        /// Wait for the deployment to finish and exit 1 if it failed.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Redeploy a recorded release exactly (same task definitions, same site release) and pause
    /// automatic deploys of APP until `gantry resume APP`.
    Rollback {
        app: String,
        /// Deployment whose release to restore; default: the one before the current release.
        #[arg(long)]
        to: Option<i64>,
        /// The environment, for an app with environments.
        #[arg(long)]
        env: Option<String>,
        /// Wait for the rollback deployment to finish and exit 1 if it failed.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Deploy environment FROM's release of APP to environment TO: the same image digests
    /// and site content with TO's settings, nothing built. Promoting anything but FROM's
    /// newest release (`--release`) puts a hold on TO.
    Promote {
        /// The app, as named in its manifest (the one declaring `environments`).
        app: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// The deployment of FROM whose release to promote; default: its newest release.
        #[arg(long)]
        release: Option<i64>,
        /// Wait for the deployment to finish and exit 1 if it failed.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Holds: what a rollback (or a promotion of an older release) puts on an environment so
    /// that automation leaves it alone.
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// Compare APP's live services and sites with its last release now (as the daemon does
    /// every `drift.interval`): print the drift, heal it where `selfHeal` is on; exit 1 when
    /// the live state has drifted.
    Drift {
        /// The app, as named in its manifest.
        app: String,
        /// The environment, for an app with environments.
        #[arg(long)]
        env: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Approve APP's deployment awaiting approval (you must be in its `spec.approvals.from`;
    /// the change's author's own approval does not count). Audited.
    Approve(WaitingArgs),
    /// Reject APP's deployment awaiting approval: it ends without starting. Audited.
    Reject(WaitingArgs),
    /// Exit 0 when the daemon at --server answers /healthz within 5 s, else 1: the container
    /// health check of Gantry's own task definition (no curl needed in the image).
    Health {
        /// The daemon's base URL.
        #[arg(long, env = "GANTRY_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
    },
    /// Print the least-privilege IAM policy Gantry needs for the manifests: write actions only
    /// on the clusters, services, task definition families, repositories, bucket prefixes,
    /// distributions, edge functions and rules they name; iam:PassRole only for their roles.
    IamPolicy {
        /// The account; default: the one the manifests' ECR repositories or roles name.
        #[arg(long)]
        account: Option<String>,
        /// The region; default: the one the manifests' ECR repositories name, else AWS_REGION.
        #[arg(long)]
        region: Option<String>,
        /// Configuration file (also GANTRY_CONFIG).
        #[arg(long, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
        /// Manifests directory; overrides the configuration's.
        #[arg(long)]
        manifests: Option<PathBuf>,
    },
    /// Deploy windows: start a deployment that waits for its window.
    Window {
        #[command(subcommand)]
        command: WindowCommand,
    },
    /// Let pushes deploy APP again after a rollback paused it.
    Resume {
        /// The app, as named in its manifest.
        app: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print APP's fully rendered desired state (charts expanded): the spec, each service's
    /// normalised task definition and each site's CloudFront Function, deterministically.
    Render {
        /// The app, as named in its manifest.
        app: String,
        /// Render the git sources at this commit instead of their branch heads.
        #[arg(long)]
        revision: Option<String>,
        /// Configuration file (also GANTRY_CONFIG).
        #[arg(long, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
        /// Manifests directory; overrides the configuration's.
        #[arg(long)]
        manifests: Option<PathBuf>,
    },
    /// Show what deploying APP would change in ECS: per service, desired count and a readable
    /// diff of the live task definition against the manifest's.
    Diff {
        /// The app, as named in its manifest.
        app: String,
        /// Render with the image digests the daemon recorded for this commit.
        #[arg(long)]
        sha: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
        /// Configuration file (also GANTRY_CONFIG).
        #[arg(long, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
        /// Manifests directory; overrides the configuration's.
        #[arg(long)]
        manifests: Option<PathBuf>,
    },
    /// Check the live AWS account for what APP's manifest and task definitions name: roles,
    /// secrets and parameters (metadata only), subnets and security groups in one VPC, the
    /// target group (port, protocol, target type, load balancer), log groups, the ECR
    /// repository, the bucket and the distribution's origin. Exit 1 listing every problem at
    /// its file:line. Deployments run the same checks first.
    Verify {
        /// The app, as named in its manifest.
        app: String,
        /// Configuration file (also GANTRY_CONFIG).
        #[arg(long, env = "GANTRY_CONFIG")]
        config: Option<PathBuf>,
        /// Manifests directory; overrides the configuration's.
        #[arg(long)]
        manifests: Option<PathBuf>,
    },
    /// Show apps and their latest deployment (or one app's), and warn about failing reports.
    Status {
        /// Only this app.
        app: Option<String>,
        /// Print the daemon's JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Show DORA's four keys per app and environment instead: deployment frequency, lead
        /// time for changes, change failure rate, time to restore.
        #[arg(long)]
        dora: bool,
        /// The window of --dora, in days.
        #[arg(long, default_value_t = 30, requires = "dora")]
        days: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List an app's deployments, newest first.
    History {
        /// The app, as named in its manifest.
        app: String,
        /// Print the daemon's JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// How many deployments to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// ECS task definitions.
    Ecs {
        #[command(subcommand)]
        command: EcsCommand,
    },
    /// Adopt what already runs: write manifests from live resources.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
    },
    /// Discord: slash command registration.
    Discord {
        #[command(subcommand)]
        command: DiscordCommand,
    },
    /// EventBridge wiring.
    Eventbridge {
        #[command(subcommand)]
        command: EventbridgeCommand,
    },
    /// Container images: build and push.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Static sites on S3/CloudFront.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Show one deployment with its step logs.
    Show {
        /// The deployment's id (`gantry history APP` lists them).
        id: i64,
        /// Wait until the deployment has finished.
        #[arg(long)]
        wait: bool,
        /// Print the daemon's JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum EcsCommand {
    /// Check task definition files before any API call (Fargate sizes, network mode, execution
    /// role, secrets); exit 1 listing every problem.
    Check(ecs::CheckArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Write an App manifest and a task definition file from a live ECS service (ECS defaults
    /// dropped, secrets kept as ARNs), so the next `gantry diff` shows no difference.
    Ecs(import::EcsArgs),
    /// Convert AWS Copilot service manifests (Load Balanced Web Service, Backend Service,
    /// Worker Service, Static Site) into App manifests built from Gantry's charts.
    Copilot(import::CopilotArgs),
}

#[derive(Debug, Subcommand)]
pub enum DiscordCommand {
    /// Register /deploy /rollback /status /history /diff /pause /resume (bulk overwrite,
    /// idempotent).
    RegisterCommands(discord::RegisterArgs),
}

#[derive(Debug, Subcommand)]
pub enum EventbridgeCommand {
    /// Create (once) the connection, API destination, rule and target that send ECS events to
    /// Gantry's /hooks/eventbridge.
    Setup(eventbridge::SetupArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image and push it; prints the pushed digest. Builders: `layer` (in-process,
    /// no Docker: the context as one reproducible layer on --base), `buildah` (a Dockerfile
    /// build, RUN steps included), `kaniko` (a Dockerfile build as an ECS task).
    Build(image::BuildArgs),
}

#[derive(Debug, Subcommand)]
pub enum HoldCommand {
    /// Release the hold on APP (an environment's app, or APP with --env): pushes, manifest
    /// changes, automatic promotion and self-heal deploy it again.
    Release {
        app: String,
        /// The environment, for an app with environments.
        #[arg(long)]
        env: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// A deployment that has not started yet, of APP.
#[derive(Debug, clap::Args)]
pub struct WaitingArgs {
    app: String,
    /// The environment, for an app with environments.
    #[arg(long)]
    env: Option<String>,
    /// The deployment; default: the app's newest one waiting.
    #[arg(long)]
    deployment: Option<i64>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Subcommand)]
pub enum WindowCommand {
    /// Start APP's deployment that waits for its deploy window now. Only actors listed in the
    /// environment's `spec.windows.overrideBy` may; every attempt is audited.
    Override(WaitingArgs),
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Sync a build output directory to S3: content-addressed, assets before pages, stale
    /// objects kept for a grace period, CloudFront invalidated for changed pages only.
    Sync(site::SyncArgs),
    /// Restore a site's previous release from content kept in the bucket, without rebuilding.
    Rollback(site::RollbackArgs),
}

/// How to reach a running daemon.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The daemon's base URL.
    #[arg(long, env = "GANTRY_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// API bearer token (the daemon's GANTRY_API_TOKEN).
    #[arg(long, env = "GANTRY_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Runs the parsed command; errors are printed once, here.
pub fn run(cli: Cli) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve { config } => local::serve(config).await,
            Command::Init {
                app,
                repo,
                branch,
                manifests,
            } => local::init(&app, &repo, &branch, &manifests),
            Command::Validate { config, manifests } => local::validate(config, manifests),
            Command::Deploy {
                app,
                git_ref,
                sha,
                wait,
                server,
            } => client::deploy(&server, &app, git_ref, sha, wait).await,
            Command::Status {
                app,
                json,
                dora: true,
                days,
                server,
            } => client::dora(&server, app.as_deref(), json, days).await,
            Command::Status {
                app, json, server, ..
            } => client::status(&server, app.as_deref(), json).await,
            Command::History {
                app,
                json,
                limit,
                server,
            } => client::history(&server, &app, json, limit).await,
            Command::Rollback {
                app,
                to,
                env,
                wait,
                server,
            } => client::rollback(&server, &app, to, env.as_deref(), wait).await,
            Command::Promote {
                app,
                from,
                to,
                release,
                wait,
                server,
            } => client::promote(&server, &app, &from, &to, release, wait).await,
            Command::Hold {
                command: HoldCommand::Release { app, env, server },
            } => client::release_hold(&server, &app, env.as_deref()).await,
            Command::Resume { app, server } => client::resume(&server, &app).await,
            Command::Health { server } => Ok(client::health(&server).await),
            Command::IamPolicy {
                account,
                region,
                config,
                manifests,
            } => iam::run(config, manifests, account, region),
            Command::Window {
                command: WindowCommand::Override(w),
            } => client::override_window(&w.server, &w.app, w.env.as_deref(), w.deployment).await,
            Command::Approve(w) => {
                client::judge(&w.server, &w.app, w.env.as_deref(), w.deployment, true).await
            }
            Command::Reject(w) => {
                client::judge(&w.server, &w.app, w.env.as_deref(), w.deployment, false).await
            }
            Command::Drift { app, env, server } => {
                client::drift(&server, &app, env.as_deref()).await
            }
            Command::Render {
                app,
                revision,
                config,
                manifests,
            } => render::run(&app, revision.as_deref(), config, manifests).await,
            Command::Diff {
                app,
                sha,
                server,
                config,
                manifests,
            } => diff::run(&app, sha.as_deref(), &server, config, manifests).await,
            Command::Verify {
                app,
                config,
                manifests,
            } => verify::run(&app, config, manifests).await,
            Command::Eventbridge {
                command: EventbridgeCommand::Setup(args),
            } => eventbridge::setup(args).await,
            Command::Discord {
                command: DiscordCommand::RegisterCommands(args),
            } => discord::register(args).await,
            Command::Import {
                command: ImportCommand::Ecs(args),
            } => import::ecs(args).await,
            Command::Import {
                command: ImportCommand::Copilot(args),
            } => import::copilot(args),
            Command::Show {
                id,
                wait,
                json,
                server,
            } => client::show(&server, id, wait, json).await,
            Command::Image {
                command: ImageCommand::Build(args),
            } => image::build(args).await,
            Command::Site {
                command: SiteCommand::Sync(args),
            } => site::run(args).await,
            Command::Ecs {
                command: EcsCommand::Check(args),
            } => ecs::run(args),
            Command::Site {
                command: SiteCommand::Rollback(args),
            } => site::rollback(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
