//! The scheduler's calendar: which periodic jobs are due at a moment, in the agency's
//! time zone. Each is queued once per period (the daily cycle per local date, the payment
//! export per month) however many nodes ask, because the job table holds one row per
//! kind and period.

use crate::jobs::{JobKind, MAX_ATTEMPTS};
use crate::{Actor, App, AppError, Result};
use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, Offset, Utc};
use lifecert_domain::YearMonth;
use lifecert_store::NewJob;
use serde::Serialize;

/// The agency's time zone. Only zones without daylight saving time are accepted (an
/// IANA name from a short list, or a fixed offset such as `+08:00`), so that a local
/// time happens exactly once a day: a zone with DST would make 02:30 happen twice or
/// never on the changeover days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneSetting {
    name: String,
    offset: FixedOffset,
}

/// IANA zones accepted by name, with their offset in hours east of UTC. None has had
/// daylight saving time since 1991 (China's last, Taiwan's was in 1979).
const NAMED_ZONES: &[(&str, i32)] = &[
    ("Asia/Shanghai", 8),
    ("Asia/Chongqing", 8),
    ("Asia/Harbin", 8),
    ("Asia/Urumqi", 6),
    ("Asia/Hong_Kong", 8),
    ("Asia/Macau", 8),
    ("Asia/Taipei", 8),
    ("Asia/Singapore", 8),
    ("Asia/Tokyo", 9),
    ("Asia/Seoul", 9),
    ("PRC", 8),
    ("UTC", 0),
    ("Etc/UTC", 0),
];

impl TimeZoneSetting {
    /// `Asia/Shanghai`, `Asia/Hong_Kong`, `Asia/Macau`, `Asia/Taipei`, `UTC` (and the few
    /// others of [`NAMED_ZONES`]), or a fixed offset `+08:00` / `-05:00` / `Z`.
    pub fn parse(s: &str) -> Result<TimeZoneSetting> {
        let t = s.trim();
        if let Some((name, hours)) = NAMED_ZONES.iter().find(|(n, _)| n.eq_ignore_ascii_case(t)) {
            return Ok(TimeZoneSetting {
                name: (*name).to_string(),
                offset: FixedOffset::east_opt(hours * 3600)
                    .ok_or_else(|| AppError::invalid("time_zone", "offset out of range"))?,
            });
        }
        if t == "Z" {
            return Self::parse("UTC");
        }
        let fixed = (|| {
            let (sign, rest) = match t.as_bytes().first()? {
                b'+' => (1, &t[1..]),
                b'-' => (-1, &t[1..]),
                _ => return None,
            };
            let (h, m) = rest.split_once(':').unwrap_or((rest, "00"));
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
            if h > 14 || m > 59 {
                return None;
            }
            FixedOffset::east_opt(sign * (h * 3600 + m * 60))
        })();
        match fixed {
            Some(offset) => Ok(TimeZoneSetting {
                name: offset.to_string(),
                offset,
            }),
            None => Err(AppError::invalid(
                "time_zone",
                format!(
                    "{t:?} is not a time zone lifecert accepts: use one of {} or a fixed offset such as +08:00 (zones with daylight saving time are not supported)",
                    NAMED_ZONES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ),
            )),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn offset(&self) -> FixedOffset {
        self.offset
    }
}

/// When the periodic jobs are due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The daily cycle is due once local time reaches this.
    pub cycle_time: NaiveTime,
    pub time_zone: TimeZoneSetting,
    /// The month's payment export is due from this day of the month (1–28).
    pub payment_export_day: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            cycle_time: NaiveTime::from_hms_opt(2, 0, 0).unwrap_or_default(),
            time_zone: TimeZoneSetting {
                name: "Asia/Shanghai".to_string(),
                offset: FixedOffset::east_opt(8 * 3600).unwrap_or(Utc.fix()),
            },
            payment_export_day: 20,
        }
    }
}

impl Schedule {
    /// Checks the parts that come from settings: `HH:MM`, a zone, a day 1–28 (every
    /// month has it).
    pub fn parse(cycle_time: &str, time_zone: &str, payment_export_day: u32) -> Result<Schedule> {
        let cycle_time = NaiveTime::parse_from_str(cycle_time.trim(), "%H:%M").map_err(|_| {
            AppError::invalid(
                "cycle_time",
                format!("{cycle_time:?} is not a time of day: use HH:MM, e.g. 02:00"),
            )
        })?;
        if !(1..=28).contains(&payment_export_day) {
            return Err(AppError::invalid(
                "payment_export_day",
                format!("{payment_export_day} is not a day every month has: use 1 to 28"),
            ));
        }
        Ok(Schedule {
            cycle_time,
            time_zone: TimeZoneSetting::parse(time_zone)?,
            payment_export_day,
        })
    }

