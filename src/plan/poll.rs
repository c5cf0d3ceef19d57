//! Polling, the fallback for webhooks that never came (Argo CD polls every 120 s plus jitter,
//! Keel every 60 s): which sources to look at, when each is next due, and which refs a look
//! at a remote takes in. Time is passed in (`now`), never read here.
//!
//! A source is one clone URL, shared by every app that names it; its interval is the
//! shortest of theirs. A look lists the remote's branches and tags (`git ls-remote`); a ref
//! is taken in when an app tracks it and it moved since the previous look. On a source's
//! first look (no previous one) only refs that an app tracks by an exact branch name are
//! taken in: the branch an app deploys is put in place even if its last push was missed
//! while Gantry was down, but the old tags and branches a glob matches are not all deployed
//! at once. The store then takes each repository, ref and sha in once, whether a webhook or
//! a poll saw it first ([`super::intake::seen_before`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::intake::tracks;
use crate::domain::{git, AppManifest};

/// What a look at a remote listed: ref name -> sha (`ports::RemoteHeads`).
pub type RemoteHeads = BTreeMap<String, String>;

/// At most this many refs are taken in per look at one source; the rest wait for the next.
pub const MAX_TAKEN_PER_LOOK: usize = 32;

/// `polling` in the daemon's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollSettings {
    /// Every source's interval unless its apps say otherwise; `None`: only apps with
    /// `source.poll` set are polled.
    pub interval: Option<Duration>,
    /// Up to this much is added to each wait, so sources spread out.
    pub jitter: Duration,
}

/// One remote to poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollSource {
    /// `OWNER/NAME` of the first app naming this URL, as webhooks spell it.
    pub repo: String,
    /// Clone URL, free of credentials.
    pub url: String,
    pub interval: Duration,
    /// The apps polled through this source, in manifest order.
    pub apps: Vec<String>,
}

/// The sources to poll: one per clone URL; an app's `source.poll` overrides `default`
/// (`None` means off, for the daemon or for that app).
pub fn sources<'a>(
    apps: impl IntoIterator<Item = &'a AppManifest>,
    default: Option<Duration>,
) -> Vec<PollSource> {
    let mut out: Vec<PollSource> = Vec::new();
    for app in apps {
        let interval = match app.spec.source.poll {
            Some(p) => p.interval(),
            None => default,
        };
        let Some(interval) = interval.filter(|d| !d.is_zero()) else {
            continue;
        };
        let url = app.spec.clone_url();
        match out.iter_mut().find(|s| s.url == url) {
            Some(s) => {
                s.interval = s.interval.min(interval);
                s.apps.push(app.metadata.name.clone());
            }
            None => out.push(PollSource {
                repo: app.spec.source.repo.clone(),
                url,
                interval,
                apps: vec![app.metadata.name.clone()],
            }),
        }
    }
    out
}

/// The refs of one look at a remote to take in, sorted by ref name and each once:
/// `(ref, sha)`. `apps` are the source's apps, each with the refs it tracked at the previous
/// look (`None` when this is its first look: a new daemon, or an app new to the source).
/// Refs with a malformed name or sha are never taken in.
pub fn take_in(
    apps: &[(&AppManifest, Option<&RemoteHeads>)],
    seen: &RemoteHeads,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (r, sha) in seen {
        if git::valid_ref_name(r).is_err() || git::commit_sha(sha).as_deref() != Some(sha) {
            continue;
        }
        let take = apps.iter().any(|(app, previous)| {
            tracks(app, r)
                && match previous {
                    Some(prev) => prev.get(r) != Some(sha),
                    None => r.strip_prefix("refs/heads/") == Some(app.spec.source.branch.as_str()),
                }
        });
        if take {
            out.push((r.clone(), sha.clone()));
            if out.len() == MAX_TAKEN_PER_LOOK {
                break;
            }
        }
    }
    out
}

/// What `app` tracks of a look: kept as its previous look for the next one.
pub fn tracked_by(app: &AppManifest, seen: &RemoteHeads) -> RemoteHeads {
    seen.iter()
        .filter(|(r, _)| tracks(app, r))
        .map(|(r, s)| (r.clone(), s.clone()))
        .collect()
}

