use lifecert_notify::template::format_date;
use lifecert_notify::{sms_segments, Kind, Language, Notifier, ServicePointText};

/// To the pensioner, to a named agent, to an unnamed agent.
fn addressees(language: Language) -> [Option<Option<&'static str>>; 3] {
    let agent = match language {
        Language::Zh => "李明",
        Language::En => "Li Ming",
    };
    [None, Some(Some(agent)), Some(None)]
}

fn notifier() -> Notifier {
    Notifier::new(crate::settings()).unwrap()
}

#[test]
fn every_kind_language_and_addressee_renders_what_a_pensioner_needs() {
    let notifier = notifier();
    for kind in Kind::ALL {
        for language in Language::ALL {
            for agent in addressees(language) {
                let case = format!("{kind} {language} agent={agent:?}");
                let name = match language {
                    Language::Zh => "张三丰",
                    Language::En => "Zhang Sanfeng",
                };
                let input = crate::input(kind, language, name, agent);
                let r = notifier.render(&input);
                assert_eq!((r.kind, r.language), (kind, language), "{case}");
                let date = format_date(input.notice.date(), language);
                let point = notifier
                    .settings()
                    .service_point_text
                    .for_language(language);
                for (part, text) in [
                    ("sms", &r.sms),
                    ("subject", &r.email_subject),
                    ("body", &r.email_body),
                ] {
                    assert!(!text.trim().is_empty(), "{case} {part}");
                    assert!(!text.contains(['{', '}']), "{case} {part}: {text}");
                }
                for (part, text) in [("sms", &r.sms), ("body", &r.email_body)] {
                    assert!(text.contains(name), "{case} {part}: {text}");
                    assert!(text.contains(&date), "{case} {part}: {text}");
                    assert!(text.contains("0755-12333"), "{case} {part}: {text}");
                    if kind != Kind::Resumed {
                        assert!(text.contains(point), "{case} {part}: {text}");
                    }
                    if let lifecert_notify::Notice::Overdue { suspend_from, .. } = input.notice {
                        assert!(
                            text.contains(&format_date(suspend_from, language)),
                            "{case} {part}"
                        );
                    }
                }
                assert!(!r.email_subject.contains('\n'), "{case}");
                let family = match language {
                    Language::Zh => "您的家人",
                    Language::En => "your family member",
                };
                assert_eq!(r.sms.contains(family), agent.is_some(), "{case}: {}", r.sms);
                assert_eq!(
                    r.email_body.to_lowercase().contains(family),
                    agent.is_some(),
                    "{case}"
                );
                let greeting = match (language, agent) {
                    (Language::Zh, None) => format!("{name}您好："),
                    (Language::Zh, Some(Some(a))) => format!("{a}您好："),
                    (Language::Zh, Some(None)) => "您好：".to_string(),
                    (Language::En, None) => format!("Dear {name},"),
                    (Language::En, Some(Some(a))) => format!("Dear {a},"),
                    (Language::En, Some(None)) => "Hello,".to_string(),
                };
                assert!(r.sms.starts_with(&greeting), "{case}: {}", r.sms);
                assert!(
                    r.email_body.starts_with(&greeting),
                    "{case}: {}",
                    r.email_body
                );
                // Two SMS segments at most with a typical name and the default texts. (English
                // text with a name in Chinese characters is sent as UCS-2 and takes three.)
                assert!(
                    sms_segments(&r.sms) <= 2,
                    "{case}: {} chars: {}",
                    r.sms.chars().count(),
                    r.sms
                );
            }
        }
    }
}

#[test]
fn the_chinese_reminder_reads_plainly() {
    let r = notifier().render(&crate::input(Kind::Reminder, Language::Zh, "张三", None));
    assert_eq!(
        r.sms,
        "张三您好：您的养老金资格认证将于2025年12月31日到期，请在此前完成认证。\
         可用手机App或网站认证，或到就近社区服务站或社保窗口办理，行动不便可申请上门认证。\
         咨询电话0755-12333。"
    );
    assert_eq!(r.email_subject, "请在2025年12月31日前完成养老金资格认证");
}

#[test]
fn a_service_point_text_for_all_languages_is_used_in_both() {
    let mut settings = crate::settings();
    settings.service_point_text = ServicePointText::Same("福田区社保服务大厅".into());
    let notifier = Notifier::new(settings).unwrap();
    for language in Language::ALL {
        let r = notifier.render(&crate::input(Kind::Suspended, language, "Li Hua", None));
        assert!(
            r.sms.contains("福田区社保服务大厅") && r.email_body.contains("福田区社保服务大厅")
        );
    }
}

#[test]
fn an_agency_template_file_replaces_the_wording() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("templates.toml");
    let own = lifecert_notify::template::BUILTIN_TEMPLATES.replace(
        "咨询电话{service_phone}。\"",
        "详询{service_phone}【某市社保】\"",
    );
    std::fs::write(&path, own).unwrap();
    let mut settings = crate::settings();
    settings.templates_file = Some(path.clone());
    let r = Notifier::new(settings.clone())
        .unwrap()
        .render(&crate::input(Kind::Reminder, Language::Zh, "张三", None));
    assert!(r.sms.ends_with("详询0755-12333【某市社保】"), "{}", r.sms);

    std::fs::write(&path, "[zh]\ngreeting = \"{addressee}您好\"\n").unwrap();
    let err = Notifier::new(settings.clone()).err().unwrap().to_string();
    assert!(err.contains("missing field"), "{err}");
    settings.templates_file = Some(dir.path().join("absent.toml"));
    let err = Notifier::new(settings).err().unwrap().to_string();
    assert!(err.starts_with("notify.templates_file"), "{err}");
}

/// The README's example settings are the settings lifecert reads.
#[test]
fn the_readme_example_settings_are_accepted() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("## Notifications: configuring channels")
        .nth(1)
        .expect("the README has a notifications section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let table: toml::Table = toml::from_str(example).unwrap();
    let settings: lifecert_notify::NotifySettings = table["notify"].clone().try_into().unwrap();
    assert!(settings.sms.is_some() && settings.email.is_some() && settings.webhook.is_some());
    let notifier = Notifier::new(settings).unwrap();
    assert_eq!(notifier.settings().service_phone, "12333");
}

#[test]
fn bad_top_level_settings_name_the_setting() {
    let mut settings = crate::settings();
    settings.service_phone = " ".into();
    let err = Notifier::new(settings).err().unwrap().to_string();
    assert!(err.starts_with("notify.service_phone: "), "{err}");
    let mut settings = crate::settings();
    settings.request_timeout_ms = 0;
    let err = Notifier::new(settings).err().unwrap().to_string();
    assert!(err.starts_with("notify.request_timeout_ms: "), "{err}");
}
