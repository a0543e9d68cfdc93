//! Notification delivery for the binary: the `[notify]` settings (the channels, read by
//! `lifecert-notify`, and `[notify.delivery]`, the worker of `serve`), the worker that
//! `serve` runs, and `lifecert notify run-pending`.

use crate::output::Output;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use lifecert_app::notifications::DeliveryWorker;
use lifecert_app::App;
use lifecert_notify::{Notifier, NotifySettings};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// `[notify.delivery]` in the settings file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveryFile {
    enabled: Option<bool>,
    concurrency: Option<usize>,
    poll_seconds: Option<u64>,
    lease_seconds: Option<u64>,
}

/// The `[notify]` section: channels and texts, and how `serve` delivers.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub settings: NotifySettings,
    /// `serve` runs a delivery worker (`LIFECERT_NOTIFY_DELIVERY=false` turns it off on
    /// a node; `notify run-pending` works either way).
    pub enabled: bool,
    /// Messages sent at the same time by one process.
    pub concurrency: usize,
    /// How often an idle worker looks for due messages.
    pub poll: Duration,
    /// How long a claimed message is this node's (longer than the request timeout).
    pub lease: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl NotifyConfig {
    /// From the file's `[notify]` table (absent: nothing configured), then
    /// `LIFECERT_NOTIFY_*` variables. The channels are checked here, so a mistake stops
    /// every command at start with the setting named.
    pub fn load(section: Option<toml::Table>) -> Result<NotifyConfig> {
        let mut table = section.unwrap_or_default();
        let delivery: DeliveryFile = match table.remove("delivery") {
            Some(v) => v
                .try_into()
                .context("the [notify.delivery] settings are not valid")?,
            None => DeliveryFile::default(),
        };
        let settings: NotifySettings = toml::Value::Table(table)
            .try_into()
            .context("the [notify] settings are not valid")?;
        Notifier::new(settings.clone()).context("the [notify] settings are not valid")?;
        let enabled = match env("LIFECERT_NOTIFY_DELIVERY") {
            Some(v) => match v.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" => false,
                other => bail!("LIFECERT_NOTIFY_DELIVERY={other:?}: use true or false"),
            },
            None => delivery.enabled.unwrap_or(true),
        };
        let concurrency = match env("LIFECERT_NOTIFY_CONCURRENCY") {
            Some(v) => v.trim().parse().map_err(|_| {
                anyhow::anyhow!("LIFECERT_NOTIFY_CONCURRENCY={v:?} is not a number")
            })?,
            None => delivery.concurrency.unwrap_or(8),
        };
        if !(1..=64).contains(&concurrency) {
            bail!("notify.delivery.concurrency: {concurrency}: use 1 to 64");
        }
        let poll = delivery.poll_seconds.unwrap_or(5);
        if !(1..=3600).contains(&poll) {
            bail!("notify.delivery.poll_seconds: {poll}: use 1 to 3600");
        }
        let timeout_ms = settings.request_timeout_ms;
        let lease = match delivery.lease_seconds {
            Some(s) if s.saturating_mul(1000) < timeout_ms.saturating_add(1000) => bail!(
                "notify.delivery.lease_seconds: {s}: must be at least a second longer than request_timeout_ms ({timeout_ms} ms)"
            ),
            Some(s) => Duration::from_secs(s),
            None => DeliveryWorker::default_lease(timeout_ms),
        };
        Ok(NotifyConfig {
            settings,
            enabled,
            concurrency,
            poll: Duration::from_secs(poll),
            lease,
        })
    }

    fn notifier(&self) -> Result<Arc<Notifier>> {
        Ok(Arc::new(
            Notifier::new(self.settings.clone()).context("the [notify] settings are not valid")?,
        ))
    }

    fn worker(&self, role: &str) -> DeliveryWorker {
        DeliveryWorker {
            name: format!("{}/{role}", lifecert_app::jobs::node_name()),
            concurrency: self.concurrency,
            lease: self.lease,
        }
    }
}

/// The delivery worker of one `serve` process.
pub struct Delivery {
    stop: Arc<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
}

