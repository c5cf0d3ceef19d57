//! Deploy windows: whether a deployment may start at a given time, and when it next may.
//! A window opens at every time its five-field cron schedule names (in its time zone) and
//! stays open for its duration. Deny wins over allow; with allow windows, a deployment starts
//! only inside one. Like Argo CD's sync windows. Times are given, never read from a clock.

use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::domain::{DeployWindows, WindowSpec};

/// How many times `next_open` moves forward (past a deny window, to an allow window's start)
/// before it gives up: windows that never open leave a deployment waiting for an override.
const MAX_STEPS: usize = 256;
/// At most this many allow (and as many deny) windows per environment.
pub const MAX_WINDOWS: usize = 8;
/// A schedule is at most this long.
const MAX_SCHEDULE: usize = 100;
/// At most this many identities may override (or, for approvals, approve).
pub const MAX_IDENTITIES: usize = 32;

/// One parsed window.
#[derive(Debug, Clone)]
pub struct Window {
    cron: Cron,
    duration: Duration,
    tz: Tz,
    /// As written, for reasons people read.
    text: String,
}

/// An environment's parsed windows.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    allow: Vec<Window>,
    deny: Vec<Window>,
}

/// Whether a deployment may start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Not now: why, and when it next may (if within reach).
    Closed {
        reason: String,
        opens: Option<DateTime<Utc>>,
    },
}

fn zone(name: Option<&str>) -> Result<Tz, String> {
    match name {
        None => Ok(Tz::UTC),
        Some(n) => Tz::from_str(n)
            .map_err(|_| format!("`{n}` is not an IANA time zone (e.g. `Europe/Berlin`, `UTC`)")),
    }
}

fn window(w: &WindowSpec, default_tz: Option<&str>) -> Result<Window, (&'static str, String)> {
    let cron = parse_schedule(&w.schedule).map_err(|e| ("schedule", e))?;
    let duration = crate::domain::duration::parse(&w.duration)
        .map_err(|e| ("duration", e.to_string()))
        .and_then(|d| {
            Duration::from_std(d)
                .ok()
                .filter(|d| *d > Duration::zero())
                .ok_or(("duration", "must be longer than zero".to_owned()))
        })?;
    let tz_name = w.time_zone.as_deref().or(default_tz);
    let tz = zone(tz_name).map_err(|e| ("timeZone", e))?;
    Ok(Window {
        cron,
        duration,
        tz,
        text: format!(
            "`{}` for {}{}",
            w.schedule,
            w.duration,
            tz_name.map(|t| format!(" ({t})")).unwrap_or_default()
        ),
    })
}

/// A five-field cron schedule (minute hour day-of-month month day-of-week) that occurs.
pub fn parse_schedule(s: &str) -> Result<Cron, String> {
    if s.len() > MAX_SCHEDULE || s.split_whitespace().count() != 5 {
        return Err(format!(
            "`{}` is not a five-field cron schedule of at most {MAX_SCHEDULE} characters (minute hour day-of-month month day-of-week)",
            s.chars().take(MAX_SCHEDULE).collect::<String>()
        ));
    }
    let cron = Cron::from_str(s).map_err(|e| format!("`{s}`: {e}"))?;
    if !occurs(&cron) {
        return Err(format!(
            "`{s}` names no day that exists (e.g. the 31st of February)"
        ));
    }
    Ok(cron)
}

/// Whether `cron` names at least one day of a 28-year span (every weekday falls on every date
/// of the calendar in it, leap days included). A schedule that never occurs would make the
/// cron library search thousands of years on every look, in the queue's loop.
fn occurs(cron: &Cron) -> bool {
    let p = &cron.pattern;
    let Some(mut day) = chrono::NaiveDate::from_ymd_opt(2001, 1, 1) else {
        return false;
    };
    let Some(end) = chrono::NaiveDate::from_ymd_opt(2029, 1, 1) else {
        return false;
    };
    use chrono::Datelike;
    while day < end {
        let (y, m, d) = (day.year(), day.month(), day.day());
        if p.month_match(m).unwrap_or(false) && p.day_match(y, m, d).unwrap_or(false) {
            return true;
        }
        day = day.succ_opt().unwrap_or(end);
    }
    false
}

