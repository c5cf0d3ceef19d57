//! The `gantry` binary's local commands: `--help`, `init`, `validate`.

use std::process::Command;

fn gantry() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gantry"))
}

/// Writes `files` (name, text) into `dir` and runs `gantry validate` on it; exit code and stderr.
fn validate(dir: &std::path::Path, files: &[(&str, &str)]) -> (Option<i32>, String) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let out = gantry()
        .args(["validate", "--manifests"])
        .arg(dir)
        .env_remove("GANTRY_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_reports_file_line_path_and_hint_then_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n    brnch: main\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bad-values.yaml"),
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: Api_Server\nspec:\n  source:\n    repo: acme/api\n  build:\n    commands: [make]\n    timeout: soon\n",
    )
    .unwrap();
    let out = gantry()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .env_remove("GANTRY_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let broken = dir.path().join("broken.yaml");
    assert!(
        stderr.contains(&format!(
            "{}:8: spec.source.brnch: unknown field `brnch`",
            broken.display()
        )),
        "{stderr}"
    );
    let bad = dir.path().join("bad-values.yaml");
    assert!(
        stderr.contains(&format!(
            "{}:4: metadata.name: `Api_Server` is not a valid app name",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:10: spec.build.timeout: `soon` is not a duration",
            bad.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: use e.g. `90s`"), "{stderr}");
    assert!(stderr.contains("3 problem(s) found"), "{stderr}");
}

#[test]
fn init_scaffolds_a_manifest_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("manifests");
    let out = gantry()
        .args([
            "init",
            "shop",
            "--repo",
            "acme/shop",
            "--branch",
            "trunk",
            "--manifests",
        ])
        .arg(&m)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(m.join("shop.yaml")).unwrap();
    assert!(text.contains("branch: trunk"), "{text}");
    let out = gantry()
        .args(["validate", "--manifests"])
        .arg(&m)
        .env_remove("GANTRY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 app(s) valid"));
    // A second init of the same app refuses to overwrite.
    let again = gantry()
        .args(["init", "shop", "--repo", "acme/shop", "--manifests"])
        .arg(&m)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let bad = gantry()
        .args(["init", "Bad_Name", "--repo", "nope", "--manifests"])
        .arg(&m)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("metadata.name") && err.contains("spec.source.repo"),
        "{err}"
    );
}

#[test]
fn the_repository_manifests_validate() {
    let root = crate::support::root();
    let out = gantry()
        .args(["validate", "--manifests"])
        .arg(root.join("manifests"))
        .env_remove("GANTRY_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "serve",
        "init",
        "validate",
        "deploy",
        "rollback",
        "resume",
        "status",
        "history",
        "show",
        "site",
        "ecs",
        "eventbridge",
    ] {
        let out = gantry().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: gantry"),
            "{sub}"
        );
    }
}

#[test]
fn validate_checks_the_task_definitions_services_name() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = crate::support::root().join("tests/fixtures/taskdefs");
    std::fs::copy(
        fixtures.join("nginx-fargate.json"),
        dir.path().join("nginx.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("web.yaml"),
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  source:\n    repo: acme/web\n  images:\n    - name: web\n      repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/web\n  services:\n    - name: web\n      cluster: prod\n      taskDefinition: nginx.json\n      containers:\n        nginx: web\n        sidecar: web\n",
    )
    .unwrap();
    let out = gantry()
        .args(["validate", "--manifests"])
        .arg(dir.path())
        .env_remove("GANTRY_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("web.yaml:14: spec.services[0].taskDefinition:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("$.executionRoleArn: an execution role is required"),
        "{stderr}"
    );
    assert!(stderr.contains("no container named `sidecar`"), "{stderr}");
}

