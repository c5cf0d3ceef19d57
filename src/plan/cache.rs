//! Build caches, decided without IO: where a declared cache lives, its key, which stored
//! entry a build starts from, and which entries go when the store is over its bound.
//!
//! An entry is one saved directory of one app's cache under one key. A build takes the entry
//! with its exact key, or else the newest entry of that cache (what a lock-file change still
//! leaves useful: npm's tarballs, most of `.next/cache`), and saves under its own key when
//! its commands succeed. The store keeps a few entries per cache and evicts the least
//! recently saved across all apps down to its size bound, as CodeBuild's local cache and
//! GitHub's cache action do.

use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// The most caches one app declares.
pub const MAX_CACHES: usize = 8;
/// The most key files one cache names.
pub const MAX_KEY_FILES: usize = 16;
/// Entries kept per cache (its newest), whatever the size bound leaves.
pub const KEEP_PER_CACHE: usize = 2;

/// Where a cache's directory is during a build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Under the build's `HOME` (`~/.npm`).
    Home(PathBuf),
    /// Under the build's working directory (`.next/cache`, `node_modules`).
    Workdir(PathBuf),
}

impl Place {
    /// Whether one of the two directories contains the other (or they are the same).
    pub fn overlaps(&self, other: &Place) -> bool {
        match (self, other) {
            (Place::Home(a), Place::Home(b)) | (Place::Workdir(a), Place::Workdir(b)) => {
                a.starts_with(b) || b.starts_with(a)
            }
            _ => false,
        }
    }
}

