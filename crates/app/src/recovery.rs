//! Recovery of overpayments (追回): the cases a confirmed death opens, listed and read by
//! reviewers, supervisors and auditors; requested from the bank (by a closed payment
//! run's `recover` line, or by hand), paid back in one or more amounts, or written off by
//! a supervisor other than the one who recorded the request or the last payment.

use crate::access::require;
use crate::staff::Staff;
use crate::{date_str, parse_stored_date, Actor, App, AppError, Result};
use chrono::NaiveDate;
use lifecert_domain::{
    Action, Fen, Recovery, RecoveryError, RecoveryReference, RecoveryStatus, WriteOffReason,
};
use lifecert_store::{
    RecoveryFilter, RecoveryPaymentRow, RecoveryRow, RecoveryUpdate, RequestedRecovery, WriteTx,
};
use serde::Serialize;

/// A recovery case as staff see it. `amount_fen = recovered_fen + written_off_fen +
/// outstanding_fen`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RecoveryView {
    pub id: i64,
    pub recipient_id: i64,
    /// The pensioner's home region.
    pub region_code: String,
    /// open, requested, partially_recovered, recovered, written_off or cancelled
    pub status: String,
    /// The months paid after the month of death (YYYY-MM).
    pub months: Vec<String>,
    /// What was overpaid, in fen.
    pub amount_fen: i64,
    pub recovered_fen: i64,
    pub written_off_fen: i64,
    pub outstanding_fen: i64,
    pub opened_at: String,
    /// When the bank was asked to return the money (YYYY-MM-DD).
    pub requested_on: Option<String>,
    pub requested_by: Option<String>,
    /// The payment run whose `recover` instruction was the request; absent when staff
    /// recorded the request by hand.
    pub instructed_month: Option<String>,
    pub request_reference: Option<String>,
    pub last_payment_on: Option<String>,
    pub last_payment_by: Option<String>,
    pub write_off_reason: Option<String>,
    pub written_off_by: Option<String>,
    /// When the case reached recovered or written_off (YYYY-MM-DD).
    pub closed_on: Option<String>,
    pub updated_at: String,
}

/// One amount received.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RecoveryPaymentView {
    pub id: i64,
    pub amount_fen: i64,
    /// YYYY-MM-DD
    pub received_on: String,
    /// The bank transfer's or receipt's reference (流水号).
    pub reference: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A recovery case with the amounts received on it, oldest first.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RecoveryDetail {
    #[serde(flatten)]
    pub case: RecoveryView,
    pub payments: Vec<RecoveryPaymentView>,
}

/// Filters for listing recovery cases.
#[derive(Debug, Clone, Default)]
pub struct RecoveryQuery {
    pub status: Option<String>,
    pub recipient_id: Option<i64>,
    /// A region prefix inside the user's own.
    pub region: Option<String>,
    pub after_id: Option<i64>,
    pub limit: Option<i64>,
}

fn not_found() -> AppError {
    AppError::NotFound("recovery case not found".to_string())
}

/// A refused transition: 409 for the case's state, 422 naming the field for an amount
/// or a date that cannot be accepted.
fn refused(e: RecoveryError, date_field: &str) -> AppError {
    let message = e.to_string();
    match e {
        RecoveryError::Closed(_) => AppError::conflict("case_closed", message),
        RecoveryError::AlreadyRequested(_)
        | RecoveryError::NotRequested
        | RecoveryError::MoneyReceived(_) => AppError::conflict("invalid_transition", message),
        RecoveryError::NotPositive | RecoveryError::MoreThanOutstanding { .. } => {
            AppError::invalid("amount", message)
        }
        RecoveryError::InFuture { .. } | RecoveryError::TooEarly { .. } => {
            AppError::invalid(date_field, message)
        }
    }
}

fn corrupt(e: impl std::fmt::Display) -> AppError {
    AppError::Corrupt(e.to_string())
}

