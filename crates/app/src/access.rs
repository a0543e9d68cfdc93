//! What staff may see and do, checked in one place: the role × action table, the
//! region scope (with the 异地 exception for recording certifications), masking and
//! audited reveals, and the maker–checker rule on review decisions.

use crate::certify::{CertifyReport, CertifyRequest, RecipientRef};
use crate::recipients::{effective_certified_on, mask_name};
use crate::staff::Staff;
use crate::{date_str, Actor, App, AppError, Result};
use lifecert_domain::{Action, PaymentStatus, SuspensionReason};
use lifecert_store::{RecipientFilter, RecipientRow, ReviewCaseRow};
use serde::Serialize;

/// A pensioner as a member of staff in their region sees them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct StaffRecipient {
    pub id: i64,
    /// Masked (`110105********002X`; a generic identifier `P1****67`) unless revealed.
    pub id_number: String,
    pub id_number_revealed: bool,
    pub name: String,
    pub status: String,
    pub suspension_reason: Option<String>,
    pub last_certified_on: String,
    pub next_due_on: String,
    pub region_code: String,
    pub monthly_amount_fen: i64,
    pub gender: String,
    pub birth_date: String,
    pub insurance_type: String,
    pub residence: String,
    pub country: Option<String>,
}

/// What a certifier or partner from another region sees (异地认证): enough to be sure
/// they have the right person, nothing more.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MinimalRecipient {
    pub id: i64,
    pub id_number: String,
    pub name_initial: String,
    pub status: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(tag = "view", rename_all = "snake_case")]
pub enum RecipientForStaff {
    Full(Box<StaffRecipient>),
    Minimal(MinimalRecipient),
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReviewCaseView {
    pub id: i64,
    pub recipient_id: i64,
    pub kind: String,
    pub status: String,
    pub certification_id: Option<i64>,
    pub opened_by: String,
    pub opened_at: String,
    pub age_days: i64,
    pub decision: Option<String>,
    pub decision_reason: Option<String>,
    pub decision_note: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<String>,
}

fn forbidden_action(staff: &Staff, action: Action) -> AppError {
    AppError::forbidden(
        "forbidden",
        format!(
            "the {} role may not {}",
            staff.role,
            action.as_str().replace('_', " ")
        ),
    )
}

/// Allowed if the role may do any one of `actions`; refused naming the first.
pub(crate) fn require_any(staff: &Staff, actions: &[Action]) -> Result<()> {
    match actions.iter().find(|a| staff.role.may(**a)) {
        Some(_) => Ok(()),
        None => Err(forbidden_action(staff, actions[0])),
    }
}

pub(crate) fn require(staff: &Staff, action: Action) -> Result<()> {
    if staff.role.may(action) {
        Ok(())
    } else {
        Err(forbidden_action(staff, action))
    }
}

fn not_found(what: &str) -> AppError {
    AppError::NotFound(format!("{what} not found"))
}

impl App {
    fn staff_view(
        &self,
        staff: &Staff,
        r: &RecipientRow,
        id_number: String,
        revealed: bool,
    ) -> Result<StaffRecipient> {
        let name = self.decrypt_name(&r.name_enc)?;
        let masked_name = !staff.role.may(Action::RevealIdNumber);
        Ok(StaffRecipient {
            id: r.id,
            id_number,
            id_number_revealed: revealed,
            name: if masked_name { mask_name(&name) } else { name },
            status: r.status.clone(),
            suspension_reason: r.suspension_reason.clone(),
            last_certified_on: date_str(effective_certified_on(r)?),
            next_due_on: r.next_due_on.clone(),
            region_code: r.region_code.clone(),
            monthly_amount_fen: r.monthly_amount_fen,
            gender: r.gender.clone(),
            birth_date: r.birth_date.clone(),
            insurance_type: r.insurance_type.clone(),
            residence: r.residence.clone(),
            country: r.country.clone(),
        })
    }

