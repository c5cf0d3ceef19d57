//! Plans a static-site sync: the local build output against the bucket's listing and Gantry's
//! manifest object. Content-addressed: an object whose content (sha256, or a single-part MD5
//! ETag for objects another tool wrote) and headers match is never touched, whatever its mtime.
//!
//! The plan is ordered for safety: assets before documents (HTML/RSC `.txt`), so no page is
//! live before what it references; the manifest last; objects that left the build are only
//! deleted after the grace period (both `days` and `releases` must have passed).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::{
    blob_key, Grace, LocalFile, ManifestEntry, ObjectHeaders, RemoteObject, SiteManifest,
    SiteRelease, StaleEntry, GANTRY_DIR,
};

/// What to do with one object of the new release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Upload the body (new or changed content).
    Upload(LocalFile),
    /// Server-side copy of `source` (a site-relative key; the file's own key for a header-only
    /// change) to the file's key, with the file's headers. No body is transferred.
    Copy { file: LocalFile, source: String },
}

impl Action {
    pub fn file(&self) -> &LocalFile {
        match self {
            Self::Upload(f) | Self::Copy { file: f, .. } => f,
        }
    }
}

/// Content about to be overwritten in place, copied to `.gantry/blobs/<sha256>` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preserve {
    pub key: String,
    pub sha256: String,
    pub headers: ObjectHeaders,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePlan {
    /// Retained copies of content this plan overwrites: made before anything else.
    pub preserve: Vec<Preserve>,
    /// Non-document actions: run next.
    pub assets: Vec<Action>,
    /// HTML and `.txt` actions: run after every asset is in place.
    pub documents: Vec<Action>,
    /// Site-relative keys whose grace period is over: deleted after the manifest is written.
    pub deletes: Vec<String>,
    /// Keys that left the release in this sync (kept for the grace period).
    pub newly_stale: Vec<String>,
    /// The manifest after this sync. Entries of written objects carry an empty ETag until the
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

    pub fn copies(&self) -> usize {
        self.actions()
            .filter(|a| matches!(a, Action::Copy { .. }))
            .count()
    }
}

/// Whether a key is a document (served to browsers as a page or an RSC payload).
pub fn is_document(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.ends_with(".html") || k.ends_with(".htm") || k.ends_with(".txt")
}

/// Plans publishing `local` (the build output).
pub fn plan_sync(
    local: &[LocalFile],
    remote: &[RemoteObject],
    manifest: &SiteManifest,
    now: DateTime<Utc>,
    grace: Grace,
) -> SitePlan {
    let listing = listing(remote);
    let mut b = Builder::new(manifest, &listing);
    for f in local {
        let known = manifest.files.get(&f.key);
        let remote = listing.get(f.key.as_str());
        let retag = || {
            Some(Action::Copy {
                file: f.clone(),
                source: f.key.clone(),
            })
        };
        let action = match (remote, known) {
            (None, _) => Some(Action::Upload(f.clone())),
            (Some(r), Some(m)) if m.size == r.size && m.etag == r.etag => {
                if m.sha256 != f.sha256 {
                    Some(Action::Upload(f.clone()))
                } else if m.headers != f.headers {
                    retag()
                } else {
                    None
                }
            }
            // Not as Gantry left it (or never seen): only a single-part ETag equal to the MD5
            // proves equal content; headers are then unknown, so they are re-applied.
            (Some(r), _) if !r.etag.contains('-') && r.etag == f.md5 && r.size == f.size => retag(),
            (Some(_), _) => Some(Action::Upload(f.clone())),
        };
        b.add(f, action, remote.map(|r| r.etag.as_str()));
    }
    b.finish(now, grace)
}

/// A release that cannot be restored: these keys' content is no longer retained.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("release {release} cannot be restored: the content of {} is no longer retained (first: {})", missing.len(), missing.first().map(String::as_str).unwrap_or(""))]
pub struct Unrestorable {
    pub release: u64,
    pub missing: Vec<String>,
}

