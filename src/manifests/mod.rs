//! Loading and validating `manifests/`: Kubernetes-style YAML documents (`apiVersion: gantry/v1`,
//! `kind: App`). Every problem is reported with file:line, the field path and a hint; loading
//! collects all problems of all files rather than stopping at the first.
//!
//! This module reads files but never talks to AWS, git or the store.

pub mod charts;
pub mod environments;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{
    AppManifest, AppSpec, ManifestRevision, Metadata, Source, API_VERSION, KIND_APP,
};
pub use crate::plan::locate::Locator;

/// One problem in one manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// Field path inside the document, e.g. `spec.source.branch`; empty for the whole file.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// All problems found while loading a manifests directory.
#[derive(Debug, thiserror::Error)]
pub struct ManifestErrors(pub Vec<ManifestError>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// An app as loaded, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedApp {
    pub manifest: AppManifest,
    pub file: PathBuf,
    /// The index of the app's document in `file` (0 for the first).
    pub doc: usize,
    /// The revision of the manifests it was read at (a git source's commit, or local).
    pub origin: ManifestRevision,
}

/// Every app of a manifests directory, validated, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ManifestSet {
    pub apps: Vec<LoadedApp>,
}

impl ManifestSet {
    pub fn get(&self, name: &str) -> Option<&LoadedApp> {
        self.apps.iter().find(|a| a.manifest.metadata.name == name)
    }

    pub fn manifests(&self) -> impl Iterator<Item = &AppManifest> {
        self.apps.iter().map(|a| &a.manifest)
    }
}

/// Loads and validates every `*.yaml`/`*.yml` under `dir` (recursively, hidden entries skipped).
pub fn load_dir(dir: &Path) -> Result<ManifestSet, ManifestErrors> {
    // Charts beside the manifests (`manifests/../charts`, `manifests/charts`), then built-in.
    let mut dirs = vec![dir.join("charts")];
    if let Some(parent) = dir.parent() {
        dirs.insert(0, parent.join("charts"));
    }
    load_dir_with(dir, &charts::Charts::new(dirs))
}

/// [`load_dir`] with charts looked up in `charts`.
pub fn load_dir_with(dir: &Path, charts: &charts::Charts) -> Result<ManifestSet, ManifestErrors> {
    let mut files = Vec::new();
    if let Err(e) = collect_files(dir, &mut files) {
        return Err(ManifestErrors(vec![ManifestError {
            file: dir.to_path_buf(),
            line: None,
            path: String::new(),
            message: format!("cannot read the manifests directory: {e}"),
            hint: Some(
                "set GANTRY_MANIFESTS or `manifests:` in gantry.yaml to an existing directory"
                    .into(),
            ),
        }]));
    }
    files.sort();
    let mut set = ManifestSet::default();
    let mut errors = Vec::new();
    for file in files {
        match read_bounded(&file, MAX_MANIFEST_BYTES) {
            Ok(text) => match parse_file_with(&file, &text, charts) {
                Ok(apps) => set.apps.extend(apps),
                Err(mut es) => errors.append(&mut es),
            },
            Err(e) => errors.push(ManifestError {
                file: file.clone(),
                line: None,
                path: String::new(),
                message: format!("cannot read file: {e}"),
                hint: None,
            }),
        }
    }
    errors.extend(validate::duplicate_names(&set));
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(ManifestErrors(errors))
    }
}

