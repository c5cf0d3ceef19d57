//! `gantry image build`: the image builders as a standalone command (for users' CI and for
//! tests). Prints the pushed digest on stdout (or a JSON report with `--json`); progress and
//! the build's output go to stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::config::Config;
use crate::domain::ImageRef;
use crate::domain::{BuilderKind, ImageSpec};
use crate::images::{publish, Commit};
use crate::ports::StepLog;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context directory.
    #[arg(long)]
    pub context: PathBuf,
    /// Dockerfile, relative to the context (buildah, kaniko).
    #[arg(long = "file", short = 'f')]
    pub dockerfile: Option<String>,
    /// Destination `REGISTRY/REPO:TAG`; the tag is the revision's tag (default: the revision).
    #[arg(long)]
    pub tag: String,
    /// A moving tag set besides TAG (e.g. `latest`).
    #[arg(long)]
    pub also_tag: Option<String>,
    #[arg(long)]
    pub builder: Option<BuilderKind>,
    /// Base image for the layer builder.
    #[arg(long)]
    pub base: Option<String>,
    /// Directory the context is copied to in the image (layer; default /app).
    #[arg(long)]
    pub workdir: Option<String>,
    /// Entrypoint as a JSON array, e.g. '["python3","-m","uvicorn","main:app"]'.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Cmd as a JSON array.
    #[arg(long)]
    pub cmd: Option<String>,
    /// Environment variable `K=V` (layer); repeatable.
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Label `K=V`; repeatable.
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Build argument `K=V` (buildah, kaniko); repeatable.
    #[arg(long = "build-arg", value_name = "K=V")]
    pub build_args: Vec<String>,
    /// The commit built: the tag when --tag has none; default: the context's git HEAD, else
    /// --tag's tag. Not part of the image (content-addressed).
    #[arg(long)]
    pub revision: Option<String>,
    /// Label org.opencontainers.image.source; default: the context's `origin` remote.
    #[arg(long)]
    pub source: Option<String>,
    /// Create the ECR repository when missing.
    #[arg(long)]
    pub create_repository: bool,
    /// Print a JSON report instead of the digest.
    #[arg(long)]
    pub json: bool,
    /// Configuration file (registry endpoints, auth file, kaniko; also GANTRY_CONFIG).
    #[arg(long, env = "GANTRY_CONFIG")]
    pub config: Option<PathBuf>,
}

fn pairs(list: &[String], flag: &str) -> anyhow::Result<BTreeMap<String, String>> {
    list.iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--{flag} `{p}` is not K=V"))
        })
        .collect()
}

fn json_array(v: &Option<String>, flag: &str) -> anyhow::Result<Option<Vec<String>>> {
    v.as_ref()
        .map(|s| {
            serde_json::from_str(s).with_context(|| {
                format!(
                    "--{flag} must be a JSON array of strings, like '[\"python3\",\"main.py\"]'"
                )
            })
        })
        .transpose()
}

pub async fn build(mut args: BuildArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref()).context("invalid configuration")?;
    let target = ImageRef::parse(&args.tag).context("--tag")?;
    if target.digest.is_some() {
        anyhow::bail!("--tag must name a tag, not a digest");
    }
    // Builders run in other directories: a relative context would be read from the wrong one.
    args.context = std::fs::canonicalize(&args.context)
        .with_context(|| format!("--context {}", args.context.display()))?;
    // The image does not depend on the commit (content-addressed): outside a git repository,
    // without --revision, the tag alone names it, as ko does.
    let revision = match &args.revision {
        Some(r) => r.clone(),
        None => crate::adapters::git::local_head(&args.context)
            .or_else(|| target.tag.clone())
            .context(
                "--tag has no tag and the context is not in a git repository: give --tag REPO:TAG or --revision",
            )?,
    };
    // Content-addressed: a fixed epoch unless SOURCE_DATE_EPOCH asks for another.
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(crate::plan::oci::FIXED_EPOCH);
    let source_url = args
        .source
        .clone()
        .or_else(|| crate::adapters::git::local_origin(&args.context))
        .unwrap_or_else(|| format!("file://{}", args.context.display()));
    let spec = ImageSpec {
        name: target
            .repository
            .rsplit('/')
            .next()
            .unwrap_or("image")
            .to_owned(),
        repository: target.name(),
        context: ".".into(),
        dockerfile: args.dockerfile.clone(),
        builder: args.builder,
        base: args.base.clone(),
        workdir: args.workdir.clone(),
        entrypoint: json_array(&args.entrypoint, "entrypoint")?,
        cmd: json_array(&args.cmd, "cmd")?,
        env: pairs(&args.env, "env")?,
        labels: pairs(&args.labels, "label")?,
        user: None,
        build_args: pairs(&args.build_args, "build-arg")?,
        exclude: Vec::new(),
        tag: args.also_tag.clone(),
        create_repository: args.create_repository,
    };
    if spec.builder_kind() == BuilderKind::Layer && spec.base.is_none() {
        anyhow::bail!(
            "the layer builder needs --base IMAGE (or use --builder buildah with a Dockerfile)"
        );
    }
    let sdk =
        crate::adapters::aws::load(config.aws_endpoint.as_deref(), config.aws_max_attempts).await;
    let ports = crate::app::image_ports(
        &config.images,
        &sdk,
        Arc::new(crate::adapters::s3::S3Store::new(&sdk)),
        Arc::new(crate::adapters::ecs::Ecs::new(&sdk)),
        Arc::new(crate::adapters::process::ShellRunner::new(
            crate::adapters::process::Isolation::None,
        )),
        Vec::new(),
    )?;
    // Removed when the command ends.
    let scratch = tempfile::Builder::new()
        .prefix("gantry-image-")
        .tempdir()
        .context("failed to create a scratch directory")?;
    let log = StepLog::new(256 * 1024, config.redactor()).echoing_to_stderr();
    let commit = Commit {
        tag: target.tag.clone().unwrap_or_else(|| revision.clone()),
        sha: revision,
        epoch,
        source_url,
    };
    let abort = tokio_util::sync::CancellationToken::new();
    let result = publish(
        &ports,
        &spec,
        &args.context,
        &commit,
        scratch.path(),
        config.pipeline.build_timeout,
        &[],
        &log,
        &abort,
    )
    .await;
    match result {
        Ok(p) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&p)?);
            } else {
                println!("{}", p.digest);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {}", config.redactor().redact(&e.to_string()));
            Ok(ExitCode::FAILURE)
        }
    }
}
