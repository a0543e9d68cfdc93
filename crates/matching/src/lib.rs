//! Matching of records from other departments' feeds (deaths, signs of life) to pensioners
//! when no usable ID number is present: normalisation, blocking, and Fellegi–Sunter weights.
//!
//! A false match can stop a living person's pension, so the classification is built for
//! precision: a record is [`Class::Probable`] only when its best candidate scores above
//! [`Thresholds::probable`] *and* clearly beats the runner-up. Everything else that is
//! plausible is [`Class::Possible`], for a person to review.
//!
//! Scores are match weights: the sum over fields of `log2(m / u)`, where `m` is the
//! probability of the observed comparison level among true matches and `u` among
//! non-matches. Thresholds are on this weight (bits of evidence), not on a posterior
//! probability, because the prior odds differ between feeds while the weights do not.

pub mod normalize;
pub mod synth;

mod compare;
mod estimate;

use chrono::{Datelike, NaiveDate};
use compare::{Features, Gamma};
use lifecert_domain::Gender;
use std::collections::HashMap;

/// The identifying fields of a person, as far as a feed provides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub name: String,
    pub birth_date: Option<NaiveDate>,
    pub gender: Option<Gender>,
    /// A 6-digit administrative division code, or a prefix of one (`"3301"`, or `"330100"`
    /// for a whole city: trailing `00` pairs are read as "unspecified").
    pub region: Option<String>,
}

/// A pensioner to match against (decrypted by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub person: Person,
}

/// `f` over `items` on every core, in order. A panic in `f` is passed on, not swallowed.
pub fn par_map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads < 2 || items.len() < 2 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(per)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<U>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for part in parts {
            match part.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out
    })
}

/// Blocks larger than this are skipped: a key shared by thousands of people (a very common
/// name with no birth date) carries too little information to be worth comparing against.
pub const DEFAULT_BLOCK_CAP: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum BlockKey {
    Date(NaiveDate),
    /// Pinyin as a 64-bit hash: a collision only widens a block, comparison decides.
    YearPinyin(i32, u64),
    Pinyin(u64),
}

