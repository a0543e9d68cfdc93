//! Staff accounts (password + TOTP), login sessions with idle timeout and lock-out,
//! and integration API keys.

use crate::{Actor, App, AppError, Result};
use chrono::{DateTime, Duration, Utc};
use lifecert_crypto::{
    api_key_hash, dummy_verify, generate_api_key, generate_password, hash_password, session_token,
    verify_password, Field, TotpSecret,
};
use lifecert_domain::{RegionScope, Role};
use serde::Serialize;

/// A logged-in member of staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    pub scope: RegionScope,
}

impl Staff {
    pub fn actor(&self) -> Actor {
        Actor::Staff(self.username.clone())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NewUser {
    pub username: String,
    /// Shown once; only its argon2id hash is stored.
    pub password: String,
    /// For the authenticator app (SHA-1, 6 digits, 30 s).
    pub totp_uri: String,
}

pub struct Login {
    /// Goes to the client (cookie or Bearer); only its hash is stored.
    pub token: String,
    pub csrf_token: String,
    pub staff: Staff,
}

/// A session found by its token.
pub struct SessionInfo {
    pub session_id: i64,
    pub csrf_token: String,
    pub staff: Staff,
}

#[derive(Debug, Clone)]
pub struct ApiClient {
    pub name: String,
    pub scopes: Vec<String>,
}

impl ApiClient {
    pub fn require_scope(&self, scope: &str) -> Result<()> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "forbidden",
                format!("this API key lacks the {scope} scope"),
            ))
        }
    }
}

pub const IDLE_TIMEOUT_MINUTES: i64 = 30;
const LOCK_AFTER_FAILURES: i64 = 5;
const FAILURE_WINDOW_MINUTES: i64 = 15;
const LOCK_MINUTES: i64 = 15;
pub const API_SCOPES: &[&str] = &["feeds", "payments", "notifications"];

fn invalid_credentials() -> AppError {
    AppError::Unauthenticated {
        code: "invalid_credentials",
        message: "the user name, password or one-time code is wrong".to_string(),
    }
}

