//! Hostile and unlucky input, each a regression test for a hole found by trying to break a
//! release build from outside: refs that would be git options, a second daemon on one data
//! dir, a fetch killed mid-way, manifests that are FIFOs, devices, huge or deeply nested,
//! replays and small answers that were wrong.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{app_manifest, push_body, GitRepo, TestApp, TOKEN};

const INJECTION: &str = "--upload-pack=touch pwned; env >&2; exit 1;#";

async fn deploy(app: &TestApp, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(app.url("/api/v1/apps/web/deploy"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn refs_and_shas_that_could_be_git_options_never_reach_git() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let m = app_manifest("web", "acme/web", &repo.path, "main", &[]);
    let app = TestApp::start(&[("web.yaml", m)]).await;
    for bad in [INJECTION, "", "-x", "main..other", "refs/heads/a b"] {
        let (status, r) = deploy(&app, json!({ "ref": bad })).await;
        assert_eq!(status, 400, "ref {bad:?}: {r}");
        assert!(r["error"].as_str().unwrap().contains("git ref"), "{r}");
    }
    let (status, r) = deploy(&app, json!({ "sha": INJECTION })).await;
    assert_eq!(status, 400, "{r}");
    // The webhook's `after` and `ref` are checked before anything is recorded.
    let mut body: Value =
        serde_json::from_slice(&push_body("acme/web", "refs/heads/main", &sha)).unwrap();
    body["after"] = json!(INJECTION);
    let (status, r) = app
        .hook("push", "inject-1", &serde_json::to_vec(&body).unwrap())
        .await;
    assert_eq!(status, 400, "{r}");
    body["after"] = json!(sha);
    body["ref"] = json!(format!("refs/heads/{INJECTION}"));
    let (status, r) = app
        .hook("push", "inject-2", &serde_json::to_vec(&body).unwrap())
        .await;
    assert_eq!(status, 400, "{r}");
    assert!(app.store().delivery("inject-1").await.unwrap().is_none());
    assert!(app.store().delivery("inject-2").await.unwrap().is_none());
    assert!(app.deployments("web").await.is_empty());
    assert!(!tmp.path().join("pwned").exists());
    assert!(!repo.path.join("pwned").exists());
    // An upper-case sha is the same commit: accepted and stored lowercase.
    let (status, r) = deploy(&app, json!({ "sha": sha.to_uppercase() })).await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(30)).await;
    let d = app.api(&format!("/api/v1/deployments/{}", r["id"])).await;
    assert_eq!(d["sha"], sha.as_str());
    assert_eq!(d["state"], "succeeded", "{d:#}");
    app.finish().await;
}

#[tokio::test]
async fn the_git_adapter_refuses_an_option_shaped_revision_itself() {
    use gantry::adapters::git::GitFetcher;
    use gantry::ports::{FetchRequest, Revision, SourceFetcher, StepLog};
    use gantry::secret::Redactor;
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    repo.commit(&[("a", "1")], "init");
    let fetcher = GitFetcher::new(tmp.path().join("mirrors"), None, Redactor::default());
    let log = StepLog::new(64 * 1024, Redactor::default());
    for revision in [
        Revision::Ref(INJECTION.into()),
        Revision::Sha(INJECTION.into()),
    ] {
        let req = FetchRequest {
            repo: "acme/web".into(),
            url: format!("file://{}", repo.path.display()),
            revision,
            dest: tmp.path().join("checkout"),
        };
        let err = fetcher.fetch(&req, &log).await.unwrap_err().to_string();
        assert!(
            err.contains("is not a commit sha") || err.contains("the ref starts with `-`"),
            "{err}"
        );
    }
    assert!(!tmp.path().join("mirrors/acme_web.git/pwned").exists());
    assert!(!tmp.path().join("pwned").exists());
}

#[tokio::test]
async fn a_second_daemon_on_the_same_data_dir_refuses_to_start() {
    let app = TestApp::start(&[]).await;
    let data = app.dir.path().join("data");
    let vars = [
        ("GANTRY_LISTEN", "127.0.0.1:0".to_string()),
        ("GANTRY_DATA_DIR", data.display().to_string()),
        (
            "GANTRY_MANIFESTS",
            app.dir.path().join("manifests").display().to_string(),
        ),
    ];
    let config = gantry::config::Config::load_with(None, &|k| {
        vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    })
    .unwrap();
    let err = gantry::app::start(config).await.err().expect("refused");
    let text = format!("{err:#}");
    assert!(
        text.contains(&format!(
            "in use by another gantry (pid {})",
            std::process::id()
        )),
        "{text}"
    );
    // The first daemon was not disturbed.
    assert_eq!(app.api("/api/v1/apps").await, json!([]));
    app.finish().await;
}

#[tokio::test]
async fn a_lock_left_in_a_mirror_by_a_killed_fetch_does_not_wedge_the_repo() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let first = repo.commit(&[("a", "1")], "one");
    let m = app_manifest("web", "acme/web", &repo.path, "main", &[]);
    let app = TestApp::start(&[("web.yaml", m)]).await;
    let (status, _) = app
        .hook(
            "push",
            "lock-1",
            &push_body("acme/web", "refs/heads/main", &first),
        )
        .await;
    assert_eq!(status, 202);
    app.wait_idle(Duration::from_secs(30)).await;
    // What a SIGKILL in the middle of `git fetch --depth=1` leaves behind.
    let mirror = app.dir.path().join("data/mirrors/acme_web.git");
    std::fs::write(mirror.join("shallow.lock"), "").unwrap();
    std::fs::write(mirror.join("refs/heads.lock"), "").ok();
    let second = repo.commit(&[("a", "2")], "two");
    let (status, r) = app
        .hook(
            "push",
            "lock-2",
            &push_body("acme/web", "refs/heads/main", &second),
        )
        .await;
    assert_eq!(status, 202, "{r}");
    app.wait_idle(Duration::from_secs(30)).await;
    let d = app
        .api(&format!("/api/v1/deployments/{}", r["deployments"][0]))
        .await;
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = d["steps"][0]["log"].as_str().unwrap();
    assert!(log.contains("removed shallow.lock"), "{log}");
    assert!(!mirror.join("shallow.lock").exists());
    app.finish().await;
}

