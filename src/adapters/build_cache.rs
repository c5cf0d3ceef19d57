//! [`BuildCache`] on a local directory (`<data dir>/cache`, hidden from builds like the rest
//! of the data dir): `<app>/<cache>/<key>/data` and its `entry.json`.
//!
//! Entries are never changed in place. A restore copies the entry into the workspace (from
//! a hard-linked snapshot taken under the lock), so a build that then fails leaves the entry
//! as it was. A save copies the directory the build left (hard links where the filesystem
//! allows: the workspace is removed after the deployment; copies lose set-id bits; symlinks
//! are stored as symlinks and never followed; sockets, FIFOs and devices are left out) into
//! `.tmp`, then renames it into place and evicts (`plan::cache::evictions`) under one lock. Nothing in the
//! workspace is followed through a symlink: every directory on the way to a cache must be a
//! real one, so a repository that commits `.next -> /etc` gets no cache put there or read
//! from there.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::plan::cache::{self, Choice, Entry};
use crate::ports::{BuildCache, CacheDir, CacheError, CacheSlot, Restored, Saved};

/// The most files one saved cache holds (a large `node_modules` has ~100k).
pub const MAX_FILES: u64 = 1_000_000;

#[derive(Clone)]
pub struct DirCache {
    root: PathBuf,
    limit: u64,
    lock: Arc<Mutex<()>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct EntryFile {
    bytes: u64,
    files: u64,
    saved_at: i64,
}

impl DirCache {
    /// A store at `root` holding at most `limit` bytes. What an interrupted save left in
    /// `.tmp` is removed.
    pub fn open(root: PathBuf, limit: u64) -> Result<Self, CacheError> {
        let tmp = root.join(".tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .map_err(|e| CacheError::io(format!("cannot clear {}", tmp.display()), e))?;
        }
        std::fs::create_dir_all(&tmp)
            .map_err(|e| CacheError::io(format!("cannot create {}", tmp.display()), e))?;
        Ok(Self {
            root,
            limit,
            lock: Arc::new(Mutex::new(())),
        })
    }

    fn entry_dir(&self, app: &str, name: &str, key: &str) -> PathBuf {
        self.root.join(app).join(name).join(key)
    }

    /// The slot's parts name directories of the store: plain labels only, whatever the
    /// manifest's validation already checked (`..` or `/` would leave the store).
    fn check(slot: &CacheSlot) -> Result<(), CacheError> {
        let plain = |s: &str| {
            (1..=128).contains(&s.len())
                && !s.starts_with(['.', '-'])
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if [&slot.app, &slot.name, &slot.key].iter().all(|s| plain(s)) {
            Ok(())
        } else {
            Err(CacheError::Unsafe(format!(
                "cache `{}` of app `{}` is not a plain name",
                slot.name, slot.app
            )))
        }
    }

    /// Every complete entry; a key directory without a readable `entry.json` (a save cut
    /// off between its two renames) is removed. Called under the lock.
    fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        for app in dirs(&self.root).filter(|a| a != ".tmp") {
            for name in dirs(&self.root.join(&app)) {
                for key in dirs(&self.root.join(&app).join(&name)) {
                    let dir = self.entry_dir(&app, &name, &key);
                    let meta = crate::images::context::read_bounded(&dir.join("entry.json"), 4096)
                        .ok()
                        .and_then(|t| serde_json::from_str::<EntryFile>(&t).ok());
                    match meta {
                        Some(m) if dir.join("data").is_dir() => out.push(Entry {
                            app: app.clone(),
                            name: name.clone(),
                            key,
                            bytes: m.bytes,
                            saved_at: m.saved_at,
                        }),
                        _ => {
                            let _ = std::fs::remove_dir_all(&dir);
                        }
                    }
                }
            }
        }
        out
    }

