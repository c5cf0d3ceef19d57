//! What a pull request on a manifest source would do once merged, as a commit status and one
//! Markdown comment: per app, whether it deploys and how (nothing built, or the whole
//! pipeline), the rendered desired state's diff, or the validation errors that would refuse
//! the revision. And for a pull request on an app's own repository ([`app_plan`]): whether
//! merging deploys it, which images its changed files rebuild, what rolls and syncs.

use similar::TextDiff;

use super::gitops::{same_build, same_desired};
use crate::domain::{AppManifest, ManifestRevision};

/// Marks Gantry's comment, so each push to the pull request edits it in place.
pub const MARKER: &str = "<!-- gantry-plan-preview -->";
/// Marks Gantry's comment on a pull request of app `name`'s own repository (not containing
/// [`MARKER`], so neither preview finds the other's comment).
pub fn app_marker(name: &str) -> String {
    format!("<!-- gantry-plan-preview app={name} -->")
}

/// GitHub's limit on a comment is 65,536 characters; stay well under it.
const MAX_COMMENT: usize = 60_000;
const MAX_DIFF: usize = 12_000;

/// The preview to post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// A commit status state: `success` or `failure`.
    pub state: &'static str,
    pub description: String,
    pub body: String,
}

/// One app of the pull request's revision and its file, beside the one in force (if any).
pub struct AppChange<'a> {
    pub next: &'a AppManifest,
    pub file: &'a str,
    pub before: Option<&'a AppManifest>,
}

/// The preview of a revision that loads: `rendered` renders an app's desired state (for the
/// diff), `removed` the apps of the source that the revision drops.
pub fn plan(
    revision: &ManifestRevision,
    changes: &[AppChange<'_>],
    removed: &[String],
    rendered: &dyn Fn(&AppManifest, &str) -> String,
) -> Preview {
    let mut body = format!("{MARKER}\n### Gantry plan for `{revision}`\n\n");
    let mut deploying = 0;
    let mut rows = Vec::new();
    let mut diffs = String::new();
    for c in changes {
        let name = &c.next.metadata.name;
        let what = match c.before {
            None => "new app: deploys its branch head".to_owned(),
            Some(old) if same_desired(&old.spec, &c.next.spec) => "unchanged".to_owned(),
            Some(old) if same_build(&old.spec, &c.next.spec) => {
                "settings only: runs its last release's images and site content; nothing is built"
                    .to_owned()
            }
            Some(_) => {
                let images: Vec<&str> =
                    c.next.spec.images.iter().map(|i| i.name.as_str()).collect();
                format!(
                    "build change: the whole pipeline at its last release's commit{}",
                    if images.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (images {}: rebuilt only where their inputs changed)",
                            images.join(", ")
                        )
                    }
                )
            }
        };
        if what != "unchanged" {
            deploying += 1;
            let old = c.before.map(|b| rendered(b, c.file)).unwrap_or_default();
            let new = rendered(c.next, c.file);
            let diff = TextDiff::from_lines(&old, &new)
                .unified_diff()
                .context_radius(3)
                .header("in force", "this pull request")
                .to_string();
            diffs.push_str(&format!(
                "<details><summary><code>{name}</code>: rendered desired state</summary>\n\n```diff\n{}\n```\n</details>\n\n",
                clip(&diff, MAX_DIFF)
            ));
        }
        rows.push(format!("| `{name}` | `{}` | {what} |", c.file));
    }
    for name in removed {
        rows.push(format!(
            "| `{name}` | | removed from the manifests: what it deployed keeps running |"
        ));
    }
    if rows.is_empty() {
        body.push_str("No apps in this source.\n");
    } else {
        body.push_str("| App | Manifest | Once merged |\n| --- | --- | --- |\n");
        body.push_str(&rows.join("\n"));
        body.push_str("\n\n");
    }
    body.push_str(&diffs);
    Preview {
        state: "success",
        description: match deploying {
            0 => "no app changes".into(),
            1 => "1 app deploys once merged".into(),
            n => format!("{n} apps deploy once merged"),
        },
        body: clip(&body, MAX_COMMENT),
    }
}