fn valid_username(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fn staff_of(u: &lifecert_store::UserRow) -> Result<Staff> {
    Ok(Staff {
        user_id: u.id,
        username: u.username.clone(),
        role: Role::parse(&u.role).map_err(|e| AppError::Corrupt(e.to_string()))?,
        scope: RegionScope::parse(&u.region_prefix)
            .map_err(|e| AppError::Corrupt(e.to_string()))?,
    })
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl App {
    /// Creates a staff account with a one-time password and a TOTP secret.
    pub async fn add_user(
        &self,
        actor: &Actor,
        username: &str,
        role: Role,
        scope: &RegionScope,
    ) -> Result<NewUser> {
        let username = username.trim();
        if username.is_empty()
            || username.len() > 64
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(AppError::invalid(
                "username",
                "use 1–64 letters, digits, dots, dashes or underscores",
            ));
        }
        let password = generate_password()?;
        let hash = hash_password(&password)?;
        let secret = TotpSecret::generate()?;
        let secret_enc = self
            .keys
            .encrypt(Field::Other, secret.to_base32().as_bytes());
        let now = self.now_string();
        let mut tx = self.store.begin_write().await?;
        let id = tx
            .insert_user(
                username,
                &hash,
                &secret_enc,
                role.as_str(),
                scope.as_str(),
                &now,
            )
            .await?;
        self.audit(
            &mut tx,
            actor,
            "user.added",
            None,
            serde_json::json!({"user_id": id, "username": username, "role": role.as_str(), "region": scope.as_str()}),
        );
        tx.commit().await?;
        Ok(NewUser {
            username: username.to_string(),
            password,
            totp_uri: secret.otpauth_uri("lifecert", username),
        })
    }

    /// Checks password and one-time code. Five failures within 15 minutes lock the
    /// account for 15 minutes; a code is accepted once only.
    pub async fn login(&self, username: &str, password: &str, totp: &str) -> Result<Login> {
        // A name no account can have is refused before it reaches the database, with
        // the same answer (and the same hashing time) as a wrong password.
        if !valid_username(username) {
            dummy_verify(password);
            return Err(invalid_credentials());
        }
        let now = self.clock.now();
        let now_s = ts(now);
        let mut tx = self.store.begin_write().await?;
        let failures = tx
            .count_login_failures(
                username,
                &ts(now - Duration::minutes(FAILURE_WINDOW_MINUTES)),
            )
            .await?;
        let user = tx.user_by_username(username).await?;
        let locked = user
            .as_ref()
            .and_then(|u| u.locked_until.as_deref())
            .is_some_and(|until| until > now_s.as_str());
        if locked || failures >= LOCK_AFTER_FAILURES {
            return Err(AppError::Locked(format!(
                "too many failed logins: the account is locked for {LOCK_MINUTES} minutes"
            )));
        }
        let Some(user) = user.filter(|u| u.active) else {
            dummy_verify(password);
            tx.record_login_failure(username, &now_s).await?;
            tx.commit().await?;
            return Err(invalid_credentials());
        };
        let secret = self
            .keys
            .decrypt(Field::Other, &user.totp_secret_enc)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| TotpSecret::from_base32(&s).ok())
            .ok_or_else(|| AppError::Corrupt("a stored TOTP secret cannot be read".into()))?;
        let step = secret
            .verify(totp.trim(), now.timestamp().max(0) as u64)
            .filter(|s| *s as i64 > user.last_totp_step);
        let password_ok = verify_password(password, &user.password_hash);
        let Some(step) = step.filter(|_| password_ok) else {
            tx.record_login_failure(username, &now_s).await?;
            if failures + 1 >= LOCK_AFTER_FAILURES {
                tx.lock_user(user.id, &ts(now + Duration::minutes(LOCK_MINUTES)))
                    .await?;
                let actor = Actor::System;
                self.audit(
                    &mut tx,
                    &actor,
                    "user.locked",
                    None,
                    serde_json::json!({"user_id": user.id}),
                );
            }
            tx.commit().await?;
            return Err(invalid_credentials());
        };
        let staff = staff_of(&user)?;
        let (token, token_hash) = session_token()?;
        let (csrf_token, _) = session_token()?;
        tx.set_last_totp_step(user.id, step as i64).await?;
        tx.clear_login_failures(username).await?;
        tx.insert_session(&token_hash, user.id, &csrf_token, &now_s)
            .await?;
        self.audit(
            &mut tx,
            &staff.actor(),
            "user.logged_in",
            None,
            serde_json::json!({"user_id": user.id}),
        );
        tx.commit().await?;
        Ok(Login {
            token,
            csrf_token,
            staff,
        })
    }

    /// The staff member behind a session token; sessions idle for 30 minutes end.
    pub async fn session(&self, token: &str) -> Result<SessionInfo> {
        let unauthenticated = |code, message: &str| AppError::Unauthenticated {
            code,
            message: message.to_string(),
        };
        let s = self
            .store
            .session_by_token(&api_key_hash(token))
            .await?
            .ok_or_else(|| unauthenticated("unauthenticated", "log in first"))?;
        let now = self.clock.now();
        let idle_since = DateTime::parse_from_rfc3339(&s.last_seen_at)
            .map_err(|e| AppError::Corrupt(e.to_string()))?
            .with_timezone(&Utc);
        if now - idle_since > Duration::minutes(IDLE_TIMEOUT_MINUTES) || !s.user.active {
            let mut tx = self.store.begin_write().await?;
            tx.end_session(s.id, &ts(now)).await?;
            tx.commit().await?;
            return Err(unauthenticated(
                "session_expired",
                "the session ended after 30 minutes without use: log in again",
            ));
        }
        // Refreshed at most once a minute: a write on every read would compete with
        // real changes for the database, for a timeout that needs no finer grain.
        if now - idle_since > Duration::minutes(1) {
            self.store.touch_session(s.id, &ts(now)).await?;
        }
        Ok(SessionInfo {
            session_id: s.id,
            csrf_token: s.csrf_token,
            staff: staff_of(&s.user)?,
        })
    }

    pub async fn logout(&self, session: &SessionInfo) -> Result<()> {
        let mut tx = self.store.begin_write().await?;
        tx.end_session(session.session_id, &self.now_string())
            .await?;
        self.audit(
            &mut tx,
            &session.staff.actor(),
            "user.logged_out",
            None,
            serde_json::json!({}),
        );
        tx.commit().await?;
        Ok(())
    }

    /// Creates an integration key with scopes; the key is shown once.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        name: &str,
        scopes: &[String],
    ) -> Result<String> {
        if name.trim().is_empty() || name.len() > 64 {
            return Err(AppError::invalid(
                "name",
                "give the key a name of at most 64 characters",
            ));
        }
        if scopes.is_empty() {
            return Err(AppError::invalid(
                "scopes",
                format!("give at least one scope: {}", API_SCOPES.join(", ")),
            ));
        }
        if let Some(bad) = scopes.iter().find(|s| !API_SCOPES.contains(&s.as_str())) {
            return Err(AppError::invalid(
                "scopes",
                format!("unknown scope {bad:?}: use {}", API_SCOPES.join(", ")),
            ));
        }
        let (key, hash) = generate_api_key()?;
        let mut tx = self.store.begin_write().await?;
        let id = tx
            .insert_api_key(name.trim(), &hash, &scopes.join(","), &self.now_string())
            .await?;
        self.audit(
            &mut tx,
            actor,
            "api_key.created",
            None,
            serde_json::json!({"api_key_id": id, "name": name.trim(), "scopes": scopes}),
        );
        tx.commit().await?;
        Ok(key)
    }

    pub async fn api_client(&self, key: &str) -> Result<ApiClient> {
        let row = self
            .store
            .api_key_by_hash(&api_key_hash(key))
            .await?
            .ok_or(AppError::Unauthenticated {
                code: "unauthenticated",
                message: "unknown or revoked API key".to_string(),
            })?;
        Ok(ApiClient {
            name: row.name,
            scopes: row.scopes.split(',').map(str::to_string).collect(),
        })
    }
}