/// Plans putting an earlier release (`target`) back in place from what the bucket still holds:
/// the objects themselves, stale objects kept for the grace period, and retained blobs.
pub fn plan_restore(
    target: &SiteRelease,
    remote: &[RemoteObject],
    manifest: &SiteManifest,
    now: DateTime<Utc>,
    grace: Grace,
) -> Result<SitePlan, Unrestorable> {
    let listing = listing(remote);
    // Where each sha can be copied from, besides the retained blobs.
    let mut present: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, e) in &manifest.files {
        if listing.contains_key(key.as_str()) {
            present.entry(e.sha256.as_str()).or_insert(key.as_str());
        }
    }
    for (key, e) in &manifest.stale {
        if let (Some(sha), true) = (&e.sha256, listing.contains_key(key.as_str())) {
            present.entry(sha.as_str()).or_insert(key.as_str());
        }
    }
    let mut b = Builder::new(manifest, &listing);
    let mut missing = Vec::new();
    for (key, want) in &target.files {
        let f = LocalFile {
            key: key.clone(),
            sha256: want.sha256.clone(),
            md5: String::new(),
            size: want.size,
            headers: want.headers.clone(),
        };
        let current = manifest
            .files
            .get(key)
            .filter(|_| listing.contains_key(key.as_str()));
        let stale_here = manifest.stale.get(key).filter(|e| {
            e.sha256.as_deref() == Some(want.sha256.as_str()) && listing.contains_key(key.as_str())
        });
        let action = match current {
            Some(c) if c.sha256 == want.sha256 && c.headers == want.headers => None,
            Some(c) if c.sha256 == want.sha256 => Some(Action::Copy {
                file: f.clone(),
                source: key.clone(),
            }),
            _ if stale_here.is_some() => Some(Action::Copy {
                file: f.clone(),
                source: key.clone(),
            }),
            _ => {
                let source = if manifest.blobs.contains_key(&want.sha256) {
                    Some(blob_key(&want.sha256))
                } else {
                    present.get(want.sha256.as_str()).map(|k| (*k).to_owned())
                };
                match source {
                    Some(source) => Some(Action::Copy {
                        file: f.clone(),
                        source,
                    }),
                    None => {
                        missing.push(key.clone());
                        continue;
                    }
                }
            }
        };
        let etag = current.filter(|_| action.is_none()).map(|c| c.etag.clone());
        b.add(&f, action, etag.as_deref());
    }
    if !missing.is_empty() {
        return Err(Unrestorable {
            release: target.release,
            missing,
        });
    }
    Ok(b.finish(now, grace))
}

fn listing(remote: &[RemoteObject]) -> BTreeMap<&str, &RemoteObject> {
    remote
        .iter()
        .filter(|o| !o.key.starts_with(GANTRY_DIR))
        .map(|o| (o.key.as_str(), o))
        .collect()
}

/// Accumulates the actions of a plan and derives the rest (stale objects, retained blobs,
/// expiry, the next manifest) the same way for syncs and restores.
struct Builder<'a> {
    manifest: &'a SiteManifest,
    listing: &'a BTreeMap<&'a str, &'a RemoteObject>,
    preserve: Vec<Preserve>,
    assets: Vec<Action>,
    documents: Vec<Action>,
    invalidate: Vec<String>,
    files: BTreeMap<String, ManifestEntry>,
}

impl<'a> Builder<'a> {
    fn new(manifest: &'a SiteManifest, listing: &'a BTreeMap<&'a str, &'a RemoteObject>) -> Self {
        Self {
            manifest,
            listing,
            preserve: vec![],
            assets: vec![],
            documents: vec![],
            invalidate: vec![],
            files: BTreeMap::new(),
        }
    }

