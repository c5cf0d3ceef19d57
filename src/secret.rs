//! Secret values (tokens, webhook secrets) and the redactor that keeps them out of output.
//!
//! A [`Secret`] never prints its value through `Debug`, `Display` or `Serialize`; code that needs
//! the value calls [`Secret::expose`] at the point of use. [`Redactor`] scrubs known secret values
//! from free text (build output, error messages) before it is stored or shown.

use std::fmt;
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

/// A secret string. Its value is only reachable through [`Secret::expose`].
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret's value, for the one call that needs it (a header, an HMAC key).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Replaces every occurrence of known secret values in text with `[redacted]`.
///
/// Values shorter than 4 characters are not scrubbed: they would mangle ordinary text and are
/// not secrets worth the name.
/// The shortest line of a multi-line secret scrubbed on its own.
const MIN_LINE: usize = 8;

/// Clones share what they know: [`Redactor::learn`] (a reloaded manifest's webhook URL) reaches
/// every holder; [`Redactor::with`] makes an independent one (a build's own variables).
#[derive(Clone, Default)]
pub struct Redactor {
    values: Arc<std::sync::RwLock<Arc<Vec<String>>>>,
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        Self::default().with(secrets.into_iter().map(|s| s.expose().to_owned()))
    }

    /// A redactor that also scrubs `extra` (e.g. variables passed to one build).
    pub fn with(&self, extra: impl IntoIterator<Item = String>) -> Self {
        Self {
            values: Arc::new(std::sync::RwLock::new(Arc::new(self.extended(extra)))),
        }
    }

    /// Adds `extra` to what this redactor and every clone of it scrub.
    pub fn learn(&self, extra: impl IntoIterator<Item = String>) {
        let values = self.extended(extra);
        *self.values.write().expect("redactor lock poisoned") = Arc::new(values);
    }

    fn current(&self) -> Arc<Vec<String>> {
        self.values.read().expect("redactor lock poisoned").clone()
    }

    fn extended(&self, extra: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut values: Vec<String> = self.current().as_ref().clone();
        for v in extra {
            // Output is scrubbed line by line as it arrives: a secret of several lines (a
            // PEM key, a JSON credential) is also scrubbed one line at a time.
            if v.contains('\n') {
                values.extend(
                    v.lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= MIN_LINE)
                        .map(str::to_owned),
                );
            }
            values.push(v);
        }
        values.retain(|v| v.len() >= 4);
        // Longest first, so a secret that contains another is scrubbed whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        values
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in self.current().iter() {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "[redacted]");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-token");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
    }

    #[test]
    fn what_a_redactor_learns_reaches_its_clones_but_not_derived_ones() {
        let base = Redactor::new([&Secret::new("first-secret")]);
        let clone = base.clone();
        let derived = base.with(["build-only-value".to_string()]);
        base.learn(["https://discord.com/api/webhooks/1/learned-token".to_string()]);
        let text = "first-secret https://discord.com/api/webhooks/1/learned-token build-only-value";
        assert_eq!(clone.redact(text), "[redacted] [redacted] build-only-value");
        assert_eq!(
            derived.redact(text),
            "[redacted] https://discord.com/api/webhooks/1/learned-token [redacted]"
        );
    }

    #[test]
    fn redactor_scrubs_every_known_value() {
        let a = Secret::new("abcd1234");
        let b = Secret::new("abcd1234-longer");
        let r = Redactor::new([&a, &b]).with(["npm-xyz".to_string()]);
        assert_eq!(
            r.redact("x abcd1234-longer y abcd1234 z npm-xyz"),
            "x [redacted] y [redacted] z [redacted]"
        );
    }

    #[test]
    fn a_secret_of_several_lines_is_scrubbed_line_by_line() {
        let pem = "-----BEGIN KEY-----\nMIIEpAIBAAKCAQEA1abc\nzzYQ9xyz1234\n-----END KEY-----\n";
        let r = Redactor::default().with([pem.to_string()]);
        assert_eq!(r.redact("line: MIIEpAIBAAKCAQEA1abc"), "line: [redacted]");
        assert_eq!(r.redact("zzYQ9xyz1234"), "[redacted]");
        assert!(!r.redact(pem).contains("MIIE"));
    }
}
