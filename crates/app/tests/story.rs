//! The storage conformance suite: the same stories (import, cycle, certification,
//! death, payment ledger, audit, encryption at rest) run against SQLite and, when
//! `LIFECERT_TEST_POSTGRES_URL` is set, PostgreSQL. In CI a missing PostgreSQL fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate: failing loudly is the point

use base64::Engine;
use chrono::NaiveDate;
use lifecert_app::certify::CertifyRequest;
use lifecert_app::{Actor, App, AppError, FixedClock};
use lifecert_crypto::{Cipher, KeyRing};
use lifecert_domain::national_id::check_character;
use lifecert_domain::{Channel, NationalId, Outcome, Policy, YearMonth};
use lifecert_store::{Dialect, Store, Table};
use sqlx::{Connection, Executor};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[path = "story/id_schemes.rs"]
mod id_schemes;
#[path = "story/jobs.rs"]
mod jobs;
#[path = "story/notifications.rs"]
mod notifications;

const TODAY: &str = "2026-11-30";

fn d(s: &str) -> NaiveDate {
    lifecert_domain::parse_date(s).unwrap()
}

fn ym(s: &str) -> YearMonth {
    YearMonth::parse(s).unwrap()
}

/// A valid ID number for a region, birth date (YYYYMMDD) and sequence.
fn id(region: &str, birth: &str, seq: u32) -> String {
    let first: String = format!("{region}{birth}{seq:03}");
    let mut digits = [0u8; 17];
    digits.copy_from_slice(first.as_bytes());
    format!("{first}{}", check_character(&digits) as char)
}

fn nid(s: &str) -> NationalId {
    NationalId::parse(s).unwrap()
}

fn key_ring(cipher: Cipher) -> KeyRing {
    KeyRing::from_key_list(
        &base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        cipher,
    )
    .unwrap()
}

struct Backend {
    name: &'static str,
    url: String,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);
static SWEPT: AtomicBool = AtomicBool::new(false);

/// A story that fails leaves its PostgreSQL database behind (it is dropped only at the
/// end of a story that passed). The databases of test processes that are no longer
/// running are dropped, once per process.
async fn drop_databases_of_ended_runs(conn: &mut sqlx::AnyConnection) {
    use sqlx::Row;
    if !Path::new("/proc/self").exists() {
        return;
    }
    let names: Vec<String> =
        sqlx::query("SELECT datname::text FROM pg_database WHERE datname LIKE 'lifecert_story_%'")
            .fetch_all(&mut *conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    for name in names {
        let pid = name.trim_start_matches("lifecert_story_").split('_').next();
        let ended = pid
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
        if ended {
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
        }
    }
}

/// A story's SQLite database, in a folder of its own.
fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    Backend {
        name: "sqlite",
        url: format!("sqlite://{}/lifecert.db", dir.path().display()),
        dir,
        pg: None,
    }
}

async fn backends() -> Vec<Backend> {
    let mut out = vec![sqlite_backend()];
    match std::env::var("LIFECERT_TEST_POSTGRES_URL") {
        Ok(admin) => {
            sqlx::any::install_default_drivers();
            let name = format!(
                "lifecert_story_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            );
            let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
            if !SWEPT.swap(true, Ordering::SeqCst) {
                drop_databases_of_ended_runs(&mut conn).await;
            }
            conn.execute(format!("DROP DATABASE IF EXISTS {name}").as_str())
                .await
                .unwrap();
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .unwrap();
            conn.close().await.unwrap();
            let base = admin.rsplit_once('/').unwrap().0;
            out.push(Backend {
                name: "postgres",
                url: format!("{base}/{name}"),
                dir: tempfile::tempdir().unwrap(),
                pg: Some((admin, name)),
            });
        }
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("CI must run the PostgreSQL conformance suite: set LIFECERT_TEST_POSTGRES_URL")
        }
        Err(_) => {
            eprintln!("note: LIFECERT_TEST_POSTGRES_URL is not set; PostgreSQL stories skipped")
        }
    }
    out
}

impl Backend {
    async fn app(&self, clock: Arc<FixedClock>) -> App {
        self.app_with(clock, key_ring(Cipher::Aes256Gcm))
            .await
            .unwrap()
    }

