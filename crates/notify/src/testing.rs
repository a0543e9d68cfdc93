//! Test support (cargo feature `testing`): a fake HTTP gateway (SMS gateway or webhook
//! receiver) and a fake SMTP sink that listen on loopback and record what they receive,
//! and a recording [`Deliver`] for tests that need no network at all. Used by this
//! crate's tests, the workspace's integration tests and `examples/fake_gateway.rs`.
//! Not for production: the sink accepts any login and keeps every message in memory.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::notifier::{Deliver, DeliveryFuture, Outgoing};
use crate::outcome::Outcome;

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the fake HTTP gateway answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// `None`: `{"id":"fake-<n>"}`, n counting requests from 1.
    pub body: Option<String>,
    /// Wait this long before answering (a slow gateway).
    pub delay: Duration,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(200)
    }

    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            delay: Duration::ZERO,
        }
    }

    pub fn with_body(mut self, body: impl Into<String>) -> Reply {
        self.body = Some(body.into());
        self
    }

    pub fn with_delay(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

/// One request as the fake gateway received it.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedRequest {
    /// 1 for the first request to this gateway.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// The `Idempotency-Key` header, which lifecert sets to the message id.
    pub fn message_id(&self) -> Option<&str> {
        self.header("idempotency-key")
    }
}

struct GatewayState {
    reply: Mutex<Reply>,
    received: Mutex<Vec<ReceivedRequest>>,
    seq: AtomicU64,
    events: broadcast::Sender<ReceivedRequest>,
}

/// A fake SMS gateway / webhook receiver: records every request to any path and answers
/// with the current [`Reply`] (200 by default). Stops when dropped.
pub struct FakeGateway {
    addr: SocketAddr,
    state: Arc<GatewayState>,
    task: JoinHandle<()>,
}

