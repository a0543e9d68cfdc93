use chrono::{DateTime, TimeZone as _, Utc};
use lifecert_notify::{allowed_at, ChannelKind, Notifier, QuietHours, TimeZone};

/// A UTC instant given as Shanghai local time (UTC+8).
fn shanghai(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap()
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn sms_waits_for_eight_in_the_morning_shanghai_time() {
    let notifier = Notifier::new(crate::settings()).unwrap();
    let at = |now| notifier.allowed_at(ChannelKind::Sms, now);
    let cases = [
        (
            shanghai(2025, 3, 1, 20, 59, 0),
            shanghai(2025, 3, 1, 20, 59, 0),
        ),
        (
            shanghai(2025, 3, 1, 20, 59, 59),
            shanghai(2025, 3, 1, 20, 59, 59),
        ),
        (
            shanghai(2025, 3, 1, 21, 0, 0),
            shanghai(2025, 3, 2, 8, 0, 0),
        ),
        (
            shanghai(2025, 3, 1, 23, 59, 59),
            shanghai(2025, 3, 2, 8, 0, 0),
        ),
        (shanghai(2025, 3, 2, 0, 0, 0), shanghai(2025, 3, 2, 8, 0, 0)),
        (
            shanghai(2025, 3, 2, 7, 59, 0),
            shanghai(2025, 3, 2, 8, 0, 0),
        ),
        (
            shanghai(2025, 3, 2, 7, 59, 59),
            shanghai(2025, 3, 2, 8, 0, 0),
        ),
        (shanghai(2025, 3, 2, 8, 0, 0), shanghai(2025, 3, 2, 8, 0, 0)),
        // Across the end of a month and a year.
        (
            shanghai(2025, 12, 31, 22, 0, 0),
            shanghai(2026, 1, 1, 8, 0, 0),
        ),
        (
            shanghai(2024, 2, 28, 21, 30, 0),
            shanghai(2024, 2, 29, 8, 0, 0),
        ),
    ];
    for (now, expected) in cases {
        assert_eq!(at(now), expected, "now {now}");
    }
}

#[test]
fn the_local_day_not_the_utc_day_decides() {
    let notifier = Notifier::new(crate::settings()).unwrap();
    // 23:59 UTC on 1 March is 07:59 on 2 March in Shanghai: wait one minute, to 00:00 UTC.
    let now = Utc.with_ymd_and_hms(2025, 3, 1, 23, 59, 0).unwrap();
    assert_eq!(
        notifier.allowed_at(ChannelKind::Sms, now),
        Utc.with_ymd_and_hms(2025, 3, 2, 0, 0, 0).unwrap()
    );
    // 13:00 UTC is 21:00 in Shanghai: quiet until 08:00 local, which is 00:00 UTC next day.
    let now = Utc.with_ymd_and_hms(2025, 3, 1, 13, 0, 0).unwrap();
    assert_eq!(
        notifier.allowed_at(ChannelKind::Sms, now),
        Utc.with_ymd_and_hms(2025, 3, 2, 0, 0, 0).unwrap()
    );
    // 12:59 UTC is 20:59 in Shanghai: allowed.
    let now = Utc.with_ymd_and_hms(2025, 3, 1, 12, 59, 0).unwrap();
    assert_eq!(notifier.allowed_at(ChannelKind::Sms, now), now);
}

#[test]
fn email_and_webhook_are_never_held() {
    let notifier = Notifier::new(crate::settings()).unwrap();
    let night = shanghai(2025, 3, 1, 23, 0, 0);
    assert_eq!(notifier.allowed_at(ChannelKind::Email, night), night);
    assert_eq!(notifier.allowed_at(ChannelKind::Webhook, night), night);
}

#[test]
fn other_zones_and_windows() {
    let t = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let west = TimeZone::parse("-05:00").unwrap();
    let q = QuietHours {
        start: t(22, 0),
        end: t(6, 30),
    };
    // 02:00 UTC is 21:00 at -05:00: allowed; 03:00 UTC is 22:00: wait until 06:30 local = 11:30 UTC.
    let now = Utc.with_ymd_and_hms(2025, 3, 1, 2, 0, 0).unwrap();
    assert_eq!(allowed_at(ChannelKind::Sms, now, &q, &west), now);
    let now = Utc.with_ymd_and_hms(2025, 3, 1, 3, 0, 0).unwrap();
    assert_eq!(
        allowed_at(ChannelKind::Sms, now, &q, &west),
        Utc.with_ymd_and_hms(2025, 3, 1, 11, 30, 0).unwrap()
    );
    // A window within one day (a lunch break) and no window at all.
    let lunch = QuietHours {
        start: t(12, 0),
        end: t(13, 30),
    };
    let utc = TimeZone::parse("UTC").unwrap();
    let noon = Utc.with_ymd_and_hms(2025, 3, 1, 12, 10, 0).unwrap();
    assert_eq!(
        allowed_at(ChannelKind::Sms, noon, &lunch, &utc),
        Utc.with_ymd_and_hms(2025, 3, 1, 13, 30, 0).unwrap()
    );
    let none = QuietHours {
        start: t(8, 0),
        end: t(8, 0),
    };
    assert_eq!(allowed_at(ChannelKind::Sms, noon, &none, &utc), noon);
}
