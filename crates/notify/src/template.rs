//! Notification templates: the agency-editable texts (`templates.toml`) and the safe,
//! single-pass filling-in of their placeholders.

use chrono::{Datelike, NaiveDate};
use serde::Deserialize;

use crate::message::{Kind, Language, MessageInput, Rendered};

/// The built-in texts, compiled into the binary. An agency's own copy is loaded with
/// [`Templates::from_toml`] (the `templates_file` setting).
pub const BUILTIN_TEMPLATES: &str = include_str!("../templates.toml");

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the notification templates are not valid: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("notification template {at}: {problem}")]
    Invalid { at: String, problem: String },
}

/// A placeholder a template may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Greeting,
    Name,
    Date,
    SuspendFrom,
    ServicePhone,
    ServicePoint,
    HowSms,
    HowEmail,
    Addressee,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "greeting" => Var::Greeting,
            "name" => Var::Name,
            "date" => Var::Date,
            "suspend_from" => Var::SuspendFrom,
            "service_phone" => Var::ServicePhone,
            "service_point" => Var::ServicePoint,
            "how_sms" => Var::HowSms,
            "how_email" => Var::HowEmail,
            "addressee" => Var::Addressee,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Var(Var),
}

/// A text split into literal pieces and placeholders once, when it is loaded.
#[derive(Debug, Clone)]
struct Template(Vec<Piece>);

