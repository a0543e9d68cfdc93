//! Deaths: a report suspends payment at once, a reviewer's confirmation terminates it
//! and opens recovery of every month paid after the month of death, and a void (the
//! report was wrong) lifts the suspension so the withheld months are back-paid.

use crate::{date_str, parse_stored_date, parse_stored_month, Actor, App, AppError, Result};
use chrono::NaiveDate;
use lifecert_domain::payment::overpaid_months;
use lifecert_domain::{Fen, NationalId, PaymentStatus, SuspensionReason, YearMonth};
use lifecert_store::{RecipientRow, WriteTx};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeathReport {
    pub status: String,
    pub suspension_reason: Option<String>,
    pub death_date: Option<String>,
    /// Months paid after the month of death (provisional until the death is confirmed).
    pub overpaid_months: Vec<String>,
    pub overpaid_fen: i64,
    pub recovery_case_id: Option<i64>,
}

fn status_of(r: &RecipientRow) -> Result<PaymentStatus> {
    PaymentStatus::from_parts(&r.status, r.suspension_reason.as_deref())
        .map_err(|e| AppError::Corrupt(e.to_string()))
}

fn transition_error(e: lifecert_domain::payment::TransitionError) -> AppError {
    AppError::conflict("invalid_transition", e.to_string())
}

pub(crate) fn parse_month_list(s: Option<&str>) -> Result<BTreeSet<YearMonth>> {
    s.unwrap_or("")
        .split(',')
        .filter(|m| !m.is_empty())
        .map(parse_stored_month)
        .collect()
}

impl App {
    /// Months paid after the month of death and what was paid for them: the ledger's
    /// amount where a closed run paid the month, else the monthly amount on record
    /// (months paid by the previous system before lifecert).
    async fn overpayment(
        &self,
        tx: &mut WriteTx,
        r: &RecipientRow,
        death_date: NaiveDate,
    ) -> Result<(Vec<YearMonth>, Fen)> {
        let death_month = YearMonth::of(death_date);
        let settled_through = r
            .settled_through
            .as_deref()
            .map(parse_stored_month)
            .transpose()?;
        let settled_after = parse_month_list(r.settled_after.as_deref())?;
        let mut forfeited = BTreeSet::new();
        let mut paid: BTreeMap<YearMonth, Fen> = BTreeMap::new();
        for line in tx
            .closed_lines_after(r.id, &death_month.to_string())
            .await?
        {
            let months = parse_month_list(Some(&line.months))?;
            match (line.kind.as_str(), line.reason.as_deref()) {
                ("withhold", Some("imprisonment")) => forfeited.extend(months),
                ("pay" | "back_pay", _) if !months.is_empty() => {
                    let each = Fen::new(line.amount_fen / months.len() as i64);
                    paid.extend(months.into_iter().map(|m| (m, each)));
                }
                _ => {}
            }
        }
        let paid_after: BTreeSet<YearMonth> =
            settled_after.difference(&forfeited).copied().collect();
        let months = overpaid_months(death_month, settled_through, &paid_after, &forfeited);
        let monthly = Fen::new(r.monthly_amount_fen);
        let amount = months
            .iter()
            .map(|m| paid.get(m).copied().unwrap_or(monthly))
            .sum();
        Ok((months, amount))
    }

    /// A death reported by a source (public security, civil affairs, a relative...).
    /// Reporting again with another date corrects the date.
    #[tracing::instrument(skip_all)]
    pub async fn report_death(
        &self,
        actor: &Actor,
        id: &NationalId,
        date: NaiveDate,
        source: &str,
    ) -> Result<DeathReport> {
        let source = source.trim();
        if source.is_empty() || source.chars().count() > 64 || source.chars().any(char::is_control)
        {
            return Err(AppError::invalid(
                "source",
                "name the source of the report (at most 64 characters), e.g. public_security",
            ));
        }
        if date > self.today() {
            return Err(AppError::invalid(
                "date",
                format!("{date} is in the future"),
            ));
        }
        let mut tx = self.store.begin_write().await?;
        let r = self.recipient_for_update(&mut tx, id).await?;
        let report = self
            .report_death_in(&mut tx, actor, &r, date, source)
            .await?;
        tx.commit().await?;
        Ok(report)
    }

    /// A death report inside a transaction (the CLI, or a death feed).
    pub(crate) async fn report_death_in(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        r: &RecipientRow,
        date: NaiveDate,
        source: &str,
    ) -> Result<DeathReport> {
        let now = self.now_string();
        if date < parse_stored_date(&r.birth_date)? {
            return Err(AppError::invalid(
                "date",
                "the date of death is before the birth date",
            ));
        }
        let status = status_of(r)?;
        let date_s = date_str(date);
        let already = status == PaymentStatus::Suspended(SuspensionReason::DeathReported);
        if already
            && r.death_date.as_deref() == Some(date_s.as_str())
            && r.death_source.as_deref() == Some(source)
        {
            let (months, amount) = self.overpayment(tx, r, date).await?;
            return Ok(death_report(status, Some(date_s), &months, amount, None));
        }
        let new_status = if already {
            status
        } else {
            status
                .suspend(SuspensionReason::DeathReported)
                .map_err(transition_error)?
        };
        if !already {
            tx.set_status(
                r.id,
                new_status.as_str(),
                Some("death_reported"),
                &date_str(self.today()),
                &now,
            )
            .await?;
            self.open_review_case(
                tx,
                actor,
                r.id,
                "confirm_death",
                None,
                serde_json::json!({"source": source}),
            )
            .await?;
        }
        tx.set_death(r.id, Some(&date_s), Some(source)).await?;
        self.audit(
            tx,
            actor,
            if already { "death.corrected" } else { "death.reported" },
            Some(r.id),
            serde_json::json!({"death_date": date_s, "source": source, "previous_status": status.describe()}),
        );
        let (months, amount) = self.overpayment(tx, r, date).await?;
        Ok(death_report(
            new_status,
            Some(date_s),
            &months,
            amount,
            None,
        ))
    }

