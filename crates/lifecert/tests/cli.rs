//! End-to-end tests of the `lifecert` binary: each test runs the real command in its own
//! temporary working directory (SQLite by default; PostgreSQL when
//! `LIFECERT_TEST_POSTGRES_URL` is set) and checks exit codes, `--json` summaries, files
//! written, encryption at rest and the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate: failing loudly is the point

use chrono::{Datelike, Duration, Local, Months, NaiveDate};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_lifecert");

/// A valid base64 master key (bytes 0..32) and a second, different one.
const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const KEY_B: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

const HEADER: &str = "id_number,name,insurance_type,region_code,benefit_start,monthly_amount,phone,residence,country,last_certified_on,paid_through";

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

/// A valid 18-character ID number (GB 11643 check character) from region, birth date
/// (YYYYMMDD) and the 3-digit sequence (odd = male).
fn id(region: &str, birth: &str, seq: &str) -> String {
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let first = format!("{region}{birth}{seq}");
    assert_eq!(first.len(), 17, "region 6 + birth 8 + sequence 3 digits");
    let sum: u32 = first
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    format!("{first}{}", CHECK[(sum % 11) as usize] as char)
}

fn today() -> NaiveDate {
    Local::now().date_naive()
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn month(d: NaiveDate) -> String {
    d.format("%Y-%m").to_string()
}

fn months_before(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_sub_months(Months::new(n)).unwrap()
}

fn months_after(d: NaiveDate, n: u32) -> NaiveDate {
    d.checked_add_months(Months::new(n)).unwrap()
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), d.month(), 1).unwrap()
}

/// One roll line with the usual defaults: enterprise pension in 110105 since 2010-01,
/// a phone number, living in China.
fn line(id: &str, name: &str, amount: &str, last_certified_on: &str, paid_through: &str) -> String {
    format!("{id},{name},enterprise,110105,2010-01,{amount},13800138000,domestic,,{last_certified_on},{paid_through}")
}

