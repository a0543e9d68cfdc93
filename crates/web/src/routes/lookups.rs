//! Single items and lists that complete each resource: certifications, one review case,
//! appeals, one home visit.

use crate::auth::StaffAuth;
use crate::error::ErrorBody;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::Json;
use lifecert_app::access::{CertificationView, ReviewCaseView};
use lifecert_app::workflows::HomeVisitView;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct CertificationQuery {
    /// The pensioner whose certifications to list.
    pub recipient_id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct CertificationList {
    pub items: Vec<CertificationView>,
}

#[derive(Deserialize, IntoParams)]
pub struct AppealQuery {
    /// open (default) or decided
    pub status: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AppealList {
    pub items: Vec<ReviewCaseView>,
}

/// A pensioner's certifications.
#[utoipa::path(get, path = "/api/v1/certifications", tag = "certifications", params(CertificationQuery), responses(
    (status = 200, body = CertificationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list_certifications(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiQuery(q): ApiQuery<CertificationQuery>,
) -> Result<Json<CertificationList>, ApiError> {
    Ok(Json(CertificationList {
        items: state
            .app
            .certifications_for(&session.staff, q.recipient_id)
            .await?,
    }))
}

/// One certification.
#[utoipa::path(get, path = "/api/v1/certifications/{id}", tag = "certifications", params(("id" = i64, Path)), responses(
    (status = 200, body = CertificationView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn get_certification(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<CertificationView>, ApiError> {
    Ok(Json(state.app.certification_for(&session.staff, id).await?))
}

/// One review case.
#[utoipa::path(get, path = "/api/v1/review-cases/{id}", tag = "review cases", params(("id" = i64, Path)), responses(
    (status = 200, body = ReviewCaseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn get_review_case(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ReviewCaseView>, ApiError> {
    Ok(Json(
        state.app.review_case_for(&session.staff, id, None).await?,
    ))
}

/// Appeals in your region (review cases of kind appeal), oldest first.
#[utoipa::path(get, path = "/api/v1/appeals", tag = "appeals", params(AppealQuery), responses(
    (status = 200, body = AppealList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list_appeals(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiQuery(q): ApiQuery<AppealQuery>,
) -> Result<Json<AppealList>, ApiError> {
    let status = q.status.as_deref().unwrap_or("open");
    if !matches!(status, "open" | "decided") {
        return Err(ApiError::invalid("status", "use open or decided"));
    }
    let items = state
        .app
        .review_queue(
            &session.staff,
            Some("appeal"),
            Some(status),
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(AppealList { items }))
}

/// One appeal.
#[utoipa::path(get, path = "/api/v1/appeals/{id}", tag = "appeals", params(("id" = i64, Path)), responses(
    (status = 200, body = ReviewCaseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn get_appeal(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ReviewCaseView>, ApiError> {
    Ok(Json(
        state
            .app
            .review_case_for(&session.staff, id, Some("appeal"))
            .await?,
    ))
}

/// One home visit.
#[utoipa::path(get, path = "/api/v1/home-visits/{id}", tag = "home visits", params(("id" = i64, Path)), responses(
    (status = 200, body = HomeVisitView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn get_home_visit(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<HomeVisitView>, ApiError> {
    Ok(Json(state.app.home_visit_for(&session.staff, id).await?))
}
