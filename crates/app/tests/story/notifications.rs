//! Stories of notification delivery on both databases, through a fake SMS gateway and a
//! fake SMTP sink on loopback: a reminder delivered once with its text, a 503 retried
//! after the back-off, a 400 failed and listed for staff, quiet hours, suspension and
//! resumption notices, an agent as a second addressee, a missing channel, and a worker
//! that stopped mid-send.

use super::*;
use chrono::{DateTime, Utc};
use lifecert_app::notifications::{DeliveryWorker, NotificationQuery, NotificationView};
use lifecert_app::workflows::{ContactUpdate, TimelineEvent};
use lifecert_notify::testing::{FakeGateway, FakeSmtpSink, Reply};
use lifecert_notify::{EmailSettings, Notifier, NotifySettings, SmsSettings, SmtpSecurity};

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

/// A notifier with SMS through `sms` and email through `smtp`, when given.
fn notifier(sms: Option<&FakeGateway>, smtp: Option<&FakeSmtpSink>) -> Arc<Notifier> {
    let settings = NotifySettings {
        request_timeout_ms: 5_000,
        sms: sms.map(|g| SmsSettings {
            url: g.url("/send"),
            auth_header_name: "Authorization".into(),
            auth_header_value: None,
            body_template: lifecert_notify::DEFAULT_SMS_BODY.into(),
            provider_id_pointer: Some("/id".into()),
        }),
        email: smtp.map(|s| EmailSettings {
            host: "127.0.0.1".into(),
            port: s.port(),
            from: "养老金资格认证 <noreply@hrss.example.gov.cn>".into(),
            username: None,
            password: None,
            security: SmtpSecurity::None,
            hello_name: None,
        }),
        ..NotifySettings::default()
    };
    Arc::new(Notifier::new(settings).unwrap())
}

fn worker(name: &str) -> DeliveryWorker {
    DeliveryWorker {
        name: name.to_string(),
        concurrency: 4,
        lease: DeliveryWorker::default_lease(5_000),
    }
}

/// A roll line without a phone number, or with another one.
fn row_with_phone(id: &str, name: &str, last: &str, phone: &str) -> String {
    format!("{id},{name},enterprise,110105,2010-02,3000.00,{phone},domestic,,{last},2026-10")
}

async fn roll(app: &App, b: &Backend, rows: &[String]) {
    let text = format!("{HEADER}\n{}\n", rows.join("\n"));
    let r = import(app, &b.file("roll.csv", &text)).await;
    assert_eq!(r.rejected, 0, "{:?}", r.errors);
}

async fn listed(app: &App, query: NotificationQuery) -> Vec<NotificationView> {
    app.notifications(&supervisor("s"), &query).await.unwrap()
}

fn with_status(status: &str) -> NotificationQuery {
    NotificationQuery {
        status: Some(status.into()),
        ..Default::default()
    }
}

async fn recipient_id(app: &App, who: &str) -> i64 {
    app.recipient_view(&nid(who)).await.unwrap().recipient_id
}

async fn timeline(app: &App, who: &str) -> Vec<TimelineEvent> {
    let id = recipient_id(app, who).await;
    app.timeline(&supervisor("s"), id).await.unwrap()
}

