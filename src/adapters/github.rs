//! GitHub through octocrab: commit statuses and the Deployments API. Authenticates as a GitHub
//! App (octocrab mints the installation token from the app's JWT and refreshes it) or with a
//! token. `github.apiUrl` points it at GitHub Enterprise, or at a fake in tests.

use async_trait::async_trait;
use octocrab::Octocrab;
use serde_json::{json, Value};

use crate::ports::PublishError;
use crate::ports::{CommitStatus, Forge};
use crate::secret::Secret;

pub struct GitHub {
    octo: Octocrab,
}

#[derive(Debug, thiserror::Error)]
#[error("GitHub client: {0}")]
pub struct GithubSetupError(String);

fn fail(message: String) -> PublishError {
    PublishError {
        target: "github",
        message,
    }
}

fn describe(e: octocrab::Error) -> String {
    match e {
        octocrab::Error::GitHub { source, .. } => format!(
            "GitHub answered HTTP {}: {}",
            source.status_code.as_u16(),
            source.message
        ),
        other => other.to_string(),
    }
}

/// How Gantry authenticates to GitHub's API.
pub enum GithubAuth<'a> {
    /// A GitHub App installation: octocrab signs the JWT and mints installation tokens.
    App {
        app_id: u64,
        installation_id: u64,
        private_key: &'a Secret,
    },
    Token(&'a Secret),
}

impl GitHub {
    /// `None` when neither an App nor a token is configured.
    pub fn new(
        api_url: Option<&str>,
        auth: Option<GithubAuth<'_>>,
    ) -> Result<Option<Self>, GithubSetupError> {
        let setup = |e: octocrab::Error| GithubSetupError(describe(e));
        let timeout = Some(std::time::Duration::from_secs(30));
        let mut b = Octocrab::builder()
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(timeout)
            .set_write_timeout(timeout);
        if let Some(url) = api_url {
            b = b.base_uri(url).map_err(setup)?;
        }
        let octo = match auth {
            Some(GithubAuth::App {
                app_id,
                installation_id,
                private_key,
            }) => {
                let key = octocrab::EncodingKey::from_rsa_pem(private_key.expose().as_bytes())
                    .map_err(|_| {
                        GithubSetupError(
                            "github.appPrivateKey is not an RSA private key in PEM".into(),
                        )
                    })?;
                b.app(app_id.into(), key)
                    .build()
                    .map_err(setup)?
                    .installation(installation_id.into())
                    .map_err(setup)?
            }
            Some(GithubAuth::Token(token)) => b
                .personal_token(token.expose().to_owned())
                .build()
                .map_err(setup)?,
            None => return Ok(None),
        };
        Ok(Some(Self { octo }))
    }
}

#[async_trait]
impl Forge for GitHub {
    #[tracing::instrument(skip_all, fields(repo, number))]
    #[tracing::instrument(skip_all, fields(repo, number))]
    async fn pull_request_files(
        &self,
        repo: &str,
        number: u64,
    ) -> Result<Option<Vec<String>>, PublishError> {
        // GitHub returns at most 3,000 files, 100 a page.
        let mut files = Vec::new();
        for page in 1..=30u32 {
            let got: Vec<Value> = self
                .octo
                .get(
                    format!("/repos/{repo}/pulls/{number}/files?per_page=100&page={page}"),
                    None::<&()>,
                )
                .await
                .map_err(|e| fail(format!("files of {repo}#{number}: {}", describe(e))))?;
            let n = got.len();
            for f in got {
                if let Some(name) = f["filename"].as_str() {
                    files.push(name.to_owned());
                }
                // A rename changes the old path too.
                if let Some(old) = f["previous_filename"].as_str() {
                    files.push(old.to_owned());
                }
            }
            if n < 100 {
                return Ok(Some(files));
            }
        }
        Ok(None)
    }

