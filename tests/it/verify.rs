//! `gantry verify` and a deployment's verify step against moto: a missing role, a missing
//! secret and a target group on the wrong port are each reported at file:line, and a
//! deployment with them fails before anything is fetched or built.

use std::process::Command;

use serde_json::json;

use crate::services::{aws_cli, default_subnet, ensure_task_resources};
use crate::sites::moto_url;
use crate::support::{GitRepo, TestApp};

/// `aws ARGS --query Q` with success asserted; the trimmed text answer.
fn aws_text(args: &[&str]) -> String {
    let out = aws_cli(args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("`{needle}` not in:\n{text}"))
        + 1
}

struct World {
    cluster: String,
    target_group: String,
    present_secret: String,
    missing_secret: String,
}

/// A cluster, a secret, and a target group on port 8080 behind a listener, in moto.
async fn world(name: &str) -> World {
    ensure_task_resources();
    let id = format!("{name}-{}", std::process::id());
    let cluster = format!("verify-{id}");
    aws_text(&["ecs", "create-cluster", "--cluster-name", &cluster]);
    let present_secret = aws_text(&[
        "secretsmanager",
        "create-secret",
        "--name",
        &format!("{id}/api-key"),
        "--secret-string",
        "c4n4ry-never-read",
        "--query",
        "ARN",
    ]);
    let missing_secret =
        format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{id}/gone-AbCdEf");
    let vpc = aws_text(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=isDefault,Values=true",
        "--query",
        "Vpcs[0].VpcId",
    ]);
    let subnets = aws_text(&[
        "ec2",
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={vpc}"),
        "--query",
        "Subnets[0:2].SubnetId",
    ]);
    let subnets: Vec<&str> = subnets.split_whitespace().collect();
    let target_group = aws_text(&[
        "elbv2",
        "create-target-group",
        "--name",
        &format!("tg-{}", std::process::id() % 100_000),
        "--protocol",
        "HTTP",
        "--port",
        "8080",
        "--vpc-id",
        &vpc,
        "--target-type",
        "ip",
        "--query",
        "TargetGroups[0].TargetGroupArn",
    ]);
    let mut lb_args = vec![
        "elbv2",
        "create-load-balancer",
        "--name",
        "verify-alb",
        "--query",
        "LoadBalancers[0].LoadBalancerArn",
        "--subnets",
    ];
    lb_args.extend(subnets.iter().copied());
    let lb = aws_text(&lb_args);
    aws_text(&[
        "elbv2",
        "create-listener",
        "--load-balancer-arn",
        &lb,
        "--protocol",
        "HTTP",
        "--port",
        "80",
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={target_group}"),
    ]);
    World {
        cluster,
        target_group,
        present_secret,
        missing_secret,
    }
}

fn task_definition(w: &World) -> String {
    serde_json::to_string_pretty(&json!({
        "family": "verify-api",
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc",
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
        "taskRoleArn": "arn:aws:iam::123456789012:role/no-such-task-role",
        "containerDefinitions": [{
            "name": "app",
            "image": "public.ecr.aws/nginx/nginx:1.27",
            "essential": true,
            "portMappings": [{"containerPort": 80, "protocol": "tcp"}],
            "secrets": [
                {"name": "API_KEY", "valueFrom": w.present_secret},
                {"name": "DB_PASSWORD", "valueFrom": w.missing_secret}
            ],
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/test", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "app"}}
        }]
    }))
    .unwrap()
}

fn manifest(w: &World, repo: &std::path::Path) -> String {
    format!(
        "apiVersion: gantry/v1\nkind: App\nmetadata:\n  name: api\nspec:\n  source:\n    repo: acme/api\n    url: {}\n  build:\n    commands: [\"touch built\"]\n  services:\n    - name: api\n      cluster: {}\n      taskDefinition: td.json\n      network:\n        subnets: [{}]\n      loadBalancer:\n        targetGroupArn: {}\n        containerName: app\n        containerPort: 80\n",
        repo.display(),
        w.cluster,
        default_subnet(),
        w.target_group
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_names_each_missing_resource_and_a_deployment_stops_before_building() {
    let w = world("verify").await;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("api"));
    let sha = repo.commit(&[("main.py", "print(1)")], "init");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let td = task_definition(&w);
    let m = manifest(&w, &repo.path);
    std::fs::write(manifests.join("td.json"), &td).unwrap();
    std::fs::write(manifests.join("api.yaml"), &m).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["verify", "api", "--manifests"])
        .arg(&manifests)
        .env("GANTRY_AWS_ENDPOINT_URL", moto_url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "c4n4ry-aws-secret")
        .env("AWS_REGION", "us-east-1")
        .env("GANTRY_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let td_file = std::path::absolute(manifests.join("td.json")).unwrap();
    let want = [
        format!(
            "{}:{}: taskRoleArn: IAM role `no-such-task-role` does not exist",
            td_file.display(),
            line_of(&td, "taskRoleArn")
        ),
        format!(
            "{}:{}: containerDefinitions[0].secrets[1].valueFrom: secret `{}` does not exist",
            td_file.display(),
            line_of(&td, &w.missing_secret),
            w.missing_secret
        ),
        format!(
            "{}:{}: spec.services[0].loadBalancer.targetGroupArn: target group `{}` listens on port 8080, but the container port is 80",
            manifests.join("api.yaml").display(),
            line_of(&m, "targetGroupArn"),
            w.target_group
        ),
    ];
    for w in &want {
        assert!(stderr.contains(w.as_str()), "missing\n  {w}\nin\n{stderr}");
    }
    assert_eq!(
        stderr.matches("error: ").count(),
        3,
        "the present role, secret, log group, cluster and subnet are fine: {stderr}"
    );
    assert!(stderr.contains("3 problem(s)"), "{stderr}");
    assert!(
        !stderr.contains("c4n4ry-never-read"),
        "a secret's value is never read"
    );

    // A deployment with the same manifests fails at its first step, in seconds.
    let moto = moto_url();
    let app = TestApp::start_in(dir, &[], &[("GANTRY_AWS_ENDPOINT_URL", moto.as_str())]).await;
    let d = app.push_and_wait("verify-1", "acme/api", &sha).await;
    assert_eq!(d["state"], "failed", "{d:#}");
    let steps = d["steps"].as_array().unwrap();
    assert_eq!(steps[0]["kind"], "verify");
    assert_eq!(steps[0]["state"], "failed", "{d:#}");
    let reason = d["reason"].as_str().unwrap();
    assert!(reason.contains("verify found 3 problem(s)"), "{reason}");
    assert!(
        reason.contains("IAM role `no-such-task-role` does not exist"),
        "{reason}"
    );
    for s in &steps[1..] {
        assert!(s["started_at"].is_null(), "nothing after verify ran: {s:#}");
    }
    assert!(!repo.path.join("built").exists());
    app.finish().await;
}