#[test]
fn validate_checks_load_balancer_migration_build_args_and_shared_site_targets() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = validate(
        dir.path(),
        &[
            ("api.json", r#"{"family": "api", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
  "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
  "containerDefinitions": [{"name": "api", "image": "x", "essential": true, "portMappings": [{"containerPort": 8000}]}]}"#),
            ("api.yaml", "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n  images:\n    - name: api\n      repository: 123456789012.dkr.ecr.us-east-1.amazonaws.com/api\n      base: python:3.12-slim\n      buildArgs:\n        PY: \"3.12\"\n  services:\n    - name: api\n      cluster: prod\n      taskDefinition: api.json\n      loadBalancer:\n        targetGroupArn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api/1\n        containerName: api\n        containerPort: 80\n      migration:\n        container: migrate\n        command: [alembic, upgrade, head]\n      serviceConnect:\n        namespace: shop\n        services:\n          - portName: web\n"),
            ("landing.yaml", "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: landing\nspec:\n  source:\n    repo: acme/landing\n  sites:\n    - name: web\n      dir: out\n      bucket: shared-site\n"),
            ("admin.yaml", "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: admin\nspec:\n  source:\n    repo: acme/admin\n  sites:\n    - name: admin\n      dir: dist\n      bucket: shared-site\n"),
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    for want in [
        "api.yaml:12: spec.images[0].buildArgs: buildArgs apply to Dockerfile builds",
        "api.yaml:21: spec.services[0].loadBalancer.containerPort: container `api` in",
        "maps no port 80",
        "its portMappings have: 8000",
        "api.yaml:23: spec.services[0].migration.container:",
        "has no container named `migrate`",
        "api.yaml:26: spec.services[0].serviceConnect.namespace: `shop` is not a Cloud Map namespace ARN",
        "api.yaml:28: spec.services[0].serviceConnect.services[0].portName:",
        "names no port mapping `web`",
        "give the container's portMappings entry a `name`",
        "landing.yaml:11: spec.sites[0].bucket: site `web` syncs s3://shared-site/ like site `admin` of app `admin`",
        "each would mark the other's files stale",
    ] {
        assert!(stderr.contains(want), "{want} in:\n{stderr}");
    }
}

/// `gantry render` of each example app: snapshotted, and the same bytes on every run.
#[test]
fn render_prints_each_example_app_the_same_way_every_time() {
    let root = crate::support::root();
    for app in ["portfolio", "startup-expo"] {
        let run = || {
            let out = gantry()
                .current_dir(&root)
                .args(["render", app, "--manifests", "manifests/examples"])
                .env_remove("GANTRY_CONFIG")
                .env_remove("GANTRY_MANIFESTS")
                .env_remove("GANTRY_SOURCE_REPO")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let first = run();
        assert_eq!(first, run(), "{app} rendered differently");
        insta::assert_snapshot!(format!("render_{app}"), first);
    }
}

/// `gantry iam-policy` of each example: scoped to what the manifests name; no write action on
/// `*` but those AWS offers no resource scoping for; the portfolio's policy snapshotted.
#[test]
fn iam_policy_scopes_every_write_to_what_the_manifests_name() {
    let root = crate::support::root();
    for app in ["portfolio", "startup-expo"] {
        let out = gantry()
            .current_dir(&root)
            .args(["iam-policy", "--manifests"])
            .arg(format!("manifests/examples/{app}"))
            .env_remove("GANTRY_CONFIG")
            .env_remove("GANTRY_MANIFESTS")
            .env_remove("GANTRY_SOURCE_REPO")
            .env_remove("GANTRY_EVENTBRIDGE_BUS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let policy: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            gantry::plan::iam::unscoped_writes(&policy),
            Vec::<String>::new(),
            "{text}"
        );
        let statements = policy["Statement"].as_array().unwrap();
        let star: Vec<&serde_json::Value> = statements
            .iter()
            .filter(|s| s["Resource"].as_array().unwrap().iter().any(|r| r == "*"))
            .collect();
        assert_eq!(star.len(), 1, "one statement on *: {text}");
        assert_eq!(star[0]["Sid"], "NoResourceScopingOfferedByAws");
        let pass = statements
            .iter()
            .find(|s| s["Sid"] == "PassTaskRolesToEcs")
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(
            pass["Condition"]["StringEquals"]["iam:PassedToService"],
            "ecs-tasks.amazonaws.com"
        );
        if app == "portfolio" {
            insta::assert_snapshot!("iam_policy_portfolio", text);
        }
    }
}

/// The bootstrap template (deploy/gantry.yaml) is clean under cfn-lint (installed into the
/// test venv by scripts/setup.sh).
#[test]
fn the_bootstrap_template_passes_cfn_lint() {
    let root = crate::support::root();
    let lint = root.join(".stack/venv/bin/cfn-lint");
    let out = std::process::Command::new(&lint)
        .arg("deploy/gantry.yaml")
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} not runnable ({e}): run scripts/setup.sh",
                lint.display()
            )
        });
    assert!(
        out.status.success(),
        "cfn-lint deploy/gantry.yaml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `gantry health` (the task definition's health check) exits 0 against a daemon, 1 without.
#[tokio::test]
async fn health_exits_zero_only_when_the_daemon_answers() {
    let app = crate::support::TestApp::start(&[]).await;
    let ok = crate::support::gantry_cli()
        .args(["health", "--server", &app.url("")])
        .output()
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = crate::support::gantry_cli()
        .args(["health", "--server", &format!("http://127.0.0.1:{port}")])
        .output()
        .await
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    app.finish().await;
}

/// A chart's values that break its schema are refused at file:line with the field path.
#[test]
fn broken_chart_values_are_rejected_with_the_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let m = "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n  charts:\n    - chart: web-service\n      values:\n        name: api\n        cluster: c\n        image: api\n        cpu: 300\n        subnets: [subnet-0a, nope]\n        targetGroupArn: arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/x/y\n        region: us-east-1\n        executionRoleArn: arn:aws:iam::1:role/x\n    - chart: no-such-chart\n";
    let (code, stderr) = validate(dir.path(), &[("api.yaml", m)]);
    assert_eq!(code, Some(1), "{stderr}");
    let file = dir.path().join("api.yaml");
    assert!(
        stderr.contains(&format!(
            "{}:14: spec.charts[0].values.cpu:",
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{}:15: spec.charts[0].values.subnets[1]:",
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("spec.charts[1].chart: no chart named `no-such-chart`"),
        "{stderr}"
    );
}

/// `gantry import copilot`: a Copilot workspace's services become App manifests on charts
/// that `gantry validate` accepts, a Scheduled Job on the scheduled-task chart; nothing is
/// overwritten without --force.
#[test]
fn copilot_manifests_import_as_chart_manifests_that_validate() {
    let dir = tempfile::tempdir().unwrap();
    let copilot = dir.path().join("copilot");
    let write = |svc: &str, text: &str| {
        std::fs::create_dir_all(copilot.join(svc)).unwrap();
        std::fs::write(copilot.join(svc).join("manifest.yml"), text).unwrap();
    };
    // Shapes from Copilot's manifest reference.
    write("frontend", "name: frontend\ntype: Load Balanced Web Service\nhttp:\n  path: '/'\n  healthcheck: '/_healthcheck'\nimage:\n  build: frontend/Dockerfile\n  port: 8080\ncpu: 256\nmemory: 512\ncount: 1\nexec: true\nvariables:\n  LOG_LEVEL: info\nsecrets:\n  GITHUB_TOKEN: GITHUB_TOKEN\n");
    write("api", "name: api\ntype: Backend Service\nimage:\n  build:\n    dockerfile: api/Dockerfile\n    context: api\n  port: 3000\ncount:\n  range: 1-10\n  cpu_percentage: 70\n");
    write(
        "web",
        "name: web\ntype: Static Site\nfiles:\n  - source: web/dist\n    recursive: true\n",
    );
    write("nightly", "name: nightly\ntype: Scheduled Job\non:\n  schedule: '0 3 * * 1-5'\nimage:\n  build: Dockerfile\ncommand: python report.py\nretries: 3\n");
    std::fs::create_dir_all(copilot.join("environments/prod")).unwrap();
    std::fs::write(
        copilot.join("environments/prod/manifest.yml"),
        "name: prod\ntype: Environment\n",
    )
    .unwrap();
    let out = dir.path().join("manifests");
    let run = |extra: &[&str]| {
        gantry()
            .args(["import", "copilot"])
            .arg(&copilot)
            .args([
                "--repo", "acme/shop", "--cluster", "shop", "--subnets", "subnet-0a1b,subnet-0c2d",
                "--security-groups", "sg-0a1b", "--execution-role",
                "arn:aws:iam::123456789012:role/shop-exec", "--target-group",
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/frontend/0123456789abcdef",
                "--bucket", "acme-shop-web", "--events-role",
                "arn:aws:iam::123456789012:role/shop-events", "--out",
            ])
            .arg(&out)
            .args(extra)
            .env_remove("GANTRY_CONFIG")
            .output()
            .unwrap()
    };
    let o = run(&[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    for name in ["frontend", "api", "web", "nightly"] {
        assert!(
            out.join(format!("{name}.yaml")).is_file(),
            "{name}: {stderr}"
        );
    }
    assert!(stderr.contains("ECS Exec"), "{stderr}");
    assert!(
        stderr.contains("`retries` has no Gantry equivalent"),
        "{stderr}"
    );
    let job = std::fs::read_to_string(out.join("nightly.yaml")).unwrap();
    assert!(job.contains("chart: scheduled-task"), "{job}");
    assert!(job.contains("cron(0 3 ? * 2-6 *)"), "{job}");
    let (code, errs) = validate(&out, &[]);
    assert_eq!(code, Some(0), "{errs}");
    // Nothing is overwritten without --force; an unknown service type is refused by name.
    write(
        "render",
        "name: render\ntype: Request-Driven Web Service\nimage:\n  build: Dockerfile\n",
    );
    let o = run(&[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("unknown Copilot service type `Request-Driven Web Service`"),
        "{stderr}"
    );
    assert!(stderr.contains("exists (use --force"), "{stderr}");
}
