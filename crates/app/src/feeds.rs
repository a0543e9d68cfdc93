//! Passive certification (静默认证): ingesting records from other departments' feeds —
//! deaths, signs of life, imprisonment — matching them to pensioners by ID number, and
//! applying their effects through the same use cases staff use, audited.

use crate::certify::{CertifyRequest, RecipientRef};
use crate::{date_str, parse_stored_date, Actor, App, AppError, Result};
use chrono::{Duration, NaiveDate};
use lifecert_domain::feed::{Source, SourceKind, LIFE_THRESHOLD_MILLI, LIFE_WINDOW_DAYS};
use lifecert_domain::{Channel, IdScheme, Outcome, PaymentStatus, SuspensionReason};
use lifecert_store::{NewFeedRecord, RecipientRow, WriteTx};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

/// One record as a department sends it. Only `record_id` is always required.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FeedRecord {
    pub record_id: String,
    #[serde(default)]
    pub id_number: String,
    #[serde(default)]
    pub name: String,
    /// M / F (男 / 女 accepted)
    #[serde(default)]
    pub gender: String,
    #[serde(default)]
    pub birth_date: String,
    #[serde(default)]
    pub event_date: String,
    #[serde(default)]
    pub region_code: String,
    /// For corrections: the record id this record voids.
    #[serde(default)]
    pub void_of: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    Csv,
    Jsonl,
}

impl FeedFormat {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "csv" => Ok(FeedFormat::Csv),
            "jsonl" => Ok(FeedFormat::Jsonl),
            other => Err(AppError::invalid(
                "format",
                format!("unknown format {other:?}: use csv or jsonl"),
            )),
        }
    }

    /// From the file name: `.jsonl` / `.ndjson` are JSON lines, anything else CSV.
    pub fn guess(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => FeedFormat::Jsonl,
            _ => FeedFormat::Csv,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct FeedSummary {
    pub records: u64,
    pub exact: u64,
    pub probable: u64,
    pub possible: u64,
    pub unmatched: u64,
    pub rejected: u64,
    pub deaths_suspended: u64,
    pub reviews_opened: u64,
    pub lives_certified: u64,
    pub duplicates_ignored: u64,
    pub voids_applied: u64,
    /// `--dry-run` only: how many pensioners the exact-ID records name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients_matched: Option<u64>,
}

impl FeedSummary {
    /// One more record of this class (a report line's `class`).
    fn count(&mut self, class: &str) {
        self.records += 1;
        match class {
            "exact" => self.exact += 1,
            "probable" => self.probable += 1,
            "possible" => self.possible += 1,
            "unmatched" => self.unmatched += 1,
            "rejected" => self.rejected += 1,
            "duplicate" => self.duplicates_ignored += 1,
            _ => {}
        }
    }
}

/// One line of `--report`: what became of each input record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportLine {
    pub record_id: String,
    /// exact | probable | possible | unmatched | rejected | duplicate
    pub class: &'static str,
    pub score: Option<f64>,
    pub recipient_id: Option<i64>,
    pub reason: Cow<'static, str>,
}

/// How ID-less records are matched (`[matching]` in the settings file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchingSettings {
    /// Match weight (bits of evidence) at or above which a record is a probable match.
    pub probable: f64,
    /// At or above this, a possible match (reported, nothing else).
    pub possible: f64,
    /// A best candidate within this many bits of the runner-up is at most possible.
    pub margin: f64,
    /// `default` (the shipped m/u probabilities), `estimate` (EM on each feed's own
    /// records, Splink-style) or `configured` (the `m_u` table below).
    pub weights: String,
    pub m_u: Option<ConfiguredWeights>,
}

/// m and u probabilities per comparison level, best agreement first.
/// name: exact, homophone, similar, different; birth_date: exact, day/month swapped,
/// ±1 day, one digit off, different; gender: same, different; region: district, city,
/// province, different.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfiguredWeights {
    pub name_m: [f64; 4],
    pub name_u: [f64; 4],
    pub birth_date_m: [f64; 5],
    pub birth_date_u: [f64; 5],
    pub gender_m: [f64; 2],
    pub gender_u: [f64; 2],
    pub region_m: [f64; 4],
    pub region_u: [f64; 4],
}

impl Default for MatchingSettings {
    fn default() -> Self {
        let t = lifecert_matching::Thresholds::default();
        MatchingSettings {
            probable: t.probable,
            possible: t.possible,
            margin: t.margin,
            weights: "default".into(),
            m_u: None,
        }
    }
}

fn probabilities(field: &str, p: &[f64]) -> Result<()> {
    let sum: f64 = p.iter().sum();
    if p.iter().any(|x| !(x.is_finite() && *x > 0.0 && *x < 1.0)) || (sum - 1.0).abs() > 0.01 {
        return Err(AppError::invalid(
            &format!("matching.m_u.{field}"),
            format!(
                "{p:?}: each probability must be above 0 and below 1, and they must add up to 1"
            ),
        ));
    }
    Ok(())
}

impl MatchingSettings {
    /// Checks the settings; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let finite = [self.probable, self.possible, self.margin]
            .iter()
            .all(|x| x.is_finite());
        if !finite || self.possible >= self.probable {
            return Err(AppError::invalid(
                "matching.possible",
                format!(
                    "possible ({}) must be below probable ({})",
                    self.possible, self.probable
                ),
            ));
        }
        if self.margin < 0.0 {
            return Err(AppError::invalid(
                "matching.margin",
                "the margin cannot be negative",
            ));
        }
        match (self.weights.as_str(), &self.m_u) {
            ("default" | "estimate", None) => Ok(()),
            ("configured", Some(w)) => {
                probabilities("name_m", &w.name_m)?;
                probabilities("name_u", &w.name_u)?;
                probabilities("birth_date_m", &w.birth_date_m)?;
                probabilities("birth_date_u", &w.birth_date_u)?;
                probabilities("gender_m", &w.gender_m)?;
                probabilities("gender_u", &w.gender_u)?;
                probabilities("region_m", &w.region_m)?;
                probabilities("region_u", &w.region_u)
            }
            ("configured", None) => Err(AppError::invalid(
                "matching.m_u",
                "weights = \"configured\" needs a [matching.m_u] table",
            )),
            ("default" | "estimate", Some(_)) => Err(AppError::invalid(
                "matching.m_u",
                "a [matching.m_u] table is used only with weights = \"configured\"",
            )),
            (other, _) => Err(AppError::invalid(
                "matching.weights",
                format!("{other:?}: use default, estimate or configured"),
            )),
        }
    }

    pub fn thresholds(&self) -> lifecert_matching::Thresholds {
        lifecert_matching::Thresholds {
            probable: self.probable,
            possible: self.possible,
            margin: self.margin,
        }
    }

    /// The weights to start from (`estimate` refines these on the feed's records).
    pub fn base_weights(&self) -> lifecert_matching::Weights {
        use lifecert_matching::Field;
        match &self.m_u {
            Some(w) => lifecert_matching::Weights {
                name: Field {
                    m: w.name_m,
                    u: w.name_u,
                },
                birth_date: Field {
                    m: w.birth_date_m,
                    u: w.birth_date_u,
                },
                gender: Field {
                    m: w.gender_m,
                    u: w.gender_u,
                },
                region: Field {
                    m: w.region_m,
                    u: w.region_u,
                },
            },
            None => lifecert_matching::Weights::default(),
        }
    }
}

/// Records read and matched at a time.
const CHUNK: usize = 10_000;
/// Records stored per write transaction: a longer transaction keeps other writers
/// waiting longer, a shorter one writes the same pages of the signs-of-life table again
/// and again (a feed's signs land all over it, and each commit writes every page it
/// changed).
const RECORDS_PER_COMMIT: usize = 500_000;
/// A feed file of this size or more is matched against an in-memory table of every
/// pensioner's ID token (loaded once) instead of one look-up per record.
const ID_TABLE_FROM_BYTES: u64 = 256 * 1024;
/// Rows the reading thread hands over at a time, to one of the preparing threads.
const RAW_BATCH: usize = 16_384;
/// After a feed of this many records the database's statistics are refreshed before its
/// signs of life are added up.
const ANALYZE_FROM_RECORDS: u64 = 10_000;
/// Pensioners whose signs of life are added up per transaction.
const LIFE_BATCH: i64 = 50_000;
/// EM rounds when the weights are estimated on the feed.
const EM_ITERATIONS: usize = 10;
/// Fewer ID-less records than this and the weights are not estimated.
const EM_MIN_RECORDS: usize = 1_000;

/// ID look-up tokens of every pensioner. The tokens are keyed hashes, already uniformly
/// spread, so the map hashes them no further.
#[derive(Default)]
struct IdTable(HashMap<u128, i64, std::hash::BuildHasherDefault<TokenHasher>>);

impl IdTable {
    fn get(&self, key: [u8; 16]) -> Option<i64> {
        self.0.get(&u128::from_le_bytes(key)).copied()
    }
}

#[derive(Default)]
struct TokenHasher(u64);

impl std::hash::Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// A record as the preparing thread hands it over: parsed, with its ID token and, when a
/// table was given, the pensioner that token names.
struct Prepared {
    checked: Checked,
    id_key: Option<[u8; 16]>,
    exact: Option<i64>,
    /// For a record matched by name (see [`wants_name_match`]): how it matched.
    name_match: Option<lifecert_matching::MatchResult>,
}

impl Prepared {
    /// The record, if it is to be matched by name: it has no valid ID number but a name.
    fn for_name_match(&self) -> Option<&FeedRecord> {
        match &self.checked {
            Checked::Ok(_, rec, _) if wants_name_match(self.id_key, rec) => Some(rec),
            _ => None,
        }
    }

    /// The person to match by name, for such a record.
    fn by_name(&self) -> Option<lifecert_matching::Person> {
        self.for_name_match().map(person_of)
    }
}

