//! Storage for lifecert on SQLite (embedded, the default) and PostgreSQL, from one
//! implementation: every column is a basic type (BIGINT, TEXT, BLOB/BYTEA), so sqlx's
//! `Any` driver serves both, and only the migrations and placeholders differ.

mod audit;
mod feeds;
mod inbound;
mod jobs;
mod migrate;
mod notifications;
mod queries;
mod records;
mod recovery;
mod staff;
mod workflows;

pub use audit::{AuditEntry, AuditRecord, ChainCheck, GENESIS_HASH};
pub use feeds::{
    FeedRecordRow, LifeFacts, LifeSign, LifeSignRow, MatchCandidateRow, NewFeedRecord,
    RecipientFacts, FEED_INSERT_ROWS,
};
pub use inbound::{InboundClaim, InboundKey, InboundRow};
pub use jobs::{JobFilter, JobRow, NewJob};
pub use notifications::{
    AttemptRecord, AttemptRow, DeliveryContext, DeliveryFilter, DeliveryRow, NewNotice,
    NotificationContact, WaitingCount,
};
pub use queries::{AuditRow, RecipientFilter, ReviewCaseRow};
pub use records::*;
pub use recovery::{
    RecoveryFilter, RecoveryPaymentRow, RecoveryRow, RecoveryUpdate, RequestedRecovery,
};
pub use staff::{ApiKeyRow, SessionRow, UserRow};
pub use workflows::{CertificationFact, HomeVisitRow, PaymentHistoryRow, ServiceRecordRow};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor, Transaction};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The cause is part of the message (not a `source`), so it is printed once.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("{0}")]
    Url(String),
    #[error("{0}")]
    Schema(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// A unique value (a user name, a key name) is taken.
    #[error("{0}")]
    Duplicate(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(e)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// SQL is written with `?` placeholders; PostgreSQL wants `$1, $2, ...`.
    pub fn sql(self, sql: &str) -> String {
        match self {
            Dialect::Sqlite => sql.to_string(),
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// The path of the SQLite database file in a `sqlite:` URL, if it is one.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(std::path::PathBuf::from(path))
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite has one writer at a time. Writers of this process queue here, first come
    /// first served, instead of sleeping in SQLite's busy handler (whose back-off made
    /// write latency jumpy under load). PostgreSQL queues on the audit head's row lock.
    sqlite_writer: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// SQLite only: asks for the write-ahead log to be copied into the database file.
    checkpoints: Option<Checkpointer>,
}

/// The least time from one checkpoint to the next. Checkpointing after every one of a
/// server's small commits cost it 14% of its certification writes (HTTP load benchmark,
/// 1,676 against 1,956 a second); with this pause it wrote as many as with SQLite's own
/// checkpoints (2,099 and 2,381 against 1,929 and 2,130, interleaved).
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(250);

/// Copies SQLite's write-ahead log into the database file on a connection of its own,
/// after each commit, so that a writer goes on with its next transaction instead of
/// doing that copy itself (SQLite's automatic checkpoint runs inside the committing
/// call). `PASSIVE` never waits for readers or writers: what it cannot copy yet is copied
/// by the next one. Requests made while one runs, or in the pause after it, are merged
/// into one more run; the task ends when the last handle to the store is dropped or the
/// pool is closed.
#[derive(Clone)]
struct Checkpointer {
    requests: tokio::sync::mpsc::Sender<()>,
    /// Held while a checkpoint runs; [`Store::close`] takes it to run the last one.
    running: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Checkpointer {
    fn start(pool: AnyPool) -> Checkpointer {
        let (requests, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let running = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let turn = running.clone();
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                {
                    let _running = turn.lock().await;
                    if pool.is_closed() {
                        break;
                    }
                    // A failed checkpoint loses nothing: the log stays, and the next
                    // commit's request (or SQLite's own automatic checkpoint) tries again.
                    let _ = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await;
                }
                tokio::time::sleep(CHECKPOINT_PAUSE).await;
            }
        });
        Checkpointer { requests, running }
    }

    fn request(&self) {
        // Full means one is already asked for and will see this commit too.
        let _ = self.requests.try_send(());
    }
}

impl Store {
    /// Connects and brings the schema up to date. A SQLite file (and its folder) is
    /// created if missing.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_up_to(url, i64::MAX).await
    }

    /// Opens a database migrated only up to schema `version`: for testing migrations on
    /// data written by an older lifecert.
    #[doc(hidden)]
    pub async fn open_at_schema(url: &str, version: i64) -> Result<Store> {
        Store::open_up_to(url, version).await
    }

    async fn open_up_to(url: &str, version: i64) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let (dialect, url) = if url.starts_with("sqlite:") {
            if let Some(path) = sqlite_path(url) {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Url(format!("cannot create folder {}: {e}", dir.display()))
                    })?;
                }
            }
            let url = if url.contains("mode=") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            };
            (Dialect::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_string())
        } else {
            return Err(StoreError::Url(format!(
                "unsupported database URL {:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB",
                redact_url(url)
            )));
        };
        let options = AnyConnectOptions::from_str(&url)
            .map_err(|e| StoreError::Url(format!("invalid database URL: {e}")))?
            .disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Sqlite => 4,
                Dialect::Postgres => 8,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA foreign_keys = ON",
                            "PRAGMA busy_timeout = 30000",
                            // 64 MiB of page cache (default 2 MiB): imports touch index
                            // pages all over the random-keyed blind index.
                            "PRAGMA cache_size = -65536",
                            // Statement journals of multi-row inserts stay in memory
                            // instead of a temporary file written and read back per statement.
                            "PRAGMA temp_store = MEMORY",
                            // Checkpoints are run off the writer's path, by the store's
                            // checkpointer after each commit (see `Checkpointer`); a commit
                            // checkpoints itself only if that falls 64 MiB behind.
                            "PRAGMA wal_autocheckpoint = 16384",
                        ] {
                            conn.execute(pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Url(format!("cannot open database {}: {e}", redact_url(&url)))
            })?;
        let store = Store {
            checkpoints: (dialect == Dialect::Sqlite).then(|| Checkpointer::start(pool.clone())),
            pool,
            dialect,
            sqlite_writer: (dialect == Dialect::Sqlite)
                .then(|| std::sync::Arc::new(tokio::sync::Mutex::new(()))),
        };
        migrate::run(&store, version).await?;
        Ok(store)
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Has PostgreSQL sample the feed tables afresh after a large feed: without statistics
    /// on millions of new rows it may plan the next look-ups as whole-table scans (SQLite
    /// plans by its indexes and needs nothing).
    pub async fn refresh_feed_statistics(&self) -> Result<()> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("ANALYZE feed_records, life_signs, life_pending")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub(crate) fn sql(&self, sql: &str) -> String {
        self.dialect.sql(sql)
    }

    /// Starts a transaction that changes state. It locks the audit chain's head first, so
    /// writers queue up here (and SQLite takes its write lock at once instead of failing
    /// to upgrade a read lock later); every entry added with [`WriteTx::audit`] is written
    /// in the same transaction as the change it records.
    pub async fn begin_write(&self) -> Result<WriteTx> {
        let turn = match &self.sqlite_writer {
            Some(queue) => Some(queue.clone().lock_owned().await),
            None => None,
        };
        let mut tx = self.pool.begin().await?;
        let head = audit::lock_head(&mut tx).await?;
        Ok(WriteTx {
            tx,
            checkpoints: self.checkpoints.clone(),
            dialect: self.dialect,
            began_after: head.seq(),
            head,
            pending: Vec::new(),
            audited: Vec::new(),
            _turn: turn,
        })
    }

    /// Readiness: the database answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the connections. On SQLite, first copies the write-ahead log into the
    /// database file and empties it, waiting at most a second for other processes'
    /// readers and writers: a command then leaves the database in one file, and a busy
    /// server elsewhere only means the log is left for the next checkpoint.
    pub async fn close(self) {
        if let Some(checkpoints) = &self.checkpoints {
            let _no_more = checkpoints.running.lock().await;
            if let Ok(mut conn) = self.pool.acquire().await {
                let _ = conn.execute("PRAGMA busy_timeout = 1000").await;
                let _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
                conn.detach();
            }
        }
        self.pool.close().await;
    }
}

