//! Labelled synthetic data for tests and the quality program: pensioners with realistic
//! Chinese names, and feed records that are either noisy copies of a pensioner or decoys.
//!
//! Deterministic for a given seed (its own small generator, so no dependency on `rand`).

use crate::normalize::simp_to_trad;
use crate::{Candidate, Person};
use chrono::{Datelike, Days, NaiveDate};
use lifecert_domain::Gender;

/// SplitMix64: tiny, fast, good enough for test data.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// Surnames by frequency rank with approximate shares (per mille) in the population.
const SURNAMES: &[(char, u32)] = &[
    ('王', 71),
    ('李', 70),
    ('张', 67),
    ('刘', 54),
    ('陈', 45),
    ('杨', 31),
    ('黄', 22),
    ('赵', 20),
    ('吴', 20),
    ('周', 19),
    ('徐', 15),
    ('孙', 15),
    ('马', 13),
    ('朱', 13),
    ('胡', 13),
    ('郭', 12),
    ('何', 11),
    ('高', 10),
    ('林', 10),
    ('罗', 9),
    ('郑', 9),
    ('梁', 9),
    ('谢', 8),
    ('宋', 8),
    ('唐', 8),
    ('许', 7),
    ('韩', 7),
    ('冯', 7),
    ('邓', 7),
    ('曹', 7),
    ('彭', 6),
    ('曾', 6),
    ('肖', 6),
    ('田', 6),
    ('董', 6),
    ('袁', 5),
    ('潘', 5),
    ('于', 5),
    ('蒋', 5),
    ('蔡', 5),
    ('余', 5),
    ('杜', 5),
    ('叶', 5),
    ('程', 5),
    ('苏', 4),
    ('魏', 4),
    ('吕', 4),
    ('丁', 4),
    ('任', 4),
    ('沈', 4),
    ('姚', 4),
    ('卢', 4),
    ('姜', 4),
    ('崔', 4),
    ('钟', 4),
    ('谭', 3),
    ('陆', 3),
    ('汪', 3),
    ('范', 3),
    ('金', 3),
    ('石', 3),
    ('廖', 3),
    ('贾', 3),
    ('夏', 3),
    ('韦', 3),
    ('付', 3),
    ('方', 3),
    ('白', 3),
    ('邹', 3),
    ('孟', 3),
    ('熊', 3),
    ('秦', 3),
    ('邱', 3),
    ('江', 3),
    ('尹', 3),
    ('薛', 2),
    ('闫', 2),
    ('段', 2),
    ('雷', 2),
    ('侯', 2),
    ('龙', 2),
    ('史', 2),
    ('陶', 2),
    ('黎', 2),
    ('贺', 2),
    ('顾', 2),
    ('毛', 2),
    ('郝', 2),
    ('龚', 2),
    ('邵', 2),
    ('万', 2),
    ('钱', 2),
    ('严', 2),
    ('覃', 2),
    ('武', 2),
    ('戴', 2),
    ('莫', 2),
    ('孔', 2),
    ('向', 2),
    ('汤', 2),
    ('单', 1),
    ('翟', 1),
    ('欧', 1),
    ('关', 1),
    ('乔', 1),
    ('温', 1),
];

const MALE_GIVEN: &str = "伟强军勇国华建明志刚平辉杰涛斌波海峰文荣德忠庆宝贵兴长福生林成东光金山永春元立中祥义清和安正天红玉云庆民振洪宏鸣鹏飞岳远书进诚顺财发学汉家世";
const FEMALE_GIVEN: &str = "秀英兰芳凤霞丽静红云莲娟翠敏淑琴珍玉桂梅芬美玲萍燕华娜艳丹慧洁颖琳桂荣爱香月春菊素雪莉婷晶瑛琼妹";