    /// Records one object of the new release; `etag` is the object's current ETag.
    fn add(&mut self, f: &LocalFile, action: Option<Action>, etag: Option<&str>) {
        let recorded_etag = match &action {
            None => etag.unwrap_or_default().to_owned(),
            Some(_) => String::new(),
        };
        self.files.insert(
            f.key.clone(),
            ManifestEntry {
                sha256: f.sha256.clone(),
                size: f.size,
                etag: recorded_etag,
                headers: f.headers.clone(),
            },
        );
        let Some(action) = action else { return };
        let existed = self.listing.contains_key(f.key.as_str());
        // Keep the content being overwritten, so its release can be restored.
        if let Some(old) = self.manifest.files.get(&f.key) {
            let overwrites = existed && old.sha256 != f.sha256;
            let kept = self.manifest.blobs.contains_key(&old.sha256)
                || self.preserve.iter().any(|p| p.sha256 == old.sha256);
            if overwrites && !kept {
                self.preserve.push(Preserve {
                    key: f.key.clone(),
                    sha256: old.sha256.clone(),
                    headers: old.headers.clone(),
                });
            }
        }
        if existed && !f.headers.is_immutable() {
            self.invalidate.push(f.key.clone());
        }
        if is_document(&f.key) {
            self.documents.push(action);
        } else {
            self.assets.push(action);
        }
    }

