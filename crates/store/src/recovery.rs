//! Storage for recovery cases (追回) and the money received on them.

use crate::{Dialect, Result, Store, WriteTx};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A recovery case as stored, with its pensioner's home region for scoping.
#[derive(Debug, Clone)]
pub struct RecoveryRow {
    pub id: i64,
    pub recipient_id: i64,
    pub recipient_region: String,
    /// Comma-separated `YYYY-MM`: the months paid after the month of death.
    pub months: String,
    pub amount_fen: i64,
    pub status: String,
    pub opened_at: String,
    /// The payment run whose `recover` line asked the bank; `None` for a request by hand.
    pub instructed_month: Option<String>,
    pub requested_on: Option<String>,
    pub requested_by: Option<String>,
    pub request_reference: Option<String>,
    pub recovered_fen: i64,
    pub last_payment_on: Option<String>,
    pub last_payment_by: Option<String>,
    pub written_off_fen: i64,
    pub write_off_reason: Option<String>,
    pub written_off_by: Option<String>,
    pub closed_on: Option<String>,
    pub updated_at: Option<String>,
}

const RECOVERY_COLUMNS: &str = "c.id, c.recipient_id, r.region_code, c.months, c.amount_fen, c.status, c.opened_at, c.instructed_month, c.requested_on, c.requested_by, c.request_reference, c.recovered_fen, c.last_payment_on, c.last_payment_by, c.written_off_fen, c.write_off_reason, c.written_off_by, c.closed_on, c.updated_at";

fn recovery_from_row(r: &AnyRow) -> Result<RecoveryRow> {
    Ok(RecoveryRow {
        id: r.try_get(0)?,
        recipient_id: r.try_get(1)?,
        recipient_region: r.try_get(2)?,
        months: r.try_get(3)?,
        amount_fen: r.try_get(4)?,
        status: r.try_get(5)?,
        opened_at: r.try_get(6)?,
        instructed_month: r.try_get(7)?,
        requested_on: r.try_get(8)?,
        requested_by: r.try_get(9)?,
        request_reference: r.try_get(10)?,
        recovered_fen: r.try_get(11)?,
        last_payment_on: r.try_get(12)?,
        last_payment_by: r.try_get(13)?,
        written_off_fen: r.try_get(14)?,
        write_off_reason: r.try_get(15)?,
        written_off_by: r.try_get(16)?,
        closed_on: r.try_get(17)?,
        updated_at: r.try_get(18)?,
    })
}

/// One amount received on a recovery case.
#[derive(Debug, Clone)]
pub struct RecoveryPaymentRow {
    pub id: i64,
    pub recovery_case_id: i64,
    pub amount_fen: i64,
    pub received_on: String,
    pub reference: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// Filters for listing recovery cases; combined with AND.
#[derive(Debug, Clone, Default)]
pub struct RecoveryFilter {
    pub region_prefix: String,
    pub status: Option<String>,
    pub recipient_id: Option<i64>,
    pub after_id: i64,
    pub limit: i64,
}

/// A case a closed payment run sent out as a `recover` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedRecovery {
    pub id: i64,
    pub recipient_id: i64,
    pub amount_fen: i64,
}

/// The state a transition leaves a case in.
#[derive(Debug, Clone)]
pub struct RecoveryUpdate<'a> {
    pub id: i64,
    pub status: &'a str,
    pub recovered_fen: i64,
    pub written_off_fen: i64,
    pub closed_on: Option<&'a str>,
    pub updated_at: &'a str,
}

async fn fetch_recovery<'c, E>(e: E, dialect: Dialect, id: i64) -> Result<Option<RecoveryRow>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = dialect.sql(&format!(
        "SELECT {RECOVERY_COLUMNS} FROM recovery_cases c JOIN recipients r ON r.id = c.recipient_id WHERE c.id = ?"
    ));
    let row = sqlx::query(&sql).bind(id).fetch_optional(e).await?;
    row.as_ref().map(recovery_from_row).transpose()
}

async fn fetch_payments<'c, E>(
    e: E,
    dialect: Dialect,
    case_id: i64,
) -> Result<Vec<RecoveryPaymentRow>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = dialect.sql(
        "SELECT id, recovery_case_id, amount_fen, received_on, reference, recorded_by, recorded_at FROM recovery_payments WHERE recovery_case_id = ? ORDER BY received_on, id",
    );
    let rows = sqlx::query(&sql).bind(case_id).fetch_all(e).await?;
    rows.iter()
        .map(|r| {
            Ok(RecoveryPaymentRow {
                id: r.try_get(0)?,
                recovery_case_id: r.try_get(1)?,
                amount_fen: r.try_get(2)?,
                received_on: r.try_get(3)?,
                reference: r.try_get(4)?,
                recorded_by: r.try_get(5)?,
                recorded_at: r.try_get(6)?,
            })
        })
        .collect()
}

