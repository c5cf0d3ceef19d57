//! A recording, fault-injecting HTTP proxy in front of moto: each test gets its own, so it can
//! count exactly the requests its sync made and inject faults: S3 `503 SlowDown` answers, and
//! for JSON-protocol services (ECS) throttling, 5xx and validation errors on chosen operations.

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

/// An answer given instead of moto's to the next `times` calls of one operation.
#[derive(Debug, Clone)]
pub struct Fault {
    /// The `X-Amz-Target` suffix, e.g. `RegisterTaskDefinition`.
    pub operation: &'static str,
    pub times: usize,
    pub status: u16,
    /// The JSON error body (`__type` is the error code the SDK reads).
    pub body: String,
}

impl Fault {
    fn json(operation: &'static str, times: usize, status: u16, code: &str, message: &str) -> Self {
        Self {
            operation,
            times,
            status,
            body: serde_json::json!({ "__type": code, "message": message }).to_string(),
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
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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

async fn forward(
    State(s): State<Shared>,
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
            let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
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
            .find(|f| f.times > 0 && !target.is_empty() && target.ends_with(f.operation))
            .map(|f| {
                f.times -= 1;
                (f.status, f.body.clone())
            })
    };
    if let Some((status, body)) = injected {
        record(status);
        return Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.1")
            .body(Body::from(body))
            .unwrap();
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
