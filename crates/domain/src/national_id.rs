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

    /// Gender as a roll or form writes it: `M`/`F`, `male`/`female` (any case), `男`/`女`.
    pub fn parse_written(s: &str) -> Result<Gender, ParseError> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "m" | "male" | "男" => Ok(Gender::Male),
            "f" | "female" | "女" => Ok(Gender::Female),
            _ => Err(ParseError::new(format!(
                "{t:?} is not a gender: write M or F (also male/female, 男/女)"
            ))),
        }
    }
}

/// A checked, normalised identifier of a pensioner under one [`IdScheme`]: a GB 11643
/// resident ID number (18 characters, upper-case `X`) or a generic agency identifier.
/// The field is private: the only ways in are [`NationalId::parse`] (GB 11643) and
/// [`IdScheme::parse_id`] / [`IdScheme::normalise`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NationalId(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    CnResident([u8; 18]),
    /// 4 to 32 characters, each `A`-`Z` or `0`-`9`.
    Generic(String),
}

impl NationalId {
    /// Parses a GB 11643 resident ID number: 18 characters (lower-case `x` allowed) or a
    /// legacy 15-digit one, which is converted (century `19` inserted, check character
    /// computed). Other schemes go through [`IdScheme::parse_id`].
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
        if !is_province_prefix(std::str::from_utf8(&id[..2]).unwrap_or("")) {
            return Err(ParseError::new(
                "the ID number does not start with a province code",
            ));
        }
        gb11643_birth_date(&id)?;
        Ok(NationalId(Repr::CnResident(id)))
    }

    /// Parses a generic agency identifier: spaces and hyphens are dropped, letters
    /// upper-cased; what is left must be 4 to 32 letters `A`-`Z` and digits `0`-`9`.
    fn parse_generic(s: &str) -> Result<Self, ParseError> {
        const RULE: &str =
            "an identifier has 4 to 32 letters A-Z and digits 0-9 (spaces and hyphens are ignored)";
        let mut out = String::with_capacity(s.len());
        for c in s.chars().filter(|c| !c.is_whitespace() && *c != '-') {
            let u = c.to_ascii_uppercase();
            if !(u.is_ascii_uppercase() || u.is_ascii_digit()) {
                return Err(ParseError::new(format!("{RULE}; {c:?} is not allowed")));
            }
            out.push(u);
        }
        match out.len() {
            0 => Err(ParseError::new(format!("{RULE}; this one is empty"))),
            n if n < 4 => Err(ParseError::new(format!("{RULE}; this one has only {n}"))),
            n if n > 32 => Err(ParseError::new(format!("{RULE}; this one has {n}"))),
            _ => Ok(NationalId(Repr::Generic(out))),
        }
    }

    /// The scheme this identifier belongs to.
    pub fn scheme(&self) -> IdScheme {
        match self.0 {
            Repr::CnResident(_) => IdScheme::CnResident,
            Repr::Generic(_) => IdScheme::Generic,
        }
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // Constructed from ASCII only.
            Repr::CnResident(b) => std::str::from_utf8(b).unwrap_or(""),
            Repr::Generic(s) => s,
        }
    }

    /// The birth date written in a GB 11643 number; a generic identifier carries none
    /// (it comes from the roll instead).
    pub fn birth_date(&self) -> Option<NaiveDate> {
        match &self.0 {
            Repr::CnResident(b) => gb11643_birth_date(b).ok(),
            Repr::Generic(_) => None,
        }
    }

    /// GB 11643: the 17th character (sequence number's last digit) is odd for men.
    /// A generic identifier carries no gender.
    pub fn gender(&self) -> Option<Gender> {
        match &self.0 {
            Repr::CnResident(b) if (b[16] - b'0') % 2 == 1 => Some(Gender::Male),
            Repr::CnResident(_) => Some(Gender::Female),
            Repr::Generic(_) => None,
        }
    }

    /// GB 11643: the region of issue (first six digits). None for a generic identifier.
    pub fn issuing_region(&self) -> Option<&str> {
        match &self.0 {
            Repr::CnResident(_) => Some(&self.as_str()[..6]),
            Repr::Generic(_) => None,
        }
    }

    /// The form shown to roles that may not see the whole identifier:
    /// `110105********002X` for GB 11643, `P1****89` for a generic one (first and last
    /// two characters; one each for identifiers shorter than 8, so at least half stays
    /// hidden; never fewer than 4 stars).
    pub fn masked(&self) -> String {
        let s = self.as_str();
        match &self.0 {
            Repr::CnResident(_) => format!("{}********{}", &s[..6], &s[14..]),
            Repr::Generic(_) => {
                let keep = if s.len() >= 8 { 2 } else { 1 };
                let stars = (s.len() - 2 * keep).max(4);
                format!(
                    "{}{}{}",
                    &s[..keep],
                    "*".repeat(stars),
                    &s[s.len() - keep..]
                )
            }
        }
    }
}