    fn finish(self, now: DateTime<Utc>, grace: Grace) -> SitePlan {
        let m = self.manifest;
        // A release is a change of content; deleting expired objects alone makes none. Deciding
        // expiry against the release this sync makes keeps re-planning after applying a no-op.
        let content_changed =
            !self.assets.is_empty() || !self.documents.is_empty() || self.files != m.files;
        let release = m.release + u64::from(content_changed);
        let expired = |e: &StaleEntry| {
            now.signed_duration_since(e.since).num_days() >= grace.days
                && release.saturating_sub(e.since_release) >= grace.releases
        };
        let mut stale = BTreeMap::new();
        let mut deletes = Vec::new();
        let mut newly_stale = Vec::new();
        for key in self
            .listing
            .keys()
            .filter(|k| !self.files.contains_key(**k))
        {
            match m.stale.get(*key) {
                Some(e) if expired(e) => deletes.push((*key).to_owned()),
                Some(e) => {
                    stale.insert((*key).to_owned(), e.clone());
                }
                None => {
                    newly_stale.push((*key).to_owned());
                    let sha256 = m.files.get(*key).map(|e| e.sha256.clone());
                    stale.insert(
                        (*key).to_owned(),
                        StaleEntry {
                            since: now,
                            since_release: release,
                            sha256,
                        },
                    );
                }
            }
        }
        let mut blobs = BTreeMap::new();
        for (sha, e) in &m.blobs {
            if expired(e) {
                deletes.push(blob_key(sha));
            } else {
                blobs.insert(sha.clone(), e.clone());
            }
        }
        for p in &self.preserve {
            blobs.insert(
                p.sha256.clone(),
                StaleEntry {
                    since: now,
                    since_release: release,
                    sha256: None,
                },
            );
        }
        // What an earlier sync wrote but could not invalidate is owed still.
        let mut invalidate = self.invalidate;
        for k in &m.pending_invalidation {
            if !invalidate.contains(k) {
                invalidate.push(k.clone());
            }
        }
        let changed = content_changed
            || !deletes.is_empty()
            || stale != m.stale
            || blobs != m.blobs
            || invalidate != m.pending_invalidation;
        let previous = if content_changed {
            Some(SiteRelease {
                release: m.release,
                at: m.updated_at,
                files: m.files.clone(),
            })
        } else {
            m.previous.clone()
        };
        let next = if changed {
            SiteManifest {
                version: 1,
                release,
                updated_at: Some(now),
                files: self.files,
                stale,
                blobs,
                previous,
                pending_invalidation: invalidate.clone(),
            }
        } else {
            m.clone()
        };
        SitePlan {
            preserve: self.preserve,
            assets: self.assets,
            documents: self.documents,
            deletes,
            newly_stale,
            manifest: next,
            changed,
            invalidate,
        }
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
        for p in &plan.preserve {
            let o = bucket[&p.key].clone();
            bucket.insert(
                blob_key(&p.sha256),
                RemoteObject {
                    key: blob_key(&p.sha256),
                    ..o
                },
            );
        }
        for a in plan.actions() {
            let f = a.file();
            let etag = match a {
                Action::Upload(_) => f.md5.clone(),
                Action::Copy { source, .. } => bucket[source].etag.clone(),
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
        assert!(!p2.changed && p2.uploads() == 0 && p2.copies() == 0);
        let v2 = vec![file("index.html", "a", "x2"), file("app.js", "b", "y")];
        let p3 = plan_sync(&v2, &listing, &m1, Utc::now(), Grace::default());
        assert_eq!((p3.uploads(), p3.copies()), (0, 1));
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
        assert_eq!(
            p.documents,
            vec![Action::Copy {
                file: v[0].clone(),
                source: "a.html".into()
            }]
        );
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
        // The stale asset and the retained copy of the first index.html expire together.
        assert_eq!(
            p.deletes,
            vec!["_next/static/a.js".to_string(), blob_key(&old[0].sha256)]
        );
    }

    #[test]
    fn the_previous_release_is_restored_from_retained_content() {
        let t0 = Utc::now();
        let grace = Grace::default();
        let mut bucket = BTreeMap::new();
        let v1 = vec![
            file("index.html", "one", "x"),
            file("a-1.js", "a1", "immutable"),
        ];
        let m1 = apply(
            &plan_sync(&v1, &[], &SiteManifest::default(), t0, grace),
            &mut bucket,
        );
        let v2 = vec![
            file("index.html", "two", "x"),
            file("a-2.js", "a2", "immutable"),
        ];
        let listing: Vec<_> = bucket.values().cloned().collect();
        let p2 = plan_sync(&v2, &listing, &m1, t0, grace);
        assert_eq!(p2.preserve.len(), 1, "the overwritten index.html is kept");
        let m2 = apply(&p2, &mut bucket);
        let target = m2
            .previous
            .clone()
            .expect("the previous release is recorded");
        assert_eq!(target.release, 1);
        let listing: Vec<_> = bucket.values().cloned().collect();
        let restore = plan_restore(&target, &listing, &m2, t0, grace).unwrap();
        assert_eq!(restore.uploads(), 0, "nothing is rebuilt or uploaded");
        let sources: Vec<_> = restore
            .actions()
            .map(|a| match a {
                Action::Copy { source, .. } => source.clone(),
                Action::Upload(_) => unreachable!(),
            })
            .collect();
        assert!(sources.contains(&blob_key(&v1[0].sha256)), "{sources:?}");
        assert!(
            sources.contains(&"a-1.js".to_string()),
            "the stale asset is reused in place: {sources:?}"
        );
        let m3 = apply(&restore, &mut bucket);
        let files: Vec<_> = m3
            .files
            .iter()
            .map(|(k, e)| (k.clone(), e.sha256.clone()))
            .collect();
        assert_eq!(
            files,
            v1.iter()
                .map(|f| (f.key.clone(), f.sha256.clone()))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        // Once the retained content has expired, the release cannot be restored.
        let mut gone = m2.clone();
        gone.blobs.clear();
        let err = plan_restore(&target, &listing, &gone, t0, grace).unwrap_err();
        assert_eq!(err.missing, vec!["index.html".to_string()]);
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
                prop_assert_eq!(again.uploads() + again.copies() + again.deletes.len() + again.preserve.len(), 0);
                // Every local file is in the bucket afterwards.
                for f in tree.iter() {
                    prop_assert!(bucket.contains_key(&f.key));
                }
            }
        }
    }
}
