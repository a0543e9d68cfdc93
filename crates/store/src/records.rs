//! Rows as stored, and the queries the use cases need. Values are primitives here;
//! the application turns them into domain types.

use crate::{Dialect, Result, Store, StoreError, WriteTx};
use sqlx::any::AnyRow;
use sqlx::{Executor, Row};

/// A pensioner as stored; personal fields are ciphertext.
#[derive(Debug, Clone)]
pub struct RecipientRow {
    pub id: i64,
    pub id_number_enc: Vec<u8>,
    pub name_enc: Vec<u8>,
    pub phone_enc: Option<Vec<u8>>,
    pub gender: String,
    pub birth_date: String,
    pub insurance_type: String,
    pub region_code: String,
    pub benefit_start: String,
    pub monthly_amount_fen: i64,
    pub residence: String,
    pub country: Option<String>,
    pub last_certified_on: Option<String>,
    pub next_due_on: String,
    pub status: String,
    pub suspension_reason: Option<String>,
    pub status_changed_on: Option<String>,
    pub death_date: Option<String>,
    pub death_source: Option<String>,
    pub settled_through: Option<String>,
    pub settled_after: Option<String>,
}

pub(crate) const RECIPIENT_COLUMNS: &str = "id, id_number_enc, name_enc, phone_enc, gender, birth_date, insurance_type, region_code, benefit_start, monthly_amount_fen, residence, country, last_certified_on, next_due_on, status, suspension_reason, status_changed_on, death_date, death_source, settled_through, settled_after";

pub(crate) fn recipient_from_row(r: &AnyRow) -> Result<RecipientRow> {
    Ok(RecipientRow {
        id: r.try_get(0)?,
        id_number_enc: r.try_get(1)?,
        name_enc: r.try_get(2)?,
        phone_enc: r.try_get(3)?,
        gender: r.try_get(4)?,
        birth_date: r.try_get(5)?,
        insurance_type: r.try_get(6)?,
        region_code: r.try_get(7)?,
        benefit_start: r.try_get(8)?,
        monthly_amount_fen: r.try_get(9)?,
        residence: r.try_get(10)?,
        country: r.try_get(11)?,
        last_certified_on: r.try_get(12)?,
        next_due_on: r.try_get(13)?,
        status: r.try_get(14)?,
        suspension_reason: r.try_get(15)?,
        status_changed_on: r.try_get(16)?,
        death_date: r.try_get(17)?,
        death_source: r.try_get(18)?,
        settled_through: r.try_get(19)?,
        settled_after: r.try_get(20)?,
    })
}

/// A pensioner's imported attributes, ready to store (personal fields encrypted).
#[derive(Debug, Clone)]
pub struct RecipientImport {
    pub id_bidx: Vec<u8>,
    pub name_bidx: Vec<u8>,
    pub id_number_enc: Vec<u8>,
    pub name_enc: Vec<u8>,
    pub phone_enc: Option<Vec<u8>>,
    pub gender: String,
    pub birth_date: String,
    pub insurance_type: String,
    pub region_code: String,
    pub benefit_start: String,
    pub monthly_amount_fen: i64,
    pub residence: String,
    pub country: Option<String>,
    pub last_certified_on: Option<String>,
    pub next_due_on: String,
    pub settled_through: Option<String>,
    pub import_digest: Vec<u8>,
}

