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

/// `a` on this thread and `b` on another, at once. A panic in either is passed on.
pub(crate) fn both<A, B: Send>(a: impl FnOnce() -> A, b: impl FnOnce() -> B + Send) -> (A, B) {
    std::thread::scope(|scope| {
        let b = scope.spawn(b);
        let a = a();
        match b.join() {
            Ok(b) => (a, b),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
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
            .skip(1)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<U>>()))
            .collect();
        // The first stretch on this thread.
        let mut out = Vec::with_capacity(items.len());
        out.extend(items[..per].iter().map(f));
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKey {
    Date(NaiveDate),
    /// Pinyin as a 64-bit hash: a collision only widens a block, comparison decides.
    YearPinyin(i32, u64),
    Pinyin(u64),
}

fn year_pinyin_key(year: i32, pinyin: u64) -> u64 {
    pinyin ^ u64::from(year as u32).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// All candidates with their comparison features precomputed, and the blocking index.
///
/// Candidates are held in birth-date order (then by their order in the input), so that a
/// date block — most of the comparisons — is one stretch of memory: scattered, each
/// comparison waited on a cache miss. Each kind of block is a flat list of positions,
/// grouped by key, with a table from key to its stretch of that list.
#[derive(Debug)]
pub struct Index {
    ids: Vec<i64>,
    features: Vec<Features>,
    /// The position of each candidate in input order (the random pairs of EM are drawn in
    /// that order, so that the estimate does not depend on the layout).
    by_input: Vec<u32>,
    /// And the other way: the input order of the candidate at each position.
    input_of: Vec<u32>,
    dates: Blocks,
    year_pinyin: Blocks,
    pinyin: Blocks,
    cap: usize,
}

/// Positions grouped by a 64-bit key, in input order within a group.
#[derive(Debug, Default)]
struct Blocks {
    positions: Vec<u32>,
    stretch: HashMap<u64, (u32, u32), std::hash::BuildHasherDefault<KeyHasher>>,
}

impl Blocks {
    /// `keyed` holds (key, input order, position).
    fn new(mut keyed: Vec<(u64, u32, u32)>) -> Blocks {
        keyed.sort_unstable();
        let mut stretch: HashMap<u64, (u32, u32), _> = HashMap::default();
        let mut positions = Vec::with_capacity(keyed.len());
        let mut start = 0;
        for (i, &(key, _, pos)) in keyed.iter().enumerate() {
            positions.push(pos);
            if keyed.get(i + 1).map_or(true, |next| next.0 != key) {
                stretch.insert(key, (start, i as u32 + 1));
                start = i as u32 + 1;
            }
        }
        Blocks { positions, stretch }
    }

    fn get(&self, key: u64) -> &[u32] {
        self.stretch.get(&key).map_or(&[], |&(start, end)| {
            &self.positions[start as usize..end as usize]
        })
    }
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

    /// Joins the pages in their order (which is the order ties are broken in: the
    /// candidate that came first wins among equal scores).
    pub fn from_pages(pages: Vec<CandidatePage>, cap: usize) -> Index {
        let n: usize = pages.iter().map(|p| p.ids.len()).sum();
        let mut ids = Vec::with_capacity(n);
        let mut features = Vec::with_capacity(n);
        for page in pages {
            ids.extend(page.ids);
            features.extend(page.features);
        }
        // Birth-date order, undated last; input order within a date.
        let day = |f: &Features| f.birth_date.map_or(i32::MAX, |d| d.num_days_from_ce());
        let mut order: Vec<(i32, u32)> = features
            .iter()
            .enumerate()
            .map(|(i, f)| (day(f), i as u32))
            .collect();
        order.sort_unstable();
        let input_of: Vec<u32> = order.iter().map(|&(_, i)| i).collect();
        drop(order);
        let mut by_input = vec![0_u32; n];
        for (pos, &i) in input_of.iter().enumerate() {
            by_input[i as usize] = pos as u32;
        }
        // In place, a cycle at a time (a second copy of the features would be the peak of
        // memory): position p takes the candidate that came `input_of[p]`-th.
        let mut placed = vec![false; n];
        for start in 0..n {
            let mut at = start;
            while !placed[at] {
                placed[at] = true;
                let from = input_of[at] as usize;
                if from == start {
                    break;
                }
                features.swap(at, from);
                ids.swap(at, from);
                at = from;
            }
        }
        drop(placed);
        let (mut dates, mut year_pinyin, mut pinyin) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (pos, (&i, f)) in input_of.iter().zip(&features).enumerate() {
            let pos = pos as u32;
            let key = f.pinyin_key();
            if let Some(d) = f.birth_date {
                dates.push((d.num_days_from_ce() as u64, i, pos));
                if let Some(p) = key {
                    year_pinyin.push((year_pinyin_key(d.year(), p), i, pos));
                }
            }
            if let Some(p) = key {
                pinyin.push((p, i, pos));
            }
        }
        // The pinyin blocks on another thread.
        let (dates, (year_pinyin, pinyin)) = both(
            || Blocks::new(dates),
            || (Blocks::new(year_pinyin), Blocks::new(pinyin)),
        );
        Index {
            ids,
            features,
            by_input,
            input_of,
            dates,
            year_pinyin,
            pinyin,
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

    /// The features of the candidate that came `i`-th in the input.
    fn nth_input(&self, i: usize) -> &Features {
        &self.features[self.by_input[i] as usize]
    }

    /// Whether the candidate at position `a` came before the one at `b` in the input.
    fn by_input_order(&self, a: usize, b: usize) -> bool {
        self.input_of[a] < self.input_of[b]
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
                if let Some(p) = f.pinyin_key() {
                    keys.push(BlockKey::YearPinyin(d.year(), p));
                    // ±1 day across New Year changes the year.
                    match (d.month(), d.day()) {
                        (12, 31) => keys.push(BlockKey::YearPinyin(d.year() + 1, p)),
                        (1, 1) => keys.push(BlockKey::YearPinyin(d.year() - 1, p)),
                        _ => {}
                    }
                }
            }
            None => keys.extend(f.pinyin_key().map(BlockKey::Pinyin)),
        }
        let mut out: Vec<usize> = keys
            .iter()
            .flat_map(|k| self.block(*k))
            .map(|&i| i as usize)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The positions of a block in input order; empty when it has more than the cap.
    fn block(&self, key: BlockKey) -> &[u32] {
        let b = match key {
            BlockKey::Date(d) => self.dates.get(d.num_days_from_ce() as u64),
            BlockKey::YearPinyin(y, p) => self.year_pinyin.get(year_pinyin_key(y, p)),
            BlockKey::Pinyin(p) => self.pinyin.get(p),
        };
        if b.len() <= self.cap {
            b
        } else {
            &[]
        }
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

/// [`Weights`] as a table of the weight of each level (a record is compared with hundreds
/// of candidates, and each weight is a logarithm).
struct LevelWeights {
    name: [f64; 4],
    birth_date: [f64; 5],
    gender: [f64; 2],
    region: [f64; 4],
}

impl LevelWeights {
    fn of(w: &Weights) -> LevelWeights {
        LevelWeights {
            name: std::array::from_fn(|l| w.name.weight(l)),
            birth_date: std::array::from_fn(|l| w.birth_date.weight(l)),
            gender: std::array::from_fn(|l| w.gender.weight(l)),
            region: std::array::from_fn(|l| w.region.weight(l)),
        }
    }

    /// The same sum, in the same order, as [`Weights::score`].
    fn score(&self, g: &Gamma) -> f64 {
        g.name.map_or(0.0, |l| self.name[l])
            + g.birth_date.map_or(0.0, |l| self.birth_date[l])
            + g.gender.map_or(0.0, |l| self.gender[l])
            + g.region.map_or(0.0, |l| self.region[l])
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
    let weights = LevelWeights::of(weights);
    let mut best: Option<(f64, usize)> = None;
    let mut runner_up: Option<f64> = None;
    for i in index.candidates_for_features(&f) {
        let s = weights.score(&Gamma::compare(&f, &index.features[i]));
        match best {
            // Among equal scores the candidate that came first in the input wins.
            Some((b, j)) if s < b || (s == b && index.by_input_order(j, i)) => {
                runner_up = Some(runner_up.map_or(s, |r| r.max(s)))
            }
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
