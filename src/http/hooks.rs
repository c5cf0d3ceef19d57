//! `POST /hooks/github`: GitHub webhook intake.
//!
//! Order matters: the body (already bounded by the route's limit, 413 beyond it) is verified
//! against `X-Hub-Signature-256` before anything parses it; a bad or missing signature is 401
//! and leaves no trace in the store. Then `control` records the delivery (by
//! `X-GitHub-Delivery`, so a redelivery is a no-op) together with the deployments it asks for,
//! in one transaction, and only then is it answered: 202 when deployments were queued, 200
//! otherwise.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::error::ApiError;
use super::AppState;
use crate::domain::{Intake, PushEvent};
use crate::secret::Secret;
use crate::store::DeliveryOutcome;

/// Checks `X-Hub-Signature-256` (`sha256=<hex>`) against every accepted secret, in constant
/// time per secret.
pub fn verify_signature(secrets: &[Secret], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    secrets.iter().any(|secret| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

/// The header value GitHub would send for `body` signed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /hooks/github`, counted by event and outcome.
pub async fn github(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let event = header(&headers, "x-github-event")
        .unwrap_or("none")
        .to_owned();
    let answer = delivery(&s, headers, body).await;
    let outcome = match &answer {
        Ok((_, Json(v))) if v.get("duplicate").is_some() => "duplicate",
        Ok((_, Json(v))) if v.get("pong").is_some() => "ping",
        Ok((StatusCode::ACCEPTED, _)) => "accepted",
        Ok(_) => "ignored",
        Err(ApiError::Unauthorized(_)) => "unauthorized",
        Err(ApiError::Store(_)) => "error",
        Err(_) => "malformed",
    };
    s.metrics.delivery(&event, outcome);
    answer
}

#[tracing::instrument(skip_all, fields(delivery = tracing::field::Empty, event = tracing::field::Empty))]
async fn delivery(
    s: &AppState,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(ApiError::from_rejection)?;
    if !verify_signature(
        &s.webhook_secrets,
        &body,
        header(&headers, "x-hub-signature-256"),
    ) {
        tracing::warn!("webhook rejected: missing or invalid signature");
        return Err(ApiError::Unauthorized(
            "missing or invalid X-Hub-Signature-256",
        ));
    }
    let delivery = header(&headers, "x-github-delivery")
        .filter(|d| !d.is_empty() && d.len() <= 128)
        .ok_or_else(|| ApiError::BadRequest("missing X-GitHub-Delivery header".into()))?
        .to_owned();
    let event = header(&headers, "x-github-event")
        .filter(|e| !e.is_empty() && e.len() <= 64)
        .ok_or_else(|| ApiError::BadRequest("missing X-GitHub-Event header".into()))?
        .to_owned();
    let span = tracing::Span::current();
    span.record("delivery", delivery.as_str());
    span.record("event", event.as_str());
    if header(&headers, "content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
    {
        return Err(ApiError::Unsupported("form-encoded payloads are not accepted: set the webhook's content type to application/json".into()));
    }

    let outcome = if event == "push" {
        let push: PushEvent = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("malformed push payload: {e}")))?;
        s.control.push(&delivery, &event, &push).await?
    } else if event == "pull_request" {
        let pr: crate::domain::PullRequestEvent = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("malformed pull_request payload: {e}")))?;
        s.control.pull_request(&delivery, &event, &pr).await?
    } else {
        // Every event must at least be JSON text; GitHub never sends anything else.
        std::str::from_utf8(&body)
            .map_err(|e| ApiError::BadRequest(format!("payload is not UTF-8: {e}")))?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .map_err(|e| ApiError::BadRequest(format!("malformed JSON payload: {e}")))?;
        s.control.other_event(&delivery, &event).await?
    };
    match outcome {
        DeliveryOutcome::Duplicate => {
            tracing::info!("redelivery of a known delivery: nothing to do");
            Ok((
                StatusCode::OK,
                Json(json!({ "delivery": delivery, "duplicate": true })),
            ))
        }
        DeliveryOutcome::Recorded { deployments, .. } if !deployments.is_empty() => {
            tracing::info!(deployments = ?deployments, "push recorded; deployments queued");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "delivery": delivery, "deployments": deployments })),
            ))
        }
        DeliveryOutcome::Recorded { record, .. } if record.outcome == Intake::Ping => Ok((
            StatusCode::OK,
            Json(json!({ "delivery": delivery, "pong": true })),
        )),
        // A new revision of the manifests: its deployments follow once it is validated.
        DeliveryOutcome::Recorded { record, .. } if record.outcome == Intake::Queued => {
            tracing::info!("manifest revision recorded");
            Ok((
                StatusCode::ACCEPTED,
                Json(
                    json!({ "delivery": delivery, "deployments": [], "manifests": record.reason }),
                ),
            ))
        }
        DeliveryOutcome::Recorded { record, .. } => {
            let reason = record.reason;
            tracing::info!(reason = reason.as_deref().unwrap_or(""), "delivery ignored");
            Ok((
                StatusCode::OK,
                Json(json!({ "delivery": delivery, "ignored": reason })),
            ))
        }
    }
}

/// `POST /hooks/eventbridge`: ECS events delivered by an EventBridge API destination, whose
/// connection sends the configured key in `x-gantry-key`. An ECS deployment or service event
/// wakes the watcher of that service at once; the verdict itself still comes from ECS.
#[tracing::instrument(skip_all)]
pub async fn eventbridge(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    use subtle::ConstantTimeEq;
    let body = body.map_err(ApiError::from_rejection)?;
    let Some(expected) = &s.eventbridge_key else {
        return Err(ApiError::Unauthorized(
            "EventBridge intake is disabled: set GANTRY_EVENTBRIDGE_API_KEY",
        ));
    };
    let given = header(&headers, "x-gantry-key").unwrap_or("");
    if !bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        return Err(ApiError::Unauthorized("missing or wrong x-gantry-key"));
    }
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("malformed event: {e}")))?;
    let detail_type = event["detail-type"].as_str().unwrap_or("");
    if !matches!(
        detail_type,
        "ECS Deployment State Change" | "ECS Service Action"
    ) {
        return Ok(Json(
            json!({ "ignored": format!("Gantry does not act on `{detail_type}` events") }),
        ));
    }
    let signalled = event["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|arn| s.ecs_signals.signal_arn(arn))
        .count();
    tracing::info!(
        detail_type,
        signalled,
        event = event["detail"]["eventName"].as_str().unwrap_or(""),
        "ECS event received"
    );
    Ok(Json(json!({ "signalled": signalled })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_published_test_vector() {
        // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
        let secret = Secret::new("It's a Secret to Everybody");
        let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(verify_signature(
            std::slice::from_ref(&secret),
            b"Hello, World!",
            Some(header)
        ));
        assert_eq!(sign("It's a Secret to Everybody", b"Hello, World!"), header);
        assert!(!verify_signature(
            std::slice::from_ref(&secret),
            b"Hello, World?",
            Some(header)
        ));
        assert!(!verify_signature(&[secret], b"Hello, World!", None));
    }

    #[test]
    fn any_rotated_secret_is_accepted() {
        let secrets = [Secret::new("old"), Secret::new("new")];
        assert!(verify_signature(&secrets, b"x", Some(&sign("new", b"x"))));
        assert!(!verify_signature(
            &secrets,
            b"x",
            Some(&sign("other", b"x"))
        ));
        assert!(!verify_signature(&secrets, b"x", Some("sha256=zz")));
    }
}
