//! Passive certification (静默认证): ingesting records from other departments' feeds —
//! deaths, signs of life, imprisonment — matching them to pensioners by ID number, and
//! applying their effects through the same use cases staff use, audited.

use crate::certify::{CertifyRequest, RecipientRef};
use crate::{date_str, parse_stored_date, Actor, App, AppError, Result};
use chrono::{Duration, NaiveDate};
use lifecert_domain::feed::{Source, SourceKind, LIFE_THRESHOLD_MILLI, LIFE_WINDOW_DAYS};
use lifecert_domain::{Channel, NationalId, Outcome, PaymentStatus, SuspensionReason};
use lifecert_store::{NewFeedRecord, RecipientRow, WriteTx};
use serde::{Deserialize, Serialize};
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
}

/// One line of `--report`: what became of each input record.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportLine {
    pub record_id: String,
    /// exact | probable | possible | unmatched | rejected | duplicate
    pub class: &'static str,
    pub score: Option<f64>,
    pub recipient_id: Option<i64>,
    pub reason: String,
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

/// Records applied per transaction.
const FEED_BATCH: usize = 1000;

fn parse_event_date(s: &str, today: NaiveDate) -> std::result::Result<NaiveDate, String> {
    let d = lifecert_domain::parse_date(s).map_err(|e| format!("event_date: {e}"))?;
    if d > today {
        return Err(format!("event_date: {d} is in the future"));
    }
    Ok(d)
}

