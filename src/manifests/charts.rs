//! Charts: reusable templates an app picks with values (`spec.charts`). A chart is a directory
//! `charts/NAME/` with `Chart.yaml`, `values.yaml` (defaults), `values.schema.json` (JSON
//! Schema the merged values must satisfy) and `templates/`: `spec.yaml.j2` renders App manifest
//! fields (`images`, `services`, `jobs`, `sites`) appended to the app's own, and every other `*.j2`
//! renders a file those fields may name (a service's `taskDefinition: taskdef.json`). Templates
//! are minijinja (Jinja2); values reach them as `values`, the app's name as `app.name`.
//!
//! Charts come from the `charts/` directory beside the manifests (a git source's repository
//! root, or next to a local manifests directory) and, for the names Gantry ships, from the
//! binary itself. Rendering is deterministic: the same chart and values give the same bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value as Json;

macro_rules! builtin {
    ($chart:literal, $file:literal) => {
        (
            concat!($chart, "/", $file),
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/charts/",
                $chart,
                "/",
                $file
            )),
        )
    };
}

/// The charts Gantry ships (the repository's `charts/`), embedded.
const BUILTIN: &[(&str, &str)] = &[
    builtin!("web-service", "Chart.yaml"),
    builtin!("web-service", "values.yaml"),
    builtin!("web-service", "values.schema.json"),
    builtin!("web-service", "templates/spec.yaml.j2"),
    builtin!("web-service", "templates/taskdef.json.j2"),
    builtin!("backend-service", "Chart.yaml"),
    builtin!("backend-service", "values.yaml"),
    builtin!("backend-service", "values.schema.json"),
    builtin!("backend-service", "templates/spec.yaml.j2"),
    builtin!("backend-service", "templates/taskdef.json.j2"),
    builtin!("worker", "Chart.yaml"),
    builtin!("worker", "values.yaml"),
    builtin!("worker", "values.schema.json"),
    builtin!("worker", "templates/spec.yaml.j2"),
    builtin!("worker", "templates/taskdef.json.j2"),
    builtin!("scheduled-task", "Chart.yaml"),
    builtin!("scheduled-task", "values.yaml"),
    builtin!("scheduled-task", "values.schema.json"),
    builtin!("scheduled-task", "templates/spec.yaml.j2"),
    builtin!("scheduled-task", "templates/taskdef.json.j2"),
    builtin!("static-site", "Chart.yaml"),
    builtin!("static-site", "values.yaml"),
    builtin!("static-site", "values.schema.json"),
    builtin!("static-site", "templates/spec.yaml.j2"),
];

/// The largest chart file read.
const MAX_CHART_FILE: u64 = 256 * 1024;
/// The most a chart may render, all templates together.
const MAX_RENDERED: usize = 1024 * 1024;

/// A chart, read.
#[derive(Debug, Clone)]
pub struct Chart {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Where it was read from (a directory, or `built-in`), for messages.
    pub origin: String,
    defaults: Json,
    schema: Json,
    /// File name under `templates/` -> source.
    templates: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ChartFile {
    api_version: String,
    name: String,
    version: String,
    #[serde(default)]
    description: String,
}

/// What a chart rendered: App manifest fields, and the files they name.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// A YAML mapping of `images`, `services` and `sites` lists.
    pub fields: serde_yaml::Mapping,
    /// File name (the template's without `.j2`) -> content.
    pub files: BTreeMap<String, String>,
}

/// Why a chart could not be used or rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartError {
    /// No such chart, or it is malformed.
    Chart(String),
    /// The values break the schema: (field path under `values`, message), every problem.
    Values(Vec<(String, String)>),
    /// A template failed to render, or rendered something that is not App manifest fields.
    Render(String),
}

/// Where charts are looked up: these directories in order, then the built-in ones.
#[derive(Debug, Clone, Default)]
pub struct Charts {
    dirs: Vec<PathBuf>,
}

