//! The subcommands, each a thin layer over one use case of `lifecert_app`.

use crate::output::{yuan, Output};
use crate::settings::Settings;
use crate::Cli;
use anyhow::{Context, Result};
use chrono::NaiveDate;
use clap::{Args, Subcommand};
use lifecert_app::keys::{resolve_key_ring, KeySource};
use lifecert_app::{Actor, App, AppError, SystemClock};
use lifecert_domain::{
    Channel, NationalId, Outcome, Policy, RegionCode, RegionScope, Role, YearMonth,
};
use lifecert_store::Store;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum Command {
    /// Create or upgrade the database schema
    Migrate,
    /// Serve the HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json)
    Serve {
        /// Address to listen on (default 127.0.0.1:8080; also LIFECERT_ADDR or `addr` in the settings file)
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
    /// Staff accounts
    #[command(subcommand)]
    User(UserCommand),
    /// API keys for integrations (other systems)
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Load data from files
    #[command(subcommand)]
    Import(ImportCommand),
    /// Data feeds from other departments (passive certification, 静默认证)
    #[command(subcommand)]
    Feed(FeedCommand),
    /// The certification cycle: reminders and suspensions
    #[command(subcommand)]
    Cycle(CycleCommand),
    /// Record a certification made with staff (counter, community, home visit, video, ...)
    Certify(CertifyArgs),
    /// Report, confirm or void a death
    #[command(subcommand)]
    Death(DeathCommand),
    /// Monthly payment runs
    #[command(subcommand)]
    Payments(PaymentsCommand),
    /// The audit trail
    #[command(subcommand)]
    Audit(AuditCommand),
    /// One pensioner
    #[command(subcommand)]
    Recipient(RecipientCommand),
    /// Background jobs: the daily cycle, payment exports, uploaded feeds
    #[command(subcommand)]
    Jobs(crate::scheduler::JobsCommand),
    /// Notifications to pensioners and their agents (SMS, email, app push)
    #[command(subcommand)]
    Notify(crate::notify::NotifyCommand),
    /// Headline counts
    Stats {
        /// Date to count overdue and valid certifications at (default: today)
        #[arg(long, value_parser = parse_date)]
        as_of: Option<NaiveDate>,
    },
    /// Create a demo database with realistic generated pensioners
    Demo {
        /// Folder for the demo database, its key file and the generated roll
        #[arg(long, default_value = "lifecert-demo")]
        dir: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        recipients: usize,
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Then create demo staff accounts and serve the API on --addr
        #[arg(long)]
        serve: bool,
        /// Address for --serve (default 127.0.0.1:8080)
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
    },
}

#[derive(Subcommand)]
pub enum FeedCommand {
    /// Ingest a feed file: deaths, signs of life or imprisonment, matched by ID number
    Ingest {
        /// The source, e.g. police_deregistration, hospital_visit, medical_settlement, prison
        #[arg(long)]
        source: String,
        file: PathBuf,
        /// csv (header row) or jsonl; by default from the file name
        #[arg(long)]
        format: Option<String>,
        /// Write one CSV line per input record: record_id,class,score,recipient_id,reason
        #[arg(long)]
        report: Option<PathBuf>,
        /// Read and match the feed, store and change nothing (to check a new feed)
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a staff account; prints a one-time password and a TOTP otpauth:// URI
    Add {
        #[arg(long)]
        username: String,
        /// certifier, reviewer, consultant, supervisor, auditor or partner
        #[arg(long, value_parser = |s: &str| Role::parse(s).map_err(|e| e.to_string()))]
        role: Role,
        /// Region prefix the user works in (44, 4403, 440305); empty for the whole country
        #[arg(long, default_value = "", value_parser = |s: &str| RegionScope::parse(s).map_err(|e| e.to_string()))]
        region: RegionScope,
    },
}

#[derive(Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key (shown once)
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: feeds, payments, notifications
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum ImportCommand {
    /// Import the pensioner roll from CSV (UTF-8) or XLSX, English or Chinese headers
    Recipients { file: PathBuf },
}

#[derive(Subcommand)]
pub enum CycleCommand {
    /// Record due reminders and overdue notices; suspend pensioners past the grace period (with a notice)
    Run {
        /// The date to run the cycle for, YYYY-MM-DD (default: today)
        #[arg(long, value_parser = parse_date)]
        as_of: Option<NaiveDate>,
    },
}

#[derive(Args)]
pub struct CertifyArgs {
    /// The pensioner's ID number, in the database's ID scheme
    #[arg(long)]
    id_number: String,
    /// counter, community, home_visit, video, overseas_consulate, overseas_notary, overseas_online, agent_assisted, self_service_face, passive_data
    #[arg(long, value_parser = |s: &str| Channel::parse(s).map_err(|e| e.to_string()))]
    channel: Channel,
    /// The day it was made, YYYY-MM-DD
    #[arg(long, value_parser = parse_date)]
    date: NaiveDate,
    #[arg(long, default_value = "pass", value_parser = |s: &str| Outcome::parse(s).map_err(|e| e.to_string()))]
    outcome: Outcome,
    /// For fail: face_mismatch, liveness_failed, document_invalid, not_the_person, deceased, other
    #[arg(long)]
    reason: Option<String>,
    /// Region where it was performed, if not the pensioner's own (异地认证)
    #[arg(long, value_parser = |s: &str| RegionCode::parse(s).map_err(|e| e.to_string()))]
    region_code: Option<RegionCode>,
    /// Document numbers or file references
    #[arg(long)]
    evidence: Option<String>,
}

#[derive(Subcommand)]
pub enum DeathCommand {
    /// A death was reported: payment is suspended at once
    Report {
        /// The pensioner's ID number, in the database's ID scheme
        #[arg(long)]
        id_number: String,
        #[arg(long, value_parser = parse_date)]
        date: NaiveDate,
        /// Who reported it, e.g. public_security, civil_affairs, health, family
        #[arg(long)]
        source: String,
    },
    /// A reviewer confirmed the death: payment is terminated, overpayments recovered
    Confirm {
        /// The pensioner's ID number, in the database's ID scheme
        #[arg(long)]
        id_number: String,
    },
    /// The report was wrong: the suspension is lifted and withheld months back-paid
    Void {
        /// The pensioner's ID number, in the database's ID scheme
        #[arg(long)]
        id_number: String,
    },
}

#[derive(Subcommand)]
pub enum PaymentsCommand {
    /// Write the month's payment instructions (CSV) and record them in the ledger
    Export {
        #[arg(long, value_parser = parse_month)]
        month: YearMonth,
        #[arg(long)]
        out: PathBuf,
    },
    /// Make the month's run final
    Close {
        #[arg(long, value_parser = parse_month)]
        month: YearMonth,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check that no entry was changed, deleted or reordered
    Verify,
}

#[derive(Subcommand)]
pub enum RecipientCommand {
    /// Show one pensioner (ID number masked)
    Show {
        /// The pensioner's ID number, in the database's ID scheme
        #[arg(long)]
        id_number: String,
    },
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    lifecert_domain::parse_date(s).map_err(|e| e.to_string())
}

fn parse_month(s: &str) -> Result<YearMonth, String> {
    YearMonth::parse(s).map_err(|e| e.to_string())
}

/// `--id-number`, read with the database's ID scheme (known once the App is open).
fn id_number(app: &App, raw: &str) -> Result<NationalId, AppError> {
    app.parse_id("--id-number", raw)
}

fn actor(cli_actor: Option<String>) -> Actor {
    let name = cli_actor
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".to_string());
    Actor::Staff(format!("cli:{name}"))
}

/// Opens the database and key ring named by the settings.
pub async fn open_app(settings: &Settings, out: Output) -> Result<App> {
    let (keys, source) = resolve_key_ring(&settings.keys, &settings.database_url)?;
    match &source {
        KeySource::Created(path) => out.notice(&format!(
            "lifecert: created a new master key in {} (mode 0600). Back it up: without it the personal data in this database cannot be read.",
            path.display()
        )),
        KeySource::File(path) => {
            if let Some(warning) = lifecert_crypto::key_file_warning(path) {
                out.notice(&format!("lifecert: warning: {warning}"));
            }
        }
        KeySource::Environment => {}
    }
    let store = Store::open(&settings.database_url)
        .await
        .map_err(AppError::from)?;
    Ok(App::new_with_id_scheme(
        store,
        keys,
        Policy::default(),
        Arc::new(SystemClock),
        settings.id_scheme,
    )
    .await?
    .with_sources(settings.sources.clone())
    .with_matching(settings.matching.clone()))
}

pub async fn run(cli: Cli, out: Output) -> Result<ExitCode> {
    let settings = Settings::load(cli.config.as_deref(), cli.database_url)?;
    let actor = actor(cli.actor);
    if let Command::Demo {
        dir,
        recipients,
        seed,
        serve,
        addr,
    } = cli.command
    {
        let app = crate::demo::run(&dir, recipients, seed, &settings, out).await?;
        if serve {
            crate::demo::print_demo_accounts(&app, out).await?;
            serve_until_stopped(app.clone(), addr.unwrap_or(settings.addr), &settings, out).await?;
        }
        app.store().clone().close().await;
        return Ok(ExitCode::SUCCESS);
    }
    let app = open_app(&settings, out).await?;
    let result = execute(&app, cli.command, &settings, actor, out).await;
    // Closing the connections lets SQLite copy its write-ahead log into the database file
    // and remove it, instead of leaving it for the next command.
    app.store().clone().close().await;
    result
}

async fn execute(
    app: &App,
    command: Command,
    settings: &Settings,
    actor: Actor,
    out: Output,
) -> Result<ExitCode> {
    match command {
        Command::Demo { .. } => {}
        Command::Serve { addr } => {
            serve_until_stopped(app.clone(), addr.unwrap_or(settings.addr), settings, out).await?;
        }
        Command::User(UserCommand::Add {
            username,
            role,
            region,
        }) => {
            let user = app.add_user(&actor, &username, role, &region).await?;
            out.finish(
                || format!(
                    "User {} created ({role}, region {:?}).\nOne-time password: {}\nAuthenticator (TOTP) URI: {}\nHand both over in person; neither is shown again.",
                    user.username, region.as_str(), user.password, user.totp_uri
                ),
                &serde_json::json!({"username": user.username, "password": user.password, "totp_uri": user.totp_uri}),
            );
        }
        Command::Apikey(ApikeyCommand::Create { name, scopes }) => {
            let key = app.create_api_key(&actor, &name, &scopes).await?;
            out.finish(
                || format!("API key {name} ({}): {key}\nIt is shown once; store it in the other system's secrets.", scopes.join(", ")),
                &serde_json::json!({"name": name, "scopes": scopes, "key": key}),
            );
        }
        Command::Migrate => out.finish(
            || "The database schema is up to date.".to_string(),
            &serde_json::json!({"migrated": true}),
        ),
        Command::Import(ImportCommand::Recipients { file }) => {
            let report = import_with_progress(app, &actor, &file, out).await?;
            out.finish(
                || {
                    let mut s = format!(
                        "{} rows: {} inserted, {} updated, {} unchanged, {} rejected",
                        report.rows,
                        report.inserted,
                        report.updated,
                        report.unchanged,
                        report.rejected
                    );
                    if !report.ignored_columns.is_empty() {
                        s.push_str(&format!(
                            "\nColumns not used: {}",
                            report.ignored_columns.join(", ")
                        ));
                    }
                    for e in report.errors.iter().take(50) {
                        s.push_str(&format!(
                            "\n  line {}: {} [{}] {}",
                            e.line, e.field, e.code, e.message
                        ));
                    }
                    if report.errors.len() > 50 {
                        s.push_str(&format!(
                            "\n  ... and {} more (use --json for all)",
                            report.errors.len() - 50
                        ));
                    }
                    s
                },
                &report,
            );
        }
        Command::Feed(FeedCommand::Ingest {
            source,
            file,
            format,
            report,
            dry_run,
        }) => {
            let source = app.source(&source)?;
            let format = match format.as_deref() {
                Some(f) => lifecert_app::feeds::FeedFormat::parse(f)?,
                None => lifecert_app::feeds::FeedFormat::guess(&file),
            };
            let mut writer = match &report {
                Some(path) => {
                    let mut w = csv::Writer::from_path(path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    w.write_record(["record_id", "class", "score", "recipient_id", "reason"])
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    Some(w)
                }
                None => None,
            };
            let mut write_error = None;
            let mut write_line = |line: lifecert_app::feeds::ReportLine| {
                if let Some(w) = writer.as_mut() {
                    let row = [
                        line.record_id.clone(),
                        line.class.to_string(),
                        line.score.map(|s| format!("{s:.3}")).unwrap_or_default(),
                        line.recipient_id.map(|i| i.to_string()).unwrap_or_default(),
                        line.reason.to_string(),
                    ];
                    if let Err(e) = w.write_record(&row) {
                        write_error.get_or_insert(e);
                    }
                }
            };
            let lines: Option<&mut (dyn FnMut(_) + Send)> = match report {
                Some(_) => Some(&mut write_line),
                None => None,
            };
            let summary = if dry_run {
                app.preview_feed(&source, &file, format, lines).await
            } else {
                app.ingest_feed(&source, &file, format, lines).await
            }
            .with_context(|| format!("feed {} stopped", file.display()))?;
            if let Some(mut w) = writer {
                if let Some(e) = write_error {
                    return Err(anyhow::anyhow!("cannot write the report: {e}"));
                }
                w.flush().context("cannot write the report")?;
            }
            out.finish(
                || format!(
                    "{} records from {}: {} exact, {} unmatched, {} rejected, {} duplicates ignored; {} deaths suspended, {} reviews opened, {} passive certifications, {} voids applied",
                    summary.records, source.name, summary.exact, summary.unmatched, summary.rejected,
                    summary.duplicates_ignored, summary.deaths_suspended, summary.reviews_opened,
                    summary.lives_certified, summary.voids_applied
                ),
                &summary,
            );
        }
        Command::Cycle(CycleCommand::Run { as_of }) => {
            let as_of = as_of.unwrap_or_else(|| app.today());
            let r = app.run_cycle(&actor, as_of).await?;
            out.finish(
                || format!(
                    "Cycle as of {}: {} pensioners evaluated, {} reminders recorded, {} overdue within the grace period ({} newly told), {} newly suspended",
                    r.as_of, r.evaluated, r.reminders, r.overdue, r.overdue_notices, r.suspended
                ),
                &r,
            );
        }
        Command::Certify(a) => {
            let r = app
                .certify(
                    &actor,
                    &lifecert_app::certify::CertifyRequest {
                        recipient: lifecert_app::certify::RecipientRef::IdNumber(id_number(
                            app,
                            &a.id_number,
                        )?),
                        channel: a.channel,
                        date: a.date,
                        outcome: a.outcome,
                        reason: a.reason,
                        region_code: a.region_code,
                        evidence: a.evidence,
                    },
                )
                .await?;
            out.finish(
                || {
                    let mut s = format!(
                        "Certification {} recorded ({}). Next due on {}. Payment status: {}.",
                        r.certification_id, r.outcome, r.next_due_on, r.status
                    );
                    if let Some(case) = r.review_case_id {
                        s.push_str(&format!(" Review case {case} opened."));
                    }
                    s
                },
                &r,
            );
        }
        Command::Death(cmd) => {
            let r = match cmd {
                DeathCommand::Report {
                    id_number: raw,
                    date,
                    source,
                } => {
                    app.report_death(&actor, &id_number(app, &raw)?, date, &source)
                        .await?
                }
                DeathCommand::Confirm { id_number: raw } => {
                    app.confirm_death(&actor, &id_number(app, &raw)?).await?
                }
                DeathCommand::Void { id_number: raw } => {
                    app.void_death(&actor, &id_number(app, &raw)?).await?
                }
            };
            out.finish(
                || {
                    let mut s = format!("Payment status: {}", r.status);
                    if let Some(reason) = &r.suspension_reason {
                        s.push_str(&format!(" ({reason})"));
                    }
                    if r.overpaid_fen > 0 {
                        s.push_str(&format!(
                            ". Overpaid after the month of death: {} ({} yuan){}",
                            r.overpaid_months.join(", "),
                            yuan(r.overpaid_fen),
                            if r.recovery_case_id.is_some() {
                                ", recovery case opened"
                            } else {
                                ""
                            }
                        ));
                    }
                    s
                },
                &r,
            );
        }
        Command::Payments(PaymentsCommand::Export { month, out: file }) => {
            let r = app.export_payments(&actor, month, &file).await?;
            out.finish(
                || format!(
                    "Payment instructions for {} written to {}: {} pay, {} withhold, {} back_pay, {} stop, {} recover; {} yuan paid out",
                    r.month, file.display(), r.pay, r.withhold, r.back_pay, r.stop, r.recover, yuan(r.total_fen)
                ),
                &r,
            );
        }
        Command::Payments(PaymentsCommand::Close { month }) => {
            let r = app.close_payments(&actor, month).await?;
            out.finish(
                || {
                    format!(
                        "Payment run {} closed: {} lines, {} yuan paid out.",
                        r.month,
                        r.lines,
                        yuan(r.total_fen)
                    )
                },
                &r,
            );
        }
        Command::Audit(AuditCommand::Verify) => {
            let check = app.store().verify_audit().await.map_err(AppError::from)?;
            let ok = check.first_bad_seq.is_none();
            out.finish(
                || match &check.problem {
                    None => format!("Audit trail intact: {} entries verified.", check.entries),
                    Some(p) => format!("AUDIT TRAIL BROKEN: {p} (first bad entry: {}).", check.first_bad_seq.unwrap_or(0)),
                },
                &serde_json::json!({"entries": check.entries, "ok": ok, "first_bad_seq": check.first_bad_seq}),
            );
            if !ok {
                if out.json {
                    eprintln!("error: {}", check.problem.unwrap_or_default());
                }
                return Ok(ExitCode::from(3));
            }
        }
        Command::Recipient(RecipientCommand::Show { id_number: raw }) => {
            let v = app.recipient_view(&id_number(app, &raw)?).await?;
            out.finish(
                || {
                    let mut s = format!(
                        "{} {}  {} born {}  region {}\n{} pension since {}, {} yuan a month\nstatus: {}{}\nlast certified {}, next due {}",
                        v.id_number_masked, v.name_masked, v.gender, v.birth_date, v.region_code,
                        v.insurance_type, v.benefit_start, yuan(v.monthly_amount_fen),
                        v.status,
                        v.suspension_reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(),
                        v.last_certified_on, v.next_due_on
                    );
                    for c in &v.certifications {
                        s.push_str(&format!("\n  {} {} {}{} by {}", c.certified_on, c.channel, c.outcome,
                            c.reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(), c.actor));
                    }
                    s
                },
                &v,
            );
        }
        Command::Jobs(cmd) => {
            crate::scheduler::run_jobs_command(app, settings, &actor, cmd, out).await?;
        }
        Command::Notify(cmd) => {
            crate::notify::run_notify_command(app, &settings.notify, cmd, out).await?;
        }
        Command::Stats { as_of } => {
            let c = app.counts(as_of.unwrap_or_else(|| app.today())).await?;
            out.finish(
                || format!(
                    "{} pensioners: {} active, {} suspended, {} terminated\n{} overdue (still paid, within the grace period), {} with a valid certification",
                    c.recipients, c.active, c.suspended, c.terminated, c.overdue, c.certified_valid
                ),
                &serde_json::json!({
                    "recipients": c.recipients, "active": c.active, "suspended": c.suspended,
                    "terminated": c.terminated, "overdue": c.overdue, "certified_valid": c.certified_valid,
                }),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs an import with a progress bar when standard error is a terminal.
pub async fn import_with_progress(
    app: &App,
    actor: &Actor,
    file: &std::path::Path,
    out: Output,
) -> Result<lifecert_app::import::ImportReport> {
    let bar = (!out.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} ({eta} left)")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut on_progress = |p: lifecert_app::import::ImportProgress| {
        if let Some(bar) = &bar {
            bar.set_length(p.total);
            bar.set_position(p.done);
            bar.set_message(format!("{} rows", p.rows));
        }
    };
    let report = app
        .import_recipients(actor, file, &mut on_progress)
        .await
        .with_context(|| format!("import of {} stopped", file.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(report)
}

async fn serve_until_stopped(
    app: App,
    addr: std::net::SocketAddr,
    settings: &Settings,
    out: Output,
) -> Result<()> {
    let background = crate::scheduler::start(&app, &settings.scheduler);
    let delivery = crate::notify::start(&app, &settings.notify)?;
    let mut state = lifecert_web::AppState::new(app, settings.secure_cookies);
    if let Some(secret) = &settings.opencrvs_secret {
        state = state.with_opencrvs_secret(secret.clone());
    }
    out.notice(&format!(
        "lifecert: serving on http://{addr} (API under /api/v1, OpenAPI at /api/v1/openapi.json); Ctrl-C stops"
    ));
    let stop_jobs = background.stopper();
    let stop_delivery = delivery.stopper();
    let served = lifecert_web::serve(state, addr, async move {
        shutdown_signal().await;
        stop_jobs();
        stop_delivery();
    })
    .await
    .with_context(|| format!("cannot serve on {addr}"));
    // Running jobs finish within the grace period or are given back to the other nodes;
    // messages being sent finish within the request timeout.
    background.finish().await;
    delivery.finish().await;
    served
}

/// Ctrl-C or SIGTERM: stop accepting, finish what is in flight.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
