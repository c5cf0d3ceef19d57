//! What may name a commit or a ref. Everything that came from outside (a webhook's `after`
//! and `ref`, the API's and Discord's `ref` and `sha`) is checked here before it is stored or
//! reaches git, so nothing from outside can become a git option.

/// A full commit sha: 40 hex digits, returned lowercased (GitHub sends lowercase; the API and
/// chat may not).
pub fn commit_sha(s: &str) -> Option<String> {
    (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())).then(|| s.to_ascii_lowercase())
}

/// The longest ref name accepted.
pub const MAX_REF_LEN: usize = 255;

/// Whether `name` is a ref name git accepts (`git check-ref-format --allow-onelevel`): no
/// component starting with `.` or ending with `.lock`, no `..`, `@{`, `//`, control
/// characters, space or any of `~^:?*[\`, not ending with `/` or `.`, not `@`. Gantry also
/// refuses a name starting with `-` (it would read as an option) and empty names (which git
/// would take as "the remote's HEAD").
pub fn valid_ref_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("is empty");
    }
    if name.len() > MAX_REF_LEN {
        return Err("is longer than 255 characters");
    }
    if name.starts_with('-') {
        return Err("starts with `-`");
    }
    if name == "@" {
        return Err("is `@`");
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Err("contains a space, a control character or one of ~^:?*[\\");
    }
    if name.contains("..") || name.contains("@{") || name.contains("//") {
        return Err("contains `..`, `@{` or `//`");
    }
    if name.starts_with('/') || name.ends_with('/') || name.ends_with('.') {
        return Err("starts or ends with `/`, or ends with `.`");
    }
    if name
        .split('/')
        .any(|c| c.starts_with('.') || c.ends_with(".lock"))
    {
        return Err("has a component starting with `.` or ending with `.lock`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shas_are_forty_hex_digits_lowercased() {
        let sha = "A".repeat(40);
        assert_eq!(commit_sha(&sha), Some("a".repeat(40)));
        assert_eq!(commit_sha(&"a".repeat(39)), None);
        assert_eq!(commit_sha(&format!("{}g", "a".repeat(39))), None);
        assert_eq!(commit_sha("--upload-pack=touch pwned"), None);
    }

    #[test]
    fn ref_names_follow_git_check_ref_format() {
        for ok in [
            "main",
            "refs/heads/main",
            "refs/tags/v1.2.3",
            "feature/x-y_z",
            "release-2026.12",
        ] {
            assert_eq!(valid_ref_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "--upload-pack=touch pwned; env >&2; exit 1;#",
            "-x",
            "@",
            "a..b",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "a@{1}",
            "a//b",
            "/a",
            "a/",
            "a.",
            "refs/heads/.hidden",
            "refs/heads/x.lock",
            "a\u{7f}",
            "a\nb",
        ] {
            assert!(valid_ref_name(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(valid_ref_name(&"a".repeat(256)).is_err());
    }
}
