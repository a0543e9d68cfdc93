//! `NotifySettings`: which channels exist and how to reach them, the agency's contact
//! texts, quiet hours and the local time zone. Deserialised from the `[notify]` section.

use std::fmt;
use std::path::PathBuf;

use chrono::{FixedOffset, NaiveTime};
use serde::{Deserialize, Deserializer};

use crate::message::Language;

/// The whole notification configuration. Every field has a default except the channel
/// sections: a channel without a section is not configured, and a message for it ends
/// as a permanent failure.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// The agency's service phone number, printed in every message. Default `12333`,
    /// the national human-resources and social-security hotline.
    pub service_phone: String,
    /// Where to certify in person, as it reads inside a sentence ("到……办理").
    pub service_point_text: ServicePointText,
    /// No SMS is sent in this local-time window. Default 21:00–08:00.
    pub quiet_hours: QuietHours,
    /// The local time zone quiet hours are read in. Default `Asia/Shanghai` (+08:00).
    pub time_zone: TimeZone,
    /// Limit on one delivery attempt over HTTP or SMTP, in milliseconds. Default 10000.
    pub request_timeout_ms: u64,
    /// An agency's own copy of `templates.toml`; the built-in texts when absent.
    pub templates_file: Option<PathBuf>,
    pub sms: Option<SmsSettings>,
    pub email: Option<EmailSettings>,
    pub webhook: Option<WebhookSettings>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            service_phone: "12333".to_string(),
            service_point_text: ServicePointText::default(),
            quiet_hours: QuietHours::default(),
            time_zone: TimeZone::default(),
            request_timeout_ms: 10_000,
            templates_file: None,
            sms: None,
            email: None,
            webhook: None,
        }
    }
}

/// The in-person certification place, one text for both languages or one per language.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum ServicePointText {
    Same(String),
    PerLanguage { zh: String, en: String },
}

impl Default for ServicePointText {
    fn default() -> Self {
        ServicePointText::PerLanguage {
            zh: "就近社区服务站或社保窗口".to_string(),
            en: "your local service centre".to_string(),
        }
    }
}

impl ServicePointText {
    pub fn for_language(&self, language: Language) -> &str {
        match (self, language) {
            (ServicePointText::Same(s), _) => s,
            (ServicePointText::PerLanguage { zh, .. }, Language::Zh) => zh,
            (ServicePointText::PerLanguage { en, .. }, Language::En) => en,
        }
    }
}

/// A daily local-time window, `start` inclusive and `end` exclusive; it may run over
/// midnight (21:00–08:00). Equal `start` and `end` mean no quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHours {
    #[serde(deserialize_with = "hh_mm")]
    pub start: NaiveTime,
    #[serde(deserialize_with = "hh_mm")]
    pub end: NaiveTime,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours {
            start: NINE_PM,
            end: EIGHT_AM,
        }
    }
}

const NINE_PM: NaiveTime = match NaiveTime::from_hms_opt(21, 0, 0) {
    Some(t) => t,
    None => panic!("21:00 is a time of day"),
};
const EIGHT_AM: NaiveTime = match NaiveTime::from_hms_opt(8, 0, 0) {
    Some(t) => t,
    None => panic!("08:00 is a time of day"),
};

impl QuietHours {
    pub fn contains(&self, local: NaiveTime) -> bool {
        if self.start <= self.end {
            self.start <= local && local < self.end
        } else {
            local >= self.start || local < self.end
        }
    }
}

fn hh_mm<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let s = String::deserialize(d)?;
    NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| {
        serde::de::Error::custom(format!(
            "{s:?} is not a time of day: write HH:MM, e.g. 21:00"
        ))
    })
}

/// The agency's local time zone as a fixed UTC offset. Mainland China, Hong Kong, Macau
/// and Taiwan have had no daylight-saving time since 1991, so a fixed offset is exact
/// for them and spares the build the whole time-zone database (`chrono-tz`). Accepts
/// those zone names, `UTC`, or an offset written `+08:00`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TimeZone {
    name: &'static str,
    offset: FixedOffset,
}

const PLUS_EIGHT: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(o) => o,
    None => panic!("+08:00 is a valid offset"),
};
const ZERO: FixedOffset = match FixedOffset::east_opt(0) {
    Some(o) => o,
    None => panic!("+00:00 is a valid offset"),
};

const ZONES: &[(&str, FixedOffset)] = &[
    ("Asia/Shanghai", PLUS_EIGHT),
    ("Asia/Chongqing", PLUS_EIGHT),
    ("Asia/Harbin", PLUS_EIGHT),
    ("PRC", PLUS_EIGHT),
    ("Asia/Hong_Kong", PLUS_EIGHT),
    ("Asia/Macau", PLUS_EIGHT),
    ("Asia/Taipei", PLUS_EIGHT),
    ("UTC", ZERO),
];

impl TimeZone {
    pub fn parse(s: &str) -> Result<TimeZone, String> {
        let t = s.trim();
        if let Some(&(name, offset)) = ZONES.iter().find(|(n, _)| n.eq_ignore_ascii_case(t)) {
            return Ok(TimeZone { name, offset });
        }
        let offset = parse_offset(t).ok_or_else(|| {
            format!(
                "{t:?} is not a supported time zone: use Asia/Shanghai, UTC or a fixed offset such as +08:00"
            )
        })?;
        Ok(TimeZone {
            name: "fixed offset",
            offset,
        })
    }

    pub fn offset(&self) -> FixedOffset {
        self.offset
    }
}

fn parse_offset(t: &str) -> Option<FixedOffset> {
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TimeZone::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone {
            name: "Asia/Shanghai",
            offset: PLUS_EIGHT,
        }
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.offset)
    }
}

