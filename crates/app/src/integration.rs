//! Death notifications pushed by civil registration systems: a DCI social-registry
//! `notify` message or an OpenCRVS `DEATH_REGISTERED` webhook. Each is read and checked
//! here, recorded once per message id, and its deaths go through the same pipeline as
//! feed files, as source `crvs`.
//!
//! Retries are safe. A message is recorded as `received` before its events go through
//! the pipeline and `done`, with the answer given, in the transaction that writes its
//! audit entry. A retry of a `done` message gets the same answer and changes nothing; a
//! retry of one still `received` (the first attempt stopped half-way, or is still
//! running) runs the pipeline again, which applies each record id at most once, so
//! nothing is applied twice and nothing is lost. The same message id with other
//! content is refused (409 `message_id_reused`).

use crate::feeds::{FeedRecord, ReportLine};
use crate::staff::ApiClient;
use crate::{date_str, Actor, App, AppError, Result};
use chrono::NaiveDate;
use hmac::{Hmac, Mac};
use lifecert_domain::Sensitive;
use lifecert_store::{InboundClaim, InboundKey};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::collections::{HashMap, HashSet};

/// The feed source every pushed death goes through: authoritative, so an exact ID match
/// suspends payment at once and opens a confirm-death review.
pub const SOURCE: &str = "crvs";
pub const DCI_CHANNEL: &str = "dci";
pub const OPENCRVS_CHANNEL: &str = "opencrvs";
/// The only OpenCRVS topic handled.
pub const DEATH_REGISTERED: &str = "DEATH_REGISTERED";
/// Events in one DCI message.
pub const MAX_EVENTS: usize = 1000;
/// What this service calls itself in DCI headers when the sender named no receiver.
const RECEIVER: &str = "lifecert";
/// DCI `sender_id` and `reference_id` make record ids `dci:SENDER:REFERENCE`, which
/// the pipeline takes up to 128 characters.
const MAX_ID_CHARS: usize = 60;

/// A message that cannot be read: 400 `invalid_envelope`, naming the field.
fn bad(field: &str, message: impl std::fmt::Display) -> AppError {
    AppError::conflict("invalid_envelope", format!("{field}: {message}"))
}

// ---------------------------------------------------------------------------------
// Reading JSON with the path of every field, for errors that say what to fix
// ---------------------------------------------------------------------------------

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    match v {
        Value::Object(m) => Ok(m),
        Value::Null => Err(bad(path, "is required")),
        _ => Err(bad(path, "must be an object")),
    }
}

fn field<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

/// An optional text field: absent, null or blank is `None`; otherwise at most `max`
/// characters and no control characters.
fn text<'a>(
    m: &'a Map<String, Value>,
    path: &str,
    key: &str,
    max: usize,
) -> Result<Option<&'a str>> {
    let p = format!("{path}.{key}");
    let s = match field(m, key) {
        None => return Ok(None),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(bad(&p, "must be a string")),
    };
    if s.is_empty() {
        return Ok(None);
    }
    if s.chars().count() > max {
        return Err(bad(&p, format!("at most {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(&p, "contains control characters"));
    }
    Ok(Some(s))
}

fn required_text<'a>(
    m: &'a Map<String, Value>,
    path: &str,
    key: &str,
    max: usize,
) -> Result<&'a str> {
    text(m, path, key, max)?.ok_or_else(|| bad(&format!("{path}.{key}"), "is required"))
}

/// A date, or the date part of a date-time (the registry's local date).
fn parse_day(s: &str) -> Option<NaiveDate> {
    let day = lifecert_domain::parse_date(s.get(..10)?).ok()?;
    match s.len() {
        10 => Some(day),
        _ if chrono::DateTime::parse_from_rfc3339(s).is_ok()
            || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").is_ok() =>
        {
            Some(day)
        }
        _ => None,
    }
}

fn date(m: &Map<String, Value>, path: &str, key: &str) -> Result<Option<NaiveDate>> {
    match text(m, path, key, 40)? {
        None => Ok(None),
        Some(s) => parse_day(s).map(Some).ok_or_else(|| {
            bad(
                &format!("{path}.{key}"),
                format!("{s:?} is not a date: use YYYY-MM-DD or an ISO 8601 date-time"),
            )
        }),
    }
}

/// A timestamp (ISO 8601 date-time, with a zone as the DCI specification asks).
fn timestamp(m: &Map<String, Value>, path: &str, key: &str) -> Result<()> {
    let s = required_text(m, path, key, 40)?;
    if s.len() > 10 && parse_day(s).is_some() {
        Ok(())
    } else {
        Err(bad(
            &format!("{path}.{key}"),
            format!("{s:?} is not a date-time: use ISO 8601, e.g. 2026-11-20T08:30:00+08:00"),
        ))
    }
}

/// JSON with object keys sorted, so the digest of the same content does not depend on
/// how the sender ordered or spaced it.
fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn canonical_string(v: &Value) -> String {
    let mut out = String::new();
    canonical(v, &mut out);
    out
}

fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| bad("body", format!("not valid JSON: {e}")))
}

// ---------------------------------------------------------------------------------
// The deceased, as both channels describe them
// ---------------------------------------------------------------------------------

/// One death, read from a message: what the pipeline needs.
struct Deceased {
    id_number: Sensitive<String>,
    name: Sensitive<String>,
    /// M, F or empty (other, unknown or not given)
    gender: &'static str,
    birth_date: Option<NaiveDate>,
    death_date: NaiveDate,
    region_code: String,
}

impl Deceased {
    fn into_record(self, record_id: String) -> FeedRecord {
        FeedRecord {
            record_id,
            id_number: self.id_number.into_inner(),
            name: self.name.into_inner(),
            gender: self.gender.to_string(),
            birth_date: self.birth_date.map(date_str).unwrap_or_default(),
            event_date: date_str(self.death_date),
            region_code: self.region_code,
            void_of: String::new(),
        }
    }
}

/// Family name then given names: no space between Chinese parts, one between others
/// (matching ignores spaces either way).
fn join_name(parts: &[&str]) -> String {
    let parts: Vec<&str> = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .collect();
    let separator = if parts.iter().all(|p| !p.is_ascii()) {
        ""
    } else {
        " "
    };
    parts.join(separator)
}

