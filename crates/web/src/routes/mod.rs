//! The routes: health, auth, recipients, certifications, review cases, audit.

mod audit;
mod certifications;
mod recipients;
mod reviews;
mod session;
mod system;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub(crate) use audit::__path_list_audit;
pub(crate) use audit::__path_verify_audit;
pub(crate) use certifications::__path_record_certification;
pub(crate) use recipients::__path_get_recipient;
pub(crate) use recipients::__path_list_recipients;
pub(crate) use reviews::__path_decide_review_case;
pub(crate) use reviews::__path_list_review_cases;
pub(crate) use session::__path_login;
pub(crate) use session::__path_logout;
pub(crate) use system::__path_healthz;
pub(crate) use system::__path_metrics;
pub(crate) use system::__path_openapi_json;
pub(crate) use system::__path_readyz;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/openapi.json", get(system::openapi_json))
        .route("/api/v1/auth/login", post(session::login))
        .route("/api/v1/auth/logout", post(session::logout))
        .route("/api/v1/recipients", get(recipients::list_recipients))
        .route("/api/v1/recipients/{id}", get(recipients::get_recipient))
        .route(
            "/api/v1/certifications",
            post(certifications::record_certification),
        )
        .route("/api/v1/review-cases", get(reviews::list_review_cases))
        .route(
            "/api/v1/review-cases/{id}/decision",
            post(reviews::decide_review_case),
        )
        .route("/api/v1/audit", get(audit::list_audit))
        .route("/api/v1/audit/verify", get(audit::verify_audit))
        .fallback(system::not_found)
}
