//! ECR through aws-sdk-ecr: registry credentials from `GetAuthorizationToken`, cached until
//! five minutes before they expire, and repositories created on request.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use base64::Engine as _;
use tokio::sync::Mutex;

use crate::ports::{Login, RegistryError};
use crate::secret::Secret;

pub struct Ecr {
    client: aws_sdk_ecr::Client,
    /// Account id -> (credentials, expiry).
    tokens: Mutex<HashMap<String, (Login, SystemTime)>>,
}

const REFRESH_BEFORE: Duration = Duration::from_secs(300);

fn err(operation: &'static str) -> impl Fn(String) -> RegistryError {
    move |message| RegistryError::Ecr {
        operation,
        message,
        transient: false,
    }
}

/// An SDK error, transient when throttled, 5xx or a dropped connection.
fn sdk_err<E>(
    operation: &'static str,
) -> impl Fn(aws_sdk_ecr::error::SdkError<E, aws_smithy_runtime_api::http::Response>) -> RegistryError
where
    E: aws_sdk_ecr::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    move |e| RegistryError::Ecr {
        operation,
        transient: super::aws::transient(&e),
        message: ctx(e),
    }
}

use super::aws::error_chain as ctx;

impl Ecr {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_ecr::Client::new(config),
            tokens: Mutex::default(),
        }
    }

    /// Credentials for the registry of `account` (the token opens every registry the
    /// principal may use), from the cache while they are fresh.
    #[tracing::instrument(skip_all, fields(account))]
    pub async fn login(&self, account: &str) -> Result<Login, RegistryError> {
        let mut tokens = self.tokens.lock().await;
        if let Some((login, expires)) = tokens.get(account) {
            if SystemTime::now() + REFRESH_BEFORE < *expires {
                return Ok(login.clone());
            }
        }
        let out = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(sdk_err("GetAuthorizationToken"))?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| err("GetAuthorizationToken")("no authorization data".into()))?;
        let token = data
            .authorization_token()
            .ok_or_else(|| err("GetAuthorizationToken")("no token".into()))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                err("GetAuthorizationToken")("the token is not base64 of user:password".into())
            })?;
        let (user, password) = decoded
            .split_once(':')
            .ok_or_else(|| err("GetAuthorizationToken")("the token is not user:password".into()))?;
        let expires = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(12 * 3600));
        let login = Login {
            username: user.to_owned(),
            password: Secret::new(password),
        };
        tokens.insert(account.to_owned(), (login.clone(), expires));
        Ok(login)
    }

    /// Creates `repository` (scan on push, immutable tags off: the moving tag must move)
    /// unless it exists; `true` when created.
    #[tracing::instrument(skip_all, fields(repository))]
    pub async fn ensure_repository(
        &self,
        account: &str,
        repository: &str,
    ) -> Result<bool, RegistryError> {
        let found = self
            .client
            .describe_repositories()
            .registry_id(account)
            .repository_names(repository)
            .send()
            .await;
        match found {
            Ok(_) => return Ok(false),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) => {}
            Err(e) => return Err(sdk_err("DescribeRepositories")(e)),
        }
        let created = self
            .client
            .create_repository()
            .registry_id(account)
            .repository_name(repository)
            .image_scanning_configuration(
                aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                    .scan_on_push(true)
                    .build(),
            )
            .send()
            .await;
        match created {
            Ok(_) => Ok(true),
            // Another deployment created it in between: that is what we wanted.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_already_exists_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_err("CreateRepository")(e)),
        }
    }
}
