//! lifecert's use cases. Every state change goes through here and writes its audit
//! entry in the same transaction; the CLI (and later the HTTP API and feeds) call these.

pub mod access;
pub mod certify;
pub mod clock;
pub mod cycle;
pub mod death;
pub mod demo_data;
pub mod error;
pub mod feeds;
pub mod import;
pub mod integration;
pub mod jobs;
pub mod keys;
pub mod notifications;
pub mod payments;
pub mod recipients;
pub mod recovery;
pub mod schedule;
pub mod staff;
#[cfg(test)]
mod testing;
pub mod workflows;

pub use clock::{Clock, FixedClock, SystemClock};
pub use error::AppError;

use lifecert_crypto::{Field, KeyRing};
use lifecert_domain::{IdScheme, NationalId, Policy};
use lifecert_store::{AuditEntry, Store, WriteTx};
use std::sync::Arc;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// Who performs a use case; written into every audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A member of staff, by user name.
    Staff(String),
    /// Another system (a data feed, a partner), by name.
    Integration(String),
    /// lifecert itself (scheduled jobs).
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Staff(name) => format!("staff:{name}"),
            Actor::Integration(name) => format!("integration:{name}"),
            Actor::System => "system".to_string(),
        }
    }
}

/// The application: storage, keys, policy and clock, passed explicitly.
#[derive(Clone)]
pub struct App {
    store: Store,
    keys: KeyRing,
    policy: Policy,
    clock: Arc<dyn Clock>,
    sources: Arc<lifecert_domain::feed::Sources>,
    matching: Arc<feeds::MatchingSettings>,
    id_scheme: IdScheme,
}

const KEY_CHECK: &str = "key_check";
/// The [`IdScheme`] the database was set up with, by name.
const ID_SCHEME: &str = "id_scheme";

impl App {
    /// Wraps an open store. The first time a database is used, a check value encrypted
    /// with the configured key is stored; afterwards a ring without that key is refused
    /// with a clear error instead of producing garbage. Pensioners are identified by
    /// GB 11643 resident ID numbers (see [`App::new_with_id_scheme`]).
    pub async fn new(
        store: Store,
        keys: KeyRing,
        policy: Policy,
        clock: Arc<dyn Clock>,
    ) -> Result<App> {
        App::new_with_id_scheme(store, keys, policy, clock, IdScheme::default()).await
    }

    /// Like [`App::new`], with the scheme of the pensioners' identifiers. The first use
    /// of a database records the scheme; a database set up with another one is refused,
    /// since its pensioners could not be found by identifiers of this one.
    pub async fn new_with_id_scheme(
        store: Store,
        keys: KeyRing,
        policy: Policy,
        clock: Arc<dyn Clock>,
        id_scheme: IdScheme,
    ) -> Result<App> {
        let existed_before = store.meta_get(KEY_CHECK).await?.is_some();
        let stored = store.meta_init(KEY_CHECK, &keys.check_value()).await?;
        keys.verify_check_value(&stored)?;
        // Look-ups stay on the key the database was set up with, so rotating the
        // active key (`NEW,OLD`) keeps every pensioner findable.
        let index_key = lifecert_crypto::ciphertext_key_id(&stored)
            .ok_or_else(|| AppError::Corrupt("the stored key check value is malformed".into()))?;
        let keys = keys.with_index_key(&index_key)?;
        check_id_scheme(&store, id_scheme, existed_before).await?;
        Ok(App {
            store,
            keys,
            policy,
            clock,
            sources: Arc::new(lifecert_domain::feed::Sources::default()),
            matching: Arc::new(feeds::MatchingSettings::default()),
            id_scheme,
        })
    }

    /// The scheme of the pensioners' identifiers in this database.
    pub fn id_scheme(&self) -> IdScheme {
        self.id_scheme
    }

    /// Parses an identifier typed by a person under this database's scheme; the error
    /// names `field`, the scheme and what is wrong.
    pub fn parse_id(&self, field: &str, raw: &str) -> Result<NationalId> {
        self.id_scheme.parse_id(raw).map_err(|e| {
            AppError::invalid(
                field,
                format!("not a valid ID number ({} scheme): {e}", self.id_scheme),
            )
        })
    }

    /// Uses the sources from the settings instead of the shipped ones.
    pub fn with_sources(mut self, sources: lifecert_domain::feed::Sources) -> App {
        self.sources = Arc::new(sources);
        self
    }

    /// Uses matching thresholds and weights from the settings.
    pub fn with_matching(mut self, matching: feeds::MatchingSettings) -> App {
        self.matching = Arc::new(matching);
        self
    }