/// The id of the delivery a poll records for `repo`, `git_ref` and `sha`: the same on every
/// replica and after a restart, so the store takes it in once.
pub fn delivery_id(repo: &str, git_ref: &str, sha: &str) -> String {
    let mut h = Sha256::new();
    for part in [repo.to_ascii_lowercase().as_str(), git_ref, sha] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("poll-{}", &hex::encode(h.finalize())[..32])
}

/// A stable spread in `[0, max)`: sources polled together drift apart, and the same source
/// and round always get the same delay.
pub fn jitter(url: &str, round: u64, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let mut h = Sha256::new();
    h.update(url.as_bytes());
    h.update(round.to_be_bytes());
    let n = u64::from_be_bytes(h.finalize()[..8].try_into().expect("8 bytes"));
    let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
    Duration::from_nanos(n % nanos)
}

/// When each source is next due.
#[derive(Debug, Default)]
pub struct Schedule {
    next: HashMap<String, (Instant, u64)>,
}

impl Schedule {
    /// The sources due at `now`, as indexes into `sources`. A source not seen before is due
    /// at once; sources no longer named are forgotten.
    pub fn due(&mut self, sources: &[PollSource], now: Instant) -> Vec<usize> {
        self.next
            .retain(|url, _| sources.iter().any(|s| &s.url == url));
        sources
            .iter()
            .enumerate()
            .filter(|(_, s)| self.next.get(&s.url).is_none_or(|(at, _)| *at <= now))
            .map(|(i, _)| i)
            .collect()
    }

    /// Records a look at `source` at `now`: next due after its interval plus up to `jitter`.
    pub fn looked(&mut self, source: &PollSource, now: Instant, jitter_max: Duration) {
        let round = self.next.get(&source.url).map_or(0, |(_, r)| r + 1);
        let at = now + source.interval + jitter(&source.url, round, jitter_max);
        self.next.insert(source.url.clone(), (at, round));
    }

