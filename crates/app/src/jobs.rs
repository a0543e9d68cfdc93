//! Background jobs: a feed uploaded over HTTP, the daily cycle and the monthly payment
//! export. Jobs are rows in the database that any node's workers claim with a lease, so
//! several nodes sharing one PostgreSQL never run a job at the same time, a node that
//! dies loses its jobs to the others when the lease runs out, and a failed attempt is
//! retried with back-off until the job is `dead` (listed for staff, who may retry it).
//! Every handler is safe to run again: the cycle and an open month's export give the
//! same result twice, and a feed record is applied once per source and record id.

use crate::access::require;
use crate::feeds::FeedFormat;
use crate::staff::{ApiClient, Staff};
use crate::{parse_stored_date, Actor, App, AppError, Result};
use lifecert_crypto::Field;
use lifecert_domain::{Action, YearMonth};
use lifecert_store::{JobFilter, JobRow, NewJob};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Uploads above this are refused: a larger feed goes through `lifecert feed ingest`.
pub const MAX_FEED_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// Attempts before a job is dead.
pub const MAX_ATTEMPTS: i64 = 5;

/// Back-off after a failed attempt: 30 s, 1, 2, 4, 8 minutes, ... at most an hour.
pub fn backoff(attempts: i64) -> chrono::Duration {
    let exponent = attempts.clamp(1, 8) - 1;
    chrono::Duration::seconds((30i64 << exponent).min(3600))
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// An uploaded feed to ingest.
    Feed,
    /// The daily certification cycle for a date (the period).
    Cycle,
    /// The payment export of a month (the period).
    PaymentExport,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Feed, JobKind::Cycle, JobKind::PaymentExport];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Feed => "feed",
            JobKind::Cycle => "cycle",
            JobKind::PaymentExport => "payment_export",
        }
    }

    pub fn parse(s: &str) -> Result<JobKind> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| AppError::invalid("kind", "use feed, cycle or payment_export"))
    }
}

