//! Recording a certification made with a member of staff (counter, community, home
//! visit, video, overseas, ...). A pass renews validity and lifts an `overdue` suspension.

use crate::recipients::effective_certified_on;
use crate::{date_str, parse_stored_date, Actor, App, AppError, Result};
use chrono::NaiveDate;
use lifecert_domain::{
    Channel, FailReason, NationalId, Outcome, PaymentStatus, RegionCode, SuspensionReason,
};
use lifecert_store::CertificationRow;
use serde::Serialize;

/// Which pensioner: by national ID number (CLI) or by lifecert's id (API).
#[derive(Debug, Clone)]
pub enum RecipientRef {
    IdNumber(NationalId),
    Id(i64),
}

#[derive(Debug, Clone)]
pub struct CertifyRequest {
    pub recipient: RecipientRef,
    pub channel: Channel,
    pub date: NaiveDate,
    pub outcome: Outcome,
    /// Required for `fail` (a [`FailReason`]); optional for `doubtful`.
    pub reason: Option<String>,
    /// Where it was performed, if not the pensioner's home region (异地认证).
    pub region_code: Option<RegionCode>,
    /// Document numbers, scores or file references.
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CertifyReport {
    pub certification_id: i64,
    pub outcome: String,
    pub next_due_on: String,
    pub status: String,
    /// A review case opened for a doubtful result.
    pub review_case_id: Option<i64>,
}

fn check_reason(outcome: Outcome, reason: Option<&str>) -> Result<Option<String>> {
    match (outcome, reason.map(str::trim).filter(|r| !r.is_empty())) {
        (Outcome::Fail, None) => Err(AppError::invalid(
            "reason",
            format!(
                "a failed certification needs --reason, one of {}",
                FailReason::ALL
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        (Outcome::Fail, Some(r)) => FailReason::parse(r)
            .map(|r| Some(r.as_str().to_string()))
            .map_err(|e| AppError::invalid("reason", e.to_string())),
        (_, Some(r)) if r.len() > 64 || !r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
            Err(AppError::invalid(
                "reason",
                "a reason is a short code in lower case with underscores, e.g. photo_unclear",
            ))
        }
        (_, r) => Ok(r.map(str::to_string)),
    }
}

impl App {
    #[tracing::instrument(skip_all, fields(channel = %req.channel, outcome = %req.outcome))]
    pub async fn certify(&self, actor: &Actor, req: &CertifyRequest) -> Result<CertifyReport> {
        let mut tx = self.store.begin_write().await?;
        let report = self.certify_in(&mut tx, actor, req).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// Records a certification inside a transaction (so a completed home visit and its
    /// certification are one change).
    pub(crate) async fn certify_in(
        &self,
        tx: &mut lifecert_store::WriteTx,
        actor: &Actor,
        req: &CertifyRequest,
    ) -> Result<CertifyReport> {
        self.check_certify_request(req)?;
        let r = self.certified_recipient(tx, &req.recipient).await?;
        self.certify_recipient(tx, actor, req, r).await
    }

    /// What can be refused before any pensioner is read.
    pub(crate) fn check_certify_request(&self, req: &CertifyRequest) -> Result<()> {
        if req.date > self.today() {
            return Err(AppError::invalid(
                "date",
                format!(
                    "{} is in the future: a certification is dated the day it was made",
                    req.date
                ),
            ));
        }
        check_reason(req.outcome, req.reason.as_deref()).map(|_| ())
    }

    /// The pensioner a certification is for, read inside the transaction.
    pub(crate) async fn certified_recipient(
        &self,
        tx: &mut lifecert_store::WriteTx,
        recipient: &RecipientRef,
    ) -> Result<lifecert_store::RecipientRow> {
        match recipient {
            RecipientRef::IdNumber(id) => self.recipient_for_update(tx, id).await,
            RecipientRef::Id(id) => tx
                .recipient_by_id(*id)
                .await?
                .ok_or_else(|| AppError::NotFound(format!("no pensioner with id {id}"))),
        }
    }

    /// Records the certification for a pensioner already read in `tx` (and checked by
    /// [`App::check_certify_request`]).
    pub(crate) async fn certify_recipient(
        &self,
        tx: &mut lifecert_store::WriteTx,
        actor: &Actor,
        req: &CertifyRequest,
        r: lifecert_store::RecipientRow,
    ) -> Result<CertifyReport> {
        let today = self.today();
        let reason = check_reason(req.outcome, req.reason.as_deref())?;
        let now = self.now_string();
        let mut status = PaymentStatus::from_parts(&r.status, r.suspension_reason.as_deref())
            .map_err(|e| AppError::Corrupt(e.to_string()))?;
        if status == PaymentStatus::Terminated {
            return Err(AppError::conflict(
                "recipient_terminated",
                format!(
                    "payment to {} was terminated after a confirmed death; a certification cannot be recorded (lodge an appeal if the death was wrong)",
                    "this pensioner"
                ),
            ));
        }
        let birth = parse_stored_date(&r.birth_date)?;
        if req.date < birth {
            return Err(AppError::invalid(
                "date",
                "the date is before the pensioner's birth date",
            ));
        }
        let certification_id = tx
            .insert_certification(&CertificationRow {
                recipient_id: r.id,
                channel: req.channel.as_str().to_string(),
                certified_on: date_str(req.date),
                recorded_at: now.clone(),
                actor: actor.label(),
                region_code: Some(
                    req.region_code
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_else(|| r.region_code.clone()),
                ),
                outcome: req.outcome.as_str().to_string(),
                reason: reason.clone(),
                evidence: req.evidence.clone(),
            })
            .await?;
        self.audit(
            tx,
            actor,
            "certification.recorded",
            Some(r.id),
            serde_json::json!({
                "certification_id": certification_id,
                "channel": req.channel.as_str(),
                "certified_on": date_str(req.date),
                "outcome": req.outcome.as_str(),
                "reason": reason,
            }),
        );
        let mut next_due_on = r.next_due_on.clone();
        let mut review_case_id = None;
        match req.outcome {
            Outcome::Pass => {
                // Only a newer certification moves the due date (an older one, entered
                // late, is kept on record but changes nothing).
                if req.date > effective_certified_on(&r)? {
                    next_due_on = date_str(self.policy.next_due_on(req.date, birth));
                    tx.set_certified(r.id, &date_str(req.date), &next_due_on, &now)
                        .await?;
                }
                // A pass clears the suspensions a certification can clear: overdue, and
                // a doubtful result now resolved by a new certification.
                let due = parse_stored_date(&next_due_on)?;
                let clearable = [SuspensionReason::Overdue, SuspensionReason::Doubtful];
                if let Some(cleared) = status.suspension_reason().filter(|r| clearable.contains(r))
                {
                    if !self.policy.is_past_grace(due, today) {
                        status = status
                            .resume(cleared)
                            .map_err(|e| AppError::conflict("invalid_transition", e.to_string()))?;
                        tx.set_status(r.id, status.as_str(), None, &date_str(today), &now)
                            .await?;
                        self.audit(
                            tx,
                            actor,
                            "recipient.resumed",
                            Some(r.id),
                            serde_json::json!({"cleared": cleared.as_str(), "certification_id": certification_id}),
                        );
                        self.queue_notice(tx, r.id, lifecert_notify::Kind::Resumed, today)
                            .await?;
                    }
                }
            }
            Outcome::Doubtful => {
                let case = self
                    .open_review_case(
                        tx,
                        actor,
                        r.id,
                        "doubtful_certification",
                        Some(certification_id),
                        serde_json::json!({"channel": req.channel.as_str(), "reason": reason, "certified_on": date_str(req.date)}),
                    )
                    .await?;
                review_case_id = Some(case);
                // Payment waits for the review (issue 3: a doubtful result suspends).
                if status == PaymentStatus::Active {
                    status = status
                        .suspend(SuspensionReason::Doubtful)
                        .map_err(|e| AppError::conflict("invalid_transition", e.to_string()))?;
                    tx.set_status(
                        r.id,
                        status.as_str(),
                        Some("doubtful"),
                        &date_str(today),
                        &now,
                    )
                    .await?;
                    self.audit(
                        tx,
                        actor,
                        "recipient.suspended",
                        Some(r.id),
                        serde_json::json!({"reason": "doubtful", "case_id": case}),
                    );
                }
            }
            Outcome::Fail => {}
        }
        Ok(CertifyReport {
            certification_id,
            outcome: req.outcome.as_str().to_string(),
            next_due_on,
            status: status.as_str().to_string(),
            review_case_id,
        })
    }
}
