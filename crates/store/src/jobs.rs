//! The job queue: background work as rows that any node may claim. A claim is one
//! atomic statement (PostgreSQL skips rows another node has locked; SQLite's writers
//! queue in-process) and comes with a lease that the worker extends while it runs, so a
//! job whose node died is claimed again once the lease has run out. Every change after
//! the claim names the worker, so a node that lost its lease cannot overwrite the work of
//! the node that took the job over.

use crate::{Dialect, Result, Store, WriteTx};
use sqlx::Row;

/// A job as stored (without its payload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub kind: String,
    /// queued, running, done or dead
    pub status: String,
    /// The feed source of a `feed` job; empty for the others.
    pub source: String,
    pub format: String,
    /// The period a scheduled job is for (a date, a month); one job per kind and period.
    pub period_key: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Not claimed before this time (the back-off after a failed attempt).
    pub run_after: String,
    pub lease_until: Option<String>,
    pub locked_by: Option<String>,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub result: Option<String>,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A job to queue.
#[derive(Debug, Clone)]
pub struct NewJob<'a> {
    pub kind: &'a str,
    pub source: &'a str,
    pub format: &'a str,
    pub payload: &'a [u8],
    pub period_key: Option<&'a str>,
    pub max_attempts: i64,
    pub created_by: &'a str,
}

/// What to list; newest first.
#[derive(Debug, Clone, Default)]
pub struct JobFilter<'a> {
    pub kind: Option<&'a str>,
    pub status: Option<&'a str>,
    pub created_by: Option<&'a str>,
    /// Only jobs with a smaller id (the next page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

const JOB_COLUMNS: &str =
    "id, kind, status, source, format, period_key, attempts, max_attempts, run_after, \
     lease_until, locked_by, progress_done, progress_total, result, error, created_by, created_at, \
     started_at, finished_at";

fn job_from_row(r: &sqlx::any::AnyRow) -> Result<JobRow> {
    Ok(JobRow {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        status: r.try_get(2)?,
        source: r.try_get(3)?,
        format: r.try_get(4)?,
        period_key: r.try_get(5)?,
        attempts: r.try_get(6)?,
        max_attempts: r.try_get(7)?,
        run_after: r.try_get(8)?,
        lease_until: r.try_get(9)?,
        locked_by: r.try_get(10)?,
        progress_done: r.try_get(11)?,
        progress_total: r.try_get(12)?,
        result: r.try_get(13)?,
        error: r.try_get(14)?,
        created_by: r.try_get(15)?,
        created_at: r.try_get(16)?,
        started_at: r.try_get(17)?,
        finished_at: r.try_get(18)?,
    })
}

/// Runnable: queued and due, or running under a lease that has run out.
const RUNNABLE: &str =
    "((status = 'queued' AND run_after <= ?) OR (status = 'running' AND lease_until < ?))";