    async fn app_with(&self, clock: Arc<FixedClock>, keys: KeyRing) -> Result<App, AppError> {
        let store = Store::open(&self.url).await?;
        App::new(store, keys, Policy::default(), clock).await
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    async fn drop_pg(&self, app: App) {
        app.store().clone().close().await;
        if let Some((admin, name)) = &self.pg {
            let mut conn = sqlx::AnyConnection::connect(admin).await.unwrap();
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
        }
    }
}

fn clock() -> Arc<FixedClock> {
    Arc::new(FixedClock::at(d(TODAY)))
}

const HEADER: &str = "id_number,name,insurance_type,region_code,benefit_start,monthly_amount,phone,residence,country,last_certified_on,paid_through";

/// One CSV line with sensible defaults for the optional columns.
fn row(id: &str, name: &str, last: &str, paid: &str) -> String {
    format!("{id},{name},enterprise,110105,2010-02,3000.00,13800138000,domestic,,{last},{paid}")
}

fn staff() -> Actor {
    Actor::Staff("tester".into())
}

async fn import(app: &App, path: &Path) -> lifecert_app::import::ImportReport {
    app.import_recipients(&staff(), path, &mut |_| {})
        .await
        .unwrap()
}

fn certify_req(id: &str, date: &str, outcome: Outcome, reason: Option<&str>) -> CertifyRequest {
    CertifyRequest {
        recipient: lifecert_app::certify::RecipientRef::IdNumber(nid(id)),
        channel: Channel::Counter,
        date: d(date),
        outcome,
        reason: reason.map(str::to_string),
        region_code: None,
        evidence: None,
    }
}

#[tokio::test]
async fn import_validates_every_row_and_is_idempotent() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let a = id("110105", "19500101", 123);
        let bad_check = {
            let mut s = a.clone();
            s.pop();
            s.push(if a.ends_with('0') { '1' } else { '0' });
            s
        };
        let lines = [
            HEADER.to_string(),
            row(&a, "王建国", "2026-03-15", "2026-10"),
            row(&bad_check, "李四", "", ""),
            row(&id("110105", "19500102", 125), "", "", ""),
            format!(
                "{},张三,military,110105,2010-02,3000,,domestic,,,",
                id("110105", "19500103", 127)
            ),
            format!(
                "{},张三,enterprise,990101,2010-02,3000,,domestic,,,",
                id("110105", "19500104", 129)
            ),
            format!(
                "{},张三,enterprise,110105,2010/02,3000,,domestic,,,",
                id("110105", "19500105", 131)
            ),
            format!(
                "{},张三,enterprise,110105,2010-02,\"3,000\",,domestic,,,",
                id("110105", "19500106", 133)
            ),
            format!(
                "{},张三,enterprise,110105,2010-02,3000,,abroad,,,",
                id("110105", "19500107", 135)
            ),
            row(&a, "王建国", "", ""),
            format!(
                "{},Anna Li,resident,440305,2012-05,260.5,,abroad,us,2026-01-10,",
                id("440305", "19520315", 246)
            ),
        ];
        let path = b.file("roll.csv", &(lines.join("\n") + "\n"));
        let r = import(&app, &path).await;
        assert_eq!(
            (r.rows, r.inserted, r.updated, r.unchanged, r.rejected),
            (10, 2, 0, 0, 8),
            "{}",
            b.name
        );
        let got: Vec<(u64, &str, &str)> = r
            .errors
            .iter()
            .map(|e| (e.line, e.field.as_str(), e.code))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "id_number", "invalid_id_number"),
                (4, "name", "missing_name"),
                (5, "insurance_type", "invalid_insurance_type"),
                (6, "region_code", "invalid_region_code"),
                (7, "benefit_start", "invalid_date"),
                (8, "monthly_amount", "invalid_amount"),
                (9, "country", "missing_country"),
                (10, "id_number", "duplicate_in_file"),
            ],
            "{}",
            b.name
        );
        assert!(r.errors.iter().all(|e| !e.message.is_empty()));

        let again = import(&app, &path).await;
        assert_eq!(
            (
                again.inserted,
                again.updated,
                again.unchanged,
                again.rejected
            ),
            (0, 0, 2, 8),
            "{}",
            b.name
        );

        let changed = path.with_file_name("changed.csv");
        std::fs::write(
            &changed,
            std::fs::read_to_string(&path)
                .unwrap()
                .replace("3000.00", "3100.00"),
        )
        .unwrap();
        let r = import(&app, &changed).await;
        assert_eq!(
            (r.inserted, r.updated, r.unchanged),
            (0, 1, 1),
            "{}",
            b.name
        );
        let view = app.recipient_view(&nid(&a)).await.unwrap();
        assert_eq!(view.monthly_amount_fen, 310_000);
        assert_eq!(
            view.id_number_masked,
            format!("{}********{}", &a[..6], &a[14..])
        );
        assert_eq!(view.gender, "male");
        assert_eq!(view.birth_date, "1950-01-01");
        assert_eq!(view.next_due_on, "2027-03-15");
        let abroad = app
            .recipient_view(&nid(&id("440305", "19520315", 246)))
            .await
            .unwrap();
        assert_eq!(abroad.country.as_deref(), Some("US"));
        assert_eq!(abroad.monthly_amount_fen, 26_050);

        // Chinese headers, Chinese values and a byte-order mark.
        let c = id("310104", "19480820", 222);
        let zh = format!(
            "\u{feff}身份证号,姓名,险种,参保地区划代码,待遇起始年月,月养老金,联系电话,居住地,居住国,上次认证日期,已发放至\n{c},陈秀英,机关事业,310104,2003-09,6200.5,,境外,JP,2026-05-05,2026-10\n"
        );
        let r = import(&app, &b.file("zh.csv", &zh)).await;
        assert_eq!((r.inserted, r.rejected), (1, 0), "{:?}", r.errors);
        let v = app.recipient_view(&nid(&c)).await.unwrap();
        assert_eq!(
            (
                v.insurance_type.as_str(),
                v.residence.as_str(),
                v.gender.as_str()
            ),
            ("institution", "abroad", "female")
        );

        // A missing required column rejects the file before anything is written.
        let before = app.store().count_rows(Table::Recipients).await.unwrap();
        let err = app
            .import_recipients(
                &staff(),
                &b.file("nocol.csv", "id_number,name\n"),
                &mut |_| {},
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("insurance_type") && err.contains("missing"),
            "{err}"
        );
        assert_eq!(
            app.store().count_rows(Table::Recipients).await.unwrap(),
            before
        );
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn import_reads_xlsx_with_typed_cells() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let path = b.dir.path().join("roll.xlsx");
        let x = id("510107", "19551111", 333);
        {
            let mut book = rust_xlsxwriter::Workbook::new();
            let sheet = book.add_worksheet();
            for (col, h) in HEADER.split(',').enumerate() {
                sheet.write_string(0, col as u16, h).unwrap();
            }
            sheet.write_string(1, 0, &x).unwrap();
            sheet.write_string(1, 1, "刘桂兰").unwrap();
            sheet.write_string(1, 2, "resident").unwrap();
            sheet.write_number(1, 3, 510107.0).unwrap();
            sheet.write_string(1, 4, "2010-12").unwrap();
            sheet.write_number(1, 5, 312.4).unwrap();
            let date = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 2, 3).unwrap();
            let fmt = rust_xlsxwriter::Format::new().set_num_format("yyyy-mm-dd");
            sheet.write_datetime_with_format(1, 9, &date, &fmt).unwrap();
            sheet.write_string(2, 0, "not-an-id").unwrap();
            book.save(&path).unwrap();
        }
        let r = import(&app, &path).await;
        assert_eq!(
            (r.rows, r.inserted, r.rejected),
            (2, 1, 1),
            "{}: {:?}",
            b.name,
            r.errors
        );
        assert_eq!(
            (r.errors[0].line, r.errors[0].code),
            (3, "invalid_id_number")
        );
        let v = app.recipient_view(&nid(&x)).await.unwrap();
        assert_eq!(
            (v.monthly_amount_fen, v.last_certified_on.as_str()),
            (31_240, "2026-02-03")
        );
        assert_eq!(import(&app, &path).await.unchanged, 1);
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn cycle_reminds_once_per_stage_and_suspends_after_grace() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let r60 = id("110105", "19500101", 11);
        let r7 = id("110105", "19500101", 13);
        let overdue = id("110105", "19500101", 15);
        let late = id("110105", "19500101", 17);
        let fine = id("110105", "19500101", 19);
        let new_retiree = id("110105", "19660101", 21);
        let never = id("110105", "19500101", 23);
        let lines = [
            HEADER.to_string(),
            row(&r60, "甲", "2026-01-14", ""),
            row(&r7, "乙", "2025-12-05", ""),
            row(&overdue, "丙", "2025-11-20", ""),
            row(&late, "丁", "2025-10-01", ""),
            row(&fine, "戊", "2026-09-01", ""),
            format!("{new_retiree},己,enterprise,110105,2026-06,3000,,,,,"),
            format!("{never},庚,enterprise,110105,2010-01,3000,,,,,"),
        ];
        import(&app, &b.file("roll.csv", &(lines.join("\n") + "\n"))).await;
        let report = app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();
        assert_eq!(
            (
                report.evaluated,
                report.reminders,
                report.overdue,
                report.suspended
            ),
            (7, 2, 1, 2),
            "{}",
            b.name
        );
        let audit_before = app.store().count_rows(Table::AuditLog).await.unwrap();
        let again = app.run_cycle(&Actor::System, d(TODAY)).await.unwrap();
        assert_eq!(
            (again.reminders, again.overdue, again.suspended),
            (0, 1, 0),
            "{}",
            b.name
        );
        assert_eq!(
            app.store().count_rows(Table::AuditLog).await.unwrap(),
            audit_before,
            "a repeated run writes nothing"
        );
        // Two reminders, an overdue notice and two suspension notices.
        assert_eq!(
            app.store()
                .count_rows(Table::NotificationOutbox)
                .await
                .unwrap(),
            5
        );

        for (who, status, reason) in [
            (&late, "suspended", Some("overdue")),
            (&never, "suspended", Some("overdue")),
            (&overdue, "active", None),
        ] {
            let v = app.recipient_view(&nid(who)).await.unwrap();
            assert_eq!(
                (v.status.as_str(), v.suspension_reason.as_deref()),
                (status, reason),
                "{}",
                b.name
            );
        }
        let v = app.recipient_view(&nid(&new_retiree)).await.unwrap();
        assert_eq!(
            (v.last_certified_on.as_str(), v.next_due_on.as_str()),
            ("2026-06-01", "2027-06-01")
        );

        // Still the 60-day stage a day later: nothing new. The 30-day stage is new.
        assert_eq!(
            app.run_cycle(&Actor::System, d("2026-12-01"))
                .await
                .unwrap()
                .reminders,
            0
        );
        assert_eq!(
            app.run_cycle(&Actor::System, d("2026-12-16"))
                .await
                .unwrap()
                .reminders,
            1
        );

        // A passing certification renews validity and lifts the overdue suspension.
        let c = app
            .certify(&staff(), &certify_req(&late, TODAY, Outcome::Pass, None))
            .await
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.next_due_on.as_str()),
            ("active", "2027-11-30")
        );
        let counts = app.counts(d(TODAY)).await.unwrap();
        assert_eq!(
            (
                counts.recipients,
                counts.active,
                counts.suspended,
                counts.overdue
            ),
            (7, 6, 1, 1)
        );
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn certification_rules() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let p = id("440305", "19480229", 35);
        import(
            &app,
            &b.file(
                "r.csv",
                &format!("{HEADER}\n{}\n", row(&p, "赵六", "2026-06-01", "2026-10")),
            ),
        )
        .await;

        let err = app
            .certify(&staff(), &certify_req(&p, TODAY, Outcome::Fail, None))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::Invalid { field, .. } if field == "reason"),
            "{err}"
        );
        let f = app
            .certify(
                &staff(),
                &certify_req(&p, TODAY, Outcome::Fail, Some("face_mismatch")),
            )
            .await
            .unwrap();
        assert_eq!(
            (f.outcome.as_str(), f.next_due_on.as_str()),
            ("fail", "2027-06-01"),
            "a fail does not renew"
        );
        let doubt = app
            .certify(&staff(), &certify_req(&p, TODAY, Outcome::Doubtful, None))
            .await
            .unwrap();
        assert!(doubt.review_case_id.is_some());
        assert_eq!(app.store().count_rows(Table::ReviewCases).await.unwrap(), 1);
        let future = app
            .certify(
                &staff(),
                &certify_req(&p, "2026-12-01", Outcome::Pass, None),
            )
            .await
            .unwrap_err();
        assert!(matches!(&future, AppError::Invalid { field, .. } if field == "date"));
        let older = app
            .certify(
                &staff(),
                &certify_req(&p, "2026-01-01", Outcome::Pass, None),
            )
            .await
            .unwrap();
        assert_eq!(
            older.next_due_on, "2027-06-01",
            "an older certification does not move the due date"
        );
        let pass = app
            .certify(
                &staff(),
                &certify_req(&p, "2026-08-31", Outcome::Pass, None),
            )
            .await
            .unwrap();
        assert_eq!(pass.next_due_on, "2027-08-31");
        assert_eq!(
            app.recipient_view(&nid(&p))
                .await
                .unwrap()
                .certifications
                .len(),
            4
        );

        let unknown = app
            .certify(
                &staff(),
                &certify_req(&id("440305", "19480229", 37), TODAY, Outcome::Pass, None),
            )
            .await
            .unwrap_err();
        assert!(matches!(unknown, AppError::NotFound(_)));

        app.report_death(&staff(), &nid(&p), d("2026-11-01"), "public_security")
            .await
            .unwrap();
        app.confirm_death(&staff(), &nid(&p)).await.unwrap();
        let err = app
            .certify(&staff(), &certify_req(&p, TODAY, Outcome::Pass, None))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "recipient_terminated");
        b.drop_pg(app).await;
    }
}

fn lines_of(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|x| x.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// (kind, months, amount_fen) of a pensioner's line in an instruction file.
fn line_for(path: &Path, id: &str) -> Option<(String, String, i64)> {
    lines_of(path)
        .into_iter()
        .find(|l| l[2] == id)
        .map(|l| (l[4].clone(), l[5].clone(), l[6].parse().unwrap()))
}

#[tokio::test]
async fn death_stops_payment_and_recovers_overpayment_and_void_back_pays() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let dead = id("320102", "19400505", 41);
        let wrong = id("320102", "19400505", 43);
        let no_paid = id("320102", "19400505", 45);
        let csv = format!(
            "{HEADER}\n{}\n{}\n{}\n",
            row(&dead, "钱七", "2026-06-01", "2026-10"),
            row(&wrong, "孙八", "2026-06-01", "2026-10"),
            row(&no_paid, "周九", "2026-06-01", "")
        );
        import(&app, &b.file("r.csv", &csv)).await;

        let r = app
            .report_death(&staff(), &nid(&dead), d("2026-08-15"), "public_security")
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_str(), r.overpaid_months.clone(), r.overpaid_fen),
            (
                "suspended",
                vec!["2026-09".to_string(), "2026-10".to_string()],
                600_000
            )
        );
        app.report_death(&staff(), &nid(&wrong), d("2026-09-20"), "civil_affairs")
            .await
            .unwrap();

        let out = b.dir.path().join("p11.csv");
        let e = app
            .export_payments(&staff(), ym("2026-11"), &out)
            .await
            .unwrap();
        assert_eq!(
            (
                e.pay,
                e.withhold,
                e.back_pay,
                e.stop,
                e.recover,
                e.total_fen
            ),
            (1, 2, 0, 0, 0, 300_000),
            "{}",
            b.name
        );
        assert_eq!(
            line_for(&out, &no_paid).unwrap(),
            ("pay".into(), "2026-11".into(), 300_000)
        );

        let c = app.confirm_death(&staff(), &nid(&dead)).await.unwrap();
        assert_eq!((c.status.as_str(), c.overpaid_fen), ("terminated", 600_000));
        assert!(c.recovery_case_id.is_some());
        let v = app.void_death(&staff(), &nid(&wrong)).await.unwrap();
        assert_eq!((v.status.as_str(), v.overpaid_fen), ("active", 0));
        assert!(
            app.confirm_death(&staff(), &nid(&wrong)).await.is_err(),
            "a voided death cannot be confirmed"
        );

        // Re-exporting an open month reflects the new state, and is stable.
        let e = app
            .export_payments(&staff(), ym("2026-11"), &out)
            .await
            .unwrap();
        assert_eq!(
            (e.pay, e.withhold, e.recover, e.total_fen),
            (2, 0, 1, 600_000)
        );
        assert_eq!(
            line_for(&out, &dead).unwrap(),
            ("recover".into(), "2026-09;2026-10".into(), 600_000)
        );
        let first = std::fs::read(&out).unwrap();
        app.export_payments(&staff(), ym("2026-11"), &out)
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(&out).unwrap(),
            first,
            "same state, same instructions"
        );

        let later = b.dir.path().join("p12.csv");
        let err = app
            .export_payments(&staff(), ym("2026-12"), &later)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "earlier_month_open");
        let closed = app.close_payments(&staff(), ym("2026-11")).await.unwrap();
        assert_eq!((closed.lines, closed.total_fen), (3, 600_000));
        let err = app
            .export_payments(&staff(), ym("2026-11"), &out)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "month_closed");
        assert_eq!(
            std::fs::read(&out).unwrap(),
            first,
            "a refused export leaves the file alone"
        );
        assert_eq!(
            app.close_payments(&staff(), ym("2026-11"))
                .await
                .unwrap_err()
                .code(),
            "month_closed"
        );

        clock.set(d("2026-12-02"));
        let e = app
            .export_payments(&staff(), ym("2026-12"), &later)
            .await
            .unwrap();
        assert_eq!(
            (e.pay, e.stop, e.recover),
            (2, 1, 0),
            "the recovery was sent once; afterwards stop"
        );
        assert_eq!(
            app.store().count_rows(Table::RecoveryCases).await.unwrap(),
            1
        );
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn withheld_months_are_back_paid_once_certified() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let q = id("420106", "19450303", 51);
        import(
            &app,
            &b.file(
                "r.csv",
                &format!("{HEADER}\n{}\n", row(&q, "吴十", "2025-09-01", "2026-10")),
            ),
        )
        .await;
        assert_eq!(
            app.run_cycle(&Actor::System, d(TODAY))
                .await
                .unwrap()
                .suspended,
            1
        );
        let out = b.dir.path().join("p.csv");
        let e = app
            .export_payments(&staff(), ym("2026-11"), &out)
            .await
            .unwrap();
        assert_eq!((e.withhold, e.total_fen), (1, 0));
        app.close_payments(&staff(), ym("2026-11")).await.unwrap();

        clock.set(d("2026-12-05"));
        let c = app
            .certify(
                &staff(),
                &certify_req(&q, "2026-12-05", Outcome::Pass, None),
            )
            .await
            .unwrap();
        assert_eq!(c.status, "active");
        let e = app
            .export_payments(&staff(), ym("2026-12"), &out)
            .await
            .unwrap();
        assert_eq!((e.back_pay, e.total_fen), (1, 600_000), "{}", b.name);
        assert_eq!(
            line_for(&out, &q).unwrap(),
            ("back_pay".into(), "2026-11;2026-12".into(), 600_000)
        );
        app.close_payments(&staff(), ym("2026-12")).await.unwrap();
        assert_eq!(
            app.recipient_view(&nid(&q))
                .await
                .unwrap()
                .paid_through
                .as_deref(),
            Some("2026-12")
        );

        clock.set(d("2027-01-05"));
        let e = app
            .export_payments(&staff(), ym("2027-01"), &out)
            .await
            .unwrap();
        assert_eq!((e.pay, e.back_pay, e.total_fen), (1, 0, 300_000));
        let err = app
            .export_payments(&staff(), ym("2026-10"), &out)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "month_before_closed");
        b.drop_pg(app).await;
    }
}

