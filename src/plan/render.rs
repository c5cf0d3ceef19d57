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
    let mut taskdefs = BTreeMap::new();
    for (i, svc) in app.spec.services.iter().enumerate() {
        let text = svc
            .task_definition_content
            .as_deref()
            .ok_or_else(|| format!("service `{}`: the task definition was not loaded", svc.name))?;
        let td = TaskDefinition::from_json(text)
            .map_err(|e| format!("service `{}`: not a task definition: {e}", svc.name))?;
        let images: BTreeMap<String, String> = svc
            .containers
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
        taskdefs.insert(svc.name.clone(), normalise(&with_images(&td, &images)));
        // Where the file was read is not part of the desired state.
        if let Some(s) = spec["services"].get_mut(i) {
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