fn pinyin_key(pinyin: &str) -> u64 {
    pinyin.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// All candidates with their comparison features precomputed, and the blocking index.
#[derive(Debug)]
pub struct Index {
    ids: Vec<i64>,
    features: Vec<Features>,
    blocks: HashMap<BlockKey, Vec<u32>, std::hash::BuildHasherDefault<KeyHasher>>,
    cap: usize,
}

/// A multiply-and-rotate hash for block keys: built and looked up millions of times, and
/// not exposed to input chosen to collide (a collision only makes a block slower).
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_i32(&mut self, v: i32) {
        self.write_u64(u64::from(v as u32));
    }
    fn write_isize(&mut self, v: isize) {
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

/// Pensioners with their comparison features computed, a page at a time (so that this
/// work overlaps reading the next page); [`Index::from_pages`] joins them.
pub struct CandidatePage {
    ids: Vec<i64>,
    features: Vec<Features>,
}

impl CandidatePage {
    /// Features on every core: pinyin and readings are the costly part.
    pub fn new(candidates: &[Candidate]) -> CandidatePage {
        CandidatePage {
            ids: candidates.iter().map(|c| c.id).collect(),
            features: par_map(candidates, |c| Features::of(&c.person)),
        }
    }
}

impl Index {
    /// Builds the index with [`DEFAULT_BLOCK_CAP`].
    pub fn build(candidates: Vec<Candidate>) -> Index {
        Index::with_block_cap(candidates, DEFAULT_BLOCK_CAP)
    }

    pub fn with_block_cap(candidates: Vec<Candidate>, cap: usize) -> Index {
        Index::from_pages(vec![CandidatePage::new(&candidates)], cap)
    }

    pub fn from_pages(pages: Vec<CandidatePage>, cap: usize) -> Index {
        let mut ids = Vec::with_capacity(pages.iter().map(|p| p.ids.len()).sum());
        let mut features = Vec::with_capacity(ids.capacity());
        for page in pages {
            ids.extend(page.ids);
            features.extend(page.features);
        }
        let mut blocks: HashMap<BlockKey, Vec<u32>, _> = HashMap::default();
        for (i, f) in features.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            let pinyin = (!f.pinyin.is_empty()).then(|| pinyin_key(&f.pinyin));
            if let Some(d) = f.birth_date {
                blocks.entry(BlockKey::Date(d)).or_default().push(i);
                if let Some(p) = pinyin {
                    blocks
                        .entry(BlockKey::YearPinyin(d.year(), p))
                        .or_default()
                        .push(i);
                }
            }
            if let Some(p) = pinyin {
                blocks.entry(BlockKey::Pinyin(p)).or_default().push(i);
            }
        }
        for b in blocks.values_mut() {
            b.shrink_to_fit();
        }
        Index {
            ids,
            features,
            blocks,
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The pensioner id at a position returned by [`Index::candidates_for`].
    pub fn id(&self, position: usize) -> Option<i64> {
        self.ids.get(position).copied()
    }

    /// Positions of the candidates worth comparing with `record`: the union of the blocks
    /// for its exact birth date, its birth date with day and month swapped, its birth year
    /// plus name pinyin, and (only when the birth date is missing) its name pinyin.
    pub fn candidates_for(&self, record: &Person) -> Vec<usize> {
        self.candidates_for_features(&Features::of(record))
    }

    fn candidates_for_features(&self, f: &Features) -> Vec<usize> {
        let mut keys = Vec::with_capacity(3);
        match f.birth_date {
            Some(d) => {
                keys.push(BlockKey::Date(d));
                if let Some(s) = compare::swapped(d) {
                    keys.push(BlockKey::Date(s));
                }
                if !f.pinyin.is_empty() {
                    let p = pinyin_key(&f.pinyin);
                    keys.push(BlockKey::YearPinyin(d.year(), p));
                    // ±1 day across New Year changes the year.
                    match (d.month(), d.day()) {
                        (12, 31) => keys.push(BlockKey::YearPinyin(d.year() + 1, p)),
                        (1, 1) => keys.push(BlockKey::YearPinyin(d.year() - 1, p)),
                        _ => {}
                    }
                }
            }
            None if !f.pinyin.is_empty() => keys.push(BlockKey::Pinyin(pinyin_key(&f.pinyin))),
            None => {}
        }
        let mut out: Vec<usize> = keys
            .iter()
            .filter_map(|k| self.block(k))
            .flatten()
            .map(|&i| i as usize)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn block(&self, key: &BlockKey) -> Option<&[u32]> {
        self.blocks
            .get(key)
            .filter(|b| b.len() <= self.cap)
            .map(Vec::as_slice)
    }
}

/// m and u probabilities for the levels of one field (level 0 = best agreement).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field<const N: usize> {
    pub m: [f64; N],
    pub u: [f64; N],
}

impl<const N: usize> Field<N> {
    /// The match weight of a level, `log2(m/u)`.
    pub fn weight(&self, level: usize) -> f64 {
        (self.m[level] / self.u[level]).log2()
    }
}

/// Fellegi–Sunter parameters.
///
/// Levels — name: exact characters, homophone (same reading at every position), similar
/// (Jaro–Winkler on pinyin ≥ 0.9), different. Birth date: exact, day/month swapped, ±1 day,
/// one digit off, different. Gender: same, different. Region: same district, same city
/// (4-digit prefix), same province (2-digit prefix), different. A field missing on either
/// side contributes 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub name: Field<4>,
    pub birth_date: Field<5>,
    pub gender: Field<2>,
    pub region: Field<4>,
}

impl Default for Weights {
    /// Hand-set values. `u` reflects random pairs of Chinese pensioners (a given full name is
    /// shared by roughly 1 in 2,000 people; a birth date by 1 in 11,000). `m` reflects
    /// feeds typed by hand. A one-digit-off birth date gets no credit: it is as likely to be
    /// a different person with the same name as a typing error.
    fn default() -> Self {
        Weights {
            name: Field {
                m: [0.85, 0.10, 0.03, 0.02],
                u: [0.0005, 0.0003, 0.004, 0.9952],
            },
            birth_date: Field {
                m: [0.88, 0.04, 0.05, 0.002, 0.028],
                u: [0.0001, 0.0001, 0.0002, 0.003, 0.9966],
            },
            gender: Field {
                m: [0.98, 0.02],
                u: [0.5, 0.5],
            },
            region: Field {
                m: [0.70, 0.25, 0.03, 0.02],
                u: [0.01, 0.04, 0.15, 0.80],
            },
        }
    }
}

impl Weights {
    /// Estimates the weights from the data: `u` from random record–candidate pairs, `m` by
    /// expectation–maximisation over blocked pairs, starting from [`Weights::default`].
    /// See the `estimate` module for why the EM runs in two passes.
    pub fn estimate(index: &Index, records: &[Person], iterations: usize) -> Weights {
        estimate::estimate(index, records, iterations)
    }

    fn score(&self, g: &Gamma) -> f64 {
        g.name.map_or(0.0, |l| self.name.weight(l))
            + g.birth_date.map_or(0.0, |l| self.birth_date.weight(l))
            + g.gender.map_or(0.0, |l| self.gender.weight(l))
            + g.region.map_or(0.0, |l| self.region.weight(l))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Strong, unambiguous evidence: may be acted on (still reversible by the process).
    Probable,
    /// Plausible: a person must review.
    Possible,
    Unmatched,
}

/// Thresholds on the match weight (log2 likelihood ratio, summed over fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub probable: f64,
    pub possible: f64,
    /// A best candidate within this many bits of the runner-up is at most Possible: two
    /// pensioners with the same name and birth date must never be told apart by luck.
    pub margin: f64,
}

impl Default for Thresholds {
    /// Chosen on the synthetic generator (see `examples/quality.rs`) for precision ≥ 0.999
    /// at Probable with the default weights.
    fn default() -> Self {
        Thresholds {
            probable: 18.0,
            possible: 8.0,
            margin: 6.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatchResult {
    pub class: Class,
    /// The best candidate; `None` when unmatched.
    pub candidate_id: Option<i64>,
    /// The best candidate's match weight (`f64::NEG_INFINITY` when there was no candidate).
    pub score: f64,
    /// The second-best candidate's weight, if there was a second candidate.
    pub runner_up: Option<f64>,
}

/// Compares `record` with every candidate its blocks yield and classifies the best one.
pub fn match_record(
    index: &Index,
    weights: &Weights,
    thresholds: &Thresholds,
    record: &Person,
) -> MatchResult {
    let f = Features::of(record);
    let mut best: Option<(f64, usize)> = None;
    let mut runner_up: Option<f64> = None;
    for i in index.candidates_for_features(&f) {
        let s = weights.score(&Gamma::compare(&f, &index.features[i]));
        match best {
            Some((b, _)) if s <= b => runner_up = Some(runner_up.map_or(s, |r| r.max(s))),
            _ => {
                if let Some((b, _)) = best {
                    runner_up = Some(b);
                }
                best = Some((s, i));
            }
        }
    }
    let Some((score, i)) = best else {
        return MatchResult {
            class: Class::Unmatched,
            candidate_id: None,
            score: f64::NEG_INFINITY,
            runner_up: None,
        };
    };
    let clear = !matches!(runner_up, Some(r) if score - r < thresholds.margin);
    let class = if score >= thresholds.probable && clear {
        Class::Probable
    } else if score >= thresholds.possible {
        Class::Possible
    } else {
        Class::Unmatched
    };
    MatchResult {
        class,
        candidate_id: (class != Class::Unmatched).then(|| index.ids[i]),
        score,
        runner_up,
    }
}
