//! Labelled synthetic data feeds for the feed benchmark (`bench/feeds.py`): a pensioner roll
//! that `lifecert import recipients` accepts, a large sign-of-life feed matched by ID number,
//! and a smaller ID-less feed of noisy true records and decoys with its labels.
//!
//! cargo run --release -p lifecert-matching --example feedgen -- --out DIR \
//!     [--pensioners 1000000] [--exact 10000000] [--probabilistic 133000] [--seed 2026] [--today YYYY-MM-DD]
//!
//! Writes `DIR/pensioners.csv`, `DIR/exact.csv`, `DIR/probabilistic.csv`,
//! `DIR/probabilistic_labels.csv` (`record_id,true_id_number`, empty for decoys) and
//! `DIR/manifest.json` (the parameters and counts). The output is a function of the
//! parameters: the seed and `--today` (default: today's date in UTC), to which event and
//! certification dates are relative. The exact feed is streamed: only the roll is held in
//! memory, never the feed.

use chrono::{Datelike, Days, NaiveDate};
use lifecert_domain::Gender;
use lifecert_matching::synth::{self, Rng};
use lifecert_matching::Person;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Error = Box<dyn std::error::Error>;

/// Surnames whose reading as a surname differs from the character's usual reading; the
/// matcher must read 解 as xie, 单 as shan, 曾 as zeng. Given to 1 pensioner in 200, on top
/// of the 单 and 曾 the frequency table already yields.
const MULTI_READING_SURNAMES: [char; 10] =
    ['解', '单', '曾', '仇', '查', '区', '朴', '盖', '翟', '乐'];

/// Share of exact-feed records (per mille) with an ID number no pensioner has: people who
/// are not on this roll. They have no exact match, so lifecert tries them probabilistically.
const UNKNOWN_PER_MILLE: usize = 30;
/// Share (per mille) with a mistyped ID number (wrong check character).
const MISTYPED_PER_MILLE: usize = 5;

/// Earliest and latest birth dates on the roll.
const BIRTH_FIRST: (i32, u32, u32) = (1930, 1, 1);
const BIRTH_LAST: (i32, u32, u32) = (1966, 12, 31);

/// Event dates lie within this many days before `today`.
const EVENT_SPAN_DAYS: usize = 120;

struct Args {
    out: PathBuf,
    pensioners: usize,
    exact: usize,
    probabilistic: usize,
    seed: u64,
    today: NaiveDate,
}

fn parse_args() -> Result<Args, Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| -> Option<&String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let number = |name: &str, default: usize| -> Result<usize, Error> {
        match value(name) {
            Some(v) => Ok(v.replace('_', "").parse()?),
            None => Ok(default),
        }
    };
    let out = value("--out").ok_or("--out DIR is required")?;
    let today = match value("--today") {
        Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")?,
        None => chrono::Utc::now().date_naive(),
    };
    Ok(Args {
        out: PathBuf::from(out),
        pensioners: number("--pensioners", 1_000_000)?,
        exact: number("--exact", 10_000_000)?,
        probabilistic: number("--probabilistic", 133_000)?,
        seed: number("--seed", 2026)? as u64,
        today,
    })
}

/// One pensioner of the roll.
struct Pensioner {
    id: [u8; 18],
    name: String,
    gender: Gender,
    birth_date: NaiveDate,
    region_code: &'static str,
}

impl Pensioner {
    fn person(&self) -> Person {
        Person {
            name: self.name.clone(),
            birth_date: Some(self.birth_date),
            gender: Some(self.gender),
            region: Some(self.region_code.to_string()),
        }
    }
}