/// Hides the password in a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

pub struct WriteTx {
    tx: Transaction<'static, sqlx::Any>,
    checkpoints: Option<Checkpointer>,
    dialect: Dialect,
    head: audit::Head,
    pending: Vec<AuditRecord>,
    /// The last audit entry before this transaction's own.
    began_after: i64,
    /// `(seq, pensioner)` of this transaction's own entries that name one.
    audited: Vec<(i64, i64)>,
    /// Held until the transaction ends (SQLite's in-process writer queue).
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub(crate) fn sql(&self, sql: &str) -> String {
        self.dialect.sql(sql)
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }

    /// Adds an entry to the audit chain; it is written when the transaction commits.
    pub fn audit(&mut self, entry: AuditEntry) {
        let record = self.head.append(entry);
        if let Some(recipient_id) = record.entry.recipient_id {
            self.audited.push((record.seq, recipient_id));
        }
        self.pending.push(record);
    }

    /// Writes the audit entries added so far, and the chain head, in this transaction
    /// (they count only once it commits). A long transaction does this as it goes, so
    /// that the writing overlaps its other work instead of waiting for the commit.
    pub async fn write_audit(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        audit::write(&mut self.tx, self.dialect, &pending, &self.head).await
    }

    /// The number of the latest audit entry, this transaction's own included.
    pub fn audit_seq(&self) -> i64 {
        self.head.seq()
    }

