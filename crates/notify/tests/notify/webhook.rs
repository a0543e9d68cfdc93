use hmac::{Hmac, Mac};
use lifecert_notify::testing::{FakeGateway, Reply};
use lifecert_notify::{
    Address, ChannelKind, Kind, Language, MessageId, Notifier, Outcome, Outgoing, Secret,
    WebhookSettings,
};
use sha2::Sha256;

const SECRET: &str = "webhook-secret-0123456789";

fn webhook_notifier(url: String) -> Notifier {
    let mut settings = crate::settings();
    settings.webhook = Some(WebhookSettings {
        url,
        secret: Secret::new(SECRET),
    });
    Notifier::new(settings).unwrap()
}

fn hex_hmac(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn the_push_service_gets_a_signed_json_body() {
    let gateway = FakeGateway::start().await.unwrap();
    let notifier = webhook_notifier(gateway.url("/push"));
    let message = notifier.render(&crate::input(Kind::Suspended, Language::Zh, "张三", None));
    let outgoing = Outgoing {
        message_id: MessageId::parse("ntf-20").unwrap(),
        to: Address::parse(ChannelKind::Webhook, "app-user-7").unwrap(),
        message: message.clone(),
    };
    assert_eq!(
        notifier.deliver(&outgoing).await,
        Outcome::Delivered { provider_id: None }
    );

    let r = &gateway.received()[0];
    assert_eq!(r.path, "/push");
    assert_eq!(r.header("idempotency-key"), Some("ntf-20"));
    let signature = r.header("x-lifecert-signature").unwrap();
    assert_eq!(
        signature,
        format!("sha256={}", hex_hmac(SECRET.as_bytes(), r.body.as_bytes()))
    );
    assert_ne!(
        signature,
        format!("sha256={}", hex_hmac(b"another secret", r.body.as_bytes()))
    );

    let body = r.json().unwrap();
    assert_eq!(body["message_id"], "ntf-20");
    assert_eq!(body["recipient_ref"], "app-user-7");
    assert_eq!(body["kind"], "suspended");
    assert_eq!(body["language"], "zh");
    assert_eq!(body["text"], message.sms.as_str());
    assert_eq!(body["subject"], message.email_subject.as_str());
    assert_eq!(body["body"], message.email_body.as_str());
}

#[tokio::test]
async fn webhook_statuses_follow_the_http_rules() {
    let gateway = FakeGateway::start().await.unwrap();
    let notifier = webhook_notifier(gateway.url("/push"));
    let outgoing = Outgoing {
        message_id: MessageId::parse("ntf-21").unwrap(),
        to: Address::parse(ChannelKind::Webhook, "app-user-8").unwrap(),
        message: notifier.render(&crate::input(Kind::Resumed, Language::En, "Li Hua", None)),
    };
    gateway.reply_with(Reply::status(502));
    assert!(matches!(
        notifier.deliver(&outgoing).await,
        Outcome::Transient(_)
    ));
    gateway.reply_with(Reply::status(404));
    assert!(matches!(
        notifier.deliver(&outgoing).await,
        Outcome::Permanent(_)
    ));
}

#[test]
fn a_short_secret_is_refused() {
    let mut settings = crate::settings();
    settings.webhook = Some(WebhookSettings {
        url: "http://127.0.0.1:9/push".into(),
        secret: Secret::new("short"),
    });
    let err = Notifier::new(settings).err().unwrap().to_string();
    assert!(err.starts_with("notify.webhook.secret:"), "{err}");
}
