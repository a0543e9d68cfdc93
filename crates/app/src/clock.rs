//! Time is injected: the domain never asks the system for "now".

use chrono::{DateTime, Local, NaiveDate, Utc};
use std::sync::Mutex;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// The agency's calendar date (the machine's local time zone).
    fn today(&self) -> NaiveDate;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn today(&self) -> NaiveDate {
        Local::now().date_naive()
    }
}

/// A clock that stands still until told to move (tests, demo data).
pub struct FixedClock(Mutex<DateTime<Utc>>);

impl FixedClock {
    pub fn at(date: NaiveDate) -> Self {
        FixedClock(Mutex::new(
            date.and_hms_opt(9, 0, 0).unwrap_or_default().and_utc(),
        ))
    }

    pub fn set(&self, date: NaiveDate) {
        self.set_time(date.and_hms_opt(9, 0, 0).unwrap_or_default().and_utc());
    }

    /// Moves to an exact instant (quiet hours, retry back-off).
    pub fn set_time(&self, time: DateTime<Utc>) {
        if let Ok(mut t) = self.0.lock() {
            *t = time;
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|t| *t).unwrap_or_default()
    }
    fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }
}
