//! Commands that run locally: `serve`, `init`, `validate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Config;
use crate::manifests;

pub async fn serve(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = Config::load(config.as_deref()).context("invalid configuration")?;
    crate::app::serve(config).await?;
    Ok(ExitCode::SUCCESS)
}

pub fn init(app: &str, repo: &str, branch: &str, dir: &Path) -> anyhow::Result<ExitCode> {
    let manifest = manifests::scaffold_app(app, repo, branch);
    let problems = manifests::check_scaffold(&manifest);
    if !problems.is_empty() {
        anyhow::bail!("cannot scaffold `{app}`:\n  {}", problems.join("\n  "));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let path = dir.join(format!("{app}.yaml"));
    if path.exists() {
        anyhow::bail!(
            "{} already exists; edit it or remove it first",
            path.display()
        );
    }
    let body = serde_yaml::to_string(&manifest).context("failed to render the manifest")?;
    let text = format!(
        "# Gantry App manifest for {app}. Fields: docs/manifests.md\n# Validate with `gantry validate`.\n{body}"
    );
    std::fs::write(&path, text).with_context(|| format!("failed to write {}", path.display()))?;
    println!("created {}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn validate(config: Option<PathBuf>, dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let config = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let dir = dir
        .or(config.manifests)
        .unwrap_or_else(|| PathBuf::from("./manifests"));
    match manifests::load_dir(&dir) {
        Ok(set) => {
            for app in &set.apps {
                println!(
                    "ok  {}  ({})",
                    app.manifest.metadata.name,
                    app.file.display()
                );
            }
            println!("{} app(s) valid in {}", set.apps.len(), dir.display());
            // Setup the daemon needs that the manifests alone cannot show: said, not fatal
            // (manifests are often validated where the daemon's environment is not).
            for app in &set.apps {
                let Some(var) = app
                    .manifest
                    .spec
                    .notifications
                    .discord
                    .as_ref()
                    .and_then(|d| d.webhook_env.as_deref())
                else {
                    continue;
                };
                let at = format!(
                    "{}: spec.notifications.discord.webhookEnv",
                    app.file.display()
                );
                match std::env::var(var) {
                    Err(_) => eprintln!(
                        "warning: {at}: `{var}` is not set here; Gantry needs it in its environment to post to Discord"
                    ),
                    Ok(url) => {
                        if let Err(why) = crate::domain::discord::parse_webhook_url(&url) {
                            eprintln!("warning: {at}: the URL in `{var}` {why}");
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!("{} problem(s) found", errors.0.len());
            Ok(ExitCode::FAILURE)
        }
    }
}
