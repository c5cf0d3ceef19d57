//! ECS rollouts against moto (with the launcher's deployment progression) through the real
//! AWS SDK: success, unchanged pushes, circuit-breaker rollback, timeout, failed migration.

use std::path::Path;
use std::time::Duration;

use aws_sdk_ecs::types::Tag;
use serde_json::{json, Value};

use crate::sites::{aws_config, moto_url};
use crate::support::{push_body, GitRepo, TestApp};

pub(crate) struct Ecs {
    pub(crate) client: aws_sdk_ecs::Client,
    pub(crate) cluster: String,
    pub(crate) subnet: String,
}

impl Ecs {
    pub(crate) async fn new(name: &str) -> Self {
        let config = aws_config(&moto_url()).await;
        let client = aws_sdk_ecs::Client::new(&config);
        let cluster = format!("{name}-{}", std::process::id());
        client
            .create_cluster()
            .cluster_name(&cluster)
            .send()
            .await
            .unwrap();
        ensure_task_resources();
        Self {
            client,
            cluster,
            subnet: default_subnet(),
        }
    }

    pub(crate) async fn service(&self, name: &str) -> aws_sdk_ecs::types::Service {
        let out = self
            .client
            .describe_services()
            .cluster(&self.cluster)
            .services(name)
            .send()
            .await
            .unwrap();
        out.services()[0].clone()
    }

    async fn tag(&self, service: &str, behaviour: &str) {
        let arn = self
            .service(service)
            .await
            .service_arn()
            .unwrap()
            .to_owned();
        let tag = Tag::builder()
            .key("gantry-test-behaviour")
            .value(behaviour)
            .build();
        self.client
            .tag_resource()
            .resource_arn(arn)
            .tags(tag)
            .send()
            .await
            .unwrap();
    }

    /// The task definition the service runs now.
    async fn running(&self, service: &str) -> String {
        self.service(service)
            .await
            .task_definition()
            .unwrap()
            .to_owned()
    }

    async fn revisions(&self, family: &str) -> usize {
        self.client
            .list_task_definitions()
            .family_prefix(family)
            .send()
            .await
            .unwrap()
            .task_definition_arns()
            .len()
    }
}

