//! `gantry ecs check`: the task definition checks as a standalone command for any CI.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::domain::taskdef::TaskDefinition;
use crate::plan::taskdef_check::check;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Task definition JSON files (register-task-definition input or describe-task-definition output).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// An environment variable allowed to hold a literal value despite a secret-looking name.
    #[arg(long = "allow-env", value_name = "NAME")]
    pub allow_env: Vec<String>,
}

/// Prints every problem of every file; exits 1 if there is any.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut problems = 0;
    for file in &args.files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", file.display());
                problems += 1;
                continue;
            }
        };
        let td = match TaskDefinition::from_json(&text) {
            Ok(td) => td,
            Err(e) => {
                eprintln!(
                    "{}:{}:{}: not a task definition: {e}",
                    file.display(),
                    e.line(),
                    e.column()
                );
                problems += 1;
                continue;
            }
        };
        let found = check(&td, &args.allow_env);
        for p in &found {
            eprintln!("{}: {}: {}", file.display(), p.path, p.message);
            if !p.hint.is_empty() {
                eprintln!("  hint: {}", p.hint);
            }
        }
        if found.is_empty() {
            println!("ok  {} (family {})", file.display(), td.family);
        }
        problems += found.len();
    }
    if problems > 0 {
        eprintln!("{problems} problem(s) found");
        Ok(ExitCode::FAILURE)
    } else {
        Ok(ExitCode::SUCCESS)
    }
}
