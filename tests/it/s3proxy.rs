//! A recording, fault-injecting HTTP proxy in front of moto: each test gets its own, so it can
//! count exactly the requests its sync made and inject faults on chosen operations of ECS, ECR
//! (JSON protocol, matched on `X-Amz-Target`), S3 and CloudFront (REST, matched on method and
//! path): error answers (throttling, 5xx, validation), added latency, and connections reset
//! before the request reaches moto or after moto has acted on it (the answer is lost).

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub copy: bool,
    pub status: u16,
    /// `X-Amz-Target` of JSON-protocol calls (ECS: `AmazonEC2ContainerServiceV20141113.RunTask`).
    pub target: String,
    pub body: Bytes,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// PUTs still to be answered with 503 SlowDown.
    fail_puts: Arc<Mutex<usize>>,
    faults: Arc<Mutex<Vec<Fault>>>,
}

/// What happens to the next `times` calls of one operation instead of moto's answer.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The `X-Amz-Target` suffix (`RegisterTaskDefinition`), or for REST services a method and
    /// a path fragment (`POST /invalidation`, `PUT /site-bucket/`).
    pub operation: &'static str,
    pub times: usize,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub enum Action {
    /// Answer this instead of forwarding.
    Answer {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// Wait, then forward.
    Delay(std::time::Duration),
    /// Reset the connection without forwarding.
    ResetBefore,
    /// Forward (moto acts on it), then reset the connection: the caller never hears.
    ResetAfter,
}

impl Fault {
    fn json(operation: &'static str, times: usize, status: u16, code: &str, message: &str) -> Self {
        Self {
            operation,
            times,
            action: Action::Answer {
                status,
                content_type: "application/x-amz-json-1.1",
                body: serde_json::json!({ "__type": code, "message": message }).to_string(),
            },
        }
    }

    fn xml(operation: &'static str, times: usize, status: u16, body: &str) -> Self {
        Self {
            operation,
            times,
            action: Action::Answer {
                status,
                content_type: "application/xml",
                body: body.to_owned(),
            },
        }
    }

    /// `503 SlowDown`, as S3 answers a caller over its request rate.
    pub fn slow_down(operation: &'static str, times: usize) -> Self {
        Self::xml(operation, times, 503, SLOW_DOWN)
    }

    /// `400 Throttling` in CloudFront's XML error shape.
    pub fn cloudfront_throttling(operation: &'static str, times: usize) -> Self {
        Self::xml(
            operation,
            times,
            400,
            r#"<?xml version="1.0"?><ErrorResponse xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>gantry-proxy</RequestId></ErrorResponse>"#,
        )
    }

    /// `500 InternalError` in S3's XML error shape.
    pub fn internal_xml(operation: &'static str, times: usize) -> Self {
        Self::xml(
            operation,
            times,
            500,
            r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>"#,
        )
    }

    pub fn delay(operation: &'static str, times: usize, by: std::time::Duration) -> Self {
        Self {
            operation,
            times,
            action: Action::Delay(by),
        }
    }

    pub fn reset_before(operation: &'static str, times: usize) -> Self {
        Self {
            operation,
            times,
            action: Action::ResetBefore,
        }
    }

    pub fn reset_after(operation: &'static str, times: usize) -> Self {
        Self {
            operation,
            times,
            action: Action::ResetAfter,
        }
    }

    fn matches(&self, method: &Method, path: &str, target: &str) -> bool {
        match self.operation.split_once(' ') {
            Some((m, fragment)) => m == method.as_str() && path.contains(fragment),
            None => !target.is_empty() && target.ends_with(self.operation),
        }
    }

    /// `400 ThrottlingException`, as ECS answers a caller over its rate.
    pub fn throttling(operation: &'static str, times: usize) -> Self {
        Self::json(
            operation,
            times,
            400,
            "ThrottlingException",
            "Rate exceeded",
        )
    }

    /// `503 ServerException`.
    pub fn unavailable(operation: &'static str, times: usize) -> Self {
        Self::json(
            operation,
            times,
            503,
            "ServerException",
            "Service unavailable, try again",
        )
    }

    /// `400 ClientException`: the request itself is wrong; retrying cannot help.
    pub fn invalid(operation: &'static str, times: usize, message: &str) -> Self {
        Self::json(operation, times, 400, "ClientException", message)
    }
}

const SLOW_DOWN: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"#;

pub struct S3Proxy {
    pub url: String,
    shared: Shared,
}

impl S3Proxy {
    pub async fn start(upstream: &str) -> Self {
        let shared = Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            seen: Arc::default(),
            fail_puts: Arc::default(),
            faults: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(forward)
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Its own accept loop, so a handler can reset its connection (RST, via SO_LINGER 0).
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                // Linger 0 never blocks: the close is an immediate RST.
                #[allow(deprecated)]
                let _ = stream.set_linger(Some(std::time::Duration::ZERO));
                let reset = Reset(Arc::new(tokio::sync::Notify::new()));
                let app = app.clone().layer(axum::Extension(reset.clone()));
                tokio::spawn(async move {
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        // Dropping the connection drops the socket: with linger 0, an RST.
                        _ = reset.0.notified() => {}
                    }
                });
            }
        });
        Self { url, shared }
    }

    /// Answers the next `n` PUT requests with 503 SlowDown.
    pub fn fail_next_puts(&self, n: usize) {
        *self.shared.fail_puts.lock().unwrap() = n;
    }

    /// Answers the next calls of an operation with `fault` instead of forwarding them.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().push(fault);
    }

    /// Drops the faults still waiting.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }

    pub fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.shared.seen.lock().unwrap())
    }
}