/// A subnet of moto's default VPC, through the AWS CLI that scripts/setup.sh installs.
/// Runs `aws ec2 ARGS --output text` (the venv's AWS CLI) against moto; its trimmed output.
fn aws_ec2(args: &[&str]) -> String {
    let mut all = vec!["ec2"];
    all.extend_from_slice(args);
    let out = aws_cli(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Runs `aws ARGS --output text` (the venv's AWS CLI) against moto.
pub fn aws_cli(args: &[&str]) -> std::process::Output {
    let aws = crate::support::root().join(".stack/venv/bin/aws");
    std::process::Command::new(&aws)
        .args(["--endpoint-url", &moto_url(), "--region", "us-east-1"])
        .args(args)
        .args(["--output", "text"])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "c4n4ry-aws-secret")
        .output()
        .unwrap_or_else(|e| panic!("{} not runnable ({e}): run scripts/setup.sh", aws.display()))
}

/// Creates a resource through the AWS CLI, once: an "already exists" answer is fine.
pub fn ensure(args: &[&str]) {
    let out = aws_cli(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("AlreadyExists"),
        "aws {args:?}: {err}"
    );
}

/// What the test task definition names: its execution role and log group (verify checks
/// both before a deployment builds anything).
pub fn ensure_task_resources() {
    ensure(&[
        "iam",
        "create-role",
        "--role-name",
        "ecsTaskExecutionRole",
        "--assume-role-policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    ]);
    ensure(&["logs", "create-log-group", "--log-group-name", "/ecs/test"]);
}

pub fn default_subnet() -> String {
    aws_ec2(&["describe-subnets", "--query", "Subnets[0].SubnetId"])
}

/// A new security group in moto's default VPC; its id.
fn security_group(name: &str) -> String {
    aws_ec2(&[
        "create-security-group",
        "--group-name",
        name,
        "--description",
        "gantry test",
        "--query",
        "GroupId",
    ])
}

pub(crate) fn task_definition(family: &str, memory: &str, env: Value) -> String {
    let td = json!({
        "family": family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": memory,
        "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
        "containerDefinitions": [{
            "name": "app",
            "image": "public.ecr.aws/nginx/nginx:1.27",
            "essential": true,
            "portMappings": [{"name": "http", "containerPort": 80, "protocol": "tcp"}],
            "environment": env,
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/test", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "app"}}
        }]
    });
    serde_json::to_string_pretty(&td).unwrap()
}

fn manifest(repo: &Path, ecs: &Ecs, service: &str, extra: &str) -> String {
    format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  rolloutTimeout: 2s\n  source:\n    repo: acme/api\n    url: {}\n  services:\n    - name: {service}\n      cluster: {}\n      taskDefinition: td.json\n      desiredCount: 2\n      network:\n        subnets: [{}]\n{extra}",
        repo.display(),
        ecs.cluster,
        ecs.subnet
    )
}

struct Setup {
    app: TestApp,
    /// The daemon's extra environment, for a restart with new manifests.
    env: Vec<(String, String)>,
    ecs: Ecs,
    repo: GitRepo,
    service: String,
    family: String,
    _tmp: tempfile::TempDir,
}

impl Setup {
    async fn new(name: &str, extra: &str) -> Self {
        Self::with_env(name, extra, &[("GANTRY_ECS_POLL", "20ms")]).await
    }

    async fn with_env(name: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = GitRepo::new(&tmp.path().join("api"));
        repo.commit(&[("main.py", "print(0)")], "init");
        let ecs = Ecs::new(name).await;
        let service = format!("svc-{name}");
        let family = format!("{name}-{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        std::fs::write(
            dir.path().join("manifests/td.json"),
            task_definition(&family, "512", json!([])),
        )
        .unwrap();
        // `{cluster}` and `{subnet}` in `extra` (a second service) are this test's.
        let extra = extra
            .replace("{cluster}", &ecs.cluster)
            .replace("{subnet}", &ecs.subnet);
        let m = manifest(&repo.path, &ecs, &service, &extra);
        let moto = moto_url();
        let mut vars = vec![("GANTRY_AWS_ENDPOINT_URL", moto.as_str())];
        vars.extend_from_slice(env);
        let app = TestApp::start_in(dir, &[("api.yaml", m)], &vars).await;
        Self {
            app,
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ecs,
            repo,
            service,
            family,
            _tmp: tmp,
        }
    }

    /// Restarts the daemon on the same data with `manifest` as the app's manifest.
    async fn reconfigure(self, manifest: String) -> Self {
        let dir = self.app.stop().await;
        let vars: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let app = TestApp::start_in(dir, &[("api.yaml", manifest)], &vars).await;
        Self { app, ..self }
    }

    /// `gantry diff api` against the manifests the daemon runs.
    async fn diff(&self) -> String {
        let out = crate::support::gantry_cli()
            .args(["diff", "api", "--manifests"])
            .arg(self.app.dir.path().join("manifests"))
            .env("GANTRY_AWS_ENDPOINT_URL", moto_url())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Changes the task definition and reloads the manifests, as an operator's SIGHUP does.
    fn write_td(&self, memory: &str, env: Value) {
        std::fs::write(
            self.app.dir.path().join("manifests/td.json"),
            task_definition(&self.family, memory, env),
        )
        .unwrap();
        assert!(self.app.reload(), "the manifests reload");
    }

    /// Commits, pushes and waits for the deployment; returns it with step logs.
    async fn push(&self, n: u32) -> Value {
        let sha = self.repo.commit(
            &[("main.py", &format!("print({n})"))],
            &format!("change {n}"),
        );
        let (status, r) = self
            .app
            .hook(
                "push",
                &format!("ecs-{n}"),
                &push_body("acme/api", "refs/heads/main", &sha),
            )
            .await;
        assert_eq!(status, 202, "{r}");
        self.app.wait_idle(Duration::from_secs(60)).await;
        self.app
            .api(&format!("/api/v1/deployments/{}", r["deployments"][0]))
            .await
    }
}

fn step_log(d: &Value, kind: &str) -> String {
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == kind)
        .map(|s| s["log"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default()
}

fn roll_log(d: &Value) -> String {
    step_log(d, "roll_services")
}

#[tokio::test]
async fn rollout_completes_and_an_unchanged_push_registers_nothing() {
    let s = Setup::new("ok", "").await;
    let d = s.push(1).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let svc = s.ecs.service(&s.service).await;
    assert!(svc
        .task_definition()
        .unwrap()
        .ends_with(&format!("{}:1", s.family)));
    let primary = svc
        .deployments()
        .iter()
        .find(|x| x.status() == Some("PRIMARY"))
        .unwrap();
    assert_eq!(primary.rollout_state().unwrap().as_str(), "COMPLETED");
    assert_eq!(primary.running_count(), 2);
    // Same task definition: no new revision, no service update.
    let d = s.push(2).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert!(
        roll_log(&d).contains("task definition unchanged"),
        "{}",
        roll_log(&d)
    );
    assert_eq!(s.ecs.revisions(&s.family).await, 1);
    // A real change: revision 2, rolled and completed; the diff is in the log.
    s.write_td("1024", json!([]));
    let d = s.push(3).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert!(
        roll_log(&d).contains("+  \"memory\": \"1024\""),
        "{}",
        roll_log(&d)
    );
    assert_eq!(s.ecs.revisions(&s.family).await, 2);
    assert!(s
        .ecs
        .running(&s.service)
        .await
        .ends_with(&format!("{}:2", s.family)));
    let releases = s.app.store().releases("api", 5).await.unwrap();
    assert!(releases[0].services[&s.service].ends_with(":2"));
    s.app.finish().await;
}

#[tokio::test]
async fn a_circuit_breaker_rollback_is_reported_as_failure() {
    let s = Setup::new("breaker", "").await;
    assert_eq!(s.push(1).await["state"], "succeeded");
    s.ecs.tag(&s.service, "fail").await;
    s.write_td("1024", json!([]));
    let d = s.push(2).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.contains("circuit breaker"), "{reason}");
    assert!(
        reason.contains("ECS rolled the service back to"),
        "{reason}"
    );
    assert!(s.ecs.running(&s.service).await.ends_with(":1"));
    s.app.finish().await;
}

#[tokio::test]
async fn a_hanging_rollout_times_out_and_gantry_rolls_back() {
    let s = Setup::new("hang", "").await;
    assert_eq!(s.push(1).await["state"], "succeeded");
    s.ecs.tag(&s.service, "hang").await;
    s.write_td("1024", json!([]));
    let d = s.push(2).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.contains("not complete after 2s"), "{reason}");
    assert!(
        reason.contains("Gantry rolled the service back to") && reason.ends_with(":1"),
        "{reason}"
    );
    assert!(s.ecs.running(&s.service).await.ends_with(":1"));
    s.app.finish().await;
}

#[tokio::test]
async fn a_failed_migration_stops_the_rollout_before_any_service_changes() {
    let s = Setup::new(
        "migrate",
        "      migration:\n        container: app\n        command: [\"python\", \"migrate.py\"]\n",
    )
    .await;
    assert_eq!(s.push(1).await["state"], "succeeded");
    // The launcher makes tasks exit with GANTRY_TEST_EXIT_CODE.
    s.write_td(
        "1024",
        json!([{"name": "GANTRY_TEST_EXIT_CODE", "value": "3"}]),
    );
    let d = s.push(2).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains("migration for service")
            && reason.contains("exited 3")
            && reason.contains("no service was changed"),
        "{reason}"
    );
    assert!(s.ecs.running(&s.service).await.ends_with(":1"));
    s.app.finish().await;
}

#[tokio::test]
async fn task_definitions_in_every_form_register_and_read_back_unchanged() {
    use gantry::domain::taskdef::TaskDefinition;
    use gantry::plan::taskdef_diff::render_diff;
    use gantry::ports::ServiceDeployer;
    let config = aws_config(&moto_url()).await;
    let ecs = gantry::adapters::ecs::Ecs::new(&config);
    let root = crate::support::root().join("tests/fixtures/taskdefs");
    for file in [
        "ecspresso-td.json",
        "describe-output.json",
        "nginx-fargate.json",
        "tomcat-fargate.json",
    ] {
        let mut td =
            TaskDefinition::from_json(&std::fs::read_to_string(root.join(file)).unwrap()).unwrap();
        // The samples are published without an execution role; given one, they register.
        td.execution_role_arn
            .get_or_insert_with(|| "arn:aws:iam::123456789012:role/ecsTaskExecutionRole".into());
        td.family = format!("{}-{}", td.family, std::process::id());
        assert!(
            gantry::plan::taskdef_check::check(&td, &[]).is_empty(),
            "{file}"
        );
        let arn = ecs
            .register(&td)
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let back = ecs.task_definition(&arn).await.unwrap();
        assert_eq!(
            render_diff(Some(&back), &td),
            "",
            "{file} reads back as registered"
        );
    }
}

#[tokio::test]
async fn rollback_holds_the_app_and_a_push_does_not_undo_it_until_the_hold_is_released() {
    use crate::support::TOKEN;
    let s = Setup::new("rollback", "").await;
    let first = s.push(1).await;
    assert_eq!(first["state"], "succeeded", "{first:#}");
    s.write_td("1024", json!([]));
    assert_eq!(s.push(2).await["state"], "succeeded");
    assert!(s.ecs.running(&s.service).await.ends_with(":2"));
    let r = s
        .app
        .http
        .post(s.app.url("/api/v1/apps/api/rollback"))
        .bearer_auth(TOKEN)
        .json(&json!({"actor": "cli:alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["restores"], first["id"]);
    s.app.wait_idle(Duration::from_secs(60)).await;
    let d = s.app.api(&format!("/api/v1/deployments/{}", r["id"])).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert_eq!(d["trigger"], "rollback");
    assert_eq!(d["sha"], first["sha"]);
    let kinds: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["verify", "fetch_source", "roll_services", "report"],
        "nothing is rebuilt"
    );
    // Exactly the recorded revision, not a new registration of the old file.
    assert!(s.ecs.running(&s.service).await.ends_with(":1"));
    assert_eq!(s.ecs.revisions(&s.family).await, 2);
    let apps = s.app.api("/api/v1/apps").await;
    assert!(
        apps[0]["paused"]["reason"]
            .as_str()
            .unwrap()
            .contains("rolled back to deployment"),
        "{apps}"
    );
    assert_eq!(apps[0]["paused"]["kind"], "hold", "{apps}");
    // A push while held deploys nothing, and says why.
    let sha = s.repo.commit(&[("main.py", "print(3)")], "change 3");
    let (status, resp) = s
        .app
        .hook(
            "push",
            "paused-push",
            &push_body("acme/api", "refs/heads/main", &sha),
        )
        .await;
    assert_eq!(status, 200, "{resp}");
    assert!(
        resp["ignored"]
            .as_str()
            .unwrap()
            .contains("gantry hold release api"),
        "{resp}"
    );
    assert!(
        s.ecs.running(&s.service).await.ends_with(":1"),
        "not undone"
    );
    // Released: the next push deploys again.
    let r = s
        .app
        .http
        .post(s.app.url("/api/v1/apps/api/hold/release"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["released"], true);
    let d = s.push(4).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    assert!(!s.ecs.running(&s.service).await.ends_with(":1"));
    let audit = s.app.api("/api/v1/audit?target=api").await;
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["hold.release", "rollback"]);
    s.app.finish().await;
}

#[tokio::test]
async fn old_unused_revisions_are_deregistered() {
    let s = Setup::new("keep", "  keepRevisions: 2\n").await;
    for (n, memory) in [(1, "512"), (2, "1024"), (3, "2048")] {
        s.write_td(memory, json!([]));
        let d = s.push(n).await;
        assert_eq!(d["state"], "succeeded", "{d:#}");
    }
    let active = s
        .ecs
        .client
        .list_task_definitions()
        .family_prefix(&s.family)
        .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
        .send()
        .await
        .unwrap();
    let revisions: Vec<&str> = active
        .task_definition_arns()
        .iter()
        .map(|a| a.rsplit(':').next().unwrap())
        .collect();
    assert_eq!(
        revisions,
        ["2", "3"],
        "the oldest, unused revision was deregistered"
    );
    let d = s.app.deployments("api").await;
    let log = roll_log(
        &s.app
            .api(&format!("/api/v1/deployments/{}", d[0]["id"]))
            .await,
    );
    assert!(
        log.contains("deregistered old revision") && log.contains(":1"),
        "{log}"
    );
    s.app.finish().await;
}

#[tokio::test]
async fn gantry_diff_shows_what_a_deployment_would_change() {
    let s = Setup::new("diff", "").await;
    assert_eq!(s.push(1).await["state"], "succeeded");
    s.write_td("1024", json!([]));
    let out = crate::support::gantry_cli()
        .args(["diff", "api", "--manifests"])
        .arg(s.app.dir.path().join("manifests"))
        .env("GANTRY_AWS_ENDPOINT_URL", moto_url())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "service {} (cluster {})",
            s.service, s.ecs.cluster
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("-  \"memory\": \"512\"") && stdout.contains("+  \"memory\": \"1024\""),
        "{stdout}"
    );
    // With --sha, the images recorded for that commit are used (through the daemon's API).
    let first = s.app.deployments("api").await[0]["sha"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = crate::support::gantry_cli()
        .args(["diff", "api", "--sha", &first[..10], "--manifests"])
        .arg(s.app.dir.path().join("manifests"))
        .env("GANTRY_SERVER", s.app.url(""))
        .env("GANTRY_API_TOKEN", crate::support::TOKEN)
        .env("GANTRY_AWS_ENDPOINT_URL", moto_url())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = crate::support::gantry_cli()
        .args(["diff", "api", "--sha", "0000000", "--manifests"])
        .arg(s.app.dir.path().join("manifests"))
        .env("GANTRY_SERVER", s.app.url(""))
        .env("GANTRY_API_TOKEN", crate::support::TOKEN)
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no release of api at 0000000"));
    // Diffing changes nothing.
    assert_eq!(s.ecs.revisions(&s.family).await, 1);
    s.app.finish().await;
}

#[tokio::test]
async fn ecs_events_from_eventbridge_bring_the_verdict_sooner() {
    // Polls every 30 s: without events this rollout would take minutes.
    let s = Setup::with_env(
        "events",
        "",
        &[
            ("GANTRY_ECS_POLL", "30s"),
            ("GANTRY_EVENTBRIDGE_API_KEY", "eb-key-123"),
        ],
    )
    .await;
    let post = |key: &'static str, body: Value| {
        let (http, url) = (s.app.http.clone(), s.app.url("/hooks/eventbridge"));
        async move {
            http.post(url)
                .header("x-gantry-key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let arn = format!(
        "arn:aws:ecs:us-east-1:123456789012:service/{}/{}",
        s.ecs.cluster, s.service
    );
    let event = json!({
        "version": "0", "id": "9c9b9e1c", "detail-type": "ECS Deployment State Change", "source": "aws.ecs",
        "account": "123456789012", "time": "2026-11-25T10:00:00Z", "region": "us-east-1", "resources": [arn],
        "detail": {"eventType": "INFO", "eventName": "SERVICE_DEPLOYMENT_IN_PROGRESS", "deploymentId": "ecs-svc/123", "updatedAt": "2026-11-25T10:00:00Z", "reason": "ECS deployment ecs-svc/123 in progress."}
    });
    assert_eq!(post("wrong", event.clone()).await.status(), 401);
    let task = post(
        "eb-key-123",
        json!({"detail-type": "ECS Task State Change", "resources": []}),
    )
    .await;
    assert!(task.json::<Value>().await.unwrap()["ignored"].is_string());
    let sha = s.repo.commit(&[("main.py", "print(1)")], "change 1");
    let (status, r) = s
        .app
        .hook(
            "push",
            "ev-1",
            &push_body("acme/api", "refs/heads/main", &sha),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    let id = r["deployments"][0].as_i64().unwrap();
    crate::support::wait_for(
        Duration::from_secs(20),
        "the rollout to finish on ECS events",
        || {
            let (app, post, event) = (&s.app, &post, event.clone());
            async move {
                let answer: Value = post("eb-key-123", event).await.json().await.unwrap();
                assert_eq!(answer["signalled"], 1, "{answer}");
                let d = app.api(&format!("/api/v1/deployments/{id}")).await;
                d["state"] == "succeeded"
            }
        },
    )
    .await;
    s.app.finish().await;
}

fn roll_step(d: &Value) -> Value {
    d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "roll_services")
        .cloned()
        .unwrap()
}

/// A setup whose daemon reaches moto through a fault proxy, with the SDK trying each call
/// twice (faults outlast that, so steps are retried) and short step backoffs.
async fn behind_fault_proxy(name: &str) -> (crate::s3proxy::S3Proxy, Setup) {
    let proxy = crate::s3proxy::S3Proxy::start(&moto_url()).await;
    let s = Setup::with_env(
        name,
        "",
        &[
            ("GANTRY_ECS_POLL", "20ms"),
            ("GANTRY_AWS_ENDPOINT_URL", proxy.url.as_str()),
            ("GANTRY_AWS_MAX_ATTEMPTS", "2"),
            ("GANTRY_RETRY_BASE", "50ms"),
            ("GANTRY_RETRY_CAP", "200ms"),
        ],
    )
    .await;
    (proxy, s)
}

/// Connections reset before a call reaches ECS and after ECS acted on it (the answer lost),
/// and added latency: the rollout converges, and a register whose answer was lost is found
/// again instead of registered twice.
#[tokio::test]
async fn dropped_connections_and_latency_on_ecs_converge_without_a_second_revision() {
    use crate::s3proxy::Fault;
    let (proxy, s) = behind_fault_proxy("resets").await;
    proxy.inject(Fault::reset_after("RegisterTaskDefinition", 1));
    proxy.inject(Fault::reset_before("DescribeServices", 3));
    proxy.inject(Fault::delay("UpdateService", 1, Duration::from_millis(300)));
    proxy.inject(Fault::delay("CreateService", 1, Duration::from_millis(300)));
    let d = s.push(1).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = roll_log(&d);
    assert!(log.contains("failed with a transient error"), "{log}");
    assert!(
        log.contains("reusing"),
        "the lost register is found again: {log}"
    );
    let seen = proxy.take();
    let registers: Vec<_> = seen
        .iter()
        .filter(|r| r.target.ends_with("RegisterTaskDefinition"))
        .collect();
    assert_eq!(
        registers.len(),
        1,
        "one register reached ECS: {registers:#?}"
    );
    assert_eq!(registers[0].status, 0, "and its answer was lost");
    assert_eq!(
        seen.iter()
            .filter(|r| r.target.ends_with("DescribeServices") && r.status == 0)
            .count(),
        3
    );
    assert_eq!(s.ecs.revisions(&s.family).await, 1);
    assert!(s.ecs.running(&s.service).await.ends_with(":1"));
    s.app.finish().await;
}

#[tokio::test]
async fn transient_ecs_faults_are_retried_and_a_validation_error_fails_at_once() {
    use crate::s3proxy::Fault;
    let (proxy, s) = behind_fault_proxy("faults").await;
    proxy.inject(Fault::unavailable("DescribeServices", 3));
    proxy.inject(Fault::throttling("RegisterTaskDefinition", 3));
    let d = s.push(1).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let step = roll_step(&d);
    assert!(step["attempts"].as_u64().unwrap() >= 3, "{step:#}");
    let log = roll_log(&d);
    assert!(log.contains("failed with a transient error"), "{log}");
    assert!(log.contains("ThrottlingException"), "{log}");
    assert!(log.contains("retry 1 of 5"), "{log}");
    let injected = proxy
        .take()
        .iter()
        .filter(|r| {
            r.status == 503 || (r.status == 400 && r.target.ends_with("RegisterTaskDefinition"))
        })
        .count();
    assert_eq!(injected, 6, "every injected fault was met");
    // Retrying never registered a revision twice.
    assert_eq!(s.ecs.revisions(&s.family).await, 1);
    assert!(s.ecs.running(&s.service).await.ends_with(":1"));

    // A request ECS refuses as invalid is not retried: one attempt, ECS's words in the reason.
    s.write_td("1024", json!([]));
    proxy.inject(Fault::invalid(
        "RegisterTaskDefinition",
        1,
        "Invalid setting for container 'app': memory must be at least 6 MiB",
    ));
    let d = s.push(2).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.contains("RegisterTaskDefinition"), "{reason}");
    assert!(reason.contains("memory must be at least 6 MiB"), "{reason}");
    assert_eq!(roll_step(&d)["attempts"], 1, "{d:#}");
    assert_eq!(s.ecs.revisions(&s.family).await, 1);
    s.app.finish().await;
}

/// The whole service is reconciled, not only its task definition: a changed security group,
/// desired count, health-check grace and capacity provider are applied to the live service
/// (read back from moto), `gantry diff` shows each beforehand, and an unchanged service shows
/// no difference and is not updated.
#[tokio::test]
async fn changed_service_settings_are_applied_and_diff_shows_them_first() {
    let s = Setup::new("whole", "").await;
    let first = s.push(1).await;
    assert_eq!(first["state"], "succeeded", "{first:#}");
    let diff = s.diff().await;
    assert!(diff.contains("task definition: unchanged"), "{diff}");
    assert!(!diff.contains(" -> "), "no false positive: {diff}");
    let same = s.push(2).await;
    assert!(
        roll_log(&same).contains("service unchanged"),
        "{}",
        roll_log(&same)
    );
    let sg = security_group(&format!("whole-{}", std::process::id()));
    let m = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  rolloutTimeout: 2s\n  source:\n    repo: acme/api\n    url: {}\n  services:\n    - name: {}\n      cluster: {}\n      taskDefinition: td.json\n      desiredCount: 3\n      network:\n        subnets: [{}]\n        securityGroups: [{sg}]\n      healthCheckGrace: 45s\n      capacityProviders:\n        - provider: FARGATE_SPOT\n          weight: 2\n",
        s.repo.path.display(),
        s.service,
        s.ecs.cluster,
        s.ecs.subnet
    );
    let s = s.reconfigure(m).await;
    let diff = s.diff().await;
    for line in [
        "desiredCount: 2 -> 3".to_string(),
        format!("security groups [{sg}]"),
        "healthCheckGracePeriodSeconds: 0s -> 45s".to_string(),
        "capacityProviderStrategy: launch type FARGATE -> FARGATE_SPOT (weight 2, base 0)"
            .to_string(),
    ] {
        assert!(diff.contains(&line), "{line} in {diff}");
    }
    let d = s.push(3).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = roll_log(&d);
    assert!(
        log.contains("healthCheckGracePeriodSeconds: 0s -> 45s"),
        "{log}"
    );
    let live = s.ecs.service(&s.service).await;
    assert_eq!(live.desired_count(), 3);
    assert_eq!(live.health_check_grace_period_seconds(), Some(45));
    let vpc = live
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .unwrap();
    assert_eq!(vpc.security_groups(), std::slice::from_ref(&sg));
    let strategy = live.capacity_provider_strategy();
    assert_eq!(strategy.len(), 1, "{live:#?}");
    assert_eq!(strategy[0].capacity_provider(), "FARGATE_SPOT");
    assert_eq!(strategy[0].weight(), 2);
    // Applied: nothing differs any more.
    let diff = s.diff().await;
    assert!(!diff.contains(" -> "), "{diff}");
    let again = s.push(4).await;
    assert!(
        roll_log(&again).contains("service unchanged"),
        "{}",
        roll_log(&again)
    );
    s.app.finish().await;
}

#[tokio::test]
async fn service_connect_and_registries_are_applied_and_read_back_without_a_false_diff() {
    let s = Setup::new("connect", "").await;
    let first = s.push(1).await;
    assert_eq!(first["state"], "succeeded", "{first:#}");
    let ns = "arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-gantry1";
    let srv = "arn:aws:servicediscovery:us-east-1:123456789012:service/srv-gantry1";
    let with = manifest(
            &s.repo.path,
            &s.ecs,
            &s.service,
            &format!("      serviceConnect:\n        namespace: {ns}\n        services:\n          - portName: http\n            discoveryName: api\n            clientAliases: [{{port: {connect}}}]\n      serviceRegistries:\n        - registryArn: {srv}\n          port: 80\n", connect = 8080),
        );
    let s = s.reconfigure(with).await;
    let diff = s.diff().await;
    assert!(
        diff.contains(&format!(
            "serviceConnectConfiguration: off -> {ns}: http as api (:8080)"
        )),
        "{diff}"
    );
    assert!(
        diff.contains(&format!("serviceRegistries: none -> {srv} port 80")),
        "{diff}"
    );
    let d = s.push(2).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let live = s.ecs.service(&s.service).await;
    let primary = live
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .unwrap();
    let sc = primary
        .service_connect_configuration()
        .expect("service connect");
    assert!(sc.enabled());
    assert_eq!(sc.namespace(), Some(ns));
    assert_eq!(sc.services()[0].discovery_name(), Some("api"));
    assert_eq!(sc.services()[0].client_aliases()[0].port(), 8080);
    assert_eq!(live.service_registries()[0].registry_arn(), Some(srv));
    // ECS filled in the alias's DNS name; the manifest left it to ECS: no difference.
    let diff = s.diff().await;
    assert!(!diff.contains(" -> "), "{diff}");
    let again = s.push(3).await;
    assert!(
        roll_log(&again).contains("service unchanged"),
        "{}",
        roll_log(&again)
    );
    // Taking serviceConnect out of the manifest turns it off.
    let plain = manifest(&s.repo.path, &s.ecs, &s.service, "");
    let s = s.reconfigure(plain).await;
    let off = s.push(4).await;
    assert_eq!(off["state"], "succeeded", "{off:#}");
    assert!(
        roll_log(&off).contains("serviceConnectConfiguration:"),
        "{}",
        roll_log(&off)
    );
    let live = s.ecs.service(&s.service).await;
    let primary = live
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))
        .unwrap();
    assert!(primary.service_connect_configuration().is_none());
    assert!(live.service_registries().is_empty());
    s.app.finish().await;
}

/// Scheduled jobs: each is an EventBridge rule running its task definition revision; an
/// unchanged job touches nothing, a changed schedule or command updates the rule, a job taken
/// out of the manifest loses its rule.
#[tokio::test]
async fn scheduled_jobs_are_rules_running_the_release_and_follow_the_manifest() {
    let s = Setup::new("jobs", "").await;
    let job_family = format!("{}-job", s.family);
    std::fs::write(
        s.app.dir.path().join("manifests/job.json"),
        task_definition(&job_family, "512", json!([])),
    )
    .unwrap();
    // The role EventBridge runs the tasks with (verify checks it exists).
    ensure(&[
        "iam",
        "create-role",
        "--role-name",
        "events-run-task",
        "--assume-role-policy-document",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    ]);
    let role = "arn:aws:iam::123456789012:role/events-run-task";
    let jobs = |nightly: &str, with_hourly: bool| {
        let mut m = format!(
            "  jobs:\n    - name: nightly\n      cluster: {}\n      taskDefinition: job.json\n      roleArn: {role}\n      network:\n        subnets: [{}]\n{nightly}",
            s.ecs.cluster, s.ecs.subnet
        );
        if with_hourly {
            m.push_str(&format!(
                "    - name: hourly\n      cluster: {}\n      taskDefinition: job.json\n      schedule: rate(1 hour)\n      roleArn: {role}\n      network:\n        subnets: [{}]\n",
                s.ecs.cluster, s.ecs.subnet
            ));
        }
        manifest(&s.repo.path, &s.ecs, &s.service, &m)
    };
    let first = jobs("      schedule: cron(0 3 * * ? *)\n", true);
    let changed = jobs(
        "      schedule: rate(6 hours)\n      command: [python, -m, reports]\n",
        false,
    );
    let no_role = first.replace("role/events-run-task", "role/no-such-role");
    // A job whose role does not exist fails verification before anything changes.
    let s = s.reconfigure(no_role).await;
    let d = s.push(1).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    let reason = d["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("spec.jobs[0].roleArn: IAM role `no-such-role` does not exist"),
        "{reason}"
    );
    let s = s.reconfigure(first).await;
    let d = s.push(11).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let kinds: Vec<&str> = d["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "verify",
            "fetch_source",
            "roll_services",
            "schedule_jobs",
            "report"
        ]
    );
    let config = crate::sites::aws_config(&moto_url()).await;
    let eb = aws_sdk_eventbridge::Client::new(&config);
    let rule = eb
        .describe_rule()
        .name("gantry-api-nightly")
        .send()
        .await
        .unwrap();
    assert_eq!(rule.schedule_expression(), Some("cron(0 3 * * ? *)"));
    assert_eq!(
        rule.description(),
        Some("Gantry scheduled job nightly of app api")
    );
    let target = |name: &'static str| {
        let eb = eb.clone();
        async move {
            let t = eb.list_targets_by_rule().rule(name).send().await.unwrap();
            t.targets()[0].clone()
        }
    };
    let t = target("gantry-api-nightly").await;
    assert!(
        t.arn().ends_with(&format!(":cluster/{}", s.ecs.cluster)),
        "{t:?}"
    );
    assert_eq!(t.role_arn(), Some(role));
    let ecs = t.ecs_parameters().unwrap();
    let td = ecs.task_definition_arn().to_owned();
    assert!(
        td.contains(&format!("task-definition/{job_family}:")),
        "{td}"
    );
    let subnets = ecs
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .map(|v| v.subnets().to_vec())
        .unwrap();
    assert_eq!(subnets, std::slice::from_ref(&s.ecs.subnet));
    assert!(eb
        .describe_rule()
        .name("gantry-api-hourly")
        .send()
        .await
        .is_ok());
    // The release records what the rules run.
    let release = s.app.api("/api/v1/releases?app=api").await;
    assert_eq!(release[0]["jobs"]["nightly"], td.as_str(), "{release:#}");

    // Nothing changed: nothing registered, no rule put.
    let same = s.push(2).await;
    let log = step_log(&same, "schedule_jobs");
    assert!(
        log.contains("nightly: rule gantry-api-nightly unchanged"),
        "{log}"
    );
    assert!(!log.contains("registered"), "{log}");

    // A new schedule and a command override; the hourly job removed.
    let s = s.reconfigure(changed).await;
    // gantry diff shows what the next deployment changes on the rule, nothing else.
    let diff = s.diff().await;
    assert!(diff.contains("job nightly (cluster "), "{diff}");
    assert!(
        diff.contains("  scheduleExpression: cron(0 3 * * ? *) -> rate(6 hours)"),
        "{diff}"
    );
    assert!(
        diff.contains("  command: none -> app: python -m reports"),
        "{diff}"
    );
    assert!(
        diff.contains("task definition: unchanged (arn:aws:ecs:"),
        "{diff}"
    );
    let d = s.push(3).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = step_log(&d, "schedule_jobs");
    assert!(
        log.contains("nightly: scheduleExpression: cron(0 3 * * ? *) -> rate(6 hours)"),
        "{log}"
    );
    assert!(log.contains("removed rule gantry-api-hourly"), "{log}");
    let rule = eb
        .describe_rule()
        .name("gantry-api-nightly")
        .send()
        .await
        .unwrap();
    assert_eq!(rule.schedule_expression(), Some("rate(6 hours)"));
    let t = target("gantry-api-nightly").await;
    let input: Value = serde_json::from_str(t.input().unwrap()).unwrap();
    assert_eq!(
        input,
        json!({"containerOverrides": [{"name": "app", "command": ["python", "-m", "reports"]}]})
    );
    assert_eq!(
        t.ecs_parameters().unwrap().task_definition_arn(),
        td,
        "same revision"
    );
    let gone = eb.describe_rule().name("gantry-api-hourly").send().await;
    assert!(gone.is_err(), "the hourly rule is removed");
    s.app.finish().await;
}

