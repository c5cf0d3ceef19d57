//! Publishing an app's images: for each, compute the inputs key, reuse what the registry
//! already has at the commit's tag with that key (no build, no upload), otherwise build with
//! the image's builder; then point the moving tag (if any) at the digest. Several images are
//! built in parallel up to a limit. Level-triggered: running it again after a success (or a
//! crash) finds the images in the registry and does nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{resolve_base, BuildError, BuildRequest, Builder, ImageRef, Manifest, Registry};
use crate::domain::{BuilderKind, ImageSpec};
use crate::plan::oci;
use crate::ports::StepLog;

/// The registry and the builders this Gantry has.
#[derive(Clone)]
pub struct ImagePorts {
    pub registry: Arc<dyn Registry>,
    pub layer: Arc<dyn Builder>,
    /// Runs `images.buildah`; where it is not installed, builds fail with the shell's "not found".
    pub buildah: Arc<dyn Builder>,
    pub kaniko: Option<Arc<dyn Builder>>,
    /// Images of one app built at once.
    pub concurrency: usize,
}

/// The commit being built.
#[derive(Debug, Clone)]
pub struct Commit {
    pub sha: String,
    /// The tag the image gets (the sha in deployments).
    pub tag: String,
    /// Commit time: SOURCE_DATE_EPOCH.
    pub epoch: i64,
    /// `org.opencontainers.image.source`.
    pub source_url: String,
}

/// One image's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    pub name: String,
    /// `repository@digest`, what task definitions get.
    pub reference: String,
    pub digest: String,
    pub builder: BuilderKind,
    /// Nothing was built: the registry had this sha with the same inputs.
    pub skipped: bool,
    pub uploaded_blobs: Option<usize>,
    pub uploaded_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[error("image `{image}`: {source}")]
pub struct PublishError {
    pub image: String,
    #[source]
    pub source: BuildError,
}

/// Publishes every image of `specs`, at most `ports.concurrency` at once; the first failure
/// stops the rest.
#[allow(clippy::too_many_arguments)]
pub async fn publish_all(
    ports: &ImagePorts,
    specs: &[ImageSpec],
    checkout: &Path,
    commit: &Commit,
    scratch: &Path,
    timeout: Duration,
    log: &StepLog,
    abort: &CancellationToken,
) -> Result<Vec<Published>, PublishError> {
    let limit = tokio::sync::Semaphore::new(ports.concurrency.max(1));
    let mut work = Vec::with_capacity(specs.len());
    for spec in specs {
        let limit = &limit;
        work.push(async move {
            let _permit = limit.acquire().await.expect("never closed");
            let dir = scratch.join(&spec.name);
            let context = checkout.join(&spec.context);
            publish(ports, spec, &context, commit, &dir, timeout, log, abort)
                .await
                .map_err(|source| PublishError {
                    image: spec.name.clone(),
                    source,
                })
        });
    }
    futures::future::try_join_all(work).await
}

