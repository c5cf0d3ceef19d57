//! `gantry render`: an app's fully rendered desired state as one YAML document, charts
//! expanded: the spec, each service's normalised task definition (the containers Gantry fills
//! in show their image's repository), and each site's generated CloudFront Function. The same
//! manifests render the same bytes: mappings are sorted, and nothing machine-specific (an
//! absolute path, a time) is printed.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::edge::{function_code, EdgeRules};
use super::taskdef_diff::{normalise, with_images};
use crate::domain::taskdef::TaskDefinition;
use crate::domain::{AppManifest, ManifestRevision};

/// The rendered document. `file` is the manifest's file as its source names it.
pub fn render(
    app: &AppManifest,
    file: &str,
    revision: &ManifestRevision,
) -> Result<String, String> {
    let mut spec = serde_json::to_value(&app.spec).map_err(|e| e.to_string())?;
    let held =
        |kind: &str, name: &str, content: Option<&str>, containers: &BTreeMap<String, String>| {
            let text = content
                .ok_or_else(|| format!("{kind} `{name}`: the task definition was not loaded"))?;
            let td = TaskDefinition::from_json(text)
                .map_err(|e| format!("{kind} `{name}`: not a task definition: {e}"))?;
            let images: BTreeMap<String, String> = containers
                .iter()
                .filter_map(|(container, image)| {
                    app.spec.images.iter().find(|i| &i.name == image).map(|i| {
                        (
                            container.clone(),
                            format!("{}@<built by the deployment>", i.repository),
                        )
                    })
                })
                .collect();
            Ok::<_, String>(normalise(&with_images(&td, &images)))
        };
    let mut taskdefs = BTreeMap::new();
    for svc in &app.spec.services {
        let td = held(
            "service",
            &svc.name,
            svc.task_definition_content.as_deref(),
            &svc.containers,
        )?;
        taskdefs.insert(svc.name.clone(), td);
    }
    let mut job_taskdefs = BTreeMap::new();
    for job in &app.spec.jobs {
        let td = held(
            "job",
            &job.name,
            job.task_definition_content.as_deref(),
            &job.containers,
        )?;
        job_taskdefs.insert(job.name.clone(), td);
    }
    // Where the files were read is not part of the desired state.
    for kind in ["services", "jobs"] {
        let list = spec.get_mut(kind).and_then(Value::as_array_mut);
        for s in list.into_iter().flatten() {
            if let Some(m) = s.as_object_mut() {
                m.remove("taskDefinitionContent");
                m.remove("taskDefinition");
            }
        }
    }
    let mut edge = BTreeMap::new();
    for site in &app.spec.sites {
        let rules = EdgeRules {
            redirects: site.redirects.clone(),
            pretty_urls: site.pretty_urls,
            spa: site.spa,
        };
        if !rules.is_empty() {
            edge.insert(site.name.clone(), function_code(&rules));
        }
    }
    let doc = json!({
        "app": app.metadata.name,
        "manifest": file,
        "revision": revision,
        "spec": spec,
        "taskDefinitions": taskdefs,
        "edgeFunctions": edge,
    });
    let mut doc = doc;
    if !job_taskdefs.is_empty() {
        doc["jobTaskDefinitions"] = json!(job_taskdefs);
    }
    let sorted = sort(doc);
    serde_yaml::to_string(&sorted).map_err(|e| e.to_string())
}

/// Mappings with their keys in order (serde_json keeps insertion order only with a feature;
/// sort explicitly so output never depends on it).
fn sort(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<String, Value> =
                m.into_iter().map(|(k, v)| (k, sort(v))).collect();
            Value::Object(sorted.into_iter().collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
        other => other,
    }
}