/// Releases are all or nothing: when the second of two services fails its rollout, the first,
/// already rolled, is put back too, the reason says so, and `gantry rollback` afterwards
/// targets the last release that succeeded.
#[tokio::test]
async fn a_failed_second_service_puts_the_first_back_and_rollback_targets_the_last_good() {
    let second = format!("svc-pair-b-{}", std::process::id());
    let s = Setup::new(
        "pair",
        &format!("    - name: {second}\n      cluster: {{cluster}}\n      taskDefinition: td.json\n      desiredCount: 1\n      network:\n        subnets: [{{subnet}}]\n"),
    )
    .await;
    let first = s.push(1).await;
    assert_eq!(first["state"], "succeeded", "{first:#}");
    assert!(s.ecs.running(&s.service).await.ends_with(":1"));
    assert!(s.ecs.running(&second).await.ends_with(":1"));
    s.ecs.tag(&second, "fail").await;
    s.write_td("1024", json!([]));
    let d = s.push(2).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    let reason = d["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "the deployment's other services were put back: {}",
            s.service
        )),
        "{reason}"
    );
    assert!(
        s.ecs.running(&s.service).await.ends_with(":1"),
        "first put back"
    );
    assert!(
        s.ecs.running(&second).await.ends_with(":1"),
        "second rolled back"
    );
    // The last good release is #1 (the failed #2 recorded none that succeeded).
    let resp = s
        .app
        .http
        .post(s.app.url("/api/v1/apps/api/rollback"))
        .bearer_auth(crate::support::TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["restores"], first["id"], "{body}");
    s.app.wait_idle(Duration::from_secs(60)).await;
    s.app.finish().await;
}

