//! The routes: health, auth, recipients, certifications, review cases, recoveries, audit.

mod audit;
mod certifications;
mod dci;
mod integration;
mod jobs;
mod lookups;
mod notifications;
mod recipients;
mod recovery;
mod reviews;
mod session;
mod system;
mod workflows;

use crate::AppState;
use axum::routing::{get, post};
use axum::Router;

pub(crate) use audit::__path_list_audit;
pub(crate) use audit::__path_verify_audit;
pub(crate) use certifications::__path_record_certification;
pub(crate) use dci::{__path_dci_notify, __path_opencrvs_subscription, __path_opencrvs_webhook};
pub(crate) use integration::{__path_payment_instructions, __path_upload_feed};
pub(crate) use jobs::{__path_get_job, __path_list_jobs, __path_retry_job};
pub(crate) use lookups::{
    __path_get_appeal, __path_get_certification, __path_get_home_visit, __path_get_review_case,
    __path_list_appeals, __path_list_certifications,
};
pub(crate) use notifications::__path_list_notifications;
pub(crate) use recipients::__path_get_recipient;
pub(crate) use recipients::__path_list_recipients;
pub(crate) use recovery::{
    __path_get_recovery, __path_list_recoveries, __path_record_recovery_payment,
    __path_request_recovery, __path_write_off_recovery,
};
pub(crate) use reviews::__path_decide_review_case;
pub(crate) use reviews::__path_list_review_cases;
pub(crate) use session::__path_login;
pub(crate) use session::__path_logout;
pub(crate) use system::__path_healthz;
pub(crate) use system::__path_metrics;
pub(crate) use system::__path_openapi_json;
pub(crate) use system::__path_readyz;
pub(crate) use workflows::{
    __path_assign_home_visit, __path_book_home_visit, __path_complete_home_visit,
    __path_create_recipient, __path_list_home_visits, __path_lodge_appeal, __path_record_service,
    __path_service_records, __path_timeline, __path_update_recipient,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/openapi.json", get(system::openapi_json))
        .route("/api/v1/auth/login", post(session::login))
        .route("/api/v1/auth/logout", post(session::logout))
        .route(
            "/api/v1/recipients",
            get(recipients::list_recipients).post(workflows::create_recipient),
        )
        .route(
            "/api/v1/recipients/{id}",
            get(recipients::get_recipient).patch(workflows::update_recipient),
        )
        .route("/api/v1/recipients/{id}/timeline", get(workflows::timeline))
        .route(
            "/api/v1/recipients/{id}/service-records",
            get(workflows::service_records),
        )
        .route(
            "/api/v1/appeals",
            get(lookups::list_appeals).post(workflows::lodge_appeal),
        )
        .route(
            "/api/v1/home-visits",
            get(workflows::list_home_visits).post(workflows::book_home_visit),
        )
        .route(
            "/api/v1/home-visits/{id}/assign",
            post(workflows::assign_home_visit),
        )
        .route(
            "/api/v1/home-visits/{id}/complete",
            post(workflows::complete_home_visit),
        )
        .route("/api/v1/service-records", post(workflows::record_service))
        .route(
            "/api/v1/certifications",
            get(lookups::list_certifications).post(certifications::record_certification),
        )
        .route(
            "/api/v1/certifications/{id}",
            get(lookups::get_certification),
        )
        .route("/api/v1/review-cases/{id}", get(lookups::get_review_case))
        .route("/api/v1/appeals/{id}", get(lookups::get_appeal))
        .route("/api/v1/home-visits/{id}", get(lookups::get_home_visit))
        .route("/api/v1/review-cases", get(reviews::list_review_cases))
        .route("/api/v1/recoveries", get(recovery::list_recoveries))
        .route("/api/v1/recoveries/{id}", get(recovery::get_recovery))
        .route(
            "/api/v1/recoveries/{id}/request",
            post(recovery::request_recovery),
        )
        .route(
            "/api/v1/recoveries/{id}/payments",
            post(recovery::record_recovery_payment),
        )
        .route(
            "/api/v1/recoveries/{id}/write-off",
            post(recovery::write_off_recovery),
        )
        .route(
            "/api/v1/review-cases/{id}/decision",
            post(reviews::decide_review_case),
        )
        .route(
            "/api/v1/payments/{month}/instructions",
            get(integration::payment_instructions),
        )
        .route(
            "/api/v1/feeds/{source}",
            post(integration::upload_feed).layer(axum::extract::DefaultBodyLimit::max(
                lifecert_app::jobs::MAX_FEED_UPLOAD_BYTES,
            )),
        )
        .route(
            "/api/v1/notifications",
            get(notifications::list_notifications),
        )
        .route("/api/v1/jobs", get(jobs::list_jobs))
        .route("/api/v1/jobs/{id}", get(jobs::get_job))
        .route("/api/v1/jobs/{id}/retry", post(jobs::retry_job))
        .route("/dci/registry/notify", post(dci::dci_notify))
        .route(
            "/webhooks/opencrvs",
            get(dci::opencrvs_subscription)
                .post(dci::opencrvs_webhook)
                .layer(axum::extract::DefaultBodyLimit::max(
                    dci::WEBHOOK_BODY_LIMIT_BYTES,
                )),
        )
        .route("/api/v1/audit", get(audit::list_audit))
        .route("/api/v1/audit/verify", get(audit::verify_audit))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
}
