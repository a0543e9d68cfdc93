//! End-to-end throughput of the heavy use cases on a realistic roll: import, the
//! certification cycle, re-import of an unchanged file and the monthly payment export,
//! on SQLite and (when configured) PostgreSQL.
//!
//! ```text
//! cargo bench -p lifecert --bench import_cycle -- [--rows N] [--postgres URL]
//! ```
//!
//! * `--rows N`: size of the generated roll (default 1,000,000; `--rows 100000` for a
//!   quick run). The roll is generated once with `lifecert_app::demo_data` (seed 2026,
//!   relative to today) into `target/bench-data/` and reused while N and the date match.
//! * `--postgres URL` or `LIFECERT_BENCH_POSTGRES_URL`: an admin URL such as
//!   `postgres://postgres:postgres@127.0.0.1/postgres`. The bench creates a fresh database
//!   `lifecert_bench_<pid>` with `psql`, runs against it and drops it afterwards. Without
//!   it only SQLite runs.
//!
//! Each backend runs in a child process (this same binary, re-executed with a hidden
//! `--phase` argument) so that its peak memory is its own. The child builds the app the
//! way the `lifecert` binary does and reports one JSON line; the parent prints a table
//! together with the machine it ran on. This is a measuring program: it prints figures
//! and never fails on them.

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use lifecert_app::demo_data::{write_demo_csv, DemoOptions};
use lifecert_app::keys::{resolve_key_ring, KeySettings};
use lifecert_app::{Actor, App, AppError, SystemClock};
use lifecert_domain::{Policy, YearMonth};
use lifecert_store::Store;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Instant;

const DEFAULT_ROWS: usize = 1_000_000;
const SEED: u64 = 2026;
/// Base64 of the 32 bytes 0x00, 0x01, ..., 0x1f: a fixed test key, never a real one.
const TEST_MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const POSTGRES_ENV: &str = "LIFECERT_BENCH_POSTGRES_URL";
/// How the parent hands the database URL to the child (kept off the command line,
/// where a password would show in `ps`).
const CHILD_DB_URL_ENV: &str = "LIFECERT_BENCH_CHILD_DB_URL";
/// Prefix of the child's result line on standard output.
const RESULT_MARKER: &str = "LIFECERT_BENCH_RESULT ";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = if args.iter().any(|a| a == "--phase") {
        child_main(&args)
    } else {
        parent_main(&args)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("import_cycle: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parent: options, roll generation, one child per backend, the report.
// ---------------------------------------------------------------------------------------

struct Options {
    rows: usize,
    postgres: Option<String>,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut rows = DEFAULT_ROWS;
    let mut postgres = std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty());
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = |name: &str| -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{name} needs a value")),
            }
        };
        match flag {
            // `cargo bench` passes `--bench` to every bench target.
            "--bench" => {}
            "--rows" => {
                let v = value("--rows")?;
                rows = v
                    .replace(['_', ','], "")
                    .parse()
                    .with_context(|| format!("--rows {v:?} is not a number"))?;
            }
            "--postgres" => postgres = Some(value("--postgres")?),
            "-h" | "--help" => {
                println!(
                    "cargo bench -p lifecert --bench import_cycle -- [--rows N] [--postgres URL]\n\
                     \x20 --rows N        roll size (default {DEFAULT_ROWS})\n\
                     \x20 --postgres URL  admin URL; also {POSTGRES_ENV}. Without it only SQLite runs."
                );
                std::process::exit(0);
            }
            other => eprintln!("import_cycle: ignoring unknown argument {other:?}"),
        }
    }
    if rows == 0 {
        bail!("--rows must be at least 1");
    }
    Ok(Options { rows, postgres })
}

