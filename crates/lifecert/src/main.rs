//! The `lifecert` command: pension eligibility certification (养老保险待遇领取资格认证).

mod commands;
mod demo;
mod notify;

/// mimalloc rather than glibc's malloc: feeds allocate rows on the SQLite worker thread and
/// free them on the tokio threads, and glibc's arena locks were a tenth of a feed's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
mod output;
mod scheduler;
mod settings;

use clap::Parser;
use output::Output;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "lifecert",
    version,
    about = "Pension eligibility certification (proof of life): registry, certification cycles, payment ledger, audit trail"
)]
struct Cli {
    /// Database: sqlite://PATH (default sqlite://lifecert-data/lifecert.db) or postgres://USER:PASSWORD@HOST/DB
    #[arg(
        long,
        global = true,
        env = "LIFECERT_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Settings file (TOML: database_url, master_key_file, field_cipher)
    #[arg(long, global = true, env = "LIFECERT_CONFIG")]
    config: Option<PathBuf>,
    /// Print one JSON object as the last line of standard output
    #[arg(long, global = true)]
    json: bool,
    /// Who is acting, for the audit trail (default: the operating-system user)
    #[arg(long, global = true, env = "LIFECERT_ACTOR")]
    actor: Option<String>,
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return argument_error(e),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LIFECERT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let out = Output { json: cli.json };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli, out)) {
        Ok(code) => code,
        Err(e) => {
            let code = e
                .downcast_ref::<lifecert_app::AppError>()
                .map(|a| a.code())
                .unwrap_or("error");
            let message = format!("{e:#}");
            eprintln!("error: {message}");
            if out.json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"code": code, "message": message}})
                );
            }
            ExitCode::FAILURE
        }
    }
}

/// Bad arguments: clap's message on standard error, and with `--json` the same error
/// object every other failure prints, so scripts never have to parse help text.
fn argument_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let code = ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return code;
    }
    let _ = e.print();
    if std::env::args().any(|a| a == "--json") {
        let message = e
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        println!(
            "{}",
            serde_json::json!({"error": {"code": "invalid_argument", "message": message}})
        );
    }
    ExitCode::from(2)
}
