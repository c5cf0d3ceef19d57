//! `gantry.lock.yaml`: the image digests each app's last successful deployment released,
//! written back beside its manifest in git. Rendering is deterministic (same digests, same
//! bytes), so Gantry commits only when what runs changed: no empty commits, and a push of its
//! own commit changes no app's desired state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

const HEADER: &str = "# Written by Gantry: the image digests each app's last successful deployment\n# released. Gantry commits it only when they change; edits are overwritten.\n";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lock {
    api_version: String,
    kind: String,
    #[serde(default)]
    apps: BTreeMap<String, LockedApp>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LockedApp {
    /// Image name -> `repository@sha256:...`.
    #[serde(default)]
    images: BTreeMap<String, String>,
}

/// The lock file with `app`'s entry set to `images`, other apps' entries kept. A current file
/// that does not parse (edited by hand) is replaced by one holding only this app.
pub fn upsert(current: Option<&str>, app: &str, images: &BTreeMap<String, String>) -> String {
    let mut lock: Lock = current
        .and_then(|text| serde_yaml::from_str(text).ok())
        .unwrap_or_default();
    lock.api_version = crate::domain::API_VERSION.into();
    lock.kind = "Lock".into();
    lock.apps.insert(
        app.to_owned(),
        LockedApp {
            images: images.clone(),
        },
    );
    let body = serde_yaml::to_string(&lock).expect("a lock always serialises");
    format!("{HEADER}{body}")
}

/// The commit message of a write-back, with trailers naming the deployment.
pub fn commit_message(app: &str, deployment: i64, images: &BTreeMap<String, String>) -> String {
    let mut m = format!("gantry: {app} released deployment #{deployment}\n\n");
    for (name, image) in images {
        m.push_str(&format!("{name}: {image}\n"));
    }
    m.push_str(&format!(
        "\nGantry-App: {app}\nGantry-Deployment: {deployment}\n"
    ));
    m
}

/// Where an app's lock goes: `gantry.lock.yaml` in its manifest's directory.
pub fn lock_path(manifest_file: &str) -> String {
    match manifest_file.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{}", crate::domain::LOCK_FILE),
        None => crate::domain::LOCK_FILE.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(d: &str) -> BTreeMap<String, String> {
        [("api".to_string(), format!("r/api@sha256:{d}"))].into()
    }

    #[test]
    fn the_same_digests_render_the_same_bytes_and_other_apps_are_kept() {
        let one = upsert(None, "api", &images("aa"));
        assert_eq!(upsert(Some(&one), "api", &images("aa")), one);
        let two = upsert(Some(&one), "web", &images("bb"));
        assert!(two.contains("r/api@sha256:aa") && two.contains("r/api@sha256:bb"));
        assert!(two.starts_with("# Written by Gantry"));
        // Entries are sorted: the order they were written in does not matter.
        let other = upsert(
            Some(&upsert(None, "web", &images("bb"))),
            "api",
            &images("aa"),
        );
        assert_eq!(other, two);
        // A changed digest is a changed file.
        assert_ne!(upsert(Some(&two), "api", &images("cc")), two);
    }

    #[test]
    fn a_hand_edited_lock_that_does_not_parse_is_replaced() {
        let out = upsert(Some(": not yaml ["), "api", &images("aa"));
        assert!(out.contains("kind: Lock"), "{out}");
    }

    #[test]
    fn messages_name_the_deployment_and_paths_sit_beside_the_manifest() {
        let m = commit_message("api", 12, &images("aa"));
        assert!(
            m.ends_with("Gantry-App: api\nGantry-Deployment: 12\n"),
            "{m}"
        );
        assert_eq!(lock_path("apps/api.yaml"), "apps/gantry.lock.yaml");
        assert_eq!(lock_path("api.yaml"), "gantry.lock.yaml");
    }
}
