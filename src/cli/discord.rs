//! `gantry discord register-commands`: registers Gantry's slash commands with Discord (a bulk
//! overwrite, so running it again changes nothing and stale commands disappear).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// Register in this guild (instant) instead of globally (also GANTRY_DISCORD_GUILD_ID).
    #[arg(long)]
    pub guild: Option<u64>,
    /// Configuration file (also GANTRY_CONFIG): application id and bot token.
    #[arg(long, env = "GANTRY_CONFIG")]
    pub config: Option<PathBuf>,
}

pub async fn register(args: RegisterArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(args.config.as_deref()).context("invalid configuration")?;
    let d = &config.discord;
    let app = d
        .application_id
        .context("set GANTRY_DISCORD_APPLICATION_ID (the application the commands belong to)")?;
    let token = d
        .bot_token
        .as_ref()
        .context("set GANTRY_DISCORD_BOT_TOKEN (the bot token authorises the registration)")?;
    let client =
        crate::adapters::discord::Discord::new(Some(token), d.api_url.as_deref(), Some(app));
    let defs = crate::plan::chatops::command_set();
    let guild = args.guild.or(d.guild_id);
    let n = client
        .register_commands(guild, &defs)
        .await
        .map_err(|e| anyhow::anyhow!("{}", config.redactor().redact(&e.to_string())))?;
    let names: Vec<String> = defs.iter().map(|c| format!("/{}", c.name)).collect();
    match guild {
        Some(g) => println!("registered {n} commands in guild {g}: {}", names.join(" ")),
        None => println!("registered {n} global commands: {}", names.join(" ")),
    }
    Ok(ExitCode::SUCCESS)
}
