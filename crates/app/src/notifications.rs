//! Notifications to pensioners and their agents: notices recorded with the change that
//! causes them (a reminder, an overdue notice, a suspension, a resumption), delivered from
//! the outbox by workers on any node, and listed for staff when they cannot be delivered.
//!
//! Delivery, one round: deliveries whose worker's lease ran out are made waiting again
//! (the lost attempt recorded); pending notices get their deliveries, one per addressee
//! (the pensioner; an agent when one is recorded); SMS waiting during quiet hours is moved
//! to their end; a batch of due deliveries on configured channels is claimed with a lease;
//! each is checked to be still true (a reminder to someone who has since certified is
//! cancelled), rendered from the decrypted name, sent once under its stable message id,
//! and its outcome recorded: delivered, retrying (the notify crate's back-off) or failed.

use crate::access::require;
use crate::staff::Staff;
use crate::{date_str, parse_stored_date, App, AppError, Result};
use chrono::{DateTime, Duration, NaiveDate, SecondsFormat, Utc};
use lifecert_crypto::Field;
use lifecert_domain::{Action, Sensitive};
use lifecert_notify::{
    Address, ChannelKind, EmailAddress, Kind, Language, MessageId, MessageInput, NextStep, Notice,
    Notifier, Outcome, Outgoing, PhoneNumber, RecipientRef, MAX_ATTEMPTS,
};
use lifecert_store::{
    AttemptRecord, DeliveryContext, DeliveryFilter, DeliveryRow, NewNotice, WriteTx,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::watch;

/// Delivery statuses, as stored and as filtered by staff.
pub const DELIVERY_STATUSES: [&str; 6] = [
    "pending",
    "sending",
    "retrying",
    "delivered",
    "failed",
    "cancelled",
];

/// Notices whose deliveries one round makes: the cycle records a day's notices at once,
/// and they are turned into deliveries a slice at a time beside the sending.
const NOTICES_PER_ROUND: i64 = 1000;

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// One node's delivery worker.
#[derive(Debug, Clone)]
pub struct DeliveryWorker {
    /// Names the worker in claims and attempts (node and process).
    pub name: String,
    /// Messages sent at the same time (one claim's batch).
    pub concurrency: usize,
    /// How long a claim lasts. Longer than the request timeout: a message is sent only
    /// while the whole timeout still fits in the lease, so a live worker has recorded its
    /// outcome (or is past caring) before another node may take the delivery over.
    pub lease: std::time::Duration,
}

impl DeliveryWorker {
    /// The default lease for a request timeout: the timeout plus 30 s to record the outcome.
    pub fn default_lease(request_timeout_ms: u64) -> std::time::Duration {
        std::time::Duration::from_millis(request_timeout_ms) + std::time::Duration::from_secs(30)
    }
}

/// What one round, or `notify run-pending`, did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeliveryReport {
    /// Deliveries claimed and tried (or cancelled, or given back).
    pub claimed: u64,
    pub delivered: u64,
    /// A transient failure: tried again later.
    pub retrying: u64,
    /// A permanent failure, or every attempt spent: listed for staff.
    pub failed: u64,
    /// No longer true when its turn came (the pensioner certified, payment stopped).
    pub cancelled: u64,
    /// Given back unsent (the node was stopping).
    pub released: u64,
    /// Deliveries another worker had left half-done (its lease ran out), made waiting again.
    pub recovered: u64,
    /// Notices whose deliveries were made (one per addressee).
    pub queued: u64,
    /// SMS moved to the end of quiet hours.
    pub deferred: u64,
    /// Outcomes not recorded on the delivery because another worker had taken it over.
    pub lost_lease: u64,
}

impl DeliveryReport {
    fn add(&mut self, other: &DeliveryReport) {
        self.claimed += other.claimed;
        self.delivered += other.delivered;
        self.retrying += other.retrying;
        self.failed += other.failed;
        self.cancelled += other.cancelled;
        self.released += other.released;
        self.recovered += other.recovered;
        self.queued += other.queued;
        self.deferred += other.deferred;
        self.lost_lease += other.lost_lease;
    }
}

/// Deliveries still waiting on one channel after a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WaitingView {
    pub channel: String,
    pub count: i64,
    /// When the earliest of them is due.
    pub earliest: Option<String>,
    /// `false`: nothing is sent on this channel until it is configured (`[notify.<channel>]`).
    pub configured: bool,
}

/// `notify run-pending`: everything due now, delivered, and what is left waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingRun {
    #[serde(flatten)]
    pub report: DeliveryReport,
    pub waiting: Vec<WaitingView>,
}

