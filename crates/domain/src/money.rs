//! Money as integer fen (1/100 yuan); never floating point.

use crate::ParseError;
use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Fen(i64);

/// A monthly pension above this is certainly a typo (one million yuan).
const MAX_MONTHLY_FEN: i64 = 100_000_000;

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub fn new(fen: i64) -> Self {
        Fen(fen)
    }

    pub fn get(self) -> i64 {
        self.0
    }

    /// Parses an amount written in yuan with at most two decimals (`1200`, `1200.5`,
    /// `1200.50`). Must be positive; `what` names the amount in the error messages.
    pub fn parse_yuan(s: &str, what: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        let bad = || {
            ParseError::new(format!(
                "{t:?} is not an amount: write yuan with at most two decimals, e.g. 3567.20"
            ))
        };
        let (whole, frac) = match t.split_once('.') {
            Some((w, f)) => (w, f),
            None => (t, ""),
        };
        if whole.is_empty()
            || whole.len() > 9
            || frac.len() > 2
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || (t.contains('.') && frac.is_empty())
        {
            return Err(bad());
        }
        let whole: i64 = whole.parse().map_err(|_| bad())?;
        let frac_fen: i64 = match frac.len() {
            0 => 0,
            1 => frac.parse::<i64>().map_err(|_| bad())? * 10,
            _ => frac.parse::<i64>().map_err(|_| bad())?,
        };
        let fen = whole * 100 + frac_fen;
        if fen <= 0 {
            return Err(ParseError::new(format!("the {what} must be more than 0")));
        }
        Ok(Fen(fen))
    }

    /// Parses a monthly amount written in yuan with at most two decimals (`3500`, `3500.5`,
    /// `3500.50`). Must be positive.
    pub fn parse_monthly_yuan(s: &str) -> Result<Self, ParseError> {
        let fen = Fen::parse_yuan(s, "monthly amount")?;
        if fen.0 > MAX_MONTHLY_FEN {
            return Err(ParseError::new(format!(
                "{} yuan a month is more than 1,000,000 yuan: check the amount",
                s.trim()
            )));
        }
        Ok(fen)
    }

    pub fn times(self, n: usize) -> Fen {
        Fen(self.0 * n as i64)
    }
}

impl std::ops::Add for Fen {
    type Output = Fen;
    fn add(self, rhs: Fen) -> Fen {
        Fen(self.0 + rhs.0)
    }
}

impl std::ops::Sub for Fen {
    type Output = Fen;
    fn sub(self, rhs: Fen) -> Fen {
        Fen(self.0 - rhs.0)
    }
}

impl std::iter::Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        Fen(iter.map(|f| f.0).sum())
    }
}

/// Yuan with two decimals, e.g. `3567.20`.
impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_yuan() {
        assert_eq!(Fen::parse_monthly_yuan("3500").unwrap().get(), 350_000);
        assert_eq!(Fen::parse_monthly_yuan("3500.5").unwrap().get(), 350_050);
        assert_eq!(Fen::parse_monthly_yuan(" 0.01 ").unwrap().get(), 1);
        for bad in [
            "", "-1", "0", "1.234", "abc", "1,000", "1.", ".5", "1e3", "2000000",
        ] {
            assert!(Fen::parse_monthly_yuan(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_other_amounts_without_the_monthly_cap() {
        assert_eq!(
            Fen::parse_yuan("2000000.01", "amount").unwrap().get(),
            200_000_001
        );
        let err = Fen::parse_yuan("0.00", "amount").unwrap_err().to_string();
        assert!(err.contains("amount must be more than 0"), "{err}");
        for bad in ["", "-5", "1.234", "1e3", "1,000", "1234567890"] {
            assert!(Fen::parse_yuan(bad, "amount").is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(fen in 1i64..MAX_MONTHLY_FEN) {
            let s = Fen::new(fen).to_string();
            prop_assert_eq!(Fen::parse_monthly_yuan(&s).unwrap().get(), fen);
        }
    }
}