/// What import needs to know about a pensioner already stored.
#[derive(Debug, Clone)]
pub struct ImportExisting {
    pub id: i64,
    pub id_bidx: Vec<u8>,
    pub import_digest: Option<Vec<u8>>,
    pub last_certified_on: Option<String>,
    pub settled_through: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CertificationRow {
    pub recipient_id: i64,
    pub channel: String,
    pub certified_on: String,
    pub recorded_at: String,
    pub actor: String,
    pub region_code: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    pub evidence: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CycleCandidate {
    pub id: i64,
    pub status: String,
    pub next_due_on: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub recipients: i64,
    pub active: i64,
    pub suspended: i64,
    pub terminated: i64,
    pub overdue: i64,
    pub certified_valid: i64,
}

/// The ledger position of one pensioner, for a payment run.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub id: i64,
    pub id_number_enc: Vec<u8>,
    pub name_enc: Vec<u8>,
    pub status: String,
    pub suspension_reason: Option<String>,
    pub monthly_amount_fen: i64,
    pub benefit_start: String,
    pub settled_through: Option<String>,
    pub settled_after: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PaymentLine {
    pub recipient_id: i64,
    pub kind: String,
    pub reason: Option<String>,
    /// Comma-separated `YYYY-MM`.
    pub months: String,
    pub amount_fen: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRun {
    pub month: String,
    pub status: String,
    pub lines: i64,
    pub total_fen: i64,
}

#[derive(Debug, Clone)]
pub struct OpenRecovery {
    pub recipient_id: i64,
    pub months: String,
    pub amount_fen: i64,
}

/// A payment line from the first five columns: recipient_id, kind, reason, months, amount_fen.
fn payment_line_from_row(r: &AnyRow) -> Result<PaymentLine> {
    Ok(PaymentLine {
        recipient_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        reason: r.try_get(2)?,
        months: r.try_get(3)?,
        amount_fen: r.try_get(4)?,
    })
}

/// Builds `(?, ?, ...), (?, ?, ...)` for a multi-row statement.
pub(crate) fn value_groups(rows: usize, columns: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    vec![group; rows].join(", ")
}

/// Builds `?, ?, ...` for an `IN (...)` list.
pub(crate) fn in_list(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Multi-row statements stay well under SQLite's 32,766 and PostgreSQL's 65,535 binds.
pub const BATCH_ROWS: usize = 500;

async fn fetch_recipient<'c, E>(e: E, dialect: Dialect, bidx: &[u8]) -> Result<Option<RecipientRow>>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let sql = dialect.sql(&format!(
        "SELECT {RECIPIENT_COLUMNS} FROM recipients WHERE id_bidx = ?"
    ));
    sqlx::query(&sql)
        .bind(bidx)
        .fetch_optional(e)
        .await?
        .as_ref()
        .map(recipient_from_row)
        .transpose()
}

async fn fetch_ledger_page<'c, E>(
    e: E,
    dialect: Dialect,
    after_id: i64,
    limit: i64,
) -> Result<Vec<LedgerRow>>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let sql = dialect.sql(
        "SELECT id, id_number_enc, name_enc, status, suspension_reason, monthly_amount_fen, benefit_start, settled_through, settled_after FROM recipients WHERE id > ? ORDER BY id LIMIT ?",
    );
    let rows = sqlx::query(&sql)
        .bind(after_id)
        .bind(limit)
        .fetch_all(e)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(LedgerRow {
                id: r.try_get(0)?,
                id_number_enc: r.try_get(1)?,
                name_enc: r.try_get(2)?,
                status: r.try_get(3)?,
                suspension_reason: r.try_get(4)?,
                monthly_amount_fen: r.try_get(5)?,
                benefit_start: r.try_get(6)?,
                settled_through: r.try_get(7)?,
                settled_after: r.try_get(8)?,
            })
        })
        .collect()
}

async fn fetch_run<'c, E>(e: E, dialect: Dialect, month: &str) -> Result<Option<PaymentRun>>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let sql =
        dialect.sql("SELECT month, status, lines, total_fen FROM payment_runs WHERE month = ?");
    let row = sqlx::query(&sql).bind(month).fetch_optional(e).await?;
    row.map(|r| {
        Ok(PaymentRun {
            month: r.try_get(0)?,
            status: r.try_get(1)?,
            lines: r.try_get(2)?,
            total_fen: r.try_get(3)?,
        })
    })
    .transpose()
}

impl Store {
    pub async fn recipient_by_bidx(&self, bidx: &[u8]) -> Result<Option<RecipientRow>> {
        fetch_recipient(&self.pool, self.dialect, bidx).await
    }

