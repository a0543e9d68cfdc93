//! SMS through an HTTP JSON gateway: the agency's body template filled with JSON-escaped
//! values, an optional auth header, and the message id as idempotency key.

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::address::PhoneNumber;
use crate::http::{outcome_of, parse_url, HttpClient};
use crate::message::MessageId;
use crate::outcome::Outcome;
use crate::settings::SmsSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Phone,
    Text,
    MessageId,
}

#[derive(Debug, Clone)]
enum Piece {
    Raw(String),
    Field(Field),
}

/// The gateway's JSON body with `{{phone}}`, `{{text}}` and `{{message_id}}` slots.
#[derive(Debug, Clone)]
pub(crate) struct BodyTemplate(Vec<Piece>);

impl BodyTemplate {
    /// Rejects unknown placeholders and a template that is not JSON once filled in (a
    /// placeholder must sit inside a JSON string: `"{{text}}"`).
    pub fn parse(src: &str) -> Result<BodyTemplate, String> {
        let mut pieces = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            pieces.push(Piece::Raw(rest[..open].to_string()));
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| "a \"{{\" is not closed by \"}}\"".to_string())?;
            let field = match after[..close].trim() {
                "phone" => Field::Phone,
                "text" => Field::Text,
                "message_id" => Field::MessageId,
                other => {
                    return Err(format!(
                        "{{{{{other}}}}} is not a placeholder: use {{{{phone}}}}, {{{{text}}}} or {{{{message_id}}}}"
                    ))
                }
            };
            pieces.push(Piece::Field(field));
            rest = &after[close + 2..];
        }
        pieces.push(Piece::Raw(rest.to_string()));
        let template = BodyTemplate(pieces);
        let sample = template.fill("+8613900000000", "短信 \"text\"\n", "ntf-1");
        serde_json::from_str::<serde_json::Value>(&sample).map_err(|e| {
            format!("is not JSON once filled in ({e}); put each placeholder inside quotes, e.g. \"{{{{text}}}}\"")
        })?;
        Ok(template)
    }

    pub fn fill(&self, phone: &str, text: &str, message_id: &str) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Raw(r) => out.push_str(r),
                Piece::Field(Field::Phone) => out.push_str(&json_string_content(phone)),
                Piece::Field(Field::Text) => out.push_str(&json_string_content(text)),
                Piece::Field(Field::MessageId) => out.push_str(&json_string_content(message_id)),
            }
        }
        out
    }
}

/// `value` escaped for use between the quotes of a JSON string.
fn json_string_content(value: &str) -> String {
    let quoted = serde_json::Value::String(value.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

pub(crate) struct SmsChannel {
    uri: Uri,
    auth: Option<(HeaderName, HeaderValue)>,
    body: BodyTemplate,
    provider_id_pointer: Option<String>,
}

impl SmsChannel {
    /// Errors name the setting (`url`, `auth_header_name`, …) and the problem.
    pub fn new(settings: &SmsSettings) -> Result<SmsChannel, (&'static str, String)> {
        let uri = parse_url(&settings.url).map_err(|e| ("url", e))?;
        let auth = match &settings.auth_header_value {
            None => None,
            Some(value) => {
                let name = HeaderName::from_bytes(settings.auth_header_name.trim().as_bytes())
                    .map_err(|_| {
                        (
                            "auth_header_name",
                            format!("{:?} is not a header name", settings.auth_header_name),
                        )
                    })?;
                let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                    (
                        "auth_header_value",
                        "must be printable ASCII on one line".to_string(),
                    )
                })?;
                value.set_sensitive(true);
                Some((name, value))
            }
        };
        let body =
            BodyTemplate::parse(&settings.body_template).map_err(|e| ("body_template", e))?;
        if let Some(p) = &settings.provider_id_pointer {
            if !(p.is_empty() || p.starts_with('/')) {
                return Err((
                    "provider_id_pointer",
                    format!("{p:?} is not a JSON pointer: start it with /, e.g. /data/id"),
                ));
            }
        }
        Ok(SmsChannel {
            uri,
            auth,
            body,
            provider_id_pointer: settings.provider_id_pointer.clone(),
        })
    }

    pub async fn send(
        &self,
        http: &HttpClient,
        message_id: &MessageId,
        phone: &PhoneNumber,
        text: &str,
    ) -> Outcome {
        let body = self.body.fill(phone.expose(), text, message_id.as_str());
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(message_id.as_str()) {
            headers.insert("idempotency-key", v);
        }
        if let Some((name, value)) = &self.auth {
            headers.insert(name.clone(), value.clone());
        }
        match http
            .post_json(&self.uri, headers, body.into_bytes(), phone.expose())
            .await
        {
            Ok(response) => outcome_of(&response, phone.expose(), |body| {
                provider_id(body, self.provider_id_pointer.as_deref()?)
            }),
            Err(reason) => Outcome::Transient(reason),
        }
    }
}

/// The string or number at `pointer` in a JSON response.
fn provider_id(body: &[u8], pointer: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    match json.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::DEFAULT_SMS_BODY;

    #[test]
    fn values_are_json_escaped_once() {
        let t = BodyTemplate::parse(DEFAULT_SMS_BODY).unwrap();
        let body = t.fill("13912345678", "张三\"}, \"x\": \"{{phone}}\n", "ntf-7");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], "张三\"}, \"x\": \"{{phone}}\n");
        assert_eq!(v["phone"], "13912345678");
        assert_eq!(v["message_id"], "ntf-7");
        assert_eq!(v.as_object().unwrap().len(), 3);
    }

    #[test]
    fn body_templates_are_checked() {
        assert!(BodyTemplate::parse(
            r#"{"to": [{"n": "{{ phone }}"}], "sign": "【社保】", "c": "{{text}}"}"#
        )
        .is_ok());
        assert!(BodyTemplate::parse(r#"{"to": {{phone}}}"#)
            .unwrap_err()
            .contains("inside quotes"));
        assert!(BodyTemplate::parse(r#"{"to": "{{mobile}}"}"#)
            .unwrap_err()
            .contains("{{mobile}}"));
        assert!(BodyTemplate::parse(r#"{"to": "{{phone"}"#).is_err());
    }

    #[test]
    fn provider_ids_come_from_the_pointer() {
        assert_eq!(
            provider_id(br#"{"data":{"id":"abc"}}"#, "/data/id").as_deref(),
            Some("abc")
        );
        assert_eq!(provider_id(br#"{"id":42}"#, "/id").as_deref(), Some("42"));
        assert_eq!(provider_id(b"not json", "/id"), None);
        assert_eq!(provider_id(br#"{"id":null}"#, "/id"), None);
    }
}
