//! The payment state machine and the rules that turn a pensioner's ledger position
//! into one payment instruction for a month.

use crate::certification::string_enum;
use crate::{Fen, ParseError, YearMonth};
use std::collections::BTreeSet;

string_enum!(
    /// Why payment is suspended (暂停发放).
    SuspensionReason, "suspension reason", {
    Overdue => "overdue",
    DeathReported => "death_reported",
    Doubtful => "doubtful",
    Imprisonment => "imprisonment",
    Manual => "manual",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Active,
    Suspended(SuspensionReason),
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("payment is terminated: nothing can change it any more")]
    Terminated,
    #[error("payment is already suspended ({0})")]
    AlreadySuspended(SuspensionReason),
    #[error("payment is not suspended for {expected} (it is {actual})")]
    NotSuspendedFor {
        expected: SuspensionReason,
        actual: String,
    },
    #[error("a death must be reported (and so suspend payment) before it can be confirmed")]
    DeathNotReported,
}

impl PaymentStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Active => "active",
            PaymentStatus::Suspended(_) => "suspended",
            PaymentStatus::Terminated => "terminated",
        }
    }

    pub fn suspension_reason(&self) -> Option<SuspensionReason> {
        match self {
            PaymentStatus::Suspended(r) => Some(*r),
            _ => None,
        }
    }

    /// Rebuilds a status from its stored form.
    pub fn from_parts(status: &str, reason: Option<&str>) -> Result<Self, ParseError> {
        match (status, reason) {
            ("active", _) => Ok(PaymentStatus::Active),
            ("terminated", _) => Ok(PaymentStatus::Terminated),
            ("suspended", Some(r)) => Ok(PaymentStatus::Suspended(SuspensionReason::parse(r)?)),
            (s, r) => Err(ParseError::new(format!(
                "stored payment status {s:?} / {r:?} is not valid"
            ))),
        }
    }

    /// Suspends payment. A reported death outranks any other reason (it must never be
    /// lifted by, say, a passing certification for `overdue`); other reasons do not stack.
    pub fn suspend(self, reason: SuspensionReason) -> Result<Self, TransitionError> {
        match self {
            PaymentStatus::Terminated => Err(TransitionError::Terminated),
            PaymentStatus::Active => Ok(PaymentStatus::Suspended(reason)),
            PaymentStatus::Suspended(current) if current == reason => {
                Err(TransitionError::AlreadySuspended(current))
            }
            PaymentStatus::Suspended(_) if reason == SuspensionReason::DeathReported => {
                Ok(PaymentStatus::Suspended(reason))
            }
            PaymentStatus::Suspended(current) => Err(TransitionError::AlreadySuspended(current)),
        }
    }

    /// Lifts a suspension when its reason is cleared.
    pub fn resume(self, cleared: SuspensionReason) -> Result<Self, TransitionError> {
        match self {
            PaymentStatus::Suspended(r) if r == cleared => Ok(PaymentStatus::Active),
            PaymentStatus::Terminated => Err(TransitionError::Terminated),
            other => Err(TransitionError::NotSuspendedFor {
                expected: cleared,
                actual: other.describe(),
            }),
        }
    }

    /// Terminates payment after a reviewer confirmed a reported death.
    pub fn terminate_for_death(self) -> Result<Self, TransitionError> {
        match self {
            PaymentStatus::Suspended(SuspensionReason::DeathReported) => {
                Ok(PaymentStatus::Terminated)
            }
            PaymentStatus::Terminated => Err(TransitionError::Terminated),
            _ => Err(TransitionError::DeathNotReported),
        }
    }

    /// An upheld appeal restores payment whatever stopped it (withheld months are then
    /// back-paid by the ledger).
    pub fn reinstate(self) -> Result<Self, TransitionError> {
        match self {
            PaymentStatus::Active => Err(TransitionError::NotSuspendedFor {
                expected: SuspensionReason::Manual,
                actual: "active".to_string(),
            }),
            _ => Ok(PaymentStatus::Active),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            PaymentStatus::Suspended(r) => format!("suspended ({r})"),
            other => other.as_str().to_string(),
        }
    }
}

string_enum!(
    /// One line of a monthly payment run.
    InstructionKind, "instruction kind", {
    Pay => "pay",
    Withhold => "withhold",
    BackPay => "back_pay",
    Stop => "stop",
    Recover => "recover",
});

/// What the ledger knows about one pensioner before month `M` is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerView {
    pub status: PaymentStatus,
    pub suspension_reason: Option<SuspensionReason>,
    pub monthly: Fen,
    pub benefit_start: YearMonth,
    /// Every month up to and including this one is settled (paid, or forfeited while
    /// imprisoned). `None` for a pensioner no payment run has settled yet and who came
    /// without `paid_through`: the previous system is taken to have paid every month
    /// before the first run that includes them.
    pub settled_through: Option<YearMonth>,
    /// Months after `settled_through` that closed runs already settled (after a gap of
    /// withheld months that are still owed).
    pub settled_after: BTreeSet<YearMonth>,
    /// An overpayment found at death confirmation and not yet sent out as `recover`.
    pub recovery_due: Option<(Vec<YearMonth>, Fen)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub kind: InstructionKind,
    /// The months the line covers: the month paid or withheld, the months back-paid
    /// (owed months plus the current one), or the overpaid months to recover.
    pub months: Vec<YearMonth>,
    /// Money paid out (`pay`, `back_pay`), withheld (`withhold`) or to recover (`recover`).
    pub amount: Fen,
    pub reason: Option<SuspensionReason>,
}

