//! The OCI Distribution API over reqwest (`ports::Registry`). Credentials: ECR registries
//! through `GetAuthorizationToken` (cached), any other from the standard auth file
//! (`images.authFile`, `REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
//! `~/.docker/config.json`). Basic and Bearer-token challenges are both answered. A registry
//! can be reached at another address than its name (`images.registryEndpoints`, e.g. an ECR
//! name served by a local registry in tests); plain `http://` only for loopback addresses.
//!
//! Hand-written rather than oci-client: the versions with `blob_exists` need reqwest 0.13, a
//! second HTTP stack in this binary; the few calls below are the whole API Gantry uses.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use tokio::sync::Mutex;

use super::ecr::Ecr;
use crate::domain::{ecr_registry, is_loopback_host, ImageRef};
use crate::plan::oci;
use crate::ports::{Endpoint, Login, Manifest, Registry, RegistryError};
use crate::secret::Secret;

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

pub struct HttpRegistry {
    http: reqwest::Client,
    /// Logical registry host -> base URL.
    endpoints: BTreeMap<String, String>,
    auth_file: Option<PathBuf>,
    ecr: Option<Arc<Ecr>>,
    /// (registry, repository, write) -> Authorization header value.
    auth: Mutex<HashMap<(String, String, bool), Secret>>,
}