    /// One pensioner for a member of staff. Outside their region only a certifier or
    /// partner gets anything, and then the minimal view. A reveal of the whole ID number
    /// is allowed for some roles and always audited.
    pub async fn recipient_for_staff(
        &self,
        staff: &Staff,
        id: i64,
        reveal: bool,
    ) -> Result<RecipientForStaff> {
        require(staff, Action::ViewRecipient)?;
        if reveal {
            require(staff, Action::RevealIdNumber)?;
        }
        let r = self
            .store
            .recipient_by_id(id)
            .await?
            .ok_or_else(|| not_found("pensioner"))?;
        let national_id = self.decrypt_id(&r.id_number_enc)?;
        if !staff.scope.contains(&r.region_code) {
            if staff.role.may_certify_elsewhere() && !reveal {
                let name = self.decrypt_name(&r.name_enc)?;
                return Ok(RecipientForStaff::Minimal(MinimalRecipient {
                    id: r.id,
                    id_number: national_id.masked(),
                    name_initial: name
                        .chars()
                        .next()
                        .map(|c| format!("{c}*"))
                        .unwrap_or_default(),
                    status: r.status.clone(),
                }));
            }
            return Err(not_found("pensioner"));
        }
        if reveal {
            let mut tx = self.store.begin_write().await?;
            self.audit(
                &mut tx,
                &staff.actor(),
                "recipient.id_number_revealed",
                Some(r.id),
                serde_json::json!({"role": staff.role.as_str()}),
            );
            tx.commit().await?;
            return Ok(RecipientForStaff::Full(Box::new(self.staff_view(
                staff,
                &r,
                national_id.as_str().to_string(),
                true,
            )?)));
        }
        Ok(RecipientForStaff::Full(Box::new(self.staff_view(
            staff,
            &r,
            national_id.masked(),
            false,
        )?)))
    }

    /// Pensioners in the member of staff's region, found by ID number or exact name, or
    /// filtered by status or overdue; ID numbers masked.
    pub async fn search_recipients(
        &self,
        staff: &Staff,
        query: &RecipientQuery,
    ) -> Result<Vec<StaffRecipient>> {
        require(staff, Action::ViewRecipient)?;
        let mut region = staff.scope.as_str().to_string();
        if let Some(r) = query.region.as_deref().filter(|r| !r.is_empty()) {
            if !r.starts_with(&region) || !r.bytes().all(|b| b.is_ascii_digit()) {
                return Err(AppError::forbidden(
                    "out_of_region",
                    format!("region {r} is outside your region {region:?}"),
                ));
            }
            region = r.to_string();
        }
        let id_bidx = match query.id_number.as_deref() {
            Some(s) => Some(self.id_bidx(&self.parse_id("id_number", s)?)),
            None => None,
        };
        if let Some(s) = &query.status {
            if !matches!(s.as_str(), "active" | "suspended" | "terminated") {
                return Err(AppError::invalid(
                    "status",
                    "use active, suspended or terminated",
                ));
            }
        }
        let filter = RecipientFilter {
            region_prefix: region,
            id_bidx,
            name_bidx: query.name.as_deref().map(|n| self.name_bidx(n)),
            status: query.status.clone(),
            overdue_as_of: query.overdue.then(|| date_str(self.today())),
            after_id: query.after_id.unwrap_or(0),
            limit: query.limit.unwrap_or(50).clamp(1, 500),
        };
        let rows = self.store.list_recipients(&filter).await?;
        rows.iter()
            .map(|r| {
                let masked = self.decrypt_id(&r.id_number_enc)?.masked();
                self.staff_view(staff, r, masked, false)
            })
            .collect()
    }

