//! Quality program: precision, recall and F1 of the matcher on labelled synthetic data, at
//! several Probable thresholds, with default and EM-estimated weights, plus time per record.
//!
//! cargo run --release -p lifecert-matching --example quality -- --pensioners 100000 --true 10000 --decoys 3300

use lifecert_matching::{match_record, synth, Class, Index, MatchResult, Thresholds, Weights};
use std::time::Instant;

fn arg(args: &[String], name: &str, default: usize) -> Result<usize, Box<dyn std::error::Error>> {
    match args.iter().position(|a| a == name) {
        Some(i) => Ok(args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()?),
        None => Ok(default),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--pensioners", 100_000)?;
    let n_true = arg(&args, "--true", 10_000)?;
    let n_decoys = arg(&args, "--decoys", 3_300)?;
    let seed = arg(&args, "--seed", 1)? as u64;

    let t = Instant::now();
    let pensioners = synth::pensioners(n, seed);
    let records = synth::records(&pensioners, n_true, n_decoys, seed);
    let index = Index::build(pensioners);
    println!(
        "{n} pensioners, {} records ({n_true} true); index built in {:.2?}",
        records.len(),
        t.elapsed()
    );
    let people: Vec<_> = records.iter().map(|r| r.0.clone()).collect();
    let t = Instant::now();
    let estimated = Weights::estimate(&index, &people, 10);
    println!("EM estimate in {:.2?}", t.elapsed());

    for (label, weights) in [("default", Weights::default()), ("estimated", estimated)] {
        println!("\n== {label} weights ==");
        print_weights(&weights);
        // Score once with thresholds that classify nothing as Probable by score alone;
        // re-classify below for each threshold.
        let base = Thresholds::default();
        let t = Instant::now();
        let results: Vec<MatchResult> = people
            .iter()
            .map(|p| match_record(&index, &weights, &base, p))
            .collect();
        let per = t.elapsed() / people.len().max(1) as u32;
        println!("time per record: {per:.2?}");
        println!(
            "probable≥  precision  recall     F1      (margin {} bits)",
            base.margin
        );
        for th in [12.0, 14.0, 16.0, 17.0, 18.0, 20.0, 22.0] {
            let (mut tp, mut fp) = (0usize, 0usize);
            for (r, (_, truth)) in results.iter().zip(&records) {
                let clear = !matches!(r.runner_up, Some(u) if r.score - u < base.margin);
                if r.score >= th && clear {
                    if r.candidate_id.is_some() && r.candidate_id == *truth {
                        tp += 1;
                    } else {
                        fp += 1;
                    }
                }
            }
            report(th, tp, fp, n_true);
        }
        let (mut tp, mut fp, mut possible_true) = (0, 0, 0);
        for (r, (_, truth)) in results.iter().zip(&records) {
            match r.class {
                Class::Probable if r.candidate_id == *truth => tp += 1,
                Class::Probable => fp += 1,
                Class::Possible if r.candidate_id == *truth && truth.is_some() => {
                    possible_true += 1
                }
                _ => {}
            }
        }
        println!(
            "default thresholds ({} / {}): Probable tp {tp} fp {fp}; true records left Possible: {possible_true}",
            base.probable, base.possible
        );
    }
    Ok(())
}

fn report(th: f64, tp: usize, fp: usize, n_true: usize) {
    let precision = if tp + fp == 0 {
        1.0
    } else {
        tp as f64 / (tp + fp) as f64
    };
    let recall = tp as f64 / n_true.max(1) as f64;
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    println!("{th:>9.1}  {precision:>9.5}  {recall:>7.4}  {f1:>7.4}   (fp {fp})");
}

fn print_weights(w: &Weights) {
    let f = |m: &[f64], u: &[f64]| {
        m.iter()
            .zip(u)
            .map(|(m, u)| format!("{:+.1}", (m / u).log2()))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "name   [exact homophone similar different]: {}",
        f(&w.name.m, &w.name.u)
    );
    println!(
        "date   [exact swapped ±1day 1digit different]: {}",
        f(&w.birth_date.m, &w.birth_date.u)
    );
    println!("gender [same different]: {}", f(&w.gender.m, &w.gender.u));
    println!(
        "region [district city province different]: {}",
        f(&w.region.m, &w.region.u)
    );
}
