//! The OpenAPI 3 document, generated from the handlers' annotations.

use crate::routes::*;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "lifecert", description = "Pension eligibility certification (养老保险待遇领取资格认证): staff API."),
    paths(
        healthz, readyz, metrics, openapi_json, login, logout, list_recipients, get_recipient,
        record_certification, list_review_cases, decide_review_case, list_audit, verify_audit,
        create_recipient, update_recipient, timeline, lodge_appeal, list_home_visits,
        book_home_visit, assign_home_visit, complete_home_visit, record_service, service_records,
        list_certifications, get_certification, get_review_case, list_appeals, get_appeal,
        get_home_visit, payment_instructions, upload_feed, get_job, list_jobs, retry_job, dci_notify, opencrvs_webhook,
        opencrvs_subscription, list_recoveries, get_recovery,
        request_recovery, record_recovery_payment, write_off_recovery, list_notifications
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "For other systems: `ApiKey <key>` from `lifecert apikey create`.",
            ))),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "Set by login; requests that change something also need X-CSRF-Token.",
            ))),
        );
    }
}
