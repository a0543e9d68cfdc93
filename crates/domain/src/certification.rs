//! Certification channels, outcomes and failure reasons.

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(&self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }

            pub fn parse(s: &str) -> Result<Self, $crate::ParseError> {
                match s.trim() {
                    $($s => Ok($name::$variant),)+
                    other => Err($crate::ParseError::new(format!(
                        concat!("unknown ", $what, " {:?}: use one of {}"),
                        other,
                        [$($s),+].join(", ")
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// How a certification was made.
    Channel, "channel", {
    SelfServiceFace => "self_service_face",
    Counter => "counter",
    Community => "community",
    HomeVisit => "home_visit",
    Video => "video",
    OverseasConsulate => "overseas_consulate",
    OverseasNotary => "overseas_notary",
    OverseasOnline => "overseas_online",
    AgentAssisted => "agent_assisted",
    PassiveData => "passive_data",
});

string_enum!(
    /// Only `Pass` renews validity; `Doubtful` (存疑) opens a review case.
    Outcome, "outcome", {
    Pass => "pass",
    Fail => "fail",
    Doubtful => "doubtful",
});

string_enum!(
    /// Why a certification failed.
    FailReason, "fail reason", {
    FaceMismatch => "face_mismatch",
    LivenessFailed => "liveness_failed",
    DocumentInvalid => "document_invalid",
    NotThePerson => "not_the_person",
    Deceased => "deceased",
    Other => "other",
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_and_explains() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()).unwrap(), *c);
        }
        let err = Channel::parse("fax").unwrap_err().to_string();
        assert!(err.contains("counter") && err.contains("\"fax\""), "{err}");
        assert_eq!(Outcome::parse("doubtful").unwrap(), Outcome::Doubtful);
    }
}
