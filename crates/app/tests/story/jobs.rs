//! Stories of the job queue on both databases: retries with back-off until dead, a
//! stopped node's job claimed again once its lease runs out, heartbeats and progress,
//! one scheduled job per period whatever the number of nodes, exclusive claims.

use super::*;
use chrono::{DateTime, Duration, Utc};
use lifecert_app::jobs::{backoff, JobOutcome, JobQuery, JobWorker, Shutdown, MAX_ATTEMPTS};
use lifecert_app::schedule::Schedule;
use lifecert_app::Clock;
use std::sync::Mutex;

/// A clock that moves only when told, by any amount.
struct StepClock(Mutex<DateTime<Utc>>);

impl StepClock {
    fn at(rfc3339: &str) -> Arc<StepClock> {
        Arc::new(StepClock(Mutex::new(
            DateTime::parse_from_rfc3339(rfc3339)
                .unwrap()
                .with_timezone(&Utc),
        )))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }

    fn stamp(&self) -> String {
        self.now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    fn stamp_in(&self, by: Duration) -> String {
        (self.now() + by).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

impl Clock for StepClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }
}

async fn node(b: &Backend, clock: Arc<StepClock>) -> App {
    let store = Store::open(&b.url).await.unwrap();
    App::new(store, key_ring(Cipher::Aes256Gcm), Policy::default(), clock)
        .await
        .unwrap()
}

fn worker(name: &str, export_dir: Option<PathBuf>) -> JobWorker {
    JobWorker {
        name: name.to_string(),
        lease: std::time::Duration::from_secs(60),
        payment_export_dir: export_dir,
    }
}

/// The cycle due at 00:00 UTC and the export from the 20th: both due on 30 November,
/// only the cycle on the 10th.
fn schedule() -> Schedule {
    Schedule::parse("00:00", "UTC", 20).unwrap()
}

/// Three pensioners due on 10 December (a 30-day reminder on 30 November).
async fn roll(app: &App, b: &Backend) {
    let lines = [
        HEADER.to_string(),
        row(&id("110105", "19500101", 31), "甲", "2025-12-10", "2026-10"),
        row(&id("110105", "19500101", 33), "乙", "2025-12-10", "2026-10"),
        row(&id("110105", "19500101", 35), "丙", "2025-12-10", "2026-10"),
    ];
    import(app, &b.file("roll.csv", &(lines.join("\n") + "\n"))).await;
}

async fn job(app: &App, id: i64) -> lifecert_store::JobRow {
    app.store().job(id).await.unwrap().unwrap()
}

async fn drain(app: &App, w: &JobWorker) -> lifecert_app::jobs::DrainReport {
    app.drain_jobs(w, &Shutdown::never()).await.unwrap()
}

#[tokio::test]
async fn a_failing_job_is_retried_with_back_off_then_dead_and_a_supervisor_retries_it() {
    for b in backends().await {
        let n = b.name;
        let clock = StepClock::at("2026-11-30T09:00:00Z");
        let app = node(&b, clock.clone()).await;
        roll(&app, &b).await;
        let scheduled = app.schedule_due_jobs(&schedule()).await.unwrap();
        assert_eq!(
            scheduled
                .iter()
                .map(|j| (j.kind.as_str(), j.period.as_str(), j.created))
                .collect::<Vec<_>>(),
            [
                ("cycle", "2026-11-30", true),
                ("payment_export", "2026-11", true)
            ],
            "{n}"
        );
        let export = scheduled[1].job_id;
        // The export folder cannot be made (its parent is a file): an I/O error, which
        // another attempt might not have.
        let blocker = b.file("not-a-folder", "");
        let broken = worker("node-a/w0", Some(blocker.join("exports")));

        let first = drain(&app, &broken).await;
        assert_eq!((first.ran, first.done, first.retrying), (2, 1, 1), "{n}");
        let mut expected_wait = Vec::new();
        for attempt in 1..MAX_ATTEMPTS {
            let j = job(&app, export).await;
            assert_eq!((j.status.as_str(), j.attempts), ("queued", attempt), "{n}");
            assert_eq!(j.run_after, clock.stamp_in(backoff(attempt)), "{n}");
            assert!(
                j.error.as_deref().unwrap().contains("cannot create"),
                "{n}: {:?}",
                j.error
            );
            assert!(j.locked_by.is_none() && j.lease_until.is_none(), "{n}");
            // Not before its time.
            clock.advance(backoff(attempt) - Duration::seconds(1));
            assert_eq!(drain(&app, &broken).await.ran, 0, "{n}");
            clock.advance(Duration::seconds(1));
            expected_wait.push(backoff(attempt).num_seconds());
            let r = drain(&app, &broken).await;
            assert_eq!(r.ran, 1, "{n}");
        }
        assert_eq!(expected_wait, [30, 60, 120, 240], "{n}");
        let dead = job(&app, export).await;
        assert_eq!(
            (dead.status.as_str(), dead.attempts),
            ("dead", MAX_ATTEMPTS),
            "{n}"
        );
        assert!(dead.finished_at.is_some(), "{n}");
        clock.advance(Duration::hours(2));
        assert_eq!(
            drain(&app, &broken).await.ran,
            0,
            "a dead job stays dead: {n}"
        );

        // Listed for staff follow-up.
        let listed = app
            .list_jobs(&JobQuery {
                status: Some("dead".into()),
                ..JobQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            listed.items.iter().map(|j| j.id).collect::<Vec<_>>(),
            [export],
            "{n}"
        );

        // Cause fixed (ledger only), retried: fresh attempts, then done.
        let retried = app.retry_dead_job(&staff(), export).await.unwrap();
        assert_eq!(
            (retried.status.as_str(), retried.attempts),
            ("queued", 0),
            "{n}"
        );
        let fixed = worker("node-a/w0", None);
        let r = drain(&app, &fixed).await;
        assert_eq!((r.ran, r.done), (1, 1), "{n}");
        let done = job(&app, export).await;
        assert_eq!((done.status.as_str(), done.attempts), ("done", 1), "{n}");
        assert!(done.error.is_none(), "{n}");
        let summary: serde_json::Value =
            serde_json::from_str(done.result.as_deref().unwrap()).unwrap();
        assert_eq!(summary["month"], "2026-11", "{n}");
        assert_eq!(
            (done.progress_done, done.progress_total),
            (3, Some(3)),
            "{n}"
        );
        let err = app.retry_dead_job(&staff(), export).await.unwrap_err();
        assert_eq!(err.code(), "invalid_transition", "{n}");
        let retries = app
            .store()
            .list_audit(0, 1000, Some("job.retried"), None)
            .await
            .unwrap();
        assert_eq!(retries.len(), 1, "{n}");
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn a_stopped_nodes_job_is_claimed_again_when_its_lease_runs_out() {
    for b in backends().await {
        let n = b.name;
        let clock = StepClock::at("2026-11-10T09:00:00Z");
        let app = node(&b, clock.clone()).await;
        roll(&app, &b).await;
        let cycle = app.schedule_due_jobs(&schedule()).await.unwrap()[0].job_id;

        // Node A claims the cycle and is killed: it never finishes, never heartbeats.
        let (claimed, _) = app
            .store()
            .claim_job(
                "node-a/w0",
                &clock.stamp(),
                &clock.stamp_in(Duration::seconds(60)),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (claimed.id, claimed.attempts, claimed.status.as_str()),
            (cycle, 1, "running"),
            "{n}"
        );
        let b_worker = worker("node-b/w0", None);
        clock.advance(Duration::seconds(59));
        assert_eq!(
            drain(&app, &b_worker).await.ran,
            0,
            "the lease still holds: {n}"
        );

        clock.advance(Duration::seconds(2));
        let r = drain(&app, &b_worker).await;
        assert_eq!((r.ran, r.done), (1, 1), "{n}");
        let j = job(&app, cycle).await;
        assert_eq!((j.status.as_str(), j.attempts), ("done", 2), "{n}");
        assert_eq!((j.progress_done, j.progress_total), (3, Some(3)), "{n}");
        // Node A, come back, cannot overwrite what B did.
        assert!(!app
            .store()
            .complete_job(cycle, "node-a/w0", "{}", (0, None), &clock.stamp())
            .await
            .unwrap());
        assert!(!app
            .store()
            .heartbeat_job(
                cycle,
                "node-a/w0",
                &clock.stamp_in(Duration::seconds(60)),
                (0, None)
            )
            .await
            .unwrap());
        assert_eq!(job(&app, cycle).await.status, "done", "{n}");
        assert_eq!(
            app.store()
                .count_rows(Table::NotificationOutbox)
                .await
                .unwrap(),
            3,
            "{n}"
        );

        // A job that takes its node down every time is dead after the last attempt, not
        // passed round the nodes for ever.
        clock.advance(Duration::days(1));
        let next = app.schedule_due_jobs(&schedule()).await.unwrap()[0].job_id;
        for attempt in 1..=MAX_ATTEMPTS {
            let (j, _) = app
                .store()
                .claim_job(
                    "node-c/w0",
                    &clock.stamp(),
                    &clock.stamp_in(Duration::seconds(60)),
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!((j.id, j.attempts), (next, attempt), "{n}");
            clock.advance(Duration::seconds(61));
        }
        let r = drain(&app, &b_worker).await;
        assert_eq!((r.ran, r.dead), (1, 1), "{n}");
        let j = job(&app, next).await;
        assert_eq!(j.status, "dead", "{n}");
        assert!(
            j.error.as_deref().unwrap().contains("lease"),
            "{n}: {:?}",
            j.error
        );
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn heartbeats_extend_the_lease_and_record_progress_and_a_released_job_runs_at_once() {
    for b in backends().await {
        let n = b.name;
        let clock = StepClock::at("2026-11-10T09:00:00Z");
        let app = node(&b, clock.clone()).await;
        let cycle = app.schedule_due_jobs(&schedule()).await.unwrap()[0].job_id;
        let store = app.store();
        store
            .claim_job(
                "node-a/w0",
                &clock.stamp(),
                &clock.stamp_in(Duration::seconds(60)),
            )
            .await
            .unwrap()
            .unwrap();
        clock.advance(Duration::seconds(50));
        assert!(store
            .heartbeat_job(
                cycle,
                "node-a/w0",
                &clock.stamp_in(Duration::seconds(60)),
                (4, Some(10))
            )
            .await
            .unwrap());
        assert!(
            !store
                .heartbeat_job(
                    cycle,
                    "node-b/w0",
                    &clock.stamp_in(Duration::seconds(60)),
                    (9, Some(10))
                )
                .await
                .unwrap(),
            "{n}: only the holder beats"
        );
        let seen = app
            .list_jobs(&JobQuery::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|j| j.id == cycle)
            .unwrap();
        assert_eq!(
            (seen.progress.done, seen.progress.total),
            (4, Some(10)),
            "{n}"
        );
        assert_eq!(seen.locked_by.as_deref(), Some("node-a/w0"), "{n}");
        // Past the first lease's end, within the extended one: nobody else may claim it.
        clock.advance(Duration::seconds(20));
        assert_eq!(drain(&app, &worker("node-b/w0", None)).await.ran, 0, "{n}");

        // Node A stops gracefully: the job is given back, runnable at once, and the
        // interrupted attempt does not count.
        assert!(store
            .release_job(cycle, "node-a/w0", &clock.stamp())
            .await
            .unwrap());
        let j = job(&app, cycle).await;
        assert_eq!((j.status.as_str(), j.attempts), ("queued", 0), "{n}");
        let r = drain(&app, &worker("node-b/w0", None)).await;
        assert_eq!((r.ran, r.done), (1, 1), "{n}");
        assert_eq!(job(&app, cycle).await.attempts, 1, "{n}");

        // A worker told to stop claims nothing more.
        let (stop, signal) = tokio::sync::watch::channel(true);
        let stopping = Shutdown::on(signal, std::time::Duration::ZERO);
        clock.advance(Duration::days(1));
        app.schedule_due_jobs(&schedule()).await.unwrap();
        assert!(app
            .run_next_job(&worker("node-b/w0", None), &stopping)
            .await
            .unwrap()
            .is_none());
        drop(stop);
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn each_period_gets_one_job_and_each_job_one_runner_however_many_nodes() {
    for b in backends().await {
        let n = b.name;
        let clock = StepClock::at("2026-11-30T09:00:00Z");
        let nodes = [
            node(&b, clock.clone()).await,
            node(&b, clock.clone()).await,
            node(&b, clock.clone()).await,
        ];
        roll(&nodes[0], &b).await;
        // Every node schedules many times at once.
        let passes = futures_join(nodes.iter().flat_map(|app| {
            (0..5).map(move |_| async move { app.schedule_due_jobs(&schedule()).await.unwrap() })
        }))
        .await;
        let all: Vec<_> = passes.into_iter().flatten().collect();
        for kind in ["cycle", "payment_export"] {
            let of_kind: Vec<_> = all.iter().filter(|j| j.kind == kind).collect();
            assert_eq!(of_kind.len(), 15, "{n}");
            assert_eq!(
                of_kind.iter().filter(|j| j.created).count(),
                1,
                "{n}: {kind}"
            );
            assert!(of_kind.iter().all(|j| j.job_id == of_kind[0].job_id), "{n}");
        }
        let rows = nodes[0]
            .list_jobs(&JobQuery::default())
            .await
            .unwrap()
            .items;
        assert_eq!(rows.len(), 2, "{n}");

        // Every node drains at once: each job runs once.
        let reports = futures_join(nodes.iter().enumerate().map(|(i, app)| async move {
            app.drain_jobs(&worker(&format!("node-{i}/w0"), None), &Shutdown::never())
                .await
                .unwrap()
        }))
        .await;
        assert_eq!(reports.iter().map(|r| r.ran).sum::<u64>(), 2, "{n}");
        assert_eq!(reports.iter().map(|r| r.done).sum::<u64>(), 2, "{n}");
        assert!(reports
            .iter()
            .flat_map(|r| &r.jobs)
            .all(|j| j.outcome == JobOutcome::Done));
        let cycles = nodes[0]
            .store()
            .list_audit(0, 1000, Some("cycle.run"), None)
            .await
            .unwrap();
        assert_eq!(cycles.len(), 1, "{n}");
        assert_eq!(
            nodes[0]
                .store()
                .count_rows(Table::NotificationOutbox)
                .await
                .unwrap(),
            3,
            "{n}"
        );

        // The next day has its own cycle; the month's export is not queued again.
        clock.advance(Duration::days(1) - Duration::hours(9));
        let next = nodes[1].schedule_due_jobs(&schedule()).await.unwrap();
        assert_eq!(
            next.iter()
                .map(|j| (j.kind.as_str(), j.period.as_str(), j.created))
                .collect::<Vec<_>>(),
            [("cycle", "2026-12-01", true)],
            "{n}: December's export is due from the 20th"
        );
        for app in &nodes[1..] {
            app.store().clone().close().await;
        }
        let [first, _, _] = nodes;
        b.drop_pg(first).await;
    }
}

/// Runs futures concurrently and collects their results in order.
async fn futures_join<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    futures_util::future::join_all(futures).await
}