fn parent_main(args: &[String]) -> Result<()> {
    let opts = parse_options(args)?;
    let today = chrono::Local::now().date_naive();
    let bench_dir = bench_dir()?;
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("cannot create {}", bench_dir.display()))?;

    print_machine(&bench_dir, opts.postgres.as_deref());

    let csv = bench_dir.join(format!("roll-{}-{today}.csv", opts.rows));
    let roll = ensure_roll(&csv, opts.rows, today)?;
    println!();
    match roll.generated_secs {
        Some(secs) => println!(
            "Roll: {} rows (seed {SEED}, today {today}) generated in {secs:.2} s ({}/s), {:.1} MiB: {}",
            group(opts.rows as u64),
            group(per_sec(opts.rows as u64, secs)),
            mib(roll.bytes),
            csv.display()
        ),
        None => println!(
            "Roll: {} rows (seed {SEED}, today {today}) reused, {:.1} MiB: {}",
            group(opts.rows as u64),
            mib(roll.bytes),
            csv.display()
        ),
    }

    let mut results = Vec::new();

    // SQLite in a fresh folder on the same disk as the target directory (not /tmp,
    // which may be in memory).
    {
        let dir = tempfile::Builder::new()
            .prefix("sqlite-")
            .tempdir_in(&bench_dir)
            .context("cannot create a temporary SQLite folder")?;
        let url = format!("sqlite://{}", dir.path().join("lifecert.db").display());
        eprintln!("\n[sqlite] database in {}", dir.path().display());
        let mut result = run_child("sqlite", &url, &csv, today, dir.path())?;
        result["db_size_bytes"] = json!(sqlite_size(dir.path()));
        results.push(result);
    }

    if let Some(admin) = &opts.postgres {
        let db = PgBenchDb::create(admin)?;
        let out_dir = tempfile::Builder::new()
            .prefix("postgres-")
            .tempdir_in(&bench_dir)
            .context("cannot create a temporary folder")?;
        eprintln!(
            "\n[postgres] database {} via {}",
            db.name,
            lifecert_store::redact_url(admin)
        );
        let mut result = run_child("postgres", &db.url, &csv, today, out_dir.path())?;
        if let Some(size) = db.size_bytes() {
            result["db_size_bytes"] = json!(size);
        }
        results.push(result);
    }

    print_report(&results, opts.rows);
    Ok(())
}

/// `target/bench-data`, found from this executable (`target/release/deps/import_cycle-*`),
/// so that `CARGO_TARGET_DIR` is honoured.
fn bench_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate the bench executable")?;
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    Ok(target.join("bench-data"))
}

struct Roll {
    bytes: u64,
    generated_secs: Option<f64>,
}

fn ensure_roll(csv: &Path, rows: usize, today: NaiveDate) -> Result<Roll> {
    if let Ok(meta) = std::fs::metadata(csv) {
        return Ok(Roll {
            bytes: meta.len(),
            generated_secs: None,
        });
    }
    eprintln!(
        "generating {} rows into {}",
        group(rows as u64),
        csv.display()
    );
    // Written beside and renamed, so an interrupted run never leaves a short roll to reuse.
    let partial = csv.with_extension("csv.partial");
    let file = std::fs::File::create(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let start = Instant::now();
    let written = write_demo_csv(
        file,
        &DemoOptions {
            recipients: rows,
            seed: SEED,
            today,
        },
    )
    .with_context(|| format!("cannot write {}", partial.display()))?;
    let secs = start.elapsed().as_secs_f64();
    if written != rows {
        bail!("the generator wrote {written} rows instead of {rows}");
    }
    std::fs::rename(&partial, csv)
        .with_context(|| format!("cannot rename {} to {}", partial.display(), csv.display()))?;
    Ok(Roll {
        bytes: std::fs::metadata(csv)?.len(),
        generated_secs: Some(secs),
    })
}

fn run_child(backend: &str, url: &str, csv: &Path, today: NaiveDate, dir: &Path) -> Result<Value> {
    let exe = std::env::current_exe().context("cannot locate the bench executable")?;
    let output = Command::new(exe)
        .arg("--phase")
        .arg(backend)
        .arg("--csv")
        .arg(csv)
        .arg("--today")
        .arg(today.to_string())
        .arg("--out-dir")
        .arg(dir)
        .env(CHILD_DB_URL_ENV, url)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot start the {backend} child process"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "the {backend} run failed ({}); its output:\n{stdout}",
            output.status
        );
    }
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(RESULT_MARKER))
        .with_context(|| format!("the {backend} run printed no result; its output:\n{stdout}"))?;
    serde_json::from_str(line).with_context(|| format!("unreadable {backend} result: {line}"))
}

