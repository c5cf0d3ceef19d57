//! Publishing an app's images, content-addressed: for each, compute the inputs key from what
//! the image is made of (the context tree after `.dockerignore`, the Dockerfile, build args, the
//! builder and its settings, the base images' digests; never the commit sha or time, and every
//! layer carries a fixed epoch, as ko and jib do). An image whose inputs match what the
//! registry has at the commit's tag, or what an earlier release of the app used, is reused: at
//! most its manifest is re-tagged with the commit's sha (no build, no blob upload, the same
//! digest, so its services see no change). Otherwise it is built with the image's builder. Then
//! the moving tag (if any) points at the digest. Several images are built in parallel up to a
//! limit. Level-triggered: running it again after a success (or a crash) does nothing.

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
    /// The images' creation time and every file's mtime: [`oci::FIXED_EPOCH`] (content
    /// addressed) unless a caller asks for another (the CLI's `SOURCE_DATE_EPOCH`).
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
    /// Nothing was built: the registry had these inputs (at this sha, or from an earlier
    /// release).
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
    previous: &BTreeMap<String, Vec<String>>,
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
            let earlier = previous.get(&spec.name).map_or(&[][..], Vec::as_slice);
            publish(
                ports, spec, &context, commit, &dir, timeout, earlier, log, abort,
            )
            .await
            .map_err(|source| PublishError {
                image: spec.name.clone(),
                source,
            })
        });
    }
    futures::future::try_join_all(work).await
}

/// Publishes one image whose context is `context`. `earlier` are the references
/// (`repository@digest`) this image had in earlier releases, newest first: candidates to reuse.
#[allow(clippy::too_many_arguments)]
#[tracing::instrument(skip_all, fields(image = %spec.name, git.sha = %commit.sha))]
pub async fn publish(
    ports: &ImagePorts,
    spec: &ImageSpec,
    context: &Path,
    commit: &Commit,
    scratch: &Path,
    timeout: Duration,
    earlier: &[String],
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
    // Whether the key names the content (every base resolved): only then is an image with the
    // same key reused.
    let mut trusted = true;
    let (base, bases) = match (kind, &spec.base) {
        (BuilderKind::Layer, Some(b)) => {
            let r = ImageRef::parse(b).map_err(|e| BuildError::Invalid(e.to_string()))?;
            let base = resolve_base(registry, &r).await?;
            let digest = base.manifest.digest.clone();
            (Some(base), digest)
        }
        // A Dockerfile's bases, resolved now: a new image under the same tag is a new input.
        _ => match dockerfile_bases(registry, spec, context).await {
            Ok(bases) => (None, bases),
            Err(unresolved) => {
                // Without its digest the key cannot tell a new base from the old one.
                log.line(format!(
                    "{}: base image {unresolved} cannot be resolved to a digest here; building without looking for a reusable image",
                    spec.name
                ));
                trusted = false;
                (None, format!("unresolved:{unresolved}"))
            }
        },
    };
    let mut settings = serde_json::to_value(spec).expect("an ImageSpec is JSON");
    if let Some(m) = settings.as_object_mut() {
        // The key describes the image's content, not where it is pushed nor which commit
        // holds it: the same content built for two repositories, or at two commits, is the
        // same image, digest included.
        for k in ["name", "repository", "tag", "createRepository"] {
            m.remove(k);
        }
        m.insert("source".into(), commit.source_url.clone().into());
        m.insert("epoch".into(), commit.epoch.into());
    }
    let inputs = oci::inputs_key(kind.as_str(), &settings, Some(bases.as_str()), &tree);

    // No revision label: it would make every commit a new image. The commits an image was
    // published at are its tags (and Gantry's release records).
    let mut labels: BTreeMap<String, String> = spec.labels.clone();
    labels.insert(oci::SOURCE_LABEL.into(), commit.source_url.clone());
    labels.insert(oci::INPUTS_LABEL.into(), inputs.clone());

    let found = if !trusted {
        None
    } else {
        match existing(registry, &target, &inputs).await? {
            Some(m) => {
                log.line(format!(
                    "{}: {target} already has these inputs ({}); nothing built, nothing uploaded",
                    spec.name, m.digest
                ));
                Some(m)
            }
            None => reusable(registry, &repo, earlier, &inputs)
                .await?
                .map(|(from, m)| {
                    log.line(format!(
                    "{}: inputs unchanged since {from}; tagging it {}, nothing built, nothing uploaded",
                    spec.name, commit.tag
                ));
                    m
                }),
        }
    };
    let (digest, skipped, uploaded) = match found {
        Some(m) => {
            if registry
                .manifest(&target)
                .await?
                .is_none_or(|at| at.digest != m.digest)
            {
                registry.put_manifest(&target, &m).await?;
            }
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

/// The digests of the images a Dockerfile's `FROM` lines name, joined (`name=digest`); the
/// first one that cannot be resolved here (no credentials, not there, too many) as the error.
async fn dockerfile_bases(
    registry: &dyn Registry,
    spec: &ImageSpec,
    context: &Path,
) -> Result<String, String> {
    // No readable Dockerfile: the build itself says what is wrong.
    let Some(text) = super::read_dockerfile(context, spec) else {
        return Ok("-".into());
    };
    let names = crate::plan::dockerfile::base_images(&text, &spec.build_args);
    if names.len() > super::MAX_BASES {
        return Err(format!(
            "({} FROM images, more than {})",
            names.len(),
            super::MAX_BASES
        ));
    }
    let mut out = Vec::new();
    for name in names {
        let digest = match ImageRef::parse(&name) {
            Ok(r) => match registry.manifest(&r).await {
                Ok(Some(m)) => m.digest,
                _ => return Err(name),
            },
            Err(_) => return Err(name),
        };
        out.push(format!("{name}={digest}"));
    }
    Ok(out.join(","))
}

/// The first of `earlier` (references of this image in earlier releases, in the same
/// repository) whose config carries the same inputs key, with its manifest.
async fn reusable(
    registry: &dyn Registry,
    repo: &ImageRef,
    earlier: &[String],
    inputs: &str,
) -> Result<Option<(String, Manifest)>, BuildError> {
    for reference in earlier {
        let Ok(r) = ImageRef::parse(reference) else {
            continue;
        };
        if r.name() != repo.name() || r.digest.is_none() {
            continue;
        }
        if let Some(m) = existing(registry, &r, inputs).await? {
            return Ok(Some((reference.clone(), m)));
        }
    }
    Ok(None)
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
