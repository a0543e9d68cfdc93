//! Field comparisons: turns a (record, candidate) pair into comparison levels.

use crate::normalize::{name_pinyin, normalize_name, readings, surname_override};
use crate::Person;
use chrono::{Datelike, Days, NaiveDate};
use lifecert_domain::Gender;

/// What a person is compared on, computed once per candidate and once per record.
#[derive(Debug, Clone)]
pub(crate) struct Features {
    pub name: Vec<char>,
    /// First-reading toneless pinyin, syllables separated by spaces (the blocking key).
    pub pinyin: String,
    /// Every reading of each character, so that 娜 (first reading "nuo") and 那 still meet.
    pub readings: Vec<Vec<String>>,
    pub birth_date: Option<NaiveDate>,
    pub gender: Option<Gender>,
    /// Region digits with trailing `00` pairs removed: "330100" → "3301".
    pub region: Option<String>,
}

impl Features {
    pub fn of(p: &Person) -> Features {
        let name_s = normalize_name(&p.name);
        let name: Vec<char> = name_s.chars().collect();
        let pinyin = name_pinyin(&name_s);
        let mut rs: Vec<Vec<String>> = name.iter().map(|&c| readings(c)).collect();
        if let Some((n, special)) = surname_override(&name) {
            for (r, s) in rs.iter_mut().zip(special.iter()).take(n) {
                if !r.iter().any(|x| x == s) {
                    r.insert(0, (*s).to_string());
                }
            }
        }
        Features {
            name,
            pinyin,
            readings: rs,
            birth_date: p.birth_date,
            gender: p.gender,
            region: p.region.as_deref().and_then(region_prefix),
        }
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
            birth_date: match (a.birth_date, b.birth_date) {
                (Some(x), Some(y)) => Some(date_level(x, y)),
                _ => None,
            },
            gender: match (a.gender, b.gender) {
                (Some(x), Some(y)) => Some(usize::from(x != y)),
                _ => None,
            },
            region: match (&a.region, &b.region) {
                (Some(x), Some(y)) => Some(region_level(x, y)),
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
    if a.name.is_empty() || b.name.is_empty() {
        return None;
    }
    if a.name == b.name {
        return Some(NAME_EXACT);
    }
    // Characters and sounds are both compared: a clerk who heard the name may write any
    // character with the same reading, including a non-first reading (娜 na/nuo vs 那 na).
    let homophone = a.pinyin == b.pinyin
        || (a.name.len() == b.name.len()
            && a.name
                .iter()
                .zip(&b.name)
                .zip(a.readings.iter().zip(&b.readings))
                .all(|((ca, cb), (ra, rb))| ca == cb || ra.iter().any(|r| rb.contains(r))));
    if homophone {
        return Some(NAME_HOMOPHONE);
    }
    if strsim::jaro_winkler(&a.pinyin, &b.pinyin) >= 0.9 {
        return Some(NAME_SIMILAR);
    }
    Some(NAME_DIFFERENT)
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
    let (x, y) = (
        a.format("%Y%m%d").to_string(),
        b.format("%Y%m%d").to_string(),
    );
    if x.bytes().zip(y.bytes()).filter(|(p, q)| p != q).count() == 1 {
        return DATE_ONE_DIGIT;
    }
    DATE_DIFFERENT
}

fn region_level(a: &str, b: &str) -> usize {
    let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
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