/// Bytes of the SQLite database in `dir` (`lifecert.db` and its `-wal`/`-shm` files).
fn sqlite_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("lifecert.db"))
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A throw-away PostgreSQL database, dropped when this goes out of scope.
struct PgBenchDb {
    admin: String,
    name: String,
    url: String,
}

impl PgBenchDb {
    fn create(admin: &str) -> Result<PgBenchDb> {
        let name = format!("lifecert_bench_{}", std::process::id());
        psql(admin, &format!("DROP DATABASE IF EXISTS {name}"))?;
        psql(admin, &format!("CREATE DATABASE {name}"))?;
        Ok(PgBenchDb {
            admin: admin.to_string(),
            url: with_database(admin, &name)?,
            name,
        })
    }

    fn size_bytes(&self) -> Option<u64> {
        psql(
            &self.admin,
            &format!("SELECT pg_database_size('{}')", self.name),
        )
        .ok()?
        .trim()
        .parse()
        .ok()
    }
}

impl Drop for PgBenchDb {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!(
                "import_cycle: warning: could not drop database {}: {e:#}",
                self.name
            );
        }
    }
}

/// Runs one statement with `psql`; returns its unaligned, tuples-only output.
fn psql(url: &str, sql: &str) -> Result<String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .context("cannot run psql (is the PostgreSQL client installed?)")?;
    if !out.status.success() {
        bail!(
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The admin URL with its database name replaced.
fn with_database(url: &str, db: &str) -> Result<String> {
    let authority = url
        .find("://")
        .map(|i| i + 3)
        .with_context(|| format!("{:?} is not a URL", lifecert_store::redact_url(url)))?;
    let (base, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    Ok(format!("{}/{db}{query}", &base[..path]))
}

// ---------------------------------------------------------------------------------------
// Report.
// ---------------------------------------------------------------------------------------

fn print_machine(bench_dir: &Path, postgres: Option<&str>) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, v)| v.trim())
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_kb = proc_kb(&meminfo, "MemTotal:");
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());

    println!("lifecert import/cycle benchmark");
    println!(
        "  lifecert     {} (commit {commit}){}",
        env!("CARGO_PKG_VERSION"),
        if cfg!(debug_assertions) {
            "  WARNING: debug assertions on, not a release build"
        } else {
            ", optimised build"
        }
    );
    println!("  cpus (nproc) {cpus}");
    println!("  cpu model    {model}");
    println!(
        "  memory       {:.1} GiB",
        mem_total_kb.unwrap_or(0) as f64 / (1024.0 * 1024.0)
    );
    println!("  kernel       {}", kernel.trim());
    println!("  data folder  {}", bench_dir.display());
    if let Some(url) = postgres {
        let version = psql(url, "SHOW server_version")
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|e| format!("unreachable: {e:#}"));
        println!(
            "  postgresql   {version} at {}",
            lifecert_store::redact_url(url)
        );
    } else {
        println!("  postgresql   not configured (--postgres URL or {POSTGRES_ENV})");
    }
}