    /// Records an assisted certification for a pensioner, in the staff member's region
    /// or, for certifiers and partners, anywhere (异地认证).
    pub async fn certify_for_staff(
        &self,
        staff: &Staff,
        req: &CertifyRequest,
    ) -> Result<CertifyReport> {
        require(staff, Action::RecordCertification)?;
        let RecipientRef::Id(id) = &req.recipient else {
            return Err(AppError::invalid(
                "recipient_id",
                "name the pensioner by recipient_id",
            ));
        };
        self.check_certify_request(req)?;
        // The region is checked on the row that is certified, in the same transaction.
        let mut tx = self.store.begin_write().await?;
        let r = tx
            .recipient_by_id(*id)
            .await?
            .ok_or_else(|| not_found("pensioner"))?;
        if !staff.scope.contains(&r.region_code) && !staff.role.may_certify_elsewhere() {
            return Err(not_found("pensioner"));
        }
        let report = self
            .certify_recipient(&mut tx, &staff.actor(), req, r)
            .await?;
        tx.commit().await?;
        Ok(report)
    }

    pub async fn review_queue(
        &self,
        staff: &Staff,
        kind: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ReviewCaseView>> {
        require(staff, Action::ViewReviewCases)?;
        let today = self.today();
        let rows = self
            .store
            .list_review_cases(staff.scope.as_str(), kind, status, limit.clamp(1, 500))
            .await?;
        Ok(rows.into_iter().map(|c| case_view(c, today)).collect())
    }

    /// Decides a review case. The maker of the case, or of the certification behind it,
    /// may not decide it (403 `maker_checker`).
    pub async fn decide_review_case(
        &self,
        staff: &Staff,
        case_id: i64,
        decision: &str,
        reason: &str,
        note: &str,
    ) -> Result<ReviewCaseView> {
        require(staff, Action::DecideReviewCase)?;
        if reason.trim().is_empty() || note.trim().is_empty() {
            return Err(AppError::invalid(
                "reason",
                "every decision needs a reason code and a note",
            ));
        }
        let actor = staff.actor();
        let label = actor.label();
        let mut tx = self.store.begin_write().await?;
        let case = tx
            .review_case(case_id)
            .await?
            .ok_or_else(|| not_found("review case"))?;
        if !staff.scope.contains(&case.recipient_region) {
            return Err(not_found("review case"));
        }
        if case.status != "open" {
            return Err(AppError::conflict(
                "case_closed",
                format!("review case {case_id} is already {}", case.status),
            ));
        }
        let certification_maker = match case.certification_id {
            Some(c) => tx.certification_actor(c).await?,
            None => None,
        };
        let involved_in_appealed_decision = case.kind == "appeal"
            && serde_json::from_str::<serde_json::Value>(&case.details)
                .ok()
                .and_then(|d| d.get("involved").cloned())
                .and_then(|v| v.as_array().cloned())
                .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(label.as_str())));
        if case.opened_by == label
            || certification_maker.as_deref() == Some(label.as_str())
            || involved_in_appealed_decision
        {
            return Err(AppError::forbidden(
                "maker_checker",
                "you opened this case, recorded the certification behind it or took part in the decision appealed against: another reviewer must decide it",
            ));
        }
        let approve = match decision {
            "approve" => true,
            "reject" => false,
            other => {
                return Err(AppError::invalid(
                    "decision",
                    format!("unknown decision {other:?}: use approve or reject"),
                ))
            }
        };
        let r = tx
            .recipient_by_id(case.recipient_id)
            .await?
            .ok_or_else(|| AppError::Corrupt("a review case names no pensioner".into()))?;
        let now = self.now_string();
        tx.decide_review_case(
            case_id,
            "decided",
            decision,
            reason.trim(),
            note.trim(),
            &label,
            &now,
        )
        .await?;
        match (case.kind.as_str(), approve) {
            ("confirm_death", true) => {
                // A death from a source that is not authoritative opened the case without
                // suspending payment: the reviewer's confirmation reports it first.
                let reported = r.suspension_reason.as_deref() == Some("death_reported");
                let r = if reported {
                    r.clone()
                } else {
                    let details: serde_json::Value =
                        serde_json::from_str(&case.details).unwrap_or_default();
                    let date = details
                        .get("death_date")
                        .and_then(|d| d.as_str())
                        .map(crate::parse_stored_date)
                        .transpose()?
                        .ok_or_else(|| {
                            AppError::invalid(
                                "decision",
                                "the case records no date of death to confirm",
                            )
                        })?;
                    let source = details
                        .get("source")
                        .and_then(|s| s.as_str())
                        .unwrap_or("review");
                    self.report_death_in(&mut tx, &actor, &r, date, source)
                        .await?;
                    tx.recipient_by_id(r.id)
                        .await?
                        .ok_or_else(|| not_found("pensioner"))?
                };
                self.confirm_death_in(&mut tx, &actor, &r).await?;
            }
            // Rejecting a death that never suspended payment changes nothing.
            ("confirm_death", false)
                if r.suspension_reason.as_deref() == Some("death_reported") =>
            {
                self.void_death_in(&mut tx, &actor, &r).await?;
            }
            ("appeal", true) => {
                self.uphold_appeal(&mut tx, staff, &case, &r).await?;
            }
            ("doubtful_certification", true) => {
                // The doubt is resolved in the pensioner's favour: the certification counts
                // as a pass, and the `doubtful` suspension is lifted.
                let certified_on = case_certified_on(&case);
                self.resolve_doubt(&mut tx, &actor, &r, certified_on.as_deref())
                    .await?;
            }
            _ => {}
        }
        self.audit(
            &mut tx,
            &actor,
            "review_case.decided",
            Some(r.id),
            serde_json::json!({"case_id": case_id, "kind": case.kind, "decision": decision, "reason": reason.trim()}),
        );
        let decided = tx
            .review_case(case_id)
            .await?
            .ok_or_else(|| not_found("review case"))?;
        tx.commit().await?;
        Ok(case_view(decided, self.today()))
    }