impl FakeGateway {
    /// Listens on a free loopback port.
    pub async fn start() -> io::Result<FakeGateway> {
        FakeGateway::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: impl ToSocketAddrs) -> io::Result<FakeGateway> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(GatewayState {
            reply: Mutex::new(Reply::ok()),
            received: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            events: broadcast::channel(1024).0,
        });
        let app = axum::Router::new()
            .fallback(record_request)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            // The server only ends when the task is aborted; an accept error ends the fake.
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeGateway { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answer every following request this way.
    pub fn reply_with(&self, reply: Reply) {
        *locked(&self.state.reply) = reply;
    }

    pub fn received(&self) -> Vec<ReceivedRequest> {
        locked(&self.state.received).clone()
    }

    /// How many requests carried this message id: more than one means a retry.
    pub fn count_for(&self, message_id: &str) -> usize {
        locked(&self.state.received)
            .iter()
            .filter(|r| r.message_id() == Some(message_id))
            .count()
    }

    /// Every request from now on, as it arrives (before it is answered).
    pub fn subscribe(&self) -> broadcast::Receiver<ReceivedRequest> {
        self.state.events.subscribe()
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record_request(State(state): State<Arc<GatewayState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let received = ReceivedRequest {
        seq: state.seq.fetch_add(1, Ordering::SeqCst) + 1,
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let seq = received.seq;
    locked(&state.received).push(received.clone());
    let _ = state.events.send(received);
    let reply = locked(&state.reply).clone();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let body = reply
        .body
        .unwrap_or_else(|| format!("{{\"id\":\"fake-{seq}\"}}"));
    Response::builder()
        .status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap_or_default()
}

/// One message as the fake SMTP sink received it.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedMail {
    /// 1 for the first message to this sink.
    pub seq: u64,
    /// The name the client gave in EHLO/HELO.
    pub helo: String,
    /// The user of AUTH PLAIN or LOGIN, if the client logged in.
    pub auth_user: Option<String>,
    pub auth_password: Option<String>,
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message as sent after DATA (dot-stuffing removed), CRLF line ends.
    pub data: String,
}

impl ReceivedMail {
    /// A header's raw value, folded lines joined.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        let mut in_wanted = false;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if in_wanted {
                    if let Some(v) = found.as_mut() {
                        v.push_str(line);
                    }
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            in_wanted = false;
            if let Some((n, v)) = line.split_once(':') {
                if n.trim().eq_ignore_ascii_case(name) {
                    found = Some(v.trim().to_string());
                    in_wanted = true;
                }
            }
        }
        found
    }

    /// The Subject header decoded from RFC 2047 encoded words.
    pub fn subject(&self) -> Option<String> {
        self.header("subject").map(|s| decode_encoded_words(&s))
    }

    /// The lifecert message id, from a Message-ID of the form `<ntf-42@domain>`.
    pub fn message_id(&self) -> Option<String> {
        let raw = self.header("message-id")?;
        let inner = raw.trim().trim_start_matches('<');
        inner.split('@').next().map(str::to_string)
    }

    /// The body decoded from its Content-Transfer-Encoding (base64, quoted-printable or
    /// none), assumed UTF-8, with LF line ends.
    pub fn body_text(&self) -> Option<String> {
        let (_, body) = self.data.split_once("\r\n\r\n")?;
        let encoding = self
            .header("content-transfer-encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .ok()?
            }
            "quoted-printable" => decode_quoted_printable(body),
            _ => body.as_bytes().to_vec(),
        };
        Some(String::from_utf8_lossy(&bytes).replace("\r\n", "\n"))
    }
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn decode_quoted_printable(text: &str) -> Vec<u8> {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// Decodes `=?utf-8?b?...?=` and `=?utf-8?q?...?=` words; white space between two encoded
/// words is dropped, as RFC 2047 says.
fn decode_encoded_words(value: &str) -> String {
    let mut out: Vec<u8> = Vec::new();
    let mut rest = value;
    let mut last_was_word = false;
    while !rest.is_empty() {
        let Some(start) = rest.find("=?") else {
            out.extend_from_slice(rest.as_bytes());
            break;
        };
        let before = &rest[..start];
        if !(last_was_word && before.trim().is_empty()) {
            out.extend_from_slice(before.as_bytes());
        }
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let end = parts.get(2).and_then(|p| p.find("?="));
        match (parts.as_slice(), end) {
            ([_charset, enc, text], Some(end)) => {
                let payload = &text[..end];
                let decoded = if enc.eq_ignore_ascii_case("b") {
                    base64::engine::general_purpose::STANDARD
                        .decode(payload)
                        .unwrap_or_default()
                } else {
                    decode_quoted_printable(&payload.replace('_', " "))
                };
                out.extend_from_slice(&decoded);
                let consumed = start + 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
                rest = &rest[consumed..];
                last_was_word = true;
            }
            _ => {
                out.extend_from_slice(&rest.as_bytes()[start..]);
                break;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct SmtpState {
    rcpt_reply: Mutex<Option<String>>,
    received: Mutex<Vec<ReceivedMail>>,
    seq: AtomicU64,
    events: broadcast::Sender<ReceivedMail>,
}

/// A fake SMTP server speaking just enough ESMTP for lettre: EHLO, AUTH PLAIN/LOGIN
/// (any credentials), MAIL, RCPT, DATA, RSET, NOOP, QUIT. Records each accepted message.
/// Stops when dropped.
pub struct FakeSmtpSink {
    addr: SocketAddr,
    state: Arc<SmtpState>,
    task: JoinHandle<()>,
}

impl FakeSmtpSink {
    pub async fn start() -> io::Result<FakeSmtpSink> {
        FakeSmtpSink::start_on("127.0.0.1:0").await
    }

    pub async fn start_on(addr: impl ToSocketAddrs) -> io::Result<FakeSmtpSink> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SmtpState {
            rcpt_reply: Mutex::new(None),
            received: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            events: broadcast::channel(1024).0,
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    // A client that hangs up mid-session is not the sink's problem.
                    let _ = smtp_session(stream, state).await;
                });
            }
        });
        Ok(FakeSmtpSink { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answer every RCPT TO with this code and text, e.g. `(550, "5.1.1 no such user")`
    /// or `(451, "4.3.0 try again later")`; `None` accepts recipients again.
    pub fn reject_recipients(&self, reply: Option<(u16, &str)>) {
        *locked(&self.state.rcpt_reply) = reply.map(|(code, text)| format!("{code} {text}"));
    }

    pub fn received(&self) -> Vec<ReceivedMail> {
        locked(&self.state.received).clone()
    }

    /// How many accepted messages carried this lifecert message id.
    pub fn count_for(&self, message_id: &str) -> usize {
        locked(&self.state.received)
            .iter()
            .filter(|m| m.message_id().as_deref() == Some(message_id))
            .count()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ReceivedMail> {
        self.state.events.subscribe()
    }
}

impl Drop for FakeSmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The text between `<` and `>` of `MAIL FROM:<a@b> SIZE=1`.
fn angle_path(arg: &str) -> String {
    match (arg.find('<'), arg.find('>')) {
        (Some(a), Some(b)) if a < b => arg[a + 1..b].to_string(),
        _ => arg
            .split_once(':')
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default(),
    }
}

fn decode_b64_text(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

type SmtpReader = BufReader<tokio::net::tcp::OwnedReadHalf>;

/// The next line without its line end; `None` when the client hung up.
async fn next_line(read: &mut SmtpReader, line: &mut Vec<u8>) -> io::Result<Option<String>> {
    line.clear();
    if read.read_until(b'\n', line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(
        String::from_utf8_lossy(line)
            .trim_end_matches(['\r', '\n'])
            .to_string(),
    ))
}

async fn smtp_session(stream: TcpStream, state: Arc<SmtpState>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut line = Vec::new();
    write
        .write_all(b"220 fake-smtp ESMTP lifecert test sink\r\n")
        .await?;
    let mut helo = String::new();
    let mut auth: Option<(String, String)> = None;
    let mut mail_from: Option<String> = None;
    let mut rcpt_to: Vec<String> = Vec::new();
    while let Some(command) = next_line(&mut read, &mut line).await? {
        let (verb, arg) = command.split_once(' ').unwrap_or((command.as_str(), ""));
        let reply: String = match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                helo = arg.trim().to_string();
                "250-fake-smtp\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME".to_string()
            }
            "HELO" => {
                helo = arg.trim().to_string();
                "250 fake-smtp".to_string()
            }
            "AUTH" => {
                let mut words = arg.split_whitespace();
                match words.next().map(str::to_ascii_uppercase).as_deref() {
                    Some("PLAIN") => {
                        let initial = match words.next() {
                            Some(w) => w.to_string(),
                            None => {
                                write.write_all(b"334 \r\n").await?;
                                next_line(&mut read, &mut line).await?.unwrap_or_default()
                            }
                        };
                        let decoded = decode_b64_text(&initial);
                        let mut fields = decoded.split('\0').skip(1);
                        let user = fields.next().unwrap_or_default().to_string();
                        let password = fields.next().unwrap_or_default().to_string();
                        auth = Some((user, password));
                        "235 2.7.0 Authentication successful".to_string()
                    }
                    Some("LOGIN") => {
                        write.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                        let user = decode_b64_text(
                            &next_line(&mut read, &mut line).await?.unwrap_or_default(),
                        );
                        write.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        let password = decode_b64_text(
                            &next_line(&mut read, &mut line).await?.unwrap_or_default(),
                        );
                        auth = Some((user, password));
                        "235 2.7.0 Authentication successful".to_string()
                    }
                    _ => "504 5.5.4 Unrecognized authentication type".to_string(),
                }
            }
            "MAIL" => {
                mail_from = Some(angle_path(arg));
                rcpt_to.clear();
                "250 2.1.0 Ok".to_string()
            }
            "RCPT" => match locked(&state.rcpt_reply).clone() {
                Some(reject) => reject,
                None => {
                    rcpt_to.push(angle_path(arg));
                    "250 2.1.5 Ok".to_string()
                }
            },
            "DATA" if mail_from.is_none() || rcpt_to.is_empty() => {
                "503 5.5.1 Need MAIL and RCPT first".to_string()
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut data = String::new();
                loop {
                    let Some(l) = next_line(&mut read, &mut line).await? else {
                        return Ok(());
                    };
                    if l == "." {
                        break;
                    }
                    // The client doubled every leading dot.
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                let seq = state.seq.fetch_add(1, Ordering::SeqCst) + 1;
                let mail = ReceivedMail {
                    seq,
                    helo: helo.clone(),
                    auth_user: auth.as_ref().map(|a| a.0.clone()),
                    auth_password: auth.as_ref().map(|a| a.1.clone()),
                    mail_from: mail_from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpt_to),
                    data,
                };
                locked(&state.received).push(mail.clone());
                let _ = state.events.send(mail);
                format!("250 2.0.0 Ok: queued as fake-{seq}")
            }
            "RSET" => {
                mail_from = None;
                rcpt_to.clear();
                "250 2.0.0 Ok".to_string()
            }
            "NOOP" => "250 2.0.0 Ok".to_string(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "502 5.5.2 Command not recognized".to_string(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
    Ok(())
}

/// A [`Deliver`] that records every message and answers with a set [`Outcome`]
/// (delivered by default): the "recording notifier" of application tests.
pub struct RecordingDeliverer {
    sent: Mutex<Vec<Outgoing>>,
    answers: Mutex<HashMap<String, Outcome>>,
    default: Mutex<Outcome>,
}

impl Default for RecordingDeliverer {
    fn default() -> Self {
        RecordingDeliverer {
            sent: Mutex::new(Vec::new()),
            answers: Mutex::new(HashMap::new()),
            default: Mutex::new(Outcome::Delivered { provider_id: None }),
        }
    }
}

impl RecordingDeliverer {
    pub fn new() -> RecordingDeliverer {
        RecordingDeliverer::default()
    }

    /// Answer every message without its own answer with `outcome`.
    pub fn answer_with(&self, outcome: Outcome) {
        *locked(&self.default) = outcome;
    }

    /// Answer the message with this id with `outcome`.
    pub fn answer_for(&self, message_id: &str, outcome: Outcome) {
        locked(&self.answers).insert(message_id.to_string(), outcome);
    }

    /// Every message passed to `deliver`, in order, retries included.
    pub fn sent(&self) -> Vec<Outgoing> {
        locked(&self.sent).clone()
    }
}

impl Deliver for RecordingDeliverer {
    fn deliver<'a>(&'a self, message: &'a Outgoing) -> DeliveryFuture<'a> {
        locked(&self.sent).push(message.clone());
        let outcome = locked(&self.answers)
            .get(message.message_id.as_str())
            .cloned()
            .unwrap_or_else(|| locked(&self.default).clone());
        Box::pin(std::future::ready(outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_decode() {
        assert_eq!(
            decode_encoded_words("=?utf-8?b?5byg5LiJ?= =?utf-8?b?5oKo5aW9?="),
            "张三您好"
        );
        assert_eq!(decode_encoded_words("=?UTF-8?Q?a_b=3Dc?= x"), "a b=c x");
        assert_eq!(decode_encoded_words("plain"), "plain");
    }

    #[test]
    fn quoted_printable_decodes() {
        assert_eq!(
            decode_quoted_printable("a=3Db=\r\nc=E4=B8=AD"),
            "a=bc中".as_bytes()
        );
        assert_eq!(decode_quoted_printable("end="), b"end=");
    }
}
