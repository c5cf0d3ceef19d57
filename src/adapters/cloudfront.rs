//! `Cdn` over Amazon CloudFront with aws-sdk-cloudfront: invalidations (retried while the
//! distribution has too many in flight) and the viewer-request edge function.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudfront::primitives::Blob;
use aws_sdk_cloudfront::types::{
    EventType, FunctionAssociation, FunctionAssociations, FunctionConfig, FunctionRuntime,
    FunctionStage, InvalidationBatch, Paths,
};
use aws_sdk_cloudfront::Client;

use crate::ports::{Cdn, CdnError, EdgeOutcome};

pub struct CloudFront {
    client: Client,
}

impl CloudFront {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }
}

fn req(operation: &'static str) -> impl Fn(bool, String) -> CdnError {
    move |transient, message| CdnError::Request {
        operation,
        message,
        transient,
    }
}

use super::aws::{error_chain as ctx, transient};

#[async_trait]
impl Cdn for CloudFront {
    #[tracing::instrument(skip_all, fields(distribution, paths = paths.len()))]
    async fn invalidate(
        &self,
        distribution: &str,
        paths: &[String],
        reference: &str,
    ) -> Result<String, CdnError> {
        let batch = InvalidationBatch::builder()
            .paths(
                Paths::builder()
                    .quantity(paths.len() as i32)
                    .set_items(Some(paths.to_vec()))
                    .build()
                    .map_err(|e| req("CreateInvalidation")(false, e.to_string()))?,
            )
            .caller_reference(reference)
            .build()
            .map_err(|e| req("CreateInvalidation")(false, e.to_string()))?;
        let mut delay = Duration::from_secs(5);
        for attempt in 1.. {
            match self
                .client
                .create_invalidation()
                .distribution_id(distribution)
                .invalidation_batch(batch.clone())
                .send()
                .await
            {
                Ok(out) => {
                    return Ok(out
                        .invalidation()
                        .map(|i| i.id().to_owned())
                        .unwrap_or_default())
                }
                // CloudFront caps paths in flight per distribution: wait for earlier ones.
                Err(e)
                    if attempt < 10
                        && e.as_service_error()
                            .is_some_and(|s| s.is_too_many_invalidations_in_progress()) =>
                {
                    tracing::warn!(
                        attempt,
                        delay_s = delay.as_secs(),
                        "too many invalidations in flight; waiting"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(60));
                }
                Err(e) => return Err(req("CreateInvalidation")(transient(&e), ctx(e))),
            }
        }
        unreachable!("the loop returns")
    }

