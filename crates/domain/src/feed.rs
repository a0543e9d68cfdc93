//! Data-feed sources for passive certification (静默认证): deaths, signs of life and
//! imprisonment reported by other departments, each with its trust.

use crate::ParseError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Death,
    Life,
    Imprisonment,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Death => "death",
            SourceKind::Life => "life",
            SourceKind::Imprisonment => "imprisonment",
        }
    }
}

/// One source: a death register, a kind of service use that shows the pensioner alive,
/// or the prison register.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub name: &'static str,
    pub kind: SourceKind,
    /// A death from an authoritative source with an exact ID match suspends payment at
    /// once; any other death only opens a review case.
    pub authoritative: bool,
    /// For signs of life: how much one event counts; events within 90 days add up and
    /// reaching 1.0 is a passive pass. In thousandths, so sums are exact.
    pub weight_milli: i64,
}

/// Signs of life add up within this many days.
pub const LIFE_WINDOW_DAYS: i64 = 90;
/// The sum of weights (thousandths) that counts as a passive certification.
pub const LIFE_THRESHOLD_MILLI: i64 = 1000;

const fn source(
    name: &'static str,
    kind: SourceKind,
    authoritative: bool,
    weight_milli: i64,
) -> Source {
    Source {
        name,
        kind,
        authoritative,
        weight_milli,
    }
}

/// The shipped sources.
pub const SOURCES: &[Source] = &[
    source("police_deregistration", SourceKind::Death, true, 0),
    source("civil_affairs_cremation", SourceKind::Death, true, 0),
    source("health_death_certificate", SourceKind::Death, true, 0),
    source("family_report", SourceKind::Death, false, 0),
    source("hospital_visit", SourceKind::Life, false, 1000),
    source("bank_counter", SourceKind::Life, false, 1000),
    source("medical_settlement", SourceKind::Life, false, 500),
    source("card_use", SourceKind::Life, false, 500),
    source("transport", SourceKind::Life, false, 300),
    source("prison", SourceKind::Imprisonment, true, 0),
];

pub fn source_named(name: &str) -> Result<&'static Source, ParseError> {
    SOURCES
        .iter()
        .find(|s| s.name == name.trim())
        .ok_or_else(|| {
            ParseError::new(format!(
                "unknown feed source {name:?}: use one of {}",
                SOURCES
                    .iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sources() {
        let s = source_named("medical_settlement").unwrap();
        assert_eq!((s.kind, s.weight_milli), (SourceKind::Life, 500));
        assert!(source_named("police_deregistration").unwrap().authoritative);
        assert!(source_named("gossip")
            .unwrap_err()
            .to_string()
            .contains("hospital_visit"));
        assert!(SOURCES
            .iter()
            .filter(|s| s.kind == SourceKind::Life)
            .all(|s| s.weight_milli > 0 && s.weight_milli <= 1000));
    }
}