fn print_report(results: &[Value], rows: usize) {
    println!();
    println!(
        "{:<9} {:<10} {:>10} {:>9} {:>11} {:>10}  details",
        "backend", "phase", "rows", "seconds", "rows/s", "peak MiB"
    );
    println!("{}", "-".repeat(100));
    for r in results {
        let backend = r["backend"].as_str().unwrap_or("?");
        for p in r["phases"].as_array().into_iter().flatten() {
            let n = p["rows"].as_u64().unwrap_or(0);
            let secs = p["seconds"].as_f64().unwrap_or(0.0);
            let rate = if n > 0 {
                group(per_sec(n, secs))
            } else {
                "-".to_string()
            };
            println!(
                "{:<9} {:<10} {:>10} {:>9.2} {:>11} {:>10.1}  {}",
                backend,
                p["phase"].as_str().unwrap_or("?"),
                if n > 0 { group(n) } else { "-".to_string() },
                secs,
                rate,
                p["peak_kb"].as_u64().unwrap_or(0) as f64 / 1024.0,
                p["details"].as_str().unwrap_or("")
            );
        }
        let peak = r["peak_kb"].as_u64().unwrap_or(0) as f64 / 1024.0;
        let size = r["db_size_bytes"]
            .as_u64()
            .map(|b| format!(", database {:.0} MiB on disk", mib(b)))
            .unwrap_or_default();
        println!(
            "{:<9} {:<10} {:>10} {:>9} {:>11} {:>10.1}  whole run, process peak (VmHWM){size}",
            backend, "total", "", "", "", peak
        );
        println!("{}", "-".repeat(100));
    }
    let per_phase = results
        .iter()
        .all(|r| r["hwm_reset"].as_bool().unwrap_or(false));
    println!(
        "peak MiB: resident set high-water mark of the benchmark process {}; for PostgreSQL the server's own memory is not included.",
        if per_phase {
            "during each phase (reset before it)"
        } else {
            "since the process started (per-phase reset unavailable)"
        }
    );

    println!();
    println!("Project targets (informational, not checked):");
    for r in results {
        let backend = r["backend"].as_str().unwrap_or("?");
        let phase = |name: &str| {
            r["phases"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["phase"].as_str() == Some(name))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let import = phase("import");
        let rate = per_sec(
            import["rows"].as_u64().unwrap_or(0),
            import["seconds"].as_f64().unwrap_or(0.0),
        );
        let cycle = phase("cycle-1");
        let cycle_secs = cycle["seconds"].as_f64().unwrap_or(0.0);
        let cycle_rows = cycle["rows"].as_u64().unwrap_or(0);
        let peak = r["peak_kb"].as_u64().unwrap_or(0) as f64 / 1024.0;
        let verdict = |ok: bool| if ok { "met" } else { "missed" };
        if backend == "sqlite" {
            println!(
                "  {backend:<9} import >= 50,000 rows/s: {} rows/s ({})",
                group(rate),
                verdict(rate >= 50_000)
            );
        } else {
            println!("  {backend:<9} import: {} rows/s", group(rate));
        }
        println!(
            "  {backend:<9} cycle over 1,000,000 in < 10 s: {cycle_secs:.2} s over {} ({})",
            group(cycle_rows),
            if rows >= 1_000_000 {
                verdict(cycle_secs < 10.0)
            } else {
                "roll smaller than 1,000,000: not comparable"
            }
        );
        println!(
            "  {backend:<9} peak memory < 500 MB: {peak:.0} MiB ({})",
            verdict(peak * 1.048_576 < 500.0)
        );
    }
}

fn per_sec(n: u64, secs: f64) -> u64 {
    if secs > 0.0 {
        (n as f64 / secs).round() as u64
    } else {
        0
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// 1234567 -> "1,234,567".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        r => r,
    };
    let (first, rest) = digits.split_at(head);
    let mut out = first.to_string();
    for chunk in rest.as_bytes().chunks(3) {
        out.push(',');
        out.push_str(&String::from_utf8_lossy(chunk));
    }
    out
}

fn proc_kb(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------
// Child: one backend, all phases, one JSON line.
// ---------------------------------------------------------------------------------------

struct ChildArgs {
    backend: String,
    url: String,
    csv: PathBuf,
    today: NaiveDate,
    out_dir: PathBuf,
}

fn parse_child_args(args: &[String]) -> Result<ChildArgs> {
    let get = |name: &str| -> Result<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .with_context(|| format!("the child process needs {name}"))
    };
    Ok(ChildArgs {
        backend: get("--phase")?,
        url: std::env::var(CHILD_DB_URL_ENV)
            .with_context(|| format!("the child process needs {CHILD_DB_URL_ENV}"))?,
        csv: PathBuf::from(get("--csv")?),
        today: lifecert_domain::parse_date(&get("--today")?)
            .map_err(|e| anyhow::anyhow!("--today: {e}"))?,
        out_dir: PathBuf::from(get("--out-dir")?),
    })
}

fn child_main(args: &[String]) -> Result<()> {
    let a = parse_child_args(args)?;
    // The same runtime as the `lifecert` binary.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let result = runtime.block_on(run_phases(&a))?;
    println!("{RESULT_MARKER}{}", serde_json::to_string(&result)?);
    Ok(())
}

/// Peak-memory bookkeeping: VmHWM is reset (Linux `clear_refs` 5) before each phase, so
/// each phase reports its own peak; the process-wide peak is the largest of them.
struct Meter {
    backend: String,
    reset_ok: bool,
    peak_kb: u64,
    phases: Vec<Value>,
}

impl Meter {
    fn start(&mut self, phase: &str) -> Instant {
        eprintln!("[{}] {phase} ...", self.backend);
        self.reset_ok = self.reset_ok && std::fs::write("/proc/self/clear_refs", "5").is_ok();
        Instant::now()
    }

    fn finish(&mut self, phase: &str, start: Instant, rows: u64, details: String) {
        let seconds = start.elapsed().as_secs_f64();
        let peak_kb = vm_hwm_kb();
        self.peak_kb = self.peak_kb.max(peak_kb);
        eprintln!(
            "[{}] {phase}: {seconds:.2} s, {rows} rows, peak {:.1} MiB; {details}",
            self.backend,
            peak_kb as f64 / 1024.0
        );
        self.phases.push(json!({
            "phase": phase,
            "rows": rows,
            "seconds": seconds,
            "peak_kb": peak_kb,
            "details": details,
        }));
    }
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| proc_kb(&s, "VmHWM:"))
        .unwrap_or(0)
}

