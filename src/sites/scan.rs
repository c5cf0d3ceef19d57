//! Reads a build output directory: every regular file (hidden directories such as
//! `.well-known` included) with its sha256, MD5, size and computed headers. Symlinks are
//! refused: following them could publish files from outside the build.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::domain::LocalFile;
use crate::plan::headers::HeaderRules;

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path} is a symlink; Gantry uploads regular files only (copy the target into the build instead)")]
    Symlink { path: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a directory")]
    NotADirectory { path: String },
    #[error("{path}: file names must be valid UTF-8 to become object keys")]
    NotUtf8 { path: String },
}

/// A scanned file and where it is on disk.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub file: LocalFile,
    pub path: PathBuf,
}

pub fn scan(root: &Path, rules: &HeaderRules) -> Result<Vec<Scanned>, ScanError> {
    let meta = std::fs::symlink_metadata(root).map_err(|source| ScanError::Io {
        path: root.display().to_string(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ScanError::NotADirectory {
            path: root.display().to_string(),
        });
    }
    let mut out = Vec::new();
    walk(root, root, rules, &mut out)?;
    out.sort_by(|a, b| a.file.key.cmp(&b.file.key));
    Ok(out)
}

fn walk(
    root: &Path,
    dir: &Path,
    rules: &HeaderRules,
    out: &mut Vec<Scanned>,
) -> Result<(), ScanError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ScanError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let ft = entry.file_type().map_err(io(&path))?;
        if ft.is_symlink() {
            return Err(ScanError::Symlink {
                path: path.display().to_string(),
            });
        }
        if ft.is_dir() {
            walk(root, &path, rules, out)?;
            continue;
        }
        if !ft.is_file() {
            continue;
        }
        let rel = path.strip_prefix(root).expect("walked under root");
        let key = rel
            .components()
            .map(|c| {
                c.as_os_str().to_str().ok_or_else(|| ScanError::NotUtf8 {
                    path: path.display().to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?
            .join("/");
        let (sha256, md5, size) = hash(&path).map_err(io(&path))?;
        let headers = rules.headers(&key);
        out.push(Scanned {
            file: LocalFile {
                key,
                sha256,
                md5,
                size,
                headers,
            },
            path,
        });
    }
    Ok(())
}

fn hash(path: &Path) -> std::io::Result<(String, String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut sha = Sha256::new();
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
        size += n as u64;
    }
    Ok((
        hex::encode(sha.finalize()),
        hex::encode(md5.finalize()),
        size,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_hidden_dirs_and_refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".well-known/x y")).unwrap();
        std::fs::write(dir.path().join(".well-known/x y/ü.txt"), "hi").unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>").unwrap();
        let rules = HeaderRules::new(crate::domain::Preset::Plain, &[], None).unwrap();
        let files = scan(dir.path(), &rules).unwrap();
        let keys: Vec<_> = files.iter().map(|s| s.file.key.as_str()).collect();
        assert_eq!(keys, [".well-known/x y/ü.txt", "index.html"]);
        assert_eq!(files[0].file.md5, "49f68a5c8493ec2c0bf489821c21fc3b");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("leak")).unwrap();
        let err = scan(dir.path(), &rules).unwrap_err().to_string();
        assert!(err.contains("leak is a symlink"), "{err}");
    }
}