impl HttpRegistry {
    pub fn new(
        endpoints: BTreeMap<String, String>,
        auth_file: Option<PathBuf>,
        ecr: Option<Arc<Ecr>>,
    ) -> Result<Self, RegistryError> {
        crate::domain::check_endpoints(&endpoints).map_err(|e| RegistryError::Endpoint {
            registry: e.registry,
            message: e.message,
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| RegistryError::Http {
                registry: "-".into(),
                message: e.to_string(),
                transient: false,
            })?;
        Ok(Self {
            http,
            endpoints,
            auth_file,
            ecr,
            auth: Mutex::default(),
        })
    }

    fn base_url(&self, registry: &str) -> String {
        match self.endpoints.get(registry) {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if registry == "docker.io" => "https://registry-1.docker.io".into(),
            None if is_loopback_host(registry) => format!("http://{registry}"),
            None => format!("https://{registry}"),
        }
    }

    fn auth_file_login(&self, registry: &str) -> Option<Login> {
        let mut candidates: Vec<PathBuf> = self.auth_file.iter().cloned().collect();
        if let Ok(p) = std::env::var("REGISTRY_AUTH_FILE") {
            candidates.push(p.into());
        }
        if let Ok(d) = std::env::var("XDG_RUNTIME_DIR") {
            candidates.push(PathBuf::from(d).join("containers/auth.json"));
        }
        if let Ok(h) = std::env::var("HOME") {
            candidates.push(PathBuf::from(h).join(".docker/config.json"));
        }
        let transport = reqwest::Url::parse(&self.base_url(registry))
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h.to_owned(),
                })
            });
        let mut keys = vec![registry.to_owned(), format!("https://{registry}")];
        if registry == "docker.io" {
            keys.push("https://index.docker.io/v1/".into());
        }
        keys.extend(transport);
        for path in candidates {
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                tracing::warn!(path = %path.display(), "registry auth file is not JSON; ignored");
                continue;
            };
            for k in &keys {
                let Some(auth) = v["auths"][k]["auth"].as_str() else {
                    continue;
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok());
                if let Some((u, p)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                    return Some(Login {
                        username: u.to_owned(),
                        password: Secret::new(p),
                    });
                }
            }
        }
        None
    }

    /// Sends a request, answering an auth challenge once and retrying transient failures.
    async fn send(
        &self,
        r: &ImageRef,
        method: Method,
        url: &str,
        headers: &[(reqwest::header::HeaderName, String)],
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, RegistryError> {
        let write = !matches!(method, Method::GET | Method::HEAD);
        let key = (r.registry.clone(), r.repository.clone(), write);
        let mut answered = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(b) = &body {
                req = req.body(b.clone());
            }
            if let Some(h) = self.auth.lock().await.get(&key) {
                if let Ok(mut v) = HeaderValue::from_str(h.expose()) {
                    v.set_sensitive(true);
                    req = req.header(AUTHORIZATION, v);
                }
            }
            let resp = match req.send().await {
                Ok(resp) => resp,
                Err(e) if attempt < 4 && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
                    continue;
                }
                Err(e) => return Err(self.io_err(r, format!("{method} {}", path_of(url)), e)),
            };
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED && !answered {
                answered = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let header = self.answer(r, &challenge, write).await?;
                self.auth.lock().await.insert(key.clone(), header);
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(RegistryError::Auth {
                    registry: r.registry.clone(),
                    message: format!("{method} {} answered {status}", path_of(url)),
                });
            }
            if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS) && attempt < 4
            {
                tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
                continue;
            }
            return Ok(resp);
        }
    }

    /// The Authorization header for a challenge (`Basic` or `Bearer realm=..`).
    async fn answer(
        &self,
        r: &ImageRef,
        challenge: &str,
        write: bool,
    ) -> Result<Secret, RegistryError> {
        let login = self.login(&r.registry).await?;
        let basic = login.as_ref().map(|l| {
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                l.username,
                l.password.expose()
            ))
        });
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return basic
                .map(|b| Secret::new(format!("Basic {b}")))
                .ok_or_else(|| RegistryError::Auth {
                    registry: r.registry.clone(),
                    message: "the registry wants a login and no credentials are configured for it"
                        .into(),
                });
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(RegistryError::Auth {
                registry: r.registry.clone(),
                message: format!("unsupported challenge `{scheme}`"),
            });
        }
        let params = challenge_params(params);
        let realm = params.get("realm").ok_or_else(|| RegistryError::Auth {
            registry: r.registry.clone(),
            message: "Bearer challenge without a realm".into(),
        })?;
        let scope = format!(
            "repository:{}:{}",
            r.repository,
            if write { "pull,push" } else { "pull" }
        );
        let mut req = self.http.get(realm).query(&[("scope", scope.as_str())]);
        if let Some(service) = params.get("service") {
            req = req.query(&[("service", service.as_str())]);
        }
        if let Some(b) = &basic {
            req = req.header(AUTHORIZATION, format!("Basic {b}"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.io_err(r, "token request".into(), e))?;
        if !resp.status().is_success() {
            return Err(RegistryError::Auth {
                registry: r.registry.clone(),
                message: format!("the token service answered {}", resp.status()),
            });
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| self.io_err(r, "token response".into(), e))?;
        let token = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .ok_or_else(|| RegistryError::Auth {
                registry: r.registry.clone(),
                message: "the token service returned no token".into(),
            })?;
        Ok(Secret::new(format!("Bearer {token}")))
    }

    fn http_err(&self, r: &ImageRef, message: String) -> RegistryError {
        RegistryError::Http {
            registry: r.registry.clone(),
            message,
            transient: false,
        }
    }

    /// A request that failed on the way (connect, timeout, a body cut off): transient.
    fn io_err(&self, r: &ImageRef, what: String, e: reqwest::Error) -> RegistryError {
        RegistryError::Http {
            registry: r.registry.clone(),
            transient: e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
            message: format!("{what}: {e}"),
        }
    }

    fn url(&self, r: &ImageRef, rest: &str) -> String {
        format!("{}/v2/{}/{rest}", self.base_url(&r.registry), r.repository)
    }

    async fn unexpected(&self, r: &ImageRef, what: &str, resp: reqwest::Response) -> RegistryError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let body: String = body.chars().take(300).collect();
        RegistryError::Http {
            registry: r.registry.clone(),
            message: format!("{what}: {status} {body}"),
            transient: status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

fn path_of(url: &str) -> String {
    reqwest::Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.path().to_owned())
}

/// `realm="https://auth",service="registry",scope="..."` -> map.
fn challenge_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once('"') {
                Some((v, n)) => (v.to_owned(), n),
                None => (q.to_owned(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_owned(), n),
                None => (after.trim().to_owned(), ""),
            }
        };
        out.insert(k, v);
        rest = next.trim_start_matches(',').trim();
    }
    out
}

