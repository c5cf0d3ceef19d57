//! A step's log: bounded (the tail is kept), scrubbed of secrets, shared between the step and
//! the flusher that persists it while the step runs.

use std::sync::{Arc, Mutex};

use crate::secret::Redactor;

#[derive(Clone)]
pub struct StepLog {
    inner: Arc<Mutex<Inner>>,
    redactor: Redactor,
    /// Also print each (scrubbed) line to stderr: for standalone commands.
    echo: bool,
}

struct Inner {
    text: String,
    limit: usize,
    dropped: usize,
    version: u64,
}

impl StepLog {
    pub fn new(limit: usize, redactor: Redactor) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                text: String::new(),
                limit: limit.max(256),
                dropped: 0,
                version: 0,
            })),
            redactor,
            echo: false,
        }
    }

    /// This log, also printing every line to stderr as it is added.
    pub fn echoing_to_stderr(mut self) -> Self {
        self.echo = true;
        self
    }

    /// A log sharing this one's buffer that also scrubs `extra` values.
    pub fn scrubbing(&self, extra: Vec<String>) -> Self {
        Self {
            inner: self.inner.clone(),
            redactor: self.redactor.with(extra),
            echo: self.echo,
        }
    }

    /// Appends one line (a trailing newline is added).
    pub fn line(&self, line: impl AsRef<str>) {
        let clean = self.redactor.redact(line.as_ref());
        if self.echo {
            eprintln!("{clean}");
        }
        let mut g = self.inner.lock().expect("step log poisoned");
        g.text.push_str(&clean);
        g.text.push('\n');
        g.version += 1;
        if g.text.len() > g.limit {
            let mut cut = g.text.len() - g.limit;
            while !g.text.is_char_boundary(cut) {
                cut += 1;
            }
            // Drop whole lines where possible.
            if let Some(nl) = g.text[cut..].find('\n') {
                cut += nl + 1;
            }
            g.dropped += cut;
            g.text.drain(..cut);
        }
    }

    /// The log as stored: a truncation notice, then the kept tail.
    pub fn snapshot(&self) -> String {
        let g = self.inner.lock().expect("step log poisoned");
        if g.dropped > 0 {
            format!("[... {} earlier bytes dropped ...]\n{}", g.dropped, g.text)
        } else {
            g.text.clone()
        }
    }

    /// Changes whenever a line is added.
    pub fn version(&self) -> u64 {
        self.inner.lock().expect("step log poisoned").version
    }

    /// The last `n` lines, for failure reports.
    pub fn tail(&self, n: usize) -> String {
        let g = self.inner.lock().expect("step log poisoned");
        let lines: Vec<&str> = g.text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail_and_scrubs_secrets() {
        let log = StepLog::new(256, Redactor::default()).scrubbing(vec!["s3cr3t-value".into()]);
        for i in 0..100 {
            log.line(format!("line {i} s3cr3t-value"));
        }
        let s = log.snapshot();
        assert!(s.starts_with("[... "), "{s}");
        assert!(s.contains("line 99 [redacted]"));
        assert!(!s.contains("s3cr3t"));
        assert_eq!(log.tail(1), "line 99 [redacted]");
    }
}
