//! `gantry iam-policy`: prints the least-privilege IAM policy Gantry needs for the manifests
//! (`plan::iam`), scoped to what they name, for the bootstrap template or a role of your own.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Config;

pub fn run(
    config: Option<PathBuf>,
    manifests: Option<PathBuf>,
    account: Option<String>,
    region: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config.as_deref()).context("invalid configuration")?;
    let dir = manifests
        .or_else(|| config.manifests.clone())
        .context("no manifests: pass --manifests DIR (or set `manifests:`)")?;
    let set =
        crate::manifests::load_dir(&dir).map_err(|e| anyhow::anyhow!("invalid manifests:\n{e}"))?;
    let apps: Vec<(&str, &crate::domain::AppSpec)> = set
        .apps
        .iter()
        .map(|a| (a.manifest.metadata.name.as_str(), &a.manifest.spec))
        .collect();
    let specs: Vec<&crate::domain::AppSpec> = apps.iter().map(|(_, s)| *s).collect();
    let (found_account, found_region) = crate::plan::iam::infer_scope(&specs);
    let scope = crate::plan::iam::Scope {
        account: account.or(found_account).context(
            "the manifests name no account (no ECR repository or role ARN): pass --account",
        )?,
        region: region
            .or(found_region)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .context("the manifests name no region (no ECR repository): pass --region")?,
    };
    let policy = crate::plan::iam::policy(&apps, &scope, config.eventbridge_bus.as_deref());
    println!("{}", serde_json::to_string_pretty(&policy)?);
    Ok(ExitCode::SUCCESS)
}
