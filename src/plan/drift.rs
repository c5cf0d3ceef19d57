//! Drift: how a live service or site differs from the release Gantry last put in place, as
//! readable items, their rendering and fingerprint, and whether a drifted app is healed now.
//! Plain data in, decisions out; the drift worker (`control::drift`) does the reading.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::domain::drift::DriftItem;
use crate::domain::service::ServiceSettings;
use crate::domain::taskdef::TaskDefinition;
use crate::domain::{ManifestEntry, Paused, RemoteObject};

/// At most this many changed object keys are named in a site's drift.
const MAX_KEYS_SHOWN: usize = 10;

/// The first self-heal waits for nothing; each one after a heal that did not clear the drift
/// waits twice as long as the one before, from this up to [`HEAL_BACKOFF_CAP`].
pub const HEAL_BACKOFF_BASE: Duration = Duration::from_secs(60);
pub const HEAL_BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// How often drift is checked; `None`: only when asked (`gantry drift`, the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftSettings {
    pub interval: Option<Duration>,
}

impl Default for DriftSettings {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(300)),
        }
    }
}

/// What a live service is, as DescribeServices reports it.
pub struct LiveService<'a> {
    pub task_definition: &'a str,
    pub settings: &'a ServiceSettings,
}

/// `family:revision` of a task definition ARN (or the name as given).
fn revision(arn: &str) -> &str {
    arn.rsplit_once("task-definition/").map_or(arn, |(_, r)| r)
}

/// How service `name` differs from its release: the task definition it runs (`released`, with
/// both task definitions when they were read, for a diff) and every setting `desired` (the
/// released spec's, normalised) names. `live` is `None` when the service is gone.
pub fn service(
    name: &str,
    released: &str,
    desired: &ServiceSettings,
    live: Option<LiveService<'_>>,
    task_definitions: Option<(&TaskDefinition, &TaskDefinition)>,
) -> Vec<DriftItem> {
    let resource = format!("service {name}");
    let Some(live) = live else {
        return vec![DriftItem {
            resource,
            field: "service".into(),
            live: "missing (deleted, or draining)".into(),
            released: format!("running {}", revision(released)),
            detail: String::new(),
        }];
    };
    let mut items = Vec::new();
    if revision(live.task_definition) != revision(released) {
        let detail = match task_definitions {
            Some((live_td, released_td)) => {
                let d = super::taskdef_diff::render_diff(Some(released_td), live_td);
                if d.is_empty() {
                    "same content under another revision\n".to_owned()
                } else {
                    d
                }
            }
            None => String::new(),
        };
        items.push(DriftItem {
            resource: resource.clone(),
            field: "taskDefinition".into(),
            live: revision(live.task_definition).to_owned(),
            released: revision(released).to_owned(),
            detail,
        });
    }
    let (changes, _) = super::service_diff::plan(desired, live.settings);
    items.extend(changes.into_iter().map(|c| DriftItem {
        resource: resource.clone(),
        field: c.field.to_owned(),
        live: c.live,
        released: c.desired,
        detail: String::new(),
    }));
    items
}

