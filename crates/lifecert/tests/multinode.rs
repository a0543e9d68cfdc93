//! Several `lifecert serve` nodes sharing one PostgreSQL: the scheduler of every node
//! asks for the day's cycle and the month's payment export, each job runs once, a node
//! killed (SIGKILL) while it holds a job loses it to another node when its lease runs out,
//! a node stopped with SIGTERM gives its job back, and the outbox ends with exactly one
//! reminder per pensioner due.
//!
//! Needs `LIFECERT_TEST_POSTGRES_URL` (an admin URL; each run creates and drops its own
//! database); skipped with a note without it, a failure in CI.
//!
//! A second test delivers: three nodes send 10,000 reminders through a fake SMS gateway
//! on loopback, one is killed (SIGKILL) with messages in flight and restarted, and every
//! reminder reaches the gateway under its own message id, an id arriving twice only for
//! a message the killed node had in flight (the gateway accepts it once).
//!
//! [`Cluster`] is the harness: it starts, kills, restarts and stops nodes, runs the CLI
//! and reads the database, and [`wait_for`] polls a condition with a deadline. Channel
//! settings come through `Cluster::new`'s `extra_settings`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate: failing loudly is the point

use chrono::{Duration as Days, Months, NaiveDate, Utc};
use sqlx::{Connection, Executor, Row};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_lifecert");
const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const PENSIONERS: usize = 10_000;

/// One multi-node test at a time: each starts three servers and loads 10,000 pensioners,
/// which is what a 2-core machine can take at once.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Tells apart the databases of tests in this process.
static CLUSTERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The admin URL, or `None` with a note (a failure in CI).
fn postgres_admin_url() -> Option<String> {
    match std::env::var("LIFECERT_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "LIFECERT_TEST_POSTGRES_URL is not set: CI must run the multi-node test"
            );
            eprintln!(
                "note: LIFECERT_TEST_POSTGRES_URL is not set; the multi-node test (three `lifecert serve` on one PostgreSQL) is skipped"
            );
            None
        }
    }
}

/// The admin URL with its database name replaced.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host = base[scheme_end..].split('/').next().unwrap_or_default();
    format!("{}{host}/{name}{query}", &base[..scheme_end])
}

/// A valid ID number (GB 11643 check character).
fn id(region: &str, birth: NaiveDate, seq: u32) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let first = format!("{region}{}{seq:03}", birth.format("%Y%m%d"));
    let sum: u32 = first
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    format!("{first}{}", CHECK[(sum % 11) as usize] as char)
}

/// Polls `check` every 100 ms until it gives a value; panics with `what` (and the
/// cluster's logs, through `on_timeout`) after `timeout`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    on_timeout: impl FnOnce() -> String,
    mut check: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                on_timeout()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One `lifecert serve` process.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A fresh database, a settings file and the nodes serving it.