    pub async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let sql = self.sql("SELECT value FROM meta WHERE key = ?");
        let row = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Stores `value` under `key` unless a value is there already; returns the stored one.
    pub async fn meta_init(&self, key: &str, value: &[u8]) -> Result<Vec<u8>> {
        let sql =
            self.sql("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING");
        sqlx::query(&sql)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        self.meta_get(key)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("meta key {key} vanished")))
    }

    /// Pensioners who are not terminated and are due before `due_before`, for a cycle run.
    pub async fn cycle_candidates(&self, due_before: &str) -> Result<Vec<CycleCandidate>> {
        let sql = self.sql(
            "SELECT id, status, next_due_on FROM recipients WHERE status <> 'terminated' AND next_due_on < ? ORDER BY id",
        );
        let rows = sqlx::query(&sql)
            .bind(due_before)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(CycleCandidate {
                    id: r.try_get(0)?,
                    status: r.try_get(1)?,
                    next_due_on: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Headline counts as of a date (`YYYY-MM-DD`).
    pub async fn counts(&self, as_of: &str) -> Result<Counts> {
        let sql = self.sql(
            "SELECT COUNT(*), \
             COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'suspended' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'terminated' THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status = 'active' AND next_due_on < ? THEN 1 ELSE 0 END), 0), \
             COALESCE(SUM(CASE WHEN status <> 'terminated' AND next_due_on >= ? THEN 1 ELSE 0 END), 0) \
             FROM recipients",
        );
        let sql = match self.dialect {
            // SUM over integers is NUMERIC on PostgreSQL, which the Any driver cannot read.
            Dialect::Postgres => sql
                .replace("COALESCE(SUM(", "CAST(COALESCE(SUM(")
                .replace("END), 0)", "END), 0) AS BIGINT)"),
            Dialect::Sqlite => sql,
        };
        let r = sqlx::query(&sql)
            .bind(as_of)
            .bind(as_of)
            .fetch_one(&self.pool)
            .await?;
        Ok(Counts {
            recipients: r.try_get(0)?,
            active: r.try_get(1)?,
            suspended: r.try_get(2)?,
            terminated: r.try_get(3)?,
            overdue: r.try_get(4)?,
            certified_valid: r.try_get(5)?,
        })
    }

    pub async fn payment_run(&self, month: &str) -> Result<Option<PaymentRun>> {
        fetch_run(&self.pool, self.dialect, month).await
    }

    pub async fn certifications_of(&self, recipient_id: i64) -> Result<Vec<CertificationRow>> {
        Ok(self
            .certifications(CertificationsOf::Recipient(recipient_id))
            .await?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// Certifications with their ids: a pensioner's, or one by its id.
    pub async fn certifications(
        &self,
        of: CertificationsOf,
    ) -> Result<Vec<(i64, CertificationRow)>> {
        let (column, value) = match of {
            CertificationsOf::Recipient(id) => ("recipient_id", id),
            CertificationsOf::Id(id) => ("id", id),
        };
        let sql = self.sql(&format!(
            "SELECT id, recipient_id, channel, certified_on, recorded_at, actor, region_code, outcome, reason, evidence FROM certifications WHERE {column} = ? ORDER BY id"
        ));
        let rows = sqlx::query(&sql).bind(value).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    CertificationRow {
                        recipient_id: r.try_get(1)?,
                        channel: r.try_get(2)?,
                        certified_on: r.try_get(3)?,
                        recorded_at: r.try_get(4)?,
                        actor: r.try_get(5)?,
                        region_code: r.try_get(6)?,
                        outcome: r.try_get(7)?,
                        reason: r.try_get(8)?,
                        evidence: r.try_get(9)?,
                    },
                ))
            })
            .collect()
    }

    pub async fn count_rows(&self, table: Table) -> Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        Ok(sqlx::query(&sql).fetch_one(&self.pool).await?.try_get(0)?)
    }
}

/// Which certifications to read.
#[derive(Debug, Clone, Copy)]
pub enum CertificationsOf {
    Recipient(i64),
    Id(i64),
}

/// Tables whose size is reported (a closed list, so no SQL is built from input).
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Recipients,
    Certifications,
    ReviewCases,
    RecoveryCases,
    NotificationOutbox,
    AuditLog,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Recipients => "recipients",
            Table::Certifications => "certifications",
            Table::ReviewCases => "review_cases",
            Table::RecoveryCases => "recovery_cases",
            Table::NotificationOutbox => "notification_outbox",
            Table::AuditLog => "audit_log",
        }
    }
}

impl WriteTx {
    pub async fn recipient_by_bidx(&mut self, bidx: &[u8]) -> Result<Option<RecipientRow>> {
        let dialect = self.dialect;
        fetch_recipient(self.conn(), dialect, bidx).await
    }

