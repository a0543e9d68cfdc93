//! Endpoints for other systems, authenticated by API key and scope.

use crate::auth::ApiKeyAuth;
use crate::error::ErrorBody;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::Json;
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