fn roll(lines: &[String]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// A working directory and how to reach its database.
struct Lc {
    dir: tempfile::TempDir,
    /// `--database-url URL` for PostgreSQL; empty for the default SQLite database.
    db_args: Vec<String>,
    /// Environment every command gets (the master key for PostgreSQL).
    envs: Vec<(String, String)>,
}

/// What one run of the binary did.
struct Run {
    args: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(args: String, out: Output) -> Run {
        Run {
            args,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn describe(&self) -> String {
        format!(
            "lifecert {}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }

    /// The last non-empty line of standard output, as JSON.
    fn json(&self) -> Value {
        let last = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_else(|| panic!("no output\n{}", self.describe()));
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("last line is not JSON ({e})\n{}", self.describe()))
    }

    /// Asserts a failure with `--json`: non-zero exit, `error: ...` on standard error and
    /// `{"error":{"code","message"}}` as the last line; returns the message.
    fn assert_error(&self, code: &str) -> String {
        assert!(!self.success(), "expected failure\n{}", self.describe());
        assert!(
            self.stderr.contains("error: "),
            "no error line on stderr\n{}",
            self.describe()
        );
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{}", self.describe());
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!message.is_empty(), "{}", self.describe());
        message
    }
}

/// Removes every `LIFECERT_*` variable of the test's own environment.
fn clean_command(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LIFECERT_") {
            c.env_remove(&k);
        }
    }
    c
}

impl Lc {
    /// A fresh directory using the default SQLite database and key file.
    fn sqlite() -> Lc {
        Lc {
            dir: tempfile::tempdir().unwrap(),
            db_args: Vec::new(),
            envs: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The command for `lifecert ARGS` (arguments separated by spaces), with the
    /// database URL and environment of this directory plus `extra_env`.
    fn command(&self, args: &str, extra_env: &[(&str, &str)]) -> Command {
        let mut c = clean_command(self.dir.path());
        for (k, v) in &self.envs {
            c.env(k, v);
        }
        for (k, v) in extra_env {
            c.env(k, v);
        }
        c.args(&self.db_args).args(args.split_whitespace());
        c
    }

    fn run_env(&self, args: &str, extra_env: &[(&str, &str)]) -> Run {
        let out = self.command(args, extra_env).output().unwrap();
        Run::from(args.to_string(), out)
    }

    fn run(&self, args: &str) -> Run {
        self.run_env(args, &[])
    }

    /// Runs `lifecert --json ARGS`, asserts success and returns the summary.
    fn ok(&self, args: &str) -> Value {
        let r = self.run(&format!("--json {args}"));
        assert!(r.success(), "expected success\n{}", r.describe());
        r.json()
    }

    /// Runs `lifecert --json ARGS` and expects the error `code`; returns the run.
    fn fails(&self, args: &str, code: &str) -> Run {
        let r = self.run(&format!("--json {args}"));
        r.assert_error(code);
        r
    }

    fn import(&self, rel: &str, text: &str) -> Value {
        self.write(rel, text);
        self.ok(&format!("import recipients {rel}"))
    }

    fn show(&self, id: &str) -> Value {
        self.ok(&format!("recipient show --id-number {id}"))
    }

    fn stats(&self) -> Value {
        self.ok("stats")
    }

    fn verify(&self) -> Value {
        self.ok("audit verify")
    }
}

fn assert_keys(v: &Value, keys: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for k in keys {
        assert!(obj.contains_key(*k), "missing {k:?} in {v}");
    }
}

fn assert_exact_keys(v: &Value, keys: &[&str]) {
    assert_keys(v, keys);
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    assert_eq!(obj.len(), keys.len(), "unexpected keys in {v}");
}

fn import_counts(v: &Value) -> [u64; 5] {
    ["rows", "inserted", "updated", "unchanged", "rejected"].map(|k| {
        v[k].as_u64()
            .unwrap_or_else(|| panic!("{k} is not a count in {v}"))
    })
}

/// Reads a payment instruction file into rows keyed by column name.
type CsvRow = std::collections::HashMap<String, String>;

fn read_payments(path: &Path) -> (Vec<String>, Vec<CsvRow>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .cloned()
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect();
    (header, rows)
}

// ---------------------------------------------------------------------------
// Shared stories (SQLite and PostgreSQL)
// ---------------------------------------------------------------------------

/// Import, reminders and suspension by the cycle, a counter certification lifting the
/// suspension, a death report and its void, a payment run and the audit trail.
fn certification_story(lc: &Lc) {
    let t = today();
    // Certified 14 months ago: due 2 months ago, past the 30-day grace period.
    let late = id("110105", "19491231", "002");
    assert_eq!(late, "11010519491231002X");
    let late_certified = months_before(t, 14);
    // Due 10 days ago: overdue but still inside the grace period.
    let overdue = id("110105", "19500101", "123");
    let overdue_certified = months_before(t - Duration::days(10), 12);
    // Due in about 20 days: the 30-day reminder.
    let soon = id("110105", "19510202", "235");
    let soon_certified = months_before(t + Duration::days(20), 12);
    // Certified last month: nothing to do.
    let fresh = id("110105", "19520303", "347");
    let fresh_certified = months_before(t, 1);
    let text = roll(&[
        line(&late, "李秀英", "3000.00", &date(late_certified), ""),
        line(&overdue, "王建国", "2500.50", &date(overdue_certified), ""),
        line(&soon, "张伟", "1800", &date(soon_certified), ""),
        line(&fresh, "刘芳", "4200.10", &date(fresh_certified), ""),
    ]);
    let r = lc.import("story.csv", &text);
    assert_eq!(import_counts(&r), [4, 4, 0, 0, 0], "{r}");
    let r = lc.import("story.csv", &text);
    assert_eq!(import_counts(&r), [4, 0, 0, 4, 0], "{r}");

    let as_of = date(t);
    let cycle = lc.ok(&format!("cycle run --as-of {as_of}"));
    assert_exact_keys(
        &cycle,
        &[
            "as_of",
            "evaluated",
            "reminders",
            "overdue",
            "suspended",
            "overdue_notices",
        ],
    );
    assert_eq!(
        cycle,
        json!({"as_of": as_of, "evaluated": 4, "reminders": 1, "overdue": 1, "suspended": 1, "overdue_notices": 1})
    );
    // The same day again changes nothing.
    let again = lc.ok(&format!("cycle run --as-of {as_of}"));
    assert_eq!(
        again,
        json!({"as_of": as_of, "evaluated": 4, "reminders": 0, "overdue": 1, "suspended": 0, "overdue_notices": 0})
    );

    let v = lc.show(&late);
    assert_keys(
        &v,
        &[
            "id_number_masked",
            "status",
            "suspension_reason",
            "last_certified_on",
            "next_due_on",
            "region_code",
            "monthly_amount_fen",
            "gender",
            "birth_date",
        ],
    );
    assert_eq!(v["id_number_masked"], "110105********002X");
    assert_eq!(v["status"], "suspended");
    assert_eq!(v["suspension_reason"], "overdue");
    assert_eq!(v["last_certified_on"], date(late_certified));
    assert_eq!(v["next_due_on"], date(months_after(late_certified, 12)));
    assert_eq!(v["region_code"], "110105");
    assert_eq!(v["monthly_amount_fen"], 300_000);
    assert_eq!(v["gender"], "female");
    assert_eq!(v["birth_date"], "1949-12-31");
    assert!(
        !v.to_string().contains(&late),
        "the whole ID number is shown: {v}"
    );
    let v = lc.show(&overdue);
    assert_eq!(
        (&v["status"], &v["gender"], &v["monthly_amount_fen"]),
        (&json!("active"), &json!("male"), &json!(250_050))
    );

    // Certification dates in the future and failures without a reason are refused.
    let tomorrow = date(t + Duration::days(1));
    lc.fails(
        &format!("certify --id-number {late} --channel counter --date {tomorrow}"),
        "invalid_input",
    );
    lc.fails(
        &format!("certify --id-number {late} --channel counter --date {as_of} --outcome fail"),
        "invalid_input",
    );

    let c = lc.ok(&format!(
        "certify --id-number {late} --channel counter --date {as_of}"
    ));
    assert_keys(
        &c,
        &["certification_id", "outcome", "next_due_on", "status"],
    );
    assert!(c["certification_id"].as_i64().is_some_and(|i| i > 0), "{c}");
    assert_eq!(c["outcome"], "pass");
    assert_eq!(c["next_due_on"], date(months_after(t, 12)));
    assert_eq!(c["status"], "active");
    let v = lc.show(&late);
    assert_eq!(v["status"], "active");
    assert_eq!(v["suspension_reason"], Value::Null);
    assert_eq!(v["last_certified_on"], as_of);
    assert_eq!(v["next_due_on"], date(months_after(t, 12)));
    assert_eq!(v["certifications"][0]["channel"], "counter");
    assert_eq!(v["certifications"][0]["outcome"], "pass");

    let s = lc.stats();
    assert_exact_keys(
        &s,
        &[
            "recipients",
            "active",
            "suspended",
            "terminated",
            "overdue",
            "certified_valid",
        ],
    );
    assert_eq!(
        s,
        json!({"recipients": 4, "active": 4, "suspended": 0, "terminated": 0, "overdue": 1, "certified_valid": 3})
    );

    // A death report suspends at once; voiding it lifts the suspension.
    let death_day = date(t - Duration::days(3));
    let d = lc.ok(&format!(
        "death report --id-number {fresh} --date {death_day} --source family"
    ));
    assert_keys(&d, &["status", "overpaid_months", "overpaid_fen"]);
    assert_eq!(d["status"], "suspended");
    assert_eq!(d["suspension_reason"], "death_reported");
    assert_eq!(d["overpaid_months"], json!([]));
    assert_eq!(d["overpaid_fen"], 0);
    assert_eq!(lc.show(&fresh)["suspension_reason"], "death_reported");
    // A passing certification does not lift a death suspension.
    let c = lc.ok(&format!(
        "certify --id-number {fresh} --channel community --date {as_of}"
    ));
    assert_eq!(c["status"], "suspended", "{c}");
    let d = lc.ok(&format!("death void --id-number {fresh}"));
    assert_keys(&d, &["status", "overpaid_months", "overpaid_fen"]);
    assert_eq!(d["status"], "active");
    assert_eq!(d["overpaid_months"], json!([]));
    assert_eq!(d["overpaid_fen"], 0);
    // Nothing to void any more.
    lc.fails(
        &format!("death void --id-number {fresh}"),
        "invalid_transition",
    );
    // An unknown pensioner.
    let stranger = id("110105", "19600101", "011");
    lc.fails(
        &format!("recipient show --id-number {stranger}"),
        "not_found",
    );

    // Everyone is active: the month's run pays each of them once.
    let this_month = month(t);
    let p = lc.ok(&format!(
        "payments export --month {this_month} --out story-pay.csv"
    ));
    assert_exact_keys(
        &p,
        &[
            "month",
            "pay",
            "withhold",
            "back_pay",
            "stop",
            "recover",
            "total_fen",
        ],
    );
    assert_eq!(
        p,
        json!({"month": this_month, "pay": 4, "withhold": 0, "back_pay": 0, "stop": 0, "recover": 0,
               "total_fen": 300_000 + 250_050 + 180_000 + 420_010})
    );
    let (_, rows) = read_payments(&lc.path("story-pay.csv"));
    assert_eq!(rows.len(), 4);
    assert!(rows
        .iter()
        .all(|r| r["kind"] == "pay" && r["months"] == this_month));
    let close = lc.ok(&format!("payments close --month {this_month}"));
    assert_eq!(close["status"], "closed");
    assert_eq!(close["lines"], 4);

    let a = lc.verify();
    assert_exact_keys(&a, &["entries", "ok", "first_bad_seq"]);
    // 4 added in one batch, suspended + cycle run, certification + resumed, death
    // reported + review case, certification, void, payments exported, payments closed.
    assert_eq!(a, json!({"entries": 11, "ok": true, "first_bad_seq": null}));
}

/// A death confirmed after payments for months after it: the overpaid months are
/// recovered in the next payment run, and a closed month cannot be exported again.
fn overpayment_story(lc: &Lc) {
    let t = today();
    let this_month = first_of_month(t);
    let last_month = months_before(this_month, 1);
    // Died in the middle of the month two months before last month.
    let death = months_before(last_month, 2) + Duration::days(14);
    let certified = months_before(death, 2);
    let dead = id("110105", "19450607", "111");
    let alive = id("110105", "19470809", "222");
    let paid = month(last_month);
    let r = lc.import(
        "pay.csv",
        &roll(&[
            line(&dead, "赵桂兰", "3000.00", &date(certified), &paid),
            line(&alive, "钱志强", "2500.50", &date(certified), &paid),
        ]),
    );
    assert_eq!(import_counts(&r), [2, 2, 0, 0, 0], "{r}");

    let overpaid = json!([month(months_before(last_month, 1)), month(last_month)]);
    let d = lc.ok(&format!(
        "death report --id-number {dead} --date {} --source public_security",
        date(death)
    ));
    assert_eq!(d["status"], "suspended");
    assert_eq!(
        d["overpaid_months"], overpaid,
        "provisional overpayment: {d}"
    );
    assert_eq!(d["overpaid_fen"], 600_000);
    let d = lc.ok(&format!("death confirm --id-number {dead}"));
    assert_keys(&d, &["status", "overpaid_months", "overpaid_fen"]);
    assert_eq!(d["status"], "terminated");
    assert_eq!(d["overpaid_months"], overpaid);
    assert_eq!(d["overpaid_fen"], 600_000);
    assert!(d["recovery_case_id"].as_i64().is_some(), "{d}");
    // A terminated pensioner cannot be certified.
    lc.fails(
        &format!(
            "certify --id-number {dead} --channel counter --date {}",
            date(t)
        ),
        "recipient_terminated",
    );

    let m = month(this_month);
    let p = lc.ok(&format!("payments export --month {m} --out p.csv"));
    assert_eq!(
        p,
        json!({"month": m, "pay": 1, "withhold": 0, "back_pay": 0, "stop": 0, "recover": 1, "total_fen": 250_050})
    );
    let (header, rows) = read_payments(&lc.path("p.csv"));
    assert_eq!(
        header,
        [
            "month",
            "recipient_id",
            "id_number",
            "name",
            "kind",
            "months",
            "amount_fen",
            "amount_yuan",
            "reason"
        ]
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let recover = rows
        .iter()
        .find(|r| r["kind"] == "recover")
        .unwrap_or_else(|| panic!("no recover line: {rows:?}"));
    assert_eq!(recover["month"], m);
    assert!(
        recover["recipient_id"].parse::<i64>().is_ok(),
        "{recover:?}"
    );
    assert_eq!(recover["id_number"], dead);
    assert_eq!(recover["name"], "赵桂兰");
    assert_eq!(
        recover["months"],
        format!("{};{}", month(months_before(last_month, 1)), paid)
    );
    assert_eq!(recover["amount_fen"], "600000");
    assert_eq!(recover["amount_yuan"], "6000.00");
    assert_eq!(recover["reason"], "");
    let pay = rows
        .iter()
        .find(|r| r["kind"] == "pay")
        .unwrap_or_else(|| panic!("no pay line: {rows:?}"));
    assert_eq!(pay["id_number"], alive);
    assert_eq!(pay["months"], m);
    assert_eq!(pay["amount_fen"], "250050");
    assert_eq!(pay["amount_yuan"], "2500.50");

    // An open month exported again gives the same instructions.
    let first = std::fs::read(lc.path("p.csv")).unwrap();
    let p2 = lc.ok(&format!("payments export --month {m} --out p2.csv"));
    assert_eq!(p2, p);
    assert_eq!(std::fs::read(lc.path("p2.csv")).unwrap(), first);

    let close = lc.ok(&format!("payments close --month {m}"));
    assert_eq!(
        close,
        json!({"month": m, "status": "closed", "lines": 2, "total_fen": 250_050})
    );
    let r = lc.fails(
        &format!("payments export --month {m} --out p3.csv"),
        "month_closed",
    );
    assert!(r.stderr.contains(&m), "{}", r.describe());
    assert!(
        !lc.path("p3.csv").exists(),
        "a refused export wrote its file"
    );
    lc.fails(&format!("payments close --month {m}"), "month_closed");

    // The next month: the recovery was sent, so the dead pensioner only gets a stop line.
    let next = month(months_after(this_month, 1));
    let p = lc.ok(&format!("payments export --month {next} --out next.csv"));
    assert_eq!(
        p,
        json!({"month": next, "pay": 1, "withhold": 0, "back_pay": 0, "stop": 1, "recover": 0, "total_fen": 250_050})
    );
    assert!(lc.verify()["ok"].as_bool().unwrap_or(false));
}

// ---------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------

#[test]
fn first_import_creates_database_and_key_file_and_reimport_is_idempotent() {
    let lc = Lc::sqlite();
    let ids = [
        id("110105", "19500101", "123"),
        id("110105", "19510505", "246"),
        "11010519491231002X".to_string(),
    ];
    let lines = vec![
        line(&ids[0], "王建国", "3000.00", "", ""),
        line(&ids[1], "陈静", "2100.5", "", ""),
        line(&ids[2], "李秀英", "1999.99", "", ""),
    ];
    lc.write("roll.csv", &roll(&lines));
    let r = lc.run("import recipients roll.csv --json");
    assert!(r.success(), "{}", r.describe());
    assert!(lc.path("lifecert-data/lifecert.db").is_file());
    // The command copied its write-ahead log into the database file before it ended.
    let wal = std::fs::metadata(lc.path("lifecert-data/lifecert.db-wal")).map(|m| m.len());
    assert!(
        matches!(wal, Err(_) | Ok(0)),
        "the write-ahead log was left behind: {wal:?}"
    );
    let key = lc.path("lifecert-data/lifecert.key");
    assert!(key.is_file());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode {mode:o}");
    }
    assert!(
        r.stderr.contains("lifecert.key") && r.stderr.contains("created"),
        "stderr does not announce the new key file\n{}",
        r.describe()
    );
    let v = r.json();
    assert_exact_keys(
        &v,
        &[
            "rows",
            "inserted",
            "updated",
            "unchanged",
            "rejected",
            "errors",
        ],
    );
    assert_eq!(import_counts(&v), [3, 3, 0, 0, 0]);
    assert_eq!(v["errors"], json!([]));

    let key_text = std::fs::read(&key).unwrap();
    let r = lc.run("import recipients roll.csv --json");
    assert!(r.success(), "{}", r.describe());
    assert!(
        !r.stderr.contains("created"),
        "the key file was announced again\n{}",
        r.describe()
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        key_text,
        "the key file changed"
    );
    assert_eq!(import_counts(&r.json()), [3, 0, 0, 3, 0]);

    let mut changed = lines.clone();
    changed[1] = line(&ids[1], "陈静", "2200.00", "", "");
    let v = lc.import("roll.csv", &roll(&changed));
    assert_eq!(import_counts(&v), [3, 0, 1, 2, 0], "{v}");
    assert_eq!(lc.show(&ids[1])["monthly_amount_fen"], 220_000);
    assert_eq!(lc.show(&ids[0])["monthly_amount_fen"], 300_000);

    // Without --json the summary is for people.
    let r = lc.run("import recipients roll.csv");
    assert!(r.success(), "{}", r.describe());
    assert!(r.stdout.contains("3 unchanged"), "{}", r.describe());

    assert_eq!(lc.stats()["recipients"], 3);
    // One entry for the batch that added all three, one for the update.
    assert_eq!(
        lc.verify(),
        json!({"entries": 2, "ok": true, "first_bad_seq": null})
    );
}

#[test]
fn import_accepts_chinese_headers_bom_and_chinese_values() {
    let lc = Lc::sqlite();
    let abroad = id("440305", "19550315", "135");
    let home = "11010519491231002x";
    let text = format!(
        "\u{feff}身份证号,姓名,险种,参保地区划代码,待遇起始年月,月养老金,联系电话,居住地,居住国,上次认证日期,已发放至\n\
         {abroad},欧阳明华,企业职工,440305,2015-04,3567.20,+1 415 555 0100,境外,US,{},\n\
         {home},李秀英,城乡居民,110105,2010-01,180,,境内,,,\n",
        date(months_before(today(), 2)),
    );
    let v = lc.import("花名册.csv", &text);
    assert_eq!(import_counts(&v), [2, 2, 0, 0, 0], "{v}");
    let s = lc.show(&abroad);
    assert_eq!(s["monthly_amount_fen"], 356_720);
    assert_eq!(s["insurance_type"], "enterprise");
    assert_eq!(s["residence"], "abroad");
    assert_eq!(s["country"], "US");
    assert_eq!(s["region_code"], "440305");
    assert_eq!(s["benefit_start"], "2015-04");
    assert_eq!(s["name_masked"], "欧**华");
    // The lower-case x was normalised: the upper-case number finds the pensioner.
    let s = lc.show("11010519491231002X");
    assert_eq!(s["insurance_type"], "resident");
    assert_eq!(s["id_number_masked"], "110105********002X");
    assert_eq!(s["last_certified_on"], "2010-01-01");
}

#[test]
fn import_reports_each_bad_row_with_line_field_and_code_and_keeps_good_rows() {
    let lc = Lc::sqlite();
    let good_a = id("110105", "19500101", "123");
    let good_b = id("110105", "19500202", "135");
    let bad_check = {
        let mut s = id("110105", "19500303", "147");
        let last = s.pop().unwrap();
        s.push(if last == '0' { '1' } else { '0' });
        s
    };
    let tomorrow = date(today() + Duration::days(1));
    let lines = vec![
        line(&good_a, "王建国", "3000.00", "", ""),  // 2
        line(&bad_check, "张三", "3000.00", "", ""), // 3
        line(&id("110105", "19500404", "159"), "", "3000.00", "", ""), // 4
        format!(
            "{},李四,pirate,110105,2010-01,3000.00,,domestic,,,",
            id("110105", "19500505", "161")
        ), // 5
        format!(
            "{},王五,enterprise,12345,2010-01,3000.00,,domestic,,,",
            id("110105", "19500606", "173")
        ), // 6
        format!(
            "{},赵六,enterprise,110105,2010-13,3000.00,,domestic,,,",
            id("110105", "19500707", "185")
        ), // 7
        // A thousands separator (quoted, so it stays one cell) is not an amount.
        format!(
            "{},孙七,enterprise,110105,2010-01,\"3,000\",,domestic,,,",
            id("110105", "19500808", "197")
        ), // 8
        format!(
            "{},周八,enterprise,110105,2010-01,3000.00,,abroad,,,",
            id("110105", "19500909", "209")
        ), // 9
        line(&good_a, "王建国", "3000.00", "", ""), // 10
        line(
            &id("110105", "19501010", "211"),
            "吴九",
            "3000.00",
            &tomorrow,
            "",
        ), // 11
        line(&id("110105", "19501111", "223"), "郑十", "-5", "", ""), // 12
        line(&good_b, "冯十一", "1234.56", "", ""), // 13
    ];
    lc.write("bad.csv", &roll(&lines));
    let r = lc.run("--json import recipients bad.csv");
    assert!(
        r.success(),
        "bad rows must not fail the import\n{}",
        r.describe()
    );
    let v = r.json();
    assert_eq!(import_counts(&v), [12, 2, 0, 0, 10], "{v}");
    let errors: Vec<(u64, String, String)> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert!(
                e["message"].as_str().is_some_and(|m| !m.is_empty()),
                "error without a message: {e}"
            );
            (
                e["line"].as_u64().unwrap(),
                e["field"].as_str().unwrap().to_string(),
                e["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(u64, String, String)> = [
        (3, "id_number", "invalid_id_number"),
        (4, "name", "missing_name"),
        (5, "insurance_type", "invalid_insurance_type"),
        (6, "region_code", "invalid_region_code"),
        (7, "benefit_start", "invalid_date"),
        (8, "monthly_amount", "invalid_amount"),
        (9, "country", "missing_country"),
        (10, "id_number", "duplicate_in_file"),
        (11, "last_certified_on", "invalid_date"),
        (12, "monthly_amount", "invalid_amount"),
    ]
    .into_iter()
    .map(|(l, f, c)| (l, f.to_string(), c.to_string()))
    .collect();
    assert_eq!(errors, expected, "{v}");
    // No message repeats a whole ID number.
    assert!(!v.to_string().contains(&good_a), "{v}");

    assert_eq!(lc.stats()["recipients"], 2);
    assert_eq!(lc.show(&good_b)["monthly_amount_fen"], 123_456);
    lc.fails(
        &format!(
            "recipient show --id-number {}",
            id("110105", "19500404", "159")
        ),
        "not_found",
    );
}

#[test]
fn import_without_a_required_column_fails_naming_it_and_writes_nothing() {
    let lc = Lc::sqlite();
    let text = format!(
        "id_number,name,insurance_type,region_code,benefit_start\n{},王建国,enterprise,110105,2010-01\n",
        id("110105", "19500101", "123")
    );
    lc.write("short.csv", &text);
    let r = lc.run("--json import recipients short.csv");
    let message = r.assert_error("invalid_input");
    assert!(
        message.contains("monthly_amount") && message.contains("月养老金"),
        "{}",
        r.describe()
    );
    assert!(r.stderr.contains("monthly_amount"), "{}", r.describe());
    assert_eq!(lc.stats()["recipients"], 0);
    assert_eq!(lc.verify()["entries"], 0);

    // A missing file is an error too, naming the file.
    let r = lc.run("--json import recipients nowhere.csv");
    r.assert_error("io_error");
    assert!(r.stderr.contains("nowhere.csv"), "{}", r.describe());
}

#[test]
fn import_error_lines_are_right_for_crlf_files_and_after_blank_lines() {
    let lc = Lc::sqlite();
    let bad = |birth: &str| {
        let mut s = id("110105", birth, "123");
        let last = s.pop().unwrap();
        s.push(if last == '0' { '1' } else { '0' });
        format!("{s},王建国,enterprise,110105,2010-01,3000.00,,,,,")
    };
    let lines_of = |v: &Value| -> Vec<u64> {
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect()
    };
    // Excel's "CSV UTF-8" on Windows writes CRLF line endings.
    let crlf = format!("{HEADER}\r\n{}\r\n{}\r\n", bad("19500101"), bad("19500202"));
    let v = lc.import("crlf.csv", &crlf);
    assert_eq!(lines_of(&v), [2, 3], "{v}");
    let blank = format!("{HEADER}\n{}\n\n{}\n", bad("19500101"), bad("19500202"));
    let v = lc.import("blank.csv", &blank);
    assert_eq!(lines_of(&v), [2, 4], "{v}");
}

#[test]
fn json_error_object_for_invalid_argument_values() {
    let lc = Lc::sqlite();
    let t = date(today());
    for args in [
        format!("--json certify --id-number 110105194912310021 --channel counter --date {t}"),
        "--json payments export --month 2026-13 --out p.csv".to_string(),
        "--json cycle run --as-of 2026-02-30".to_string(),
        format!("--json certify --id-number 11010519491231002X --channel fax --date {t}"),
    ] {
        let r = lc.run(&args);
        assert!(!r.success(), "{}", r.describe());
        assert!(r.stderr.contains("error:"), "{}", r.describe());
        let v = r.json();
        assert!(
            v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{}",
            r.describe()
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            r.describe()
        );
    }
}

// ---------------------------------------------------------------------------
// Cycle, certification, deaths, payments
// ---------------------------------------------------------------------------

#[test]
fn cycle_suspends_after_grace_and_counter_certification_resumes_on_sqlite() {
    certification_story(&Lc::sqlite());
}

#[test]
fn confirmed_death_recovers_overpaid_months_and_closed_month_cannot_be_exported_on_sqlite() {
    overpayment_story(&Lc::sqlite());
}

#[test]
fn dates_after_today_are_refused() {
    let lc = Lc::sqlite();
    let p = id("110105", "19500101", "123");
    lc.import("r.csv", &roll(&[line(&p, "王建国", "3000.00", "", "")]));
    let tomorrow = date(today() + Duration::days(1));
    lc.fails(
        &format!("death report --id-number {p} --date {tomorrow} --source family"),
        "invalid_input",
    );
    lc.fails(
        &format!("certify --id-number {p} --channel video --date {tomorrow}"),
        "invalid_input",
    );
    assert_eq!(lc.show(&p)["status"], "active");
    assert_eq!(lc.verify()["entries"], 1);
}

#[test]
fn voided_death_is_back_paid_in_the_next_run() {
    let lc = Lc::sqlite();
    let t = today();
    let this_month = first_of_month(t);
    let (m, next) = (month(this_month), month(months_after(this_month, 1)));
    let p = id("110105", "19500101", "123");
    let paid = month(months_before(this_month, 1));
    lc.import(
        "r.csv",
        &roll(&[line(
            &p,
            "王建国",
            "3000.00",
            &date(months_before(t, 2)),
            &paid,
        )]),
    );
    let d = lc.ok(&format!(
        "death report --id-number {p} --date {} --source civil_affairs",
        date(t)
    ));
    assert_eq!(d["suspension_reason"], "death_reported");
    let e = lc.ok(&format!("payments export --month {m} --out a.csv"));
    assert_eq!(
        (&e["withhold"], &e["total_fen"]),
        (&json!(1), &json!(0)),
        "{e}"
    );
    let (_, rows) = read_payments(&lc.path("a.csv"));
    assert_eq!(
        (rows[0]["kind"].as_str(), rows[0]["reason"].as_str()),
        ("withhold", "death_reported")
    );
    lc.ok(&format!("payments close --month {m}"));

    let d = lc.ok(&format!("death void --id-number {p}"));
    assert_eq!(d["status"], "active");
    let e = lc.ok(&format!("payments export --month {next} --out b.csv"));
    assert_eq!(
        e,
        json!({"month": next, "pay": 0, "withhold": 0, "back_pay": 1, "stop": 0, "recover": 0, "total_fen": 600_000})
    );
    let (_, rows) = read_payments(&lc.path("b.csv"));
    assert_eq!(rows[0]["kind"], "back_pay");
    assert_eq!(rows[0]["months"], format!("{m};{next}"));
    assert_eq!(rows[0]["amount_fen"], "600000");
    lc.ok(&format!("payments close --month {next}"));
    assert_eq!(lc.show(&p)["paid_through"], next);
}

#[test]
fn reimport_never_rolls_back_a_newer_certification_or_settled_months() {
    let lc = Lc::sqlite();
    let t = today();
    let this_month = first_of_month(t);
    let p = id("110105", "19500101", "123");
    let old_paid = month(months_before(this_month, 1));
    let certified = date(months_before(t, 6));
    lc.import(
        "r.csv",
        &roll(&[line(&p, "王建国", "3000.00", &certified, &old_paid)]),
    );
    lc.ok(&format!(
        "certify --id-number {p} --channel video --date {}",
        date(t)
    ));
    lc.ok(&format!("payments export --month {} --out p.csv", month(t)));
    lc.ok(&format!("payments close --month {}", month(t)));
    // The same file again: nothing changes.
    let v = lc.import(
        "r.csv",
        &roll(&[line(&p, "王建国", "3000.00", &certified, &old_paid)]),
    );
    assert_eq!(import_counts(&v), [1, 0, 0, 1, 0], "{v}");
    // A raise: the amount changes, the newer certification and the closed month stay.
    let v = lc.import(
        "r.csv",
        &roll(&[line(&p, "王建国", "3100.00", &certified, &old_paid)]),
    );
    assert_eq!(import_counts(&v), [1, 0, 1, 0, 0], "{v}");
    let s = lc.show(&p);
    assert_eq!(s["monthly_amount_fen"], 310_000);
    assert_eq!(s["last_certified_on"], date(t));
    assert_eq!(s["next_due_on"], date(months_after(t, 12)));
    assert_eq!(s["paid_through"], month(t));
}

#[test]
fn overpayment_recovers_what_the_ledger_paid_not_the_current_amount() {
    let lc = Lc::sqlite();
    let t = today();
    let this_month = first_of_month(t);
    let last_month = months_before(this_month, 1);
    let m = month(this_month);
    let p = id("110105", "19450607", "111");
    let row = |amount: &str| {
        roll(&[line(
            &p,
            "赵桂兰",
            amount,
            &date(months_before(t, 3)),
            &month(last_month),
        )])
    };
    lc.import("r.csv", &row("3000.00"));
    lc.ok(&format!("payments export --month {m} --out p.csv"));
    lc.ok(&format!("payments close --month {m}"));
    // A raise arrives after this month was paid at 3000.00...
    lc.import("r.csv", &row("3500.00"));
    // ...and then news of a death last month: this month's 3000.00 was paid too many.
    let death = date(last_month + Duration::days(14));
    lc.ok(&format!(
        "death report --id-number {p} --date {death} --source public_security"
    ));
    let d = lc.ok(&format!("death confirm --id-number {p}"));
    assert_eq!(d["overpaid_months"], json!([m]), "{d}");
    assert_eq!(d["overpaid_fen"], 300_000, "{d}");
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

#[test]
fn wrong_or_malformed_master_key_is_refused_and_leaves_the_database_usable() {
    let lc = Lc::sqlite();
    let p = id("110105", "19500101", "123");
    lc.import("r.csv", &roll(&[line(&p, "王建国", "3000.00", "", "")]));
    let key = lc.path("lifecert-data/lifecert.key");
    let key_text = std::fs::read(&key).unwrap();

    let r = lc.run_env("--json stats", &[("LIFECERT_MASTER_KEY", KEY_A)]);
    let message = r.assert_error("wrong_master_key");
    assert!(message.contains("wrong master key"), "{}", r.describe());
    assert!(r.stderr.contains("wrong master key"), "{}", r.describe());
    let r = lc.run_env("import recipients r.csv", &[("LIFECERT_MASTER_KEY", KEY_B)]);
    assert!(
        !r.success() && r.stderr.contains("wrong master key"),
        "{}",
        r.describe()
    );

    for bad in [
        "not a key",
        "AAECAwQF",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gIQ==",
    ] {
        let r = lc.run_env("--json stats", &[("LIFECERT_MASTER_KEY", bad)]);
        assert!(!r.success(), "{}", r.describe());
        assert!(r.stderr.contains("32 bytes"), "{}", r.describe());
        assert!(
            !r.stderr.contains(bad),
            "the key is echoed\n{}",
            r.describe()
        );
    }

    // Nothing else broke: the key file is untouched and the data still reads.
    assert_eq!(std::fs::read(&key).unwrap(), key_text);
    assert_eq!(lc.show(&p)["status"], "active");
    assert_eq!(lc.stats()["recipients"], 1);
    assert_eq!(
        lc.verify(),
        json!({"entries": 1, "ok": true, "first_bad_seq": null})
    );

    // The key file moved away: refused with a message naming it, and no new key made.
    let moved = lc.path("lifecert.key.bak");
    std::fs::rename(&key, &moved).unwrap();
    let r = lc.run("--json stats");
    let message = r.assert_error("invalid_input");
    assert!(message.contains("lifecert.key"), "{}", r.describe());
    assert!(!key.exists(), "a new key replaced the missing one");
    // The same key given through LIFECERT_MASTER_KEY_FILE works.
    let r = lc.run_env(
        "--json stats",
        &[("LIFECERT_MASTER_KEY_FILE", moved.to_str().unwrap())],
    );
    assert!(r.success(), "{}", r.describe());
    assert_eq!(r.json()["recipients"], 1);
}

#[test]
fn rotated_master_key_still_finds_pensioners_and_does_not_duplicate_them() {
    let mut lc = Lc::sqlite();
    lc.envs = vec![("LIFECERT_MASTER_KEY".to_string(), KEY_A.to_string())];
    let p = id("110105", "19500101", "123");
    let text = roll(&[line(&p, "王建国", "3000.00", "", "")]);
    lc.import("r.csv", &text);
    assert!(
        !lc.path("lifecert-data/lifecert.key").exists(),
        "a key file was made although LIFECERT_MASTER_KEY is set"
    );
    // Rotation: the new key first, the old one kept to read what it encrypted.
    lc.envs = vec![(
        "LIFECERT_MASTER_KEY".to_string(),
        format!("{KEY_B},{KEY_A}"),
    )];
    assert_eq!(lc.show(&p)["monthly_amount_fen"], 300_000);
    let v = lc.import("r.csv", &text);
    assert_eq!(v["inserted"], 0, "{v}");
    assert_eq!(lc.stats()["recipients"], 1);
}

// ---------------------------------------------------------------------------
// Interrupted import
// ---------------------------------------------------------------------------

fn db_size(lc: &Lc) -> u64 {
    ["lifecert-data/lifecert.db", "lifecert-data/lifecert.db-wal"]
        .iter()
        .filter_map(|p| std::fs::metadata(lc.path(p)).ok())
        .map(|m| m.len())
        .sum()
}

#[test]
fn import_killed_midway_leaves_a_consistent_database_and_can_be_rerun() {
    const ROWS: usize = 200_000;
    let lc = Lc::sqlite();
    {
        let file = std::fs::File::create(lc.path("big.csv")).unwrap();
        let mut w = std::io::BufWriter::new(file);
        writeln!(w, "{HEADER}").unwrap();
        let start = NaiveDate::from_ymd_opt(1940, 1, 1).unwrap();
        for i in 0..ROWS {
            // 999 sequences per birth date: unique, valid numbers.
            let birth = start + Duration::days((i / 999) as i64);
            let seq = format!("{:03}", i % 999 + 1);
            let n = id("110105", &birth.format("%Y%m%d").to_string(), &seq);
            writeln!(
                w,
                "{n},测试{i},enterprise,110105,2005-01,3000.00,,domestic,,,"
            )
            .unwrap();
        }
        w.flush().unwrap();
    }

    let mut child = lc
        .command("import recipients big.csv", &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let deadline = started + std::time::Duration::from_secs(60);
    let mut finished_early = false;
    loop {
        if child.try_wait().unwrap().is_some() {
            finished_early = true;
            break;
        }
        if started.elapsed() >= std::time::Duration::from_millis(1200) && db_size(&lc) > 1 << 20 {
            break;
        }
        assert!(Instant::now() < deadline, "the import never got going");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = !finished_early && child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "the killed import reported success");
    } else {
        eprintln!("note: the import finished before it could be killed; checking the rest only");
        let _ = child.wait();
    }

    // What was committed is whole: one audit entry per stored pensioner, chain intact.
    let a = lc.verify();
    assert_eq!(a["ok"], true, "{a}");
    let partial = lc.stats()["recipients"].as_u64().unwrap();
    // Batches are stored whole: 20,000 pensioners and one audit entry each.
    assert_eq!(partial % 20_000, 0, "a batch was half-written: {partial}");
    assert_eq!(a["entries"].as_u64().unwrap(), partial / 20_000, "{a}");
    assert!(partial <= ROWS as u64);
    if killed {
        eprintln!("killed the import with {partial} of {ROWS} pensioners stored");
    }

    let v = lc.ok("import recipients big.csv");
    let [rows, inserted, updated, unchanged, rejected] = import_counts(&v);
    assert_eq!(rows, ROWS as u64);
    assert_eq!(inserted + unchanged, ROWS as u64, "{v}");
    assert_eq!(unchanged, partial, "{v}");
    assert_eq!((updated, rejected), (0, 0), "{v}");
    assert_eq!(lc.stats()["recipients"], ROWS);
    assert_eq!(
        lc.verify(),
        json!({"entries": ROWS / 20_000, "ok": true, "first_bad_seq": null})
    );
}

// ---------------------------------------------------------------------------
// Audit trail and encryption at rest
// ---------------------------------------------------------------------------

/// Runs one SQL statement on a SQLite file with Python's sqlite3 module or the sqlite3
/// command; false when neither is available.
fn sqlite_exec(db: &Path, sql: &str) -> bool {
    let python = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()\nc.close()",
        ])
        .arg(db)
        .arg(sql)
        .output();
    match python {
        Ok(o) if o.status.success() => return true,
        Ok(o) => eprintln!(
            "note: python3 sqlite3 failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(_) => {}
    }
    match Command::new("sqlite3").arg(db).arg(sql).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!("sqlite3 failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => false,
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn audit_verify_detects_changed_deleted_and_truncated_entries() {
    let lc = Lc::sqlite();
    let ids = [
        id("110105", "19500101", "123"),
        id("110105", "19500202", "135"),
        id("110105", "19500303", "147"),
    ];
    let lines: Vec<String> = ids
        .iter()
        .map(|i| line(i, "王建国", "3000.00", "", ""))
        .collect();
    lc.import("r.csv", &roll(&lines));
    let t = date(today());
    lc.ok(&format!(
        "certify --id-number {} --channel home_visit --date {t}",
        ids[0]
    ));
    lc.ok(&format!(
        "death report --id-number {} --date {t} --source civil_affairs",
        ids[1]
    ));
    lc.ok(&format!(
        "certify --id-number {} --channel counter --date {t}",
        ids[2]
    ));
    lc.ok(&format!(
        "certify --id-number {} --channel video --date {t}",
        ids[0]
    ));
    // 3 added in one batch, 3 certifications, death reported + its review case.
    let entries = 6;
    assert_eq!(
        lc.verify(),
        json!({"entries": entries, "ok": true, "first_bad_seq": null})
    );

    let cases = [
        (
            "UPDATE audit_log SET details = '{}' WHERE seq = 3",
            3,
            entries,
        ),
        ("DELETE FROM audit_log WHERE seq = 2", 2, entries - 1),
        // The newest entry removed: the chain head still knows it was written.
        ("DELETE FROM audit_log WHERE seq = 6", 6, entries - 1),
    ];
    for (i, (sql, bad_seq, left)) in cases.into_iter().enumerate() {
        let copy = Lc::sqlite();
        copy_dir(&lc.path("lifecert-data"), &copy.path("lifecert-data"));
        if !sqlite_exec(&copy.path("lifecert-data/lifecert.db"), sql) {
            eprintln!("note: neither python3's sqlite3 nor the sqlite3 command is available; tampering not tested");
            return;
        }
        let r = copy.run("--json audit verify");
        assert!(
            !r.success(),
            "case {i}: tampering not detected\n{}",
            r.describe()
        );
        assert_eq!(
            r.json(),
            json!({"entries": left, "ok": false, "first_bad_seq": bad_seq}),
            "case {i}: {sql}"
        );
        assert!(r.stderr.contains("error:"), "{}", r.describe());
        // The human form says so too.
        let r = copy.run("audit verify");
        assert!(!r.success());
        assert!(r.stdout.contains("BROKEN"), "{}", r.describe());
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn database_bytes(lc: &Lc) -> Vec<u8> {
    let mut bytes = Vec::new();
    for f in ["lifecert.db", "lifecert.db-wal", "lifecert.db-journal"] {
        if let Ok(b) = std::fs::read(lc.path("lifecert-data").join(f)) {
            bytes.extend(b);
        }
    }
    assert!(!bytes.is_empty());
    bytes
}

#[test]
fn sqlite_files_hold_no_plaintext_name_id_number_or_phone() {
    let lc = Lc::sqlite();
    let people = [
        (id("110105", "19500101", "123"), "欧阳明华", "13912345678"),
        ("11010519491231002X".to_string(), "李秀英", "13698765432"),
    ];
    let lines: Vec<String> = people
        .iter()
        .map(|(i, n, p)| format!("{i},{n},enterprise,110105,2010-01,3000.00,{p},domestic,,,"))
        .collect();
    lc.import("r.csv", &roll(&lines));
    let check = |stage: &str| {
        let bytes = database_bytes(&lc);
        for (i, n, p) in &people {
            assert!(
                !contains(&bytes, i.as_bytes()),
                "{stage}: ID number {i} in plaintext"
            );
            assert!(
                !contains(&bytes, n.as_bytes()),
                "{stage}: name {n} in plaintext"
            );
            assert!(
                !contains(&bytes, p.as_bytes()),
                "{stage}: phone {p} in plaintext"
            );
        }
    };
    check("after import");
    let t = date(today());
    lc.ok(&format!(
        "certify --id-number {} --channel counter --date {t}",
        people[0].0
    ));
    lc.ok(&format!(
        "death report --id-number {} --date {t} --source family",
        people[1].0
    ));
    lc.ok(&format!(
        "payments export --month {} --out p.csv",
        month(today())
    ));
    check("after certification, death report and payment run");
    // The instruction file itself carries the numbers (the bank needs them).
    let (_, rows) = read_payments(&lc.path("p.csv"));
    assert!(rows.iter().any(|r| r["id_number"] == people[0].0));
}

// ---------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------

static PG_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A database created for one test and dropped when it ends (even on failure).
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

fn psql(admin_url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .arg(admin_url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The admin URL with its database name replaced.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_and_path = &base[scheme_end..];
    let host = host_and_path.split('/').next().unwrap_or(host_and_path);
    format!("{}{host}/{name}{query}", &base[..scheme_end])
}

fn password_of(url: &str) -> Option<String> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    userinfo.split_once(':').map(|(_, p)| p.to_string())
}

impl PgDatabase {
    fn create(admin_url: &str) -> PgDatabase {
        let name = format!(
            "lifecert_cli_{}_{}",
            std::process::id(),
            PG_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        psql(admin_url, &format!("DROP DATABASE IF EXISTS {name}")).unwrap();
        psql(admin_url, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        PgDatabase {
            admin_url: admin_url.to_string(),
            url: with_database(admin_url, &name),
            name,
        }
    }

    fn lc(&self) -> Lc {
        Lc {
            dir: tempfile::tempdir().unwrap(),
            db_args: vec!["--database-url".to_string(), self.url.clone()],
            envs: vec![("LIFECERT_MASTER_KEY".to_string(), KEY_A.to_string())],
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Err(e) = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("note: could not drop test database {}: {e}", self.name);
        }
    }
}

/// The admin URL, or `None` (with a note) when PostgreSQL tests are not configured.
/// In CI a missing PostgreSQL is a failure.
fn postgres_admin_url() -> Option<String> {
    match std::env::var("LIFECERT_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "LIFECERT_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests"
            );
            eprintln!("note: LIFECERT_TEST_POSTGRES_URL is not set; PostgreSQL CLI tests skipped");
            None
        }
    }
}

#[test]
fn postgres_runs_the_same_stories_and_demands_a_configured_key() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    assert_eq!(
        with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
        "postgres://u:p@h:5432/x?sslmode=disable"
    );
    let db = PgDatabase::create(&admin);

    // Without a key: refused with instructions, and no key file is made anywhere.
    let lc = db.lc();
    let no_key = Lc {
        dir: tempfile::tempdir().unwrap(),
        db_args: lc.db_args.clone(),
        envs: Vec::new(),
    };
    let r = no_key.run("--json stats");
    let message = r.assert_error("invalid_input");
    assert!(
        message.contains("LIFECERT_MASTER_KEY") && message.contains("32"),
        "{}",
        r.describe()
    );
    assert!(!no_key.path("lifecert-data").exists());

    // A database that cannot be opened: the error names it without its password.
    let nowhere = Lc {
        dir: tempfile::tempdir().unwrap(),
        db_args: vec![
            "--database-url".to_string(),
            with_database(&admin, "lifecert_cli_no_such_database"),
        ],
        envs: lc.envs.clone(),
    };
    let r = nowhere.run("--json stats");
    r.assert_error("database_error");
    if let Some(password) = password_of(&admin) {
        assert!(
            !r.stderr.contains(&format!(":{password}@")),
            "the password is shown\n{}",
            r.describe()
        );
    }

    certification_story(&lc);

    // Another key is refused.
    let r = lc.run_env("--json stats", &[("LIFECERT_MASTER_KEY", KEY_B)]);
    r.assert_error("wrong_master_key");
    assert!(r.stderr.contains("wrong master key"), "{}", r.describe());
    assert_eq!(lc.stats()["recipients"], 4);

    let db2 = PgDatabase::create(&admin);
    overpayment_story(&db2.lc());
}

#[test]
fn feed_ingest_prints_its_summary_and_writes_a_report_line_per_record() {
    let lc = Lc::sqlite();
    let dead = id("110105", "19450607", "111");
    let alive = id("110105", "19470809", "222");
    lc.import(
        "roll.csv",
        &roll(&[
            line(&dead, "王建国", "3000.00", "", ""),
            line(&alive, "李秀英", "3000.00", "", ""),
        ]),
    );
    let yesterday = date(today() - Duration::days(1));
    lc.write(
        "deaths.csv",
        &format!(
            "record_id,id_number,name,gender,birth_date,event_date,region_code,void_of\n\
             r1,{dead},,,,{yesterday},,\nr2,,,,,not-a-date,,\nr1,{dead},,,,{yesterday},,\n"
        ),
    );
    let v = lc.ok("feed ingest --source police_deregistration deaths.csv --report report.csv");
    assert_exact_keys(
        &v,
        &[
            "records",
            "exact",
            "probable",
            "possible",
            "unmatched",
            "rejected",
            "deaths_suspended",
            "reviews_opened",
            "lives_certified",
            "duplicates_ignored",
            "voids_applied",
        ],
    );
    assert_eq!(
        (
            &v["records"],
            &v["exact"],
            &v["rejected"],
            &v["duplicates_ignored"],
            &v["deaths_suspended"]
        ),
        (&json!(3), &json!(1), &json!(1), &json!(1), &json!(1)),
        "{v}"
    );
    let recipient_id = lc.show(&dead)["recipient_id"].clone();
    assert_eq!(lc.show(&dead)["suspension_reason"], "death_reported");
    let mut report = csv::Reader::from_path(lc.path("report.csv")).unwrap();
    assert_eq!(
        report.headers().unwrap().iter().collect::<Vec<_>>(),
        ["record_id", "class", "score", "recipient_id", "reason"]
    );
    let rows: Vec<csv::StringRecord> = report.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (&rows[0][1], &rows[0][3]),
        ("exact", recipient_id.to_string().as_str())
    );
    assert_eq!(&rows[1][1], "rejected");
    assert_eq!(&rows[2][1], "duplicate");

    let r = lc.run("--json feed ingest --source gossip deaths.csv");
    assert!(!r.success());
    assert!(
        r.stderr.contains("police_deregistration"),
        "{}",
        r.describe()
    );
}

#[test]
fn jobs_are_scheduled_once_run_by_run_pending_and_listed() {
    let lc = Lc::sqlite();
    // Due from midnight UTC and from the 1st: both periodic jobs are due whenever this runs.
    let env = [
        ("LIFECERT_SCHEDULER_CYCLE_TIME", "00:00"),
        ("LIFECERT_SCHEDULER_TIME_ZONE", "UTC"),
        ("LIFECERT_SCHEDULER_PAYMENT_EXPORT_DAY", "1"),
    ];
    let ok = |args: &str| {
        let r = lc.run_env(&format!("--json {args}"), &env);
        assert!(r.success(), "{}", r.describe());
        r.json()
    };
    let today = chrono::Utc::now().date_naive();
    let due_soon = months_before(today + Duration::days(10), 12);
    lc.import(
        "roll.csv",
        &roll(&[line(
            &id("110105", "19500101", "011"),
            "王伟",
            "3000.00",
            &date(due_soon),
            &month(months_before(today, 1)),
        )]),
    );

    let first = ok("jobs schedule");
    let jobs = first["jobs"].as_array().unwrap();
    assert_eq!(
        jobs.iter()
            .map(|j| (j["kind"].as_str().unwrap(), j["created"].as_bool().unwrap()))
            .collect::<Vec<_>>(),
        [("cycle", true), ("payment_export", true)],
        "{first}"
    );
    assert_eq!(jobs[0]["period"], date(today));
    assert_eq!(jobs[1]["period"], month(today));
    let again = ok("jobs schedule");
    assert!(
        again["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["created"] == false),
        "{again}"
    );

    let ran = ok("jobs run-pending");
    assert_eq!(
        (&ran["ran"], &ran["done"], &ran["dead"]),
        (&json!(2), &json!(2), &json!(0)),
        "{ran}"
    );
    assert_eq!(ok("jobs run-pending")["ran"], 0);
    let listed = ok("jobs list");
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    assert!(
        items
            .iter()
            .all(|j| j["status"] == "done" && j["attempts"] == 1),
        "{listed}"
    );
    let cycle = items.iter().find(|j| j["kind"] == "cycle").unwrap();
    assert_eq!(cycle["summary"]["reminders"], 1, "{listed}");
    assert_eq!(ok("jobs list --status dead")["items"], json!([]));

    let job_id = cycle["id"].as_i64().unwrap().to_string();
    lc.fails(&format!("jobs retry --id {job_id}"), "invalid_transition");
    lc.fails("jobs list --kind reminders", "invalid_input");
    let r = lc.run_env(
        "--json jobs schedule",
        &[("LIFECERT_SCHEDULER_TIME_ZONE", "Europe/Berlin")],
    );
    assert!(
        !r.success() && r.stderr.contains("time_zone"),
        "{}",
        r.describe()
    );
}

#[test]
fn notify_run_pending_waits_without_a_channel_and_delivers_once_with_one() {
    use lifecert_notify::testing::FakeGateway;
    let lc = Lc::sqlite();
    let due_soon = months_before(today() + Duration::days(10), 12);
    lc.import(
        "roll.csv",
        &roll(&[line(
            &id("110105", "19500101", "013"),
            "王伟",
            "3000.00",
            &date(due_soon),
            "",
        )]),
    );
    assert_eq!(
        lc.ok(&format!("cycle run --as-of {}", date(today())))["reminders"],
        1
    );

    // No channel configured: nothing is tried, and the summary says why it waits.
    let waiting = lc.ok("notify run-pending");
    assert_exact_keys(
        &waiting,
        &[
            "claimed",
            "delivered",
            "retrying",
            "failed",
            "cancelled",
            "released",
            "recovered",
            "queued",
            "deferred",
            "lost_lease",
            "waiting",
        ],
    );
    assert_eq!(waiting["claimed"], 0, "{waiting}");
    assert_eq!(
        (
            &waiting["waiting"][0]["channel"],
            &waiting["waiting"][0]["count"],
            &waiting["waiting"][0]["configured"]
        ),
        (&json!("sms"), &json!(1), &json!(false)),
        "{waiting}"
    );
    let human = lc.run("notify run-pending");
    assert!(
        human.stdout.contains("not configured ([notify.sms]"),
        "{}",
        human.describe()
    );

    // With an SMS gateway (no quiet hours, whatever time the test runs): sent once.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let gateway = runtime.block_on(FakeGateway::start()).unwrap();
    lc.write(
        "lifecert.toml",
        &format!(
            "[notify]\nquiet_hours = {{ start = \"00:00\", end = \"00:00\" }}\n[notify.sms]\nurl = \"{}\"\n",
            gateway.url("/send")
        ),
    );
    let sent = lc.ok("--config lifecert.toml notify run-pending");
    assert_eq!(
        (&sent["claimed"], &sent["delivered"], &sent["waiting"]),
        (&json!(1), &json!(1), &json!([])),
        "{sent}"
    );
    let got = gateway.received();
    assert_eq!(got.len(), 1);
    let body = got[0].json().unwrap();
    assert_eq!(body["phone"], "13800138000");
    assert!(body["text"].as_str().unwrap().contains("王伟"), "{body}");
    assert_eq!(
        lc.ok("--config lifecert.toml notify run-pending")["claimed"],
        0
    );
    assert_eq!(gateway.received().len(), 1);

    // A mistake in [notify] stops the command at start, naming the setting.
    lc.write("bad.toml", "[notify.sms]\nurl = \"ftp://gateway\"\n");
    let r = lc.run("--json --config bad.toml notify run-pending");
    assert!(
        !r.success() && r.stderr.contains("notify.sms.url"),
        "{}",
        r.describe()
    );
}

// ---------------------------------------------------------------------------
// ID schemes
// ---------------------------------------------------------------------------

/// A deployment with `LIFECERT_ID_SCHEME=generic`: the roll gives birth date and gender,
/// pensioners are found by their agency identifiers, and the database refuses to be
/// opened as cn_resident.
fn generic_id_scheme_story(mut lc: Lc) {
    lc.envs
        .push(("LIFECERT_ID_SCHEME".to_string(), "generic".to_string()));
    let t = date(today());
    let text = "id_number,name,insurance_type,region_code,benefit_start,monthly_amount,birth_date,gender\n\
                P1234567,Anna Schmidt,enterprise,110105,2010-01,3000,1950-03-04,F\n\
                Q7654321,No Birthday,enterprise,110105,2010-01,3000,,M\n\
                Q7654322,Bad Gender,enterprise,110105,2010-01,3000,1950-01-01,X\n";
    let r = lc.import("generic.csv", text);
    assert_eq!(import_counts(&r), [3, 1, 0, 0, 2], "{r}");
    let errors: Vec<(u64, &str, &str)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["field"].as_str().unwrap(),
                e["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (3, "birth_date", "missing_birth_date"),
            (4, "gender", "invalid_gender")
        ],
        "{r}"
    );
    // The summary for people names the line, the field and what to write.
    let human = lc.run("import recipients generic.csv");
    assert!(human.success(), "{}", human.describe());
    assert!(
        human
            .stdout
            .contains("line 3: birth_date [missing_birth_date] the birth date is empty: write it as YYYY-MM-DD"),
        "{}",
        human.describe()
    );
    assert!(
        human.stdout.contains("line 4: gender [invalid_gender]")
            && human.stdout.contains("write M or F"),
        "{}",
        human.describe()
    );

    let v = lc.show("p-1234567");
    assert_eq!(v["id_number_masked"], "P1****67", "{v}");
    assert_eq!(
        (v["birth_date"].as_str(), v["gender"].as_str()),
        (Some("1950-03-04"), Some("female"))
    );
    let c = lc.ok(&format!(
        "certify --id-number P1234567 --channel counter --date {t}"
    ));
    assert_eq!(c["outcome"], "pass", "{c}");
    let d = lc.ok(&format!(
        "death report --id-number P1234567 --date {t} --source family"
    ));
    assert_eq!(d["status"], "suspended", "{d}");

    let r = lc.fails("recipient show --id-number P1", "invalid_input");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with("--id-number: not a valid ID number (generic scheme)")
            && message.contains("4 to 32"),
        "{}",
        r.describe()
    );
    lc.fails("recipient show --id-number Q7654321", "not_found");

    // The database keeps its scheme whatever the settings say later.
    let r = lc.run_env("--json stats", &[("LIFECERT_ID_SCHEME", "cn_resident")]);
    let message = r.assert_error("id_scheme_mismatch");
    assert!(
        message.contains("set up for the generic ID scheme")
            && message.contains("id_scheme = \"generic\""),
        "{}",
        r.describe()
    );
    let r = lc.run_env("--json stats", &[("LIFECERT_ID_SCHEME", "passport")]);
    let message = r.assert_error("error");
    assert!(
        message.contains("LIFECERT_ID_SCHEME")
            && message.contains("cn_resident")
            && message.contains("generic"),
        "{}",
        r.describe()
    );
    assert_eq!(lc.stats()["recipients"], 1);
}

#[test]
fn a_generic_id_scheme_database_on_sqlite() {
    generic_id_scheme_story(Lc::sqlite());
}

#[test]
fn a_generic_id_scheme_database_on_postgres() {
    let Some(admin) = postgres_admin_url() else {
        return;
    };
    let db = PgDatabase::create(&admin);
    generic_id_scheme_story(db.lc());
}

#[test]
fn the_id_scheme_comes_from_the_settings_file() {
    let lc = Lc::sqlite();
    lc.write("lifecert.toml", "id_scheme = \"generic\"\n");
    lc.ok("--config lifecert.toml stats");
    let r = lc.run("--json stats");
    let message = r.assert_error("id_scheme_mismatch");
    assert!(
        message.contains("the settings say cn_resident"),
        "{}",
        r.describe()
    );
    lc.write("bad.toml", "id_scheme = \"passport\"\n");
    let r = lc.run("--json --config bad.toml stats");
    let message = r.assert_error("error");
    assert!(message.contains("id_scheme"), "{}", r.describe());
}