/// Body uploads: PUTs without a copy source (multipart parts included).
pub fn uploads(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.method == "PUT" && !s.copy && s.status < 300)
        .collect()
}

pub fn copies(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| s.method == "PUT" && s.copy && s.status < 300)
        .collect()
}

/// Requests that change the bucket.
pub fn writes(seen: &[Seen]) -> Vec<&Seen> {
    seen.iter()
        .filter(|s| matches!(s.method.as_str(), "PUT" | "POST" | "DELETE"))
        .collect()
}

/// Resets the connection it belongs to.
#[derive(Clone)]
struct Reset(Arc<tokio::sync::Notify>);

impl Reset {
    async fn now(&self) -> Response {
        self.0.notify_one();
        std::future::pending().await
    }
}

async fn forward(
    State(s): State<Shared>,
    axum::Extension(reset): axum::Extension<Reset>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let copy = headers.contains_key("x-amz-copy-source");
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let record = |status: u16| {
        s.seen.lock().unwrap().push(Seen {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            copy,
            status,
            target: target.clone(),
            body: body.clone(),
        });
    };
    if method == Method::PUT {
        let mut left = s.fail_puts.lock().unwrap();
        if *left > 0 {
            *left -= 1;
            drop(left);
            record(503);
            let xml = SLOW_DOWN;
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header("content-type", "application/xml")
                .body(Body::from(xml))
                .unwrap();
        }
    }
    let injected = {
        let mut faults = s.faults.lock().unwrap();
        faults
            .iter_mut()
            .find(|f| f.times > 0 && f.matches(&method, &path, &target))
            .map(|f| {
                f.times -= 1;
                f.action.clone()
            })
    };
    let mut reset_after = false;
    match injected {
        Some(Action::Answer {
            status,
            content_type,
            body,
        }) => {
            record(status);
            return Response::builder()
                .status(status)
                .header("content-type", content_type)
                .body(Body::from(body))
                .unwrap();
        }
        Some(Action::Delay(by)) => tokio::time::sleep(by).await,
        Some(Action::ResetBefore) => {
            record(0);
            return reset.now().await;
        }
        Some(Action::ResetAfter) => reset_after = true,
        None => {}
    }
    let url = format!(
        "{}{}",
        s.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = s.http.request(method.clone(), url).body(body.clone());
    for (k, v) in headers.iter() {
        if k != "host" && k != "content-length" {
            req = req.header(k, v);
        }
    }
    let resp = req.send().await.expect("moto answers");
    let status = resp.status();
    if reset_after {
        // moto has acted on it; the caller hears nothing.
        record(0);
        return reset.now().await;
    }
    record(status.as_u16());
    let mut builder = Response::builder().status(status);
    for (k, v) in resp.headers() {
        // The body is re-framed here, except for HEAD, whose length describes the object.
        if k != "transfer-encoding" && (k != "content-length" || method == Method::HEAD) {
            builder = builder.header(k, v);
        }
    }
    builder
        .body(Body::from(resp.bytes().await.unwrap()))
        .unwrap()
}
