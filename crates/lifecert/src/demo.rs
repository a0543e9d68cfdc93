//! `lifecert demo`: a fresh SQLite database full of realistic generated pensioners, so
//! a newcomer has something to look at, and the commands to try next.

use crate::commands::{import_with_progress, open_app};
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{bail, Context, Result};
use lifecert_app::demo_data::{write_demo_csv, DemoOptions};
use lifecert_app::keys::KeySettings;
use lifecert_app::{Actor, App, Clock, SystemClock};
use lifecert_domain::{RegionScope, Role};
use std::path::Path;

pub async fn run(
    dir: &Path,
    recipients: usize,
    seed: u64,
    settings: &Settings,
    out: Output,
) -> Result<App> {
    let db = dir.join("lifecert.db");
    if db.exists() {
        bail!(
            "{} already exists: remove the folder {} (or choose another with --dir) to make a fresh demo",
            db.display(),
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let csv_path = dir.join("demo-recipients.csv");
    let today = SystemClock.today();
    let file = std::fs::File::create(&csv_path)
        .with_context(|| format!("cannot write {}", csv_path.display()))?;
    write_demo_csv(
        file,
        &DemoOptions {
            recipients,
            seed,
            today,
        },
    )
    .with_context(|| format!("cannot write {}", csv_path.display()))?;
    let url = format!("sqlite://{}", db.display());
    let demo_settings = Settings {
        database_url: url.clone(),
        addr: settings.addr,
        secure_cookies: settings.secure_cookies,
        // The generated roll holds GB 11643 numbers.
        id_scheme: lifecert_domain::IdScheme::CnResident,
        keys: KeySettings {
            master_key: None,
            master_key_file: None,
            cipher: settings.keys.cipher,
        },
        sources: settings.sources.clone(),
        matching: settings.matching.clone(),
        scheduler: settings.scheduler.clone(),
        opencrvs_secret: settings.opencrvs_secret.clone(),
        // Generated phone numbers may belong to real people: the demo never sends, its
        // notifications wait in the outbox.
        notify: crate::notify::NotifyConfig::load(None)?,
    };
    let app = open_app(&demo_settings, out).await?;
    let actor = Actor::System;
    let report = import_with_progress(&app, &actor, &csv_path, out).await?;
    let cycle = app.run_cycle(&actor, today).await?;
    let counts = app.counts(today).await?;
    let example = first_id_number(&csv_path).unwrap_or_default();
    let exe = "cargo run --release --";
    let db_flag = format!("--database-url {url}");
    out.finish(
        || {
            format!(
                "Demo database ready: {db}\n\
                 {inserted} pensioners imported from {csv} (the file shows the import format).\n\
                 Cycle as of {today}: {reminders} reminders recorded, {suspended} suspended as long overdue, {overdue} overdue within the grace period.\n\
                 {active} active, {susp_total} suspended, {valid} with a valid certification.\n\n\
                 Try next:\n\
                 \x20 {exe} {db_flag} stats\n\
                 \x20 {exe} {db_flag} recipient show --id-number {example}\n\
                 \x20 {exe} {db_flag} certify --id-number {example} --channel counter --date {today}\n\
                 \x20 {exe} {db_flag} death report --id-number {example} --date {today} --source public_security\n\
                 \x20 {exe} {db_flag} payments export --month {month} --out {dir}/payments.csv\n\
                 \x20 {exe} {db_flag} audit verify\n\
                 The master key is in {key} (keep it with the database).",
                db = db.display(),
                inserted = report.inserted,
                csv = csv_path.display(),
                reminders = cycle.reminders,
                suspended = cycle.suspended,
                overdue = cycle.overdue,
                active = counts.active,
                susp_total = counts.suspended,
                valid = counts.certified_valid,
                month = lifecert_domain::YearMonth::of(today),
                dir = dir.display(),
                key = dir.join("lifecert.key").display(),
            )
        },
        &serde_json::json!({
            "database_url": url,
            "recipients": report.inserted,
            "rejected": report.rejected,
            "reminders": cycle.reminders,
            "suspended": cycle.suspended,
        }),
    );
    Ok(app)
}

fn first_id_number(csv_path: &Path) -> Option<String> {
    let mut reader = csv::Reader::from_path(csv_path).ok()?;
    let record = reader.records().next()?.ok()?;
    record.get(0).map(str::to_string)
}

/// Demo staff accounts for trying the API, one per role, with the whole country as
/// their region; their one-time passwords and authenticator URIs are printed.
pub async fn print_demo_accounts(app: &App, out: Output) -> Result<()> {
    let mut lines = vec!["Demo staff accounts (log in with POST /api/v1/auth/login {username, password, totp}; the totp code comes from the otpauth:// URI in any authenticator app):".to_string()];
    let whole_country = RegionScope::parse("")?;
    for role in [
        Role::Supervisor,
        Role::Certifier,
        Role::Reviewer,
        Role::Consultant,
        Role::Auditor,
    ] {
        let name = format!("demo-{role}");
        let user = app
            .add_user(&Actor::System, &name, role, &whole_country)
            .await?;
        lines.push(format!(
            "  {name}: password {}  {}",
            user.password, user.totp_uri
        ));
    }
    out.notice(&lines.join("\n"));
    Ok(())
}