    pub async fn meta_put(&mut self, key: &str, value: &[u8]) -> Result<()> {
        let sql = self.sql(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        );
        sqlx::query(&sql)
            .bind(key)
            .bind(value)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Looks up, by blind index, the pensioners of an import batch that are already stored.
    pub async fn existing_for_import(&mut self, bidxs: &[&[u8]]) -> Result<Vec<ImportExisting>> {
        let mut out = Vec::new();
        if self.dialect == Dialect::Postgres {
            // The look-up is prepared once per connection; a generic plan made while the
            // table was empty (a sequential scan) would be kept as it grows, and a 1M
            // import slowed to 11k rows/s. Custom plans, for this transaction only: the
            // large multi-row inserts elsewhere are better off with cached plans.
            sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
                .execute(self.conn())
                .await?;
        }
        for chunk in bidxs.chunks(BATCH_ROWS) {
            let sql = self.sql(&format!(
                "SELECT id, id_bidx, import_digest, last_certified_on, settled_through FROM recipients WHERE id_bidx IN ({})",
                in_list(chunk.len())
            ));
            let mut q = sqlx::query(&sql);
            for b in chunk {
                q = q.bind(*b);
            }
            for r in q.fetch_all(self.conn()).await? {
                out.push(ImportExisting {
                    id: r.try_get(0)?,
                    id_bidx: r.try_get(1)?,
                    import_digest: r.try_get(2)?,
                    last_certified_on: r.try_get(3)?,
                    settled_through: r.try_get(4)?,
                });
            }
        }
        Ok(out)
    }

    /// Inserts new pensioners (status active); returns `(blind index, id)` pairs.
    pub async fn insert_recipients(
        &mut self,
        rows: &[RecipientImport],
        now: &str,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(BATCH_ROWS) {
            let sql = self.sql(&format!(
                "INSERT INTO recipients (id_bidx, name_bidx, id_number_enc, name_enc, phone_enc, gender, birth_date, insurance_type, region_code, benefit_start, monthly_amount_fen, residence, country, last_certified_on, next_due_on, settled_through, import_digest, status, created_at, updated_at) VALUES {} RETURNING id_bidx, id",
                value_groups(chunk.len(), 20)
            ));
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(&r.id_bidx)
                    .bind(&r.name_bidx)
                    .bind(&r.id_number_enc)
                    .bind(&r.name_enc)
                    .bind(&r.phone_enc)
                    .bind(&r.gender)
                    .bind(&r.birth_date)
                    .bind(&r.insurance_type)
                    .bind(&r.region_code)
                    .bind(&r.benefit_start)
                    .bind(r.monthly_amount_fen)
                    .bind(&r.residence)
                    .bind(&r.country)
                    .bind(&r.last_certified_on)
                    .bind(&r.next_due_on)
                    .bind(&r.settled_through)
                    .bind(&r.import_digest)
                    .bind("active")
                    .bind(now)
                    .bind(now);
            }
            for row in q.fetch_all(self.conn()).await? {
                out.push((row.try_get(0)?, row.try_get(1)?));
            }
        }
        Ok(out)
    }

