//! Staff workflows beyond certification: appeals (申诉), home visits (上门服务),
//! service records (consultations, complaints, satisfaction), contact updates,
//! registering a pensioner, and a pensioner's timeline.

use crate::access::{require, require_any, ReviewCaseView};
use crate::certify::{CertifyReport, CertifyRequest, RecipientRef};
use crate::staff::Staff;
use crate::{date_str, parse_stored_date, App, AppError, Result};
use base64::Engine;
use chrono::{Duration, NaiveDate};
use lifecert_crypto::Field;
use lifecert_domain::{Action, Channel, CountryCode, Outcome, PaymentStatus, Residence, Role};
use lifecert_store::{RecipientRow, WriteTx};
use serde::{Deserialize, Serialize};

/// Appeals are lodged within this many days of the decision appealed against.
pub const APPEAL_WINDOW_DAYS: i64 = 60;

/// Whoever may book, assign or complete home visits may list and read them.
const HOME_VISIT_ACTIONS: &[Action] = &[
    Action::BookHomeVisit,
    Action::CompleteHomeVisit,
    Action::AssignHomeVisit,
];

/// How far before the appealed decision actions count as taking part in it.
const DECISION_LOOKBACK_DAYS: i64 = 90;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppealAgainst {
    Fail,
    Suspension,
    Termination,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HomeVisitView {
    pub id: i64,
    pub recipient_id: i64,
    pub status: String,
    pub window_start: String,
    pub window_end: String,
    pub address: String,
    pub reason: String,
    pub booked_by: String,
    pub assigned_to: Option<String>,
    pub completed_at: Option<String>,
    pub certification_id: Option<i64>,
    /// Not completed and the window has passed.
    pub overdue: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceRecordView {
    pub id: i64,
    pub recipient_id: i64,
    pub certification_id: Option<i64>,
    pub kind: String,
    pub rating: Option<i64>,
    pub note: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TimelineEvent {
    /// RFC 3339 time or a date.
    pub at: String,
    /// certification, status, case, payment, notification, visit, service, record
    pub kind: String,
    pub what: String,
    pub details: serde_json::Value,
}

/// Contact details staff may change at the counter; `None` leaves a field as it is,
/// an empty string clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct ContactUpdate {
    pub phone: Option<String>,
    pub address: Option<String>,
    /// domestic or abroad
    pub residence: Option<String>,
    /// ISO 3166 alpha-2, required when abroad
    pub country: Option<String>,
    /// Contact details for notifications.
    #[serde(flatten)]
    pub notification: crate::notifications::NotificationContactUpdate,
}

fn not_found(what: &str) -> AppError {
    AppError::NotFound(format!("{what} not found"))
}

impl App {
    async fn recipient_in_scope(
        &self,
        tx: &mut WriteTx,
        staff: &Staff,
        id: i64,
    ) -> Result<RecipientRow> {
        let r = tx
            .recipient_by_id(id)
            .await?
            .ok_or_else(|| not_found("pensioner"))?;
        if !staff.scope.contains(&r.region_code) {
            return Err(not_found("pensioner"));
        }
        Ok(r)
    }

    /// Lodges an appeal on a pensioner's behalf against a failed certification, a
    /// suspension or a termination, within 60 days. Everyone who took part in the
    /// decisions appealed against is kept out of deciding it.
    pub async fn lodge_appeal(
        &self,
        staff: &Staff,
        recipient_id: i64,
        against: AppealAgainst,
        certification_id: Option<i64>,
        grounds: &str,
    ) -> Result<ReviewCaseView> {
        require(staff, Action::LodgeAppeal)?;
        let grounds = grounds.trim();
        if grounds.is_empty() || grounds.chars().count() > 2000 {
            return Err(AppError::invalid(
                "grounds",
                "say why the decision is wrong (at most 2,000 characters)",
            ));
        }
        let today = self.today();
        let mut tx = self.store.begin_write().await?;
        let r = self
            .recipient_in_scope(&mut tx, staff, recipient_id)
            .await?;
        let status = PaymentStatus::from_parts(&r.status, r.suspension_reason.as_deref())
            .map_err(|e| AppError::Corrupt(e.to_string()))?;
        let decided_on: NaiveDate = match against {
            AppealAgainst::Fail => {
                let id = certification_id.ok_or_else(|| {
                    AppError::invalid("certification_id", "name the failed certification")
                })?;
                let c = tx
                    .certification_fact(id)
                    .await?
                    .filter(|c| c.recipient_id == r.id)
                    .ok_or_else(|| not_found("certification"))?;
                if c.outcome != "fail" {
                    return Err(AppError::invalid(
                        "certification_id",
                        "that certification did not fail",
                    ));
                }
                parse_stored_date(&c.certified_on)?
            }
            AppealAgainst::Suspension | AppealAgainst::Termination => {
                let expected = matches!(
                    (against, status),
                    (AppealAgainst::Suspension, PaymentStatus::Suspended(_))
                        | (AppealAgainst::Termination, PaymentStatus::Terminated)
                );
                if !expected {
                    return Err(AppError::conflict(
                        "invalid_transition",
                        format!(
                            "payment is {}, so there is nothing of that kind to appeal",
                            status.describe()
                        ),
                    ));
                }
                r.status_changed_on
                    .as_deref()
                    .map(parse_stored_date)
                    .transpose()?
                    .unwrap_or(today)
            }
        };
        if (today - decided_on).num_days() > APPEAL_WINDOW_DAYS {
            return Err(AppError::conflict(
                "appeal_window_closed",
                format!("the decision of {decided_on} is more than {APPEAL_WINDOW_DAYS} days old: it can no longer be appealed"),
            ));
        }
        // Whoever acted on this pensioner's payment or cases in the run-up counts as
        // part of the decision: a death is often reported days or weeks before it is
        // confirmed, and the reporter must not judge the appeal against it.
        let since = format!(
            "{}T00:00:00",
            date_str(decided_on - Duration::days(DECISION_LOOKBACK_DAYS))
        );
        let mut involved = tx.decision_makers_since(r.id, &since).await?;
        involved.push(staff.actor().label());
        let case = self
            .open_review_case(
                &mut tx,
                &staff.actor(),
                r.id,
                "appeal",
                certification_id,
                serde_json::json!({"against": against, "grounds": grounds, "decided_on": date_str(decided_on), "involved": involved}),
            )
            .await?;
        let view = tx
            .review_case(case)
            .await?
            .ok_or_else(|| not_found("review case"))?;
        tx.commit().await?;
        Ok(crate::access::case_view(view, today))
    }

    /// Carries out an upheld appeal: payment is restored (the ledger back-pays withheld
    /// months), a wrongly recorded death and its recovery are cancelled, and a failed
    /// certification counts as a pass.
    pub(crate) async fn uphold_appeal(
        &self,
        tx: &mut WriteTx,
        staff: &Staff,
        case: &lifecert_store::ReviewCaseRow,
        r: &RecipientRow,
    ) -> Result<()> {
        let details: serde_json::Value = serde_json::from_str(&case.details).unwrap_or_default();
        let now = self.now_string();
        let today = self.today();
        let actor = staff.actor();
        if details.get("against").and_then(|a| a.as_str()) == Some("fail") {
            if let Some(c) = case.certification_id {
                let fact = tx
                    .certification_fact(c)
                    .await?
                    .ok_or_else(|| not_found("certification"))?;
                let date = parse_stored_date(&fact.certified_on)?;
                if date > crate::recipients::effective_certified_on(r)? {
                    let due = self
                        .policy
                        .next_due_on(date, parse_stored_date(&r.birth_date)?);
                    tx.set_certified(r.id, &date_str(date), &date_str(due), &now)
                        .await?;
                }
            }
        }
        let status = PaymentStatus::from_parts(&r.status, r.suspension_reason.as_deref())
            .map_err(|e| AppError::Corrupt(e.to_string()))?;
        if status != PaymentStatus::Active {
            let mut restored = status
                .reinstate()
                .map_err(|e| AppError::conflict("invalid_transition", e.to_string()))?;
            // As when a death report is voided: a pensioner also long overdue goes back
            // to that suspension rather than being paid without a valid certification.
            let current = tx
                .recipient_by_id(r.id)
                .await?
                .ok_or_else(|| not_found("pensioner"))?;
            if self
                .policy
                .is_past_grace(parse_stored_date(&current.next_due_on)?, today)
            {
                restored = restored
                    .suspend(lifecert_domain::SuspensionReason::Overdue)
                    .map_err(|e| AppError::conflict("invalid_transition", e.to_string()))?;
            }
            tx.set_status(
                r.id,
                restored.as_str(),
                restored.suspension_reason().map(|s| s.as_str()),
                &date_str(today),
                &now,
            )
            .await?;
            tx.close_review_cases(r.id, "doubtful_certification", "resolved_by_appeal")
                .await?;
            if status == PaymentStatus::Terminated || r.death_date.is_some() {
                tx.set_death(r.id, None, None).await?;
                tx.cancel_open_recoveries(r.id).await?;
            }
            self.audit(
                tx,
                &actor,
                "recipient.reinstated",
                Some(r.id),
                serde_json::json!({"case_id": case.id, "previous": status.describe()}),
            );
            if restored == PaymentStatus::Active {
                self.queue_notice(tx, r.id, lifecert_notify::Kind::Resumed, today)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn book_home_visit(
        &self,
        staff: &Staff,
        recipient_id: i64,
        window_start: NaiveDate,
        window_end: NaiveDate,
        address: &str,
        reason: &str,
    ) -> Result<HomeVisitView> {
        require(staff, Action::BookHomeVisit)?;
        if window_end < window_start {
            return Err(AppError::invalid(
                "window_end",
                "the window ends before it starts",
            ));
        }
        if window_end < self.today() {
            return Err(AppError::invalid(
                "window_end",
                "the window is already over",
            ));
        }
        let (address, reason) = (address.trim(), reason.trim());
        if address.is_empty() || address.chars().count() > 300 {
            return Err(AppError::invalid(
                "address",
                "give the address to visit (at most 300 characters)",
            ));
        }
        if reason.is_empty() || reason.chars().count() > 500 {
            return Err(AppError::invalid(
                "reason",
                "say why a visit is needed (at most 500 characters)",
            ));
        }
        let mut tx = self.store.begin_write().await?;
        let r = self
            .recipient_in_scope(&mut tx, staff, recipient_id)
            .await?;
        if r.status == "terminated" {
            return Err(AppError::conflict(
                "recipient_terminated",
                "payment to this pensioner is terminated",
            ));
        }
        let address_enc = self.keys.encrypt_str(Field::Address, address);
        let id = tx
            .insert_home_visit(
                r.id,
                &date_str(window_start),
                &date_str(window_end),
                &address_enc,
                reason,
                &staff.actor().label(),
                &self.now_string(),
            )
            .await?;
        self.audit(&mut tx, &staff.actor(), "home_visit.booked", Some(r.id), serde_json::json!({"visit_id": id, "window_start": date_str(window_start), "window_end": date_str(window_end)}));
        let visit = tx
            .home_visit(id)
            .await?
            .ok_or_else(|| not_found("home visit"))?;
        tx.commit().await?;
        self.visit_view(visit)
    }

    /// Assigns a booked visit to a certifier whose region covers the pensioner.
    pub async fn assign_home_visit(
        &self,
        staff: &Staff,
        visit_id: i64,
        certifier: &str,
    ) -> Result<HomeVisitView> {
        require(staff, Action::AssignHomeVisit)?;
        let mut tx = self.store.begin_write().await?;
        let visit = tx
            .home_visit(visit_id)
            .await?
            .filter(|v| staff.scope.contains(&v.recipient_region))
            .ok_or_else(|| not_found("home visit"))?;
        if !matches!(visit.status.as_str(), "booked" | "assigned") {
            return Err(AppError::conflict(
                "case_closed",
                format!("the visit is already {}", visit.status),
            ));
        }
        let user = tx
            .user_by_username(certifier)
            .await?
            .filter(|u| u.active)
            .ok_or_else(|| not_found("user"))?;
        if user.role != Role::Certifier.as_str()
            || !visit.recipient_region.starts_with(&user.region_prefix)
        {
            return Err(AppError::invalid(
                "certifier",
                "assign a certifier whose region covers the pensioner",
            ));
        }
        let assignee = crate::Actor::Staff(user.username.clone()).label();
        tx.assign_home_visit(visit_id, &assignee, &self.now_string())
            .await?;
        self.audit(
            &mut tx,
            &staff.actor(),
            "home_visit.assigned",
            Some(visit.recipient_id),
            serde_json::json!({"visit_id": visit_id, "assigned_to": assignee}),
        );
        let visit = tx
            .home_visit(visit_id)
            .await?
            .ok_or_else(|| not_found("home visit"))?;
        tx.commit().await?;
        self.visit_view(visit)
    }

    /// The assigned certifier completes a visit; its outcome is recorded as a
    /// `home_visit` certification in the same transaction.
    pub async fn complete_home_visit(
        &self,
        staff: &Staff,
        visit_id: i64,
        date: NaiveDate,
        outcome: Outcome,
        reason: Option<String>,
    ) -> Result<(HomeVisitView, CertifyReport)> {
        require(staff, Action::CompleteHomeVisit)?;
        let mut tx = self.store.begin_write().await?;
        let visit = tx
            .home_visit(visit_id)
            .await?
            .ok_or_else(|| not_found("home visit"))?;
        if visit.assigned_to.as_deref() != Some(staff.actor().label().as_str()) {
            return Err(AppError::forbidden(
                "forbidden",
                "only the certifier the visit is assigned to completes it",
            ));
        }
        if visit.status != "assigned" {
            return Err(AppError::conflict(
                "case_closed",
                format!("the visit is {}", visit.status),
            ));
        }
        let report = self
            .certify_in(
                &mut tx,
                &staff.actor(),
                &CertifyRequest {
                    recipient: RecipientRef::Id(visit.recipient_id),
                    channel: Channel::HomeVisit,
                    date,
                    outcome,
                    reason,
                    region_code: None,
                    evidence: Some(serde_json::json!({"home_visit_id": visit_id}).to_string()),
                },
            )
            .await?;
        tx.complete_home_visit(visit_id, report.certification_id, &self.now_string())
            .await?;
        self.audit(
            &mut tx,
            &staff.actor(),
            "home_visit.completed",
            Some(visit.recipient_id),
            serde_json::json!({"visit_id": visit_id, "certification_id": report.certification_id}),
        );
        let visit = tx
            .home_visit(visit_id)
            .await?
            .ok_or_else(|| not_found("home visit"))?;
        tx.commit().await?;
        Ok((self.visit_view(visit)?, report))
    }

    pub async fn home_visits(
        &self,
        staff: &Staff,
        status: Option<&str>,
        overdue: bool,
    ) -> Result<Vec<HomeVisitView>> {
        require_any(staff, HOME_VISIT_ACTIONS)?;
        if let Some(s) = status {
            if !matches!(s, "booked" | "assigned" | "completed") {
                return Err(AppError::invalid(
                    "status",
                    "use booked, assigned or completed",
                ));
            }
        }
        let before = overdue.then(|| date_str(self.today()));
        let rows = self
            .store
            .list_home_visits(staff.scope.as_str(), status, before.as_deref(), 500)
            .await?;
        rows.into_iter().map(|v| self.visit_view(v)).collect()
    }

    pub async fn home_visit_for(&self, staff: &Staff, id: i64) -> Result<HomeVisitView> {
        require_any(staff, HOME_VISIT_ACTIONS)?;
        let v = self
            .store
            .home_visit(id)
            .await?
            .filter(|v| staff.scope.contains(&v.recipient_region))
            .ok_or_else(|| not_found("home visit"))?;
        self.visit_view(v)
    }

    fn visit_view(&self, v: lifecert_store::HomeVisitRow) -> Result<HomeVisitView> {
        let overdue =
            !matches!(v.status.as_str(), "completed") && v.window_end < date_str(self.today());
        Ok(HomeVisitView {
            id: v.id,
            recipient_id: v.recipient_id,
            status: v.status,
            window_start: v.window_start,
            window_end: v.window_end,
            address: self.keys.decrypt_str(Field::Address, &v.address_enc)?,
            reason: v.reason,
            booked_by: v.booked_by,
            assigned_to: v.assigned_to,
            completed_at: v.completed_at,
            certification_id: v.certification_id,
            overdue,
        })
    }

    /// Records a consultation, complaint or satisfaction rating (1–5).
    pub async fn record_service(
        &self,
        staff: &Staff,
        recipient_id: i64,
        certification_id: Option<i64>,
        kind: &str,
        rating: Option<i64>,
        note: &str,
    ) -> Result<ServiceRecordView> {
        require(staff, Action::RecordServiceRecord)?;
        if !matches!(kind, "consultation" | "complaint" | "satisfaction") {
            return Err(AppError::invalid(
                "kind",
                "use consultation, complaint or satisfaction",
            ));
        }
        match (kind, rating) {
            ("satisfaction", Some(1..=5)) => {}
            ("satisfaction", _) => {
                return Err(AppError::invalid(
                    "rating",
                    "a satisfaction rating is 1 to 5",
                ))
            }
            (_, Some(_)) => {
                return Err(AppError::invalid(
                    "rating",
                    "only a satisfaction record has a rating",
                ))
            }
            _ => {}
        }
        let note = if note.trim().is_empty() {
            ""
        } else {
            crate::text_field("note", note, 4000, true)?
        };
        let mut tx = self.store.begin_write().await?;
        let r = self
            .recipient_in_scope(&mut tx, staff, recipient_id)
            .await?;
        if let Some(c) = certification_id {
            tx.certification_fact(c)
                .await?
                .filter(|c| c.recipient_id == r.id)
                .ok_or_else(|| not_found("certification"))?;
        }
        // Notes are free text and may hold personal details: stored encrypted.
        let note_enc = self.keys.encrypt_str(Field::Other, note.trim());
        let now = self.now_string();
        let id = tx
            .insert_service_record(
                r.id,
                certification_id,
                kind,
                rating,
                &note_enc,
                &staff.actor().label(),
                &now,
            )
            .await?;
        self.audit(
            &mut tx,
            &staff.actor(),
            "service_record.added",
            Some(r.id),
            serde_json::json!({"service_record_id": id, "kind": kind, "rating": rating}),
        );
        tx.commit().await?;
        Ok(ServiceRecordView {
            id,
            recipient_id: r.id,
            certification_id,
            kind: kind.to_string(),
            rating,
            note: note.trim().to_string(),
            recorded_by: staff.actor().label(),
            recorded_at: now,
        })
    }

    pub async fn service_records(
        &self,
        staff: &Staff,
        recipient_id: i64,
    ) -> Result<Vec<ServiceRecordView>> {
        require(staff, Action::RecordServiceRecord)?;
        let r = self
            .store
            .recipient_by_id(recipient_id)
            .await?
            .filter(|r| staff.scope.contains(&r.region_code))
            .ok_or_else(|| not_found("pensioner"))?;
        self.store
            .service_records_of(r.id)
            .await?
            .into_iter()
            .map(|s| {
                Ok(ServiceRecordView {
                    id: s.id,
                    recipient_id: s.recipient_id,
                    certification_id: s.certification_id,
                    kind: s.kind,
                    rating: s.rating,
                    note: self.keys.decrypt_str(Field::Other, &s.note_enc)?,
                    recorded_by: s.recorded_by,
                    recorded_at: s.recorded_at,
                })
            })
            .collect()
    }

    /// Changes contact details. The trail keeps old and new values, encrypted like the
    /// fields themselves (base64 of the ciphertext), so it holds no readable personal data.
    pub async fn update_contact(
        &self,
        staff: &Staff,
        recipient_id: i64,
        update: &ContactUpdate,
    ) -> Result<()> {
        require(staff, Action::UpdateRecipient)?;
        let mut tx = self.store.begin_write().await?;
        let r = self
            .recipient_in_scope(&mut tx, staff, recipient_id)
            .await?;
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let mut changes = serde_json::Map::new();
        let mut phone_enc = r.phone_enc.clone();
        if let Some(p) = &update.phone {
            let new = match p.trim() {
                "" => None,
                p => Some(self.keys.encrypt_str(
                    Field::Phone,
                    &crate::import::normalise_phone(p).ok_or_else(|| {
                        AppError::invalid("phone", format!("{p:?} is not a phone number"))
                    })?,
                )),
            };
            changes.insert("phone".into(), serde_json::json!({"old_enc": phone_enc.as_deref().map(b64), "new_enc": new.as_deref().map(b64)}));
            phone_enc = new;
        }
        let mut address_enc = tx.address_of(r.id).await?;
        if let Some(a) = &update.address {
            if a.chars().count() > 300 {
                return Err(AppError::invalid("address", "at most 300 characters"));
            }
            let new =
                (!a.trim().is_empty()).then(|| self.keys.encrypt_str(Field::Address, a.trim()));
            changes.insert("address".into(), serde_json::json!({"old_enc": address_enc.as_deref().map(b64), "new_enc": new.as_deref().map(b64)}));
            address_enc = new;
        }
        let residence = match &update.residence {
            Some(s) => Residence::parse_any(s)
                .map_err(|e| AppError::invalid("residence", e.to_string()))?,
            None => Residence::parse(&r.residence).map_err(|e| AppError::Corrupt(e.to_string()))?,
        };
        let country = match (&update.country, residence) {
            (Some(c), _) if !c.trim().is_empty() => Some(
                CountryCode::parse(c)
                    .map_err(|e| AppError::invalid("country", e.to_string()))?
                    .to_string(),
            ),
            (Some(_), _) => None,
            (None, _) => r.country.clone(),
        };
        if residence == Residence::Abroad && country.is_none() {
            return Err(AppError::invalid(
                "country",
                "a pensioner living abroad needs the country of residence",
            ));
        }
        if residence.as_str() != r.residence {
            changes.insert(
                "residence".into(),
                serde_json::json!({"old": r.residence, "new": residence.as_str()}),
            );
        }
        if country != r.country {
            changes.insert(
                "country".into(),
                serde_json::json!({"old": r.country, "new": country}),
            );
        }
        self.update_notification_contact(&mut tx, r.id, &update.notification, &mut changes)
            .await?;
        if changes.is_empty() {
            return Ok(());
        }
        tx.update_contact(
            r.id,
            phone_enc.as_deref(),
            address_enc.as_deref(),
            residence.as_str(),
            country.as_deref(),
            &self.now_string(),
        )
        .await?;
        self.audit(
            &mut tx,
            &staff.actor(),
            "recipient.contact_updated",
            Some(r.id),
            serde_json::json!({"changes": changes}),
        );
        tx.commit().await?;
        Ok(())
    }

    /// Everything that happened to a pensioner, in order: certifications, status changes,
    /// cases, visits and records (from the audit trail), payments and reminders.
    pub async fn timeline(&self, staff: &Staff, recipient_id: i64) -> Result<Vec<TimelineEvent>> {
        require(staff, Action::ViewRecipient)?;
        let r = self
            .store
            .recipient_by_id(recipient_id)
            .await?
            .filter(|r| staff.scope.contains(&r.region_code))
            .ok_or_else(|| not_found("pensioner"))?;
        let mut events = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.list_audit(after, 1000, None, Some(r.id)).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for a in page {
                let kind = a.action.split('.').next().unwrap_or("record").to_string();
                events.push(TimelineEvent {
                    at: a.occurred_at,
                    kind,
                    what: a.action,
                    details: serde_json::from_str(&a.details).unwrap_or_default(),
                });
            }
        }
        for p in self.store.payment_history(r.id).await? {
            events.push(TimelineEvent {
                at: p.exported_at,
                kind: "payment".into(),
                what: format!("payment.{}", p.kind),
                details: serde_json::json!({"month": p.month, "months": p.months.split(',').collect::<Vec<_>>(), "amount_fen": p.amount_fen, "run": p.run_status}),
            });
        }
        // Each notice once per addressee, with where its delivery stands, then every
        // delivery attempt with its outcome.
        for n in self.store.deliveries_of(r.id).await? {
            events.push(TimelineEvent {
                at: n.created_at,
                kind: "notification".into(),
                what: format!("notification.{}", n.kind),
                details: serde_json::json!({
                    "date": n.due_on, "days_before": n.stage, "delivery_id": n.id,
                    "addressee": n.addressee, "channel": n.channel, "status": n.status,
                    "attempts": n.attempts, "last_error": n.last_error,
                }),
            });
        }
        for a in self.store.attempts_of(r.id).await? {
            events.push(TimelineEvent {
                at: a.at,
                kind: "notification".into(),
                what: "notification.attempt".into(),
                details: serde_json::json!({
                    "notice": a.kind, "delivery_id": a.delivery_id, "addressee": a.addressee,
                    "attempt": a.attempt, "channel": a.channel, "outcome": a.outcome,
                    "reason": a.reason, "provider_id": a.provider_id,
                }),
            });
        }
        events.sort_by(|a, b| a.at.cmp(&b.at));
        Ok(events)
    }
}