/// The matcher as the sequencing thread gets it: the first time a chunk has records to
/// match by name, they go to the async side as the sample (for EM), which builds the
/// matcher from the roll and sends it back. Matching then runs on the sequencing thread,
/// while the chunks before are being stored.
struct MatcherLink {
    ask: tokio::sync::mpsc::Sender<Vec<lifecert_matching::Person>>,
    answer: std::sync::mpsc::Receiver<Result<std::sync::Arc<Matcher>>>,
    matcher: Option<std::sync::Arc<Matcher>>,
}

impl MatcherLink {
    /// Matches the records of a chunk that are matched by name.
    fn classify(&mut self, chunk: &mut [Prepared]) -> Result<()> {
        let people: Vec<lifecert_matching::Person> =
            chunk.iter().filter_map(Prepared::by_name).collect();
        if people.is_empty() {
            return Ok(());
        }
        let stopped = || AppError::Io("matching stopped: the feed was abandoned".into());
        let matcher = match &self.matcher {
            Some(m) => m.clone(),
            None => {
                self.ask
                    .blocking_send(people.clone())
                    .map_err(|_| stopped())?;
                let m = self.answer.recv().map_err(|_| stopped())??;
                self.matcher = Some(m.clone());
                m
            }
        };
        let mut results = matcher.classify_all(&people).into_iter();
        for p in chunk.iter_mut() {
            if p.for_name_match().is_some() {
                p.name_match = results.next();
            }
        }
        Ok(())
    }
}

impl Drop for MatcherLink {
    fn drop(&mut self) {
        if let Some(matcher) = self.matcher.take() {
            free_in_background(matcher);
        }
    }
}

/// Frees a matcher on a thread of its own: a million pensioners' features are a million
/// frees, and nothing needs to wait for them.
fn free_in_background<T: Send + 'static>(matcher: T) {
    std::thread::spawn(move || drop(matcher));
}

enum Checked {
    Rejected(ReportLine),
    Void(String, FeedRecord),
    Ok(String, FeedRecord, NaiveDate),
}

/// What the preparing thread needs: the keys for ID tokens and, for a large feed, the
/// table of every pensioner's token.
struct Preparer {
    today: NaiveDate,
    /// Whether record ids are kept (for a report or for storing).
    keep_text: bool,
    scheme: IdScheme,
    keys: lifecert_crypto::KeyRing,
    table: Option<std::sync::Arc<IdTable>>,
}

impl Preparer {
    /// The ID token of a record's ID number, if it is one.
    fn token(&self, id_number: &str) -> Option<[u8; 16]> {
        self.scheme.normalise(id_number).map(|id| {
            self.keys
                .blind_index(lifecert_crypto::Field::IdNumber, id.as_str())
        })
    }

    /// The pensioner a token names, when the table is loaded.
    fn look_up(&self, key: Option<[u8; 16]>) -> Option<i64> {
        key.zip(self.table.as_deref()).and_then(|(k, t)| t.get(k))
    }

    /// A batch's records, prepared in order (each preparing thread takes whole batches).
    fn prepare(&self, batch: RawBatch) -> Vec<Prepared> {
        match batch {
            RawBatch::Csv(b) => {
                // The tokens, then the look-ups one after another (apart from the hashing,
                // their cache misses overlap: the table is far larger than the cache),
                // then the records.
                let keys: Vec<Option<[u8; 16]>> = b
                    .rows
                    .iter()
                    .map(|row| {
                        row.as_ref()
                            .ok()
                            .and_then(|f| self.token(b.field(f, F_ID_NUMBER)))
                    })
                    .collect();
                let exact: Vec<Option<i64>> = keys.iter().map(|k| self.look_up(*k)).collect();
                b.rows
                    .iter()
                    .zip(keys.into_iter().zip(exact))
                    .map(|(row, (key, exact))| self.csv_row(&b, row, key, exact))
                    .collect()
            }
            RawBatch::Parsed(records) => records
                .into_iter()
                .map(|record| {
                    let id_key = match &record {
                        Ok(r) => self.token(&r.id_number),
                        Err(_) => None,
                    };
                    Prepared {
                        checked: checked(record, self.today),
                        id_key,
                        exact: self.look_up(id_key),
                        name_match: None,
                    }
                })
                .collect(),
        }
    }

    fn csv_row(
        &self,
        b: &CsvBatch,
        row: &std::result::Result<CsvFields, String>,
        id_key: Option<[u8; 16]>,
        exact: Option<i64>,
    ) -> Prepared {
        let f = match row {
            Ok(f) => f,
            Err(e) => {
                return Prepared {
                    checked: checked(Err(e.clone()), self.today),
                    id_key,
                    exact,
                    name_match: None,
                }
            }
        };
        let record = match exact.is_some() && b.field(f, F_VOID_OF).trim().is_empty() {
            // Counting only (a dry run without a report): an exact match is checked in
            // place, and nothing of it kept.
            true if !self.keep_text => {
                let record_id = b.field(f, F_RECORD_ID).trim();
                let checked = if !usable_record_id(record_id) {
                    Checked::Rejected(report_line(record_id, "rejected", None, UNUSABLE_RECORD_ID))
                } else {
                    match parse_event_date(b.field(f, F_EVENT_DATE), self.today) {
                        Ok(d) => Checked::Ok(String::new(), FeedRecord::default(), d),
                        Err(reason) => {
                            Checked::Rejected(report_line(record_id, "rejected", None, reason))
                        }
                    }
                };
                return Prepared {
                    checked,
                    id_key,
                    exact,
                    name_match: None,
                };
            }
            // An exact match needs only its id and date; the rest is read for matching
            // by name or for corrections.
            true => FeedRecord {
                record_id: b.field(f, F_RECORD_ID).to_string(),
                event_date: b.field(f, F_EVENT_DATE).to_string(),
                ..FeedRecord::default()
            },
            false => b.record(f),
        };
        Prepared {
            checked: checked(Ok(record), self.today),
            id_key,
            exact,
            name_match: None,
        }
    }
}

const UNUSABLE_RECORD_ID: &str = "record_id is missing or not usable";

fn usable_record_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)
}

/// The record's own checks: a usable record id and event date.
fn checked(record: std::result::Result<FeedRecord, String>, today: NaiveDate) -> Checked {
    let mut rec = match record {
        Ok(rec) => rec,
        Err(reason) => return Checked::Rejected(report_line("", "rejected", None, reason)),
    };
    let record_id = match rec.record_id.trim() {
        t if t.len() == rec.record_id.len() => std::mem::take(&mut rec.record_id),
        t => t.to_string(),
    };
    if !usable_record_id(&record_id) {
        return Checked::Rejected(report_line(record_id, "rejected", None, UNUSABLE_RECORD_ID));
    }
    if !rec.void_of.trim().is_empty() {
        return Checked::Void(record_id, rec);
    }
    match parse_event_date(&rec.event_date, today) {
        Ok(d) => Checked::Ok(record_id, rec, d),
        Err(reason) => Checked::Rejected(report_line(record_id, "rejected", None, reason)),
    }
}

/// Counts a committed chunk's lines and hands them to the report.
fn tally(
    s: &mut FeedSummary,
    report: &mut Option<&mut (dyn FnMut(ReportLine) + Send)>,
    lines: Vec<ReportLine>,
) {
    for line in lines {
        s.count(line.class);
        if let Some(report) = report.as_mut() {
            report(line);
        }
    }
}

/// Pensioners per page when the ID table is read.
const ID_PAGE: i64 = 50_000;

/// A set of pensioner ids: a bitmap for the dense ids a database hands out (a million
/// pensioners in 125 KiB, cheap to touch ten million times), a hash set beyond that.
#[derive(Default)]
struct IdSet {
    bits: Vec<u64>,
    sparse: std::collections::HashSet<i64>,
    len: u64,
}

impl IdSet {
    const DENSE_UP_TO: i64 = 1 << 30;