/// A delivery as staff see it (no message text, no contact details).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: i64,
    /// The id every attempt carried (the gateway's idempotency key, the email's Message-ID).
    pub message_id: String,
    pub recipient_id: i64,
    /// The pensioner's home region.
    pub region_code: String,
    /// reminder, overdue, suspended or resumed
    pub kind: String,
    /// The due date (reminder, overdue) or the day payment was suspended or resumed.
    pub date: String,
    /// Days before the due date (reminders); 0 otherwise.
    pub stage: i64,
    /// pensioner, or agent (a family member or agent who helps them)
    pub addressee: String,
    /// sms, email or webhook
    pub channel: String,
    /// zh or en
    pub language: String,
    /// pending, sending, retrying, delivered, failed or cancelled
    pub status: String,
    pub attempts: i64,
    /// When it is (next) due to be sent: pending and retrying.
    pub next_attempt_at: Option<String>,
    /// Why the last attempt failed, or why it was cancelled.
    pub last_error: Option<String>,
    /// The gateway's own id for the delivered message, when it gave one.
    pub provider_id: Option<String>,
    pub delivered_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// Filters for listing deliveries.
#[derive(Debug, Clone, Default)]
pub struct NotificationQuery {
    pub status: Option<String>,
    pub kind: Option<String>,
    pub channel: Option<String>,
    pub recipient_id: Option<i64>,
    /// A region prefix inside the user's own.
    pub region: Option<String>,
    pub after_id: Option<i64>,
    pub limit: Option<i64>,
}

/// Contact details for notifications that staff may change with the others
/// (`PATCH /api/v1/recipients/{id}`); `None` leaves one as it is, an empty string clears it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NotificationContactUpdate {
    /// An email address, for `preferred_channel = email`.
    pub email: Option<String>,
    /// The pensioner's account in the agency's app, for push (`preferred_channel = webhook`).
    pub app_ref: Option<String>,
    /// A family member or agent who also receives every notice by SMS.
    pub agent_name: Option<String>,
    /// The agent's mobile number (11 digits, or + and the country code).
    pub agent_phone: Option<String>,
    /// sms (default), email or webhook
    pub preferred_channel: Option<String>,
    /// zh (default) or en
    pub language: Option<String>,
}

impl NotificationContactUpdate {
    pub fn is_empty(&self) -> bool {
        [
            &self.email,
            &self.app_ref,
            &self.agent_name,
            &self.agent_phone,
            &self.preferred_channel,
            &self.language,
        ]
        .iter()
        .all(|f| f.is_none())
    }
}

fn message_id(prefix: &str, id: i64) -> Result<MessageId> {
    MessageId::parse(&format!("ntf-{prefix}-{id}"))
        .map_err(|e| AppError::Corrupt(format!("message id: {e}")))
}

