//! Recording assisted certifications (counter, community, home visit, video, overseas).

use crate::auth::StaffAuth;
use crate::error::ErrorBody;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use lifecert_app::certify::{CertifyReport, CertifyRequest, RecipientRef};
use lifecert_domain::{Channel, Outcome, RegionCode};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The channels staff record through the API; online and passive certifications
/// arrive by their own routes.
const ASSISTED: [Channel; 7] = [
    Channel::Counter,
    Channel::Community,
    Channel::HomeVisit,
    Channel::Video,
    Channel::OverseasConsulate,
    Channel::OverseasNotary,
    Channel::AgentAssisted,
];

#[derive(Deserialize, Serialize, ToSchema, Default)]
pub struct Evidence {
    /// e.g. resident_id_card, passport, consular_certificate, notarial_certificate.
    pub document_type: Option<String>,
    pub document_number: Option<String>,
    /// Where it happened (office, community centre, address of the visit).
    pub place: Option<String>,
    /// References to stored files (photos, scans), never the files themselves.
    #[serde(default)]
    pub attachments: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct CertificationBody {
    pub recipient_id: i64,
    /// counter, community, home_visit, video, overseas_consulate, overseas_notary, agent_assisted
    pub channel: String,
    /// YYYY-MM-DD, not in the future.
    pub date: String,
    /// pass (default), fail or doubtful.
    pub outcome: Option<String>,
    /// Required for fail: face_mismatch, liveness_failed, document_invalid, not_the_person, deceased, other.
    pub reason: Option<String>,
    /// Where it was performed, if not the pensioner's home region (异地认证).
    pub region_code: Option<String>,
    #[serde(default)]
    pub evidence: Evidence,
}

/// Record a certification made with a member of staff. A pass renews validity; a
/// doubtful result opens a review case and suspends payment.
#[utoipa::path(post, path = "/api/v1/certifications", tag = "certifications", request_body = CertificationBody, responses(
    (status = 201, body = CertifyReport),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn record_certification(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
    ApiJson(body): ApiJson<CertificationBody>,
) -> Result<(StatusCode, Json<CertifyReport>), ApiError> {
    let channel = Channel::parse(&body.channel)
        .ok()
        .filter(|c| ASSISTED.contains(c))
        .ok_or_else(|| {
            ApiError::invalid(
                "channel",
                format!(
                    "use one of {}",
                    ASSISTED
                        .iter()
                        .map(|c| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    let date = lifecert_domain::parse_date(&body.date)
        .map_err(|e| ApiError::invalid("date", e.to_string()))?;
    let outcome = match body.outcome.as_deref() {
        None => Outcome::Pass,
        Some(o) => Outcome::parse(o).map_err(|e| ApiError::invalid("outcome", e.to_string()))?,
    };
    let region_code = body
        .region_code
        .as_deref()
        .map(RegionCode::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("region_code", e.to_string()))?;
    let evidence = serde_json::to_string(&body.evidence)
        .map_err(|e| ApiError::invalid("evidence", e.to_string()))?;
    if evidence.len() > 4096 {
        return Err(ApiError::invalid(
            "evidence",
            "at most 4 KiB of evidence references",
        ));
    }
    let report = state
        .app
        .certify_for_staff(
            &session.staff,
            &CertifyRequest {
                recipient: RecipientRef::Id(body.recipient_id),
                channel,
                date,
                outcome,
                reason: body.reason,
                region_code,
                evidence: Some(evidence),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}
