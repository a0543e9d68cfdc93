//! The HTTP API, driven in-process through the router (no sockets) on SQLite and, when
//! `LIFECERT_TEST_POSTGRES_URL` is set, PostgreSQL: the role × endpoint table, region
//! scope, masking and audited reveals, maker–checker, lock-out, CSRF, sessions, error
//! shapes, the OpenAPI document, health and metrics. In CI a missing PostgreSQL fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate: failing loudly is the point

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use http_body_util::BodyExt;
use lifecert_app::access::RecipientQuery;
use lifecert_app::certify::{CertifyRequest, RecipientRef};
use lifecert_app::staff::Staff;
use lifecert_app::{Actor, App, Clock};
use lifecert_crypto::{Cipher, KeyRing, TotpSecret};
use lifecert_domain::national_id::check_character;
use lifecert_domain::{Channel, NationalId, Outcome, Policy, RegionScope, Role};
use lifecert_store::Store;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const TODAY: &str = "2026-11-30";

fn d(s: &str) -> NaiveDate {
    lifecert_domain::parse_date(s).unwrap()
}

/// A valid ID number for a region, birth date (YYYYMMDD) and sequence.
fn id(region: &str, birth: &str, seq: u32) -> String {
    let first = format!("{region}{birth}{seq:03}");
    let mut digits = [0u8; 17];
    digits.copy_from_slice(first.as_bytes());
    format!("{first}{}", check_character(&digits) as char)
}

fn masked(id_number: &str) -> String {
    format!("{}********{}", &id_number[..6], &id_number[14..])
}

/// Like `lifecert_app::FixedClock` (stands still at 09:00 UTC of a date until told to
/// move) but it can also move by minutes, for the 30-minute idle timeout, the 15-minute
/// lock-out and the 30-second TOTP steps.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn at(date: NaiveDate) -> TestClock {
        TestClock(Mutex::new(date.and_hms_opt(9, 0, 0).unwrap().and_utc()))
    }

    fn set(&self, date: NaiveDate) {
        *self.0.lock().unwrap() = date.and_hms_opt(9, 0, 0).unwrap().and_utc();
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
    fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }
}

// ---------------------------------------------------------------------------------
// Backends (the same approach as crates/app/tests/story.rs)
// ---------------------------------------------------------------------------------

