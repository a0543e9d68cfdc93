//! The resident identity number of GB 11643-1999 (公民身份号码).

use crate::{region::is_province_prefix, ParseError};
use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use std::fmt;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

/// ISO 7064 MOD 11-2 check character for the first 17 digits (which must be ASCII digits).
pub fn check_character(first17: &[u8; 17]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK_CHARS[(sum % 11) as usize]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Gender {
    Male,
    Female,
}

impl Gender {
    pub fn as_str(&self) -> &'static str {
        match self {
            Gender::Male => "male",
            Gender::Female => "female",
        }
    }
    pub fn parse(s: &str) -> Option<Gender> {
        match s {
            "male" => Some(Gender::Male),
            "female" => Some(Gender::Female),
            _ => None,
        }
    }
}

/// A checked, normalised 18-character national ID number (upper-case `X`).
/// The field is private: the only way in is [`NationalId::parse`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NationalId([u8; 18]);

impl NationalId {
    /// Accepts an 18-character number (lower-case `x` allowed) or a legacy 15-digit one,
    /// which is converted (century `19` inserted, check character computed).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        let b = t.as_bytes();
        let mut id = [0u8; 18];
        match b.len() {
            18 => {
                if !b[..17].iter().all(u8::is_ascii_digit) {
                    return Err(ParseError::new(
                        "an ID number has 17 digits followed by a digit or X",
                    ));
                }
                id.copy_from_slice(b);
                id[17] = id[17].to_ascii_uppercase();
                if !(id[17].is_ascii_digit() || id[17] == b'X') {
                    return Err(ParseError::new("an ID number ends with a digit or X"));
                }
                let mut first17 = [0u8; 17];
                first17.copy_from_slice(&id[..17]);
                if check_character(&first17) != id[17] {
                    return Err(ParseError::new(
                        "the check character (last character) does not match: the number was probably mistyped",
                    ));
                }
            }
            15 => {
                if !b.iter().all(u8::is_ascii_digit) {
                    return Err(ParseError::new("a 15-digit ID number has digits only"));
                }
                id[..6].copy_from_slice(&b[..6]);
                id[6..8].copy_from_slice(b"19");
                id[8..17].copy_from_slice(&b[6..15]);
                let mut first17 = [0u8; 17];
                first17.copy_from_slice(&id[..17]);
                id[17] = check_character(&first17);
            }
            n => {
                return Err(ParseError::new(format!(
                    "an ID number has 18 characters (or 15 for old numbers), this one has {n}"
                )))
            }
        }
        let id = NationalId(id);
        if !is_province_prefix(&id.as_str()[..2]) {
            return Err(ParseError::new(
                "the ID number does not start with a province code",
            ));
        }
        id.birth_date_checked()?;
        Ok(id)
    }

    fn birth_date_checked(&self) -> Result<NaiveDate, ParseError> {
        let s = self.as_str();
        let (y, m, d) = (&s[6..10], &s[10..12], &s[12..14]);
        let date = match (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) {
            (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d),
            _ => None,
        };
        match date {
            Some(date) if date.year() >= 1880 => Ok(date),
            _ => Err(ParseError::new(format!(
                "the birth date in the ID number ({y}-{m}-{d}) is not a real date"
            ))),
        }
    }

    pub fn as_str(&self) -> &str {
        // Constructed from ASCII only.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date_checked().unwrap_or_default()
    }

    /// The 17th character (sequence number's last digit) is odd for men.
    pub fn gender(&self) -> Gender {
        if (self.0[16] - b'0') % 2 == 1 {
            Gender::Male
        } else {
            Gender::Female
        }
    }

    /// The region of issue (first six digits).
    pub fn issuing_region(&self) -> &str {
        &self.as_str()[..6]
    }

    /// `110105********002X`: the form shown to roles that may not see the whole number.
    pub fn masked(&self) -> String {
        let s = self.as_str();
        format!("{}********{}", &s[..6], &s[14..])
    }
}

/// Redacted: an ID number must never reach a log through `{:?}`.
impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalId({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_valid_number() {
        // The worked example of GB 11643-1999.
        let id = NationalId::parse("11010519491231002x").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1949, 12, 31).unwrap()
        );
        assert_eq!(id.gender(), Gender::Female);
        assert_eq!(id.masked(), "110105********002X");
        assert_eq!(format!("{id:?}"), "NationalId(110105********002X)");
    }

    #[test]
    fn converts_legacy_15_digit_number() {
        let id = NationalId::parse("110105491231002").unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
    }

    #[test]
    fn rejects_bad_numbers() {
        for bad in [
            "110105194912310021", // wrong check character
            "11010519491331002X", // month 13
            "11010519490230002X", // 30 February
            "99010519491231002X", // no such province
            "1101051949123100",   // too short
            "1101051949123100AX", // letter inside
            "",
        ] {
            assert!(NationalId::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    fn digits17() -> impl Strategy<Value = [u8; 17]> {
        (
            prop::sample::select(vec!["110105", "440305", "310104", "510107"]),
            0i64..40_000,
            0u32..1000,
        )
            .prop_map(|(region, day, seq)| {
                let date =
                    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(day);
                let s = format!("{region}{}{seq:03}", date.format("%Y%m%d"));
                let mut out = [0u8; 17];
                out.copy_from_slice(s.as_bytes());
                out
            })
    }

    proptest! {
        #[test]
        fn computed_check_character_always_validates(d in digits17()) {
            let mut s = String::from_utf8(d.to_vec()).unwrap();
            s.push(check_character(&d) as char);
            let id = NationalId::parse(&s).unwrap();
            prop_assert_eq!(id.as_str(), s.as_str());
        }

        #[test]
        fn any_other_check_character_is_rejected(d in digits17(), c in prop::sample::select(b"0123456789X".to_vec())) {
            prop_assume!(c != check_character(&d));
            let mut s = String::from_utf8(d.to_vec()).unwrap();
            s.push(c as char);
            prop_assert!(NationalId::parse(&s).is_err());
        }

        #[test]
        fn a_single_digit_typo_is_always_caught(d in digits17(), pos in 0usize..17, delta in 1u8..10) {
            let mut s = d.to_vec();
            s.push(check_character(&d));
            s[pos] = b'0' + (s[pos] - b'0' + delta) % 10;
            let typo = String::from_utf8(s).unwrap();
            prop_assert!(NationalId::parse(&typo).is_err());
        }
    }
}
