//! App push through the agency's push service: a JSON POST signed with HMAC-SHA256.

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Uri};
use serde::Serialize;
use sha2::Sha256;

use crate::address::RecipientRef;
use crate::http::{outcome_of, parse_url, HttpClient};
use crate::message::{MessageId, Rendered};
use crate::outcome::Outcome;
use crate::settings::{Secret, WebhookSettings};

/// The header carrying `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "x-lifecert-signature";

/// The webhook's JSON body. `text` is the short (SMS) text for a push notification;
/// `subject` and `body` are the long form for an in-app message.
#[derive(Serialize)]
struct WebhookBody<'a> {
    message_id: &'a str,
    recipient_ref: &'a str,
    kind: &'a str,
    language: &'a str,
    text: &'a str,
    subject: &'a str,
    body: &'a str,
}

pub(crate) struct WebhookChannel {
    uri: Uri,
    secret: Secret,
}

impl WebhookChannel {
    pub fn new(settings: &WebhookSettings) -> Result<WebhookChannel, (&'static str, String)> {
        let uri = parse_url(&settings.url).map_err(|e| ("url", e))?;
        if settings.secret.expose().len() < 16 {
            return Err((
                "secret",
                "is shorter than 16 characters; use a long random value".to_string(),
            ));
        }
        Ok(WebhookChannel {
            uri,
            secret: settings.secret.clone(),
        })
    }

    pub async fn send(
        &self,
        http: &HttpClient,
        message_id: &MessageId,
        recipient: &RecipientRef,
        message: &Rendered,
    ) -> Outcome {
        let body = WebhookBody {
            message_id: message_id.as_str(),
            recipient_ref: recipient.as_str(),
            kind: message.kind.as_str(),
            language: message.language.as_str(),
            text: &message.sms,
            subject: &message.email_subject,
            body: &message.email_body,
        };
        let body = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => return Outcome::Permanent(format!("cannot encode the webhook body: {e}")),
        };
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(message_id.as_str()) {
            headers.insert("idempotency-key", v);
        }
        if let Ok(v) = HeaderValue::from_str(&signature(self.secret.expose().as_bytes(), &body)) {
            headers.insert(SIGNATURE_HEADER, v);
        }
        match http
            .post_json(&self.uri, headers, body, recipient.as_str())
            .await
        {
            Ok(response) => outcome_of(&response, recipient.as_str(), |_| None),
            Err(reason) => Outcome::Transient(reason),
        }
    }
}

/// `sha256=<lower-case hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
