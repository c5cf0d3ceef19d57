//! Pure OCI image assembly, the way ko and jib do it: a deterministic layer from a file tree,
//! the image config and manifest on top of a base image, the inputs key that says whether a
//! build can be skipped, and the choice of a platform from an index. No IO: the caller reads
//! the files and talks to the registry.
//!
//! Determinism is the point: entries sorted by path, owner 0:0, modes normalised to 0644/0755,
//! every timestamp = SOURCE_DATE_EPOCH, gzip without a name or time, JSON with sorted keys.
//! The same inputs give the same bytes, so the same digest.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Label carrying the inputs key; a registry image with the same key needs no rebuild.
pub const INPUTS_LABEL: &str = "dev.gantry.inputs";
pub const REVISION_LABEL: &str = "org.opencontainers.image.revision";
/// The creation time and file mtimes of images Gantry builds: the Unix epoch, as ko does, so
/// the same content built at any commit is byte for byte the same image.
pub const FIXED_EPOCH: i64 = 0;
pub const SOURCE_LABEL: &str = "org.opencontainers.image.source";

/// One entry of a file tree, path relative to the tree's root with `/` separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { data: Vec<u8>, executable: bool },
    Symlink { target: String },
}

/// A content descriptor as manifests list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    fn to_json(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// A built layer: the gzip blob, its digest, and the digest of the uncompressed tar (diff id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub blob: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A deterministic tar.gz of `entries` placed under `dest` (an absolute directory in the image,
/// or "" for the archive root). Parent directories are emitted once each, before their
/// children.
pub fn layer(entries: &[TreeEntry], dest: &str, epoch: i64) -> Layer {
    let tar = tarball(entries, dest, epoch);
    let diff_id = sha256_digest(&tar);
    let mut gz = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).expect("writing to memory");
    let blob = gz.finish().expect("writing to memory");
    Layer {
        digest: sha256_digest(&blob),
        diff_id,
        blob,
    }
}

fn tarball(entries: &[TreeEntry], dest: &str, epoch: i64) -> Vec<u8> {
    let prefix = dest.trim_matches('/');
    let join = |p: &str| -> String {
        match (prefix.is_empty(), p.is_empty()) {
            (true, _) => p.to_owned(),
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}/{p}"),
        }
    };
    // Every directory on the way to every entry, then the entries; BTreeMap sorts by path.
    let mut all: BTreeMap<String, EntryKind> = BTreeMap::new();
    let add_parents = |path: &str, all: &mut BTreeMap<String, EntryKind>| {
        let mut acc = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                all.entry(acc.clone()).or_insert(EntryKind::Dir);
                acc.push('/');
            }
            acc.push_str(part);
        }
    };
    if !prefix.is_empty() {
        add_parents(&format!("{prefix}/x"), &mut all);
    }
    for e in entries {
        let path = join(&e.path);
        add_parents(&path, &mut all);
        all.insert(path, e.kind.clone());
    }
    let mtime = u64::try_from(epoch).unwrap_or(0);
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind) in &all {
        let mut header = tar::Header::new_ustar();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(mtime);
        let _ = header.set_username("");
        let _ = header.set_groupname("");
        let result = match kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, format!("{path}/"), std::io::empty())
            }
            EntryKind::File { data, executable } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, path, data.as_slice())
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, path, target)
            }
        };
        result.expect("writing a tar to memory");
    }
    builder.into_inner().expect("writing a tar to memory")
}

/// What the new image sets on top of its base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSettings {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// SOURCE_DATE_EPOCH: the image's `created` and the history entry's time.
    pub epoch: i64,
}

