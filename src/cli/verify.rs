//! `gantry verify APP`: the live account checked for what APP's manifest names, every problem
//! at its file:line (the checks a deployment runs first).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::adapters::{aws, inventory::AwsInventory};
use crate::verify::ManifestAt;

pub async fn run(
    app: &str,
    config: Option<PathBuf>,
    manifests: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (config, loaded) = super::diff::load_app(app, config, manifests).await?;
    let sdk = aws::load(config.aws_endpoint.as_deref(), config.aws_max_attempts).await;
    let inventory = AwsInventory::new(&sdk);
    let at = ManifestAt {
        file: loaded.file.clone(),
        doc: loaded.doc,
    };
    let report = crate::verify::verify(&loaded.manifest.spec, Some(&at), &inventory).await?;
    for f in &report.findings {
        eprintln!("{f}");
    }
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    if errors > 0 {
        eprintln!(
            "{app}: {errors} problem(s), {warnings} warning(s) in {} resource(s) checked",
            report.checked
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "{app}: {} resource(s) checked, no problems{}",
        report.checked,
        if warnings > 0 {
            format!(" ({warnings} not checked)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
