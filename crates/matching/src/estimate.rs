//! Estimation of Fellegi–Sunter parameters from unlabelled data.
//!
//! `u` comes from random record–candidate pairs, where matches are negligibly rare. `m` comes
//! from EM, but not over all blocked pairs at once: blocking makes fields dependent among
//! non-matches (a blocked pair that disagrees on the date must agree on the name), which
//! breaks the conditional independence EM relies on and lets same-birthday strangers pass
//! as matches. So EM runs twice, Splink-style: over pairs sharing the exact birth date
//! (estimating name, gender and region), and over pairs sharing the name pinyin
//! (estimating birth date, gender and region). Within such a block the other fields of
//! non-matches are distributed as in the population, so the random-pair `u` applies.

use crate::compare::{Features, Gamma};
use crate::synth::Rng;
use crate::{BlockKey, Index, Person, Weights};

const RANDOM_PAIRS_PER_RECORD: usize = 40;
const MAX_RECORDS_FOR_U: usize = 20_000;
/// Pseudo-counts pulling estimates towards the defaults, so that a level never seen in the
/// sample does not get probability 0 (an infinite weight).
const U_PRIOR: f64 = 2_000.0;
const M_PRIOR: f64 = 20.0;

pub(crate) fn estimate(index: &Index, records: &[Person], iterations: usize) -> Weights {
    let defaults = Weights::default();
    let mut w = defaults;
    if index.is_empty() || records.is_empty() {
        return w;
    }
    let feats: Vec<Features> = records.iter().map(Features::of).collect();

    // u from random pairs.
    let mut counts = Counts::default();
    let mut rng = Rng::new(0x00C0_FFEE);
    for f in feats.iter().take(MAX_RECORDS_FOR_U) {
        for _ in 0..RANDOM_PAIRS_PER_RECORD {
            let c = index.nth_input(rng.below(index.len()));
            counts.add(&Gamma::compare(f, c), 1.0);
        }
    }
    w.name.u = counts.name.smoothed(&defaults.name.u, U_PRIOR);
    w.birth_date.u = counts.birth_date.smoothed(&defaults.birth_date.u, U_PRIOR);
    w.gender.u = counts.gender.smoothed(&defaults.gender.u, U_PRIOR);
    w.region.u = counts.region.smoothed(&defaults.region.u, U_PRIOR);

    // Pass A: same birth date → name, gender, region; pass B: same name pinyin → birth
    // date, gender, region. Independent of each other: B on another thread.
    let pass = |key: fn(&Features) -> Option<BlockKey>, blocked_on: fn(&mut Gamma)| {
        let pairs: Vec<Gamma> = pairs(index, &feats, key)
            .map(|mut g| {
                blocked_on(&mut g);
                g
            })
            .collect();
        (!pairs.is_empty(), em(&w, &pairs, iterations))
    };
    let ((any_a, a), (any_b, b)) = crate::both(
        || {
            pass(
                |f| f.birth_date.map(BlockKey::Date),
                |g| g.birth_date = None,
            )
        },
        || pass(|f| f.pinyin_key().map(BlockKey::Pinyin), |g| g.name = None),
    );

    if any_a {
        w.name.m = a.name.m;
    }
    if any_b {
        w.birth_date.m = b.birth_date.m;
    }
    for i in 0..2 {
        w.gender.m[i] = (a.gender.m[i] + b.gender.m[i]) / 2.0;
    }
    for i in 0..4 {
        w.region.m[i] = (a.region.m[i] + b.region.m[i]) / 2.0;
    }
    w
}

fn pairs<'a>(
    index: &'a Index,
    feats: &'a [Features],
    key: impl Fn(&Features) -> Option<BlockKey> + 'a,
) -> impl Iterator<Item = Gamma> + 'a {
    feats.iter().flat_map(move |f| {
        key(f)
            .map_or(&[][..], |k| index.block(k))
            .iter()
            .map(move |&i| Gamma::compare(f, &index.features[i as usize]))
    })
}

/// EM for `m` and the match proportion with `u` held fixed.
fn em(start: &Weights, pairs: &[Gamma], iterations: usize) -> Weights {
    let mut w = *start;
    let mut lambda = 0.1;
    for _ in 0..iterations {
        let mut c = Counts::default();
        let mut total = 0.0;
        for g in pairs {
            let lr = w.score(g).exp2();
            let p = lambda * lr / (lambda * lr + (1.0 - lambda));
            c.add(g, p);
            total += p;
        }
        if pairs.is_empty() {
            break;
        }
        lambda = (total / pairs.len() as f64).clamp(1e-6, 1.0 - 1e-6);
        w.name.m = c.name.smoothed(&start.name.m, M_PRIOR);
        w.birth_date.m = c.birth_date.smoothed(&start.birth_date.m, M_PRIOR);
        w.gender.m = c.gender.smoothed(&start.gender.m, M_PRIOR);
        w.region.m = c.region.smoothed(&start.region.m, M_PRIOR);
    }
    w
}

#[derive(Debug, Default)]
struct Counts {
    name: Tally<4>,
    birth_date: Tally<5>,
    gender: Tally<2>,
    region: Tally<4>,
}

impl Counts {
    fn add(&mut self, g: &Gamma, weight: f64) {
        self.name.add(g.name, weight);
        self.birth_date.add(g.birth_date, weight);
        self.gender.add(g.gender, weight);
        self.region.add(g.region, weight);
    }
}

#[derive(Debug)]
struct Tally<const N: usize>([f64; N]);

impl<const N: usize> Default for Tally<N> {
    fn default() -> Self {
        Tally([0.0; N])
    }
}

impl<const N: usize> Tally<N> {
    fn add(&mut self, level: Option<usize>, weight: f64) {
        if let Some(l) = level {
            self.0[l] += weight;
        }
    }
    fn smoothed(&self, prior: &[f64; N], strength: f64) -> [f64; N] {
        let total: f64 = self.0.iter().sum();
        let mut out = [0.0; N];
        for i in 0..N {
            out[i] = ((self.0[i] + strength * prior[i]) / (total + strength)).max(1e-9);
        }
        out
    }
}