/// Pairs of characters with a common reading: a clerk who heard the name may write either.
const HOMOPHONES: &[(char, char)] = &[
    ('娜', '那'),
    ('伟', '玮'),
    ('军', '君'),
    ('华', '桦'),
    ('明', '铭'),
    ('丽', '莉'),
    ('静', '婧'),
    ('红', '虹'),
    ('英', '瑛'),
    ('芳', '方'),
    ('敏', '闽'),
    ('杰', '洁'),
    ('涛', '韬'),
    ('平', '萍'),
    ('霞', '侠'),
    ('玲', '铃'),
    ('兰', '岚'),
    ('梅', '玫'),
    ('秀', '绣'),
    ('燕', '艳'),
    ('勇', '永'),
    ('刚', '钢'),
    ('宏', '鸿'),
    ('辉', '晖'),
    ('峰', '锋'),
    ('志', '智'),
    ('文', '雯'),
    ('鹏', '朋'),
    ('东', '冬'),
    ('国', '帼'),
    ('荣', '蓉'),
    ('凤', '风'),
    ('云', '芸'),
    ('琴', '勤'),
    ('珍', '贞'),
    ('玉', '钰'),
    ('桂', '贵'),
    ('美', '梅'),
    ('林', '琳'),
    ('成', '诚'),
    ('春', '纯'),
    ('海', '亥'),
];

const REGIONS: &[&str] = &[
    "110101", "110102", "110105", "110108", "120101", "120104", "130102", "130104", "140105",
    "150102", "210102", "210103", "220102", "230102", "230103", "310101", "310104", "310115",
    "320102", "320106", "320583", "330102", "330106", "330110", "330203", "340102", "350102",
    "350203", "360102", "370102", "370202", "410102", "410105", "420102", "420106", "430102",
    "430104", "440103", "440106", "440304", "450102", "500103", "510104", "510107", "520102",
    "530102", "610102", "610113", "620102", "650102",
];

fn surname(rng: &mut Rng) -> char {
    let total: u32 = SURNAMES.iter().map(|s| s.1).sum();
    let mut x = (rng.next_u64() % u64::from(total)) as u32;
    for &(c, w) in SURNAMES {
        if x < w {
            return c;
        }
        x -= w;
    }
    '王'
}

/// The regions (6-digit district codes) that generated people live in.
pub fn regions() -> &'static [&'static str] {
    REGIONS
}

/// A realistic Chinese full name for a person of `gender`: surname by frequency, one or two
/// given-name characters.
pub fn name(rng: &mut Rng, gender: Gender) -> String {
    let pool: Vec<char> = match gender {
        Gender::Male => MALE_GIVEN.chars().collect(),
        Gender::Female => FEMALE_GIVEN.chars().collect(),
    };
    let mut s = String::new();
    s.push(surname(rng));
    // Earlier characters in each pool are more common: squaring skews the choice.
    let two = rng.chance(0.7);
    let mut given = || {
        let r = rng.below(1_000_000) as f64 / 1_000_000.0;
        pool[((r * r) * pool.len() as f64) as usize % pool.len()]
    };
    s.push(given());
    if two {
        s.push(given());
    }
    s
}

fn birth_date(rng: &mut Rng) -> NaiveDate {
    let start = NaiveDate::from_ymd_opt(1936, 1, 1).unwrap_or_default();
    let days = 31 * 365 + 7; // through 1966-12-31
    start
        .checked_add_days(Days::new(rng.below(days) as u64))
        .unwrap_or(start)
}

fn random_person(rng: &mut Rng) -> Person {
    let gender = if rng.chance(0.5) {
        Gender::Male
    } else {
        Gender::Female
    };
    Person {
        name: name(rng, gender),
        birth_date: Some(birth_date(rng)),
        gender: Some(gender),
        region: Some(rng.pick(REGIONS).to_string()),
    }
}

/// `n` pensioners with ids `1..=n`.
pub fn pensioners(n: usize, seed: u64) -> Vec<Candidate> {
    let mut rng = Rng::new(seed);
    (1..=n)
        .map(|i| Candidate {
            id: i as i64,
            person: random_person(&mut rng),
        })
        .collect()
}

