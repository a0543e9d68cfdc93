//! The review queue and decisions (maker–checker).

use crate::auth::StaffAuth;
use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::Json;
use lifecert_app::access::ReviewCaseView;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct ReviewQuery {
    /// doubtful_certification, confirm_death, probable_match, appeal
    pub kind: Option<String>,
    /// open (default) or decided
    pub status: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ReviewCaseList {
    /// Oldest first, with their age in days.
    pub items: Vec<ReviewCaseView>,
}

#[derive(Deserialize, ToSchema)]
pub struct DecisionBody {
    /// approve or reject. For confirm_death, approve terminates payment (and opens
    /// recovery of overpayments) and reject lifts the suspension with back pay; for a
    /// doubtful certification, approve counts it as a pass.
    pub decision: String,
    /// A reason code.
    pub reason: String,
    pub note: String,
}

/// The review queue in your region.
#[utoipa::path(get, path = "/api/v1/review-cases", tag = "review cases", params(ReviewQuery), responses(
    (status = 200, body = ReviewCaseList),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list_review_cases(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> Result<Json<ReviewCaseList>, ApiError> {
    let status = q.status.as_deref().unwrap_or("open");
    if !matches!(status, "open" | "decided") {
        return Err(ApiError::invalid("status", "use open or decided"));
    }
    let items = state
        .app
        .review_queue(
            &session.staff,
            q.kind.as_deref(),
            Some(status),
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(ReviewCaseList { items }))
}

/// Decide a case. Whoever opened it, or recorded the certification behind it, gets 403
/// `maker_checker`.
#[utoipa::path(post, path = "/api/v1/review-cases/{id}/decision", tag = "review cases",
    params(("id" = i64, Path, description = "review case id")), request_body = DecisionBody, responses(
    (status = 200, body = ReviewCaseView),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn decide_review_case(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Json<ReviewCaseView>, ApiError> {
    Ok(Json(
        state
            .app
            .decide_review_case(&session.staff, id, &body.decision, &body.reason, &body.note)
            .await?,
    ))
}