    async fn resolve_doubt(
        &self,
        tx: &mut lifecert_store::WriteTx,
        actor: &Actor,
        r: &RecipientRow,
        certified_on: Option<&str>,
    ) -> Result<()> {
        let now = self.now_string();
        let today = self.today();
        let birth = crate::parse_stored_date(&r.birth_date)?;
        let mut due = crate::parse_stored_date(&r.next_due_on)?;
        if let Some(d) = certified_on.map(crate::parse_stored_date).transpose()? {
            if d > effective_certified_on(r)? {
                due = self.policy.next_due_on(d, birth);
                tx.set_certified(r.id, &date_str(d), &date_str(due), &now)
                    .await?;
            }
        }
        let status = PaymentStatus::from_parts(&r.status, r.suspension_reason.as_deref())
            .map_err(|e| AppError::Corrupt(e.to_string()))?;
        if status == PaymentStatus::Suspended(SuspensionReason::Doubtful) {
            let next = if self.policy.is_past_grace(due, today) {
                PaymentStatus::Suspended(SuspensionReason::Overdue)
            } else {
                PaymentStatus::Active
            };
            tx.set_status(
                r.id,
                next.as_str(),
                next.suspension_reason().map(|s| s.as_str()),
                &date_str(today),
                &now,
            )
            .await?;
            self.audit(
                tx,
                actor,
                "recipient.resumed",
                Some(r.id),
                serde_json::json!({"cleared": "doubtful", "status": next.describe()}),
            );
            if next == PaymentStatus::Active {
                self.queue_notice(tx, r.id, lifecert_notify::Kind::Resumed, today)
                    .await?;
            }
        }
        Ok(())
    }

    /// The audit trail for auditors and supervisors.
    pub async fn audit_entries(
        &self,
        staff: &Staff,
        after_seq: i64,
        limit: i64,
        action: Option<&str>,
        recipient_id: Option<i64>,
    ) -> Result<Vec<lifecert_store::AuditRow>> {
        require(staff, Action::ViewAudit)?;
        Ok(self
            .store
            .list_audit(after_seq, limit.clamp(1, 1000), action, recipient_id)
            .await?)
    }

    pub async fn verify_audit_for(&self, staff: &Staff) -> Result<lifecert_store::ChainCheck> {
        require(staff, Action::ViewAudit)?;
        Ok(self.store.verify_audit().await?)
    }
}

/// The date of the certification a doubtful case was opened for (kept in its details).
fn case_certified_on(case: &ReviewCaseRow) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(&case.details)
        .ok()?
        .get("certified_on")?
        .as_str()
        .map(str::to_string)
}

