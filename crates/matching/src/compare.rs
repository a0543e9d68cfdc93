//! Field comparisons: turns a (record, candidate) pair into comparison levels.

use crate::normalize::{
    name_pinyin_of, normalize_name, reading_hashes, surname_override, syllable_hash,
};
use crate::Person;
#[cfg(test)]
use chrono::Days;
use chrono::{Datelike, NaiveDate};
use lifecert_domain::Gender;

/// What a person is compared on, computed once per candidate and once per record. Kept
/// compact: an index holds one per pensioner (a million or more), and each is built from
/// and freed to the allocator once.
#[derive(Debug, Clone)]
pub(crate) struct Features {
    /// In one allocation: the name (UTF-8), its first-reading toneless pinyin (syllables
    /// separated by spaces), where each character's readings end, and every reading of
    /// each character hashed (4 bytes each), so that 娜 (first reading "nuo") and 那 still
    /// meet. See [`Features::name`], [`Features::pinyin`], [`Features::readings_of`].
    text: Box<[u8]>,
    name_len: u32,
    pinyin_len: u32,
    /// Characters in the name.
    chars: u32,
    pub birth_date: Option<NaiveDate>,
    /// The birth date in the forms comparisons need, computed once.
    pub date: Option<DateKey>,
    pub gender: Option<Gender>,
    /// Region digits with trailing `00` pairs removed: "330100" → "3301".
    pub region: Option<Region>,
    /// What a comparison can rule out without following the pointer above (nearly every
    /// pair of a block differs at once, and those reads were most of a comparison's time):
    /// hashes of the name and the pinyin,
    name_hash: u64,
    pinyin_hash: u64,
    /// a bit per byte value of the pinyin (strings within one edit differ in at most two),
    letters: u32,
    /// and the first character with a bit per reading of it.
    first: char,
    first_readings: u64,
}

/// A birth date as day number, YYYYMMDD digits and its day/month swap.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DateKey {
    day: i32,
    digits: [u8; 8],
    swapped_day: Option<i32>,
}

impl DateKey {
    fn of(d: NaiveDate) -> DateKey {
        let n = d.year().unsigned_abs() * 10_000 + d.month() * 100 + d.day();
        let mut digits = [0u8; 8];
        let mut rest = n;
        for slot in digits.iter_mut().rev() {
            *slot = (rest % 10) as u8;
            rest /= 10;
        }
        DateKey {
            day: d.num_days_from_ce(),
            digits,
            swapped_day: swapped(d).map(|s| s.num_days_from_ce()),
        }
    }
}