fn check_name(name: String, path: &str) -> Result<Sensitive<String>> {
    if name.chars().count() > 100 {
        return Err(bad(path, "at most 100 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad(path, "contains control characters"));
    }
    Ok(Sensitive::new(name))
}

/// DCI `sex` and FHIR `gender` share the codes male, female, other, unknown.
fn sex(code: Option<&str>, path: &str) -> Result<&'static str> {
    match code.map(str::to_ascii_lowercase).as_deref() {
        None | Some("other" | "unknown") => Ok(""),
        Some("male" | "m") => Ok("M"),
        Some("female" | "f") => Ok("F"),
        Some(other) => Err(bad(
            path,
            format!("{other:?} is not a sex code: use male, female, other or unknown"),
        )),
    }
}

fn check_dates(birth: Option<NaiveDate>, death: NaiveDate, death_path: &str) -> Result<()> {
    match birth {
        Some(b) if b > death => Err(bad(death_path, "is before the birth date")),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------
// DCI notify
// ---------------------------------------------------------------------------------

/// A DCI `notify` message, read and checked.
pub struct DciNotify {
    pub message_id: String,
    pub sender_id: String,
    pub receiver_id: Option<String>,
    pub transaction_id: Option<String>,
    pub events: Vec<DciEvent>,
    /// `message` as canonical JSON: the content the digest covers (the signature and
    /// header timestamps may differ between deliveries of one message).
    content: String,
}

pub struct DciEvent {
    pub reference_id: String,
    pub kind: DciEventKind,
}

pub enum DciEventKind {
    /// A death, as a feed record `dci:SENDER:REFERENCE_ID`.
    Death(FeedRecord),
    /// Another vital event (a birth, a marriage): answered `rejected`, nothing stored.
    Other(String),
}

/// The DCI registry event types that are deaths: `death` (DCI vital event code 2) and
/// MOSIP's `DEATH_REGISTERED`, alone or as the last part of a namespaced code such as
/// `spdci-common:RegistryEventType:Death`.
fn is_death(event_type: &str) -> bool {
    let last = event_type.rsplit(':').next().unwrap_or(event_type);
    matches!(
        last.to_ascii_lowercase().as_str(),
        "death" | "death_registered" | "2"
    )
}

/// The national ID from a DCI person: `identifier_type` + `identifier` (the
/// specification's person record) or `identifier: {identifier_type, identifier_value}`
/// (the CRVS sample records). Only a national ID (`UIN`, `NATIONAL_ID`, or no type)
/// identifies a pensioner; a death registration number (`DRN`) or other does not.
fn dci_identifier(rec: &Map<String, Value>, path: &str) -> Result<String> {
    let national = |t: Option<&str>| {
        t.is_none_or(|t| {
            matches!(
                t.to_ascii_uppercase().as_str(),
                "UIN" | "NATIONAL_ID" | "NID"
            )
        })
    };
    match field(rec, "identifier") {
        Some(Value::Object(inner)) => {
            let p = format!("{path}.identifier");
            let t = text(inner, &p, "identifier_type", 40)?;
            let v = text(inner, &p, "identifier_value", 40)?;
            Ok(v.filter(|_| national(t)).unwrap_or_default().to_string())
        }
        _ => {
            let t = text(rec, path, "identifier_type", 40)?;
            let v = text(rec, path, "identifier", 40)?;
            Ok(v.filter(|_| national(t)).unwrap_or_default().to_string())
        }
    }
}

/// `name` as the specification's `{sur_name, given_name, second_name}` or as text.
fn dci_name(rec: &Map<String, Value>, path: &str) -> Result<Sensitive<String>> {
    let p = format!("{path}.name");
    let name = match field(rec, "name") {
        None => String::new(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(Value::Object(n)) => join_name(&[
            text(n, &p, "sur_name", 100)?.unwrap_or_default(),
            text(n, &p, "given_name", 100)?.unwrap_or_default(),
            text(n, &p, "second_name", 100)?.unwrap_or_default(),
        ]),
        Some(_) => return Err(bad(&p, "must be an object or a string")),
    };
    check_name(name, &p)
}

/// A GB/T 2260 region code from the person's address (or the place of death), when it
/// has one; other registries' place codes are left out.
fn dci_region(rec: &Map<String, Value>, path: &str) -> Result<String> {
    for key in ["address", "deathplace", "death_place"] {
        if let Some(Value::Object(a)) = field(rec, key) {
            let p = format!("{path}.{key}");
            if let Some(code) = text(a, &p, "region_code", 40)? {
                if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
                    return Ok(code.to_string());
                }
            }
        }
    }
    Ok(String::new())
}

fn dci_person(rec: &Map<String, Value>, path: &str) -> Result<Deceased> {
    let birth_date = match date(rec, path, "birthdate")? {
        Some(d) => Some(d),
        None => date(rec, path, "birth_date")?,
    };
    let (death_key, death_date) = match date(rec, path, "deathdate")? {
        Some(d) => ("deathdate", d),
        None => match date(rec, path, "death_date")? {
            Some(d) => ("death_date", d),
            None => return Err(bad(&format!("{path}.deathdate"), "is required")),
        },
    };
    check_dates(birth_date, death_date, &format!("{path}.{death_key}"))?;
    Ok(Deceased {
        id_number: Sensitive::new(dci_identifier(rec, path)?),
        name: dci_name(rec, path)?,
        gender: sex(text(rec, path, "sex", 20)?, &format!("{path}.sex"))?,
        birth_date,
        death_date,
        region_code: dci_region(rec, path)?,
    })
}

fn dci_event(v: &Value, path: &str, sender: &str, seen: &mut HashSet<String>) -> Result<DciEvent> {
    let ev = object(v, path)?;
    let reference_id = required_text(ev, path, "reference_id", MAX_ID_CHARS)?.to_string();
    if !seen.insert(reference_id.clone()) {
        return Err(bad(
            &format!("{path}.reference_id"),
            "appears twice in the message",
        ));
    }
    timestamp(ev, path, "timestamp")?;
    let data_path = format!("{path}.data");
    let data = object(field(ev, "data").unwrap_or(&Value::Null), &data_path)?;
    // The specification makes the event type optional; a death notification endpoint
    // takes an event without one as a death.
    if let Some(t) = text(data, &data_path, "reg_event_type", 100)? {
        if !is_death(t) {
            return Ok(DciEvent {
                reference_id,
                kind: DciEventKind::Other(t.to_string()),
            });
        }
    }
    let records_path = format!("{data_path}.reg_records");
    let record = match field(data, "reg_records") {
        Some(Value::Array(items)) if items.len() == 1 => &items[0],
        Some(Value::Array(_)) => {
            return Err(bad(&records_path, "one person per event"));
        }
        Some(other) => other,
        None => return Err(bad(&records_path, "is required")),
    };
    let person = dci_person(object(record, &records_path)?, &records_path)?;
    Ok(DciEvent {
        kind: DciEventKind::Death(person.into_record(format!("dci:{sender}:{reference_id}"))),
        reference_id,
    })
}

/// `total_count` is an integer in the specification and a string in its samples.
fn count(m: &Map<String, Value>, path: &str) -> Result<Option<u64>> {
    let p = format!("{path}.total_count");
    match field(m, "total_count") {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(&p, "must be a whole number")),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| bad(&p, "must be a whole number")),
        Some(_) => Err(bad(&p, "must be a whole number")),
    }
}

/// Reads and checks a DCI `notify` envelope. Every error names the field
/// (`header.message_id`, `message.notify_event[3].data.reg_records.birthdate`).
pub fn parse_dci_notify(body: &[u8]) -> Result<DciNotify> {
    let root = parse_json(body)?;
    let root = object(&root, "body")?;
    if let Some(s) = field(root, "signature") {
        if !s.is_string() {
            return Err(bad("signature", "must be a string"));
        }
    }
    let header = object(field(root, "header").unwrap_or(&Value::Null), "header")?;
    if let Some(v) = text(header, "header", "version", 20)? {
        if !(v == "1" || v.starts_with("1.")) {
            return Err(bad(
                "header.version",
                format!("version {v:?} is not supported: use 1.0.0"),
            ));
        }
    }
    let message_id = required_text(header, "header", "message_id", 100)?.to_string();
    timestamp(header, "header", "message_ts")?;
    let action = required_text(header, "header", "action", 40)?;
    if action != "notify" {
        return Err(bad(
            "header.action",
            format!("{action:?}: this endpoint takes action \"notify\""),
        ));
    }
    let sender_id = required_text(header, "header", "sender_id", MAX_ID_CHARS)?.to_string();
    if !sender_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-@/".contains(c))
    {
        return Err(bad(
            "header.sender_id",
            "letters, digits and . _ - @ / only",
        ));
    }
    let receiver_id = text(header, "header", "receiver_id", 100)?.map(str::to_string);
    if field(header, "is_msg_encrypted") == Some(&Value::Bool(true)) {
        return Err(bad(
            "header.is_msg_encrypted",
            "encrypted messages are not supported: send the message in clear over TLS",
        ));
    }
    let total_count = count(header, "header")?;

    let message = field(root, "message").unwrap_or(&Value::Null);
    let m = object(message, "message")?;
    let transaction_id = match field(m, "transaction_id") {
        None => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => text(m, "message", "transaction_id", 99)?.map(str::to_string),
    };
    let events = match field(m, "notify_event") {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("message.notify_event", "must be a list of events")),
        None => return Err(bad("message.notify_event", "is required")),
    };
    if events.is_empty() {
        return Err(bad("message.notify_event", "holds no event"));
    }
    if events.len() > MAX_EVENTS {
        return Err(bad(
            "message.notify_event",
            format!("at most {MAX_EVENTS} events a message"),
        ));
    }
    if let Some(n) = total_count {
        if n != events.len() as u64 {
            return Err(bad(
                "header.total_count",
                format!("says {n} but message.notify_event holds {}", events.len()),
            ));
        }
    }
    let mut seen = HashSet::new();
    let events = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            dci_event(
                e,
                &format!("message.notify_event[{i}]"),
                &sender_id,
                &mut seen,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(DciNotify {
        message_id,
        sender_id,
        receiver_id,
        transaction_id,
        events,
        content: canonical_string(message),
    })
}

// ---------------------------------------------------------------------------------
// OpenCRVS webhook
// ---------------------------------------------------------------------------------

/// The shared secret OpenCRVS signs webhook deliveries with (`hub.secret` of the
/// subscription).
#[derive(Clone)]
pub struct WebhookSecret(Sensitive<Vec<u8>>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Shorter secrets are refused: they could be guessed from a signed delivery.
pub const MIN_SECRET_BYTES: usize = 16;

impl WebhookSecret {
    /// Surrounding white space (a key file's line break) is not part of the secret.
    pub fn new(secret: &str) -> Result<WebhookSecret> {
        let s = secret.trim();
        if s.len() < MIN_SECRET_BYTES {
            return Err(AppError::invalid(
                "integration.opencrvs_secret",
                format!("the secret must be at least {MIN_SECRET_BYTES} characters"),
            ));
        }
        Ok(WebhookSecret(Sensitive::new(s.as_bytes().to_vec())))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes a key of any length; the error cannot happen.
        <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose())
            .unwrap_or_else(|_| unreachable!("HMAC-SHA256 takes keys of any length"))
    }
}

/// The signature headers a webhook delivery came with.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookSignatures<'a> {
    /// `X-Hub-Signature-256: sha256=<hex>`: HMAC-SHA256 of the raw body.
    pub hub_signature_256: Option<&'a str>,
    /// `X-Hub-Signature: sha256=<hex>`, what OpenCRVS sends: HMAC-SHA256 of `sha256:`
    /// followed by the body percent-encoded as JavaScript's `encodeURIComponent` does.
    /// The HMAC of the raw body is accepted here too.
    pub hub_signature: Option<&'a str>,
}