async fn tamper(store: &Store, sql: &str) {
    store.pool().execute(sql).await.unwrap();
}

#[tokio::test]
async fn audit_verify_names_the_first_changed_deleted_or_reordered_entry() {
    type Damage = (&'static str, &'static [&'static str], Option<i64>);
    let cases: [Damage; 4] = [
        (
            "changed",
            &["UPDATE audit_log SET details = '{}' WHERE seq = 3"],
            Some(3),
        ),
        ("deleted", &["DELETE FROM audit_log WHERE seq = 2"], Some(2)),
        (
            "reordered",
            &[
                "UPDATE audit_log SET seq = 1000 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 5",
                "UPDATE audit_log SET seq = 5 WHERE seq = 1000",
            ],
            Some(4),
        ),
        (
            "tail deleted",
            &["DELETE FROM audit_log WHERE seq = 6"],
            Some(6),
        ),
    ];
    for (what, statements, expected) in cases {
        for b in backends().await {
            let app = b.app(clock()).await;
            let rows: Vec<String> = (0..5)
                .map(|i| {
                    row(
                        &id("110105", "19500101", 61 + 2 * i),
                        "审计",
                        "2026-06-01",
                        "",
                    )
                })
                .collect();
            import(
                &app,
                &b.file("r.csv", &format!("{HEADER}\n{}\n", rows.join("\n"))),
            )
            .await;
            // One entry for the imported batch, two for each death report.
            for seq in [61, 63, 65] {
                app.report_death(
                    &staff(),
                    &nid(&id("110105", "19500101", seq)),
                    d("2026-11-01"),
                    "health",
                )
                .await
                .unwrap();
            }
            let ok = app.store().verify_audit().await.unwrap();
            assert_eq!((ok.first_bad_seq, ok.entries), (None, 7), "{}", b.name);
            for s in statements {
                tamper(app.store(), s).await;
            }
            let check = app.store().verify_audit().await.unwrap();
            assert_eq!(
                check.first_bad_seq, expected,
                "{what} on {}: {:?}",
                b.name, check.problem
            );
            b.drop_pg(app).await;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_name_or_id_number_is_stored_in_plaintext() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let p = id("330106", "19470707", 71);
        let name = "欧阳明华";
        import(
            &app,
            &b.file(
                "r.csv",
                &format!("{HEADER}\n{}\n", row(&p, name, "2026-06-01", "")),
            ),
        )
        .await;
        app.certify(&staff(), &certify_req(&p, TODAY, Outcome::Pass, None))
            .await
            .unwrap();
        let dump: Vec<u8> = match b.store_dialect(&app) {
            Dialect::Sqlite => {
                let mut bytes = Vec::new();
                for f in ["lifecert.db", "lifecert.db-wal"] {
                    if let Ok(mut x) = std::fs::read(b.dir.path().join(f)) {
                        bytes.append(&mut x);
                    }
                }
                bytes
            }
            Dialect::Postgres => {
                let out = std::process::Command::new("pg_dump")
                    .arg(&b.url)
                    .output()
                    .expect("pg_dump must be installed with PostgreSQL");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        };
        assert!(
            dump.len() > 1000,
            "{}: the dump is suspiciously small",
            b.name
        );
        assert!(
            !contains(&dump, p.as_bytes()),
            "{}: ID number in plaintext",
            b.name
        );
        assert!(
            !contains(&dump, &p.as_bytes()[..17]),
            "{}: ID number in plaintext",
            b.name
        );
        assert!(
            !contains(&dump, name.as_bytes()),
            "{}: name in plaintext",
            b.name
        );
        assert!(
            !contains(&dump, b"13800138000"),
            "{}: phone in plaintext",
            b.name
        );
        b.drop_pg(app).await;
    }
}

impl Backend {
    fn store_dialect(&self, app: &App) -> Dialect {
        app.store().dialect()
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_and_sm4_works() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let p = id("500103", "19490909", 81);
        import(
            &app,
            &b.file(
                "r.csv",
                &format!("{HEADER}\n{}\n", row(&p, "郑一", "2026-06-01", "")),
            ),
        )
        .await;
        let other = KeyRing::from_key_list(
            &base64::engine::general_purpose::STANDARD.encode([9u8; 32]),
            Cipher::Aes256Gcm,
        )
        .unwrap();
        let err = b.app_with(clock(), other).await.err().unwrap();
        assert_eq!(err.code(), "wrong_master_key", "{err}");
        assert!(err.to_string().contains("wrong master key"));

        // The same key with SM4-GCM selected: old AES data still reads, new data is SM4.
        let sm4 = b.app_with(clock(), key_ring(Cipher::Sm4Gcm)).await.unwrap();
        let q = id("500103", "19490909", 83);
        import(
            &sm4,
            &b.file(
                "r2.csv",
                &format!("{HEADER}\n{}\n", row(&q, "王二", "2026-06-01", "")),
            ),
        )
        .await;
        assert_eq!(
            sm4.recipient_view(&nid(&p)).await.unwrap().name_masked,
            "郑*"
        );
        assert_eq!(
            sm4.recipient_view(&nid(&q)).await.unwrap().name_masked,
            "王*"
        );
        sm4.store().clone().close().await;
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn rotating_the_master_key_keeps_every_pensioner_findable() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let p = id("370102", "19460606", 91);
        let roll = b.file(
            "r.csv",
            &format!("{HEADER}\n{}\n", row(&p, "冯三", "2026-06-01", "2026-10")),
        );
        import(&app, &roll).await;
        app.store().clone().close().await;

        let b64 = |n: u8| base64::engine::general_purpose::STANDARD.encode([n; 32]);
        let rotated =
            KeyRing::from_key_list(&format!("{},{}", b64(9), b64(7)), Cipher::Aes256Gcm).unwrap();
        let app = b.app_with(clock(), rotated).await.unwrap();
        assert_eq!(
            app.recipient_view(&nid(&p)).await.unwrap().name_masked,
            "冯*",
            "{}",
            b.name
        );
        let again = import(&app, &roll).await;
        assert_eq!(
            (again.inserted, again.unchanged),
            (0, 1),
            "{}: no duplicate after rotation",
            b.name
        );
        let q = id("370102", "19460606", 93);
        import(
            &app,
            &b.file(
                "r2.csv",
                &format!("{HEADER}\n{}\n", row(&q, "冯四", "2026-06-01", "")),
            ),
        )
        .await;
        assert_eq!(
            app.recipient_view(&nid(&q)).await.unwrap().name_masked,
            "冯*"
        );
        app.store().clone().close().await;

        // Dropping the key the database was set up with is refused, not silently broken.
        let only_new = KeyRing::from_key_list(&b64(9), Cipher::Aes256Gcm).unwrap();
        let err = b.app_with(clock(), only_new).await.err().unwrap();
        assert_eq!(err.code(), "wrong_master_key", "{err}");
        let app = b.app(clock()).await;
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn import_errors_name_the_real_line_with_crlf_blank_lines_and_quoted_newlines() {
    let b = sqlite_backend();
    let app = b.app(clock()).await;
    let good = |seq| row(&id("110105", "19500101", seq), "好", "2026-06-01", "");
    let body = [
        HEADER.to_string(), // 1
        good(101),          // 2
        String::new(),      // 3
        format!(
            "{},\"多行\r\n地址\",enterprise,110105,2010-02,3000,,,,,",
            id("110105", "19500101", 103)
        ), // 4-5
        row("bad-id", "坏", "", ""), // 6
        String::new(),      // 7
        String::new(),      // 8
        row(&id("110105", "19500101", 105), "", "", ""), // 9
    ];
    for (name, sep) in [("crlf.csv", "\r\n"), ("lf.csv", "\n")] {
        let text = body.join(sep).replace("\r\n地址", &format!("{sep}地址")) + sep;
        let r = import(&app, &b.file(name, &text)).await;
        let lines: Vec<(u64, &str)> = r.errors.iter().map(|e| (e.line, e.code)).collect();
        assert_eq!(
            lines,
            vec![(6, "invalid_id_number"), (9, "missing_name")],
            "{name}"
        );
        assert_eq!(r.rows, 4, "{name}");
    }
    b.drop_pg(app).await;
}

#[tokio::test]
async fn recovery_asks_back_what_the_ledger_paid_after_a_raise() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let p = id("230103", "19410101", 95);
        let roll = format!("{HEADER}\n{}\n", row(&p, "褚五", "2026-06-01", "2026-10"));
        import(&app, &b.file("r.csv", &roll)).await;
        let out = b.dir.path().join("p.csv");
        app.export_payments(&staff(), ym("2026-11"), &out)
            .await
            .unwrap();
        app.close_payments(&staff(), ym("2026-11")).await.unwrap();
        let raised = b.file("raise.csv", &roll.replace("3000.00", "3500.00"));
        assert_eq!(import(&app, &raised).await.updated, 1);

        clock.set(d("2026-12-03"));
        app.report_death(&staff(), &nid(&p), d("2026-09-20"), "health")
            .await
            .unwrap();
        let c = app.confirm_death(&staff(), &nid(&p)).await.unwrap();
        assert_eq!(
            c.overpaid_months,
            vec!["2026-10".to_string(), "2026-11".to_string()]
        );
        // October was paid before lifecert (the amount on record), November by the ledger.
        assert_eq!(c.overpaid_fen, 350_000 + 300_000, "{}", b.name);
        b.drop_pg(app).await;
    }
}

async fn ingest(
    app: &App,
    source: &str,
    path: &Path,
) -> (
    lifecert_app::feeds::FeedSummary,
    Vec<lifecert_app::feeds::ReportLine>,
) {
    let source = app.source(source).unwrap();
    let mut lines = Vec::new();
    let format = lifecert_app::feeds::FeedFormat::guess(path);
    let summary = app
        .ingest_feed(&source, path, format, Some(&mut |l| lines.push(l)))
        .await
        .unwrap();
    (summary, lines)
}

/// Equal candidates go to the one read first from the roll (the lower id), and two
/// equally good candidates are never `probable`.
#[tokio::test]
async fn equal_candidates_go_to_the_first_on_the_roll() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let line =
            |seq: u32, name: &str| row(&id("110105", "19500101", seq), name, "2026-06-01", "");
        let roll = format!(
            "{HEADER}\n{}\n{}\n{}\n{}\n",
            line(71, "李明"),
            line(73, "张强"),
            line(75, "李明"),
            line(77, "赵刚")
        );
        import(&app, &b.file("r.csv", &roll)).await;
        let first = app
            .recipient_view(&nid(&id("110105", "19500101", 71)))
            .await
            .unwrap();
        let feed = b.file(
            "visits.csv",
            "record_id,id_number,name,gender,birth_date,event_date,region_code\n\
             v1,,李明,M,1950-01-01,2026-11-01,110105\n",
        );
        let (_, lines) = ingest(&app, "hospital_visit", &feed).await;
        assert_eq!(
            (lines[0].class, lines[0].recipient_id),
            ("possible", Some(first.recipient_id)),
            "{}",
            b.name
        );
        // A dry run with a report says the same.
        let mut lines = Vec::new();
        app.preview_feed(
            &app.source("hospital_visit").unwrap(),
            &feed,
            lifecert_app::feeds::FeedFormat::Csv,
            Some(&mut |l| lines.push(l)),
        )
        .await
        .unwrap();
        assert_eq!(
            (lines[0].class, lines[0].recipient_id),
            ("possible", Some(first.recipient_id)),
            "{}",
            b.name
        );
        b.drop_pg(app).await;
    }
}

/// Imports 40 pensioners born on 1948-03-02, certified 2026-01-10; their ID numbers.
async fn import_forty(app: &App, b: &Backend) -> Vec<String> {
    let people: Vec<String> = (0..40).map(|i| id("330102", "19480302", 100 + i)).collect();
    let roll: Vec<String> = people
        .iter()
        .map(|p| row(p, "某", "2026-01-10", "2026-10"))
        .collect();
    import(
        app,
        &b.file("r.csv", &format!("{HEADER}\n{}\n", roll.join("\n"))),
    )
    .await;
    people
}

/// A feed of several read batches is prepared on every core, batches finishing in any
/// order: the report still lists the records in the feed's order, as stored.
#[tokio::test]
async fn a_feed_prepared_on_every_core_is_reported_in_its_own_order() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let people = import_forty(&app, &b).await;
        // Two read batches and a bit (16,384 rows each); every 7th record is a stranger.
        let mut feed = String::from("record_id,id_number,event_date\n");
        for n in 0..33_000u32 {
            let number = match n % 7 {
                0 => id("530102", "19500101", n % 1000),
                _ => people[n as usize % 40].clone(),
            };
            feed.push_str(&format!("o{n},{number},2026-11-{:02}\n", 1 + n % 20));
        }
        let path = b.file("ordered.csv", &feed);
        let in_order = |lines: &[lifecert_app::feeds::ReportLine]| {
            lines.len() == 33_000
                && lines
                    .iter()
                    .enumerate()
                    .all(|(n, l)| l.record_id == format!("o{n}"))
        };
        let source = app.source("card_use").unwrap();
        let format = lifecert_app::feeds::FeedFormat::Csv;
        let mut previewed = Vec::new();
        let preview = app
            .preview_feed(&source, &path, format, Some(&mut |l| previewed.push(l)))
            .await
            .unwrap();
        assert!(in_order(&previewed), "{}", b.name);
        let counted = app
            .preview_feed(&source, &path, format, None)
            .await
            .unwrap();
        assert_eq!(counted, preview, "{}", b.name);
        let (s, lines) = ingest(&app, "card_use", &path).await;
        assert!(in_order(&lines), "{}", b.name);
        assert_eq!(
            (s.records, s.exact, s.unmatched),
            (33_000, 33_000 - 4_715, 4_715),
            "{}",
            b.name
        );
        assert!(lines
            .iter()
            .enumerate()
            .all(|(n, l)| (l.class == "unmatched") == (n % 7 == 0)));
        b.drop_pg(app).await;
    }
}

