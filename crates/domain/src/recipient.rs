//! Attributes of a pension recipient (待遇领取人员) that are not identifiers.

use crate::certification::string_enum;
use crate::ParseError;
use std::fmt;

string_enum!(
    /// The pension scheme: 企业职工 / 机关事业 / 城乡居民.
    InsuranceType, "insurance type", {
    Enterprise => "enterprise",
    Institution => "institution",
    Resident => "resident",
});

impl InsuranceType {
    /// Accepts the English code or the Chinese name used in agency spreadsheets.
    pub fn parse_any(s: &str) -> Result<Self, ParseError> {
        match s.trim() {
            "企业职工" | "企业" => Ok(InsuranceType::Enterprise),
            "机关事业" | "机关事业单位" => Ok(InsuranceType::Institution),
            "城乡居民" | "居民" => Ok(InsuranceType::Resident),
            other => InsuranceType::parse(&other.to_ascii_lowercase()).map_err(|_| {
                ParseError::new(format!(
                    "unknown insurance type {other:?}: use enterprise (企业职工), institution (机关事业) or resident (城乡居民)"
                ))
            }),
        }
    }
}

string_enum!(
    /// Where the pensioner lives: 境内 / 境外.
    Residence, "residence", {
    Domestic => "domestic",
    Abroad => "abroad",
});

impl Residence {
    /// Accepts the English code or 境内 / 境外; empty means domestic.
    pub fn parse_any(s: &str) -> Result<Self, ParseError> {
        match s.trim() {
            "" | "境内" => Ok(Residence::Domestic),
            "境外" => Ok(Residence::Abroad),
            other => Residence::parse(&other.to_ascii_lowercase()).map_err(|_| {
                ParseError::new(format!(
                    "unknown residence {other:?}: use domestic (境内) or abroad (境外)"
                ))
            }),
        }
    }
}

/// ISO 3166-1 alpha-2 codes, concatenated.
const ISO_3166_ALPHA2: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

/// An ISO 3166-1 alpha-2 country code (upper case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim().to_ascii_uppercase();
        let b = t.as_bytes();
        let known = b.len() == 2
            && b.iter().all(u8::is_ascii_uppercase)
            && ISO_3166_ALPHA2.as_bytes().chunks(2).any(|c| c == b);
        if !known {
            return Err(ParseError::new(format!(
                "{:?} is not an ISO 3166 alpha-2 country code (e.g. US, JP, AU)",
                s.trim()
            )));
        }
        Ok(CountryCode([b[0], b[1]]))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_english_and_chinese() {
        assert_eq!(
            InsuranceType::parse_any("企业职工").unwrap(),
            InsuranceType::Enterprise
        );
        assert_eq!(
            InsuranceType::parse_any("Resident").unwrap(),
            InsuranceType::Resident
        );
        assert!(InsuranceType::parse_any("military").is_err());
        assert_eq!(Residence::parse_any("境外").unwrap(), Residence::Abroad);
        assert_eq!(Residence::parse_any("").unwrap(), Residence::Domestic);
    }

    #[test]
    fn country_codes() {
        assert_eq!(CountryCode::parse("jp").unwrap().as_str(), "JP");
        assert!(CountryCode::parse("XX").is_err());
        assert!(CountryCode::parse("USA").is_err());
    }
}
