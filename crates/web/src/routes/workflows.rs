//! Registering and updating pensioners, their timeline, appeals, home visits and
//! service records.

use crate::auth::StaffAuth;
use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lifecert_app::access::{RecipientForStaff, ReviewCaseView};
use lifecert_app::certify::CertifyReport;
use lifecert_app::import::NewRecipient;
use lifecert_app::workflows::{
    AppealAgainst, ContactUpdate, HomeVisitView, ServiceRecordView, TimelineEvent,
};
use lifecert_domain::Outcome;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct Created {
    pub id: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Timeline {
    pub items: Vec<TimelineEvent>,
}

#[derive(Deserialize, ToSchema)]
pub struct AppealBody {
    pub recipient_id: i64,
    pub against: AppealAgainst,
    /// Required when appealing a failed certification.
    pub certification_id: Option<i64>,
    pub grounds: String,
}

#[derive(Deserialize, ToSchema)]
pub struct HomeVisitBody {
    pub recipient_id: i64,
    /// YYYY-MM-DD
    pub window_start: String,
    /// YYYY-MM-DD
    pub window_end: String,
    pub address: String,
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
pub struct AssignBody {
    /// User name of the certifier.
    pub certifier: String,
}

#[derive(Deserialize, ToSchema)]
pub struct CompleteBody {
    /// YYYY-MM-DD
    pub date: String,
    /// pass, fail or doubtful
    pub outcome: String,
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CompletedVisit {
    pub visit: HomeVisitView,
    pub certification: CertifyReport,
}

#[derive(Serialize, ToSchema)]
pub struct HomeVisitList {
    pub items: Vec<HomeVisitView>,
}

#[derive(Deserialize, IntoParams)]
pub struct HomeVisitQuery {
    /// booked, assigned or completed
    pub status: Option<String>,
    /// Only visits not completed whose window has passed.
    #[serde(default)]
    pub overdue: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct ServiceRecordBody {
    pub recipient_id: i64,
    pub certification_id: Option<i64>,
    /// consultation, complaint or satisfaction
    pub kind: String,
    /// 1–5, for satisfaction only.
    pub rating: Option<i64>,
    #[serde(default)]
    pub note: String,
}

#[derive(Serialize, ToSchema)]
pub struct ServiceRecordList {
    pub items: Vec<ServiceRecordView>,
}

fn date(field: &str, s: &str) -> Result<chrono::NaiveDate, ApiError> {
    lifecert_domain::parse_date(s).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// Register a pensioner (supervisors), validated like an imported row.
#[utoipa::path(post, path = "/api/v1/recipients", tag = "recipients", request_body = NewRecipient, responses(
    (status = 201, body = Created), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn create_recipient(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiJson(body): ApiJson<NewRecipient>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let id = state.app.create_recipient(&session.staff, &body).await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

/// Change contact details (phone, address, residence, country, and for notifications an
/// email address, an app account, an agent's name and mobile number, the preferred
/// channel and language); old and new values go on the audit trail, encrypted.
#[utoipa::path(patch, path = "/api/v1/recipients/{id}", tag = "recipients", params(("id" = i64, Path)), request_body = ContactUpdate, responses(
    (status = 200, body = RecipientForStaff), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn update_recipient(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<ContactUpdate>,
) -> Result<Json<RecipientForStaff>, ApiError> {
    state.app.update_contact(&session.staff, id, &body).await?;
    Ok(Json(
        state
            .app
            .recipient_for_staff(&session.staff, id, false)
            .await?,
    ))
}

/// Everything that happened to a pensioner, in order.
#[utoipa::path(get, path = "/api/v1/recipients/{id}/timeline", tag = "recipients", params(("id" = i64, Path)), responses(
    (status = 200, body = Timeline), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn timeline(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Timeline>, ApiError> {
    Ok(Json(Timeline {
        items: state.app.timeline(&session.staff, id).await?,
    }))
}

/// Lodge an appeal against a fail, a suspension or a termination (within 60 days).
#[utoipa::path(post, path = "/api/v1/appeals", tag = "appeals", request_body = AppealBody, responses(
    (status = 201, body = ReviewCaseView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, description = "appeal_window_closed or nothing to appeal", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn lodge_appeal(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiJson(body): ApiJson<AppealBody>,
) -> Result<(StatusCode, Json<ReviewCaseView>), ApiError> {
    let case = state
        .app
        .lodge_appeal(
            &session.staff,
            body.recipient_id,
            body.against,
            body.certification_id,
            &body.grounds,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(case)))
}

/// Home visits in your region.
#[utoipa::path(get, path = "/api/v1/home-visits", tag = "home visits", params(HomeVisitQuery), responses(
    (status = 200, body = HomeVisitList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list_home_visits(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiQuery(q): ApiQuery<HomeVisitQuery>,
) -> Result<Json<HomeVisitList>, ApiError> {
    Ok(Json(HomeVisitList {
        items: state
            .app
            .home_visits(&session.staff, q.status.as_deref(), q.overdue)
            .await?,
    }))
}

/// Book a home visit.
#[utoipa::path(post, path = "/api/v1/home-visits", tag = "home visits", request_body = HomeVisitBody, responses(
    (status = 201, body = HomeVisitView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn book_home_visit(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiJson(b): ApiJson<HomeVisitBody>,
) -> Result<(StatusCode, Json<HomeVisitView>), ApiError> {
    let visit = state
        .app
        .book_home_visit(
            &session.staff,
            b.recipient_id,
            date("window_start", &b.window_start)?,
            date("window_end", &b.window_end)?,
            &b.address,
            &b.reason,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(visit)))
}

/// Assign a visit to a certifier (supervisors).
#[utoipa::path(post, path = "/api/v1/home-visits/{id}/assign", tag = "home visits", params(("id" = i64, Path)), request_body = AssignBody, responses(
    (status = 200, body = HomeVisitView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn assign_home_visit(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<AssignBody>,
) -> Result<Json<HomeVisitView>, ApiError> {
    Ok(Json(
        state
            .app
            .assign_home_visit(&session.staff, id, &b.certifier)
            .await?,
    ))
}

/// Complete an assigned visit; the outcome is recorded as a home_visit certification.
#[utoipa::path(post, path = "/api/v1/home-visits/{id}/complete", tag = "home visits", params(("id" = i64, Path)), request_body = CompleteBody, responses(
    (status = 200, body = CompletedVisit), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn complete_home_visit(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<CompleteBody>,
) -> Result<Json<CompletedVisit>, ApiError> {
    let outcome =
        Outcome::parse(&b.outcome).map_err(|e| ApiError::invalid("outcome", e.to_string()))?;
    let (visit, certification) = state
        .app
        .complete_home_visit(
            &session.staff,
            id,
            date("date", &b.date)?,
            outcome,
            b.reason,
        )
        .await?;
    Ok(Json(CompletedVisit {
        visit,
        certification,
    }))
}

/// Record a consultation, complaint or satisfaction rating.
#[utoipa::path(post, path = "/api/v1/service-records", tag = "service records", request_body = ServiceRecordBody, responses(
    (status = 201, body = ServiceRecordView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn record_service(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiJson(b): ApiJson<ServiceRecordBody>,
) -> Result<(StatusCode, Json<ServiceRecordView>), ApiError> {
    let r = state
        .app
        .record_service(
            &session.staff,
            b.recipient_id,
            b.certification_id,
            &b.kind,
            b.rating,
            &b.note,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// A pensioner's service records.
#[utoipa::path(get, path = "/api/v1/recipients/{id}/service-records", tag = "service records", params(("id" = i64, Path)), responses(
    (status = 200, body = ServiceRecordList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn service_records(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<ServiceRecordList>, ApiError> {
    Ok(Json(ServiceRecordList {
        items: state.app.service_records(&session.staff, id).await?,
    }))
}
