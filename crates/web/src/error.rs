//! One error type for the API and the one table from error code to HTTP status.
//! A 5xx logs the whole chain and answers with a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use lifecert_app::AppError;

#[derive(Debug)]
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError(AppError::invalid(field, message))
    }
}

/// The status for each stable error code.
fn status_of(code: &str) -> StatusCode {
    match code {
        "invalid_input" | "invalid_argument" => StatusCode::UNPROCESSABLE_ENTITY,
        "bad_request" | "invalid_envelope" => StatusCode::BAD_REQUEST,
        "unauthenticated" | "invalid_credentials" | "session_expired" | "invalid_signature" => {
            StatusCode::UNAUTHORIZED
        }
        "forbidden" | "maker_checker" | "out_of_region" | "csrf_failed" => StatusCode::FORBIDDEN,
        "not_found" => StatusCode::NOT_FOUND,
        "account_locked" => StatusCode::TOO_MANY_REQUESTS,
        "payload_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "method_not_allowed" => StatusCode::METHOD_NOT_ALLOWED,
        "recipient_terminated"
        | "invalid_transition"
        | "case_closed"
        | "duplicate"
        | "month_closed"
        | "earlier_month_open"
        | "month_before_closed"
        | "appeal_window_closed"
        | "message_id_reused" => StatusCode::CONFLICT,
        "webhook_not_configured" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code();
        let status = status_of(code);
        // Only an unexpected failure is hidden; a service that is switched off (503)
        // says so.
        let (code, message) = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self.0, "request failed");
            (
                "internal_error",
                "something went wrong on our side; it has been logged".to_string(),
            )
        } else {
            (code, self.0.to_string())
        };
        (
            status,
            Json(serde_json::json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

/// The error body, for the OpenAPI document.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A stable snake_case code, e.g. `maker_checker`.
    pub code: String,
    pub message: String,
}