/// JavaScript's `encodeURIComponent` over UTF-8 bytes.
fn encode_uri_component(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 2);
    for &b in body {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|pair| match pair {
            [high, low] => Some(nibble(*high)? << 4 | nibble(*low)?),
            _ => None,
        })
        .collect()
}

/// Whether `header` (`sha256=<hex>`) is the HMAC of `parts` under `secret`, compared in
/// constant time.
fn signature_matches(secret: &WebhookSecret, header: &str, parts: &[&[u8]]) -> bool {
    let Some(expected) = header.trim().strip_prefix("sha256=").and_then(hex_decode) else {
        return false;
    };
    let mut mac = secret.mac();
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&expected).is_ok()
}

fn unsigned(message: &str) -> AppError {
    AppError::Unauthenticated {
        code: "invalid_signature",
        message: message.to_string(),
    }
}

/// Checks a delivery's signature against the raw body: 401 `invalid_signature` when
/// it is missing or does not match.
pub fn verify_webhook_signature(
    secret: &WebhookSecret,
    signatures: WebhookSignatures<'_>,
    body: &[u8],
) -> Result<()> {
    if let Some(h) = signatures.hub_signature_256 {
        if signature_matches(secret, h, &[body]) {
            return Ok(());
        }
    }
    if let Some(h) = signatures.hub_signature {
        if signature_matches(secret, h, &[b"sha256:", &encode_uri_component(body)])
            || signature_matches(secret, h, &[body])
        {
            return Ok(());
        }
    }
    if signatures.hub_signature_256.is_none() && signatures.hub_signature.is_none() {
        return Err(unsigned(
            "the delivery is not signed: send X-Hub-Signature-256 (or OpenCRVS's X-Hub-Signature) with sha256=<hex HMAC of the body>",
        ));
    }
    Err(unsigned(
        "the signature does not match the body under the shared secret",
    ))
}

/// An OpenCRVS `DEATH_REGISTERED` delivery, read and checked.
pub struct OpenCrvsDeath {
    /// The FHIR bundle's id, or `DEATH_REGISTERED:<tracking id>` when it has none.
    pub message_id: String,
    /// The death-tracking-id (or composition id): the record is `opencrvs:<this>`.
    pub tracking_id: String,
    pub record: FeedRecord,
    /// `event` as canonical JSON (the delivery's timestamp may differ between retries).
    content: String,
}

fn resources(entries: &[Value]) -> Vec<(usize, &Map<String, Value>)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e.get("resource") {
            Some(Value::Object(r)) => Some((i, r)),
            _ => None,
        })
        .collect()
}

fn resource_type(r: &Map<String, Value>) -> &str {
    r.get("resourceType").and_then(Value::as_str).unwrap_or("")
}

/// The tracking id from the Task (`…/death-tracking-id`), else the Composition's
/// identifier, else the id of the Composition the Task is about.
fn tracking_id(found: &[(usize, &Map<String, Value>)], base: &str) -> Result<String> {
    let of_task = found
        .iter()
        .filter(|(_, r)| resource_type(r) == "Task")
        .flat_map(|(_, r)| {
            r.get("identifier")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|i| {
            i.get("system")
                .and_then(Value::as_str)
                .is_some_and(|s| s.ends_with("/death-tracking-id"))
        })
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str);
    let of_composition = || {
        found
            .iter()
            .filter(|(_, r)| resource_type(r) == "Composition")
            .find_map(|(_, r)| r.get("identifier")?.get("value")?.as_str())
    };
    let focus = || {
        found
            .iter()
            .filter(|(_, r)| resource_type(r) == "Task")
            .find_map(|(_, r)| {
                r.get("focus")?
                    .get("reference")?
                    .as_str()?
                    .strip_prefix("Composition/")
            })
    };
    let id = of_task
        .or_else(of_composition)
        .or_else(focus)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad(
                &format!("{base}.entry"),
                "no Task with a death-tracking-id identifier, and no Composition",
            )
        })?;
    if id.chars().count() > 100 || id.chars().any(char::is_control) {
        return Err(bad(
            &format!("{base}.entry"),
            "the tracking id is not usable (at most 100 characters, no control characters)",
        ));
    }
    Ok(id.to_string())
}

/// The deceased: the one Patient with `deceasedDateTime` (or `deceasedBoolean: true`);
/// among several, the one the Composition's `deceased-details` section names.
fn deceased_patient<'a>(
    found: &[(usize, &'a Map<String, Value>)],
    base: &str,
) -> Result<(usize, &'a Map<String, Value>)> {
    let dead: Vec<(usize, &Map<String, Value>)> = found
        .iter()
        .filter(|(_, r)| resource_type(r) == "Patient")
        .filter(|(_, r)| {
            r.get("deceasedDateTime").is_some()
                || r.get("deceasedBoolean") == Some(&Value::Bool(true))
        })
        .copied()
        .collect();
    match dead.len() {
        0 => Err(bad(
            &format!("{base}.entry"),
            "no deceased Patient (a Patient with deceasedDateTime)",
        )),
        1 => Ok(dead[0]),
        _ => {
            let named = found
                .iter()
                .filter(|(_, r)| resource_type(r) == "Composition")
                .flat_map(|(_, r)| {
                    r.get("section")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                })
                .find(|s| {
                    s.pointer("/code/coding")
                        .and_then(Value::as_array)
                        .is_some_and(|c| {
                            c.iter()
                                .any(|c| c.get("code") == Some(&Value::from("deceased-details")))
                        })
                })
                .and_then(|s| s.pointer("/entry/0/reference"))
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("Patient/"));
            dead.iter()
                .find(|(_, r)| named.is_some() && r.get("id").and_then(Value::as_str) == named)
                .copied()
                .ok_or_else(|| {
                    bad(
                        &format!("{base}.entry"),
                        "several deceased Patients, and no Composition section deceased-details naming one",
                    )
                })
        }
    }
}

/// `Patient.identifier` of type NATIONAL_ID: `type.coding[].code` (FHIR) or a plain
/// `type` string (older OpenCRVS).
fn national_id(p: &Map<String, Value>, path: &str) -> Result<String> {
    let Some(ids) = p.get("identifier") else {
        return Ok(String::new());
    };
    let Some(ids) = ids.as_array() else {
        return Err(bad(&format!("{path}.identifier"), "must be a list"));
    };
    let is_national = |t: &Value| match t {
        Value::String(s) => s == "NATIONAL_ID",
        Value::Object(_) => t.get("coding").and_then(Value::as_array).is_some_and(|c| {
            c.iter()
                .any(|c| c.get("code") == Some(&Value::from("NATIONAL_ID")))
        }),
        _ => false,
    };
    for (i, id) in ids.iter().enumerate() {
        if id.get("type").is_some_and(is_national) {
            let m = object(id, &format!("{path}.identifier[{i}]"))?;
            return Ok(text(m, &format!("{path}.identifier[{i}]"), "value", 40)?
                .unwrap_or_default()
                .to_string());
        }
    }
    Ok(String::new())
}

