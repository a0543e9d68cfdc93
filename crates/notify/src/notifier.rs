//! `Notifier`: the configured channels behind one `deliver`, plus rendering and the
//! scheduling rules bound to the agency's settings.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::address::{Address, ChannelKind};
use crate::email::EmailChannel;
use crate::http::HttpClient;
use crate::message::{MessageId, MessageInput, Rendered};
use crate::outcome::Outcome;
use crate::policy::{self, NextStep};
use crate::settings::NotifySettings;
use crate::sms::SmsChannel;
use crate::template::{TemplateError, Templates};
use crate::webhook::WebhookChannel;

/// A settings problem found at start, naming the setting and what to change.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("notify.{field}: {problem}")]
    Invalid { field: String, problem: String },
    #[error("notify.templates_file {}: {source}", path.display())]
    TemplatesFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Templates(#[from] TemplateError),
}

/// `section` is `""` for a top-level setting, else `sms`, `email` or `webhook`.
fn invalid(section: &str, (field, problem): (&str, String)) -> SettingsError {
    let field = if section.is_empty() {
        field.to_string()
    } else {
        format!("{section}.{field}")
    };
    SettingsError::Invalid { field, problem }
}

/// One message ready to go: its stable id, where it goes, and its rendered texts.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub message_id: MessageId,
    pub to: Address,
    pub message: Rendered,
}

/// A boxed delivery future, so [`Deliver`] can be used as `dyn Deliver`.
pub type DeliveryFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// Something that delivers messages: the real [`Notifier`], or a recording fake in tests
/// (`testing::RecordingDeliverer`). The job runner holds an `Arc<dyn Deliver>`.
pub trait Deliver: Send + Sync {
    fn deliver<'a>(&'a self, message: &'a Outgoing) -> DeliveryFuture<'a>;
}

/// The configured channels, the templates and the settings they were built from.
pub struct Notifier {
    settings: NotifySettings,
    templates: Templates,
    http: HttpClient,
    sms: Option<SmsChannel>,
    email: Option<EmailChannel>,
    webhook: Option<WebhookChannel>,
}

impl Notifier {
    /// Checks the settings, loads the templates (the built-in ones or `templates_file`)
    /// and prepares each configured channel. Opens no connection.
    pub fn new(settings: NotifySettings) -> Result<Notifier, SettingsError> {
        let templates = match &settings.templates_file {
            None => Templates::builtin()?,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| {
                    SettingsError::TemplatesFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                Templates::from_toml(&text)?
            }
        };
        Notifier::with_templates(settings, templates)
    }

    /// As [`Notifier::new`], with templates the caller already loaded.
    pub fn with_templates(
        settings: NotifySettings,
        templates: Templates,
    ) -> Result<Notifier, SettingsError> {
        let phone = settings.service_phone.trim();
        if phone.is_empty() || phone.chars().count() > 30 {
            return Err(invalid(
                "",
                (
                    "service_phone",
                    "must be 1 to 30 characters, e.g. 12333".to_string(),
                ),
            ));
        }
        if !(100..=300_000).contains(&settings.request_timeout_ms) {
            return Err(invalid(
                "",
                (
                    "request_timeout_ms",
                    "must be between 100 and 300000 (5 minutes)".to_string(),
                ),
            ));
        }
        let timeout = Duration::from_millis(settings.request_timeout_ms);
        let sms = settings
            .sms
            .as_ref()
            .map(SmsChannel::new)
            .transpose()
            .map_err(|e| invalid("sms", e))?;
        let email = settings
            .email
            .as_ref()
            .map(|e| EmailChannel::new(e, timeout))
            .transpose()
            .map_err(|e| invalid("email", e))?;
        let webhook = settings
            .webhook
            .as_ref()
            .map(WebhookChannel::new)
            .transpose()
            .map_err(|e| invalid("webhook", e))?;
        Ok(Notifier {
            http: HttpClient::new(timeout),
            settings,
            templates,
            sms,
            email,
            webhook,
        })
    }

    pub fn settings(&self) -> &NotifySettings {
        &self.settings
    }

    pub fn is_configured(&self, channel: ChannelKind) -> bool {
        match channel {
            ChannelKind::Sms => self.sms.is_some(),
            ChannelKind::Email => self.email.is_some(),
            ChannelKind::Webhook => self.webhook.is_some(),
        }
    }

    /// The SMS, email and webhook texts for one message, with the agency's phone number
    /// and service-point text filled in.
    pub fn render(&self, input: &MessageInput) -> Rendered {
        self.templates.render(
            input,
            &self.settings.service_phone,
            self.settings
                .service_point_text
                .for_language(input.language),
        )
    }

    /// The earliest time at or after `now` that a message may go out on `channel`
    /// (SMS waits out quiet hours).
    pub fn allowed_at(&self, channel: ChannelKind, now: DateTime<Utc>) -> DateTime<Utc> {
        policy::allowed_at(
            channel,
            now,
            &self.settings.quiet_hours,
            &self.settings.time_zone,
        )
    }

    /// What the outbox does after attempt number `attempts_made` ended in `outcome`.
    pub fn next_step(
        &self,
        outcome: &Outcome,
        attempts_made: u32,
        channel: ChannelKind,
        now: DateTime<Utc>,
    ) -> NextStep {
        policy::next_step(
            outcome,
            attempts_made,
            channel,
            now,
            &self.settings.quiet_hours,
            &self.settings.time_zone,
        )
    }

    /// One delivery attempt, bounded by `request_timeout_ms`. Never retries by itself:
    /// the outbox decides with [`Notifier::next_step`]. Does not check quiet hours.
    #[tracing::instrument(skip_all, fields(message_id = %message.message_id, channel = %message.to.channel()))]
    pub async fn deliver(&self, message: &Outgoing) -> Outcome {
        let id = &message.message_id;
        let outcome = match &message.to {
            Address::Sms(phone) => match &self.sms {
                Some(sms) => sms.send(&self.http, id, phone, &message.message.sms).await,
                None => not_configured(ChannelKind::Sms),
            },
            Address::Email(to) => match &self.email {
                Some(email) => {
                    email
                        .send(
                            id,
                            to,
                            &message.message.email_subject,
                            &message.message.email_body,
                        )
                        .await
                }
                None => not_configured(ChannelKind::Email),
            },
            Address::Webhook(recipient) => match &self.webhook {
                Some(hook) => hook.send(&self.http, id, recipient, &message.message).await,
                None => not_configured(ChannelKind::Webhook),
            },
        };
        tracing::debug!(%outcome, "delivery attempt");
        outcome
    }
}

fn not_configured(channel: ChannelKind) -> Outcome {
    Outcome::Permanent(format!("the {channel} channel is not configured"))
}

impl Deliver for Notifier {
    fn deliver<'a>(&'a self, message: &'a Outgoing) -> DeliveryFuture<'a> {
        Box::pin(Notifier::deliver(self, message))
    }
}