    /// A feed source by name; the error lists the known ones.
    pub fn source(&self, name: &str) -> Result<lifecert_domain::feed::Source> {
        self.sources
            .named(name)
            .cloned()
            .map_err(|e| AppError::invalid("source", e.to_string()))
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn today(&self) -> chrono::NaiveDate {
        self.clock.today()
    }

    pub(crate) fn now_string(&self) -> String {
        self.clock
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }

    pub(crate) fn id_bidx(&self, id: &NationalId) -> Vec<u8> {
        self.keys.blind_index(Field::IdNumber, id.as_str()).to_vec()
    }

    /// Exact-name look-up token: the name with surrounding and inner spaces removed.
    pub(crate) fn name_bidx(&self, name: &str) -> Vec<u8> {
        let normalised: String = name.chars().filter(|c| !c.is_whitespace()).collect();
        self.keys.blind_index(Field::Name, &normalised).to_vec()
    }

    pub(crate) fn audit(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        action: &str,
        recipient_id: Option<i64>,
        details: serde_json::Value,
    ) {
        tx.audit(AuditEntry {
            occurred_at: self.now_string(),
            actor: actor.label(),
            action: action.to_string(),
            recipient_id,
            details: details.to_string(),
        });
    }

    /// Opens a review case (a doubtful result, a death to confirm) with its audit entry.
    pub(crate) async fn open_review_case(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        recipient_id: i64,
        kind: &str,
        certification_id: Option<i64>,
        details: serde_json::Value,
    ) -> Result<i64> {
        let case = tx
            .open_review_case(
                recipient_id,
                kind,
                certification_id,
                &actor.label(),
                &self.now_string(),
                &details.to_string(),
            )
            .await?;
        self.audit_case_opened(tx, actor, recipient_id, case, kind);
        Ok(case)
    }

    /// The audit entry of an opened review case.
    pub(crate) fn audit_case_opened(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        recipient_id: i64,
        case: i64,
        kind: &str,
    ) {
        self.audit(
            tx,
            actor,
            "review_case.opened",
            Some(recipient_id),
            serde_json::json!({"case_id": case, "kind": kind}),
        );
    }

    pub(crate) fn decrypt_id(&self, enc: &[u8]) -> Result<NationalId> {
        let s = self.keys.decrypt_str(Field::IdNumber, enc)?;
        self.id_scheme
            .parse_id(&s)
            .map_err(|e| AppError::Corrupt(format!("a stored ID number does not parse: {e}")))
    }

    pub(crate) fn decrypt_name(&self, enc: &[u8]) -> Result<String> {
        Ok(self.keys.decrypt_str(Field::Name, enc)?)
    }
}

/// Records the scheme the first time a database is used and refuses another one after.
/// A database set up before schemes existed holds GB 11643 numbers.
async fn check_id_scheme(store: &Store, configured: IdScheme, existed_before: bool) -> Result<()> {
    let first = if existed_before && store.meta_get(ID_SCHEME).await?.is_none() {
        IdScheme::CnResident
    } else {
        configured
    };
    let stored = store
        .meta_init(ID_SCHEME, first.as_str().as_bytes())
        .await?;
    let stored = std::str::from_utf8(&stored)
        .ok()
        .and_then(|s| IdScheme::parse(s).ok())
        .ok_or_else(|| {
            AppError::Corrupt(format!(
                "the database's ID scheme ({}) is not one lifecert knows",
                String::from_utf8_lossy(&stored)
            ))
        })?;
    if stored != configured {
        return Err(AppError::conflict(
            "id_scheme_mismatch",
            format!(
                "this database was set up for the {stored} ID scheme ({}), but the settings say {configured}: \
                 set id_scheme = \"{stored}\" (or LIFECERT_ID_SCHEME={stored}) to use it, or use a new database \
                 for {configured}; pensioners stored under one scheme cannot be found by identifiers of the other",
                stored.describe()
            ),
        ));
    }
    Ok(())
}

/// Checks free text typed by staff: trimmed, not empty, at most `max` characters, and
/// no control characters (line breaks allowed where `multiline`). PostgreSQL cannot
/// store a NUL, and nobody means to type one.
pub(crate) fn text_field<'a>(
    field: &str,
    s: &'a str,
    max: usize,
    multiline: bool,
) -> Result<&'a str> {
    let t = s.trim();
    if t.is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    if t.chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\r' || c == '\t')))
    {
        return Err(AppError::invalid(field, "contains control characters"));
    }
    Ok(t)
}

pub(crate) fn date_str(d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    // Not `format("%Y-%m-%d")`: feeds write millions of dates, and the format parser is slow.
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

pub(crate) fn parse_stored_date(s: &str) -> Result<chrono::NaiveDate> {
    lifecert_domain::parse_date(s).map_err(|e| AppError::Corrupt(e.to_string()))
}

pub(crate) fn parse_stored_month(s: &str) -> Result<lifecert_domain::YearMonth> {
    lifecert_domain::YearMonth::parse(s).map_err(|e| AppError::Corrupt(e.to_string()))
}