async fn run_phases(a: &ChildArgs) -> Result<Value> {
    let mut m = Meter {
        backend: a.backend.clone(),
        reset_ok: true,
        peak_kb: 0,
        phases: Vec::new(),
    };
    let actor = Actor::System;

    // Open as `lifecert` does (commands::open_app), with a fixed test key.
    let t = m.start("open");
    let keys = KeySettings {
        master_key: Some(TEST_MASTER_KEY.to_string()),
        ..KeySettings::default()
    };
    let (ring, _) = resolve_key_ring(&keys, &a.url)?;
    let store = Store::open(&a.url).await.map_err(AppError::from)?;
    let app = App::new(store, ring, Policy::default(), Arc::new(SystemClock)).await?;
    m.finish("open", t, 0, "connect, migrate, key check".to_string());

    let t = m.start("import");
    let r = app.import_recipients(&actor, &a.csv, &mut |_| {}).await?;
    m.finish(
        "import",
        t,
        r.rows,
        format!(
            "{} inserted, {} updated, {} unchanged, {} rejected",
            r.inserted, r.updated, r.unchanged, r.rejected
        ),
    );
    if let Some(e) = r.errors.first() {
        eprintln!(
            "[{}] first rejected row: line {} {} [{}] {}",
            a.backend, e.line, e.field, e.code, e.message
        );
    }

    for phase in ["cycle-1", "cycle-2"] {
        let t = m.start(phase);
        let c = app.run_cycle(&actor, a.today).await?;
        m.finish(
            phase,
            t,
            u64::try_from(c.evaluated).unwrap_or(0),
            format!(
                "{} reminders, {} suspended, {} overdue in grace",
                c.reminders, c.suspended, c.overdue
            ),
        );
    }

    let t = m.start("re-import");
    let r = app.import_recipients(&actor, &a.csv, &mut |_| {}).await?;
    m.finish(
        "re-import",
        t,
        r.rows,
        format!(
            "{} inserted, {} updated, {} unchanged, {} rejected",
            r.inserted, r.updated, r.unchanged, r.rejected
        ),
    );

    let month = YearMonth::of(a.today);
    let out = a.out_dir.join(format!("payments-{month}.csv"));
    let t = m.start("export");
    let e = app.export_payments(&actor, month, &out).await?;
    let lines = e.pay + e.withhold + e.back_pay + e.stop + e.recover;
    m.finish(
        "export",
        t,
        lines,
        format!(
            "{month}: {} pay, {} withhold, {} back_pay, {} stop, {} recover",
            e.pay, e.withhold, e.back_pay, e.stop, e.recover
        ),
    );

    app.store().clone().close().await;
    Ok(json!({
        "backend": a.backend,
        "phases": m.phases,
        "peak_kb": m.peak_kb.max(vm_hwm_kb()),
        "hwm_reset": m.reset_ok,
    }))
}