    /// The pensioners named by the audit entries numbered after `since`, this
    /// transaction's own (written yet or not) included; unordered, possibly repeated. Every
    /// change to a pensioner is audited, naming them, in the transaction that makes it, so
    /// this is what may have changed since `since`.
    pub async fn recipients_audited_after(&mut self, since: i64) -> Result<Vec<i64>> {
        // Other writers' entries can only come before this transaction's (writers take
        // turns at the chain's head): the database is asked only about those.
        let mut ids: Vec<i64> = if since < self.began_after {
            let sql = self.sql(
                "SELECT recipient_id FROM audit_log WHERE seq > ? AND seq <= ? AND recipient_id IS NOT NULL",
            );
            sqlx::query_scalar(&sql)
                .bind(since)
                .bind(self.began_after)
                .fetch_all(self.conn())
                .await?
        } else {
            Vec::new()
        };
        ids.extend(
            self.audited
                .iter()
                .filter(|&&(seq, _)| seq > since)
                .map(|&(_, id)| id),
        );
        Ok(ids)
    }

    /// Writes the pending audit entries and the new chain head, then commits.
    pub async fn commit(mut self) -> Result<()> {
        self.write_audit().await?;
        self.tx.commit().await?;
        if let Some(checkpoints) = &self.checkpoints {
            checkpoints.request();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_urls() {
        assert_eq!(
            Dialect::Postgres.sql("a = ? AND b = ?"),
            "a = $1 AND b = $2"
        );
        assert_eq!(Dialect::Sqlite.sql("a = ?"), "a = ?");
        assert_eq!(
            redact_url("postgres://me:secret@localhost/db"),
            "postgres://me:***@localhost/db"
        );
        assert_eq!(
            sqlite_path("sqlite://lifecert-data/lifecert.db?mode=rwc").unwrap(),
            std::path::PathBuf::from("lifecert-data/lifecert.db")
        );
    }

    /// A commit's pages reach the database file without waiting for SQLite's automatic
    /// checkpoint (64 MiB away here), and closing leaves no write-ahead log behind.
    #[tokio::test]
    async fn commits_are_checkpointed_by_the_store_and_close_empties_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lifecert.db");
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let before = size(&path);
        let mut tx = store.begin_write().await.unwrap();
        for i in 0..200 {
            tx.audit(AuditEntry {
                occurred_at: "2026-11-30T00:00:00Z".into(),
                actor: "test".into(),
                action: "test".into(),
                recipient_id: Some(i),
                details: format!("{{\"pad\":\"{}\"}}", "x".repeat(500)),
            });
        }
        tx.commit().await.unwrap();
        for _ in 0..100 {
            if size(&path) > before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            size(&path) > before,
            "the committed pages stayed in the log ({before} bytes in the database file)"
        );
        store.close().await;
        assert_eq!(size(&dir.path().join("lifecert.db-wal")), 0);
    }
}