/// Only what changed is touched, across an app like the event site: a site and two images,
/// each with its service. A push changing one service's code builds one image, registers one
/// task definition and updates one service; a push changing one page builds nothing, updates
/// no service and syncs that page; the unchanged image uploads no blob.
#[tokio::test]
async fn a_push_touches_only_the_image_service_and_site_it_changed() {
    use crate::images::{
        base_image, blob_uploads, endpoints, registry_log_len, registry_requests, unique, ECR,
    };
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("event"));
    let a = repo.commit(
        &[
            ("api/main.py", "print('api 1')\n"),
            ("worker/main.py", "print('worker 1')\n"),
            ("site/index.html", "<p>landing 1</p>"),
            ("site/about.html", "<p>about</p>"),
        ],
        "event site",
    );
    let ecs = Ecs::new("event").await;
    let pid = std::process::id();
    let (api_repo, worker_repo) = (unique("event-api"), unique("event-worker"));
    let bucket = format!("event-site-{pid}");
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws_config(&moto_url()).await)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
    for name in ["api", "worker"] {
        std::fs::write(
            dir.path().join(format!("manifests/{name}.json")),
            task_definition(&format!("event-{name}-{pid}"), "512", json!([])),
        )
        .unwrap();
    }
    let service = |name: &str| {
        format!(
            "    - name: event-{name}-{pid}\n      cluster: {}\n      taskDefinition: {name}.json\n      containers:\n        app: {name}\n      desiredCount: 1\n      network:\n        subnets: [{}]\n",
            ecs.cluster, ecs.subnet
        )
    };
    let image = |name: &str, repo: &str| {
        format!(
            "    - name: {name}\n      repository: {ECR}/{repo}\n      context: {name}\n      base: {}\n      entrypoint: [python3, main.py]\n      createRepository: true\n",
            base_image()
        )
    };
    let m = format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: event\nspec:\n  rolloutTimeout: 30s\n  source:\n    repo: acme/event\n    url: {}\n  images:\n{}{}  services:\n{}{}  sites:\n    - name: landing\n      dir: site\n      bucket: {bucket}\n      preset: plain\n",
        repo.path.display(),
        image("api", &api_repo),
        image("worker", &worker_repo),
        service("api"),
        service("worker"),
    );
    let moto = moto_url();
    let eps = endpoints();
    let app = TestApp::start_in(
        dir,
        &[("event.yaml", m)],
        &[
            ("GANTRY_AWS_ENDPOINT_URL", moto.as_str()),
            ("GANTRY_REGISTRY_ENDPOINTS", eps.as_str()),
            ("GANTRY_ECS_POLL", "20ms"),
        ],
    )
    .await;
    let deploy = |delivery: &'static str, sha: String| {
        let app = &app;
        async move {
            let d = app.push_and_wait(delivery, "acme/event", &sha).await;
            assert_eq!(d["state"], "succeeded", "{d:#}");
            d
        }
    };
    let step_log = crate::support::step_log;
    deploy("event-1", a).await;
    let (api_family, worker_family) = (format!("event-api-{pid}"), format!("event-worker-{pid}"));
    assert_eq!(ecs.revisions(&api_family).await, 1);
    assert_eq!(ecs.revisions(&worker_family).await, 1);

    // One service's code changes.
    let b = repo.commit(&[("api/main.py", "print('api 2')\n")], "api change");
    let before = registry_log_len();
    let d = deploy("event-2", b).await;
    let publish = step_log(&d, "publish_images");
    assert!(publish.contains("api: building"), "{publish}");
    assert!(
        publish.contains("worker: inputs unchanged since"),
        "{publish}"
    );
    let roll = step_log(&d, "roll_services");
    assert!(
        roll.contains(&format!("event-worker-{pid}: service unchanged")),
        "{roll}"
    );
    assert!(
        roll.contains(&format!("event-api-{pid}: updating service")),
        "{roll}"
    );
    assert_eq!(
        ecs.revisions(&api_family).await,
        2,
        "one task definition registered"
    );
    assert_eq!(ecs.revisions(&worker_family).await, 1);
    assert!(ecs
        .running(&format!("event-api-{pid}"))
        .await
        .ends_with(":2"));
    assert!(ecs
        .running(&format!("event-worker-{pid}"))
        .await
        .ends_with(":1"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        blob_uploads(&registry_requests(&worker_repo, before)).is_empty(),
        "the unchanged image uploads no blob"
    );

    // One page changes.
    let c = repo.commit(&[("site/index.html", "<p>landing 2</p>")], "one page");
    let d = deploy("event-3", c).await;
    let publish = step_log(&d, "publish_images");
    assert!(!publish.contains("building"), "nothing built: {publish}");
    let roll = step_log(&d, "roll_services");
    assert_eq!(roll.matches("service unchanged").count(), 2, "{roll}");
    let sync = step_log(&d, "sync_sites");
    assert!(sync.contains("upload 1 "), "{sync}");
    assert_eq!(ecs.revisions(&api_family).await, 2);
    app.finish().await;
}

