//! Verify before deploy: read an app's task definitions, look up every resource they and the
//! manifest name through the [`Inventory`] port (each distinct resource once, a few at a
//! time), judge with `plan::verify`, and place each finding at its file:line. `gantry
//! verify` and a deployment's first step both run this, so a deployment that would fail on a
//! missing role, secret or target group fails in seconds, before anything is built.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use futures::stream::{self, StreamExt};

use crate::domain::taskdef::TaskDefinition;
use crate::domain::AppSpec;
use crate::plan::locate::Locator;
use crate::plan::verify::{self, Finding, Origin, Outcome, Severity};
use crate::ports::{Inventory, Lookup, LookupError};

/// Lookups in flight at once.
const CONCURRENCY: usize = 8;
/// Distinct resources one app may name: a real app names a few dozen; a crafted manifest
/// cannot make one deployment send thousands of AWS calls.
pub const MAX_LOOKUPS: usize = 256;
/// The largest manifest or task definition read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Where the app's manifest is, to give manifest findings a line: the file and the index of
/// the app's document in it.
#[derive(Debug, Clone)]
pub struct ManifestAt {
    pub file: PathBuf,
    pub doc: usize,
}

/// A finding placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The manifest (when known) or the task definition file.
    pub file: Option<PathBuf>,
    pub line: Option<usize>,
    pub finding: Finding,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: ")?;
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            if let Some(l) = self.line {
                write!(f, ":{l}")?;
            }
            write!(f, ": ")?;
        }
        let fd = &self.finding;
        write!(f, "{}: {} {}", fd.at.path, fd.resource, fd.message)?;
        if let Some(h) = &fd.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// What verifying an app found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// How many distinct resources were looked up.
    pub checked: usize,
    pub findings: Vec<Located>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Located> {
        self.findings
            .iter()
            .filter(|f| f.finding.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Located> {
        self.findings
            .iter()
            .filter(|f| f.finding.severity == Severity::Warning)
    }

    pub fn is_ok(&self) -> bool {
        self.errors().next().is_none()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A lookup failed in a way worth trying again (throttling, 5xx, a reset).
    #[error("looking up {resource}: {message}")]
    Transient { resource: String, message: String },
    #[error(
        "the app names {0} distinct AWS resources, more than the {MAX_LOOKUPS} verify looks up"
    )]
    TooMany(usize),
}