/// The preview of a revision that would be refused.
pub fn refused(revision: &ManifestRevision, problems: &[String]) -> Preview {
    let mut body = format!(
        "{MARKER}\n### Gantry plan for `{revision}`\n\n**These manifests would be refused** (the revision in force would stay):\n\n```\n"
    );
    for p in problems.iter().take(50) {
        body.push_str(p);
        body.push('\n');
    }
    if problems.len() > 50 {
        body.push_str(&format!("... and {} more\n", problems.len() - 50));
    }
    body.push_str("```\n");
    let first = problems.first().map(String::as_str).unwrap_or("invalid");
    Preview {
        state: "failure",
        description: first
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(140)
            .collect(),
        body: clip(&body, MAX_COMMENT),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (cut at {max} characters)\n", &s[..end])
}

/// Whether `path` (of the repository) lies in `dir` (a context, `.` for the root).
fn inside(dir: &str, path: &str) -> bool {
    let dir = dir.trim_start_matches("./").trim_end_matches('/');
    dir.is_empty() || dir == "." || path == dir || path.starts_with(&format!("{dir}/"))
}

/// The preview of a pull request on `app`'s own repository into its tracked branch, given
/// the files it changes (`None`: GitHub listed more than it returns, so "some files").
pub fn app_plan(app: &AppManifest, head: &str, files: Option<&[String]>) -> Preview {
    let name = &app.metadata.name;
    let short = &head[..head.len().min(7)];
    let mut body = format!(
        "{}\n### Gantry plan for `{name}` at `{short}`\n\n",
        app_marker(name)
    );
    let spec = &app.spec;
    let deploys = match files {
        Some(files) => {
            super::intake::any_path_matches(&spec.source.paths, files.iter().map(String::as_str))
        }
        None => true,
    };
    if !deploys {
        body.push_str(&format!(
            "Merging deploys nothing: no changed file matches `spec.source.paths` ({}).\n",
            spec.source.paths.join(", ")
        ));
        return Preview {
            state: "success",
            description: format!("{name}: merging deploys nothing"),
            body,
        };
    }
    body.push_str(&format!(
        "Merging into `{}` deploys **{name}**:\n\n",
        spec.source.branch
    ));
    let touched = |dir: &str, extra: Option<&str>| match files {
        None => true,
        Some(files) => files
            .iter()
            .any(|f| inside(dir, f) || Some(f.as_str()) == extra),
    };
    let mut rebuilt = Vec::new();
    for image in &spec.images {
        let dockerfile = image.dockerfile.as_ref().map(|_| image.dockerfile_path());
        if touched(&image.context, dockerfile) {
            body.push_str(&format!(
                "- image `{}`: its context `{}` changed, so it is built again (a new digest unless the content comes out the same)\n",
                image.name, image.context
            ));
            rebuilt.push(image.name.as_str());
        } else {
            body.push_str(&format!(
                "- image `{}`: nothing in `{}` changed: the last digest is reused, nothing uploaded (unless its base image moved)\n",
                image.name, image.context
            ));
        }
    }
    for svc in &spec.services {
        let images: Vec<&str> = svc
            .containers
            .values()
            .map(String::as_str)
            .filter(|i| rebuilt.contains(i))
            .collect();
        if images.is_empty() {
            body.push_str(&format!(
                "- service `{}`: unchanged by this pull request (rolled only if its settings differ from the live service)\n",
                svc.name
            ));
        } else {
            body.push_str(&format!(
                "- service `{}`: rolls to the new image{} {}\n",
                svc.name,
                if images.len() == 1 { "" } else { "s" },
                images
                    .iter()
                    .map(|i| format!("`{i}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    for job in &spec.jobs {
        let moved = job
            .containers
            .values()
            .any(|i| rebuilt.contains(&i.as_str()));
        body.push_str(&format!(
            "- job `{}`: {}\n",
            job.name,
            if moved {
                "its rule runs the new task definition revision"
            } else {
                "unchanged by this pull request"
            }
        ));
    }
    for site in &spec.sites {
        body.push_str(&format!(
            "- site `{}`: built again; only files whose content changed are uploaded to `s3://{}/{}`\n",
            site.name, site.bucket, site.prefix
        ));
    }
    if files.is_none() {
        body.push_str("\n(GitHub lists at most 3,000 changed files; this pull request has more, so every image is counted as changed.)\n");
    }
    Preview {
        state: "success",
        description: format!(
            "{name}: merging deploys it{}",
            if rebuilt.is_empty() {
                String::new()
            } else {
                format!(", builds {}", rebuilt.join(", "))
            }
        ),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifests::scaffold_app;

    #[test]
    fn each_app_says_what_a_merge_would_do() {
        let same = scaffold_app("web", "acme/web", "main");
        let old = scaffold_app("api", "acme/api", "main");
        let mut new = old.clone();
        new.spec.rollout_timeout = Some(std::time::Duration::from_secs(60));
        let fresh = scaffold_app("jobs", "acme/jobs", "main");
        let rev = ManifestRevision::git("acme/config", &"a".repeat(40));
        let render = |m: &AppManifest, _: &str| serde_yaml::to_string(&m.spec).unwrap();
        let p = plan(
            &rev,
            &[
                AppChange {
                    next: &same,
                    file: "apps/web.yaml",
                    before: Some(&same),
                },
                AppChange {
                    next: &new,
                    file: "apps/api.yaml",
                    before: Some(&old),
                },
                AppChange {
                    next: &fresh,
                    file: "apps/jobs.yaml",
                    before: None,
                },
            ],
            &["gone".into()],
            &render,
        );
        assert_eq!(p.state, "success");
        assert_eq!(p.description, "2 apps deploy once merged");
        assert!(p.body.starts_with(MARKER));
        assert!(
            p.body.contains("| `web` | `apps/web.yaml` | unchanged |"),
            "{}",
            p.body
        );
        assert!(
            p.body.contains("| `api` | `apps/api.yaml` | settings only"),
            "{}",
            p.body
        );
        assert!(
            p.body.contains("| `jobs` | `apps/jobs.yaml` | new app"),
            "{}",
            p.body
        );
        assert!(p.body.contains("+rolloutTimeout: 1m"), "{}", p.body);
        assert!(p.body.contains("| `gone` |"), "{}", p.body);
        let r = refused(&rev, &["apps/api.yaml:3: metadata.name: bad".into()]);
        assert_eq!(r.state, "failure");
        assert_eq!(r.description, "apps/api.yaml:3: metadata.name: bad");
    }
}