impl LedgerView {
    /// Months the pensioner is owed up to and including `month`.
    pub fn owed_months(&self, month: YearMonth) -> Vec<YearMonth> {
        let cursor = self.settled_through.unwrap_or(month.prev());
        let start = cursor.next().max(self.benefit_start);
        start
            .through(month)
            .filter(|m| !self.settled_after.contains(m))
            .collect()
    }

    /// The instruction for `month`, or `None` when there is nothing to do (the month is
    /// already settled or the pension has not started yet).
    pub fn instruction_for(&self, month: YearMonth) -> Option<Instruction> {
        if self.status == PaymentStatus::Terminated {
            return Some(match &self.recovery_due {
                Some((months, amount)) => Instruction {
                    kind: InstructionKind::Recover,
                    months: months.clone(),
                    amount: *amount,
                    reason: None,
                },
                None => Instruction {
                    kind: InstructionKind::Stop,
                    months: vec![month],
                    amount: Fen::ZERO,
                    reason: None,
                },
            });
        }
        let owed = self.owed_months(month);
        if !owed.contains(&month) {
            return None;
        }
        Some(match self.status {
            PaymentStatus::Suspended(reason) => Instruction {
                kind: InstructionKind::Withhold,
                months: vec![month],
                amount: self.monthly,
                reason: Some(reason),
            },
            _ if owed.len() == 1 => Instruction {
                kind: InstructionKind::Pay,
                months: owed,
                amount: self.monthly,
                reason: None,
            },
            _ => Instruction {
                kind: InstructionKind::BackPay,
                amount: self.monthly.times(owed.len()),
                months: owed,
                reason: None,
            },
        })
    }
}

impl Instruction {
    /// Months this line settles once its run is closed: paid months, and months withheld
    /// for imprisonment, which are forfeited rather than owed.
    pub fn settles(&self) -> &[YearMonth] {
        match (self.kind, self.reason) {
            (InstructionKind::Pay | InstructionKind::BackPay, _) => &self.months,
            (InstructionKind::Withhold, Some(SuspensionReason::Imprisonment)) => &self.months,
            _ => &[],
        }
    }

    /// Money that leaves the agency with this line.
    pub fn paid_out(&self) -> Fen {
        match self.kind {
            InstructionKind::Pay | InstructionKind::BackPay => self.amount,
            _ => Fen::ZERO,
        }
    }
}

/// Moves the settled cursor forward over a contiguous run of settled months, returning
/// the new cursor and the settled months still beyond it.
pub fn advance_settled(
    cursor: YearMonth,
    benefit_start: YearMonth,
    mut settled: BTreeSet<YearMonth>,
) -> (YearMonth, BTreeSet<YearMonth>) {
    // Months before the pension started are never owed.
    let mut cursor = cursor.max(benefit_start.prev());
    settled.retain(|m| *m > cursor);
    while settled.remove(&cursor.next()) {
        cursor = cursor.next();
    }
    (cursor, settled)
}

