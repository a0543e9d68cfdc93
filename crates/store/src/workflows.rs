//! Storage for staff workflows: home visits, service records, what appeals need to
//! know, contact updates, and the sources of a pensioner's timeline.

use crate::{Result, Store, WriteTx};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct HomeVisitRow {
    pub id: i64,
    pub recipient_id: i64,
    pub status: String,
    pub window_start: String,
    pub window_end: String,
    pub address_enc: Vec<u8>,
    pub reason: String,
    pub booked_by: String,
    pub booked_at: String,
    pub assigned_to: Option<String>,
    pub completed_at: Option<String>,
    pub certification_id: Option<i64>,
    pub recipient_region: String,
}

const VISIT_COLUMNS: &str = "v.id, v.recipient_id, v.status, v.window_start, v.window_end, v.address_enc, v.reason, v.booked_by, v.booked_at, v.assigned_to, v.completed_at, v.certification_id, r.region_code";

fn visit_from_row(r: &AnyRow) -> Result<HomeVisitRow> {
    Ok(HomeVisitRow {
        id: r.try_get(0)?,
        recipient_id: r.try_get(1)?,
        status: r.try_get(2)?,
        window_start: r.try_get(3)?,
        window_end: r.try_get(4)?,
        address_enc: r.try_get(5)?,
        reason: r.try_get(6)?,
        booked_by: r.try_get(7)?,
        booked_at: r.try_get(8)?,
        assigned_to: r.try_get(9)?,
        completed_at: r.try_get(10)?,
        certification_id: r.try_get(11)?,
        recipient_region: r.try_get(12)?,
    })
}

#[derive(Debug, Clone)]
pub struct ServiceRecordRow {
    pub id: i64,
    pub recipient_id: i64,
    pub certification_id: Option<i64>,
    pub kind: String,
    pub rating: Option<i64>,
    pub note_enc: Vec<u8>,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A certification with its id, for appeals and service records.
#[derive(Debug, Clone)]
pub struct CertificationFact {
    pub id: i64,
    pub recipient_id: i64,
    pub certified_on: String,
    pub actor: String,
    pub outcome: String,
}

/// One line of a pensioner's payment history.
#[derive(Debug, Clone)]
pub struct PaymentHistoryRow {
    pub month: String,
    pub kind: String,
    pub months: String,
    pub amount_fen: i64,
    pub run_status: String,
    pub exported_at: String,
}

async fn fetch_visit<'c, E>(e: E, dialect: crate::Dialect, id: i64) -> Result<Option<HomeVisitRow>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = dialect.sql(&format!(
        "SELECT {VISIT_COLUMNS} FROM home_visits v JOIN recipients r ON r.id = v.recipient_id WHERE v.id = ?"
    ));
    let row = sqlx::query(&sql).bind(id).fetch_optional(e).await?;
    row.as_ref().map(visit_from_row).transpose()
}

impl Store {
    pub async fn home_visit(&self, id: i64) -> Result<Option<HomeVisitRow>> {
        fetch_visit(&self.pool, self.dialect, id).await
    }

    pub async fn list_home_visits(
        &self,
        region_prefix: &str,
        status: Option<&str>,
        window_ended_before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<HomeVisitRow>> {
        let mut sql = format!(
            "SELECT {VISIT_COLUMNS} FROM home_visits v JOIN recipients r ON r.id = v.recipient_id WHERE r.region_code LIKE ?"
        );
        if status.is_some() {
            sql.push_str(" AND v.status = ?");
        }
        if window_ended_before.is_some() {
            sql.push_str(" AND v.status IN ('booked', 'assigned') AND v.window_end < ?");
        }
        sql.push_str(" ORDER BY v.window_end, v.id LIMIT ?");
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql).bind(format!("{region_prefix}%"));
        if let Some(s) = status {
            q = q.bind(s);
        }
        if let Some(d) = window_ended_before {
            q = q.bind(d);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(visit_from_row).collect()
    }

    pub async fn service_records_of(&self, recipient_id: i64) -> Result<Vec<ServiceRecordRow>> {
        let sql = self.sql(
            "SELECT id, recipient_id, certification_id, kind, rating, note_enc, recorded_by, recorded_at FROM service_records WHERE recipient_id = ? ORDER BY id",
        );
        let rows = sqlx::query(&sql)
            .bind(recipient_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ServiceRecordRow {
                    id: r.try_get(0)?,
                    recipient_id: r.try_get(1)?,
                    certification_id: r.try_get(2)?,
                    kind: r.try_get(3)?,
                    rating: r.try_get(4)?,
                    note_enc: r.try_get(5)?,
                    recorded_by: r.try_get(6)?,
                    recorded_at: r.try_get(7)?,
                })
            })
            .collect()
    }

    pub async fn payment_history(&self, recipient_id: i64) -> Result<Vec<PaymentHistoryRow>> {
        let sql = self.sql(
            "SELECT l.month, l.kind, l.months, l.amount_fen, p.status, p.exported_at FROM payment_lines l JOIN payment_runs p ON p.month = l.month WHERE l.recipient_id = ? ORDER BY l.month",
        );
        let rows = sqlx::query(&sql)
            .bind(recipient_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(PaymentHistoryRow {
                    month: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    months: r.try_get(2)?,
                    amount_fen: r.try_get(3)?,
                    run_status: r.try_get(4)?,
                    exported_at: r.try_get(5)?,
                })
            })
            .collect()
    }
}

