//! Notification storage: notices in the outbox, their deliveries (one per addressee) as
//! rows that any node may claim with a lease, and one row per delivery attempt.
//!
//! A claim is one atomic statement (PostgreSQL skips rows another node has locked;
//! SQLite's writers queue in-process). Every change after the claim names the worker, so
//! a node that lost its lease cannot overwrite the outcome recorded by the node that took
//! the delivery over. Delivery bookkeeping is not in the audit chain: it would queue every
//! attempt behind the chain's head; the attempts table is the record instead.

use crate::records::in_list;
use crate::{Dialect, Result, Store, StoreError, WriteTx};
use sqlx::any::AnyRow;
use sqlx::Row;

/// At most this many rows per multi-row statement.
const CHUNK: usize = 500;

/// A notice to record: `(recipient, kind, date, stage)` is its unique key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    pub recipient_id: i64,
    /// reminder, overdue, suspended or resumed
    pub kind: &'static str,
    /// The due date (reminder, overdue) or the date of the status change.
    pub due_on: String,
    /// Days before the due date for a reminder; 0 for the others.
    pub stage: i64,
}

/// A pensioner's contact details for notifications, as stored (personal ones encrypted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationContact {
    pub email_enc: Option<Vec<u8>>,
    pub app_ref_enc: Option<Vec<u8>>,
    pub agent_name_enc: Option<Vec<u8>>,
    pub agent_phone_enc: Option<Vec<u8>>,
    pub preferred_channel: Option<String>,
    pub language: Option<String>,
}

/// A delivery as listed for staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub outbox_id: i64,
    pub recipient_id: i64,
    pub region_code: String,
    pub kind: String,
    pub due_on: String,
    pub stage: i64,
    /// pensioner or agent
    pub addressee: String,
    pub channel: String,
    pub language: String,
    /// pending, sending, retrying, delivered, failed or cancelled
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: String,
    pub lease_until: Option<String>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub provider_id: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What to list: by id, after `after_id`.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter<'a> {
    /// Region prefix (the user's scope or narrower); empty: everywhere.
    pub region_prefix: &'a str,
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub channel: Option<&'a str>,
    pub recipient_id: Option<i64>,
    pub after_id: i64,
    pub limit: i64,
}

/// A claimed delivery with what sending it needs: the notice, the addressee's contact
/// details (encrypted) and the pensioner's current state, to check that the notice is
/// still true.
#[derive(Debug, Clone)]
pub struct DeliveryContext {
    pub id: i64,
    pub recipient_id: i64,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
    pub lease_until: String,
    pub addressee: String,
    pub channel: String,
    pub language: String,
    pub kind: String,
    pub due_on: String,
    pub recipient_status: String,
    pub suspension_reason: Option<String>,
    pub next_due_on: String,
    pub name_enc: Vec<u8>,
    pub phone_enc: Option<Vec<u8>>,
    pub contact: NotificationContact,
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone)]
pub struct AttemptRecord<'a> {
    pub delivery_id: i64,
    pub recipient_id: i64,
    pub attempt: i64,
    pub worker: &'a str,
    pub at: &'a str,
    pub channel: &'a str,
    /// delivered, transient or permanent
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub provider_id: Option<&'a str>,
    /// The delivery's new status: delivered, retrying or failed.
    pub status: &'a str,
    /// When `retrying`: the next attempt.
    pub next_attempt_at: Option<&'a str>,
}

/// One attempt as the timeline shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub delivery_id: i64,
    pub kind: String,
    pub addressee: String,
    pub attempt: i64,
    pub at: String,
    pub channel: String,
    /// delivered, transient, permanent, or unknown (the node sending it stopped)
    pub outcome: String,
    pub reason: Option<String>,
    pub provider_id: Option<String>,
}

/// Deliveries waiting (pending or retrying) on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingCount {
    pub channel: String,
    pub count: i64,
    pub earliest: Option<String>,
}

const DELIVERY_COLUMNS: &str = "d.id, d.outbox_id, d.recipient_id, r.region_code, o.kind, o.due_on, o.stage, d.addressee, d.channel, d.language, d.status, d.attempts, d.next_attempt_at, d.lease_until, d.locked_by, d.last_error, d.provider_id, d.delivered_at, d.created_at, d.updated_at";

const DELIVERY_FROM: &str = "notification_deliveries d JOIN notification_outbox o ON o.id = d.outbox_id JOIN recipients r ON r.id = d.recipient_id";