/// A dry run reports every record as the ingest then does: the same class, score,
/// pensioner and reason, for records unmatched by ID number and by name too.
#[tokio::test]
async fn a_dry_run_reports_each_record_as_the_ingest_does() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let people = import_forty(&app, &b).await;
        let mut wrong_check = people[1].clone();
        let last = if wrong_check.ends_with('1') { "2" } else { "1" };
        wrong_check.replace_range(17..18, last);
        let feed = b.file(
            "both.csv",
            &format!(
                "record_id,id_number,name,gender,birth_date,event_date,region_code\n\
                 d1,{},,,,2026-11-01,\n\
                 d2,{},,,,2026-11-01,\n\
                 d3,,張三豐,M,1931-04-09,2026-11-01,650102\n\
                 d4,,,,,2026-11-01,\n\
                 d5,{wrong_check},張三豐,M,1931-04-09,2026-11-01,650102\n\
                 d6,{wrong_check},,,,2026-11-01,\n\
                 d7,12345,張三豐,M,1931-04-09,2026-11-01,650102\n\
                 d8,,李,M,1948-03-02,2026-11-01,650102\n",
                people[0],
                id("530102", "19500101", 7),
            ),
        );
        let source = app.source("hospital_visit").unwrap();
        let format = lifecert_app::feeds::FeedFormat::Csv;
        let mut previewed = Vec::new();
        app.preview_feed(&source, &feed, format, Some(&mut |l| previewed.push(l)))
            .await
            .unwrap();
        let (_, ingested) = ingest(&app, "hospital_visit", &feed).await;
        // Only what the ingest did with the exact match is not in the preview.
        assert_eq!(
            (
                &previewed[0].class,
                previewed[0].recipient_id,
                previewed[0].reason.as_ref()
            ),
            (&"exact", ingested[0].recipient_id, "matched by ID number"),
            "{}",
            b.name
        );
        assert_eq!(previewed[1..], ingested[1..], "{}", b.name);
        assert!(ingested[7].score.is_some(), "{:?}", ingested[7]);
        let reasons: Vec<(&str, &str)> = ingested
            .iter()
            .map(|l| (l.class, l.reason.as_ref()))
            .collect();
        let nobody = "no pensioner matches by name, birth date, gender and region";
        let invalid = "the ID number is not valid (length, date or check character)";
        assert_eq!(
            reasons,
            [
                (
                    "exact",
                    "sign of life recorded; signs are added up per pensioner when the feed is in"
                ),
                ("unmatched", "no pensioner with this ID number"),
                ("unmatched", format!("no ID number and {nobody}").as_str()),
                ("unmatched", "no ID number and there is no name"),
                ("unmatched", format!("{invalid} and {nobody}").as_str()),
                (
                    "unmatched",
                    format!("{invalid} and there is no name").as_str()
                ),
                ("unmatched", format!("{invalid} and {nobody}").as_str()),
                ("unmatched", format!("no ID number and {nobody}").as_str()),
            ],
            "{}",
            b.name
        );
        b.drop_pg(app).await;
    }
}

/// The single number a query (`SELECT COUNT(*) …`) returns.
async fn count(app: &App, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sql)
        .fetch_one(app.store().pool())
        .await
        .unwrap()
        .get::<i64, _>(0)
}

