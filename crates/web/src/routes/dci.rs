//! Death notifications from civil registration: DCI social-registry `notify` (API key,
//! `feeds` scope) and the OpenCRVS webhook (HMAC-SHA256 signature). The bodies are read
//! raw, so every error can name its field and the signature covers the exact bytes.

use crate::auth::ApiKeyAuth;
use crate::error::ErrorBody;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lifecert_app::integration::{
    Answer, DciAck, DciNotifyRequest, OpenCrvsAck, OpenCrvsDelivery, WebhookSignatures,
};
use lifecert_app::AppError;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A FHIR bundle with supporting documents can be larger than other API bodies.
pub const WEBHOOK_BODY_LIMIT_BYTES: usize = 2 * 1024 * 1024;

/// Set on an answer given before: the message was a retry and changed nothing.
static REPLAYED: HeaderName = HeaderName::from_static("x-lifecert-replayed");

fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(AppError::conflict(
                "payload_too_large",
                "the request body is too large",
            ))
        } else {
            ApiError::invalid("body", e.body_text())
        }
    })
}

fn answer<T: Serialize>(a: Answer<T>) -> Response {
    let mut response = Json(a.body).into_response();
    if a.replayed {
        response
            .headers_mut()
            .insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    }
    response
}

/// A DCI social-registry `notify` of vital events (scope `feeds`). Each death is
/// matched and applied like a `crvs` feed record (`dci:SENDER:REFERENCE_ID`); other
/// events are answered `rejected`. Idempotent by `header.message_id` per sender: the
/// same message again gets the same answer (header `x-lifecert-replayed: true`) and
/// changes nothing; the same id with other content is refused (409
/// `message_id_reused`). A malformed envelope is refused whole (400 `invalid_envelope`,
/// the message naming the field).
#[utoipa::path(post, path = "/dci/registry/notify", tag = "integration",
    request_body(content = DciNotifyRequest, content_type = "application/json"),
    responses(
        (status = 200, body = DciAck, description = "the on-notify acknowledgement, one status per event"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn dci_notify(
    State(state): State<AppState>,
    ApiKeyAuth(client): ApiKeyAuth,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw)?;
    Ok(answer(state.app.receive_dci_notify(&client, &raw).await?))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An OpenCRVS webhook delivery (topic `DEATH_REGISTERED`), signed with the shared
/// secret: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`, or OpenCRVS's
/// own `X-Hub-Signature`. A missing or wrong signature is refused (401
/// `invalid_signature`) before anything is read or stored. Idempotent by the bundle id.
/// Without a configured secret the webhook is off (503 `webhook_not_configured`).
#[utoipa::path(post, path = "/webhooks/opencrvs", tag = "integration",
    request_body(content = OpenCrvsDelivery, content_type = "application/json"),
    params(
        ("X-Hub-Signature-256" = Option<String>, Header, description = "sha256=<hex HMAC-SHA256 of the raw body>"),
        ("X-Hub-Signature" = Option<String>, Header, description = "OpenCRVS: sha256=<hex HMAC-SHA256 of \"sha256:\" + encodeURIComponent(body)>")),
    responses(
        (status = 200, body = OpenCrvsAck), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "no shared secret is configured")))]
pub async fn opencrvs_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw)?;
    let signatures = WebhookSignatures {
        hub_signature_256: header(&headers, "x-hub-signature-256"),
        hub_signature: header(&headers, "x-hub-signature"),
    };
    Ok(answer(
        state
            .app
            .receive_opencrvs_webhook(state.opencrvs_secret.as_deref(), signatures, &raw)
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct SubscriptionCheck {
    /// `subscribe`
    pub mode: Option<String>,
    /// Echoed back.
    pub challenge: Option<String>,
    /// `DEATH_REGISTERED`
    pub topic: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Challenge {
    pub challenge: String,
}

/// OpenCRVS's check of a new webhook subscription: the challenge is echoed back.
#[utoipa::path(get, path = "/webhooks/opencrvs", tag = "integration", params(SubscriptionCheck),
    responses(
        (status = 200, body = Challenge), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "no shared secret is configured")))]
pub async fn opencrvs_subscription(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<SubscriptionCheck>,
) -> Result<Json<Challenge>, ApiError> {
    let challenge = state.app.confirm_opencrvs_subscription(
        state.opencrvs_secret.as_deref(),
        q.mode.as_deref(),
        q.challenge.as_deref(),
        q.topic.as_deref(),
    )?;
    Ok(Json(Challenge { challenge }))
}