/// Verifies `spec` against the account behind `inventory`.
pub async fn verify(
    spec: &AppSpec,
    manifest: Option<&ManifestAt>,
    inventory: &dyn Inventory,
) -> Result<Report, VerifyError> {
    // Task definitions were checked when the manifests loaded; one that cannot be read now
    // leaves its references unknown (the roll step reports the file itself).
    // The services' task definitions, then the jobs' (`Origin::TaskDefinition` indexes both).
    let files: Vec<(&Option<String>, &String)> = spec
        .services
        .iter()
        .map(|s| (&s.task_definition_content, &s.task_definition))
        .chain(
            spec.jobs
                .iter()
                .map(|j| (&j.task_definition_content, &j.task_definition)),
        )
        .collect();
    let texts: Vec<Option<String>> = files
        .iter()
        .map(|(content, file)| {
            (*content)
                .clone()
                .or_else(|| read_small(Path::new(file.as_str())))
        })
        .collect();
    let taskdefs: Vec<Option<TaskDefinition>> = texts
        .iter()
        .map(|t| t.as_deref().and_then(|t| TaskDefinition::from_json(t).ok()))
        .collect();
    let refs = verify::references(spec, &taskdefs);

    let distinct: Vec<Lookup> = {
        let mut seen: Vec<Lookup> = refs.iter().map(|r| r.lookup.clone()).collect();
        seen.sort();
        seen.dedup();
        seen
    };
    if distinct.len() > MAX_LOOKUPS {
        return Err(VerifyError::TooMany(distinct.len()));
    }
    let answers: BTreeMap<Lookup, Outcome> = stream::iter(distinct)
        .map(|lookup| async move {
            let answer = inventory.look(&lookup).await;
            (lookup, answer)
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|(lookup, answer)| {
            let outcome = match answer {
                Ok(fact) => Outcome::Found(fact),
                Err(LookupError::Denied(why)) => Outcome::Denied(why),
                Err(LookupError::Failed(why)) => Outcome::Failed(why),
                Err(LookupError::Transient(message)) => {
                    return Err(VerifyError::Transient {
                        resource: lookup.describe(),
                        message,
                    })
                }
            };
            Ok((lookup, outcome))
        })
        .collect::<Result<_, _>>()?;
    let outcomes: Vec<Outcome> = refs.iter().map(|r| answers[&r.lookup].clone()).collect();

    let manifest_text = manifest.and_then(|m| read_small(&m.file));
    let manifest_lines = manifest_text.as_deref().map(Locator::new);
    let taskdef_lines: Vec<Option<Locator>> = texts
        .iter()
        .map(|t| t.as_deref().map(Locator::new))
        .collect();
    let findings = verify::judge(&refs, &outcomes)
        .into_iter()
        .map(|finding| {
            let (file, line) = match finding.at.origin {
                Origin::Manifest => (
                    manifest.map(|m| m.file.clone()),
                    manifest
                        .zip(manifest_lines.as_ref())
                        .and_then(|(m, l)| l.line(m.doc, &finding.at.path)),
                ),
                Origin::TaskDefinition { service } => (
                    files
                        .get(service)
                        .map(|(_, file)| PathBuf::from(file.as_str())),
                    taskdef_lines
                        .get(service)
                        .and_then(Option::as_ref)
                        .and_then(|l| l.line(0, &finding.at.path)),
                ),
            };
            Located {
                file,
                line,
                finding,
            }
        })
        .collect();
    Ok(Report {
        checked: answers.len(),
        findings,
    })
}

/// A manifest or task definition: a regular file of at most 1 MiB (a FIFO or a device put in
/// its place is refused, never opened).
fn read_small(path: &Path) -> Option<String> {
    crate::images::context::read_bounded(path, MAX_FILE_BYTES).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::domain::AppManifest;
    use crate::ports::Fact;

    struct Counting(AtomicUsize);

    #[async_trait::async_trait]
    impl Inventory for Counting {
        async fn look(&self, _: &Lookup) -> Result<Fact, LookupError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(Fact::Present)
        }
    }

    fn spec(subnets: usize) -> AppSpec {
        let list: Vec<String> = (0..subnets).map(|i| format!("subnet-{i}")).collect();
        let m: AppManifest = serde_yaml::from_str(&format!(
            "apiVersion: gantry/v1\nkind: App\nmetadata: {{name: web}}\nspec:\n  source: {{repo: acme/web}}\n  services:\n    - {{name: api, cluster: prod, taskDefinition: /nonexistent/td.json, network: {{subnets: [{}]}}}}\n",
            list.join(", ")
        ))
        .unwrap();
        m.spec
    }

    #[tokio::test]
    async fn each_distinct_resource_is_looked_up_once_and_their_number_is_bounded() {
        let inv = Counting(AtomicUsize::new(0));
        let mut s = spec(3);
        s.services.push(s.services[0].clone());
        let report = verify(&s, None, &inv).await.unwrap();
        // cluster + 3 subnets, named twice each; the task definition cannot be read.
        assert_eq!((report.checked, inv.0.load(Ordering::SeqCst)), (4, 4));
        assert!(report.is_ok());

        let inv = Counting(AtomicUsize::new(0));
        let err = verify(&spec(MAX_LOOKUPS + 1), None, &inv)
            .await
            .unwrap_err();
        assert!(
            matches!(err, VerifyError::TooMany(n) if n == MAX_LOOKUPS + 2),
            "{err}"
        );
        assert_eq!(inv.0.load(Ordering::SeqCst), 0, "nothing was looked up");
    }
}