/// Signs of life stored by a lifecert before schema 9 (in `feed_records`, with an index by
/// pensioner) are carried into `life_signs` by the migration, and the pending list into
/// rows of 64 (schema 10), and the records into the compact table (schema 11): a pensioner
/// left pending is still certified from them; a voided record is no sign; pensioners listed
/// without signs are taken off the list.
#[tokio::test]
async fn signs_stored_before_schema_9_are_carried_over() {
    for b in backends().await {
        let p = id("110105", "19450101", 31);
        let q = id("110105", "19450101", 33);
        {
            let store = Store::open_at_schema(&b.url, 8).await.unwrap();
            let app = App::new(
                store,
                key_ring(Cipher::Aes256Gcm),
                Policy::default(),
                clock(),
            )
            .await
            .unwrap();
            // And 128 more, so that two pensioners are the last of a row of 64.
            let others: Vec<String> = (100..228)
                .map(|seq| id("110105", "19460101", seq))
                .collect();
            let roll: Vec<String> = [&p, &q]
                .into_iter()
                .chain(&others)
                .map(|i| row(i, "某", "2026-01-10", "2026-10"))
                .collect();
            import(
                &app,
                &b.file("r.csv", &format!("{HEADER}\n{}\n", roll.join("\n"))),
            )
            .await;
            let rp = app.recipient_view(&nid(&p)).await.unwrap().recipient_id;
            let rq = app.recipient_view(&nid(&q)).await.unwrap().recipient_id;
            let last = app
                .recipient_view(&nid(&others[124]))
                .await
                .unwrap()
                .recipient_id;
            assert_eq!(last % 64, 63, "{}", b.name);
            let dialect = app.store().dialect();
            let insert = dialect.sql(
                "INSERT INTO feed_records (source, record_id, kind, recipient_id, class, event_date, weight_milli, void_of, voided, received_at) \
                 VALUES ('card_use', ?, 'life', ?, 'exact', ?, 500, NULL, ?, '2026-11-29T00:00:00Z')",
            );
            for (record, rid, date, voided) in [
                ("a", rp, "2026-11-20", 0_i64),
                ("b", rp, "2026-11-22", 0),
                ("c", rq, "2026-11-20", 0),
                ("d", rq, "2026-11-22", 1),
            ] {
                sqlx::query(&insert)
                    .bind(record)
                    .bind(rid)
                    .bind(date)
                    .bind(voided)
                    .execute(app.store().pool())
                    .await
                    .unwrap();
            }
            // The last bit of a row of the pending list (schema 10) is its sign bit: two
            // pensioners pending without signs have it.
            sqlx::query(
                &dialect
                    .sql("INSERT INTO feed_pending_life (recipient_id) VALUES (?), (?), (?), (?)"),
            )
            .bind(rp)
            .bind(rq)
            .bind(last - 64)
            .bind(last)
            .execute(app.store().pool())
            .await
            .unwrap();
            app.store().clone().close().await;
        }
        let app = b.app(clock()).await;
        let mut s = lifecert_app::feeds::FeedSummary::default();
        app.apply_pending_life_signs(&Actor::System, &mut s)
            .await
            .unwrap();
        assert_eq!(s.lives_certified, 1, "{}", b.name);
        let v = app.recipient_view(&nid(&p)).await.unwrap();
        assert_eq!(v.last_certified_on, "2026-11-22", "{}", b.name);
        let v = app.recipient_view(&nid(&q)).await.unwrap();
        assert_eq!(v.last_certified_on, "2026-01-10", "{}", b.name);
        assert_eq!(
            count(&app, "SELECT COUNT(*) FROM life_pending").await,
            0,
            "{}",
            b.name
        );
        // The records themselves are carried into the compact table (schema 11), with
        // their ids and the time they came: sent again they are duplicates, and voiding
        // one takes its sign back. New records get new ids.
        let path = b.file(
            "late.csv",
            &format!("record_id,id_number,event_date,void_of\na,{p},2026-11-20,\nv1,,,c\ne,{q},2026-11-25,\n"),
        );
        let (s, lines) = ingest(&app, "card_use", &path).await;
        assert_eq!(
            (s.duplicates_ignored, s.voids_applied, s.exact),
            (1, 1, 2),
            "{}: {lines:?}",
            b.name
        );
        let rq = app.recipient_view(&nid(&q)).await.unwrap().recipient_id;
        let signs_of_q = format!("SELECT COUNT(*) FROM life_signs WHERE recipient_id = {rq}");
        assert_eq!(count(&app, &signs_of_q).await, 1, "only e: {}", b.name);
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) - COUNT(DISTINCT id) FROM feed_records"
            )
            .await,
            0,
            "{}",
            b.name
        );
        let received: String = sqlx::query_scalar(
            "SELECT r.received_at FROM feed_records f JOIN feed_receipts r ON r.id = f.receipt \
             JOIN feed_sources s ON s.no = r.source_no WHERE f.record_id = 'b' AND s.name = 'card_use'",
        )
        .fetch_one(app.store().pool())
        .await
        .unwrap();
        assert_eq!(received, "2026-11-29T00:00:00Z", "{}", b.name);
        b.drop_pg(app).await;
    }
}

/// A voided sign of life no longer counts, whether the correction comes in the same feed
/// (the same transaction) or in a later one.
#[tokio::test]
async fn voided_signs_of_life_no_longer_count() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let p = id("110105", "19450101", 21);
        import(
            &app,
            &b.file(
                "r.csv",
                &format!("{HEADER}\n{}\n", row(&p, "某", "2026-01-10", "2026-10")),
            ),
        )
        .await;
        let head = "record_id,id_number,event_date,void_of\n";
        let feeds = [
            // A half-weight sign and its correction in the same feed: nothing is left.
            (format!("m1,{p},2026-11-01,\nv1,,,m1\n"), 1, 0),
            // m1 again (ignored) and another half: with m1 voided, half in all.
            (format!("m1,{p},2026-11-01,\nm2,{p},2026-11-02,\n"), 0, 0),
            // m2 voided by a later feed, then another half: still half in all.
            ("v2,,,m2\n".to_string(), 1, 0),
            (format!("m3,{p},2026-11-03,\n"), 0, 0),
            // A second half: one whole, so a passive certification.
            (format!("m4,{p},2026-11-04,\n"), 0, 1),
        ];
        for (i, (rows, voids, certified)) in feeds.into_iter().enumerate() {
            let path = b.file(&format!("m{i}.csv"), &format!("{head}{rows}"));
            let (s, lines) = ingest(&app, "medical_settlement", &path).await;
            assert_eq!(
                (s.voids_applied, s.lives_certified),
                (voids, certified),
                "feed {i} on {}: {lines:?}",
                b.name
            );
        }
        let v = app.recipient_view(&nid(&p)).await.unwrap();
        assert_eq!(v.last_certified_on, "2026-11-04", "{}", b.name);
        b.drop_pg(app).await;
    }
}