#[async_trait]
impl Registry for HttpRegistry {
    #[tracing::instrument(skip_all, fields(image = %r))]
    async fn manifest(&self, r: &ImageRef) -> Result<Option<Manifest>, RegistryError> {
        let url = self.url(r, &format!("manifests/{}", r.reference()));
        let resp = self
            .send(
                r,
                Method::GET,
                &url,
                &[(ACCEPT, MANIFEST_TYPES.into())],
                None,
            )
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => return Err(self.unexpected(r, "GET manifest", resp).await),
        }
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.io_err(r, "GET manifest".into(), e))?
            .to_vec();
        let digest = oci::sha256_digest(&bytes);
        if r.digest.as_deref().is_some_and(|d| d != digest) {
            return Err(RegistryError::Corrupt {
                registry: r.registry.clone(),
                digest,
            });
        }
        Ok(Some(Manifest {
            media_type,
            digest,
            bytes,
        }))
    }

    #[tracing::instrument(skip_all, fields(image = %r, digest))]
    async fn blob(&self, r: &ImageRef, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let url = self.url(r, &format!("blobs/{digest}"));
        let resp = self.send(r, Method::GET, &url, &[], None).await?;
        if !resp.status().is_success() {
            return Err(self.unexpected(r, "GET blob", resp).await);
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.io_err(r, "GET blob".into(), e))?
            .to_vec();
        if oci::sha256_digest(&bytes) != digest {
            return Err(RegistryError::Corrupt {
                registry: r.registry.clone(),
                digest: digest.to_owned(),
            });
        }
        Ok(bytes)
    }

    async fn has_blob(&self, r: &ImageRef, digest: &str) -> Result<bool, RegistryError> {
        let url = self.url(r, &format!("blobs/{digest}"));
        let resp = self.send(r, Method::HEAD, &url, &[], None).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.unexpected(r, "HEAD blob", resp).await),
        }
    }

    async fn mount_blob(
        &self,
        r: &ImageRef,
        from: &ImageRef,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let url = self.url(
            r,
            &format!("blobs/uploads/?mount={digest}&from={}", from.repository),
        );
        let resp = self
            .send(r, Method::POST, &url, &[], Some(bytes::Bytes::new()))
            .await?;
        // 202 means "not mounted, here is an upload session instead": left to expire.
        Ok(resp.status() == StatusCode::CREATED)
    }

    #[tracing::instrument(skip_all, fields(image = %r, digest, bytes = data.len()))]
    async fn put_blob(
        &self,
        r: &ImageRef,
        digest: &str,
        data: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let url = self.url(r, "blobs/uploads/");
        let resp = self
            .send(r, Method::POST, &url, &[], Some(bytes::Bytes::new()))
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.unexpected(r, "POST upload", resp).await);
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| self.http_err(r, "POST upload: no Location".into()))?
            .to_owned();
        let mut upload = match reqwest::Url::parse(&location) {
            Ok(u) => u,
            Err(_) => reqwest::Url::parse(&self.base_url(&r.registry))
                .and_then(|b| b.join(&location))
                .map_err(|e| self.http_err(r, format!("bad upload location `{location}`: {e}")))?,
        };
        upload.query_pairs_mut().append_pair("digest", digest);
        let headers = [(CONTENT_TYPE, "application/octet-stream".to_owned())];
        let resp = self
            .send(r, Method::PUT, upload.as_str(), &headers, Some(data.into()))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.unexpected(r, "PUT blob", resp).await);
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(image = %r))]
    async fn put_manifest(&self, r: &ImageRef, m: &Manifest) -> Result<(), RegistryError> {
        let url = self.url(r, &format!("manifests/{}", r.reference()));
        let headers = [(CONTENT_TYPE, m.media_type.clone())];
        let resp = self
            .send(r, Method::PUT, &url, &headers, Some(m.bytes.clone().into()))
            .await?;
        if !resp.status().is_success() {
            return Err(self.unexpected(r, "PUT manifest", resp).await);
        }
        Ok(())
    }

    async fn ensure_repository(&self, r: &ImageRef) -> Result<bool, RegistryError> {
        match (ecr_registry(&r.registry), &self.ecr) {
            (Some((account, _)), Some(ecr)) => ecr.ensure_repository(&account, &r.repository).await,
            // Other registries create repositories on first push.
            _ => Ok(false),
        }
    }

    async fn login(&self, registry: &str) -> Result<Option<Login>, RegistryError> {
        if let (Some((account, _)), Some(ecr)) = (ecr_registry(registry), &self.ecr) {
            return ecr.login(&account).await.map(Some);
        }
        Ok(self.auth_file_login(registry))
    }

    fn endpoint(&self, registry: &str) -> Result<Endpoint, RegistryError> {
        let base = self.base_url(registry);
        let url = reqwest::Url::parse(&base).map_err(|e| RegistryError::Endpoint {
            registry: registry.to_owned(),
            message: e.to_string(),
        })?;
        let host = url.host_str().unwrap_or_default();
        Ok(Endpoint {
            host: match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.to_owned(),
            },
            insecure: url.scheme() == "http",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let p = challenge_params(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/python:pull");
    }
}
