//! CloudFront invalidation paths for changed keys: both URL forms of pretty pages, percent-
//! encoded, collapsed to wildcards when there are too many, and within CloudFront's limit of
//! 3,000 paths in flight.

use std::collections::BTreeSet;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// CloudFront allows at most this many paths in flight per distribution.
pub const CLOUDFRONT_MAX_PATHS: usize = 3000;

/// Characters that must be encoded in an invalidation path.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Paths under which a key may be cached: `/a/b.html` is also `/a/b` (pretty URL), and
/// `/a/index.html` is also `/a/`.
pub fn paths_for(key: &str) -> Vec<String> {
    let enc = |s: &str| format!("/{}", utf8_percent_encode(s, PATH));
    let mut out = vec![enc(key)];
    if key == "index.html" {
        out.insert(0, "/".into());
    } else if let Some(dir) = key.strip_suffix("/index.html") {
        out.insert(0, format!("{}/", enc(dir)));
    } else if let Some(stem) = key.strip_suffix(".html") {
        out.insert(0, enc(stem));
    }
    out
}

/// The invalidation batch for `keys`; empty means no call is needed. More than `max_paths`
/// paths are collapsed to `/<top-level dir>/*` wildcards, and to `/*` if still too many.
pub fn plan_invalidation(keys: &[String], max_paths: usize) -> Vec<String> {
    let paths: BTreeSet<String> = keys.iter().flat_map(|k| paths_for(k)).collect();
    let limit = max_paths.clamp(1, CLOUDFRONT_MAX_PATHS);
    if paths.len() <= limit {
        return paths.into_iter().collect();
    }
    let collapsed: BTreeSet<String> = keys
        .iter()
        .flat_map(|k| match k.split_once('/') {
            Some((top, _)) => vec![format!("/{}/*", utf8_percent_encode(top, PATH))],
            None => paths_for(k),
        })
        .collect();
    if collapsed.len() <= limit {
        collapsed.into_iter().collect()
    } else {
        vec!["/*".into()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_url_forms_and_encoding() {
        assert_eq!(paths_for("index.html"), ["/", "/index.html"]);
        assert_eq!(paths_for("docs/index.html"), ["/docs/", "/docs/index.html"]);
        assert_eq!(
            paths_for("projects/12.html"),
            ["/projects/12", "/projects/12.html"]
        );
        assert_eq!(paths_for("projects/12.txt"), ["/projects/12.txt"]);
        assert_eq!(paths_for("my file ü.css"), ["/my%20file%20%C3%BC.css"]);
    }

    #[test]
    fn collapses_when_over_the_limit() {
        let keys: Vec<String> = (0..40)
            .map(|i| format!("blog/p{i}.html"))
            .chain(["index.html".to_string()])
            .collect();
        assert_eq!(
            plan_invalidation(&keys, 10),
            ["/", "/blog/*", "/index.html"]
        );
        assert_eq!(plan_invalidation(&keys, 2), ["/*"]);
        assert!(plan_invalidation(&[], 10).is_empty());
    }
}
