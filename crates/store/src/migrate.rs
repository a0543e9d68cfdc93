//! Forward-only schema migrations; SQLite and PostgreSQL carry the same version numbers.

use crate::{Dialect, Result, Store, StoreError};
use sqlx::{Executor, Row};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sqlite: include_str!("../migrations/sqlite/0001_initial.sql"),
        postgres: include_str!("../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "staff",
        sqlite: include_str!("../migrations/sqlite/0002_staff.sql"),
        postgres: include_str!("../migrations/postgres/0002_staff.sql"),
    },
    Migration {
        version: 3,
        name: "feeds",
        sqlite: include_str!("../migrations/sqlite/0003_feeds.sql"),
        postgres: include_str!("../migrations/postgres/0003_feeds.sql"),
    },
    Migration {
        version: 4,
        name: "recovery",
        sqlite: include_str!("../migrations/sqlite/0004_recovery.sql"),
        postgres: include_str!("../migrations/postgres/0004_recovery.sql"),
    },
    Migration {
        version: 5,
        name: "feed_pending",
        sqlite: include_str!("../migrations/sqlite/0005_feed_pending.sql"),
        postgres: include_str!("../migrations/postgres/0005_feed_pending.sql"),
    },
    Migration {
        version: 6,
        name: "inbound_messages",
        sqlite: include_str!("../migrations/sqlite/0006_inbound_messages.sql"),
        postgres: include_str!("../migrations/postgres/0006_inbound_messages.sql"),
    },
    Migration {
        version: 7,
        name: "jobs",
        sqlite: include_str!("../migrations/sqlite/0007_jobs.sql"),
        postgres: include_str!("../migrations/postgres/0007_jobs.sql"),
    },
    Migration {
        version: 8,
        name: "notifications",
        sqlite: include_str!("../migrations/sqlite/0008_notifications.sql"),
        postgres: include_str!("../migrations/postgres/0008_notifications.sql"),
    },
    Migration {
        version: 9,
        name: "life_signs",
        sqlite: include_str!("../migrations/sqlite/0009_life_signs.sql"),
        postgres: include_str!("../migrations/postgres/0009_life_signs.sql"),
    },
    Migration {
        version: 10,
        name: "life_pending",
        sqlite: include_str!("../migrations/sqlite/0010_life_pending.sql"),
        postgres: include_str!("../migrations/postgres/0010_life_pending.sql"),
    },
    Migration {
        version: 11,
        name: "compact_feed_records",
        sqlite: include_str!("../migrations/sqlite/0011_compact_feed_records.sql"),
        postgres: include_str!("../migrations/postgres/0011_compact_feed_records.sql"),
    },
    Migration {
        version: 12,
        name: "life_sign_days",
        sqlite: include_str!("../migrations/sqlite/0012_life_sign_days.sql"),
        postgres: include_str!("../migrations/postgres/0012_life_sign_days.sql"),
    },
];

/// Applies the migrations not yet applied, up to schema `up_to`.
pub(crate) async fn run(store: &Store, up_to: i64) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    if store.dialect == Dialect::Postgres {
        // Several nodes may start at once; one migrates, the others wait here.
        tx.execute("SELECT pg_advisory_xact_lock(7311993)").await?;
    }
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL)",
    )
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    let known = MIGRATIONS.last().map(|m| m.version).unwrap_or(0);
    if let Some(newer) = applied.iter().find(|v| **v > known) {
        return Err(StoreError::Schema(format!(
            "the database has schema version {newer}, newer than this lifecert knows ({known}): upgrade lifecert"
        )));
    }
    for m in MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.version) && m.version <= up_to)
    {
        let script = match store.dialect {
            Dialect::Sqlite => m.sqlite,
            Dialect::Postgres => m.postgres,
        };
        for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            tx.execute(statement).await.map_err(|e| {
                StoreError::Schema(format!("migration {} ({}) failed: {e}", m.version, m.name))
            })?;
        }
        sqlx::query(&store.sql("INSERT INTO schema_migrations (version, name) VALUES (?, ?)"))
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