/// FNV-1a, 64 bits.
fn fnv64(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Features {
    pub fn of(p: &Person) -> Features {
        let name_s = normalize_name(&p.name);
        let name: Vec<char> = name_s.chars().collect();
        let pinyin = name_pinyin_of(&name);
        let special = surname_override(&name);
        let mut readings: Vec<u32> = Vec::with_capacity(name.len() * 2);
        let mut ends = Vec::with_capacity(name.len());
        for (i, &c) in name.iter().enumerate() {
            let start = readings.len();
            if let Some(s) = special.and_then(|(n, sp)| (i < n).then(|| sp.get(i)).flatten()) {
                readings.push(syllable_hash(s));
            }
            for h in reading_hashes(c) {
                if !readings[start..].contains(&h) {
                    readings.push(h);
                }
            }
            ends.push(u8::try_from(readings.len()).unwrap_or(u8::MAX));
        }
        let first_readings = readings[..ends.first().map_or(0, |&e| usize::from(e))]
            .iter()
            .fold(0_u64, |m, h| m | 1 << (h % 64));
        let mut text =
            Vec::with_capacity(name_s.len() + pinyin.len() + ends.len() + 4 * readings.len());
        text.extend_from_slice(name_s.as_bytes());
        text.extend_from_slice(pinyin.as_bytes());
        text.extend_from_slice(&ends);
        text.extend(readings.iter().flat_map(|h| h.to_le_bytes()));
        let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Features {
            name_hash: fnv64(name_s.bytes()),
            pinyin_hash: fnv64(pinyin.bytes()),
            letters: pinyin.bytes().fold(0, |m, b| m | 1 << (b % 32)),
            first: name.first().copied().unwrap_or('\0'),
            first_readings,
            text: text.into_boxed_slice(),
            name_len: len(name_s.len()),
            pinyin_len: len(pinyin.len()),
            chars: len(name.len()),
            birth_date: p.birth_date,
            date: p.birth_date.map(DateKey::of),
            gender: p.gender,
            region: p.region.as_deref().and_then(region_prefix).map(|d| {
                let mut digits = [0; 6];
                digits[..d.len()].copy_from_slice(d.as_bytes());
                Region {
                    digits,
                    len: d.len() as u8,
                }
            }),
        }
    }

    /// The normalised name, UTF-8.
    fn name(&self) -> &[u8] {
        &self.text[..self.name_len as usize]
    }

    /// The name's characters, each as its UTF-8 bytes (the name was a `str`: no check
    /// is needed on this hot path).
    fn name_chars(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.name();
        std::iter::from_fn(move || {
            let len = match *rest.first()? {
                b if b < 0x80 => 1,
                b if b < 0xe0 => 2,
                b if b < 0xf0 => 3,
                _ => 4,
            };
            let (c, tail) = rest.split_at(len.min(rest.len()));
            rest = tail;
            Some(c)
        })
    }

    /// The blocking key of the pinyin (its hash); none for a name without one.
    pub fn pinyin_key(&self) -> Option<u64> {
        (self.pinyin_len > 0).then_some(self.pinyin_hash)
    }

    /// First-reading toneless pinyin, syllables separated by spaces.
    pub fn pinyin(&self) -> &[u8] {
        let start = self.name_len as usize;
        &self.text[start..start + self.pinyin_len as usize]
    }

    /// The hashed readings of character `i`, 4 bytes each.
    fn readings_of(&self, i: usize) -> &[u8] {
        let ends_at = (self.name_len + self.pinyin_len) as usize;
        let ends = &self.text[ends_at..ends_at + self.chars as usize];
        let readings = &self.text[ends_at + ends.len()..];
        let start = match i {
            0 => 0,
            _ => usize::from(ends[i - 1]),
        };
        let end = usize::from(ends[i]);
        readings.get(4 * start..4 * end).unwrap_or(&[])
    }
}

/// Whether two characters' readings (as [`Features::readings_of`] gives them) share one.
fn share_a_reading(a: &[u8], b: &[u8]) -> bool {
    a.chunks_exact(4).any(|r| b.chunks_exact(4).any(|s| r == s))
}

/// Region digits held in place (a comparison reads them for every pair).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    digits: [u8; 6],
    len: u8,
}

impl Region {
    fn digits(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }
}

fn region_prefix(raw: &str) -> Option<String> {
    let mut d: String = raw.trim().chars().filter(char::is_ascii_digit).collect();
    d.truncate(6);
    while d.len() > 2 && d.ends_with("00") {
        d.truncate(d.len() - 2);
    }
    (d.len() >= 2).then_some(d)
}

/// Comparison levels of one pair; `None` when either side lacks the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gamma {
    pub name: Option<usize>,
    pub birth_date: Option<usize>,
    pub gender: Option<usize>,
    pub region: Option<usize>,
}

impl Gamma {
    pub fn compare(a: &Features, b: &Features) -> Gamma {
        Gamma {
            name: name_level(a, b),
            birth_date: match (&a.date, &b.date) {
                (Some(x), Some(y)) => Some(date_key_level(x, y)),
                _ => None,
            },
            gender: match (a.gender, b.gender) {
                (Some(x), Some(y)) => Some(usize::from(x != y)),
                _ => None,
            },
            region: match (&a.region, &b.region) {
                (Some(x), Some(y)) => Some(region_level(x.digits(), y.digits())),
                _ => None,
            },
        }
    }
}

pub(crate) const NAME_EXACT: usize = 0;
pub(crate) const NAME_HOMOPHONE: usize = 1;
pub(crate) const NAME_SIMILAR: usize = 2;
pub(crate) const NAME_DIFFERENT: usize = 3;