    /// A reviewer confirms a reported death: payment is terminated and every month paid
    /// after the month of death opens a recovery case.
    #[tracing::instrument(skip_all)]
    pub async fn confirm_death(&self, actor: &Actor, id: &NationalId) -> Result<DeathReport> {
        let mut tx = self.store.begin_write().await?;
        let r = self.recipient_for_update(&mut tx, id).await?;
        let report = self.confirm_death_in(&mut tx, actor, &r).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Confirmation inside a transaction (the CLI, or a reviewer's decision).
    pub(crate) async fn confirm_death_in(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        r: &RecipientRow,
    ) -> Result<DeathReport> {
        let now = self.now_string();
        let status = status_of(r)?
            .terminate_for_death()
            .map_err(transition_error)?;
        let death_date = r
            .death_date
            .as_deref()
            .map(parse_stored_date)
            .transpose()?
            .ok_or_else(|| AppError::Corrupt("a reported death has no date".to_string()))?;
        let (months, amount) = self.overpayment(tx, r, death_date).await?;
        tx.set_status(r.id, status.as_str(), None, &date_str(self.today()), &now)
            .await?;
        tx.close_review_cases(r.id, "confirm_death", "confirmed")
            .await?;
        let recovery = if months.is_empty() {
            None
        } else {
            let list: Vec<String> = months.iter().map(|m| m.to_string()).collect();
            Some(
                tx.open_recovery_case(r.id, &list.join(","), amount.get(), &now)
                    .await?,
            )
        };
        self.audit(
            tx,
            actor,
            "death.confirmed",
            Some(r.id),
            serde_json::json!({
                "death_date": r.death_date,
                "overpaid_months": months.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                "overpaid_fen": amount.get(),
                "recovery_case_id": recovery,
            }),
        );
        Ok(death_report(
            status,
            r.death_date.clone(),
            &months,
            amount,
            recovery,
        ))
    }

    /// The death report was wrong (or voided at its source): the suspension is lifted and
    /// the withheld months are back-paid in the next payment run.
    #[tracing::instrument(skip_all)]
    pub async fn void_death(&self, actor: &Actor, id: &NationalId) -> Result<DeathReport> {
        let mut tx = self.store.begin_write().await?;
        let r = self.recipient_for_update(&mut tx, id).await?;
        let report = self.void_death_in(&mut tx, actor, &r).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Voiding inside a transaction (the CLI, or a reviewer rejecting the report).
    pub(crate) async fn void_death_in(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        r: &RecipientRow,
    ) -> Result<DeathReport> {
        let now = self.now_string();
        let today = self.today();
        let mut status = status_of(r)?
            .resume(SuspensionReason::DeathReported)
            .map_err(transition_error)?;
        // A pensioner who is also long overdue goes back to that suspension rather than
        // being paid without a valid certification.
        let due = parse_stored_date(&r.next_due_on)?;
        if self.policy.is_past_grace(due, today) {
            status = status
                .suspend(SuspensionReason::Overdue)
                .map_err(transition_error)?;
        }
        tx.set_status(
            r.id,
            status.as_str(),
            status.suspension_reason().map(|s| s.as_str()),
            &date_str(today),
            &now,
        )
        .await?;
        tx.set_death(r.id, None, None).await?;
        tx.close_review_cases(r.id, "confirm_death", "voided")
            .await?;
        self.audit(
            tx,
            actor,
            "death.voided",
            Some(r.id),
            serde_json::json!({"voided_death_date": r.death_date, "status": status.describe()}),
        );
        if status == PaymentStatus::Active {
            self.queue_notice(tx, r.id, lifecert_notify::Kind::Resumed, today)
                .await?;
        }
        Ok(death_report(status, None, &[], Fen::ZERO, None))
    }
}

fn death_report(
    status: PaymentStatus,
    death_date: Option<String>,
    months: &[YearMonth],
    amount: Fen,
    recovery_case_id: Option<i64>,
) -> DeathReport {
    DeathReport {
        status: status.as_str().to_string(),
        suspension_reason: status.suspension_reason().map(|r| r.as_str().to_string()),
        death_date,
        overpaid_months: months.iter().map(|m| m.to_string()).collect(),
        overpaid_fen: amount.get(),
        recovery_case_id,
    }
}