/// The ID number as departments write it: full-width digits, spaces, lower-case x,
/// legacy 15-digit numbers.
pub fn normalise_id(raw: &str) -> Option<NationalId> {
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

/// Reads records one at a time, with the line each started on.
type Input = Box<dyn std::io::Read + Send>;

enum Reader {
    Csv(csv::DeserializeRecordsIntoIter<Input, FeedRecord>),
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
                let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(file);
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
                r.set_headers(csv::StringRecord::from(names));
                Reader::Csv(r.into_deserialize())
            }
            FeedFormat::Jsonl => Reader::Jsonl(std::io::BufReader::new(file).lines(), 0),
        })
    }

    fn next(&mut self) -> Option<std::result::Result<FeedRecord, String>> {
        match self {
            Reader::Csv(it) => it
                .next()
                .map(|r| r.map_err(|e| format!("cannot be read: {e}"))),
            Reader::Jsonl(lines, n) => loop {
                *n += 1;
                match lines.next()? {
                    Err(e) => return Some(Err(format!("line {n} cannot be read: {e}"))),
                    Ok(l) if l.trim().is_empty() => continue,
                    Ok(l) => {
                        return Some(
                            serde_json::from_str(&l)
                                .map_err(|e| format!("line {n} is not a feed record: {e}")),
                        )
                    }
                }
            },
            Reader::Records(it) => it.next().map(Ok),
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
        report: &mut (dyn FnMut(ReportLine) + Send),
    ) -> Result<FeedSummary> {
        self.ingest(source, Reader::open(path, format)?, report)
            .await
    }

    /// Ingests a feed held in memory (an upload queued as a job).
    pub async fn ingest_feed_bytes(
        &self,
        source: &Source,
        bytes: Vec<u8>,
        format: FeedFormat,
    ) -> Result<FeedSummary> {
        let reader = Reader::new(Box::new(std::io::Cursor::new(bytes)), format)?;
        self.ingest(source, reader, &mut |_| {}).await
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
            .ingest(source, Reader::Records(records.into_iter()), &mut |l| {
                lines.push(l)
            })
            .await?;
        Ok((summary, lines))
    }

    async fn ingest(
        &self,
        source: &Source,
        mut reader: Reader,
        report: &mut (dyn FnMut(ReportLine) + Send),
    ) -> Result<FeedSummary> {
        let actor = Actor::Integration(source.name.to_string());
        let mut summary = FeedSummary::default();
        let today = self.today();
        let mut matcher: Option<Matcher> = None;
        let mut done = false;
        while !done {
            let mut tx = self.store.begin_write().await?;
            for _ in 0..FEED_BATCH {
                let Some(next) = reader.next() else {
                    done = true;
                    break;
                };
                summary.records += 1;
                let line = match next {
                    Ok(record) => {
                        self.apply_record(
                            &mut tx,
                            &actor,
                            source,
                            &record,
                            today,
                            &mut summary,
                            &mut matcher,
                        )
                        .await?
                    }
                    Err(reason) => ReportLine {
                        record_id: String::new(),
                        class: "rejected",
                        score: None,
                        recipient_id: None,
                        reason,
                    },
                };
                match line.class {
                    "exact" => summary.exact += 1,
                    "probable" => summary.probable += 1,
                    "possible" => summary.possible += 1,
                    "unmatched" => summary.unmatched += 1,
                    "rejected" => summary.rejected += 1,
                    "duplicate" => summary.duplicates_ignored += 1,
                    _ => {}
                }
                report(line);
            }
            tx.commit().await?;
        }
        Ok(summary)
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply_record(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        source: &Source,
        rec: &FeedRecord,
        today: NaiveDate,
        summary: &mut FeedSummary,
        matcher: &mut Option<Matcher>,
    ) -> Result<ReportLine> {
        let record_id = rec.record_id.trim().to_string();
        let line = |class, recipient_id, reason: String| ReportLine {
            record_id: record_id.clone(),
            class,
            score: None,
            recipient_id,
            reason,
        };
        if record_id.is_empty() || record_id.len() > 128 || record_id.chars().any(char::is_control)
        {
            return Ok(line(
                "rejected",
                None,
                "record_id is missing or not usable".into(),
            ));
        }
        if !rec.void_of.trim().is_empty() {
            return self
                .apply_void(tx, actor, source, rec, &record_id, summary)
                .await;
        }
        let event = match parse_event_date(&rec.event_date, today) {
            Ok(d) => d,
            Err(reason) => return Ok(line("rejected", None, reason)),
        };
        let recipient = match normalise_id(&rec.id_number) {
            Some(id) => tx.recipient_by_bidx(&self.id_bidx(&id)).await?,
            None => None,
        };
        // Without an exact ID match, the record is compared with every pensioner by name,
        // birth date, gender and region. A probable match never changes a payment by
        // itself: it opens a review case.
        let probabilistic = match (&recipient, rec.name.trim().is_empty()) {
            (None, false) => {
                if matcher.is_none() {
                    *matcher = Some(self.build_matcher().await?);
                }
                matcher.as_ref().map(|m| m.classify(rec))
            }
            _ => None,
        };
        let class = match (&recipient, &probabilistic) {
            (Some(_), _) => "exact",
            (None, Some(m)) if m.class == lifecert_matching::Class::Probable => "probable",
            (None, Some(m)) if m.class == lifecert_matching::Class::Possible => "possible",
            _ => "unmatched",
        };
        if let Some(r) = &recipient {
            if event < parse_stored_date(&r.birth_date)? {
                return Ok(line(
                    "rejected",
                    Some(r.id),
                    format!("event_date {event} is before the pensioner's birth date"),
                ));
            }
        }
        let stored = tx
            .insert_feed_record(
                &NewFeedRecord {
                    source: &source.name,
                    record_id: &record_id,
                    kind: source.kind.as_str(),
                    recipient_id: recipient.as_ref().map(|r| r.id),
                    class,
                    event_date: Some(&date_str(event)),
                    weight_milli: source.weight_milli,
                    void_of: None,
                },
                &self.now_string(),
            )
            .await?;
        if stored.is_none() {
            return Ok(line(
                "duplicate",
                recipient.map(|r| r.id),
                "this record id was received before".into(),
            ));
        }
        let Some(r) = recipient else {
            if let Some(m) = probabilistic.filter(|_| class != "unmatched") {
                let candidate = m.candidate_id;
                let mut reason = format!("{class} match by name, birth date, gender and region");
                if class == "probable" {
                    if let Some(c) = candidate {
                        self.open_review_case(
                            tx,
                            actor,
                            c,
                            "probable_match",
                            None,
                            serde_json::json!({"source": source.name, "record_id": record_id, "kind": source.kind.as_str(), "event_date": date_str(event), "score": m.score}),
                        )
                        .await?;
                        summary.reviews_opened += 1;
                        reason.push_str(": review opened, payment unchanged");
                    }
                }
                return Ok(ReportLine {
                    record_id: record_id.clone(),
                    class,
                    score: Some(m.score),
                    recipient_id: candidate,
                    reason,
                });
            }
            let reason = if rec.id_number.trim().is_empty() {
                "no ID number"
            } else {
                "no pensioner with this ID number"
            };
            return Ok(line("unmatched", None, reason.into()));
        };
        let reason = match source.kind {
            SourceKind::Death => {
                self.apply_death(tx, actor, source, &r, event, &record_id, summary)
                    .await?
            }
            SourceKind::Life => {
                self.apply_life(tx, actor, &r, event, &record_id, summary)
                    .await?
            }
            SourceKind::Imprisonment => self.apply_imprisonment(tx, actor, &r, &record_id).await?,
        };
        Ok(line("exact", Some(r.id), reason))
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

    async fn apply_life(
        &self,
        tx: &mut WriteTx,
        actor: &Actor,
        r: &RecipientRow,
        event: NaiveDate,
        record_id: &str,
        summary: &mut FeedSummary,
    ) -> Result<String> {
        if r.status == "terminated" {
            return Ok("payment is terminated".into());
        }
        if let Some(death) = r.death_date.as_deref().map(parse_stored_date).transpose()? {
            if event > death {
                self.open_review_case(
                    tx,
                    actor,
                    r.id,
                    "doubtful_certification",
                    None,
                    serde_json::json!({"conflict": "sign of life after a reported death", "record_id": record_id, "event_date": date_str(event), "death_date": date_str(death)}),
                )
                .await?;
                summary.reviews_opened += 1;
                return Ok(
                    "sign of life after the reported death date: doubtful, review opened".into(),
                );
            }
        }
        let from = event - Duration::days(LIFE_WINDOW_DAYS - 1);
        let (weight, latest) = tx
            .life_signs(r.id, &date_str(from), &date_str(event))
            .await?;
        if weight < LIFE_THRESHOLD_MILLI {
            return Ok(format!(
                "sign of life recorded ({:.1} of 1.0 within {LIFE_WINDOW_DAYS} days)",
                weight as f64 / 1000.0
            ));
        }
        let latest = latest
            .as_deref()
            .map(parse_stored_date)
            .transpose()?
            .unwrap_or(event);
        if latest <= crate::recipients::effective_certified_on(r)? {
            return Ok("signs of life add up, but a newer certification is on record".into());
        }
        self.certify_in(
            tx,
            actor,
            &CertifyRequest {
                recipient: RecipientRef::Id(r.id),
                channel: Channel::PassiveData,
                date: latest,
                outcome: Outcome::Pass,
                reason: None,
                region_code: None,
                evidence: Some(serde_json::json!({"feed_record": record_id, "window_weight": weight as f64 / 1000.0}).to_string()),
            },
        )
        .await?;
        summary.lives_certified += 1;
        Ok(format!("passive certification dated {latest}"))
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
            reason,
        };
        let Some(original) = tx.feed_record(&source.name, void_of).await? else {
            return Ok(line(
                "rejected",
                None,
                format!("void_of names record {void_of:?}, which this source never sent"),
            ));
        };
        let stored = tx
            .insert_feed_record(
                &NewFeedRecord {
                    source: &source.name,
                    record_id,
                    kind: "void",
                    recipient_id: original.recipient_id,
                    class: "exact",
                    event_date: None,
                    weight_milli: 0,
                    void_of: Some(void_of),
                },
                &self.now_string(),
            )
            .await?;
        if stored.is_none() {
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
        tx.void_feed_record(original.id).await?;
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

impl Matcher {
    fn classify(&self, rec: &FeedRecord) -> lifecert_matching::MatchResult {
        let person = lifecert_matching::Person {
            name: lifecert_matching::normalize::normalize_name(&rec.name),
            birth_date: lifecert_domain::parse_date(&rec.birth_date).ok(),
            gender: feed_gender(&rec.gender),
            region: Some(rec.region_code.trim().to_string()).filter(|r| !r.is_empty()),
        };
        lifecert_matching::match_record(&self.index, &self.weights, &self.thresholds, &person)
    }
}

impl App {
    async fn build_matcher(&self) -> Result<Matcher> {
        let mut candidates = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.match_candidates_page(after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for c in page {
                candidates.push(lifecert_matching::Candidate {
                    id: c.id,
                    person: lifecert_matching::Person {
                        name: lifecert_matching::normalize::normalize_name(
                            &self.decrypt_name(&c.name_enc)?,
                        ),
                        birth_date: lifecert_domain::parse_date(&c.birth_date).ok(),
                        gender: lifecert_domain::Gender::parse(&c.gender),
                        region: Some(c.region_code),
                    },
                });
            }
        }
        Ok(Matcher {
            index: lifecert_matching::Index::build(candidates),
            weights: self.matching.base_weights(),
            thresholds: self.matching.thresholds(),
        })
    }
}