/// `Patient.name[0]`: its `text`, else family (a string, or a list in older OpenCRVS)
/// then given names.
fn fhir_name(p: &Map<String, Value>, path: &str) -> Result<Sensitive<String>> {
    let p0 = format!("{path}.name[0]");
    let Some(first) = p
        .get("name")
        .and_then(Value::as_array)
        .and_then(|n| n.first())
    else {
        return Ok(Sensitive::new(String::new()));
    };
    let n = object(first, &p0)?;
    if let Some(t) = text(n, &p0, "text", 100)? {
        return check_name(t.to_string(), &format!("{p0}.text"));
    }
    let strings = |key: &str| -> Result<Vec<String>> {
        match n.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(&format!("{p0}.{key}"), "must hold strings"))
                })
                .collect(),
            Some(_) => Err(bad(&format!("{p0}.{key}"), "must be a string or a list")),
        }
    };
    let mut parts = strings("family")?;
    parts.extend(strings("given")?);
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    check_name(join_name(&parts), &p0)
}

/// Reads and checks an OpenCRVS webhook delivery: `{"timestamp", "id", "event":
/// {"hub": {"topic": "DEATH_REGISTERED"}, "context": [FHIR bundle]}}`.
pub fn parse_opencrvs_death(body: &[u8]) -> Result<OpenCrvsDeath> {
    let root = parse_json(body)?;
    let root = object(&root, "body")?;
    let event_value = field(root, "event").unwrap_or(&Value::Null);
    let event = object(event_value, "event")?;
    let hub = object(field(event, "hub").unwrap_or(&Value::Null), "event.hub")?;
    let topic = required_text(hub, "event.hub", "topic", 60)?;
    if topic != DEATH_REGISTERED {
        return Err(bad(
            "event.hub.topic",
            format!("{topic:?}: only {DEATH_REGISTERED} is handled"),
        ));
    }
    let bundle = match field(event, "context") {
        Some(Value::Array(items)) if items.len() == 1 => &items[0],
        Some(Value::Array(_)) => return Err(bad("event.context", "one bundle per delivery")),
        Some(_) => {
            return Err(bad(
                "event.context",
                "must be a list holding the FHIR bundle",
            ))
        }
        None => return Err(bad("event.context", "is required")),
    };
    let base = "event.context[0]";
    let b = object(bundle, base)?;
    if b.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(bad(&format!("{base}.resourceType"), "must be \"Bundle\""));
    }
    let entries = match b.get("entry") {
        Some(Value::Array(items)) => items,
        _ => return Err(bad(&format!("{base}.entry"), "must be a list of resources")),
    };
    let found = resources(entries);
    let tracking_id = tracking_id(&found, base)?;
    let (i, patient) = deceased_patient(&found, base)?;
    let path = format!("{base}.entry[{i}].resource");
    let birth_date = match text(patient, &path, "birthDate", 40)? {
        // FHIR allows a partial date (1950, 1950-03): no use for matching.
        Some(s) if s.len() < 10 => None,
        _ => date(patient, &path, "birthDate")?,
    };
    let death_date = date(patient, &path, "deceasedDateTime")?.ok_or_else(|| {
        bad(
            &format!("{path}.deceasedDateTime"),
            "is required: the date of death",
        )
    })?;
    check_dates(birth_date, death_date, &format!("{path}.deceasedDateTime"))?;
    let deceased = Deceased {
        id_number: Sensitive::new(national_id(patient, &path)?),
        name: fhir_name(patient, &path)?,
        gender: sex(
            text(patient, &path, "gender", 20)?,
            &format!("{path}.gender"),
        )?,
        birth_date,
        death_date,
        region_code: String::new(),
    };
    let message_id = match text(b, base, "id", 100)? {
        Some(id) => id.to_string(),
        None => format!("{DEATH_REGISTERED}:{tracking_id}"),
    };
    Ok(OpenCrvsDeath {
        message_id,
        record: deceased.into_record(format!("opencrvs:{tracking_id}")),
        tracking_id,
        content: canonical_string(event_value),
    })
}

// ---------------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------------

/// What became of one event. Never carries personal data back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventStatus {
    /// The event's `reference_id` (DCI) or tracking id (OpenCRVS).
    pub reference_id: String,
    /// `succ` (recorded) or `rjct` (not recorded), as DCI's RequestStatus.
    pub status: String,
    /// `matched` (to a pensioner: a reviewer confirms the death), `unmatched` or
    /// `rejected`.
    pub result: String,
    /// For a rejection: `rjct.event_type.not_supported` or `rjct.event.invalid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason_code: Option<String>,
    pub status_reason_message: String,
}

impl EventStatus {
    fn new(reference_id: &str, result: &str, code: Option<&str>, message: &str) -> Self {
        EventStatus {
            reference_id: reference_id.to_string(),
            status: if result == "rejected" { "rjct" } else { "succ" }.to_string(),
            result: result.to_string(),
            status_reason_code: code.map(str::to_string),
            status_reason_message: message.to_string(),
        }
    }

    /// From the pipeline's report line for the event's record.
    fn of(reference_id: &str, line: Option<&ReportLine>, death_date: &str, today: &str) -> Self {
        let Some(line) = line else {
            return EventStatus::new(
                reference_id,
                "rejected",
                Some("rjct.event.invalid"),
                "the event could not be applied",
            );
        };
        match line.class {
            "exact" => EventStatus::new(
                reference_id,
                "matched",
                None,
                "matched to a pensioner by ID number; a reviewer confirms the death",
            ),
            "probable" => EventStatus::new(
                reference_id,
                "matched",
                None,
                "probably matched to a pensioner by name and birth date; a reviewer decides",
            ),
            "duplicate" if line.recipient_id.is_some() => EventStatus::new(
                reference_id,
                "matched",
                None,
                "received before: matched to a pensioner, not applied again",
            ),
            "duplicate" => EventStatus::new(
                reference_id,
                "unmatched",
                None,
                "received before: not applied again",
            ),
            "rejected" => EventStatus::new(
                reference_id,
                "rejected",
                Some("rjct.event.invalid"),
                if death_date > today {
                    "the date of death is in the future"
                } else {
                    "the date of death is before the birth date on record for this ID number"
                },
            ),
            _ => EventStatus::new(reference_id, "unmatched", None, "no pensioner matched"),
        }
    }
}

/// The header of a DCI answer (`on-notify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DciAckHeader {
    pub version: String,
    /// lifecert's id for this answer (the same as `message.correlation_id`).
    pub message_id: String,
    pub message_ts: String,
    /// `on-notify`
    pub action: String,
    /// `succ`: every event was processed (each has its own status).
    pub status: String,
    pub total_count: u64,
    pub completed_count: u64,
    /// The notify's `receiver_id` (or `lifecert`).
    pub sender_id: String,
    /// The notify's `sender_id`.
    pub receiver_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DciAckMessage {
    /// `ACK`: the message was valid and has been processed; the results are below and
    /// no callback follows.
    pub ack_status: String,
    pub timestamp: String,
    /// lifecert's id for the message, for support and audit.
    pub correlation_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// One status per event, in the message's order.
    pub notify_status: Vec<EventStatus>,
}

/// lifecert's answer to a DCI notify. A retried message gets the same answer again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DciAck {
    pub header: DciAckHeader,
    pub message: DciAckMessage,
}

/// lifecert's answer to an OpenCRVS delivery. A retried delivery gets the same answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OpenCrvsAck {
    /// The bundle id (or `DEATH_REGISTERED:<tracking id>`): what deliveries are
    /// recognised by.
    pub id: String,
    pub topic: String,
    pub correlation_id: String,
    pub received_at: String,
    pub event: EventStatus,
}

/// An answer and whether it was given before (a retried message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<T> {
    pub body: T,
    pub replayed: bool,
}

// ---------------------------------------------------------------------------------
// Receiving
// ---------------------------------------------------------------------------------

/// How a message's events came out, for its audit entry.
fn tally(statuses: &[EventStatus]) -> serde_json::Value {
    let n = |r: &str| statuses.iter().filter(|s| s.result == r).count();
    serde_json::json!({
        "events": statuses.len(),
        "matched": n("matched"),
        "unmatched": n("unmatched"),
        "rejected": n("rejected"),
    })
}

