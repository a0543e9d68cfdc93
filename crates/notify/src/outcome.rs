//! The result of one delivery attempt, as the outbox needs it to decide what comes next.

use std::fmt;

/// How one delivery attempt ended. Reasons are short and meant for staff; they hold no
/// message text, and the recipient's phone or address is replaced by `<recipient>`
/// where a gateway echoes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the gateway or relay; `provider_id` is its own id when it gave one.
    Delivered { provider_id: Option<String> },
    /// Might work later: timeout, connection error, HTTP 5xx/408/429, SMTP 4xx.
    Transient(String),
    /// Will not work if repeated: HTTP 4xx, SMTP 5xx, an invalid phone or address, a
    /// channel that is not configured.
    Permanent(String),
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Delivered {
                provider_id: Some(id),
            } => write!(f, "delivered ({id})"),
            Outcome::Delivered { provider_id: None } => f.write_str("delivered"),
            Outcome::Transient(r) => write!(f, "transient failure: {r}"),
            Outcome::Permanent(r) => write!(f, "permanent failure: {r}"),
        }
    }
}

/// At most `max` characters of `text` on one line, with `secret` (the recipient's phone
/// or address, when a gateway echoes it) blanked out.
pub(crate) fn short_reason(text: &str, secret: &str, max: usize) -> String {
    let text = if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "<recipient>")
    };
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_short_single_lines_without_the_recipient() {
        assert_eq!(
            short_reason("550 <a@b.cn>\r\nno such user", "a@b.cn", 100),
            "550 <<recipient>>  no such user"
        );
        assert_eq!(short_reason("abcdef", "", 3), "abc…");
    }
}