/// The base image's config with the new layer and settings applied.
pub fn image_config(base: &Value, layer: &Layer, s: &ImageSettings, comment: &str) -> Vec<u8> {
    let mut cfg = base.clone();
    if !cfg.is_object() {
        cfg = json!({});
    }
    let created = chrono::DateTime::from_timestamp(s.epoch, 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    cfg["created"] = json!(created);
    if cfg.get("architecture").is_none() {
        cfg["architecture"] = json!("amd64");
    }
    if cfg.get("os").is_none() {
        cfg["os"] = json!("linux");
    }
    let mut container = cfg.get("config").cloned().unwrap_or_else(|| json!({}));
    if !container.is_object() {
        container = json!({});
    }
    // Env: base entries keep their order, ours replace same-named ones or are appended.
    let mut env: Vec<String> = container["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for (k, v) in &s.env {
        let entry = format!("{k}={v}");
        match env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(k.as_str()))
        {
            Some(slot) => *slot = entry,
            None => env.push(entry),
        }
    }
    if !env.is_empty() {
        container["Env"] = json!(env);
    }
    if let Some(ep) = &s.entrypoint {
        container["Entrypoint"] = json!(ep);
        // Docker semantics: a new entrypoint resets the base's cmd unless one is given.
        if s.cmd.is_none() {
            container["Cmd"] = Value::Null;
        }
    }
    if let Some(cmd) = &s.cmd {
        container["Cmd"] = json!(cmd);
    }
    if let Some(w) = &s.workdir {
        container["WorkingDir"] = json!(w);
    }
    if let Some(u) = &s.user {
        container["User"] = json!(u);
    }
    let mut labels = container["Labels"].as_object().cloned().unwrap_or_default();
    for (k, v) in &s.labels {
        labels.insert(k.clone(), json!(v));
    }
    container["Labels"] = Value::Object(labels);
    if let Some(map) = container.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    cfg["config"] = container;
    let mut diff_ids: Vec<Value> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    diff_ids.push(json!(layer.diff_id));
    cfg["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let mut history: Vec<Value> = cfg["history"].as_array().cloned().unwrap_or_default();
    history.push(json!({"created": created, "created_by": "gantry layer", "comment": comment}));
    cfg["history"] = json!(history);
    serde_json::to_vec(&cfg).expect("JSON of JSON")
}

/// A manifest of the same flavour as the base's (Docker v2 or OCI): the base's layers, then
/// ours, with the new config.
pub fn manifest(
    base_media_type: &str,
    base_layers: &[Descriptor],
    config: &[u8],
    layer: &Layer,
) -> (String, Vec<u8>) {
    let docker = base_media_type == DOCKER_MANIFEST;
    let (media_type, config_type, layer_type) = if docker {
        (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP)
    } else {
        (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP)
    };
    let config_desc = Descriptor {
        media_type: config_type.into(),
        digest: sha256_digest(config),
        size: config.len() as u64,
    };
    let mut layers: Vec<Value> = base_layers.iter().map(Descriptor::to_json).collect();
    layers.push(
        Descriptor {
            media_type: layer_type.into(),
            digest: layer.digest.clone(),
            size: layer.blob.len() as u64,
        }
        .to_json(),
    );
    let body = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config_desc.to_json(),
        "layers": layers,
    });
    (
        media_type.to_owned(),
        serde_json::to_vec(&body).expect("JSON of JSON"),
    )
}

/// The layers and config a single-image manifest names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("field `{0}` missing or malformed")]
    Field(&'static str),
    #[error("no entry for {0} in the image index")]
    NoPlatform(String),
}

/// Whether a manifest media type (or a body's own `mediaType`) is an index / manifest list.
pub fn is_index(media_type: &str, body: &[u8]) -> bool {
    let declared = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_default();
    [media_type, declared.as_str()]
        .iter()
        .any(|t| *t == OCI_INDEX || *t == DOCKER_LIST)
}

pub fn parse_manifest(body: &[u8]) -> Result<ParsedManifest, ManifestError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ManifestError::Json(e.to_string()))?;
    let desc = |d: &Value, what: &'static str| -> Result<Descriptor, ManifestError> {
        Ok(Descriptor {
            media_type: d["mediaType"]
                .as_str()
                .ok_or(ManifestError::Field(what))?
                .into(),
            digest: d["digest"]
                .as_str()
                .ok_or(ManifestError::Field(what))?
                .into(),
            size: d["size"].as_u64().ok_or(ManifestError::Field(what))?,
        })
    };
    let config = desc(&v["config"], "config")?;
    let layers = v["layers"]
        .as_array()
        .ok_or(ManifestError::Field("layers"))?
        .iter()
        .map(|l| desc(l, "layers[]"))
        .collect::<Result<_, _>>()?;
    Ok(ParsedManifest { config, layers })
}

