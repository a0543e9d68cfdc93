//! The audit trail for auditors and supervisors.

use crate::auth::StaffAuth;
use crate::error::ErrorBody;
use crate::extract::ApiQuery;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Entries after this sequence number.
    pub after_seq: Option<i64>,
    pub limit: Option<i64>,
    /// e.g. recipient.id_number_revealed
    pub action: Option<String>,
    pub recipient_id: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub occurred_at: String,
    pub actor: String,
    pub action: String,
    pub recipient_id: Option<i64>,
    pub details: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub items: Vec<AuditEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditVerification {
    pub entries: i64,
    pub ok: bool,
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Audit entries in order.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery), responses(
    (status = 200, body = AuditList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn list_audit(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let rows = state
        .app
        .audit_entries(
            &session.staff,
            q.after_seq.unwrap_or(0),
            q.limit.unwrap_or(100),
            q.action.as_deref(),
            q.recipient_id,
        )
        .await?;
    Ok(Json(AuditList {
        items: rows
            .into_iter()
            .map(|r| AuditEntry {
                seq: r.seq,
                occurred_at: r.occurred_at,
                actor: r.actor,
                action: r.action,
                recipient_id: r.recipient_id,
                details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            })
            .collect(),
    }))
}

/// Walk the hash chain.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", responses(
    (status = 200, body = AuditVerification), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn verify_audit(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
) -> Result<Json<AuditVerification>, ApiError> {
    let check = state.app.verify_audit_for(&session.staff).await?;
    Ok(Json(AuditVerification {
        entries: check.entries,
        ok: check.first_bad_seq.is_none(),
        first_bad_seq: check.first_bad_seq,
        problem: check.problem,
    }))
}
