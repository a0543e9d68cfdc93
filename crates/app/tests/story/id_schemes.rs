//! Stories of the ID schemes on both databases: a roll of generic agency identifiers
//! (birth date and gender required, since the identifiers do not carry them), look-ups
//! by such an identifier, a database that keeps the scheme it was set up with, and
//! cn_resident rows whose birth date or gender disagree with the ID number.

use super::*;
use lifecert_app::access::{RecipientForStaff, RecipientQuery};
use lifecert_app::import::RowError;
use lifecert_domain::IdScheme;

async fn app_in(b: &Backend, scheme: IdScheme) -> Result<App, AppError> {
    let store = Store::open(&b.url).await?;
    App::new_with_id_scheme(
        store,
        key_ring(Cipher::Aes256Gcm),
        Policy::default(),
        clock(),
        scheme,
    )
    .await
}

const GENERIC_HEADER: &str = "id_number,name,insurance_type,region_code,benefit_start,monthly_amount,birth_date,gender,last_certified_on";

fn generic_row(id: &str, name: &str, birth: &str, gender: &str, last: &str) -> String {
    format!("{id},{name},enterprise,110105,2010-02,3000.00,{birth},{gender},{last}")
}

fn error_on(errors: &[RowError], line: u64) -> &RowError {
    errors
        .iter()
        .find(|e| e.line == line)
        .unwrap_or_else(|| panic!("no error on line {line}: {errors:?}"))
}

