//! Durations as people write them (`90s`, `10m`, `1h30m`, `250ms`), parsed once where a
//! manifest or the configuration is loaded, so everything past loading holds a
//! `std::time::Duration`. Parsing is humantime's; a bound keeps every deadline computable
//! (`Instant + Duration` cannot overflow, no timer wraps around).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// What to tell someone whose duration did not parse.
pub const HINT: &str = "use e.g. `90s`, `10m` or `1h30m`";

/// The longest duration Gantry accepts anywhere: 30 days.
pub const MAX: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: {why}")]
pub struct DurationError {
    pub text: String,
    pub why: String,
}

/// Parses a duration of at most [`MAX`].
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let bad = |why: String| DurationError {
        text: text.to_owned(),
        why,
    };
    let d = humantime::parse_duration(text.trim()).map_err(|e| bad(e.to_string()))?;
    if d > MAX {
        return Err(bad("longer than 30 days".into()));
    }
    Ok(d)
}

/// The form [`parse`] reads back (`1h 30m`).
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// `#[serde(with = "crate::domain::duration::option")]` for `Option<Duration>` fields.
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => parse(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_people_write() {
        assert_eq!(parse("90s").unwrap().as_secs(), 90);
        assert_eq!(parse("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse("250ms").unwrap().as_millis(), 250);
        assert_eq!(parse("1m30s").unwrap().as_secs(), 90);
        assert_eq!(parse(" 10m ").unwrap().as_secs(), 600);
        assert!(parse("10").is_err());
        assert!(parse("soon").is_err());
        assert!(parse("").is_err());
    }

    #[test]
    fn huge_values_are_refused_not_wrapped() {
        // The old hand parser multiplied into milliseconds: this validated, then killed a
        // build after 384 ms.
        let e = parse("18446744073709552s").unwrap_err();
        assert!(e.to_string().contains("longer than 30 days"), "{e}");
        assert!(parse("99999999999999999999999s").is_err());
        assert!(parse("31d").is_err());
        assert_eq!(parse("30d").unwrap(), MAX);
    }

    #[test]
    fn formatting_reads_back() {
        for d in [Duration::from_millis(250), Duration::from_secs(5400), MAX] {
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }
}