    #[tracing::instrument(skip_all, fields(repo, head))]
    async fn open_pull_request(
        &self,
        repo: &str,
        head: &str,
        base: &str,
        title: &str,
        body: &str,
    ) -> Result<u64, PublishError> {
        let owner = repo.split('/').next().unwrap_or_default();
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("state", "open")
            .append_pair("head", &format!("{owner}:{head}"))
            .append_pair("base", base)
            .finish();
        let open: Vec<Value> = self
            .octo
            .get(format!("/repos/{repo}/pulls?{query}"), None::<&()>)
            .await
            .map_err(|e| fail(format!("pull requests of {repo}: {}", describe(e))))?;
        if let Some(n) = open.iter().find_map(|p| p["number"].as_u64()) {
            return Ok(n);
        }
        let created: Value = self
            .octo
            .post(
                format!("/repos/{repo}/pulls"),
                Some(&json!({"title": title, "head": head, "base": base, "body": body})),
            )
            .await
            .map_err(|e| fail(format!("opening a pull request on {repo}: {}", describe(e))))?;
        created["number"]
            .as_u64()
            .ok_or_else(|| fail("GitHub's pull request has no number".into()))
    }

    async fn upsert_comment(
        &self,
        repo: &str,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<u64, PublishError> {
        // The comment Gantry made before, found by its marker (bounded: 10 pages of 100).
        let mut existing = None;
        for page in 1..=10u32 {
            let comments: Vec<Value> = self
                .octo
                .get(
                    format!("/repos/{repo}/issues/{number}/comments?per_page=100&page={page}"),
                    None::<&()>,
                )
                .await
                .map_err(|e| fail(format!("comments of {repo}#{number}: {}", describe(e))))?;
            existing = comments.iter().find_map(|c| {
                c["body"]
                    .as_str()
                    .filter(|b| b.contains(marker))
                    .and(c["id"].as_u64())
            });
            if existing.is_some() || comments.len() < 100 {
                break;
            }
        }
        let payload = json!({"body": body});
        let answer: Value = match existing {
            Some(id) => self
                .octo
                .patch(
                    format!("/repos/{repo}/issues/comments/{id}"),
                    Some(&payload),
                )
                .await
                .map_err(|e| fail(format!("editing comment {id} on {repo}: {}", describe(e))))?,
            None => self
                .octo
                .post(
                    format!("/repos/{repo}/issues/{number}/comments"),
                    Some(&payload),
                )
                .await
                .map_err(|e| fail(format!("commenting on {repo}#{number}: {}", describe(e))))?,
        };
        answer["id"]
            .as_u64()
            .ok_or_else(|| fail("GitHub's comment has no id".into()))
    }

    #[tracing::instrument(skip_all, fields(repo, state = %s.state))]
    async fn commit_status(
        &self,
        repo: &str,
        sha: &str,
        s: &CommitStatus,
    ) -> Result<(), PublishError> {
        let mut body =
            json!({"state": s.state, "context": s.context, "description": s.description});
        if let Some(url) = &s.target_url {
            body["target_url"] = json!(url);
        }
        self.octo
            .post::<_, Value>(format!("/repos/{repo}/statuses/{sha}"), Some(&body))
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("commit status on {repo}@{sha}: {}", describe(e))))
    }

    #[tracing::instrument(skip_all, fields(repo, environment))]
    async fn create_deployment(
        &self,
        repo: &str,
        sha: &str,
        environment: &str,
        description: &str,
    ) -> Result<u64, PublishError> {
        let body = json!({
            "ref": sha,
            "environment": environment,
            "description": description,
            "auto_merge": false,
            "required_contexts": [],
            "production_environment": environment == "production",
        });
        let v: Value = self
            .octo
            .post(format!("/repos/{repo}/deployments"), Some(&body))
            .await
            .map_err(|e| fail(format!("creating a deployment on {repo}: {}", describe(e))))?;
        v["id"]
            .as_u64()
            .ok_or_else(|| fail(format!("GitHub returned no deployment id: {v}")))
    }

    #[tracing::instrument(skip_all, fields(repo, deployment, state))]
    async fn deployment_status(
        &self,
        repo: &str,
        deployment: u64,
        state: &str,
        description: &str,
        log_url: Option<&str>,
    ) -> Result<(), PublishError> {
        let mut body = json!({"state": state, "description": description, "auto_inactive": true});
        if let Some(url) = log_url {
            body["log_url"] = json!(url);
        }
        self.octo
            .post::<_, Value>(
                format!("/repos/{repo}/deployments/{deployment}/statuses"),
                Some(&body),
            )
            .await
            .map(|_| ())
            .map_err(|e| fail(format!("deployment status on {repo}: {}", describe(e))))
    }
}