/// Parses a manifest's `path`: `~/rest` under the home, anything else under the working
/// directory; plain relative components only (no `..`, no root, not the directory itself).
pub fn place(path: &str) -> Result<Place, String> {
    if path.len() > 512 || path.chars().any(char::is_control) {
        return Err("a cache path is at most 512 characters, with no control characters".into());
    }
    let (home, rest) = match path.strip_prefix("~/") {
        Some(rest) => (true, rest),
        None if path == "~" => return Err("`~` is the whole home: name a directory in it".into()),
        None if path.starts_with('~') => {
            return Err("only `~/` (the build's home) is understood, not `~user`".into())
        }
        None => (false, path),
    };
    let mut clean = PathBuf::new();
    for c in Path::new(rest).components() {
        match c {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` leaves the build's directories".into()),
            Component::RootDir | Component::Prefix(_) => {
                return Err("an absolute path is outside the build's directories".into())
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err("the path names the whole directory: name a directory inside it".into());
    }
    Ok(if home {
        Place::Home(clean)
    } else {
        Place::Workdir(clean)
    })
}

/// The key of a cache: its name and path, and each key file's path with the SHA-256 of its
/// contents (`None`: the file does not exist), in the order declared. Hex, 64 characters.
pub fn key(name: &str, path: &str, files: &[(String, Option<String>)]) -> String {
    let mut h = Sha256::new();
    for part in [name, path] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    for (file, digest) in files {
        h.update((file.len() as u64).to_be_bytes());
        h.update(file.as_bytes());
        match digest {
            Some(d) => {
                h.update([1]);
                h.update(d.as_bytes());
            }
            None => h.update([0]),
        }
    }
    hex::encode(h.finalize())
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub app: String,
    pub name: String,
    pub key: String,
    pub bytes: u64,
    /// When it was saved (Unix milliseconds): its last use, since a build saves what it used.
    pub saved_at: i64,
}

/// What a build starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// The entry (an index into the entries given) with the build's own key.
    Exact(usize),
    /// The newest entry of the cache, under another key.
    Older(usize),
    /// Nothing stored for this cache.
    Miss,
}

pub fn choose(entries: &[Entry], app: &str, name: &str, key: &str) -> Choice {
    let mine = || {
        entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.app == app && e.name == name)
    };
    if let Some((i, _)) = mine()
        .filter(|(_, e)| e.key == key)
        .max_by_key(|(_, e)| e.saved_at)
    {
        return Choice::Exact(i);
    }
    match mine()
        .max_by(|(_, a), (_, b)| a.saved_at.cmp(&b.saved_at).then_with(|| b.key.cmp(&a.key)))
    {
        Some((i, _)) => Choice::Older(i),
        None => Choice::Miss,
    }
}

/// How a cache's restore before a build went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreState {
    /// The entry saved under this key.
    Hit,
    /// The newest entry, saved under an older key.
    Older,
    Miss,
}

impl RestoreState {
    /// As the build step's summary says it (`npm restored`).
    pub fn summary(self) -> &'static str {
        match self {
            Self::Hit => "restored",
            Self::Older => "restored from an older key",
            Self::Miss => "miss",
        }
    }

    /// The value of the cache's [`hit_variable`].
    pub fn variable_value(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Older => "older",
            Self::Miss => "miss",
        }
    }
}

/// The variable a build's commands read to learn how a cache's restore went
/// ([`RestoreState::variable_value`]): `node-modules` -> `GANTRY_CACHE_NODE_MODULES`.
pub fn hit_variable(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' | '0'..='9' => c,
            _ => '_',
        })
        .collect();
    format!("GANTRY_CACHE_{upper}")
}

/// The entries to delete (indices into `entries`): per cache all but its newest
/// [`KEEP_PER_CACHE`], then the least recently saved until the rest fit in `limit` bytes.
pub fn evictions(entries: &[Entry], limit: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    // Newest first; ties broken by key so the plan is the same every time.
    order.sort_by(|&a, &b| {
        let (a, b) = (&entries[a], &entries[b]);
        b.saved_at.cmp(&a.saved_at).then_with(|| a.key.cmp(&b.key))
    });
    let mut seen: std::collections::HashMap<(&str, &str), usize> = Default::default();
    let mut out = Vec::new();
    let mut kept = Vec::new();
    for i in order {
        let e = &entries[i];
        let n = seen.entry((e.app.as_str(), e.name.as_str())).or_default();
        *n += 1;
        if *n > KEEP_PER_CACHE {
            out.push(i);
        } else {
            kept.push(i);
        }
    }
    let mut total: u64 = kept.iter().map(|&i| entries[i].bytes).sum();
    // `kept` is newest first: evict from its end.
    while total > limit {
        let Some(i) = kept.pop() else { break };
        total -= entries[i].bytes;
        out.push(i);
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_variables_are_shell_names() {
        assert_eq!(hit_variable("node-modules"), "GANTRY_CACHE_NODE_MODULES");
        assert_eq!(hit_variable("npm"), "GANTRY_CACHE_NPM");
        assert_eq!(hit_variable("next-cache"), "GANTRY_CACHE_NEXT_CACHE");
    }

    fn entry(app: &str, name: &str, key: &str, bytes: u64, saved_at: i64) -> Entry {
        Entry {
            app: app.into(),
            name: name.into(),
            key: key.into(),
            bytes,
            saved_at,
        }
    }

    #[test]
    fn places() {
        assert_eq!(place("~/.npm"), Ok(Place::Home(".npm".into())));
        assert_eq!(
            place("./.next/cache"),
            Ok(Place::Workdir(".next/cache".into()))
        );
        for bad in [
            "~",
            "~root/x",
            "/var/cache",
            "a/../..",
            ".",
            "~/.",
            "",
            "a\0b",
        ] {
            assert!(place(bad).is_err(), "{bad:?} accepted");
        }
        let next = place(".next/cache").unwrap();
        assert!(next.overlaps(&place(".next").unwrap()));
        assert!(!next.overlaps(&place(".next-other").unwrap()));
        assert!(!next.overlaps(&place("~/.next/cache").unwrap()));
    }

    #[test]
    fn keys_follow_contents_not_only_names() {
        let lock = |d: Option<&str>| vec![("package-lock.json".to_owned(), d.map(str::to_owned))];
        let a = key("npm", "~/.npm", &lock(Some("aa")));
        assert_eq!(a.len(), 64);
        assert_eq!(a, key("npm", "~/.npm", &lock(Some("aa"))));
        assert_ne!(a, key("npm", "~/.npm", &lock(Some("ab"))));
        assert_ne!(a, key("npm", "~/.npm", &lock(None)));
        assert_ne!(a, key("pip", "~/.npm", &lock(Some("aa"))));
        // Lengths are framed: moving a character between fields changes the key.
        assert_ne!(key("ab", "c", &[]), key("a", "bc", &[]));
    }

    #[test]
    fn a_build_takes_its_key_else_the_newest_of_its_cache() {
        let e = vec![
            entry("web", "npm", "k1", 10, 100),
            entry("web", "npm", "k2", 10, 200),
            entry("web", "next", "k3", 10, 300),
            entry("api", "npm", "k9", 10, 400),
        ];
        assert_eq!(choose(&e, "web", "npm", "k1"), Choice::Exact(0));
        assert_eq!(choose(&e, "web", "npm", "new"), Choice::Older(1));
        assert_eq!(choose(&e, "web", "pip", "k1"), Choice::Miss);
        // Another app's entry is never used, even with the same name and key.
        assert_eq!(choose(&e, "site", "npm", "k9"), Choice::Miss);
    }

    #[test]
    fn evicts_old_keys_then_least_recently_saved() {
        let e = vec![
            entry("web", "npm", "k1", 100, 100),
            entry("web", "npm", "k2", 100, 200),
            entry("web", "npm", "k3", 100, 300),
            entry("api", "pip", "p1", 100, 150),
            entry("api", "pip", "p2", 100, 250),
        ];
        // Within the bound: only the third entry of web/npm goes.
        assert_eq!(evictions(&e, 1_000), vec![0]);
        // 250 bytes allowed: keep the two newest overall (k3 and p2).
        assert_eq!(evictions(&e, 250), vec![0, 1, 3]);
        // Nothing fits: everything goes.
        assert_eq!(evictions(&e, 0), vec![0, 1, 2, 3, 4]);
        assert!(evictions(&[], 0).is_empty());
    }
}
