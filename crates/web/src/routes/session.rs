//! Logging in and out.

use crate::auth::{session_cookies, StaffAuth};
use crate::error::ErrorBody;
use crate::extract::ApiJson;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    pub username: String,
    pub password: String,
    /// The 6-digit code from the authenticator app.
    pub totp: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// For API clients: `Authorization: Bearer <token>`. Browsers use the cookie.
    pub token: String,
    /// Browsers send it back in `X-CSRF-Token` on requests that change something.
    pub csrf_token: String,
    pub username: String,
    pub role: String,
    pub region: String,
}

/// Log in with password and one-time code. Sets an HttpOnly, SameSite=Strict session
/// cookie; five failures within 15 minutes lock the account for 15 minutes.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody, responses(
    (status = 200, body = LoginResponse),
    (status = 401, description = "wrong user name, password or code", body = ErrorBody),
    (status = 422, description = "malformed body", body = ErrorBody),
    (status = 429, description = "account locked", body = ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<impl IntoResponse, ApiError> {
    let login = state
        .app
        .login(&body.username, &body.password, &body.totp)
        .await?;
    let mut headers = HeaderMap::new();
    for c in session_cookies(
        Some((&login.token, &login.csrf_token)),
        state.secure_cookies,
    ) {
        if let Ok(v) = c.parse() {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok((
        headers,
        Json(LoginResponse {
            token: login.token,
            csrf_token: login.csrf_token,
            username: login.staff.username,
            role: login.staff.role.as_str().to_string(),
            region: login.staff.scope.as_str().to_string(),
        }),
    ))
}

/// End the session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses(
    (status = 204, description = "logged out"),
    (status = 401, body = ErrorBody),
    (status = 403, description = "missing CSRF token (cookie sessions)", body = ErrorBody)),
    security(("session" = []), ("bearer" = [])))]
pub async fn logout(
    State(state): State<AppState>,
    StaffAuth(session): StaffAuth,
) -> Result<impl IntoResponse, ApiError> {
    state.app.logout(&session).await?;
    let mut headers = HeaderMap::new();
    for c in session_cookies(None, state.secure_cookies) {
        if let Ok(v) = c.parse() {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok((StatusCode::NO_CONTENT, headers))
}
