//! lifecert's domain: identifiers, money, months, the certification policy, the
//! payment state machine and the payment-ledger rules. Pure: no I/O, no clock.

pub mod authz;
pub mod certification;
pub mod feed;
pub mod money;
pub mod month;
pub mod national_id;
pub mod payment;
pub mod policy;
pub mod recipient;
pub mod recovery;
pub mod region;
pub mod sensitive;

pub use authz::{Action, RegionScope, Role};
pub use certification::{Channel, FailReason, Outcome};
pub use money::Fen;
pub use month::{add_months_clamped, YearMonth};
pub use national_id::{Gender, IdScheme, NationalId};
pub use payment::{Instruction, InstructionKind, LedgerView, PaymentStatus, SuspensionReason};
pub use policy::{Anchor, Policy};
pub use recipient::{CountryCode, InsuranceType, Residence};
pub use recovery::{Recovery, RecoveryError, RecoveryReference, RecoveryStatus, WriteOffReason};
pub use region::RegionCode;
pub use sensitive::Sensitive;

/// A value that failed to parse, with a message meant for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

impl ParseError {
    pub fn new(message: impl Into<String>) -> Self {
        ParseError(message.into())
    }
}

/// Parses a calendar date written `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<chrono::NaiveDate, ParseError> {
    let t = s.trim();
    let ok_shape = t.len() == 10
        && t.as_bytes()[4] == b'-'
        && t.as_bytes()[7] == b'-'
        && t.bytes()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !ok_shape {
        return Err(ParseError::new(format!(
            "{t:?} is not a date: write it as YYYY-MM-DD, e.g. 2025-03-31"
        )));
    }
    // Read by hand: feeds parse tens of millions of dates, and chrono's format parser is
    // several times slower than this.
    let b = t.as_bytes();
    let num = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
    };
    chrono::NaiveDate::from_ymd_opt(num(0, 4) as i32, num(5, 7), num(8, 10))
        .ok_or_else(|| ParseError::new(format!("{t:?} is not a real calendar date")))
}
