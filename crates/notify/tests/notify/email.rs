use lifecert_notify::testing::FakeSmtpSink;
use lifecert_notify::{
    Address, ChannelKind, EmailSettings, Kind, Language, MessageId, Notifier, Outcome, Outgoing,
    Secret, SmtpSecurity,
};

fn email_notifier(port: u16, login: bool) -> Notifier {
    let mut settings = crate::settings();
    settings.email = Some(EmailSettings {
        host: "127.0.0.1".to_string(),
        port,
        from: "养老金资格认证 <noreply@hrss.example.cn>".to_string(),
        username: login.then(|| "lifecert".to_string()),
        password: login.then(|| Secret::new("pa55word")),
        security: SmtpSecurity::None,
        hello_name: Some("lifecert.example.cn".to_string()),
    });
    Notifier::new(settings).unwrap()
}

fn outgoing(notifier: &Notifier, id: &str, language: Language) -> Outgoing {
    Outgoing {
        message_id: MessageId::parse(id).unwrap(),
        to: Address::parse(ChannelKind::Email, "wang.fang@example.cn").unwrap(),
        message: notifier.render(&crate::input(
            Kind::Overdue,
            language,
            "王芳",
            Some(Some("李明")),
        )),
    }
}

#[tokio::test]
async fn the_relay_receives_a_properly_encoded_utf8_message() {
    let sink = FakeSmtpSink::start().await.unwrap();
    let notifier = email_notifier(sink.port(), true);
    let message = outgoing(&notifier, "ntf-10", Language::Zh);
    match notifier.deliver(&message).await {
        Outcome::Delivered {
            provider_id: Some(id),
        } => {
            assert_eq!(id, "250 2.0.0 Ok: queued as fake-1")
        }
        other => panic!("{other:?}"),
    }

    let mails = sink.received();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.helo, "lifecert.example.cn");
    assert_eq!(mail.auth_user.as_deref(), Some("lifecert"));
    assert_eq!(mail.auth_password.as_deref(), Some("pa55word"));
    assert_eq!(mail.mail_from, "noreply@hrss.example.cn");
    assert_eq!(mail.rcpt_to, ["wang.fang@example.cn"]);
    // Headers are 7-bit: the Chinese subject and sender name travel as RFC 2047 words.
    let head = mail.data.split("\r\n\r\n").next().unwrap();
    assert!(head.is_ascii(), "{head}");
    assert!(mail
        .header("subject")
        .unwrap()
        .to_ascii_lowercase()
        .starts_with("=?utf-8?"));
    assert_eq!(mail.subject().unwrap(), message.message.email_subject);
    assert_eq!(
        mail.subject().unwrap(),
        "王芳的养老金资格认证已到期，请协助尽快认证"
    );
    assert!(mail.header("to").unwrap().contains("wang.fang@example.cn"));
    assert!(mail
        .header("from")
        .unwrap()
        .contains("<noreply@hrss.example.cn>"));
    assert_eq!(
        mail.header("content-type").unwrap(),
        "text/plain; charset=utf-8"
    );
    assert!(mail.header("date").is_some());
    assert_eq!(
        mail.header("message-id").unwrap(),
        "<ntf-10@hrss.example.cn>"
    );
    assert_eq!(mail.message_id().as_deref(), Some("ntf-10"));
    assert_eq!(
        mail.body_text().unwrap().trim_end(),
        message.message.email_body.trim_end()
    );
    assert!(mail
        .body_text()
        .unwrap()
        .starts_with("李明您好：\n\n您的家人王芳的养老金"));
    assert_eq!(sink.count_for("ntf-10"), 1);
}

#[tokio::test]
async fn english_mail_without_login() {
    let sink = FakeSmtpSink::start().await.unwrap();
    let notifier = email_notifier(sink.port(), false);
    let message = outgoing(&notifier, "ntf-11", Language::En);
    assert!(notifier.deliver(&message).await.is_delivered());
    let mail = &sink.received()[0];
    assert_eq!(mail.auth_user, None);
    assert_eq!(
        mail.subject().unwrap(),
        "王芳's pension certification is overdue"
    );
    assert_eq!(
        mail.body_text().unwrap().trim_end(),
        message.message.email_body.trim_end()
    );
}

#[tokio::test]
async fn a_rejected_mailbox_is_permanent_and_a_busy_relay_transient() {
    let sink = FakeSmtpSink::start().await.unwrap();
    let notifier = email_notifier(sink.port(), false);
    let message = outgoing(&notifier, "ntf-12", Language::Zh);

    sink.reject_recipients(Some((
        550,
        "5.1.1 <wang.fang@example.cn>: mailbox unavailable",
    )));
    match notifier.deliver(&message).await {
        Outcome::Permanent(reason) => {
            assert!(
                reason.contains("550") && reason.contains("mailbox unavailable"),
                "{reason}"
            );
            assert!(!reason.contains("wang.fang"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    sink.reject_recipients(Some((451, "4.3.0 try again later")));
    match notifier.deliver(&message).await {
        Outcome::Transient(reason) => assert!(reason.contains("451"), "{reason}"),
        other => panic!("{other:?}"),
    }
    sink.reject_recipients(None);
    assert!(notifier.deliver(&message).await.is_delivered());
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn a_relay_that_is_down_is_transient() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let notifier = email_notifier(port, false);
    let message = outgoing(&notifier, "ntf-13", Language::Zh);
    assert!(matches!(
        notifier.deliver(&message).await,
        Outcome::Transient(_)
    ));
}

#[test]
fn an_invalid_address_is_a_permanent_outcome() {
    let outcome: Outcome = Address::parse(ChannelKind::Email, "wang.fang at example")
        .unwrap_err()
        .into();
    assert!(matches!(outcome, Outcome::Permanent(_)));
}

#[test]
fn tls_needs_the_tls_feature_and_a_sender_must_parse() {
    let mut settings = crate::settings();
    settings.email = Some(EmailSettings {
        host: "smtp.example.cn".to_string(),
        port: 587,
        from: "not a sender".to_string(),
        username: None,
        password: None,
        security: SmtpSecurity::None,
        hello_name: None,
    });
    let err = Notifier::new(settings.clone()).err().unwrap().to_string();
    assert!(err.starts_with("notify.email.from:"), "{err}");
    let email = settings.email.as_mut().unwrap();
    email.from = "noreply@example.cn".to_string();
    email.security = SmtpSecurity::Starttls;
    assert_eq!(Notifier::new(settings).is_ok(), cfg!(feature = "tls"));
}
