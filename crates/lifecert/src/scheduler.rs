//! The job runner of `lifecert serve`: a scheduler that queues the periodic jobs when
//! they are due (once per period, whatever the number of nodes) and workers that claim
//! and run queued jobs; plus the `lifecert jobs` commands. Stopping lets each running
//! job finish within a grace period and gives it back otherwise.

use crate::output::Output;
use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use lifecert_app::jobs::{JobQuery, JobWorker, Shutdown};
use lifecert_app::schedule::Schedule;
use lifecert_app::{Actor, App};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long an idle worker waits before looking for work again.
const POLL: Duration = Duration::from_secs(1);

/// `[scheduler]` in the settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerFile {
    enabled: Option<bool>,
    cycle_time: Option<String>,
    time_zone: Option<String>,
    payment_export_day: Option<u32>,
    workers: Option<usize>,
    payment_export_dir: Option<PathBuf>,
    lease_seconds: Option<u64>,
    tick_seconds: Option<u64>,
    shutdown_grace_seconds: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SchedulerSettings {
    /// Queue the periodic jobs (`serve` only; workers run either way).
    pub enabled: bool,
    pub schedule: Schedule,
    /// Job workers per `serve` process (0: this node runs no jobs).
    pub workers: usize,
    /// Where scheduled payment exports write their CSV; none: the ledger only.
    pub payment_export_dir: Option<PathBuf>,
    pub lease: Duration,
    /// How often the scheduler looks at the clock.
    pub tick: Duration,
    /// How long a running job may take to finish once the process is told to stop.
    pub shutdown_grace: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn env_parsed<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    env(name)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a valid number"))
        })
        .transpose()
}

impl SchedulerSettings {
    /// The file's `[scheduler]`, then `LIFECERT_SCHEDULER_*` variables.
    pub fn load(file: SchedulerFile) -> Result<SchedulerSettings> {
        let enabled = match env("LIFECERT_SCHEDULER_ENABLED") {
            Some(v) => match v.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                other => bail!("LIFECERT_SCHEDULER_ENABLED={other:?}: use true or false"),
            },
            None => file.enabled.unwrap_or(true),
        };
        let cycle_time = env("LIFECERT_SCHEDULER_CYCLE_TIME")
            .or(file.cycle_time)
            .unwrap_or_else(|| "02:00".to_string());
        let time_zone = env("LIFECERT_SCHEDULER_TIME_ZONE")
            .or(file.time_zone)
            .unwrap_or_else(|| "Asia/Shanghai".to_string());
        let day = env_parsed("LIFECERT_SCHEDULER_PAYMENT_EXPORT_DAY")?
            .or(file.payment_export_day)
            .unwrap_or(20);
        let schedule = Schedule::parse(&cycle_time, &time_zone, day)
            .map_err(|e| anyhow::anyhow!("scheduler.{e}"))?;
        let workers = env_parsed("LIFECERT_SCHEDULER_WORKERS")?
            .or(file.workers)
            .unwrap_or(1);
        if workers > 64 {
            bail!("scheduler.workers: {workers} is too many; use 0 to 64");
        }
        let seconds =
            |name: &str, value: Option<u64>, default: u64, min: u64| -> Result<Duration> {
                let s = env_parsed(&format!("LIFECERT_SCHEDULER_{}", name.to_uppercase()))?
                    .or(value)
                    .unwrap_or(default);
                if s < min {
                    bail!("scheduler.{name}: {s} is too short; at least {min}");
                }
                Ok(Duration::from_secs(s))
            };
        Ok(SchedulerSettings {
            enabled,
            schedule,
            workers,
            payment_export_dir: env("LIFECERT_SCHEDULER_PAYMENT_EXPORT_DIR")
                .map(PathBuf::from)
                .or(file.payment_export_dir),
            // Heartbeats come every third of the lease: at least a second apart.
            lease: seconds("lease_seconds", file.lease_seconds, 60, 3)?,
            tick: seconds("tick_seconds", file.tick_seconds, 30, 1)?,
            shutdown_grace: seconds("shutdown_grace_seconds", file.shutdown_grace_seconds, 20, 0)?,
        })
    }

    fn worker(&self, name: String) -> JobWorker {
        JobWorker {
            name,
            lease: self.lease,
            payment_export_dir: self.payment_export_dir.clone(),
        }
    }
}