/// Publishes one image whose context is `context`.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, fields(image = %spec.name, git.sha = %commit.sha))]
pub async fn publish(
    ports: &ImagePorts,
    spec: &ImageSpec,
    context: &Path,
    commit: &Commit,
    scratch: &Path,
    timeout: Duration,
    log: &StepLog,
    abort: &CancellationToken,
) -> Result<Published, BuildError> {
    let kind = spec.builder_kind();
    let builder: Arc<dyn Builder> = match kind {
        BuilderKind::Layer => ports.layer.clone(),
        BuilderKind::Buildah => ports.buildah.clone(),
        BuilderKind::Kaniko => ports.kaniko.clone().ok_or(BuildError::Unavailable(
            "kaniko",
            "configure images.kaniko in gantry.yaml",
        ))?,
    };
    let repo = ImageRef::parse(&spec.repository).map_err(|e| BuildError::Invalid(e.to_string()))?;
    let target = repo.with_tag(&commit.tag);
    let registry = ports.registry.as_ref();

    let dir = context.to_path_buf();
    let exclude = spec.exclude.clone();
    let tree = tokio::task::spawn_blocking(move || super::context::read_tree(&dir, &exclude))
        .await
        .map_err(|e| BuildError::Invalid(format!("reading the context panicked: {e}")))??;
    let base = match (kind, &spec.base) {
        (BuilderKind::Layer, Some(b)) => {
            let r = ImageRef::parse(b).map_err(|e| BuildError::Invalid(e.to_string()))?;
            Some(resolve_base(registry, &r).await?)
        }
        _ => None,
    };
    let mut settings = serde_json::to_value(spec).expect("an ImageSpec is JSON");
    if let Some(m) = settings.as_object_mut() {
        // The key describes the image's content, not where it is pushed: the same commit
        // built for two repositories is the same image, digest included.
        for k in ["name", "repository", "tag", "createRepository"] {
            m.remove(k);
        }
        m.insert("sha".into(), commit.sha.clone().into());
        m.insert("source".into(), commit.source_url.clone().into());
        m.insert("epoch".into(), commit.epoch.into());
    }
    let inputs = oci::inputs_key(
        kind.as_str(),
        &settings,
        base.as_ref().map(|b| b.manifest.digest.as_str()),
        &tree,
    );

    let mut labels: BTreeMap<String, String> = spec.labels.clone();
    labels.insert(oci::REVISION_LABEL.into(), commit.sha.clone());
    labels.insert(oci::SOURCE_LABEL.into(), commit.source_url.clone());
    labels.insert(oci::INPUTS_LABEL.into(), inputs.clone());

    let (digest, skipped, uploaded) = match existing(registry, &target, &inputs).await? {
        Some(m) => {
            log.line(format!(
                "{}: {target} already has these inputs ({}); nothing built, nothing uploaded",
                spec.name, m.digest
            ));
            (m.digest, true, Some((0, 0)))
        }
        None => {
            if spec.create_repository && registry.ensure_repository(&target).await? {
                log.line(format!(
                    "{}: created repository {}",
                    spec.name,
                    target.name()
                ));
            }
            std::fs::create_dir_all(scratch).map_err(|e| {
                BuildError::Invalid(format!("cannot create {}: {e}", scratch.display()))
            })?;
            log.line(format!("{}: building {target} with {kind}", spec.name));
            let req = BuildRequest {
                spec: spec.clone(),
                context: context.to_path_buf(),
                tree,
                target: target.clone(),
                labels,
                epoch: commit.epoch,
                inputs,
                base,
                scratch: scratch.to_path_buf(),
                timeout,
            };
            let built = builder.build(&req, log, abort).await?;
            (built.digest, false, built.uploaded)
        }
    };
    if let Some(tag) = &spec.tag {
        move_tag(registry, &target, &repo.with_tag(tag), &digest, log).await?;
    }
    Ok(Published {
        name: spec.name.clone(),
        reference: format!("{}@{digest}", spec.repository),
        digest,
        builder: kind,
        skipped,
        uploaded_blobs: uploaded.map(|u| u.0),
        uploaded_bytes: uploaded.map(|u| u.1),
    })
}

/// The manifest at `target` when its config carries the same inputs key.
async fn existing(
    registry: &dyn Registry,
    target: &ImageRef,
    inputs: &str,
) -> Result<Option<Manifest>, BuildError> {
    let Some(m) = registry.manifest(target).await? else {
        return Ok(None);
    };
    if oci::is_index(&m.media_type, &m.bytes) {
        return Ok(None);
    }
    let Ok(parsed) = oci::parse_manifest(&m.bytes) else {
        return Ok(None);
    };
    let config = registry.blob(target, &parsed.config.digest).await?;
    let same = oci::config_labels(&config)
        .get(oci::INPUTS_LABEL)
        .is_some_and(|k| k == inputs);
    Ok(same.then_some(m))
}

/// Points `moving` at the manifest `target` has (by digest), unless it already does.
async fn move_tag(
    registry: &dyn Registry,
    target: &ImageRef,
    moving: &ImageRef,
    digest: &str,
    log: &StepLog,
) -> Result<(), BuildError> {
    if registry
        .manifest(moving)
        .await?
        .is_some_and(|m| m.digest == digest)
    {
        return Ok(());
    }
    let m = registry
        .manifest(&target.with_digest(digest))
        .await?
        .ok_or_else(|| {
            BuildError::Invalid(format!("{target}@{digest} vanished from the registry"))
        })?;
    registry.put_manifest(moving, &m).await?;
    log.line(format!("tagged {moving} -> {digest}"));
    Ok(())
}

/// The scratch directory of an image inside a deployment's workspace.
pub fn scratch_dir(workspace: &Path) -> PathBuf {
    workspace.join("images")
}