    fn restore_blocking(&self, slot: &CacheSlot, dir: &CacheDir) -> Result<Restored, CacheError> {
        Self::check(slot)?;
        let dest = real_dirs_to(dir, true)?.expect("created");
        match std::fs::symlink_metadata(&dest) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Ok(m) if m.is_dir() && is_empty_dir(&dest) => {
                std::fs::remove_dir(&dest).map_err(|e| {
                    CacheError::io(format!("cannot replace {}", dir.rel.display()), e)
                })?;
            }
            _ => {
                return Err(CacheError::Unsafe(format!(
                    "`{}` is already in the checkout; the cache is not put over it",
                    dir.rel.display()
                )))
            }
        }
        // Under the lock, a hard-linked snapshot of the entry (entries are never changed in
        // place, so this is its content); then a real copy of it into the workspace, so
        // nothing the build writes reaches the store until its save.
        let snap = self.tmp_dir();
        let restored = {
            let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
            let entries = self.entries();
            let (i, exact) = match cache::choose(&entries, &slot.app, &slot.name, &slot.key) {
                Choice::Exact(i) => (i, true),
                Choice::Older(i) => (i, false),
                Choice::Miss => return Ok(Restored::Miss),
            };
            let e = &entries[i];
            let entry = self.entry_dir(&e.app, &e.name, &e.key);
            let what = format!("the cache entry for {}", dir.rel.display());
            let mut n = Copied::default();
            if let Err(err) = copy_tree(&entry.join("data"), &snap, u64::MAX, &what, &mut n, true) {
                let _ = std::fs::remove_dir_all(&snap);
                return Err(err);
            }
            if exact {
                Restored::Exact { bytes: e.bytes }
            } else {
                Restored::Older {
                    bytes: e.bytes,
                    saved_at: e.saved_at,
                }
            }
        };
        let what = dir.rel.display().to_string();
        let copied = copy_tree(&snap, &dest, u64::MAX, &what, &mut Copied::default(), false);
        let _ = std::fs::remove_dir_all(&snap);
        if let Err(e) = copied {
            let _ = std::fs::remove_dir_all(&dest);
            return Err(e);
        }
        Ok(restored)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root
            .join(".tmp")
            .join(format!("{:016x}", fastrand::u64(..)))
    }

    fn save_blocking(&self, slot: &CacheSlot, dir: &CacheDir) -> Result<Option<Saved>, CacheError> {
        Self::check(slot)?;
        let Some(src) = real_dirs_to(dir, false)? else {
            return Ok(None);
        };
        match std::fs::symlink_metadata(&src) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CacheError::io(
                    format!("cannot read {}", dir.rel.display()),
                    e,
                ))
            }
            Ok(m) if !m.is_dir() => {
                return Err(CacheError::Unsafe(format!(
                    "`{}` is not a directory (a symlink or a file); not saved",
                    dir.rel.display()
                )))
            }
            Ok(_) => {}
        }
        let tmp = self.tmp_dir();
        let mut copied = Copied::default();
        let what = dir.rel.display().to_string();
        if let Err(e) = copy_tree(&src, &tmp, self.limit, &what, &mut copied, true) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.entry_dir(&slot.app, &slot.name, &slot.key);
        // Strictly the newest entry, even when the clock has not moved since the last save
        // (millisecond resolution): eviction must never pick the entry just saved.
        let newest = self.entries().iter().map(|e| e.saved_at).max();
        let saved_at = chrono::Utc::now()
            .timestamp_millis()
            .max(newest.map_or(i64::MIN, |n| n.saturating_add(1)));
        let put = (|| {
            if entry.exists() {
                std::fs::remove_dir_all(&entry)?;
            }
            std::fs::create_dir_all(&entry)?;
            std::fs::rename(&tmp, entry.join("data"))?;
            let meta = EntryFile {
                bytes: copied.bytes,
                files: copied.files,
                saved_at,
            };
            std::fs::write(
                entry.join("entry.json"),
                serde_json::to_vec(&meta).expect("plain struct"),
            )
        })();
        if let Err(e) = put {
            let _ = std::fs::remove_dir_all(&tmp);
            let _ = std::fs::remove_dir_all(&entry);
            return Err(CacheError::io(format!("cannot store {what}"), e));
        }
        let entries = self.entries();
        let mut saved = Saved {
            bytes: copied.bytes,
            files: copied.files,
            ..Saved::default()
        };
        for i in cache::evictions(&entries, self.limit) {
            let e = &entries[i];
            if std::fs::remove_dir_all(self.entry_dir(&e.app, &e.name, &e.key)).is_ok() {
                saved.evicted += 1;
                saved.evicted_bytes += e.bytes;
            }
        }
        Ok(Some(saved))
    }
}

#[async_trait]
impl BuildCache for DirCache {
    async fn restore(&self, slot: &CacheSlot, dir: &CacheDir) -> Result<Restored, CacheError> {
        let (this, slot, dir) = (self.clone(), slot.clone(), dir.clone());
        tokio::task::spawn_blocking(move || this.restore_blocking(&slot, &dir))
            .await
            .map_err(|e| CacheError::io("cache restore", std::io::Error::other(e)))?
    }