impl WriteTx {
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_home_visit(
        &mut self,
        recipient_id: i64,
        window_start: &str,
        window_end: &str,
        address_enc: &[u8],
        reason: &str,
        booked_by: &str,
        now: &str,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO home_visits (recipient_id, status, window_start, window_end, address_enc, reason, booked_by, booked_at) VALUES (?, 'booked', ?, ?, ?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(recipient_id)
            .bind(window_start)
            .bind(window_end)
            .bind(address_enc)
            .bind(reason)
            .bind(booked_by)
            .bind(now)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn home_visit(&mut self, id: i64) -> Result<Option<HomeVisitRow>> {
        let dialect = self.dialect;
        fetch_visit(self.conn(), dialect, id).await
    }

    pub async fn assign_home_visit(&mut self, id: i64, to: &str, at: &str) -> Result<()> {
        let sql = self.sql("UPDATE home_visits SET status = 'assigned', assigned_to = ?, assigned_at = ? WHERE id = ?");
        sqlx::query(&sql)
            .bind(to)
            .bind(at)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn complete_home_visit(
        &mut self,
        id: i64,
        certification_id: i64,
        at: &str,
    ) -> Result<()> {
        let sql = self.sql("UPDATE home_visits SET status = 'completed', certification_id = ?, completed_at = ? WHERE id = ?");
        sqlx::query(&sql)
            .bind(certification_id)
            .bind(at)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn insert_service_record(
        &mut self,
        recipient_id: i64,
        certification_id: Option<i64>,
        kind: &str,
        rating: Option<i64>,
        note_enc: &[u8],
        recorded_by: &str,
        now: &str,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO service_records (recipient_id, certification_id, kind, rating, note_enc, recorded_by, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(recipient_id)
            .bind(certification_id)
            .bind(kind)
            .bind(rating)
            .bind(note_enc)
            .bind(recorded_by)
            .bind(now)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn certification_fact(&mut self, id: i64) -> Result<Option<CertificationFact>> {
        let sql = self.sql("SELECT id, recipient_id, certified_on, actor, outcome FROM certifications WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| {
            Ok(CertificationFact {
                id: r.try_get(0)?,
                recipient_id: r.try_get(1)?,
                certified_on: r.try_get(2)?,
                actor: r.try_get(3)?,
                outcome: r.try_get(4)?,
            })
        })
        .transpose()
    }

    /// Who took part in decisions about a pensioner since a time: the actors of the
    /// audit entries that change payment or decide cases.
    pub async fn decision_makers_since(
        &mut self,
        recipient_id: i64,
        since: &str,
    ) -> Result<Vec<String>> {
        let sql = self.sql(
            "SELECT DISTINCT actor FROM audit_log WHERE recipient_id = ? AND occurred_at >= ? AND action IN \
             ('recipient.suspended', 'death.reported', 'death.corrected', 'death.confirmed', 'review_case.decided', 'certification.recorded')",
        );
        let rows = sqlx::query(&sql)
            .bind(recipient_id)
            .bind(since)
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Recovery cases of a pensioner whose termination was overturned: those on which no
    /// money has come back yet (open, or requested from the bank).
    pub async fn cancel_open_recoveries(&mut self, recipient_id: i64) -> Result<u64> {
        let sql = self.sql("UPDATE recovery_cases SET status = 'cancelled' WHERE recipient_id = ? AND status IN ('open', 'requested')");
        Ok(sqlx::query(&sql)
            .bind(recipient_id)
            .execute(self.conn())
            .await?
            .rows_affected())
    }

    pub async fn update_contact(
        &mut self,
        id: i64,
        phone_enc: Option<&[u8]>,
        address_enc: Option<&[u8]>,
        residence: &str,
        country: Option<&str>,
        now: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE recipients SET phone_enc = ?, address_enc = ?, residence = ?, country = ?, updated_at = ? WHERE id = ?",
        );
        sqlx::query(&sql)
            .bind(phone_enc)
            .bind(address_enc)
            .bind(residence)
            .bind(country)
            .bind(now)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn address_of(&mut self, id: i64) -> Result<Option<Vec<u8>>> {
        let sql = self.sql("SELECT address_enc FROM recipients WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<Vec<u8>>, _>(0))
            .transpose()?
            .flatten())
    }
}