    /// The earliest time any known source is due.
    pub fn next_wake(&self) -> Option<Instant> {
        self.next.values().map(|(at, _)| *at).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PollSetting;

    fn app(name: &str, url: &str, branch: &str, tags: Option<&str>) -> AppManifest {
        let tags = tags
            .map(|t| format!("\n    tags: \"{t}\""))
            .unwrap_or_default();
        let yaml = format!(
            "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: {name}\nspec:\n  source:\n    repo: acme/{name}\n    url: {url}\n    branch: \"{branch}\"{tags}\n"
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";

    fn refs(pairs: &[(&str, &str)]) -> RemoteHeads {
        pairs
            .iter()
            .map(|(r, s)| (r.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn one_source_per_url_with_the_shortest_interval() {
        let mut a = app("a", "/r/one", "main", None);
        let b = app("b", "/r/one", "dev", None);
        let mut c = app("c", "/r/two", "main", None);
        a.spec.source.poll = Some(PollSetting::Every(Duration::from_secs(30)));
        c.spec.source.poll = Some(PollSetting::Off);
        let s = sources([&a, &b, &c], Some(Duration::from_secs(60)));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].interval, Duration::from_secs(30));
        assert_eq!(s[0].apps, vec!["a", "b"]);
        assert_eq!(s[0].repo, "acme/a");
        // Off for the daemon: only apps that ask for polling are polled.
        let s = sources([&a, &b, &c], None);
        assert_eq!((s.len(), s[0].apps.clone()), (1, vec!["a".to_string()]));
    }

    #[test]
    fn first_look_takes_in_exact_branches_only_later_looks_what_moved() {
        let a = app("a", "/r", "main", Some("v*"));
        let b = app("b", "/r", "release/*", None);
        let apps = [&a, &b];
        let seen = refs(&[
            ("refs/heads/main", A),
            ("refs/heads/release/1", A),
            ("refs/heads/other", A),
            ("refs/tags/v1", A),
        ]);
        let first: Vec<_> = apps.iter().map(|a| (*a, None)).collect();
        assert_eq!(
            take_in(&first, &seen),
            vec![("refs/heads/main".to_string(), A.to_string())]
        );
        let prev: Vec<_> = apps.iter().map(|a| tracked_by(a, &seen)).collect();
        let again: Vec<_> = apps.iter().zip(&prev).map(|(a, p)| (*a, Some(p))).collect();
        // Nothing moved: nothing taken in.
        assert!(take_in(&again, &seen).is_empty());
        // A moved branch, a new tag and a new glob branch are; an untracked branch is not.
        let later = refs(&[
            ("refs/heads/main", B),
            ("refs/heads/release/1", A),
            ("refs/heads/release/2", B),
            ("refs/heads/other", B),
            ("refs/tags/v1", A),
            ("refs/tags/v2", B),
        ]);
        assert_eq!(
            take_in(&again, &later),
            vec![
                ("refs/heads/main".to_string(), B.to_string()),
                ("refs/heads/release/2".to_string(), B.to_string()),
                ("refs/tags/v2".to_string(), B.to_string()),
            ]
        );
        // An app new to a known source gets its first look: its exact branch is taken in.
        let c = app("c", "/r", "other", None);
        let mixed = [(&a, Some(&prev[0])), (&c, None)];
        assert_eq!(
            take_in(&mixed, &seen),
            vec![("refs/heads/other".to_string(), A.to_string())]
        );
    }

    #[test]
    fn hostile_refs_and_shas_are_never_taken_in_and_a_look_is_bounded() {
        let a = app("a", "/r", "*", None);
        let mut seen = refs(&[
            ("refs/heads/ok", "not-a-sha"),
            ("refs/heads/a..b", A),
            ("refs/heads/x y", A),
            ("refs/heads/lock.lock", A),
        ]);
        let empty = RemoteHeads::new();
        assert!(take_in(&[(&a, Some(&empty))], &seen).is_empty());
        for i in 0..100 {
            seen.insert(format!("refs/heads/b{i:03}"), A.to_string());
        }
        assert_eq!(
            take_in(&[(&a, Some(&empty))], &seen).len(),
            MAX_TAKEN_PER_LOOK
        );
    }

    #[test]
    fn schedule_with_an_injected_clock() {
        let t0 = Instant::now();
        let src = |url: &str, secs| PollSource {
            repo: "acme/a".into(),
            url: url.into(),
            interval: Duration::from_secs(secs),
            apps: vec!["a".into()],
        };
        let s = vec![src("/one", 60), src("/two", 10)];
        let mut sched = Schedule::default();
        let jit = Duration::from_secs(5);
        // Both due at once the first time.
        assert_eq!(sched.due(&s, t0), vec![0, 1]);
        sched.looked(&s[0], t0, jit);
        sched.looked(&s[1], t0, jit);
        assert!(sched.due(&s, t0 + Duration::from_secs(9)).is_empty());
        let wake = sched.next_wake().unwrap();
        assert!(wake >= t0 + Duration::from_secs(10) && wake < t0 + Duration::from_secs(15));
        assert_eq!(sched.due(&s, wake), vec![1]);
        // Never later than interval + jitter: a dropped webhook is seen within one interval.
        assert_eq!(sched.due(&s, t0 + Duration::from_secs(65)), vec![0, 1]);
        // A source no longer named is forgotten.
        assert_eq!(sched.due(&s[..1], t0 + Duration::from_secs(65)), vec![0]);
        assert_eq!(sched.next.len(), 1);
    }

    #[test]
    fn jitter_is_bounded_and_stable_and_delivery_ids_are_deterministic() {
        let max = Duration::from_secs(15);
        for r in 0..50 {
            let j = jitter("/x", r, max);
            assert!(j < max);
            assert_eq!(j, jitter("/x", r, max));
        }
        assert_eq!(jitter("/x", 1, Duration::ZERO), Duration::ZERO);
        let id = delivery_id("Acme/A", "refs/heads/main", A);
        assert_eq!(id, delivery_id("acme/a", "refs/heads/main", A));
        assert_ne!(id, delivery_id("acme/a", "refs/heads/main", B));
        assert!(id.starts_with("poll-") && id.len() == 37);
    }
}
