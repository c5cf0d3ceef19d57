//! Response headers for site objects: Content-Type from a compiled table (never the host's
//! mime database), Cache-Control from glob rules and presets.

use globset::{Glob, GlobMatcher};

use crate::domain::ObjectHeaders;

/// Cache-Control for content-hashed files that never change under their name.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Cache-Control for documents that must be revalidated on every request.
pub const REVALIDATE: &str = "public, max-age=0, must-revalidate";
/// Cache-Control for everything else.
pub const SHORT: &str = "public, max-age=300";

/// The Content-Type for a key, from its extension.
pub fn content_type(key: &str, extensionless: &str) -> String {
    let name = key.rsplit('/').next().unwrap_or(key);
    let ext = match name.rfind('.') {
        Some(i) if i > 0 => name[i + 1..].to_ascii_lowercase(),
        _ => return extensionless.to_owned(),
    };
    let t = match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "xml" => "application/xml",
        "rss" => "application/rss+xml",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "webmanifest" => "application/manifest+json",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    };
    t.to_owned()
}

/// A compiled Cache-Control rule.
#[derive(Debug, Clone)]
pub struct CacheRule {
    matcher: GlobMatcher,
    value: String,
}

/// Rules and defaults that give every key its headers.
#[derive(Debug, Clone)]
pub struct HeaderRules {
    rules: Vec<CacheRule>,
    default_cache: String,
    extensionless: String,
}

#[derive(Debug, thiserror::Error)]
#[error("`{glob}` is not a valid glob: {message}")]
pub struct RuleError {
    pub glob: String,
    pub message: String,
}

impl HeaderRules {
    /// User rules first (first match wins), then the preset's (`nextjs` or `plain`).
    pub fn new(
        preset: crate::domain::Preset,
        user: &[(String, String)],
        extensionless: Option<&str>,
    ) -> Result<Self, RuleError> {
        let mut all: Vec<(String, String)> = user.to_vec();
        match preset {
            crate::domain::Preset::Nextjs => {
                all.push(("_next/static/**".into(), IMMUTABLE.into()));
                all.push(("*.html".into(), REVALIDATE.into()));
                all.push(("*.txt".into(), REVALIDATE.into()));
            }
            crate::domain::Preset::Plain => all.push(("*.html".into(), REVALIDATE.into())),
        }
        let rules = all
            .into_iter()
            .map(|(glob, value)| {
                let matcher = Glob::new(&glob)
                    .map_err(|e| RuleError {
                        glob: glob.clone(),
                        message: e.to_string(),
                    })?
                    .compile_matcher();
                Ok(CacheRule { matcher, value })
            })
            .collect::<Result<Vec<_>, RuleError>>()?;
        Ok(Self {
            rules,
            default_cache: SHORT.into(),
            extensionless: extensionless
                .unwrap_or("application/octet-stream")
                .to_owned(),
        })
    }

    pub fn headers(&self, key: &str) -> ObjectHeaders {
        let cache_control = self
            .rules
            .iter()
            .find(|r| r.matcher.is_match(key))
            .map(|r| r.value.clone())
            .unwrap_or_else(|| self.default_cache.clone());
        ObjectHeaders {
            content_type: content_type(key, &self.extensionless),
            cache_control,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nextjs_preset() {
        let r = HeaderRules::new(crate::domain::Preset::Nextjs, &[], None).unwrap();
        assert_eq!(
            r.headers("_next/static/chunks/app-1a2b.js").cache_control,
            IMMUTABLE
        );
        assert_eq!(
            r.headers("_next/static/chunks/app-1a2b.js").content_type,
            "text/javascript; charset=utf-8"
        );
        assert_eq!(r.headers("index.html").cache_control, REVALIDATE);
        assert_eq!(r.headers("projects/12.html").cache_control, REVALIDATE);
        assert_eq!(r.headers("projects/12.txt").cache_control, REVALIDATE);
        assert_eq!(r.headers("favicon.ico").cache_control, SHORT);
        assert_eq!(r.headers("favicon.ico").content_type, "image/x-icon");
    }

    #[test]
    fn user_rules_win_and_extensionless_is_configurable() {
        let r = HeaderRules::new(
            crate::domain::Preset::Plain,
            &[("img/**".into(), "public, max-age=86400".into())],
            Some("text/html; charset=utf-8"),
        )
        .unwrap();
        assert_eq!(
            r.headers("img/a.png").cache_control,
            "public, max-age=86400"
        );
        assert_eq!(
            r.headers("docs/intro").content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(
            r.headers(".well-known/apple-app-site-association")
                .content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type("a.WEBMANIFEST", "x"),
            "application/manifest+json"
        );
    }
}
