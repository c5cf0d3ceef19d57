//! `ObjectStore` over Amazon S3 (or any S3-compatible server) with aws-sdk-s3.

use std::path::Path;

use async_trait::async_trait;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier,
};
use aws_sdk_s3::Client;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::aws::transient;
use crate::domain::{ObjectHeaders, RemoteObject};
use crate::ports::{ObjectStore, ObjectStoreError};

/// Bytes from which uploads go multipart, and the part size.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
const PART_SIZE: u64 = 8 * 1024 * 1024;

/// Characters kept as they are in `x-amz-copy-source`.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub struct S3Store {
    client: Client,
    multipart_threshold: u64,
}

impl S3Store {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(super::aws::custom_s3_endpoint(config))
            // Plain (non aws-chunked) bodies: understood by every S3-compatible server.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Self {
            client: Client::from_conf(s3),
            multipart_threshold: MULTIPART_THRESHOLD,
        }
    }

    pub fn with_multipart_threshold(mut self, bytes: u64) -> Self {
        self.multipart_threshold = bytes.max(5 * 1024 * 1024);
        self
    }

    async fn put_multipart(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        size: u64,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError> {
        let err = |operation: &'static str| {
            let key = key.to_owned();
            move |transient: bool, e: String| ObjectStoreError::Request {
                operation,
                key,
                message: e,
                transient,
            }
        };
        let created = self
            .client
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(&headers.content_type)
            .cache_control(&headers.cache_control)
            .send()
            .await
            .map_err(|e| {
                err("CreateMultipartUpload")(transient(&e), DisplayErrorContext(&e).to_string())
            })?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0u64;
            let mut number = 1i32;
            while offset < size {
                let len = PART_SIZE.min(size - offset);
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| err("UploadPart")(false, e.to_string()))?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| {
                        err("UploadPart")(transient(&e), DisplayErrorContext(&e).to_string())
                    })?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
                offset += len;
                number += 1;
            }
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| {
                    err("CompleteMultipartUpload")(
                        transient(&e),
                        DisplayErrorContext(&e).to_string(),
                    )
                })?;
            Ok(unquote(done.e_tag()))
        }
        .await;
        if result.is_err() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

#[async_trait]
impl ObjectStore for S3Store {
    #[tracing::instrument(skip_all, fields(bucket, prefix))]
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<RemoteObject>, ObjectStoreError> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| ObjectStoreError::Request {
                operation: "ListObjectsV2",
                key: format!("{bucket}/{prefix}"),
                transient: transient(&e),
                message: DisplayErrorContext(&e).to_string(),
            })?;
            for o in page.contents() {
                out.push(RemoteObject {
                    key: o.key().unwrap_or_default().to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    etag: unquote(o.e_tag()),
                });
            }
        }
        Ok(out)
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Vec<u8>>, ObjectStoreError> {
        let err = |transient: bool, m: String| ObjectStoreError::Request {
            operation: "GetObject",
            key: key.to_owned(),
            message: m,
            transient,
        };
        match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.body
                    .collect()
                    .await
                    .map_err(|e| err(false, e.to_string()))?
                    .into_bytes()
                    .to_vec(),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(err(transient(&e), DisplayErrorContext(&e).to_string())),
        }
    }

    async fn put_file(
        &self,
        bucket: &str,
        key: &str,
        path: &Path,
        size: u64,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError> {
        if size >= self.multipart_threshold {
            return self.put_multipart(bucket, key, path, size, headers).await;
        }
        // Read the (small) body into memory: a retried request can then resend it.
        let body = tokio::fs::read(path)
            .await
            .map_err(|source| ObjectStoreError::Read {
                path: path.display().to_string(),
                source,
            })?;
        self.put_bytes(bucket, key, body, headers).await
    }

    async fn put_bytes(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError> {
        let out = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(&headers.content_type)
            .cache_control(&headers.cache_control)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| ObjectStoreError::Request {
                operation: "PutObject",
                key: key.to_owned(),
                transient: transient(&e),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(unquote(out.e_tag()))
    }

    async fn copy(
        &self,
        bucket: &str,
        source: &str,
        key: &str,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError> {
        self.copy_from(bucket, source, bucket, key, headers).await
    }

    async fn copy_from(
        &self,
        from: &str,
        source: &str,
        bucket: &str,
        key: &str,
        headers: &ObjectHeaders,
    ) -> Result<String, ObjectStoreError> {
        let source = format!("{from}/{}", utf8_percent_encode(source, COPY_SOURCE));
        let out = self
            .client
            .copy_object()
            .bucket(bucket)
            .key(key)
            .copy_source(source)
            .metadata_directive(MetadataDirective::Replace)
            .content_type(&headers.content_type)
            .cache_control(&headers.cache_control)
            .send()
            .await
            .map_err(|e| ObjectStoreError::Request {
                operation: "CopyObject",
                key: key.to_owned(),
                transient: transient(&e),
                message: DisplayErrorContext(&e).to_string(),
            })?;
        Ok(unquote(out.copy_object_result().and_then(|r| r.e_tag())))
    }

    async fn delete(&self, bucket: &str, keys: &[String]) -> Result<(), ObjectStoreError> {
        for chunk in keys.chunks(1000) {
            let err = |transient: bool, m: String| ObjectStoreError::Request {
                operation: "DeleteObjects",
                key: chunk[0].clone(),
                message: m,
                transient,
            };
            let ids = chunk
                .iter()
                .map(|k| {
                    ObjectIdentifier::builder()
                        .key(k)
                        .build()
                        .map_err(|e| err(false, e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| err(false, e.to_string()))?;
            let out = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| err(transient(&e), DisplayErrorContext(&e).to_string()))?;
            if let Some(first) = out.errors().first() {
                return Err(err(
                    first.code().is_some_and(super::aws::transient_code),
                    format!(
                        "{} object(s) not deleted, first: {} {}",
                        out.errors().len(),
                        first.key().unwrap_or(""),
                        first.message().unwrap_or("")
                    ),
                ));
            }
        }
        Ok(())
    }
}
