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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: String,
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

/// The shipped sources: (name, kind, authoritative, weight in thousandths).
const SHIPPED: &[(&str, SourceKind, bool, i64)] = &[
    ("police_deregistration", SourceKind::Death, true, 0),
    ("civil_affairs_cremation", SourceKind::Death, true, 0),
    ("health_death_certificate", SourceKind::Death, true, 0),
    ("crvs", SourceKind::Death, true, 0),
    ("family_report", SourceKind::Death, false, 0),
    ("hospital_visit", SourceKind::Life, false, 1000),
    ("bank_counter", SourceKind::Life, false, 1000),
    ("medical_settlement", SourceKind::Life, false, 500),
    ("card_use", SourceKind::Life, false, 500),
    ("transport", SourceKind::Life, false, 300),
    ("prison", SourceKind::Imprisonment, true, 0),
];

/// A source as written in the settings file (`[[sources]]`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    /// `death`, `life` or `imprisonment`
    pub kind: String,
    #[serde(default)]
    pub authoritative: bool,
    /// For `life` sources: in (0, 1].
    pub weight: Option<f64>,
}

/// The sources this deployment accepts: the shipped ones, changed or extended by the
/// settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(Vec<Source>);

impl Default for Sources {
    fn default() -> Self {
        Sources(
            SHIPPED
                .iter()
                .map(|&(name, kind, authoritative, weight_milli)| Source {
                    name: name.to_string(),
                    kind,
                    authoritative,
                    weight_milli,
                })
                .collect(),
        )
    }
}

impl Sources {
    /// The shipped sources with `configured` applied: an entry with a shipped name
    /// replaces it, any other is added. Each entry is checked; the error names it.
    pub fn configured(configured: &[SourceConfig]) -> Result<Sources, ParseError> {
        let mut sources = Sources::default();
        for (i, c) in configured.iter().enumerate() {
            let at = |msg: String| ParseError::new(format!("sources[{i}] ({:?}): {msg}", c.name));
            let name = c.name.trim();
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(at("name: use 1 to 64 characters a-z, 0-9 and _".into()));
            }
            let kind = match c.kind.trim() {
                "death" => SourceKind::Death,
                "life" => SourceKind::Life,
                "imprisonment" => SourceKind::Imprisonment,
                other => {
                    return Err(at(format!(
                        "kind {other:?}: use death, life or imprisonment"
                    )))
                }
            };
            let weight_milli = match (kind, c.weight) {
                // At least one thousandth: a tiny weight still counts for something.
                (SourceKind::Life, Some(w)) if w > 0.0 && w <= 1.0 => {
                    ((w * 1000.0).round() as i64).max(1)
                }
                (SourceKind::Life, Some(w)) => {
                    return Err(at(format!("weight {w}: must be above 0 and at most 1")))
                }
                (SourceKind::Life, None) => {
                    return Err(at("weight: a life source needs a weight in (0, 1]".into()))
                }
                (_, Some(_)) => return Err(at("weight: only life sources have a weight".into())),
                (_, None) => 0,
            };
            if c.authoritative && kind == SourceKind::Life {
                return Err(at(
                    "authoritative: only death and imprisonment sources can be".into(),
                ));
            }
            let source = Source {
                name: name.to_string(),
                kind,
                authoritative: c.authoritative || kind == SourceKind::Imprisonment,
                weight_milli,
            };
            match sources.0.iter_mut().find(|s| s.name == name) {
                Some(existing) => *existing = source,
                None => sources.0.push(source),
            }
        }
        Ok(sources)
    }

    pub fn all(&self) -> &[Source] {
        &self.0
    }

    pub fn named(&self, name: &str) -> Result<&Source, ParseError> {
        self.0
            .iter()
            .find(|s| s.name == name.trim())
            .ok_or_else(|| {
                ParseError::new(format!(
                    "unknown feed source {name:?}: use one of {}",
                    self.0
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_sources() {
        let sources = Sources::default();
        let s = sources.named("medical_settlement").unwrap();
        assert_eq!((s.kind, s.weight_milli), (SourceKind::Life, 500));
        assert!(
            sources
                .named("police_deregistration")
                .unwrap()
                .authoritative
        );
        assert!(sources
            .named("gossip")
            .unwrap_err()
            .to_string()
            .contains("hospital_visit"));
        assert!(sources
            .all()
            .iter()
            .filter(|s| s.kind == SourceKind::Life)
            .all(|s| s.weight_milli > 0 && s.weight_milli <= 1000));
    }

    fn cfg(name: &str, kind: &str, authoritative: bool, weight: Option<f64>) -> SourceConfig {
        SourceConfig {
            name: name.into(),
            kind: kind.into(),
            authoritative,
            weight,
        }
    }

    #[test]
    fn configured_sources_replace_and_extend() {
        let sources = Sources::configured(&[
            cfg("card_use", "life", false, Some(0.25)),
            cfg("pharmacy", "life", false, Some(0.4)),
            cfg("village_committee", "death", false, None),
        ])
        .unwrap();
        assert_eq!(sources.named("card_use").unwrap().weight_milli, 250);
        assert_eq!(sources.named("pharmacy").unwrap().weight_milli, 400);
        assert!(!sources.named("village_committee").unwrap().authoritative);
        assert_eq!(sources.all().len(), Sources::default().all().len() + 2);
    }

    #[test]
    fn bad_source_configuration_names_the_entry() {
        for (c, needle) in [
            (cfg("Bad Name", "life", false, Some(0.5)), "name"),
            (cfg("x", "rumour", false, None), "kind"),
            (cfg("x", "life", false, None), "weight"),
            (cfg("x", "life", false, Some(1.5)), "weight 1.5"),
            (cfg("x", "life", false, Some(0.0)), "weight 0"),
            (cfg("x", "death", false, Some(0.5)), "only life"),
            (cfg("x", "life", true, Some(0.5)), "authoritative"),
        ] {
            let e = Sources::configured(&[c]).unwrap_err().to_string();
            assert!(e.contains("sources[0]") && e.contains(needle), "{e}");
        }
    }
}
