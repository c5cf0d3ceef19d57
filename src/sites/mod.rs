//! Static sites: scan a build output, plan against the bucket (see `plan::site`), and carry
//! the plan out through the `ObjectStore` and `Cdn` ports in a safe order. Used by both
//! `gantry site sync` and the `sync_sites` pipeline step.

pub mod drift;
pub mod scan;
pub mod sync;

pub use sync::{promote, reapply, rollback, sync, SiteError, SyncOptions, SyncReport};

/// `s3://bucket/prefix` split into its parts; the prefix is empty or ends with `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Target {
    pub bucket: String,
    pub prefix: String,
}

impl S3Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("`{url}` is not an s3://BUCKET[/PREFIX] URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{url}` names no bucket"));
        }
        Ok(Self::new(bucket, prefix))
    }

    /// The target of a site: `bucket` and `prefix`.
    pub fn of(site: &crate::domain::SiteSpec) -> Self {
        Self::new(&site.bucket, &site.prefix)
    }

    pub fn new(bucket: &str, prefix: &str) -> Self {
        let p = prefix.trim_matches('/');
        Self {
            bucket: bucket.to_owned(),
            prefix: if p.is_empty() {
                String::new()
            } else {
                format!("{p}/")
            },
        }
    }
}

impl std::fmt::Display for S3Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            S3Target::parse("s3://b").unwrap(),
            S3Target {
                bucket: "b".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            S3Target::parse("s3://b/site/v2/").unwrap().prefix,
            "site/v2/"
        );
        assert!(S3Target::parse("https://b").is_err());
    }
}