pub(crate) fn case_view(c: ReviewCaseRow, today: chrono::NaiveDate) -> ReviewCaseView {
    let age_days = chrono::DateTime::parse_from_rfc3339(&c.opened_at)
        .map(|t| (today - t.date_naive()).num_days().max(0))
        .unwrap_or(0);
    ReviewCaseView {
        id: c.id,
        recipient_id: c.recipient_id,
        kind: c.kind,
        status: c.status,
        certification_id: c.certification_id,
        opened_by: c.opened_by,
        opened_at: c.opened_at,
        age_days,
        decision: c.decision,
        decision_reason: c.decision_reason,
        decision_note: c.decision_note,
        decided_by: c.decided_by,
        decided_at: c.decided_at,
    }
}

/// Search parameters for staff.
#[derive(Debug, Clone, Default)]
pub struct RecipientQuery {
    pub id_number: Option<String>,
    pub name: Option<String>,
    pub status: Option<String>,
    pub region: Option<String>,
    pub overdue: bool,
    pub after_id: Option<i64>,
    pub limit: Option<i64>,
}

/// A certification as staff see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CertificationView {
    pub id: i64,
    pub recipient_id: i64,
    pub channel: String,
    pub certified_on: String,
    pub recorded_at: String,
    pub actor: String,
    /// Where it was performed.
    pub region_code: Option<String>,
    pub outcome: String,
    pub reason: Option<String>,
    /// Evidence references as recorded (document type and number, place, attachments).
    pub evidence: Option<serde_json::Value>,
}

impl App {
    fn certification_view(id: i64, c: lifecert_store::CertificationRow) -> CertificationView {
        CertificationView {
            id,
            recipient_id: c.recipient_id,
            channel: c.channel,
            certified_on: c.certified_on,
            recorded_at: c.recorded_at,
            actor: c.actor,
            region_code: c.region_code,
            outcome: c.outcome,
            reason: c.reason,
            evidence: c
                .evidence
                .map(|e| serde_json::from_str(&e).unwrap_or(serde_json::Value::String(e))),
        }
    }

    /// A pensioner's certifications, for staff who may see the pensioner.
    pub async fn certifications_for(
        &self,
        staff: &Staff,
        recipient_id: i64,
    ) -> Result<Vec<CertificationView>> {
        require(staff, Action::ViewRecipient)?;
        let r = self
            .store
            .recipient_by_id(recipient_id)
            .await?
            .ok_or_else(|| not_found("pensioner"))?;
        if !staff.scope.contains(&r.region_code) {
            return Err(not_found("pensioner"));
        }
        Ok(self
            .store
            .certifications(lifecert_store::CertificationsOf::Recipient(r.id))
            .await?
            .into_iter()
            .map(|(id, c)| Self::certification_view(id, c))
            .collect())
    }

    pub async fn certification_for(&self, staff: &Staff, id: i64) -> Result<CertificationView> {
        require(staff, Action::ViewRecipient)?;
        let (id, c) = self
            .store
            .certifications(lifecert_store::CertificationsOf::Id(id))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| not_found("certification"))?;
        let r = self
            .store
            .recipient_by_id(c.recipient_id)
            .await?
            .ok_or_else(|| not_found("certification"))?;
        if !staff.scope.contains(&r.region_code) {
            return Err(not_found("certification"));
        }
        Ok(Self::certification_view(id, c))
    }

    /// One review case (appeals are review cases of kind `appeal`).
    pub async fn review_case_for(
        &self,
        staff: &Staff,
        id: i64,
        kind: Option<&str>,
    ) -> Result<ReviewCaseView> {
        require(staff, Action::ViewReviewCases)?;
        let case = self
            .store
            .review_case(id)
            .await?
            .filter(|c| staff.scope.contains(&c.recipient_region))
            .filter(|c| kind.is_none_or(|k| c.kind == k))
            .ok_or_else(|| not_found("review case"))?;
        Ok(case_view(case, self.today()))
    }
}