#[tokio::test]
async fn a_generic_roll_needs_birth_date_and_gender_and_is_found_by_its_identifiers() {
    for b in backends().await {
        let app = app_in(&b, IdScheme::Generic).await.unwrap();
        assert_eq!(app.id_scheme(), IdScheme::Generic);
        let lines = [
            GENERIC_HEADER.to_string(),
            generic_row("P1234567", "Anna Schmidt", "1950-03-04", "F", "2026-03-15"),
            generic_row("ab-123 456", "John Smith", "1949-12-31", "男", ""),
            generic_row("Q7654321", "No Birthday", "", "M", ""),
            generic_row("Q7654322", "Bad Gender", "1950-01-01", "X", ""),
            generic_row("Q7654323", "Bad Date", "1950-02-30", "female", ""),
            generic_row("Q1", "Short Id", "1950-01-01", "F", ""),
            generic_row("Q7654324", "No Gender", "1951-05-05", "", ""),
            generic_row("Q7654325", "Too Young", "2012-01-01", "F", ""),
            generic_row(
                "Q7654326",
                "Certified Unborn",
                "1950-06-01",
                "F",
                "1950-05-31",
            ),
        ];
        let path = b.file("generic.csv", &(lines.join("\n") + "\n"));
        let r = import(&app, &path).await;
        assert_eq!(
            (r.rows, r.inserted, r.rejected),
            (9, 2, 7),
            "{}: {r:?}",
            b.name
        );
        let e = error_on(&r.errors, 4);
        assert_eq!(
            (e.field.as_str(), e.code),
            ("birth_date", "missing_birth_date")
        );
        assert!(e.message.contains("YYYY-MM-DD"), "{e:?}");
        let e = error_on(&r.errors, 5);
        assert_eq!((e.field.as_str(), e.code), ("gender", "invalid_gender"));
        assert!(
            e.message.contains("\"X\"") && e.message.contains("M or F"),
            "{e:?}"
        );
        let e = error_on(&r.errors, 6);
        assert_eq!((e.field.as_str(), e.code), ("birth_date", "invalid_date"));
        let e = error_on(&r.errors, 7);
        assert_eq!(
            (e.field.as_str(), e.code),
            ("id_number", "invalid_id_number")
        );
        assert!(e.message.contains("4 to 32"), "{e:?}");
        let e = error_on(&r.errors, 8);
        assert_eq!((e.field.as_str(), e.code), ("gender", "missing_gender"));
        assert!(e.message.contains("M or F"), "{e:?}");
        let e = error_on(&r.errors, 9);
        assert_eq!(e.field, "benefit_start", "{e:?}");
        assert!(e.message.contains("2012-01-01"), "{e:?}");
        let e = error_on(&r.errors, 10);
        assert_eq!(e.field, "last_certified_on", "{e:?}");
        assert!(
            e.message.contains("before the birth date (1950-06-01)"),
            "{e:?}"
        );

        // The same file again changes nothing; a corrected birth date updates the row.
        let again = import(&app, &path).await;
        assert_eq!((again.unchanged, again.inserted, again.updated), (2, 0, 0));
        let fixed = [
            GENERIC_HEADER.to_string(),
            generic_row("P1234567", "Anna Schmidt", "1950-03-05", "F", "2026-03-15"),
        ];
        let fixed = import(&app, &b.file("fixed.csv", &(fixed.join("\n") + "\n"))).await;
        assert_eq!(fixed.updated, 1, "{fixed:?}");

        // Found by the identifier however it is spelled; birth date and gender from the roll.
        let boss = supervisor("boss");
        for spelling in ["P1234567", "p-1234 567"] {
            let found = app
                .search_recipients(
                    &boss,
                    &RecipientQuery {
                        id_number: Some(spelling.to_string()),
                        ..RecipientQuery::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(found.len(), 1, "{spelling}");
            assert_eq!(found[0].id_number, "P1****67");
            assert_eq!(found[0].birth_date, "1950-03-05");
            assert_eq!(found[0].gender, "female");
            match app
                .recipient_for_staff(&boss, found[0].id, true)
                .await
                .unwrap()
            {
                RecipientForStaff::Full(full) => assert_eq!(full.id_number, "P1234567"),
                other => panic!("{other:?}"),
            }
        }
        let err = app
            .search_recipients(
                &boss,
                &RecipientQuery {
                    id_number: Some("P1".into()),
                    ..RecipientQuery::default()
                },
            )
            .await
            .unwrap_err();
        match &err {
            AppError::Invalid { field, message } => {
                assert_eq!(field, "id_number");
                assert!(message.contains("generic"), "{message}");
                assert!(message.contains("4 to 32"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        let john = app.id_scheme().parse_id("AB123456").unwrap();
        let view = app.recipient_view(&john).await.unwrap();
        assert_eq!(view.id_number_masked, "AB****56");
        assert_eq!(
            (view.birth_date.as_str(), view.gender.as_str()),
            ("1949-12-31", "male")
        );
        let certified = app
            .certify(
                &staff(),
                &CertifyRequest {
                    recipient: lifecert_app::certify::RecipientRef::IdNumber(john.clone()),
                    ..certify_req("11010519491231002X", "2026-11-20", Outcome::Pass, None)
                },
            )
            .await
            .unwrap();
        assert_eq!(certified.next_due_on, "2027-11-20");
        let dead = app
            .report_death(&staff(), &john, d("2026-11-25"), "family")
            .await
            .unwrap();
        assert_eq!(dead.status, "suspended");

        // Without the columns the file is refused at its header, naming both.
        let no_columns = b.file(
            "no-columns.csv",
            "id_number,name,insurance_type,region_code,benefit_start,monthly_amount\nP7777777,X,enterprise,110105,2010-02,3000\n",
        );
        let err = app
            .import_recipients(&staff(), &no_columns, &mut |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("birth_date (出生日期)")
                && err.contains("gender (性别)")
                && err.contains("generic"),
            "{err}"
        );

        // One registered through the API is checked the same way.
        let mut new = lifecert_app::import::NewRecipient {
            id_number: "Z9990001".into(),
            name: "New One".into(),
            insurance_type: "enterprise".into(),
            region_code: "110105".into(),
            benefit_start: "2015-01".into(),
            monthly_amount: "2000".into(),
            ..Default::default()
        };
        let err = app.create_recipient(&boss, &new).await.unwrap_err();
        assert!(
            matches!(&err, AppError::Invalid { field, .. } if field == "birth_date"),
            "{err:?}"
        );
        new.birth_date = Some("1955-01-01".into());
        new.gender = Some("female".into());
        app.create_recipient(&boss, &new).await.unwrap();
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn a_database_keeps_the_id_scheme_it_was_set_up_with() {
    for b in backends().await {
        let app = app_in(&b, IdScheme::Generic).await.unwrap();
        app.store().clone().close().await;
        let err = app_in(&b, IdScheme::CnResident).await.err().unwrap();
        assert_eq!(err.code(), "id_scheme_mismatch", "{}: {err}", b.name);
        let message = err.to_string();
        assert!(
            message.contains("set up for the generic ID scheme")
                && message.contains("the settings say cn_resident")
                && message.contains("id_scheme = \"generic\""),
            "{message}"
        );
        // The default constructor is cn_resident too.
        let err = b
            .app_with(clock(), key_ring(Cipher::Aes256Gcm))
            .await
            .err()
            .unwrap();
        assert_eq!(err.code(), "id_scheme_mismatch");
        let app = app_in(&b, IdScheme::Generic).await.unwrap();
        b.drop_pg(app).await;
    }
    for b in backends().await {
        let app = b.app(clock()).await;
        assert_eq!(app.id_scheme(), IdScheme::CnResident);
        app.store().clone().close().await;
        let err = app_in(&b, IdScheme::Generic).await.err().unwrap();
        assert!(
            err.to_string()
                .contains("set up for the cn_resident ID scheme"),
            "{err}"
        );
        let app = b.app(clock()).await;
        b.drop_pg(app).await;
    }
}

/// A database set up before the schemes existed has a key check but no scheme: it holds
/// GB 11643 numbers, whatever the settings say now.
#[tokio::test]
async fn a_database_from_before_the_schemes_is_cn_resident() {
    for b in backends().await {
        let app = b.app(clock()).await;
        app.store().clone().close().await;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&b.url).await.unwrap();
        conn.execute("DELETE FROM meta WHERE key = 'id_scheme'")
            .await
            .unwrap();
        conn.close().await.unwrap();
        let err = app_in(&b, IdScheme::Generic).await.err().unwrap();
        assert_eq!(err.code(), "id_scheme_mismatch", "{}: {err}", b.name);
        let app = b.app(clock()).await;
        b.drop_pg(app).await;
    }
}

#[tokio::test]
async fn cn_resident_rows_may_give_birth_date_and_gender_that_agree_with_the_number() {
    for b in backends().await {
        let app = b.app(clock()).await;
        let header = format!("{HEADER},birth_date,gender");
        let agrees = id("110105", "19500101", 123);
        let lines = [
            header,
            format!("{},1950-01-01,男", row(&agrees, "王建国", "", "")),
            format!(
                "{},1950-01-02,",
                row(&id("110105", "19500101", 125), "李四", "", "")
            ),
            format!("{},,F", row(&id("110105", "19500101", 127), "张三", "", "")),
            format!("{},,", row(&id("110105", "19500101", 129), "赵六", "", "")),
            format!(
                "{},1950-13-01,",
                row(&id("110105", "19500101", 131), "钱七", "", "")
            ),
        ];
        let r = import(&app, &b.file("cn.csv", &(lines.join("\n") + "\n"))).await;
        assert_eq!((r.inserted, r.rejected), (2, 3), "{}: {r:?}", b.name);
        let e = error_on(&r.errors, 3);
        assert_eq!(
            (e.field.as_str(), e.code),
            ("birth_date", "birth_date_mismatch")
        );
        assert!(
            e.message
                .contains("birth_date 1950-01-02 does not agree with the ID number (1950-01-01)"),
            "{e:?}"
        );
        let e = error_on(&r.errors, 4);
        assert_eq!((e.field.as_str(), e.code), ("gender", "gender_mismatch"));
        assert!(
            e.message
                .contains("gender female does not agree with the ID number (male)"),
            "{e:?}"
        );
        let e = error_on(&r.errors, 6);
        assert_eq!((e.field.as_str(), e.code), ("birth_date", "invalid_date"));
        let view = app.recipient_view(&nid(&agrees)).await.unwrap();
        assert_eq!(
            (view.birth_date.as_str(), view.gender.as_str()),
            ("1950-01-01", "male")
        );
        // A generic-looking identifier is not an ID number here.
        let err = app.parse_id("id_number", "P1234567").unwrap_err();
        assert!(err.to_string().contains("cn_resident"), "{err}");
        b.drop_pg(app).await;
    }
}

/// Feeds read ID numbers with the database's scheme: a generic identifier however the
/// department spells it matches exactly, through the look-up per record (small feed) and
/// through the in-memory table (large feed); a GB 11643 number means nothing there.
#[tokio::test]
async fn feeds_match_generic_identifiers_exactly() {
    for b in backends().await {
        let app = app_in(&b, IdScheme::Generic).await.unwrap();
        let lines = [
            GENERIC_HEADER.to_string(),
            generic_row("P1234567", "Anna Schmidt", "1950-03-04", "F", "2026-01-15"),
            generic_row("AB123456", "John Smith", "1949-12-31", "M", "2026-01-15"),
        ];
        let r = import(&app, &b.file("roll.csv", &(lines.join("\n") + "\n"))).await;
        assert_eq!(r.inserted, 2, "{r:?}");

        let small = b.file(
            "small.csv",
            "record_id,id_number,name,event_date\n\
             s1,p-1234 567,Anna Schmidt,2026-11-02\n\
             s2,11010519491231002X,John Smith,2026-11-02\n\
             s3,P1,,2026-11-02\n",
        );
        let (s, report) = ingest(&app, "hospital_visit", &small).await;
        assert_eq!(
            (s.exact, s.lives_certified),
            (1, 1),
            "{}: {report:?}",
            b.name
        );
        assert_eq!(report[0].class, "exact");
        // A GB 11643 number is just another identifier here, and not on this roll.
        assert_eq!(
            (report[1].class, report[1].reason.as_ref()),
            ("unmatched", "no pensioner with this ID number")
        );
        assert_eq!(report[2].class, "unmatched");
        assert!(
            report[2].reason.contains("4 to 32 letters and digits"),
            "{report:?}"
        );

        // Over the size at which the whole roll's tokens are loaded into memory.
        let mut large = String::from("record_id,id_number,event_date\n");
        for i in 0..12_000 {
            large.push_str(&format!("l{i},ZZ{i:08},2026-11-03\n"));
        }
        large.push_str("l-john,ａｂ１２３４５６,2026-11-03\n");
        assert!(large.len() > 256 * 1024);
        let (s, report) = ingest(&app, "hospital_visit", &b.file("large.csv", &large)).await;
        assert_eq!(
            (s.records, s.exact, s.unmatched, s.lives_certified),
            (12_001, 1, 12_000, 1),
            "{}",
            b.name
        );
        let john = report.last().unwrap();
        assert_eq!((john.record_id.as_str(), john.class), ("l-john", "exact"));
        let view = app
            .recipient_view(&app.id_scheme().parse_id("AB123456").unwrap())
            .await
            .unwrap();
        assert_eq!(view.last_certified_on, "2026-11-03", "{}", b.name);
        b.drop_pg(app).await;
    }
}
