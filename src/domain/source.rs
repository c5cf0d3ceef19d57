//! Git sources of App manifests: a config repository holding many apps' manifests, or a
//! directory inside an app's own repository (`.gantry/`).

use std::path::{Component, Path};

/// The file Gantry writes released digests to, beside an app's manifest: never a manifest.
pub const LOCK_FILE: &str = "gantry.lock.yaml";

/// One git source of manifests, as configured (`sources:` in gantry.yaml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestSource {
    /// Unique among the sources; keys the source's revisions in the store (default: `repo`).
    pub name: String,
    /// `owner/name`.
    pub repo: String,
    /// Clone URL, free of credentials (default `https://github.com/OWNER/NAME.git`).
    pub url: String,
    /// The branch whose head is in force.
    pub branch: String,
    /// The directory inside the repository holding the manifests (`.` for the whole tree).
    pub path: String,
}

impl ManifestSource {
    /// `refs/heads/BRANCH`.
    pub fn git_ref(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }

    /// Whether a push of `repo`'s `git_ref` is a new revision of this source.
    pub fn tracks(&self, repo: &str, git_ref: &str) -> bool {
        self.repo.eq_ignore_ascii_case(repo) && git_ref == self.git_ref()
    }
}

/// A repository path a source may name: relative, no `..`, nothing absolute.
pub fn valid_source_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty (use `.` for the whole repository)");
    }
    let p = Path::new(path);
    if p.components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("must be a relative path inside the repository, without `..`");
    }
    Ok(())
}

/// `owner/name`, each part of letters, digits, `-`, `_` and `.` (GitHub's rules), not
/// starting with `-` or `.`.
/// A DNS label: what app, site and discovery names must be (lower-case letters, digits and
/// `-`, at most 63 characters, no `-` at either end).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub fn valid_repo(repo: &str) -> bool {
    let mut parts = repo.split('/');
    let ok = |s: Option<&str>| {
        s.is_some_and(|s| {
            !s.is_empty()
                && s.len() <= 100
                && !s.starts_with(['-', '.'])
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_paths_stay_inside_the_repository() {
        assert!(valid_source_path(".").is_ok());
        assert!(valid_source_path(".gantry").is_ok());
        assert!(valid_source_path("apps/prod").is_ok());
        assert!(valid_source_path("").is_err());
        assert!(valid_source_path("../x").is_err());
        assert!(valid_source_path("/etc").is_err());
        assert!(valid_source_path("a/../../b").is_err());
    }

    #[test]
    fn repos_are_owner_slash_name() {
        assert!(valid_repo("acme/deploy"));
        assert!(valid_repo("a-b/c.d_e"));
        assert!(!valid_repo("acme"));
        assert!(!valid_repo("acme/deploy/x"));
        assert!(!valid_repo("-x/y"));
        assert!(!valid_repo("acme/--upload-pack=x"));
    }
}
