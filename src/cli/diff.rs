//! `gantry diff APP`: what a deployment of APP would change in ECS, per service.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::adapters::{aws, ecs::Ecs};
use crate::config::Config;

pub async fn run(
    app: &str,
    sha: Option<&str>,
    server: &super::ServerArgs,
    config: Option<PathBuf>,
    manifests: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (config, loaded) = load_app(app, config, manifests).await?;
    let spec = &loaded.manifest.spec;
    if spec.services.is_empty() && spec.jobs.is_empty() {
        println!("{app} declares no ECS services or scheduled jobs");
        return Ok(ExitCode::SUCCESS);
    }
    let images = match sha {
        Some(sha) => super::client::release_images(server, app, sha).await?,
        None => Default::default(),
    };
    let sdk = aws::load(config.aws_endpoint.as_deref(), config.aws_max_attempts).await;
    let ecs = Ecs::new(&sdk);
    let rules = crate::adapters::eventbridge::Rules::new(&sdk);
    print!(
        "{}",
        crate::services::diff::diff(app, spec, &images, &ecs, Some(&rules)).await?
    );
    Ok(ExitCode::SUCCESS)
}

/// The configuration and APP as rendered from its manifests (`--manifests`, the
/// configuration's directory, or its git sources).
pub(super) async fn load_app(
    app: &str,
    config: Option<PathBuf>,
    manifests: Option<PathBuf>,
) -> anyhow::Result<(Config, crate::manifests::LoadedApp)> {
    let config = Config::load(config.as_deref()).context("invalid configuration")?;
    let loaded = super::render::find(&config, app, manifests, None).await?;
    Ok((config, loaded))
}