    fn insert(&mut self, id: i64) {
        if !(0..Self::DENSE_UP_TO).contains(&id) {
            if self.sparse.insert(id) {
                self.len += 1;
            }
            return;
        }
        let (word, bit) = ((id / 64) as usize, id % 64);
        if word >= self.bits.len() {
            self.bits.resize((word + 1).next_power_of_two(), 0);
        }
        if self.bits[word] & (1 << bit) == 0 {
            self.bits[word] |= 1 << bit;
            self.len += 1;
        }
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A record of the current run, waiting to be stored.
struct Planned {
    /// Its report line's position in the chunk.
    line: usize,
    record_id: String,
    rec: FeedRecord,
    event: NaiveDate,
    recipient: Option<i64>,
    /// Matched by name, birth date, gender and region: it has no valid ID number (a
    /// valid number that is not on the roll is someone else's) but has a name.
    name_match: Option<lifecert_matching::MatchResult>,
}

/// Records without a valid ID number are matched by name, birth date, gender and region.
/// A valid number not on the roll belongs to someone who is not a pensioner here: a
/// typing error almost never keeps the GB 11643 check character right.
fn wants_name_match(id_key: Option<[u8; 16]>, rec: &FeedRecord) -> bool {
    id_key.is_none() && !rec.name.trim().is_empty()
}

struct IngestState<'a> {
    summary: &'a mut FeedSummary,
    /// Exact matches were looked up in the ID table while preparing.
    id_table: bool,
    /// `--dry-run`: the pensioners the exact matches name.
    matched: IdSet,
    /// Signs of life of the open transaction, stored in pensioner order before it commits.
    signs: Vec<lifecert_store::LifeSign>,
    /// What the feed checks of the pensioners it has named so far.
    known: KnownFacts,
}

/// What storing a record checks of the pensioner it names. A large feed names each
/// pensioner many times (10M records, 1M pensioners), so this is read once per feed and
/// kept, instead of being looked up again in the roll for every record.
#[derive(Debug, Clone, Copy)]
struct Facts {
    born: NaiveDate,
    terminated: bool,
    death: Option<NaiveDate>,
}

impl Facts {
    fn read(birth_date: &str, status: &str, death_date: Option<&str>) -> Result<Facts> {
        Ok(Facts {
            born: parse_stored_date(birth_date)?,
            terminated: status == PaymentStatus::Terminated.as_str(),
            death: death_date.map(parse_stored_date).transpose()?,
        })
    }
}

/// The facts of the pensioners a feed has named, kept current: before each use it forgets
/// every pensioner that the audit trail names since it last looked. Every change to a
/// birth date, payment status or death date is audited, naming the pensioner, in the
/// transaction that makes it (DESIGN: the audit trail is written with the change), and
/// writers take turns at the audit chain's head, so nothing changes unseen.
#[derive(Default)]
struct KnownFacts {
    facts: FactsById,
    /// The audit entry that `facts` is current up to; `None` before the first look.
    as_of: Option<i64>,
    /// Read the whole roll at the first look: the feed is large enough to name most of
    /// it, and one pass over it costs less than a look-up per pensioner.
    whole_roll: bool,
}

impl KnownFacts {
    /// The facts of each of `ids`, current in `tx`: `None` for no id, or a pensioner who
    /// does not exist (who stays unknown). The map is large and the ids come in any order,
    /// so each is looked up in it once.
    async fn of(
        &mut self,
        tx: &mut WriteTx,
        ids: impl Iterator<Item = Option<i64>>,
    ) -> Result<Vec<Option<Facts>>> {
        match self.as_of {
            Some(since) => {
                for id in tx.recipients_audited_after(since).await? {
                    self.facts.remove(id);
                }
            }
            None if self.whole_roll => self.read_whole_roll(tx).await?,
            None => {}
        }
        self.as_of = Some(tx.audit_seq());
        let mut out = Vec::with_capacity(ids.size_hint().0);
        let mut missing = Vec::new();
        for id in ids {
            let known = id.and_then(|id| self.facts.get(id));
            if let (None, Some(id)) = (known, id) {
                missing.push((out.len(), id));
            }
            out.push(known);
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let ids: Vec<i64> = missing.iter().map(|&(_, id)| id).collect();
        for r in tx.recipient_facts(&ids).await? {
            let facts = Facts::read(&r.birth_date, &r.status, r.death_date.as_deref())?;
            self.facts.insert(r.id, facts);
        }
        for (at, id) in missing {
            out[at] = self.facts.get(id);
        }
        Ok(out)
    }

    async fn read_whole_roll(&mut self, tx: &mut WriteTx) -> Result<()> {
        let started = std::time::Instant::now();
        let mut after = 0;
        self.facts = FactsById::Dense(Vec::new());
        loop {
            let page = tx.recipient_facts_page(after, ID_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for r in page {
                let facts = Facts::read(&r.birth_date, &r.status, r.death_date.as_deref())?;
                self.facts.insert(r.id, facts);
            }
        }
        tracing::info!(
            pensioners = self.facts.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pensioners' facts read"
        );
        Ok(())
    }
}

/// Pensioners' facts by id. A whole roll is read into a vector indexed by id (ids are
/// handed out in sequence, so it is dense, and a look-up is one memory access instead of
/// a hash and a probe); it becomes a map if an id far past the others turns up.
enum FactsById {
    Map(HashMap<i64, Facts>),
    Dense(Vec<Option<Facts>>),
}

impl Default for FactsById {
    fn default() -> Self {
        FactsById::Map(HashMap::new())
    }
}

impl FactsById {
    fn get(&self, id: i64) -> Option<Facts> {
        match self {
            FactsById::Map(map) => map.get(&id).copied(),
            FactsById::Dense(v) => usize::try_from(id)
                .ok()
                .and_then(|i| v.get(i).copied().flatten()),
        }
    }

    fn insert(&mut self, id: i64, facts: Facts) {
        if let FactsById::Dense(v) = self {
            match usize::try_from(id) {
                Ok(i) if i < v.len() => return v[i] = Some(facts),
                Ok(i) if i <= 2 * v.len() + 65_536 => {
                    v.resize(i + 1, None);
                    return v[i] = Some(facts);
                }
                _ => {
                    let map = v
                        .iter()
                        .enumerate()
                        .filter_map(|(i, f)| Some((i as i64, (*f)?)))
                        .collect();
                    *self = FactsById::Map(map);
                }
            }
        }
        if let FactsById::Map(map) = self {
            map.insert(id, facts);
        }
    }

    fn remove(&mut self, id: i64) {
        match self {
            FactsById::Map(map) => {
                map.remove(&id);
            }
            FactsById::Dense(v) => {
                if let Some(f) = usize::try_from(id).ok().and_then(|i| v.get_mut(i)) {
                    *f = None;
                }
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            FactsById::Map(map) => map.len(),
            FactsById::Dense(v) => v.iter().filter(|f| f.is_some()).count(),
        }
    }
}

/// The stages of a feed before storing: reading rows; preparing them (fields, ID
/// tokens, table look-up), a batch at a time on every core; putting them back in order,
/// in chunks matched by name. What they hand over comes out of `chunks`; the sequencing
/// thread asks for the matcher through `asked` the first time it needs one, and waits
/// for it on `answer`.
struct Stages {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    chunks: tokio::sync::mpsc::Receiver<Result<Vec<Prepared>>>,
    asked: tokio::sync::mpsc::Receiver<Vec<lifecert_matching::Person>>,
    answer: std::sync::mpsc::SyncSender<Result<std::sync::Arc<Matcher>>>,
}

impl Stages {
    fn start(mut reader: Reader, first: RawBatch, preparer: Preparer, counting: bool) -> Stages {
        // Each stage hands batches to the next through a short queue, and at most
        // `in_flight` batches are between reading and the chunks.
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let in_flight = 2 * workers + 2;
        let (tx_chunks, chunks) = tokio::sync::mpsc::channel::<Result<Vec<Prepared>>>(2);
        let (tx_raw, rx_raw) = std::sync::mpsc::sync_channel::<(usize, RawBatch)>(in_flight);
        let (tx_ready, rx_ready) =
            std::sync::mpsc::sync_channel::<(usize, Vec<Prepared>)>(in_flight);
        let (tx_turn, rx_turn) = std::sync::mpsc::sync_channel::<()>(in_flight);
        let mut first = Some(first);
        let reading = tokio::task::spawn_blocking(move || {
            for seq in 0.. {
                if tx_turn.send(()).is_err() {
                    return;
                }
                let batch = match first.take() {
                    Some(batch) => batch,
                    None => reader.batch(RAW_BATCH),
                };
                let last = batch.len() < RAW_BATCH;
                if batch.is_empty() || tx_raw.send((seq, batch)).is_err() || last {
                    return;
                }
            }
        });
        let preparer = std::sync::Arc::new(preparer);
        let rx_raw = std::sync::Arc::new(std::sync::Mutex::new(rx_raw));
        let mut stages = vec![reading];
        for _ in 0..workers {
            let (rx_raw, tx_ready, preparer) = (rx_raw.clone(), tx_ready.clone(), preparer.clone());
            stages.push(tokio::task::spawn_blocking(move || loop {
                let next = match rx_raw.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let Ok((seq, batch)) = next else { return };
                if tx_ready.send((seq, preparer.prepare(batch))).is_err() {
                    return;
                }
            }));
        }
        drop(tx_ready);
        let (ask, asked) = tokio::sync::mpsc::channel(1);
        let (answer, answers) = std::sync::mpsc::sync_channel(1);
        let mut link = MatcherLink {
            ask,
            answer: answers,
            matcher: None,
        };
        stages.push(tokio::task::spawn_blocking(move || {
            // Matches a chunk's records by name and hands it over; false when the feed
            // stops here. (Counting matches them all at the end: see `count_feed`.)
            let mut send = |mut chunk: Vec<Prepared>| {
                let matched = match counting {
                    true => Ok(chunk),
                    false => link.classify(&mut chunk).map(|()| chunk),
                };
                let ok = matched.is_ok();
                tx_chunks.blocking_send(matched).is_ok() && ok
            };
            let mut waiting = std::collections::BTreeMap::new();
            let mut next = 0;
            let mut chunk = Vec::with_capacity(CHUNK);
            for (seq, prepared) in rx_ready {
                waiting.insert(seq, prepared);
                while let Some(prepared) = waiting.remove(&next) {
                    next += 1;
                    let _ = rx_turn.recv();
                    // Counting needs no chunks of a set size: no need to cut them.
                    if counting {
                        if !send(prepared) {
                            return;
                        }
                        continue;
                    }
                    for p in prepared {
                        chunk.push(p);
                        if chunk.len() == CHUNK {
                            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                            if !send(full) {
                                return;
                            }
                        }
                    }
                }
            }
            // (A batch still waiting means one before it was lost: a preparing thread
            // failed, and the feed stops with its error.)
            if !chunk.is_empty() && waiting.is_empty() {
                send(chunk);
            }
        }));
        Stages {
            tasks: stages,
            chunks,
            asked,
            answer,
        }
    }
}

impl IngestState<'_> {
    /// Stores the open transaction's signs of life and lists their pensioners as pending.
    async fn store_signs(&mut self, tx: &mut WriteTx) -> Result<()> {
        // Sorted by pensioner first.
        tx.insert_life_signs(&mut self.signs).await?;
        let mut pending: Vec<i64> = self.signs.iter().map(|s| s.recipient_id).collect();
        pending.dedup();
        tx.add_pending_life(&pending).await?;
        self.signs.clear();
        Ok(())
    }
}

fn report_line(
    record_id: impl Into<String>,
    class: &'static str,
    recipient_id: Option<i64>,
    reason: impl Into<Cow<'static, str>>,
) -> ReportLine {
    ReportLine {
        record_id: record_id.into(),
        class,
        score: None,
        recipient_id,
        reason: reason.into(),
    }
}

fn unmatched_line(scheme: IdScheme, record_id: &str, rec: &FeedRecord) -> ReportLine {
    report_line(record_id, "unmatched", None, unmatched_reason(scheme, rec))
}

/// Why neither the record's ID number nor its name found a pensioner.
fn unmatched_reason(scheme: IdScheme, rec: &FeedRecord) -> Cow<'static, str> {
    let no_id = rec.id_number.trim().is_empty();
    if !no_id && scheme.normalise(&rec.id_number).is_some() {
        return "no pensioner with this ID number".into();
    }
    let id = match (no_id, scheme) {
        (true, _) => "no ID number",
        (false, IdScheme::CnResident) => {
            "the ID number is not valid (length, date or check character)"
        }
        (false, IdScheme::Generic) => "the ID number is not valid (4 to 32 letters and digits)",
    };
    if rec.name.trim().is_empty() {
        format!("{id} and there is no name").into()
    } else {
        format!("{id} and no pensioner matches by name, birth date, gender and region").into()
    }
}

/// The report's reason for a record matched by name.
fn name_match_reason(class: &str) -> String {
    format!("{class} match by name, birth date, gender and region")
}

fn class_name(c: lifecert_matching::Class) -> &'static str {
    match c {
        lifecert_matching::Class::Probable => "probable",
        lifecert_matching::Class::Possible => "possible",
        lifecert_matching::Class::Unmatched => "unmatched",
    }
}

fn parse_event_date(s: &str, today: NaiveDate) -> std::result::Result<NaiveDate, String> {
    let d = lifecert_domain::parse_date(s).map_err(|e| format!("event_date: {e}"))?;
    if d > today {
        return Err(format!("event_date: {d} is in the future"));
    }
    Ok(d)
}

/// Reads records one at a time, with the line each started on.
type Input = Box<dyn std::io::Read + Send>;

/// The fields of a record, in the order of [`FIELDS`].
const FIELDS: [&str; 8] = [
    "record_id",
    "id_number",
    "name",
    "gender",
    "birth_date",
    "event_date",
    "region_code",
    "void_of",
];
const F_RECORD_ID: usize = 0;
const F_ID_NUMBER: usize = 1;
const F_NAME: usize = 2;
const F_GENDER: usize = 3;
const F_BIRTH_DATE: usize = 4;
const F_EVENT_DATE: usize = 5;
const F_REGION_CODE: usize = 6;
const F_VOID_OF: usize = 7;

/// Where each field is in a CSV feed's rows.
struct Columns([Option<usize>; 8]);

impl Columns {
    fn new(names: &[String]) -> Columns {
        Columns(FIELDS.map(|n| names.iter().position(|h| h == n)))
    }
}

/// A row's fields: start and end in its batch's buffer.
type CsvFields = [(u32, u32); 8];

/// CSV rows as read: the fields the pipeline uses copied into one buffer per batch, so
/// that reading allocates per batch, not per row.
struct CsvBatch {
    /// The fields of the rows that are text, one after another.
    buf: String,
    rows: Vec<std::result::Result<CsvFields, String>>,
}

impl CsvBatch {
    fn field(&self, f: &CsvFields, k: usize) -> &str {
        let (a, b) = f[k];
        self.buf.get(a as usize..b as usize).unwrap_or("")
    }