/// GB 11643 check character of the first 17 digits.
fn check_character(first17: &[u8]) -> u8 {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

fn put_digits(dst: &mut [u8], mut value: u32) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn id_number(region: &str, birth: NaiveDate, sequence: u32) -> [u8; 18] {
    let mut id = [b'0'; 18];
    id[..6].copy_from_slice(region.as_bytes());
    put_digits(&mut id[6..10], birth.year().unsigned_abs());
    put_digits(&mut id[10..12], birth.month());
    put_digits(&mut id[12..14], birth.day());
    put_digits(&mut id[14..17], sequence);
    id[17] = check_character(&id[..17]);
    id
}

/// Draws ID numbers that are unique within one run (the roll and the unknown people of the
/// feed share the key space, so an "unknown" person never collides with a pensioner).
struct IdIssuer {
    issued: HashSet<u64>,
    first_day: i32,
    span: usize,
}

impl IdIssuer {
    fn new(capacity: usize) -> Result<IdIssuer, Error> {
        let day = |(y, m, d)| {
            NaiveDate::from_ymd_opt(y, m, d)
                .map(|x| x.num_days_from_ce())
                .ok_or("bad constant date")
        };
        let first_day = day(BIRTH_FIRST)?;
        Ok(IdIssuer {
            issued: HashSet::with_capacity(capacity),
            first_day,
            span: (day(BIRTH_LAST)? - first_day + 1) as usize,
        })
    }

    /// A new (region, birth date, sequence) for a person of `gender`. Half the draws take
    /// the later of two birth dates, so the roll thins out towards the oldest as a real one does.
    fn draw(&mut self, rng: &mut Rng, gender: Gender) -> (&'static str, NaiveDate, u32) {
        let regions = synth::regions();
        loop {
            let r = rng.below(regions.len());
            let mut back = rng.below(self.span);
            if rng.chance(0.5) {
                back = back.min(rng.below(self.span));
            }
            let day = self.first_day + (self.span - 1 - back) as i32;
            let sequence = match gender {
                Gender::Male => rng.below(500) as u32 * 2 + 1,
                Gender::Female => (rng.below(499) as u32 + 1) * 2,
            };
            let key = (r as u64) << 40 | (day as u64) << 12 | u64::from(sequence);
            if self.issued.insert(key) {
                if let Some(birth) = NaiveDate::from_num_days_from_ce_opt(day) {
                    return (regions[r], birth, sequence);
                }
            }
        }
    }
}

fn gender(rng: &mut Rng) -> Gender {
    if rng.chance(0.5) {
        Gender::Male
    } else {
        Gender::Female
    }
}

fn person_name(rng: &mut Rng, gender: Gender) -> String {
    let name = synth::name(rng, gender);
    if rng.below(200) == 0 {
        let surname = MULTI_READING_SURNAMES[rng.below(MULTI_READING_SURNAMES.len())];
        return std::iter::once(surname)
            .chain(name.chars().skip(1))
            .collect();
    }
    name
}

fn date_bytes(buf: &mut Vec<u8>, d: NaiveDate) {
    let mut b = [b'-'; 10];
    put_digits(&mut b[..4], d.year().unsigned_abs());
    put_digits(&mut b[5..7], d.month());
    put_digits(&mut b[8..10], d.day());
    buf.extend_from_slice(&b);
}

fn month_text(year: i32, month: u32) -> String {
    format!("{year:04}-{month:02}")
}

/// Writes the roll and returns it.
fn write_pensioners(
    path: &Path,
    args: &Args,
    issuer: &mut IdIssuer,
) -> Result<Vec<Pensioner>, Error> {
    let mut rng = Rng::new(args.seed ^ 0x0050_454E);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    writeln!(
        out,
        "id_number,name,insurance_type,region_code,benefit_start,monthly_amount,phone,last_certified_on,paid_through"
    )?;
    let regions = synth::regions();
    let today_month = args.today.year() * 12 + args.today.month0() as i32;
    let paid_through = today_month - 1;
    let mut roll = Vec::with_capacity(args.pensioners);
    for _ in 0..args.pensioners {
        let g = gender(&mut rng);
        let (id_region, birth_date, sequence) = issuer.draw(&mut rng, g);
        let id = id_number(id_region, birth_date, sequence);
        let name = person_name(&mut rng, g);
        // Most draw their pension where their ID was issued; some have moved.
        let region_code = if rng.below(100) < 85 {
            id_region
        } else {
            regions[rng.below(regions.len())]
        };
        let (insurance, women_age, lo, hi) = match rng.below(10) {
            0..=6 => ("enterprise", 50, 220_000, 650_000),
            7 => ("institution", 55, 450_000, 950_000),
            _ => ("resident", 50, 15_000, 45_000),
        };
        let age = if g == Gender::Male { 60 } else { women_age };
        let birth_month = birth_date.year() * 12 + birth_date.month0() as i32;
        let start = (birth_month + 12 * age + 1).min(today_month);
        let fen = lo + (rng.below(hi - lo) + rng.below(hi - lo)) / 2;
        // Last certified between a fortnight and 13 months ago, never before the pension began.
        let start_date =
            NaiveDate::from_ymd_opt(start.div_euclid(12), start.rem_euclid(12) as u32 + 1, 1)
                .ok_or("benefit start out of range")?;
        let certified = args
            .today
            .checked_sub_days(Days::new(14 + rng.below(380) as u64))
            .ok_or("today out of range")?
            .max(start_date)
            .min(args.today);
        let phone = if rng.below(100) < 85 {
            format!(
                "1{}{:09}",
                [3, 5, 8][rng.below(3)],
                rng.below(1_000_000_000)
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "{},{},{},{},{},{}.{:02},{},{},{}",
            std::str::from_utf8(&id)?,
            name,
            insurance,
            region_code,
            month_text(start.div_euclid(12), start.rem_euclid(12) as u32 + 1),
            fen / 100,
            fen % 100,
            phone,
            certified.format("%Y-%m-%d"),
            month_text(
                paid_through.div_euclid(12),
                paid_through.rem_euclid(12) as u32 + 1
            ),
        )?;
        roll.push(Pensioner {
            id,
            name,
            gender: g,
            birth_date,
            region_code,
        });
    }
    out.flush()?;
    Ok(roll)
}

/// How the ID number of one exact-feed record is written.
fn write_id(buf: &mut Vec<u8>, id: &[u8; 18], rng: &mut Rng) {
    let x = rng.below(1000);
    if x < 10 {
        // Grouped with spaces, as printed on forms.
        buf.extend_from_slice(&id[..6]);
        buf.push(b' ');
        buf.extend_from_slice(&id[6..14]);
        buf.push(b' ');
        buf.extend_from_slice(&id[14..]);
    } else if x < 15 {
        // Full-width digits from a Chinese input method.
        let mut s = String::with_capacity(54);
        for &b in id {
            s.push(match b {
                b'0'..=b'9' => {
                    char::from_u32(u32::from('０') + u32::from(b - b'0')).unwrap_or('０')
                }
                _ => 'Ｘ',
            });
        }
        buf.extend_from_slice(s.as_bytes());
    } else if x < 18 {
        // The legacy 15-digit number: no century, no check character.
        buf.extend_from_slice(&id[..6]);
        buf.extend_from_slice(&id[8..17]);
    } else if id[17] == b'X' && x < 400 {
        buf.extend_from_slice(&id[..17]);
        buf.push(b'x');
    } else {
        buf.extend_from_slice(id);
    }
}

struct ExactCounts {
    records: usize,
    pensioner: usize,
    unknown: usize,
    mistyped: usize,
}

fn write_exact(
    path: &Path,
    args: &Args,
    roll: &[Pensioner],
    issuer: &mut IdIssuer,
) -> Result<ExactCounts, Error> {
    let mut rng = Rng::new(args.seed ^ 0x4558_4143);
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
    out.write_all(b"record_id,id_number,name,gender,birth_date,event_date,region_code\n")?;
    let mut counts = ExactCounts {
        records: 0,
        pensioner: 0,
        unknown: 0,
        mistyped: 0,
    };
    let mut line = Vec::with_capacity(128);
    for i in 0..args.exact {
        line.clear();
        line.extend_from_slice(format!("e{:08},", i + 1).as_bytes());
        let x = rng.below(1000);
        let (name, g, birth, region) = if x < UNKNOWN_PER_MILLE || roll.is_empty() {
            // Someone not on this roll (another agency's pensioner, or not retired).
            let g = gender(&mut rng);
            let (region, birth, sequence) = issuer.draw(&mut rng, g);
            let id = id_number(region, birth, sequence);
            write_id(&mut line, &id, &mut rng);
            counts.unknown += 1;
            (person_name(&mut rng, g), g, birth, region)
        } else {
            let p = &roll[rng.below(roll.len())];
            if x < UNKNOWN_PER_MILLE + MISTYPED_PER_MILLE {
                // One digit of the sequence typed wrong: the check character no longer fits.
                let mut id = p.id;
                id[15] = b'0' + (id[15] - b'0' + 1 + rng.below(9) as u8) % 10;
                line.extend_from_slice(&id);
                counts.mistyped += 1;
            } else {
                write_id(&mut line, &p.id, &mut rng);
                counts.pensioner += 1;
            }
            (p.name.clone(), p.gender, p.birth_date, p.region_code)
        };
        line.push(b',');
        line.extend_from_slice(name.as_bytes());
        line.push(b',');
        let chinese = rng.below(50) == 0;
        line.extend_from_slice(
            match (g, chinese) {
                (Gender::Male, false) => "M",
                (Gender::Female, false) => "F",
                (Gender::Male, true) => "男",
                (Gender::Female, true) => "女",
            }
            .as_bytes(),
        );
        line.push(b',');
        date_bytes(&mut line, birth);
        line.push(b',');
        let event = args
            .today
            .checked_sub_days(Days::new(rng.below(EVENT_SPAN_DAYS) as u64))
            .ok_or("today out of range")?;
        date_bytes(&mut line, event);
        line.push(b',');
        line.extend_from_slice(region.as_bytes());
        line.push(b'\n');
        out.write_all(&line)?;
        counts.records += 1;
    }
    out.flush()?;
    Ok(counts)
}

/// A person who is not a pensioner but looks like one: half share a pensioner's name with
/// another birth year (and half of those another region), half share a pensioner's birth
/// date and region with another name.
fn decoy(rng: &mut Rng, p: &Pensioner, same_name: bool) -> Person {
    let mut d = p.person();
    if same_name {
        let shift = 1 + rng.below(10) as i32;
        let y = if rng.chance(0.5) {
            p.birth_date.year() + shift
        } else {
            p.birth_date.year() - shift
        };
        d.birth_date = NaiveDate::from_ymd_opt(y, p.birth_date.month(), p.birth_date.day())
            .or_else(|| NaiveDate::from_ymd_opt(y, p.birth_date.month(), 28));
        if rng.chance(0.5) {
            let regions = synth::regions();
            d.region = Some(regions[rng.below(regions.len())].to_string());
        }
    } else {
        let g = gender(rng);
        loop {
            let name = person_name(rng, g);
            if name != p.name {
                d.name = name;
                break;
            }
        }
        d.gender = Some(g);
    }
    d
}

fn write_probabilistic(
    feed: &Path,
    labels: &Path,
    args: &Args,
    roll: &[Pensioner],
) -> Result<(usize, usize), Error> {
    let mut rng = Rng::new(args.seed ^ 0x5052_4F42);
    // 100 true records for every 33 decoys, as in the workload.
    let n_true = (args.probabilistic * 100 + 66) / 133;
    let n_true = n_true.min(roll.len());
    let n_decoys = args.probabilistic.saturating_sub(n_true);
    let mut rows: Vec<(Person, Option<usize>)> = Vec::with_capacity(n_true + n_decoys);
    let mut chosen = HashSet::with_capacity(n_true);
    while rows.len() < n_true {
        let i = rng.below(roll.len());
        if chosen.insert(i) {
            rows.push((synth::noisy_copy(&mut rng, &roll[i].person()), Some(i)));
        }
    }
    for k in 0..n_decoys {
        if roll.is_empty() {
            break;
        }
        let p = &roll[rng.below(roll.len())];
        rows.push((decoy(&mut rng, p, k % 2 == 0), None));
    }
    // Fisher–Yates: true records and decoys interleaved, as a real feed would have them.
    for i in (1..rows.len()).rev() {
        let j = rng.below(i + 1);
        rows.swap(i, j);
    }
    let mut out = BufWriter::new(File::create(feed)?);
    let mut lab = BufWriter::new(File::create(labels)?);
    writeln!(
        out,
        "record_id,id_number,name,gender,birth_date,event_date,region_code"
    )?;
    writeln!(lab, "record_id,true_id_number")?;
    for (k, (person, truth)) in rows.iter().enumerate() {
        let record_id = format!("p{:06}", k + 1);
        let event = args
            .today
            .checked_sub_days(Days::new(rng.below(EVENT_SPAN_DAYS) as u64))
            .ok_or("today out of range")?;
        writeln!(
            out,
            "{record_id},,{},{},{},{},{}",
            person.name,
            match person.gender {
                Some(Gender::Male) => "M",
                Some(Gender::Female) => "F",
                None => "",
            },
            person
                .birth_date
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            event.format("%Y-%m-%d"),
            person.region.as_deref().unwrap_or(""),
        )?;
        let truth = match truth {
            Some(i) => std::str::from_utf8(&roll[*i].id)?,
            None => "",
        };
        writeln!(lab, "{record_id},{truth}")?;
    }
    out.flush()?;
    lab.flush()?;
    Ok((n_true, n_decoys))
}

fn main() -> Result<(), Error> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.out)?;
    let mut issuer = IdIssuer::new(args.pensioners + args.exact / 20)?;

    let t = Instant::now();
    let roll = write_pensioners(&args.out.join("pensioners.csv"), &args, &mut issuer)?;
    eprintln!("{} pensioners in {:.1?}", roll.len(), t.elapsed());

    let t = Instant::now();
    let (n_true, n_decoys) = write_probabilistic(
        &args.out.join("probabilistic.csv"),
        &args.out.join("probabilistic_labels.csv"),
        &args,
        &roll,
    )?;
    eprintln!(
        "{} ID-less records ({n_true} true, {n_decoys} decoys) in {:.1?}",
        n_true + n_decoys,
        t.elapsed()
    );

    let t = Instant::now();
    let exact = write_exact(&args.out.join("exact.csv"), &args, &roll, &mut issuer)?;
    eprintln!(
        "{} exact-feed records ({} pensioners, {} unknown IDs, {} mistyped IDs) in {:.1?}",
        exact.records,
        exact.pensioner,
        exact.unknown,
        exact.mistyped,
        t.elapsed()
    );

    let mut manifest = File::create(args.out.join("manifest.json"))?;
    writeln!(
        manifest,
        "{{\"pensioners\":{},\"exact\":{},\"exact_pensioner_ids\":{},\"exact_unknown_ids\":{},\"exact_mistyped_ids\":{},\"probabilistic\":{},\"probabilistic_true\":{n_true},\"probabilistic_decoys\":{n_decoys},\"seed\":{},\"today\":\"{}\"}}",
        roll.len(),
        exact.records,
        exact.pensioner,
        exact.unknown,
        exact.mistyped,
        n_true + n_decoys,
        args.seed,
        args.today
    )?;
    Ok(())
}
