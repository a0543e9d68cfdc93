//! The certification policy: how long a certification is valid, when to remind,
//! and how long an overdue pensioner keeps being paid.

use crate::{add_months_clamped, ParseError, YearMonth};
use chrono::{Datelike, Duration, NaiveDate};
use serde::{Deserialize, Serialize};

/// What the validity period is counted from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anchor {
    /// `next_due_on` = last certification + `validity_months` (clamped to month end).
    #[default]
    LastCertification,
    /// The 2018 rule's form: the certification year runs from the birthday month to the
    /// month before the next birthday; a certification satisfies the cycle it falls in and
    /// the next one is due by the end of the following cycle.
    Birthday,
}

impl Anchor {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.trim() {
            "last_certification" => Ok(Anchor::LastCertification),
            "birthday" => Ok(Anchor::Birthday),
            other => Err(ParseError::new(format!(
                "unknown policy anchor {other:?}: use last_certification or birthday"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    validity_months: u32,
    /// Days before `next_due_on`, largest first, no duplicates.
    reminder_days: Vec<u32>,
    grace_days: u32,
    anchor: Anchor,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            validity_months: 12,
            reminder_days: vec![60, 30, 7],
            grace_days: 30,
            anchor: Anchor::LastCertification,
        }
    }
}

impl Policy {
    pub fn new(
        validity_months: u32,
        mut reminder_days: Vec<u32>,
        grace_days: u32,
        anchor: Anchor,
    ) -> Result<Self, ParseError> {
        if !(1..=12).contains(&validity_months) {
            return Err(ParseError::new(format!(
                "validity_months must be between 1 and 12 (the rules allow at most 12 months between certifications), got {validity_months}"
            )));
        }
        if grace_days > 365 {
            return Err(ParseError::new(format!(
                "grace_days must be at most 365, got {grace_days}"
            )));
        }
        if let Some(d) = reminder_days.iter().find(|d| **d == 0 || **d > 366) {
            return Err(ParseError::new(format!(
                "reminder_days must be between 1 and 366, got {d}"
            )));
        }
        reminder_days.sort_unstable_by(|a, b| b.cmp(a));
        reminder_days.dedup();
        Ok(Policy {
            validity_months,
            reminder_days,
            grace_days,
            anchor,
        })
    }

    pub fn validity_months(&self) -> u32 {
        self.validity_months
    }
    pub fn reminder_days(&self) -> &[u32] {
        &self.reminder_days
    }
    pub fn grace_days(&self) -> u32 {
        self.grace_days
    }
    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    /// When the next certification is due, given the last one.
    pub fn next_due_on(&self, last_certified_on: NaiveDate, birth_date: NaiveDate) -> NaiveDate {
        match self.anchor {
            Anchor::LastCertification => {
                add_months_clamped(last_certified_on, self.validity_months as i32)
            }
            Anchor::Birthday => {
                let certified = YearMonth::of(last_certified_on);
                let birthday_month = birth_date.month();
                let mut cycle_start =
                    YearMonth::new(last_certified_on.year(), birthday_month).unwrap_or(certified);
                if cycle_start > certified {
                    cycle_start = cycle_start.plus(-12);
                }
                // End of the cycle after the one the certification falls in.
                cycle_start.plus(23).last_day()
            }
        }
    }

    /// The reminder stage (days before due) that applies on `as_of`: the smallest `d` with
    /// `as_of >= next_due_on - d`, and only while not yet overdue.
    pub fn reminder_stage(&self, next_due_on: NaiveDate, as_of: NaiveDate) -> Option<u32> {
        if self.is_overdue(next_due_on, as_of) {
            return None;
        }
        self.reminder_days
            .iter()
            .rev()
            .copied()
            .find(|d| as_of >= next_due_on - Duration::days(i64::from(*d)))
    }

    /// Overdue once `as_of` is past the due date.
    pub fn is_overdue(&self, next_due_on: NaiveDate, as_of: NaiveDate) -> bool {
        as_of > next_due_on
    }

    /// Suspended for `overdue` once the grace period after the due date has passed too.
    pub fn is_past_grace(&self, next_due_on: NaiveDate, as_of: NaiveDate) -> bool {
        as_of > next_due_on + Duration::days(i64::from(self.grace_days))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_date as d;
    use proptest::prelude::*;

    fn day(s: &str) -> NaiveDate {
        d(s).unwrap()
    }

    #[test]
    fn default_policy_schedule() {
        let p = Policy::default();
        let due = p.next_due_on(day("2025-08-31"), day("1950-01-01"));
        assert_eq!(due, day("2026-08-31"));
        assert_eq!(p.reminder_stage(due, day("2026-07-01")), None);
        assert_eq!(p.reminder_stage(due, day("2026-07-02")), Some(60));
        assert_eq!(p.reminder_stage(due, day("2026-08-01")), Some(30));
        assert_eq!(p.reminder_stage(due, day("2026-08-24")), Some(7));
        assert_eq!(p.reminder_stage(due, day("2026-08-31")), Some(7));
        assert_eq!(p.reminder_stage(due, day("2026-09-01")), None);
        assert!(p.is_overdue(due, day("2026-09-01")));
        assert!(!p.is_past_grace(due, day("2026-09-30")));
        assert!(p.is_past_grace(due, day("2026-10-01")));
    }

    #[test]
    fn validates_settings() {
        assert!(Policy::new(13, vec![30], 30, Anchor::LastCertification).is_err());
        assert!(Policy::new(0, vec![30], 30, Anchor::LastCertification).is_err());
        assert!(Policy::new(12, vec![0], 30, Anchor::LastCertification).is_err());
        let p = Policy::new(6, vec![7, 30, 7], 10, Anchor::LastCertification).unwrap();
        assert_eq!(p.reminder_days(), &[30, 7]);
    }

    #[test]
    fn birthday_anchor_runs_to_the_end_of_the_next_birthday_cycle() {
        let p = Policy::new(12, vec![30], 30, Anchor::Birthday).unwrap();
        let born_march = day("1950-03-15");
        // Certified in May 2026: cycle Mar 2026–Feb 2027, next cycle ends Feb 2028.
        assert_eq!(
            p.next_due_on(day("2026-05-10"), born_march),
            day("2028-02-29")
        );
        // Certified in February 2026: cycle Mar 2025–Feb 2026, next ends Feb 2027.
        assert_eq!(
            p.next_due_on(day("2026-02-10"), born_march),
            day("2027-02-28")
        );
    }

    proptest! {
        #[test]
        fn a_due_date_is_never_more_than_validity_months_away(
            n in 0i64..30_000, months in 1u32..=12
        ) {
            let p = Policy::new(months, vec![60, 30, 7], 30, Anchor::LastCertification).unwrap();
            let last = day("1950-01-01") + Duration::days(n);
            let due = p.next_due_on(last, day("1940-01-01"));
            prop_assert!(due > last);
            prop_assert!(due <= add_months_clamped(last, months as i32));
            prop_assert_eq!(YearMonth::of(due), YearMonth::of(last).plus(months as i32));
        }
    }
}