    fn record(&self, f: &CsvFields) -> FeedRecord {
        let v = |k| self.field(f, k).to_string();
        FeedRecord {
            record_id: v(F_RECORD_ID),
            id_number: v(F_ID_NUMBER),
            name: v(F_NAME),
            gender: v(F_GENDER),
            birth_date: v(F_BIRTH_DATE),
            event_date: v(F_EVENT_DATE),
            region_code: v(F_REGION_CODE),
            void_of: v(F_VOID_OF),
        }
    }
}

/// Records as read, before preparation: CSV rows stay unparsed until the preparing
/// thread needs their fields.
enum RawBatch {
    Csv(CsvBatch),
    Parsed(Vec<std::result::Result<FeedRecord, String>>),
}

impl RawBatch {
    fn len(&self) -> usize {
        match self {
            RawBatch::Csv(b) => b.rows.len(),
            RawBatch::Parsed(r) => r.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any record carries an ID number.
    fn has_ids(&self) -> bool {
        match self {
            RawBatch::Csv(b) => b.rows.iter().any(|r| {
                r.as_ref()
                    .is_ok_and(|f| !b.field(f, F_ID_NUMBER).trim().is_empty())
            }),
            RawBatch::Parsed(r) => r
                .iter()
                .any(|r| r.as_ref().is_ok_and(|r| !r.id_number.trim().is_empty())),
        }
    }
}

enum Reader {
    Csv(Box<(csv::Reader<Input>, Columns, csv::ByteRecord)>),
    Jsonl(std::io::Lines<std::io::BufReader<Input>>, u64),
    Records(std::vec::IntoIter<FeedRecord>),
}

impl Reader {
    fn open(path: &Path, format: FeedFormat) -> Result<Reader> {
        let file = std::fs::File::open(path)
            .map_err(|e| AppError::Io(format!("cannot read {}: {e}", path.display())))?;
        Reader::new(Box::new(file), format)
    }

    fn new(file: Input, format: FeedFormat) -> Result<Reader> {
        Ok(match format {
            FeedFormat::Csv => {
                let mut r = csv::ReaderBuilder::new()
                    .flexible(true)
                    .buffer_capacity(1 << 20)
                    .from_reader(file);
                let headers = r
                    .headers()
                    .map_err(|e| AppError::invalid("header", format!("line 1: {e}")))?
                    .clone();
                let names: Vec<String> = headers
                    .iter()
                    .map(|h| h.trim().trim_start_matches('\u{feff}').to_string())
                    .collect();
                if !names.iter().any(|h| h == "record_id") {
                    return Err(AppError::invalid(
                        "header",
                        "line 1: the feed needs a record_id column",
                    ));
                }
                Reader::Csv(Box::new((r, Columns::new(&names), csv::ByteRecord::new())))
            }
            FeedFormat::Jsonl => Reader::Jsonl(std::io::BufReader::new(file).lines(), 0),
        })
    }

    /// Up to `n` records; fewer only at the end of the input.
    fn batch(&mut self, n: usize) -> RawBatch {
        match self {
            Reader::Csv(csv) => {
                let (r, columns, row) = &mut **csv;
                let mut b = CsvBatch {
                    buf: String::with_capacity(n * 64),
                    rows: Vec::with_capacity(n),
                };
                while b.rows.len() < n {
                    match r.read_byte_record(row) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            let stop = matches!(e.kind(), csv::ErrorKind::Io(_));
                            b.rows.push(Err(format!("cannot be read: {e}")));
                            if stop {
                                break;
                            }
                            continue;
                        }
                    }
                    let mut f = CsvFields::default();
                    let mut not_text = None;
                    for (k, column) in columns.0.iter().enumerate() {
                        let Some(bytes) = column.and_then(|i| row.get(i)) else {
                            continue;
                        };
                        let start = b.buf.len() as u32;
                        match std::str::from_utf8(bytes) {
                            Ok(text) => b.buf.push_str(text),
                            Err(_) => not_text = Some(k),
                        }
                        f[k] = (start, b.buf.len() as u32);
                    }
                    b.rows.push(match not_text {
                        None => Ok(f),
                        Some(k) => Err(format!(
                            "line {}: {} is not UTF-8 text: save the file as \"CSV UTF-8\" (the file may be GBK)",
                            row.position().map_or(0, |p| p.line()),
                            FIELDS[k]
                        )),
                    });
                }
                RawBatch::Csv(b)
            }
            Reader::Jsonl(lines, line_no) => {
                let mut out = Vec::with_capacity(n);
                while out.len() < n {
                    *line_no += 1;
                    let line_no = *line_no;
                    match lines.next() {
                        None => break,
                        Some(Err(e)) => {
                            out.push(Err(format!("line {line_no} cannot be read: {e}")));
                            break;
                        }
                        Some(Ok(l)) if l.trim().is_empty() => {}
                        Some(Ok(l)) => out.push(
                            serde_json::from_str(&l)
                                .map_err(|e| format!("line {line_no} is not a feed record: {e}")),
                        ),
                    }
                }
                RawBatch::Parsed(out)
            }
            Reader::Records(it) => RawBatch::Parsed(it.take(n).map(Ok).collect()),
        }
    }
}

impl App {
    /// Ingests a feed file. Each record is stored once per source (`record_id`), matched
    /// by ID number, and applied; `report` receives one line per record.
    pub async fn ingest_feed(
        &self,
        source: &Source,
        path: &Path,
        format: FeedFormat,
        report: Option<&mut (dyn FnMut(ReportLine) + Send)>,
    ) -> Result<FeedSummary> {
        let large = std::fs::metadata(path).is_ok_and(|m| m.len() >= ID_TABLE_FROM_BYTES);
        self.ingest_with(source, Reader::open(path, format)?, report, false, large)
            .await
    }

    /// Ingests a feed held in memory (an upload queued as a job).
    pub async fn ingest_feed_bytes(
        &self,
        source: &Source,
        bytes: Vec<u8>,
        format: FeedFormat,
    ) -> Result<FeedSummary> {
        let large = bytes.len() as u64 >= ID_TABLE_FROM_BYTES;
        let reader = Reader::new(Box::new(std::io::Cursor::new(bytes)), format)?;
        self.ingest_with(source, reader, None, false, large).await
    }

    /// Ingests records that arrived as messages (DCI notify, OpenCRVS webhook) through the
    /// same pipeline as feed files; returns the summary and one report line per record.
    pub async fn ingest_records(
        &self,
        source: &Source,
        records: Vec<FeedRecord>,
    ) -> Result<(FeedSummary, Vec<ReportLine>)> {
        let mut lines = Vec::new();
        let summary = self
            .ingest_with(
                source,
                Reader::Records(records.into_iter()),
                Some(&mut |l| lines.push(l)),
                false,
                false,
            )
            .await?;
        Ok((summary, lines))
    }

    /// Reads, matches and classifies a feed file without storing or changing anything: what
    /// an ingest would match, for checking a new feed (`feed ingest --dry-run`). Without a
    /// report only the counts are kept, and the matcher for records without a usable ID
    /// number is built while the rest of the feed is read.
    pub async fn preview_feed(
        &self,
        source: &Source,
        path: &Path,
        format: FeedFormat,
        report: Option<&mut (dyn FnMut(ReportLine) + Send)>,
    ) -> Result<FeedSummary> {
        let large = std::fs::metadata(path).is_ok_and(|m| m.len() >= ID_TABLE_FROM_BYTES);
        self.ingest_with(source, Reader::open(path, format)?, report, true, large)
            .await
    }

