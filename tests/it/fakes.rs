//! Discord's and GitHub's HTTP APIs faked at the wire: a local server the real serenity and
//! octocrab clients are pointed at (`GANTRY_DISCORD_API_URL`, `GANTRY_GITHUB_API_URL`). It
//! records every request exactly (method, path, query, authorization, JSON body) and answers
//! with payloads shaped like the ones in Discord's and GitHub's API documentation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: String,
    pub body: Value,
    /// When it arrived.
    pub at: std::time::Instant,
    /// The status it was answered with.
    pub status: u16,
}

/// An issue comment the fake keeps: (id, "owner/repo", issue number, body).
type Comment = (u64, String, u64, String);
/// The files of pull requests, by repository and number.
type PullFiles = std::collections::HashMap<(String, u64), Vec<String>>;
/// An open pull request: number, repository, head branch, base branch, title.
type Pull = (u64, String, String, String, String);

#[derive(Clone, Default)]
struct Shared {
    seen: Arc<Mutex<Vec<Request>>>,
    next_id: Arc<AtomicU64>,
    /// Requests still to be answered 429 (Discord's rate limit), with Retry-After.
    throttle: Arc<Mutex<usize>>,
    /// Channel messages created with `enforce_nonce`, by nonce (Discord's de-duplication).
    nonces: Arc<Mutex<std::collections::HashMap<String, u64>>>,
    /// While set, every request is answered 503 (an outage of Discord and GitHub).
    outage: Arc<std::sync::atomic::AtomicBool>,
    /// GitHub issue comments.
    comments: Arc<Mutex<Vec<Comment>>>,
    /// GitHub pull requests opened through the API.
    pulls: Arc<Mutex<Vec<Pull>>>,
    /// The files of pull requests, by repository and number (set by the test).
    pull_files: Arc<Mutex<PullFiles>>,
}

pub struct Fake {
    pub url: String,
    shared: Shared,
}

impl Fake {
    pub async fn start() -> Self {
        let shared = Shared {
            next_id: Arc::new(AtomicU64::new(1_100_000_000_000_000_000)),
            ..Default::default()
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, shared }
    }

    /// What GitHub lists as the files pull request `number` of `repo` changes.
    pub fn set_pull_files(&self, repo: &str, number: u64, files: &[&str]) {
        self.shared.pull_files.lock().unwrap().insert(
            (repo.to_owned(), number),
            files.iter().map(|f| f.to_string()).collect(),
        );
    }

    pub fn requests(&self) -> Vec<Request> {
        crate::leaks::assert_none();
        self.shared.seen.lock().unwrap().clone()
    }

    /// Answers the next `n` Discord requests with 429 and `Retry-After`.
    pub fn throttle_next(&self, n: usize) {
        *self.shared.throttle.lock().unwrap() = n;
    }

    /// Starts or ends an outage: while on, every request is answered 503.
    pub fn outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::SeqCst);
    }

    pub fn matching(&self, method: &str, path_prefix: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.starts_with(path_prefix))
            .collect()
    }
}

/// A Discord message object (docs: Channel resource, Message object).
fn discord_message(id: u64, channel: &str, embeds: &Value) -> Value {
    json!({
        "id": id.to_string(),
        "channel_id": channel,
        "author": {"id": "1090000000000000001", "username": "Gantry", "discriminator": "0000", "avatar": null, "bot": true, "global_name": null},
        "content": "",
        "timestamp": "2026-12-01T12:00:00.000000+00:00",
        "edited_timestamp": null,
        "tts": false,
        "mention_everyone": false,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": embeds,
        "pinned": false,
        "type": 0
    })
}

fn discord(method: &Method, path: &str, body: &Value, id: u64) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_start_matches("/api/v10/").split('/').collect();
    let embeds = body.get("embeds").cloned().unwrap_or(json!([]));
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["channels", channel, "messages"]) => (200, discord_message(id, channel, &embeds)),
        ("PATCH", ["channels", channel, "messages", message]) => (
            200,
            discord_message(message.parse().unwrap_or(0), channel, &embeds),
        ),
        ("POST", ["webhooks", _, _]) => (200, discord_message(id, "1090000000000000002", &embeds)),
        ("PATCH", ["webhooks", _, _, "messages", message]) => (
            200,
            discord_message(
                message.parse().unwrap_or(id),
                "1090000000000000002",
                &embeds,
            ),
        ),
        ("PUT", ["applications", app, "commands"])
        | ("PUT", ["applications", app, "guilds", _, "commands"]) => {
            let cmds: Vec<Value> = body
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, mut c)| {
                    c["id"] = json!((id + i as u64).to_string());
                    c["application_id"] = json!(app);
                    c["version"] = json!("1");
                    c["type"] = json!(1);
                    c["default_member_permissions"] = Value::Null;
                    c
                })
                .collect();
            (200, Value::Array(cmds))
        }
        _ => (404, json!({"message": "404: Not Found", "code": 0})),
    }
}

