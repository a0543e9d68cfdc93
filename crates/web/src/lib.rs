//! lifecert's HTTP service: the JSON API under `/api/v1` (described by a generated
//! OpenAPI document), health and metrics endpoints. Handlers are thin: authorisation,
//! region scope and every state change live in `lifecert_app`.

mod auth;
mod error;
mod extract;
mod metrics;
mod openapi;
mod routes;

pub use error::ApiError;
pub use openapi::ApiDoc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::Router;
use lifecert_app::integration::WebhookSecret;
use lifecert_app::App;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub metrics: Arc<metrics::Metrics>,
    /// Send cookies with `Secure` (behind TLS).
    pub secure_cookies: bool,
    /// The OpenCRVS webhook's shared secret; without one the webhook answers 503.
    pub opencrvs_secret: Option<Arc<WebhookSecret>>,
}

impl AppState {
    pub fn new(app: App, secure_cookies: bool) -> Self {
        AppState {
            app,
            metrics: Arc::new(metrics::Metrics::default()),
            secure_cookies,
            opencrvs_secret: None,
        }
    }

    /// Turns the OpenCRVS webhook on, with the secret its deliveries are signed with.
    pub fn with_opencrvs_secret(mut self, secret: WebhookSecret) -> Self {
        self.opencrvs_secret = Some(Arc::new(secret));
        self
    }
}

/// JSON bodies above this are refused (413): nothing in the API needs more.
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids: a process-unique prefix and a counter (no personal data, cheap).
#[derive(Clone)]
struct RequestIds {
    prefix: u32,
    next: Arc<AtomicU64>,
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n:x}", self.prefix)
            .parse()
            .ok()
            .map(RequestId::new)
    }
}

pub fn router(state: AppState) -> Router {
    let ids = RequestIds {
        prefix: std::process::id() ^ (chrono::Utc::now().timestamp_subsec_nanos()),
        next: Arc::new(AtomicU64::new(1)),
    };
    routes::routes()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER.clone()))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // Method and route only: paths and queries could carry personal data.
                let id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_string();
                tracing::info_span!("request", method = %req.method(), request_id = %id)
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER.clone(), ids))
        .with_state(state)
}

/// Serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    state: AppState,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "lifecert listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
