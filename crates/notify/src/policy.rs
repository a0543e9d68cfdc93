//! When to try a delivery (again): the fixed retry schedule and SMS quiet hours. Pure
//! functions of the time they are given.

use chrono::{DateTime, Duration, Utc};

use crate::address::ChannelKind;
use crate::outcome::Outcome;
use crate::settings::{QuietHours, TimeZone};

/// Attempts per message, the first included; after the last failed one the message is dead.
pub const MAX_ATTEMPTS: u32 = 6;

/// Wait after the 1st, 2nd, … 5th failed attempt. Deterministic (no jitter), so a
/// schedule can be read off the outbox and tested; nodes share the load because jobs are
/// claimed rows, not timers.
pub const RETRY_DELAYS_MINUTES: [i64; (MAX_ATTEMPTS - 1) as usize] = [1, 5, 30, 120, 360];

/// When to try after `attempts_made` attempts (0: not tried yet, so `now`; 1: after the
/// first failed one), or `None` when all [`MAX_ATTEMPTS`] are spent. Quiet hours are not
/// applied here: see [`next_step`] and [`allowed_at`].
pub fn next_attempt_at(attempts_made: u32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let Some(index) = attempts_made.checked_sub(1) else {
        return Some(now);
    };
    let index = usize::try_from(index).ok()?;
    RETRY_DELAYS_MINUTES
        .get(index)
        .map(|&m| now + Duration::minutes(m))
}

/// The earliest time at or after `now` when a message may go out on `channel`: SMS waits
/// for the end of quiet hours in the local time zone; email and webhook are never held.
pub fn allowed_at(
    channel: ChannelKind,
    now: DateTime<Utc>,
    quiet_hours: &QuietHours,
    zone: &TimeZone,
) -> DateTime<Utc> {
    if channel != ChannelKind::Sms {
        return now;
    }
    let local = now.with_timezone(&zone.offset()).naive_local();
    if !quiet_hours.contains(local.time()) {
        return now;
    }
    let mut end = local.date().and_time(quiet_hours.end);
    if end <= local {
        end += Duration::days(1);
    }
    now + (end - local)
}

/// What to do with a message after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered: nothing more to do.
    Done,
    /// A transient failure: try again at this time (quiet hours already applied).
    RetryAt(DateTime<Utc>),
    /// A permanent failure, or the last attempt failed: give up and keep the reason.
    Dead(String),
}

/// The outbox's decision after attempt number `attempts_made` ended in `outcome`.
pub fn next_step(
    outcome: &Outcome,
    attempts_made: u32,
    channel: ChannelKind,
    now: DateTime<Utc>,
    quiet_hours: &QuietHours,
    zone: &TimeZone,
) -> NextStep {
    match outcome {
        Outcome::Delivered { .. } => NextStep::Done,
        Outcome::Permanent(reason) => NextStep::Dead(reason.clone()),
        Outcome::Transient(reason) => match next_attempt_at(attempts_made, now) {
            Some(at) => NextStep::RetryAt(allowed_at(channel, at, quiet_hours, zone)),
            None => NextStep::Dead(format!(
                "gave up after {attempts_made} attempts; last: {reason}"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn retries_back_off_then_stop() {
        let now = utc(2025, 3, 1, 2, 0);
        let waits: Vec<i64> = (1..=MAX_ATTEMPTS)
            .map_while(|n| next_attempt_at(n, now))
            .map(|t| (t - now).num_minutes())
            .collect();
        assert_eq!(waits, [1, 5, 30, 120, 360]);
        assert_eq!(next_attempt_at(MAX_ATTEMPTS, now), None);
        assert_eq!(next_attempt_at(0, now), Some(now));
        assert_eq!(next_attempt_at(u32::MAX, now), None);
    }

    #[test]
    fn next_step_follows_the_outcome() {
        let q = QuietHours::default();
        let z = TimeZone::default();
        // 10:00 in Shanghai
        let now = utc(2025, 3, 1, 2, 0);
        let transient = Outcome::Transient("HTTP 503".into());
        assert_eq!(
            next_step(
                &Outcome::Delivered { provider_id: None },
                1,
                ChannelKind::Sms,
                now,
                &q,
                &z
            ),
            NextStep::Done
        );
        assert_eq!(
            next_step(
                &Outcome::Permanent("HTTP 400".into()),
                1,
                ChannelKind::Sms,
                now,
                &q,
                &z
            ),
            NextStep::Dead("HTTP 400".into())
        );
        assert_eq!(
            next_step(&transient, 2, ChannelKind::Sms, now, &q, &z),
            NextStep::RetryAt(utc(2025, 3, 1, 2, 5))
        );
        match next_step(&transient, MAX_ATTEMPTS, ChannelKind::Email, now, &q, &z) {
            NextStep::Dead(r) => assert!(r.contains("6 attempts") && r.contains("HTTP 503")),
            other => panic!("{other:?}"),
        }
        // 20:00 Shanghai + 2 h lands in quiet hours: the SMS retry waits for 08:00.
        let evening = utc(2025, 3, 1, 12, 0);
        assert_eq!(
            next_step(&transient, 4, ChannelKind::Sms, evening, &q, &z),
            NextStep::RetryAt(utc(2025, 3, 2, 0, 0))
        );
        assert_eq!(
            next_step(&transient, 4, ChannelKind::Webhook, evening, &q, &z),
            NextStep::RetryAt(utc(2025, 3, 1, 14, 0))
        );
    }
}