/// The birth date of a GB 11643 number (characters 7 to 14), checked to be a real date.
fn gb11643_birth_date(id: &[u8; 18]) -> Result<NaiveDate, ParseError> {
    let s = std::str::from_utf8(&id[6..14]).unwrap_or("");
    let (y, m, d) = (
        s.get(0..4).unwrap_or(""),
        s.get(4..6).unwrap_or(""),
        s.get(6..8).unwrap_or(""),
    );
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

/// Redacted: an ID number must never reach a log through `{:?}`.
impl fmt::Debug for NationalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NationalId({})", self.masked())
    }
}

/// Which identifiers a deployment keys its pensioners by. Chosen once per database:
/// identifiers of one scheme never match those of the other.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdScheme {
    /// The GB 11643-1999 resident ID number of mainland China (公民身份号码).
    #[default]
    CnResident,
    /// Any agency identifier (passport, foreign social security number, agency file
    /// number): 4 to 32 letters and digits. Birth date and gender come from the roll.
    Generic,
}

impl IdScheme {
    pub const ALL: [IdScheme; 2] = [IdScheme::CnResident, IdScheme::Generic];

    pub fn as_str(&self) -> &'static str {
        match self {
            IdScheme::CnResident => "cn_resident",
            IdScheme::Generic => "generic",
        }
    }

    /// The scheme by its name in the settings (`cn_resident` or `generic`).
    pub fn parse(s: &str) -> Result<IdScheme, ParseError> {
        let t = s.trim();
        IdScheme::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == t)
            .ok_or_else(|| {
                ParseError::new(format!(
                    "{t:?} is not an ID scheme: use cn_resident (GB 11643 resident ID numbers) or generic (any agency identifier of 4 to 32 letters and digits)"
                ))
            })
    }

    /// What an identifier of this scheme looks like, for messages and help texts.
    pub fn describe(&self) -> &'static str {
        match self {
            IdScheme::CnResident => {
                "an 18-character resident ID number (GB 11643; 15-digit old numbers are converted)"
            }
            IdScheme::Generic => {
                "an identifier of 4 to 32 letters A-Z and digits 0-9 (spaces and hyphens are ignored)"
            }
        }
    }

    /// Whether identifiers of this scheme carry the birth date and gender.
    pub fn id_carries_birth_date(&self) -> bool {
        matches!(self, IdScheme::CnResident)
    }

    /// Parses an identifier typed by a person (a form, the command line, a roll).
    pub fn parse_id(&self, raw: &str) -> Result<NationalId, ParseError> {
        match self {
            IdScheme::CnResident => NationalId::parse(raw),
            IdScheme::Generic => NationalId::parse_generic(raw),
        }
    }

    /// The lenient reading used for other departments' feeds: whitespace (including the
    /// full-width space) and `-` are dropped, full-width digits and letters become ASCII,
    /// lower-case letters upper-case; then [`IdScheme::parse_id`]. None when the result
    /// is still not an identifier of this scheme.
    pub fn normalise(&self, raw: &str) -> Option<NationalId> {
        // Cleaned into a buffer on the stack: feeds normalise tens of millions of numbers.
        let mut buf = [0u8; 48];
        let mut n = 0;
        for c in raw.chars() {
            let c = match c {
                c if c.is_whitespace() || c == '-' => continue,
                '\u{FF10}'..='\u{FF19}' | '\u{FF21}'..='\u{FF3A}' | '\u{FF41}'..='\u{FF5A}' => {
                    char::from_u32(c as u32 - 0xFEE0).unwrap_or(c)
                }
                c => c,
            };
            // No identifier of either scheme has other characters, or is this long.
            if !c.is_ascii() {
                return None;
            }
            *buf.get_mut(n)? = c.to_ascii_uppercase() as u8;
            n += 1;
        }
        self.parse_id(std::str::from_utf8(&buf[..n]).ok()?).ok()
    }
}