/// The domain's view of a stored case.
fn state_of(c: &RecoveryRow) -> Result<Recovery> {
    let opened_on = chrono::DateTime::parse_from_rfc3339(&c.opened_at)
        .map_err(|e| corrupt(format!("recovery case {}: opened_at: {e}", c.id)))?
        .date_naive();
    Ok(Recovery {
        status: RecoveryStatus::parse(&c.status).map_err(corrupt)?,
        amount: Fen::new(c.amount_fen),
        recovered: Fen::new(c.recovered_fen),
        written_off: Fen::new(c.written_off_fen),
        opened_on,
        requested_on: c
            .requested_on
            .as_deref()
            .map(parse_stored_date)
            .transpose()?,
    })
}

fn view_of(c: RecoveryRow) -> RecoveryView {
    let outstanding = c.amount_fen - c.recovered_fen - c.written_off_fen;
    RecoveryView {
        id: c.id,
        recipient_id: c.recipient_id,
        region_code: c.recipient_region,
        status: c.status,
        months: c
            .months
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
        amount_fen: c.amount_fen,
        recovered_fen: c.recovered_fen,
        written_off_fen: c.written_off_fen,
        outstanding_fen: outstanding,
        updated_at: c.updated_at.unwrap_or_else(|| c.opened_at.clone()),
        opened_at: c.opened_at,
        requested_on: c.requested_on,
        requested_by: c.requested_by,
        instructed_month: c.instructed_month,
        request_reference: c.request_reference,
        last_payment_on: c.last_payment_on,
        last_payment_by: c.last_payment_by,
        write_off_reason: c.write_off_reason,
        written_off_by: c.written_off_by,
        closed_on: c.closed_on,
    }
}

fn detail_of(c: RecoveryRow, payments: Vec<RecoveryPaymentRow>) -> RecoveryDetail {
    RecoveryDetail {
        case: view_of(c),
        payments: payments
            .into_iter()
            .map(|p| RecoveryPaymentView {
                id: p.id,
                amount_fen: p.amount_fen,
                received_on: p.received_on,
                reference: p.reference,
                recorded_by: p.recorded_by,
                recorded_at: p.recorded_at,
            })
            .collect(),
    }
}

impl App {
    /// A case for a change: in the member of staff's region, or not found.
    async fn recovery_in_scope(
        &self,
        tx: &mut WriteTx,
        staff: &Staff,
        id: i64,
    ) -> Result<RecoveryRow> {
        tx.recovery(id)
            .await?
            .filter(|c| staff.scope.contains(&c.recipient_region))
            .ok_or_else(not_found)
    }

    /// The case as it now stands, read in the transaction that changed it.
    async fn recovery_detail_in(&self, tx: &mut WriteTx, id: i64) -> Result<RecoveryDetail> {
        let c = tx.recovery(id).await?.ok_or_else(not_found)?;
        let payments = tx.recovery_payments(id).await?;
        Ok(detail_of(c, payments))
    }

    /// Recovery cases of pensioners in the member of staff's region, by id.
    pub async fn recoveries(
        &self,
        staff: &Staff,
        query: &RecoveryQuery,
    ) -> Result<Vec<RecoveryView>> {
        require(staff, Action::ViewRecoveries)?;
        let mut region = staff.scope.as_str().to_string();
        if let Some(r) = query.region.as_deref().filter(|r| !r.is_empty()) {
            if !r.bytes().all(|b| b.is_ascii_digit()) || r.len() > 6 {
                return Err(AppError::invalid(
                    "region",
                    "a region prefix is 2, 4 or 6 digits",
                ));
            }
            if !r.starts_with(&region) {
                return Err(AppError::forbidden(
                    "out_of_region",
                    format!("region {r} is outside your region {region:?}"),
                ));
            }
            region = r.to_string();
        }
        let status = query
            .status
            .as_deref()
            .map(|s| {
                RecoveryStatus::parse(s)
                    .map(|s| s.as_str().to_string())
                    .map_err(|e| AppError::invalid("status", e.to_string()))
            })
            .transpose()?;
        let rows = self
            .store
            .list_recoveries(&RecoveryFilter {
                region_prefix: region,
                status,
                recipient_id: query.recipient_id,
                after_id: query.after_id.unwrap_or(0),
                limit: query.limit.unwrap_or(100).clamp(1, 500),
            })
            .await?;
        Ok(rows.into_iter().map(view_of).collect())
    }