pub struct Cluster {
    admin_url: String,
    db_name: String,
    pub url: String,
    pub dir: tempfile::TempDir,
    config: PathBuf,
    pub nodes: Vec<Node>,
    pub pool: sqlx::AnyPool,
    started: usize,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` on loopback; the status code, if the node answered.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

impl Cluster {
    /// A new database and a settings file: the scheduler as configured in
    /// `scheduler_settings` plus whatever `extra_settings` adds (other TOML tables).
    pub async fn new(admin_url: &str, scheduler_settings: &str, extra_settings: &str) -> Cluster {
        sqlx::any::install_default_drivers();
        let db_name = format!(
            "lifecert_multinode_{}_{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        let mut admin = sqlx::AnyConnection::connect(admin_url).await.unwrap();
        admin
            .execute(format!("DROP DATABASE IF EXISTS {db_name} WITH (FORCE)").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {db_name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = with_database(admin_url, &db_name);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("lifecert.toml");
        std::fs::write(
            &config,
            format!("[scheduler]\n{scheduler_settings}\n{extra_settings}\n"),
        )
        .unwrap();
        let cluster = Cluster {
            admin_url: admin_url.to_string(),
            db_name,
            pool: sqlx::any::AnyPoolOptions::new()
                .max_connections(2)
                .connect_lazy(&url)
                .unwrap(),
            url,
            dir,
            config,
            nodes: Vec::new(),
            started: 0,
        };
        // The schema, before any node or query needs it.
        cluster.cli_ok("migrate");
        cluster
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("LIFECERT_") {
                c.env_remove(&k);
            }
        }
        c.current_dir(self.dir.path())
            .env("LIFECERT_MASTER_KEY", KEY)
            .env("LIFECERT_DATABASE_URL", &self.url)
            .env("LIFECERT_CONFIG", &self.config);
        c
    }

    /// `lifecert --json ARGS`, which must succeed; its summary.
    pub fn cli_ok(&self, args: &str) -> serde_json::Value {
        let out = self
            .command()
            .arg("--json")
            .args(args.split_whitespace())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "lifecert {args}: {:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
    }

    /// Starts another node; returns its index.
    pub async fn start_node(&mut self) -> usize {
        let i = self.nodes.len();
        self.nodes.push(Node {
            port: 0,
            child: None,
            log: PathBuf::new(),
        });
        self.launch(i).await;
        i
    }

    /// Starts node `i` (again) on a fresh port and waits until it is ready.
    async fn launch(&mut self, i: usize) {
        self.started += 1;
        let port = free_port();
        let log = self
            .dir
            .path()
            .join(format!("node{i}-{}.log", self.started));
        let child = self
            .command()
            .env("LIFECERT_LOG", "info,sqlx=warn")
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.nodes[i] = Node {
            port,
            child: Some(child),
            log,
        };
        let logs = self.logs();
        wait_for(
            &format!("node {i} to answer /readyz on port {port}"),
            Duration::from_secs(30),
            || logs,
            || {
                let node = &mut self.nodes[i];
                if let Some(status) = node.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                    panic!(
                        "node {i} exited at start ({status})\n{}",
                        std::fs::read_to_string(&node.log).unwrap_or_default()
                    );
                }
                let ready = http_status(port, "/readyz") == Some(200);
                async move { ready.then_some(()) }
            },
        )
        .await;
    }

    /// SIGKILL: the node stops at once, holding whatever it held.
    pub fn kill(&mut self, i: usize) {
        let mut child = self.nodes[i].child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].child.is_none(), "node {i} is still running");
        self.launch(i).await;
    }

    /// SIGTERM, then waits for the exit; the exit status's success.
    pub async fn terminate(&mut self, i: usize) -> bool {
        let mut child = self.nodes[i].child.take().unwrap();
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let logs = self.logs();
        wait_for(
            &format!("node {i} to stop after SIGTERM"),
            Duration::from_secs(30),
            || logs,
            || {
                let exited = child.try_wait().unwrap();
                async move { exited }
            },
        )
        .await
        .success()
    }

    /// The node whose worker `locked_by` names (`host:pid:start/wN`).
    pub fn node_of_worker(&self, locked_by: &str) -> Option<usize> {
        let process = locked_by.split('/').next()?;
        let pid: u32 = process.split(':').nth(1)?.parse().ok()?;
        self.nodes.iter().position(|n| n.pid() == Some(pid))
    }

    /// Every node's log so far (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let mut entries: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        entries.sort();
        for p in entries {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- {}\n", p.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub async fn query(&self, sql: &str) -> Vec<sqlx::any::AnyRow> {
        sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A job's `(status, attempts, locked_by)`.
    pub async fn job(&self, kind: &str, period: &str) -> Option<(String, i64, Option<String>)> {
        let rows = self
            .query(&format!(
                "SELECT status, attempts, locked_by FROM jobs WHERE kind = '{kind}' AND period_key = '{period}'"
            ))
            .await;
        rows.first().map(|r| {
            (
                r.try_get(0).unwrap(),
                r.try_get(1).unwrap(),
                r.try_get(2).unwrap(),
            )
        })
    }

    /// Stops every node with SIGTERM and drops the database.
    pub async fn shut_down(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].child.is_some() {
                assert!(
                    self.terminate(i).await,
                    "node {i} did not stop cleanly\n{}",
                    self.logs()
                );
            }
        }
        self.pool.close().await;
        let mut admin = sqlx::AnyConnection::connect(&self.admin_url).await.unwrap();
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db_name).as_str())
            .await
            .unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // A failed test must not leave servers behind.
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `PENSIONERS` pensioners, all due for certification 10 days after `today` (so the
/// cycle owes each one 30-day reminder), paid through last month.
fn roll(today: NaiveDate) -> String {
    let last_certified = (today + Days::days(10))
        .checked_sub_months(Months::new(12))
        .unwrap();
    let paid_through = today
        .checked_sub_months(Months::new(1))
        .unwrap()
        .format("%Y-%m");
    let names = [
        "王伟", "李娜", "张敏", "刘洋", "陈静", "杨勇", "赵丽", "黄磊", "周芳", "吴军",
    ];
    let mut csv = String::from("id_number,name,insurance_type,region_code,benefit_start,monthly_amount,phone,residence,country,last_certified_on,paid_through\n");
    let first_birthday = NaiveDate::from_ymd_opt(1945, 1, 1).unwrap();
    for i in 0..PENSIONERS {
        let birth = first_birthday + Days::days((i / 100) as i64);
        let seq = (i % 100) as u32 * 2 + 1;
        csv.push_str(&format!(
            "{},{},enterprise,110105,2010-01,3000.00,13800138000,domestic,,{},{paid_through}\n",
            id("110105", birth, seq),
            names[i % names.len()],
            last_certified.format("%Y-%m-%d"),
        ));
    }
    csv
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_run_each_scheduled_job_once_through_a_kill_and_a_restart() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let began = Instant::now();
    // The cycle is due from midnight: at once, for today's date in Shanghai.
    let mut cluster = Cluster::new(
        &admin,
        "enabled = true\ncycle_time = \"00:00\"\ntime_zone = \"Asia/Shanghai\"\npayment_export_day = 1\n\
         tick_seconds = 1\nlease_seconds = 3\nshutdown_grace_seconds = 1\nworkers = 1",
        "",
    )
    .await;
    let today = (Utc::now() + Days::hours(8)).date_naive();
    let day = today.format("%Y-%m-%d").to_string();
    let month = today.format("%Y-%m").to_string();
    std::fs::write(cluster.dir.path().join("roll.csv"), roll(today)).unwrap();
    let imported = cluster.cli_ok("import recipients roll.csv");
    assert_eq!(imported["inserted"], PENSIONERS as u64, "{imported}");
    eprintln!(
        "multinode: {PENSIONERS} imported after {:?}",
        began.elapsed()
    );

    // Hold the audit chain's head, as a long transaction of another writer would: the
    // jobs are claimed and then wait, so a node can be killed while it holds one.
    let mut blocker = sqlx::AnyConnection::connect(&cluster.url).await.unwrap();
    let mut blocking = blocker.begin().await.unwrap();
    blocking
        .execute("UPDATE audit_head SET seq = seq WHERE id = 1")
        .await
        .unwrap();

    for _ in 0..3 {
        cluster.start_node().await;
    }
    let c = &cluster;
    let (cycle_holder, export_holder) = wait_for(
        "both scheduled jobs to be claimed",
        Duration::from_secs(30),
        || c.logs(),
        || async {
            match (
                c.job("cycle", &day).await,
                c.job("payment_export", &month).await,
            ) {
                (Some((s1, 1, Some(w1))), Some((s2, 1, Some(w2))))
                    if s1 == "running" && s2 == "running" =>
                {
                    Some((w1, w2))
                }
                _ => None,
            }
        },
    )
    .await;
    let a = cluster.node_of_worker(&cycle_holder).unwrap();
    let b = cluster.node_of_worker(&export_holder).unwrap();
    assert_ne!(a, b, "one worker per node: two jobs, two nodes");

    // SIGKILL the node in the middle of the cycle, and bring it back.
    cluster.kill(a);
    cluster.restart(a).await;

    // SIGTERM the node holding the export: it gives the job back (the grace period
    // passes while the job waits), exits cleanly, and another node takes the job at
    // once, without waiting for a lease to run out; the interrupted attempt does not count.
    assert!(
        cluster.terminate(b).await,
        "node {b} did not stop cleanly\n{}",
        cluster.logs()
    );
    let c = &cluster;
    let export_taker = wait_for(
        "the released export to be claimed by another node",
        Duration::from_secs(15),
        || c.logs(),
        || async {
            match c.job("payment_export", &month).await {
                Some((s, 1, Some(w))) if s == "running" && w != export_holder => Some(w),
                _ => None,
            }
        },
    )
    .await;
    assert_ne!(cluster.node_of_worker(&export_taker), Some(b));
    cluster.restart(b).await;

    // The killed node's lease runs out and another node claims the cycle: attempt 2.
    let c = &cluster;
    let cycle_taker = wait_for(
        "the killed node's cycle to be claimed again once its lease ran out",
        Duration::from_secs(20),
        || c.logs(),
        || async {
            match c.job("cycle", &day).await {
                Some((s, 2, Some(w))) if s == "running" => Some(w),
                _ => None,
            }
        },
    )
    .await;
    assert_ne!(cycle_taker, cycle_holder);

    // Let the writers through.
    blocking.rollback().await.unwrap();
    blocker.close().await.unwrap();
    let c = &cluster;
    wait_for(
        "the cycle and the export to be done",
        Duration::from_secs(90),
        || c.logs(),
        || async {
            let cycle = c.job("cycle", &day).await;
            let export = c.job("payment_export", &month).await;
            (cycle.as_ref().map(|j| j.0.as_str()) == Some("done")
                && export.as_ref().map(|j| j.0.as_str()) == Some("done"))
            .then_some(())
        },
    )
    .await;
    eprintln!("multinode: jobs done after {:?}", began.elapsed());

    // Once per period: one row each, whatever three schedulers asked every second.
    let periods = cluster
        .query(
            "SELECT kind, period_key, CAST(COUNT(*) AS BIGINT) FROM jobs GROUP BY kind, period_key",
        )
        .await;
    for r in &periods {
        let (kind, period, n): (String, Option<String>, i64) = (
            r.try_get(0).unwrap(),
            r.try_get(1).unwrap(),
            r.try_get(2).unwrap(),
        );
        assert_eq!(n, 1, "{kind} {period:?}");
    }
    assert_eq!(
        cluster.job("cycle", &day).await.map(|j| (j.0, j.1)),
        Some(("done".to_string(), 2))
    );
    assert_eq!(
        cluster
            .job("payment_export", &month)
            .await
            .map(|j| (j.0, j.1)),
        Some(("done".to_string(), 1))
    );
    // Ran once: one cycle entry for the day, one export, one reminder per pensioner.
    assert_eq!(
        cluster
            .count(&format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'cycle.run' AND details LIKE '%\"as_of\":\"{day}\"%'"
            ))
            .await,
        1
    );
    assert_eq!(
        cluster
            .count(&format!(
                "SELECT COUNT(*) FROM audit_log WHERE action = 'payments.exported' AND details LIKE '%\"month\":\"{month}\"%'"
            ))
            .await,
        1
    );
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM notification_outbox WHERE kind = 'reminder'")
            .await,
        PENSIONERS as i64
    );
    assert_eq!(
        cluster
            .count("SELECT COUNT(DISTINCT recipient_id) FROM notification_outbox WHERE kind = 'reminder'")
            .await,
        PENSIONERS as i64
    );
    assert_eq!(
        cluster
            .count(&format!(
                "SELECT COUNT(*) FROM payment_lines WHERE month = '{month}'"
            ))
            .await,
        PENSIONERS as i64
    );
    assert_eq!(cluster.cli_ok("audit verify")["ok"], true);

    // Scheduling again from the command line finds both queued already.
    let again = cluster.cli_ok("jobs schedule");
    let jobs = again["jobs"].as_array().unwrap();
    assert!(
        jobs.len() >= 2 && jobs.iter().all(|j| j["created"] == false),
        "{again}"
    );
    let listed = cluster.cli_ok("jobs list --kind cycle");
    assert_eq!(listed["items"][0]["status"], "done", "{listed}");

    cluster.shut_down().await;
    eprintln!("multinode: finished in {:?}", began.elapsed());
}

/// The message id prefix of the cluster's database (hex).
async fn message_id_prefix(cluster: &Cluster) -> String {
    let rows = cluster
        .query("SELECT value FROM meta WHERE key = 'message_id_prefix'")
        .await;
    let bytes: Vec<u8> = rows[0].try_get(0).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_every_reminder_once_through_a_kill_and_a_restart() {
    use lifecert_notify::testing::{FakeGateway, Reply};
    use std::collections::{HashMap, HashSet};

    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let began = Instant::now();
    // A gateway that takes 300 ms to answer: a node always has messages in flight.
    let gateway = FakeGateway::start().await.unwrap();
    gateway.reply_with(Reply::ok().with_delay(Duration::from_millis(300)));
    const CONCURRENCY: usize = 32;
    let mut cluster = Cluster::new(
        &admin,
        "enabled = false\nworkers = 0",
        &format!(
            "[notify]\n\
             quiet_hours = {{ start = \"00:00\", end = \"00:00\" }}\n\
             request_timeout_ms = 3000\n\
             [notify.sms]\nurl = \"{}\"\n\
             [notify.delivery]\nconcurrency = {CONCURRENCY}\npoll_seconds = 1\nlease_seconds = 5\n",
            gateway.url("/sms/send")
        ),
    )
    .await;
    let today = chrono::Local::now().date_naive();
    std::fs::write(cluster.dir.path().join("roll.csv"), roll(today)).unwrap();
    let imported = cluster.cli_ok("import recipients roll.csv");
    assert_eq!(imported["inserted"], PENSIONERS as u64, "{imported}");
    for _ in 0..3 {
        cluster.start_node().await;
    }
    let cycle = cluster.cli_ok("cycle run");
    assert_eq!(cycle["reminders"], PENSIONERS as u64, "{cycle}");
    eprintln!(
        "multinode delivery: {PENSIONERS} reminders recorded after {:?}",
        began.elapsed()
    );

    // Once a fifth has gone out, SIGKILL a node while it holds messages in flight.
    let c = &cluster;
    let sending = wait_for(
        "a fifth of the reminders delivered, and a node sending",
        Duration::from_secs(60),
        || c.logs(),
        || async {
            let delivered = c
                .count("SELECT COUNT(*) FROM notification_deliveries WHERE status = 'delivered'")
                .await;
            if delivered < (PENSIONERS / 5) as i64 {
                return None;
            }
            // The newest claim: its messages have the whole gateway delay still to wait.
            let rows = c
                .query("SELECT locked_by FROM notification_deliveries WHERE status = 'sending' AND locked_by IS NOT NULL ORDER BY updated_at DESC LIMIT 1")
                .await;
            rows.first().map(|r| r.try_get::<String, _>(0).unwrap())
        },
    )
    .await;
    let victim = cluster.node_of_worker(&sending).unwrap();
    cluster.kill(victim);
    let in_flight = cluster
        .count(&format!(
            "SELECT COUNT(*) FROM notification_deliveries WHERE status = 'sending' AND locked_by = '{sending}'"
        ))
        .await;
    assert!(
        in_flight > 0 && in_flight <= CONCURRENCY as i64,
        "node {victim} was killed holding {in_flight} messages"
    );
    eprintln!(
        "multinode delivery: node {victim} killed holding {in_flight} messages after {:?}",
        began.elapsed()
    );
    cluster.restart(victim).await;

    let c = &cluster;
    wait_for(
        "every reminder delivered",
        Duration::from_secs(120),
        || c.logs(),
        || async {
            let delivered = c
                .count("SELECT COUNT(*) FROM notification_deliveries WHERE status = 'delivered'")
                .await;
            (delivered == PENSIONERS as i64).then_some(())
        },
    )
    .await;
    eprintln!(
        "multinode delivery: all delivered after {:?}",
        began.elapsed()
    );

    // One delivery per pensioner, each delivered; the killed node's messages were taken
    // over after its lease, each with its lost attempt on record.
    assert_eq!(
        cluster
            .count("SELECT COUNT(DISTINCT recipient_id) FROM notification_deliveries")
            .await,
        PENSIONERS as i64
    );
    assert_eq!(
        cluster
            .count("SELECT COUNT(*) FROM notification_deliveries")
            .await,
        PENSIONERS as i64
    );
    let lost: HashSet<i64> = cluster
        .query("SELECT delivery_id FROM notification_attempts WHERE outcome = 'unknown'")
        .await
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    assert_eq!(
        lost.len() as i64,
        in_flight,
        "each lost attempt recorded once"
    );

    // Every reminder reached the gateway under its own message id; an id arrived more
    // than once only for a message the killed node had in flight (it may have sent it
    // before dying: the gateway sees the same id again and accepts it once).
    let prefix = message_id_prefix(&cluster).await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let received = gateway.received();
    for r in &received {
        assert!(
            r.json().unwrap()["text"]
                .as_str()
                .unwrap()
                .contains("资格认证"),
            "{}",
            r.body
        );
        *seen.entry(r.message_id().unwrap().to_string()).or_default() += 1;
    }
    let ids: Vec<i64> = cluster
        .query("SELECT id FROM notification_deliveries")
        .await
        .iter()
        .map(|r| r.try_get(0).unwrap())
        .collect();
    for id in &ids {
        assert!(
            seen.contains_key(&format!("ntf-{prefix}-{id}")),
            "delivery {id} never reached the gateway"
        );
    }
    assert_eq!(
        seen.len(),
        PENSIONERS,
        "no message id the database does not know"
    );
    let resent: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
    for (id, n) in &resent {
        let delivery: i64 = id.rsplit('-').next().unwrap().parse().unwrap();
        assert!(
            lost.contains(&delivery) && **n == 2,
            "{id} arrived {n} times without a lost attempt behind it"
        );
    }
    eprintln!(
        "multinode delivery: {} requests for {} message ids: {} accepted once each, {} raw resends (of {in_flight} in flight at the kill); {:?} in all",
        received.len(),
        seen.len(),
        seen.len(),
        received.len() - seen.len(),
        began.elapsed()
    );
    assert_eq!(cluster.cli_ok("notify run-pending")["claimed"], 0);
    cluster.shut_down().await;
}
