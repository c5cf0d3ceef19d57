//! `gantry diff APP`: what a deployment of APP would change in ECS, per service.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::adapters::{aws, ecs::Ecs};
use crate::config::Config;
use crate::domain::taskdef::TaskDefinition;
use crate::plan::taskdef_diff::{render_service_diff, with_images};
use crate::services::ports::ServiceDeployer;

pub async fn run(
    app: &str,
    sha: Option<&str>,
    server: &super::ServerArgs,
    config: Option<PathBuf>,
    manifests: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config.as_deref()).context("invalid configuration")?;
    let dir = manifests.unwrap_or(config.manifests.clone());
    let set =
        crate::manifests::load_dir(&dir).map_err(|e| anyhow::anyhow!("invalid manifests:\n{e}"))?;
    let loaded = set
        .get(app)
        .with_context(|| format!("no app named `{app}` in {}", dir.display()))?;
    let spec = &loaded.manifest.spec;
    if spec.services.is_empty() {
        println!("{app} declares no ECS services");
        return Ok(ExitCode::SUCCESS);
    }
    let images = match sha {
        Some(sha) => super::client::release_images(server, app, sha).await?,
        None => Default::default(),
    };
    let sdk = aws::load(config.aws_endpoint.as_deref()).await;
    let ecs = Ecs::new(&sdk);
    for svc in &spec.services {
        let text = std::fs::read_to_string(&svc.task_definition)
            .with_context(|| format!("failed to read {}", svc.task_definition))?;
        let desired = with_images(
            &TaskDefinition::from_json(&text)
                .with_context(|| format!("{} is not a task definition", svc.task_definition))?,
            &svc.containers
                .iter()
                .filter_map(|(c, image)| images.get(image).map(|r| (c.clone(), r.clone())))
                .collect(),
        );
        let state = ecs.describe_service(&svc.cluster, &svc.name).await?;
        let live = match &state {
            Some(s) => Some((
                s.desired_count,
                s.task_definition.clone(),
                ecs.task_definition(&s.task_definition).await?,
            )),
            None => None,
        };
        let live_ref = live.as_ref().map(|(c, arn, td)| (*c, arn.as_str(), td));
        print!(
            "{}",
            render_service_diff(
                &svc.name,
                &svc.cluster,
                live_ref,
                &desired,
                svc.desired_count.map(|c| c as i32)
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}
