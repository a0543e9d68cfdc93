//! Recovery of overpayments (追回): the case a confirmed death opens for every month
//! paid after the month of death, from the request to the bank to the money coming back
//! or the rest being written off.
//!
//! ```text
//! open ──request──▶ requested ──payment──▶ partially_recovered ──payment──▶ recovered
//!   │                   │  └────────────payment (the whole rest)──────────────▲
//!   │                   │                      │
//!   └──────write off────┴──────write off───────┴──▶ written_off
//! open | requested ──cancel (termination overturned)──▶ cancelled
//! ```
//!
//! `recovered`, `written_off` and `cancelled` are final. Amounts are kept so that
//! `amount = recovered + written_off + outstanding` always holds.

use crate::certification::string_enum;
use crate::{Fen, ParseError};
use chrono::NaiveDate;

string_enum!(
    /// Where a recovery case stands.
    RecoveryStatus, "recovery status", {
    Open => "open",
    Requested => "requested",
    PartiallyRecovered => "partially_recovered",
    Recovered => "recovered",
    WrittenOff => "written_off",
    Cancelled => "cancelled",
});

impl RecoveryStatus {
    /// Nothing changes a case in a final status any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RecoveryStatus::Recovered | RecoveryStatus::WrittenOff | RecoveryStatus::Cancelled
        )
    }
}

/// Why a transition is refused; each says what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("the recovery case is {0}, which is final: nothing can change it any more")]
    Closed(RecoveryStatus),
    #[error("the recovery case is already {0}: only an open case can be marked requested")]
    AlreadyRequested(RecoveryStatus),
    #[error("the recovery case is open: record the request to the bank before the money received")]
    NotRequested,
    #[error("money has been received on this case ({0} yuan): it cannot simply be cancelled")]
    MoneyReceived(Fen),
    #[error("the amount must be more than 0")]
    NotPositive,
    #[error("{amount} yuan is more than the {outstanding} yuan still outstanding")]
    MoreThanOutstanding { amount: Fen, outstanding: Fen },
    #[error("{date} is in the future")]
    InFuture { date: NaiveDate },
    #[error("{date} is before {earliest}, when {what}")]
    TooEarly {
        date: NaiveDate,
        earliest: NaiveDate,
        what: &'static str,
    },
}

/// A recovery case's state: what was overpaid, what came back, what was written off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    pub status: RecoveryStatus,
    /// What was overpaid (the total to recover).
    pub amount: Fen,
    /// The sum of the money received so far.
    pub recovered: Fen,
    pub written_off: Fen,
    pub opened_on: NaiveDate,
    pub requested_on: Option<NaiveDate>,
}

fn check_date(
    date: NaiveDate,
    earliest: NaiveDate,
    what: &'static str,
    today: NaiveDate,
) -> Result<(), RecoveryError> {
    if date > today {
        return Err(RecoveryError::InFuture { date });
    }
    if date < earliest {
        return Err(RecoveryError::TooEarly {
            date,
            earliest,
            what,
        });
    }
    Ok(())
}

impl Recovery {
    /// A new case for an overpayment found when a death is confirmed.
    pub fn open(amount: Fen, opened_on: NaiveDate) -> Recovery {
        Recovery {
            status: RecoveryStatus::Open,
            amount,
            recovered: Fen::ZERO,
            written_off: Fen::ZERO,
            opened_on,
            requested_on: None,
        }
    }

    /// What is still to come back.
    pub fn outstanding(&self) -> Fen {
        self.amount - self.recovered - self.written_off
    }

    /// The bank has been asked to return the money: by the `recover` instruction of a
    /// closed payment run, or by staff (a letter, a counter request) on a date.
    pub fn request(&self, on: NaiveDate, today: NaiveDate) -> Result<Recovery, RecoveryError> {
        match self.status {
            RecoveryStatus::Open => {}
            s if s.is_final() => return Err(RecoveryError::Closed(s)),
            s => return Err(RecoveryError::AlreadyRequested(s)),
        }
        check_date(on, self.opened_on, "the case was opened", today)?;
        Ok(Recovery {
            status: RecoveryStatus::Requested,
            requested_on: Some(on),
            ..self.clone()
        })
    }

