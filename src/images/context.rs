//! Reads a build context into a sorted tree: `.git` always left out, then `.dockerignore`
//! (globs relative to the context, `!` re-includes, the last matching line wins) and the
//! image's `exclude` globs. Symlinks are kept as links, never followed.
//! [`read_bounded`] is how Gantry reads any single file it did not write (a Dockerfile, a
//! manifest): regular files only, under a size cap.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::plan::oci::{EntryKind, TreeEntry};

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("build context {path}: {message}")]
    Io { path: String, message: String },
    #[error("{file}: `{pattern}` is not a valid pattern: {message}")]
    Pattern {
        file: String,
        pattern: String,
        message: String,
    },
}

struct Rule {
    matcher: GlobMatcher,
    include: bool,
}

/// The files of `dir` that go into an image, sorted by path.
pub fn read_tree(dir: &Path, exclude: &[String]) -> Result<Vec<TreeEntry>, ContextError> {
    let io = |path: &Path, e: std::io::Error| ContextError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    if !dir.is_dir() {
        return Err(ContextError::Io {
            path: dir.display().to_string(),
            message: "is not a directory".into(),
        });
    }
    let mut rules = Vec::new();
    let ignore_file = dir.join(".dockerignore");
    if let Ok(text) = std::fs::read_to_string(&ignore_file) {
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            rules.push(rule(line, ".dockerignore")?);
        }
    }
    for g in exclude {
        rules.push(rule(g, "exclude")?);
    }
    let excluded = |rel: &str| {
        let mut out = false;
        // A path is excluded when it, or a directory above it, matches (docker's rule).
        let mut prefixes: Vec<&str> = rel.match_indices('/').map(|(i, _)| &rel[..i]).collect();
        prefixes.push(rel);
        for r in &rules {
            if prefixes.iter().any(|p| r.matcher.is_match(p)) {
                out = !r.include;
            }
        }
        out
    };
    let mut entries = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d).map_err(|e| io(&d, e))? {
            let item = item.map_err(|e| io(&d, e))?;
            let path = item.path();
            let rel = path
                .strip_prefix(dir)
                .expect("walked under the context")
                .to_string_lossy()
                .replace('\\', "/");
            if rel == ".git" || rel.starts_with(".git/") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
            let ft = meta.file_type();
            if excluded(&rel) {
                // An excluded directory is still walked when a `!` line may re-include
                // something below it.
                if ft.is_dir() && rules.iter().any(|r| r.include) {
                    stack.push(path.clone());
                }
                continue;
            }
            let kind = if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| io(&path, e))?;
                EntryKind::Symlink {
                    target: target.to_string_lossy().into_owned(),
                }
            } else if ft.is_dir() {
                stack.push(path.clone());
                EntryKind::Dir
            } else if ft.is_file() {
                use std::os::unix::fs::PermissionsExt;
                EntryKind::File {
                    data: std::fs::read(&path).map_err(|e| io(&path, e))?,
                    executable: meta.permissions().mode() & 0o111 != 0,
                }
            } else {
                continue; // sockets, fifos, devices have no place in an image
            };
            entries.push(TreeEntry { path: rel, kind });
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

fn rule(line: &str, file: &str) -> Result<Rule, ContextError> {
    let (include, pattern) = match line.strip_prefix('!') {
        Some(p) => (true, p.trim()),
        None => (false, line),
    };
    let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
    let pattern = pattern.trim_end_matches('/');
    // Docker matches like Go's filepath.Match: `*` stays within one path component, `**`
    // spans directories.
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| ContextError::Pattern {
            file: file.into(),
            pattern: line.into(),
            message: e.to_string(),
        })?;
    Ok(Rule {
        matcher: glob.compile_matcher(),
        include,
    })
}

/// Reads a regular file of at most `cap` bytes. A FIFO, a device (a symlink to `/dev/zero`)
/// or anything larger is refused without reading it, so a crafted path cannot hang or
/// exhaust the daemon.
pub fn read_bounded(path: &Path, cap: u64) -> std::io::Result<String> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    if meta.len() > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} bytes, more than the {cap} allowed", meta.len()),
        ));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(cap + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("grew past the {cap} bytes allowed while being read"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_and_excludes_apply_with_reinclusion() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "main.py",
            "tests/test_x.py",
            "docs/a.md",
            "docs/keep.md",
            ".git/HEAD",
            ".env",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        std::fs::write(
            root.join(".dockerignore"),
            "# comment\ndocs\n!docs/keep.md\n.env\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("main.py", root.join("link.py")).unwrap();
        let tree = read_tree(root, &["tests/**".into()]).unwrap();
        let paths: Vec<&str> = tree.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                ".dockerignore",
                "docs/keep.md",
                "link.py",
                "main.py",
                "tests"
            ]
        );
        assert!(matches!(&tree[2].kind, EntryKind::Symlink { target } if target == "main.py"));
    }

    #[test]
    fn a_star_does_not_cross_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in ["README.md", "docs/guide.md", "src/a.pyc", "src/deep/b.pyc"] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        std::fs::write(root.join(".dockerignore"), "*.md\nsrc/*.pyc\n").unwrap();
        let tree = read_tree(root, &["**/deep/*.pyc".into()]).unwrap();
        let files: Vec<&str> = tree
            .iter()
            .filter(|e| matches!(e.kind, EntryKind::File { .. }))
            .map(|e| e.path.as_str())
            .collect();
        assert_eq!(files, vec![".dockerignore", "docs/guide.md"]);
    }
}
