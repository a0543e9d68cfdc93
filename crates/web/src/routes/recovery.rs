//! Recovery cases (追回): list and read them, record the request to the bank and the
//! money received, write off the rest.

use crate::auth::StaffAuth;
use crate::error::ErrorBody;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lifecert_app::recovery::{RecoveryDetail, RecoveryQuery, RecoveryView};
use lifecert_domain::Fen;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct RecoveryListQuery {
    /// open, requested, partially_recovered, recovered, written_off or cancelled
    pub status: Option<String>,
    pub recipient_id: Option<i64>,
    /// A region prefix inside your own (e.g. 320102 inside 3201).
    pub region: Option<String>,
    /// Cases with a larger id (paging).
    pub after_id: Option<i64>,
    /// 1–500, default 100.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RecoveryList {
    /// By id.
    pub items: Vec<RecoveryView>,
}

#[derive(Deserialize, ToSchema)]
pub struct RecoveryRequestBody {
    /// When the bank (or the family) was asked to return the money, YYYY-MM-DD.
    pub requested_on: String,
    /// The letter's or request's number, if any.
    pub reference: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct RecoveryPaymentBody {
    /// Yuan with at most two decimals, e.g. "1500.00"; at most what is outstanding.
    pub amount: String,
    /// YYYY-MM-DD, not before the request.
    pub received_on: String,
    /// The bank transfer's or receipt's reference (流水号), unique on the case.
    pub reference: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RecoveryWriteOffBody {
    /// Why the rest cannot or need not be recovered.
    pub reason: String,
}

fn date(field: &str, s: &str) -> Result<chrono::NaiveDate, ApiError> {
    lifecert_domain::parse_date(s).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// Recovery cases of pensioners in your region (reviewers, supervisors, auditors).
#[utoipa::path(get, path = "/api/v1/recoveries", tag = "recoveries", params(RecoveryListQuery), responses(
    (status = 200, body = RecoveryList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list_recoveries(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiQuery(q): ApiQuery<RecoveryListQuery>,
) -> Result<Json<RecoveryList>, ApiError> {
    let items = state
        .app
        .recoveries(
            &session.staff,
            &RecoveryQuery {
                status: q.status,
                recipient_id: q.recipient_id,
                region: q.region,
                after_id: q.after_id,
                limit: q.limit,
            },
        )
        .await?;
    Ok(Json(RecoveryList { items }))
}

/// One recovery case with the amounts received on it.
#[utoipa::path(get, path = "/api/v1/recoveries/{id}", tag = "recoveries", params(("id" = i64, Path)), responses(
    (status = 200, body = RecoveryDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn get_recovery(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<RecoveryDetail>, ApiError> {
    Ok(Json(state.app.recovery_for(&session.staff, id).await?))
}

/// Record that the bank was asked to return the money (supervisors); an open case only.
/// A payment run's `recover` line does this itself when the run is closed.
#[utoipa::path(post, path = "/api/v1/recoveries/{id}/request", tag = "recoveries", params(("id" = i64, Path)), request_body = RecoveryRequestBody, responses(
    (status = 200, body = RecoveryDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, description = "invalid_transition (already requested) or case_closed", body = ErrorBody),
    (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn request_recovery(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<RecoveryRequestBody>,
) -> Result<Json<RecoveryDetail>, ApiError> {
    let on = date("requested_on", &b.requested_on)?;
    Ok(Json(
        state
            .app
            .request_recovery(&session.staff, id, on, b.reference.as_deref())
            .await?,
    ))
}

/// Record money received (supervisors): the case becomes partially_recovered, or
/// recovered once nothing is outstanding.
#[utoipa::path(post, path = "/api/v1/recoveries/{id}/payments", tag = "recoveries", params(("id" = i64, Path)), request_body = RecoveryPaymentBody, responses(
    (status = 201, body = RecoveryDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "invalid_transition (not requested yet), case_closed, or duplicate (the reference is already recorded)", body = ErrorBody),
    (status = 422, description = "invalid_input naming the field: amount (not a yuan amount, or more than is outstanding), received_on, reference", body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn record_recovery_payment(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<RecoveryPaymentBody>,
) -> Result<(StatusCode, Json<RecoveryDetail>), ApiError> {
    let amount = Fen::parse_yuan(&b.amount, "amount")
        .map_err(|e| ApiError::invalid("amount", e.to_string()))?;
    let received_on = date("received_on", &b.received_on)?;
    let detail = state
        .app
        .record_recovery_payment(&session.staff, id, amount, received_on, &b.reference)
        .await?;
    Ok((StatusCode::CREATED, Json(detail)))
}

/// Write off what is still outstanding and close the case (supervisors other than the
/// one who recorded the request or the last payment: 403 `maker_checker`).
#[utoipa::path(post, path = "/api/v1/recoveries/{id}/write-off", tag = "recoveries", params(("id" = i64, Path)), request_body = RecoveryWriteOffBody, responses(
    (status = 200, body = RecoveryDetail), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 404, body = ErrorBody), (status = 409, description = "case_closed", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn write_off_recovery(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<RecoveryWriteOffBody>,
) -> Result<Json<RecoveryDetail>, ApiError> {
    Ok(Json(
        state
            .app
            .write_off_recovery(&session.staff, id, &b.reason)
            .await?,
    ))
}