/// A credential from the configuration. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The default SMS gateway body: every value is JSON-escaped when it is put in.
pub const DEFAULT_SMS_BODY: &str =
    r#"{"phone":"{{phone}}","text":"{{text}}","message_id":"{{message_id}}"}"#;

/// An HTTP JSON SMS gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSettings {
    /// `http://…` (or `https://…` when built with the `tls` feature).
    pub url: String,
    /// Header that carries the credential. Default `Authorization`.
    #[serde(default = "default_auth_header_name")]
    pub auth_header_name: String,
    /// e.g. `Bearer abc123`; no auth header when absent.
    pub auth_header_value: Option<Secret>,
    /// JSON request body with `{{phone}}`, `{{text}}` and `{{message_id}}` inside JSON
    /// strings. Default [`DEFAULT_SMS_BODY`].
    #[serde(default = "default_sms_body")]
    pub body_template: String,
    /// A JSON pointer (RFC 6901, e.g. `/data/id`) to the gateway's own id for the message
    /// in a successful response; it becomes `Delivered { provider_id }`.
    pub provider_id_pointer: Option<String>,
}

fn default_auth_header_name() -> String {
    "Authorization".to_string()
}

fn default_sms_body() -> String {
    DEFAULT_SMS_BODY.to_string()
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP, for a relay on a trusted network.
    #[default]
    None,
    /// Plain connection upgraded with STARTTLS (usually port 587); fails if the server
    /// does not offer it. Needs the `tls` feature.
    Starttls,
    /// TLS from the first byte (usually port 465). Needs the `tls` feature.
    Tls,
}

/// An SMTP relay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailSettings {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// The sender, e.g. `养老金资格认证 <noreply@hrss.example.gov.cn>`.
    pub from: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    #[serde(default)]
    pub security: SmtpSecurity,
    /// The name given in EHLO; `[127.0.0.1]` when absent. Some relays want the host's
    /// own DNS name.
    pub hello_name: Option<String>,
}

fn default_smtp_port() -> u16 {
    25
}

/// App push through the agency's own push service: a signed JSON POST.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    pub url: String,
    /// Key for the `X-Lifecert-Signature: sha256=<hex HMAC-SHA256 of the body>` header.
    pub secret: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_a_nearly_empty_section() {
        let s: NotifySettings = toml::from_str("service_phone = \"0755-12333\"").unwrap();
        assert_eq!(s.service_phone, "0755-12333");
        assert_eq!(s.quiet_hours, QuietHours::default());
        assert_eq!(s.time_zone.offset().local_minus_utc(), 8 * 3600);
        assert_eq!(s.request_timeout_ms, 10_000);
        assert!(s.sms.is_none() && s.email.is_none() && s.webhook.is_none());
    }

    #[test]
    fn every_channel_section_parses() {
        let s: NotifySettings = toml::from_str(
            r#"
            service_point_text = "各街道社保服务站"
            time_zone = "+07:00"
            quiet_hours = { start = "22:30", end = "07:00" }
            [sms]
            url = "http://sms.internal/send"
            auth_header_value = "Bearer abc"
            provider_id_pointer = "/id"
            [email]
            host = "smtp.internal"
            from = "认证 <noreply@example.gov.cn>"
            security = "starttls"
            port = 587
            [webhook]
            url = "http://push.internal/hook"
            secret = "s3cret"
            "#,
        )
        .unwrap();
        assert_eq!(
            s.service_point_text.for_language(Language::En),
            "各街道社保服务站"
        );
        assert_eq!(s.time_zone.offset().local_minus_utc(), 7 * 3600);
        assert_eq!(
            s.quiet_hours.start,
            NaiveTime::from_hms_opt(22, 30, 0).unwrap()
        );
        let sms = s.sms.unwrap();
        assert_eq!(sms.auth_header_name, "Authorization");
        assert_eq!(sms.body_template, DEFAULT_SMS_BODY);
        assert_eq!(s.email.unwrap().security, SmtpSecurity::Starttls);
        let hook = s.webhook.unwrap();
        assert!(!format!("{hook:?}").contains("s3cret"));
    }

    #[test]
    fn bad_values_say_what_to_write() {
        let e = toml::from_str::<NotifySettings>("time_zone = \"Europe/Berlin\"").unwrap_err();
        assert!(e.to_string().contains("+08:00"), "{e}");
        let e =
            toml::from_str::<NotifySettings>("quiet_hours = { start = \"9pm\", end = \"08:00\" }")
                .unwrap_err();
        assert!(e.to_string().contains("HH:MM"), "{e}");
        assert!(toml::from_str::<NotifySettings>("sms_url = \"x\"").is_err());
        assert!(TimeZone::parse("+8").is_err());
        assert_eq!(
            TimeZone::parse("-03:30")
                .unwrap()
                .offset()
                .local_minus_utc(),
            -(3 * 3600 + 1800)
        );
        assert_eq!(
            TimeZone::parse("asia/shanghai").unwrap(),
            TimeZone::default()
        );
    }

    #[test]
    fn quiet_hours_may_span_midnight() {
        let q = QuietHours::default();
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(!q.contains(t(20, 59)));
        assert!(q.contains(t(21, 0)));
        assert!(q.contains(t(0, 0)));
        assert!(q.contains(t(7, 59)));
        assert!(!q.contains(t(8, 0)));
        let day = QuietHours {
            start: t(12, 0),
            end: t(14, 0),
        };
        assert!(day.contains(t(13, 0)) && !day.contains(t(14, 0)) && !day.contains(t(11, 59)));
        let none = QuietHours {
            start: t(8, 0),
            end: t(8, 0),
        };
        assert!(!none.contains(t(8, 0)) && !none.contains(t(23, 0)));
    }
}