/// Loads the manifests of a git source's checkout: `path` inside the repository checked out
/// at `root`. Problems name files as the repository does (`apps/api.yaml:12`), and every app
/// records `origin`.
pub fn load_checkout(
    root: &Path,
    path: &str,
    origin: &ManifestRevision,
) -> Result<ManifestSet, ManifestErrors> {
    let relative = |p: &Path| {
        p.strip_prefix(root)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let dir = root.join(path);
    if !dir.is_dir() {
        return Err(ManifestErrors(vec![ManifestError {
            file: PathBuf::from(path),
            line: None,
            path: String::new(),
            message: "the source's manifests directory is not in this commit".into(),
            hint: Some("check the source's `path` in gantry.yaml".into()),
        }]));
    }
    // A repository's own charts (`charts/` at its root), then built-in.
    let charts = charts::Charts::new(vec![root.join("charts")]);
    match load_dir_with(&dir, &charts) {
        Ok(mut set) => {
            for app in &mut set.apps {
                app.file = relative(&app.file);
                app.origin = ManifestRevision {
                    file: Some(app.file.display().to_string()),
                    ..origin.clone()
                };
            }
            Ok(set)
        }
        Err(ManifestErrors(mut errors)) => {
            for e in &mut errors {
                e.file = relative(&e.file);
            }
            Err(ManifestErrors(errors))
        }
    }
}

/// Every app of several sources' sets, refused when two define the same app.
pub fn merge<'a>(
    parts: impl IntoIterator<Item = &'a ManifestSet>,
) -> Result<ManifestSet, ManifestErrors> {
    let mut set = ManifestSet::default();
    for part in parts {
        set.apps.extend(part.apps.iter().cloned());
    }
    let errors = validate::duplicate_names(&set);
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(ManifestErrors(errors))
    }
}

pub use crate::domain::LOCK_FILE;

/// The largest manifest file read (1 MiB; real ones are a few KB).
pub const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// The deepest nesting a manifest may have, in indentation columns and flow brackets; YAML
/// parsers recurse per level, so depth is bounded before any of them runs.
pub const MAX_DEPTH: usize = 64;

/// Manifests and gantry.yaml are read like the repository files Gantry reads itself.
pub use crate::images::context::read_bounded;

