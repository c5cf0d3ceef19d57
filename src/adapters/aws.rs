//! Shared AWS SDK configuration: the standard chain (env, profile, instance/task role),
//! `AWS_ENDPOINT_URL` and per-service endpoint overrides honoured, retries with exponential
//! backoff and jitter (the SDK's standard mode: throttling such as S3 SlowDown, transient 5xx
//! and connection errors).

use aws_config::retry::RetryConfig;
use aws_config::BehaviorVersion;
pub use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Attempts per AWS call when the configuration does not say (`awsMaxAttempts`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// Loads the SDK configuration from the environment; `endpoint` overrides every service's.
/// The SDK retries each call (throttling, 5xx, resets) up to `attempts` times; what still
/// fails comes back classified ([`transient`]), and the engine retries the whole step.
pub async fn load(endpoint: Option<&str>, attempts: u32) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).retry_config(
        RetryConfig::standard()
            .with_max_attempts(attempts)
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

/// Error codes AWS services answer when the same request may succeed later.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "ServerException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether an SDK error is worth retrying: timeouts, connection failures (refused, reset),
/// unreadable responses, throttling, and 5xx answers. A 4xx that is not throttling (a bad
/// task definition, a missing bucket) is permanent.
pub fn transient<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status >= 500 || status == 429 || s.err().code().is_some_and(transient_code)
        }
        _ => false,
    }
}

/// Whether an AWS error code means "try again later".
pub fn transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}
