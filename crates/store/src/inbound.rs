//! Inbound messages (DCI notify, OpenCRVS webhooks): one row per channel, sender and
//! message id, so a message delivered twice is answered twice but applied once.

use crate::{Result, WriteTx};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A message as first received, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundRow {
    pub id: i64,
    /// Keyed digest of the message's content.
    pub digest: Vec<u8>,
    /// `received` (its events not yet all through the pipeline) or `done`.
    pub status: String,
    /// The answer given once done (JSON).
    pub response: Option<String>,
}

/// What [`WriteTx::claim_inbound`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboundClaim {
    /// Never seen: a new row, `received`.
    New(i64),
    /// Received before (done, or still `received` after a stop half-way).
    Seen(InboundRow),
}

/// Which message: the channel (`dci`, `opencrvs`), the sender as it names itself and
/// its message id.
#[derive(Debug, Clone, Copy)]
pub struct InboundKey<'a> {
    pub channel: &'a str,
    pub sender: &'a str,
    pub message_id: &'a str,
}

const COLUMNS: &str = "id, digest, status, response";

fn row(r: &AnyRow) -> Result<InboundRow> {
    Ok(InboundRow {
        id: r.try_get(0)?,
        digest: r.try_get(1)?,
        status: r.try_get(2)?,
        response: r.try_get(3)?,
    })
}

impl WriteTx {
    /// Records a message as received, or returns the row of the same message received
    /// before. The unique key makes two concurrent deliveries agree on one row.
    pub async fn claim_inbound(
        &mut self,
        key: InboundKey<'_>,
        digest: &[u8],
        received_by: &str,
        now: &str,
    ) -> Result<InboundClaim> {
        let sql = self.sql(
            "INSERT INTO inbound_messages (channel, sender, message_id, digest, status, received_by, received_at) \
             VALUES (?, ?, ?, ?, 'received', ?, ?) ON CONFLICT (channel, sender, message_id) DO NOTHING RETURNING id",
        );
        let inserted = sqlx::query(&sql)
            .bind(key.channel)
            .bind(key.sender)
            .bind(key.message_id)
            .bind(digest)
            .bind(received_by)
            .bind(now)
            .fetch_optional(self.conn())
            .await?;
        if let Some(r) = inserted {
            return Ok(InboundClaim::New(r.try_get(0)?));
        }
        let sql = self.sql(&format!(
            "SELECT {COLUMNS} FROM inbound_messages WHERE channel = ? AND sender = ? AND message_id = ?"
        ));
        let found = sqlx::query(&sql)
            .bind(key.channel)
            .bind(key.sender)
            .bind(key.message_id)
            .fetch_one(self.conn())
            .await?;
        Ok(InboundClaim::Seen(row(&found)?))
    }

    /// Marks a received message done with its answer. `false` when another delivery of
    /// the same message finished first (its answer stands).
    pub async fn complete_inbound(&mut self, id: i64, response: &str, now: &str) -> Result<bool> {
        let sql = self.sql(
            "UPDATE inbound_messages SET status = 'done', response = ?, completed_at = ? WHERE id = ? AND status = 'received'",
        );
        let done = sqlx::query(&sql)
            .bind(response)
            .bind(now)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The answer stored for a message, once done.
    pub async fn inbound_response(&mut self, id: i64) -> Result<Option<String>> {
        let sql = self.sql("SELECT response FROM inbound_messages WHERE id = ?");
        let found = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        Ok(found
            .map(|r| r.try_get::<Option<String>, _>(0))
            .transpose()?
            .flatten())
    }
}