fn attempts(events: &[TimelineEvent]) -> Vec<(i64, String)> {
    events
        .iter()
        .filter(|e| e.what == "notification.attempt")
        .map(|e| {
            (
                e.details["attempt"].as_i64().unwrap(),
                e.details["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn sms_text(r: &lifecert_notify::testing::ReceivedRequest) -> String {
    r.json().unwrap()["text"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_reminder_reaches_the_gateway_once_with_its_text_and_shows_on_the_timeline() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let gateway = FakeGateway::start().await.unwrap();
        let notifier = notifier(Some(&gateway), None);
        let who = id("110105", "19500101", 41);
        roll(&app, &b, &[row(&who, "王建国", "2025-12-10", "2026-10")]).await;
        assert_eq!(
            app.run_cycle(&Actor::System, d(TODAY))
                .await
                .unwrap()
                .reminders,
            1
        );

        let run = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(
            (run.report.claimed, run.report.delivered),
            (1, 1),
            "{}",
            b.name
        );
        assert!(run.waiting.is_empty(), "{:?}", run.waiting);
        let got = gateway.received();
        assert_eq!(got.len(), 1);
        let body = got[0].json().unwrap();
        assert_eq!(body["phone"], "13800138000");
        let text = sms_text(&got[0]);
        for part in ["王建国您好", "2026年12月10日", "12333", "上门"] {
            assert!(text.contains(part), "{part} not in {text}");
        }
        let n = listed(&app, with_status("delivered")).await;
        assert_eq!(n.len(), 1);
        let n = &n[0];
        assert_eq!(got[0].message_id(), Some(n.message_id.as_str()));
        assert_eq!(body["message_id"], n.message_id.as_str());
        assert!(n.message_id.starts_with("ntf-"), "{}", n.message_id);
        assert_eq!(
            (
                n.kind.as_str(),
                n.date.as_str(),
                n.stage,
                n.addressee.as_str(),
                n.channel.as_str(),
                n.language.as_str(),
                n.attempts,
                n.provider_id.as_deref(),
            ),
            (
                "reminder",
                "2026-12-10",
                30,
                "pensioner",
                "sms",
                "zh",
                1,
                Some("fake-1")
            )
        );

        // Nothing is sent twice: not by another run, nor by the cycle again.
        app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();
        let again = app
            .run_pending_notifications(&notifier, &worker("n2"))
            .await
            .unwrap();
        assert_eq!(again.report.claimed, 0);
        assert_eq!(gateway.received().len(), 1);

        let events = timeline(&app, &who).await;
        assert_eq!(attempts(&events), [(1, "delivered".to_string())]);
        let notice = events
            .iter()
            .find(|e| e.what == "notification.reminder")
            .unwrap();
        assert_eq!(notice.details["status"], "delivered");
        assert_eq!(notice.details["days_before"], 30);

        // The message text is rendered at send time: no table holds the name.
        let store = app.store();
        for sql in [
            "SELECT COUNT(*) FROM notification_deliveries WHERE last_error LIKE '%王%'",
            "SELECT COUNT(*) FROM notification_attempts WHERE reason LIKE '%王%'",
        ] {
            let n: i64 = sqlx::query_scalar(sql)
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(n, 0, "{sql}");
        }
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn a_503_is_retried_after_the_back_off_and_delivered_once_under_the_same_id() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let gateway = FakeGateway::start().await.unwrap();
        let notifier = notifier(Some(&gateway), None);
        let who = id("110105", "19500101", 43);
        roll(&app, &b, &[row(&who, "李秀英", "2025-12-10", "2026-10")]).await;
        app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();

        gateway.reply_with(Reply::status(503));
        let run = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(
            (run.report.retrying, run.report.delivered),
            (1, 0),
            "{}",
            b.name
        );
        let waiting = listed(&app, with_status("retrying")).await;
        assert_eq!(waiting.len(), 1);
        assert_eq!(
            waiting[0].next_attempt_at.as_deref(),
            Some("2026-11-30T09:01:00.000Z"),
            "one minute after the first attempt"
        );
        assert!(
            waiting[0].last_error.as_deref().unwrap().contains("503"),
            "{:?}",
            waiting[0].last_error
        );
        // Not due yet.
        let early = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(early.report.claimed, 0);

        gateway.reply_with(Reply::ok());
        clock.set_time(at("2026-11-30T09:01:00Z"));
        let run = app
            .run_pending_notifications(&notifier, &worker("n2"))
            .await
            .unwrap();
        assert_eq!(run.report.delivered, 1);
        let id = &waiting[0].message_id;
        assert_eq!(gateway.count_for(id), 2, "both attempts carried {id}");
        assert_eq!(gateway.received().len(), 2);
        assert_eq!(
            attempts(&timeline(&app, &who).await),
            [(1, "transient".to_string()), (2, "delivered".to_string())]
        );
        let done = listed(&app, with_status("delivered")).await;
        assert_eq!((done.len(), done[0].attempts), (1, 2));
        assert_eq!(done[0].last_error, None);
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn a_400_or_an_unusable_number_fails_at_once_and_is_listed_for_follow_up_in_its_region() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let gateway = FakeGateway::start().await.unwrap();
        let notifier = notifier(Some(&gateway), None);
        let refused = id("110105", "19500101", 45);
        let no_phone = id("110105", "19500101", 47);
        let landline = id("110105", "19500101", 49);
        roll(
            &app,
            &b,
            &[
                row(&refused, "张伟", "2025-12-10", "2026-10"),
                row_with_phone(&no_phone, "刘芳", "2025-12-10", ""),
                row_with_phone(&landline, "陈静", "2025-12-10", "010-62345678"),
            ],
        )
        .await;
        app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();
        gateway.reply_with(Reply::status(400).with_body(r#"{"error":"bad number"}"#));
        let run = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(
            (run.report.failed, run.report.retrying),
            (3, 0),
            "{}",
            b.name
        );
        assert_eq!(
            gateway.received().len(),
            1,
            "only the one with a mobile number"
        );

        let failed = listed(&app, with_status("failed")).await;
        assert_eq!(failed.len(), 3);
        let error_of = |rid: i64| {
            failed
                .iter()
                .find(|n| n.recipient_id == rid)
                .and_then(|n| n.last_error.clone())
                .unwrap()
        };
        assert!(error_of(recipient_id(&app, &refused).await).contains("400"));
        assert_eq!(
            error_of(recipient_id(&app, &no_phone).await),
            "no mobile phone number on record"
        );
        assert!(error_of(recipient_id(&app, &landline).await).contains("not a mobile phone number"));

        // Region-scoped, supervisors only.
        let elsewhere = officer("gd", lifecert_domain::Role::Supervisor, "44");
        assert!(app
            .notifications(&elsewhere, &with_status("failed"))
            .await
            .unwrap()
            .is_empty());
        let certifier = officer("c", lifecert_domain::Role::Certifier, "11");
        assert!(matches!(
            app.notifications(&certifier, &with_status("failed")).await,
            Err(AppError::Forbidden { .. })
        ));
        let outside = NotificationQuery {
            region: Some("44".into()),
            ..with_status("failed")
        };
        assert!(matches!(
            app.notifications(&supervisor("s"), &outside).await,
            Err(AppError::Forbidden { .. })
        ));
        assert!(matches!(
            app.notifications(&supervisor("s"), &with_status("dead"))
                .await,
            Err(AppError::Invalid { .. })
        ));

        // A failed delivery is not tried again.
        gateway.reply_with(Reply::ok());
        let again = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(again.report.claimed, 0);
        assert_eq!(
            attempts(&timeline(&app, &no_phone).await),
            [(1, "permanent".to_string())]
        );
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn sms_waits_out_quiet_hours_until_eight_and_email_does_not() {
    for b in backends().await {
        let clock = clock();
        // 22:00 in Shanghai.
        clock.set_time(at("2026-11-30T14:00:00Z"));
        let app = b.app(clock.clone()).await;
        let gateway = FakeGateway::start().await.unwrap();
        let smtp = FakeSmtpSink::start().await.unwrap();
        let notifier = notifier(Some(&gateway), Some(&smtp));
        let by_sms = id("110105", "19500101", 51);
        let by_email = id("110105", "19500101", 53);
        roll(
            &app,
            &b,
            &[
                row(&by_sms, "赵敏", "2025-12-10", "2026-10"),
                row(&by_email, "孙丽", "2025-12-10", "2026-10"),
            ],
        )
        .await;
        app.update_contact(
            &supervisor("s"),
            recipient_id(&app, &by_email).await,
            &ContactUpdate {
                notification: lifecert_app::notifications::NotificationContactUpdate {
                    email: Some("sun.li@example.cn".into()),
                    preferred_channel: Some("email".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
        app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();

        let run = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(
            (run.report.delivered, run.report.deferred),
            (1, 1),
            "{}",
            b.name
        );
        assert!(gateway.received().is_empty());
        let mails = smtp.received();
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].rcpt_to, ["sun.li@example.cn"]);
        assert!(mails[0].subject().unwrap().contains("2026年12月10日"));
        assert!(mails[0].body_text().unwrap().contains("孙丽您好"));
        let emailed = listed(&app, with_status("delivered")).await;
        assert_eq!(
            mails[0].message_id().as_deref(),
            Some(emailed[0].message_id.as_str())
        );
        let held = listed(&app, with_status("pending")).await;
        assert_eq!(held.len(), 1);
        assert_eq!(
            held[0].next_attempt_at.as_deref(),
            Some("2026-12-01T00:00:00.000Z"),
            "08:00 in Shanghai"
        );
        assert_eq!(run.waiting.len(), 1);
        assert_eq!(
            (run.waiting[0].channel.as_str(), run.waiting[0].configured),
            ("sms", true)
        );

        clock.set_time(at("2026-11-30T23:59:00Z"));
        let still = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(still.report.delivered, 0);
        assert!(gateway.received().is_empty());
        clock.set_time(at("2026-12-01T00:00:00Z"));
        let morning = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(morning.report.delivered, 1);
        assert_eq!(gateway.received().len(), 1);
        assert!(sms_text(&gateway.received()[0]).contains("赵敏"));
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn suspension_and_resumption_are_notified_a_reported_death_is_not_and_stale_notices_are_cancelled(
) {
    for b in backends().await {
        let app = b.app(clock()).await;
        let gateway = FakeGateway::start().await.unwrap();
        let notifier = notifier(Some(&gateway), None);
        let late = id("110105", "19500101", 55);
        let dead = id("110105", "19500101", 57);
        let certifies = id("110105", "19500101", 59);
        let in_grace = id("110105", "19500101", 61);
        roll(
            &app,
            &b,
            &[
                row(&late, "周强", "2025-10-01", "2026-10"),
                row(&dead, "吴刚", "2026-06-01", "2026-10"),
                row(&certifies, "郑洁", "2025-12-10", "2026-10"),
                row(&in_grace, "钱进", "2025-11-20", "2026-10"),
            ],
        )
        .await;
        let cycle = app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();
        assert_eq!(
            (cycle.suspended, cycle.reminders, cycle.overdue_notices),
            (1, 1, 1),
            "{}",
            b.name
        );
        app.report_death(&staff(), &nid(&dead), d("2026-11-20"), "public_security")
            .await
            .unwrap();
        // Certified before the reminder went out: it is no longer true.
        app.certify(
            &staff(),
            &certify_req(&certifies, TODAY, Outcome::Pass, None),
        )
        .await
        .unwrap();

        let run = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(
            (run.report.delivered, run.report.cancelled),
            (2, 1),
            "{}",
            b.name
        );
        let texts: Vec<String> = gateway.received().iter().map(sms_text).collect();
        let suspended = texts.iter().find(|t| t.contains("周强")).unwrap();
        assert!(
            suspended.contains("2026年11月30日起暂停发放"),
            "{suspended}"
        );
        let overdue = texts.iter().find(|t| t.contains("钱进")).unwrap();
        assert!(
            overdue.contains("已于2026年11月20日到期") && overdue.contains("2026年12月21日起暂停"),
            "{overdue}"
        );
        let cancelled = listed(&app, with_status("cancelled")).await;
        assert_eq!(cancelled.len(), 1);
        assert_eq!(
            cancelled[0].recipient_id,
            recipient_id(&app, &certifies).await
        );
        assert!(cancelled[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("certified"));
        let notices_of_kind = |kind: &str| NotificationQuery {
            kind: Some(kind.into()),
            ..Default::default()
        };
        let suspensions = listed(&app, notices_of_kind("suspended")).await;
        assert_eq!(
            suspensions.len(),
            1,
            "no suspension notice for a reported death"
        );

        // Certifying lifts the suspension, and that is a notice too, in the same change.
        app.certify(&staff(), &certify_req(&late, TODAY, Outcome::Pass, None))
            .await
            .unwrap();
        let resumed_notices = |app: &App| {
            let pool = app.store().pool().clone();
            async move {
                sqlx::query_scalar::<_, String>(
                    "SELECT due_on FROM notification_outbox WHERE kind = 'resumed' ORDER BY id",
                )
                .fetch_all(&pool)
                .await
                .unwrap()
            }
        };
        assert_eq!(resumed_notices(&app).await, [TODAY]);
        let run = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!((run.report.queued, run.report.delivered), (1, 1));
        let resumed = listed(&app, notices_of_kind("resumed")).await;
        assert_eq!((resumed.len(), resumed[0].date.as_str()), (1, TODAY));
        let last = sms_text(gateway.received().last().unwrap());
        assert!(
            last.contains("周强") && last.contains("2026年11月30日起恢复发放"),
            "{last}"
        );
        // Voiding the wrong death report resumes payment: a notice as well.
        app.void_death(&staff(), &nid(&dead)).await.unwrap();
        assert_eq!(resumed_notices(&app).await, [TODAY, TODAY]);
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn an_agent_is_told_too_in_the_pensioners_language() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let gateway = FakeGateway::start().await.unwrap();
        let notifier = notifier(Some(&gateway), None);
        let who = id("110105", "19500101", 63);
        roll(&app, &b, &[row(&who, "王建国", "2025-12-10", "2026-10")]).await;
        let rid = recipient_id(&app, &who).await;
        let contact = |n: lifecert_app::notifications::NotificationContactUpdate| ContactUpdate {
            notification: n,
            ..Default::default()
        };
        use lifecert_app::notifications::NotificationContactUpdate as N;
        for (bad, field) in [
            (
                N {
                    agent_phone: Some("12345".into()),
                    ..Default::default()
                },
                "agent_phone",
            ),
            (
                N {
                    preferred_channel: Some("email".into()),
                    ..Default::default()
                },
                "preferred_channel",
            ),
            (
                N {
                    language: Some("fr".into()),
                    ..Default::default()
                },
                "language",
            ),
        ] {
            match app
                .update_contact(&supervisor("s"), rid, &contact(bad))
                .await
            {
                Err(AppError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
        app.update_contact(
            &supervisor("s"),
            rid,
            &contact(N {
                agent_name: Some("王小明".into()),
                agent_phone: Some("139 0013 9000".into()),
                language: Some("en".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
        let changed: Vec<String> = app
            .store()
            .list_audit(0, 1000, Some("recipient.contact_updated"), Some(rid))
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.details)
            .collect();
        assert_eq!(changed.len(), 1);
        assert!(
            changed[0].contains("agent_phone")
                && !changed[0].contains("13900139000")
                && !changed[0].contains("王小明"),
            "{}",
            changed[0]
        );

        app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();
        let run = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(run.report.delivered, 2, "{}", b.name);
        let got = gateway.received();
        let to = |phone: &str| {
            got.iter()
                .find(|r| r.json().unwrap()["phone"] == phone)
                .map(sms_text)
                .unwrap()
        };
        let pensioner = to("13800138000");
        assert!(
            pensioner.starts_with("Dear 王建国") && pensioner.contains("10 December 2026"),
            "{pensioner}"
        );
        let agent = to("13900139000");
        assert!(
            agent.starts_with("Dear 王小明") && agent.contains("family member 王建国"),
            "{agent}"
        );
        let addressees: Vec<String> = timeline(&app, &who)
            .await
            .iter()
            .filter(|e| e.what == "notification.reminder")
            .map(|e| e.details["addressee"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(addressees, ["pensioner", "agent"]);
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn without_a_configured_channel_notifications_wait_and_go_once_it_is_configured() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let who = id("110105", "19500101", 65);
        roll(&app, &b, &[row(&who, "冯雪", "2025-12-10", "2026-10")]).await;
        app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();
        let none = notifier(None, None);
        let run = app
            .run_pending_notifications(&none, &worker("n1"))
            .await
            .unwrap();
        assert_eq!(run.report.claimed, 0, "{}", b.name);
        assert_eq!(run.waiting.len(), 1);
        assert_eq!(
            (
                run.waiting[0].channel.as_str(),
                run.waiting[0].count,
                run.waiting[0].configured
            ),
            ("sms", 1, false)
        );
        let gateway = FakeGateway::start().await.unwrap();
        let run = app
            .run_pending_notifications(&notifier(Some(&gateway), None), &worker("n1"))
            .await
            .unwrap();
        assert_eq!(run.report.delivered, 1);
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn a_delivery_whose_worker_stopped_is_sent_again_under_the_same_id_after_its_lease() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let gateway = FakeGateway::start().await.unwrap();
        let notifier = notifier(Some(&gateway), None);
        let people: Vec<String> = (0..30)
            .map(|i| id("110105", "19500101", 101 + 2 * i))
            .collect();
        let rows: Vec<String> = people
            .iter()
            .map(|p| row(p, "某", "2025-12-10", "2026-10"))
            .collect();
        roll(&app, &b, &rows).await;
        app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();

        // A node makes the deliveries, claims two and dies before recording anything (it
        // may or may not have sent them).
        let now = "2026-11-30T09:00:00.000Z";
        assert_eq!(
            app.store().queue_pending_notices(now, 1000).await.unwrap(),
            30
        );
        let stuck = app
            .store()
            .claim_deliveries("dead-node", &["sms"], now, "2026-11-30T09:00:40.000Z", 2)
            .await
            .unwrap();
        assert_eq!(stuck.len(), 2);

        // Two live nodes drain the rest at the same time: each message goes out once.
        let other = b.app(clock.clone()).await;
        let (n1, n2) = (worker("n1"), worker("n2"));
        let (one, two) = tokio::join!(
            app.run_pending_notifications(&notifier, &n1),
            other.run_pending_notifications(&notifier, &n2),
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(
            one.report.delivered + two.report.delivered,
            28,
            "{}",
            b.name
        );
        assert_eq!(gateway.received().len(), 28);

        // Once the dead node's lease has run out, its two go out, under the same ids.
        clock.set_time(at("2026-11-30T09:00:41Z"));
        let run = app
            .run_pending_notifications(&notifier, &worker("n1"))
            .await
            .unwrap();
        assert_eq!((run.report.recovered, run.report.delivered), (2, 2));
        let prefix = app.store().message_id_prefix().await.unwrap();
        let ids: std::collections::HashSet<String> = gateway
            .received()
            .iter()
            .map(|r| r.message_id().unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 30);
        for s in &stuck {
            assert!(ids.contains(&format!("ntf-{prefix}-{}", s.id)));
        }
        let events = app
            .timeline(&supervisor("s"), stuck[0].recipient_id)
            .await
            .unwrap();
        assert_eq!(
            attempts(&events),
            [(1, "unknown".to_string()), (2, "delivered".to_string())]
        );

        // The dead node's late word changes nothing (the attempt is still recorded).
        let late = app
            .store()
            .record_attempt(&lifecert_store::AttemptRecord {
                delivery_id: stuck[0].id,
                recipient_id: stuck[0].recipient_id,
                attempt: 1,
                worker: "dead-node",
                at: "2026-11-30T09:00:42.000Z",
                channel: "sms",
                outcome: "transient",
                reason: Some("timeout"),
                provider_id: None,
                status: "retrying",
                next_attempt_at: Some("2026-11-30T09:01:42.000Z"),
            })
            .await
            .unwrap();
        assert!(!late);
        let d = app.store().delivery(stuck[0].id).await.unwrap().unwrap();
        assert_eq!((d.status.as_str(), d.attempts), ("delivered", 2));
        other.store().clone().close().await;
        b.drop_pg(app).await;
    }
}