/// What a long feed relies on to keep pensioners' facts from one of its transactions to
/// the next: the audit trail names every pensioner changed after a given entry, the open
/// transaction's own entries (written or not) included.
#[tokio::test]
async fn the_audit_trail_names_who_changed_after_an_entry() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let (p, q) = (id("110105", "19450101", 21), id("110105", "19450102", 22));
        let rows = [
            row(&p, "某", "2026-01-10", "2026-10"),
            row(&q, "某", "2026-01-10", "2026-10"),
        ];
        import(
            &app,
            &b.file("r.csv", &format!("{HEADER}\n{}\n", rows.join("\n"))),
        )
        .await;
        let recipient = |n: &str| {
            let app = &app;
            let n = nid(n);
            async move { app.recipient_view(&n).await.unwrap().recipient_id }
        };
        let (p_id, q_id) = (recipient(&p).await, recipient(&q).await);
        let tx = app.store().begin_write().await.unwrap();
        let since = tx.audit_seq();
        tx.commit().await.unwrap();
        app.report_death(&staff(), &nid(&p), d("2026-11-01"), "public_security")
            .await
            .unwrap();
        let mut tx = app.store().begin_write().await.unwrap();
        let changed = |id| lifecert_store::AuditEntry {
            occurred_at: "2026-11-30T00:00:00Z".into(),
            actor: "test".into(),
            action: "test.changed".into(),
            recipient_id: Some(id),
            details: "{}".into(),
        };
        let named = |mut ids: Vec<i64>| {
            ids.sort_unstable();
            ids.dedup();
            ids
        };
        // This transaction's own: one entry written already, one still pending.
        let before_own = tx.audit_seq();
        tx.audit(changed(q_id));
        tx.write_audit().await.unwrap();
        let between = tx.audit_seq();
        tx.audit(changed(p_id));
        let both = vec![p_id.min(q_id), p_id.max(q_id)];
        let after = tx.recipients_audited_after(since).await.unwrap();
        assert_eq!(named(after), both, "{}", b.name);
        let after = tx.recipients_audited_after(before_own).await.unwrap();
        assert_eq!(named(after), both, "{}", b.name);
        let after = tx.recipients_audited_after(between).await.unwrap();
        assert_eq!(after, [p_id], "{}", b.name);
        let latest = tx.audit_seq();
        assert_eq!(
            tx.recipients_audited_after(latest).await.unwrap(),
            Vec::<i64>::new()
        );
        tx.commit().await.unwrap();
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn feeds_apply_each_effect_once() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let dead = id("110105", "19400101", 11);
        let wrong = id("110105", "19400101", 13);
        let alive = id("110105", "19400101", 15);
        let jailed = id("110105", "19400101", 17);
        let rumour = id("110105", "19400101", 19);
        let roll: Vec<String> = [&dead, &wrong, &alive, &jailed, &rumour]
            .iter()
            .map(|i| row(i, "某", "2026-01-10", "2026-10"))
            .collect();
        import(
            &app,
            &b.file("r.csv", &format!("{HEADER}\n{}\n", roll.join("\n"))),
        )
        .await;

        // Authoritative deaths, a full-width ID with a lower-case x equivalent, an
        // unknown number, a bad date, and the same record twice.
        let fullwidth: String = dead
            .chars()
            .map(|c| {
                if c.is_ascii_digit() {
                    char::from_u32(c as u32 - '0' as u32 + '０' as u32).unwrap()
                } else {
                    c
                }
            })
            .collect();
        let deaths = b.file(
            "deaths.csv",
            &format!(
                "record_id,id_number,name,gender,birth_date,event_date,region_code,void_of\n\
                 d1,{fullwidth},,,,2026-09-15,,\nd2,{wrong},,,,2026-11-02,,\nd3,110105194001019999,,,,2026-11-02,,\n\
                 d4,{alive},,,,2026-12-24,,\nd1,{dead},,,,2026-09-15,,\n"
            ),
        );
        let (s, lines) = ingest(&app, "police_deregistration", &deaths).await;
        assert_eq!(
            (
                s.records,
                s.exact,
                s.unmatched,
                s.rejected,
                s.duplicates_ignored,
                s.deaths_suspended,
                s.reviews_opened
            ),
            (5, 2, 1, 1, 1, 2, 2),
            "{}: {lines:?}",
            b.name
        );
        assert_eq!(
            lines.iter().map(|l| l.class).collect::<Vec<_>>(),
            ["exact", "exact", "unmatched", "rejected", "duplicate"]
        );
        let v = app.recipient_view(&nid(&dead)).await.unwrap();
        assert_eq!(
            (v.status.as_str(), v.death_date.as_deref()),
            ("suspended", Some("2026-09-15"))
        );
        assert_eq!(lines[0].recipient_id, Some(v.recipient_id));

        // The same file again changes nothing: not even a receipt or a row id is used.
        let audit = app.store().count_rows(Table::AuditLog).await.unwrap();
        let receipts = || count(&app, "SELECT COUNT(*) FROM feed_receipts");
        let ids = || count(&app, "SELECT next FROM feed_record_ids");
        let stored = (receipts().await, ids().await);
        let (again, _) = ingest(&app, "police_deregistration", &deaths).await;
        assert_eq!((receipts().await, ids().await), stored, "{}", b.name);
        assert_eq!(
            (again.duplicates_ignored, again.deaths_suspended),
            (4, 0),
            "{}",
            b.name
        );
        assert_eq!(
            app.store().count_rows(Table::AuditLog).await.unwrap(),
            audit
        );

        // A correction voids the wrong death: payment resumes.
        let voids = b.file("void.jsonl", "{\"record_id\":\"v1\",\"void_of\":\"d2\"}\n{\"record_id\":\"v2\",\"void_of\":\"nope\"}\n");
        let (s, lines) = ingest(&app, "police_deregistration", &voids).await;
        assert_eq!((s.voids_applied, s.rejected), (1, 1), "{lines:?}");
        assert_eq!(
            app.recipient_view(&nid(&wrong)).await.unwrap().status,
            "active"
        );

        // Signs of life add up within 90 days; one after a reported death is doubtful.
        let life = b.file(
            "life.jsonl",
            &format!(
                "{{\"record_id\":\"l1\",\"id_number\":\"{alive}\",\"event_date\":\"2026-06-01\"}}\n\
                 {{\"record_id\":\"l2\",\"id_number\":\"{alive}\",\"event_date\":\"2026-09-20\"}}\n\
                 {{\"record_id\":\"l3\",\"id_number\":\"{alive}\",\"event_date\":\"2026-11-10\"}}\n\
                 {{\"record_id\":\"l4\",\"id_number\":\"{dead}\",\"event_date\":\"2026-10-01\"}}\n"
            ),
        );
        let (s, lines) = ingest(&app, "medical_settlement", &life).await;
        assert_eq!(
            (s.lives_certified, s.reviews_opened),
            (1, 1),
            "{}: {lines:?}",
            b.name
        );
        // An event before the pensioner was born is bad data: that record is rejected,
        // the rest of the feed goes on.
        let odd = b.file(
            "odd.csv",
            &format!(
                "record_id,id_number,event_date\nb1,{alive},1939-05-05\nb2,{wrong},2026-11-05\n"
            ),
        );
        let (s, lines) = ingest(&app, "hospital_visit", &odd).await;
        assert_eq!(
            (s.rejected, s.exact, s.lives_certified),
            (1, 1, 1),
            "{lines:?}"
        );
        let early_death = b.file(
            "early.csv",
            &format!("record_id,id_number,event_date\nz1,{jailed},1930-01-01\n"),
        );
        let (s, lines) = ingest(&app, "police_deregistration", &early_death).await;
        assert_eq!((s.rejected, s.deaths_suspended), (1, 0), "{lines:?}");
        let v = app.recipient_view(&nid(&alive)).await.unwrap();
        assert_eq!(
            (v.last_certified_on.as_str(), v.next_due_on.as_str()),
            ("2026-11-10", "2027-11-10"),
            "0.5 on 06-01 is outside the window"
        );
        assert_eq!(
            v.certifications.last().map(|c| c.channel.as_str()),
            Some("passive_data")
        );
        assert_eq!(
            app.recipient_view(&nid(&dead)).await.unwrap().status,
            "suspended",
            "a doubtful sign of life changes no payment"
        );

        // Imprisonment suspends; a death from a source that is not authoritative only
        // opens a review.
        let prison = b.file(
            "p.csv",
            &format!("record_id,id_number,event_date\np1,{jailed},2026-11-01\n"),
        );
        ingest(&app, "prison", &prison).await;
        let v = app.recipient_view(&nid(&jailed)).await.unwrap();
        assert_eq!(
            (v.status.as_str(), v.suspension_reason.as_deref()),
            ("suspended", Some("imprisonment"))
        );
        let family = b.file(
            "f.csv",
            &format!("record_id,id_number,event_date\nf1,{rumour},2026-11-01\n"),
        );
        let (s, _) = ingest(&app, "family_report", &family).await;
        assert_eq!((s.deaths_suspended, s.reviews_opened), (0, 1));
        assert_eq!(
            app.recipient_view(&nid(&rumour)).await.unwrap().status,
            "active"
        );

        // A feed without record ids is refused whole.
        let err = app
            .ingest_feed(
                &app.source("prison").unwrap(),
                &b.file("bad.csv", "id,event_date\n1,2026-01-01\n"),
                lifecert_app::feeds::FeedFormat::Csv,
                None,
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("record_id"), "{err}");
        assert!(app
            .store()
            .verify_audit()
            .await
            .unwrap()
            .first_bad_seq
            .is_none());
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn records_without_an_id_are_matched_by_name_and_birth_date_and_only_opened_for_review() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let p = id("440305", "19451203", 71);
        let roll = format!(
            "{HEADER}\n{}\n{}\n",
            format_args!("{p},陈秀英,enterprise,440305,2000-01,3000,,,,2026-06-01,"),
            format_args!(
                "{},王伟,enterprise,110105,2000-01,3000,,,,2026-06-01,",
                id("110105", "19500101", 73)
            ),
        );
        import(&app, &b.file("r.csv", &roll)).await;
        // Traditional characters, no ID; and a decoy: same name, born ten years later.
        let feed = b.file(
            "deaths.csv",
            "record_id,id_number,name,gender,birth_date,event_date,region_code\n\
             x1,,陳秀英,F,1945-12-03,2026-11-01,440305\n\
             x2,,陈秀英,F,1955-12-03,2026-11-01,440305\n",
        );
        // A dry run, with and without a report, classes them as the ingest will.
        let source = app.source("police_deregistration").unwrap();
        let mut classes = Vec::new();
        let format = lifecert_app::feeds::FeedFormat::Csv;
        let previewed = app
            .preview_feed(&source, &feed, format, Some(&mut |l| classes.push(l.class)))
            .await
            .unwrap();
        let counted = app
            .preview_feed(&source, &feed, format, None)
            .await
            .unwrap();
        assert_eq!(previewed, counted, "{}", b.name);
        assert_eq!((counted.records, counted.probable), (2, 1));
        let (s, lines) = ingest(&app, "police_deregistration", &feed).await;
        assert_eq!(lines[0].class, "probable", "{}: {lines:?}", b.name);
        assert_eq!(classes, lines.iter().map(|l| l.class).collect::<Vec<_>>());
        let v = app.recipient_view(&nid(&p)).await.unwrap();
        assert_eq!(lines[0].recipient_id, Some(v.recipient_id));
        assert_ne!(lines[1].class, "probable", "{lines:?}");
        assert_eq!(
            (s.probable, s.deaths_suspended, s.reviews_opened),
            (1, 0, 1)
        );
        assert_eq!(
            v.status, "active",
            "a probable match never changes a payment by itself"
        );
        // The case names the record, and its audit entry names the case.
        use sqlx::Row;
        let case = sqlx::query("SELECT id, recipient_id, kind, status, details FROM review_cases")
            .fetch_one(app.store().pool())
            .await
            .unwrap();
        let case_id: i64 = case.get(0);
        assert_eq!(case.get::<i64, _>(1), v.recipient_id);
        assert_eq!(case.get::<String, _>(2), "probable_match");
        assert_eq!(case.get::<String, _>(3), "open");
        assert!(
            case.get::<String, _>(4).contains("\"record_id\":\"x1\""),
            "{}",
            b.name
        );
        let audit: String = sqlx::query(
            "SELECT details FROM audit_log WHERE action = 'review_case.opened' ORDER BY seq DESC",
        )
        .fetch_one(app.store().pool())
        .await
        .unwrap()
        .get(0);
        assert!(audit.contains(&format!("\"case_id\":{case_id}")), "{audit}");

        // Asked to estimate weights by EM, a feed too small for it keeps the shipped ones.
        let estimating = app
            .clone()
            .with_matching(lifecert_app::feeds::MatchingSettings {
                weights: "estimate".into(),
                ..Default::default()
            });
        let again = b.file(
            "again.csv",
            "record_id,id_number,name,gender,birth_date,event_date,region_code\n\
             y1,,陳秀英,F,1945-12-03,2026-11-02,440305\n",
        );
        let (_, lines) = ingest(&estimating, "hospital_visit", &again).await;
        assert_eq!(
            (lines[0].class, lines[0].recipient_id),
            ("probable", Some(v.recipient_id)),
            "{lines:?}"
        );
        // A stricter threshold from the settings makes it only possible.
        let strict = app
            .clone()
            .with_matching(lifecert_app::feeds::MatchingSettings {
                probable: 60.0,
                ..Default::default()
            });
        let third = b.file(
            "third.csv",
            "record_id,id_number,name,gender,birth_date,event_date,region_code\n\
             y2,,陳秀英,F,1945-12-03,2026-11-03,440305\n",
        );
        let (_, lines) = ingest(&strict, "hospital_visit", &third).await;
        assert_eq!(lines[0].class, "possible", "{lines:?}");

        // A valid ID number that is not on the roll is someone else's: not matched by
        // name. A mistyped one (check character wrong) is.
        let stranger = id("440305", "19451203", 99);
        let mut mistyped = p.clone();
        mistyped.replace_range(16..17, if &p[16..17] == "1" { "2" } else { "1" });
        let fourth = b.file(
            "fourth.csv",
            &format!(
                "record_id,id_number,name,gender,birth_date,event_date,region_code\n\
                 y3,{stranger},陳秀英,F,1945-12-03,2026-11-04,440305\n\
                 y4,{mistyped},陳秀英,F,1945-12-03,2026-11-04,440305\n"
            ),
        );
        let (_, lines) = ingest(&app, "hospital_visit", &fourth).await;
        assert_eq!(
            (lines[0].class, lines[0].reason.as_ref()),
            ("unmatched", "no pensioner with this ID number"),
            "{lines:?}"
        );
        assert_eq!(
            (lines[1].class, lines[1].recipient_id),
            ("probable", Some(v.recipient_id)),
            "{lines:?}"
        );

        // A name on the roll that cannot be decrypted stops the matcher: the feed fails
        // with that error, and nothing of it is stored (its records are not duplicates
        // after the roll is mended).
        let stored = || count(&app, "SELECT COUNT(*) FROM feed_records");
        let before = stored().await;
        let (good,): (Vec<u8>,) = sqlx::query_as(
            &app.store()
                .dialect()
                .sql("SELECT name_enc FROM recipients WHERE id = ?"),
        )
        .bind(v.recipient_id)
        .fetch_one(app.store().pool())
        .await
        .unwrap();
        let set_name = |name: Vec<u8>| {
            let sql = app
                .store()
                .dialect()
                .sql("UPDATE recipients SET name_enc = ? WHERE id = ?");
            let pool = app.store().pool().clone();
            async move {
                sqlx::query(&sql)
                    .bind(name)
                    .bind(v.recipient_id)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        };
        set_name(vec![0x01, 0x02, 0x03]).await;
        let fifth = b.file(
            "fifth.csv",
            "record_id,id_number,name,gender,birth_date,event_date,region_code
             z1,,陳秀英,F,1945-12-03,2026-11-05,440305
",
        );
        let source = app.source("hospital_visit").unwrap();
        for mode in ["ingest", "preview with a report", "count"] {
            let failed = match mode {
                "ingest" => app.ingest_feed(&source, &fifth, format, None).await,
                "count" => app.preview_feed(&source, &fifth, format, None).await,
                _ => {
                    let mut report = |_| {};
                    app.preview_feed(&source, &fifth, format, Some(&mut report))
                        .await
                }
            };
            let err = failed.expect_err("a corrupt roll must stop the feed");
            assert!(
                err.to_string().contains(&format!(
                    "the name of pensioner {} cannot be decrypted",
                    v.recipient_id
                )),
                "{} {mode}: {err}",
                b.name
            );
        }
        assert_eq!(stored().await, before, "{}", b.name);
        set_name(good).await;
        let (s, lines) = ingest(&app, "hospital_visit", &fifth).await;
        assert_eq!((s.duplicates_ignored, lines[0].class), (0, "probable"));

        // A feed of more than one chunk (10,000 records): each probable match opens its
        // review case, audited; the audit of each chunk is written as the feed goes, and
        // the chain holds.
        let opened = || {
            count(
                &app,
                "SELECT COUNT(*) FROM audit_log WHERE action = 'review_case.opened'",
            )
        };
        let audited = opened().await;
        let mut many =
            String::from("record_id,id_number,name,gender,birth_date,event_date,region_code\n");
        for i in 0..10_050 {
            many.push_str(&format!("m{i},,陳秀英,F,1945-12-03,2026-11-06,440305\n"));
        }
        let (s, lines) = ingest(&app, "hospital_visit", &b.file("many.csv", &many)).await;
        assert_eq!(
            (s.probable, s.reviews_opened),
            (10_050, 10_050),
            "{}",
            b.name
        );
        assert!(lines.iter().all(|l| l.recipient_id == Some(v.recipient_id)));
        assert_eq!(opened().await - audited, 10_050, "{}", b.name);
        let check = app.store().verify_audit().await.unwrap();
        assert_eq!(check.first_bad_seq, None, "{}: {check:?}", b.name);
        b.drop_pg(app).await;
    }
}

