//! A client for Gantry's own JSON API (the CLI's `deploy`, `status`, `show`, ...): bearer
//! token, JSON in and out, the daemon's `{"error": ...}` answer turned into an error.

use serde_json::Value;

use crate::secret::Secret;

#[derive(Debug, thiserror::Error)]
pub enum ApiClientError {
    #[error(
        "failed to reach gantry at {base}: {source}{}",
        unreachable_hint(source)
    )]
    Unreachable {
        base: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("gantry answered {status}: {message}")]
    Status { status: u16, message: String },
}

/// What to check when the daemon cannot be reached at all.
fn unreachable_hint(e: &reqwest::Error) -> &'static str {
    if e.is_connect() {
        " (is `gantry serve` running there? point the CLI at it with --server URL or GANTRY_SERVER)"
    } else if e.is_timeout() {
        " (it did not answer in time)"
    } else {
        ""
    }
}

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<Secret>,
}

impl ApiClient {
    pub fn new(base: &str, token: Option<Secret>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ApiClientError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiClientError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, ApiClientError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t.expose()),
            None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|source| ApiClientError::Unreachable {
                base: self.base.clone(),
                source,
            })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no details")
                .to_owned();
            return Err(ApiClientError::Status {
                status: status.as_u16(),
                message,
            });
        }
        Ok(body)
    }
}