fn validate(dir: &std::path::Path) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gantry"))
        .args(["validate", "--manifests"])
        .arg(dir)
        .env_remove("GANTRY_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read as _;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code(), err);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("gantry validate hung on {}", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn manifests_that_are_fifos_devices_huge_or_deeply_nested_are_refused_with_their_file() {
    type Make = Box<dyn Fn(&std::path::Path)>;
    let cases: Vec<(&str, Make, &str)> = vec![
        (
            "nested.yaml",
            Box::new(|p| {
                // 20 KB of YAML, 10,000 sequences deep.
                std::fs::write(p, format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000))).unwrap()
            }),
            "nests deeper than 64 levels",
        ),
        (
            "dashes.yaml",
            Box::new(|p| std::fs::write(p, format!("{}x\n", "- ".repeat(20_000))).unwrap()),
            "nests deeper than 64 levels",
        ),
        (
            "fifo.yaml",
            Box::new(|p| {
                let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
                // SAFETY: mkfifo with a valid NUL-terminated path.
                assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            }),
            "not a regular file",
        ),
        (
            "zero.yaml",
            Box::new(|p| std::os::unix::fs::symlink("/dev/zero", p).unwrap()),
            "not a regular file",
        ),
        (
            "huge.yaml",
            Box::new(|p| {
                let line = "# padding padding padding padding padding padding padding\n";
                std::fs::write(p, line.repeat(12 * 1024 * 1024 / line.len())).unwrap()
            }),
            "more than the 1048576 allowed",
        ),
    ];
    for (name, make, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        make(&path);
        let (code, stderr) = validate(dir.path());
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: {stderr}"
        );
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn small_answers_are_right() {
    let app = TestApp::start(&[]).await;
    // resume of an unknown app is 404, like deploy and rollback, and audits nothing.
    let r = app
        .http
        .post(app.url("/api/v1/apps/nope/resume"))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(app.api("/api/v1/audit").await, json!([]));
    // A ping whose body is not UTF-8 is not JSON text: 400, and nothing recorded.
    let body = b"{\"zen\": \"\xff\xfe\"}";
    let (status, r) = app.hook("ping", "ping-bad", body).await;
    assert_eq!(status, 400, "{r}");
    assert!(app.store().delivery("ping-bad").await.unwrap().is_none());
    app.finish().await;
}

