//! `gantry eventbridge setup`: route ECS events to Gantry's `/hooks/eventbridge`, idempotently.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::adapters::{aws, eventbridge};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Gantry's public base URL, e.g. https://gantry.example.com.
    #[arg(long)]
    pub endpoint: String,
    /// Prefix of the resources' names.
    #[arg(long, default_value = "gantry")]
    pub name: String,
    /// Event bus the ECS events arrive on.
    #[arg(long, default_value = "default")]
    pub bus: String,
    /// IAM role EventBridge assumes to invoke the API destination.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Configuration file (also GANTRY_CONFIG); the API key is GANTRY_EVENTBRIDGE_API_KEY.
    #[arg(long, env = "GANTRY_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn setup(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref()).context("invalid configuration")?;
    let key = config
        .eventbridge_api_key
        .as_ref()
        .context("set GANTRY_EVENTBRIDGE_API_KEY: the connection sends it to Gantry")?;
    let sdk = aws::load(config.aws_endpoint.as_deref(), config.aws_max_attempts).await;
    let steps = eventbridge::setup(
        &sdk,
        &args.name,
        &args.bus,
        &args.endpoint,
        key,
        args.role_arn.as_deref(),
    )
    .await?;
    for s in steps {
        println!(
            "{:<8} {}",
            if s.created { "created" } else { "exists" },
            s.resource
        );
    }
    Ok(ExitCode::SUCCESS)
}