    async fn wait_invalidation(
        &self,
        distribution: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<(), CdnError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut delay = Duration::from_secs(2);
        loop {
            let out = self
                .client
                .get_invalidation()
                .distribution_id(distribution)
                .id(id)
                .send()
                .await
                .map_err(|e| req("GetInvalidation")(transient(&e), ctx(e)))?;
            if out
                .invalidation()
                .is_some_and(|i| i.status() == "Completed")
            {
                return Ok(());
            }
            if tokio::time::Instant::now() + delay > deadline {
                return Err(CdnError::Timeout {
                    id: id.to_owned(),
                    timeout,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(20));
        }
    }

    #[tracing::instrument(skip_all, fields(distribution, function = name))]
    async fn ensure_edge_function(
        &self,
        distribution: &str,
        name: &str,
        code: &str,
    ) -> Result<EdgeOutcome, CdnError> {
        let config = FunctionConfig::builder()
            .comment("Managed by Gantry")
            .runtime(FunctionRuntime::CloudfrontJs20)
            .build()
            .map_err(|e| req("CreateFunction")(false, e.to_string()))?;
        let dev = self
            .client
            .get_function()
            .name(name)
            .stage(FunctionStage::Development)
            .send()
            .await;
        let (outcome, etag) = match dev {
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_function_exists()) =>
            {
                let out = self
                    .client
                    .create_function()
                    .name(name)
                    .function_config(config)
                    .function_code(Blob::new(code.as_bytes()))
                    .send()
                    .await
                    .map_err(|e| req("CreateFunction")(transient(&e), ctx(e)))?;
                (
                    Some(EdgeOutcome::Created),
                    out.e_tag().unwrap_or_default().to_owned(),
                )
            }
            Err(e) => return Err(req("GetFunction")(transient(&e), ctx(e))),
            Ok(out) if out.function_code().map(|b| b.as_ref()) != Some(code.as_bytes()) => {
                let etag = out.e_tag().unwrap_or_default().to_owned();
                let up = self
                    .client
                    .update_function()
                    .name(name)
                    .if_match(etag)
                    .function_config(config)
                    .function_code(Blob::new(code.as_bytes()))
                    .send()
                    .await
                    .map_err(|e| req("UpdateFunction")(transient(&e), ctx(e)))?;
                (
                    Some(EdgeOutcome::Updated),
                    up.e_tag().unwrap_or_default().to_owned(),
                )
            }
            Ok(out) => {
                // Development holds the code; publish only if LIVE does not.
                let live = self
                    .client
                    .get_function()
                    .name(name)
                    .stage(FunctionStage::Live)
                    .send()
                    .await;
                let live_ok = live
                    .as_ref()
                    .ok()
                    .and_then(|l| l.function_code())
                    .map(|b| b.as_ref())
                    == Some(code.as_bytes());
                (
                    if live_ok {
                        None
                    } else {
                        Some(EdgeOutcome::Updated)
                    },
                    out.e_tag().unwrap_or_default().to_owned(),
                )
            }
        };
        let arn = match outcome {
            Some(_) => {
                let published = self
                    .client
                    .publish_function()
                    .name(name)
                    .if_match(etag)
                    .send()
                    .await
                    .map_err(|e| req("PublishFunction")(transient(&e), ctx(e)))?;
                published
                    .function_summary()
                    .and_then(|s| s.function_metadata())
                    .map(|m| m.function_arn().to_owned())
                    .unwrap_or_default()
            }
            None => {
                let d = self
                    .client
                    .describe_function()
                    .name(name)
                    .stage(FunctionStage::Live)
                    .send()
                    .await
                    .map_err(|e| req("DescribeFunction")(transient(&e), ctx(e)))?;
                d.function_summary()
                    .and_then(|s| s.function_metadata())
                    .map(|m| m.function_arn().to_owned())
                    .unwrap_or_default()
            }
        };
        let associated = self.associate(distribution, &arn).await?;
        Ok(outcome.unwrap_or(if associated {
            EdgeOutcome::Updated
        } else {
            EdgeOutcome::Unchanged
        }))
    }
}

impl CloudFront {
    /// Associates `arn` as the default behaviour's viewer-request function; returns whether
    /// the distribution had to change.
    async fn associate(&self, distribution: &str, arn: &str) -> Result<bool, CdnError> {
        let current = self
            .client
            .get_distribution_config()
            .id(distribution)
            .send()
            .await
            .map_err(|e| req("GetDistributionConfig")(transient(&e), ctx(e)))?;
        let etag = current.e_tag().unwrap_or_default().to_owned();
        let Some(mut config) = current.distribution_config else {
            return Err(req("GetDistributionConfig")(
                false,
                "no distribution config returned".into(),
            ));
        };
        let Some(behaviour) = config.default_cache_behavior.as_mut() else {
            return Err(req("GetDistributionConfig")(
                false,
                "the distribution has no default cache behaviour".into(),
            ));
        };
        let mut items: Vec<FunctionAssociation> = behaviour
            .function_associations
            .as_ref()
            .map(|f| f.items().to_vec())
            .unwrap_or_default();
        if items
            .iter()
            .any(|a| a.event_type == EventType::ViewerRequest && a.function_arn == arn)
        {
            return Ok(false);
        }
        items.retain(|a| a.event_type != EventType::ViewerRequest);
        items.push(
            FunctionAssociation::builder()
                .function_arn(arn)
                .event_type(EventType::ViewerRequest)
                .build()
                .map_err(|e| req("UpdateDistribution")(false, e.to_string()))?,
        );
        behaviour.function_associations = Some(
            FunctionAssociations::builder()
                .quantity(items.len() as i32)
                .set_items(Some(items))
                .build()
                .map_err(|e| req("UpdateDistribution")(false, e.to_string()))?,
        );
        self.client
            .update_distribution()
            .id(distribution)
            .if_match(etag)
            .distribution_config(config)
            .send()
            .await
            .map_err(|e| req("UpdateDistribution")(transient(&e), ctx(e)))?;
        Ok(true)
    }
}