impl Template {
    fn parse(src: &str, allowed: &[Var], at: &str) -> Result<Template, TemplateError> {
        let invalid = |problem: String| TemplateError::Invalid {
            at: at.to_string(),
            problem,
        };
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_alphanumeric() || c == '_' => name.push(c),
                            _ => {
                                return Err(invalid(format!(
                                    "\"{{{name}\" is not closed: write {{placeholder}}, or {{{{ for a literal brace"
                                )))
                            }
                        }
                    }
                    let var = Var::parse(&name)
                        .filter(|v| allowed.contains(v))
                        .ok_or_else(|| invalid(format!("{{{name}}} cannot be used here")))?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(var));
                }
                '}' => {
                    return Err(invalid(
                        "a lone \"}\": write }} for a literal brace".to_string(),
                    ))
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    /// Values are inserted as they are and never scanned for placeholders again, so a
    /// name like "{service_phone}" stays literally that.
    fn fill(&self, value: impl Fn(Var) -> String) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => out.push_str(&value(*v)),
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    zh: RawLanguage,
    en: RawLanguage,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanguage {
    greeting: String,
    greeting_unnamed: String,
    how_sms: String,
    how_email: String,
    reminder: RawKind,
    overdue: RawKind,
    suspended: RawKind,
    resumed: RawKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKind {
    pensioner: RawTexts,
    agent: RawTexts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTexts {
    sms: String,
    subject: String,
    body: String,
}

#[derive(Debug, Clone)]
struct Texts {
    sms: Template,
    subject: Template,
    body: Template,
}

#[derive(Debug, Clone)]
struct LanguageTemplates {
    greeting: Template,
    greeting_unnamed: Template,
    how_sms: Template,
    how_email: Template,
    /// Indexed by [`kind_index`]; `.0` to the pensioner, `.1` to an agent.
    kinds: Vec<(Texts, Texts)>,
}

/// The validated set of texts for every kind, language and addressee.
#[derive(Debug, Clone)]
pub struct Templates {
    zh: LanguageTemplates,
    en: LanguageTemplates,
}

fn kind_index(kind: Kind) -> usize {
    match kind {
        Kind::Reminder => 0,
        Kind::Overdue => 1,
        Kind::Suspended => 2,
        Kind::Resumed => 3,
    }
}

impl Templates {
    /// The built-in texts. They are checked by this crate's tests, so this fails only if
    /// the file was edited without running them.
    pub fn builtin() -> Result<Templates, TemplateError> {
        Templates::from_toml(BUILTIN_TEMPLATES)
    }

    /// Loads and checks texts in the layout of `templates.toml`.
    pub fn from_toml(text: &str) -> Result<Templates, TemplateError> {
        let raw: RawFile = toml::from_str(text)?;
        Ok(Templates {
            zh: compile_language(raw.zh, "zh")?,
            en: compile_language(raw.en, "en")?,
        })
    }

    /// Renders the SMS, email subject and email body for one message. `service_point` is
    /// the where-to-certify-in-person text already chosen for the message's language.
    pub fn render(
        &self,
        input: &MessageInput,
        service_phone: &str,
        service_point: &str,
    ) -> Rendered {
        let lang = match input.language {
            Language::Zh => &self.zh,
            Language::En => &self.en,
        };
        let pensioner = plain(input.pensioner_name.expose());
        let addressee = if input.addressee_is_agent {
            input
                .agent_name
                .as_ref()
                .map(|n| plain(n.expose()))
                .filter(|n| !n.is_empty())
        } else {
            Some(pensioner.clone()).filter(|n| !n.is_empty())
        };
        let greeting = match &addressee {
            Some(a) => lang.greeting.fill(|_| a.clone()),
            None => lang.greeting_unnamed.fill(|_| String::new()),
        };
        let service_phone = plain(service_phone);
        let service_point = plain(service_point);
        let contact = |v: Var| match v {
            Var::ServicePhone => service_phone.clone(),
            _ => service_point.clone(),
        };
        let how_sms = lang.how_sms.fill(contact);
        let how_email = lang.how_email.fill(contact);
        let date = format_date(input.notice.date(), input.language);
        let suspend_from = input
            .notice
            .suspend_from()
            .map(|d| format_date(d, input.language))
            .unwrap_or_default();
        let value = |v: Var| match v {
            Var::Greeting => greeting.clone(),
            Var::Name | Var::Addressee => pensioner.clone(),
            Var::Date => date.clone(),
            Var::SuspendFrom => suspend_from.clone(),
            Var::ServicePhone => service_phone.clone(),
            Var::ServicePoint => service_point.clone(),
            Var::HowSms => how_sms.clone(),
            Var::HowEmail => how_email.clone(),
        };
        let kind = input.notice.kind();
        let pair = &lang.kinds[kind_index(kind)];
        let texts = if input.addressee_is_agent {
            &pair.1
        } else {
            &pair.0
        };
        Rendered {
            kind,
            language: input.language,
            sms: texts.sms.fill(value).trim().to_string(),
            email_subject: texts.subject.fill(value).trim().to_string(),
            email_body: texts.body.fill(value),
        }
    }
}

fn compile_language(raw: RawLanguage, lang: &str) -> Result<LanguageTemplates, TemplateError> {
    let contact = [Var::ServicePhone, Var::ServicePoint];
    let mut kinds = Vec::with_capacity(4);
    for (kind, raw_kind) in
        Kind::ALL
            .into_iter()
            .zip([raw.reminder, raw.overdue, raw.suspended, raw.resumed])
    {
        let mut allowed = vec![
            Var::Greeting,
            Var::Name,
            Var::Date,
            Var::ServicePhone,
            Var::ServicePoint,
            Var::HowSms,
            Var::HowEmail,
        ];
        if kind == Kind::Overdue {
            allowed.push(Var::SuspendFrom);
        }
        let at = |who: &str| format!("{lang}.{kind}.{who}");
        kinds.push((
            compile_texts(raw_kind.pensioner, &allowed, &at("pensioner"))?,
            compile_texts(raw_kind.agent, &allowed, &at("agent"))?,
        ));
    }
    Ok(LanguageTemplates {
        greeting: Template::parse(
            &raw.greeting,
            &[Var::Addressee],
            &format!("{lang}.greeting"),
        )?,
        greeting_unnamed: Template::parse(
            &raw.greeting_unnamed,
            &[],
            &format!("{lang}.greeting_unnamed"),
        )?,
        how_sms: Template::parse(&raw.how_sms, &contact, &format!("{lang}.how_sms"))?,
        how_email: Template::parse(&raw.how_email, &contact, &format!("{lang}.how_email"))?,
        kinds,
    })
}

fn compile_texts(raw: RawTexts, allowed: &[Var], at: &str) -> Result<Texts, TemplateError> {
    let subject = raw.subject.trim();
    if subject.is_empty() || subject.contains(['\r', '\n']) {
        return Err(TemplateError::Invalid {
            at: format!("{at}.subject"),
            problem: "a subject must be one non-empty line".to_string(),
        });
    }
    if raw.sms.trim().is_empty() {
        return Err(TemplateError::Invalid {
            at: format!("{at}.sms"),
            problem: "the SMS text is empty".to_string(),
        });
    }
    Ok(Texts {
        sms: Template::parse(&raw.sms, allowed, &format!("{at}.sms"))?,
        subject: Template::parse(subject, allowed, &format!("{at}.subject"))?,
        body: Template::parse(&raw.body, allowed, &format!("{at}.body"))?,
    })
}

/// A value as plain text on one line: control characters (line breaks included) become
/// spaces and bidirectional-override characters, which can make a text read backwards,
/// are dropped.
fn plain(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// `2025年3月31日` / `31 March 2025`: the forms people write by hand.
pub fn format_date(date: NaiveDate, language: Language) -> String {
    match language {
        Language::Zh => format!("{}年{}月{}日", date.year(), date.month(), date.day()),
        Language::En => format!(
            "{} {} {}",
            date.day(),
            MONTHS[date.month0() as usize],
            date.year()
        ),
    }
}

/// How many SMS segments a text takes: GSM 7-bit text (plain Latin letters, digits and
/// common punctuation) fits 160 characters in one segment and 153 per segment beyond;
/// anything else is sent as UCS-2, 70 characters or 67 per segment. The check of the
/// GSM alphabet is approximate (ASCII only), which errs towards more segments.
pub fn sms_segments(text: &str) -> usize {
    let gsm_len = text.chars().try_fold(0usize, |n, c| match c {
        '^' | '{' | '}' | '\\' | '[' | ']' | '~' | '|' => Some(n + 2),
        '`' => None,
        c if c == '\n' || c == '\r' || (' '..='~').contains(&c) => Some(n + 1),
        _ => None,
    });
    let (len, single, multi) = match gsm_len {
        Some(n) => (n, 160, 153),
        None => (text.encode_utf16().count(), 70, 67),
    };
    if len <= single {
        1
    } else {
        len.div_ceil(multi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Notice;
    use lifecert_domain::Sensitive;

    fn input(name: &str) -> MessageInput {
        MessageInput {
            notice: Notice::Reminder {
                due_on: NaiveDate::from_ymd_opt(2025, 3, 31).unwrap(),
            },
            language: Language::Zh,
            pensioner_name: Sensitive::new(name.to_string()),
            addressee_is_agent: false,
            agent_name: None,
        }
    }

    #[test]
    fn builtin_templates_load() {
        Templates::builtin().unwrap();
    }

    #[test]
    fn values_are_not_read_as_placeholders() {
        let t = Templates::builtin().unwrap();
        let r = t.render(&input("{service_phone}{{name}}"), "12333", "社区");
        assert!(
            r.sms.starts_with("{service_phone}{{name}}您好"),
            "{}",
            r.sms
        );
    }

    #[test]
    fn values_are_one_plain_line() {
        let t = Templates::builtin().unwrap();
        let r = t.render(&input("张三\r\nBcc: x@y\u{202E}"), "123\n33", "社区");
        assert!(r.email_subject.contains("2025年3月31日"));
        assert!(r.sms.starts_with("张三  Bcc: x@y您好"), "{}", r.sms);
        assert!(r.sms.contains("咨询电话123 33"));
        assert!(!r.email_body.contains('\u{202E}'));
    }

    #[test]
    fn unknown_or_misplaced_placeholders_are_rejected() {
        let bad = BUILTIN_TEMPLATES.replacen("{date}到期", "{datum}到期", 1);
        let err = Templates::from_toml(&bad).unwrap_err().to_string();
        assert!(
            err.contains("zh.reminder.pensioner.sms") && err.contains("{datum}"),
            "{err}"
        );
        let bad =
            BUILTIN_TEMPLATES.replacen("您的养老金领取资格认证将于{date}", "{suspend_from}", 1);
        assert!(Templates::from_toml(&bad).is_err());
        let bad = BUILTIN_TEMPLATES.replacen("{date}到期", "{date到期", 1);
        assert!(Templates::from_toml(&bad).is_err());
        let bad = BUILTIN_TEMPLATES.replacen("[zh.resumed.agent]", "[zh.resumed.agnet]", 1);
        assert!(Templates::from_toml(&bad).is_err());
    }

    #[test]
    fn braces_can_be_written_literally() {
        let t = Template::parse("a {{b}} {name}", &[Var::Name], "t").unwrap();
        assert_eq!(t.fill(|_| "N".into()), "a {b} N");
        assert!(Template::parse("a } b", &[], "t").is_err());
    }

    #[test]
    fn dates_read_naturally() {
        let d = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap();
        assert_eq!(format_date(d, Language::Zh), "2025年3月1日");
        assert_eq!(format_date(d, Language::En), "1 March 2025");
    }

    #[test]
    fn sms_segments_count_gsm_and_ucs2() {
        assert_eq!(sms_segments(&"a".repeat(160)), 1);
        assert_eq!(sms_segments(&"a".repeat(161)), 2);
        assert_eq!(sms_segments(&"a".repeat(306)), 2);
        assert_eq!(sms_segments(&"a".repeat(307)), 3);
        assert_eq!(sms_segments(&"{".repeat(80)), 1);
        assert_eq!(sms_segments(&"中".repeat(70)), 1);
        assert_eq!(sms_segments(&"中".repeat(71)), 2);
        assert_eq!(sms_segments(&"中".repeat(134)), 2);
        assert_eq!(sms_segments(&"中".repeat(135)), 3);
        assert_eq!(sms_segments(&format!("{}中", "a".repeat(69))), 1);
    }
}