fn delivery_from_row(r: &AnyRow) -> Result<DeliveryRow> {
    Ok(DeliveryRow {
        id: r.try_get(0)?,
        outbox_id: r.try_get(1)?,
        recipient_id: r.try_get(2)?,
        region_code: r.try_get(3)?,
        kind: r.try_get(4)?,
        due_on: r.try_get(5)?,
        stage: r.try_get(6)?,
        addressee: r.try_get(7)?,
        channel: r.try_get(8)?,
        language: r.try_get(9)?,
        status: r.try_get(10)?,
        attempts: r.try_get(11)?,
        next_attempt_at: r.try_get(12)?,
        lease_until: r.try_get(13)?,
        locked_by: r.try_get(14)?,
        last_error: r.try_get(15)?,
        provider_id: r.try_get(16)?,
        delivered_at: r.try_get(17)?,
        created_at: r.try_get(18)?,
        updated_at: r.try_get(19)?,
    })
}

/// Waiting to be sent: new, or back-off after a failed attempt.
const WAITING: &str = "status IN ('pending', 'retrying')";

/// One delivery per addressee: the pensioner on the channel they prefer when they have
/// its contact detail (SMS otherwise), and an agent or family member by SMS when one
/// is recorded.
async fn queue_deliveries(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    notices: &[i64],
    now: &str,
) -> Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    let ids = in_list(notices.len());
    let pensioner = dialect.sql(&format!(
        "INSERT INTO notification_deliveries (outbox_id, recipient_id, addressee, channel, language, status, attempts, next_attempt_at, created_at, updated_at) \
         SELECT o.id, o.recipient_id, 'pensioner', \
         CASE WHEN r.preferred_channel = 'email' AND r.email_enc IS NOT NULL THEN 'email' \
              WHEN r.preferred_channel = 'webhook' AND r.app_ref_enc IS NOT NULL THEN 'webhook' ELSE 'sms' END, \
         COALESCE(r.language, 'zh'), 'pending', 0, ?, ?, ? \
         FROM notification_outbox o JOIN recipients r ON r.id = o.recipient_id WHERE o.id IN ({ids}) \
         ON CONFLICT (outbox_id, addressee) DO NOTHING"
    ));
    let agent = dialect.sql(&format!(
        "INSERT INTO notification_deliveries (outbox_id, recipient_id, addressee, channel, language, status, attempts, next_attempt_at, created_at, updated_at) \
         SELECT o.id, o.recipient_id, 'agent', 'sms', COALESCE(r.language, 'zh'), 'pending', 0, ?, ?, ? \
         FROM notification_outbox o JOIN recipients r ON r.id = o.recipient_id WHERE o.id IN ({ids}) AND r.agent_phone_enc IS NOT NULL \
         ON CONFLICT (outbox_id, addressee) DO NOTHING"
    ));
    for sql in [pensioner, agent] {
        let mut q = sqlx::query(&sql).bind(now).bind(now).bind(now);
        for outbox_id in notices {
            q = q.bind(*outbox_id);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// Delivery bookkeeping does not queue behind the audit head's lock (a long cycle
    /// holds it); SQLite's writers of this process still take their turn in the FIFO.
    async fn delivery_write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.sqlite_writer {
            Some(queue) => Some(queue.clone().lock_owned().await),
            None => None,
        }
    }

    /// The database's message id prefix (hex), set once by the migration.
    pub async fn message_id_prefix(&self) -> Result<String> {
        let bytes = self.meta_get("message_id_prefix").await?.ok_or_else(|| {
            StoreError::Corrupt("the message id prefix is missing from meta".into())
        })?;
        Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Makes the deliveries of up to `limit` pending notices (oldest first) and marks the
    /// notices `queued`, in one transaction; several nodes may do it at once (PostgreSQL
    /// skips notices another node is queuing). Returns how many notices.
    pub async fn queue_pending_notices(&self, now: &str, limit: i64) -> Result<u64> {
        let _turn = self.delivery_write_turn().await;
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE notification_outbox SET status = 'queued' WHERE id IN \
             (SELECT id FROM notification_outbox WHERE status = 'pending' ORDER BY id LIMIT ?{lock}) \
             AND status = 'pending' RETURNING id"
        );
        let ids: Vec<i64> = sqlx::query(&self.sql(&sql))
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        for chunk in ids.chunks(CHUNK) {
            queue_deliveries(&mut tx, self.dialect, chunk, now).await?;
        }
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Deliveries left `sending` by a worker whose lease ran out (its node stopped or
    /// hung): each is waiting again at once (or failed, with every attempt spent), and its
    /// lost attempt is recorded with the outcome `unknown`. Returns how many.
    pub async fn expire_lost_deliveries(
        &self,
        now: &str,
        max_attempts: i64,
        worker: &str,
    ) -> Result<u64> {
        let _turn = self.delivery_write_turn().await;
        let mut tx = self.pool.begin().await?;
        let reason = "the node sending it stopped before recording the outcome (its lease ran out); it is sent again with the same message id";
        let sql = self.sql(
            "UPDATE notification_deliveries SET \
             status = CASE WHEN attempts >= ? THEN 'failed' ELSE 'retrying' END, \
             last_error = CASE WHEN attempts >= ? THEN 'gave up: the last attempt was lost with its node' ELSE ? END, \
             next_attempt_at = ?, lease_until = NULL, locked_by = NULL, updated_at = ? \
             WHERE status = 'sending' AND lease_until < ? \
             RETURNING id, recipient_id, attempts, channel, locked_by",
        );
        let rows = sqlx::query(&sql)
            .bind(max_attempts)
            .bind(max_attempts)
            .bind(reason)
            .bind(now)
            .bind(now)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        let insert = self.sql(
            "INSERT INTO notification_attempts (delivery_id, recipient_id, attempt, at, channel, outcome, reason, worker) \
             VALUES (?, ?, ?, ?, ?, 'unknown', ?, ?)",
        );
        for r in &rows {
            let id: i64 = r.try_get(0)?;
            let recipient: i64 = r.try_get(1)?;
            let attempt: i64 = r.try_get(2)?;
            let channel: String = r.try_get(3)?;
            sqlx::query(&insert)
                .bind(id)
                .bind(recipient)
                .bind(attempt)
                .bind(now)
                .bind(channel)
                .bind(reason)
                .bind(worker)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Moves every waiting delivery on `channel` due before `until` to `until` (SMS in
    /// quiet hours). Returns how many.
    pub async fn defer_deliveries(&self, channel: &str, until: &str, now: &str) -> Result<u64> {
        let _turn = self.delivery_write_turn().await;
        let sql = self.sql(&format!(
            "UPDATE notification_deliveries SET next_attempt_at = ?, updated_at = ? \
             WHERE {WAITING} AND channel = ? AND next_attempt_at < ?"
        ));
        Ok(sqlx::query(&sql)
            .bind(until)
            .bind(now)
            .bind(channel)
            .bind(until)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Claims up to `limit` due deliveries on `channels` for `worker` until
    /// `lease_until`, counting an attempt each, and returns them with what sending needs.
    pub async fn claim_deliveries(
        &self,
        worker: &str,
        channels: &[&str],
        now: &str,
        lease_until: &str,
        limit: i64,
    ) -> Result<Vec<DeliveryContext>> {
        if channels.is_empty() || limit <= 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = {
            let _turn = self.delivery_write_turn().await;
            let lock = match self.dialect {
                Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
                Dialect::Sqlite => "",
            };
            let channel_list = in_list(channels.len());
            let sql = self.sql(&format!(
                "UPDATE notification_deliveries SET status = 'sending', attempts = attempts + 1, locked_by = ?, lease_until = ?, updated_at = ? \
                 WHERE id IN (SELECT id FROM notification_deliveries WHERE {WAITING} AND next_attempt_at <= ? AND channel IN ({channel_list}) \
                 ORDER BY next_attempt_at, id LIMIT ?{lock}) AND {WAITING} RETURNING id"
            ));
            let mut q = sqlx::query(&sql)
                .bind(worker)
                .bind(lease_until)
                .bind(now)
                .bind(now);
            for c in channels {
                q = q.bind(*c);
            }
            q.bind(limit)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?
        };
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.sql(&format!(
            "SELECT d.id, d.recipient_id, d.attempts, d.lease_until, d.addressee, d.channel, d.language, o.kind, o.due_on, \
             r.status, r.suspension_reason, r.next_due_on, r.name_enc, r.phone_enc, r.email_enc, r.app_ref_enc, \
             r.agent_name_enc, r.agent_phone_enc, r.preferred_channel, r.language \
             FROM {DELIVERY_FROM} WHERE d.id IN ({}) AND d.locked_by = ? ORDER BY d.id",
            in_list(ids.len())
        ));
        let mut q = sqlx::query(&sql);
        for id in &ids {
            q = q.bind(*id);
        }
        let rows = q.bind(worker).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryContext {
                    id: r.try_get(0)?,
                    recipient_id: r.try_get(1)?,
                    attempt: r.try_get(2)?,
                    lease_until: r.try_get::<Option<String>, _>(3)?.unwrap_or_default(),
                    addressee: r.try_get(4)?,
                    channel: r.try_get(5)?,
                    language: r.try_get(6)?,
                    kind: r.try_get(7)?,
                    due_on: r.try_get(8)?,
                    recipient_status: r.try_get(9)?,
                    suspension_reason: r.try_get(10)?,
                    next_due_on: r.try_get(11)?,
                    name_enc: r.try_get(12)?,
                    phone_enc: r.try_get(13)?,
                    contact: NotificationContact {
                        email_enc: r.try_get(14)?,
                        app_ref_enc: r.try_get(15)?,
                        agent_name_enc: r.try_get(16)?,
                        agent_phone_enc: r.try_get(17)?,
                        preferred_channel: r.try_get(18)?,
                        language: r.try_get(19)?,
                    },
                })
            })
            .collect()
    }

    /// Records an attempt and the delivery's new state. The attempt is recorded even when
    /// `worker` no longer holds the delivery (it happened); the state only when it does.
    /// Returns whether the state was recorded.
    pub async fn record_attempt(&self, a: &AttemptRecord<'_>) -> Result<bool> {
        let _turn = self.delivery_write_turn().await;
        let mut tx = self.pool.begin().await?;
        let sql = self.sql(
            "UPDATE notification_deliveries SET status = ?, next_attempt_at = COALESCE(?, next_attempt_at), \
             last_error = ?, provider_id = COALESCE(?, provider_id), delivered_at = ?, lease_until = NULL, locked_by = NULL, updated_at = ? \
             WHERE id = ? AND locked_by = ? AND status = 'sending'",
        );
        let updated = sqlx::query(&sql)
            .bind(a.status)
            .bind(a.next_attempt_at)
            .bind(a.reason)
            .bind(a.provider_id)
            .bind((a.status == "delivered").then_some(a.at))
            .bind(a.at)
            .bind(a.delivery_id)
            .bind(a.worker)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        let sql = self.sql(
            "INSERT INTO notification_attempts (delivery_id, recipient_id, attempt, at, channel, outcome, reason, provider_id, worker) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        sqlx::query(&sql)
            .bind(a.delivery_id)
            .bind(a.recipient_id)
            .bind(a.attempt)
            .bind(a.at)
            .bind(a.channel)
            .bind(a.outcome)
            .bind(a.reason)
            .bind(a.provider_id)
            .bind(a.worker)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// The notice is no longer true (the pensioner certified, payment stopped, ...):
    /// the delivery is cancelled without an attempt. `false` when `worker` no longer holds it.
    pub async fn cancel_delivery(
        &self,
        id: i64,
        worker: &str,
        reason: &str,
        now: &str,
    ) -> Result<bool> {
        let _turn = self.delivery_write_turn().await;
        let sql = self.sql(
            "UPDATE notification_deliveries SET status = 'cancelled', attempts = attempts - 1, last_error = ?, \
             lease_until = NULL, locked_by = NULL, updated_at = ? WHERE id = ? AND locked_by = ? AND status = 'sending'",
        );
        Ok(sqlx::query(&sql)
            .bind(reason)
            .bind(now)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    /// Gives a claimed delivery back unsent (the node is stopping, or too little of the
    /// lease is left): waiting again at once, the attempt not counted.
    pub async fn release_delivery(&self, id: i64, worker: &str, now: &str) -> Result<bool> {
        let _turn = self.delivery_write_turn().await;
        let sql = self.sql(
            "UPDATE notification_deliveries SET status = CASE WHEN attempts > 1 THEN 'retrying' ELSE 'pending' END, \
             attempts = attempts - 1, next_attempt_at = ?, lease_until = NULL, locked_by = NULL, updated_at = ? \
             WHERE id = ? AND locked_by = ? AND status = 'sending'",
        );
        Ok(sqlx::query(&sql)
            .bind(now)
            .bind(now)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1)
    }

    /// Waiting deliveries per channel, with the earliest due time.
    pub async fn waiting_deliveries(&self) -> Result<Vec<WaitingCount>> {
        let rows = sqlx::query(&format!(
            "SELECT channel, COUNT(*), MIN(next_attempt_at) FROM notification_deliveries WHERE {WAITING} GROUP BY channel ORDER BY channel"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WaitingCount {
                    channel: r.try_get(0)?,
                    count: r.try_get(1)?,
                    earliest: r.try_get(2)?,
                })
            })
            .collect()
    }

    pub async fn delivery(&self, id: i64) -> Result<Option<DeliveryRow>> {
        let sql = self.sql(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.id = ?"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    pub async fn list_deliveries(&self, f: &DeliveryFilter<'_>) -> Result<Vec<DeliveryRow>> {
        let mut sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.id > ? AND r.region_code LIKE ?"
        );
        for (column, present) in [
            ("d.status", f.status.is_some()),
            ("o.kind", f.kind.is_some()),
            ("d.channel", f.channel.is_some()),
            ("d.recipient_id", f.recipient_id.is_some()),
        ] {
            if present {
                sql.push_str(&format!(" AND {column} = ?"));
            }
        }
        sql.push_str(" ORDER BY d.id LIMIT ?");
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql)
            .bind(f.after_id)
            .bind(format!("{}%", f.region_prefix));
        for value in [f.status, f.kind, f.channel].into_iter().flatten() {
            q = q.bind(value);
        }
        if let Some(id) = f.recipient_id {
            q = q.bind(id);
        }
        let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// A pensioner's deliveries, oldest first (for the timeline).
    pub async fn deliveries_of(&self, recipient_id: i64) -> Result<Vec<DeliveryRow>> {
        let sql = self.sql(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM {DELIVERY_FROM} WHERE d.recipient_id = ? ORDER BY d.id"
        ));
        let rows = sqlx::query(&sql)
            .bind(recipient_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// A pensioner's delivery attempts, oldest first (for the timeline).
    pub async fn attempts_of(&self, recipient_id: i64) -> Result<Vec<AttemptRow>> {
        let sql = self.sql(
            "SELECT a.delivery_id, o.kind, d.addressee, a.attempt, a.at, a.channel, a.outcome, a.reason, a.provider_id \
             FROM notification_attempts a JOIN notification_deliveries d ON d.id = a.delivery_id \
             JOIN notification_outbox o ON o.id = d.outbox_id WHERE a.recipient_id = ? ORDER BY a.id",
        );
        let rows = sqlx::query(&sql)
            .bind(recipient_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRow {
                    delivery_id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    addressee: r.try_get(2)?,
                    attempt: r.try_get(3)?,
                    at: r.try_get(4)?,
                    channel: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                    reason: r.try_get(7)?,
                    provider_id: r.try_get(8)?,
                })
            })
            .collect()
    }
}

impl WriteTx {
    /// Records notices that are not recorded yet (by their unique key), `pending` until a
    /// delivery worker makes their deliveries ([`Store::queue_pending_notices`]). Returns
    /// `(outbox id, recipient id)` of the new ones.
    pub async fn insert_notices(
        &mut self,
        notices: &[NewNotice],
        created_at: &str,
    ) -> Result<Vec<(i64, i64)>> {
        let mut out = Vec::new();
        for chunk in notices.chunks(CHUNK) {
            let groups = vec!["(?, ?, ?, ?, 'pending', ?)"; chunk.len()].join(", ");
            let sql = self.sql(&format!(
                "INSERT INTO notification_outbox (recipient_id, kind, due_on, stage, status, created_at) VALUES {groups} \
                 ON CONFLICT (recipient_id, kind, due_on, stage) DO NOTHING RETURNING id, recipient_id"
            ));
            let mut q = sqlx::query(&sql);
            for n in chunk {
                q = q
                    .bind(n.recipient_id)
                    .bind(n.kind)
                    .bind(n.due_on.as_str())
                    .bind(n.stage)
                    .bind(created_at);
            }
            for row in q.fetch_all(self.conn()).await? {
                out.push((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?));
            }
        }
        Ok(out)
    }

    pub async fn notification_contact(&mut self, recipient_id: i64) -> Result<NotificationContact> {
        let sql = self.sql(
            "SELECT email_enc, app_ref_enc, agent_name_enc, agent_phone_enc, preferred_channel, language FROM recipients WHERE id = ?",
        );
        let r = sqlx::query(&sql)
            .bind(recipient_id)
            .fetch_one(self.conn())
            .await?;
        Ok(NotificationContact {
            email_enc: r.try_get(0)?,
            app_ref_enc: r.try_get(1)?,
            agent_name_enc: r.try_get(2)?,
            agent_phone_enc: r.try_get(3)?,
            preferred_channel: r.try_get(4)?,
            language: r.try_get(5)?,
        })
    }

    pub async fn set_notification_contact(
        &mut self,
        recipient_id: i64,
        c: &NotificationContact,
        now: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE recipients SET email_enc = ?, app_ref_enc = ?, agent_name_enc = ?, agent_phone_enc = ?, \
             preferred_channel = ?, language = ?, updated_at = ? WHERE id = ?",
        );
        sqlx::query(&sql)
            .bind(c.email_enc.as_deref())
            .bind(c.app_ref_enc.as_deref())
            .bind(c.agent_name_enc.as_deref())
            .bind(c.agent_phone_enc.as_deref())
            .bind(c.preferred_channel.as_deref())
            .bind(c.language.as_deref())
            .bind(now)
            .bind(recipient_id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
