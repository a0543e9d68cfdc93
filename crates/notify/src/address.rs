//! Where a message goes: a checked phone number, email address or app recipient reference.

use std::fmt;

use lifecert_domain::ParseError;

use crate::outcome::Outcome;

/// The delivery channels. Stored in the outbox as [`ChannelKind::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    Sms,
    Email,
    Webhook,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [ChannelKind::Sms, ChannelKind::Email, ChannelKind::Webhook];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Sms => "sms",
            ChannelKind::Email => "email",
            ChannelKind::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        ChannelKind::ALL
            .into_iter()
            .find(|c| c.as_str() == s.trim())
            .ok_or_else(|| {
                ParseError::new(format!("{s:?} is not a channel: use sms, email or webhook"))
            })
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phone number that can receive SMS: an 11-digit mainland mobile number (`13912345678`)
/// or an international number in E.164 form (`+85291234567`). Spaces and dashes are
/// dropped. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let compact: String = s.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        let digits = compact.strip_prefix('+').unwrap_or(&compact);
        let all_digits = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        let ok = all_digits
            && if compact.starts_with('+') {
                (8..=15).contains(&digits.len())
            } else {
                digits.len() == 11 && digits.starts_with('1')
            };
        if ok {
            Ok(PhoneNumber(compact))
        } else {
            Err(ParseError::new(
                "not a mobile phone number: write 11 digits (13912345678) or +country code and number",
            ))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PhoneNumber(<redacted>)")
    }
}

/// An email address as the SMTP relay will receive it. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailAddress(lettre::Address);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        s.trim()
            .parse::<lettre::Address>()
            .map(EmailAddress)
            .map_err(|_| ParseError::new("not an email address: write it as name@example.cn"))
    }

    pub fn expose(&self) -> &str {
        self.0.as_ref()
    }

    pub(crate) fn lettre(&self) -> &lettre::Address {
        &self.0
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailAddress(<redacted>)")
    }
}

/// The recipient as the agency's push service knows them (an app account id, say). It is
/// sent in the webhook body, so it should be an opaque reference, never an ID number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientRef(String);

impl RecipientRef {
    /// 1 to 128 printable characters without spaces.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok =
            !s.is_empty() && s.chars().count() <= 128 && s.chars().all(|c| c.is_ascii_graphic());
        if ok {
            Ok(RecipientRef(s.to_string()))
        } else {
            Err(ParseError::new(
                "not a recipient reference: use 1 to 128 printable ASCII characters without spaces",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One message's destination; the variant chooses the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Sms(PhoneNumber),
    Email(EmailAddress),
    Webhook(RecipientRef),
}

impl Address {
    pub fn channel(&self) -> ChannelKind {
        match self {
            Address::Sms(_) => ChannelKind::Sms,
            Address::Email(_) => ChannelKind::Email,
            Address::Webhook(_) => ChannelKind::Webhook,
        }
    }

    /// Parses a stored phone, email address or push reference for `channel`.
    pub fn parse(channel: ChannelKind, raw: &str) -> Result<Address, AddressError> {
        let parsed = match channel {
            ChannelKind::Sms => PhoneNumber::parse(raw).map(Address::Sms),
            ChannelKind::Email => EmailAddress::parse(raw).map(Address::Email),
            ChannelKind::Webhook => RecipientRef::parse(raw).map(Address::Webhook),
        };
        parsed.map_err(|e| AddressError {
            channel,
            problem: e.0,
        })
    }
}

/// A destination that cannot be used. Delivering to it would fail every time, so it
/// converts into a permanent [`Outcome`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {channel} address: {problem}")]
pub struct AddressError {
    pub channel: ChannelKind,
    pub problem: String,
}

impl From<AddressError> for Outcome {
    fn from(e: AddressError) -> Outcome {
        Outcome::Permanent(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers() {
        assert_eq!(
            PhoneNumber::parse("139-1234 5678").unwrap().expose(),
            "13912345678"
        );
        assert_eq!(
            PhoneNumber::parse("+85291234567").unwrap().expose(),
            "+85291234567"
        );
        for bad in [
            "",
            "12345",
            "23912345678",
            "139123456789",
            "+1234",
            "1391234567x",
            "０13912345678",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad}");
        }
        assert!(!format!("{:?}", PhoneNumber::parse("13912345678").unwrap()).contains("139"));
    }

    #[test]
    fn addresses_turn_into_permanent_outcomes() {
        assert!(matches!(
            Address::parse(ChannelKind::Email, " wang@example.cn "),
            Ok(Address::Email(_))
        ));
        let err = Address::parse(ChannelKind::Email, "wang at example").unwrap_err();
        let outcome: Outcome = err.into();
        assert!(matches!(outcome, Outcome::Permanent(r) if r.starts_with("invalid email address")));
        assert!(Address::parse(ChannelKind::Webhook, "user 1").is_err());
        assert_eq!(
            Address::parse(ChannelKind::Sms, "13912345678")
                .unwrap()
                .channel(),
            ChannelKind::Sms
        );
        assert_eq!(ChannelKind::parse("webhook").unwrap(), ChannelKind::Webhook);
    }
}