impl Store {
    pub async fn recovery(&self, id: i64) -> Result<Option<RecoveryRow>> {
        fetch_recovery(&self.pool, self.dialect, id).await
    }

    pub async fn recovery_payments(&self, case_id: i64) -> Result<Vec<RecoveryPaymentRow>> {
        fetch_payments(&self.pool, self.dialect, case_id).await
    }

    /// Cases whose pensioner lives in the region, by id.
    pub async fn list_recoveries(&self, f: &RecoveryFilter) -> Result<Vec<RecoveryRow>> {
        let mut sql = format!(
            "SELECT {RECOVERY_COLUMNS} FROM recovery_cases c JOIN recipients r ON r.id = c.recipient_id WHERE r.region_code LIKE ? AND c.id > ?"
        );
        if f.status.is_some() {
            sql.push_str(" AND c.status = ?");
        }
        if f.recipient_id.is_some() {
            sql.push_str(" AND c.recipient_id = ?");
        }
        sql.push_str(" ORDER BY c.id LIMIT ?");
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql)
            .bind(format!("{}%", f.region_prefix))
            .bind(f.after_id);
        if let Some(s) = &f.status {
            q = q.bind(s);
        }
        if let Some(r) = f.recipient_id {
            q = q.bind(r);
        }
        let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter().map(recovery_from_row).collect()
    }
}

impl WriteTx {
    pub async fn recovery(&mut self, id: i64) -> Result<Option<RecoveryRow>> {
        let dialect = self.dialect;
        fetch_recovery(self.conn(), dialect, id).await
    }

    pub async fn recovery_payments(&mut self, case_id: i64) -> Result<Vec<RecoveryPaymentRow>> {
        let dialect = self.dialect;
        fetch_payments(self.conn(), dialect, case_id).await
    }

    /// Staff recorded the request to the bank by hand.
    pub async fn mark_recovery_requested(
        &mut self,
        id: i64,
        requested_on: &str,
        requested_by: &str,
        reference: Option<&str>,
        now: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE recovery_cases SET status = 'requested', requested_on = ?, requested_by = ?, request_reference = ?, updated_at = ? WHERE id = ? AND status = 'open'",
        );
        sqlx::query(&sql)
            .bind(requested_on)
            .bind(requested_by)
            .bind(reference)
            .bind(now)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records money received and the case's new totals and status.
    pub async fn insert_recovery_payment(
        &mut self,
        p: &RecoveryPaymentRow,
        update: &RecoveryUpdate<'_>,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO recovery_payments (recovery_case_id, amount_fen, received_on, reference, recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(p.recovery_case_id)
            .bind(p.amount_fen)
            .bind(&p.received_on)
            .bind(&p.reference)
            .bind(&p.recorded_by)
            .bind(&p.recorded_at)
            .fetch_one(self.conn())
            .await
            .map_err(|e| {
                crate::staff::on_unique(
                    e,
                    format!(
                        "a payment with reference {:?} is already recorded on this case",
                        p.reference
                    ),
                )
            })?;
        let sql = self.sql(
            "UPDATE recovery_cases SET status = ?, recovered_fen = ?, last_payment_on = ?, last_payment_by = ?, closed_on = ?, updated_at = ? WHERE id = ?",
        );
        sqlx::query(&sql)
            .bind(update.status)
            .bind(update.recovered_fen)
            .bind(&p.received_on)
            .bind(&p.recorded_by)
            .bind(update.closed_on)
            .bind(update.updated_at)
            .bind(update.id)
            .execute(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    /// A payment of a case by its reference, so one bank transfer is never recorded twice.
    pub async fn recovery_payment_by_reference(
        &mut self,
        case_id: i64,
        reference: &str,
    ) -> Result<Option<i64>> {
        let sql = self
            .sql("SELECT id FROM recovery_payments WHERE recovery_case_id = ? AND reference = ?");
        let row = sqlx::query(&sql)
            .bind(case_id)
            .bind(reference)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn write_off_recovery(
        &mut self,
        update: &RecoveryUpdate<'_>,
        reason: &str,
        by: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE recovery_cases SET status = ?, written_off_fen = ?, write_off_reason = ?, written_off_by = ?, closed_on = ?, updated_at = ? WHERE id = ?",
        );
        sqlx::query(&sql)
            .bind(update.status)
            .bind(update.written_off_fen)
            .bind(reason)
            .bind(by)
            .bind(update.closed_on)
            .bind(update.updated_at)
            .bind(update.id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