    /// One case with the amounts received on it.
    pub async fn recovery_for(&self, staff: &Staff, id: i64) -> Result<RecoveryDetail> {
        require(staff, Action::ViewRecoveries)?;
        let c = self
            .store
            .recovery(id)
            .await?
            .filter(|c| staff.scope.contains(&c.recipient_region))
            .ok_or_else(not_found)?;
        let payments = self.store.recovery_payments(c.id).await?;
        Ok(detail_of(c, payments))
    }

    /// Records that the bank (or the family) was asked to return the money, on a date, by
    /// letter or at the counter; `reference` is the letter's number, if any. A case
    /// requested by a payment run's `recover` line needs no such step.
    #[tracing::instrument(skip_all, fields(case_id = id))]
    pub async fn request_recovery(
        &self,
        staff: &Staff,
        id: i64,
        on: NaiveDate,
        reference: Option<&str>,
    ) -> Result<RecoveryDetail> {
        require(staff, Action::ManageRecovery)?;
        let reference = reference
            .filter(|r| !r.trim().is_empty())
            .map(RecoveryReference::parse)
            .transpose()
            .map_err(|e| AppError::invalid("reference", e.to_string()))?;
        let actor = staff.actor();
        let mut tx = self.store.begin_write().await?;
        let c = self.recovery_in_scope(&mut tx, staff, id).await?;
        let next = state_of(&c)?
            .request(on, self.today())
            .map_err(|e| refused(e, "requested_on"))?;
        let now = self.now_string();
        tx.mark_recovery_requested(
            c.id,
            &date_str(on),
            &actor.label(),
            reference.as_ref().map(RecoveryReference::as_str),
            &now,
        )
        .await?;
        self.audit(
            &mut tx,
            &actor,
            "recovery.requested",
            Some(c.recipient_id),
            serde_json::json!({
                "case_id": c.id,
                "requested_on": date_str(on),
                "reference": reference.as_ref().map(RecoveryReference::as_str),
                "status": next.status.as_str(),
                "outstanding_fen": next.outstanding().get(),
            }),
        );
        let detail = self.recovery_detail_in(&mut tx, c.id).await?;
        tx.commit().await?;
        Ok(detail)
    }

    /// Records an amount received on a requested case. More than is outstanding is
    /// refused; the amount that settles the rest makes the case recovered. A reference
    /// already recorded on the case is refused (409 `duplicate`), so one transfer is
    /// never counted twice.
    #[tracing::instrument(skip_all, fields(case_id = id))]
    pub async fn record_recovery_payment(
        &self,
        staff: &Staff,
        id: i64,
        amount: Fen,
        received_on: NaiveDate,
        reference: &str,
    ) -> Result<RecoveryDetail> {
        require(staff, Action::ManageRecovery)?;
        let reference = RecoveryReference::parse(reference)
            .map_err(|e| AppError::invalid("reference", e.to_string()))?;
        let actor = staff.actor();
        let label = actor.label();
        let mut tx = self.store.begin_write().await?;
        let c = self.recovery_in_scope(&mut tx, staff, id).await?;
        let next = state_of(&c)?
            .record_payment(amount, received_on, self.today())
            .map_err(|e| refused(e, "received_on"))?;
        if tx
            .recovery_payment_by_reference(c.id, reference.as_str())
            .await?
            .is_some()
        {
            return Err(AppError::conflict(
                "duplicate",
                format!(
                    "a payment with reference {:?} is already recorded on this case",
                    reference.as_str()
                ),
            ));
        }
        let now = self.now_string();
        let received = date_str(received_on);
        let today = date_str(self.today());
        let payment_id = tx
            .insert_recovery_payment(
                &RecoveryPaymentRow {
                    id: 0,
                    recovery_case_id: c.id,
                    amount_fen: amount.get(),
                    received_on: received.clone(),
                    reference: reference.as_str().to_string(),
                    recorded_by: label,
                    recorded_at: now.clone(),
                },
                &RecoveryUpdate {
                    id: c.id,
                    status: next.status.as_str(),
                    recovered_fen: next.recovered.get(),
                    written_off_fen: next.written_off.get(),
                    closed_on: next.status.is_final().then_some(today.as_str()),
                    updated_at: &now,
                },
            )
            .await?;
        self.audit(
            &mut tx,
            &actor,
            "recovery.payment_recorded",
            Some(c.recipient_id),
            serde_json::json!({
                "case_id": c.id,
                "payment_id": payment_id,
                "amount_fen": amount.get(),
                "received_on": received,
                "reference": reference.as_str(),
                "recovered_fen": next.recovered.get(),
                "outstanding_fen": next.outstanding().get(),
                "status": next.status.as_str(),
            }),
        );
        let detail = self.recovery_detail_in(&mut tx, c.id).await?;
        tx.commit().await?;
        Ok(detail)
    }