struct Backend {
    name: &'static str,
    url: String,
    dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

async fn backends() -> Vec<Backend> {
    let mut out = vec![{
        let dir = tempfile::tempdir().unwrap();
        Backend {
            name: "sqlite",
            url: format!("sqlite://{}/lifecert.db", dir.path().display()),
            dir,
            pg: None,
        }
    }];
    match std::env::var("LIFECERT_TEST_POSTGRES_URL") {
        Ok(admin) => {
            sqlx::any::install_default_drivers();
            let name = format!(
                "lifecert_api_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            );
            let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
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
            panic!("CI must run the API tests on PostgreSQL too: set LIFECERT_TEST_POSTGRES_URL")
        }
        Err(_) => {
            eprintln!("note: LIFECERT_TEST_POSTGRES_URL is not set; PostgreSQL runs skipped")
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// The environment: an App on one backend, a fixed clock, five pensioners, the router
// ---------------------------------------------------------------------------------

/// A pensioner of the fixture.
#[derive(Debug)]
struct Pensioner {
    id: i64,
    number: String,
}

impl Pensioner {
    fn nid(&self) -> NationalId {
        NationalId::parse(&self.number).unwrap()
    }
}

struct People {
    /// 王建国, 320102, ID number ending in 952X.
    nanjing: Pensioner,
    /// 李秀英, 320102: gets a doubtful certification.
    doubtful: Pensioner,
    /// 张伟, 320102: a death reported and confirmed.
    death_confirmed: Pensioner,
    /// 刘芳, 320102: a death reported and rejected.
    death_rejected: Pensioner,
    /// 陈志明, 440106 (Guangzhou): outside a 3201 user's region.
    guangzhou: Pensioner,
}

const NANJING_ID: &str = "32010219500107952X";

/// A member of staff as created by `add_user`: what they type in to log in.
struct User {
    name: String,
    password: String,
    secret: TotpSecret,
}

/// What login hands back.
struct Session {
    token: String,
    csrf: String,
    set_cookies: Vec<String>,
}

/// One answer from the router.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Reply {
    /// Asserts the API's error shape: `{"error": {"code": ..., "message": ...}}`.
    fn assert_error(&self, status: StatusCode, code: &str, context: &str) {
        assert_eq!(self.status, status, "{context}: {}", self.text);
        assert_eq!(self.body["error"]["code"], code, "{context}: {}", self.text);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{context}: {}",
            self.text
        );
    }

    fn assert_status(&self, status: StatusCode, context: &str) {
        assert_eq!(self.status, status, "{context}: {}", self.text);
    }
}

/// How a request says who is calling.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Anonymous,
    Bearer(&'a str),
    /// The session cookie, with or without an `X-CSRF-Token` header.
    Cookie(&'a str, Option<&'a str>),
}

struct Env {
    backend: Backend,
    app: App,
    clock: Arc<TestClock>,
    router: Router,
    people: People,
}

fn key_ring() -> KeyRing {
    use base64::Engine;
    KeyRing::from_key_list(
        &base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
        Cipher::Aes256Gcm,
    )
    .unwrap()
}

/// Someone who sees every region, for the fixture's own look-ups (not an API user).
fn fixture_staff() -> Staff {
    Staff {
        user_id: 0,
        username: "fixture".into(),
        role: Role::Supervisor,
        scope: RegionScope::parse("").unwrap(),
    }
}

impl Env {
    async fn new(backend: Backend) -> Env {
        let clock = Arc::new(TestClock::at(d(TODAY)));
        let store = Store::open(&backend.url).await.unwrap();
        let app = App::new(store, key_ring(), Policy::default(), clock.clone())
            .await
            .unwrap();
        let numbers = [
            (NANJING_ID.to_string(), "王建国", "320102"),
            (id("320102", "19480203", 13), "李秀英", "320102"),
            (id("320102", "19440506", 21), "张伟", "320102"),
            (id("320102", "19450607", 34), "刘芳", "320102"),
            (id("440106", "19520808", 45), "陈志明", "440106"),
        ];
        let mut csv = String::from("id_number,name,insurance_type,region_code,benefit_start,monthly_amount,phone,residence,country,last_certified_on,paid_through\n");
        for (number, name, region) in &numbers {
            csv.push_str(&format!(
                "{number},{name},enterprise,{region},2010-02,3000.00,13800138000,domestic,,2026-03-15,2026-10\n"
            ));
        }
        let path = backend.dir.path().join("roll.csv");
        std::fs::write(&path, csv).unwrap();
        let report = app
            .import_recipients(&Actor::System, &path, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(
            (report.inserted, report.rejected),
            (5, 0),
            "{}: {:?}",
            backend.name,
            report.errors
        );
        let mut found = Vec::new();
        for (number, _, _) in &numbers {
            let hits = app
                .search_recipients(
                    &fixture_staff(),
                    &RecipientQuery {
                        id_number: Some(number.clone()),
                        ..RecipientQuery::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(hits.len(), 1);
            found.push(Pensioner {
                id: hits[0].id,
                number: number.clone(),
            });
        }
        let [nanjing, doubtful, death_confirmed, death_rejected, guangzhou] =
            <[Pensioner; 5]>::try_from(found).unwrap();
        let people = People {
            nanjing,
            doubtful,
            death_confirmed,
            death_rejected,
            guangzhou,
        };
        let router = lifecert_web::router(lifecert_web::AppState::new(app.clone(), false));
        Env {
            backend,
            app,
            clock,
            router,
            people,
        }
    }

    async fn finish(self) {
        let Env {
            backend,
            app,
            router,
            ..
        } = self;
        drop(router);
        app.store().clone().close().await;
        if let Some((admin, name)) = &backend.pg {
            let mut conn = sqlx::AnyConnection::connect(admin).await.unwrap();
            conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
        }
    }

    fn name(&self) -> &'static str {
        self.backend.name
    }

    async fn user(&self, name: &str, role: Role, scope: &str) -> User {
        let new = self
            .app
            .add_user(
                &Actor::System,
                name,
                role,
                &RegionScope::parse(scope).unwrap(),
            )
            .await
            .unwrap();
        let secret = new
            .totp_uri
            .split("secret=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .unwrap();
        User {
            name: new.username,
            password: new.password,
            secret: TotpSecret::from_base32(secret).unwrap(),
        }
    }

    /// The one-time code for the clock's time. Each 30-second step logs a user in once:
    /// advance the clock by 30 seconds before logging the same user in again.
    fn code(&self, user: &User) -> String {
        user.secret.code_at(self.clock.now().timestamp() as u64)
    }

    async fn login_reply(&self, username: &str, password: &str, totp: &str) -> Reply {
        self.post(
            "/api/v1/auth/login",
            Auth::Anonymous,
            &json!({"username": username, "password": password, "totp": totp}),
        )
        .await
    }

    async fn login(&self, user: &User) -> Session {
        let r = self
            .login_reply(&user.name, &user.password, &self.code(user))
            .await;
        r.assert_status(
            StatusCode::OK,
            &format!("{}: login {}", self.name(), user.name),
        );
        Session {
            token: r.body["token"].as_str().unwrap().to_string(),
            csrf: r.body["csrf_token"].as_str().unwrap().to_string(),
            set_cookies: r
                .headers
                .get_all(header::SET_COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect(),
        }
    }

    /// Creates a user and logs them in once.
    async fn staff(&self, name: &str, role: Role, scope: &str) -> String {
        let user = self.user(name, role, scope).await;
        self.login(&user).await.token
    }

    async fn send(&self, req: Request<Body>) -> Reply {
        let what = format!("{} {}", req.method(), req.uri());
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // Every response, whatever it is, carries the request id.
        assert!(
            headers.get("x-request-id").is_some_and(|v| !v.is_empty()),
            "{}: {what} answered {status} without x-request-id",
            self.name()
        );
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        auth: Auth<'_>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        match auth {
            Auth::Anonymous => {}
            Auth::Bearer(token) => {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            Auth::Cookie(token, csrf) => {
                req = req.header(header::COOKIE, format!("lifecert_session={token}"));
                if let Some(csrf) = csrf {
                    req = req.header("x-csrf-token", csrf);
                }
            }
        }
        let body = match body {
            Some(bytes) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(bytes)
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    async fn get(&self, path: &str, auth: Auth<'_>) -> Reply {
        self.request(Method::GET, path, auth, None).await
    }

    async fn post(&self, path: &str, auth: Auth<'_>, body: &Value) -> Reply {
        self.request(
            Method::POST,
            path,
            auth,
            Some(serde_json::to_vec(body).unwrap()),
        )
        .await
    }

    /// The open review case of a kind for a pensioner.
    async fn open_case(&self, kind: &str, recipient_id: i64) -> i64 {
        let cases = self
            .app
            .review_queue(&fixture_staff(), Some(kind), Some("open"), 100)
            .await
            .unwrap();
        cases
            .iter()
            .find(|c| c.recipient_id == recipient_id)
            .unwrap()
            .id
    }

    async fn report_death(&self, by: &str, who: &Pensioner) {
        self.app
            .report_death(
                &Actor::Staff(by.into()),
                &who.nid(),
                d("2026-11-01"),
                "public_security",
            )
            .await
            .unwrap();
    }
}

fn certification(recipient_id: i64) -> Value {
    json!({"recipient_id": recipient_id, "channel": "counter", "date": TODAY})
}

fn decision(decision: &str) -> Value {
    json!({"decision": decision, "reason": "checked_with_family", "note": "called the family and the community office"})
}

fn ids_of(list: &Value) -> BTreeSet<i64> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------
// 1. Roles × endpoints
// ---------------------------------------------------------------------------------

/// The columns of [`POLICY`].
const ROLES: [Role; 6] = [
    Role::Certifier,
    Role::Reviewer,
    Role::Consultant,
    Role::Supervisor,
    Role::Auditor,
    Role::Partner,
];

const Y: bool = true;
const N: bool = false;

/// The policy, written out: for each endpoint, whether each role of [`ROLES`] may call it
/// (allowed: its 2xx; refused: 403 `forbidden`).
#[rustfmt::skip]
const POLICY: [(&str, [bool; 6]); 9] = [
    //                                               cert rev cons sup aud part
    ("GET /api/v1/recipients",                      [Y,   Y,  Y,   Y,  N,  Y]),
    ("GET /api/v1/recipients/{id}",                 [Y,   Y,  Y,   Y,  N,  Y]),
    ("GET /api/v1/recipients/{id}?reveal=true",     [Y,   Y,  N,   Y,  N,  N]),
    ("POST /api/v1/certifications",                 [Y,   N,  N,   N,  N,  Y]),
    ("GET /api/v1/review-cases",                    [N,   Y,  N,   Y,  Y,  N]),
    ("POST /api/v1/review-cases/{id}/decision",     [N,   Y,  N,   N,  N,  N]),
    ("GET /api/v1/audit",                           [N,   N,  N,   Y,  Y,  N]),
    ("GET /api/v1/audit/verify",                    [N,   N,  N,   Y,  Y,  N]),
    ("POST /api/v1/auth/logout",                    [Y,   Y,  Y,   Y,  Y,  Y]),
];

#[tokio::test]
async fn role_endpoint_matrix_follows_the_written_policy_and_anonymous_calls_get_401() {
    for b in backends().await {
        let env = Env::new(b).await;
        let mut tokens = Vec::new();
        for role in ROLES {
            tokens.push(env.staff(role.as_str(), role, "3201").await);
        }
        // A death reported by a clerk: the one reviewer may decide it.
        env.report_death("clerk", &env.people.death_rejected).await;
        let case = env
            .open_case("confirm_death", env.people.death_rejected.id)
            .await;
        let pensioner = env.people.nanjing.id;

        let mut wrong = Vec::new();
        for (endpoint, allowed) in POLICY {
            let (method, template) = endpoint.split_once(' ').unwrap();
            let path = template
                .replace("/recipients/{id}", &format!("/recipients/{pensioner}"))
                .replace("/review-cases/{id}", &format!("/review-cases/{case}"));
            let body = match template {
                "/api/v1/certifications" => Some(certification(pensioner)),
                "/api/v1/review-cases/{id}/decision" => Some(decision("reject")),
                _ => None,
            };
            let success = match template {
                "/api/v1/certifications" => StatusCode::CREATED,
                "/api/v1/auth/logout" => StatusCode::NO_CONTENT,
                _ => StatusCode::OK,
            };
            let method: Method = method.parse().unwrap();
            let bytes = body.as_ref().map(|v| serde_json::to_vec(v).unwrap());

            let anonymous = env
                .request(method.clone(), &path, Auth::Anonymous, bytes.clone())
                .await;
            if anonymous.status != StatusCode::UNAUTHORIZED
                || anonymous.body["error"]["code"] != "unauthenticated"
            {
                wrong.push(format!(
                    "anonymous {endpoint}: {} {}",
                    anonymous.status, anonymous.text
                ));
            }
            let stranger = env
                .request(
                    method.clone(),
                    &path,
                    Auth::Bearer("not-a-session-token"),
                    bytes.clone(),
                )
                .await;
            if stranger.status != StatusCode::UNAUTHORIZED {
                wrong.push(format!(
                    "unknown token {endpoint}: {} {}",
                    stranger.status, stranger.text
                ));
            }

            for (i, role) in ROLES.iter().enumerate() {
                let r = env
                    .request(
                        method.clone(),
                        &path,
                        Auth::Bearer(&tokens[i]),
                        bytes.clone(),
                    )
                    .await;
                let ok = if allowed[i] {
                    r.status == success
                } else {
                    r.status == StatusCode::FORBIDDEN
                        && r.body["error"]["code"] == "forbidden"
                        && r.body["error"]["message"].is_string()
                };
                if !ok {
                    wrong.push(format!(
                        "{role} {endpoint}: expected {}, got {} {}",
                        if allowed[i] {
                            success.as_str()
                        } else {
                            "403 forbidden"
                        },
                        r.status,
                        r.text
                    ));
                }
            }
        }
        assert!(wrong.is_empty(), "{}:\n{}", env.name(), wrong.join("\n"));
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 2. Region scope
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn region_scope_limits_search_and_gives_other_regions_a_minimal_view_or_404() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let certifier = env.staff("cert", Role::Certifier, "3201").await;
        let partner = env.staff("bank", Role::Partner, "3201").await;
        let reviewer = env.staff("rev", Role::Reviewer, "3201").await;
        let consultant = env.staff("cons", Role::Consultant, "3201").await;
        let supervisor = env.staff("sup", Role::Supervisor, "3201").await;
        let p = &env.people;

        // Search sees 320102, not 440106.
        let r = env
            .get("/api/v1/recipients", Auth::Bearer(&certifier))
            .await;
        r.assert_status(StatusCode::OK, n);
        let seen = ids_of(&r.body);
        assert_eq!(
            seen,
            BTreeSet::from([
                p.nanjing.id,
                p.doubtful.id,
                p.death_confirmed.id,
                p.death_rejected.id
            ]),
            "{n}"
        );
        assert!(r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["region_code"].as_str().unwrap().starts_with("3201")));
        // Not even by its exact ID number.
        let r = env
            .get(
                &format!("/api/v1/recipients?id_number={}", p.guangzhou.number),
                Auth::Bearer(&certifier),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["items"], json!([]), "{n}");
        // Widening the region beyond one's own is refused.
        env.get("/api/v1/recipients?region=44", Auth::Bearer(&certifier))
            .await
            .assert_error(StatusCode::FORBIDDEN, "out_of_region", n);
        let r = env
            .get("/api/v1/recipients?region=320102", Auth::Bearer(&certifier))
            .await;
        assert_eq!(ids_of(&r.body).len(), 4, "{n}: {}", r.text);

        // Paging covers the region once, in id order.
        let first = env
            .get("/api/v1/recipients?limit=3", Auth::Bearer(&certifier))
            .await;
        let after = first.body["next_after_id"].as_i64().unwrap();
        let rest = env
            .get(
                &format!("/api/v1/recipients?limit=3&after_id={after}"),
                Auth::Bearer(&certifier),
            )
            .await;
        assert_eq!(
            rest.body["next_after_id"],
            Value::Null,
            "{n}: {}",
            rest.text
        );
        let mut paged: Vec<i64> = ids_of(&first.body).into_iter().collect();
        paged.extend(ids_of(&rest.body));
        assert_eq!(paged, seen.iter().copied().collect::<Vec<_>>(), "{n}");

        // Out of region: certifiers and partners get the minimal view.
        let path = format!("/api/v1/recipients/{}", p.guangzhou.id);
        for token in [&certifier, &partner] {
            let r = env.get(&path, Auth::Bearer(token)).await;
            r.assert_status(StatusCode::OK, n);
            assert_eq!(
                r.body,
                json!({
                    "view": "minimal",
                    "id": p.guangzhou.id,
                    "id_number": masked(&p.guangzhou.number),
                    "name_initial": "陈*",
                    "status": "active",
                }),
                "{n}"
            );
        }
        // ... and no reveal outside the region.
        env.get(&format!("{path}?reveal=true"), Auth::Bearer(&certifier))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        // Other roles of another region do not learn the pensioner exists.
        for token in [&reviewer, &consultant, &supervisor] {
            env.get(&path, Auth::Bearer(token)).await.assert_error(
                StatusCode::NOT_FOUND,
                "not_found",
                n,
            );
        }
        env.get("/api/v1/recipients/999999", Auth::Bearer(&certifier))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        // In region, the same roles get the full view.
        let r = env
            .get(
                &format!("/api/v1/recipients/{}", p.nanjing.id),
                Auth::Bearer(&supervisor),
            )
            .await;
        assert_eq!(r.body["view"], "full", "{n}: {}", r.text);

        // 异地认证: a Nanjing certifier certifies a Guangzhou pensioner.
        let r = env
            .post(
                "/api/v1/certifications",
                Auth::Bearer(&certifier),
                &json!({"recipient_id": p.guangzhou.id, "channel": "community", "date": TODAY,
                        "region_code": "320102",
                        "evidence": {"document_type": "resident_id_card", "place": "玄武区社区服务中心"}}),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        assert_eq!(
            (
                &r.body["outcome"],
                &r.body["status"],
                &r.body["next_due_on"],
                &r.body["review_case_id"]
            ),
            (
                &json!("pass"),
                &json!("active"),
                &json!("2027-11-30"),
                &Value::Null
            ),
            "{n}"
        );
        let recorded = env
            .app
            .store()
            .certifications_of(p.guangzhou.id)
            .await
            .unwrap();
        assert_eq!(recorded.len(), 1, "{n}");
        assert_eq!(
            (
                recorded[0].actor.as_str(),
                recorded[0].channel.as_str(),
                recorded[0].region_code.as_deref(),
                recorded[0].certified_on.as_str()
            ),
            ("staff:cert", "community", Some("320102"), TODAY),
            "{n}"
        );
        let view = env.app.recipient_view(&p.guangzhou.nid()).await.unwrap();
        assert_eq!(
            (view.last_certified_on.as_str(), view.next_due_on.as_str()),
            (TODAY, "2027-11-30"),
            "{n}"
        );
        // A partner may do the same; a reviewer may not record at all.
        env.post(
            "/api/v1/certifications",
            Auth::Bearer(&partner),
            &certification(p.guangzhou.id),
        )
        .await
        .assert_status(StatusCode::CREATED, n);
        env.post(
            "/api/v1/certifications",
            Auth::Bearer(&reviewer),
            &certification(p.guangzhou.id),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", n);
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 3. Masking and audited reveals
// ---------------------------------------------------------------------------------

async fn reveal_entries(env: &Env, auditor: &str, recipient_id: i64) -> Vec<Value> {
    let r = env
        .get(
            &format!(
                "/api/v1/audit?action=recipient.id_number_revealed&recipient_id={recipient_id}"
            ),
            Auth::Bearer(auditor),
        )
        .await;
    r.assert_status(StatusCode::OK, env.name());
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn id_numbers_are_masked_and_every_reveal_is_audited() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let certifier = env.staff("cert", Role::Certifier, "3201").await;
        let consultant = env.staff("cons", Role::Consultant, "3201").await;
        let auditor = env.staff("aud", Role::Auditor, "").await;
        let p = &env.people;
        let path = format!("/api/v1/recipients/{}", p.nanjing.id);

        let r = env.get(&path, Auth::Bearer(&certifier)).await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["view"], "full", "{n}");
        assert_eq!(r.body["id_number"], "320102********952X", "{n}");
        assert_eq!(r.body["id_number_revealed"], false, "{n}");
        assert_eq!(r.body["name"], "王建国", "{n}");
        assert!(!r.text.contains(NANJING_ID), "{n}");
        assert!(reveal_entries(&env, &auditor, p.nanjing.id)
            .await
            .is_empty());

        let r = env
            .get(&format!("{path}?reveal=true"), Auth::Bearer(&certifier))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["id_number"], NANJING_ID, "{n}");
        assert_eq!(r.body["id_number_revealed"], true, "{n}");
        let entries = reveal_entries(&env, &auditor, p.nanjing.id).await;
        assert_eq!(entries.len(), 1, "{n}: {entries:?}");
        assert_eq!(entries[0]["actor"], "staff:cert", "{n}");
        assert_eq!(entries[0]["recipient_id"], p.nanjing.id, "{n}");
        assert_eq!(entries[0]["details"]["role"], "certifier", "{n}");
        // The audit entry itself holds no ID number.
        assert!(!entries[0].to_string().contains(NANJING_ID), "{n}");

        // A consultant may not reveal, and a refused reveal writes nothing.
        env.get(&format!("{path}?reveal=true"), Auth::Bearer(&consultant))
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden", n);
        assert_eq!(
            reveal_entries(&env, &auditor, p.nanjing.id).await.len(),
            1,
            "{n}"
        );
        // A consultant sees the number and the name masked.
        let r = env.get(&path, Auth::Bearer(&consultant)).await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (&r.body["id_number"], &r.body["name"]),
            (&json!("320102********952X"), &json!("王*国")),
            "{n}"
        );
        let r = env
            .get("/api/v1/recipients", Auth::Bearer(&consultant))
            .await;
        let names: BTreeSet<&str> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["王*国", "李*英", "张*", "刘*"]),
            "{n}"
        );
        assert!(!r.text.contains(NANJING_ID), "{n}");

        let r = env
            .get("/api/v1/audit/verify", Auth::Bearer(&auditor))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["ok"], true, "{n}: {}", r.text);
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 4. Maker–checker and review decisions
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn review_decisions_follow_maker_checker_and_change_payment_status() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let certifier = env.staff("cert", Role::Certifier, "3201").await;
        let rev1 = env.staff("rev1", Role::Reviewer, "3201").await;
        let rev2 = env.staff("rev2", Role::Reviewer, "3201").await;
        let guangdong = env.staff("rev_gd", Role::Reviewer, "44").await;
        let p = &env.people;

        // A doubtful certification suspends payment and opens a case.
        let r = env
            .post(
                "/api/v1/certifications",
                Auth::Bearer(&certifier),
                &json!({"recipient_id": p.doubtful.id, "channel": "video", "date": TODAY,
                        "outcome": "doubtful", "reason": "photo_unclear"}),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        assert_eq!(r.body["status"], "suspended", "{n}");
        assert_eq!(r.body["outcome"], "doubtful", "{n}");
        assert_eq!(r.body["next_due_on"], "2027-03-15", "{n}");
        let doubt_case = r.body["review_case_id"].as_i64().unwrap();
        // Its maker is no reviewer and cannot decide it.
        env.post(
            &format!("/api/v1/review-cases/{doubt_case}/decision"),
            Auth::Bearer(&certifier),
            &decision("approve"),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", n);

        // A death reported by reviewer rev1: rev1 may not confirm it.
        env.report_death("rev1", &p.death_confirmed).await;
        let r = env
            .get(
                "/api/v1/review-cases?kind=confirm_death",
                Auth::Bearer(&rev2),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        let items = r.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{n}: {}", r.text);
        assert_eq!(items[0]["recipient_id"], p.death_confirmed.id, "{n}");
        assert_eq!(items[0]["opened_by"], "staff:rev1", "{n}");
        assert_eq!(items[0]["status"], "open", "{n}");
        let death_case = items[0]["id"].as_i64().unwrap();
        let decide = format!("/api/v1/review-cases/{death_case}/decision");
        env.post(&decide, Auth::Bearer(&rev1), &decision("approve"))
            .await
            .assert_error(StatusCode::FORBIDDEN, "maker_checker", n);
        // A decision needs a reason and a note, and is approve or reject.
        env.post(
            &decide,
            Auth::Bearer(&rev2),
            &json!({"decision": "approve", "reason": "death_certificate", "note": " "}),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.post(&decide, Auth::Bearer(&rev2), &decision("maybe"))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.post(
            "/api/v1/review-cases/999999/decision",
            Auth::Bearer(&rev2),
            &decision("approve"),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);

        // A reviewer of another region neither sees nor decides the case.
        let r = env
            .get("/api/v1/review-cases", Auth::Bearer(&guangdong))
            .await;
        assert_eq!(r.body["items"], json!([]), "{n}: {}", r.text);
        env.post(&decide, Auth::Bearer(&guangdong), &decision("approve"))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);

        // Another reviewer confirms: payment is terminated.
        let r = env
            .post(&decide, Auth::Bearer(&rev2), &decision("approve"))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["decision"], "approve", "{n}");
        assert_eq!(r.body["decided_by"], "staff:rev2", "{n}");
        assert_ne!(r.body["status"], "open", "{n}");
        let r = env
            .get(
                &format!("/api/v1/recipients/{}", p.death_confirmed.id),
                Auth::Bearer(&rev2),
            )
            .await;
        assert_eq!(r.body["status"], "terminated", "{n}: {}", r.text);
        // Nothing more can be certified for them.
        env.post(
            "/api/v1/certifications",
            Auth::Bearer(&certifier),
            &certification(p.death_confirmed.id),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "recipient_terminated", n);
        // Deciding again: the case is closed.
        env.post(&decide, Auth::Bearer(&rev2), &decision("reject"))
            .await
            .assert_error(StatusCode::CONFLICT, "case_closed", n);

        // A second reported death, rejected: payment resumes.
        env.report_death("rev1", &p.death_rejected).await;
        let case = env.open_case("confirm_death", p.death_rejected.id).await;
        let r = env
            .post(
                &format!("/api/v1/review-cases/{case}/decision"),
                Auth::Bearer(&rev2),
                &decision("reject"),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["decision"], "reject", "{n}");
        let r = env
            .get(
                &format!("/api/v1/recipients/{}", p.death_rejected.id),
                Auth::Bearer(&rev2),
            )
            .await;
        assert_eq!(
            (&r.body["status"], &r.body["suspension_reason"]),
            (&json!("active"), &Value::Null),
            "{n}: {}",
            r.text
        );

        // The certification behind a case counts as making it too.
        let made_by_rev1 = env
            .app
            .certify(
                &Actor::Staff("rev1".into()),
                &CertifyRequest {
                    recipient: RecipientRef::Id(p.nanjing.id),
                    channel: Channel::Counter,
                    date: d(TODAY),
                    outcome: Outcome::Doubtful,
                    reason: Some("document_unclear".into()),
                    region_code: None,
                    evidence: None,
                },
            )
            .await
            .unwrap();
        env.post(
            &format!(
                "/api/v1/review-cases/{}/decision",
                made_by_rev1.review_case_id.unwrap()
            ),
            Auth::Bearer(&rev1),
            &decision("approve"),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "maker_checker", n);

        // The doubtful certification, approved: active again, validity renewed.
        let r = env
            .post(
                &format!("/api/v1/review-cases/{doubt_case}/decision"),
                Auth::Bearer(&rev2),
                &decision("approve"),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        let r = env
            .get(
                &format!("/api/v1/recipients/{}", p.doubtful.id),
                Auth::Bearer(&rev2),
            )
            .await;
        assert_eq!(
            (
                &r.body["status"],
                &r.body["suspension_reason"],
                &r.body["last_certified_on"],
                &r.body["next_due_on"]
            ),
            (
                &json!("active"),
                &Value::Null,
                &json!(TODAY),
                &json!("2027-11-30")
            ),
            "{n}: {}",
            r.text
        );

        // The queue: one case still open (rev1's own), three decided.
        let open = env.get("/api/v1/review-cases", Auth::Bearer(&rev2)).await;
        assert_eq!(
            open.body["items"].as_array().unwrap().len(),
            1,
            "{n}: {}",
            open.text
        );
        let decided = env
            .get("/api/v1/review-cases?status=decided", Auth::Bearer(&rev2))
            .await;
        assert_eq!(
            decided.body["items"].as_array().unwrap().len(),
            3,
            "{n}: {}",
            decided.text
        );
        env.get("/api/v1/review-cases?status=whatever", Auth::Bearer(&rev2))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 5. Lock-out
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn five_failed_logins_lock_the_account_and_unknown_users_look_like_wrong_passwords() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let user = env.user("cert", Role::Certifier, "3201").await;
        let code = env.code(&user);

        let unknown = env.login_reply("nobody", "guess", &code).await;
        unknown.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials", n);
        let wrong_password = env.login_reply(&user.name, "guess", &code).await;
        wrong_password.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials", n);
        assert_eq!(unknown.body, wrong_password.body, "{n}");
        let stale = user
            .secret
            .code_at(env.clock.now().timestamp() as u64 - 3600);
        let wrong_code = env.login_reply(&user.name, &user.password, &stale).await;
        assert_eq!(wrong_code.status, StatusCode::UNAUTHORIZED, "{n}");
        assert_eq!(wrong_code.body, wrong_password.body, "{n}");
        for _ in 0..3 {
            env.login_reply(&user.name, "guess", &code)
                .await
                .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials", n);
        }
        // Five failures: even the right password and code are refused now.
        env.login_reply(&user.name, &user.password, &code)
            .await
            .assert_error(StatusCode::TOO_MANY_REQUESTS, "account_locked", n);
        // Still locked 14 minutes later; free again after 15.
        env.clock.advance(Duration::minutes(14));
        env.login_reply(&user.name, &user.password, &env.code(&user))
            .await
            .assert_error(StatusCode::TOO_MANY_REQUESTS, "account_locked", n);
        env.clock.advance(Duration::minutes(2));
        env.login(&user).await;

        // The same happens to a name that does not exist (nothing tells them apart).
        for _ in 0..5 {
            env.login_reply("nobody", "guess", &code)
                .await
                .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials", n);
        }
        env.login_reply("nobody", "guess", &code)
            .await
            .assert_error(StatusCode::TOO_MANY_REQUESTS, "account_locked", n);
        env.finish().await;
    }
}

#[tokio::test]
async fn failed_logins_older_than_fifteen_minutes_do_not_count_towards_the_lock() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let user = env.user("cert", Role::Certifier, "3201").await;
        for _ in 0..4 {
            env.login_reply(&user.name, "guess", &env.code(&user))
                .await
                .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials", n);
        }
        env.clock.advance(Duration::minutes(16));
        env.login_reply(&user.name, "guess", &env.code(&user))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials", n);
        env.login(&user).await;
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 6. CSRF
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn cookie_sessions_need_the_csrf_header_to_change_things_and_bearer_tokens_do_not() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let user = env.user("cert", Role::Certifier, "3201").await;
        let session = env.login(&user).await;
        let pensioner = env.people.nanjing.id;

        let cookie = session
            .set_cookies
            .iter()
            .find(|c| c.starts_with("lifecert_session="))
            .unwrap();
        let attributes: Vec<&str> = cookie.split(';').map(str::trim).collect();
        assert_eq!(
            attributes[0],
            format!("lifecert_session={}", session.token),
            "{n}"
        );
        assert!(attributes.contains(&"HttpOnly"), "{n}: {cookie}");
        assert!(attributes.contains(&"SameSite=Strict"), "{n}: {cookie}");
        assert!(attributes.contains(&"Path=/"), "{n}: {cookie}");
        let csrf_cookie = session
            .set_cookies
            .iter()
            .find(|c| c.starts_with("lifecert_csrf="))
            .unwrap();
        assert!(
            csrf_cookie.starts_with(&format!("lifecert_csrf={};", session.csrf)),
            "{n}: {csrf_cookie}"
        );

        // Reading needs only the cookie.
        env.get("/api/v1/recipients", Auth::Cookie(&session.token, None))
            .await
            .assert_status(StatusCode::OK, n);
        // Changing something needs the token from login as well.
        env.post(
            "/api/v1/certifications",
            Auth::Cookie(&session.token, None),
            &certification(pensioner),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_failed", n);
        env.post(
            "/api/v1/certifications",
            Auth::Cookie(&session.token, Some("forged")),
            &certification(pensioner),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_failed", n);
        assert!(
            env.app
                .store()
                .certifications_of(pensioner)
                .await
                .unwrap()
                .is_empty(),
            "{n}"
        );
        env.post(
            "/api/v1/certifications",
            Auth::Cookie(&session.token, Some(&session.csrf)),
            &certification(pensioner),
        )
        .await
        .assert_status(StatusCode::CREATED, n);
        // A Bearer token cannot be sent by a foreign page: no CSRF header needed.
        env.post(
            "/api/v1/certifications",
            Auth::Bearer(&session.token),
            &certification(pensioner),
        )
        .await
        .assert_status(StatusCode::CREATED, n);

        // Logging out is a change too; it clears both cookies.
        env.post(
            "/api/v1/auth/logout",
            Auth::Cookie(&session.token, None),
            &json!({}),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "csrf_failed", n);
        let r = env
            .post(
                "/api/v1/auth/logout",
                Auth::Cookie(&session.token, Some(&session.csrf)),
                &json!({}),
            )
            .await;
        r.assert_status(StatusCode::NO_CONTENT, n);
        let cleared: Vec<&str> = r
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(
            cleared
                .iter()
                .any(|c| c.starts_with("lifecert_session=;") && c.contains("Max-Age=0")),
            "{n}: {cleared:?}"
        );
        env.get("/api/v1/recipients", Auth::Cookie(&session.token, None))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", n);
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 7. Sessions
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn logout_ends_the_session_and_idle_sessions_expire() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let user = env.user("cert", Role::Certifier, "3201").await;
        let first = env.login(&user).await;
        env.get("/api/v1/recipients", Auth::Bearer(&first.token))
            .await
            .assert_status(StatusCode::OK, n);
        // The same one-time code is accepted once only.
        env.login_reply(&user.name, &user.password, &env.code(&user))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials", n);

        env.post(
            "/api/v1/auth/logout",
            Auth::Bearer(&first.token),
            &json!({}),
        )
        .await
        .assert_status(StatusCode::NO_CONTENT, n);
        env.get("/api/v1/recipients", Auth::Bearer(&first.token))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", n);
        env.post(
            "/api/v1/auth/logout",
            Auth::Bearer(&first.token),
            &json!({}),
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", n);

        // Idle time counts from the last request, not from login.
        env.clock.advance(Duration::seconds(30));
        let second = env.login(&user).await;
        assert_ne!(second.token, first.token, "{n}");
        for _ in 0..2 {
            env.clock.advance(Duration::minutes(29));
            env.get("/api/v1/recipients", Auth::Bearer(&second.token))
                .await
                .assert_status(StatusCode::OK, n);
        }
        // More than 30 minutes without use: the session has expired ...
        env.clock.advance(Duration::minutes(31));
        env.get("/api/v1/recipients", Auth::Bearer(&second.token))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "session_expired", n);
        // ... and stays ended.
        env.get("/api/v1/recipients", Auth::Bearer(&second.token))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", n);

        // A day later (the FixedClock-style jump), a fresh session also ends.
        let third = env.login(&user).await;
        env.clock.set(d("2026-12-01"));
        env.get("/api/v1/recipients", Auth::Cookie(&third.token, None))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "session_expired", n);
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 8. Errors
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn errors_have_one_shape_and_every_response_has_a_request_id() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let user = env.user("cert", Role::Certifier, "3201").await;
        let login = env
            .login_reply(&user.name, &user.password, &env.code(&user))
            .await;
        login.assert_status(StatusCode::OK, n);
        assert!(login.headers.contains_key("x-request-id"), "{n}");
        let token = login.body["token"].as_str().unwrap().to_string();
        let other = env.get("/healthz", Auth::Anonymous).await;
        assert_ne!(
            login.headers["x-request-id"], other.headers["x-request-id"],
            "{n}: request ids are unique"
        );

        // Malformed JSON, wrong fields, a missing content type: 422 with the error shape.
        env.request(
            Method::POST,
            "/api/v1/auth/login",
            Auth::Anonymous,
            Some(b"{\"username\": ".to_vec()),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.post(
            "/api/v1/auth/login",
            Auth::Anonymous,
            &json!({"username": "cert"}),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.request(
            Method::POST,
            "/api/v1/certifications",
            Auth::Bearer(&token),
            Some(b"not json".to_vec()),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        let no_content_type = Request::post("/api/v1/certifications")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::from(
                serde_json::to_vec(&certification(env.people.nanjing.id)).unwrap(),
            ))
            .unwrap();
        env.send(no_content_type).await.assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_input",
            n,
        );
        env.get("/api/v1/recipients?limit=many", Auth::Bearer(&token))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);

        // Requests that parse but ask for the impossible.
        for (body, what) in [
            (
                json!({"recipient_id": env.people.nanjing.id, "channel": "counter", "date": "2026-12-01"}),
                "a future date",
            ),
            (
                json!({"recipient_id": env.people.nanjing.id, "channel": "passive_data", "date": TODAY}),
                "a channel staff do not record",
            ),
            (
                json!({"recipient_id": env.people.nanjing.id, "channel": "counter", "date": TODAY, "outcome": "fail"}),
                "a fail without a reason",
            ),
            (
                json!({"recipient_id": env.people.nanjing.id, "channel": "counter", "date": TODAY,
                       "evidence": {"place": "x".repeat(5000)}}),
                "more than 4 KiB of evidence",
            ),
        ] {
            env.post("/api/v1/certifications", Auth::Bearer(&token), &body)
                .await
                .assert_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    &format!("{n}: {what}"),
                );
        }
        env.post(
            "/api/v1/certifications",
            Auth::Bearer(&token),
            &certification(999_999),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);

        // Unknown routes.
        for path in ["/api/v1/nothing-here", "/nothing", "/api/v2/recipients"] {
            env.get(path, Auth::Bearer(&token)).await.assert_error(
                StatusCode::NOT_FOUND,
                "not_found",
                n,
            );
        }

        // Over 256 KiB: 413 payload_too_large, before anything is parsed or written.
        let huge = json!({"recipient_id": env.people.nanjing.id, "channel": "counter", "date": TODAY,
                          "evidence": {"place": "x".repeat(300 * 1024)}});
        env.post("/api/v1/certifications", Auth::Bearer(&token), &huge)
            .await
            .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", n);
        env.post(
            "/api/v1/auth/login",
            Auth::Anonymous,
            &json!({"username": "x".repeat(300 * 1024), "password": "p", "totp": "123456"}),
        )
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", n);
        assert!(
            env.app
                .store()
                .certifications_of(env.people.nanjing.id)
                .await
                .unwrap()
                .is_empty(),
            "{n}"
        );
        env.finish().await;
    }
}

#[tokio::test]
async fn a_wrong_method_gets_405_with_the_error_shape() {
    for b in backends().await {
        let env = Env::new(b).await;
        let r = env.get("/api/v1/certifications", Auth::Anonymous).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
        assert!(
            r.body["error"]["code"].is_string(),
            "{}: {:?}",
            env.name(),
            r.text
        );
        env.finish().await;
    }
}

#[tokio::test]
async fn a_path_id_that_is_not_a_number_names_nothing() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let user = env.user("rev", Role::Reviewer, "3201").await;
        let token = env.login(&user).await.token;
        for (method, path, body) in [
            (Method::GET, "/api/v1/recipients/abc", None),
            (Method::GET, "/api/v1/recipients/99999999999999999999", None),
            (
                Method::POST,
                "/api/v1/review-cases/abc/decision",
                Some(serde_json::to_vec(&decision("approve")).unwrap()),
            ),
        ] {
            env.request(method, path, Auth::Bearer(&token), body)
                .await
                .assert_error(StatusCode::NOT_FOUND, "not_found", &format!("{n}: {path}"));
        }
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 9. OpenAPI
// ---------------------------------------------------------------------------------

/// Every route the router serves. A new route goes here, into the router and into the
/// OpenAPI document together: the test compares all three.
const ROUTES: [(&str, &str); 23] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/recipients"),
    ("post", "/api/v1/recipients"),
    ("get", "/api/v1/recipients/{id}"),
    ("patch", "/api/v1/recipients/{id}"),
    ("get", "/api/v1/recipients/{id}/timeline"),
    ("get", "/api/v1/recipients/{id}/service-records"),
    ("post", "/api/v1/appeals"),
    ("get", "/api/v1/home-visits"),
    ("post", "/api/v1/home-visits"),
    ("post", "/api/v1/home-visits/{id}/assign"),
    ("post", "/api/v1/home-visits/{id}/complete"),
    ("post", "/api/v1/service-records"),
    ("post", "/api/v1/certifications"),
    ("get", "/api/v1/review-cases"),
    ("post", "/api/v1/review-cases/{id}/decision"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/audit/verify"),
];

#[tokio::test]
async fn openapi_document_describes_every_route_the_router_serves() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let r = env.get("/api/v1/openapi.json", Auth::Anonymous).await;
        r.assert_status(StatusCode::OK, n);
        assert!(
            r.body["openapi"].as_str().unwrap().starts_with("3."),
            "{n}: {}",
            r.body["openapi"]
        );
        let paths = r.body["paths"].as_object().unwrap();
        let documented: BTreeSet<(String, String)> = paths
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .unwrap()
                    .keys()
                    .filter(|k| {
                        ["get", "post", "put", "patch", "delete", "head", "options"]
                            .contains(&k.as_str())
                    })
                    .map(move |m| (m.clone(), path.clone()))
            })
            .collect();
        let served: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        assert_eq!(documented, served, "{n}");
        for (method, path) in ROUTES {
            let op = &paths[path][method];
            assert!(op["responses"].is_object(), "{n}: {method} {path}");
        }
        let schemes = &r.body["components"]["securitySchemes"];
        assert!(
            schemes["bearer"].is_object() && schemes["session"].is_object(),
            "{n}"
        );

        // And the router does serve each of them (none falls through to the 404).
        for (method, path) in ROUTES {
            let concrete = path.replace("{id}", "1");
            let r = env
                .request(
                    method.to_uppercase().parse().unwrap(),
                    &concrete,
                    Auth::Anonymous,
                    (method != "get").then(|| b"{}".to_vec()),
                )
                .await;
            assert!(
                r.status != StatusCode::NOT_FOUND && r.status != StatusCode::METHOD_NOT_ALLOWED,
                "{n}: {method} {path} is documented but answers {} {}",
                r.status,
                r.text
            );
        }
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 10. Health and metrics
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let r = env.get("/healthz", Auth::Anonymous).await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.text, "ok", "{n}");
        let r = env.get("/readyz", Auth::Anonymous).await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.text, "ready", "{n}");

        env.get("/api/v1/recipients/424242", Auth::Anonymous)
            .await
            .assert_status(StatusCode::UNAUTHORIZED, n);
        let r = env.get("/metrics", Auth::Anonymous).await;
        r.assert_status(StatusCode::OK, n);
        assert!(
            r.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/plain"),
            "{n}"
        );
        assert!(r.text.contains("lifecert_http_requests_total"), "{n}");
        assert!(
            r.text.contains(
                "lifecert_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
            ),
            "{n}: {}",
            r.text
        );
        // Counted under the route template: ids in paths never become labels.
        assert!(
            r.text.contains(
                "lifecert_http_requests_total{method=\"GET\",route=\"/api/v1/recipients/{id}\",status=\"401\"} 1"
            ),
            "{n}: {}",
            r.text
        );
        assert!(!r.text.contains("424242"), "{n}");
        assert!(
            r.text
                .contains("lifecert_http_request_duration_seconds_count"),
            "{n}"
        );

        // Without a database: not ready, and a 5xx tells nothing about the cause.
        let user = env.user("cert", Role::Certifier, "3201").await;
        let token = env.login(&user).await.token;
        env.app.store().clone().close().await;
        let r = env.get("/readyz", Auth::Anonymous).await;
        r.assert_status(StatusCode::SERVICE_UNAVAILABLE, n);
        env.get("/healthz", Auth::Anonymous)
            .await
            .assert_status(StatusCode::OK, n);
        let r = env.get("/api/v1/recipients", Auth::Bearer(&token)).await;
        r.assert_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", n);
        let message = r.body["error"]["message"].as_str().unwrap().to_lowercase();
        for detail in ["pool", "sql", "sqlite", "postgres", "closed", "database"] {
            assert!(!message.contains(detail), "{n}: {message}");
        }
        env.finish().await;
    }
}
