//! Looking pensioners up: one pensioner's record, and the headline counts.

use crate::{date_str, parse_stored_date, App, AppError, Result};
use chrono::NaiveDate;
use lifecert_domain::NationalId;
use lifecert_store::{Counts, RecipientRow, WriteTx};
use serde::Serialize;

/// What staff see of one pensioner. The ID number is masked (`110105********002X`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RecipientView {
    /// lifecert's id of the pensioner (the API's `/recipients/{id}`, feed reports).
    pub recipient_id: i64,
    pub id_number_masked: String,
    pub name_masked: String,
    pub status: String,
    pub suspension_reason: Option<String>,
    /// The last certification, counting the pension's approval (first day of the benefit
    /// start month) for a pensioner never certified since.
    pub last_certified_on: String,
    pub next_due_on: String,
    pub region_code: String,
    pub monthly_amount_fen: i64,
    pub gender: String,
    pub birth_date: String,
    pub insurance_type: String,
    pub benefit_start: String,
    pub residence: String,
    pub country: Option<String>,
    pub death_date: Option<String>,
    pub paid_through: Option<String>,
    pub certifications: Vec<CertificationView>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertificationView {
    pub certified_on: String,
    pub channel: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub actor: String,
}

/// `张*明`: enough for staff on the phone to confirm whom they are talking about.
pub fn mask_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    match chars.len() {
        0 => String::new(),
        1 => "*".to_string(),
        2 => format!("{}*", chars[0]),
        n => format!("{}{}{}", chars[0], "*".repeat(n - 2), chars[n - 1]),
    }
}

pub(crate) fn not_registered(id: &NationalId) -> AppError {
    AppError::NotFound(format!(
        "no pensioner with ID number {} is registered: check the number, or import the pensioner first",
        id.masked()
    ))
}

pub(crate) fn effective_certified_on(r: &RecipientRow) -> Result<NaiveDate> {
    certified_on(r.last_certified_on.as_deref(), &r.benefit_start)
}

/// The last certification, or for a pensioner never certified the start of the benefit.
pub(crate) fn certified_on(
    last_certified_on: Option<&str>,
    benefit_start: &str,
) -> Result<NaiveDate> {
    match last_certified_on {
        Some(d) => parse_stored_date(d),
        None => Ok(crate::parse_stored_month(benefit_start)?.first_day()),
    }
}

impl App {
    /// Loads a pensioner inside a write transaction (the row is then stable until commit).
    pub(crate) async fn recipient_for_update(
        &self,
        tx: &mut WriteTx,
        id: &NationalId,
    ) -> Result<RecipientRow> {
        tx.recipient_by_bidx(&self.id_bidx(id))
            .await?
            .ok_or_else(|| not_registered(id))
    }

    pub async fn recipient_view(&self, id: &NationalId) -> Result<RecipientView> {
        let r = self
            .store
            .recipient_by_bidx(&self.id_bidx(id))
            .await?
            .ok_or_else(|| not_registered(id))?;
        let stored_id = self.decrypt_id(&r.id_number_enc)?;
        let name = self.decrypt_name(&r.name_enc)?;
        let certifications = self
            .store
            .certifications_of(r.id)
            .await?
            .into_iter()
            .map(|c| CertificationView {
                certified_on: c.certified_on,
                channel: c.channel,
                outcome: c.outcome,
                reason: c.reason,
                actor: c.actor,
            })
            .collect();
        Ok(RecipientView {
            recipient_id: r.id,
            id_number_masked: stored_id.masked(),
            name_masked: mask_name(&name),
            last_certified_on: date_str(effective_certified_on(&r)?),
            status: r.status,
            suspension_reason: r.suspension_reason,
            next_due_on: r.next_due_on,
            region_code: r.region_code,
            monthly_amount_fen: r.monthly_amount_fen,
            gender: r.gender,
            birth_date: r.birth_date,
            insurance_type: r.insurance_type,
            benefit_start: r.benefit_start,
            residence: r.residence,
            country: r.country,
            death_date: r.death_date,
            paid_through: r.settled_through,
            certifications,
        })
    }

    pub async fn counts(&self, as_of: NaiveDate) -> Result<Counts> {
        Ok(self.store.counts(&date_str(as_of)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::mask_name;

    #[test]
    fn masks_names() {
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳明华"), "欧**华");
        assert_eq!(mask_name("王小明"), "王*明");
    }
}