/// All or nothing across steps: a site sync that fails after the services rolled puts the
/// services back to the last good release's task definitions, and the reason says so.
#[tokio::test]
async fn a_failed_site_sync_puts_the_rolled_services_back() {
    let bucket = format!("putback-{}", std::process::id());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws_config(&moto_url()).await)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let s = Setup::new(
        "putback",
        &format!("  sites:\n    - name: web\n      dir: .\n      bucket: {bucket}\n      preset: plain\n"),
    )
    .await;
    let first = s.push(1).await;
    assert_eq!(first["state"], "succeeded", "{first:#}");
    assert!(s.ecs.running(&s.service).await.ends_with(":1"));
    // The next build output holds a symlink, which a sync refuses for good: it fails after
    // the service rolled to :2 (verify passed: the bucket is there).
    std::os::unix::fs::symlink("/etc/passwd", s.repo.path.join("passwd")).unwrap();
    s.write_td("1024", json!([]));
    let d = s.push(2).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.contains("step sync_sites failed"), "{reason}");
    assert!(
        reason.contains(&format!(
            "the services this deployment rolled were put back: {} to",
            s.service
        )),
        "{reason}"
    );
    assert_eq!(s.ecs.revisions(&s.family).await, 2);
    assert!(s.ecs.running(&s.service).await.ends_with(":1"), "put back");
    s.app.finish().await;
}