    /// The pipeline: the [`Stages`] read, prepare (ID numbers normalised and turned into
    /// look-up tokens) and match chunks of records while the previous chunk is stored
    /// here in one transaction. Signs of life are added up per pensioner once the whole
    /// feed is in (see [`App::apply_pending_life_signs`]).
    async fn ingest_with(
        &self,
        source: &Source,
        mut reader: Reader,
        report: Option<&mut (dyn FnMut(ReportLine) + Send)>,
        dry_run: bool,
        large: bool,
    ) -> Result<FeedSummary> {
        let started = std::time::Instant::now();
        let actor = Actor::Integration(source.name.to_string());
        let mut summary = FeedSummary::default();
        // A large feed is matched against a table of every pensioner's ID token, on the
        // preparing threads; a small one by a look-up per record.
        // (Only if the feed carries ID numbers at all: its first rows tell.)
        let first = reader.batch(RAW_BATCH);
        let id_table = match large && first.has_ids() {
            true => Some(std::sync::Arc::new(self.load_id_table().await?)),
            false => None,
        };
        let counting = dry_run && report.is_none();
        let preparer = Preparer {
            today: self.today(),
            keep_text: !counting,
            scheme: self.id_scheme(),
            keys: self.keys.clone(),
            table: id_table.clone(),
        };
        let Stages {
            tasks: stages,
            chunks,
            mut asked,
            answer,
        } = Stages::start(reader, first, preparer, counting);
        // The matcher is built when the sequencing thread first asks for it, while the
        // chunks before are stored.
        let serve = async {
            if let Some(sample) = asked.recv().await {
                let built = self.build_matcher(&sample).await;
                let _ = answer.send(built.map(std::sync::Arc::new));
            }
        };
        let mut st = IngestState {
            summary: &mut summary,
            id_table: id_table.is_some(),
            matched: IdSet::default(),
            signs: Vec::new(),
            known: KnownFacts {
                whole_roll: id_table.is_some(),
                ..KnownFacts::default()
            },
        };
        let work = async {
            // Owned here, so that the sequencing thread stops (and stops asking for a
            // matcher) as soon as this ends, with an error or not.
            let mut chunks = chunks;
            let stored = self
                .store_chunks(
                    &mut chunks,
                    &mut st,
                    source,
                    &actor,
                    report,
                    dry_run,
                    counting,
                )
                .await;
            drop(chunks);
            stored
        };
        let ((), stored) = tokio::join!(serve, work);
        stored?;
        for stage in stages {
            stage
                .await
                .map_err(|e| AppError::Io(format!("the feed reader stopped: {e}")))?;
        }
        let matched = st.matched.len();
        drop(st);
        tracing::info!(
            records = summary.records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "feed read, matched and stored"
        );
        if dry_run {
            summary.recipients_matched = Some(matched);
        } else {
            if summary.records >= ANALYZE_FROM_RECORDS {
                self.store.refresh_feed_statistics().await?;
            }
            self.apply_pending_life_signs(&actor, &mut summary).await?;
            tracing::info!(
                certified = summary.lives_certified,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "signs of life applied"
            );
        }
        Ok(summary)
    }

    /// Counts, previews or stores the prepared chunks of a feed.
    #[allow(clippy::too_many_arguments)]
    async fn store_chunks(
        &self,
        chunks: &mut tokio::sync::mpsc::Receiver<Result<Vec<Prepared>>>,
        st: &mut IngestState<'_>,
        source: &Source,
        actor: &Actor,
        mut report: Option<&mut (dyn FnMut(ReportLine) + Send)>,
        dry_run: bool,
        counting: bool,
    ) -> Result<()> {
        if counting {
            return self.count_feed(chunks, st).await;
        }
        // Chunks are stored many to a transaction: every commit writes each page it
        // changed, and a feed's signs of life land all over the table of them, so fewer,
        // larger commits write far less. Report lines wait for their commit.
        let mut open: Option<WriteTx> = None;
        let mut held: Vec<ReportLine> = Vec::new();
        let mut in_tx = 0;
        while let Some(chunk) = chunks.recv().await {
            let chunk = chunk?;
            if dry_run {
                let lines = self.preview_chunk(chunk, st).await?;
                tally(st.summary, &mut report, lines);
                continue;
            }
            let mut tx = match open.take() {
                Some(tx) => tx,
                None => self.store.begin_write().await?,
            };
            in_tx += chunk.len();
            let lines = self.apply_chunk(&mut tx, actor, source, chunk, st).await?;
            // While the next chunk is being matched.
            tx.write_audit().await?;
            // Without a report only the counts are kept (they are shown only if the whole
            // feed goes in).
            match report {
                Some(_) => held.extend(lines),
                None => tally(st.summary, &mut report, lines),
            }
            if in_tx < RECORDS_PER_COMMIT {
                open = Some(tx);
                continue;
            }
            in_tx = 0;
            st.store_signs(&mut tx).await?;
            tx.commit().await?;
            tally(st.summary, &mut report, std::mem::take(&mut held));
        }
        if let Some(mut tx) = open {
            st.store_signs(&mut tx).await?;
            tx.commit().await?;
            tally(st.summary, &mut report, held);
        }
        Ok(())
    }

    /// Every pensioner's ID look-up token, for matching a large feed in memory. The next
    /// page is read from the database while the last one is put into the table.
    async fn load_id_table(&self) -> Result<IdTable> {
        let started = std::time::Instant::now();
        let mut table = IdTable::default();
        let mut page = self.store.id_index_page(0, ID_PAGE).await?;
        while let Some(&(last, _)) = page.last() {
            let next = self.store.id_index_page(last, ID_PAGE);
            let fill = async {
                for (id, bidx) in std::mem::take(&mut page) {
                    if let Ok(key) = <[u8; 16]>::try_from(bidx.as_slice()) {
                        table.0.insert(u128::from_le_bytes(key), id);
                    }
                }
            };
            let (next, ()) = tokio::join!(next, fill);
            page = next?;
        }
        tracing::info!(
            pensioners = table.0.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ID table loaded"
        );
        Ok(table)
    }

    /// The pensioner a prepared record's ID number names, if any (looked up already
    /// when the feed was matched against the ID table).
    async fn exact_id(
        &self,
        tx: Option<&mut WriteTx>,
        table_used: bool,
        id_key: Option<[u8; 16]>,
        exact: Option<i64>,
    ) -> Result<Option<i64>> {
        let Some(key) = id_key.filter(|_| !table_used) else {
            return Ok(exact);
        };
        let row = match tx {
            Some(tx) => tx.recipient_by_bidx(&key).await?,
            None => self.store.recipient_by_bidx(&key).await?,
        };
        Ok(row.map(|r| r.id))
    }

    /// `--dry-run` without a report: counts a feed without storing or reporting it. Records
    /// are counted as they come; those to match by name are matched at the end, by a
    /// matcher built meanwhile (a feed of millions then never waits for it).
    async fn count_feed(
        &self,
        chunks: &mut tokio::sync::mpsc::Receiver<Result<Vec<Prepared>>>,
        st: &mut IngestState<'_>,
    ) -> Result<()> {
        let (tx_sample, rx_sample) = tokio::sync::oneshot::channel::<Vec<_>>();
        let build = async {
            match rx_sample.await {
                Ok(sample) => self.build_matcher(&sample).await.map(Some),
                Err(_) => Ok(None),
            }
        };
        let mut by_name = Vec::new();
        let count = async {
            let mut tx_sample = Some(tx_sample);
            while let Some(chunk) = chunks.recv().await {
                for p in chunk? {
                    if let Some(person) = p.by_name() {
                        by_name.push(person);
                        continue;
                    }
                    match p.checked {
                        Checked::Rejected(_) => st.summary.count("rejected"),
                        // A correction is classed as a report shows it.
                        Checked::Void(..) => st.summary.count("exact"),
                        Checked::Ok(..) => {
                            match self.exact_id(None, st.id_table, p.id_key, p.exact).await? {
                                Some(id) => {
                                    st.summary.count("exact");
                                    st.matched.insert(id);
                                }
                                None => st.summary.count("unmatched"),
                            }
                        }
                    }
                }
                if !by_name.is_empty() {
                    if let Some(tx) = tx_sample.take() {
                        let _ = tx.send(by_name.clone());
                    }
                }
            }
            Ok::<_, AppError>(())
        };
        let (matcher, counted) = tokio::join!(build, count);
        counted?;
        let Some(matcher) = matcher? else {
            return Ok(());
        };
        let results = tokio::task::spawn_blocking(move || {
            let results = matcher.classify_all(&by_name);
            free_in_background(matcher);
            results
        })
        .await
        .map_err(|e| AppError::Io(format!("matching stopped: {e}")))?;
        for m in results {
            st.summary.count(class_name(m.class));
        }
        Ok(())
    }

