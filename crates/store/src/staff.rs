//! Staff accounts, login sessions, failed-login records and integration API keys.

use crate::{Result, Store, StoreError, WriteTx};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub totp_secret_enc: Vec<u8>,
    pub last_totp_step: i64,
    pub role: String,
    pub region_prefix: String,
    pub active: bool,
    pub locked_until: Option<String>,
}

const USER_COLUMNS: &str = "u.id, u.username, u.password_hash, u.totp_secret_enc, u.last_totp_step, u.role, u.region_prefix, u.active, u.locked_until";

fn user_from_row(r: &AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        id: r.try_get(0)?,
        username: r.try_get(1)?,
        password_hash: r.try_get(2)?,
        totp_secret_enc: r.try_get(3)?,
        last_totp_step: r.try_get(4)?,
        role: r.try_get(5)?,
        region_prefix: r.try_get(6)?,
        active: r.try_get::<i64, _>(7)? != 0,
        locked_until: r.try_get(8)?,
    })
}

#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: i64,
    pub csrf_token: String,
    pub last_seen_at: String,
    pub user: UserRow,
}

#[derive(Debug, Clone)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub scopes: String,
}

/// A unique-constraint violation becomes a `Duplicate` the caller can explain.
pub(crate) fn on_unique(e: sqlx::Error, what: String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate(what),
        _ => StoreError::Database(e),
    }
}

impl Store {
    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>> {
        let sql = self.sql(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?"
        ));
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    /// A session that has not ended, with its user.
    pub async fn session_by_token(&self, token_hash: &[u8]) -> Result<Option<SessionRow>> {
        let sql = self.sql(&format!(
            "SELECT s.id, s.csrf_token, s.last_seen_at, {USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.ended_at IS NULL"
        ));
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            // The user's columns follow the session's three.
            let user = UserRow {
                id: r.try_get(3)?,
                username: r.try_get(4)?,
                password_hash: r.try_get(5)?,
                totp_secret_enc: r.try_get(6)?,
                last_totp_step: r.try_get(7)?,
                role: r.try_get(8)?,
                region_prefix: r.try_get(9)?,
                active: r.try_get::<i64, _>(10)? != 0,
                locked_until: r.try_get(11)?,
            };
            Ok(SessionRow {
                id: r.try_get(0)?,
                csrf_token: r.try_get(1)?,
                last_seen_at: r.try_get(2)?,
                user,
            })
        })
        .transpose()
    }

    pub async fn touch_session(&self, id: i64, now: &str) -> Result<()> {
        let sql = self.sql("UPDATE sessions SET last_seen_at = ? WHERE id = ?");
        sqlx::query(&sql)
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn api_key_by_hash(&self, key_hash: &[u8]) -> Result<Option<ApiKeyRow>> {
        let sql = self
            .sql("SELECT id, name, scopes FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL");
        let row = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(ApiKeyRow {
                id: r.try_get(0)?,
                name: r.try_get(1)?,
                scopes: r.try_get(2)?,
            })
        })
        .transpose()
    }
}

impl WriteTx {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_user(
        &mut self,
        username: &str,
        password_hash: &str,
        totp_secret_enc: &[u8],
        role: &str,
        region_prefix: &str,
        now: &str,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO users (username, password_hash, totp_secret_enc, last_totp_step, role, region_prefix, active, created_at) VALUES (?, ?, ?, 0, ?, ?, 1, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(username)
            .bind(password_hash)
            .bind(totp_secret_enc)
            .bind(role)
            .bind(region_prefix)
            .bind(now)
            .fetch_one(self.conn())
            .await
            .map_err(|e| on_unique(e, format!("a user named {username} already exists")))?;
        Ok(row.try_get(0)?)
    }

    pub async fn user_by_username(&mut self, username: &str) -> Result<Option<UserRow>> {
        let sql = self.sql(&format!(
            "SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?"
        ));
        let row = sqlx::query(&sql)
            .bind(username)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn count_login_failures(&mut self, username: &str, since: &str) -> Result<i64> {
        let sql =
            self.sql("SELECT COUNT(*) FROM login_failures WHERE username = ? AND failed_at > ?");
        let row = sqlx::query(&sql)
            .bind(username)
            .bind(since)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn record_login_failure(&mut self, username: &str, at: &str) -> Result<()> {
        let sql = self.sql("INSERT INTO login_failures (username, failed_at) VALUES (?, ?)");
        sqlx::query(&sql)
            .bind(username)
            .bind(at)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn clear_login_failures(&mut self, username: &str) -> Result<()> {
        let sql = self.sql("DELETE FROM login_failures WHERE username = ?");
        sqlx::query(&sql)
            .bind(username)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn lock_user(&mut self, id: i64, until: &str) -> Result<()> {
        let sql = self.sql("UPDATE users SET locked_until = ? WHERE id = ?");
        sqlx::query(&sql)
            .bind(until)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn set_last_totp_step(&mut self, id: i64, step: i64) -> Result<()> {
        let sql = self.sql("UPDATE users SET last_totp_step = ?, locked_until = NULL WHERE id = ?");
        sqlx::query(&sql)
            .bind(step)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_session(
        &mut self,
        token_hash: &[u8],
        user_id: i64,
        csrf: &str,
        now: &str,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(token_hash)
            .bind(user_id)
            .bind(csrf)
            .bind(now)
            .bind(now)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn end_session(&mut self, id: i64, now: &str) -> Result<()> {
        let sql = self.sql("UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at IS NULL");
        sqlx::query(&sql)
            .bind(now)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_api_key(
        &mut self,
        name: &str,
        key_hash: &[u8],
        scopes: &str,
        now: &str,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(name)
            .bind(key_hash)
            .bind(scopes)
            .bind(now)
            .fetch_one(self.conn())
            .await
            .map_err(|e| on_unique(e, format!("an API key named {name} already exists")))?;
        Ok(row.try_get(0)?)
    }
}
