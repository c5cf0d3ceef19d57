//! `spec.environments`: one App document declaring several environments (`staging`,
//! `production`) expands, before charts are rendered, into one app per environment named
//! `APP-ENV`, each with the document's spec and that environment's `overrides` merged in.
//!
//! Merge rules (Kustomize's strategic merge, reduced to what App specs hold): mappings merge
//! key by key, `null` removes a key; a list whose items all have a name (`name`, or a chart
//! entry's `values.name`) merges item by item on it, new names appended; any other list or
//! value is replaced. An environment with `promotion` takes releases only by promotion, so
//! what its source builds (`build`, `images`, a site's `dir`) is not its to override.

use serde_yaml::{Mapping, Value};

use super::validate::Problem;
use crate::domain::{instance_name, is_dns_label};

/// At most this many environments per app.
pub const MAX_ENVIRONMENTS: usize = 16;

/// Fields Gantry sets on an environment's app; never written by hand.
const SET_BY_GANTRY: [&str; 2] = ["environmentOf", "promotion"];

/// What a promoted environment may not override: what its source environment built.
const BUILT: [&str; 2] = ["build", "images"];

/// One environment's document: its name and the App document it expands to.
pub struct Expanded {
    pub environment: String,
    pub document: Value,
}

/// The documents `value` stands for: itself when it declares no environments, else one per
/// environment. Problems carry field paths in the written document.
pub fn expand(value: &Value) -> Result<Vec<Expanded>, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(spec) = value.get("spec").and_then(Value::as_mapping) else {
        return Ok(vec![Expanded {
            environment: String::new(),
            document: value.clone(),
        }]);
    };
    for key in SET_BY_GANTRY {
        if spec.contains_key(key) {
            problems.push(Problem::new(
                format!("spec.{key}"),
                "set by Gantry when it expands `spec.environments`, not written in a manifest",
                "declare environments under `spec.environments` (docs/environments.md)",
            ));
        }
    }
    let Some(envs) = spec.get("environments") else {
        return if problems.is_empty() {
            Ok(vec![Expanded {
                environment: String::new(),
                document: value.clone(),
            }])
        } else {
            Err(problems)
        };
    };
    if spec.contains_key("environment") {
        problems.push(Problem::new(
            "spec.environment",
            "an app with `environments` names each of them there",
            "remove `spec.environment`",
        ));
    }
    let app = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let entries = match envs {
        Value::Sequence(list) if !list.is_empty() && list.len() <= MAX_ENVIRONMENTS => list,
        _ => {
            problems.push(Problem::new(
                "spec.environments",
                format!("must be a list of 1 to {MAX_ENVIRONMENTS} environments"),
                "e.g. `environments: [{name: staging}, {name: production, promotion: {from: staging}}]`",
            ));
            return Err(problems);
        }
    };
    let mut parsed: Vec<(String, Option<Value>, Mapping)> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("spec.environments[{i}]");
        let Some(m) = entry.as_mapping() else {
            problems.push(Problem::new(
                at,
                "must be a mapping with `name`",
                "e.g. `{name: staging}`",
            ));
            continue;
        };
        for k in m.keys() {
            if !matches!(k.as_str(), Some("name" | "promotion" | "overrides")) {
                problems.push(Problem::new(
                    format!("{at}.{}", k.as_str().unwrap_or("?")),
                    "unknown field",
                    "an environment has `name`, `promotion` and `overrides`",
                ));
            }
        }
        let name = m.get("name").and_then(Value::as_str).unwrap_or("");
        let instance = instance_name(&app, name);
        if !is_dns_label(name) || !is_dns_label(&instance) {
            problems.push(Problem::new(
                format!("{at}.name"),
                format!("`{name}` is not a lowercase DNS label, or `{instance}` is too long"),
                "use lowercase letters, digits and `-` (e.g. `staging`); APP-ENV at most 63",
            ));
        }
        if parsed.iter().any(|(n, _, _)| n == name) {
            problems.push(Problem::new(
                format!("{at}.name"),
                format!("environment `{name}` is declared twice"),
                "give each environment its own name",
            ));
        }
        let overrides = match m.get("overrides") {
            None => Mapping::new(),
            Some(Value::Mapping(o)) => o.clone(),
            Some(_) => {
                problems.push(Problem::new(
                    format!("{at}.overrides"),
                    "must be a mapping of spec fields",
                    "e.g. `overrides: {services: [{name: api, desiredCount: 4}]}`",
                ));
                Mapping::new()
            }
        };
        for key in ["environments", "environment"]
            .into_iter()
            .chain(SET_BY_GANTRY)
        {
            if overrides.contains_key(key) {
                problems.push(Problem::new(
                    format!("{at}.overrides.{key}"),
                    "cannot be overridden per environment",
                    "set it on the environment entry itself",
                ));
            }
        }
        parsed.push((name.to_owned(), m.get("promotion").cloned(), overrides));
    }
    // Promotion: from another environment, along a chain that starts at one following a branch.
    let from_of = |name: &str| -> Option<String> {
        parsed
            .iter()
            .find(|(n, _, _)| n == name)
            .and_then(|(_, p, _)| p.as_ref())
            .and_then(|p| p.get("from"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    for (i, (name, promotion, overrides)) in parsed.iter().enumerate() {
        let Some(p) = promotion else { continue };
        let at = format!("spec.environments[{i}].promotion");
        let Some(from) = p.get("from").and_then(Value::as_str) else {
            problems.push(Problem::new(
                format!("{at}.from"),
                "missing: the environment whose releases are promoted here",
                "e.g. `promotion: {from: staging}`",
            ));
            continue;
        };
        if from == name || !parsed.iter().any(|(n, _, _)| n == from) {
            problems.push(Problem::new(
                format!("{at}.from"),
                format!("`{from}` is not another environment of `{app}`"),
                format!(
                    "one of: {}",
                    parsed
                        .iter()
                        .filter(|(n, _, _)| n != name)
                        .map(|(n, _, _)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            continue;
        }
        let mut seen = vec![name.clone()];
        let mut next = Some(from.to_owned());
        while let Some(n) = next {
            if seen.contains(&n) {
                problems.push(Problem::new(
                    format!("{at}.from"),
                    format!("promotions run in a circle: {} -> {n}", seen.join(" -> ")),
                    "one environment of the chain must follow a branch (no `promotion`)",
                ));
                break;
            }
            next = from_of(&n);
            seen.push(n);
        }
        for key in BUILT {
            if overrides.contains_key(key) {
                problems.push(Problem::new(
                    format!("spec.environments[{i}].overrides.{key}"),
                    "a promoted environment runs what its source environment built",
                    "override it in the environment that builds, or drop `promotion`",
                ));
            }
        }
        if let Some(Value::Sequence(sites)) = overrides.get("sites") {
            if sites.iter().any(|s| s.get("dir").is_some()) {
                problems.push(Problem::new(
                    format!("spec.environments[{i}].overrides.sites"),
                    "a promoted environment serves the site content its source environment built",
                    "remove `dir` here; set a site's bucket, prefix or distribution",
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut base = value.clone();
    if let Some(spec) = base.get_mut("spec").and_then(Value::as_mapping_mut) {
        spec.remove("environments");
    }
    Ok(parsed
        .into_iter()
        .map(|(name, promotion, overrides)| {
            let mut doc = base.clone();
            if let Some(spec) = doc.get_mut("spec") {
                merge(spec, &Value::Mapping(overrides));
            }
            if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_mapping_mut) {
                meta.insert("name".into(), instance_name(&app, &name).into());
            }
            if let Some(spec) = doc.get_mut("spec").and_then(Value::as_mapping_mut) {
                spec.insert("environment".into(), name.clone().into());
                spec.insert("environmentOf".into(), app.clone().into());
                if let Some(p) = promotion {
                    spec.insert("promotion".into(), p);
                }
            }
            Expanded {
                environment: name,
                document: doc,
            }
        })
        .collect())
}

/// One document's problems, each said once: a problem every environment shares as it is, one
/// only some have naming them (`count` environments in all; an empty name: no environments).
pub fn said_once(
    problems: Vec<(String, super::ManifestError)>,
    count: usize,
) -> Vec<super::ManifestError> {
    let mut out: Vec<(super::ManifestError, Vec<String>)> = Vec::new();
    for (env, e) in problems {
        match out.iter_mut().find(|(o, _)| *o == e) {
            Some((_, envs)) => envs.push(env),
            None => out.push((e, vec![env])),
        }
    }
    out.into_iter()
        .map(|(mut e, envs)| {
            if envs.len() < count && envs.iter().all(|n| !n.is_empty()) {
                let names: Vec<String> = envs.iter().map(|n| format!("`{n}`")).collect();
                let which = if names.len() == 1 {
                    "environment"
                } else {
                    "environments"
                };
                e.message = format!("(in {which} {}) {}", names.join(", "), e.message);
            }
            e
        })
        .collect()
}

/// Merges `over` into `base` (see the module's rules).
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else if let Some(existing) = b.get_mut(k) {
                    merge(existing, v);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) if keyed(b) && keyed(o) => {
            for item in o {
                match b.iter_mut().find(|x| identity(x) == identity(item)) {
                    Some(existing) => merge(existing, item),
                    None => b.push(item.clone()),
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// A list item's name: `name`, or a chart entry's `chart` and `values.name`.
fn identity(v: &Value) -> Option<String> {
    if let Some(n) = v.get("name").and_then(Value::as_str) {
        return Some(n.to_owned());
    }
    let chart = v.get("chart").and_then(Value::as_str)?;
    let name = v.get("values")?.get("name")?.as_str()?;
    Some(format!("{chart}/{name}"))
}

fn keyed(list: &[Value]) -> bool {
    !list.is_empty() && list.iter().all(|v| identity(v).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    const APP: &str = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: shop\nspec:\n  source: {repo: acme/shop}\n  services:\n    - {name: api, cluster: main, taskDefinition: td.json, desiredCount: 2}\n    - {name: worker, cluster: main, taskDefinition: w.json}\n  charts:\n    - chart: static-site\n      values: {name: web, dir: out, bucket: shop-web, env: {A: '1', B: '2'}}\n";

    fn with_envs(envs: &str) -> Value {
        yaml(&format!("{APP}  environments:\n{envs}"))
    }

    #[test]
    fn without_environments_a_document_stands_for_itself() {
        let v = yaml(APP);
        let out = expand(&v).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].document, v);
    }

    #[test]
    fn each_environment_is_an_app_with_its_overrides_merged_by_name() {
        let v = with_envs(
            "    - name: staging\n      overrides:\n        services: [{name: api, cluster: staging, desiredCount: 1}]\n        charts:\n          - chart: static-site\n            values: {name: web, bucket: shop-web-staging, env: {B: null, C: '3'}}\n    - name: production\n      promotion: {from: staging, after: 30m}\n",
        );
        let out = expand(&v).unwrap();
        let names: Vec<_> = out.iter().map(|e| e.environment.as_str()).collect();
        assert_eq!(names, ["staging", "production"]);
        let staging = &out[0].document;
        assert_eq!(staging["metadata"]["name"], "shop-staging");
        let spec = &staging["spec"];
        assert_eq!(spec["environment"], "staging");
        assert_eq!(spec["environmentOf"], "shop");
        assert!(spec.get("environments").is_none());
        assert_eq!(spec["services"][0]["cluster"], "staging");
        assert_eq!(spec["services"][0]["desiredCount"], 1);
        assert_eq!(spec["services"][0]["taskDefinition"], "td.json", "kept");
        assert_eq!(spec["services"][1]["name"], "worker", "untouched");
        let values = &spec["charts"][0]["values"];
        assert_eq!(values["bucket"], "shop-web-staging");
        assert_eq!(values["dir"], "out");
        assert_eq!(values["env"], yaml("{A: '1', C: '3'}"), "null removes");
        let production = &out[1].document["spec"];
        assert_eq!(production["services"][0]["cluster"], "main");
        assert_eq!(production["promotion"], yaml("{from: staging, after: 30m}"));
    }

    #[test]
    fn lists_without_names_are_replaced() {
        let mut base = yaml("{subnets: [a, b], items: [{name: x, v: 1}]}");
        merge(&mut base, &yaml("{subnets: [c], items: [{name: y, v: 2}]}"));
        assert_eq!(
            base,
            yaml("{subnets: [c], items: [{name: x, v: 1}, {name: y, v: 2}]}")
        );
    }

    fn problems(envs: &str) -> Vec<String> {
        expand(&with_envs(envs))
            .err()
            .unwrap()
            .into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn promotions_name_another_environment_and_never_run_in_a_circle() {
        let p = problems(
            "    - {name: a, promotion: {from: b}}\n    - {name: b, promotion: {from: a}}\n",
        );
        assert!(p.iter().any(|m| m.contains("circle")), "{p:?}");
        let p = problems("    - {name: a}\n    - {name: b, promotion: {from: c}}\n");
        assert!(
            p.iter()
                .any(|m| m.starts_with("spec.environments[1].promotion.from")),
            "{p:?}"
        );
        let p = problems("    - {name: a, promotion: {from: a}}\n");
        assert!(!p.is_empty());
    }

    #[test]
    fn a_promoted_environment_cannot_override_what_its_source_built() {
        let p = problems(
            "    - {name: staging}\n    - name: production\n      promotion: {from: staging}\n      overrides: {images: [], sites: [{name: web, dir: other}]}\n",
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("spec.environments[1].overrides.images")),
            "{p:?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("spec.environments[1].overrides.sites")),
            "{p:?}"
        );
    }

    #[test]
    fn bad_names_duplicates_and_gantry_fields_are_refused() {
        let p = problems("    - {name: Staging}\n    - {name: x}\n    - {name: x, colour: red}\n");
        assert!(p.iter().any(|m| m.contains("DNS label")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("declared twice")), "{p:?}");
        assert!(p.iter().any(|m| m.contains("colour")), "{p:?}");
        let written = yaml(&format!("{APP}  environmentOf: other\n"));
        assert!(expand(&written).is_err());
        let both = yaml(&format!(
            "{APP}  environment: production\n  environments: [{{name: a}}]\n"
        ));
        assert!(expand(&both).is_err());
    }

    #[test]
    fn a_file_loads_one_app_per_environment_and_says_which_has_a_problem() {
        let text = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: shop\nspec:\n  source: {repo: acme/shop}\n  sites:\n    - {name: web, dir: out, bucket: shop-stg}\n  environments:\n    - name: staging\n    - name: production\n      promotion: {from: staging}\n      overrides:\n        sites: [{name: web, bucket: shop-prd}]\n";
        let apps = crate::manifests::parse_file(std::path::Path::new("shop.yaml"), text).unwrap();
        let names: Vec<_> = apps
            .iter()
            .map(|a| a.manifest.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["shop-staging", "shop-production"]);
        let prod = &apps[1].manifest.spec;
        assert_eq!(prod.sites[0].bucket, "shop-prd");
        assert_eq!(prod.environment_of.as_deref(), Some("shop"));
        assert_eq!(prod.promotion.as_ref().unwrap().from, "staging");
        assert!(prod.promotion.as_ref().unwrap().after.is_none());

        let bad = text.replace("bucket: shop-prd", "bucket: shop-prd, preset: bogus");
        let errors =
            crate::manifests::parse_file(std::path::Path::new("shop.yaml"), &bad).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .message
                .starts_with("(in environment `production`)"),
            "{}",
            errors[0]
        );
        let shared = text.replace(
            "    - name: staging\n",
            "    - name: staging\n      overrides: {sites: [{name: web, preset: bogus}]}\n",
        );
        let shared = shared.replace("bucket: shop-prd}]", "bucket: shop-prd, preset: bogus}]");
        let errors =
            crate::manifests::parse_file(std::path::Path::new("shop.yaml"), &shared).unwrap_err();
        assert_eq!(errors.len(), 1, "said once: {errors:?}");
        assert!(!errors[0].message.starts_with("(in"), "{}", errors[0]);
    }
}
