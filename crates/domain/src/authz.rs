//! Staff roles (GB/T 44856-2024 岗位: 认证岗, 复核岗, 咨询岗, plus supervisor, auditor and
//! partner agencies) and the one table that says which role may do what.

use crate::certification::string_enum;

string_enum!(
    /// A member of staff's role.
    Role, "role", {
    Certifier => "certifier",
    Reviewer => "reviewer",
    Consultant => "consultant",
    Supervisor => "supervisor",
    Auditor => "auditor",
    Partner => "partner",
});

string_enum!(
    /// Something a request asks to do.
    Action, "action", {
    ViewRecipient => "view_recipient",
    RevealIdNumber => "reveal_id_number",
    RecordCertification => "record_certification",
    ViewReviewCases => "view_review_cases",
    DecideReviewCase => "decide_review_case",
    ViewAudit => "view_audit",
    CreateRecipient => "create_recipient",
    UpdateRecipient => "update_recipient",
    LodgeAppeal => "lodge_appeal",
    BookHomeVisit => "book_home_visit",
    AssignHomeVisit => "assign_home_visit",
    CompleteHomeVisit => "complete_home_visit",
    RecordServiceRecord => "record_service_record",
    ViewRecoveries => "view_recoveries",
    ManageRecovery => "manage_recovery",
    WriteOffRecovery => "write_off_recovery",
    ViewJobs => "view_jobs",
    RetryJob => "retry_job",
    ViewNotifications => "view_notifications",
});

impl Role {
    /// The role × action table. Everything not listed is refused.
    pub fn may(self, action: Action) -> bool {
        use Action::*;
        use Role::*;
        match action {
            // Auditors read the trail, not the pensioners.
            ViewRecipient => matches!(
                self,
                Certifier | Reviewer | Consultant | Supervisor | Partner
            ),
            // Consultants and partners see masked numbers only.
            RevealIdNumber => matches!(self, Certifier | Reviewer | Supervisor),
            RecordCertification => matches!(self, Certifier | Partner),
            ViewReviewCases => matches!(self, Reviewer | Supervisor | Auditor),
            DecideReviewCase => matches!(self, Reviewer),
            ViewAudit => matches!(self, Auditor | Supervisor),
            CreateRecipient => matches!(self, Supervisor),
            // Contact details change at the counter; amounts and status do not change here.
            UpdateRecipient => matches!(self, Certifier | Supervisor),
            // Staff lodge appeals on a pensioner's behalf; reviewers decide them.
            LodgeAppeal => matches!(self, Certifier | Consultant | Supervisor),
            BookHomeVisit => matches!(self, Certifier | Consultant | Supervisor | Partner),
            AssignHomeVisit => matches!(self, Supervisor),
            CompleteHomeVisit => matches!(self, Certifier),
            RecordServiceRecord => matches!(
                self,
                Certifier | Reviewer | Consultant | Supervisor | Partner
            ),
            // Recovery of overpayments (追回): reviewers confirmed the deaths behind the
            // cases and auditors check the money; supervisors record what the bank was
            // asked and what came back, and write off the rest (not their own entries).
            ViewRecoveries => matches!(self, Reviewer | Supervisor | Auditor),
            ManageRecovery => matches!(self, Supervisor),
            WriteOffRecovery => matches!(self, Supervisor),
            // Background jobs (the daily cycle, payment exports, feed uploads): supervisors
            // run the service and auditors check that each period's job ran once.
            ViewJobs => matches!(self, Supervisor | Auditor),
            RetryJob => matches!(self, Supervisor),
            // Notifications that could not be delivered are followed up (a call, a home
            // visit) by the supervisor who runs the region's service.
            ViewNotifications => matches!(self, Supervisor),
        }
    }

    /// May record a certification for a pensioner outside the user's own region
    /// (异地认证), seeing only a minimal view of them.
    pub fn may_certify_elsewhere(self) -> bool {
        matches!(self, Role::Certifier | Role::Partner)
    }
}

/// A region prefix such as `44` (province), `4403` (city) or `440305` (district); the
/// empty prefix is the whole country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionScope(String);

impl RegionScope {
    pub fn parse(s: &str) -> Result<Self, crate::ParseError> {
        let t = s.trim();
        if t.len() > 6 || !t.bytes().all(|b| b.is_ascii_digit()) || t.len() % 2 == 1 {
            return Err(crate::ParseError::new(format!(
                "{t:?} is not a region prefix: use 2, 4 or 6 digits of a GB/T 2260 code (44, 4403, 440305), or nothing for the whole country"
            )));
        }
        Ok(RegionScope(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn contains(&self, region_code: &str) -> bool {
        region_code.starts_with(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_least_privilege() {
        use Action::*;
        // Only reviewers decide; only certifiers and partners record certifications.
        for role in Role::ALL {
            assert_eq!(role.may(DecideReviewCase), *role == Role::Reviewer);
            assert_eq!(
                role.may(RecordCertification),
                matches!(role, Role::Certifier | Role::Partner)
            );
        }
        assert!(!Role::Auditor.may(ViewRecipient));
        assert!(!Role::Consultant.may(RevealIdNumber));
        assert!(Role::Auditor.may(ViewAudit));
        for role in Role::ALL {
            assert_eq!(
                role.may(ViewRecoveries),
                matches!(role, Role::Reviewer | Role::Supervisor | Role::Auditor)
            );
            assert_eq!(role.may(ManageRecovery), *role == Role::Supervisor);
            assert_eq!(role.may(WriteOffRecovery), *role == Role::Supervisor);
            assert_eq!(
                role.may(ViewJobs),
                matches!(role, Role::Supervisor | Role::Auditor)
            );
            assert_eq!(role.may(RetryJob), *role == Role::Supervisor);
            assert_eq!(role.may(ViewNotifications), *role == Role::Supervisor);
        }
    }

    #[test]
    fn scopes() {
        let s = RegionScope::parse("4403").unwrap();
        assert!(s.contains("440305"));
        assert!(!s.contains("440105"));
        assert!(RegionScope::parse("").unwrap().contains("110105"));
        assert!(RegionScope::parse("443").is_err());
    }
}