    async fn preview_chunk(
        &self,
        chunk: Vec<Prepared>,
        st: &mut IngestState<'_>,
    ) -> Result<Vec<ReportLine>> {
        let mut lines = Vec::with_capacity(chunk.len());
        for p in chunk {
            let Prepared {
                checked,
                id_key,
                exact,
                name_match,
            } = p;
            let (record_id, rec) = match checked {
                Checked::Rejected(line) => {
                    lines.push(line);
                    continue;
                }
                Checked::Void(record_id, _) => {
                    lines.push(report_line(
                        record_id,
                        "exact",
                        None,
                        "a correction (void_of)",
                    ));
                    continue;
                }
                Checked::Ok(record_id, rec, _) => (record_id, rec),
            };
            if let Some(m) = name_match {
                let class = class_name(m.class);
                let mut line = match m.class {
                    lifecert_matching::Class::Unmatched => {
                        unmatched_line(self.id_scheme(), &record_id, &rec)
                    }
                    _ => report_line(record_id, class, m.candidate_id, name_match_reason(class)),
                };
                line.score = m.score.is_finite().then_some(m.score);
                lines.push(line);
                continue;
            }
            match self.exact_id(None, st.id_table, id_key, exact).await? {
                Some(id) => {
                    st.matched.insert(id);
                    lines.push(report_line(
                        record_id,
                        "exact",
                        Some(id),
                        "matched by ID number",
                    ));
                }
                None => lines.push(unmatched_line(self.id_scheme(), &record_id, &rec)),
            }
        }
        Ok(lines)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_chunk(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        source: &Source,
        chunk: Vec<Prepared>,
        st: &mut IngestState<'_>,
    ) -> Result<Vec<ReportLine>> {
        let mut lines: Vec<ReportLine> = Vec::with_capacity(chunk.len());
        // Records are stored in runs; a correction (void_of) ends a run, so that it sees
        // every record before it.
        let mut run: Vec<Planned> = Vec::new();
        for p in chunk {
            let Prepared {
                checked,
                id_key,
                exact,
                name_match,
            } = p;
            match checked {
                Checked::Rejected(line) => lines.push(line),
                Checked::Void(record_id, rec) => {
                    self.store_run(tx, actor, source, std::mem::take(&mut run), &mut lines, st)
                        .await?;
                    // The record it voids may be one of this transaction's signs.
                    st.store_signs(tx).await?;
                    let line = self
                        .apply_void(tx, actor, source, &rec, &record_id, st.summary)
                        .await?;
                    lines.push(line);
                }
                Checked::Ok(record_id, rec, event) => {
                    let recipient = self.exact_id(Some(tx), st.id_table, id_key, exact).await?;
                    run.push(Planned {
                        line: lines.len(),
                        record_id,
                        rec,
                        event,
                        recipient,
                        name_match,
                    });
                    lines.push(report_line("", "unmatched", None, ""));
                }
            }
        }
        self.store_run(tx, actor, source, run, &mut lines, st)
            .await?;
        Ok(lines)
    }

    /// Stores a run of records in bulk and applies what cannot wait for the end of the
    /// feed (deaths, imprisonment, probable matches); fills in their report lines.
    async fn store_run(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        source: &Source,
        mut run: Vec<Planned>,
        lines: &mut [ReportLine],
        st: &mut IngestState<'_>,
    ) -> Result<()> {
        if run.is_empty() {
            return Ok(());
        }
        let matches: Vec<Option<lifecert_matching::MatchResult>> =
            run.iter_mut().map(|p| p.name_match.take()).collect();
        // Each record's pensioner's facts; `None` if there is none (removed since the
        // table was loaded: treated as not found).
        let facts = st.known.of(tx, run.iter().map(|p| p.recipient)).await?;
        // What each record is, and the records to store.
        let mut seen = std::collections::HashSet::with_capacity(run.len());
        let mut classes = Vec::with_capacity(run.len());
        let mut recipients = Vec::with_capacity(run.len());
        for ((p, m), f) in run.iter().zip(&matches).zip(&facts) {
            let line = &mut lines[p.line];
            let recipient = p.recipient.filter(|_| f.is_some());
            recipients.push(recipient);
            if f.is_some_and(|f| p.event < f.born) {
                *line = report_line(
                    &p.record_id,
                    "rejected",
                    recipient,
                    format!(
                        "event_date {} is before the pensioner's birth date",
                        p.event
                    ),
                );
                classes.push(None);
                continue;
            }
            if !seen.insert(p.record_id.as_str()) {
                *line = report_line(
                    &p.record_id,
                    "duplicate",
                    recipient,
                    "this record id appears twice in the feed",
                );
                classes.push(None);
                continue;
            }
            let class = match (recipient, m) {
                (Some(_), _) => "exact",
                (None, Some(m)) => class_name(m.class),
                (None, None) => "unmatched",
            };
            classes.push(Some(class));
        }
        let now = self.now_string();
        let event_strings: Vec<String> = run.iter().map(|p| date_str(p.event)).collect();
        let new_records: Vec<NewFeedRecord> = run
            .iter()
            .zip(&classes)
            .zip(&recipients)
            .zip(&event_strings)
            .filter_map(|(((p, c), &recipient_id), e)| {
                c.map(|class| NewFeedRecord {
                    record_id: &p.record_id,
                    kind: source.kind.as_str(),
                    recipient_id,
                    class,
                    event_date: Some(e),
                    weight_milli: source.weight_milli,
                    void_of: None,
                })
            })
            .collect();
        // One answer per record stored, in order.
        let mut inserted = tx
            .insert_feed_records(&source.name, &new_records, &now)
            .await?
            .into_iter();
        drop(new_records);
        // Pensioners whose row this run changed (re-read before use), and those with new
        // signs of life to add up.
        let mut changed = std::collections::HashSet::new();
        let mut reviews = Vec::new();
        for ((((p, class), m), recipient), known) in run
            .iter()
            .zip(classes)
            .zip(matches)
            .zip(recipients)
            .zip(facts)
        {
            let Some(class) = class else { continue };
            let line = &mut lines[p.line];
            let Some(feed_record_id) = inserted.next().flatten() else {
                *line = report_line(
                    &p.record_id,
                    "duplicate",
                    recipient,
                    "this record id was received before",
                );
                continue;
            };
            line.class = class;
            line.recipient_id = recipient;
            if let Some(id) = recipient {
                line.reason = match source.kind {
                    SourceKind::Life => {
                        let facts = match known {
                            Some(f) if !changed.contains(&id) => f,
                            _ => {
                                let r = self.current_row(tx, id).await?;
                                Facts::read(&r.birth_date, &r.status, r.death_date.as_deref())?
                            }
                        };
                        let (reason, living) = self
                            .record_life_sign(
                                tx,
                                actor,
                                id,
                                facts,
                                p.event,
                                &p.record_id,
                                st.summary,
                            )
                            .await?;
                        if living {
                            st.signs.push(lifecert_store::LifeSign {
                                recipient_id: id,
                                day: day_number(p.event),
                                feed_record_id,
                                weight_milli: source.weight_milli,
                            });
                        }
                        reason
                    }
                    SourceKind::Death => {
                        changed.insert(id);
                        let r = self.current_row(tx, id).await?;
                        self.apply_death(tx, actor, source, &r, p.event, &p.record_id, st.summary)
                            .await?
                            .into()
                    }
                    SourceKind::Imprisonment => {
                        changed.insert(id);
                        let r = self.current_row(tx, id).await?;
                        self.apply_imprisonment(tx, actor, &r, &p.record_id)
                            .await?
                            .into()
                    }
                };
                continue;
            }
            if class == "unmatched" {
                line.reason = unmatched_reason(self.id_scheme(), &p.rec);
                line.score = m.as_ref().map(|m| m.score).filter(|s| s.is_finite());
                continue;
            }
            // Matched by name (the class says so).
            let Some(m) = m else { continue };
            line.score = Some(m.score);
            line.recipient_id = m.candidate_id;
            line.reason = name_match_reason(class).into();
            if let (lifecert_matching::Class::Probable, Some(c)) = (m.class, m.candidate_id) {
                let details = serde_json::json!({"source": source.name, "record_id": p.record_id, "kind": source.kind.as_str(), "event_date": date_str(p.event), "score": m.score});
                reviews.push((c, details.to_string()));
                line.reason
                    .to_mut()
                    .push_str(": review opened, payment unchanged");
            }
        }
        // The review cases of probable matches, opened together.
        let kind = "probable_match";
        let opened = tx
            .open_review_cases(kind, &reviews, &actor.label(), &now)
            .await?;
        st.summary.reviews_opened += opened.len() as u64;
        for (case, recipient_id) in opened {
            self.audit_case_opened(tx, actor, recipient_id, case, kind);
        }
        for p in run {
            lines[p.line].record_id = p.record_id;
        }
        Ok(())
    }

    /// A new sign of life: doubtful if dated after a reported death, otherwise one to add
    /// up when the feed is in (then `true`). Returns the report's reason.
    #[allow(clippy::too_many_arguments)]
    async fn record_life_sign(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        id: i64,
        facts: Facts,
        event: NaiveDate,
        record_id: &str,
        summary: &mut FeedSummary,
    ) -> Result<(Cow<'static, str>, bool)> {
        if facts.terminated {
            return Ok(("payment is terminated".into(), false));
        }
        if let Some(death) = facts.death {
            if event > death {
                self.open_review_case(
                    tx,
                    actor,
                    id,
                    "doubtful_certification",
                    None,
                    serde_json::json!({"conflict": "sign of life after a reported death", "record_id": record_id, "event_date": date_str(event), "death_date": date_str(death)}),
                )
                .await?;
                summary.reviews_opened += 1;
                return Ok((
                    "sign of life after the reported death date: doubtful, review opened".into(),
                    false,
                ));
            }
        }
        Ok((
            "sign of life recorded; signs are added up per pensioner when the feed is in".into(),
            true,
        ))
    }

    async fn current_row(&self, tx: &mut WriteTx, id: i64) -> Result<RecipientRow> {
        tx.recipient_by_id(id)
            .await?
            .ok_or_else(|| AppError::Corrupt(format!("pensioner {id} vanished during the feed")))
    }

    /// Adds up the signs of life not yet applied, pensioner by pensioner: each one whose
    /// signs within 90 days reach 1.0 gets one passive `pass` certification, dated at the
    /// latest sign that reaches it. Also finishes the work of a feed that stopped half-way.
    pub async fn apply_pending_life_signs(
        &self,
        actor: &Actor,
        summary: &mut FeedSummary,
    ) -> Result<()> {
        loop {
            let mut tx = self.store.begin_write().await?;
            let pending = tx.pending_life(LIFE_BATCH).await?;
            if pending.is_empty() {
                tx.commit().await?;
                return Ok(());
            }
            let ids: Vec<i64> = pending.iter().map(|(id, _)| *id).collect();
            // Only a sign newer than the last certification can certify; its window
            // reaches 90 days back.
            let mut from = self.today();
            for (_, facts) in &pending {
                if let Some(f) = facts {
                    from = from.min(certified_on(f)?);
                }
            }
            let from = from - Duration::days(LIFE_WINDOW_DAYS - 1);
            let mut signs: HashMap<i64, String> = tx
                .life_signs_of(&ids, day_number(from))
                .await?
                .into_iter()
                .map(|s| (s.recipient_id, s.signs))
                .collect();
            let mut plain = Vec::new();
            for (id, facts) in pending {
                let (Some(f), Some(joined)) = (facts, signs.remove(&id)) else {
                    continue;
                };
                let Some((date, weight)) = life_decision(&f, parse_signs(&joined)?)? else {
                    continue;
                };
                summary.lives_certified += 1;
                if f.status == "active" {
                    // Nothing to lift: stored in bulk below.
                    plain.push((id, f, date, weight));
                    continue;
                }
                let r = self.current_row(&mut tx, id).await?;
                self.certify_recipient(&mut tx, actor, &passive_pass(id, date, weight), r)
                    .await?;
            }
            self.certify_active_in_bulk(&mut tx, actor, plain).await?;
            tx.clear_pending_life(&ids).await?;
            tx.commit().await?;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_death(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        source: &Source,
        r: &RecipientRow,
        date: NaiveDate,
        record_id: &str,
        summary: &mut FeedSummary,
    ) -> Result<String> {
        let status = PaymentStatus::from_parts(&r.status, r.suspension_reason.as_deref())
            .map_err(|e| AppError::Corrupt(e.to_string()))?;
        if status == PaymentStatus::Terminated {
            return Ok("payment is already terminated".into());
        }
        if status == PaymentStatus::Suspended(SuspensionReason::DeathReported) {
            return Ok("a death is already reported; it awaits confirmation".into());
        }
        if source.authoritative {
            self.report_death_in(tx, actor, r, date, &source.name)
                .await?;
            summary.deaths_suspended += 1;
            summary.reviews_opened += 1;
            return Ok("death reported: payment suspended, confirmation review opened".into());
        }
        self.open_review_case(
            tx,
            actor,
            r.id,
            "confirm_death",
            None,
            serde_json::json!({"source": source.name, "record_id": record_id, "death_date": date_str(date)}),
        )
        .await?;
        summary.reviews_opened += 1;
        Ok(
            "death from a source that is not authoritative: review opened, payment unchanged"
                .into(),
        )
    }

    /// Passive passes for pensioners being paid with nothing to lift: the certification
    /// rows and due dates written a few statements per thousand pensioners, each with its
    /// audit entry as if certified one by one.
    async fn certify_active_in_bulk(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        plain: Vec<(i64, lifecert_store::LifeFacts, NaiveDate, i64)>,
    ) -> Result<()> {
        if plain.is_empty() {
            return Ok(());
        }
        let now = self.now_string();
        let mut rows = Vec::with_capacity(plain.len());
        let mut due = Vec::with_capacity(plain.len());
        for (id, r, date, weight) in &plain {
            let req = passive_pass(*id, *date, *weight);
            rows.push(lifecert_store::CertificationRow {
                recipient_id: *id,
                channel: req.channel.as_str().to_string(),
                certified_on: date_str(*date),
                recorded_at: now.clone(),
                actor: actor.label(),
                region_code: Some(r.region_code.clone()),
                outcome: req.outcome.as_str().to_string(),
                reason: None,
                evidence: req.evidence,
            });
            let birth = parse_stored_date(&r.birth_date)?;
            due.push((
                *id,
                date_str(*date),
                date_str(self.policy().next_due_on(*date, birth)),
            ));
        }
        let ids = tx.insert_certifications(&rows).await?;
        let dates: HashMap<i64, &str> = due.iter().map(|(id, d, _)| (*id, d.as_str())).collect();
        for (certification_id, recipient_id) in ids {
            self.audit(
                tx,
                actor,
                "certification.recorded",
                Some(recipient_id),
                serde_json::json!({
                    "certification_id": certification_id,
                    "channel": Channel::PassiveData.as_str(),
                    "certified_on": dates.get(&recipient_id),
                    "outcome": Outcome::Pass.as_str(),
                    "reason": serde_json::Value::Null,
                }),
            );
        }
        tx.set_certified_many(&due, &now).await?;
        Ok(())
    }

    async fn apply_imprisonment(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        r: &RecipientRow,
        record_id: &str,
    ) -> Result<String> {
        if r.status != "active" {
            return Ok(format!("payment is already {}", r.status));
        }
        tx.set_status(
            r.id,
            "suspended",
            Some("imprisonment"),
            &date_str(self.today()),
            &self.now_string(),
        )
        .await?;
        self.audit(
            tx,
            actor,
            "recipient.suspended",
            Some(r.id),
            serde_json::json!({"reason": "imprisonment", "record_id": record_id}),
        );
        Ok("payment suspended for imprisonment (those months are not back-paid)".into())
    }

    async fn apply_void(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        source: &Source,
        rec: &FeedRecord,
        record_id: &str,
        summary: &mut FeedSummary,
    ) -> Result<ReportLine> {
        let void_of = rec.void_of.trim();
        let line = |class, recipient_id, reason: String| ReportLine {
            record_id: record_id.to_string(),
            class,
            score: None,
            recipient_id,
            reason: reason.into(),
        };
        let Some(original) = tx.feed_record(&source.name, void_of).await? else {
            return Ok(line(
                "rejected",
                None,
                format!("void_of names record {void_of:?}, which this source never sent"),
            ));
        };
        let stored = tx
            .insert_feed_records(
                &source.name,
                &[NewFeedRecord {
                    record_id,
                    kind: "void",
                    recipient_id: original.recipient_id,
                    class: "exact",
                    event_date: None,
                    weight_milli: 0,
                    void_of: Some(void_of),
                }],
                &self.now_string(),
            )
            .await?;
        if stored.first().copied().flatten().is_none() {
            return Ok(line(
                "duplicate",
                original.recipient_id,
                "this record id was received before".into(),
            ));
        }
        if original.voided {
            return Ok(line(
                "exact",
                original.recipient_id,
                "already voided".into(),
            ));
        }
        tx.void_feed_record(&original).await?;
        summary.voids_applied += 1;
        let Some(rid) = original.recipient_id else {
            return Ok(line(
                "exact",
                None,
                "voided a record that matched no pensioner".into(),
            ));
        };
        let r = tx
            .recipient_by_id(rid)
            .await?
            .ok_or_else(|| AppError::Corrupt("a feed record names no pensioner".into()))?;
        let reason = if original.kind == "death"
            && r.suspension_reason.as_deref() == Some("death_reported")
            && r.death_date == original.event_date
        {
            self.void_death_in(tx, actor, &r).await?;
            "death voided: suspension lifted, withheld months back-paid".to_string()
        } else {
            format!("{} record voided", original.kind)
        };
        Ok(line("exact", Some(rid), reason))
    }
}

/// Probabilistic matching against every pensioner still paid, built once per feed the
/// first time a record has no exact ID match.
pub(crate) struct Matcher {
    index: lifecert_matching::Index,
    weights: lifecert_matching::Weights,
    thresholds: lifecert_matching::Thresholds,
}

fn feed_gender(s: &str) -> Option<lifecert_domain::Gender> {
    match s.trim() {
        "M" | "m" | "男" | "male" => Some(lifecert_domain::Gender::Male),
        "F" | "f" | "女" | "female" => Some(lifecert_domain::Gender::Female),
        _ => None,
    }
}

/// The latest sign of life (not after a reported death) whose 90-day window adds up to
/// 1.0 certifies, if it is newer than the last certification: `(date, window weight)`.
fn life_decision(
    r: &lifecert_store::LifeFacts,
    mut signs: Vec<(NaiveDate, i64)>,
) -> Result<Option<(NaiveDate, i64)>> {
    if r.status == "terminated" {
        return Ok(None);
    }
    signs.sort_unstable();
    let death = r.death_date.as_deref().map(parse_stored_date).transpose()?;
    // Sorted, so the window's start only moves forward.
    let mut best: Option<(NaiveDate, i64)> = None;
    let mut start = 0;
    let mut sum = 0;
    for (i, &(d, w)) in signs.iter().enumerate() {
        sum += w;
        let from = d - Duration::days(LIFE_WINDOW_DAYS - 1);
        while signs[start].0 < from {
            sum -= signs[start].1;
            start += 1;
        }
        let last_of_day = signs.get(i + 1).is_none_or(|next| next.0 != d);
        if last_of_day && !matches!(death, Some(death) if d > death) && sum >= LIFE_THRESHOLD_MILLI
        {
            best = Some((d, sum));
        }
    }
    Ok(best.filter(|(date, _)| certified_on(r).is_ok_and(|last| *date > last)))
}

/// The date a pensioner counts as last certified on (see
/// [`crate::recipients::effective_certified_on`]).
fn certified_on(f: &lifecert_store::LifeFacts) -> Result<NaiveDate> {
    crate::recipients::certified_on(f.last_certified_on.as_deref(), &f.benefit_start)
}

/// Reads the `day:weight,…` list [`WriteTx::life_signs_of`] returns.
fn parse_signs(joined: &str) -> Result<Vec<(NaiveDate, i64)>> {
    joined
        .split(',')
        .map(|sign| {
            let corrupt = || AppError::Corrupt(format!("a stored sign of life reads {sign:?}"));
            let (day, weight) = sign.split_once(':').ok_or_else(corrupt)?;
            let day = day.parse().ok().and_then(date_of_day).ok_or_else(corrupt)?;
            Ok((day, weight.parse().map_err(|_| corrupt())?))
        })
        .collect()
}

/// The first day that signs of life are counted from (day 0).
const DAY_ZERO: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => panic!("1970-01-01 is a date"),
};

/// A date as signs of life are stored: days since 1970-01-01.
fn day_number(date: NaiveDate) -> i64 {
    (date - DAY_ZERO).num_days()
}

fn date_of_day(day: i64) -> Option<NaiveDate> {
    DAY_ZERO.checked_add_signed(Duration::try_days(day)?)
}

fn passive_pass(recipient_id: i64, date: NaiveDate, weight: i64) -> CertifyRequest {
    CertifyRequest {
        recipient: RecipientRef::Id(recipient_id),
        channel: Channel::PassiveData,
        date,
        outcome: Outcome::Pass,
        reason: None,
        region_code: None,
        evidence: Some(
            serde_json::json!({"window_weight": weight as f64 / 1000.0, "window_days": LIFE_WINDOW_DAYS})
                .to_string(),
        ),
    }
}

/// Pensioners to match against, their names decrypted, on every core.
fn decrypt_candidates(
    keys: &lifecert_crypto::KeyRing,
    page: Vec<lifecert_store::MatchCandidateRow>,
) -> Result<Vec<lifecert_matching::Candidate>> {
    let one = |c: &lifecert_store::MatchCandidateRow| -> Result<lifecert_matching::Candidate> {
        Ok(lifecert_matching::Candidate {
            id: c.id,
            person: lifecert_matching::Person {
                name: keys
                    .decrypt_str(lifecert_crypto::Field::Name, &c.name_enc)
                    .map_err(|e| {
                        AppError::Corrupt(format!(
                            "the name of pensioner {} cannot be decrypted ({e}), so records \
                             without an ID number cannot be matched: check the master key \
                             or restore this pensioner's row",
                            c.id
                        ))
                    })?,
                birth_date: lifecert_domain::parse_date(&c.birth_date).ok(),
                gender: lifecert_domain::Gender::parse(&c.gender),
                region: Some(c.region_code.clone()),
            },
        })
    };
    let decrypted = lifecert_matching::par_map(&page, one);
    let mut out = Vec::with_capacity(decrypted.len());
    for candidate in decrypted {
        out.push(candidate?);
    }
    Ok(out)
}

fn person_of(rec: &FeedRecord) -> lifecert_matching::Person {
    lifecert_matching::Person {
        name: lifecert_matching::normalize::normalize_name(&rec.name),
        birth_date: lifecert_domain::parse_date(&rec.birth_date).ok(),
        gender: feed_gender(&rec.gender),
        region: Some(rec.region_code.trim().to_string()).filter(|r| !r.is_empty()),
    }
}

impl Matcher {
    /// Matches records on every core.
    fn classify_all(
        &self,
        people: &[lifecert_matching::Person],
    ) -> Vec<lifecert_matching::MatchResult> {
        let one = |p: &lifecert_matching::Person| {
            lifecert_matching::match_record(&self.index, &self.weights, &self.thresholds, p)
        };
        if people.len() < 2_000 {
            return people.iter().map(one).collect();
        }
        lifecert_matching::par_map(people, one)
    }
}

impl App {
    /// The matcher over every pensioner still paid; `sample` (the feed's first ID-less
    /// records) is what EM estimates the weights on when the settings ask for it.
    async fn build_matcher(&self, sample: &[lifecert_matching::Person]) -> Result<Matcher> {
        let started = std::time::Instant::now();
        // The next page is read from the database while the last one's names are
        // decrypted (on every core, off the async threads).
        let (tx_pages, mut pages) = tokio::sync::mpsc::channel(2);
        let read = async move {
            let mut after = 0;
            loop {
                let page = self.store.match_candidates_page(after, 20_000).await?;
                let Some(last) = page.last() else {
                    return Ok::<_, AppError>(());
                };
                after = last.id;
                if tx_pages.send(page).await.is_err() {
                    return Ok(());
                }
            }
        };
        let decrypt = async {
            let mut prepared = Vec::new();
            while let Some(page) = pages.recv().await {
                let keys = self.keys.clone();
                let page = tokio::task::spawn_blocking(move || {
                    decrypt_candidates(&keys, page)
                        .map(|c| lifecert_matching::CandidatePage::new(&c))
                })
                .await
                .map_err(|e| AppError::Io(format!("matching stopped: {e}")))??;
                prepared.push(page);
            }
            Ok::<_, AppError>(prepared)
        };
        let (read, pages) = tokio::join!(read, decrypt);
        read?;
        let pages = pages?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "pensioners read and prepared for matching"
        );
        let index = tokio::task::spawn_blocking(move || {
            lifecert_matching::Index::from_pages(pages, lifecert_matching::DEFAULT_BLOCK_CAP)
        })
        .await
        .map_err(|e| AppError::Io(format!("matching stopped: {e}")))?;
        tracing::info!(
            pensioners = index.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "matcher built"
        );
        // EM needs enough records to say anything; a small feed keeps the base weights.
        let weights = if self.matching.weights == "estimate" && sample.len() >= EM_MIN_RECORDS {
            lifecert_matching::Weights::estimate(&index, sample, EM_ITERATIONS)
        } else {
            self.matching.base_weights()
        };
        Ok(Matcher {
            index,
            weights,
            thresholds: self.matching.thresholds(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::app_with_one_pensioner;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    async fn update(app: &App, known: &mut KnownFacts, ids: &[i64]) -> Vec<Option<Facts>> {
        let mut tx = app.store().begin_write().await.unwrap();
        let facts = known
            .of(&mut tx, ids.iter().map(|&id| Some(id)))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        facts
    }

    /// Signs of life are stored by day number; the migration that brought them there
    /// (schema 12) counts the same way.
    #[test]
    fn signs_of_life_are_dated_in_days_since_1970() {
        assert_eq!(day_number(day("1970-01-01")), 0);
        assert_eq!(day_number(day("2026-11-25")), 20782);
        assert_eq!(day_number(day("1900-02-28")), -25509);
        assert_eq!(
            parse_signs("20782:500,0:1000").unwrap(),
            [(day("2026-11-25"), 500), (day("1970-01-01"), 1000)]
        );
        assert!(parse_signs("2026-11-25:500").is_err());
    }

    /// A whole roll's facts are kept in a vector by id; an id far past the others turns
    /// it into a map without losing any, and a forgotten pensioner is unknown in either.
    #[test]
    fn facts_by_id_stay_right_dense_or_not() {
        use chrono::Datelike;
        let facts = |day: u32| Facts {
            born: NaiveDate::from_ymd_opt(1950, 1, day).unwrap(),
            terminated: false,
            death: None,
        };
        let mut by_id = FactsById::Dense(Vec::new());
        for id in [1, 2, 3, 5] {
            by_id.insert(id, facts(id as u32));
        }
        assert!(matches!(by_id, FactsById::Dense(_)));
        assert_eq!(by_id.len(), 4);
        assert!(by_id.get(4).is_none() && by_id.get(0).is_none() && by_id.get(-1).is_none());
        assert!(by_id.get(6).is_none());
        by_id.remove(2);
        by_id.remove(1_000_000_000);
        assert!(by_id.get(2).is_none());
        by_id.insert(1_000_000_000, facts(9));
        assert!(
            matches!(by_id, FactsById::Map(_)),
            "a far id makes it a map"
        );
        assert_eq!(by_id.len(), 4);
        for (id, day) in [(1, 1), (3, 3), (5, 5), (1_000_000_000, 9)] {
            assert_eq!(by_id.get(id).map(|f| f.born.day()), Some(day), "id {id}");
        }
        assert!(by_id.get(2).is_none());
    }

    /// A feed reads a pensioner's facts once and keeps them, but forgets them as soon as
    /// the audit trail names the pensioner: after a change another writer committed
    /// between two of the feed's transactions, or one made earlier in the same
    /// transaction whose audit entry is not written yet.
    #[tokio::test]
    async fn known_facts_follow_every_audited_change() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_with_one_pensioner(&dir).await;
        let mut known = KnownFacts::default();
        let mut tx = app.store().begin_write().await.unwrap();
        let facts = known
            .of(&mut tx, [Some(1), None, Some(99)].into_iter())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let f = facts[0].unwrap();
        assert_eq!(
            (f.born, f.terminated, f.death),
            (day("1950-01-07"), false, None)
        );
        assert!(facts[1].is_none(), "no id: nothing");
        assert!(facts[2].is_none(), "not on the roll: nothing");
        assert!(known.facts.get(99).is_none(), "and stays unknown");

        // Kept, not read again: a change that nothing audited goes unseen. (Only a test
        // can make one; it shows that the facts really are kept.)
        sqlx::query("UPDATE recipients SET birth_date = '1950-01-08' WHERE id = 1")
            .execute(app.store().pool())
            .await
            .unwrap();
        assert_eq!(
            update(&app, &mut known, &[1]).await[0].unwrap().born,
            day("1950-01-07")
        );

        // Another writer reports the death between two of the feed's transactions.
        let id = lifecert_domain::NationalId::parse("32010219500107952X").unwrap();
        app.report_death(&Actor::System, &id, day("2026-11-01"), "public_security")
            .await
            .unwrap();
        let mut tx = app.store().begin_write().await.unwrap();
        let f = known.of(&mut tx, [Some(1)].into_iter()).await.unwrap()[0].unwrap();
        assert_eq!(
            (f.born, f.death),
            (day("1950-01-08"), Some(day("2026-11-01")))
        );

        // A change earlier in the same transaction, its audit entry still pending.
        tx.set_status(1, "terminated", None, "2026-11-30", "2026-11-30T00:00:00Z")
            .await
            .unwrap();
        app.audit(
            &mut tx,
            &Actor::System,
            "recipient.terminated",
            Some(1),
            serde_json::json!({}),
        );
        let f = known.of(&mut tx, [Some(1)].into_iter()).await.unwrap()[0].unwrap();
        assert!(f.terminated);
        tx.commit().await.unwrap();

        // An entry already seen does not make the pensioner forgotten again: the next
        // transaction still answers from what was kept (an unaudited change goes unseen).
        sqlx::query("UPDATE recipients SET birth_date = '1950-01-09' WHERE id = 1")
            .execute(app.store().pool())
            .await
            .unwrap();
        let f = update(&app, &mut known, &[1]).await[0].unwrap();
        assert_eq!((f.born, f.terminated), (day("1950-01-08"), true));
    }
}
