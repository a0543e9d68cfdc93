//! Look-ups for staff work: recipients by id or filter, the review queue, the audit list.

use crate::records::{recipient_from_row, RecipientRow, RECIPIENT_COLUMNS};
use crate::{Result, Store, WriteTx};
use sqlx::any::AnyRow;
use sqlx::Row;

/// Filters for listing pensioners; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct RecipientFilter {
    pub region_prefix: String,
    pub id_bidx: Option<Vec<u8>>,
    pub name_bidx: Option<Vec<u8>>,
    pub status: Option<String>,
    /// Active pensioners whose due date is before this date.
    pub overdue_as_of: Option<String>,
    pub after_id: i64,
    pub limit: i64,
}

#[derive(Debug, Clone)]
pub struct ReviewCaseRow {
    pub id: i64,
    pub recipient_id: i64,
    pub kind: String,
    pub status: String,
    pub certification_id: Option<i64>,
    pub opened_by: String,
    pub opened_at: String,
    pub details: String,
    pub decision: Option<String>,
    pub decision_reason: Option<String>,
    pub decision_note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
    pub recipient_region: String,
}

const CASE_COLUMNS: &str = "c.id, c.recipient_id, c.kind, c.status, c.certification_id, c.opened_by, c.opened_at, c.details, c.decision, c.decision_reason, c.decision_note, c.decided_by, c.decided_at, r.region_code";

fn case_from_row(r: &AnyRow) -> Result<ReviewCaseRow> {
    Ok(ReviewCaseRow {
        id: r.try_get(0)?,
        recipient_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        status: r.try_get(3)?,
        certification_id: r.try_get(4)?,
        opened_by: r.try_get(5)?,
        opened_at: r.try_get(6)?,
        details: r.try_get(7)?,
        decision: r.try_get(8)?,
        decision_reason: r.try_get(9)?,
        decision_note: r.try_get(10)?,
        decided_by: r.try_get(11)?,
        decided_at: r.try_get(12)?,
        recipient_region: r.try_get(13)?,
    })
}

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub seq: i64,
    pub occurred_at: String,
    pub actor: String,
    pub action: String,
    pub recipient_id: Option<i64>,
    pub details: String,
}

impl Store {
    pub async fn recipient_by_id(&self, id: i64) -> Result<Option<RecipientRow>> {
        let sql = self.sql(&format!(
            "SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE id = ?"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(recipient_from_row).transpose()
    }

    pub async fn list_recipients(&self, f: &RecipientFilter) -> Result<Vec<RecipientRow>> {
        let mut sql = format!(
            "SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE id > ? AND region_code LIKE ?"
        );
        if f.id_bidx.is_some() {
            sql.push_str(" AND id_bidx = ?");
        }
        if f.name_bidx.is_some() {
            sql.push_str(" AND name_bidx = ?");
        }
        if f.status.is_some() {
            sql.push_str(" AND status = ?");
        }
        if f.overdue_as_of.is_some() {
            sql.push_str(" AND status = 'active' AND next_due_on < ?");
        }
        sql.push_str(" ORDER BY id LIMIT ?");
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql)
            .bind(f.after_id)
            .bind(format!("{}%", f.region_prefix));
        if let Some(b) = &f.id_bidx {
            q = q.bind(b.clone());
        }
        if let Some(b) = &f.name_bidx {
            q = q.bind(b.clone());
        }
        if let Some(s) = &f.status {
            q = q.bind(s.clone());
        }
        if let Some(d) = &f.overdue_as_of {
            q = q.bind(d.clone());
        }
        let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter().map(recipient_from_row).collect()
    }

    /// The review queue, oldest first, within a region prefix.
    pub async fn list_review_cases(
        &self,
        region_prefix: &str,
        kind: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ReviewCaseRow>> {
        let mut sql = format!(
            "SELECT {CASE_COLUMNS} FROM review_cases c JOIN recipients r ON r.id = c.recipient_id WHERE r.region_code LIKE ?"
        );
        if kind.is_some() {
            sql.push_str(" AND c.kind = ?");
        }
        if status.is_some() {
            sql.push_str(" AND c.status = ?");
        }
        sql.push_str(" ORDER BY c.opened_at, c.id LIMIT ?");
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql).bind(format!("{region_prefix}%"));
        if let Some(k) = kind {
            q = q.bind(k);
        }
        if let Some(s) = status {
            q = q.bind(s);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(case_from_row).collect()
    }

    pub async fn list_audit(
        &self,
        after_seq: i64,
        limit: i64,
        action: Option<&str>,
        recipient_id: Option<i64>,
    ) -> Result<Vec<AuditRow>> {
        let mut sql = String::from(
            "SELECT seq, occurred_at, actor, action, recipient_id, details FROM audit_log WHERE seq > ?",
        );
        if action.is_some() {
            sql.push_str(" AND action = ?");
        }
        if recipient_id.is_some() {
            sql.push_str(" AND recipient_id = ?");
        }
        sql.push_str(" ORDER BY seq LIMIT ?");
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql).bind(after_seq);
        if let Some(a) = action {
            q = q.bind(a);
        }
        if let Some(r) = recipient_id {
            q = q.bind(r);
        }
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRow {
                    seq: r.try_get(0)?,
                    occurred_at: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    action: r.try_get(3)?,
                    recipient_id: r.try_get(4)?,
                    details: r.try_get(5)?,
                })
            })
            .collect()
    }
}

async fn fetch_case<'c, E>(e: E, dialect: crate::Dialect, id: i64) -> Result<Option<ReviewCaseRow>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = dialect.sql(&format!(
        "SELECT {CASE_COLUMNS} FROM review_cases c JOIN recipients r ON r.id = c.recipient_id WHERE c.id = ?"
    ));
    let row = sqlx::query(&sql).bind(id).fetch_optional(e).await?;
    row.as_ref().map(case_from_row).transpose()
}

impl Store {
    pub async fn review_case(&self, id: i64) -> Result<Option<ReviewCaseRow>> {
        fetch_case(&self.pool, self.dialect, id).await
    }
}

impl WriteTx {
    pub async fn recipient_by_id(&mut self, id: i64) -> Result<Option<RecipientRow>> {
        let sql = self.sql(&format!(
            "SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE id = ?"
        ));
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(recipient_from_row).transpose()
    }

    pub async fn review_case(&mut self, id: i64) -> Result<Option<ReviewCaseRow>> {
        let dialect = self.dialect;
        fetch_case(self.conn(), dialect, id).await
    }

    /// Who recorded a certification (for the maker–checker rule).
    pub async fn certification_actor(&mut self, id: i64) -> Result<Option<String>> {
        let sql = self.sql("SELECT actor FROM certifications WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn decide_review_case(
        &mut self,
        id: i64,
        status: &str,
        decision: &str,
        reason: &str,
        note: &str,
        decided_by: &str,
        decided_at: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE review_cases SET status = ?, decision = ?, decision_reason = ?, decision_note = ?, decided_by = ?, decided_at = ? WHERE id = ?",
        );
        sqlx::query(&sql)
            .bind(status)
            .bind(decision)
            .bind(reason)
            .bind(note)
            .bind(decided_by)
            .bind(decided_at)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }
}