/// `gantry import ecs` of a service created on moto without Gantry, then `gantry diff` of the
/// imported manifest: nothing to change, in the task definition or the service's settings.
#[tokio::test]
async fn an_imported_service_shows_no_difference() {
    let ecs = Ecs::new("import").await;
    let sg = security_group(&format!("import-{}", std::process::id()));
    let tmp = tempfile::tempdir().unwrap();
    let td_file = tmp.path().join("td.json");
    let family = format!("imported-{}", std::process::id());
    std::fs::write(
        &td_file,
        task_definition(
            &family,
            "512",
            json!([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]),
        ),
    )
    .unwrap();
    let arn = aws_cli(&[
        "ecs",
        "register-task-definition",
        "--cli-input-json",
        &format!("file://{}", td_file.display()),
        "--query",
        "taskDefinition.taskDefinitionArn",
    ]);
    assert!(
        arn.status.success(),
        "{}",
        String::from_utf8_lossy(&arn.stderr)
    );
    let arn = String::from_utf8_lossy(&arn.stdout).trim().to_owned();
    let network = aws_sdk_ecs::types::NetworkConfiguration::builder()
        .awsvpc_configuration(
            aws_sdk_ecs::types::AwsVpcConfiguration::builder()
                .subnets(&ecs.subnet)
                .security_groups(&sg)
                .assign_public_ip(aws_sdk_ecs::types::AssignPublicIp::Enabled)
                .build()
                .unwrap(),
        )
        .build();
    ecs.client
        .create_service()
        .cluster(&ecs.cluster)
        .service_name("legacy")
        .task_definition(&arn)
        .desired_count(3)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .network_configuration(network)
        .health_check_grace_period_seconds(45)
        .deployment_configuration(
            aws_sdk_ecs::types::DeploymentConfiguration::builder()
                .minimum_healthy_percent(50)
                .maximum_percent(150)
                .deployment_circuit_breaker(
                    aws_sdk_ecs::types::DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(true)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    let out_dir = tmp.path().join("manifests");
    let run = |args: Vec<String>| {
        let mut cmd = crate::support::gantry_cli();
        cmd.args(args).env("GANTRY_AWS_ENDPOINT_URL", moto_url());
        async move { cmd.output().await.unwrap() }
    };
    let import: Vec<String> = vec![
        "import".to_string(),
        "ecs".into(),
        "--cluster".into(),
        ecs.cluster.clone(),
        "--service".into(),
        "legacy".into(),
        "--repo".into(),
        "acme/legacy".into(),
        "--out".into(),
        out_dir.display().to_string(),
        "--site".into(),
        "s3://legacy-www/www/".into(),
        "--distribution".into(),
        "E2IMPORTED".into(),
    ];
    let out = run(import.clone()).await;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let manifest = std::fs::read_to_string(out_dir.join("legacy.yaml")).unwrap();
    for expected in [
        "desiredCount: 3",
        "healthCheckGrace: 45s",
        "minimumHealthyPercent: 50",
        "maximumPercent: 150",
        "assignPublicIp: true",
        "bucket: legacy-www",
        "prefix: www\n",
        "distribution: E2IMPORTED",
        &sg,
    ] {
        assert!(
            manifest.contains(expected),
            "{expected} missing:\n{manifest}"
        );
    }
    let task = std::fs::read_to_string(out_dir.join("legacy-task.json")).unwrap();
    assert!(
        !task.contains("taskDefinitionArn") && !task.contains("\"revision\""),
        "{task}"
    );
    // Importing again does not overwrite what is there.
    let again = run(import).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("use --force"));

    let diff = run(vec![
        "diff".into(),
        "legacy".into(),
        "--manifests".into(),
        out_dir.display().to_string(),
    ])
    .await;
    let text = String::from_utf8_lossy(&diff.stdout).to_string();
    assert!(
        diff.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(text.contains("task definition: unchanged"), "{text}");
    assert!(!text.contains("->"), "a difference after import:\n{text}");
}

/// A deployment rolls the task definition that was loaded with the manifests it was queued
/// from: the file changed on disk afterwards (with no reload) is not what gets registered.
#[tokio::test]
async fn a_deployment_rolls_the_task_definition_loaded_with_its_manifests() {
    let s = Setup::new("tdsnap", "").await;
    std::fs::write(
        s.app.dir.path().join("manifests/td.json"),
        task_definition(&s.family, "1024", json!([])),
    )
    .unwrap();
    let d = s.push(1).await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let arn = s.ecs.running(&s.service).await;
    let td = s
        .ecs
        .client
        .describe_task_definition()
        .task_definition(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(td.task_definition().unwrap().memory(), Some("512"));
    s.app.finish().await;
}