fn name_level(a: &Features, b: &Features) -> Option<usize> {
    if a.name_len == 0 || b.name_len == 0 {
        return None;
    }
    if a.name_hash == b.name_hash && a.name() == b.name() {
        return Some(NAME_EXACT);
    }
    // Characters and sounds are both compared: a clerk who heard the name may write any
    // character with the same reading, including a non-first reading (娜 na/nuo vs 那 na).
    let homophone = (a.pinyin_hash == b.pinyin_hash && a.pinyin() == b.pinyin())
        || (a.chars == b.chars
            && (a.first == b.first || a.first_readings & b.first_readings != 0)
            && same_readings(a, b));
    if homophone {
        return Some(NAME_HOMOPHONE);
    }
    // One letter in one syllable means the whole strings are within one edit: that test
    // is cheap and rules out nearly every pair, before the syllables are split and the
    // Jaro–Winkler similarity (the costliest part of a comparison) computed.
    if (a.letters ^ b.letters).count_ones() <= 2
        && within_one_edit(a.pinyin(), b.pinyin())
        && one_syllable_slip(a.pinyin(), b.pinyin())
        && jaro_winkler(a.pinyin(), b.pinyin()) >= 0.9
    {
        return Some(NAME_SIMILAR);
    }
    Some(NAME_DIFFERENT)
}

/// Names of as many characters, each the same character or one with a common reading.
fn same_readings(a: &Features, b: &Features) -> bool {
    a.name_chars()
        .zip(b.name_chars())
        .enumerate()
        .all(|(i, (ca, cb))| ca == cb || share_a_reading(a.readings_of(i), b.readings_of(i)))
}

/// The pinyin differs in one syllable only, and there by one letter (wei / wi, ying / yin):
/// a slip of the ear or the keyboard. Jaro–Winkler alone calls 张红 / 张瑛 (zhang hong /
/// zhang ying) similar, because the surname makes up most of the string.
fn one_syllable_slip(a: &[u8], b: &[u8]) -> bool {
    let (mut xs, mut ys) = (a.split(|&c| c == b' '), b.split(|&c| c == b' '));
    let mut slips = 0;
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return slips <= 1,
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if within_one_edit(x, y) => slips += 1,
            _ => return false,
        }
    }
}

/// Levenshtein distance at most 1.
fn within_one_edit(x: &[u8], y: &[u8]) -> bool {
    let (short, long) = if x.len() <= y.len() { (x, y) } else { (y, x) };
    if long.len() - short.len() > 1 {
        return false;
    }
    let prefix = short.iter().zip(long).take_while(|(p, q)| p == q).count();
    if short.len() == long.len() {
        // One substitution: equal after the first difference.
        return prefix == short.len() || short[prefix + 1..] == long[prefix + 1..];
    }
    short[prefix..] == long[prefix + 1..]
}

pub(crate) const DATE_EXACT: usize = 0;
pub(crate) const DATE_SWAPPED: usize = 1;
pub(crate) const DATE_ONE_DAY: usize = 2;
pub(crate) const DATE_ONE_DIGIT: usize = 3;
pub(crate) const DATE_DIFFERENT: usize = 4;

/// The same date with day and month exchanged, if that is a different, valid date.
pub(crate) fn swapped(d: NaiveDate) -> Option<NaiveDate> {
    if d.day() == d.month() {
        return None;
    }
    NaiveDate::from_ymd_opt(d.year(), d.day(), d.month())
}

/// [`date_level`] on precomputed keys (the hot path: no calendar arithmetic).
fn date_key_level(a: &DateKey, b: &DateKey) -> usize {
    if a.day == b.day {
        return DATE_EXACT;
    }
    if a.swapped_day == Some(b.day) {
        return DATE_SWAPPED;
    }
    if (a.day - b.day).abs() == 1 {
        return DATE_ONE_DAY;
    }
    if a.digits
        .iter()
        .zip(&b.digits)
        .filter(|(p, q)| p != q)
        .count()
        == 1
    {
        return DATE_ONE_DIGIT;
    }
    DATE_DIFFERENT
}

