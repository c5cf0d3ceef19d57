//! `gantry import ecs`: writes an App manifest and a task definition file for a service that
//! already runs (read with DescribeServices and DescribeTaskDefinition), so a team adopts
//! Gantry for it without a redeploy: `gantry diff APP` right after shows no difference.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::adapters::{aws, ecs::Ecs};
use crate::config::Config;
use crate::ports::ServiceDeployer as _;

#[derive(Debug, clap::Args)]
pub struct EcsArgs {
    /// The service's cluster (name or ARN).
    #[arg(long)]
    pub cluster: String,
    /// The service's name.
    #[arg(long)]
    pub service: String,
    /// The GitHub repository whose pushes deploy the app (`OWNER/NAME`).
    #[arg(long)]
    pub repo: String,
    /// The app's name (default: the service's).
    #[arg(long)]
    pub name: Option<String>,
    /// The tracked branch.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// Application Auto Scaling owns the desired count: the manifest leaves it out.
    #[arg(long)]
    pub autoscaled: bool,
    /// Directory the manifest (`APP.yaml`) and task definition (`APP-task.json`) go into.
    #[arg(long, default_value = "manifests")]
    pub out: PathBuf,
    /// The site the app also serves: `s3://BUCKET[/PREFIX]`.
    #[arg(long)]
    pub site: Option<String>,
    /// The CloudFront distribution in front of `--site`.
    #[arg(long, requires = "site")]
    pub distribution: Option<String>,
    /// Where the app's build writes the site, relative to the checkout.
    #[arg(long, default_value = "out", requires = "site")]
    pub site_dir: String,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
    /// Configuration file (also GANTRY_CONFIG), for the AWS endpoint.
    #[arg(long, env = "GANTRY_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn ecs(args: EcsArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref()).context("invalid configuration")?;
    let name = args.name.clone().unwrap_or_else(|| args.service.clone());
    let base = crate::manifests::scaffold_app(&name, &args.repo, &args.branch);
    let problems = crate::manifests::check_scaffold(&base);
    if !problems.is_empty() {
        anyhow::bail!("cannot import as `{name}`:\n  {}", problems.join("\n  "));
    }
    let sdk = aws::load(config.aws_endpoint.as_deref(), config.aws_max_attempts).await;
    let ecs = Ecs::new(&sdk);
    let live = ecs
        .describe_service(&args.cluster, &args.service)
        .await?
        .with_context(|| {
            format!(
                "no active service `{}` in cluster `{}`",
                args.service, args.cluster
            )
        })?;
    let td = ecs.task_definition(&live.task_definition).await?;
    let task_file = format!("{name}-task.json");
    let imported = crate::plan::import::service_spec(
        &args.service,
        &args.cluster,
        &task_file,
        &live.settings,
        args.autoscaled,
    )
    .map_err(|e| anyhow::anyhow!("cannot import {}: {e}", args.service))?;
    let site = match &args.site {
        Some(url) => {
            let t =
                crate::sites::S3Target::parse(url).map_err(|e| anyhow::anyhow!("--site: {e}"))?;
            Some(crate::plan::import::site_spec(
                &t.bucket,
                &t.prefix,
                args.distribution.as_deref(),
                &args.site_dir,
            ))
        }
        None => None,
    };
    let has_site = site.is_some();
    let manifest = crate::plan::import::app_manifest(base, imported.service, site);
    let yaml = format!(
        "# Imported by `gantry import ecs` from service {} in cluster {} ({}).\n{}",
        args.service,
        args.cluster,
        live.task_definition,
        serde_yaml::to_string(&manifest)?
    );
    let json = serde_json::to_string_pretty(&crate::plan::taskdef_diff::normalise(&td))? + "\n";
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let files = [
        (args.out.join(format!("{name}.yaml")), yaml),
        (args.out.join(&task_file), json),
    ];
    if !args.force {
        if let Some((p, _)) = files.iter().find(|(p, _)| p.exists()) {
            anyhow::bail!("{} exists (use --force to replace it)", p.display());
        }
    }
    for (path, text) in &files {
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    if has_site {
        eprintln!(
            "note: replace the placeholder build.commands with the build that writes `{}`; `gantry verify {name}` checks the bucket and distribution",
            args.site_dir
        );
    }
    // What loading will say of it (a literal env value with a secret-looking name, ...).
    if let Err(errors) = crate::manifests::parse_file(&files[0].0, &files[0].1) {
        for e in errors {
            eprintln!("{e}");
        }
        eprintln!("fix these before deploying; `gantry validate` lists them again");
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "`gantry diff {name} --manifests {}` shows what a deployment would change (nothing, for what was imported)",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
