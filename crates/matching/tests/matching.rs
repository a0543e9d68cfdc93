//! End-to-end behaviour of blocking, scoring and classification on hand-made and synthetic data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use lifecert_domain::Gender;
use lifecert_matching::{
    match_record, synth, Candidate, Class, Index, Person, Thresholds, Weights,
};

fn d(s: &str) -> Option<NaiveDate> {
    Some(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap())
}

fn person(name: &str, date: &str, gender: Option<Gender>, region: &str) -> Person {
    Person {
        name: name.into(),
        birth_date: d(date),
        gender,
        region: Some(region.into()),
    }
}

fn small_index(extra: Vec<Candidate>) -> Index {
    let mut c = synth::pensioners(2_000, 42);
    // Ids from synth are 1..=2000; hand-made ones use 10_000+.
    c.extend(extra);
    Index::build(c)
}

#[test]
fn blocking_finds_swapped_day_and_month() {
    let target = Candidate {
        id: 10_001,
        person: person("欧阳娜", "1950-03-04", Some(Gender::Female), "330106"),
    };
    let index = small_index(vec![target]);
    let record = person("欧阳丽", "1950-04-03", None, "110101");
    let found: Vec<i64> = index
        .candidates_for(&record)
        .into_iter()
        .filter_map(|i| index.id(i))
        .collect();
    assert!(found.contains(&10_001), "{found:?}");
}

#[test]
fn traditional_and_homophone_true_record_is_probable() {
    let index = small_index(vec![Candidate {
        id: 10_002,
        person: person("张丽娜", "1948-11-23", Some(Gender::Female), "440106"),
    }]);
    // Traditional 張 and 麗, homophone 那 for 娜, city-level region, no gender.
    let record = person("張麗那", "1948-11-23", None, "440100");
    let r = match_record(&index, &Weights::default(), &Thresholds::default(), &record);
    assert_eq!(r.class, Class::Probable, "{r:?}");
    assert_eq!(r.candidate_id, Some(10_002));
}

#[test]
fn same_name_other_birth_year_is_not_probable() {
    let index = small_index(vec![Candidate {
        id: 10_003,
        person: person("陈建国", "1952-06-17", Some(Gender::Male), "320106"),
    }]);
    for year in ["1951", "1953", "1962", "1940"] {
        let record = person(
            "陈建国",
            &format!("{year}-06-17"),
            Some(Gender::Male),
            "320106",
        );
        let r = match_record(&index, &Weights::default(), &Thresholds::default(), &record);
        assert_ne!(r.class, Class::Probable, "{year}: {r:?}");
    }
}

#[test]
fn twins_with_same_name_and_birth_date_are_at_most_possible() {
    let twin = |id| Candidate {
        id,
        person: person("王秀英", "1945-02-10", Some(Gender::Female), "370202"),
    };
    let index = small_index(vec![twin(10_004), twin(10_005)]);
    let record = person("王秀英", "1945-02-10", Some(Gender::Female), "370202");
    let r = match_record(&index, &Weights::default(), &Thresholds::default(), &record);
    assert_eq!(r.class, Class::Possible, "{r:?}");
    assert!(r.runner_up.is_some());
}

#[test]
fn no_candidates_is_unmatched() {
    let index = small_index(vec![]);
    let record = Person {
        name: String::new(),
        birth_date: None,
        gender: None,
        region: None,
    };
    let r = match_record(&index, &Weights::default(), &Thresholds::default(), &record);
    assert_eq!(r.class, Class::Unmatched);
    assert_eq!(r.candidate_id, None);
}

struct Quality {
    precision: f64,
    recall: f64,
}

fn quality(weights: &Weights, index: &Index, records: &[(Person, Option<i64>)]) -> Quality {
    let th = Thresholds::default();
    let (mut tp, mut fp) = (0usize, 0usize);
    let n_true = records.iter().filter(|r| r.1.is_some()).count();
    for (p, truth) in records {
        let r = match_record(index, weights, &th, p);
        if r.class == Class::Probable {
            if r.candidate_id == *truth {
                tp += 1;
            } else {
                fp += 1;
            }
        }
    }
    Quality {
        precision: tp as f64 / (tp + fp).max(1) as f64,
        recall: tp as f64 / n_true as f64,
    }
}

fn synthetic() -> (Index, Vec<(Person, Option<i64>)>) {
    let pensioners = synth::pensioners(5_000, 11);
    let records = synth::records(&pensioners, 1_000, 330, 11);
    (Index::build(pensioners), records)
}

#[test]
fn quality_on_synthetic_data_with_default_weights() {
    let (index, records) = synthetic();
    let q = quality(&Weights::default(), &index, &records);
    assert!(q.precision >= 0.99, "precision {}", q.precision);
    assert!(q.recall >= 0.9, "recall {}", q.recall);
}

#[test]
fn estimated_weights_still_classify_well() {
    let (index, records) = synthetic();
    let people: Vec<Person> = records.iter().map(|r| r.0.clone()).collect();
    let w = Weights::estimate(&index, &people, 10);
    // Agreement must still count for, and disagreement against.
    assert!(w.name.weight(0) > 5.0 && w.name.weight(3) < 0.0, "{w:?}");
    assert!(
        w.birth_date.weight(0) > 5.0 && w.birth_date.weight(4) < 0.0,
        "{w:?}"
    );
    let q = quality(&w, &index, &records);
    assert!(q.precision >= 0.99, "precision {}", q.precision);
    assert!(q.recall >= 0.9, "recall {}", q.recall);
}

#[test]
fn equal_scores_go_to_the_candidate_that_came_first_whatever_the_birth_dates() {
    // One day after and one day before the record's birth date: the same score. The index
    // holds candidates in birth-date order, so the later date sits after the earlier one;
    // the input order must still decide.
    let after = Candidate {
        id: 10_010,
        person: person("欧阳娜", "1950-03-05", Some(Gender::Female), "330106"),
    };
    let before = Candidate {
        id: 10_011,
        person: person("欧阳娜", "1950-03-03", Some(Gender::Female), "330106"),
    };
    let record = person("欧阳娜", "1950-03-04", Some(Gender::Female), "330106");
    for (first, second) in [(&after, &before), (&before, &after)] {
        let index = small_index(vec![first.clone(), second.clone()]);
        let r = match_record(&index, &Weights::default(), &Thresholds::default(), &record);
        assert_eq!(r.candidate_id, Some(first.id), "{r:?}");
        assert_eq!(r.runner_up, Some(r.score), "{r:?}");
        assert_eq!(r.class, Class::Possible, "two equal candidates: {r:?}");
    }
}

#[test]
fn work_on_every_core_keeps_the_order_and_passes_panics_on() {
    let items: Vec<u32> = (0..10_001).collect();
    let doubled = lifecert_matching::par_map(&items, |i| i * 2);
    assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    assert!(lifecert_matching::par_map(&[] as &[u32], |i| *i).is_empty());
    assert_eq!(lifecert_matching::par_map(&[7u32], |i| *i), [7]);
    // A panic in the first stretch (this thread) or the last (another thread).
    for bad in [0, 10_000] {
        let panicked = std::panic::catch_unwind(|| {
            lifecert_matching::par_map(&items, |i| {
                assert_ne!(*i, bad, "a bad item");
                *i
            })
        });
        assert!(panicked.is_err());
    }
}