/// How deep `text` nests, counted generously: a line's indentation plus its leading `- `
/// sequence entries, and flow brackets (`[`, `{`) open at once. Returns the first line
/// (1-based) past `limit`, if any.
pub fn too_deep(text: &str, limit: usize) -> Option<usize> {
    let mut flow = 0usize;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        let mut rest = &line[indent..];
        let mut dashes = 0;
        while let Some(r) = rest
            .strip_prefix('-')
            .filter(|r| r.is_empty() || r.starts_with([' ', '\t']))
        {
            dashes += 1;
            rest = r.trim_start_matches([' ', '\t']);
        }
        let mut quote: Option<char> = None;
        let mut peak = flow;
        for c in line.chars() {
            match (quote, c) {
                (None, '#') => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '[' | '{') => {
                    flow += 1;
                    peak = peak.max(flow);
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        if indent / 2 + dashes > limit || peak > limit {
            return Some(i + 1);
        }
    }
    None
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            collect_files(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) && name != LOCK_FILE
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses and validates every document of one file.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<LoadedApp>, Vec<ManifestError>> {
    parse_file_with(file, text, &charts::Charts::builtin())
}

/// Expands `spec.charts` in one document's value: each chart rendered with its values and
/// its fields appended to the spec's lists; a rendered service's `taskDefinition` naming a
/// rendered file gets that file's content. Problems carry field paths in the document.
fn expand_charts(value: &mut serde_yaml::Value, charts: &charts::Charts) -> Vec<validate::Problem> {
    use serde_yaml::Value as Y;
    let mut problems = Vec::new();
    let app = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Y::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(spec) = value.get_mut("spec").and_then(Y::as_mapping_mut) else {
        return problems;
    };
    // Only Gantry sets a task definition's content.
    if let Some(Y::Sequence(services)) = spec.get("services") {
        for (i, svc) in services.iter().enumerate() {
            if svc.get("taskDefinitionContent").is_some() {
                problems.push(validate::Problem::new(
                    format!("spec.services[{i}].taskDefinitionContent"),
                    "set by Gantry when it loads the manifests, not written in one",
                    "remove it; `taskDefinition` names the file",
                ));
            }
        }
    }
    let Some(uses) = spec.remove("charts") else {
        return problems;
    };
    let Y::Sequence(uses) = uses else {
        problems.push(validate::Problem::new(
            "spec.charts",
            "must be a list of {chart, values}",
            "e.g. `charts: [{chart: web-service, values: {...}}]`",
        ));
        return problems;
    };
    for (i, u) in uses.iter().enumerate() {
        let at = format!("spec.charts[{i}]");
        let name = u.get("chart").and_then(Y::as_str).unwrap_or("");
        if let Some(Y::Mapping(m)) = Some(u) {
            for k in m.keys() {
                if !matches!(k.as_str(), Some("chart" | "values")) {
                    problems.push(validate::Problem::new(
                        at.clone(),
                        format!("unknown field `{}`", k.as_str().unwrap_or("?")),
                        "a chart entry has `chart` and `values`",
                    ));
                }
            }
        }
        let chart = match charts.get(name) {
            Ok(c) => c,
            Err(charts::ChartError::Chart(m)) => {
                problems.push(validate::Problem::new(
                    format!("{at}.chart"),
                    m,
                    "see docs/charts.md",
                ));
                continue;
            }
            Err(e) => {
                problems.push(validate::Problem::new(
                    format!("{at}.chart"),
                    format!("{e:?}"),
                    "see docs/charts.md",
                ));
                continue;
            }
        };
        let values: serde_json::Value = match u.get("values") {
            None => serde_json::Value::Object(Default::default()),
            Some(v) => match serde_json::to_value(v) {
                Ok(j) => j,
                Err(e) => {
                    problems.push(validate::Problem::new(
                        format!("{at}.values"),
                        format!("cannot be read as values: {e}"),
                        "use plain mappings, lists, strings and numbers",
                    ));
                    continue;
                }
            },
        };
        let rendered = match chart.render(&app, &values) {
            Ok(r) => r,
            Err(charts::ChartError::Values(list)) => {
                for (path, message) in list {
                    let field = if path.is_empty() {
                        format!("{at}.values")
                    } else {
                        format!("{at}.values.{path}")
                    };
                    problems.push(validate::Problem::new(
                        field,
                        message,
                        format!("see charts/{}/values.schema.json", chart.name),
                    ));
                }
                continue;
            }
            Err(charts::ChartError::Render(m) | charts::ChartError::Chart(m)) => {
                problems.push(validate::Problem::new(
                    at.clone(),
                    m,
                    "a chart problem, not one of these values",
                ));
                continue;
            }
        };
        for (key, list) in rendered.fields {
            let Y::Sequence(mut items) = list else {
                problems.push(validate::Problem::new(
                    at.clone(),
                    format!(
                        "chart `{}` rendered `{}` as something other than a list",
                        chart.name,
                        key.as_str().unwrap_or("?")
                    ),
                    "a chart problem",
                ));
                continue;
            };
            if matches!(key.as_str(), Some("services" | "jobs")) {
                for svc in &mut items {
                    let file = svc
                        .get("taskDefinition")
                        .and_then(Y::as_str)
                        .map(str::to_owned);
                    if let (Some(file), Some(m)) = (file, svc.as_mapping_mut()) {
                        if let Some(content) = rendered.files.get(&file) {
                            m.insert(
                                "taskDefinition".into(),
                                format!("charts/{}/templates/{file}.j2", chart.name).into(),
                            );
                            m.insert("taskDefinitionContent".into(), content.clone().into());
                        }
                    }
                }
            }
            match spec.get_mut(&key) {
                Some(Y::Sequence(existing)) => existing.extend(items),
                _ => {
                    spec.insert(key, Y::Sequence(items));
                }
            }
        }
    }
    problems
}

/// Parses and validates every document of one file, charts looked up in `charts`.
pub fn parse_file_with(
    file: &Path,
    text: &str,
    charts: &charts::Charts,
) -> Result<Vec<LoadedApp>, Vec<ManifestError>> {
    if let Some(line) = too_deep(text, MAX_DEPTH) {
        return Err(vec![ManifestError {
            file: file.to_path_buf(),
            line: Some(line),
            path: String::new(),
            message: format!("nests deeper than {MAX_DEPTH} levels"),
            hint: Some(
                "an App manifest needs a handful of levels; check for runaway nesting".into(),
            ),
        }]);
    }
    let locator = Locator::new(text);
    let mut apps = Vec::new();
    let mut errors = Vec::new();
    for (doc, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut value: serde_yaml::Value = match serde_yaml::Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                errors.push(yaml_error(file, String::new(), &e));
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let base = file.parent().unwrap_or(Path::new("."));
        // Durations that do not parse are reported and taken out first, so the rest of the
        // document is still checked and every problem is reported at once.
        let early = validate::take_bad_durations(&mut value);
        let expanded = match environments::expand(&value) {
            Ok(docs) => docs,
            Err(problems) => {
                errors.extend(problems.into_iter().chain(early).map(|p| ManifestError {
                    file: file.to_path_buf(),
                    line: locator.line(doc, &p.path),
                    path: p.path,
                    message: p.message,
                    hint: p.hint,
                }));
                continue;
            }
        };
        let count = expanded.len();
        let mut doc_errors: Vec<(String, ManifestError)> = Vec::new();
        for environments::Expanded {
            environment,
            document: mut value,
        } in expanded
        {
            let mut early = early.clone();
            early.extend(expand_charts(&mut value, charts));
            match parse_document(&value) {
                Ok(manifest) => {
                    let mut problems = early;
                    problems.extend(validate::app(&manifest, base));
                    if problems.is_empty() {
                        let mut manifest = manifest;
                        // A deployment may run long after loading, from another directory.
                        let spec = &mut manifest.spec;
                        let held =
                            spec.services
                                .iter_mut()
                                .map(|s| (&mut s.task_definition, &mut s.task_definition_content))
                                .chain(spec.jobs.iter_mut().map(|j| {
                                    (&mut j.task_definition, &mut j.task_definition_content)
                                }));
                        for (file, content) in held {
                            // A chart's task definition is already rendered.
                            if content.is_some() {
                                continue;
                            }
                            if let Ok(abs) = std::path::absolute(base.join(&*file)) {
                                *file = abs.display().to_string();
                            }
                            // What a deployment queued from these manifests rolls.
                            *content =
                                read_bounded(Path::new(file.as_str()), MAX_MANIFEST_BYTES).ok();
                        }
                        apps.push(LoadedApp {
                            manifest,
                            file: file.to_path_buf(),
                            doc,
                            origin: ManifestRevision::default(),
                        });
                    }
                    for p in problems {
                        doc_errors.push((
                            environment.clone(),
                            ManifestError {
                                file: file.to_path_buf(),
                                line: locator.line(doc, &p.path),
                                path: p.path,
                                message: p.message,
                                hint: p.hint,
                            },
                        ));
                    }
                }
                Err((path, message, hint)) => doc_errors.push((
                    environment.clone(),
                    ManifestError {
                        file: file.to_path_buf(),
                        line: locator.line(doc, &path),
                        path,
                        message,
                        hint,
                    },
                )),
            }
        }
        errors.extend(environments::said_once(doc_errors, count));
    }
    if errors.is_empty() {
        Ok(apps)
    } else {
        Err(errors)
    }
}

type DocError = (String, String, Option<String>);

fn parse_document(value: &serde_yaml::Value) -> Result<AppManifest, DocError> {
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    if kind != KIND_APP {
        return Err((
            "kind".into(),
            if kind.is_empty() {
                "missing `kind`".into()
            } else {
                format!("unknown kind `{kind}`")
            },
            Some(format!(
                "every document needs `apiVersion: {API_VERSION}` and `kind: {KIND_APP}`"
            )),
        ));
    }
    serde_path_to_error::deserialize::<_, AppManifest>(value.clone()).map_err(|e| {
        // serde_path_to_error's path already ends at an unknown field's name.
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let message = e.inner().to_string();
        let hint = hint_for(&message);
        (path, message, hint)
    })
}

fn hint_for(message: &str) -> Option<String> {
    if message.starts_with("unknown field") {
        Some("check the spelling; docs/manifests.md lists every field".into())
    } else if message.starts_with("missing field") {
        Some("add the field; docs/manifests.md shows an example".into())
    } else if message.starts_with("invalid type") {
        Some("check the value's type (string, number, list or mapping)".into())
    } else {
        None
    }
}

fn yaml_error(file: &Path, path: String, e: &serde_yaml::Error) -> ManifestError {
    ManifestError {
        file: file.to_path_buf(),
        line: e.location().map(|l| l.line()),
        path,
        message: format!("invalid YAML: {e}"),
        hint: Some("check indentation and quoting around this line".into()),
    }
}

/// A minimal valid App manifest, as `gantry init` writes it.
pub fn scaffold_app(name: &str, repo: &str, branch: &str) -> AppManifest {
    AppManifest {
        api_version: API_VERSION.into(),
        kind: KIND_APP.into(),
        metadata: Metadata {
            name: name.into(),
            labels: Default::default(),
        },
        spec: AppSpec {
            environment: "production".into(),
            source: Source {
                repo: repo.into(),
                url: None,
                branch: branch.into(),
                tags: None,
                paths: vec![],
                poll: None,
            },
            build: Some(crate::domain::BuildSpec {
                commands: vec!["echo \"building $GANTRY_APP at $GANTRY_SHA\"".into()],
                workdir: None,
                env: Default::default(),
                pass_env: vec![],
                timeout: Some(std::time::Duration::from_secs(30 * 60)),
                caches: vec![],
            }),
            images: vec![],
            services: vec![],
            jobs: vec![],
            sites: vec![],
            notifications: Default::default(),
            rollout_timeout: None,
            keep_revisions: None,
            self_heal: false,
            windows: Default::default(),
            approvals: None,
            write_back: Default::default(),
            environment_of: None,
            promotion: None,
        },
    }
}

/// Checks a name/repo pair the way loading would, for `gantry init`.
pub fn check_scaffold(manifest: &AppManifest) -> Vec<String> {
    validate::app(manifest, Path::new("."))
        .into_iter()
        .map(|p| format!("{}: {}", p.path, p.message))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(text: &str) -> Vec<String> {
        parse_file(Path::new("m.yaml"), text)
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn unknown_field_names_file_line_and_path() {
        let text = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n    brnch: main\n";
        let e = errs(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("m.yaml:8: spec.source.brnch: unknown field `brnch`"),
            "{}",
            e[0]
        );
        assert!(e[0].contains("hint:"));
    }

    #[test]
    fn semantic_errors_point_at_the_field() {
        let text = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: Web_App\nspec:\n  source:\n    repo: acme\n";
        let e = errs(text);
        assert!(
            e.iter().any(|l| l.starts_with("m.yaml:4: metadata.name:")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("m.yaml:7: spec.source.repo:")),
            "{e:?}"
        );
    }

    #[test]
    fn second_document_lines_are_absolute() {
        let ok = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: a\nspec:\n  source:\n    repo: acme/a\n";
        let text = format!("{ok}---\napiVersion: gantry/v1\nkind: App\nmetadata:\n  name: b\nspec:\n  source:\n    repo: acme/b\n  images: 3\n");
        let e = errs(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("m.yaml:16: spec.images: invalid type"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn image_and_notification_fields_are_checked_where_they_are() {
        let text = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n  images:\n    - name: api\n      repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/api:latest\n      builder: layer\n  notifications:\n    discord:\n      channel: deploys\n";
        let e = errs(text);
        assert!(
            e.iter().any(|l| l.starts_with(
                "m.yaml:10: spec.images[0].repository: repository must not name a tag"
            )),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.contains("spec.images[0].base: the `layer` builder needs a base image")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|l| l.starts_with("m.yaml:14: spec.notifications.discord.channel:")),
            "{e:?}"
        );
    }

    #[test]
    fn edge_rules_need_a_distribution() {
        let text = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n  sites:\n    - name: www\n      dir: out\n      bucket: web-bucket\n      prettyUrls: true\n";
        let e = errs(text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("m.yaml:9: spec.sites[0].distribution: redirects, prettyUrls and spa"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn scaffold_is_valid() {
        let m = scaffold_app("web", "acme/web", "main");
        let text = serde_yaml::to_string(&m).unwrap();
        assert_eq!(errs(&text), Vec::<String>::new());
    }
}
