use std::time::Duration;

use lifecert_notify::testing::{FakeGateway, Reply};
use lifecert_notify::{
    Address, ChannelKind, Kind, Language, MessageId, Notifier, Outcome, Outgoing, Rendered, Secret,
    SmsSettings,
};

fn sms_notifier(url: String, timeout_ms: u64) -> Notifier {
    let mut settings = crate::settings();
    settings.request_timeout_ms = timeout_ms;
    settings.sms = Some(SmsSettings {
        url,
        auth_header_name: "Authorization".to_string(),
        auth_header_value: Some(Secret::new("Bearer t0ken")),
        body_template:
            r#"{"to":"{{phone}}","content":"{{text}}","ref":"{{message_id}}","sign":"【人社】"}"#
                .to_string(),
        provider_id_pointer: Some("/id".to_string()),
    });
    Notifier::new(settings).unwrap()
}

fn outgoing(id: &str, text: &str) -> Outgoing {
    Outgoing {
        message_id: MessageId::parse(id).unwrap(),
        to: Address::parse(ChannelKind::Sms, "139 1234 5678").unwrap(),
        message: Rendered {
            kind: Kind::Reminder,
            language: Language::Zh,
            sms: text.to_string(),
            email_subject: String::new(),
            email_body: String::new(),
        },
    }
}

#[tokio::test]
async fn the_gateway_gets_the_exact_body_and_headers() {
    let gateway = FakeGateway::start().await.unwrap();
    let notifier = sms_notifier(gateway.url("/v1/sms/send"), 10_000);
    let outcome = notifier
        .deliver(&outgoing("ntf-1", "张三您好：\"引号\" {{phone}}\n第二行\\"))
        .await;
    assert_eq!(
        outcome,
        Outcome::Delivered {
            provider_id: Some("fake-1".into())
        }
    );

    let received = gateway.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/sms/send");
    assert_eq!(r.header("authorization"), Some("Bearer t0ken"));
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("idempotency-key"), Some("ntf-1"));
    assert_eq!(
        r.body,
        r#"{"to":"13912345678","content":"张三您好：\"引号\" {{phone}}\n第二行\\","ref":"ntf-1","sign":"【人社】"}"#
    );
}

#[tokio::test]
async fn a_rendered_reminder_goes_out_whole() {
    let gateway = FakeGateway::start().await.unwrap();
    let notifier = sms_notifier(gateway.url("/v1/sms/send"), 10_000);
    let message = notifier.render(&crate::input(Kind::Reminder, Language::Zh, "张三丰", None));
    let mut o = outgoing("ntf-9", "");
    o.message = message.clone();
    assert!(notifier.deliver(&o).await.is_delivered());
    let body = gateway.received()[0].json().unwrap();
    assert_eq!(body["content"], message.sms.as_str());
    assert_eq!(body["to"], "13912345678");
}

#[tokio::test]
async fn server_errors_and_throttling_are_transient() {
    let gateway = FakeGateway::start().await.unwrap();
    let notifier = sms_notifier(gateway.url("/v1/sms/send"), 10_000);
    for status in [500, 503, 429, 408] {
        gateway.reply_with(Reply::status(status).with_body(r#"{"error":"busy"}"#));
        match notifier.deliver(&outgoing("ntf-2", "x")).await {
            Outcome::Transient(reason) => {
                assert_eq!(reason, format!(r#"HTTP {status}: {{"error":"busy"}}"#))
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    // The same message id every time, so the gateway can tell a retry from a new message.
    assert_eq!(gateway.count_for("ntf-2"), 4);
}

#[tokio::test]
async fn client_errors_are_permanent_and_do_not_echo_the_phone() {
    let gateway = FakeGateway::start().await.unwrap();
    let notifier = sms_notifier(gateway.url("/v1/sms/send"), 10_000);
    gateway.reply_with(Reply::status(400).with_body(r#"{"error":"blocked number 13912345678"}"#));
    assert_eq!(
        notifier.deliver(&outgoing("ntf-3", "x")).await,
        Outcome::Permanent(r#"HTTP 400: {"error":"blocked number <recipient>"}"#.into())
    );
    gateway.reply_with(Reply::status(401));
    assert!(matches!(
        notifier.deliver(&outgoing("ntf-3", "x")).await,
        Outcome::Permanent(_)
    ));
}

#[tokio::test]
async fn a_slow_gateway_times_out_as_transient() {
    let gateway = FakeGateway::start().await.unwrap();
    let notifier = sms_notifier(gateway.url("/v1/sms/send"), 300);
    gateway.reply_with(Reply::ok().with_delay(Duration::from_secs(30)));
    assert_eq!(
        notifier.deliver(&outgoing("ntf-4", "x")).await,
        Outcome::Transient("no response within 300 ms".into())
    );
    assert_eq!(gateway.count_for("ntf-4"), 1);
}

#[tokio::test]
async fn a_gateway_that_is_down_is_transient() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let notifier = sms_notifier(format!("http://{addr}/send"), 10_000);
    match notifier.deliver(&outgoing("ntf-5", "x")).await {
        Outcome::Transient(reason) => assert!(reason.contains("onnect"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unconfigured_channel_is_permanent() {
    let notifier = Notifier::new(crate::settings()).unwrap();
    assert!(!notifier.is_configured(ChannelKind::Sms));
    assert_eq!(
        notifier.deliver(&outgoing("ntf-6", "x")).await,
        Outcome::Permanent("the sms channel is not configured".into())
    );
}

#[test]
fn bad_gateway_settings_are_refused_at_start() {
    let mut settings = crate::settings();
    settings.sms = Some(SmsSettings {
        url: "http://127.0.0.1:9/send".into(),
        auth_header_name: "Authorization".into(),
        auth_header_value: None,
        body_template: r#"{"to": {{phone}}, "text": "{{text}}"}"#.into(),
        provider_id_pointer: None,
    });
    let err = Notifier::new(settings.clone()).err().unwrap().to_string();
    assert!(err.starts_with("notify.sms.body_template:"), "{err}");
    settings.sms.as_mut().unwrap().body_template = lifecert_notify::DEFAULT_SMS_BODY.into();
    settings.sms.as_mut().unwrap().url = "sms.example.cn/send".into();
    let err = Notifier::new(settings).err().unwrap().to_string();
    assert!(err.starts_with("notify.sms.url:"), "{err}");
}
