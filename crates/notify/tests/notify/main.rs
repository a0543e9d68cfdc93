//! lifecert-notify's integration tests, one binary: real deliveries to the fake gateway
//! and SMTP sink on 127.0.0.1, templates for every kind × language × addressee, quiet
//! hours. Nothing here reaches beyond loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate: failing loudly is the point

mod email;
mod quiet_hours;
mod sms;
mod templates;
mod webhook;

use chrono::NaiveDate;
use lifecert_domain::Sensitive;
use lifecert_notify::{Kind, Language, MessageInput, Notice, NotifySettings};

pub fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

pub fn notice(kind: Kind) -> Notice {
    match kind {
        Kind::Reminder => Notice::Reminder {
            due_on: date(2025, 12, 31),
        },
        Kind::Overdue => Notice::Overdue {
            due_on: date(2025, 12, 31),
            suspend_from: date(2026, 1, 31),
        },
        Kind::Suspended => Notice::Suspended {
            on: date(2026, 2, 1),
        },
        Kind::Resumed => Notice::Resumed {
            on: date(2026, 3, 15),
        },
    }
}

pub fn input(
    kind: Kind,
    language: Language,
    name: &str,
    agent: Option<Option<&str>>,
) -> MessageInput {
    MessageInput {
        notice: notice(kind),
        language,
        pensioner_name: Sensitive::new(name.to_string()),
        addressee_is_agent: agent.is_some(),
        agent_name: agent.flatten().map(|a| Sensitive::new(a.to_string())),
    }
}

pub fn settings() -> NotifySettings {
    NotifySettings {
        service_phone: "0755-12333".to_string(),
        ..NotifySettings::default()
    }
}
