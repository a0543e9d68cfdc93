//! Feed records: every record received from another department, once per source and
//! record id, with what it was matched to.

use crate::{Result, WriteTx};
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct NewFeedRecord<'a> {
    pub source: &'a str,
    pub record_id: &'a str,
    pub kind: &'a str,
    pub recipient_id: Option<i64>,
    pub class: &'a str,
    pub event_date: Option<&'a str>,
    pub weight_milli: i64,
    pub void_of: Option<&'a str>,
}

#[derive(Debug, Clone)]
pub struct FeedRecordRow {
    pub id: i64,
    pub kind: String,
    pub recipient_id: Option<i64>,
    pub event_date: Option<String>,
    pub voided: bool,
}

impl WriteTx {
    /// Stores a record; `None` when this source sent the same record id before.
    pub async fn insert_feed_record(
        &mut self,
        r: &NewFeedRecord<'_>,
        now: &str,
    ) -> Result<Option<i64>> {
        let sql = self.sql(
            "INSERT INTO feed_records (source, record_id, kind, recipient_id, class, event_date, weight_milli, void_of, voided, received_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?) ON CONFLICT (source, record_id) DO NOTHING RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(r.source)
            .bind(r.record_id)
            .bind(r.kind)
            .bind(r.recipient_id)
            .bind(r.class)
            .bind(r.event_date)
            .bind(r.weight_milli)
            .bind(r.void_of)
            .bind(now)
            .fetch_optional(self.conn())
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn feed_record(
        &mut self,
        source: &str,
        record_id: &str,
    ) -> Result<Option<FeedRecordRow>> {
        let sql = self.sql(
            "SELECT id, kind, recipient_id, event_date, voided FROM feed_records WHERE source = ? AND record_id = ?",
        );
        let row = sqlx::query(&sql)
            .bind(source)
            .bind(record_id)
            .fetch_optional(self.conn())
            .await?;
        row.map(|r| {
            Ok(FeedRecordRow {
                id: r.try_get(0)?,
                kind: r.try_get(1)?,
                recipient_id: r.try_get(2)?,
                event_date: r.try_get(3)?,
                voided: r.try_get::<i64, _>(4)? != 0,
            })
        })
        .transpose()
    }

    pub async fn void_feed_record(&mut self, id: i64) -> Result<()> {
        let sql = self.sql("UPDATE feed_records SET voided = 1 WHERE id = ?");
        sqlx::query(&sql).bind(id).execute(self.conn()).await?;
        Ok(())
    }

    /// The weight (thousandths) of a pensioner's signs of life dated in `[from, to]`,
    /// and the latest of their dates.
    pub async fn life_signs(
        &mut self,
        recipient_id: i64,
        from: &str,
        to: &str,
    ) -> Result<(i64, Option<String>)> {
        let sql = self.sql(
            "SELECT CAST(COALESCE(SUM(weight_milli), 0) AS BIGINT), MAX(event_date) FROM feed_records \
             WHERE recipient_id = ? AND kind = 'life' AND voided = 0 AND event_date >= ? AND event_date <= ?",
        );
        let row = sqlx::query(&sql)
            .bind(recipient_id)
            .bind(from)
            .bind(to)
            .fetch_one(self.conn())
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }
}

/// What probabilistic matching needs of a pensioner (the name still encrypted).
#[derive(Debug, Clone)]
pub struct MatchCandidateRow {
    pub id: i64,
    pub name_enc: Vec<u8>,
    pub gender: String,
    pub birth_date: String,
    pub region_code: String,
}

impl crate::Store {
    /// Pensioners not terminated, a page at a time by id.
    pub async fn match_candidates_page(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<MatchCandidateRow>> {
        let sql = self.sql(
            "SELECT id, name_enc, gender, birth_date, region_code FROM recipients WHERE id > ? AND status <> 'terminated' ORDER BY id LIMIT ?",
        );
        let rows = sqlx::query(&sql)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MatchCandidateRow {
                    id: r.try_get(0)?,
                    name_enc: r.try_get(1)?,
                    gender: r.try_get(2)?,
                    birth_date: r.try_get(3)?,
                    region_code: r.try_get(4)?,
                })
            })
            .collect()
    }
}

/// A background job (a feed upload being ingested).
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub source: String,
    pub format: String,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
}

const JOB_COLUMNS: &str =
    "id, kind, status, source, format, result, error, created_by, created_at, finished_at";

fn job_from_row(r: &sqlx::any::AnyRow) -> Result<JobRow> {
    Ok(JobRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        status: r.try_get(2)?,
        source: r.try_get(3)?,
        format: r.try_get(4)?,
        result: r.try_get(5)?,
        error: r.try_get(6)?,
        created_by: r.try_get(7)?,
        created_at: r.try_get(8)?,
        finished_at: r.try_get(9)?,
    })
}

impl crate::Store {
    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        let sql = self.sql(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"));
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Claims the oldest queued job, so that several nodes never run the same one
    /// (PostgreSQL skips rows another node has locked). Returns it with its payload.
    pub async fn claim_job(&self, now: &str) -> Result<Option<(JobRow, Vec<u8>)>> {
        let pick = match self.dialect {
            crate::Dialect::Postgres => {
                "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
            }
            crate::Dialect::Sqlite => "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1",
        };
        let sql = self.sql(&format!(
            "UPDATE jobs SET status = 'running', started_at = ? WHERE id = ({pick}) AND status = 'queued' RETURNING {JOB_COLUMNS}, payload"
        ));
        let row = sqlx::query(&sql)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((job_from_row(&r)?, r.try_get(10)?)))
            .transpose()
    }

    pub async fn finish_job(
        &self,
        id: i64,
        result: Option<&str>,
        error: Option<&str>,
        now: &str,
    ) -> Result<()> {
        let sql = self.sql(
            "UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ?, payload = ? WHERE id = ?",
        );
        // The upload is personal data: it is dropped once ingested.
        sqlx::query(&sql)
            .bind(if error.is_some() { "failed" } else { "done" })
            .bind(result)
            .bind(error)
            .bind(now)
            .bind(Vec::<u8>::new())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl WriteTx {
    pub async fn queue_job(
        &mut self,
        kind: &str,
        source: &str,
        format: &str,
        payload: &[u8],
        created_by: &str,
        now: &str,
    ) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO jobs (kind, status, source, format, payload, created_by, created_at) VALUES (?, 'queued', ?, ?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(kind)
            .bind(source)
            .bind(format)
            .bind(payload)
            .bind(created_by)
            .bind(now)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }
}
