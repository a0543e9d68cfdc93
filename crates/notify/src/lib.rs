//! Pensioner notifications: the texts for reminders, overdue notices, suspensions and
//! resumptions (Chinese and English, to the pensioner or to a family member), their
//! delivery by SMS gateway, SMTP or signed webhook, and the retry and quiet-hours rules.
//!
//! Pure library: no database. The outbox and job runner call it like this:
//!
//! ```no_run
//! # async fn run(settings: lifecert_notify::NotifySettings, input: lifecert_notify::MessageInput) -> Result<(), Box<dyn std::error::Error>> {
//! use lifecert_notify::{Address, ChannelKind, MessageId, Notifier, Outgoing};
//! let notifier = Notifier::new(settings)?;          // at start; fails on bad settings
//! let now = chrono::Utc::now();
//! let not_before = notifier.allowed_at(ChannelKind::Sms, now);   // quiet hours
//! let outgoing = Outgoing {
//!     message_id: MessageId::parse("ntf-42")?,     // the outbox row, stable across retries
//!     to: Address::parse(ChannelKind::Sms, "13912345678")?,
//!     message: notifier.render(&input),
//! };
//! let outcome = notifier.deliver(&outgoing).await;
//! let step = notifier.next_step(&outcome, 1, ChannelKind::Sms, now); // Done / RetryAt / Dead
//! # let _ = (not_before, step); Ok(()) }
//! ```

mod address;
mod email;
mod http;
mod message;
mod notifier;
mod outcome;
pub mod policy;
mod settings;
mod sms;
pub mod template;
#[cfg(feature = "testing")]
pub mod testing;
mod webhook;

pub use address::{Address, AddressError, ChannelKind, EmailAddress, PhoneNumber, RecipientRef};
pub use message::{Kind, Language, MessageId, MessageInput, Notice, Rendered};
pub use notifier::{Deliver, DeliveryFuture, Notifier, Outgoing, SettingsError};
pub use outcome::Outcome;
pub use policy::{allowed_at, next_attempt_at, next_step, NextStep, MAX_ATTEMPTS};
pub use settings::{
    EmailSettings, NotifySettings, QuietHours, Secret, ServicePointText, SmsSettings, SmtpSecurity,
    TimeZone, WebhookSettings, DEFAULT_SMS_BODY,
};
pub use template::{sms_segments, TemplateError, Templates};
pub use webhook::{signature as webhook_signature, SIGNATURE_HEADER};