/// How site `name` differs from its release `released`: the release its manifest object
/// records (`manifest_release`, 0 when there is none), and objects of that release whose
/// content in the bucket (`listing`) is not what Gantry put there.
pub fn site(
    name: &str,
    released: u64,
    manifest_release: u64,
    files: &BTreeMap<String, ManifestEntry>,
    listing: &[RemoteObject],
) -> Vec<DriftItem> {
    let resource = format!("site {name}");
    if manifest_release == 0 {
        return vec![DriftItem {
            resource,
            field: "manifest".into(),
            live: "missing (.gantry/manifest.json deleted)".into(),
            released: format!("release {released}"),
            detail: String::new(),
        }];
    }
    if manifest_release != released {
        return vec![DriftItem {
            resource,
            field: "release".into(),
            live: format!("release {manifest_release}"),
            released: format!("release {released}"),
            detail: String::new(),
        }];
    }
    let live: BTreeMap<&str, &str> = listing
        .iter()
        .map(|o| (o.key.as_str(), o.etag.as_str()))
        .collect();
    let mut changed = Vec::new();
    let mut missing = Vec::new();
    for (key, entry) in files {
        match live.get(key.as_str()) {
            None => missing.push(key.as_str()),
            Some(etag) if *etag != entry.etag => changed.push(key.as_str()),
            Some(_) => {}
        }
    }
    let mut items = Vec::new();
    for (field, keys, what) in [
        ("objects", changed, "changed"),
        ("objects", missing, "deleted"),
    ] {
        if keys.is_empty() {
            continue;
        }
        let mut detail: String = keys
            .iter()
            .take(MAX_KEYS_SHOWN)
            .map(|k| format!("{what}: {k}\n"))
            .collect();
        if keys.len() > MAX_KEYS_SHOWN {
            detail.push_str(&format!("... and {} more\n", keys.len() - MAX_KEYS_SHOWN));
        }
        items.push(DriftItem {
            resource: resource.clone(),
            field: field.into(),
            live: format!("{} {what} by hand", keys.len()),
            released: format!("as release {released} put them"),
            detail,
        });
    }
    items
}

/// The readable diff is cut after this many bytes (the store keeps it; chat shows less).
const MAX_RENDERED: usize = 64 * 1024;