/// The scheduler and workers of one `serve` process.
pub struct Background {
    stop: Arc<watch::Sender<bool>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the scheduler (if enabled) and the workers.
pub fn start(app: &App, settings: &SchedulerSettings) -> Background {
    let (stop, signal) = watch::channel(false);
    let shutdown = Shutdown::on(signal, settings.shutdown_grace);
    let node = lifecert_app::jobs::node_name();
    let mut tasks = Vec::new();
    if settings.enabled {
        let (app, schedule, shutdown) = (app.clone(), settings.schedule.clone(), shutdown.clone());
        let tick = settings.tick;
        tasks.push(tokio::spawn(async move {
            loop {
                match app.schedule_due_jobs(&schedule).await {
                    Ok(jobs) => {
                        for j in jobs.iter().filter(|j| j.created) {
                            tracing::info!(job = j.job_id, kind = %j.kind, period = %j.period, "job scheduled");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "scheduler: cannot queue due jobs; trying again"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = shutdown.stopping() => break,
                }
            }
        }));
    }
    for n in 0..settings.workers {
        let (app, shutdown) = (app.clone(), shutdown.clone());
        let worker = settings.worker(format!("{node}/w{n}"));
        tasks.push(tokio::spawn(async move {
            while !shutdown.is_stopping() {
                match app.run_next_job(&worker, &shutdown).await {
                    Ok(Some(_)) => continue,
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "job worker: cannot reach the job queue; trying again"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.stopping() => break,
                }
            }
        }));
    }
    if !settings.enabled || settings.workers == 0 {
        tracing::info!(
            scheduler = settings.enabled,
            workers = settings.workers,
            "job runner partly off on this node"
        );
    }
    Background {
        stop: Arc::new(stop),
        tasks,
    }
}

impl Background {
    /// Something that tells the runner to stop (from the shutdown signal's handler).
    pub fn stopper(&self) -> impl FnOnce() + Send + 'static {
        let stop = self.stop.clone();
        move || {
            let _ = stop.send(true);
        }
    }

    /// Stops and waits: running jobs finish within the grace period or are given back.
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a job runner task failed");
            }
        }
    }
}

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Run every runnable job (queued and due, or abandoned by a stopped node), then exit
    RunPending,
    /// List jobs, newest first
    List {
        /// feed, cycle or payment_export
        #[arg(long)]
        kind: Option<String>,
        /// queued, running, done or dead
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue the periodic jobs due now (the cycle, the payment export); idempotent
    Schedule,
    /// Queue a dead job again with fresh attempts
    Retry {
        #[arg(long)]
        id: i64,
    },
}

pub async fn run_jobs_command(
    app: &App,
    settings: &Settings,
    actor: &Actor,
    command: JobsCommand,
    out: Output,
) -> Result<()> {
    match command {
        JobsCommand::RunPending => {
            let s = &settings.scheduler;
            let (stop, signal) = watch::channel(false);
            let shutdown = Shutdown::on(signal, s.shutdown_grace);
            let ctrl_c = tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    let _ = stop.send(true);
                }
            });
            let worker = s.worker(format!("{}/cli", lifecert_app::jobs::node_name()));
            let report = app.drain_jobs(&worker, &shutdown).await;
            ctrl_c.abort();
            let report = report?;
            out.finish(
                || {
                    let mut s = format!(
                        "{} jobs run: {} done, {} to retry later, {} dead",
                        report.ran, report.done, report.retrying, report.dead
                    );
                    if report.released > 0 {
                        s.push_str(&format!(", {} given back unfinished", report.released));
                    }
                    for j in &report.jobs {
                        s.push_str(&format!("\n  job {} ({}): {:?}", j.id, j.kind, j.outcome));
                    }
                    s
                },
                &report,
            );
        }
        JobsCommand::List {
            kind,
            status,
            limit,
        } => {
            let list = app
                .list_jobs(&JobQuery {
                    kind,
                    status,
                    before_id: None,
                    limit: Some(limit),
                })
                .await?;
            out.finish(
                || {
                    if list.items.is_empty() {
                        return "No jobs.".to_string();
                    }
                    let mut s = String::new();
                    for j in &list.items {
                        let what = j.period.as_deref().or(j.source.as_deref()).unwrap_or("");
                        s.push_str(&format!(
                            "{:>6}  {:<15} {:<11} {:<8} attempt {}/{}  created {}",
                            j.id, j.kind, what, j.status, j.attempts, j.max_attempts, j.created_at
                        ));
                        if let Some(e) = &j.error {
                            s.push_str(&format!("\n        {e}"));
                        }
                        s.push('\n');
                    }
                    s.trim_end().to_string()
                },
                &list,
            );
        }
        JobsCommand::Schedule => {
            let jobs = app
                .schedule_due_jobs(&settings.scheduler.schedule)
                .await
                .context("cannot queue the due jobs")?;
            out.finish(
                || {
                    if jobs.is_empty() {
                        return "Nothing is due yet.".to_string();
                    }
                    jobs.iter()
                        .map(|j| {
                            format!(
                                "{} {}: job {} {}",
                                j.kind,
                                j.period,
                                j.job_id,
                                if j.created {
                                    "queued"
                                } else {
                                    "was queued already"
                                }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                },
                &serde_json::json!({ "jobs": jobs }),
            );
        }
        JobsCommand::Retry { id } => {
            let job = app.retry_dead_job(actor, id).await?;
            out.finish(
                || format!("Job {} ({}) queued again.", job.id, job.kind),
                &job,
            );
        }
    }
    Ok(())
}