fn view_of(prefix: &str, d: DeliveryRow) -> NotificationView {
    let waiting = matches!(d.status.as_str(), "pending" | "retrying");
    NotificationView {
        message_id: format!("ntf-{prefix}-{}", d.id),
        id: d.id,
        recipient_id: d.recipient_id,
        region_code: d.region_code,
        kind: d.kind,
        date: d.due_on,
        stage: d.stage,
        addressee: d.addressee,
        channel: d.channel,
        language: d.language,
        status: d.status,
        attempts: d.attempts,
        next_attempt_at: waiting.then_some(d.next_attempt_at),
        last_error: d.last_error,
        provider_id: d.provider_id,
        delivered_at: d.delivered_at,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

/// How one claimed delivery ended in this round.
enum Step {
    Delivered,
    Retrying,
    Failed,
    Cancelled,
    Released,
    LostLease,
}

impl App {
    /// Records a notice about a status change (suspended, resumed) dated `on`, with its
    /// deliveries, in the transaction that made the change. Recording it again is a no-op.
    pub(crate) async fn queue_notice(
        &self,
        tx: &mut WriteTx,
        recipient_id: i64,
        kind: Kind,
        on: NaiveDate,
    ) -> Result<()> {
        tx.insert_notices(
            &[NewNotice {
                recipient_id,
                kind: kind.as_str(),
                due_on: date_str(on),
                stage: 0,
            }],
            &self.now_string(),
        )
        .await?;
        Ok(())
    }

    /// One round of delivery: claims up to `worker.concurrency` due deliveries and sends
    /// them at the same time.
    #[tracing::instrument(skip_all, fields(worker = %worker.name))]
    pub async fn deliver_due_notifications(
        &self,
        notifier: &Arc<Notifier>,
        worker: &DeliveryWorker,
    ) -> Result<DeliveryReport> {
        let mut report = DeliveryReport::default();
        let now = self.clock.now();
        let now_s = ts(now);
        report.recovered = self
            .store
            .expire_lost_deliveries(&now_s, i64::from(MAX_ATTEMPTS), &worker.name)
            .await?;
        report.queued = self
            .store
            .queue_pending_notices(&now_s, NOTICES_PER_ROUND)
            .await?;
        let mut channels = Vec::new();
        for channel in ChannelKind::ALL {
            if !notifier.is_configured(channel) {
                continue;
            }
            let allowed = notifier.allowed_at(channel, now);
            if allowed > now {
                report.deferred += self
                    .store
                    .defer_deliveries(channel.as_str(), &ts(allowed), &now_s)
                    .await?;
            } else {
                channels.push(channel.as_str());
            }
        }
        let lease = Duration::from_std(worker.lease)
            .map_err(|e| AppError::invalid("lease", e.to_string()))?;
        let lease_until = now + lease;
        let limit = i64::try_from(worker.concurrency.max(1)).unwrap_or(1);
        let claimed = self
            .store
            .claim_deliveries(&worker.name, &channels, &now_s, &ts(lease_until), limit)
            .await?;
        if claimed.is_empty() {
            return Ok(report);
        }
        report.claimed = claimed.len() as u64;
        let prefix = self.store.message_id_prefix().await?;
        let mut tasks = tokio::task::JoinSet::new();
        for delivery in claimed {
            let (app, notifier, worker, prefix) = (
                self.clone(),
                notifier.clone(),
                worker.name.clone(),
                prefix.clone(),
            );
            tasks.spawn(async move { app.send_one(&notifier, &worker, &prefix, delivery).await });
        }
        let mut first_error = None;
        while let Some(joined) = tasks.join_next().await {
            let step = joined.map_err(|e| AppError::Io(format!("a delivery task stopped: {e}")))?;
            match step {
                Ok(Step::Delivered) => report.delivered += 1,
                Ok(Step::Retrying) => report.retrying += 1,
                Ok(Step::Failed) => report.failed += 1,
                Ok(Step::Cancelled) => report.cancelled += 1,
                Ok(Step::Released) => report.released += 1,
                Ok(Step::LostLease) => report.lost_lease += 1,
                // The other deliveries of the batch still finish; a delivery whose outcome
                // could not be recorded is taken up again when its lease runs out.
                Err(e) => {
                    tracing::error!(error = %e, "cannot record a delivery");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// Delivers everything due now, round after round, and says what is left waiting
    /// (`lifecert notify run-pending`).
    pub async fn run_pending_notifications(
        &self,
        notifier: &Arc<Notifier>,
        worker: &DeliveryWorker,
    ) -> Result<PendingRun> {
        let mut total = DeliveryReport::default();
        loop {
            let round = self.deliver_due_notifications(notifier, worker).await?;
            total.add(&round);
            if round.claimed == 0 && round.recovered == 0 && round.queued == 0 {
                break;
            }
        }
        let waiting = self
            .store
            .waiting_deliveries()
            .await?
            .into_iter()
            .map(|w| WaitingView {
                configured: ChannelKind::parse(&w.channel)
                    .map(|c| notifier.is_configured(c))
                    .unwrap_or(false),
                channel: w.channel,
                count: w.count,
                earliest: w.earliest,
            })
            .collect();
        Ok(PendingRun {
            report: total,
            waiting,
        })
    }

    /// The delivery worker of `lifecert serve`: a round whenever something is due, else a
    /// look every `poll`. Stops claiming when `stop` turns true; the round in progress
    /// finishes (each send is bounded by the request timeout).
    pub async fn run_delivery_worker(
        &self,
        notifier: Arc<Notifier>,
        worker: DeliveryWorker,
        poll: std::time::Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut warned = false;
        while !*stop.borrow() {
            let idle = match self.deliver_due_notifications(&notifier, &worker).await {
                Ok(report) => {
                    if report.claimed > 0 {
                        tracing::debug!(?report, "delivery round");
                    }
                    report.claimed == 0 && report.queued == 0
                }
                Err(e) => {
                    tracing::error!(error = %e, "notification delivery: cannot reach the outbox; trying again");
                    true
                }
            };
            if idle && !warned {
                warned = true;
                self.warn_unconfigured(&notifier).await;
            }
            if idle {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }

    /// Says once, at start, which waiting notifications no configured channel can send.
    async fn warn_unconfigured(&self, notifier: &Notifier) {
        let Ok(waiting) = self.store.waiting_deliveries().await else {
            return;
        };
        for w in waiting {
            if !ChannelKind::parse(&w.channel).is_ok_and(|c| notifier.is_configured(c)) {
                tracing::warn!(
                    channel = %w.channel,
                    waiting = w.count,
                    "notifications wait in the outbox: this channel is not configured ([notify.{}] in the settings file)",
                    w.channel
                );
            }
        }
    }

    /// Sends one claimed delivery and records what happened.
    async fn send_one(
        &self,
        notifier: &Notifier,
        worker: &str,
        prefix: &str,
        d: DeliveryContext,
    ) -> Result<Step> {
        if let Some(reason) = self.no_longer_true(&d)? {
            let now = self.now_string();
            return Ok(
                if self
                    .store
                    .cancel_delivery(d.id, worker, &reason, &now)
                    .await?
                {
                    Step::Cancelled
                } else {
                    Step::LostLease
                },
            );
        }
        let channel = ChannelKind::parse(&d.channel)
            .map_err(|e| AppError::Corrupt(format!("delivery {}: {e}", d.id)))?;
        let outcome = match self.address_of(&d, channel)? {
            Err(problem) => Outcome::Permanent(problem),
            Ok(to) => {
                // Only send with the whole request timeout still inside the lease: a
                // live worker never sends once another node may have taken over.
                let timeout = Duration::milliseconds(
                    i64::try_from(notifier.settings().request_timeout_ms).unwrap_or(i64::MAX),
                );
                let lease_until = DateTime::parse_from_rfc3339(&d.lease_until)
                    .map_err(|e| AppError::Corrupt(format!("delivery {}: lease: {e}", d.id)))?
                    .with_timezone(&Utc);
                if self.clock.now() + timeout >= lease_until {
                    let now = self.now_string();
                    return Ok(if self.store.release_delivery(d.id, worker, &now).await? {
                        Step::Released
                    } else {
                        Step::LostLease
                    });
                }
                let outgoing = Outgoing {
                    message_id: message_id(prefix, d.id)?,
                    to,
                    message: notifier.render(&self.message_input(&d)?),
                };
                notifier.deliver(&outgoing).await
            }
        };
        let at = self.clock.now();
        let attempts_made = u32::try_from(d.attempt).unwrap_or(u32::MAX);
        let (status, step, next_attempt_at, reason) =
            match notifier.next_step(&outcome, attempts_made, channel, at) {
                NextStep::Done => ("delivered", Step::Delivered, None, None),
                NextStep::RetryAt(t) => (
                    "retrying",
                    Step::Retrying,
                    Some(ts(t)),
                    Some(outcome.to_string()),
                ),
                NextStep::Dead(reason) => ("failed", Step::Failed, None, Some(reason)),
            };
        let (outcome_code, provider_id) = match &outcome {
            Outcome::Delivered { provider_id } => ("delivered", provider_id.as_deref()),
            Outcome::Transient(_) => ("transient", None),
            Outcome::Permanent(_) => ("permanent", None),
        };
        let at_s = ts(at);
        let recorded = self
            .store
            .record_attempt(&AttemptRecord {
                delivery_id: d.id,
                recipient_id: d.recipient_id,
                attempt: d.attempt,
                worker,
                at: &at_s,
                channel: &d.channel,
                outcome: outcome_code,
                reason: reason.as_deref(),
                provider_id,
                status,
                next_attempt_at: next_attempt_at.as_deref(),
            })
            .await?;
        if status == "failed" {
            tracing::warn!(delivery = d.id, kind = %d.kind, channel = %d.channel, "a notification could not be delivered; it is listed for staff");
        }
        Ok(if recorded { step } else { Step::LostLease })
    }

    /// Why the notice should no longer go out, if it should not: the pensioner's state
    /// now is what counts, not the state when it was recorded.
    fn no_longer_true(&self, d: &DeliveryContext) -> Result<Option<String>> {
        let today = self.today();
        let due = parse_stored_date(&d.due_on)?;
        let status = d.recipient_status.as_str();
        let reason = d.suspension_reason.as_deref().unwrap_or("");
        if status == "terminated" {
            return Ok(Some("payment was terminated".into()));
        }
        let kind = Kind::parse(&d.kind).map_err(|e| AppError::Corrupt(e.to_string()))?;
        let answer = match kind {
            Kind::Reminder | Kind::Overdue if status != "active" => {
                Some(format!("payment is suspended ({reason})"))
            }
            Kind::Reminder | Kind::Overdue if d.next_due_on != d.due_on => Some(format!(
                "the pensioner has certified: the next due date is {}",
                d.next_due_on
            )),
            Kind::Reminder if today > due => Some("its due date has passed".into()),
            Kind::Overdue if self.policy.is_past_grace(due, today) => {
                Some("the grace period is over".into())
            }
            Kind::Suspended if !(status == "suspended" && reason == "overdue") => {
                Some("payment is no longer suspended for an overdue certification".into())
            }
            Kind::Resumed if status != "active" => {
                Some(format!("payment is suspended again ({reason})"))
            }
            _ => None,
        };
        Ok(answer)
    }

    /// Where the delivery goes, or why it cannot go anywhere (a permanent failure).
    fn address_of(
        &self,
        d: &DeliveryContext,
        channel: ChannelKind,
    ) -> Result<Result<Address, String>> {
        let (enc, field, missing) = match (d.addressee.as_str(), channel) {
            ("agent", ChannelKind::Sms) => (
                &d.contact.agent_phone_enc,
                Field::Phone,
                "no mobile number of the agent on record",
            ),
            ("pensioner", ChannelKind::Sms) => (
                &d.phone_enc,
                Field::Phone,
                "no mobile phone number on record",
            ),
            ("pensioner", ChannelKind::Email) => (
                &d.contact.email_enc,
                Field::Other,
                "no email address on record",
            ),
            ("pensioner", ChannelKind::Webhook) => (
                &d.contact.app_ref_enc,
                Field::Other,
                "no app account on record",
            ),
            (who, c) => {
                return Err(AppError::Corrupt(format!(
                    "delivery {}: no {c} address for addressee {who:?}",
                    d.id
                )))
            }
        };
        let Some(enc) = enc else {
            return Ok(Err(missing.to_string()));
        };
        let raw = self.keys.decrypt_str(field, enc)?;
        Ok(Address::parse(channel, &raw).map_err(|e| e.to_string()))
    }

    fn message_input(&self, d: &DeliveryContext) -> Result<MessageInput> {
        let due = parse_stored_date(&d.due_on)?;
        let kind = Kind::parse(&d.kind).map_err(|e| AppError::Corrupt(e.to_string()))?;
        let notice = match kind {
            Kind::Reminder => Notice::Reminder { due_on: due },
            Kind::Overdue => Notice::Overdue {
                due_on: due,
                // Suspended once the date is past the grace period.
                suspend_from: due + Duration::days(i64::from(self.policy.grace_days()) + 1),
            },
            Kind::Suspended => Notice::Suspended { on: due },
            Kind::Resumed => Notice::Resumed { on: due },
        };
        let agent = d.addressee == "agent";
        let agent_name = match (&d.contact.agent_name_enc, agent) {
            (Some(enc), true) => Some(Sensitive::new(self.keys.decrypt_str(Field::Name, enc)?)),
            _ => None,
        };
        Ok(MessageInput {
            notice,
            language: Language::parse(&d.language).unwrap_or_default(),
            pensioner_name: Sensitive::new(self.decrypt_name(&d.name_enc)?),
            addressee_is_agent: agent,
            agent_name,
        })
    }

    /// Deliveries of pensioners in the member of staff's region, by id: `status=failed`
    /// is the follow-up list (call, or book a home visit).
    pub async fn notifications(
        &self,
        staff: &Staff,
        query: &NotificationQuery,
    ) -> Result<Vec<NotificationView>> {
        require(staff, Action::ViewNotifications)?;
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
        let status = match query.status.as_deref() {
            Some(s) if !DELIVERY_STATUSES.contains(&s) => {
                return Err(AppError::invalid(
                    "status",
                    format!(
                        "{s:?} is not a delivery status: use {}",
                        DELIVERY_STATUSES.join(", ")
                    ),
                ))
            }
            s => s,
        };
        let kind = query
            .kind
            .as_deref()
            .map(|k| {
                Kind::parse(k)
                    .map(Kind::as_str)
                    .map_err(|e| AppError::invalid("kind", e.to_string()))
            })
            .transpose()?;
        let channel = query
            .channel
            .as_deref()
            .map(|c| {
                ChannelKind::parse(c)
                    .map(ChannelKind::as_str)
                    .map_err(|e| AppError::invalid("channel", e.to_string()))
            })
            .transpose()?;
        let limit = query.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(AppError::invalid("limit", "between 1 and 500"));
        }
        let rows = self
            .store
            .list_deliveries(&DeliveryFilter {
                region_prefix: &region,
                status,
                kind,
                channel,
                recipient_id: query.recipient_id,
                after_id: query.after_id.unwrap_or(0),
                limit,
            })
            .await?;
        let prefix = self.store.message_id_prefix().await?;
        Ok(rows.into_iter().map(|d| view_of(&prefix, d)).collect())
    }

    /// Applies a contact update for notifications inside the contact update's transaction;
    /// adds what changed (encrypted values as base64 of the ciphertext) to `changes`.
    pub(crate) async fn update_notification_contact(
        &self,
        tx: &mut WriteTx,
        recipient_id: i64,
        update: &NotificationContactUpdate,
        changes: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        use base64::Engine as _;
        if update.is_empty() {
            return Ok(());
        }
        let old = tx.notification_contact(recipient_id).await?;
        let mut new = old.clone();
        let b64 = |bytes: &Option<Vec<u8>>| {
            bytes
                .as_deref()
                .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
        };
        let mut secret = |name: &str,
                          value: &Option<String>,
                          field: Field,
                          slot: &mut Option<Vec<u8>>,
                          check: &dyn Fn(&str) -> Result<String>|
         -> Result<()> {
            let Some(v) = value else { return Ok(()) };
            let enc = match v.trim() {
                "" => None,
                v => Some(self.keys.encrypt_str(field, &check(v)?)),
            };
            if enc.is_none() && slot.is_none() {
                return Ok(());
            }
            changes.insert(
                name.into(),
                serde_json::json!({"old_enc": b64(slot), "new_enc": b64(&enc)}),
            );
            *slot = enc;
            Ok(())
        };
        secret(
            "email",
            &update.email,
            Field::Other,
            &mut new.email_enc,
            &|v| {
                EmailAddress::parse(v)
                    .map(|e| e.expose().to_string())
                    .map_err(|e| AppError::invalid("email", e.to_string()))
            },
        )?;
        secret(
            "app_ref",
            &update.app_ref,
            Field::Other,
            &mut new.app_ref_enc,
            &|v| {
                RecipientRef::parse(v)
                    .map(|r| r.as_str().to_string())
                    .map_err(|e| AppError::invalid("app_ref", e.to_string()))
            },
        )?;
        secret(
            "agent_name",
            &update.agent_name,
            Field::Name,
            &mut new.agent_name_enc,
            &|v| crate::text_field("agent_name", v, 64, false).map(str::to_string),
        )?;
        secret(
            "agent_phone",
            &update.agent_phone,
            Field::Phone,
            &mut new.agent_phone_enc,
            &|v| {
                PhoneNumber::parse(v)
                    .map(|p| p.expose().to_string())
                    .map_err(|e| AppError::invalid("agent_phone", e.to_string()))
            },
        )?;
        if let Some(c) = &update.preferred_channel {
            new.preferred_channel = match c.trim() {
                "" => None,
                c => Some(
                    ChannelKind::parse(c)
                        .map_err(|e| AppError::invalid("preferred_channel", e.to_string()))?
                        .as_str()
                        .to_string(),
                ),
            };
        }
        if let Some(l) = &update.language {
            new.language = match l.trim() {
                "" => None,
                l => Some(
                    Language::parse(l)
                        .map_err(|e| AppError::invalid("language", e.to_string()))?
                        .as_str()
                        .to_string(),
                ),
            };
        }
        match new.preferred_channel.as_deref() {
            Some("email") if new.email_enc.is_none() => {
                return Err(AppError::invalid(
                    "preferred_channel",
                    "email needs an email address: give `email` too",
                ))
            }
            Some("webhook") if new.app_ref_enc.is_none() => {
                return Err(AppError::invalid(
                    "preferred_channel",
                    "webhook (app push) needs the pensioner's app account: give `app_ref` too",
                ))
            }
            _ => {}
        }
        for (name, before, after) in [
            (
                "preferred_channel",
                &old.preferred_channel,
                &new.preferred_channel,
            ),
            ("language", &old.language, &new.language),
        ] {
            if before != after {
                changes.insert(
                    name.into(),
                    serde_json::json!({"old": before, "new": after}),
                );
            }
        }
        if new != old {
            tx.set_notification_contact(recipient_id, &new, &self.now_string())
                .await?;
        }
        Ok(())
    }
}
