//! Plans a static-site sync: the local build output against the bucket's listing and Gantry's
//! manifest object. Content-addressed: an object whose content (sha256, or a single-part MD5
//! ETag for objects another tool wrote) and headers match is never touched, whatever its mtime.
//!
//! The plan is ordered for safety: assets before documents (HTML/RSC `.txt`), so no page is
//! live before what it references; the manifest last; objects that left the build are only
//! deleted after the grace period (both `days` and `releases` must have passed).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::domain::{
    Grace, LocalFile, ManifestEntry, RemoteObject, SiteManifest, StaleEntry, GANTRY_DIR,
};

/// What to do with one local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Upload the body (new or changed content).
    Upload(LocalFile),
    /// Same content, new headers: copy the object onto itself with replaced metadata.
    Retag(LocalFile),
}

impl Action {
    pub fn file(&self) -> &LocalFile {
        match self {
            Self::Upload(f) | Self::Retag(f) => f,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePlan {
    /// Non-document actions: run first.
    pub assets: Vec<Action>,
    /// HTML and `.txt` actions: run after every asset is in place.
    pub documents: Vec<Action>,
    /// Keys whose grace period is over: deleted after the manifest is written.
    pub deletes: Vec<String>,
    /// Keys that left the build in this sync (kept for the grace period).
    pub newly_stale: Vec<String>,
    /// The manifest after this sync. Entries of uploaded files carry an empty ETag until the
    /// executor fills in what the store returned.
    pub manifest: SiteManifest,
    /// Whether anything changes (and so whether the manifest is written).
    pub changed: bool,
    /// Keys whose cached copies must be invalidated (changed, not immutable).
    pub invalidate: Vec<String>,
}

impl SitePlan {
    pub fn actions(&self) -> impl Iterator<Item = &Action> {
        self.assets.iter().chain(&self.documents)
    }

    pub fn uploads(&self) -> usize {
        self.actions()
            .filter(|a| matches!(a, Action::Upload(_)))
            .count()
    }

    pub fn retags(&self) -> usize {
        self.actions()
            .filter(|a| matches!(a, Action::Retag(_)))
            .count()
    }
}

/// Whether a key is a document (served to browsers as a page or an RSC payload).
pub fn is_document(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with(".html") || k.ends_with(".htm") || k.ends_with(".txt")
}

pub fn plan_sync(
    local: &[LocalFile],
    remote: &[RemoteObject],
    manifest: &SiteManifest,
    now: DateTime<Utc>,
    grace: Grace,
) -> SitePlan {
    let listing: BTreeMap<&str, &RemoteObject> = remote
        .iter()
        .filter(|o| !o.key.starts_with(GANTRY_DIR))
        .map(|o| (o.key.as_str(), o))
        .collect();
    let mut assets = Vec::new();
    let mut documents = Vec::new();
    let mut invalidate = Vec::new();
    let mut files = BTreeMap::new();
    for f in local {
        let known = manifest.files.get(&f.key);
        let remote = listing.get(f.key.as_str());
        let action = match (remote, known) {
            (None, _) => Some(Action::Upload(f.clone())),
            (Some(r), Some(m)) if m.size == r.size && m.etag == r.etag => {
                if m.sha256 != f.sha256 {
                    Some(Action::Upload(f.clone()))
                } else if m.headers != f.headers {
                    Some(Action::Retag(f.clone()))
                } else {
                    None
                }
            }
            // Not as Gantry left it (or never seen): only a single-part ETag equal to the MD5
            // proves equal content; headers are then unknown, so they are re-applied.
            (Some(r), _) if !r.etag.contains('-') && r.etag == f.md5 && r.size == f.size => {
                Some(Action::Retag(f.clone()))
            }
            (Some(_), _) => Some(Action::Upload(f.clone())),
        };
        let etag = match (&action, remote) {
            (None, Some(r)) => r.etag.clone(),
            _ => String::new(),
        };
        files.insert(
            f.key.clone(),
            ManifestEntry {
                sha256: f.sha256.clone(),
                size: f.size,
                etag,
                headers: f.headers.clone(),
            },
        );
        if let Some(a) = action {
            let existed = remote.is_some();
            if existed && !f.headers.is_immutable() {
                invalidate.push(f.key.clone());
            }
            if is_document(&f.key) {
                documents.push(a);
            } else {
                assets.push(a);
            }
        }
    }
    // A release is a change of content; deleting expired objects alone makes none. Deciding
    // expiry against the release this sync makes keeps re-planning after applying a no-op.
    let content_changed = !assets.is_empty() || !documents.is_empty() || files != manifest.files;
    let release = manifest.release + u64::from(content_changed);
    let local_keys: BTreeSet<&str> = local.iter().map(|f| f.key.as_str()).collect();
    let mut stale = BTreeMap::new();
    let mut deletes = Vec::new();
    let mut newly_stale = Vec::new();
    for key in listing.keys().filter(|k| !local_keys.contains(*k)) {
        match manifest.stale.get(*key) {
            Some(entry) => {
                let old_enough = now.signed_duration_since(entry.since).num_days() >= grace.days;
                let enough_releases = release.saturating_sub(entry.since_release) >= grace.releases;
                if old_enough && enough_releases {
                    deletes.push((*key).to_owned());
                } else {
                    stale.insert((*key).to_owned(), entry.clone());
                }
            }
            None => {
                newly_stale.push((*key).to_owned());
                stale.insert(
                    (*key).to_owned(),
                    StaleEntry {
                        since: now,
                        since_release: release,
                    },
                );
            }
        }
    }
    let changed = content_changed || !deletes.is_empty() || stale != manifest.stale;
    let next = if changed {
        SiteManifest {
            version: 1,
            release,
            updated_at: Some(now),
            files,
            stale,
        }
    } else {
        manifest.clone()
    };
    SitePlan {
        assets,
        documents,
        deletes,
        newly_stale,
        manifest: next,
        changed,
        invalidate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ObjectHeaders;
    use proptest::prelude::*;

    fn headers(cc: &str) -> ObjectHeaders {
        ObjectHeaders {
            content_type: "text/html; charset=utf-8".into(),
            cache_control: cc.into(),
        }
    }

    fn file(key: &str, body: &str, cc: &str) -> LocalFile {
        use sha2::Digest;
        LocalFile {
            key: key.into(),
            sha256: hex::encode(sha2::Sha256::digest(body.as_bytes())),
            md5: format!("md5x{body}"),
            size: body.len() as u64,
            headers: headers(cc),
        }
    }

    /// Applies a plan to an in-memory bucket the way the executor does against S3.
    fn apply(plan: &SitePlan, bucket: &mut BTreeMap<String, RemoteObject>) -> SiteManifest {
        let mut manifest = plan.manifest.clone();
        for a in plan.actions() {
            let f = a.file();
            let etag = match a {
                Action::Upload(_) => f.md5.clone(),
                Action::Retag(_) => bucket
                    .get(&f.key)
                    .map(|o| o.etag.clone())
                    .unwrap_or_default(),
            };
            bucket.insert(
                f.key.clone(),
                RemoteObject {
                    key: f.key.clone(),
                    size: f.size,
                    etag: etag.clone(),
                },
            );
            manifest.files.get_mut(&f.key).unwrap().etag = etag;
        }
        for k in &plan.deletes {
            bucket.remove(k);
        }
        manifest
    }

    #[test]
    fn unchanged_content_is_never_uploaded_and_headers_only_are_retagged() {
        let v1 = vec![file("index.html", "a", "x"), file("app.js", "b", "y")];
        let mut bucket = BTreeMap::new();
        let p1 = plan_sync(
            &v1,
            &[],
            &SiteManifest::default(),
            Utc::now(),
            Grace::default(),
        );
        assert_eq!(p1.uploads(), 2);
        assert_eq!(
            p1.assets.len(),
            1,
            "assets are planned apart from documents"
        );
        let m1 = apply(&p1, &mut bucket);
        let listing: Vec<_> = bucket.values().cloned().collect();
        let p2 = plan_sync(&v1, &listing, &m1, Utc::now(), Grace::default());
        assert!(!p2.changed && p2.uploads() == 0 && p2.retags() == 0);
        let v2 = vec![file("index.html", "a", "x2"), file("app.js", "b", "y")];
        let p3 = plan_sync(&v2, &listing, &m1, Utc::now(), Grace::default());
        assert_eq!((p3.uploads(), p3.retags()), (0, 1));
        assert_eq!(p3.invalidate, vec!["index.html".to_string()]);
    }

    #[test]
    fn foreign_objects_are_adopted_by_md5_but_multipart_etags_are_not_trusted() {
        let v = vec![file("a.html", "a", "x"), file("b.bin", "b", "y")];
        let listing = vec![
            RemoteObject {
                key: "a.html".into(),
                size: 1,
                etag: "md5xa".into(),
            },
            RemoteObject {
                key: "b.bin".into(),
                size: 1,
                etag: "md5xb-2".into(),
            },
        ];
        let p = plan_sync(
            &v,
            &listing,
            &SiteManifest::default(),
            Utc::now(),
            Grace::default(),
        );
        assert_eq!(p.documents, vec![Action::Retag(v[0].clone())]);
        assert_eq!(p.assets, vec![Action::Upload(v[1].clone())]);
    }

    #[test]
    fn stale_objects_survive_the_grace_period() {
        let t0 = Utc::now();
        let mut bucket = BTreeMap::new();
        let grace = Grace {
            days: 7,
            releases: 3,
        };
        let old = vec![
            file("index.html", "1", "x"),
            file("_next/static/a.js", "a", "immutable"),
        ];
        let m = apply(
            &plan_sync(&old, &[], &SiteManifest::default(), t0, grace),
            &mut bucket,
        );
        let mut m = m;
        // Three more releases within a day: the old asset stays.
        for i in 2..=4 {
            let new = vec![
                file("index.html", &i.to_string(), "x"),
                file("_next/static/b.js", "b", "immutable"),
            ];
            let listing: Vec<_> = bucket.values().cloned().collect();
            let p = plan_sync(&new, &listing, &m, t0 + chrono::Duration::hours(i), grace);
            assert!(p.deletes.is_empty(), "release {i}: {:?}", p.deletes);
            m = apply(&p, &mut bucket);
        }
        assert!(bucket.contains_key("_next/static/a.js"));
        // Eight days later and enough releases: removed.
        let new = vec![
            file("index.html", "5", "x"),
            file("_next/static/b.js", "b", "immutable"),
        ];
        let listing: Vec<_> = bucket.values().cloned().collect();
        let p = plan_sync(&new, &listing, &m, t0 + chrono::Duration::days(8), grace);
        assert_eq!(p.deletes, vec!["_next/static/a.js".to_string()]);
    }

    fn arb_tree() -> impl Strategy<Value = Vec<LocalFile>> {
        proptest::collection::btree_map(
            "[a-c]{1,2}(/[a-c]{1,2})?\\.(html|js|txt)",
            ("[a-d]{1,3}", prop_oneof!["x", "y"]),
            0..12,
        )
        .prop_map(|m| {
            m.into_iter()
                .map(|(k, (body, cc))| file(&k, &body, &cc))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn planning_after_applying_yields_nothing(first in arb_tree(), second in arb_tree(), foreign in arb_tree(), days in 0i64..20) {
            let t0 = Utc::now();
            let grace = Grace { days: 7, releases: 2 };
            // The bucket starts with objects another tool wrote.
            let mut bucket: BTreeMap<String, RemoteObject> = foreign.iter().map(|f| (f.key.clone(), RemoteObject { key: f.key.clone(), size: f.size, etag: f.md5.clone() })).collect();
            let mut manifest = SiteManifest::default();
            for (tree, at) in [(&first, t0), (&second, t0 + chrono::Duration::days(days))] {
                let listing: Vec<_> = bucket.values().cloned().collect();
                let plan = plan_sync(tree, &listing, &manifest, at, grace);
                manifest = apply(&plan, &mut bucket);
                let listing: Vec<_> = bucket.values().cloned().collect();
                let again = plan_sync(tree, &listing, &manifest, at, grace);
                prop_assert!(!again.changed, "{again:?}");
                prop_assert_eq!(again.uploads() + again.retags() + again.deletes.len(), 0);
                // Every local file is in the bucket afterwards.
                for f in tree.iter() {
                    prop_assert!(bucket.contains_key(&f.key));
                }
            }
        }
    }
}
