//! Static-site sync data: the local tree, the remote state, and the manifest object Gantry
//! keeps beside a site (`<prefix>/.gantry/manifest.json`) recording what it uploaded.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where Gantry keeps its own objects under a site's prefix.
pub const GANTRY_DIR: &str = ".gantry/";
pub const MANIFEST_KEY: &str = ".gantry/manifest.json";

/// Response headers Gantry sets on an object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectHeaders {
    pub content_type: String,
    pub cache_control: String,
}

impl ObjectHeaders {
    /// Immutable objects (content-hashed assets) never need a CDN invalidation.
    pub fn is_immutable(&self) -> bool {
        self.cache_control.contains("immutable")
    }
}

/// One file of the local build output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// Key relative to the site root, `/`-separated (`_next/static/x.js`).
    pub key: String,
    pub sha256: String,
    /// Hex MD5, to recognise objects another tool uploaded (single-part ETags).
    pub md5: String,
    pub size: u64,
    pub headers: ObjectHeaders,
}

/// One object as a listing reports it (key relative to the site root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub key: String,
    pub size: u64,
    /// The ETag without quotes.
    pub etag: String,
}

/// What Gantry recorded for an object it put in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestEntry {
    pub sha256: String,
    pub size: u64,
    pub etag: String,
    #[serde(flatten)]
    pub headers: ObjectHeaders,
}

/// An object no longer in the build, kept for the grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaleEntry {
    pub since: DateTime<Utc>,
    pub since_release: u64,
    /// The object's content when it became stale, if Gantry knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Where a retained copy of overwritten content is kept, by its sha256.
pub fn blob_key(sha256: &str) -> String {
    format!("{GANTRY_DIR}blobs/{sha256}")
}

/// The manifest object: the site's state as Gantry last left it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteManifest {
    pub version: u32,
    /// Increments with every sync that changed something.
    pub release: u64,
    pub updated_at: Option<DateTime<Utc>>,
    /// Objects of the current release.
    pub files: BTreeMap<String, ManifestEntry>,
    /// Objects of earlier releases still kept (hashed assets cached pages may reference).
    #[serde(default)]
    pub stale: BTreeMap<String, StaleEntry>,
    /// Content overwritten in place, kept at `.gantry/blobs/<sha256>` for the grace period so
    /// an earlier release can be restored without rebuilding.
    #[serde(default)]
    pub blobs: BTreeMap<String, StaleEntry>,
    /// The release before this one, for `gantry site rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<SiteRelease>,
    /// Keys whose CDN invalidation is owed: written with the release, cleared once the
    /// invalidation was created, so a sync that failed after writing its manifest (or was
    /// killed) invalidates them on its next run instead of leaving the CDN stale.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_invalidation: Vec<String>,
}

/// Every object of one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SiteRelease {
    pub release: u64,
    pub at: Option<DateTime<Utc>>,
    pub files: BTreeMap<String, ManifestEntry>,
}

/// How long objects that left the build are kept: both bounds must pass before deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grace {
    pub days: i64,
    pub releases: u64,
}

impl Default for Grace {
    fn default() -> Self {
        Self {
            days: 7,
            releases: 3,
        }
    }
}

/// Which release of which site target a deployment put in place: `s3://bucket/prefix/#7`
/// in the store and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteReleaseId {
    /// The target as a sync reports it (`s3://bucket/prefix/`).
    pub target: String,
    pub release: u64,
}

impl std::fmt::Display for SiteReleaseId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.target, self.release)
    }
}

impl std::str::FromStr for SiteReleaseId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (target, n) = s
            .rsplit_once('#')
            .ok_or_else(|| format!("`{s}` is not TARGET#RELEASE"))?;
        let release = n
            .parse()
            .map_err(|_| format!("`{s}`: `{n}` is not a release number"))?;
        Ok(Self {
            target: target.to_owned(),
            release,
        })
    }
}

impl PartialEq<String> for SiteReleaseId {
    fn eq(&self, other: &String) -> bool {
        other.parse::<Self>().is_ok_and(|o| &o == self)
    }
}

impl serde::Serialize for SiteReleaseId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SiteReleaseId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}