/// Months paid after the month of death: every one is an overpayment to recover.
/// `forfeited` are months withheld for imprisonment, which were settled but never paid.
pub fn overpaid_months(
    death_month: YearMonth,
    settled_through: Option<YearMonth>,
    paid_after: &BTreeSet<YearMonth>,
    forfeited: &BTreeSet<YearMonth>,
) -> Vec<YearMonth> {
    let through = settled_through.unwrap_or(death_month);
    let mut months: BTreeSet<YearMonth> = death_month
        .next()
        .through(through)
        .filter(|m| !forfeited.contains(m))
        .collect();
    months.extend(paid_after.iter().filter(|m| **m > death_month));
    months.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ym(s: &str) -> YearMonth {
        YearMonth::parse(s).unwrap()
    }

    fn view(status: PaymentStatus, settled_through: Option<&str>) -> LedgerView {
        LedgerView {
            status,
            suspension_reason: status.suspension_reason(),
            monthly: Fen::new(300_000),
            benefit_start: ym("2015-01"),
            settled_through: settled_through.map(ym),
            settled_after: BTreeSet::new(),
            recovery_due: None,
        }
    }

    #[test]
    fn state_machine() {
        use PaymentStatus::*;
        use SuspensionReason::*;
        let s = Active.suspend(Overdue).unwrap();
        assert_eq!(s, Suspended(Overdue));
        assert_eq!(s.resume(Overdue).unwrap(), Active);
        assert!(s.resume(DeathReported).is_err());
        assert_eq!(s.suspend(DeathReported).unwrap(), Suspended(DeathReported));
        assert!(Suspended(DeathReported).suspend(Overdue).is_err());
        assert!(Active.terminate_for_death().is_err());
        assert_eq!(
            Suspended(DeathReported).terminate_for_death().unwrap(),
            Terminated
        );
        assert_eq!(Terminated.suspend(Manual), Err(TransitionError::Terminated));
        assert_eq!(Terminated.reinstate().unwrap(), Active);
        assert_eq!(Suspended(Doubtful).reinstate().unwrap(), Active);
        assert!(Active.reinstate().is_err());
        assert_eq!(
            PaymentStatus::from_parts("suspended", Some("imprisonment")).unwrap(),
            Suspended(Imprisonment)
        );
    }

    #[test]
    fn pays_the_month_when_everything_before_is_settled() {
        let v = view(PaymentStatus::Active, Some("2026-10"));
        let i = v.instruction_for(ym("2026-11")).unwrap();
        assert_eq!(i.kind, InstructionKind::Pay);
        assert_eq!(i.amount, Fen::new(300_000));
        // Already paid: nothing to do.
        assert_eq!(v.instruction_for(ym("2026-10")), None);
    }

    #[test]
    fn without_paid_through_the_first_run_pays_only_its_month() {
        let v = view(PaymentStatus::Active, None);
        assert_eq!(
            v.instruction_for(ym("2026-11")).unwrap().kind,
            InstructionKind::Pay
        );
    }

    #[test]
    fn withheld_months_are_back_paid_with_the_current_one() {
        let v = view(PaymentStatus::Active, Some("2026-08"));
        let i = v.instruction_for(ym("2026-11")).unwrap();
        assert_eq!(i.kind, InstructionKind::BackPay);
        assert_eq!(i.months, vec![ym("2026-09"), ym("2026-10"), ym("2026-11")]);
        assert_eq!(i.amount, Fen::new(900_000));
    }

    #[test]
    fn suspended_is_withheld_and_terminated_stops_or_recovers() {
        let v = view(
            PaymentStatus::Suspended(SuspensionReason::Overdue),
            Some("2026-10"),
        );
        let i = v.instruction_for(ym("2026-11")).unwrap();
        assert_eq!(
            (i.kind, i.reason),
            (InstructionKind::Withhold, Some(SuspensionReason::Overdue))
        );
        assert!(i.settles().is_empty());
        let mut t = view(PaymentStatus::Terminated, Some("2026-10"));
        assert_eq!(
            t.instruction_for(ym("2026-11")).unwrap().kind,
            InstructionKind::Stop
        );
        t.recovery_due = Some((vec![ym("2026-09"), ym("2026-10")], Fen::new(600_000)));
        let r = t.instruction_for(ym("2026-11")).unwrap();
        assert_eq!(
            (r.kind, r.amount),
            (InstructionKind::Recover, Fen::new(600_000))
        );
    }

    #[test]
    fn imprisonment_months_are_forfeited_not_back_paid() {
        let w = Instruction {
            kind: InstructionKind::Withhold,
            months: vec![ym("2026-09")],
            amount: Fen::new(300_000),
            reason: Some(SuspensionReason::Imprisonment),
        };
        let (cursor, rest) = advance_settled(
            ym("2026-08"),
            ym("2015-01"),
            w.settles().iter().copied().collect(),
        );
        assert_eq!(cursor, ym("2026-09"));
        assert!(rest.is_empty());
    }

    #[test]
    fn cursor_stops_at_a_gap_and_keeps_later_settled_months() {
        let settled: BTreeSet<_> = [ym("2026-09"), ym("2026-11")].into_iter().collect();
        let (cursor, rest) = advance_settled(ym("2026-08"), ym("2015-01"), settled);
        assert_eq!(cursor, ym("2026-09"));
        assert_eq!(rest.into_iter().collect::<Vec<_>>(), vec![ym("2026-11")]);
        let mut v = view(PaymentStatus::Active, Some("2026-09"));
        v.settled_after.insert(ym("2026-11"));
        let i = v.instruction_for(ym("2026-12")).unwrap();
        assert_eq!(i.months, vec![ym("2026-10"), ym("2026-12")]);
    }

    #[test]
    fn overpayment_after_death_month() {
        let none = BTreeSet::new();
        let months = overpaid_months(ym("2026-08"), Some(ym("2026-10")), &none, &none);
        assert_eq!(months, vec![ym("2026-09"), ym("2026-10")]);
        assert!(overpaid_months(ym("2026-10"), Some(ym("2026-10")), &none, &none).is_empty());
        let forfeited: BTreeSet<_> = [ym("2026-09")].into_iter().collect();
        assert_eq!(
            overpaid_months(ym("2026-08"), Some(ym("2026-10")), &none, &forfeited),
            vec![ym("2026-10")]
        );
    }
}
