//! `cycle run`: reminders before the due date, an overdue notice once it has passed,
//! suspension (with its notice) once the grace period is over.

use crate::{date_str, parse_stored_date, Actor, App, Result};
use chrono::{Duration, NaiveDate};
use lifecert_notify::Kind;
use lifecert_store::NewNotice;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CycleReport {
    pub as_of: String,
    /// Pensioners not terminated.
    pub evaluated: i64,
    /// Reminders newly recorded by this run.
    pub reminders: u64,
    /// Pensioners overdue but (still) paid at `as_of`: inside the grace period.
    pub overdue: i64,
    /// Pensioners newly suspended for `overdue` by this run.
    pub suspended: u64,
    /// Overdue notices newly recorded by this run (one per pensioner and due date).
    pub overdue_notices: u64,
}

impl App {
    /// Runs the certification cycle as of a date. Running it twice for the same date
    /// changes nothing the second time.
    #[tracing::instrument(skip_all, fields(as_of = %as_of))]
    pub async fn run_cycle(&self, actor: &Actor, as_of: NaiveDate) -> Result<CycleReport> {
        let earliest_reminder = self.policy.reminder_days().first().copied().unwrap_or(0);
        let horizon = as_of + Duration::days(i64::from(earliest_reminder) + 1);
        let candidates = self.store.cycle_candidates(&date_str(horizon)).await?;
        let notice = |recipient_id, kind: Kind, due_on: &str, stage| NewNotice {
            recipient_id,
            kind: kind.as_str(),
            due_on: due_on.to_string(),
            stage,
        };
        let mut reminders = Vec::new();
        let mut overdue = Vec::new();
        let mut to_suspend = Vec::new();
        for c in candidates.iter().filter(|c| c.status == "active") {
            let due = parse_stored_date(&c.next_due_on)?;
            if self.policy.is_past_grace(due, as_of) {
                to_suspend.push(c.id);
            } else if self.policy.is_overdue(due, as_of) {
                overdue.push(notice(c.id, Kind::Overdue, &c.next_due_on, 0));
            } else if let Some(stage) = self.policy.reminder_stage(due, as_of) {
                reminders.push(notice(
                    c.id,
                    Kind::Reminder,
                    &c.next_due_on,
                    i64::from(stage),
                ));
            }
        }
        let now = self.now_string();
        let as_of_s = date_str(as_of);
        let mut tx = self.store.begin_write().await?;
        // Each notice is recorded once by its key (pensioner, kind, date, stage), with its
        // deliveries, in the transaction that decided it.
        let reminded = tx.insert_notices(&reminders, &now).await?;
        let overdue_noticed = tx.insert_notices(&overdue, &now).await?;
        let suspended = tx
            .suspend_active(&to_suspend, "overdue", &as_of_s, &now)
            .await?;
        let suspension_notices: Vec<NewNotice> = suspended
            .iter()
            .map(|id| notice(*id, Kind::Suspended, &as_of_s, 0))
            .collect();
        tx.insert_notices(&suspension_notices, &now).await?;
        for id in &suspended {
            self.audit(
                &mut tx,
                actor,
                "recipient.suspended",
                Some(*id),
                serde_json::json!({"reason": "overdue", "as_of": as_of_s}),
            );
        }
        if !reminded.is_empty() || !overdue_noticed.is_empty() || !suspended.is_empty() {
            self.audit(
                &mut tx,
                actor,
                "cycle.run",
                None,
                serde_json::json!({"as_of": as_of_s, "reminders": reminded.len(), "overdue_notices": overdue_noticed.len(), "suspended": suspended.len()}),
            );
        }
        tx.commit().await?;
        let counts = self.store.counts(&as_of_s).await?;
        Ok(CycleReport {
            as_of: as_of_s,
            evaluated: counts.recipients - counts.terminated,
            reminders: reminded.len() as u64,
            overdue: counts.overdue,
            suspended: suspended.len() as u64,
            overdue_notices: overdue_noticed.len() as u64,
        })
    }
}