impl fmt::Display for IdScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for IdScheme {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdScheme::parse(s)
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
        assert_eq!(id.birth_date(), NaiveDate::from_ymd_opt(1949, 12, 31));
        assert_eq!(id.gender(), Some(Gender::Female));
        assert_eq!(id.issuing_region(), Some("110105"));
        assert_eq!(id.scheme(), IdScheme::CnResident);
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

    #[test]
    fn scheme_names() {
        for scheme in IdScheme::ALL {
            assert_eq!(IdScheme::parse(scheme.as_str()), Ok(scheme));
        }
        assert_eq!(IdScheme::default(), IdScheme::CnResident);
        let err = IdScheme::parse("passport").unwrap_err().to_string();
        assert!(
            err.contains("\"passport\"") && err.contains("cn_resident") && err.contains("generic"),
            "{err}"
        );
    }

    #[test]
    fn cn_resident_scheme_is_gb11643() {
        let s = IdScheme::CnResident;
        assert_eq!(
            s.parse_id("11010519491231002x").unwrap(),
            NationalId::parse("11010519491231002X").unwrap()
        );
        assert!(s.parse_id("P12345678").is_err());
    }

    #[test]
    fn generic_identifiers() {
        let g = IdScheme::Generic;
        let id = g.parse_id(" p-123 456-78 ").unwrap();
        assert_eq!(id.as_str(), "P12345678");
        assert_eq!(id.scheme(), IdScheme::Generic);
        assert_eq!(id.birth_date(), None);
        assert_eq!(id.gender(), None);
        assert_eq!(id.issuing_region(), None);
        assert_eq!(id.masked(), "P1*****78");
        assert_eq!(format!("{id:?}"), "NationalId(P1*****78)");
        // A GB 11643 number is a valid generic identifier too, but not the same value.
        let cn = g.parse_id("11010519491231002X").unwrap();
        assert_ne!(cn, NationalId::parse("11010519491231002X").unwrap());
        assert_eq!(g.parse_id("ABCD").unwrap().masked(), "A****D");
        assert_eq!(g.parse_id("ABCDEFG").unwrap().masked(), "A*****G");
        assert_eq!(g.parse_id("ABCDEFGH").unwrap().masked(), "AB****GH");
        assert_eq!(g.parse_id(&"A".repeat(32)).unwrap().as_str().len(), 32);
    }

