//! Pensioners, as staff see them: search within the user's region, and one pensioner
//! with the ID number masked unless revealed (audited).

use crate::auth::StaffAuth;
use crate::error::ErrorBody;
use crate::extract::{ApiPath, ApiQuery};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::Json;
use lifecert_app::access::{RecipientForStaff, RecipientQuery, StaffRecipient};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct RecipientSearch {
    /// Exact ID number, in the deployment's ID scheme (`cn_resident`: the 18-character
    /// resident ID number; `generic`: 4 to 32 letters and digits), looked up by blind index.
    pub id_number: Option<String>,
    /// Exact name.
    pub name: Option<String>,
    /// active, suspended or terminated.
    pub status: Option<String>,
    /// A region prefix within the user's own.
    pub region: Option<String>,
    /// Only active pensioners past their due date.
    #[serde(default)]
    pub overdue: bool,
    /// Continue after this id (from `next_after_id`).
    pub after_id: Option<i64>,
    /// At most this many (1–500, default 50).
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct RecipientList {
    pub items: Vec<StaffRecipient>,
    /// Pass as `after_id` for the next page; absent on the last page.
    pub next_after_id: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
pub struct RevealQuery {
    /// Show the whole ID number (roles that may; every reveal is audited).
    #[serde(default)]
    pub reveal: bool,
}

/// Search pensioners in your region.
#[utoipa::path(get, path = "/api/v1/recipients", tag = "recipients", params(RecipientSearch), responses(
    (status = 200, body = RecipientList),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list_recipients(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiQuery(q): ApiQuery<RecipientSearch>,
) -> Result<Json<RecipientList>, ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let items = state
        .app
        .search_recipients(
            &session.staff,
            &RecipientQuery {
                id_number: q.id_number,
                name: q.name,
                status: q.status,
                region: q.region,
                overdue: q.overdue,
                after_id: q.after_id,
                limit: Some(limit),
            },
        )
        .await?;
    let next_after_id = (items.len() as i64 == limit)
        .then(|| items.last().map(|r| r.id))
        .flatten();
    Ok(Json(RecipientList {
        items,
        next_after_id,
    }))
}

/// One pensioner. Outside your region, certifiers and partners get a minimal view (to
/// record a certification in another region); others get 404.
#[utoipa::path(get, path = "/api/v1/recipients/{id}", tag = "recipients",
    params(("id" = i64, Path, description = "lifecert's id of the pensioner"), RevealQuery),
    responses(
        (status = 200, body = RecipientForStaff),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn get_recipient(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<RevealQuery>,
) -> Result<Json<RecipientForStaff>, ApiError> {
    Ok(Json(
        state
            .app
            .recipient_for_staff(&session.staff, id, q.reveal)
            .await?,
    ))
}
