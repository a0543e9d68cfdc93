//! What a notification says: its kind, language, dates and addressee, and the rendered texts.

use std::fmt;

use chrono::NaiveDate;
use lifecert_domain::{ParseError, Sensitive};

/// Why a pensioner is being told something. Stored in the outbox as [`Kind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Certification falls due soon.
    Reminder,
    /// Certification is overdue; payment will be suspended after the grace period.
    Overdue,
    /// Payment has been suspended.
    Suspended,
    /// Payment has been resumed.
    Resumed,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Reminder,
        Kind::Overdue,
        Kind::Suspended,
        Kind::Resumed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reminder => "reminder",
            Kind::Overdue => "overdue",
            Kind::Suspended => "suspended",
            Kind::Resumed => "resumed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| {
                ParseError::new(format!(
                    "{s:?} is not a notification kind: use reminder, overdue, suspended or resumed"
                ))
            })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The language a message is written in. Chinese unless the pensioner chose English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Language {
    #[default]
    Zh,
    En,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::Zh, Language::En];

    pub fn as_str(self) -> &'static str {
        match self {
            Language::Zh => "zh",
            Language::En => "en",
        }
    }

    /// Accepts `zh`/`en` and regional tags such as `zh-CN` or `en-GB`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let lower = s.trim().to_ascii_lowercase();
        let primary = lower.split(['-', '_']).next().unwrap_or_default();
        match primary {
            "zh" => Ok(Language::Zh),
            "en" => Ok(Language::En),
            _ => Err(ParseError::new(format!(
                "{s:?} is not a supported language: use zh or en"
            ))),
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A notice with exactly the dates its kind needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Reminder {
        due_on: NaiveDate,
    },
    Overdue {
        due_on: NaiveDate,
        /// First day on which payment is suspended if the pensioner has still not certified.
        suspend_from: NaiveDate,
    },
    Suspended {
        on: NaiveDate,
    },
    Resumed {
        on: NaiveDate,
    },
}

impl Notice {
    pub fn kind(&self) -> Kind {
        match self {
            Notice::Reminder { .. } => Kind::Reminder,
            Notice::Overdue { .. } => Kind::Overdue,
            Notice::Suspended { .. } => Kind::Suspended,
            Notice::Resumed { .. } => Kind::Resumed,
        }
    }

    /// The date the message is about: the due date, or the suspension / resume date.
    pub fn date(&self) -> NaiveDate {
        match *self {
            Notice::Reminder { due_on } | Notice::Overdue { due_on, .. } => due_on,
            Notice::Suspended { on } | Notice::Resumed { on } => on,
        }
    }

    pub(crate) fn suspend_from(&self) -> Option<NaiveDate> {
        match *self {
            Notice::Overdue { suspend_from, .. } => Some(suspend_from),
            _ => None,
        }
    }
}

/// Everything a template needs about one message.
#[derive(Debug, Clone)]
pub struct MessageInput {
    pub notice: Notice,
    pub language: Language,
    pub pensioner_name: Sensitive<String>,
    /// The message goes to an agent or family member who helps the pensioner.
    pub addressee_is_agent: bool,
    /// The agent's name for the greeting; without it the greeting is unnamed.
    pub agent_name: Option<Sensitive<String>>,
}

/// A message rendered for every channel. Holds personal data, so `Debug` shows only
/// its kind, language and lengths.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    pub kind: Kind,
    pub language: Language,
    /// The SMS text (also the webhook's `text`).
    pub sms: String,
    pub email_subject: String,
    pub email_body: String,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field("kind", &self.kind)
            .field("language", &self.language)
            .field("sms_chars", &self.sms.chars().count())
            .field("email_body_chars", &self.email_body.chars().count())
            .finish_non_exhaustive()
    }
}

/// The stable id of one notification, sent to gateways as an idempotency key so a retry
/// after an unknown outcome can be recognised. Use the outbox row's id, e.g. `ntf-42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageId(String);

impl MessageId {
    /// 1 to 100 characters of `A-Z a-z 0-9 . _ -`: safe in HTTP headers, JSON and a
    /// Message-ID header without quoting.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(MessageId(s.to_string()))
        } else {
            Err(ParseError::new(format!(
                "{s:?} is not a message id: use 1 to 100 letters, digits, '.', '_' or '-'"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_language_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()).unwrap(), k);
        }
        assert!(Kind::parse("reminded").is_err());
        assert_eq!(Language::parse("zh-CN").unwrap(), Language::Zh);
        assert_eq!(Language::parse("EN_gb").unwrap(), Language::En);
        assert!(Language::parse("fr").is_err());
        assert_eq!(Language::default(), Language::Zh);
    }

    #[test]
    fn message_id_is_header_safe() {
        assert_eq!(MessageId::parse("ntf-42").unwrap().as_str(), "ntf-42");
        for bad in ["", "a b", "a\r\nX: y", "a@b", "\"q\"", &"x".repeat(101)] {
            assert!(MessageId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rendered_debug_hides_texts() {
        let r = Rendered {
            kind: Kind::Reminder,
            language: Language::Zh,
            sms: "张三您好".into(),
            email_subject: "张三".into(),
            email_body: "张三".into(),
        };
        assert!(!format!("{r:?}").contains("张三"));
    }
}