/// `n_true` noisy copies of random pensioners (labelled with their id) followed by
/// `n_decoys` records of people who are not pensioners (labelled `None`): half share a
/// pensioner's name but not the birth year, half share a pensioner's birth date and region
/// but not the name.
pub fn records(
    pensioners: &[Candidate],
    n_true: usize,
    n_decoys: usize,
    seed: u64,
) -> Vec<(Person, Option<i64>)> {
    let mut rng = Rng::new(seed.wrapping_add(0x5EED));
    let mut out = Vec::with_capacity(n_true + n_decoys);
    if pensioners.is_empty() {
        return out;
    }
    for _ in 0..n_true {
        let c = rng.pick(pensioners);
        out.push((noisy_copy(&mut rng, &c.person), Some(c.id)));
    }
    for k in 0..n_decoys {
        let p = &rng.pick(pensioners).person;
        let mut d = p.clone();
        if k % 2 == 0 {
            // Same name, another birth year (1–10 years away; Feb 29 falls back to Feb 28).
            if let Some(b) = p.birth_date {
                let shift = 1 + rng.below(10) as i32;
                let y = if rng.chance(0.5) {
                    b.year() + shift
                } else {
                    b.year() - shift
                };
                d.birth_date = NaiveDate::from_ymd_opt(y, b.month(), b.day())
                    .or_else(|| NaiveDate::from_ymd_opt(y, b.month(), 28));
            }
            if rng.chance(0.5) {
                d.region = Some(rng.pick(REGIONS).to_string());
            }
        } else {
            // Same birth date and region, another name (and a random gender).
            let other = random_person(&mut rng);
            if other.name == p.name {
                continue;
            }
            d.name = other.name;
            d.gender = other.gender;
        }
        out.push((d, None));
    }
    out
}

/// A feed's copy of `p`, with the errors of hand-typed feeds: 20% a given-name character
/// replaced by a homophone, 30% traditional characters, 5% day and month swapped, 3% a day
/// later, 3% a day earlier, 20% gender missing, 30% region only to the city.
pub fn noisy_copy(rng: &mut Rng, p: &Person) -> Person {
    let mut r = p.clone();
    if rng.chance(0.2) {
        // One given-name character replaced by a homophone.
        let chars: Vec<char> = r.name.chars().collect();
        let positions: Vec<usize> = (1..chars.len())
            .filter(|&i| HOMOPHONES.iter().any(|h| h.0 == chars[i]))
            .collect();
        if !positions.is_empty() {
            let i = *rng.pick(&positions);
            let mut chars = chars;
            if let Some(h) = HOMOPHONES.iter().find(|h| h.0 == chars[i]) {
                chars[i] = h.1;
            }
            r.name = chars.into_iter().collect();
        }
    }
    if rng.chance(0.3) {
        let table = simp_to_trad();
        r.name = r
            .name
            .chars()
            .map(|c| table.get(&c).copied().unwrap_or(c))
            .collect();
    }
    if let Some(b) = r.birth_date {
        let x = rng.below(100);
        r.birth_date = if x < 5 {
            crate::compare::swapped(b).or(Some(b))
        } else if x < 8 {
            b.checked_add_days(Days::new(1))
        } else if x < 11 {
            b.checked_sub_days(Days::new(1))
        } else {
            Some(b)
        };
    }
    if rng.chance(0.2) {
        r.gender = None;
    }
    if rng.chance(0.3) {
        r.region = r.region.map(|g| format!("{}00", &g[..4.min(g.len())]));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let a = pensioners(200, 7);
        assert_eq!(a, pensioners(200, 7));
        assert_eq!(a.len(), 200);
        let r = records(&a, 50, 20, 7);
        assert_eq!(r.iter().filter(|x| x.1.is_some()).count(), 50);
        assert!(r.len() <= 70 && r.len() >= 60);
    }
}