impl App {
    fn content_digest(&self, channel: &str, content: &str) -> Vec<u8> {
        self.keys
            .digest(&[b"inbound/v1", channel.as_bytes(), content.as_bytes()])
            .to_vec()
    }

    /// Records the message as received (or finds it), runs its records through the
    /// pipeline, and stores the answer `respond` builds from the report lines, with the
    /// message's audit entry. See the module documentation for why retries are safe.
    async fn receive<T, F>(
        &self,
        key: InboundKey<'_>,
        content: &str,
        actor: &Actor,
        records: Vec<FeedRecord>,
        respond: F,
    ) -> Result<Answer<T>>
    where
        T: Serialize + for<'de> Deserialize<'de>,
        F: FnOnce(&str, &HashMap<String, ReportLine>) -> (T, Vec<EventStatus>),
    {
        let digest = self.content_digest(key.channel, content);
        let source = self.source(SOURCE)?;
        let stored = |text: &str| {
            serde_json::from_str::<T>(text)
                .map_err(|e| AppError::Corrupt(format!("a stored answer does not read: {e}")))
        };
        let mut tx = self.store.begin_write().await?;
        let id = match tx
            .claim_inbound(key, &digest, &actor.label(), &self.now_string())
            .await?
        {
            InboundClaim::New(id) => {
                tx.commit().await?;
                id
            }
            InboundClaim::Seen(row) => {
                drop(tx);
                if row.digest != digest {
                    return Err(AppError::conflict(
                        "message_id_reused",
                        format!(
                            "message {:?} from {:?} was received before with other content: send new content under a new message id",
                            key.message_id, key.sender
                        ),
                    ));
                }
                if let (Some(text), "done") = (&row.response, row.status.as_str()) {
                    return Ok(Answer {
                        body: stored(text)?,
                        replayed: true,
                    });
                }
                row.id
            }
        };
        let (_, lines) = self.ingest_records(&source, records).await?;
        let lines: HashMap<String, ReportLine> = lines
            .into_iter()
            .map(|l| (l.record_id.clone(), l))
            .collect();
        let correlation_id = format!("lifecert-{id}");
        let (body, statuses) = respond(&correlation_id, &lines);
        let text = serde_json::to_string(&body)
            .map_err(|e| AppError::Corrupt(format!("an answer does not serialise: {e}")))?;
        let mut tx = self.store.begin_write().await?;
        if !tx.complete_inbound(id, &text, &self.now_string()).await? {
            // Another delivery of the same message finished first: its answer stands.
            let first = tx
                .inbound_response(id)
                .await?
                .ok_or_else(|| AppError::Corrupt("a done message has no answer".into()))?;
            return Ok(Answer {
                body: stored(&first)?,
                replayed: true,
            });
        }
        let mut details = tally(&statuses);
        if let Some(d) = details.as_object_mut() {
            d.insert("channel".into(), key.channel.into());
            d.insert("sender".into(), key.sender.into());
            d.insert("message_id".into(), key.message_id.into());
            d.insert("correlation_id".into(), correlation_id.into());
        }
        self.audit(&mut tx, actor, "inbound_message.processed", None, details);
        tx.commit().await?;
        Ok(Answer {
            body,
            replayed: false,
        })
    }

    /// A DCI `notify` from an integration with the `feeds` scope: every death event goes
    /// through the pipeline as source `crvs`; the answer has one status per event.
    #[tracing::instrument(skip_all)]
    pub async fn receive_dci_notify(
        &self,
        client: &ApiClient,
        body: &[u8],
    ) -> Result<Answer<DciAck>> {
        client.require_scope("feeds")?;
        let notify = parse_dci_notify(body)?;
        let records: Vec<FeedRecord> = notify
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                DciEventKind::Death(r) => Some(r.clone()),
                DciEventKind::Other(_) => None,
            })
            .collect();
        let today = date_str(self.today());
        let now = self.now_string();
        let key = InboundKey {
            channel: DCI_CHANNEL,
            sender: &notify.sender_id,
            message_id: &notify.message_id,
        };
        let actor = Actor::Integration(client.name.clone());
        self.receive(
            key,
            &notify.content,
            &actor,
            records,
            |correlation_id, lines| {
                let statuses: Vec<EventStatus> = notify
                    .events
                    .iter()
                    .map(|e| match &e.kind {
                        DciEventKind::Death(r) => EventStatus::of(
                            &e.reference_id,
                            lines.get(&r.record_id),
                            &r.event_date,
                            &today,
                        ),
                        DciEventKind::Other(t) => EventStatus::new(
                            &e.reference_id,
                            "rejected",
                            Some("rjct.event_type.not_supported"),
                            &format!("only deaths are taken; this event is {t:?}"),
                        ),
                    })
                    .collect();
                let n = statuses.len() as u64;
                let ack = DciAck {
                    header: DciAckHeader {
                        version: "1.0.0".into(),
                        message_id: correlation_id.to_string(),
                        message_ts: now.clone(),
                        action: "on-notify".into(),
                        status: "succ".into(),
                        total_count: n,
                        completed_count: n,
                        sender_id: notify
                            .receiver_id
                            .clone()
                            .unwrap_or_else(|| RECEIVER.to_string()),
                        receiver_id: notify.sender_id.clone(),
                    },
                    message: DciAckMessage {
                        ack_status: "ACK".into(),
                        timestamp: now.clone(),
                        correlation_id: correlation_id.to_string(),
                        transaction_id: notify.transaction_id.clone(),
                        notify_status: statuses.clone(),
                    },
                };
                (ack, statuses)
            },
        )
        .await
    }

    /// An OpenCRVS webhook delivery. The signature is checked before anything is read;
    /// without a configured secret the webhook is off (503 `webhook_not_configured`).
    #[tracing::instrument(skip_all)]
    pub async fn receive_opencrvs_webhook(
        &self,
        secret: Option<&WebhookSecret>,
        signatures: WebhookSignatures<'_>,
        body: &[u8],
    ) -> Result<Answer<OpenCrvsAck>> {
        let secret = secret.ok_or_else(webhook_not_configured)?;
        verify_webhook_signature(secret, signatures, body)?;
        let death = parse_opencrvs_death(body)?;
        let today = date_str(self.today());
        let now = self.now_string();
        let key = InboundKey {
            channel: OPENCRVS_CHANNEL,
            sender: OPENCRVS_CHANNEL,
            message_id: &death.message_id,
        };
        let actor = Actor::Integration(OPENCRVS_CHANNEL.to_string());
        let record_id = death.record.record_id.clone();
        let death_date = death.record.event_date.clone();
        self.receive(
            key,
            &death.content,
            &actor,
            vec![death.record.clone()],
            |correlation_id, lines| {
                let status = EventStatus::of(
                    &death.tracking_id,
                    lines.get(&record_id),
                    &death_date,
                    &today,
                );
                let ack = OpenCrvsAck {
                    id: death.message_id.clone(),
                    topic: DEATH_REGISTERED.to_string(),
                    correlation_id: correlation_id.to_string(),
                    received_at: now.clone(),
                    event: status.clone(),
                };
                (ack, vec![status])
            },
        )
        .await
    }

    /// OpenCRVS checks a new subscription by calling the callback with
    /// `?mode=subscribe&challenge=…&topic=…` and expecting the challenge back.
    pub fn confirm_opencrvs_subscription(
        &self,
        secret: Option<&WebhookSecret>,
        mode: Option<&str>,
        challenge: Option<&str>,
        topic: Option<&str>,
    ) -> Result<String> {
        secret.ok_or_else(webhook_not_configured)?;
        if mode != Some("subscribe") {
            return Err(AppError::invalid("mode", "must be subscribe"));
        }
        if topic != Some(DEATH_REGISTERED) {
            return Err(AppError::invalid(
                "topic",
                format!("only {DEATH_REGISTERED} is handled"),
            ));
        }
        match challenge.map(str::trim) {
            Some(c) if !c.is_empty() && c.len() <= 256 && !c.chars().any(char::is_control) => {
                Ok(c.to_string())
            }
            _ => Err(AppError::invalid(
                "challenge",
                "1 to 256 characters, no control characters",
            )),
        }
    }
}