/// An issue comment object (docs: "Create an issue comment").
fn comment_json(id: u64, repo: &str, number: u64, body: &str) -> Value {
    json!({
        "id": id, "node_id": "IC_kwDOA",
        "url": format!("https://api.github.com/repos/{repo}/issues/comments/{id}"),
        "html_url": format!("https://github.com/{repo}/pull/{number}#issuecomment-{id}"),
        "issue_url": format!("https://api.github.com/repos/{repo}/issues/{number}"),
        "body": body,
        "user": {"login": "gantry[bot]", "id": 1, "type": "Bot"},
        "created_at": "2026-12-01T12:00:00Z", "updated_at": "2026-12-01T12:00:00Z",
        "author_association": "NONE"
    })
}

/// A pull request object (docs: "Create a pull request"), the fields Gantry reads and a few more.
fn pull_json(p: &Pull) -> Value {
    let (number, repo, head, base, title) = p;
    json!({
        "id": 1_000 + number, "node_id": "PR_kwDOA", "number": number, "state": "open",
        "title": title, "locked": false,
        "url": format!("https://api.github.com/repos/{repo}/pulls/{number}"),
        "html_url": format!("https://github.com/{repo}/pull/{number}"),
        "head": {"ref": head, "label": format!("{}:{head}", repo.split('/').next().unwrap_or(""))},
        "base": {"ref": base},
        "user": {"login": "gantry[bot]", "id": 1, "type": "Bot"},
        "created_at": "2026-12-01T12:00:00Z", "updated_at": "2026-12-01T12:00:00Z"
    })
}

/// GitHub's pull requests, kept: list open ones filtered by `head` (`OWNER:BRANCH`) and
/// `base`, create (422 when one is open for the same head and base, as GitHub answers).
fn pulls(s: &Shared, method: &Method, uri: &Uri, body: &Value) -> Option<(u16, Value)> {
    let parts: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    let q: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    // docs: "List pull requests files" (paginated, `per_page` at most 100).
    if let (&"GET", ["repos", owner, repo, "pulls", number, "files"]) =
        (&method.as_str(), parts.as_slice())
    {
        let key = (format!("{owner}/{repo}"), number.parse().ok()?);
        let files = s
            .pull_files
            .lock()
            .unwrap()
            .get(&key)
            .cloned()
            .unwrap_or_default();
        let per: usize = q
            .get("per_page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(30)
            .min(100);
        let page: usize = q
            .get("page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(1)
            .max(1);
        let list: Vec<Value> = files
            .iter()
            .skip((page - 1) * per)
            .take(per)
            .map(|f| json!({"sha": "bbcd538c8e72b8c175046e27cc8f907076331401", "filename": f, "status": "modified", "additions": 1, "deletions": 0, "changes": 1, "patch": "@@ -1 +1 @@"}))
            .collect();
        return Some((200, Value::Array(list)));
    }
    let ["repos", owner, repo, "pulls"] = parts.as_slice() else {
        return None;
    };
    let repo = format!("{owner}/{repo}");
    let mut all = s.pulls.lock().unwrap();
    match method.as_str() {
        "GET" => {
            let list: Vec<Value> = all
                .iter()
                .filter(|p| p.1 == repo)
                .filter(|p| {
                    q.get("head")
                        .is_none_or(|h| *h == format!("{owner}:{}", p.2))
                })
                .filter(|p| q.get("base").is_none_or(|b| *b == p.3))
                .map(pull_json)
                .collect();
            Some((200, Value::Array(list)))
        }
        "POST" => {
            let head = body["head"].as_str().unwrap_or("").to_owned();
            let base = body["base"].as_str().unwrap_or("").to_owned();
            if all
                .iter()
                .any(|p| p.1 == repo && p.2 == head && p.3 == base)
            {
                return Some((
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {owner}:{head}.")}]}),
                ));
            }
            let pull = (
                all.len() as u64 + 1,
                repo,
                head,
                base,
                body["title"].as_str().unwrap_or("").to_owned(),
            );
            all.push(pull.clone());
            Some((201, pull_json(&pull)))
        }
        _ => None,
    }
}

/// GitHub's issue comments, kept: list (one page), create, edit.
fn comments(
    s: &Shared,
    method: &Method,
    path: &str,
    body: &Value,
    id: u64,
) -> Option<(u16, Value)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut all = s.comments.lock().unwrap();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["repos", owner, repo, "issues", number, "comments"]) => {
            let (repo, number): (String, u64) = (format!("{owner}/{repo}"), number.parse().ok()?);
            let list: Vec<Value> = all
                .iter()
                .filter(|c| c.1 == repo && c.2 == number)
                .map(|c| comment_json(c.0, &c.1, c.2, &c.3))
                .collect();
            Some((200, Value::Array(list)))
        }
        ("POST", ["repos", owner, repo, "issues", number, "comments"]) => {
            let (repo, number): (String, u64) = (format!("{owner}/{repo}"), number.parse().ok()?);
            let text = body["body"].as_str().unwrap_or("").to_owned();
            all.push((id, repo.clone(), number, text.clone()));
            Some((201, comment_json(id, &repo, number, &text)))
        }
        ("PATCH", ["repos", _, _, "issues", "comments", cid]) => {
            let cid: u64 = cid.parse().ok()?;
            let text = body["body"].as_str().unwrap_or("").to_owned();
            let c = all.iter_mut().find(|c| c.0 == cid)?;
            c.3 = text;
            Some((200, comment_json(c.0, &c.1.clone(), c.2, &c.3.clone())))
        }
        _ => None,
    }
}

