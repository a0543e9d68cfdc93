//! GB/T 2260 administrative division codes and region-scope prefixes.

use crate::ParseError;
use std::fmt;

/// Two-digit province-level prefixes defined by GB/T 2260 (plus 71 Taiwan, 81/82 HK/Macao,
/// which appear in resident ID numbers issued on the mainland).
const PROVINCES: [&str; 34] = [
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37", "41",
    "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65", "71",
    "81", "82",
];

pub(crate) fn is_province_prefix(two: &str) -> bool {
    PROVINCES.contains(&two)
}

/// A 6-digit administrative division code such as `440305` (深圳市南山区).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionCode([u8; 6]);

impl RegionCode {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        let b = t.as_bytes();
        if b.len() != 6 || !b.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::new(format!(
                "{t:?} is not a region code: use the 6-digit GB/T 2260 code, e.g. 440305"
            )));
        }
        if !is_province_prefix(&t[..2]) {
            return Err(ParseError::new(format!(
                "{t:?} starts with {:?}, which is not a province code in GB/T 2260",
                &t[..2]
            )));
        }
        let mut code = [0u8; 6];
        code.copy_from_slice(b);
        Ok(RegionCode(code))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("000000")
    }

    /// True when this region lies within `scope`, a prefix such as `44` or `4403`.
    pub fn is_within(&self, scope: &str) -> bool {
        self.as_str().starts_with(scope)
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_scopes() {
        let r = RegionCode::parse(" 440305 ").unwrap();
        assert_eq!(r.as_str(), "440305");
        assert!(r.is_within("44"));
        assert!(r.is_within("4403"));
        assert!(!r.is_within("4401"));
    }

    #[test]
    fn rejects_bad_codes() {
        assert!(RegionCode::parse("44030").is_err());
        assert!(RegionCode::parse("44030a").is_err());
        assert!(RegionCode::parse("990305").is_err());
    }
}