impl Store {
    /// Job bookkeeping is not in the audit chain, so it does not queue behind the audit
    /// head's lock (a long cycle holds it; heartbeats must not wait for it). SQLite's
    /// writers of this process still take their turn in the FIFO.
    async fn job_write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.sqlite_writer {
            Some(queue) => Some(queue.clone().lock_owned().await),
            None => None,
        }
    }

    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        let sql = self.sql(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"));
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Whether the job still holds a payload (a feed upload is dropped once ingested).
    pub async fn job_has_payload(&self, id: i64) -> Result<bool> {
        let sql = self.sql("SELECT CAST(LENGTH(payload) AS BIGINT) FROM jobs WHERE id = ?");
        let len: Option<i64> = sqlx::query_scalar(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(len.unwrap_or(0) > 0)
    }

    pub async fn job_for_period(&self, kind: &str, period_key: &str) -> Result<Option<JobRow>> {
        let sql = self.sql(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = ? AND period_key = ?"
        ));
        let row = sqlx::query(&sql)
            .bind(kind)
            .bind(period_key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn jobs_page(&self, f: &JobFilter<'_>) -> Result<Vec<JobRow>> {
        let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id < ?");
        for (column, value) in [
            ("kind", f.kind),
            ("status", f.status),
            ("created_by", f.created_by),
        ] {
            if value.is_some() {
                sql.push_str(&format!(" AND {column} = ?"));
            }
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let sql = self.sql(&sql);
        let mut q = sqlx::query(&sql).bind(f.before_id.unwrap_or(i64::MAX));
        for value in [f.kind, f.status, f.created_by].into_iter().flatten() {
            q = q.bind(value);
        }
        let rows = q.bind(f.limit).fetch_all(&self.pool).await?;
        rows.iter().map(job_from_row).collect()
    }

    /// Queues a scheduled job for its period unless one exists already (inserted by this
    /// node or another): `Some(id)` when this call created it.
    pub async fn queue_period_job(&self, job: &NewJob<'_>, now: &str) -> Result<Option<i64>> {
        let _turn = self.job_write_turn().await;
        let sql = self.sql(
            "INSERT INTO jobs (kind, status, source, format, payload, period_key, max_attempts, run_after, created_by, created_at) \
             VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, period_key) DO NOTHING RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(job.kind)
            .bind(job.source)
            .bind(job.format)
            .bind(job.payload)
            .bind(job.period_key)
            .bind(job.max_attempts)
            .bind(now)
            .bind(job.created_by)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Claims the next runnable job for `worker` until `lease_until`, counting an attempt;
    /// returns it with its payload. A job taken back from a worker whose lease ran out
    /// keeps a note of that in `error`.
    pub async fn claim_job(
        &self,
        worker: &str,
        now: &str,
        lease_until: &str,
    ) -> Result<Option<(JobRow, Vec<u8>)>> {
        let _turn = self.job_write_turn().await;
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = self.sql(&format!(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = ?, lease_until = ?, started_at = ?, \
             error = CASE WHEN status = 'running' THEN 'the node running the previous attempt stopped before it finished (its lease ran out)' ELSE error END \
             WHERE id = (SELECT id FROM jobs WHERE {RUNNABLE} ORDER BY run_after, id LIMIT 1{lock}) AND {RUNNABLE} \
             RETURNING {JOB_COLUMNS}, payload"
        ));
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(lease_until)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(now)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((job_from_row(&r)?, r.try_get(19)?)))
            .transpose()
    }

    /// Extends the lease and records progress; `false` when `worker` no longer holds the job.
    pub async fn heartbeat_job(
        &self,
        id: i64,
        worker: &str,
        lease_until: &str,
        progress: (i64, Option<i64>),
    ) -> Result<bool> {
        let _turn = self.job_write_turn().await;
        let sql = self.sql(
            "UPDATE jobs SET lease_until = ?, progress_done = ?, progress_total = ? \
             WHERE id = ? AND locked_by = ? AND status = 'running'",
        );
        let done = sqlx::query(&sql)
            .bind(lease_until)
            .bind(progress.0)
            .bind(progress.1)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The job succeeded. Its payload (a feed upload holds personal data) is dropped.
    /// `false` when `worker` no longer holds it (another node took it over).
    pub async fn complete_job(
        &self,
        id: i64,
        worker: &str,
        result: &str,
        progress: (i64, Option<i64>),
        now: &str,
    ) -> Result<bool> {
        let _turn = self.job_write_turn().await;
        let sql = self.sql(
            "UPDATE jobs SET status = 'done', result = ?, error = NULL, finished_at = ?, payload = ?, \
             lease_until = NULL, locked_by = NULL, progress_done = ?, progress_total = ? \
             WHERE id = ? AND locked_by = ? AND status = 'running'",
        );
        let done = sqlx::query(&sql)
            .bind(result)
            .bind(now)
            .bind(Vec::<u8>::new())
            .bind(progress.0)
            .bind(progress.1)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The attempt failed: queued again from `retry_at`, or `dead` when `retry_at` is
    /// `None` (the last attempt, or an error that another attempt cannot fix). A dead job
    /// keeps its payload so that staff can retry it.
    pub async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<&str>,
        now: &str,
    ) -> Result<bool> {
        let _turn = self.job_write_turn().await;
        let sql = self.sql(
            "UPDATE jobs SET status = ?, error = ?, run_after = COALESCE(?, run_after), finished_at = ?, \
             lease_until = NULL, locked_by = NULL \
             WHERE id = ? AND locked_by = ? AND status = 'running'",
        );
        let done = sqlx::query(&sql)
            .bind(if retry_at.is_some() { "queued" } else { "dead" })
            .bind(error)
            .bind(retry_at)
            .bind(retry_at.is_none().then_some(now))
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a job back unfinished (the node is shutting down): runnable at once by
    /// another node, and the attempt does not count.
    pub async fn release_job(&self, id: i64, worker: &str, now: &str) -> Result<bool> {
        let _turn = self.job_write_turn().await;
        let sql = self.sql(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, run_after = ?, lease_until = NULL, locked_by = NULL \
             WHERE id = ? AND locked_by = ? AND status = 'running'",
        );
        let done = sqlx::query(&sql)
            .bind(now)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl WriteTx {
    /// Queues a job in the caller's transaction (with its audit entry).
    pub async fn queue_job(&mut self, job: &NewJob<'_>, now: &str) -> Result<i64> {
        let sql = self.sql(
            "INSERT INTO jobs (kind, status, source, format, payload, period_key, max_attempts, run_after, created_by, created_at) \
             VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        );
        let row = sqlx::query(&sql)
            .bind(job.kind)
            .bind(job.source)
            .bind(job.format)
            .bind(job.payload)
            .bind(job.period_key)
            .bind(job.max_attempts)
            .bind(now)
            .bind(job.created_by)
            .bind(now)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get(0)?)
    }

    /// A dead job is queued again with fresh attempts; `None` unless it was dead.
    pub async fn retry_dead_job(&mut self, id: i64, now: &str) -> Result<Option<JobRow>> {
        let sql = self.sql(&format!(
            "UPDATE jobs SET status = 'queued', attempts = 0, run_after = ?, finished_at = NULL \
             WHERE id = ? AND status = 'dead' RETURNING {JOB_COLUMNS}"
        ));
        let row = sqlx::query(&sql)
            .bind(now)
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }
}
