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

#[derive(Debug, clap::Args)]
pub struct CopilotArgs {
    /// A Copilot workspace's `copilot/` directory (every `*/manifest.yml` in it), or one
    /// manifest file.
    pub dir: PathBuf,
    /// The GitHub repository whose pushes deploy the apps (`OWNER/NAME`).
    #[arg(long)]
    pub repo: String,
    /// The tracked branch.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The ECS cluster the services run in.
    #[arg(long, default_value = "CHANGE-ME")]
    pub cluster: String,
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The AWS account id (SSM parameter ARNs, the image registry).
    #[arg(long, default_value = "123456789012")]
    pub account: String,
    /// Subnets of the services, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub subnets: Vec<String>,
    /// Security groups of the services, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub security_groups: Vec<String>,
    /// The task execution role's ARN.
    #[arg(long)]
    pub execution_role: String,
    /// The target group of the (one) Load Balanced Web Service.
    #[arg(long)]
    pub target_group: Option<String>,
    /// The bucket of the (one) Static Site.
    #[arg(long)]
    pub bucket: Option<String>,
    /// Apply this Copilot environment's overrides.
    #[arg(long)]
    pub environment: Option<String>,
    /// The role EventBridge assumes to run a Scheduled Job's task (ecs:RunTask, iam:PassRole).
    #[arg(long)]
    pub events_role: Option<String>,
    /// The Cloud Map namespace's ARN, for services with `network.connect` (Service Connect).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Directory the manifests (`NAME.yaml`) go into.
    #[arg(long, default_value = "manifests")]
    pub out: PathBuf,
    /// Replace files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// `gantry import copilot DIR`: each Copilot service manifest as an App manifest built from
/// charts (`plan::copilot`), checked as loading would check it.
pub fn copilot(args: CopilotArgs) -> anyhow::Result<ExitCode> {
    let files = copilot_manifests(&args.dir)?;
    if files.is_empty() {
        anyhow::bail!(
            "no Copilot manifests (`*/manifest.yml`) under {}",
            args.dir.display()
        );
    }
    let opts = crate::plan::copilot::Options {
        repo: args.repo.clone(),
        branch: args.branch.clone(),
        cluster: args.cluster.clone(),
        region: args.region.clone(),
        account: args.account.clone(),
        subnets: args.subnets.clone(),
        security_groups: args.security_groups.clone(),
        execution_role: args.execution_role.clone(),
        target_group: args.target_group.clone(),
        registry: format!("{}.dkr.ecr.{}.amazonaws.com", args.account, args.region),
        bucket: args.bucket.clone(),
        environment: args.environment.clone(),
        namespace: args.namespace.clone(),
        events_role: args.events_role.clone(),
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut failed = false;
    for file in files {
        let text = crate::manifests::read_bounded(&file, crate::manifests::MAX_MANIFEST_BYTES)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let imported = match crate::plan::copilot::convert(&text, &opts) {
            Ok(i) => i,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                failed = true;
                continue;
            }
        };
        let path = args.out.join(format!("{}.yaml", imported.name));
        if path.exists() && !args.force {
            eprintln!("{} exists (use --force to replace it)", path.display());
            failed = true;
            continue;
        }
        std::fs::write(&path, &imported.manifest)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {} (from {})", path.display(), file.display());
        for note in &imported.notes {
            eprintln!("  note: {note}");
        }
        if let Err(errors) = crate::manifests::parse_file(&path, &imported.manifest) {
            for e in errors {
                eprintln!("{e}");
            }
            failed = true;
        }
    }
    if failed {
        eprintln!("fix these before deploying; `gantry validate` lists them again");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `dir/*/manifest.yml` (Copilot's layout; `environments/` holds environments, not services),
/// or `dir` itself when it is a file.
fn copilot_manifests(dir: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry?;
        if entry.file_name() == "environments" || !entry.file_type()?.is_dir() {
            continue;
        }
        let m = entry.path().join("manifest.yml");
        if m.is_file() {
            out.push(m);
        }
    }
    out.sort();
    Ok(out)
}
