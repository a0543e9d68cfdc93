//! The audit trail: append-only, hash-chained (each entry holds the hash of the one
//! before), written in the same transaction as the change it records.

use crate::{Dialect, Result, StoreError};
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// What happened, before it is chained.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// RFC 3339 timestamp from the application's clock.
    pub occurred_at: String,
    pub actor: String,
    pub action: String,
    pub recipient_id: Option<i64>,
    /// JSON; never personal data (the recipient is named by internal id).
    pub details: String,
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

pub(crate) struct Head {
    seq: i64,
    hash: Vec<u8>,
}

fn entry_hash(seq: i64, prev_hash: &[u8], e: &AuditEntry) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(seq.to_be_bytes());
    h.update(prev_hash);
    let recipient = e.recipient_id.map(|id| id.to_string()).unwrap_or_default();
    for part in [
        e.occurred_at.as_str(),
        e.actor.as_str(),
        e.action.as_str(),
        recipient.as_str(),
        e.details.as_str(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_vec()
}

impl Head {
    pub(crate) fn seq(&self) -> i64 {
        self.seq
    }

    pub(crate) fn append(&mut self, entry: AuditEntry) -> AuditRecord {
        let seq = self.seq + 1;
        let hash = entry_hash(seq, &self.hash, &entry);
        let record = AuditRecord {
            seq,
            entry,
            prev_hash: std::mem::replace(&mut self.hash, hash.clone()),
            hash,
        };
        self.seq = seq;
        record
    }
}

pub(crate) async fn lock_head(conn: &mut AnyConnection) -> Result<Head> {
    // A no-op write takes the lock (row lock on PostgreSQL, the write lock on SQLite)
    // and reads the head in the same round trip.
    let row = sqlx::query("UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    Ok(Head {
        seq: row.try_get(0)?,
        hash: row.try_get(1)?,
    })
}

const INSERT_CHUNK: usize = 500;

pub(crate) async fn write(
    conn: &mut AnyConnection,
    dialect: Dialect,
    records: &[AuditRecord],
    head: &Head,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    for chunk in records.chunks(INSERT_CHUNK) {
        let mut sql = String::from(
            "INSERT INTO audit_log (seq, occurred_at, actor, action, recipient_id, details, prev_hash, hash) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?)");
        }
        let sql = dialect.sql(&sql);
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(r.seq)
                .bind(&r.entry.occurred_at)
                .bind(&r.entry.actor)
                .bind(&r.entry.action)
                .bind(r.entry.recipient_id)
                .bind(&r.entry.details)
                .bind(&r.prev_hash)
                .bind(&r.hash);
        }
        q.execute(&mut *conn).await?;
    }
    sqlx::query(&dialect.sql("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1"))
        .bind(head.seq)
        .bind(&head.hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    pub entries: i64,
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

impl crate::Store {
    /// Walks the chain from the first entry and reports the first entry that was changed,
    /// deleted or moved (or a missing tail, through the stored head).
    pub async fn verify_audit(&self) -> Result<ChainCheck> {
        let mut rows = sqlx::query(
            "SELECT seq, occurred_at, actor, action, recipient_id, details, prev_hash, hash FROM audit_log ORDER BY seq",
        )
        .fetch(&self.pool);
        let mut expected_seq = 1i64;
        let mut prev = GENESIS_HASH.to_vec();
        let mut entries = 0i64;
        let mut bad: Option<(i64, String)> = None;
        while let Some(row) = rows.try_next().await? {
            entries += 1;
            if bad.is_some() {
                continue;
            }
            let seq: i64 = row.try_get(0)?;
            let entry = AuditEntry {
                occurred_at: row.try_get(1)?,
                actor: row.try_get(2)?,
                action: row.try_get(3)?,
                recipient_id: row.try_get(4)?,
                details: row.try_get(5)?,
            };
            let prev_hash: Vec<u8> = row.try_get(6)?;
            let hash: Vec<u8> = row.try_get(7)?;
            if seq != expected_seq {
                bad = Some((
                    expected_seq,
                    format!("entry {expected_seq} is missing (next entry found is {seq})"),
                ));
            } else if prev_hash != prev {
                bad = Some((
                    seq,
                    format!("entry {seq} does not follow entry {}", seq - 1),
                ));
            } else if entry_hash(seq, &prev_hash, &entry) != hash {
                bad = Some((seq, format!("entry {seq} was changed after it was written")));
            }
            prev = hash;
            expected_seq = seq + 1;
        }
        drop(rows);
        if bad.is_none() {
            let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
            let head_seq: i64 = head.try_get(0)?;
            let head_hash: Vec<u8> = head.try_get(1)?;
            if head_seq != expected_seq - 1 {
                bad = Some((
                    (expected_seq).min(head_seq),
                    format!(
                        "the chain ends at entry {} but {} entries were written",
                        expected_seq - 1,
                        head_seq
                    ),
                ));
            } else if head_hash != prev {
                bad = Some((
                    head_seq,
                    format!("entry {head_seq} was changed after it was written"),
                ));
            }
        }
        Ok(ChainCheck {
            entries,
            first_bad_seq: bad.as_ref().map(|b| b.0),
            problem: bad.map(|b| b.1),
        })
    }
}

impl From<std::convert::Infallible> for StoreError {
    fn from(e: std::convert::Infallible) -> Self {
        match e {}
    }
}