// ---------------------------------------------------------------------------------
// Recovery cases (追回): requested, paid back, written off
// ---------------------------------------------------------------------------------

fn officer(name: &str, role: lifecert_domain::Role, scope: &str) -> lifecert_app::staff::Staff {
    lifecert_app::staff::Staff {
        user_id: 0,
        username: name.into(),
        role,
        scope: lifecert_domain::RegionScope::parse(scope).unwrap(),
    }
}

fn supervisor(name: &str) -> lifecert_app::staff::Staff {
    officer(name, lifecert_domain::Role::Supervisor, "11")
}

fn yuan(s: &str) -> lifecert_domain::Fen {
    lifecert_domain::Fen::parse_yuan(s, "amount").unwrap()
}

/// Imports pensioners of 110105 paid through 2026-10, reports each one's death on
/// 2026-08-15 and confirms it: each gets a recovery case for 2026-09 and 2026-10
/// (6,000 yuan). Returns the case ids.
async fn confirmed_deaths(app: &App, b: &Backend, people: &[(&str, &str)]) -> Vec<i64> {
    let roll: Vec<String> = people
        .iter()
        .map(|(n, name)| row(n, name, "2026-06-01", "2026-10"))
        .collect();
    import(
        app,
        &b.file("dead.csv", &format!("{HEADER}\n{}\n", roll.join("\n"))),
    )
    .await;
    let mut cases = Vec::new();
    for (n, _) in people {
        app.report_death(&staff(), &nid(n), d("2026-08-15"), "public_security")
            .await
            .unwrap();
        let c = app.confirm_death(&staff(), &nid(n)).await.unwrap();
        assert_eq!(c.overpaid_fen, 600_000);
        cases.push(c.recovery_case_id.unwrap());
    }
    cases
}

async fn audit_actions(app: &App, recipient_id: i64, prefix: &str) -> Vec<(String, String)> {
    app.store()
        .list_audit(0, 1000, None, Some(recipient_id))
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action.starts_with(prefix))
        .map(|a| (a.actor, a.action))
        .collect()
}