/// Parses an environment's windows; every problem with its field path under `spec.windows`.
pub fn parse(spec: &DeployWindows) -> Result<Windows, Vec<(String, String)>> {
    let mut problems = Vec::new();
    if let Err(e) = zone(spec.time_zone.as_deref()) {
        problems.push(("spec.windows.timeZone".to_owned(), e));
    }
    let tz = spec.time_zone.as_deref();
    let mut out = Windows::default();
    for (kind, list, into) in [
        ("allow", &spec.allow, &mut out.allow),
        ("deny", &spec.deny, &mut out.deny),
    ] {
        if list.len() > MAX_WINDOWS {
            problems.push((
                format!("spec.windows.{kind}"),
                format!("at most {MAX_WINDOWS} windows"),
            ));
            continue;
        }
        for (i, w) in list.iter().enumerate() {
            match window(w, tz) {
                Ok(w) => into.push(w),
                Err((field, e)) => problems.push((format!("spec.windows.{kind}[{i}].{field}"), e)),
            }
        }
    }
    if spec.override_by.len() > MAX_IDENTITIES {
        problems.push((
            "spec.windows.overrideBy".to_owned(),
            format!("at most {MAX_IDENTITIES} identities"),
        ));
    }
    for (i, who) in spec.override_by.iter().take(MAX_IDENTITIES).enumerate() {
        if let Err(e) = identity(who) {
            problems.push((format!("spec.windows.overrideBy[{i}]"), e));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Checks an identity a manifest grants something to: `discord:ID`, `discord-role:ID`, or an
/// actor name as the API and CLI record it (`cli:alice`, `api`).
pub fn identity(who: &str) -> Result<(), String> {
    let ok_chars = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@:".contains(c))
    };
    match who.split_once(':') {
        Some(("discord" | "discord-role", id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => Ok(()),
        Some(("discord" | "discord-role", _)) => Err(format!("`{who}`: a Discord id is digits")),
        _ if ok_chars(who) => Ok(()),
        _ => Err(format!(
            "`{who}` is not an identity: `discord:USER_ID`, `discord-role:ROLE_ID` or an actor such as `cli:alice`"
        )),
    }
}

/// Whether a grant list (`overrideBy`, an approval's `from`) names one of the caller's
/// identities.
pub fn granted(list: &[String], who: &[String]) -> bool {
    who.iter().any(|w| list.contains(w))
}

impl Window {
    /// When the opening of this window that covers `t` ends, if one does.
    fn covering_end(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        let start = self.cron.find_previous_occurrence(&local, true).ok()?;
        let end = start.with_timezone(&Utc) + self.duration;
        (end > t).then_some(end)
    }

    /// The next time this window opens after `t`.
    fn next_start(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|s| s.with_timezone(&Utc))
    }
}

impl Windows {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    /// Why a deployment may not start at `t`, or `None` when it may.
    fn blocked(&self, t: DateTime<Utc>) -> Option<String> {
        let denied: Vec<(&Window, DateTime<Utc>)> = self
            .deny
            .iter()
            .filter_map(|w| w.covering_end(t).map(|e| (w, e)))
            .collect();
        if let Some((w, end)) = denied.iter().max_by_key(|(_, e)| *e) {
            return Some(format!(
                "inside deny window {} until {}",
                w.text,
                show(*end)
            ));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|w| w.covering_end(t).is_some()) {
            let texts: Vec<&str> = self.allow.iter().map(|w| w.text.as_str()).collect();
            return Some(format!("outside every allow window ({})", texts.join(", ")));
        }
        None
    }

    /// The first time at or after `t` a deployment may start; `None` when none comes within
    /// [`MAX_STEPS`] moves.
    pub fn next_open(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut at = t;
        for _ in 0..MAX_STEPS {
            let deny_end = self.deny.iter().filter_map(|w| w.covering_end(at)).max();
            if let Some(end) = deny_end {
                at = end;
                continue;
            }
            if self.allow.is_empty() || self.allow.iter().any(|w| w.covering_end(at).is_some()) {
                return Some(at);
            }
            at = self.allow.iter().filter_map(|w| w.next_start(at)).min()?;
        }
        None
    }

    /// Whether a deployment may start at `now`.
    pub fn gate(&self, now: DateTime<Utc>) -> Gate {
        match self.blocked(now) {
            None => Gate::Open,
            Some(why) => {
                let opens = self.next_open(now);
                let reason = match opens {
                    Some(t) => format!("waiting for its deploy window: {why}; opens at {}", show(t)),
                    None => format!("waiting for its deploy window: {why}; no opening ahead, only an override starts it"),
                };
                Gate::Closed { reason, opens }
            }
        }
    }
}

/// Why deployment `d` may not start at `now` (its spec's windows, unless someone overrode
/// them for it), or `None` when it may. Windows that do not parse (validation refuses such a
/// manifest before anything is queued) hold nothing back.
pub fn waits(d: &crate::domain::Deployment, now: DateTime<Utc>) -> Option<String> {
    if d.window_override.is_some() || d.spec.windows.is_unset() {
        return None;
    }
    match parse(&d.spec.windows).ok()?.gate(now) {
        Gate::Open => None,
        Gate::Closed { reason, .. } => Some(reason),
    }
}

fn show(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn spec(allow: &[(&str, &str)], deny: &[(&str, &str)], tz: Option<&str>) -> DeployWindows {
        let w = |(s, d): &(&str, &str)| WindowSpec {
            schedule: s.to_string(),
            duration: d.to_string(),
            time_zone: None,
        };
        DeployWindows {
            time_zone: tz.map(str::to_owned),
            allow: allow.iter().map(w).collect(),
            deny: deny.iter().map(w).collect(),
            override_by: vec![],
        }
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn no_windows_always_open() {
        let w = parse(&DeployWindows::default()).unwrap();
        assert_eq!(w.gate(at(2026, 12, 7, 3, 0)), Gate::Open);
    }

    #[test]
    fn deny_wins_over_allow_and_the_gate_says_when_it_opens() {
        // Weekdays 09:00-17:00 allowed; Friday from 15:00 for 66 hours denied.
        let w = parse(&spec(
            &[("0 9 * * 1-5", "8h")],
            &[("0 15 * * 5", "66h")],
            None,
        ))
        .unwrap();
        // Monday 2026-12-07 10:00: open.
        assert_eq!(w.gate(at(2026, 12, 7, 10, 0)), Gate::Open);
        // Monday 18:00: outside; opens Tuesday 09:00.
        match w.gate(at(2026, 12, 7, 18, 0)) {
            Gate::Closed { reason, opens } => {
                assert_eq!(opens, Some(at(2026, 12, 8, 9, 0)));
                assert!(reason.contains("outside every allow window"), "{reason}");
            }
            g => panic!("{g:?}"),
        }
        // Friday 2026-12-11 16:00: inside allow but denied until Monday 09:00.
        match w.gate(at(2026, 12, 11, 16, 0)) {
            Gate::Closed { reason, opens } => {
                assert!(
                    reason.contains("deny window `0 15 * * 5` for 66h"),
                    "{reason}"
                );
                assert!(reason.contains("until 2026-12-14 09:00 UTC"), "{reason}");
                assert_eq!(opens, Some(at(2026, 12, 14, 9, 0)));
            }
            g => panic!("{g:?}"),
        }
        // The window's end is exclusive, its start inclusive.
        assert_eq!(w.gate(at(2026, 12, 14, 9, 0)), Gate::Open);
        assert!(matches!(
            w.gate(at(2026, 12, 14, 17, 0)),
            Gate::Closed { .. }
        ));
    }

    #[test]
    fn time_zones_move_the_window() {
        let w = parse(&spec(&[("0 9 * * *", "1h")], &[], Some("Asia/Seoul"))).unwrap();
        // 09:00 in Seoul is 00:00 UTC.
        assert_eq!(w.gate(at(2026, 12, 7, 0, 30)), Gate::Open);
        assert!(matches!(
            w.gate(at(2026, 12, 7, 9, 30)),
            Gate::Closed { .. }
        ));
    }

    #[test]
    fn a_window_that_never_opens_waits_for_an_override() {
        let w = parse(&spec(&[], &[("* * * * *", "2m")], None)).unwrap();
        match w.gate(at(2026, 12, 7, 10, 0)) {
            Gate::Closed { opens, reason } => {
                assert_eq!(opens, None, "{reason}");
                assert!(reason.contains("only an override"), "{reason}");
            }
            g => panic!("{g:?}"),
        }
    }

    #[test]
    fn a_schedule_that_never_occurs_is_refused_quickly() {
        let t = std::time::Instant::now();
        let e = parse(&spec(&[("0 0 31 2 *", "1h")], &[], None)).unwrap_err();
        assert!(e[0].1.contains("names no day that exists"), "{e:?}");
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
        // Feb 29 happens, and so does a Monday the 29th.
        assert!(parse(&spec(&[("0 0 29 2 *", "1h")], &[], None)).is_ok());
        let many: Vec<(&str, &str)> = vec![("0 9 * * *", "1h"); MAX_WINDOWS + 1];
        assert!(parse(&spec(&many, &[], None)).is_err());
    }

    #[test]
    fn problems_name_their_fields() {
        let mut s = spec(
            &[("0 9 * *", "8h")],
            &[("0 9 * * *", "0s")],
            Some("Mars/Base"),
        );
        s.override_by = vec!["discord:abc".into(), "cli:alice".into(), "$(x)".into()];
        let problems = parse(&s).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.windows.timeZone",
                "spec.windows.allow[0].schedule",
                "spec.windows.deny[0].duration",
                "spec.windows.overrideBy[0]",
                "spec.windows.overrideBy[2]",
            ]
        );
    }
}