    /// Money received on a requested case. It may not be more than is outstanding; the
    /// payment that brings the outstanding amount to nothing makes the case `recovered`.
    pub fn record_payment(
        &self,
        amount: Fen,
        received_on: NaiveDate,
        today: NaiveDate,
    ) -> Result<Recovery, RecoveryError> {
        let requested_on = match (self.status, self.requested_on) {
            (RecoveryStatus::Requested | RecoveryStatus::PartiallyRecovered, Some(on)) => on,
            // A case requested before requests had dates counts from its opening.
            (RecoveryStatus::Requested | RecoveryStatus::PartiallyRecovered, None) => {
                self.opened_on
            }
            (RecoveryStatus::Open, _) => return Err(RecoveryError::NotRequested),
            (s, _) => return Err(RecoveryError::Closed(s)),
        };
        if amount <= Fen::ZERO {
            return Err(RecoveryError::NotPositive);
        }
        let outstanding = self.outstanding();
        if amount > outstanding {
            return Err(RecoveryError::MoreThanOutstanding {
                amount,
                outstanding,
            });
        }
        check_date(
            received_on,
            requested_on,
            "the bank was asked to return it",
            today,
        )?;
        let recovered = self.recovered + amount;
        Ok(Recovery {
            status: if recovered + self.written_off == self.amount {
                RecoveryStatus::Recovered
            } else {
                RecoveryStatus::PartiallyRecovered
            },
            recovered,
            ..self.clone()
        })
    }

    /// Gives up on what is still outstanding (the estate has nothing, the amount is not
    /// worth pursuing, a court so decided): it is written off and the case is closed.
    /// Returns the new state and the amount written off.
    pub fn write_off(&self) -> Result<(Recovery, Fen), RecoveryError> {
        if self.status.is_final() {
            return Err(RecoveryError::Closed(self.status));
        }
        let amount = self.outstanding();
        Ok((
            Recovery {
                status: RecoveryStatus::WrittenOff,
                written_off: self.written_off + amount,
                ..self.clone()
            },
            amount,
        ))
    }

    /// The termination behind the case was overturned (the pensioner is alive): nothing
    /// was overpaid. Refused once money has come back, which must be refunded instead.
    pub fn cancel(&self) -> Result<Recovery, RecoveryError> {
        match self.status {
            RecoveryStatus::Open | RecoveryStatus::Requested => Ok(Recovery {
                status: RecoveryStatus::Cancelled,
                ..self.clone()
            }),
            RecoveryStatus::PartiallyRecovered => Err(RecoveryError::MoneyReceived(self.recovered)),
            s => Err(RecoveryError::Closed(s)),
        }
    }
}

/// Why the rest of a case is written off: free text for the file, required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOffReason(String);

