//! A small HTTP/1.1 client for the SMS gateway and the webhook: one JSON POST, a bounded
//! response, a hard time limit, and the status read as a delivery [`Outcome`].

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::outcome::{short_reason, Outcome};

/// Responses are read up to this size; a gateway's answer is a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

pub(crate) struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    timeout: Duration,
}

pub(crate) struct HttpResponse {
    pub status: StatusCode,
    pub body: Bytes,
}

impl HttpClient {
    pub fn new(timeout: Duration) -> HttpClient {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        #[cfg(feature = "tls")]
        let connector = {
            http.enforce_http(false);
            hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http)
        };
        #[cfg(not(feature = "tls"))]
        let connector = http;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        HttpClient { client, timeout }
    }

    /// POSTs `body` as JSON. `Err` is a transient reason: the request timed out or never
    /// got a response. `recipient` is blanked out of any error text.
    pub async fn post_json(
        &self,
        uri: &Uri,
        mut headers: HeaderMap,
        body: Vec<u8>,
        recipient: &str,
    ) -> Result<HttpResponse, String> {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| short_reason(&error_chain(&e), recipient, 200))?;
            let status = response.status();
            // A body that cannot be read in full does not change what the status says.
            let body = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok(HttpResponse { status, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no response within {} ms",
                self.timeout.as_millis()
            )),
        }
    }
}

/// `client error (Connect): tcp connect error: Connection refused (os error 111)`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// 2xx delivered; 408, 429 and 5xx transient; every other status permanent (a redirect
/// too: it is not followed, and retrying will not change it).
pub(crate) fn outcome_of(
    response: &HttpResponse,
    recipient: &str,
    provider_id: impl FnOnce(&[u8]) -> Option<String>,
) -> Outcome {
    let status = response.status;
    if status.is_success() {
        return Outcome::Delivered {
            provider_id: provider_id(&response.body),
        };
    }
    let text = String::from_utf8_lossy(&response.body);
    let reason = short_reason(
        &format!("HTTP {}: {}", status.as_u16(), text),
        recipient,
        200,
    );
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        Outcome::Transient(reason)
    } else {
        Outcome::Permanent(reason)
    }
}

/// Checks a configured gateway URL: `http://host[:port]/path`, or `https://` when built
/// with the `tls` feature.
pub(crate) fn parse_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .trim()
        .parse()
        .map_err(|_| format!("{url:?} is not a URL"))?;
    if uri.authority().is_none() {
        return Err(format!("{url:?} has no host: write http://host:port/path"));
    }
    match uri.scheme_str() {
        Some("http") => Ok(uri),
        Some("https") if cfg!(feature = "tls") => Ok(uri),
        Some("https") => Err(format!(
            "{url:?} needs TLS, and this build has no TLS support (cargo feature `tls` of lifecert-notify)"
        )),
        _ => Err(format!("{url:?} must start with http://")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let none = |_: &[u8]| None;
        assert_eq!(
            outcome_of(&response(202, ""), "", |b| Some(
                String::from_utf8_lossy(b).into()
            )),
            Outcome::Delivered {
                provider_id: Some(String::new())
            }
        );
        for s in [500, 502, 503, 408, 429] {
            assert!(
                matches!(
                    outcome_of(&response(s, ""), "", none),
                    Outcome::Transient(_)
                ),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 410, 422, 301] {
            assert!(
                matches!(
                    outcome_of(&response(s, ""), "", none),
                    Outcome::Permanent(_)
                ),
                "{s}"
            );
        }
        assert_eq!(
            outcome_of(&response(400, "bad phone 13912345678"), "13912345678", none),
            Outcome::Permanent("HTTP 400: bad phone <recipient>".into())
        );
    }

    #[test]
    fn urls_must_be_http() {
        assert!(parse_url("http://127.0.0.1:9001/send").is_ok());
        assert!(parse_url("ftp://x/").is_err());
        assert!(parse_url("/send").is_err());
        assert!(parse_url("not a url").is_err());
        assert_eq!(
            parse_url("https://sms.example.cn/").is_ok(),
            cfg!(feature = "tls")
        );
    }
}