impl Charts {
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self { dirs }
    }

    /// The built-in charts only.
    pub fn builtin() -> Self {
        Self::default()
    }

    /// Every chart name available.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN
            .iter()
            .filter_map(|(p, _)| p.split_once('/').map(|(n, _)| n.to_owned()))
            .collect();
        for dir in &self.dirs {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten() {
                    if e.path().join("Chart.yaml").is_file() {
                        names.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    pub fn get(&self, name: &str) -> Result<Chart, ChartError> {
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ChartError::Chart(format!(
                "`{name}` is not a chart name (lowercase letters, digits and `-`)"
            )));
        }
        for dir in &self.dirs {
            let root = dir.join(name);
            if root.join("Chart.yaml").is_file() {
                return read_dir_chart(&root);
            }
        }
        let prefix = format!("{name}/");
        let files: BTreeMap<&str, &str> = BUILTIN
            .iter()
            .filter_map(|(p, c)| p.strip_prefix(prefix.as_str()).map(|rest| (rest, *c)))
            .collect();
        if files.is_empty() {
            return Err(ChartError::Chart(format!(
                "no chart named `{name}` (available: {})",
                self.names().join(", ")
            )));
        }
        let templates = files
            .iter()
            .filter_map(|(p, c)| {
                p.strip_prefix("templates/")
                    .map(|t| (t.to_string(), c.to_string()))
            })
            .collect();
        let get = |f: &str| files.get(f).copied().unwrap_or("");
        parse_chart(
            "built-in",
            get("Chart.yaml"),
            get("values.yaml"),
            get("values.schema.json"),
            templates,
        )
    }
}

fn read_dir_chart(root: &Path) -> Result<Chart, ChartError> {
    let read = |p: &Path| {
        super::read_bounded(p, MAX_CHART_FILE)
            .map_err(|e| ChartError::Chart(format!("cannot read {}: {e}", p.display())))
    };
    let mut templates = BTreeMap::new();
    let tdir = root.join("templates");
    let entries = std::fs::read_dir(&tdir)
        .map_err(|e| ChartError::Chart(format!("cannot read {}: {e}", tdir.display())))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".j2") {
            templates.insert(name, read(&e.path())?);
        }
    }
    let values = match root.join("values.yaml") {
        p if p.exists() => read(&p)?,
        _ => String::new(),
    };
    parse_chart(
        &root.display().to_string(),
        &read(&root.join("Chart.yaml"))?,
        &values,
        &read(&root.join("values.schema.json"))?,
        templates,
    )
}

fn parse_chart(
    origin: &str,
    chart_yaml: &str,
    values_yaml: &str,
    schema_json: &str,
    templates: BTreeMap<String, String>,
) -> Result<Chart, ChartError> {
    let bad =
        |what: &str, e: &dyn std::fmt::Display| ChartError::Chart(format!("{origin}: {what}: {e}"));
    let meta: ChartFile = serde_yaml::from_str(chart_yaml).map_err(|e| bad("Chart.yaml", &e))?;
    if meta.api_version != crate::domain::API_VERSION {
        return Err(bad(
            "Chart.yaml",
            &format!("apiVersion must be {}", crate::domain::API_VERSION),
        ));
    }
    let defaults: Json = if values_yaml.trim().is_empty() {
        Json::Object(Default::default())
    } else {
        serde_yaml::from_str(values_yaml).map_err(|e| bad("values.yaml", &e))?
    };
    let schema: Json =
        serde_json::from_str(schema_json).map_err(|e| bad("values.schema.json", &e))?;
    jsonschema::validator_for(&schema).map_err(|e| bad("values.schema.json", &e))?;
    if !templates.contains_key(SPEC_TEMPLATE) {
        return Err(bad("templates", &format!("there is no {SPEC_TEMPLATE}")));
    }
    Ok(Chart {
        name: meta.name,
        version: meta.version,
        description: meta.description,
        origin: origin.to_owned(),
        defaults,
        schema,
        templates,
    })
}

