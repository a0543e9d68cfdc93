//! Background jobs (feed uploads, the daily cycle, payment exports): staff who may watch
//! them see all of them; an integration, by API key, sees only the feeds it uploaded.

use crate::auth::{ApiKeyAuth, StaffAuth};
use crate::error::ErrorBody;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::Json;
use lifecert_app::jobs::{JobList, JobQuery, JobView};
use lifecert_app::staff::{ApiClient, Staff};
use serde::Deserialize;
use utoipa::IntoParams;

/// Who asks: a member of staff (session or Bearer token) or an integration (API key).
pub enum JobCaller {
    Staff(Staff),
    Integration(ApiClient),
}

impl FromRequestParts<AppState> for JobCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let api_key = parts.headers.contains_key("x-api-key")
            || parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("ApiKey "));
        if api_key {
            let ApiKeyAuth(client) = ApiKeyAuth::from_request_parts(parts, state).await?;
            Ok(JobCaller::Integration(client))
        } else {
            let StaffAuth(session) = StaffAuth::from_request_parts(parts, state).await?;
            Ok(JobCaller::Staff(session.staff))
        }
    }
}

#[derive(Deserialize, IntoParams)]
pub struct JobListQuery {
    /// feed, cycle or payment_export
    pub kind: Option<String>,
    /// queued, running, done or dead
    pub status: Option<String>,
    /// Continue before this id (from `next_before_id`).
    pub before_id: Option<i64>,
    /// At most this many (1–500, default 50).
    pub limit: Option<i64>,
}

/// Jobs, newest first (staff: supervisors and auditors; an integration: its own feeds).
/// `status=dead` lists the jobs that gave up, for follow-up.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobListQuery), responses(
    (status = 200, body = JobList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = []), ("api_key" = [])))]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: JobCaller,
    ApiQuery(q): ApiQuery<JobListQuery>,
) -> Result<Json<JobList>, ApiError> {
    let query = JobQuery {
        kind: q.kind,
        status: q.status,
        before_id: q.before_id,
        limit: q.limit,
    };
    Ok(Json(match caller {
        JobCaller::Staff(staff) => state.app.jobs_for_staff(&staff, &query).await?,
        JobCaller::Integration(client) => state.app.jobs_of(&client, &query).await?,
    }))
}

/// One job: its status, attempts, progress and, once done, its summary.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = []), ("api_key" = [])))]
pub async fn get_job(
    State(state): State<AppState>,
    caller: JobCaller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(match caller {
        JobCaller::Staff(staff) => state.app.job_for_staff(&staff, id).await?,
        JobCaller::Integration(client) => state.app.job_of(&client, id).await?,
    }))
}

/// Queue a dead job again with fresh attempts (supervisor), once its cause is fixed.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = JobView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn retry_job(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.app.retry_job(&session.staff, id).await?))
}
