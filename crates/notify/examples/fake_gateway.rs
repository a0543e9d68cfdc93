//! A fake SMS/webhook gateway and SMTP sink for shell-driven multi-process tests.
//!
//! ```text
//! cargo run -p lifecert-notify --example fake_gateway -- --sms 127.0.0.1:9001 --smtp 127.0.0.1:2525
//!     [--http-status 503] [--smtp-reject 550]
//! ```
//!
//! Prints one JSON object per line on standard output: first
//! `{"event":"listening","sms":"127.0.0.1:9001","smtp":"127.0.0.1:2525"}`, then one
//! `{"event":"http",...}` per HTTP request (any path: SMS gateway or webhook) and one
//! `{"event":"email",...}` per accepted message, each with `count`, the number of
//! deliveries seen so far for its message id (2 or more means a retry reached the
//! gateway). `--http-status` answers every HTTP request with that status;
//! `--smtp-reject` answers every RCPT TO with that code. Runs until interrupted.

use std::collections::HashMap;
use std::process::ExitCode;

use lifecert_notify::testing::{FakeGateway, FakeSmtpSink, ReceivedMail, ReceivedRequest, Reply};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;

struct Args {
    sms: Option<String>,
    smtp: Option<String>,
    http_status: Option<u16>,
    smtp_reject: Option<u16>,
}

const USAGE: &str =
    "usage: fake_gateway [--sms ADDR] [--smtp ADDR] [--http-status CODE] [--smtp-reject CODE]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sms: None,
        smtp: None,
        http_status: None,
        smtp_reject: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let code = |v: String| {
            v.parse::<u16>()
                .map_err(|_| format!("{v:?} is not a status code"))
        };
        match flag.as_str() {
            "--sms" | "--http" => args.sms = Some(value()?),
            "--smtp" => args.smtp = Some(value()?),
            "--http-status" => args.http_status = Some(code(value()?)?),
            "--smtp-reject" => args.smtp_reject = Some(code(value()?)?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.sms.is_none() && args.smtp.is_none() {
        return Err(format!("give --sms, --smtp or both\n{USAGE}"));
    }
    Ok(args)
}

/// The next event, or `None` when there is no such server (or it stopped).
async fn next<T: Clone>(rx: &mut Option<Receiver<T>>) -> Option<T> {
    let Some(r) = rx.as_mut() else {
        return std::future::pending().await;
    };
    loop {
        match r.recv().await {
            Ok(v) => return Some(v),
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return None,
        }
    }
}

fn http_line(r: &ReceivedRequest, count: usize) -> Value {
    json!({
        "event": "http",
        "seq": r.seq,
        "method": r.method,
        "path": r.path,
        "message_id": r.message_id(),
        "count": count,
        "headers": r.headers.iter().cloned().collect::<HashMap<_, _>>(),
        "body": r.json().unwrap_or_else(|| Value::String(r.body.clone())),
    })
}

fn email_line(m: &ReceivedMail, count: usize) -> Value {
    json!({
        "event": "email",
        "seq": m.seq,
        "message_id": m.message_id(),
        "count": count,
        "from": m.mail_from,
        "to": m.rcpt_to,
        "subject": m.subject(),
        "body": m.body_text(),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let gateway = match &args.sms {
        Some(addr) => match FakeGateway::start_on(addr.as_str()).await {
            Ok(g) => Some(g),
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let sink = match &args.smtp {
        Some(addr) => match FakeSmtpSink::start_on(addr.as_str()).await {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    if let (Some(g), Some(status)) = (&gateway, args.http_status) {
        g.reply_with(Reply::status(status));
    }
    if let (Some(s), Some(code)) = (&sink, args.smtp_reject) {
        s.reject_recipients(Some((code, "rejected by fake_gateway --smtp-reject")));
    }
    let mut http_rx = gateway.as_ref().map(FakeGateway::subscribe);
    let mut mail_rx = sink.as_ref().map(FakeSmtpSink::subscribe);
    println!(
        "{}",
        json!({
            "event": "listening",
            "sms": gateway.as_ref().map(|g| g.addr().to_string()),
            "smtp": sink.as_ref().map(|s| s.addr().to_string()),
        })
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut count = |id: Option<String>| {
        let n = counts.entry(id.unwrap_or_default()).or_default();
        *n += 1;
        *n
    };
    loop {
        tokio::select! {
            Some(r) = next(&mut http_rx) => {
                let n = count(r.message_id().map(str::to_string).map(|id| format!("http:{id}")));
                println!("{}", http_line(&r, n));
            }
            Some(m) = next(&mut mail_rx) => {
                let n = count(m.message_id().map(|id| format!("email:{id}")));
                println!("{}", email_line(&m, n));
            }
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        }
    }
}
