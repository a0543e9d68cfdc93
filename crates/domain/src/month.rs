//! Calendar months (`YearMonth`) and month arithmetic on dates.

use crate::ParseError;
use chrono::{Datelike, NaiveDate};
use std::fmt;

/// A calendar month, e.g. 2026-11. Stored as months since year 0 so arithmetic is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth(i32);

impl YearMonth {
    pub fn new(year: i32, month: u32) -> Option<Self> {
        if !(1..=12).contains(&month) || !(1..=9999).contains(&year) {
            return None;
        }
        Some(YearMonth(year * 12 + month as i32 - 1))
    }

    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        let b = t.as_bytes();
        let bad = || {
            ParseError::new(format!(
                "{t:?} is not a month: write it as YYYY-MM, e.g. 2026-11"
            ))
        };
        if b.len() != 7 || b[4] != b'-' {
            return Err(bad());
        }
        let year: i32 = t[..4].parse().map_err(|_| bad())?;
        let month: u32 = t[5..].parse().map_err(|_| bad())?;
        YearMonth::new(year, month).ok_or_else(bad)
    }

    pub fn of(date: NaiveDate) -> Self {
        YearMonth(date.year() * 12 + date.month0() as i32)
    }

    pub fn year(self) -> i32 {
        self.0.div_euclid(12)
    }

    pub fn month(self) -> u32 {
        self.0.rem_euclid(12) as u32 + 1
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year(), self.month(), 1).unwrap_or_default()
    }

    pub fn last_day(self) -> NaiveDate {
        self.next().first_day().pred_opt().unwrap_or_default()
    }

    pub fn plus(self, months: i32) -> Self {
        YearMonth(self.0 + months)
    }

    pub fn next(self) -> Self {
        self.plus(1)
    }

    pub fn prev(self) -> Self {
        self.plus(-1)
    }

    /// Number of months from `self` to `later` (negative if `later` is earlier).
    pub fn months_until(self, later: YearMonth) -> i32 {
        later.0 - self.0
    }

    /// Every month from `self` to `last`, both included (empty if `last < self`).
    pub fn through(self, last: YearMonth) -> impl Iterator<Item = YearMonth> {
        (self.0..=last.0).map(YearMonth)
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

/// `date` plus `months` calendar months, clamped to the end of the target month
/// (2024-01-31 + 1 month = 2024-02-29).
pub fn add_months_clamped(date: NaiveDate, months: i32) -> NaiveDate {
    let target = YearMonth::of(date).plus(months);
    let day = date.day().min(target.last_day().day());
    NaiveDate::from_ymd_opt(target.year(), target.month(), day).unwrap_or(date)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        crate::parse_date(s).unwrap()
    }

    #[test]
    fn clamps_to_month_end() {
        assert_eq!(add_months_clamped(d("2024-01-31"), 1), d("2024-02-29"));
        assert_eq!(add_months_clamped(d("2023-01-31"), 1), d("2023-02-28"));
        assert_eq!(add_months_clamped(d("2024-02-29"), 12), d("2025-02-28"));
        assert_eq!(add_months_clamped(d("2025-08-31"), 12), d("2026-08-31"));
        assert_eq!(add_months_clamped(d("2025-03-31"), -1), d("2025-02-28"));
    }

    #[test]
    fn parses_and_prints_months() {
        let m = YearMonth::parse("2026-11").unwrap();
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(m.next().to_string(), "2026-12");
        assert_eq!(m.plus(2).to_string(), "2027-01");
        assert_eq!(m.last_day(), d("2026-11-30"));
        for bad in ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", ""] {
            assert!(YearMonth::parse(bad).is_err(), "{bad}");
        }
    }

    fn date() -> impl Strategy<Value = NaiveDate> {
        (0i64..60_000).prop_map(|n| d("1900-01-01") + chrono::Duration::days(n))
    }

    proptest! {
        #[test]
        fn month_arithmetic_is_consistent(m in 0i32..100_000, a in -500i32..500, b in -500i32..500) {
            let ym = YearMonth(m + 12);
            prop_assert_eq!(ym.plus(a).plus(b), ym.plus(a + b));
            prop_assert_eq!(ym.months_until(ym.plus(a)), a);
            prop_assert_eq!(YearMonth::parse(&ym.to_string()).unwrap(), ym);
            prop_assert_eq!(YearMonth::of(ym.first_day()), ym);
            prop_assert_eq!(YearMonth::of(ym.last_day()), ym);
        }

        #[test]
        fn adding_months_lands_in_the_target_month_and_never_overshoots(day in date(), n in -240i32..240) {
            let r = add_months_clamped(day, n);
            prop_assert_eq!(YearMonth::of(r), YearMonth::of(day).plus(n));
            prop_assert!(r.day() <= day.day());
            // Clamped only when the target month is too short.
            if r.day() < day.day() {
                prop_assert_eq!(r, YearMonth::of(r).last_day());
            }
        }

        #[test]
        fn adding_months_is_monotonic(a in date(), b in date(), n in 0i32..36) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(add_months_clamped(lo, n) <= add_months_clamped(hi, n));
        }
    }
}