/// The digest of the index entry for `os/arch` (variant ignored).
pub fn select_platform(index: &[u8], os: &str, arch: &str) -> Result<String, ManifestError> {
    let v: Value = serde_json::from_slice(index).map_err(|e| ManifestError::Json(e.to_string()))?;
    v["manifests"]
        .as_array()
        .ok_or(ManifestError::Field("manifests"))?
        .iter()
        .find(|m| m["platform"]["os"] == os && m["platform"]["architecture"] == arch)
        .and_then(|m| m["digest"].as_str().map(str::to_owned))
        .ok_or_else(|| ManifestError::NoPlatform(format!("{os}/{arch}")))
}

/// The labels of an image config (empty when it has none).
pub fn config_labels(config: &[u8]) -> BTreeMap<String, String> {
    serde_json::from_slice::<Value>(config)
        .ok()
        .and_then(|v| v["config"]["Labels"].as_object().cloned())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A digest over everything a build depends on: the builder, the image's settings (as JSON),
/// the base image's digest (if any) and the context tree (paths, kinds, modes and contents).
pub fn inputs_key(
    builder: &str,
    settings: &Value,
    base_digest: Option<&str>,
    tree: &[TreeEntry],
) -> String {
    let mut h = Sha256::new();
    h.update(b"gantry-inputs-v1\0");
    h.update(builder.as_bytes());
    h.update(b"\0");
    h.update(serde_json::to_vec(settings).expect("JSON of JSON"));
    h.update(b"\0");
    h.update(base_digest.unwrap_or("-").as_bytes());
    h.update(b"\0");
    let mut sorted: Vec<&TreeEntry> = tree.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for e in sorted {
        h.update(e.path.as_bytes());
        match &e.kind {
            EntryKind::Dir => h.update(b"\0d\0"),
            EntryKind::File { data, executable } => {
                h.update(if *executable { b"\0x\0" } else { b"\0f\0" });
                h.update(Sha256::digest(data));
            }
            EntryKind::Symlink { target } => {
                h.update(b"\0l\0");
                h.update(target.as_bytes());
            }
        }
        h.update(b"\n");
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &str) -> TreeEntry {
        TreeEntry {
            path: path.into(),
            kind: EntryKind::File {
                data: data.as_bytes().to_vec(),
                executable: false,
            },
        }
    }

    fn names(layer: &Layer) -> Vec<(String, u32, u64)> {
        let tar = flate2::read::GzDecoder::new(layer.blob.as_slice());
        let mut archive = tar::Archive::new(tar);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn same_tree_gives_the_same_digest_whatever_the_order() {
        let a = vec![file("main.py", "print(1)"), file("pkg/x.py", "x")];
        let b = vec![file("pkg/x.py", "x"), file("main.py", "print(1)")];
        assert_eq!(
            layer(&a, "/app", 1_700_000_000),
            layer(&b, "/app", 1_700_000_000)
        );
        assert_ne!(
            layer(&a, "/app", 1_700_000_000).digest,
            layer(&a, "/app", 1_700_000_001).digest
        );
    }

    #[test]
    fn layer_places_files_under_dest_with_parents_first_and_fixed_times() {
        let l = layer(
            &[file("pkg/x.py", "x"), file("main.py", "m")],
            "/srv/app",
            42,
        );
        assert_eq!(
            names(&l),
            vec![
                ("srv/".into(), 0o755, 42),
                ("srv/app/".into(), 0o755, 42),
                ("srv/app/main.py".into(), 0o644, 42),
                ("srv/app/pkg/".into(), 0o755, 42),
                ("srv/app/pkg/x.py".into(), 0o644, 42),
            ]
        );
    }

    #[test]
    fn config_applies_settings_on_top_of_the_base() {
        let base = json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Env": ["PATH=/bin", "LANG=C"], "Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:base"]},
            "history": [{"created_by": "base"}]
        });
        let l = layer(&[file("a", "a")], "/app", 0);
        let s = ImageSettings {
            entrypoint: Some(vec!["python3".into(), "main.py".into()]),
            env: [
                ("LANG".to_string(), "C.UTF-8".to_string()),
                ("PORT".into(), "8000".into()),
            ]
            .into(),
            labels: [(REVISION_LABEL.to_string(), "abc".to_string())].into(),
            workdir: Some("/app".into()),
            epoch: 1_700_000_000,
            ..Default::default()
        };
        let cfg: Value = serde_json::from_slice(&image_config(&base, &l, &s, "app")).unwrap();
        assert_eq!(cfg["created"], "2023-11-14T22:13:20Z");
        assert_eq!(
            cfg["config"]["Env"],
            json!(["PATH=/bin", "LANG=C.UTF-8", "PORT=8000"])
        );
        assert_eq!(cfg["config"]["Entrypoint"], json!(["python3", "main.py"]));
        assert!(
            cfg["config"].get("Cmd").is_none(),
            "a new entrypoint resets the base cmd"
        );
        assert_eq!(cfg["config"]["WorkingDir"], "/app");
        assert_eq!(cfg["config"]["Labels"][REVISION_LABEL], "abc");
        assert_eq!(cfg["rootfs"]["diff_ids"], json!(["sha256:base", l.diff_id]));
        assert_eq!(cfg["history"].as_array().unwrap().len(), 2);
        assert_eq!(
            config_labels(&serde_json::to_vec(&cfg).unwrap())[REVISION_LABEL],
            "abc"
        );
    }

    #[test]
    fn manifest_keeps_the_base_flavour_and_parses_back() {
        let l = layer(&[file("a", "a")], "/app", 0);
        let base = vec![Descriptor {
            media_type: DOCKER_LAYER_GZIP.into(),
            digest: "sha256:b".into(),
            size: 3,
        }];
        let (mt, body) = manifest(DOCKER_MANIFEST, &base, b"{}", &l);
        assert_eq!(mt, DOCKER_MANIFEST);
        let parsed = parse_manifest(&body).unwrap();
        assert_eq!(parsed.layers.len(), 2);
        assert_eq!(parsed.layers[1].media_type, DOCKER_LAYER_GZIP);
        assert_eq!(parsed.config.digest, sha256_digest(b"{}"));
        let (mt, _) = manifest(OCI_MANIFEST, &base, b"{}", &l);
        assert_eq!(mt, OCI_MANIFEST);
    }

    #[test]
    fn platform_selection_and_index_detection() {
        let index = json!({"mediaType": OCI_INDEX, "manifests": [
            {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}}
        ]});
        let body = serde_json::to_vec(&index).unwrap();
        assert!(is_index("application/json", &body));
        assert_eq!(
            select_platform(&body, "linux", "amd64").unwrap(),
            "sha256:amd"
        );
        assert!(matches!(
            select_platform(&body, "linux", "s390x"),
            Err(ManifestError::NoPlatform(_))
        ));
    }

    #[test]
    fn inputs_key_changes_with_any_input() {
        let tree = vec![file("a", "1")];
        let s = json!({"entrypoint": ["x"]});
        let k = inputs_key("layer", &s, Some("sha256:b"), &tree);
        assert_eq!(k, inputs_key("layer", &s, Some("sha256:b"), &tree));
        assert_ne!(k, inputs_key("buildah", &s, Some("sha256:b"), &tree));
        assert_ne!(k, inputs_key("layer", &json!({}), Some("sha256:b"), &tree));
        assert_ne!(k, inputs_key("layer", &s, Some("sha256:c"), &tree));
        assert_ne!(
            k,
            inputs_key("layer", &s, Some("sha256:b"), &[file("a", "2")])
        );
    }
}
