//! Notifications to pensioners and their agents: where each delivery stands, and above
//! all the ones that failed, for staff to follow up (a call, a home visit).

use crate::auth::StaffAuth;
use crate::error::ErrorBody;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::Json;
use lifecert_app::notifications::{NotificationQuery, NotificationView};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct NotificationListQuery {
    /// pending, sending, retrying, delivered, failed or cancelled; `failed` is the
    /// follow-up list (a permanent failure, or every attempt spent)
    pub status: Option<String>,
    /// reminder, overdue, suspended or resumed
    pub kind: Option<String>,
    /// sms, email or webhook
    pub channel: Option<String>,
    pub recipient_id: Option<i64>,
    /// A region prefix inside your own (e.g. 320102 inside 3201).
    pub region: Option<String>,
    /// Deliveries with a larger id (paging).
    pub after_id: Option<i64>,
    /// 1–500, default 100.
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationList {
    /// By id.
    pub items: Vec<NotificationView>,
}

/// Notification deliveries to pensioners of your region (supervisors), by id: one per
/// notice and addressee, with its status, attempts and last error. No message text and
/// no contact details.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(NotificationListQuery), responses(
    (status = 200, body = NotificationList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 422, description = "invalid_input naming the field: status, kind, channel, region, limit", body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list_notifications(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiQuery(q): ApiQuery<NotificationListQuery>,
) -> Result<Json<NotificationList>, ApiError> {
    let items = state
        .app
        .notifications(
            &session.staff,
            &NotificationQuery {
                status: q.status,
                kind: q.kind,
                channel: q.channel,
                recipient_id: q.recipient_id,
                region: q.region,
                after_id: q.after_id,
                limit: q.limit,
            },
        )
        .await?;
    Ok(Json(NotificationList { items }))
}