    /// The periodic jobs due at `now`, each with its period. Only the current period is
    /// ever due: after downtime, today's cycle runs once (it evaluates everyone as of
    /// today, so the days missed need no run of their own) and the month's export runs
    /// on the first tick on or after its day.
    pub fn due(&self, now: DateTime<Utc>) -> Vec<(JobKind, String)> {
        let local = now.with_timezone(&self.time_zone.offset);
        let date = local.date_naive();
        let mut due = Vec::new();
        if local.time() >= self.cycle_time {
            due.push((JobKind::Cycle, crate::date_str(date)));
        }
        if date.day() >= self.payment_export_day {
            if let Some(month) = YearMonth::new(date.year(), date.month()) {
                due.push((JobKind::PaymentExport, month.to_string()));
            }
        }
        due
    }
}

/// A periodic job after a scheduling pass.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ScheduledJob {
    pub kind: String,
    pub period: String,
    pub job_id: i64,
    /// Queued by this pass (false: it existed already, queued by this node or another).
    pub created: bool,
}

impl App {
    /// Queues the periodic jobs due now that are not queued yet. Safe to call from every
    /// node at once, as often as wanted.
    pub async fn schedule_due_jobs(&self, schedule: &Schedule) -> Result<Vec<ScheduledJob>> {
        let now = self.now_string();
        let created_by = Actor::System.label();
        let mut out = Vec::new();
        for (kind, period) in schedule.due(self.clock.now()) {
            let new = NewJob {
                kind: kind.as_str(),
                source: "",
                format: "",
                payload: &[],
                period_key: Some(&period),
                max_attempts: MAX_ATTEMPTS,
                created_by: &created_by,
            };
            let (job_id, created) = match self.store.queue_period_job(&new, &now).await? {
                Some(id) => {
                    tracing::info!(job = id, kind = kind.as_str(), period = %period, "scheduled");
                    (id, true)
                }
                None => {
                    let existing = self
                        .store
                        .job_for_period(kind.as_str(), &period)
                        .await?
                        .ok_or_else(|| {
                            AppError::Corrupt(format!(
                                "the {} job for {period} was neither inserted nor found",
                                kind.as_str()
                            ))
                        })?;
                    (existing.id, false)
                }
            };
            out.push(ScheduledJob {
                kind: kind.as_str().to_string(),
                period,
                job_id,
                created,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn zones_by_name_and_offset_and_dst_zones_refused() {
        let sh = TimeZoneSetting::parse("Asia/Shanghai").unwrap();
        assert_eq!(sh.offset().local_minus_utc(), 8 * 3600);
        assert_eq!(
            TimeZoneSetting::parse("asia/hong_kong").unwrap().name(),
            "Asia/Hong_Kong"
        );
        for name in ["Asia/Macau", "Asia/Taipei", "UTC"] {
            assert!(TimeZoneSetting::parse(name).is_ok(), "{name}");
        }
        assert_eq!(
            TimeZoneSetting::parse("-05:30")
                .unwrap()
                .offset()
                .local_minus_utc(),
            -(5 * 3600 + 30 * 60)
        );
        assert_eq!(
            TimeZoneSetting::parse("+08:00").unwrap().offset(),
            sh.offset()
        );
        for bad in [
            "Europe/Berlin",
            "America/New_York",
            "+8",
            "+15:00",
            "08:00",
            "",
        ] {
            let e = TimeZoneSetting::parse(bad).unwrap_err().to_string();
            assert!(e.contains("time_zone"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_cycle_is_due_from_its_local_time_and_the_export_from_its_day() {
        let s = Schedule::parse("02:00", "Asia/Shanghai", 20).unwrap();
        // 17:59 UTC on 30 Nov is 01:59 on 1 Dec in Shanghai: nothing yet.
        assert!(s.due(at("2026-11-30T17:59:00Z")).is_empty());
        // 18:00 UTC is 02:00 on 1 Dec: the cycle for 1 Dec, local date not UTC date.
        assert_eq!(
            s.due(at("2026-11-30T18:00:00Z")),
            vec![(JobKind::Cycle, "2026-12-01".to_string())]
        );
        // 20 Dec 10:00 local: the cycle and December's export.
        assert_eq!(
            s.due(at("2026-12-20T02:00:00Z")),
            vec![
                (JobKind::Cycle, "2026-12-20".to_string()),
                (JobKind::PaymentExport, "2026-12".to_string())
            ]
        );
        // Still due (same period) for the rest of the month: a node that was down on
        // the 20th catches up; the period key keeps it to one job.
        assert_eq!(
            s.due(at("2026-12-31T01:00:00Z"))[1],
            (JobKind::PaymentExport, "2026-12".to_string())
        );
        assert!(Schedule::parse("2:00pm", "UTC", 20).is_err());
        assert!(Schedule::parse("02:00", "UTC", 29).is_err());
        assert!(Schedule::parse("02:00", "UTC", 0).is_err());
        assert_eq!(
            Schedule::default(),
            Schedule::parse("02:00", "Asia/Shanghai", 20).unwrap()
        );
    }
}