    async fn save(&self, slot: &CacheSlot, dir: &CacheDir) -> Result<Option<Saved>, CacheError> {
        let (this, slot, dir) = (self.clone(), slot.clone(), dir.clone());
        tokio::task::spawn_blocking(move || this.save_blocking(&slot, &dir))
            .await
            .map_err(|e| CacheError::io("cache save", std::io::Error::other(e)))?
    }
}

/// The names of the real directories in `dir` (none when it cannot be read).
fn dirs(dir: &Path) -> impl Iterator<Item = String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
}

fn is_empty_dir(p: &Path) -> bool {
    std::fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}

/// `dir.root/dir.rel`, after checking that every directory above the last component is a
/// real directory (not a symlink). `create`: make the missing ones; else `None` when one is
/// missing.
fn real_dirs_to(dir: &CacheDir, create: bool) -> Result<Option<PathBuf>, CacheError> {
    let mut at = dir.root.clone();
    let mut shown = PathBuf::new();
    let parts: Vec<_> = dir.rel.components().collect();
    let Some((last, above)) = parts.split_last() else {
        return Err(CacheError::Unsafe("a cache needs a directory".into()));
    };
    for part in above {
        let std::path::Component::Normal(part) = part else {
            return Err(CacheError::Unsafe(format!(
                "`{}` is not a plain relative path",
                dir.rel.display()
            )));
        };
        at.push(part);
        shown.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(CacheError::Unsafe(format!(
                    "`{}` is a symlink or a file, not a directory; the cache is left out",
                    shown.display()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&at)
                    .map_err(|e| CacheError::io(format!("cannot create {}", shown.display()), e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(CacheError::io(
                    format!("cannot read {}", shown.display()),
                    e,
                ))
            }
        }
    }
    let std::path::Component::Normal(last) = last else {
        return Err(CacheError::Unsafe(format!(
            "`{}` is not a plain relative path",
            dir.rel.display()
        )));
    };
    Ok(Some(at.join(last)))
}

#[derive(Default)]
struct Copied {
    bytes: u64,
    files: u64,
}

/// Copies the tree at `src` to `dest` (which does not exist) without following symlinks,
/// stopping at `limit` bytes or [`MAX_FILES`] files. `link`: hard links where the
/// filesystem allows.
fn copy_tree(
    src: &Path,
    dest: &Path,
    limit: u64,
    what: &str,
    n: &mut Copied,
    link: bool,
) -> Result<(), CacheError> {
    use std::os::unix::fs::PermissionsExt as _;
    let io = |p: &Path, e| CacheError::io(format!("cannot save {}", p.display()), e);
    std::fs::create_dir(dest).map_err(|e| io(dest, e))?;
    let mut stack = vec![(src.to_path_buf(), dest.to_path_buf())];
    while let Some((from, to)) = stack.pop() {
        for e in std::fs::read_dir(&from).map_err(|e| io(&from, e))? {
            let e = e.map_err(|e| io(&from, e))?;
            let (f, t) = (e.path(), to.join(e.file_name()));
            let meta = std::fs::symlink_metadata(&f).map_err(|e| io(&f, e))?;
            n.files += 1;
            if n.files > MAX_FILES {
                return Err(CacheError::TooManyFiles {
                    what: what.into(),
                    limit: MAX_FILES,
                });
            }
            let kind = meta.file_type();
            if kind.is_dir() {
                std::fs::create_dir(&t).map_err(|e| io(&t, e))?;
                stack.push((f, t));
            } else if kind.is_symlink() {
                let target = std::fs::read_link(&f).map_err(|e| io(&f, e))?;
                std::os::unix::fs::symlink(target, &t).map_err(|e| io(&t, e))?;
            } else if kind.is_file() {
                n.bytes += meta.len();
                if n.bytes > limit {
                    return Err(CacheError::TooLarge {
                        what: what.into(),
                        limit,
                    });
                }
                if !link || std::fs::hard_link(&f, &t).is_err() {
                    std::fs::copy(&f, &t).map_err(|e| io(&f, e))?;
                    // A copy is the daemon's file: no set-id bits from the build's.
                    let mode = meta.permissions().mode() & 0o777;
                    std::fs::set_permissions(&t, std::fs::Permissions::from_mode(mode))
                        .map_err(|e| io(&t, e))?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(key: &str) -> CacheSlot {
        CacheSlot {
            app: "web".into(),
            name: "npm".into(),
            key: key.into(),
        }
    }

    #[test]
    fn save_then_restore_moves_the_tree_and_leaves_symlinks_unfollowed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirCache::open(tmp.path().join("cache"), 1 << 20).unwrap();
        let ws = tmp.path().join("ws1");
        std::fs::create_dir_all(ws.join("home/.npm/sub")).unwrap();
        std::fs::write(ws.join("home/.npm/sub/a"), "aaaa").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", ws.join("home/.npm/link")).unwrap();
        let dir = CacheDir::new(&ws, "home/.npm");
        let saved = store.save_blocking(&slot("k1"), &dir).unwrap().unwrap();
        assert_eq!((saved.bytes, saved.files), (4, 3));

        let ws2 = tmp.path().join("ws2");
        std::fs::create_dir_all(&ws2).unwrap();
        let dir2 = CacheDir::new(&ws2, "home/.npm");
        assert_eq!(
            store.restore_blocking(&slot("k1"), &dir2).unwrap(),
            Restored::Exact { bytes: 4 }
        );
        assert_eq!(
            std::fs::read_to_string(ws2.join("home/.npm/sub/a")).unwrap(),
            "aaaa"
        );
        assert_eq!(
            std::fs::read_link(ws2.join("home/.npm/link")).unwrap(),
            Path::new("/etc/passwd")
        );
        // A copy: what the build writes does not reach the store.
        std::fs::write(ws2.join("home/.npm/sub/a"), "changed").unwrap();
        let ws3 = tmp.path().join("ws3");
        std::fs::create_dir_all(&ws3).unwrap();
        assert!(matches!(
            store
                .restore_blocking(&slot("k2"), &CacheDir::new(&ws3, "home/.npm"))
                .unwrap(),
            Restored::Older { bytes: 4, .. }
        ));
        assert_eq!(
            std::fs::read_to_string(ws3.join("home/.npm/sub/a")).unwrap(),
            "aaaa"
        );
    }

    #[test]
    fn a_symlink_on_the_way_is_refused_both_ways() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirCache::open(tmp.path().join("cache"), 1 << 20).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("cache")).unwrap();
        std::fs::write(outside.join("cache/secret"), "s").unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::os::unix::fs::symlink(&outside, ws.join(".next")).unwrap();
        let dir = CacheDir::new(&ws, ".next/cache");
        assert!(matches!(
            store.save_blocking(&slot("k"), &dir),
            Err(CacheError::Unsafe(_))
        ));
        assert!(matches!(
            store.restore_blocking(&slot("k"), &dir),
            Err(CacheError::Unsafe(_))
        ));
        // The cache itself a symlink: not saved either.
        std::fs::create_dir_all(ws.join("real")).unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("real/cache")).unwrap();
        assert!(matches!(
            store.save_blocking(&slot("k"), &CacheDir::new(&ws, "real/cache")),
            Err(CacheError::Unsafe(_))
        ));
        assert!(store.entries().is_empty());
        // A slot naming its way out of the store is refused before any path is made.
        let out = CacheSlot {
            app: "..".into(),
            name: "npm".into(),
            key: "k".into(),
        };
        assert!(matches!(
            store.save_blocking(&out, &CacheDir::new(&ws, "real")),
            Err(CacheError::Unsafe(_))
        ));
    }

    #[test]
    fn bounded_in_size_with_eviction() {
        let tmp = tempfile::tempdir().unwrap();
        let store = DirCache::open(tmp.path().join("cache"), 10).unwrap();
        let ws = tmp.path().join("ws");
        std::fs::create_dir_all(ws.join("c")).unwrap();
        std::fs::write(ws.join("c/f"), "123456").unwrap();
        let dir = CacheDir::new(&ws, "c");
        store.save_blocking(&slot("k1"), &dir).unwrap().unwrap();
        // A second 6-byte entry does not fit beside the first: the older goes.
        let saved = store.save_blocking(&slot("k2"), &dir).unwrap().unwrap();
        assert_eq!((saved.evicted, saved.evicted_bytes), (1, 6));
        let keys: Vec<_> = store.entries().into_iter().map(|e| e.key).collect();
        assert_eq!(keys, vec!["k2".to_owned()]);
        // Larger than the whole store: refused, nothing left behind in .tmp.
        std::fs::write(ws.join("c/g"), "123456").unwrap();
        assert!(matches!(
            store.save_blocking(&slot("k3"), &dir),
            Err(CacheError::TooLarge { .. })
        ));
        assert!(is_empty_dir(&tmp.path().join("cache/.tmp")));
    }
}
