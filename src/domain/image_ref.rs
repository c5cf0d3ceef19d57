//! Image references: `registry/repository[:tag][@digest]`, parsed the way docker and podman do
//! (a first component with a `.` or `:`, or `localhost`, is a registry; otherwise Docker Hub).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{reference}` is not an image reference: {why}")]
pub struct RefError {
    pub reference: String,
    pub why: &'static str,
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self, RefError> {
        let bad = |why| RefError {
            reference: s.to_owned(),
            why,
        };
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(bad("empty or contains spaces"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let Some(hex) = d.strip_prefix("sha256:") else {
                    return Err(bad("a digest must be sha256:<64 hex digits>"));
                };
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("a digest must be sha256:<64 hex digits>"));
                }
                (r, Some(d.to_owned()))
            }
            None => (s, None),
        };
        let (first, remainder) = match rest.split_once('/') {
            Some((f, r)) if f.contains('.') || f.contains(':') || f == "localhost" => {
                (f.to_owned(), r.to_owned())
            }
            _ => ("docker.io".to_owned(), rest.to_owned()),
        };
        let (repo, tag) = match remainder.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_owned(), Some(t.to_owned())),
            _ => (remainder, None),
        };
        let repository = if first == "docker.io" && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        if repository.is_empty()
            || !repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
            })
        {
            return Err(bad(
                "repository components must be lowercase letters, digits, `.`, `_` or `-`",
            ));
        }
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad("tags are letters, digits, `_`, `.` and `-`"));
            }
        }
        Ok(Self {
            registry: first,
            repository,
            tag,
            digest,
        })
    }

    /// The same repository at `tag` (no digest).
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned at `digest` (no tag).
    pub fn with_digest(&self, digest: &str) -> Self {
        Self {
            tag: None,
            digest: Some(digest.to_owned()),
            ..self.clone()
        }
    }

    /// `registry/repository`, no tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What the registry API calls this reference: the digest if pinned, else the tag.
    pub fn reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Docker's tag grammar: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// The AWS account and region of an ECR registry host, `None` for any other registry.
pub fn ecr_registry(host: &str) -> Option<(String, String)> {
    let rest = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let mut parts = rest.split('.');
    let account = parts.next()?;
    let (dkr, ecr, region) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || dkr != "dkr" || !ecr.starts_with("ecr") {
        return None;
    }
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
        .then(|| (account.to_owned(), region.to_owned()))
}

/// Loopback registries may be spoken to over plain HTTP; nothing else may.
pub fn is_loopback_host(host: &str) -> bool {
    let h = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A registry endpoint override that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("registry endpoint for {registry}: {message}")]
pub struct EndpointError {
    pub registry: String,
    pub message: String,
}

/// Checks a map of registry name to the URL actually connected to: https, or plain http for a
/// loopback registry only.
pub fn check_endpoints(
    endpoints: &std::collections::BTreeMap<String, String>,
) -> Result<(), EndpointError> {
    for (registry, url) in endpoints {
        let bad = |message: String| EndpointError {
            registry: registry.clone(),
            message,
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(format!("`{url}` is not a URL: {e}")))?;
        let host = parsed.host_str().unwrap_or_default();
        match parsed.scheme() {
            "https" => {}
            "http" if is_loopback_host(host) => {}
            "http" => {
                return Err(bad(format!(
                    "`{url}`: plain http is allowed only for localhost registries"
                )))
            }
            s => return Err(bad(format!("`{url}`: unsupported scheme `{s}`"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_docker() {
        let r =
            ImageRef::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:abc").unwrap();
        assert_eq!(r.registry, "123456789012.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(r.repository, "team/api");
        assert_eq!(r.tag.as_deref(), Some("abc"));
        let r = ImageRef::parse("python:3.12-slim").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("docker.io", "library/python")
        );
        let r = ImageRef::parse("127.0.0.1:5056/base/busybox").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5056");
        assert_eq!(r.reference(), "latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("localhost/x@{d}")).unwrap();
        assert_eq!(r.reference(), d);
        assert_eq!(r.to_string(), format!("localhost/x@{d}"));
        assert!(ImageRef::parse("Upper/Case").is_err());
        assert!(ImageRef::parse("x@sha256:short").is_err());
    }

    #[test]
    fn recognises_ecr_and_loopback() {
        assert_eq!(
            ecr_registry("123456789012.dkr.ecr.ap-northeast-2.amazonaws.com"),
            Some(("123456789012".into(), "ap-northeast-2".into()))
        );
        assert_eq!(ecr_registry("ghcr.io"), None);
        assert!(is_loopback_host("127.0.0.1:5056"));
        assert!(is_loopback_host("localhost"));
        assert!(is_loopback_host("[::1]:5000"));
        assert!(!is_loopback_host("registry.example.com:5000"));
    }

    #[test]
    fn plain_http_only_for_loopback() {
        let ok: std::collections::BTreeMap<_, _> = [(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com".to_string(),
            "http://127.0.0.1:5056".to_string(),
        )]
        .into();
        assert!(check_endpoints(&ok).is_ok());
        let bad: std::collections::BTreeMap<_, _> =
            [("r".to_string(), "http://10.0.0.5:5000".to_string())].into();
        let e = check_endpoints(&bad).unwrap_err().to_string();
        assert!(e.contains("only for localhost"), "{e}");
    }
}
