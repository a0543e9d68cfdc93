//! Who is calling: a staff session from a Bearer token (API clients) or the session
//! cookie (browsers). Cookie sessions must echo their CSRF token in `X-CSRF-Token` on
//! every request that changes something; Bearer tokens cannot be sent by a foreign page.

use crate::{ApiError, AppState};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use lifecert_app::staff::SessionInfo;
use lifecert_app::AppError;

pub const SESSION_COOKIE: &str = "lifecert_session";
pub const CSRF_COOKIE: &str = "lifecert_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A logged-in member of staff.
pub struct StaffAuth(pub SessionInfo);

fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl FromRequestParts<AppState> for StaffAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(token) = bearer(parts) {
            return Ok(StaffAuth(state.app.session(token).await?));
        }
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Err(ApiError(AppError::Unauthenticated {
                code: "unauthenticated",
                message: "log in first (POST /api/v1/auth/login)".to_string(),
            }));
        };
        let session = state.app.session(token).await?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !equal(sent, &session.csrf_token) {
                return Err(ApiError(AppError::forbidden(
                    "csrf_failed",
                    "send the CSRF token from login in the X-CSRF-Token header",
                )));
            }
        }
        Ok(StaffAuth(session))
    }
}

/// The `Set-Cookie` values for a new session (or, with `None`, to clear it).
pub fn session_cookies(token: Option<(&str, &str)>, secure: bool) -> [String; 2] {
    let secure = if secure { "; Secure" } else { "" };
    match token {
        Some((token, csrf)) => [
            format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"),
            format!("{CSRF_COOKIE}={csrf}; SameSite=Strict; Path=/{secure}"),
        ],
        None => [
            format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
            format!("{CSRF_COOKIE}=; SameSite=Strict; Path=/; Max-Age=0{secure}"),
        ],
    }
}

/// Another system, by API key: `Authorization: ApiKey lck_...` or `X-Api-Key: lck_...`.
pub struct ApiKeyAuth(pub lifecert_app::staff::ApiClient);

impl FromRequestParts<AppState> for ApiKeyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("ApiKey "))
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError(AppError::Unauthenticated {
                    code: "unauthenticated",
                    message: "send the integration's key as `Authorization: ApiKey <key>`"
                        .to_string(),
                })
            })?;
        Ok(ApiKeyAuth(state.app.api_client(key).await?))
    }
}