/// Jaro–Winkler similarity of two ASCII strings (pinyin), as `strsim::jaro_winkler`
/// computes it, without allocating; longer inputs fall back to strsim.
pub(crate) fn jaro_winkler(a: &[u8], b: &[u8]) -> f64 {
    const MAX: usize = 64;
    if a.len() > MAX || b.len() > MAX || !a.is_ascii() || !b.is_ascii() {
        return strsim::jaro_winkler(
            std::str::from_utf8(a).unwrap_or(""),
            std::str::from_utf8(b).unwrap_or(""),
        );
    }
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_match = [false; MAX];
    let mut b_match = [false; MAX];
    let mut matches = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_match[j] && b[j] == ca {
                a_match[i] = true;
                b_match[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut j = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        if !a_match[i] {
            continue;
        }
        while !b_match[j] {
            j += 1;
        }
        if ca != b[j] {
            transpositions += 1;
        }
        j += 1;
    }
    let m = matches as f64;
    let jaro =
        (m / a.len() as f64 + m / b.len() as f64 + (m - (transpositions / 2) as f64) / m) / 3.0;
    if jaro <= 0.7 {
        return jaro;
    }
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count() as f64;
    jaro + 0.1 * prefix * (1.0 - jaro)
}

#[cfg(test)]
fn date_level(a: NaiveDate, b: NaiveDate) -> usize {
    if a == b {
        return DATE_EXACT;
    }
    if swapped(a) == Some(b) {
        return DATE_SWAPPED;
    }
    if a.checked_add_days(Days::new(1)) == Some(b) || b.checked_add_days(Days::new(1)) == Some(a) {
        return DATE_ONE_DAY;
    }
    // One digit of YYYYMMDD differs.
    let digits = |d: NaiveDate| {
        let n = d.year().unsigned_abs() * 10_000 + d.month() * 100 + d.day();
        let mut out = [0u32; 8];
        let mut rest = n;
        for slot in out.iter_mut().rev() {
            *slot = rest % 10;
            rest /= 10;
        }
        out
    };
    let (x, y) = (digits(a), digits(b));
    if x.iter().zip(&y).filter(|(p, q)| p != q).count() == 1 {
        return DATE_ONE_DIGIT;
    }
    DATE_DIFFERENT
}

fn region_level(a: &[u8], b: &[u8]) -> usize {
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    match common {
        6.. => 0,
        4..=5 => 1,
        2..=3 => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, date: &str, region: &str) -> Features {
        Features::of(&Person {
            name: name.into(),
            birth_date: NaiveDate::parse_from_str(date, "%Y-%m-%d").ok(),
            gender: None,
            region: Some(region.into()),
        })
    }

    /// `name_level` without the inline filters (hashes, letter bits, first readings).
    fn name_level_unfiltered(a: &Features, b: &Features) -> Option<usize> {
        if a.name().is_empty() || b.name().is_empty() {
            return None;
        }
        if a.name() == b.name() {
            return Some(NAME_EXACT);
        }
        let homophone = a.pinyin() == b.pinyin()
            || (a.name_chars().count() == b.name_chars().count()
                && a.name_chars()
                    .zip(b.name_chars())
                    .enumerate()
                    .all(|(i, (ca, cb))| {
                        ca == cb || {
                            let rb: Vec<&[u8]> = b.readings_of(i).chunks(4).collect();
                            a.readings_of(i).chunks(4).any(|r| rb.contains(&r))
                        }
                    }));
        if homophone {
            return Some(NAME_HOMOPHONE);
        }
        if within_one_edit(a.pinyin(), b.pinyin())
            && one_syllable_slip(a.pinyin(), b.pinyin())
            && jaro_winkler(a.pinyin(), b.pinyin()) >= 0.9
        {
            return Some(NAME_SIMILAR);
        }
        Some(NAME_DIFFERENT)
    }

    #[test]
    fn the_inline_filters_change_no_name_level() {
        let names = [
            "张红",
            "张瑛",
            "張紅",
            "张宏",
            "章红",
            "王芳",
            "汪芳",
            "王方",
            "单丽",
            "單麗",
            "善丽",
            "曾伟",
            "增伟",
            "解放",
            "谢放",
            "娜娜",
            "那娜",
            "李娜",
            "李那",
            "李",
            "李四光",
            "李四广",
            "欧阳修",
            "欧阳秀",
            "陈秀英",
            "陳秀英",
            "程秀英",
            "刘玉",
            "劉玉",
            "王霞",
            "王俠",
            "王Anna",
            "王Anne",
            "玛丽·居里",
            "玛莉居里",
            "𠮷田",
            "吉田",
            "",
        ];
        let feats: Vec<Features> = names.iter().map(|n| f(n, "1950-01-01", "110105")).collect();
        let mut levels = [0; 4];
        for a in &feats {
            for b in &feats {
                let level = name_level(a, b);
                assert_eq!(
                    level,
                    name_level_unfiltered(a, b),
                    "{:?} / {:?}",
                    String::from_utf8_lossy(a.name()),
                    String::from_utf8_lossy(b.name())
                );
                if let Some(l) = level {
                    levels[l] += 1;
                }
            }
        }
        assert!(
            levels.iter().all(|&n| n > 0),
            "every level occurs: {levels:?}"
        );
    }

    #[test]
    fn jaro_winkler_agrees_with_strsim() {
        let words = [
            "li na",
            "li nuo",
            "zhang wei",
            "zhang wi",
            "wang fang",
            "wang fan",
            "chen xiu ying",
            "chen xiuying",
            "",
            "a",
            "ab",
            "ba",
            "martha",
            "marhta",
            "dixon",
            "dicksonx",
            "shan tian fang",
            "dan tian fang",
            "zeng guo fan",
            "ceng guo fan",
        ];
        for a in words {
            for b in words {
                let ours = jaro_winkler(a.as_bytes(), b.as_bytes());
                let theirs = strsim::jaro_winkler(a, b);
                assert!(
                    (ours - theirs).abs() < 1e-12,
                    "{a:?} {b:?}: {ours} vs {theirs}"
                );
            }
        }
    }

    #[test]
    fn date_keys_agree_with_dates() {
        let dates = [
            "1950-03-04",
            "1950-04-03",
            "1950-03-05",
            "1951-03-04",
            "1950-02-28",
            "1950-03-01",
            "1949-12-31",
            "1950-01-01",
            "1960-11-11",
            "1960-11-12",
            "1967-03-04",
        ];
        for a in dates {
            for b in dates {
                let (x, y) = (
                    NaiveDate::parse_from_str(a, "%Y-%m-%d").unwrap(),
                    NaiveDate::parse_from_str(b, "%Y-%m-%d").unwrap(),
                );
                assert_eq!(
                    date_key_level(&DateKey::of(x), &DateKey::of(y)),
                    date_level(x, y),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn a_similar_name_is_one_slip_in_one_syllable() {
        let level =
            |x: &str, y: &str| name_level(&f(x, "1950-01-01", "11"), &f(y, "1950-01-01", "11"));
        assert_eq!(level("张红", "张瑛"), Some(NAME_DIFFERENT));
        assert_eq!(level("李强伟", "李强学"), Some(NAME_DIFFERENT));
        assert_eq!(level("陈秀英", "陈秀银"), Some(NAME_SIMILAR));
        assert!(within_one_edit(b"wei", b"wi"));
        assert!(within_one_edit(b"ying", b"yin"));
        assert!(within_one_edit(b"rong", b"yong"));
        assert!(!within_one_edit(b"yan", b"lian"));
        assert!(!within_one_edit(b"hong", b"ying"));
        assert!(within_one_edit(b"", b"a") && !within_one_edit(b"ab", b"ba"));
    }

    #[test]
    fn levels() {
        let a = f("李娜", "1950-03-04", "330106");
        assert_eq!(
            Gamma::compare(&a, &f("李那", "1950-04-03", "330100")),
            Gamma {
                name: Some(NAME_HOMOPHONE),
                birth_date: Some(DATE_SWAPPED),
                gender: None,
                region: Some(1)
            }
        );
        let g = Gamma::compare(&a, &f("李娜", "1950-03-05", "33"));
        assert_eq!(
            (g.name, g.birth_date, g.region),
            (Some(NAME_EXACT), Some(DATE_ONE_DAY), Some(2))
        );
        let g = Gamma::compare(&a, &f("王芳", "1951-03-04", "110101"));
        assert_eq!(
            (g.name, g.birth_date, g.region),
            (Some(NAME_DIFFERENT), Some(DATE_ONE_DIGIT), Some(3))
        );
        let g = Gamma::compare(&a, &f("李", "1967-03-04", "330106"));
        assert_eq!((g.birth_date, g.region), (Some(DATE_DIFFERENT), Some(0)));
        // 1950-02-28 + 1 day crosses a month: still one day.
        assert_eq!(
            date_level(
                NaiveDate::from_ymd_opt(1950, 2, 28).unwrap(),
                NaiveDate::from_ymd_opt(1950, 3, 1).unwrap()
            ),
            DATE_ONE_DAY
        );
    }
}