    /// Overwrites a pensioner's imported attributes (status and history are untouched).
    pub async fn update_recipient_import(
        &mut self,
        id: i64,
        r: &RecipientImport,
        now: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE recipients SET name_bidx = ?, id_number_enc = ?, name_enc = ?, phone_enc = ?, gender = ?, birth_date = ?, insurance_type = ?, region_code = ?, benefit_start = ?, monthly_amount_fen = ?, residence = ?, country = ?, last_certified_on = ?, next_due_on = ?, settled_through = ?, import_digest = ?, updated_at = ? WHERE id = ?",
        );
        sqlx::query(&sql)
            .bind(&r.name_bidx)
            .bind(&r.id_number_enc)
            .bind(&r.name_enc)
            .bind(&r.phone_enc)
            .bind(&r.gender)
            .bind(&r.birth_date)
            .bind(&r.insurance_type)
            .bind(&r.region_code)
            .bind(&r.benefit_start)
            .bind(r.monthly_amount_fen)
            .bind(&r.residence)
            .bind(&r.country)
            .bind(&r.last_certified_on)
            .bind(&r.next_due_on)
            .bind(&r.settled_through)
            .bind(&r.import_digest)
            .bind(now)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn set_certified(
        &mut self,
        id: i64,
        last_certified_on: &str,
        next_due_on: &str,
        now: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE recipients SET last_certified_on = ?, next_due_on = ?, updated_at = ? WHERE id = ?",
        );
        sqlx::query(&sql)
            .bind(last_certified_on)
            .bind(next_due_on)
            .bind(now)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn set_status(
        &mut self,
        id: i64,
        status: &str,
        reason: Option<&str>,
        changed_on: &str,
        now: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE recipients SET status = ?, suspension_reason = ?, status_changed_on = ?, updated_at = ? WHERE id = ?",
        );
        sqlx::query(&sql)
            .bind(status)
            .bind(reason)
            .bind(changed_on)
            .bind(now)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn set_death(
        &mut self,
        id: i64,
        death_date: Option<&str>,
        source: Option<&str>,
    ) -> Result<()> {
        let sql = self.sql("UPDATE recipients SET death_date = ?, death_source = ? WHERE id = ?");
        sqlx::query(&sql)
            .bind(death_date)
            .bind(source)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_certification(&mut self, c: &CertificationRow) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO certifications (recipient_id, channel, certified_on, recorded_at, actor, region_code, outcome, reason, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(c.recipient_id)
            .bind(&c.channel)
            .bind(&c.certified_on)
            .bind(&c.recorded_at)
            .bind(&c.actor)
            .bind(&c.region_code)
            .bind(&c.outcome)
            .bind(&c.reason)
            .bind(&c.evidence)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn open_review_case(
        &mut self,
        recipient_id: i64,
        kind: &str,
        certification_id: Option<i64>,
        opened_by: &str,
        opened_at: &str,
        details: &str,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO review_cases (recipient_id, kind, status, certification_id, opened_by, opened_at, details) VALUES (?, ?, 'open', ?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(recipient_id)
            .bind(kind)
            .bind(certification_id)
            .bind(opened_by)
            .bind(opened_at)
            .bind(details)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Closes the open review cases of one kind for a pensioner (e.g. a voided death report).
    pub async fn close_review_cases(
        &mut self,
        recipient_id: i64,
        kind: &str,
        status: &str,
    ) -> Result<u64> {
        let sql = self.sql(
            "UPDATE review_cases SET status = ? WHERE recipient_id = ? AND kind = ? AND status = 'open'",
        );
        Ok(sqlx::query(&sql)
            .bind(status)
            .bind(recipient_id)
            .bind(kind)
            .execute(self.conn())
            .await?
            .rows_affected())
    }

    pub async fn open_recovery_case(
        &mut self,
        recipient_id: i64,
        months: &str,
        amount_fen: i64,
        opened_at: &str,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO recovery_cases (recipient_id, months, amount_fen, status, opened_at, updated_at) VALUES (?, ?, ?, 'open', ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(recipient_id)
            .bind(months)
            .bind(amount_fen)
            .bind(opened_at)
            .bind(opened_at)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Recovery cases not yet sent out in a closed payment run.
    pub async fn open_recoveries(&mut self) -> Result<Vec<OpenRecovery>> {
        let rows = sqlx::query(
            "SELECT recipient_id, months, amount_fen FROM recovery_cases WHERE status = 'open' ORDER BY id",
        )
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OpenRecovery {
                    recipient_id: r.try_get(0)?,
                    months: r.try_get(1)?,
                    amount_fen: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Suspends the given pensioners if they are still active; returns those suspended.
    pub async fn suspend_active(
        &mut self,
        ids: &[i64],
        reason: &str,
        changed_on: &str,
        now: &str,
    ) -> Result<Vec<i64>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(BATCH_ROWS) {
            let sql = self.sql(&format!(
                "UPDATE recipients SET status = 'suspended', suspension_reason = ?, status_changed_on = ?, updated_at = ? WHERE status = 'active' AND id IN ({}) RETURNING id",
                in_list(chunk.len())
            ));
            let mut q = sqlx::query(&sql).bind(reason).bind(changed_on).bind(now);
            for id in chunk {
                q = q.bind(*id);
            }
            for row in q.fetch_all(self.conn()).await? {
                out.push(row.try_get(0)?);
            }
        }
        Ok(out)
    }

    pub async fn ledger_page(&mut self, after_id: i64, limit: i64) -> Result<Vec<LedgerRow>> {
        let dialect = self.dialect;
        fetch_ledger_page(self.conn(), dialect, after_id, limit).await
    }

    pub async fn payment_run(&mut self, month: &str) -> Result<Option<PaymentRun>> {
        let dialect = self.dialect;
        fetch_run(self.conn(), dialect, month).await
    }

    /// The latest month whose run is closed, and the earliest month whose run is still open.
    pub async fn run_bounds(&mut self) -> Result<(Option<String>, Option<String>)> {
        let r = sqlx::query(
            "SELECT (SELECT MAX(month) FROM payment_runs WHERE status = 'closed'), (SELECT MIN(month) FROM payment_runs WHERE status = 'open')",
        )
        .fetch_one(self.conn())
        .await?;
        Ok((r.try_get(0)?, r.try_get(1)?))
    }

    /// Starts (or restarts) an open month's run: its earlier lines are removed.
    pub async fn start_payment_run(&mut self, month: &str, exported_at: &str) -> Result<()> {
        let sql = self.sql("DELETE FROM payment_lines WHERE month = ?");
        sqlx::query(&sql).bind(month).execute(self.conn()).await?;
        let sql = self.sql(
            "INSERT INTO payment_runs (month, status, exported_at, lines, total_fen) VALUES (?, 'open', ?, 0, 0) \
             ON CONFLICT (month) DO UPDATE SET exported_at = excluded.exported_at, lines = 0, total_fen = 0",
        );
        sqlx::query(&sql)
            .bind(month)
            .bind(exported_at)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    pub async fn insert_payment_lines(&mut self, month: &str, lines: &[PaymentLine]) -> Result<()> {
        for chunk in lines.chunks(BATCH_ROWS) {
            let sql = self.sql(&format!(
                "INSERT INTO payment_lines (month, recipient_id, kind, reason, months, amount_fen) VALUES {}",
                value_groups(chunk.len(), 6)
            ));
            let mut q = sqlx::query(&sql);
            for l in chunk {
                q = q
                    .bind(month)
                    .bind(l.recipient_id)
                    .bind(&l.kind)
                    .bind(&l.reason)
                    .bind(&l.months)
                    .bind(l.amount_fen);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    pub async fn finish_payment_run(
        &mut self,
        month: &str,
        lines: i64,
        total_fen: i64,
    ) -> Result<()> {
        let sql = self.sql("UPDATE payment_runs SET lines = ?, total_fen = ? WHERE month = ?");
        sqlx::query(&sql)
            .bind(lines)
            .bind(total_fen)
            .bind(month)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// The common case of closing a month, in one statement: a `pay` line for a pensioner
    /// whose ledger was settled through the month before (or never) settles this month.
    pub async fn settle_simple_pay_lines(&mut self, month: &str, prev_month: &str) -> Result<u64> {
        let sql = self.sql(
            "UPDATE recipients SET settled_through = ? WHERE settled_after IS NULL \
             AND (settled_through IS NULL OR settled_through = ?) \
             AND id IN (SELECT recipient_id FROM payment_lines WHERE month = ? AND kind = 'pay')",
        );
        Ok(sqlx::query(&sql)
            .bind(month)
            .bind(prev_month)
            .bind(month)
            .execute(self.conn())
            .await?
            .rows_affected())
    }

    /// Lines of a month that the simple settlement did not cover, with the pensioner's
    /// ledger position.
    pub async fn lines_to_settle(
        &mut self,
        month: &str,
    ) -> Result<Vec<(PaymentLine, Option<String>, Option<String>, String)>> {
        let sql = self.sql(
            "SELECT l.recipient_id, l.kind, l.reason, l.months, l.amount_fen, r.settled_through, r.settled_after, r.benefit_start \
             FROM payment_lines l JOIN recipients r ON r.id = l.recipient_id \
             WHERE l.month = ? AND NOT (l.kind = 'pay' AND r.settled_through = ? AND r.settled_after IS NULL) \
             AND l.kind IN ('pay', 'back_pay', 'withhold')",
        );
        let rows = sqlx::query(&sql)
            .bind(month)
            .bind(month)
            .fetch_all(self.conn())
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    payment_line_from_row(r)?,
                    r.try_get(5)?,
                    r.try_get(6)?,
                    r.try_get(7)?,
                ))
            })
            .collect()
    }

    pub async fn set_settlement(
        &mut self,
        id: i64,
        settled_through: Option<&str>,
        settled_after: Option<&str>,
    ) -> Result<()> {
        let sql =
            self.sql("UPDATE recipients SET settled_through = ?, settled_after = ? WHERE id = ?");
        sqlx::query(&sql)
            .bind(settled_through)
            .bind(settled_after)
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Marks the run closed, and the recovery cases it sent out as requested from the bank
    /// (by `closed_by`, on `closed_on`); returns those cases. A case opened after the run
    /// was exported was not in its file, so it stays open for the next run.
    pub async fn close_payment_run(
        &mut self,
        month: &str,
        closed_at: &str,
        closed_on: &str,
        closed_by: &str,
    ) -> Result<Vec<crate::RequestedRecovery>> {
        let sql =
            self.sql("UPDATE payment_runs SET status = 'closed', closed_at = ? WHERE month = ?");
        sqlx::query(&sql)
            .bind(closed_at)
            .bind(month)
            .execute(self.conn())
            .await?;
        let sql = self.sql(
            "UPDATE recovery_cases SET status = 'requested', instructed_month = ?, requested_on = ?, requested_by = ?, updated_at = ? \
             WHERE status = 'open' \
             AND opened_at <= (SELECT exported_at FROM payment_runs WHERE month = ?) \
             AND recipient_id IN (SELECT recipient_id FROM payment_lines WHERE month = ? AND kind = 'recover') \
             RETURNING id, recipient_id, amount_fen",
        );
        let rows = sqlx::query(&sql)
            .bind(month)
            .bind(closed_on)
            .bind(closed_by)
            .bind(closed_at)
            .bind(month)
            .bind(month)
            .fetch_all(self.conn())
            .await?;
        let mut out = rows
            .iter()
            .map(|r| {
                Ok(crate::RequestedRecovery {
                    id: r.try_get(0)?,
                    recipient_id: r.try_get(1)?,
                    amount_fen: r.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// A pensioner's lines in closed runs of months after `after_month`.
    pub async fn closed_lines_after(
        &mut self,
        recipient_id: i64,
        after_month: &str,
    ) -> Result<Vec<PaymentLine>> {
        let sql = self.sql(
            "SELECT l.recipient_id, l.kind, l.reason, l.months, l.amount_fen FROM payment_lines l \
             JOIN payment_runs p ON p.month = l.month \
             WHERE p.status = 'closed' AND l.recipient_id = ? AND l.month > ? ORDER BY l.month",
        );
        let rows = sqlx::query(&sql)
            .bind(recipient_id)
            .bind(after_month)
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(payment_line_from_row).collect()
    }
}

/// A payment line with the payee's encrypted identity, for integrations.
#[derive(Debug, Clone)]
pub struct InstructionRow {
    pub line: PaymentLine,
    pub id_number_enc: Vec<u8>,
    pub name_enc: Vec<u8>,
}

impl Store {
    /// A page of a month's payment lines, by pensioner id.
    pub async fn instructions_page(
        &self,
        month: &str,
        after_recipient_id: i64,
        limit: i64,
    ) -> Result<Vec<InstructionRow>> {
        let sql = self.sql(
            "SELECT l.recipient_id, l.kind, l.reason, l.months, l.amount_fen, r.id_number_enc, r.name_enc \
             FROM payment_lines l JOIN recipients r ON r.id = l.recipient_id \
             WHERE l.month = ? AND l.recipient_id > ? ORDER BY l.recipient_id LIMIT ?",
        );
        let rows = sqlx::query(&sql)
            .bind(month)
            .bind(after_recipient_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(InstructionRow {
                    line: payment_line_from_row(r)?,
                    id_number_enc: r.try_get(5)?,
                    name_enc: r.try_get(6)?,
                })
            })
            .collect()
    }
}
