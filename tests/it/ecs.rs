//! `gantry ecs check` on task definitions in the shapes people use.

use std::process::Command;

fn check(files: &[&str], extra: &[&str]) -> (i32, String, String) {
    let root = crate::support::root().join("tests/fixtures/taskdefs");
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["ecs", "check"])
        .args(files.iter().map(|f| root.join(f)))
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn ecspresso_and_describe_output_forms_pass() {
    let (code, stdout, stderr) = check(&["ecspresso-td.json", "describe-output.json"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("(family web)") && stdout.contains("(family api)"),
        "{stdout}"
    );
}

#[test]
fn samples_without_an_execution_role_are_rejected_with_the_reason() {
    let (code, _, stderr) = check(&["nginx-fargate.json", "tomcat-fargate.json"], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("nginx-fargate.json: $.executionRoleArn: an execution role is required by $.containerDefinitions[0].logConfiguration (awslogs)"), "{stderr}");
    assert!(
        stderr.contains("tomcat-fargate.json: $.executionRoleArn"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problem(s) found"), "{stderr}");
}

#[test]
fn given_an_execution_role_the_samples_pass_and_secret_literals_never_echo() {
    let dir = tempfile::tempdir().unwrap();
    let root = crate::support::root().join("tests/fixtures/taskdefs");
    let mut td: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("nginx-fargate.json")).unwrap())
            .unwrap();
    td["executionRoleArn"] = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole".into();
    let fixed = dir.path().join("nginx.json");
    std::fs::write(&fixed, td.to_string()).unwrap();
    td["containerDefinitions"][0]["environment"] =
        serde_json::json!([{"name": "STRIPE_SECRET", "value": "sk_live_do_not_print"}]);
    let leaky = dir.path().join("leaky.json");
    std::fs::write(&leaky, td.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["ecs", "check"])
        .arg(&fixed)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["ecs", "check"])
        .arg(&leaky)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains(
            "$.containerDefinitions[0].environment[0]: `STRIPE_SECRET` looks like a secret"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("sk_live"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["ecs", "check", "--allow-env", "STRIPE_SECRET"])
        .arg(&leaky)
        .output()
        .unwrap();
    assert!(out.status.success());
}
