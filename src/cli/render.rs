//! `gantry render APP [--revision SHA]`: the app's fully rendered desired state, from the
//! manifests directory or, with git sources configured, from the sources themselves (their
//! branch heads, or the commit `--revision` names), fetched into a temporary directory.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::Config;
use crate::domain::ManifestRevision;
use crate::manifests::{LoadedApp, ManifestSet};
use crate::ports::{FetchRequest, RemoteRefs, Revision, SourceFetcher, StepLog};

pub async fn run(
    app: &str,
    revision: Option<&str>,
    config: Option<PathBuf>,
    manifests: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let config = Config::load(config.as_deref()).context("invalid configuration")?;
    let loaded = find(&config, app, manifests, revision).await?;
    let file = loaded.file.display().to_string();
    print!(
        "{}",
        crate::plan::render::render(&loaded.manifest, &file, &loaded.origin)
            .map_err(anyhow::Error::msg)?
    );
    Ok(ExitCode::SUCCESS)
}

/// APP as the manifests say: a local directory (`--manifests`, or the configuration's when it
/// has no git sources), else the git sources, at `revision` when given.
pub(super) async fn find(
    config: &Config,
    app: &str,
    manifests: Option<PathBuf>,
    revision: Option<&str>,
) -> anyhow::Result<LoadedApp> {
    let local = manifests.or_else(|| {
        config
            .manifests
            .clone()
            .filter(|_| config.sources.is_empty() || revision.is_none())
    });
    let (mut set, from) = match (local, revision) {
        (Some(dir), None) => (
            crate::manifests::load_dir(&dir)
                .map_err(|e| anyhow::anyhow!("invalid manifests:\n{e}"))?,
            dir.display().to_string(),
        ),
        (Some(_), Some(_)) => anyhow::bail!(
            "--revision reads the git sources; drop --manifests (and `manifests:` in the configuration)"
        ),
        (None, _) if config.sources.is_empty() => {
            anyhow::bail!("no manifests: configure `sources` or pass --manifests DIR")
        }
        (None, revision) => (from_sources(config, app, revision).await?, "the git sources".into()),
    };
    let i = set
        .apps
        .iter()
        .position(|a| a.manifest.metadata.name == app)
        .with_context(|| format!("no app named `{app}` in {from}"))?;
    Ok(set.apps.swap_remove(i))
}

/// Each source at its branch head, or at `revision` (the first source that has that commit
/// and defines APP).
async fn from_sources(
    config: &Config,
    app: &str,
    revision: Option<&str>,
) -> anyhow::Result<ManifestSet> {
    let tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
    let git = crate::adapters::git::GitFetcher::new(
        tmp.path().join("mirrors"),
        config.github.token.clone(),
        config.redactor(),
    );
    let revision = match revision {
        Some(r) => Some(
            crate::domain::git::commit_sha(r)
                .with_context(|| format!("`{r}` is not a full 40-character commit sha"))?,
        ),
        None => None,
    };
    let log = StepLog::new(16 * 1024, config.redactor());
    let mut errors = Vec::new();
    let mut heads = Vec::new();
    for (i, source) in config.sources.iter().enumerate() {
        let sha = match &revision {
            Some(sha) => sha.clone(),
            None => {
                let heads = git
                    .list(&source.url)
                    .await
                    .with_context(|| format!("cannot list {}", source.url))?;
                heads
                    .get(&source.git_ref())
                    .cloned()
                    .with_context(|| format!("{} has no branch `{}`", source.repo, source.branch))?
            }
        };
        let dest = tmp.path().join(format!("checkout-{i}"));
        let fetched = git
            .fetch(
                &FetchRequest {
                    repo: source.repo.clone(),
                    url: source.url.clone(),
                    revision: Revision::Sha(sha.clone()),
                    dest: dest.clone(),
                },
                &log,
            )
            .await;
        if let Err(e) = fetched {
            errors.push(format!("{}: {e}", source.repo));
            continue;
        }
        let origin = ManifestRevision::git(&source.repo, &sha);
        let set = crate::manifests::load_checkout(&dest, &source.path, &origin)
            .map_err(|e| anyhow::anyhow!("invalid manifests in {origin}:\n{e}"))?;
        match revision {
            None => heads.push(set),
            Some(_) if set.get(app).is_some() => return Ok(set),
            Some(_) => {}
        }
    }
    if revision.is_none() {
        return crate::manifests::merge(&heads).map_err(|e| anyhow::anyhow!("{e}"));
    }
    anyhow::bail!(
        "no source defines `{app}` at that revision{}",
        if errors.is_empty() {
            String::new()
        } else {
            format!(" ({})", errors.join("; "))
        }
    )
}