fn webhook_not_configured() -> AppError {
    AppError::conflict(
        "webhook_not_configured",
        "the OpenCRVS webhook is off: set [integration] opencrvs_secret_file or LIFECERT_OPENCRVS_SECRET",
    )
}

// ---------------------------------------------------------------------------------
// What the OpenAPI document shows of the requests (the handlers read them field by
// field, to name the field in every error)
// ---------------------------------------------------------------------------------

/// A DCI `notify` envelope (the subset lifecert reads).
#[derive(Debug, utoipa::ToSchema)]
pub struct DciNotifyRequest {
    /// Not checked: lifecert authenticates the sender by API key.
    pub signature: Option<String>,
    pub header: DciNotifyHeader,
    pub message: DciNotifyMessage,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct DciNotifyHeader {
    /// 1.x
    #[schema(example = "1.0.0")]
    pub version: Option<String>,
    /// Unique per sender: a message is applied once per message id.
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\s]")]
    pub message_id: String,
    #[schema(format = DateTime)]
    pub message_ts: String,
    #[schema(pattern = "^notify$")]
    pub action: String,
    /// Letters, digits and `. _ - @ /`.
    #[schema(min_length = 1, max_length = 60, pattern = "^[A-Za-z0-9._@/-]+$")]
    pub sender_id: String,
    #[schema(max_length = 100)]
    pub receiver_id: Option<String>,
    /// The number of events, when given.
    #[schema(value_type = Option<u64>)]
    pub total_count: Option<serde_json::Value>,
    /// Must not be true: encrypted messages are not supported.
    pub is_msg_encrypted: Option<bool>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct DciNotifyMessage {
    pub transaction_id: Option<String>,
    #[schema(min_items = 1, max_items = 1000)]
    pub notify_event: Vec<DciNotifyEvent>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct DciNotifyEvent {
    /// Unique per sender across messages (the record is `dci:SENDER:REFERENCE_ID`).
    #[schema(min_length = 1, max_length = 60, pattern = "^[^\\s]")]
    pub reference_id: String,
    #[schema(format = DateTime)]
    pub timestamp: String,
    pub data: DciNotifyData,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct DciNotifyData {
    pub version: Option<String>,
    pub reg_type: Option<String>,
    /// `death` (or `DEATH_REGISTERED`, `…:Death`); absent is taken as a death. Other
    /// events are answered `rejected`.
    pub reg_event_type: Option<String>,
    pub reg_record_type: Option<String>,
    /// The deceased (one person, or a list of one).
    pub reg_records: DciPerson,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct DciPerson {
    /// `UIN` (the national ID number); other types (e.g. `DRN`) are not used for matching.
    #[schema(example = "UIN")]
    pub identifier_type: Option<String>,
    #[schema(max_length = 40, example = "32010219500107952X")]
    pub identifier: Option<String>,
    pub name: Option<DciPersonName>,
    #[schema(pattern = "^(male|female|other|unknown)$")]
    pub sex: Option<String>,
    /// A date (or an ISO 8601 date-time, whose local date counts).
    #[schema(format = Date)]
    pub birthdate: Option<String>,
    /// A date (or an ISO 8601 date-time, whose local date counts).
    #[schema(format = Date)]
    pub deathdate: String,
    /// `region_code`, when a 6-digit GB/T 2260 code, helps matching without an ID number.
    #[schema(value_type = Option<Object>)]
    pub address: Option<serde_json::Value>,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct DciPersonName {
    #[schema(max_length = 100)]
    pub sur_name: Option<String>,
    #[schema(max_length = 100)]
    pub given_name: Option<String>,
    #[schema(max_length = 100)]
    pub second_name: Option<String>,
}

/// An OpenCRVS webhook delivery (`DEATH_REGISTERED`).
#[derive(Debug, utoipa::ToSchema)]
pub struct OpenCrvsDelivery {
    pub timestamp: Option<String>,
    /// The subscription's id (not used).
    pub id: Option<String>,
    pub event: OpenCrvsEvent,
}

#[derive(Debug, utoipa::ToSchema)]
pub struct OpenCrvsEvent {
    /// `{"topic": "DEATH_REGISTERED"}`
    #[schema(value_type = Object)]
    pub hub: serde_json::Value,
    /// One FHIR bundle: the Task (death-tracking-id) and the deceased Patient
    /// (identifier of type NATIONAL_ID, name, gender, birthDate, deceasedDateTime).
    #[schema(value_type = Vec<Object>)]
    pub context: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::app_with_one_pensioner;

    fn dci(events: Value) -> Value {
        serde_json::json!({
            "signature": "Signature: namespace=\"dci\", algorithm=\"ed25519\"",
            "header": {
                "version": "1.0.0",
                "message_id": "0c96614c-7255-4774-b109-cd53ee851769",
                "message_ts": "2026-11-20T08:30:00+08:00",
                "action": "notify",
                "sender_id": "crvs.example.gov",
                "receiver_id": "pension.example.gov",
                "total_count": events.as_array().map_or(0, Vec::len),
                "is_msg_encrypted": false
            },
            "message": {"transaction_id": "T-1", "notify_event": events}
        })
    }

    fn death_event(reference: &str) -> Value {
        serde_json::json!({
            "reference_id": reference,
            "timestamp": "2026-11-20T08:29:00+08:00",
            "data": {
                "version": "1.0.0",
                "reg_type": "ns:org:RegistryType:Civil",
                "reg_event_type": "death",
                "reg_record_type": "spdci-extensions-dci:Person",
                "reg_records": {
                    "identifier_type": "UIN",
                    "identifier": "32010219500107952X",
                    "name": {"sur_name": "王", "given_name": "建国"},
                    "sex": "male",
                    "birthdate": "1950-01-07",
                    "deathdate": "2026-11-18T23:10:00+08:00",
                    "address": {"region_code": "320102"}
                }
            }
        })
    }

    fn parse(v: &Value) -> Result<DciNotify> {
        parse_dci_notify(&serde_json::to_vec(v).unwrap())
    }

    /// The error's message for a body that must be refused.
    fn refused(v: &Value) -> String {
        let e = parse(v).err().expect("refused");
        assert_eq!(e.code(), "invalid_envelope", "{e}");
        e.to_string()
    }

    fn death(e: &DciEvent) -> &FeedRecord {
        match &e.kind {
            DciEventKind::Death(r) => r,
            DciEventKind::Other(t) => panic!("not a death: {t}"),
        }
    }

    #[test]
    fn a_dci_death_becomes_a_feed_record_named_by_sender_and_reference() {
        let n = parse(&dci(serde_json::json!([death_event("DR-2026-001")]))).unwrap();
        assert_eq!(n.message_id, "0c96614c-7255-4774-b109-cd53ee851769");
        assert_eq!(n.sender_id, "crvs.example.gov");
        assert_eq!(n.receiver_id.as_deref(), Some("pension.example.gov"));
        assert_eq!(n.transaction_id.as_deref(), Some("T-1"));
        let r = death(&n.events[0]);
        assert_eq!(r.record_id, "dci:crvs.example.gov:DR-2026-001");
        assert_eq!(r.id_number, "32010219500107952X");
        assert_eq!(r.name, "王建国");
        assert_eq!(r.gender, "M");
        assert_eq!(r.birth_date, "1950-01-07");
        // The registry's local date of the date-time.
        assert_eq!(r.event_date, "2026-11-18");
        assert_eq!(r.region_code, "320102");
        assert!(r.void_of.is_empty());
    }

    #[test]
    fn the_crvs_sample_shapes_are_read_too() {
        let mut e = death_event("r1");
        e["data"]["reg_event_type"] = "spdci-common:RegistryEventType:Death".into();
        e["data"]["reg_records"] = serde_json::json!([{
            "identifier": {"identifier_type": "UIN", "identifier_value": "110105194912310021"},
            "name": "Mary  Smith",
            "sex": "female",
            "death_date": "2026-10-01",
            "death_place": {"region_code": "Lusaka"}
        }]);
        let mut other_id = death_event("r2");
        other_id["data"]["reg_records"]["identifier_type"] = "DRN".into();
        other_id["data"]["reg_records"]["name"] =
            serde_json::json!({"sur_name": "Mweene", "given_name": "Kennedy"});
        other_id["data"]["reg_records"]["sex"] = "unknown".into();
        let n = parse(&dci(serde_json::json!([e, other_id]))).unwrap();
        let r = death(&n.events[0]);
        assert_eq!(
            (r.id_number.as_str(), r.name.as_str(), r.gender.as_str()),
            ("110105194912310021", "Mary  Smith", "F")
        );
        assert_eq!(
            (r.birth_date.as_str(), r.event_date.as_str()),
            ("", "2026-10-01")
        );
        assert_eq!(
            r.region_code, "",
            "a place that is not a GB/T 2260 code is left out"
        );
        // A death registration number is not the person's ID number.
        let r = death(&n.events[1]);
        assert_eq!(
            (r.id_number.as_str(), r.name.as_str(), r.gender.as_str()),
            ("", "Mweene Kennedy", "")
        );
    }

    #[test]
    fn other_vital_events_are_kept_apart_and_a_missing_type_is_a_death() {
        let mut birth = death_event("b1");
        birth["data"]["reg_event_type"] = "live_birth".into();
        let mut untyped = death_event("u1");
        untyped["data"]
            .as_object_mut()
            .unwrap()
            .remove("reg_event_type");
        let n = parse(&dci(serde_json::json!([birth, untyped]))).unwrap();
        assert!(matches!(&n.events[0].kind, DciEventKind::Other(t) if t == "live_birth"));
        assert!(matches!(&n.events[1].kind, DciEventKind::Death(_)));
        for t in ["DEATH_REGISTERED", "Death", "x:VitalEvent:death"] {
            assert!(is_death(t), "{t}");
        }
        for t in ["fetal_death", "DEATH_REVERSAL", "birth"] {
            assert!(!is_death(t), "{t}");
        }
    }

    #[test]
    fn every_malformed_envelope_names_its_field() {
        let good = dci(serde_json::json!([death_event("a"), death_event("b")]));
        let with = |pointer: &str, value: Value| {
            let mut v = good.clone();
            *v.pointer_mut(pointer).unwrap() = value;
            v
        };
        let without = |parent: &str, key: &str| {
            let mut v = good.clone();
            v.pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
            v
        };
        let cases = [
            (
                without("/header", "message_id"),
                "header.message_id: is required",
            ),
            (
                with("/header/message_id", "  ".into()),
                "header.message_id: is required",
            ),
            (
                with("/header/message_id", 7.into()),
                "header.message_id: must be a string",
            ),
            (with("/header/action", "search".into()), "header.action"),
            (
                with("/header/message_ts", "yesterday".into()),
                "header.message_ts",
            ),
            (with("/header/version", "2.0.0".into()), "header.version"),
            (
                with("/header/sender_id", "crvs:1".into()),
                "header.sender_id",
            ),
            (with("/header/total_count", 3.into()), "header.total_count"),
            (
                with("/header/is_msg_encrypted", true.into()),
                "header.is_msg_encrypted",
            ),
            (without("", "header"), "header: is required"),
            (with("/header", "x".into()), "header: must be an object"),
            (without("", "message"), "message: is required"),
            (
                with("/message/notify_event", serde_json::json!([])),
                "message.notify_event",
            ),
            (
                with("/message/notify_event", serde_json::json!({})),
                "message.notify_event",
            ),
            (
                with("/message/notify_event/1/reference_id", "a".into()),
                "message.notify_event[1].reference_id: appears twice",
            ),
            (
                without("/message/notify_event/0", "timestamp"),
                "message.notify_event[0].timestamp: is required",
            ),
            (
                without("/message/notify_event/1", "data"),
                "message.notify_event[1].data: is required",
            ),
            (
                without("/message/notify_event/1/data", "reg_records"),
                "message.notify_event[1].data.reg_records: is required",
            ),
            (
                with(
                    "/message/notify_event/1/data/reg_records/birthdate",
                    "1950-13-01".into(),
                ),
                "message.notify_event[1].data.reg_records.birthdate",
            ),
            (
                without("/message/notify_event/1/data/reg_records", "deathdate"),
                "message.notify_event[1].data.reg_records.deathdate: is required",
            ),
            (
                with(
                    "/message/notify_event/0/data/reg_records/deathdate",
                    "1940-01-01".into(),
                ),
                "message.notify_event[0].data.reg_records.deathdate: is before the birth date",
            ),
            (
                with("/message/notify_event/0/data/reg_records/sex", "M/F".into()),
                "message.notify_event[0].data.reg_records.sex",
            ),
            (
                with("/message/notify_event/0/data/reg_records/name", 5.into()),
                "message.notify_event[0].data.reg_records.name",
            ),
            (
                with(
                    "/message/notify_event/0/data/reg_records",
                    serde_json::json!([{}, {}]),
                ),
                "message.notify_event[0].data.reg_records: one person per event",
            ),
        ];
        for (body, expected) in cases {
            let message = refused(&body);
            assert!(
                message.starts_with(expected),
                "{message} (wanted {expected})"
            );
        }
        let e = parse_dci_notify(b"{\"header\": ").err().unwrap();
        assert!(e.to_string().starts_with("body: not valid JSON"), "{e}");
        let e = parse_dci_notify(b"[1]").err().unwrap();
        assert!(e.to_string().starts_with("body: must be an object"), "{e}");
    }

    #[test]
    fn the_digest_covers_the_events_not_their_spelling() {
        let a = parse(&dci(serde_json::json!([death_event("a")]))).unwrap();
        let mut other_header = dci(serde_json::json!([death_event("a")]));
        other_header["header"]["message_ts"] = "2026-11-21T01:00:00Z".into();
        other_header["signature"] = "resigned".into();
        // Same content, keys in another order and other spacing.
        let text = serde_json::to_string_pretty(&other_header).unwrap();
        let b = parse_dci_notify(text.as_bytes()).unwrap();
        assert_eq!(a.content, b.content);
        let mut changed = dci(serde_json::json!([death_event("a")]));
        changed["message"]["notify_event"][0]["data"]["reg_records"]["deathdate"] =
            "2026-11-17".into();
        assert_ne!(a.content, parse(&changed).unwrap().content);
    }

    fn bundle() -> Value {
        serde_json::json!({
            "timestamp": "2026-11-20T08:00:00.000Z",
            "id": "a9d2b1f0-subscription",
            "event": {
                "hub": {"topic": "DEATH_REGISTERED"},
                "context": [{
                    "resourceType": "Bundle",
                    "id": "6a1f9e2c-bundle",
                    "type": "document",
                    "entry": [
                        {"resource": {
                            "resourceType": "Task",
                            "focus": {"reference": "Composition/c-1"},
                            "identifier": [
                                {"system": "http://opencrvs.org/specs/id/death-registration-number", "value": "2026DRN1"},
                                {"system": "http://opencrvs.org/specs/id/death-tracking-id", "value": "DW0AB12"}
                            ]
                        }},
                        {"resource": {
                            "resourceType": "Patient", "id": "informant",
                            "name": [{"family": ["王"], "given": ["小明"]}]
                        }},
                        {"resource": {
                            "resourceType": "Patient", "id": "deceased",
                            "identifier": [
                                {"value": "X1", "type": {"coding": [{"system": "http://opencrvs.org/specs/identifier-type", "code": "BIRTH_REGISTRATION_NUMBER"}]}},
                                {"value": "32010219500107952X", "type": {"coding": [{"system": "http://opencrvs.org/specs/identifier-type", "code": "NATIONAL_ID"}]}}
                            ],
                            "name": [{"use": "zh", "family": "王", "given": ["建国"]}],
                            "gender": "male",
                            "birthDate": "1950-01-07",
                            "deceasedBoolean": true,
                            "deceasedDateTime": "2026-11-18"
                        }}
                    ]
                }]
            }
        })
    }

    fn opencrvs(v: &Value) -> Result<OpenCrvsDeath> {
        parse_opencrvs_death(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn an_opencrvs_death_bundle_yields_the_deceased() {
        let d = opencrvs(&bundle()).unwrap();
        assert_eq!(d.message_id, "6a1f9e2c-bundle");
        assert_eq!(d.tracking_id, "DW0AB12");
        let r = &d.record;
        assert_eq!(r.record_id, "opencrvs:DW0AB12");
        assert_eq!(
            (r.id_number.as_str(), r.name.as_str(), r.gender.as_str()),
            ("32010219500107952X", "王建国", "M")
        );
        assert_eq!(
            (r.birth_date.as_str(), r.event_date.as_str()),
            ("1950-01-07", "2026-11-18")
        );

        // Older OpenCRVS: the identifier type as a string, family as a list, no bundle id,
        // a partial birth date; the tracking id from the Composition the Task is about.
        let mut old = bundle();
        let b = &mut old["event"]["context"][0];
        b.as_object_mut().unwrap().remove("id");
        b["entry"][0]["resource"]["identifier"] = serde_json::json!([]);
        let p = &mut b["entry"][2]["resource"];
        p["identifier"] =
            serde_json::json!([{"value": "110105194912310021", "type": "NATIONAL_ID"}]);
        p["name"] = serde_json::json!([{"family": ["Mweene"], "given": ["Kennedy", "K"]}]);
        p["birthDate"] = "1949".into();
        p["gender"] = "female".into();
        let d = opencrvs(&old).unwrap();
        assert_eq!(d.message_id, "DEATH_REGISTERED:c-1");
        assert_eq!(d.record.record_id, "opencrvs:c-1");
        assert_eq!(d.record.id_number, "110105194912310021");
        assert_eq!(d.record.name, "Mweene Kennedy K");
        assert_eq!(
            (d.record.birth_date.as_str(), d.record.gender.as_str()),
            ("", "F")
        );
    }

    #[test]
    fn a_malformed_opencrvs_delivery_names_its_field() {
        let mut topic = bundle();
        topic["event"]["hub"]["topic"] = "BIRTH_REGISTERED".into();
        let mut no_date = bundle();
        no_date["event"]["context"][0]["entry"][2]["resource"]
            .as_object_mut()
            .unwrap()
            .remove("deceasedDateTime");
        let mut bad_date = bundle();
        bad_date["event"]["context"][0]["entry"][2]["resource"]["birthDate"] = "1950-02-30".into();
        let mut two = bundle();
        let first = two["event"]["context"][0].clone();
        two["event"]["context"] = serde_json::json!([first.clone(), first]);
        let mut nobody = bundle();
        nobody["event"]["context"][0]["entry"]
            .as_array_mut()
            .unwrap()
            .truncate(2);
        let mut not_bundle = bundle();
        not_bundle["event"]["context"][0]["resourceType"] = "Patient".into();
        let cases = [
            (topic, "event.hub.topic"),
            (
                no_date,
                "event.context[0].entry[2].resource.deceasedDateTime: is required",
            ),
            (bad_date, "event.context[0].entry[2].resource.birthDate"),
            (two, "event.context: one bundle per delivery"),
            (nobody, "event.context[0].entry: no deceased Patient"),
            (not_bundle, "event.context[0].resourceType"),
            (serde_json::json!({"event": {}}), "event.hub: is required"),
        ];
        for (body, expected) in cases {
            let e = opencrvs(&body).err().expect("refused");
            assert_eq!(e.code(), "invalid_envelope");
            assert!(
                e.to_string().starts_with(expected),
                "{e} (wanted {expected})"
            );
        }
    }

    fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        for p in parts {
            mac.update(p);
        }
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let secret = WebhookSecret::new("  0123456789abcdef-shared\n").unwrap();
        let key = b"0123456789abcdef-shared";
        let body = br#"{"event":{"hub":{"topic":"DEATH_REGISTERED"}},"note":"a b/\u00e9"}"#;
        let github = format!("sha256={}", hmac_hex(key, &[body]));
        let opencrvs = format!(
            "sha256={}",
            hmac_hex(key, &[b"sha256:", &encode_uri_component(body)])
        );
        let ok = |s: WebhookSignatures| verify_webhook_signature(&secret, s, body).is_ok();
        assert!(ok(WebhookSignatures {
            hub_signature_256: Some(&github),
            hub_signature: None
        }));
        assert!(ok(WebhookSignatures {
            hub_signature_256: None,
            hub_signature: Some(&opencrvs)
        }));
        assert!(ok(WebhookSignatures {
            hub_signature_256: None,
            hub_signature: Some(&github.to_uppercase().replace("SHA256=", "sha256="))
        }));
        // A signature of other content, of the body under another key, or garbled.
        let other = format!("sha256={}", hmac_hex(key, &[b"{}"]));
        let wrong_key = format!("sha256={}", hmac_hex(b"another-secret-of-16", &[body]));
        for bad in [other.as_str(), &wrong_key, "sha256=zz", "sha1=00", ""] {
            let e = verify_webhook_signature(
                &secret,
                WebhookSignatures {
                    hub_signature_256: Some(bad),
                    hub_signature: Some(bad),
                },
                body,
            )
            .err()
            .unwrap();
            assert_eq!(e.code(), "invalid_signature", "{bad}");
        }
        let e = verify_webhook_signature(&secret, WebhookSignatures::default(), body)
            .err()
            .unwrap();
        assert_eq!(e.code(), "invalid_signature");
        assert!(e.to_string().contains("not signed"), "{e}");
    }

    #[test]
    fn encode_uri_component_matches_javascript() {
        // encodeURIComponent('{"a":"b c/é~*"}') in a browser.
        assert_eq!(
            encode_uri_component("{\"a\":\"b c/é~*\"}".as_bytes()),
            b"%7B%22a%22%3A%22b%20c%2F%C3%A9~*%22%7D".to_vec()
        );
    }

    async fn scalar(app: &App, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(app.store().pool())
            .await
            .unwrap()
    }

    /// A message whose first delivery stopped half-way — after it was recorded as
    /// received, before or after its events went through the pipeline — is finished by
    /// the retry: applied once, never twice, never lost.
    #[tokio::test]
    async fn a_retry_finishes_a_message_that_stopped_half_way() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_one_pensioner(&dir).await;
        let client = ApiClient {
            name: "civil-registry".into(),
            scopes: vec!["feeds".into()],
        };
        let body = serde_json::to_vec(&dci(serde_json::json!([death_event("DR-1")]))).unwrap();
        let notify = parse_dci_notify(&body).unwrap();
        let key = InboundKey {
            channel: DCI_CHANNEL,
            sender: &notify.sender_id,
            message_id: &notify.message_id,
        };
        let status = || {
            scalar(
                &app,
                "SELECT COUNT(*) FROM recipients WHERE suspension_reason = 'death_reported'",
            )
        };
        let cases = || {
            scalar(
                &app,
                "SELECT COUNT(*) FROM review_cases WHERE kind = 'confirm_death'",
            )
        };

        // Stopped after it was recorded, before the pipeline ran.
        let mut tx = app.store().begin_write().await.unwrap();
        let claim = tx
            .claim_inbound(
                key,
                &app.content_digest(DCI_CHANNEL, &notify.content),
                "integration:civil-registry",
                "2026-11-30T08:00:00.000Z",
            )
            .await
            .unwrap();
        assert!(matches!(claim, InboundClaim::New(_)));
        tx.commit().await.unwrap();
        assert_eq!((status().await, cases().await), (0, 0));

        let first = app.receive_dci_notify(&client, &body).await.unwrap();
        assert!(
            !first.replayed,
            "a message never answered is processed, not replayed"
        );
        assert_eq!(first.body.message.notify_status[0].result, "matched");
        assert_eq!((status().await, cases().await), (1, 1));

        // Stopped after the pipeline ran, before the answer was stored.
        sqlx::query("UPDATE inbound_messages SET status = 'received', response = NULL")
            .execute(app.store().pool())
            .await
            .unwrap();
        let records = scalar(&app, "SELECT COUNT(*) FROM feed_records").await;
        let again = app.receive_dci_notify(&client, &body).await.unwrap();
        assert!(!again.replayed);
        let s = &again.body.message.notify_status[0];
        assert_eq!((s.status.as_str(), s.result.as_str()), ("succ", "matched"));
        assert_eq!((status().await, cases().await), (1, 1), "not applied twice");
        assert_eq!(
            scalar(&app, "SELECT COUNT(*) FROM feed_records").await,
            records
        );

        // Done now: the next delivery is a replay of that answer.
        let third = app.receive_dci_notify(&client, &body).await.unwrap();
        assert!(third.replayed);
        assert_eq!(third.body, again.body);
    }

    #[test]
    fn secrets_are_long_enough_and_never_printed() {
        assert!(WebhookSecret::new("short").is_err());
        let s = WebhookSecret::new("0123456789abcdef").unwrap();
        assert_eq!(format!("{s:?}"), "WebhookSecret(<redacted>)");
    }
}
