//! Endpoints for other systems, authenticated by API key and scope.

use crate::auth::ApiKeyAuth;
use crate::error::ErrorBody;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lifecert_app::feeds::FeedFormat;
use lifecert_app::jobs::JobView;
use lifecert_app::payments::InstructionPage;
use lifecert_domain::YearMonth;
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Deserialize, IntoParams)]
pub struct InstructionQuery {
    /// Continue after this pensioner (from `next_after_recipient_id`).
    pub after_recipient_id: Option<i64>,
    /// 1–5000, default 1000.
    pub limit: Option<i64>,
}

/// A month's payment instructions, page by page (scope `payments`). A closed month is
/// final; an open one may still be exported again.
#[utoipa::path(get, path = "/api/v1/payments/{month}/instructions", tag = "integration",
    params(("month" = String, Path, description = "YYYY-MM"), InstructionQuery),
    responses(
        (status = 200, body = InstructionPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn payment_instructions(
    State(state): State<AppState>,
    ApiKeyAuth(client): ApiKeyAuth,
    ApiPath(month): ApiPath<String>,
    ApiQuery(q): ApiQuery<InstructionQuery>,
) -> Result<Json<InstructionPage>, ApiError> {
    let month = YearMonth::parse(&month).map_err(|e| ApiError::invalid("month", e.to_string()))?;
    Ok(Json(
        state
            .app
            .instructions_for(
                &client,
                month,
                q.after_recipient_id.unwrap_or(0),
                q.limit.unwrap_or(1000),
            )
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
pub struct FeedQuery {
    /// csv (default, with a header row) or jsonl
    pub format: Option<String>,
}

/// Upload a feed (scope `feeds`): queued and ingested in the background. Poll
/// `GET /api/v1/jobs/{id}`.
#[utoipa::path(post, path = "/api/v1/feeds/{source}", tag = "integration",
    params(("source" = String, Path, description = "e.g. police_deregistration, hospital_visit"), FeedQuery),
    request_body(content = String, content_type = "text/csv", description = "the feed: CSV with a header row, or JSON lines"),
    responses(
        (status = 202, body = JobView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn upload_feed(
    State(state): State<AppState>,
    ApiKeyAuth(client): ApiKeyAuth,
    ApiPath(source): ApiPath<String>,
    ApiQuery(q): ApiQuery<FeedQuery>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError(lifecert_app::AppError::conflict(
                "payload_too_large",
                "the feed is larger than 64 MiB: split it, or use `lifecert feed ingest`",
            ))
        } else {
            ApiError::invalid("body", e.body_text())
        }
    })?;
    let format = FeedFormat::parse(q.format.as_deref().unwrap_or("csv"))?;
    let job = state
        .app
        .queue_feed(&client, &source, format, &body)
        .await?;
    // A job worker of whichever node polls first ingests it (`[scheduler] workers`).
    Ok((StatusCode::ACCEPTED, Json(job)))
}
