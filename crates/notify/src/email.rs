//! Email through an SMTP relay (lettre): a plain-text UTF-8 message whose Message-ID
//! carries the message id.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::address::EmailAddress;
use crate::message::MessageId;
use crate::outcome::{short_reason, Outcome};
use crate::settings::{EmailSettings, SmtpSecurity};

pub(crate) struct EmailChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl EmailChannel {
    pub fn new(
        settings: &EmailSettings,
        timeout: Duration,
    ) -> Result<EmailChannel, (&'static str, String)> {
        let host = settings.host.trim();
        if host.is_empty() {
            return Err(("host", "is empty".to_string()));
        }
        let from: Mailbox = settings.from.parse().map_err(|_| {
            (
                "from",
                format!(
                    "{:?} is not a sender: write noreply@example.cn or 名称 <noreply@example.cn>",
                    settings.from
                ),
            )
        })?;
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(settings.port)
            .timeout(Some(timeout));
        let mut builder = secure(builder, settings.security, host)?;
        match (&settings.username, &settings.password) {
            (Some(user), password) => {
                let password = password.as_ref().map(|p| p.expose().to_string());
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
            }
            (None, Some(_)) => {
                return Err(("username", "is missing while a password is set".to_string()))
            }
            (None, None) => {}
        }
        if let Some(name) = &settings.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.trim().to_string()));
        }
        Ok(EmailChannel {
            transport: builder.build(),
            from,
            timeout,
        })
    }

    pub async fn send(
        &self,
        message_id: &MessageId,
        to: &EmailAddress,
        subject: &str,
        body: &str,
    ) -> Outcome {
        let email = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.lettre().clone()))
            .subject(subject)
            .message_id(Some(format!("<{message_id}@{}>", self.from.email.domain())))
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string());
        let email = match email {
            Ok(e) => e,
            Err(e) => return Outcome::Permanent(format!("cannot build the email: {e}")),
        };
        // lettre's own timeout covers each network step; this one bounds the whole attempt.
        match tokio::time::timeout(self.timeout, self.transport.send(email)).await {
            Err(_) => Outcome::Transient(format!(
                "no SMTP answer within {} ms",
                self.timeout.as_millis()
            )),
            Ok(Ok(response)) => Outcome::Delivered {
                provider_id: Some(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                ))
                .map(|id| short_reason(&id, "", 200)),
            },
            Ok(Err(e)) => {
                let reason = short_reason(&format!("SMTP {e}"), to.expose(), 200);
                if e.is_permanent() {
                    Outcome::Permanent(reason)
                } else {
                    Outcome::Transient(reason)
                }
            }
        }
    }
}

type Builder = lettre::transport::smtp::AsyncSmtpTransportBuilder;

#[cfg(feature = "tls")]
fn secure(
    builder: Builder,
    security: SmtpSecurity,
    host: &str,
) -> Result<Builder, (&'static str, String)> {
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    let params = || {
        TlsParameters::new(host.to_string())
            .map_err(|e| ("security", format!("cannot set up TLS for {host:?}: {e}")))
    };
    Ok(builder.tls(match security {
        SmtpSecurity::None => Tls::None,
        SmtpSecurity::Starttls => Tls::Required(params()?),
        SmtpSecurity::Tls => Tls::Wrapper(params()?),
    }))
}

/// Without a TLS backend lettre speaks plain SMTP only.
#[cfg(not(feature = "tls"))]
fn secure(
    builder: Builder,
    security: SmtpSecurity,
    _host: &str,
) -> Result<Builder, (&'static str, String)> {
    match security {
        SmtpSecurity::None => Ok(builder),
        SmtpSecurity::Starttls | SmtpSecurity::Tls => Err((
            "security",
            "needs TLS, and this build has no TLS support (cargo feature `tls` of lifecert-notify); use \"none\" for a relay on a trusted network".to_string(),
        )),
    }
}
