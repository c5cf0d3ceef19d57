//! The secret-leak scan. Every secret the suite configures (webhook secrets, API, bot, GitHub
//! and AWS tokens, passEnv values, Discord webhook tokens) carries the canary [`MARK`], and
//! nothing else in the suite does. Everything Gantry puts out is scanned for it as the suite
//! runs: API and webhook answers, every request captured by the Discord/GitHub fake (bodies and
//! queries; the Authorization header and a webhook URL's path are where secrets belong), the
//! in-process daemons' logs, the real binary's log files, and the SQLite files of every data
//! dir. A hit is recorded with where it was found, and the test that owns it fails
//! ([`assert_none`] runs when a daemon is finished or stopped, and when fake traffic is read).

use std::path::Path;
use std::sync::{Mutex, Once};

/// In every secret value of the suite, and in nothing else it sends.
pub const MARK: &str = "c4n4ry";

/// A secret-shaped canary value: `MARK` with a suffix.
pub fn canary(name: &str) -> String {
    format!("{MARK}-{name}")
}

#[derive(Default)]
pub struct Scanner {
    hits: Mutex<Vec<String>>,
}

static GLOBAL: Scanner = Scanner {
    hits: Mutex::new(Vec::new()),
};

impl Scanner {
    pub fn scan(&self, source: &str, text: &str) {
        if let Some(at) = text.find(MARK) {
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(60)
                .map_or(0, |(i, _)| i);
            let end = (at + 80).min(text.len());
            let end = (end..=text.len())
                .find(|i| text.is_char_boundary(*i))
                .unwrap_or(text.len());
            self.hits
                .lock()
                .unwrap()
                .push(format!("{source}: …{}…", &text[start..end]));
        }
    }

    pub fn scan_bytes(&self, source: &str, bytes: &[u8]) {
        self.scan(source, &String::from_utf8_lossy(bytes));
    }

    /// The store's files (SQLite and its WAL) and logs under `dir`; checkouts, mirrors and
    /// build outputs are the repositories' own content, not Gantry's.
    pub fn scan_dir(&self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if !matches!(name.as_str(), "work" | "mirrors" | "cache") {
                    self.scan_dir(&path);
                }
            } else if name.contains(".db") || name.ends_with(".log") || name.ends_with(".sqlite") {
                if let Ok(bytes) = std::fs::read(&path) {
                    self.scan_bytes(&path.display().to_string(), &bytes);
                }
            }
        }
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.hits.lock().unwrap())
    }
}

pub fn scan(source: &str, text: &str) {
    GLOBAL.scan(source, text);
}

pub fn scan_bytes(source: &str, bytes: &[u8]) {
    GLOBAL.scan_bytes(source, bytes);
}

pub fn scan_dir(dir: &Path) {
    GLOBAL.scan_dir(dir);
}

/// Fails with every leak found so far (and clears them, so one leak fails one test).
pub fn assert_none() {
    let hits = GLOBAL.take();
    assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n"));
}

struct LogScan;

impl std::io::Write for LogScan {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        scan_bytes("a daemon's log", buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends the in-process daemons' logs (debug and up) through the scan, once per process.
pub fn scan_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,gantry=debug"))
            .with_writer(|| LogScan)
            .try_init();
    });
}

#[test]
fn the_scan_finds_a_canary_in_text_files_and_a_sqlite_store() {
    let s = Scanner::default();
    s.scan("an answer", "{\"reason\": \"[redacted]\"}");
    assert!(s.take().is_empty());
    s.scan(
        "an answer",
        &format!("{{\"reason\": \"token {}\"}}", canary("x")),
    );
    let hits = s.take();
    assert_eq!(hits.len(), 1);
    assert!(
        hits[0].starts_with("an answer: …{\"reason\": \"token c4n4ry-x"),
        "{hits:?}"
    );
    // In a real SQLite file, below a data dir, but not in a checkout.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/work/1")).unwrap();
    std::fs::write(dir.path().join("data/work/1/app.py"), canary("in-a-repo")).unwrap();
    let db = rusqlite::Connection::open(dir.path().join("data/gantry.db")).unwrap();
    db.execute_batch(&format!(
        "CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('{}');",
        canary("stored")
    ))
    .unwrap();
    drop(db);
    s.scan_dir(dir.path());
    let hits = s.take();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].contains("gantry.db") && hits[0].contains("c4n4ry-stored"));
}
