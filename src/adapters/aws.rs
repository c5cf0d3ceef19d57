//! Shared AWS SDK configuration: the standard chain (env, profile, instance/task role),
//! `AWS_ENDPOINT_URL` and per-service endpoint overrides honoured, retries with exponential
//! backoff and jitter (the SDK's standard mode: throttling such as S3 SlowDown, transient 5xx
//! and connection errors).

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Loads the SDK configuration from the environment; `endpoint` overrides every service's.
pub async fn load(endpoint: Option<&str>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(
        RetryConfig::standard()
            .with_max_attempts(8)
            .with_initial_backoff(std::time::Duration::from_millis(100)),
    );
    if let Some(url) = endpoint {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Whether S3 talks to a custom endpoint (then path-style addressing is used).
pub fn custom_s3_endpoint(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
        || std::env::var("AWS_ENDPOINT_URL_S3").is_ok_and(|v| !v.is_empty())
}

/// An SDK error with its whole source chain, for messages that say what AWS answered.
pub fn error_chain<E: std::error::Error>(e: E) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(e).to_string()
}