/// The readable diff of an app's drift: a line per item, its detail indented under it; cut
/// after [`MAX_RENDERED`] bytes with a count of the items left out.
pub fn render(items: &[DriftItem]) -> String {
    let mut out = String::new();
    for (n, i) in items.iter().enumerate() {
        if out.len() > MAX_RENDERED {
            out.push_str(&format!("... and {} more differences\n", items.len() - n));
            break;
        }
        out.push_str(&format!(
            "{}: {}: live {}, released {}\n",
            i.resource, i.field, i.live, i.released
        ));
        for line in i.detail.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A short hash of the rendered drift: the same drift seen again has the same fingerprint.
pub fn fingerprint(rendered: &str) -> String {
    hex::encode(&Sha256::digest(rendered.as_bytes())[..8])
}

/// Whether a drifted app is healed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heal {
    /// Redeploy the release.
    Now,
    /// Leave it, and why (shown in status).
    Not(String),
}

/// What is known when deciding to heal.
pub struct HealFacts<'a> {
    pub self_heal: bool,
    pub paused: Option<&'a Paused>,
    /// A deployment of the app is queued or running (a heal among them, or not).
    pub active: bool,
    pub next_heal_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

/// Heal only where `selfHeal` is on, never a paused or held app (a human's choice wins), never
/// beside a deployment in flight, and not before the backoff after a heal that did not help.
pub fn heal(f: &HealFacts<'_>) -> Heal {
    if !f.self_heal {
        return Heal::Not("selfHeal is off".into());
    }
    if let Some(p) = f.paused {
        return Heal::Not(format!("{} ({}): not healed", p.kind.as_str(), p.reason));
    }
    if f.active {
        return Heal::Not("a deployment is queued or running".into());
    }
    match f.next_heal_at {
        Some(at) if at > f.now => Heal::Not(format!(
            "the last heal did not clear it: next attempt at {}",
            at.format("%Y-%m-%d %H:%M:%S UTC")
        )),
        _ => Heal::Now,
    }
}

/// How long after heal number `attempt` (1 for the first) the next may start.
pub fn heal_backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    HEAL_BACKOFF_BASE
        .saturating_mul(factor)
        .min(HEAL_BACKOFF_CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ObjectHeaders, PauseKind};

    fn settings(count: i32) -> ServiceSettings {
        ServiceSettings {
            desired_count: Some(count),
            ..Default::default()
        }
        .normalised()
    }

    #[test]
    fn an_unchanged_service_has_no_drift() {
        let s = settings(2);
        let live = LiveService {
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/api:3",
            settings: &s,
        };
        assert!(service("api", "api:3", &s, Some(live), None).is_empty());
    }

    #[test]
    fn another_revision_and_count_are_two_items_rendered_readably() {
        let released = settings(1);
        let live_settings = settings(3);
        let live = LiveService {
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/api:4",
            settings: &live_settings,
        };
        let items = service(
            "api",
            "arn:aws:ecs:us-east-1:1:task-definition/api:3",
            &released,
            Some(live),
            None,
        );
        let text = render(&items);
        assert_eq!(
            text,
            "service api: taskDefinition: live api:4, released api:3\n\
             service api: desiredCount: live 3, released 1\n"
        );
        assert_eq!(fingerprint(&text), fingerprint(&render(&items)));
        assert_ne!(fingerprint(&text), fingerprint("other"));
    }

    #[test]
    fn an_autoscaled_count_is_not_drift() {
        let mut desired = settings(1);
        desired.desired_count = None;
        let live_settings = settings(7);
        let live = LiveService {
            task_definition: "api:3",
            settings: &live_settings,
        };
        assert!(service("api", "api:3", &desired, Some(live), None).is_empty());
    }

    fn entry(etag: &str) -> ManifestEntry {
        ManifestEntry {
            sha256: "0".repeat(64),
            size: 1,
            etag: etag.into(),
            headers: ObjectHeaders {
                content_type: "text/html".into(),
                cache_control: "no-cache".into(),
            },
        }
    }

    fn object(key: &str, etag: &str) -> RemoteObject {
        RemoteObject {
            key: key.into(),
            size: 1,
            etag: etag.into(),
        }
    }

    #[test]
    fn a_site_drifts_by_release_or_by_objects_changed_by_hand() {
        let files: BTreeMap<String, ManifestEntry> = [
            ("index.html".to_owned(), entry("a")),
            ("about.html".to_owned(), entry("b")),
        ]
        .into();
        let same = [object("index.html", "a"), object("about.html", "b")];
        assert!(site("web", 4, 4, &files, &same).is_empty());
        let other = site("web", 4, 5, &files, &same);
        assert_eq!(other[0].field, "release");
        let edited = [object("index.html", "x")];
        let items = site("web", 4, 4, &files, &edited);
        assert_eq!(
            render(&items),
            "site web: objects: live 1 changed by hand, released as release 4 put them\n    \
             changed: index.html\n\
             site web: objects: live 1 deleted by hand, released as release 4 put them\n    \
             deleted: about.html\n"
        );
        assert_eq!(site("web", 4, 0, &files, &[])[0].field, "manifest");
    }

    #[test]
    fn healing_respects_the_switch_holds_flight_and_backoff() {
        let now = Utc::now();
        let hold = Paused {
            app: "shop-production".into(),
            reason: "rolled back".into(),
            actor: "ana".into(),
            at: now,
            kind: PauseKind::Hold,
        };
        let base = HealFacts {
            self_heal: true,
            paused: None,
            active: false,
            next_heal_at: None,
            now,
        };
        assert_eq!(heal(&base), Heal::Now);
        assert!(matches!(
            heal(&HealFacts {
                self_heal: false,
                ..base
            }),
            Heal::Not(_)
        ));
        let held = heal(&HealFacts {
            paused: Some(&hold),
            ..base
        });
        assert!(
            matches!(held, Heal::Not(ref w) if w.starts_with("hold")),
            "{held:?}"
        );
        assert!(matches!(
            heal(&HealFacts {
                active: true,
                ..base
            }),
            Heal::Not(_)
        ));
        let later = now + chrono::Duration::seconds(30);
        assert!(matches!(
            heal(&HealFacts {
                next_heal_at: Some(later),
                ..base
            }),
            Heal::Not(_)
        ));
        assert_eq!(
            heal(&HealFacts {
                next_heal_at: Some(now),
                ..base
            }),
            Heal::Now
        );
        assert_eq!(heal_backoff(1), Duration::from_secs(60));
        assert_eq!(heal_backoff(2), Duration::from_secs(120));
        assert_eq!(heal_backoff(40), HEAL_BACKOFF_CAP);
    }
}