fn github(method: &Method, path: &str, body: &Value, id: u64) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        // docs: "Create an installation access token for an app".
        ("POST", ["app", "installations", _, "access_tokens"]) => (
            201,
            json!({
                "token": format!("ghs_c4n4ry_installation_{id}"),
                "expires_at": "2099-01-01T00:00:00Z",
                "permissions": {"statuses": "write", "deployments": "write", "metadata": "read"},
                "repository_selection": "all"
            }),
        ),
        ("POST", ["repos", owner, repo, "statuses", sha]) => (
            201,
            json!({
                "url": format!("https://api.github.com/repos/{owner}/{repo}/statuses/{sha}"),
                "id": id, "node_id": "MDY6U3RhdHVzMQ==",
                "state": body["state"], "description": body["description"],
                "target_url": body["target_url"], "context": body["context"],
                "created_at": "2026-12-01T12:00:00Z", "updated_at": "2026-12-01T12:00:00Z"
            }),
        ),
        ("POST", ["repos", _, _, "deployments"]) => (
            201,
            json!({
                "id": id, "node_id": "MDEwOkRlcGxveW1lbnQx", "sha": body["ref"], "ref": body["ref"],
                "task": "deploy", "environment": body["environment"], "description": body["description"],
                "created_at": "2026-12-01T12:00:00Z", "updated_at": "2026-12-01T12:00:00Z"
            }),
        ),
        ("POST", ["repos", _, _, "deployments", _, "statuses"]) => (
            201,
            json!({"id": id, "state": body["state"], "description": body["description"], "created_at": "2026-12-01T12:00:00Z"}),
        ),
        _ => (
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
        ),
    }
}

async fn answer(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let body_json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    // What Gantry sends Discord and GitHub: bodies and queries hold no secret.
    crate::leaks::scan_bytes(&format!("{method} {path} to the fake"), &body);
    crate::leaks::scan(&format!("{method} {path}?"), uri.query().unwrap_or(""));
    let index = {
        let mut seen = s.seen.lock().unwrap();
        seen.push(Request {
            method: method.to_string(),
            path: path.clone(),
            query: uri.query().unwrap_or("").to_owned(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            body: body_json.clone(),
            at: std::time::Instant::now(),
            status: 0,
        });
        seen.len() - 1
    };
    let answered = |status: u16| {
        s.seen.lock().unwrap()[index].status = status;
        status
    };
    let id = s.next_id.fetch_add(1, Ordering::SeqCst);
    let is_discord = path.starts_with("/api/v10/");
    if s.outage.load(Ordering::SeqCst) {
        return Response::builder()
            .status(answered(503))
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"message": "upstream connect error", "code": 0}).to_string(),
            ))
            .unwrap();
    }
    if is_discord {
        let mut left = s.throttle.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            return Response::builder()
                .status(answered(429))
                .header("content-type", "application/json")
                .header("retry-after", "0.2")
                .header("x-ratelimit-limit", "5")
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-reset-after", "0.2")
                .header("x-ratelimit-bucket", "gantry-fake")
                .body(Body::from(json!({"message": "You are being rate limited.", "retry_after": 0.2, "global": false}).to_string()))
                .unwrap();
        }
    }
    // Discord: a message created before with the same enforced nonce is returned, not created.
    let nonce = body_json["nonce"]
        .as_str()
        .filter(|_| body_json["enforce_nonce"] == true)
        .map(str::to_owned);
    let id = match &nonce {
        Some(n) if method == Method::POST => {
            *s.nonces.lock().unwrap().entry(n.clone()).or_insert(id)
        }
        _ => id,
    };
    let (status, v) = if is_discord {
        discord(&method, &path, &body_json, id)
    } else if let Some(answer) = comments(&s, &method, &path, &body_json, id) {
        answer
    } else if let Some(answer) = pulls(&s, &method, &uri, &body_json) {
        answer
    } else {
        github(&method, &path, &body_json, id)
    };
    Response::builder()
        .status(answered(status))
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}