pub const JOB_STATUSES: [&str; 4] = ["queued", "running", "done", "dead"];

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobProgress {
    pub done: i64,
    /// Unknown until the job has counted its work.
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobView {
    pub id: i64,
    /// feed, cycle or payment_export
    pub kind: String,
    /// queued (waiting, perhaps for a retry), running, done or dead (gave up: see `error`)
    pub status: String,
    /// The feed source of a feed job.
    pub source: Option<String>,
    /// The date (cycle) or month (payment_export) a scheduled job is for.
    pub period: Option<String>,
    pub attempts: i64,
    pub max_attempts: i64,
    /// Not started before this time (the back-off after a failed attempt).
    pub run_after: String,
    /// The worker running it (node and worker number).
    pub locked_by: Option<String>,
    pub lease_until: Option<String>,
    pub progress: JobProgress,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The job's summary once done (a feed's counts, the cycle's report, the export's
    /// totals).
    #[schema(value_type = Option<Object>)]
    pub summary: Option<serde_json::Value>,
    /// Why the last attempt failed.
    pub error: Option<String>,
}

fn view(j: JobRow) -> JobView {
    JobView {
        id: j.id,
        kind: j.kind,
        status: j.status,
        source: (!j.source.is_empty()).then_some(j.source),
        period: j.period_key,
        attempts: j.attempts,
        max_attempts: j.max_attempts,
        run_after: j.run_after,
        locked_by: j.locked_by,
        lease_until: j.lease_until,
        progress: JobProgress {
            done: j.progress_done,
            total: j.progress_total,
        },
        created_by: j.created_by,
        created_at: j.created_at,
        started_at: j.started_at,
        finished_at: j.finished_at,
        summary: j.result.and_then(|r| serde_json::from_str(&r).ok()),
        error: j.error,
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobList {
    /// Newest first.
    pub items: Vec<JobView>,
    /// Pass as `before_id` for the next page; absent on the last page.
    pub next_before_id: Option<i64>,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobQuery {
    pub kind: Option<String>,
    pub status: Option<String>,
    pub before_id: Option<i64>,
    /// 1–500, default 50.
    pub limit: Option<i64>,
}

/// Who runs jobs, and how.
#[derive(Debug, Clone)]
pub struct JobWorker {
    /// Unique among live workers: it is written on the jobs this worker holds.
    pub name: String,
    /// How long a claim holds without a heartbeat; heartbeats come every third of it.
    pub lease: Duration,
    /// Where a scheduled payment export writes its CSV file; none: the ledger only
    /// (integrations fetch the instructions from the API).
    pub payment_export_dir: Option<PathBuf>,
}

impl JobWorker {
    /// A worker for this process (`lifecert jobs run-pending`, tests).
    pub fn local(lease: Duration) -> JobWorker {
        JobWorker {
            name: format!("{}/w0", node_name()),
            lease,
            payment_export_dir: None,
        }
    }
}

/// `host:pid:start` — unique per process even when a pid is reused after a restart.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string());
    let start = chrono::Utc::now().timestamp_millis() % 1_000_000;
    format!("{host}:{}:{start}", std::process::id())
}

/// Tells running jobs that the process is stopping: a job still running `grace` after
/// the signal is released (queued again for another node) instead of finished.
#[derive(Clone)]
pub struct Shutdown {
    signal: Option<tokio::sync::watch::Receiver<bool>>,
    grace: Duration,
}

impl Shutdown {
    /// Never stops (a drain from the command line runs to its end).
    pub fn never() -> Shutdown {
        Shutdown {
            signal: None,
            grace: Duration::ZERO,
        }
    }

    /// Stops once `signal` turns true.
    pub fn on(signal: tokio::sync::watch::Receiver<bool>, grace: Duration) -> Shutdown {
        Shutdown {
            signal: Some(signal),
            grace,
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.signal.as_ref().is_some_and(|s| *s.borrow())
    }

    /// Completes when the process is stopping.
    pub async fn stopping(&self) {
        match &self.signal {
            Some(signal) => {
                let mut signal = signal.clone();
                if signal.wait_for(|stop| *stop).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }

    async fn deadline(&self) {
        self.stopping().await;
        tokio::time::sleep(self.grace).await;
    }
}

/// What became of one claimed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    Done,
    /// Failed; queued again after its back-off.
    Retrying,
    /// Failed for the last time, or with an error another attempt cannot fix.
    Dead,
    /// Given back unfinished because the process is stopping.
    Released,
    /// Another worker took it over (this one's lease ran out); its result was not written.
    LostLease,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    pub id: i64,
    pub kind: String,
    pub outcome: JobOutcome,
}

/// What a drain did (`lifecert jobs run-pending`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrainReport {
    pub ran: u64,
    pub done: u64,
    pub retrying: u64,
    pub dead: u64,
    pub released: u64,
    pub lost_lease: u64,
    pub jobs: Vec<JobRun>,
}

/// Progress a handler reports; the heartbeat writes it to the job's row.
#[derive(Clone, Default)]
pub struct ProgressHandle(Arc<Mutex<(i64, Option<i64>)>>);

impl ProgressHandle {
    pub fn set(&self, done: i64, total: Option<i64>) {
        if let Ok(mut p) = self.0.lock() {
            *p = (done, total);
        }
    }

    pub fn get(&self) -> (i64, Option<i64>) {
        self.0.lock().map(|p| *p).unwrap_or_default()
    }
}

/// Errors that another attempt cannot fix: the job is dead at once.
fn is_permanent(e: &AppError) -> bool {
    !matches!(
        e,
        AppError::Store(_) | AppError::Io(_) | AppError::Locked(_)
    )
}

/// The message kept on the job: ours, never a database's or a cipher's (which could
/// carry internals); those are in the log.
fn job_error(e: &AppError) -> String {
    match e {
        AppError::Invalid { .. }
        | AppError::NotFound(_)
        | AppError::Io(_)
        | AppError::Conflict { .. } => e.to_string(),
        _ => format!(
            "{}: the job could not be processed; the error is logged",
            e.code()
        ),
    }
}

impl App {
    /// Queues an uploaded feed from an integration with the `feeds` scope.
    pub async fn queue_feed(
        &self,
        client: &ApiClient,
        source: &str,
        format: FeedFormat,
        body: &[u8],
    ) -> Result<JobView> {
        client.require_scope("feeds")?;
        let source = self.source(source)?;
        if body.is_empty() {
            return Err(AppError::invalid("body", "the feed is empty"));
        }
        // The upload holds ID numbers and names: stored encrypted like every other field.
        let payload = self.keys.encrypt(Field::Other, body);
        let actor = Actor::Integration(client.name.clone());
        let format_name = match format {
            FeedFormat::Csv => "csv",
            FeedFormat::Jsonl => "jsonl",
        };
        let created_by = actor.label();
        let mut tx = self.store.begin_write().await?;
        let id = tx
            .queue_job(
                &NewJob {
                    kind: JobKind::Feed.as_str(),
                    source: &source.name,
                    format: format_name,
                    payload: &payload,
                    period_key: None,
                    max_attempts: MAX_ATTEMPTS,
                    created_by: &created_by,
                },
                &self.now_string(),
            )
            .await?;
        self.audit(
            &mut tx,
            &actor,
            "feed.queued",
            None,
            serde_json::json!({"job_id": id, "source": source.name, "bytes": body.len()}),
        );
        tx.commit().await?;
        self.job_of(client, id).await
    }

    fn lease_end(&self, lease: Duration) -> String {
        let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1));
        (self.clock.now() + lease).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    /// Claims the next runnable job (queued and due, or held under a lease that ran out)
    /// and runs it to an outcome; `None` when there is nothing to run.
    pub async fn run_next_job(
        &self,
        worker: &JobWorker,
        shutdown: &Shutdown,
    ) -> Result<Option<JobRun>> {
        if shutdown.is_stopping() {
            return Ok(None);
        }
        let claimed = self
            .store
            .claim_job(
                &worker.name,
                &self.now_string(),
                &self.lease_end(worker.lease),
            )
            .await?;
        let Some((job, payload)) = claimed else {
            return Ok(None);
        };
        let outcome = self.run_claimed(worker, &job, payload, shutdown).await?;
        Ok(Some(JobRun {
            id: job.id,
            kind: job.kind,
            outcome,
        }))
    }

    /// Runs runnable jobs until none is left.
    pub async fn drain_jobs(&self, worker: &JobWorker, shutdown: &Shutdown) -> Result<DrainReport> {
        let mut report = DrainReport::default();
        while let Some(run) = self.run_next_job(worker, shutdown).await? {
            report.ran += 1;
            match run.outcome {
                JobOutcome::Done => report.done += 1,
                JobOutcome::Retrying => report.retrying += 1,
                JobOutcome::Dead => report.dead += 1,
                JobOutcome::Released => report.released += 1,
                JobOutcome::LostLease => report.lost_lease += 1,
            }
            report.jobs.push(run);
        }
        Ok(report)
    }

    /// Runs runnable jobs until none is left, as this process (tests drain with it).
    pub async fn run_pending_jobs(&self) -> Result<usize> {
        let worker = JobWorker::local(Duration::from_secs(300));
        Ok(self.drain_jobs(&worker, &Shutdown::never()).await?.ran as usize)
    }

    #[tracing::instrument(skip_all, fields(job = job.id, kind = %job.kind, attempt = job.attempts))]
    async fn run_claimed(
        &self,
        worker: &JobWorker,
        job: &JobRow,
        payload: Vec<u8>,
        shutdown: &Shutdown,
    ) -> Result<JobOutcome> {
        if job.attempts > job.max_attempts {
            // Taken back from a node that stopped during the last allowed attempt: a job
            // that brings nodes down must not go round them forever.
            let error = format!(
                "{} attempts, the last ended by its node stopping (lease ran out)",
                job.max_attempts
            );
            self.store
                .fail_job(job.id, &worker.name, &error, None, &self.now_string())
                .await?;
            tracing::error!("job dead: its node stopped during the last attempt");
            return Ok(JobOutcome::Dead);
        }
        let progress = ProgressHandle::default();
        let handler = self.handle_job(worker, job, payload, &progress);
        tokio::pin!(handler);
        let period = (worker.lease / 3).max(Duration::from_millis(100));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let deadline = shutdown.deadline();
        tokio::pin!(deadline);
        let result = loop {
            tokio::select! {
                r = &mut handler => break r,
                _ = beat.tick() => {
                    match self.store.heartbeat_job(job.id, &worker.name, &self.lease_end(worker.lease), progress.get()).await {
                        Ok(true) => {}
                        Ok(false) => {
                            // Another worker holds it now; what this one had not committed
                            // is dropped with the handler.
                            tracing::warn!("job lease lost to another worker; stopping this attempt");
                            return Ok(JobOutcome::LostLease);
                        }
                        Err(e) => tracing::warn!(error = %e, "job heartbeat failed; retrying"),
                    }
                }
                _ = &mut deadline => {
                    let released = self.store.release_job(job.id, &worker.name, &self.now_string()).await?;
                    tracing::info!(released, "stopping: job given back unfinished");
                    return Ok(JobOutcome::Released);
                }
            }
        };
        let now = self.now_string();
        let (written, outcome) = match result {
            Ok(summary) => {
                let text = summary.to_string();
                let written = self
                    .store
                    .complete_job(job.id, &worker.name, &text, progress.get(), &now)
                    .await?;
                tracing::info!("job done");
                (written, JobOutcome::Done)
            }
            Err(e) => {
                let message = job_error(&e);
                let last = job.attempts >= job.max_attempts;
                if is_permanent(&e) || last {
                    tracing::error!(error = %e, "job dead");
                    let written = self
                        .store
                        .fail_job(job.id, &worker.name, &message, None, &now)
                        .await?;
                    (written, JobOutcome::Dead)
                } else {
                    let at = (self.clock.now() + backoff(job.attempts))
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    tracing::warn!(error = %e, retry_at = %at, "job attempt failed; will retry");
                    let written = self
                        .store
                        .fail_job(job.id, &worker.name, &message, Some(&at), &now)
                        .await?;
                    (written, JobOutcome::Retrying)
                }
            }
        };
        Ok(if written {
            outcome
        } else {
            tracing::warn!("job finished after another worker took it over; result not written");
            JobOutcome::LostLease
        })
    }

    /// The work itself; the returned summary is kept on the job.
    async fn handle_job(
        &self,
        worker: &JobWorker,
        job: &JobRow,
        payload: Vec<u8>,
        progress: &ProgressHandle,
    ) -> Result<serde_json::Value> {
        let period = || {
            job.period_key.clone().ok_or_else(|| {
                AppError::Corrupt(format!("{} job {} has no period", job.kind, job.id))
            })
        };
        match JobKind::parse(&job.kind).map_err(|_| {
            AppError::Corrupt(format!(
                "job {} is of an unknown kind {:?}",
                job.id, job.kind
            ))
        })? {
            JobKind::Feed => {
                if payload.is_empty() {
                    return Err(AppError::invalid(
                        "job",
                        "the upload is no longer stored: upload the feed again",
                    ));
                }
                let source = self.source(&job.source)?;
                let bytes = self.keys.decrypt(Field::Other, &payload)?;
                let format = FeedFormat::parse(&job.format)?;
                let lines = bytes
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                    .count() as i64;
                let records = match format {
                    FeedFormat::Csv => lines - 1,
                    FeedFormat::Jsonl => lines,
                }
                .max(0);
                progress.set(0, Some(records));
                let summary = self.ingest_feed_bytes(&source, bytes, format).await?;
                progress.set(
                    summary.records as i64,
                    Some(records.max(summary.records as i64)),
                );
                Ok(serde_json::to_value(&summary).unwrap_or_default())
            }
            JobKind::Cycle => {
                let as_of = parse_stored_date(&period()?)?;
                progress.set(0, Some(1));
                let report = self.run_cycle(&Actor::System, as_of).await?;
                progress.set(report.evaluated, Some(report.evaluated));
                Ok(serde_json::to_value(&report).unwrap_or_default())
            }
            JobKind::PaymentExport => {
                let key = period()?;
                let month = YearMonth::parse(&key).map_err(|e| AppError::Corrupt(e.to_string()))?;
                progress.set(0, Some(1));
                let report = self
                    .export_month(month, worker.payment_export_dir.as_deref())
                    .await;
                let report = match report {
                    Err(AppError::Conflict {
                        code: "month_closed",
                        ..
                    }) => {
                        // Exported and closed by hand before its day: nothing left to do.
                        return Ok(
                            serde_json::json!({"month": key, "skipped": "the month is closed"}),
                        );
                    }
                    r => r?,
                };
                let lines =
                    (report.pay + report.withhold + report.back_pay + report.stop + report.recover)
                        as i64;
                progress.set(lines, Some(lines));
                Ok(serde_json::to_value(&report).unwrap_or_default())
            }
        }
    }

    /// The scheduled export: into `dir` as `payments-YYYY-MM.csv`, or, with no folder,
    /// through a private temporary folder removed at once (the ledger is what counts;
    /// integrations fetch the instructions over the API).
    async fn export_month(
        &self,
        month: YearMonth,
        dir: Option<&std::path::Path>,
    ) -> Result<crate::payments::ExportReport> {
        let file_name = format!("payments-{month}.csv");
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| AppError::Io(format!("cannot create {}: {e}", dir.display())))?;
            return self
                .export_payments(&Actor::System, month, &dir.join(file_name))
                .await;
        }
        let tmp = std::env::temp_dir().join(format!(
            "lifecert-export-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&tmp)
            .map_err(|e| AppError::Io(format!("cannot create {}: {e}", tmp.display())))?;
        let report = self
            .export_payments(&Actor::System, month, &tmp.join(file_name))
            .await;
        let _ = std::fs::remove_dir_all(&tmp);
        report
    }

    fn job_filter<'a>(&self, q: &'a JobQuery) -> Result<JobFilter<'a>> {
        if let Some(kind) = &q.kind {
            JobKind::parse(kind)?;
        }
        if let Some(status) = &q.status {
            if !JOB_STATUSES.contains(&status.as_str()) {
                return Err(AppError::invalid(
                    "status",
                    "use queued, running, done or dead",
                ));
            }
        }
        Ok(JobFilter {
            kind: q.kind.as_deref(),
            status: q.status.as_deref(),
            created_by: None,
            before_id: q.before_id,
            limit: q.limit.unwrap_or(50).clamp(1, 500),
        })
    }

    async fn job_list(&self, filter: &JobFilter<'_>) -> Result<JobList> {
        let rows = self.store.jobs_page(filter).await?;
        let next_before_id = (rows.len() as i64 == filter.limit)
            .then(|| rows.last().map(|j| j.id))
            .flatten();
        Ok(JobList {
            items: rows.into_iter().map(view).collect(),
            next_before_id,
        })
    }

    /// Every job (the command line, which is the operator).
    pub async fn list_jobs(&self, q: &JobQuery) -> Result<JobList> {
        self.job_list(&self.job_filter(q)?).await
    }

    /// Jobs for staff who may watch them (supervisors, auditors). Jobs hold counts and
    /// messages, no personal data, so they are not scoped by region.
    pub async fn jobs_for_staff(&self, staff: &Staff, q: &JobQuery) -> Result<JobList> {
        require(staff, Action::ViewJobs)?;
        self.job_list(&self.job_filter(q)?).await
    }

    pub async fn job_for_staff(&self, staff: &Staff, id: i64) -> Result<JobView> {
        require(staff, Action::ViewJobs)?;
        let job = self
            .store
            .job(id)
            .await?
            .ok_or_else(|| AppError::NotFound("job not found".to_string()))?;
        Ok(view(job))
    }

    /// An integration's own feed jobs.
    pub async fn jobs_of(&self, client: &ApiClient, q: &JobQuery) -> Result<JobList> {
        let label = Actor::Integration(client.name.clone()).label();
        let mut filter = self.job_filter(q)?;
        filter.created_by = Some(&label);
        self.job_list(&filter).await
    }

    /// A job, for the integration that submitted it.
    pub async fn job_of(&self, client: &ApiClient, id: i64) -> Result<JobView> {
        let label = Actor::Integration(client.name.clone()).label();
        let job = self
            .store
            .job(id)
            .await?
            .filter(|j| j.created_by == label)
            .ok_or_else(|| AppError::NotFound("job not found".to_string()))?;
        Ok(view(job))
    }

    /// Queues a dead job again with fresh attempts (a supervisor, once the cause is fixed).
    pub async fn retry_job(&self, staff: &Staff, id: i64) -> Result<JobView> {
        require(staff, Action::RetryJob)?;
        self.retry_dead_job(&staff.actor(), id).await
    }

    /// The same from the command line.
    pub async fn retry_dead_job(&self, actor: &Actor, id: i64) -> Result<JobView> {
        let before = self
            .store
            .job(id)
            .await?
            .ok_or_else(|| AppError::NotFound("job not found".to_string()))?;
        if before.kind == JobKind::Feed.as_str() && before.status == "dead" {
            // Uploads that failed before dead jobs kept theirs have none left to retry.
            if !self.store.job_has_payload(id).await? {
                return Err(AppError::conflict(
                    "invalid_transition",
                    "this feed's upload is no longer stored: upload the feed again",
                ));
            }
        }
        let mut tx = self.store.begin_write().await?;
        let Some(job) = tx.retry_dead_job(id, &self.now_string()).await? else {
            return Err(AppError::conflict(
                "invalid_transition",
                format!(
                    "job {id} is {}: only a dead job can be retried",
                    before.status
                ),
            ));
        };
        self.audit(
            &mut tx,
            actor,
            "job.retried",
            None,
            serde_json::json!({"job_id": id, "kind": job.kind, "period": job.period_key, "last_error": before.error}),
        );
        tx.commit().await?;
        Ok(view(job))
    }
}