    #[test]
    fn generic_mistakes_are_explained() {
        let g = IdScheme::Generic;
        for (bad, says) in [
            ("", "empty"),
            ("  - ", "empty"),
            ("AB1", "only 3"),
            (&*"9".repeat(33), "has 33"),
            ("AB_123", "'_'"),
            ("ÉCOLE12", "'É'"),
            ("１２３４", "'１'"),
        ] {
            let err = g.parse_id(bad).unwrap_err().to_string();
            assert!(
                err.contains("4 to 32 letters A-Z and digits 0-9"),
                "{bad}: {err}"
            );
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn normalise_reads_department_spellings() {
        let cn = IdScheme::CnResident;
        for raw in [
            " １１０１０５１９４９１２３１００２ｘ ",
            "110105 19491231 002x",
            "110105-491231-002",
            "11010519491231002Ｘ",
        ] {
            assert_eq!(
                cn.normalise(raw).unwrap().as_str(),
                "11010519491231002X",
                "{raw}"
            );
        }
        assert_eq!(cn.normalise("11010519491231002"), None);
        assert_eq!(cn.normalise("110105194912310021"), None);
        assert_eq!(cn.normalise(""), None);
        let g = IdScheme::Generic;
        assert_eq!(
            g.normalise("ｐ－１２ab-34\u{3000}5")
                .map(|i| i.as_str().to_string()),
            None
        );
        assert_eq!(
            g.normalise("ｐ１２ab-34\u{3000}5").unwrap().as_str(),
            "P12AB345"
        );
        assert_eq!(g.normalise("x1"), None);
    }

    #[test]
    fn written_genders() {
        for m in ["M", "m", "male", "Male", "男", " 男 "] {
            assert_eq!(Gender::parse_written(m), Ok(Gender::Male), "{m}");
        }
        for f in ["F", "f", "female", "FEMALE", "女"] {
            assert_eq!(Gender::parse_written(f), Ok(Gender::Female), "{f}");
        }
        let err = Gender::parse_written("X").unwrap_err().to_string();
        assert!(err.contains("M or F"), "{err}");
    }

    /// The feed normaliser as it was before the schemes (`lifecert_app::feeds`): the
    /// cn_resident scheme must read every string exactly as it did.
    fn old_normalise_id(raw: &str) -> Option<NationalId> {
        let cleaned: String = raw
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| match c {
                '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
                'Ｘ' | 'ｘ' => 'X',
                other => other,
            })
            .collect();
        NationalId::parse(&cleaned).ok()
    }

    fn department_spelling() -> impl Strategy<Value = String> {
        let id = digits17().prop_map(|d| {
            let mut s = String::from_utf8(d.to_vec()).unwrap();
            s.push(check_character(&d) as char);
            s
        });
        (
            id,
            prop::collection::vec((0usize..19, 0u8..8), 0..4),
            any::<bool>(),
        )
            .prop_map(|(id, edits, wide)| {
                let mut chars: Vec<char> = id.chars().collect();
                if wide {
                    chars = chars
                        .into_iter()
                        .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
                        .collect();
                }
                for (pos, kind) in edits {
                    let pos = pos.min(chars.len());
                    let c = [' ', '-', 'x', 'ｘ', 'a', '\u{3000}', '7', 'Ａ'][kind as usize];
                    chars.insert(pos, c);
                }
                chars.into_iter().collect()
            })
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
        fn cn_resident_normalise_is_the_old_feed_normaliser(raw in department_spelling()) {
            prop_assert_eq!(IdScheme::CnResident.normalise(&raw), old_normalise_id(&raw));
        }

        #[test]
        fn cn_resident_normalise_agrees_on_any_text(raw in "[0-9xXａＡｘＸ０-９ -]{0,22}") {
            prop_assert_eq!(IdScheme::CnResident.normalise(&raw), old_normalise_id(&raw));
        }

        #[test]
        fn generic_round_trips_and_masks(raw in "[A-Za-z0-9]{4,32}") {
            let id = IdScheme::Generic.parse_id(&raw).unwrap();
            prop_assert_eq!(id.as_str(), raw.to_ascii_uppercase());
            prop_assert_eq!(IdScheme::Generic.parse_id(id.as_str()).unwrap(), id.clone());
            let masked = id.masked();
            prop_assert!(masked.matches('*').count() >= 4);
            let shown = masked.chars().filter(|c| *c != '*').count();
            prop_assert!(shown * 2 <= raw.len());
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