impl WriteOffReason {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ParseError::new(
                "say why the rest is written off, e.g. the estate has no assets (遗产不足)",
            ));
        }
        if t.chars().count() > Self::MAX_CHARS {
            return Err(ParseError::new(format!(
                "at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if t.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ParseError::new("contains control characters"));
        }
        Ok(WriteOffReason(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The bank's or counter's reference for money received (流水号) or for a request
/// (a letter number): one line, at most 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryReference(String);

impl RecoveryReference {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        if t.is_empty() {
            return Err(ParseError::new(
                "give the reference of the bank transfer or receipt (流水号)",
            ));
        }
        if t.chars().count() > Self::MAX_CHARS {
            return Err(ParseError::new(format!(
                "at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if t.chars().any(char::is_control) {
            return Err(ParseError::new("contains control characters"));
        }
        Ok(RecoveryReference(t.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecoveryStatus::*;

    fn d(s: &str) -> NaiveDate {
        crate::parse_date(s).unwrap()
    }

    const TODAY: &str = "2026-12-20";

    fn opened() -> Recovery {
        Recovery::open(Fen::new(600_000), d("2026-11-30"))
    }

    fn requested() -> Recovery {
        opened().request(d("2026-12-01"), d(TODAY)).unwrap()
    }

    fn partial() -> Recovery {
        requested()
            .record_payment(Fen::new(200_000), d("2026-12-05"), d(TODAY))
            .unwrap()
    }

    fn in_status(status: RecoveryStatus) -> Recovery {
        match status {
            Open => opened(),
            Requested => requested(),
            PartiallyRecovered => partial(),
            Recovered => partial()
                .record_payment(Fen::new(400_000), d("2026-12-06"), d(TODAY))
                .unwrap(),
            WrittenOff => partial().write_off().unwrap().0,
            Cancelled => requested().cancel().unwrap(),
        }
    }

    #[test]
    fn every_status_is_reachable_and_keeps_the_sums() {
        for s in RecoveryStatus::ALL {
            let r = in_status(*s);
            assert_eq!(r.status, *s);
            assert_eq!(r.amount, r.recovered + r.written_off + r.outstanding());
            assert_eq!(RecoveryStatus::parse(s.as_str()).unwrap(), *s);
        }
        assert_eq!(
            RecoveryStatus::ALL
                .iter()
                .filter(|s| s.is_final())
                .copied()
                .collect::<Vec<_>>(),
            vec![Recovered, WrittenOff, Cancelled]
        );
    }

    #[test]
    fn open_to_requested_with_its_date() {
        let r = requested();
        assert_eq!(r.status, Requested);
        assert_eq!(r.requested_on, Some(d("2026-12-01")));
        assert_eq!(r.outstanding(), Fen::new(600_000));
        // The request may be dated the day the case was opened, or today.
        assert!(opened().request(d("2026-11-30"), d(TODAY)).is_ok());
        assert!(opened().request(d(TODAY), d(TODAY)).is_ok());
    }

    #[test]
    fn a_request_is_refused_unless_open_or_dated_outside_the_case() {
        assert_eq!(
            requested().request(d("2026-12-02"), d(TODAY)),
            Err(RecoveryError::AlreadyRequested(Requested))
        );
        assert_eq!(
            partial().request(d("2026-12-02"), d(TODAY)),
            Err(RecoveryError::AlreadyRequested(PartiallyRecovered))
        );
        for s in [Recovered, WrittenOff, Cancelled] {
            assert_eq!(
                in_status(s).request(d("2026-12-02"), d(TODAY)),
                Err(RecoveryError::Closed(s))
            );
        }
        assert_eq!(
            opened().request(d("2026-12-21"), d(TODAY)),
            Err(RecoveryError::InFuture {
                date: d("2026-12-21")
            })
        );
        assert!(matches!(
            opened().request(d("2026-11-29"), d(TODAY)),
            Err(RecoveryError::TooEarly { .. })
        ));
    }

    #[test]
    fn payments_add_up_to_recovered() {
        let r = partial();
        assert_eq!(
            (r.status, r.recovered, r.outstanding()),
            (PartiallyRecovered, Fen::new(200_000), Fen::new(400_000))
        );
        let r = r
            .record_payment(Fen::new(150_000), d("2026-12-10"), d(TODAY))
            .unwrap();
        assert_eq!(
            (r.status, r.outstanding()),
            (PartiallyRecovered, Fen::new(250_000))
        );
        let r = r
            .record_payment(Fen::new(250_000), d("2026-12-11"), d(TODAY))
            .unwrap();
        assert_eq!(
            (r.status, r.recovered, r.outstanding()),
            (Recovered, Fen::new(600_000), Fen::ZERO)
        );
        // All at once, straight from requested.
        let r = requested()
            .record_payment(Fen::new(600_000), d("2026-12-01"), d(TODAY))
            .unwrap();
        assert_eq!(r.status, Recovered);
        // Payments may be entered late, in any order, on or after the request.
        assert!(partial()
            .record_payment(Fen::new(1), d("2026-12-01"), d(TODAY))
            .is_ok());
    }

    #[test]
    fn a_payment_is_refused_before_the_request_after_closing_or_beyond_what_is_owed() {
        assert_eq!(
            opened().record_payment(Fen::new(1), d("2026-12-01"), d(TODAY)),
            Err(RecoveryError::NotRequested)
        );
        for s in [Recovered, WrittenOff, Cancelled] {
            assert_eq!(
                in_status(s).record_payment(Fen::new(1), d("2026-12-10"), d(TODAY)),
                Err(RecoveryError::Closed(s))
            );
        }
        assert_eq!(
            partial().record_payment(Fen::new(400_001), d("2026-12-10"), d(TODAY)),
            Err(RecoveryError::MoreThanOutstanding {
                amount: Fen::new(400_001),
                outstanding: Fen::new(400_000)
            })
        );
        let message = partial()
            .record_payment(Fen::new(400_001), d("2026-12-10"), d(TODAY))
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "4000.01 yuan is more than the 4000.00 yuan still outstanding"
        );
        for zero in [Fen::ZERO, Fen::new(-5)] {
            assert_eq!(
                requested().record_payment(zero, d("2026-12-10"), d(TODAY)),
                Err(RecoveryError::NotPositive)
            );
        }
        assert_eq!(
            requested().record_payment(Fen::new(1), d("2026-12-21"), d(TODAY)),
            Err(RecoveryError::InFuture {
                date: d("2026-12-21")
            })
        );
        assert!(matches!(
            requested().record_payment(Fen::new(1), d("2026-11-30"), d(TODAY)),
            Err(RecoveryError::TooEarly { .. })
        ));
    }

    #[test]
    fn a_case_requested_without_a_date_counts_from_its_opening() {
        let r = Recovery {
            status: Requested,
            requested_on: None,
            ..opened()
        };
        assert!(r
            .record_payment(Fen::new(1), d("2026-11-30"), d(TODAY))
            .is_ok());
        assert!(r
            .record_payment(Fen::new(1), d("2026-11-29"), d(TODAY))
            .is_err());
    }

    #[test]
    fn write_off_closes_with_the_outstanding_amount_from_any_open_status() {
        let (r, amount) = opened().write_off().unwrap();
        assert_eq!(
            (r.status, amount, r.written_off, r.outstanding()),
            (WrittenOff, Fen::new(600_000), Fen::new(600_000), Fen::ZERO)
        );
        let (r, amount) = requested().write_off().unwrap();
        assert_eq!((r.status, amount), (WrittenOff, Fen::new(600_000)));
        let (r, amount) = partial().write_off().unwrap();
        assert_eq!(
            (r.status, amount, r.recovered, r.written_off),
            (
                WrittenOff,
                Fen::new(400_000),
                Fen::new(200_000),
                Fen::new(400_000)
            )
        );
    }

    #[test]
    fn write_off_is_refused_once_final() {
        for s in [Recovered, WrittenOff, Cancelled] {
            assert_eq!(in_status(s).write_off(), Err(RecoveryError::Closed(s)));
        }
    }

    #[test]
    fn cancel_only_before_money_came_back() {
        assert_eq!(opened().cancel().unwrap().status, Cancelled);
        assert_eq!(requested().cancel().unwrap().status, Cancelled);
        assert_eq!(
            partial().cancel(),
            Err(RecoveryError::MoneyReceived(Fen::new(200_000)))
        );
        for s in [Recovered, WrittenOff, Cancelled] {
            assert_eq!(in_status(s).cancel(), Err(RecoveryError::Closed(s)));
        }
    }

    #[test]
    fn reasons_and_references_are_one_checked_line() {
        assert_eq!(
            WriteOffReason::parse("  遗产不足，无法追回 ")
                .unwrap()
                .as_str(),
            "遗产不足，无法追回"
        );
        assert!(WriteOffReason::parse("line one\nline two").is_ok());
        for bad in ["", "   ", "a\u{0}b"] {
            assert!(WriteOffReason::parse(bad).is_err(), "{bad:?}");
        }
        assert!(WriteOffReason::parse(&"x".repeat(501)).is_err());
        assert_eq!(
            RecoveryReference::parse(" ICBC-20261205-0001 ")
                .unwrap()
                .as_str(),
            "ICBC-20261205-0001"
        );
        for bad in ["", "a\nb", &"x".repeat(101)] {
            assert!(RecoveryReference::parse(bad).is_err(), "{bad:?}");
        }
    }
}