/// The template that renders App manifest fields.
pub const SPEC_TEMPLATE: &str = "spec.yaml.j2";

/// `values` merged over `defaults`: mappings merge key by key, anything else replaces.
pub fn merge_values(defaults: &Json, values: &Json) -> Json {
    match (defaults, values) {
        (Json::Object(d), Json::Object(v)) => {
            let mut out = d.clone();
            for (k, val) in v {
                let merged = match d.get(k) {
                    Some(dv) => merge_values(dv, val),
                    None => val.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Json::Object(out)
        }
        (_, v) => v.clone(),
    }
}

/// A JSON pointer (`/subnets/0`) as a field path (`subnets[0]`).
fn pointer_to_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = part.replace("~1", "/").replace("~0", "~");
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

impl Chart {
    /// The merged values, checked against the schema (every problem, by field path).
    pub fn values(&self, values: &Json) -> Result<Json, ChartError> {
        let merged = merge_values(&self.defaults, values);
        let validator = jsonschema::validator_for(&self.schema)
            .map_err(|e| ChartError::Chart(format!("{}: values.schema.json: {e}", self.origin)))?;
        let mut problems: Vec<(String, String)> = validator
            .iter_errors(&merged)
            .map(|e| (pointer_to_path(e.instance_path().as_str()), e.to_string()))
            .collect();
        problems.sort();
        problems.dedup();
        if problems.is_empty() {
            Ok(merged)
        } else {
            Err(ChartError::Values(problems))
        }
    }

    /// Renders the chart for `app` with `values` (merged and checked first).
    pub fn render(&self, app: &str, values: &Json) -> Result<Rendered, ChartError> {
        let values = self.values(values)?;
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_fuel(Some(1_000_000));
        for (name, source) in &self.templates {
            env.add_template_owned(name.clone(), source.clone())
                .map_err(|e| ChartError::Render(format!("{}/templates/{name}: {e}", self.name)))?;
        }
        let ctx = minijinja::context! {
            values => minijinja::Value::from(minijinja::value::Serde(&values)),
            app => minijinja::context! { name => app },
            chart => minijinja::context! { name => &self.name, version => &self.version },
        };
        let mut total = 0usize;
        let mut rendered = BTreeMap::new();
        for name in self.templates.keys() {
            let out = env
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .map_err(|e| ChartError::Render(format!("{}/templates/{name}: {e}", self.name)))?;
            total += out.len();
            if total > MAX_RENDERED {
                return Err(ChartError::Render(format!(
                    "{} rendered more than {MAX_RENDERED} bytes",
                    self.name
                )));
            }
            rendered.insert(name.trim_end_matches(".j2").to_owned(), out);
        }
        let spec_text = rendered
            .remove(SPEC_TEMPLATE.trim_end_matches(".j2"))
            .unwrap_or_default();
        let fields: serde_yaml::Value = serde_yaml::from_str(&spec_text).map_err(|e| {
            ChartError::Render(format!(
                "{}/templates/{SPEC_TEMPLATE} did not render YAML: {e}",
                self.name
            ))
        })?;
        let fields = match fields {
            serde_yaml::Value::Mapping(m) => m,
            serde_yaml::Value::Null => Default::default(),
            _ => {
                return Err(ChartError::Render(format!(
                    "{}/templates/{SPEC_TEMPLATE} must render a mapping",
                    self.name
                )))
            }
        };
        for key in fields.keys() {
            if !matches!(key.as_str(), Some("images" | "services" | "sites" | "jobs")) {
                return Err(ChartError::Render(format!(
                    "{}/templates/{SPEC_TEMPLATE} rendered `{}`: a chart adds images, services, jobs and sites only",
                    self.name,
                    serde_yaml::to_string(key).unwrap_or_default().trim()
                )));
            }
        }
        Ok(Rendered {
            fields,
            files: rendered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(chart: &str) -> Json {
        let path = format!("{}/charts/{chart}/example.yaml", env!("CARGO_MANIFEST_DIR"));
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn snapshot_of(chart: &str) -> String {
        let c = Charts::builtin().get(chart).unwrap();
        let r = c.render("example", &example(chart)).unwrap();
        let mut out = serde_yaml::to_string(&r.fields).unwrap();
        for (name, body) in &r.files {
            out.push_str(&format!("--- {name}\n{body}\n"));
        }
        out
    }

    #[test]
    fn every_shipped_chart_renders_its_documented_example() {
        for chart in [
            "web-service",
            "backend-service",
            "worker",
            "scheduled-task",
            "static-site",
        ] {
            let text = snapshot_of(chart);
            // Files are valid JSON (task definitions) and the fields parse as manifest fields.
            let c = Charts::builtin().get(chart).unwrap();
            let r = c.render("example", &example(chart)).unwrap();
            for (name, body) in &r.files {
                serde_json::from_str::<Json>(body)
                    .unwrap_or_else(|e| panic!("{chart}/{name}: {e}\n{body}"));
            }
            insta::assert_snapshot!(format!("chart_{chart}"), text);
        }
    }

    #[test]
    fn values_are_checked_against_the_schema_with_their_paths() {
        let c = Charts::builtin().get("web-service").unwrap();
        let mut v = example("web-service");
        v["cpu"] = serde_json::json!(300);
        v["subnets"] = serde_json::json!(["subnet-0a", "nope"]);
        v["colour"] = serde_json::json!("blue");
        v.as_object_mut().unwrap().remove("cluster");
        let Err(ChartError::Values(problems)) = c.render("x", &v) else {
            panic!("accepted");
        };
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"cpu"), "{problems:?}");
        assert!(paths.contains(&"subnets[1]"), "{problems:?}");
        // Missing and unknown fields are problems of the mapping itself.
        assert!(paths.contains(&""), "{problems:?}");
        let all = format!("{problems:?}");
        assert!(all.contains("cluster") && all.contains("colour"), "{all}");
    }

    #[test]
    fn unknown_charts_and_names_are_refused() {
        assert!(matches!(
            Charts::builtin().get("nope"),
            Err(ChartError::Chart(m)) if m.contains("web-service")
        ));
        assert!(Charts::builtin().get("../etc").is_err());
    }

    #[test]
    fn defaults_merge_under_values() {
        let d = serde_json::json!({"a": 1, "m": {"x": 1, "y": 2}});
        let v = serde_json::json!({"m": {"y": 3}, "b": true});
        assert_eq!(
            merge_values(&d, &v),
            serde_json::json!({"a": 1, "b": true, "m": {"x": 1, "y": 3}})
        );
        assert_eq!(pointer_to_path("/subnets/1"), "subnets[1]");
        assert_eq!(pointer_to_path("/env/A~1B"), "env.A/B");
    }

    proptest::proptest! {
        /// The same chart and values render the same bytes, whatever order the values'
        /// mappings were written in.
        #[test]
        fn rendering_is_deterministic(
            env in proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,8}", "[ -~]{0,20}", 0..6),
            port in 1u16..,
            count in 0u32..20,
        ) {
            let c = Charts::builtin().get("web-service").unwrap();
            let mut v = example("web-service");
            v["port"] = serde_json::json!(port);
            v["desiredCount"] = serde_json::json!(count);
            v["env"] = serde_json::to_value(&env).unwrap();
            let a = c.render("x", &v).unwrap();
            let mut reversed = serde_json::Map::new();
            for (k, val) in env.iter().rev() {
                reversed.insert(k.clone(), serde_json::json!(val));
            }
            v["env"] = Json::Object(reversed);
            let b = c.render("x", &v).unwrap();
            proptest::prop_assert_eq!(&a, &b);
            let td: Json = serde_json::from_str(&a.files["taskdef.json"]).unwrap();
            proptest::prop_assert_eq!(
                td["containerDefinitions"][0]["environment"].as_array().unwrap().len(),
                env.len()
            );
        }
    }
}