#[test]
fn every_encoding_of_a_configured_secret_is_scrubbed() {
    use base64::Engine as _;
    let vars = [
        ("GANTRY_GITHUB_TOKEN", "ghs_canary0123456789"),
        ("AWS_SECRET_ACCESS_KEY", "aws-canary-secret-0123456789"),
        ("AWS_SESSION_TOKEN", "aws-canary-session-0123456789"),
    ];
    let config = gantry::config::Config::load_with(None, &|k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    let r = config.redactor();
    let basic =
        base64::engine::general_purpose::STANDARD.encode("x-access-token:ghs_canary0123456789");
    let text = format!(
        "GIT_CONFIG_VALUE_0=Authorization: Basic {basic}\nAWS_SECRET_ACCESS_KEY=aws-canary-secret-0123456789\nAWS_SESSION_TOKEN=aws-canary-session-0123456789\n"
    );
    let out = r.redact(&text);
    assert!(!out.contains("canary"), "{out}");
    assert!(!out.contains(&basic), "{out}");
}

#[tokio::test]
async fn a_build_cannot_read_the_daemons_environment_or_data() {
    use crate::crash::{free_port, spawn_with};
    let tmp = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(&tmp.path().join("web"));
    let sha = repo.commit(&[("a", "1")], "init");
    let data = tmp.path().join("data");
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let d = data.display();
    let build = [
        "echo uid=$(id -u)".to_string(),
        // What the reported attack read: the daemon's environment through its parent.
        "cat /proc/$PPID/environ 2>&1 | tr '\\0' '\\n' || true".into(),
        "cat /proc/1/environ 2>&1 | tr '\\0' '\\n' || true".into(),
        "env".into(),
        format!("echo data=$(ls -A {d} | tr '\\n' ' ')"),
        format!("cat {d}/gantry.db >/dev/null 2>&1 && echo db-readable || echo db-hidden"),
        format!("ls {d}/mirrors >/dev/null 2>&1 && echo mirrors-visible || echo mirrors-hidden"),
        "echo pids=$(ls /proc | grep -c '^[0-9]')".into(),
        "touch /etc/gantry-was-here 2>/dev/null && echo etc-writable || echo etc-read-only".into(),
        "touch $HOME/ok && echo home-writable".into(),
    ];
    let refs: Vec<&str> = build.iter().map(String::as_str).collect();
    std::fs::write(
        manifests.join("web.yaml"),
        app_manifest("web", "acme/web", &repo.path, "main", &refs),
    )
    .unwrap();
    let canary = "c4n4ry-daemon-only-7f3a9c";
    let daemon = spawn_with(
        &data,
        &manifests,
        free_port(),
        &[
            ("GANTRY_TEST_CANARY", canary),
            ("GANTRY_BUILD_ISOLATION", "bubblewrap"),
        ],
    );
    let http = reqwest::Client::new();
    daemon.ready(&http).await;
    let r = daemon
        .push(
            &http,
            "iso-1",
            &push_body("acme/web", "refs/heads/main", &sha),
        )
        .await;
    let id = r["deployments"][0].as_i64().unwrap();
    let mut d = Value::Null;
    for _ in 0..600 {
        d = daemon.deployment(&http, id).await;
        if d["state"] == "succeeded" || d["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(d["state"], "succeeded", "{d:#}");
    let log = d["steps"][1]["log"].as_str().unwrap();
    assert!(
        !d.to_string().contains(canary),
        "the daemon's environment leaked: {log}"
    );
    assert!(log.contains("uid=65534"), "{log}");
    assert!(
        log.contains("data=work"),
        "only its own workspace is there: {log}"
    );
    assert!(log.contains("db-hidden"), "{log}");
    assert!(log.contains("mirrors-hidden"), "{log}");
    assert!(log.contains("etc-read-only"), "{log}");
    assert!(log.contains("home-writable"), "{log}");
    let pids: usize = log
        .lines()
        .find_map(|l| l.strip_prefix("pids="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(
        pids < 10,
        "the daemon's processes are not visible: {pids} pids"
    );
}

#[tokio::test]
async fn held_bodies_and_idle_connections_stay_bounded() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::crash::{free_port, spawn_with};
    let tmp = tempfile::tempdir().unwrap();
    let manifests = tmp.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let port = free_port();
    let daemon = spawn_with(
        &tmp.path().join("data"),
        &manifests,
        port,
        &[
            ("GANTRY_HEADER_TIMEOUT", "1s"),
            ("GANTRY_BODY_TIMEOUT", "2s"),
            ("GANTRY_MAX_CONNECTIONS", "256"),
            ("GANTRY_BODY_BUDGET_BYTES", "16777216"),
        ],
    );
    let http = reqwest::Client::new();
    daemon.ready(&http).await;
    let before = daemon.rss();
    // 60 unsigned 5 MiB bodies, 4 MiB of each sent and then held.
    let held: Vec<_> = (0..60)
        .map(|_| {
            tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                let head = "POST /hooks/github HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-GitHub-Delivery: d\r\nContent-Length: 5242880\r\n\r\n";
                s.write_all(head.as_bytes()).await.unwrap();
                let chunk = vec![b'a'; 64 * 1024];
                for _ in 0..64 {
                    if tokio::time::timeout(Duration::from_secs(3), s.write_all(&chunk))
                        .await
                        .map_or(true, |r| r.is_err())
                    {
                        break;
                    }
                }
                // The daemon answers (408) or closes within its body timeout.
                let mut buf = vec![0u8; 1024];
                let n = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf))
                    .await
                    .expect("the held body was not cut off")
                    .unwrap_or(0);
                String::from_utf8_lossy(&buf[..n]).into_owned()
            })
        })
        .collect();
    let mut peak = 0;
    for _ in 0..40 {
        peak = peak.max(daemon.rss());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answers: Vec<String> = futures::future::join_all(held)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        answers.iter().all(|a| a.is_empty()
            || a.starts_with("HTTP/1.1 408")
            || a.starts_with("HTTP/1.1 413")),
        "{answers:?}"
    );
    let grown = peak.saturating_sub(before);
    println!("RSS before {before} B, peak while 60 x 5 MiB bodies were held {peak} B (+{grown} B)");
    assert!(grown < 48 * 1024 * 1024, "RSS grew by {grown} bytes");
    // 800 connections that never finish their headers are all closed by the daemon.
    let mut idle = Vec::new();
    for _ in 0..800 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        idle.push(s);
    }
    let closed = futures::future::join_all(idle.into_iter().map(|mut s| async move {
        let mut buf = [0u8; 256];
        matches!(
            tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await,
            Ok(Ok(_)) | Ok(Err(_))
        )
    }))
    .await;
    assert!(
        closed.iter().all(|c| *c),
        "a header-incomplete connection stayed open"
    );
    // And the daemon still serves.
    let r = http.get(daemon.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    println!("RSS after the connection test {} B", daemon.rss());
}