/// Starts the delivery worker unless it is turned off on this node.
pub fn start(app: &App, config: &NotifyConfig) -> Result<Delivery> {
    let (stop, signal) = watch::channel(false);
    let task = if config.enabled {
        let (app, notifier, worker, poll) = (
            app.clone(),
            config.notifier()?,
            config.worker("notify"),
            config.poll,
        );
        Some(tokio::spawn(async move {
            app.run_delivery_worker(notifier, worker, poll, signal)
                .await;
        }))
    } else {
        tracing::info!("notification delivery is off on this node");
        None
    };
    Ok(Delivery {
        stop: Arc::new(stop),
        task,
    })
}

impl Delivery {
    /// Something that tells the worker to stop (from the shutdown signal's handler).
    pub fn stopper(&self) -> impl FnOnce() + Send + 'static {
        let stop = self.stop.clone();
        move || {
            let _ = stop.send(true);
        }
    }

    /// Stops and waits for the round in progress (each send ends within the request timeout).
    pub async fn finish(self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the notification delivery task failed");
            }
        }
    }
}

#[derive(Subcommand)]
pub enum NotifyCommand {
    /// Send every notification due now (retries included), then exit
    RunPending,
}

pub async fn run_notify_command(
    app: &App,
    config: &NotifyConfig,
    command: NotifyCommand,
    out: Output,
) -> Result<()> {
    match command {
        NotifyCommand::RunPending => {
            let run = app
                .run_pending_notifications(&config.notifier()?, &config.worker("cli"))
                .await?;
            out.finish(
                || {
                    let r = &run.report;
                    let mut s = format!(
                        "{} notifications tried: {} delivered, {} to retry later, {} failed (listed for follow-up), {} cancelled as no longer true",
                        r.claimed, r.delivered, r.retrying, r.failed, r.cancelled
                    );
                    if r.deferred > 0 {
                        s.push_str(&format!("\n{} SMS held until quiet hours end", r.deferred));
                    }
                    if r.recovered > 0 {
                        s.push_str(&format!(
                            "\n{} left half-sent by a stopped node made due again",
                            r.recovered
                        ));
                    }
                    for w in &run.waiting {
                        s.push_str(&format!(
                            "\n{} waiting on {}{}",
                            w.count,
                            w.channel,
                            match (&w.earliest, w.configured) {
                                (_, false) => format!(
                                    ": the channel is not configured ([notify.{}] in the settings file)",
                                    w.channel
                                ),
                                (Some(t), true) => format!(", the next at {t}"),
                                (None, true) => String::new(),
                            }
                        ));
                    }
                    s
                },
                &run,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Option<toml::Table> {
        let mut t: toml::Table = toml::from_str(text).unwrap();
        t.remove("notify").map(|v| match v {
            toml::Value::Table(t) => t,
            other => panic!("{other:?}"),
        })
    }

    #[test]
    fn channels_and_delivery_come_from_one_section() {
        let c = NotifyConfig::load(table(
            "[notify]\nservice_phone = \"0755-12333\"\n[notify.sms]\nurl = \"http://127.0.0.1:9001/send\"\n[notify.delivery]\nconcurrency = 16\npoll_seconds = 2\n",
        ))
        .unwrap();
        assert_eq!(c.settings.service_phone, "0755-12333");
        assert!(c.settings.sms.is_some() && c.settings.email.is_none());
        assert_eq!(
            (c.enabled, c.concurrency, c.poll, c.lease),
            (true, 16, Duration::from_secs(2), Duration::from_secs(40))
        );
        let none = NotifyConfig::load(None).unwrap();
        assert!(none.settings.sms.is_none() && none.enabled);
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("[notify]\nsms_url = \"x\"\n", "sms_url"),
            ("[notify.sms]\nurl = \"ftp://x\"\n", "notify.sms.url"),
            ("[notify.delivery]\nconcurrency = 0\n", "concurrency"),
            ("[notify.delivery]\nworkers = 2\n", "workers"),
            (
                "[notify]\nrequest_timeout_ms = 5000\n[notify.delivery]\nlease_seconds = 5\n",
                "lease_seconds",
            ),
        ] {
            let e = NotifyConfig::load(table(text)).unwrap_err();
            assert!(format!("{e:#}").contains(needle), "{text}: {e:#}");
        }
    }
}