    /// Writes off what is still outstanding and closes the case. Maker–checker: whoever
    /// recorded the request or the last payment may not write the case off (403
    /// `maker_checker`); another supervisor must.
    #[tracing::instrument(skip_all, fields(case_id = id))]
    pub async fn write_off_recovery(
        &self,
        staff: &Staff,
        id: i64,
        reason: &str,
    ) -> Result<RecoveryDetail> {
        require(staff, Action::WriteOffRecovery)?;
        let reason = WriteOffReason::parse(reason)
            .map_err(|e| AppError::invalid("reason", e.to_string()))?;
        let actor = staff.actor();
        let label = actor.label();
        let mut tx = self.store.begin_write().await?;
        let c = self.recovery_in_scope(&mut tx, staff, id).await?;
        let (next, amount) = state_of(&c)?
            .write_off()
            .map_err(|e| refused(e, "reason"))?;
        if c.requested_by.as_deref() == Some(label.as_str())
            || c.last_payment_by.as_deref() == Some(label.as_str())
        {
            return Err(AppError::forbidden(
                "maker_checker",
                "you recorded the request or the last payment on this case: another supervisor must write it off",
            ));
        }
        let now = self.now_string();
        let today = date_str(self.today());
        tx.write_off_recovery(
            &RecoveryUpdate {
                id: c.id,
                status: next.status.as_str(),
                recovered_fen: next.recovered.get(),
                written_off_fen: next.written_off.get(),
                closed_on: Some(&today),
                updated_at: &now,
            },
            reason.as_str(),
            &label,
        )
        .await?;
        self.audit(
            &mut tx,
            &actor,
            "recovery.written_off",
            Some(c.recipient_id),
            serde_json::json!({
                "case_id": c.id,
                "written_off_fen": amount.get(),
                "recovered_fen": next.recovered.get(),
                "previous_status": c.status,
                "reason": reason.as_str(),
            }),
        );
        let detail = self.recovery_detail_in(&mut tx, c.id).await?;
        tx.commit().await?;
        Ok(detail)
    }

    /// The audit entries for the cases a closed payment run requested from the bank: one
    /// per case, on the pensioner, so their timeline shows it.
    pub(crate) fn audit_run_requests(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        month: &str,
        requested_on: NaiveDate,
        cases: &[RequestedRecovery],
    ) {
        for c in cases {
            self.audit(
                tx,
                actor,
                "recovery.requested",
                Some(c.recipient_id),
                serde_json::json!({
                    "case_id": c.id,
                    "requested_on": date_str(requested_on),
                    "payment_run": month,
                    "status": RecoveryStatus::Requested.as_str(),
                    "outstanding_fen": c.amount_fen,
                }),
            );
        }
    }
}