#[tokio::test]
async fn an_overpayment_is_requested_by_the_payment_run_then_paid_back_in_two_amounts() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let n = b.name;
        let dead = id("110105", "19400505", 61);
        let case = confirmed_deaths(&app, &b, &[(&dead, "郑一")]).await[0];
        let sup = supervisor("sup1");

        let open = app.recovery_for(&sup, case).await.unwrap();
        assert_eq!(
            (
                open.case.status.as_str(),
                open.case.amount_fen,
                open.case.outstanding_fen,
                open.case.months.clone()
            ),
            (
                "open",
                600_000,
                600_000,
                vec!["2026-09".to_string(), "2026-10".to_string()]
            ),
            "{n}"
        );
        assert!(open.payments.is_empty());
        let rid = open.case.recipient_id;
        // Nothing to record before the bank has been asked.
        let err = app
            .record_recovery_payment(&sup, case, yuan("100"), d(TODAY), "ICBC-0")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_transition", "{n}: {err}");

        // The payment run's recover line is the request; closing the run records it.
        let out = b.dir.path().join("p11.csv");
        let e = app
            .export_payments(&staff(), ym("2026-11"), &out)
            .await
            .unwrap();
        assert_eq!(e.recover, 1);
        assert_eq!(
            app.recovery_for(&sup, case).await.unwrap().case.status,
            "open",
            "exported is not yet sent"
        );
        app.close_payments(&staff(), ym("2026-11")).await.unwrap();
        let requested = app.recovery_for(&sup, case).await.unwrap().case;
        assert_eq!(
            (
                requested.status.as_str(),
                requested.requested_on.as_deref(),
                requested.instructed_month.as_deref(),
                requested.requested_by.as_deref()
            ),
            (
                "requested",
                Some(TODAY),
                Some("2026-11"),
                Some("staff:tester")
            ),
            "{n}"
        );
        let err = app
            .request_recovery(&sup, case, d(TODAY), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_transition", "{n}: {err}");

        clock.set(d("2026-12-10"));
        let partial = app
            .record_recovery_payment(&sup, case, yuan("2000.00"), d("2026-12-05"), "ICBC-1")
            .await
            .unwrap();
        assert_eq!(
            (
                partial.case.status.as_str(),
                partial.case.recovered_fen,
                partial.case.outstanding_fen,
                partial.case.last_payment_on.as_deref(),
                partial.case.closed_on.as_deref()
            ),
            (
                "partially_recovered",
                200_000,
                400_000,
                Some("2026-12-05"),
                None
            ),
            "{n}"
        );

        // Refusals: the same transfer twice, more than is outstanding, impossible dates.
        let err = app
            .record_recovery_payment(&sup, case, yuan("10"), d("2026-12-06"), "ICBC-1")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "duplicate", "{n}: {err}");
        let err = app
            .record_recovery_payment(&sup, case, yuan("4000.01"), d("2026-12-06"), "ICBC-9")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::Invalid { field, message } if field == "amount" && message.contains("4000.00 yuan still outstanding")),
            "{n}: {err}"
        );
        for (day, why) in [("2026-12-11", "in the future"), ("2026-11-29", "before")] {
            let err = app
                .record_recovery_payment(&sup, case, yuan("10"), d(day), "ICBC-9")
                .await
                .unwrap_err();
            assert!(
                matches!(&err, AppError::Invalid { field, message } if field == "received_on" && message.contains(why)),
                "{n}: {day}: {err}"
            );
        }
        let err = app
            .record_recovery_payment(&sup, case, yuan("10"), d("2026-12-06"), "  ")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::Invalid { field, .. } if field == "reference"),
            "{n}: {err}"
        );
        // Only supervisors record money.
        let err = app
            .record_recovery_payment(
                &officer("rev", lifecert_domain::Role::Reviewer, "11"),
                case,
                yuan("10"),
                d("2026-12-06"),
                "ICBC-9",
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "forbidden");

        let done = app
            .record_recovery_payment(&sup, case, yuan("4000"), d("2026-12-08"), "ICBC-2")
            .await
            .unwrap();
        assert_eq!(
            (
                done.case.status.as_str(),
                done.case.recovered_fen,
                done.case.outstanding_fen,
                done.case.closed_on.as_deref()
            ),
            ("recovered", 600_000, 0, Some("2026-12-10")),
            "{n}"
        );
        assert_eq!(
            done.payments
                .iter()
                .map(|p| (
                    p.amount_fen,
                    p.received_on.as_str(),
                    p.reference.as_str(),
                    p.recorded_by.as_str()
                ))
                .collect::<Vec<_>>(),
            vec![
                (200_000, "2026-12-05", "ICBC-1", "staff:sup1"),
                (400_000, "2026-12-08", "ICBC-2", "staff:sup1")
            ]
        );
        // Recovered is final.
        let err = app
            .record_recovery_payment(&sup, case, yuan("1"), d("2026-12-09"), "ICBC-3")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "case_closed", "{n}: {err}");
        let err = app
            .write_off_recovery(&supervisor("sup2"), case, "nothing left")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "case_closed", "{n}: {err}");

        // Listed by status and pensioner, for those who may see recoveries.
        for status in ["recovered", "open"] {
            let found = app
                .recoveries(
                    &officer("aud", lifecert_domain::Role::Auditor, ""),
                    &lifecert_app::recovery::RecoveryQuery {
                        status: Some(status.into()),
                        recipient_id: Some(rid),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                found.len(),
                usize::from(status == "recovered"),
                "{n}: {status}"
            );
        }
        let err = app
            .recoveries(
                &officer("cert", lifecert_domain::Role::Certifier, "11"),
                &Default::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "forbidden");

        // Every step is on the pensioner's trail, in the same chain.
        assert_eq!(
            audit_actions(&app, rid, "recovery.").await,
            vec![
                ("staff:tester".to_string(), "recovery.requested".to_string()),
                (
                    "staff:sup1".to_string(),
                    "recovery.payment_recorded".to_string()
                ),
                (
                    "staff:sup1".to_string(),
                    "recovery.payment_recorded".to_string()
                ),
            ],
            "{n}"
        );
        assert_eq!(
            app.store().verify_audit().await.unwrap().first_bad_seq,
            None
        );

        // The next run stops the pension: the recovery is not sent twice.
        clock.set(d("2026-12-20"));
        let e = app
            .export_payments(&staff(), ym("2026-12"), &b.dir.path().join("p12.csv"))
            .await
            .unwrap();
        assert_eq!((e.stop, e.recover), (1, 0), "{n}");
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn the_rest_is_written_off_by_a_supervisor_who_recorded_neither_the_request_nor_the_last_payment(
) {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let n = b.name;
        let (first, second) = (id("110105", "19400606", 71), id("110105", "19400707", 73));
        let cases = confirmed_deaths(&app, &b, &[(&first, "冯二"), (&second, "陈三")]).await;
        let (sup1, sup2, sup3) = (supervisor("sup1"), supervisor("sup2"), supervisor("sup3"));

        // Requested by hand (a letter to the family), then money from another supervisor.
        let requested = app
            .request_recovery(&sup1, cases[0], d(TODAY), Some("苏人社追〔2026〕12号"))
            .await
            .unwrap();
        assert_eq!(
            (
                requested.case.status.as_str(),
                requested.case.requested_by.as_deref(),
                requested.case.request_reference.as_deref(),
                requested.case.instructed_month.as_deref()
            ),
            (
                "requested",
                Some("staff:sup1"),
                Some("苏人社追〔2026〕12号"),
                None
            ),
            "{n}"
        );
        for (day, why) in [("2026-12-01", "in the future"), ("2026-11-29", "before")] {
            let err = app
                .request_recovery(&sup1, cases[1], d(day), None)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, AppError::Invalid { field, message } if field == "requested_on" && message.contains(why)),
                "{n}: {day}: {err}"
            );
        }
        let err = app
            .write_off_recovery(&sup1, cases[0], "遗产不足")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "maker_checker", "{n}: {err}");
        app.record_recovery_payment(&sup2, cases[0], yuan("1000"), d(TODAY), "CASH-7")
            .await
            .unwrap();
        for who in [&sup1, &sup2] {
            let err = app
                .write_off_recovery(who, cases[0], "遗产不足")
                .await
                .unwrap_err();
            assert_eq!(err.code(), "maker_checker", "{n}: {}: {err}", who.username);
        }
        let err = app
            .write_off_recovery(&sup3, cases[0], "  ")
            .await
            .unwrap_err();
        assert!(
            matches!(&err, AppError::Invalid { field, .. } if field == "reason"),
            "{n}: {err}"
        );
        let err = app
            .write_off_recovery(
                &officer("rev", lifecert_domain::Role::Reviewer, "11"),
                cases[0],
                "遗产不足",
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "forbidden");
        // Out of region: as if the case did not exist.
        let guangdong = officer("gd", lifecert_domain::Role::Supervisor, "44");
        let err = app
            .write_off_recovery(&guangdong, cases[0], "遗产不足")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "not_found");
        assert_eq!(
            app.recovery_for(&guangdong, cases[0])
                .await
                .unwrap_err()
                .code(),
            "not_found"
        );
        assert!(app
            .recoveries(&guangdong, &Default::default())
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            app.recoveries(
                &sup1,
                &lifecert_app::recovery::RecoveryQuery {
                    region: Some("44".into()),
                    ..Default::default()
                }
            )
            .await
            .unwrap_err()
            .code(),
            "out_of_region"
        );
        assert_eq!(
            app.recoveries(
                &sup1,
                &lifecert_app::recovery::RecoveryQuery {
                    status: Some("instructed".into()),
                    ..Default::default()
                }
            )
            .await
            .unwrap_err()
            .code(),
            "invalid_input"
        );

        clock.set(d("2026-12-03"));
        let off = app
            .write_off_recovery(&sup3, cases[0], "遗产不足，继承人放弃继承")
            .await
            .unwrap();
        assert_eq!(
            (
                off.case.status.as_str(),
                off.case.recovered_fen,
                off.case.written_off_fen,
                off.case.outstanding_fen,
                off.case.written_off_by.as_deref(),
                off.case.write_off_reason.as_deref(),
                off.case.closed_on.as_deref()
            ),
            (
                "written_off",
                100_000,
                500_000,
                0,
                Some("staff:sup3"),
                Some("遗产不足，继承人放弃继承"),
                Some("2026-12-03")
            ),
            "{n}"
        );
        assert_eq!(
            app.write_off_recovery(&sup1, cases[0], "again")
                .await
                .unwrap_err()
                .code(),
            "case_closed"
        );
        let err = app
            .request_recovery(&sup1, cases[0], d("2026-12-03"), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "case_closed", "{n}: {err}");

        // An open case may be written off whole, before anyone asked for it; then the
        // payment run has nothing to recover.
        let off = app
            .write_off_recovery(&sup1, cases[1], "金额已由丧葬补助金抵扣")
            .await
            .unwrap();
        assert_eq!(
            (
                off.case.status.as_str(),
                off.case.written_off_fen,
                off.case.requested_on.as_deref()
            ),
            ("written_off", 600_000, None),
            "{n}"
        );
        let e = app
            .export_payments(&staff(), ym("2026-12"), &b.dir.path().join("p.csv"))
            .await
            .unwrap();
        assert_eq!((e.stop, e.recover), (2, 0), "{n}");

        let rid = off.case.recipient_id;
        let trail = app
            .store()
            .list_audit(0, 1000, Some("recovery.written_off"), Some(rid))
            .await
            .unwrap();
        assert_eq!(trail.len(), 1);
        let details: serde_json::Value = serde_json::from_str(&trail[0].details).unwrap();
        assert_eq!(
            (
                &details["written_off_fen"],
                &details["reason"],
                &details["previous_status"]
            ),
            (
                &serde_json::json!(600_000),
                &serde_json::json!("金额已由丧葬补助金抵扣"),
                &serde_json::json!("open")
            )
        );
        assert_eq!(
            app.store().verify_audit().await.unwrap().first_bad_seq,
            None
        );
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn an_upheld_appeal_cancels_a_recovery_requested_from_the_bank() {
    for b in backends().await {
        let clock = clock();
        let app = b.app(clock.clone()).await;
        let n = b.name;
        let alive = id("110105", "19400808", 81);
        let case = confirmed_deaths(&app, &b, &[(&alive, "褚四")]).await[0];
        let sup = supervisor("sup1");
        app.request_recovery(&sup, case, d(TODAY), None)
            .await
            .unwrap();
        let rid = app
            .recovery_for(&sup, case)
            .await
            .unwrap()
            .case
            .recipient_id;
        let appeal = app
            .lodge_appeal(
                &sup,
                rid,
                lifecert_app::workflows::AppealAgainst::Termination,
                None,
                "本人健在，已到社区当面核实",
            )
            .await
            .unwrap();
        app.decide_review_case(
            &officer("rev", lifecert_domain::Role::Reviewer, "11"),
            appeal.id,
            "approve",
            "alive",
            "seen at the counter",
        )
        .await
        .unwrap();
        let c = app.recovery_for(&sup, case).await.unwrap().case;
        assert_eq!(c.status, "cancelled", "{n}");
        let err = app
            .record_recovery_payment(&sup, case, yuan("1"), d(TODAY), "X-1")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "case_closed", "{n}: {err}");
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn a_large_feed_is_matched_in_bulk_and_signs_left_pending_are_applied_later() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let people = import_forty(&app, &b).await;
        // More records than one chunk, so the feed is matched against the in-memory ID
        // table: each of the 40 pensioners appears 300 times with card use (0.5) on
        // different days; strangers' numbers fill the rest; one record id repeats.
        let mut feed = String::from("record_id,id_number,event_date\n");
        let mut n = 0;
        for day in 0..300 {
            for p in &people {
                let date = d("2026-11-20") - chrono::Duration::days(day % 150);
                feed.push_str(&format!("c{n},{p},{date}\n"));
                n += 1;
            }
        }
        for i in 0..600 {
            feed.push_str(&format!(
                "s{i},{},2026-11-01\n",
                id("530102", "19500101", i)
            ));
        }
        feed.push_str(&format!("c0,{},2026-11-20\n", people[0]));
        // The roll is read page by page (one string per page): pages of 7 give every
        // pensioner once, in id order.
        let (mut tokens, mut candidates, mut after) = (Vec::new(), Vec::new(), 0);
        loop {
            let page = app.store().id_index_page(after, 7).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.0;
            tokens.extend(page);
        }
        after = 0;
        loop {
            let page = app.store().match_candidates_page(after, 7).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.id;
            candidates.extend(page);
        }
        let ids: Vec<i64> = tokens.iter().map(|t| t.0).collect();
        assert_eq!(ids, (1..=40).collect::<Vec<i64>>(), "{}", b.name);
        assert!(tokens.iter().all(|t| t.1.len() == 16), "{}", b.name);
        assert_eq!(
            candidates.iter().map(|c| c.id).collect::<Vec<_>>(),
            ids,
            "{}",
            b.name
        );
        assert!(candidates.iter().all(|c| c.birth_date == "1948-03-02"
            && ["male", "female"].contains(&c.gender.as_str())
            && !c.name_enc.is_empty()));
        // So are the facts a large feed checks, in its transaction.
        let mut tx = app.store().begin_write().await.unwrap();
        let (mut facts, mut after) = (Vec::new(), 0);
        loop {
            let page = tx.recipient_facts_page(after, 7).await.unwrap();
            let Some(last) = page.last() else { break };
            after = last.id;
            facts.extend(page);
        }
        tx.commit().await.unwrap();
        assert_eq!(
            facts.iter().map(|f| f.id).collect::<Vec<_>>(),
            ids,
            "{}",
            b.name
        );
        assert!(facts.iter().all(|f| f.birth_date == "1948-03-02"
            && f.status == "active"
            && f.death_date.is_none()));
        let path = b.file("cards.csv", &feed);
        let (s, lines) = ingest(&app, "card_use", &path).await;
        assert_eq!(
            (s.records, s.exact, s.unmatched, s.duplicates_ignored),
            (12_601, 12_000, 600, 1),
            "{}",
            b.name
        );
        assert_eq!(s.lives_certified, 40, "one certification per pensioner");
        assert_eq!(lines.len(), 12_601);
        let v = app.recipient_view(&nid(&people[7])).await.unwrap();
        assert_eq!(v.last_certified_on, "2026-11-20", "{}", b.name);
        assert_eq!(
            v.certifications
                .iter()
                .filter(|c| c.channel == "passive_data")
                .count(),
            1
        );

        // A dry run reads and matches, and stores nothing.
        let audit = app.store().count_rows(Table::AuditLog).await.unwrap();
        let mut preview = Vec::new();
        let s = app
            .preview_feed(
                &app.source("card_use").unwrap(),
                &path,
                lifecert_app::feeds::FeedFormat::Csv,
                Some(&mut |l| preview.push(l.class)),
            )
            .await
            .unwrap();
        assert_eq!((s.exact, s.recipients_matched), (12_001, Some(40)));
        assert_eq!(preview.len() as u64, s.records);
        // Without a report only the counts are kept: the same counts.
        let counted = app
            .preview_feed(
                &app.source("card_use").unwrap(),
                &path,
                lifecert_app::feeds::FeedFormat::Csv,
                None,
            )
            .await
            .unwrap();
        assert_eq!(counted, s);
        assert_eq!(
            app.store().count_rows(Table::AuditLog).await.unwrap(),
            audit
        );

        // A feed that stopped after storing its records but before adding them up leaves
        // them pending; the next pass applies them.
        let late = id("330102", "19480302", 100);
        {
            let mut tx = app.store().begin_write().await.unwrap();
            let rid = app.recipient_view(&nid(&late)).await.unwrap().recipient_id;
            let recs: Vec<lifecert_store::NewFeedRecord> = ["p1", "p2"]
                .iter()
                .map(|r| lifecert_store::NewFeedRecord {
                    record_id: r,
                    kind: "life",
                    recipient_id: Some(rid),
                    class: "exact",
                    event_date: Some("2026-11-25"),
                    weight_milli: 1000,
                    void_of: None,
                })
                .collect();
            let stored = tx
                .insert_feed_records("bank_counter", &recs, "2026-11-30T00:00:00Z")
                .await
                .unwrap();
            let mut signs: Vec<lifecert_store::LifeSign> = stored
                .iter()
                .flatten()
                .map(|&feed_record_id| lifecert_store::LifeSign {
                    recipient_id: rid,
                    day: (d("2026-11-25") - d("1970-01-01")).num_days(),
                    feed_record_id,
                    weight_milli: 1000,
                })
                .collect();
            tx.insert_life_signs(&mut signs).await.unwrap();
            tx.add_pending_life(&[rid]).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mut s = lifecert_app::feeds::FeedSummary::default();
        app.apply_pending_life_signs(&Actor::System, &mut s)
            .await
            .unwrap();
        assert_eq!(s.lives_certified, 1);
        assert_eq!(
            app.recipient_view(&nid(&late))
                .await
                .unwrap()
                .last_certified_on,
            "2026-11-25"
        );
        // Applied once: a second pass finds nothing.
        let mut s = lifecert_app::feeds::FeedSummary::default();
        app.apply_pending_life_signs(&Actor::System, &mut s)
            .await
            .unwrap();
        assert_eq!(s.lives_certified, 0);
        b.drop_pg(app).await;
    }
}
