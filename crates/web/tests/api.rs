//! The HTTP API, driven in-process through the router (no sockets) on SQLite and, when
//! `LIFECERT_TEST_POSTGRES_URL` is set, PostgreSQL: the role × endpoint table, region
//! scope, masking and audited reveals, maker–checker, lock-out, CSRF, sessions, error
//! shapes, the OpenAPI document, health and metrics, and the staff workflows: appeals,
//! home visits, service records, contact updates, registering pensioners and the
//! timeline. In CI a missing PostgreSQL fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test crate: failing loudly is the point

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use http_body_util::BodyExt;
use lifecert_app::access::RecipientQuery;
use lifecert_app::certify::{CertifyRequest, RecipientRef};
use lifecert_app::integration::WebhookSecret;
use lifecert_app::staff::Staff;
use lifecert_app::workflows::AppealAgainst;
use lifecert_app::{Actor, App, Clock};
use lifecert_crypto::{Cipher, KeyRing, TotpSecret};
use lifecert_domain::national_id::check_character;
use lifecert_domain::{Channel, IdScheme, NationalId, Outcome, Policy, RegionScope, Role};
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

/// The OpenCRVS webhook's shared secret in the test router.
const OPENCRVS_SECRET: &str = "test-opencrvs-shared-secret";

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
        Env::with_id_scheme(backend, IdScheme::CnResident).await
    }

    /// The same five pensioners; with the generic scheme they have agency identifiers
    /// (`NJ0000001`, …) and the roll gives their birth dates and genders.
    async fn with_id_scheme(backend: Backend, scheme: IdScheme) -> Env {
        let clock = Arc::new(TestClock::at(d(TODAY)));
        let store = Store::open(&backend.url).await.unwrap();
        let app =
            App::new_with_id_scheme(store, key_ring(), Policy::default(), clock.clone(), scheme)
                .await
                .unwrap();
        let mut numbers = [
            (NANJING_ID.to_string(), "王建国", "320102"),
            (id("320102", "19480203", 13), "李秀英", "320102"),
            (id("320102", "19440506", 21), "张伟", "320102"),
            (id("320102", "19450607", 34), "刘芳", "320102"),
            (id("440106", "19520808", 45), "陈志明", "440106"),
        ];
        let mut csv = String::from("id_number,name,insurance_type,region_code,benefit_start,monthly_amount,phone,residence,country,last_certified_on,paid_through,birth_date,gender\n");
        for (i, (number, name, region)) in numbers.iter_mut().enumerate() {
            let born = match scheme {
                IdScheme::CnResident => String::new(),
                IdScheme::Generic => {
                    *number = format!("NJ{:07}", i + 1);
                    ",1950-01-07,M".to_string()
                }
            };
            let born = if born.is_empty() {
                ",,".to_string()
            } else {
                born
            };
            csv.push_str(&format!(
                "{number},{name},enterprise,{region},2010-02,3000.00,13800138000,domestic,,2026-03-15,2026-10{born}\n"
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
        let router = lifecert_web::router(
            lifecert_web::AppState::new(app.clone(), false)
                .with_opencrvs_secret(WebhookSecret::new(OPENCRVS_SECRET).unwrap()),
        );
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

    async fn patch(&self, path: &str, auth: Auth<'_>, body: &Value) -> Reply {
        self.request(
            Method::PATCH,
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
/// (allowed: its 2xx; refused: 403 `forbidden`). Every authenticated route of [`ROUTES`]
/// has a line (the test checks); `{id}` names the thing of the route's own kind.
#[rustfmt::skip]
const POLICY: [(&str, [bool; 6]); 34] = [
    //                                                   cert rev cons sup aud part
    ("GET /api/v1/recipients",                          [Y,   Y,  Y,   Y,  N,  Y]),
    ("POST /api/v1/recipients",                         [N,   N,  N,   Y,  N,  N]),
    ("GET /api/v1/recipients/{id}",                     [Y,   Y,  Y,   Y,  N,  Y]),
    ("GET /api/v1/recipients/{id}?reveal=true",         [Y,   Y,  N,   Y,  N,  N]),
    ("PATCH /api/v1/recipients/{id}",                   [Y,   N,  N,   Y,  N,  N]),
    ("GET /api/v1/recipients/{id}/timeline",            [Y,   Y,  Y,   Y,  N,  Y]),
    ("GET /api/v1/recipients/{id}/service-records",     [Y,   Y,  Y,   Y,  N,  Y]),
    ("POST /api/v1/service-records",                    [Y,   Y,  Y,   Y,  N,  Y]),
    ("GET /api/v1/certifications?recipient_id={id}",    [Y,   Y,  Y,   Y,  N,  Y]),
    ("GET /api/v1/certifications/{id}",                 [Y,   Y,  Y,   Y,  N,  Y]),
    ("POST /api/v1/certifications",                     [Y,   N,  N,   N,  N,  Y]),
    ("GET /api/v1/review-cases",                        [N,   Y,  N,   Y,  Y,  N]),
    ("GET /api/v1/review-cases/{id}",                   [N,   Y,  N,   Y,  Y,  N]),
    ("POST /api/v1/review-cases/{id}/decision",         [N,   Y,  N,   N,  N,  N]),
    ("GET /api/v1/appeals",                             [N,   Y,  N,   Y,  Y,  N]),
    ("GET /api/v1/appeals/{id}",                        [N,   Y,  N,   Y,  Y,  N]),
    ("POST /api/v1/appeals",                            [Y,   N,  Y,   Y,  N,  N]),
    ("GET /api/v1/home-visits",                         [Y,   N,  Y,   Y,  N,  Y]),
    ("GET /api/v1/home-visits/{id}",                    [Y,   N,  Y,   Y,  N,  Y]),
    ("POST /api/v1/home-visits",                        [Y,   N,  Y,   Y,  N,  Y]),
    ("POST /api/v1/home-visits/{id}/assign",            [N,   N,  N,   Y,  N,  N]),
    // Only the certifier the visit is assigned to: the matrix assigns each visit to the
    // `certifier` user (another certifier gets 403 too: see the home visit test).
    ("POST /api/v1/home-visits/{id}/complete",          [Y,   N,  N,   N,  N,  N]),
    ("GET /api/v1/audit",                               [N,   N,  N,   Y,  Y,  N]),
    ("GET /api/v1/audit/verify",                        [N,   N,  N,   Y,  Y,  N]),
    ("GET /api/v1/recoveries",                          [N,   Y,  N,   Y,  Y,  N]),
    ("GET /api/v1/recoveries/{id}",                     [N,   Y,  N,   Y,  Y,  N]),
    ("POST /api/v1/recoveries/{id}/request",            [N,   N,  N,   Y,  N,  N]),
    ("POST /api/v1/recoveries/{id}/payments",           [N,   N,  N,   Y,  N,  N]),
    ("POST /api/v1/recoveries/{id}/write-off",          [N,   N,  N,   Y,  N,  N]),
    // Jobs carry no personal data: not scoped by region. An integration's API key sees
    // its own feed jobs (see the jobs test).
    ("GET /api/v1/jobs",                                [N,   N,  N,   Y,  Y,  N]),
    ("GET /api/v1/jobs/{id}",                           [N,   N,  N,   Y,  Y,  N]),
    ("POST /api/v1/jobs/{id}/retry",                    [N,   N,  N,   Y,  N,  N]),
    // Undelivered notifications are followed up by the region's supervisor.
    ("GET /api/v1/notifications?status=failed",         [N,   N,  N,   Y,  N,  N]),
    // Last: it ends the sessions the other lines use.
    ("POST /api/v1/auth/logout",                        [Y,   Y,  Y,   Y,  Y,  Y]),
];

/// The routes anyone may call, without logging in.
const PUBLIC: [(&str, &str); 6] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/auth/login"),
    // OpenCRVS's check of a new subscription: it echoes a challenge, nothing more.
    ("get", "/webhooks/opencrvs"),
];

/// The routes for other systems, by API key: a staff session is no key (401).
const API_KEY_ROUTES: [(&str, &str); 3] = [
    ("get", "/api/v1/payments/{month}/instructions"),
    ("post", "/api/v1/feeds/{source}"),
    ("post", "/dci/registry/notify"),
];

/// The routes for other systems that sign each request with a shared secret: a staff
/// session is no signature (401).
const SIGNED_ROUTES: [(&str, &str); 1] = [("post", "/webhooks/opencrvs")];

/// A valid body for `POST /api/v1/recipients` (the import's columns).
fn new_recipient(id_number: &str, region: &str) -> Value {
    json!({
        "id_number": id_number,
        "name": "赵敏",
        "insurance_type": "enterprise",
        "region_code": region,
        "benefit_start": "2016-04",
        "monthly_amount": "3567.20",
        "phone": "13700137000",
        "last_certified_on": "2026-06-01",
        "paid_through": "2026-10",
    })
}

const VISIT_ADDRESS: &str = "南京市玄武区中山路1号3单元502室";

fn visit_request(recipient_id: i64, window_end: &str) -> Value {
    json!({"recipient_id": recipient_id, "window_start": TODAY, "window_end": window_end,
           "address": VISIT_ADDRESS, "reason": "行动不便，无法到柜台认证"})
}

fn appeal(recipient_id: i64, against: &str) -> Value {
    json!({"recipient_id": recipient_id, "against": against,
           "grounds": "本人健在，已到社区服务中心当面核实"})
}

/// A recovery case, open: a new pensioner of 320102 paid through October whose death on
/// 15 August is reported and confirmed, so September and October were
/// overpaid (2 × 3,567.20 yuan). `seq` makes the ID number.
async fn overpaid(env: &Env, seq: u32) -> i64 {
    let number = id("320102", "19410101", seq);
    env.app
        .create_recipient(
            &fixture_staff(),
            &serde_json::from_value(new_recipient(&number, "320102")).unwrap(),
        )
        .await
        .unwrap();
    let nid = NationalId::parse(&number).unwrap();
    env.app
        .report_death(
            &Actor::Staff("clerk".into()),
            &nid,
            d("2026-08-15"),
            "public_security",
        )
        .await
        .unwrap();
    env.app
        .confirm_death(&Actor::Staff("clerk".into()), &nid)
        .await
        .unwrap()
        .recovery_case_id
        .unwrap()
}

/// A home visit booked (by the fixture's supervisor) for a pensioner, window to 10 Dec.
async fn booked_visit(env: &Env, recipient_id: i64) -> i64 {
    env.app
        .book_home_visit(
            &fixture_staff(),
            recipient_id,
            d(TODAY),
            d("2026-12-10"),
            VISIT_ADDRESS,
            "行动不便",
        )
        .await
        .unwrap()
        .id
}

/// What the matrix calls the endpoints with: one thing of each kind, and fresh ones for
/// the calls that use something up (a visit to assign or complete, an ID number).
struct MatrixFixture {
    /// 王建国: active, in 320102.
    pensioner: i64,
    /// 李秀英: suspended today after a doubtful certification, so there is something to
    /// appeal.
    suspended: i64,
    /// That doubtful certification.
    certification: i64,
    /// A reported death to confirm.
    case: i64,
    appeal: i64,
    visit: i64,
    /// An open recovery case.
    recovery: i64,
    /// A queued cycle job (nobody runs jobs here).
    job: i64,
    seq: AtomicUsize,
}

impl MatrixFixture {
    async fn new(env: &Env) -> MatrixFixture {
        let p = &env.people;
        // A death reported by a clerk: the one reviewer may decide it.
        env.report_death("clerk", &p.death_rejected).await;
        let case = env.open_case("confirm_death", p.death_rejected.id).await;
        let doubtful = env
            .app
            .certify(
                &Actor::Staff("clerk".into()),
                &CertifyRequest {
                    recipient: RecipientRef::Id(p.doubtful.id),
                    channel: Channel::Video,
                    date: d(TODAY),
                    outcome: Outcome::Doubtful,
                    reason: Some("photo_unclear".into()),
                    region_code: None,
                    evidence: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(doubtful.status, "suspended");
        let appeal = env
            .app
            .lodge_appeal(
                &fixture_staff(),
                p.doubtful.id,
                AppealAgainst::Suspension,
                None,
                "photo was blurred, the pensioner is alive",
            )
            .await
            .unwrap()
            .id;
        MatrixFixture {
            pensioner: p.nanjing.id,
            suspended: p.doubtful.id,
            certification: doubtful.certification_id,
            case,
            appeal,
            visit: booked_visit(env, p.nanjing.id).await,
            recovery: overpaid(env, 99).await,
            job: queued_job(env, "1999-12-31").await,
            seq: AtomicUsize::new(100),
        }
    }

    /// The path and body of one call to an endpoint of [`POLICY`].
    async fn call(&self, env: &Env, endpoint: &str) -> (String, Option<Value>) {
        let (_, template) = endpoint.split_once(' ').unwrap();
        let thing = match template {
            "/api/v1/recoveries/{id}/request" | "/api/v1/recoveries/{id}/write-off" => {
                overpaid(env, self.seq.fetch_add(1, Ordering::SeqCst) as u32).await
            }
            "/api/v1/recoveries/{id}/payments" => {
                let case = overpaid(env, self.seq.fetch_add(1, Ordering::SeqCst) as u32).await;
                env.app
                    .request_recovery(&fixture_staff(), case, d(TODAY), None)
                    .await
                    .unwrap();
                case
            }
            "/api/v1/recoveries/{id}" => self.recovery,
            "/api/v1/home-visits/{id}/assign" => booked_visit(env, self.pensioner).await,
            "/api/v1/home-visits/{id}/complete" => {
                let visit = booked_visit(env, self.pensioner).await;
                env.app
                    .assign_home_visit(&fixture_staff(), visit, "certifier")
                    .await
                    .unwrap();
                visit
            }
            "/api/v1/home-visits/{id}" => self.visit,
            "/api/v1/jobs/{id}" => self.job,
            "/api/v1/jobs/{id}/retry" => {
                let seq = self.seq.fetch_add(1, Ordering::SeqCst);
                let job = queued_job(env, &format!("matrix-{seq}")).await;
                mark_dead(env, job).await;
                job
            }
            t if t.starts_with("/api/v1/certifications/") => self.certification,
            t if t.starts_with("/api/v1/review-cases/") => self.case,
            t if t.starts_with("/api/v1/appeals/") => self.appeal,
            _ => self.pensioner,
        };
        let p = self.pensioner;
        let body = match endpoint {
            "POST /api/v1/recipients" => {
                let seq = self.seq.fetch_add(1, Ordering::SeqCst) as u32;
                Some(new_recipient(&id("320102", "19600101", seq), "320102"))
            }
            "PATCH /api/v1/recipients/{id}" => Some(json!({"phone": "13900139000"})),
            "POST /api/v1/service-records" => {
                Some(json!({"recipient_id": p, "kind": "consultation", "note": "问发放日期"}))
            }
            "POST /api/v1/certifications" => Some(certification(p)),
            "POST /api/v1/review-cases/{id}/decision" => Some(decision("reject")),
            "POST /api/v1/appeals" => Some(appeal(self.suspended, "suspension")),
            "POST /api/v1/home-visits" => Some(visit_request(p, "2026-12-10")),
            "POST /api/v1/home-visits/{id}/assign" => Some(json!({"certifier": "certifier"})),
            "POST /api/v1/home-visits/{id}/complete" => {
                Some(json!({"date": TODAY, "outcome": "pass"}))
            }
            "POST /api/v1/recoveries/{id}/request" => Some(json!({"requested_on": TODAY})),
            "POST /api/v1/recoveries/{id}/payments" => {
                Some(json!({"amount": "100.00", "received_on": TODAY, "reference": "ICBC-1"}))
            }
            "POST /api/v1/recoveries/{id}/write-off" => {
                Some(json!({"reason": "遗产不足，无法追回"}))
            }
            _ => None,
        };
        (template.replace("{id}", &thing.to_string()), body)
    }
}

/// A cycle job queued for a period, as the scheduler would (no worker runs here).
async fn queued_job(env: &Env, period: &str) -> i64 {
    env.app
        .store()
        .queue_period_job(
            &lifecert_store::NewJob {
                kind: "cycle",
                source: "",
                format: "",
                payload: &[],
                period_key: Some(period),
                max_attempts: 5,
                created_by: "system",
            },
            "2026-11-30T09:00:00.000Z",
        )
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("period {period} was queued before"))
}

/// As if its last attempt had failed.
async fn mark_dead(env: &Env, job: i64) {
    let store = env.app.store();
    sqlx::query(&store.dialect().sql(
        "UPDATE jobs SET status = 'dead', attempts = 5, error = 'the database was unreachable' WHERE id = ?",
    ))
    .bind(job)
    .execute(store.pool())
    .await
    .unwrap();
}

fn success_of(endpoint: &str) -> StatusCode {
    match endpoint {
        "POST /api/v1/recipients"
        | "POST /api/v1/service-records"
        | "POST /api/v1/certifications"
        | "POST /api/v1/appeals"
        | "POST /api/v1/home-visits"
        | "POST /api/v1/recoveries/{id}/payments" => StatusCode::CREATED,
        "POST /api/v1/auth/logout" => StatusCode::NO_CONTENT,
        _ => StatusCode::OK,
    }
}

#[test]
fn the_policy_table_covers_every_route_that_needs_a_login() {
    let listed: BTreeSet<(String, String)> = POLICY
        .iter()
        .map(|(endpoint, _)| {
            let (method, path) = endpoint.split_once(' ').unwrap();
            let path = path.split('?').next().unwrap();
            (method.to_lowercase(), path.to_string())
        })
        .collect();
    let needing_login: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|route| {
            !PUBLIC.contains(route)
                && !API_KEY_ROUTES.contains(route)
                && !SIGNED_ROUTES.contains(route)
        })
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(listed, needing_login);
}

#[tokio::test]
async fn role_endpoint_matrix_follows_the_written_policy_and_anonymous_calls_get_401() {
    for b in backends().await {
        let env = Env::new(b).await;
        let mut tokens = Vec::new();
        for role in ROLES {
            tokens.push(env.staff(role.as_str(), role, "3201").await);
        }
        let fixture = MatrixFixture::new(&env).await;

        let mut wrong = Vec::new();
        // The integration routes take an API key or a signature: a staff session of any
        // role is neither.
        for (method, template) in API_KEY_ROUTES.into_iter().chain(SIGNED_ROUTES) {
            let path = template
                .replace("{month}", "2026-11")
                .replace("{source}", "hospital_visit")
                .replace("{id}", "1");
            for (i, role) in ROLES.iter().enumerate() {
                let r = env
                    .request(
                        method.to_uppercase().parse().unwrap(),
                        &path,
                        Auth::Bearer(&tokens[i]),
                        None,
                    )
                    .await;
                if r.status != StatusCode::UNAUTHORIZED {
                    wrong.push(format!(
                        "{role} {method} {template}: expected 401, got {} {}",
                        r.status, r.text
                    ));
                }
            }
        }
        for (endpoint, allowed) in POLICY {
            let (method, _) = endpoint.split_once(' ').unwrap();
            let method: Method = method.parse().unwrap();
            let success = success_of(endpoint);
            let bytes =
                |body: &Option<Value>| body.as_ref().map(|v| serde_json::to_vec(v).unwrap());

            let (path, body) = fixture.call(&env, endpoint).await;
            let anonymous = env
                .request(method.clone(), &path, Auth::Anonymous, bytes(&body))
                .await;
            if anonymous.status != StatusCode::UNAUTHORIZED
                || anonymous.body["error"]["code"] != "unauthenticated"
            {
                wrong.push(format!(
                    "anonymous {endpoint}: {} {}",
                    anonymous.status, anonymous.text
                ));
            }
            let (path, body) = fixture.call(&env, endpoint).await;
            let stranger = env
                .request(
                    method.clone(),
                    &path,
                    Auth::Bearer("not-a-session-token"),
                    bytes(&body),
                )
                .await;
            if stranger.status != StatusCode::UNAUTHORIZED {
                wrong.push(format!(
                    "unknown token {endpoint}: {} {}",
                    stranger.status, stranger.text
                ));
            }

            for (i, role) in ROLES.iter().enumerate() {
                let (path, body) = fixture.call(&env, endpoint).await;
                let r = env
                    .request(
                        method.clone(),
                        &path,
                        Auth::Bearer(&tokens[i]),
                        bytes(&body),
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
        for (method, path) in [
            (Method::DELETE, "/api/v1/certifications"),
            (Method::GET, "/api/v1/service-records"),
            (Method::PUT, "/api/v1/recipients/1"),
        ] {
            let r = env.request(method, path, Auth::Anonymous, None).await;
            assert_eq!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{}: {path}: {}",
                env.name(),
                r.text
            );
            assert!(
                r.body["error"]["code"].is_string(),
                "{}: {:?}",
                env.name(),
                r.text
            );
        }
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
            (Method::GET, "/api/v1/recipients/abc/timeline", None),
            (Method::GET, "/api/v1/appeals/1.5", None),
            (
                Method::POST,
                "/api/v1/home-visits/abc/assign",
                Some(serde_json::to_vec(&json!({"certifier": "cert"})).unwrap()),
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
const ROUTES: [(&str, &str); 43] = [
    ("post", "/api/v1/feeds/{source}"),
    ("get", "/api/v1/notifications"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{id}"),
    ("post", "/api/v1/jobs/{id}/retry"),
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
    ("get", "/api/v1/appeals"),
    ("post", "/api/v1/appeals"),
    ("get", "/api/v1/appeals/{id}"),
    ("get", "/api/v1/home-visits"),
    ("post", "/api/v1/home-visits"),
    ("get", "/api/v1/home-visits/{id}"),
    ("post", "/api/v1/home-visits/{id}/assign"),
    ("post", "/api/v1/home-visits/{id}/complete"),
    ("post", "/api/v1/service-records"),
    ("get", "/api/v1/certifications"),
    ("post", "/api/v1/certifications"),
    ("get", "/api/v1/certifications/{id}"),
    ("get", "/api/v1/review-cases"),
    ("get", "/api/v1/review-cases/{id}"),
    ("post", "/api/v1/review-cases/{id}/decision"),
    ("get", "/api/v1/payments/{month}/instructions"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/audit/verify"),
    ("get", "/api/v1/recoveries"),
    ("get", "/api/v1/recoveries/{id}"),
    ("post", "/api/v1/recoveries/{id}/request"),
    ("post", "/api/v1/recoveries/{id}/payments"),
    ("post", "/api/v1/recoveries/{id}/write-off"),
    ("post", "/dci/registry/notify"),
    ("post", "/webhooks/opencrvs"),
    ("get", "/webhooks/opencrvs"),
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
            let concrete = path.replace("{id}", "1").replace("{month}", "2026-11");
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

// ---------------------------------------------------------------------------------
// 11. Appeals
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn appeals_are_decided_by_a_reviewer_who_took_no_part_and_restore_payment() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let certifier = env.staff("cert", Role::Certifier, "3201").await;
        let consultant = env.staff("cons", Role::Consultant, "3201").await;
        let rev1 = env.staff("rev1", Role::Reviewer, "3201").await;
        let rev2 = env.staff("rev2", Role::Reviewer, "3201").await;
        let guangdong = env.staff("cons_gd", Role::Consultant, "44").await;
        let p = &env.people;

        // A death reported by a clerk and confirmed by rev1: payment is terminated.
        let dead = p.death_confirmed.id;
        env.report_death("clerk", &p.death_confirmed).await;
        let case = env.open_case("confirm_death", dead).await;
        env.post(
            &format!("/api/v1/review-cases/{case}/decision"),
            Auth::Bearer(&rev1),
            &decision("approve"),
        )
        .await
        .assert_status(StatusCode::OK, n);
        let path = format!("/api/v1/recipients/{dead}");
        let r = env.get(&path, Auth::Bearer(&rev2)).await;
        assert_eq!(r.body["status"], "terminated", "{n}: {}", r.text);

        // Nothing of another kind to appeal, no pensioner outside one's region, no
        // appeal without grounds.
        env.post(
            "/api/v1/appeals",
            Auth::Bearer(&consultant),
            &appeal(dead, "suspension"),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "invalid_transition", n);
        env.post(
            "/api/v1/appeals",
            Auth::Bearer(&guangdong),
            &appeal(dead, "termination"),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        env.post(
            "/api/v1/appeals",
            Auth::Bearer(&consultant),
            &json!({"recipient_id": dead, "against": "termination", "grounds": "  "}),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.post(
            "/api/v1/appeals",
            Auth::Bearer(&consultant),
            &json!({"recipient_id": dead, "against": "everything", "grounds": "x"}),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);

        // The consultant lodges an appeal against the termination on the pensioner's
        // behalf: a review case of kind appeal, in the reviewers' queue.
        let r = env
            .post(
                "/api/v1/appeals",
                Auth::Bearer(&consultant),
                &appeal(dead, "termination"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        assert_eq!(
            (
                &r.body["kind"],
                &r.body["status"],
                &r.body["recipient_id"],
                &r.body["opened_by"]
            ),
            (
                &json!("appeal"),
                &json!("open"),
                &json!(dead),
                &json!("staff:cons")
            ),
            "{n}: {}",
            r.text
        );
        let termination_appeal = r.body["id"].as_i64().unwrap();
        let queue = env
            .get("/api/v1/review-cases?kind=appeal", Auth::Bearer(&rev2))
            .await;
        assert!(
            ids_of(&queue.body).contains(&termination_appeal),
            "{n}: {}",
            queue.text
        );

        // rev1 confirmed the death: rev1 may not decide the appeal against it.
        let decide = format!("/api/v1/review-cases/{termination_appeal}/decision");
        env.post(&decide, Auth::Bearer(&rev1), &decision("approve"))
            .await
            .assert_error(StatusCode::FORBIDDEN, "maker_checker", n);
        // rev2 took no part and upholds it: payment is active again, the death undone.
        let r = env
            .post(&decide, Auth::Bearer(&rev2), &decision("approve"))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (&r.body["decision"], &r.body["decided_by"]),
            (&json!("approve"), &json!("staff:rev2")),
            "{n}: {}",
            r.text
        );
        let r = env.get(&path, Auth::Bearer(&rev2)).await;
        assert_eq!(
            (&r.body["status"], &r.body["suspension_reason"]),
            (&json!("active"), &Value::Null),
            "{n}: {}",
            r.text
        );
        let row = env
            .app
            .store()
            .recipient_by_id(dead)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.death_date.as_deref(), row.death_source.as_deref()),
            (None, None),
            "{n}"
        );
        // A certification can be recorded for them again.
        env.post(
            "/api/v1/certifications",
            Auth::Bearer(&certifier),
            &certification(dead),
        )
        .await
        .assert_status(StatusCode::CREATED, n);

        // A suspension after a doubtful certification. An appeal rejected changes nothing...
        let doubtful = p.doubtful.id;
        let r = env
            .post(
                "/api/v1/certifications",
                Auth::Bearer(&certifier),
                &json!({"recipient_id": doubtful, "channel": "video", "date": TODAY,
                        "outcome": "doubtful", "reason": "photo_unclear"}),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        assert_eq!(r.body["status"], "suspended", "{n}");
        let doubtful_certification = r.body["certification_id"].as_i64().unwrap();
        let r = env
            .post(
                "/api/v1/appeals",
                Auth::Bearer(&certifier),
                &appeal(doubtful, "suspension"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        let rejected = r.body["id"].as_i64().unwrap();
        env.post(
            &format!("/api/v1/review-cases/{rejected}/decision"),
            Auth::Bearer(&rev1),
            &decision("reject"),
        )
        .await
        .assert_status(StatusCode::OK, n);
        let doubtful_path = format!("/api/v1/recipients/{doubtful}");
        let r = env.get(&doubtful_path, Auth::Bearer(&rev2)).await;
        assert_eq!(
            (&r.body["status"], &r.body["suspension_reason"]),
            (&json!("suspended"), &json!("doubtful")),
            "{n}: {}",
            r.text
        );
        // ... a new appeal, upheld, lifts the suspension.
        let r = env
            .post(
                "/api/v1/appeals",
                Auth::Bearer(&consultant),
                &appeal(doubtful, "suspension"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        let upheld = r.body["id"].as_i64().unwrap();
        env.post(
            &format!("/api/v1/review-cases/{upheld}/decision"),
            Auth::Bearer(&rev2),
            &decision("approve"),
        )
        .await
        .assert_status(StatusCode::OK, n);
        let r = env.get(&doubtful_path, Auth::Bearer(&rev2)).await;
        assert_eq!(
            (&r.body["status"], &r.body["suspension_reason"]),
            (&json!("active"), &Value::Null),
            "{n}: {}",
            r.text
        );

        // A fail: the appeal names the failed certification.
        let nanjing = p.nanjing.id;
        let r = env
            .post(
                "/api/v1/certifications",
                Auth::Bearer(&certifier),
                &json!({"recipient_id": nanjing, "channel": "video", "date": TODAY,
                        "outcome": "fail", "reason": "face_mismatch"}),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        let failed = r.body["certification_id"].as_i64().unwrap();
        let without = env
            .post(
                "/api/v1/appeals",
                Auth::Bearer(&consultant),
                &appeal(nanjing, "fail"),
            )
            .await;
        without.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        assert!(
            without.body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("certification_id"),
            "{n}: {}",
            without.text
        );
        let mut body = appeal(doubtful, "fail");
        body["certification_id"] = json!(doubtful_certification);
        env.post("/api/v1/appeals", Auth::Bearer(&consultant), &body)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        let mut body = appeal(nanjing, "fail");
        body["certification_id"] = json!(doubtful_certification);
        env.post("/api/v1/appeals", Auth::Bearer(&consultant), &body)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        body["certification_id"] = json!(failed);
        let r = env
            .post("/api/v1/appeals", Auth::Bearer(&consultant), &body)
            .await;
        r.assert_status(StatusCode::CREATED, n);
        assert_eq!(r.body["certification_id"], failed, "{n}: {}", r.text);
        // Upheld, the fail counts as a pass: validity renewed from its date.
        env.post(
            &format!("/api/v1/review-cases/{}/decision", r.body["id"]),
            Auth::Bearer(&rev1),
            &decision("approve"),
        )
        .await
        .assert_status(StatusCode::OK, n);
        let r = env
            .get(
                &format!("/api/v1/recipients/{nanjing}"),
                Auth::Bearer(&rev2),
            )
            .await;
        assert_eq!(
            (
                &r.body["status"],
                &r.body["last_certified_on"],
                &r.body["next_due_on"]
            ),
            (&json!("active"), &json!(TODAY), &json!("2027-11-30")),
            "{n}: {}",
            r.text
        );

        // All four decided; none left open.
        let r = env
            .get("/api/v1/appeals?status=decided", Auth::Bearer(&rev2))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(ids_of(&r.body).len(), 4, "{n}: {}", r.text);
        let r = env.get("/api/v1/appeals", Auth::Bearer(&rev2)).await;
        assert_eq!(r.body["items"], json!([]), "{n}: {}", r.text);
        env.finish().await;
    }
}

/// Two fails (61 and 60 days ago) and a death reported today, for the appeal window.
async fn appeal_window_fixture(env: &Env) -> [i64; 2] {
    let certifier = env.staff("cert", Role::Certifier, "3201").await;
    let mut failed = [0; 2];
    for (i, date) in ["2026-09-30", "2026-10-01"].into_iter().enumerate() {
        let r = env
            .post(
                "/api/v1/certifications",
                Auth::Bearer(&certifier),
                &json!({"recipient_id": env.people.nanjing.id, "channel": "video", "date": date,
                        "outcome": "fail", "reason": "liveness_failed"}),
            )
            .await;
        r.assert_status(StatusCode::CREATED, env.name());
        failed[i] = r.body["certification_id"].as_i64().unwrap();
    }
    env.report_death("clerk", &env.people.death_rejected).await;
    failed
}

#[tokio::test]
async fn appeals_within_sixty_days_of_the_decision_are_accepted() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let [_, sixty_days_ago] = appeal_window_fixture(&env).await;
        let consultant = env.user("cons", Role::Consultant, "3201").await;
        let token = env.login(&consultant).await.token;
        let p = &env.people;

        let mut body = appeal(p.nanjing.id, "fail");
        body["certification_id"] = json!(sixty_days_ago);
        env.post("/api/v1/appeals", Auth::Bearer(&token), &body)
            .await
            .assert_status(StatusCode::CREATED, n);
        // The suspension of today, appealed on the 60th day.
        env.clock.set(d("2027-01-29"));
        let token = env.login(&consultant).await.token;
        env.post(
            "/api/v1/appeals",
            Auth::Bearer(&token),
            &appeal(p.death_rejected.id, "suspension"),
        )
        .await
        .assert_status(StatusCode::CREATED, n);
        env.finish().await;
    }
}

#[tokio::test]
async fn appeals_more_than_sixty_days_after_the_decision_are_refused_with_409() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let [sixty_one_days_ago, _] = appeal_window_fixture(&env).await;
        let consultant = env.user("cons", Role::Consultant, "3201").await;
        let token = env.login(&consultant).await.token;
        let p = &env.people;

        let mut body = appeal(p.nanjing.id, "fail");
        body["certification_id"] = json!(sixty_one_days_ago);
        env.post("/api/v1/appeals", Auth::Bearer(&token), &body)
            .await
            .assert_error(StatusCode::CONFLICT, "appeal_window_closed", n);
        // The suspension of today, appealed on the 61st day.
        env.clock.set(d("2027-01-30"));
        let token = env.login(&consultant).await.token;
        env.post(
            "/api/v1/appeals",
            Auth::Bearer(&token),
            &appeal(p.death_rejected.id, "suspension"),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "appeal_window_closed", n);
        // Nothing was opened.
        let appeals = env
            .app
            .review_queue(&fixture_staff(), Some("appeal"), None, 100)
            .await
            .unwrap();
        assert!(appeals.is_empty(), "{n}: {appeals:?}");
        env.finish().await;
    }
}

/// Maker–checker reaches back to the report that opened the case: whoever reported a
/// death took part in terminating payment, however long the confirmation took.
#[tokio::test]
async fn whoever_reported_a_death_may_not_decide_the_appeal_against_its_termination() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let reporter = env.user("rev1", Role::Reviewer, "3201").await;
        let checker = env.user("rev2", Role::Reviewer, "3201").await;
        let consultant = env.user("cons", Role::Consultant, "3201").await;
        let p = &env.people;

        env.report_death("rev1", &p.death_confirmed).await;
        let case = env.open_case("confirm_death", p.death_confirmed.id).await;
        // The report is confirmed ten days later ...
        env.clock.set(d("2026-12-10"));
        let checker = env.login(&checker).await.token;
        let reporter = env.login(&reporter).await.token;
        let consultant = env.login(&consultant).await.token;
        env.post(
            &format!("/api/v1/review-cases/{case}/decision"),
            Auth::Bearer(&checker),
            &decision("approve"),
        )
        .await
        .assert_status(StatusCode::OK, n);
        let r = env
            .post(
                "/api/v1/appeals",
                Auth::Bearer(&consultant),
                &appeal(p.death_confirmed.id, "termination"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        let decide = format!("/api/v1/review-cases/{}/decision", r.body["id"]);
        // ... and neither the reviewer who confirmed it nor the one who reported it may
        // decide the appeal.
        env.post(&decide, Auth::Bearer(&checker), &decision("approve"))
            .await
            .assert_error(StatusCode::FORBIDDEN, "maker_checker", n);
        env.post(&decide, Auth::Bearer(&reporter), &decision("approve"))
            .await
            .assert_error(StatusCode::FORBIDDEN, "maker_checker", n);
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 12. Home visits
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn home_visits_are_booked_assigned_in_region_and_completed_by_the_assigned_certifier() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let consultant = env.staff("cons", Role::Consultant, "3201").await;
        let supervisor = env.user("sup", Role::Supervisor, "3201").await;
        let sup = env.login(&supervisor).await.token;
        let certifier = env.staff("cert", Role::Certifier, "3201").await;
        let other_certifier = env.staff("cert2", Role::Certifier, "3201").await;
        env.user("cert_gd", Role::Certifier, "44").await;
        env.user("rev", Role::Reviewer, "3201").await;
        let p = &env.people;

        // Booking: the address comes back decrypted.
        let r = env
            .post(
                "/api/v1/home-visits",
                Auth::Bearer(&consultant),
                &visit_request(p.nanjing.id, "2026-12-10"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        assert_eq!(
            (
                &r.body["recipient_id"],
                &r.body["status"],
                &r.body["address"],
                &r.body["window_start"],
                &r.body["window_end"],
                &r.body["booked_by"],
                &r.body["assigned_to"],
                &r.body["overdue"]
            ),
            (
                &json!(p.nanjing.id),
                &json!("booked"),
                &json!(VISIT_ADDRESS),
                &json!(TODAY),
                &json!("2026-12-10"),
                &json!("staff:cons"),
                &Value::Null,
                &json!(false)
            ),
            "{n}: {}",
            r.text
        );
        let visit = r.body["id"].as_i64().unwrap();
        let r = env
            .get(&format!("/api/v1/home-visits/{visit}"), Auth::Bearer(&sup))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["address"], VISIT_ADDRESS, "{n}: {}", r.text);

        // Bookings that cannot be.
        for (body, what) in [
            (
                visit_request(p.nanjing.id, "2026-11-29"),
                "a window over before it starts",
            ),
            (
                json!({"recipient_id": p.nanjing.id, "window_start": "2026-11-20", "window_end": "2026-11-25",
                       "address": VISIT_ADDRESS, "reason": "行动不便"}),
                "a window already over",
            ),
            (
                json!({"recipient_id": p.nanjing.id, "window_start": TODAY, "window_end": "2026-12-10",
                       "address": " ", "reason": "行动不便"}),
                "no address",
            ),
            (
                json!({"recipient_id": p.nanjing.id, "window_start": "30/11/2026", "window_end": "2026-12-10",
                       "address": VISIT_ADDRESS, "reason": "行动不便"}),
                "a date that is not YYYY-MM-DD",
            ),
        ] {
            env.post("/api/v1/home-visits", Auth::Bearer(&consultant), &body)
                .await
                .assert_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    &format!("{n}: {what}"),
                );
        }
        env.post(
            "/api/v1/home-visits",
            Auth::Bearer(&consultant),
            &visit_request(p.guangzhou.id, "2026-12-10"),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);

        // Assigning: to a certifier whose region covers the pensioner, nobody else.
        let assign = format!("/api/v1/home-visits/{visit}/assign");
        for (who, what) in [
            ("rev", "a reviewer"),
            ("cert_gd", "a certifier of Guangdong"),
        ] {
            env.post(&assign, Auth::Bearer(&sup), &json!({"certifier": who}))
                .await
                .assert_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    &format!("{n}: {what}"),
                );
        }
        env.post(&assign, Auth::Bearer(&sup), &json!({"certifier": "nobody"}))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        env.post(
            "/api/v1/home-visits/999999/assign",
            Auth::Bearer(&sup),
            &json!({"certifier": "cert"}),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        let r = env
            .post(&assign, Auth::Bearer(&sup), &json!({"certifier": "cert"}))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (&r.body["status"], &r.body["assigned_to"]),
            (&json!("assigned"), &json!("staff:cert")),
            "{n}: {}",
            r.text
        );

        // Completing: only by the certifier it is assigned to.
        let complete = format!("/api/v1/home-visits/{visit}/complete");
        let pass = json!({"date": TODAY, "outcome": "pass"});
        env.post(&complete, Auth::Bearer(&other_certifier), &pass)
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden", n);
        env.post(
            &complete,
            Auth::Bearer(&certifier),
            &json!({"date": TODAY, "outcome": "maybe"}),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        let r = env.post(&complete, Auth::Bearer(&certifier), &pass).await;
        r.assert_status(StatusCode::OK, n);
        let certification_id = r.body["certification"]["certification_id"]
            .as_i64()
            .unwrap();
        assert_eq!(
            (
                &r.body["visit"]["status"],
                &r.body["visit"]["certification_id"],
                &r.body["certification"]["outcome"],
                &r.body["certification"]["next_due_on"]
            ),
            (
                &json!("completed"),
                &json!(certification_id),
                &json!("pass"),
                &json!("2027-11-30")
            ),
            "{n}: {}",
            r.text
        );
        assert!(
            r.body["visit"]["completed_at"].is_string(),
            "{n}: {}",
            r.text
        );
        // A home_visit certification, and validity renewed.
        let recorded = env
            .app
            .store()
            .certifications_of(p.nanjing.id)
            .await
            .unwrap();
        assert_eq!(recorded.len(), 1, "{n}: {recorded:?}");
        assert_eq!(
            (
                recorded[0].channel.as_str(),
                recorded[0].actor.as_str(),
                recorded[0].outcome.as_str(),
                recorded[0].certified_on.as_str()
            ),
            ("home_visit", "staff:cert", "pass", TODAY),
            "{n}"
        );
        let r = env
            .get(
                &format!("/api/v1/recipients/{}", p.nanjing.id),
                Auth::Bearer(&certifier),
            )
            .await;
        assert_eq!(
            (&r.body["last_certified_on"], &r.body["next_due_on"]),
            (&json!(TODAY), &json!("2027-11-30")),
            "{n}: {}",
            r.text
        );
        let r = env
            .get(
                &format!("/api/v1/recipients/{}/timeline", p.nanjing.id),
                Auth::Bearer(&certifier),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert!(
            r.body["items"].as_array().unwrap().iter().any(|e| {
                e["what"] == "certification.recorded"
                    && e["details"]["channel"] == "home_visit"
                    && e["details"]["certification_id"] == certification_id
            }),
            "{n}: {}",
            r.text
        );
        // Done is done: neither completed nor reassigned again.
        env.post(&complete, Auth::Bearer(&certifier), &pass)
            .await
            .assert_error(StatusCode::CONFLICT, "case_closed", n);
        env.post(&assign, Auth::Bearer(&sup), &json!({"certifier": "cert2"}))
            .await
            .assert_error(StatusCode::CONFLICT, "case_closed", n);

        // No visit to a pensioner whose payment was terminated.
        env.report_death("clerk", &p.death_confirmed).await;
        env.app
            .confirm_death(&Actor::Staff("rev".into()), &p.death_confirmed.nid())
            .await
            .unwrap();
        env.post(
            "/api/v1/home-visits",
            Auth::Bearer(&consultant),
            &visit_request(p.death_confirmed.id, "2026-12-10"),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "recipient_terminated", n);

        // A visit still booked when its window has passed is overdue.
        let r = env
            .post(
                "/api/v1/home-visits",
                Auth::Bearer(&consultant),
                &visit_request(p.doubtful.id, "2026-12-02"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        let late = r.body["id"].as_i64().unwrap();
        let r = env
            .get("/api/v1/home-visits?overdue=true", Auth::Bearer(&sup))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["items"], json!([]), "{n}: {}", r.text);
        env.clock.set(d("2026-12-03"));
        let sup = env.login(&supervisor).await.token;
        let r = env
            .get("/api/v1/home-visits?overdue=true", Auth::Bearer(&sup))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(ids_of(&r.body), BTreeSet::from([late]), "{n}: {}", r.text);
        assert_eq!(r.body["items"][0]["overdue"], true, "{n}: {}", r.text);
        let r = env.get("/api/v1/home-visits", Auth::Bearer(&sup)).await;
        assert_eq!(
            ids_of(&r.body),
            BTreeSet::from([visit, late]),
            "{n}: {}",
            r.text
        );
        let r = env
            .get("/api/v1/home-visits?status=completed", Auth::Bearer(&sup))
            .await;
        assert_eq!(ids_of(&r.body), BTreeSet::from([visit]), "{n}: {}", r.text);
        assert_eq!(r.body["items"][0]["overdue"], false, "{n}: {}", r.text);
        env.get("/api/v1/home-visits?status=lost", Auth::Bearer(&sup))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        // Another region's supervisor sees none of them.
        let guangdong = env.staff("sup_gd", Role::Supervisor, "44").await;
        let r = env
            .get("/api/v1/home-visits", Auth::Bearer(&guangdong))
            .await;
        assert_eq!(r.body["items"], json!([]), "{n}: {}", r.text);
        env.get(
            &format!("/api/v1/home-visits/{visit}"),
            Auth::Bearer(&guangdong),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 13. Service records
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn service_records_take_a_rating_for_satisfaction_only_and_keep_notes_private() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let consultant = env.staff("cons", Role::Consultant, "3201").await;
        let certifier = env.staff("cert", Role::Certifier, "3201").await;
        let auditor = env.staff("aud", Role::Auditor, "").await;
        let p = &env.people;
        let nanjing = p.nanjing.id;
        let record = |kind: &str, rating: Option<i64>, note: &str| json!({"recipient_id": nanjing, "kind": kind, "rating": rating, "note": note});

        // A satisfaction rating of 1 to 5, tied to a certification or not.
        let r = env
            .post(
                "/api/v1/certifications",
                Auth::Bearer(&certifier),
                &certification(nanjing),
            )
            .await;
        let certified = r.body["certification_id"].as_i64().unwrap();
        let mut first = record("satisfaction", Some(5), "窗口服务很耐心，电话13912345678");
        first["certification_id"] = json!(certified);
        let r = env
            .post("/api/v1/service-records", Auth::Bearer(&consultant), &first)
            .await;
        r.assert_status(StatusCode::CREATED, n);
        assert_eq!(
            (
                &r.body["kind"],
                &r.body["rating"],
                &r.body["certification_id"],
                &r.body["recorded_by"]
            ),
            (
                &json!("satisfaction"),
                &json!(5),
                &json!(certified),
                &json!("staff:cons")
            ),
            "{n}: {}",
            r.text
        );
        env.post(
            "/api/v1/service-records",
            Auth::Bearer(&certifier),
            &record("satisfaction", Some(1), "等候时间太长"),
        )
        .await
        .assert_status(StatusCode::CREATED, n);
        env.post(
            "/api/v1/service-records",
            Auth::Bearer(&consultant),
            &record("consultation", None, "询问养老金调整标准"),
        )
        .await
        .assert_status(StatusCode::CREATED, n);

        // What is refused: ratings out of range, a rating where none belongs, none where
        // one does, an unknown kind.
        for (body, what) in [
            (record("satisfaction", Some(6), "x"), "a rating of 6"),
            (record("satisfaction", Some(0), "x"), "a rating of 0"),
            (
                record("satisfaction", None, "x"),
                "satisfaction without a rating",
            ),
            (record("consultation", Some(3), "x"), "a rated consultation"),
            (record("complaint", Some(1), "x"), "a rated complaint"),
            (record("praise", None, "x"), "an unknown kind"),
        ] {
            env.post("/api/v1/service-records", Auth::Bearer(&consultant), &body)
                .await
                .assert_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input",
                    &format!("{n}: {what}"),
                );
        }
        // A certification of someone else is not one of theirs.
        let mut body = record("satisfaction", Some(4), "");
        body["certification_id"] = json!(999_999);
        env.post("/api/v1/service-records", Auth::Bearer(&consultant), &body)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);

        // The list: in order, notes decrypted.
        let r = env
            .get(
                &format!("/api/v1/recipients/{nanjing}/service-records"),
                Auth::Bearer(&certifier),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        let items = r.body["items"].as_array().unwrap();
        let seen: Vec<(&str, Option<i64>, &str)> = items
            .iter()
            .map(|i| {
                (
                    i["kind"].as_str().unwrap(),
                    i["rating"].as_i64(),
                    i["note"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("satisfaction", Some(5), "窗口服务很耐心，电话13912345678"),
                ("satisfaction", Some(1), "等候时间太长"),
                ("consultation", None, "询问养老金调整标准"),
            ],
            "{n}: {}",
            r.text
        );
        // The trail records that a note was taken, not what it says.
        let r = env
            .get(
                &format!("/api/v1/audit?action=service_record.added&recipient_id={nanjing}"),
                Auth::Bearer(&auditor),
            )
            .await;
        assert_eq!(
            r.body["items"].as_array().unwrap().len(),
            3,
            "{n}: {}",
            r.text
        );
        for secret in ["13912345678", "耐心", "等候", "调整标准"] {
            assert!(!r.text.contains(secret), "{n}: {secret} in {}", r.text);
        }

        // Outside the user's region the pensioner is not there, to write or to read.
        let guangzhou = p.guangzhou.id;
        for token in [&consultant, &certifier] {
            env.post(
                "/api/v1/service-records",
                Auth::Bearer(token),
                &json!({"recipient_id": guangzhou, "kind": "consultation", "note": "x"}),
            )
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);
            env.get(
                &format!("/api/v1/recipients/{guangzhou}/service-records"),
                Auth::Bearer(token),
            )
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        }
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 14. Contact details
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn contact_updates_are_audited_encrypted_and_validated() {
    use base64::Engine;
    use lifecert_crypto::Field;

    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let certifier = env.staff("cert", Role::Certifier, "3201").await;
        let auditor = env.staff("aud", Role::Auditor, "").await;
        let p = &env.people;
        let path = format!("/api/v1/recipients/{}", p.nanjing.id);
        const NEW_PHONE: &str = "13912345678";
        const NEW_ADDRESS: &str = "南京市鼓楼区北京西路10号";

        let r = env
            .patch(
                &path,
                Auth::Bearer(&certifier),
                &json!({"phone": NEW_PHONE, "address": NEW_ADDRESS}),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (&r.body["view"], &r.body["id"], &r.body["residence"]),
            (&json!("full"), &json!(p.nanjing.id), &json!("domestic")),
            "{n}: {}",
            r.text
        );
        assert!(!r.text.contains(NEW_PHONE), "{n}: {}", r.text);

        let audit_path = format!(
            "/api/v1/audit?action=recipient.contact_updated&recipient_id={}",
            p.nanjing.id
        );
        let r = env.get(&audit_path, Auth::Bearer(&auditor)).await;
        r.assert_status(StatusCode::OK, n);
        let entries = r.body["items"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{n}: {}", r.text);
        let entry = &entries[0];
        assert_eq!(entry["actor"], "staff:cert", "{n}");
        // Old and new values as base64 of the ciphertext: they decrypt with the key ...
        let keys = key_ring();
        let decrypt = |field: Field, v: &Value| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(
                    v.as_str()
                        .unwrap_or_else(|| panic!("{n}: {v} is not a string")),
                )
                .unwrap();
            keys.decrypt_str(field, &bytes).unwrap()
        };
        let changes = &entry["details"]["changes"];
        assert_eq!(
            decrypt(Field::Phone, &changes["phone"]["old_enc"]),
            "13800138000",
            "{n}"
        );
        assert_eq!(
            decrypt(Field::Phone, &changes["phone"]["new_enc"]),
            NEW_PHONE,
            "{n}"
        );
        assert_eq!(changes["address"]["old_enc"], Value::Null, "{n}: {entry}");
        assert_eq!(
            decrypt(Field::Address, &changes["address"]["new_enc"]),
            NEW_ADDRESS,
            "{n}"
        );
        // ... and nothing readable is left in the trail, nor in the timeline built from it.
        let timeline = env
            .get(&format!("{path}/timeline"), Auth::Bearer(&certifier))
            .await;
        timeline.assert_status(StatusCode::OK, n);
        for text in [entry.to_string(), timeline.text.clone()] {
            for secret in [NEW_PHONE, "13800138000", NEW_ADDRESS, "北京西路"] {
                assert!(!text.contains(secret), "{n}: {secret} in {text}");
            }
        }

        // Refused: a phone that is no number, abroad without a country, a country that
        // does not exist; and none of them changes anything.
        for (body, field) in [
            (json!({"phone": "call me"}), "phone"),
            (json!({"residence": "abroad"}), "country"),
            (json!({"residence": "abroad", "country": "XX"}), "country"),
            (json!({"residence": "moon"}), "residence"),
            (json!({"address": "路".repeat(301)}), "address"),
        ] {
            let r = env.patch(&path, Auth::Bearer(&certifier), &body).await;
            r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(field),
                "{n}: {body}: {}",
                r.text
            );
        }
        let r = env.get(&audit_path, Auth::Bearer(&auditor)).await;
        assert_eq!(
            r.body["items"].as_array().unwrap().len(),
            1,
            "{n}: {}",
            r.text
        );

        // Abroad with a country; then home again.
        let r = env
            .patch(
                &path,
                Auth::Bearer(&certifier),
                &json!({"residence": "abroad", "country": "CA"}),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (&r.body["residence"], &r.body["country"]),
            (&json!("abroad"), &json!("CA")),
            "{n}: {}",
            r.text
        );
        let r = env
            .patch(
                &path,
                Auth::Bearer(&certifier),
                &json!({"residence": "domestic", "country": ""}),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (&r.body["residence"], &r.body["country"]),
            (&json!("domestic"), &Value::Null),
            "{n}: {}",
            r.text
        );

        // Another region's pensioner cannot be changed, even by a certifier.
        env.patch(
            &format!("/api/v1/recipients/{}", p.guangzhou.id),
            Auth::Bearer(&certifier),
            &json!({"phone": NEW_PHONE}),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 15. Registering a pensioner
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn supervisors_register_pensioners_in_their_region_validated_like_an_import() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let supervisor = env.staff("sup", Role::Supervisor, "3201").await;
        let guangdong = env.staff("sup_gd", Role::Supervisor, "44").await;
        let number = id("320102", "19560315", 77);

        let r = env
            .post(
                "/api/v1/recipients",
                Auth::Bearer(&supervisor),
                &new_recipient(&number, "320102"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        let created = r.body["id"].as_i64().unwrap();
        let r = env
            .get(
                &format!("/api/v1/recipients/{created}"),
                Auth::Bearer(&supervisor),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (
                &r.body["id_number"],
                &r.body["name"],
                &r.body["region_code"],
                &r.body["status"],
                &r.body["monthly_amount_fen"],
                &r.body["birth_date"],
                &r.body["last_certified_on"]
            ),
            (
                &json!(masked(&number)),
                &json!("赵敏"),
                &json!("320102"),
                &json!("active"),
                &json!(356_720),
                &json!("1956-03-15"),
                &json!("2026-06-01")
            ),
            "{n}: {}",
            r.text
        );
        let r = env
            .get(
                &format!("/api/v1/recipients?id_number={number}"),
                Auth::Bearer(&supervisor),
            )
            .await;
        assert_eq!(
            ids_of(&r.body),
            BTreeSet::from([created]),
            "{n}: {}",
            r.text
        );

        // The same ID number again.
        env.post(
            "/api/v1/recipients",
            Auth::Bearer(&supervisor),
            &new_recipient(&number, "320102"),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "duplicate", n);
        env.post(
            "/api/v1/recipients",
            Auth::Bearer(&supervisor),
            &new_recipient(NANJING_ID, "320102"),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "duplicate", n);

        // A bad ID number (wrong check character), and other bad columns: 422 naming
        // the field.
        let wrong_check = format!(
            "{}{}",
            &number[..17],
            if number.ends_with('0') { '1' } else { '0' }
        );
        let mut cases = vec![(new_recipient(&wrong_check, "320102"), "id_number")];
        for (field, value) in [
            ("name", json!("")),
            ("insurance_type", json!("private")),
            ("region_code", json!("3201")),
            ("benefit_start", json!("1950-01")),
            ("monthly_amount", json!("12.345")),
            ("phone", json!("not a phone")),
            ("last_certified_on", json!("2027-01-01")),
        ] {
            let mut body = new_recipient(&id("320102", "19570101", 88), "320102");
            body[field] = value;
            cases.push((body, field));
        }
        let mut abroad = new_recipient(&id("320102", "19570101", 88), "320102");
        abroad["residence"] = json!("abroad");
        cases.push((abroad, "country"));
        for (body, field) in cases {
            let r = env
                .post("/api/v1/recipients", Auth::Bearer(&supervisor), &body)
                .await;
            r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{field}:")),
                "{n}: {field}: {}",
                r.text
            );
        }

        // Guangdong's supervisor registers in Guangdong, not in Beijing.
        env.post(
            "/api/v1/recipients",
            Auth::Bearer(&guangdong),
            &new_recipient(&id("110105", "19580101", 12), "110105"),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "out_of_region", n);
        env.post(
            "/api/v1/recipients",
            Auth::Bearer(&guangdong),
            &new_recipient(&id("440106", "19580101", 12), "440106"),
        )
        .await
        .assert_status(StatusCode::CREATED, n);
        // Nothing else was registered.
        let all = env
            .app
            .search_recipients(&fixture_staff(), &RecipientQuery::default())
            .await
            .unwrap();
        assert_eq!(all.len(), 7, "{n}");
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 16. Timeline
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn the_timeline_tells_what_happened_to_a_pensioner_in_order() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let certifier = env.staff("cert", Role::Certifier, "3201").await;
        let consultant = env.staff("cons", Role::Consultant, "3201").await;
        let supervisor = env.staff("sup", Role::Supervisor, "3201").await;
        let reviewer = env.staff("rev", Role::Reviewer, "3201").await;
        let p = &env.people;
        let who = p.doubtful.id;
        let minute = || env.clock.advance(Duration::minutes(1));

        // A doubtful certification suspends payment ...
        let r = env
            .post(
                "/api/v1/certifications",
                Auth::Bearer(&certifier),
                &json!({"recipient_id": who, "channel": "video", "date": TODAY,
                        "outcome": "doubtful", "reason": "photo_unclear"}),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        let doubtful = r.body["certification_id"].as_i64().unwrap();
        minute();
        // ... the pensioner complains ...
        env.post(
            "/api/v1/service-records",
            Auth::Bearer(&consultant),
            &json!({"recipient_id": who, "certification_id": doubtful, "kind": "complaint", "note": "停发前没有通知"}),
        )
        .await
        .assert_status(StatusCode::CREATED, n);
        minute();
        // ... a home visit is booked, assigned and made, and the pass lifts the suspension.
        let r = env
            .post(
                "/api/v1/home-visits",
                Auth::Bearer(&consultant),
                &visit_request(who, "2026-12-10"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        let visit = r.body["id"].as_i64().unwrap();
        minute();
        env.post(
            &format!("/api/v1/home-visits/{visit}/assign"),
            Auth::Bearer(&supervisor),
            &json!({"certifier": "cert"}),
        )
        .await
        .assert_status(StatusCode::OK, n);
        minute();
        let r = env
            .post(
                &format!("/api/v1/home-visits/{visit}/complete"),
                Auth::Bearer(&certifier),
                &json!({"date": TODAY, "outcome": "pass"}),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            r.body["certification"]["status"], "active",
            "{n}: {}",
            r.text
        );
        let passed = r.body["certification"]["certification_id"]
            .as_i64()
            .unwrap();
        minute();
        // Another pensioner's life is not in this one's timeline.
        env.post(
            "/api/v1/certifications",
            Auth::Bearer(&certifier),
            &certification(p.nanjing.id),
        )
        .await
        .assert_status(StatusCode::CREATED, n);

        let r = env
            .get(
                &format!("/api/v1/recipients/{who}/timeline"),
                Auth::Bearer(&reviewer),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        let items = r.body["items"].as_array().unwrap();
        // In time order ...
        let times: Vec<&str> = items.iter().map(|e| e["at"].as_str().unwrap()).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "{n}: {}", r.text);
        // ... with each step of the story, and the kind taken from what happened.
        for e in items {
            let what = e["what"].as_str().unwrap();
            assert_eq!(
                Some(e["kind"].as_str().unwrap()),
                what.split('.').next(),
                "{n}: {e}"
            );
        }
        let story: Vec<(&str, &Value)> = items
            .iter()
            .filter(|e| {
                matches!(
                    e["what"].as_str().unwrap(),
                    "certification.recorded"
                        | "recipient.suspended"
                        | "recipient.resumed"
                        | "service_record.added"
                        | "home_visit.booked"
                        | "home_visit.assigned"
                        | "home_visit.completed"
                )
            })
            .map(|e| (e["what"].as_str().unwrap(), &e["details"]))
            .collect();
        let whats: Vec<&str> = story.iter().map(|(w, _)| *w).collect();
        assert_eq!(
            whats,
            vec![
                "certification.recorded",
                "recipient.suspended",
                "service_record.added",
                "home_visit.booked",
                "home_visit.assigned",
                "certification.recorded",
                "recipient.resumed",
                "home_visit.completed",
            ],
            "{n}: {}",
            r.text
        );
        assert_eq!(
            (
                &story[0].1["certification_id"],
                &story[0].1["outcome"],
                &story[1].1["reason"],
                &story[2].1["kind"],
                &story[3].1["visit_id"],
                &story[4].1["assigned_to"],
                &story[5].1["certification_id"],
                &story[5].1["channel"],
                &story[7].1["certification_id"]
            ),
            (
                &json!(doubtful),
                &json!("doubtful"),
                &json!("doubtful"),
                &json!("complaint"),
                &json!(visit),
                &json!("staff:cert"),
                &json!(passed),
                &json!("home_visit"),
                &json!(passed)
            ),
            "{n}: {}",
            r.text
        );
        // The complaint's note stays out of it.
        assert!(!r.text.contains("停发前没有通知"), "{n}: {}", r.text);

        // Only where the user may look.
        let guangdong = env.staff("cert_gd", Role::Certifier, "44").await;
        env.get(
            &format!("/api/v1/recipients/{who}/timeline"),
            Auth::Bearer(&guangdong),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        env.get(
            "/api/v1/recipients/999999/timeline",
            Auth::Bearer(&reviewer),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        env.finish().await;
    }
}

/// A request with an integration's API key.
async fn with_key(env: &Env, method: Method, path: &str, key: &str, body: &str) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("ApiKey {key}"))
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from(body.to_string()))
        .unwrap();
    env.send(req).await
}

#[tokio::test]
async fn an_uploaded_feed_is_queued_then_ingested_and_its_job_reports_the_summary() {
    for b in backends().await {
        let env = Env::new(b).await;
        let feeds = env
            .app
            .create_api_key(&Actor::System, "hospital", &["feeds".to_string()])
            .await
            .unwrap();
        let other = env
            .app
            .create_api_key(&Actor::System, "other", &["feeds".to_string()])
            .await
            .unwrap();
        let payments = env
            .app
            .create_api_key(&Actor::System, "bank", &["payments".to_string()])
            .await
            .unwrap();
        let feed = format!("record_id,id_number,event_date\nh1,{NANJING_ID},2026-11-20\n");

        let r = with_key(
            &env,
            Method::POST,
            "/api/v1/feeds/hospital_visit",
            &payments,
            &feed,
        )
        .await;
        assert_eq!(
            (r.status, r.body["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{}",
            r.text
        );
        let r = with_key(&env, Method::POST, "/api/v1/feeds/gossip", &feeds, &feed).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);

        let r = with_key(
            &env,
            Method::POST,
            "/api/v1/feeds/hospital_visit",
            &feeds,
            &feed,
        )
        .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}: {}", env.name(), r.text);
        assert_eq!(r.body["status"], "queued");
        let job = r.body["id"].as_i64().unwrap();
        // No job worker runs in these tests: this drain ingests it. Bounded, and
        // yielding rather than sleeping.
        let mut status = String::new();
        for _ in 0..10_000 {
            env.app.run_pending_jobs().await.unwrap();
            let r = with_key(
                &env,
                Method::GET,
                &format!("/api/v1/jobs/{job}"),
                &feeds,
                "",
            )
            .await;
            status = r.body["status"].as_str().unwrap_or_default().to_string();
            if status == "done" || status == "dead" {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(status, "done", "{}", env.name());

        let r = with_key(
            &env,
            Method::GET,
            &format!("/api/v1/jobs/{job}"),
            &feeds,
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["status"], "done", "{}", r.text);
        assert_eq!(
            (
                &r.body["summary"]["exact"],
                &r.body["summary"]["lives_certified"]
            ),
            (&json!(1), &json!(1))
        );
        let r = with_key(
            &env,
            Method::GET,
            &format!("/api/v1/jobs/{job}"),
            &other,
            "",
        )
        .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "another integration's job is not visible"
        );

        // The stored upload held personal data: it is gone once ingested.
        let payload: Vec<u8> = sqlx::query_scalar::<_, Vec<u8>>(
            &env.app
                .store()
                .dialect()
                .sql("SELECT payload FROM jobs WHERE id = ?"),
        )
        .bind(job)
        .fetch_one(env.app.store().pool())
        .await
        .unwrap();
        assert!(payload.is_empty());
        env.finish().await;
    }
}

#[tokio::test]
async fn jobs_are_listed_for_supervisors_and_auditors_and_an_integration_sees_its_own_feeds() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let hospital = env
            .app
            .create_api_key(&Actor::System, "hospital", &["feeds".to_string()])
            .await
            .unwrap();
        let other = env
            .app
            .create_api_key(&Actor::System, "other", &["feeds".to_string()])
            .await
            .unwrap();
        let feed = format!("record_id,id_number,event_date\nh1,{NANJING_ID},2026-11-20\n");
        let mut feeds = Vec::new();
        for key in [&hospital, &other] {
            let r = with_key(
                &env,
                Method::POST,
                "/api/v1/feeds/hospital_visit",
                key,
                &feed,
            )
            .await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{n}: {}", r.text);
            feeds.push(r.body["id"].as_i64().unwrap());
        }
        // The scheduler's jobs for 30 November: the cycle and November's export.
        let scheduled = env
            .app
            .schedule_due_jobs(
                &lifecert_app::schedule::Schedule::parse("00:00", "UTC", 20).unwrap(),
            )
            .await
            .unwrap();
        let (cycle, export) = (scheduled[0].job_id, scheduled[1].job_id);
        let supervisor = env.staff("sup", Role::Supervisor, "").await;
        let auditor = env.staff("aud", Role::Auditor, "32").await;
        let certifier = env.staff("cert", Role::Certifier, "3201").await;

        let r = env.get("/api/v1/jobs", Auth::Bearer(&supervisor)).await;
        r.assert_status(StatusCode::OK, n);
        let ids: Vec<i64> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            ids,
            [export, cycle, feeds[1], feeds[0]],
            "{n}: newest first"
        );
        assert!(r.body["next_before_id"].is_null(), "{n}");
        let job = &r.body["items"][1];
        assert_eq!(
            (
                &job["kind"],
                &job["status"],
                &job["period"],
                &job["attempts"],
                &job["source"]
            ),
            (
                &json!("cycle"),
                &json!("queued"),
                &json!("2026-11-30"),
                &json!(0),
                &Value::Null
            ),
            "{n}"
        );
        let r = env
            .get("/api/v1/jobs?limit=3", Auth::Bearer(&auditor))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["items"].as_array().unwrap().len(), 3, "{n}");
        assert_eq!(r.body["next_before_id"], json!(feeds[1]), "{n}");
        let r = env
            .get(
                &format!("/api/v1/jobs?before_id={}", feeds[1]),
                Auth::Bearer(&auditor),
            )
            .await;
        assert_eq!(ids_of(&r.body), BTreeSet::from([feeds[0]]), "{n}");
        let r = env
            .get(
                "/api/v1/jobs?kind=feed&status=queued",
                Auth::Bearer(&auditor),
            )
            .await;
        assert_eq!(ids_of(&r.body), BTreeSet::from([feeds[0], feeds[1]]), "{n}");
        env.get("/api/v1/jobs?kind=reminders", Auth::Bearer(&auditor))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.get("/api/v1/jobs?status=failed", Auth::Bearer(&auditor))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        let r = env
            .get(&format!("/api/v1/jobs/{cycle}"), Auth::Bearer(&auditor))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["period"], "2026-11-30", "{n}");
        env.get("/api/v1/jobs", Auth::Bearer(&certifier))
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden", n);
        env.get("/api/v1/jobs/999999", Auth::Bearer(&supervisor))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);

        // An integration sees its own uploads and nothing else.
        let r = with_key(&env, Method::GET, "/api/v1/jobs", &hospital, "").await;
        assert_eq!(r.status, StatusCode::OK, "{n}: {}", r.text);
        assert_eq!(ids_of(&r.body), BTreeSet::from([feeds[0]]), "{n}");
        for id in [feeds[1], cycle] {
            let r = with_key(
                &env,
                Method::GET,
                &format!("/api/v1/jobs/{id}"),
                &hospital,
                "",
            )
            .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{n}: {}", r.text);
        }

        // A dead job: a supervisor queues it again (audited); anything else is refused.
        mark_dead(&env, export).await;
        let r = env
            .get("/api/v1/jobs?status=dead", Auth::Bearer(&supervisor))
            .await;
        assert_eq!(ids_of(&r.body), BTreeSet::from([export]), "{n}");
        let retry = format!("/api/v1/jobs/{export}/retry");
        env.post(&retry, Auth::Bearer(&auditor), &json!({}))
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden", n);
        let r = env
            .post(&retry, Auth::Bearer(&supervisor), &json!({}))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (&r.body["status"], &r.body["attempts"]),
            (&json!("queued"), &json!(0)),
            "{n}"
        );
        env.post(&retry, Auth::Bearer(&supervisor), &json!({}))
            .await
            .assert_error(StatusCode::CONFLICT, "invalid_transition", n);
        let r = env
            .get(
                "/api/v1/audit?action=job.retried",
                Auth::Bearer(&supervisor),
            )
            .await;
        let entries = r.body["items"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{n}");
        assert_eq!(entries[0]["actor"], "staff:sup", "{n}");
        assert_eq!(entries[0]["details"]["job_id"], json!(export), "{n}");

        // Run: the feeds, the cycle and the export are done; progress is counted.
        assert_eq!(env.app.run_pending_jobs().await.unwrap(), 4, "{n}");
        let r = env
            .get(&format!("/api/v1/jobs/{cycle}"), Auth::Bearer(&auditor))
            .await;
        assert_eq!(r.body["status"], "done", "{n}: {}", r.text);
        assert_eq!(r.body["summary"]["as_of"], "2026-11-30", "{n}");
        assert_eq!(r.body["progress"], json!({"done": 5, "total": 5}), "{n}");
        let r = with_key(
            &env,
            Method::GET,
            &format!("/api/v1/jobs/{}", feeds[0]),
            &hospital,
            "",
        )
        .await;
        assert_eq!(
            r.body["progress"],
            json!({"done": 1, "total": 1}),
            "{n}: {}",
            r.text
        );
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 12. Death notifications pushed by civil registration: DCI notify, OpenCRVS webhook
// ---------------------------------------------------------------------------------

/// A DCI notify envelope from `crvs.example.gov` carrying `events`.
fn dci_notify(message_id: &str, events: Value) -> Value {
    json!({
        "signature": "Signature: namespace=\"dci\", algorithm=\"ed25519\", signature=\"...\"",
        "header": {
            "version": "1.0.0",
            "message_id": message_id,
            "message_ts": "2026-11-20T08:30:00+08:00",
            "action": "notify",
            "sender_id": "crvs.example.gov",
            "receiver_id": "pension.example.gov",
            "total_count": events.as_array().unwrap().len(),
            "is_msg_encrypted": false
        },
        "message": {"transaction_id": "T-1", "notify_event": events}
    })
}

/// A CRVS death event in DCI's person record (birth date and sex from the ID number).
fn dci_death(reference_id: &str, id_number: &str, death_date: &str) -> Value {
    let name = if id_number == NANJING_ID {
        json!({"sur_name": "王", "given_name": "建国"})
    } else {
        json!({"sur_name": "欧阳", "given_name": "素心"})
    };
    let birthdate = format!(
        "{}-{}-{}",
        &id_number[6..10],
        &id_number[10..12],
        &id_number[12..14]
    );
    let male = (id_number.as_bytes()[16] - b'0') % 2 == 1;
    json!({
        "reference_id": reference_id,
        "timestamp": "2026-11-20T08:29:00+08:00",
        "data": {
            "version": "1.0.0",
            "reg_event_type": "death",
            "reg_record_type": "spdci-extensions-dci:Person",
            "reg_records": {
                "identifier_type": "UIN",
                "identifier": id_number,
                "name": name,
                "sex": if male { "male" } else { "female" },
                "birthdate": birthdate,
                "deathdate": death_date,
                "address": {"region_code": "320102"}
            }
        }
    })
}

async fn count(env: &Env, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(env.app.store().pool())
        .await
        .unwrap()
}

/// Rows that a pushed message leaves: inbound messages, feed records, audit entries.
async fn footprint(env: &Env) -> [i64; 3] {
    [
        count(env, "SELECT COUNT(*) FROM inbound_messages").await,
        count(env, "SELECT COUNT(*) FROM feed_records").await,
        count(env, "SELECT COUNT(*) FROM audit_log").await,
    ]
}

/// A pensioner's payment status and suspension reason, as a supervisor sees them.
async fn payment_status(env: &Env, supervisor: &str, recipient_id: i64) -> (Value, Value) {
    let r = env
        .get(
            &format!("/api/v1/recipients/{recipient_id}"),
            Auth::Bearer(supervisor),
        )
        .await;
    r.assert_status(StatusCode::OK, env.name());
    (
        r.body["status"].clone(),
        r.body["suspension_reason"].clone(),
    )
}

async fn open_cases(env: &Env, kind: &str, recipient_id: i64) -> usize {
    env.app
        .review_queue(&fixture_staff(), Some(kind), Some("open"), 100)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.recipient_id == recipient_id)
        .count()
}

fn suspended_for_death() -> (Value, Value) {
    (json!("suspended"), json!("death_reported"))
}

fn active() -> (Value, Value) {
    (json!("active"), Value::Null)
}

#[tokio::test]
async fn a_dci_death_notification_suspends_the_pensioner_once_however_often_it_comes() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let nanjing = env.people.nanjing.id;
        let registry = env
            .app
            .create_api_key(&Actor::System, "civil-registry", &["feeds".to_string()])
            .await
            .unwrap();
        let bank = env
            .app
            .create_api_key(&Actor::System, "bank", &["payments".to_string()])
            .await
            .unwrap();
        let sup = env.staff("sup", Role::Supervisor, "").await;
        let stranger = id("320102", "19400101", 77);
        let mut birth = dci_death("BR-9", &stranger, "2026-11-10");
        birth["data"]["reg_event_type"] = "live_birth".into();
        let message = dci_notify(
            "msg-1",
            json!([
                dci_death("DR-1", NANJING_ID, "2026-11-10T23:40:00+08:00"),
                dci_death("DR-2", &stranger, "2026-11-11"),
                birth
            ]),
        );
        let text = message.to_string();
        let notify = "/dci/registry/notify";

        // An integration with the feeds scope, and nobody else.
        let r = env
            .request(
                Method::POST,
                notify,
                Auth::Anonymous,
                Some(text.clone().into_bytes()),
            )
            .await;
        r.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", n);
        let r = with_key(&env, Method::POST, notify, "lck_not-a-key", &text).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{n}: {}", r.text);
        let r = with_key(&env, Method::POST, notify, &bank, &text).await;
        r.assert_error(StatusCode::FORBIDDEN, "forbidden", n);
        assert_eq!(footprint(&env).await[..2], [0, 0], "{n}");
        assert_eq!(payment_status(&env, &sup, nanjing).await, active(), "{n}");

        let r = with_key(&env, Method::POST, notify, &registry, &text).await;
        r.assert_status(StatusCode::OK, n);
        assert!(r.headers.get("x-lifecert-replayed").is_none(), "{n}");
        let ack = &r.body;
        assert_eq!(ack["header"]["action"], "on-notify", "{n}: {}", r.text);
        assert_eq!(ack["header"]["status"], "succ");
        assert_eq!(ack["header"]["receiver_id"], "crvs.example.gov");
        assert_eq!(ack["header"]["sender_id"], "pension.example.gov");
        assert_eq!(ack["header"]["total_count"], 3);
        assert_eq!(ack["message"]["ack_status"], "ACK");
        assert_eq!(ack["message"]["transaction_id"], "T-1");
        assert_eq!(
            ack["header"]["message_id"],
            ack["message"]["correlation_id"]
        );
        let results: Vec<[&str; 3]> = ack["message"]["notify_status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                [
                    s["reference_id"].as_str().unwrap(),
                    s["status"].as_str().unwrap(),
                    s["result"].as_str().unwrap(),
                ]
            })
            .collect();
        assert_eq!(
            results,
            [
                ["DR-1", "succ", "matched"],
                ["DR-2", "succ", "unmatched"],
                ["BR-9", "rjct", "rejected"]
            ],
            "{n}: {}",
            r.text
        );
        assert_eq!(
            ack["message"]["notify_status"][2]["status_reason_code"],
            "rjct.event_type.not_supported"
        );
        // Nothing personal comes back.
        for personal in [NANJING_ID, stranger.as_str(), "王", "欧阳", "1950-01-07"] {
            assert!(!r.text.contains(personal), "{n}: {personal} in {}", r.text);
        }
        // The matched pensioner: suspended at once, a reviewer to confirm the death.
        assert_eq!(
            payment_status(&env, &sup, nanjing).await,
            suspended_for_death(),
            "{n}"
        );
        assert_eq!(open_cases(&env, "confirm_death", nanjing).await, 1, "{n}");
        let first = r.text.clone();

        // The same message again, even re-signed, re-timed and spaced otherwise: the
        // same answer, and nothing changes.
        let before = footprint(&env).await;
        let mut resent = message.clone();
        resent["signature"] = "Signature: resent".into();
        resent["header"]["message_ts"] = "2026-11-21T02:00:00Z".into();
        for body in [text.clone(), serde_json::to_string_pretty(&resent).unwrap()] {
            let r = with_key(&env, Method::POST, notify, &registry, &body).await;
            r.assert_status(StatusCode::OK, n);
            assert_eq!(r.text, first, "{n}");
            assert_eq!(
                r.headers
                    .get("x-lifecert-replayed")
                    .map(|v| v.to_str().unwrap()),
                Some("true"),
                "{n}"
            );
        }
        assert_eq!(footprint(&env).await, before, "{n}");
        assert_eq!(open_cases(&env, "confirm_death", nanjing).await, 1, "{n}");

        // The same message id with other content is refused, and changes nothing.
        let mut changed = message.clone();
        changed["message"]["notify_event"][0]["data"]["reg_records"]["deathdate"] =
            "2026-11-09".into();
        let r = with_key(&env, Method::POST, notify, &registry, &changed.to_string()).await;
        r.assert_error(StatusCode::CONFLICT, "message_id_reused", n);
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("msg-1"));
        assert_eq!(footprint(&env).await, before, "{n}");

        // Another sender may use the same message id: it is another message.
        let mut other_sender =
            dci_notify("msg-1", json!([dci_death("DR-1", &stranger, "2026-11-11")]));
        other_sender["header"]["sender_id"] = "crvs.other.gov".into();
        let r = with_key(
            &env,
            Method::POST,
            notify,
            &registry,
            &other_sender.to_string(),
        )
        .await;
        r.assert_status(StatusCode::OK, n);
        assert!(r.headers.get("x-lifecert-replayed").is_none(), "{n}");
        assert_eq!(r.body["message"]["notify_status"][0]["result"], "unmatched");

        // One audit entry a message, without personal data.
        let r = env
            .get(
                "/api/v1/audit?action=inbound_message.processed",
                Auth::Bearer(&sup),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            r.body["items"].as_array().unwrap().len(),
            2,
            "{n}: {}",
            r.text
        );
        assert!(
            r.text.contains("msg-1") && r.text.contains("crvs.example.gov"),
            "{n}"
        );
        for personal in [NANJING_ID, stranger.as_str(), "王", "欧阳"] {
            assert!(!r.text.contains(personal), "{n}: {personal} in {}", r.text);
        }
        env.finish().await;
    }
}

#[tokio::test]
async fn a_malformed_dci_envelope_is_refused_whole_naming_the_field() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let registry = env
            .app
            .create_api_key(&Actor::System, "civil-registry", &["feeds".to_string()])
            .await
            .unwrap();
        let sup = env.staff("sup", Role::Supervisor, "").await;
        let good = dci_notify(
            "msg-2",
            json!([
                dci_death("DR-1", NANJING_ID, "2026-11-10"),
                dci_death("DR-2", &env.people.doubtful.number, "2026-11-10"),
                dci_death("DR-3", &env.people.guangzhou.number, "2026-11-10"),
                dci_death("DR-4", &env.people.death_confirmed.number, "2026-11-10"),
            ]),
        );
        let mut no_id = good.clone();
        no_id["header"]
            .as_object_mut()
            .unwrap()
            .remove("message_id");
        let mut bad_birth = good.clone();
        bad_birth["message"]["notify_event"][3]["data"]["reg_records"]["birthdate"] =
            "1950-02-30".into();
        let mut search = good.clone();
        search["header"]["action"] = "search".into();
        let mut no_events = good.clone();
        no_events["message"]["notify_event"] = json!([]);
        let mut miscounted = good.clone();
        miscounted["header"]["total_count"] = 5.into();
        let cases = [
            (no_id.to_string(), "header.message_id: is required"),
            (
                bad_birth.to_string(),
                "message.notify_event[3].data.reg_records.birthdate: ",
            ),
            (search.to_string(), "header.action: "),
            (no_events.to_string(), "message.notify_event: "),
            (miscounted.to_string(), "header.total_count: "),
            ("{\"header\": [".to_string(), "body: not valid JSON"),
        ];
        for (body, field) in cases {
            let r = with_key(&env, Method::POST, "/dci/registry/notify", &registry, &body).await;
            r.assert_error(StatusCode::BAD_REQUEST, "invalid_envelope", n);
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with(field),
                "{n}: {message} (wanted {field})"
            );
        }
        // Refused whole: not one event of the message was applied.
        assert_eq!(footprint(&env).await[..2], [0, 0], "{n}");
        assert_eq!(
            payment_status(&env, &sup, env.people.nanjing.id).await,
            active(),
            "{n}"
        );
        env.finish().await;
    }
}

/// An OpenCRVS `DEATH_REGISTERED` delivery: the Task with its tracking id, an
/// informant and the deceased.
fn opencrvs_delivery(bundle_id: &str, tracking_id: &str, who: &Pensioner, died: &str) -> Value {
    let birth = format!(
        "{}-{}-{}",
        &who.number[6..10],
        &who.number[10..12],
        &who.number[12..14]
    );
    let male = (who.number.as_bytes()[16] - b'0') % 2 == 1;
    json!({
        "timestamp": "2026-11-20T08:00:00.000Z",
        "id": "webhook-subscription-1",
        "event": {
            "hub": {"topic": "DEATH_REGISTERED"},
            "context": [{
                "resourceType": "Bundle",
                "id": bundle_id,
                "type": "document",
                "entry": [
                    {"resource": {
                        "resourceType": "Task",
                        "focus": {"reference": "Composition/c-1"},
                        "identifier": [{
                            "system": "http://opencrvs.org/specs/id/death-tracking-id",
                            "value": tracking_id
                        }]
                    }},
                    {"resource": {
                        "resourceType": "Patient", "id": "informant",
                        "name": [{"family": ["陈"], "given": ["小红"]}]
                    }},
                    {"resource": {
                        "resourceType": "Patient", "id": "deceased",
                        "identifier": [{
                            "value": who.number,
                            "type": {"coding": [{
                                "system": "http://opencrvs.org/specs/identifier-type",
                                "code": "NATIONAL_ID"
                            }]}
                        }],
                        "name": [{"family": "某", "given": ["人"]}],
                        "gender": if male { "male" } else { "female" },
                        "birthDate": birth,
                        "deceasedBoolean": true,
                        "deceasedDateTime": died
                    }}
                ]
            }]
        }
    })
}

fn hmac_hex(parts: &[&[u8]]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(OPENCRVS_SECRET.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What OpenCRVS signs: `sha256:` + encodeURIComponent(body).
fn opencrvs_signature(body: &str) -> String {
    let mut encoded = String::from("sha256:");
    for b in body.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("sha256={}", hmac_hex(&[encoded.as_bytes()]))
}

fn webhook_request(
    method: Method,
    path: &str,
    body: &str,
    signatures: &[(&str, &str)],
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in signatures {
        req = req.header(*name, *value);
    }
    req.body(Body::from(body.to_string())).unwrap()
}

async fn deliver(env: &Env, body: &str, signatures: &[(&str, &str)]) -> Reply {
    env.send(webhook_request(
        Method::POST,
        "/webhooks/opencrvs",
        body,
        signatures,
    ))
    .await
}

#[tokio::test]
async fn an_opencrvs_death_is_applied_only_under_the_shared_secret_and_only_once() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let p = &env.people;
        let sup = env.staff("sup", Role::Supervisor, "").await;
        let body = opencrvs_delivery("bundle-1", "DW0AB12", &p.guangzhou, "2026-11-12").to_string();
        let good = format!("sha256={}", hmac_hex(&[body.as_bytes()]));
        let of_other_content = format!("sha256={}", hmac_hex(&[b"{}"]));
        let tampered = body.replace("2026-11-12", "2026-11-02");

        // Unsigned, signed wrongly, or a good signature over another body: 401, and
        // nothing is stored or applied.
        for (text, signatures) in [
            (body.as_str(), vec![]),
            (
                body.as_str(),
                vec![("x-hub-signature-256", of_other_content.as_str())],
            ),
            (
                body.as_str(),
                vec![("x-hub-signature", of_other_content.as_str())],
            ),
            (body.as_str(), vec![("x-hub-signature-256", "sha256=")]),
            (
                body.as_str(),
                vec![("x-hub-signature-256", "not-a-signature")],
            ),
            (
                tampered.as_str(),
                vec![("x-hub-signature-256", good.as_str())],
            ),
        ] {
            let r = deliver(&env, text, &signatures).await;
            r.assert_error(StatusCode::UNAUTHORIZED, "invalid_signature", n);
        }
        assert_eq!(footprint(&env).await[..2], [0, 0], "{n}");
        assert_eq!(
            payment_status(&env, &sup, p.guangzhou.id).await,
            active(),
            "{n}"
        );
        assert_eq!(open_cases(&env, "confirm_death", p.guangzhou.id).await, 0);

        // Signed with the shared secret: applied.
        let r = deliver(&env, &body, &[("x-hub-signature-256", &good)]).await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (
                &r.body["id"],
                &r.body["topic"],
                &r.body["event"]["reference_id"]
            ),
            (
                &json!("bundle-1"),
                &json!("DEATH_REGISTERED"),
                &json!("DW0AB12")
            ),
            "{n}: {}",
            r.text
        );
        assert_eq!(r.body["event"]["result"], "matched", "{n}: {}", r.text);
        assert!(!r.text.contains(&p.guangzhou.number), "{n}");
        assert_eq!(
            payment_status(&env, &sup, p.guangzhou.id).await,
            suspended_for_death(),
            "{n}"
        );
        assert_eq!(open_cases(&env, "confirm_death", p.guangzhou.id).await, 1);
        assert_eq!(
            count(
                &env,
                "SELECT COUNT(*) FROM feed_records WHERE record_id = 'opencrvs:DW0AB12'"
            )
            .await,
            1,
            "{n}"
        );

        // Delivered again (OpenCRVS retries): the same answer, nothing changes.
        let before = footprint(&env).await;
        let again = deliver(&env, &body, &[("x-hub-signature-256", &good)]).await;
        again.assert_status(StatusCode::OK, n);
        assert_eq!(again.text, r.text, "{n}");
        assert!(again.headers.get("x-lifecert-replayed").is_some(), "{n}");
        assert_eq!(footprint(&env).await, before, "{n}");

        // The same bundle id with another death is refused.
        let other =
            opencrvs_delivery("bundle-1", "DW0AB12", &p.guangzhou, "2026-11-03").to_string();
        let signature = format!("sha256={}", hmac_hex(&[other.as_bytes()]));
        let r = deliver(&env, &other, &[("x-hub-signature-256", &signature)]).await;
        r.assert_error(StatusCode::CONFLICT, "message_id_reused", n);

        // OpenCRVS's own signature (X-Hub-Signature over the percent-encoded body).
        let second =
            opencrvs_delivery("bundle-2", "DW0AB13", &p.death_rejected, "2026-11-13").to_string();
        let r = deliver(
            &env,
            &second,
            &[("x-hub-signature", &opencrvs_signature(&second))],
        )
        .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["event"]["result"], "matched", "{n}: {}", r.text);
        assert_eq!(
            payment_status(&env, &sup, p.death_rejected.id).await,
            suspended_for_death(),
            "{n}"
        );

        // A signed but malformed delivery names the field.
        let mut no_date = opencrvs_delivery("bundle-3", "DW0AB14", &p.doubtful, "2026-11-13");
        no_date["event"]["context"][0]["entry"][2]["resource"]
            .as_object_mut()
            .unwrap()
            .remove("deceasedDateTime");
        let no_date = no_date.to_string();
        let signature = format!("sha256={}", hmac_hex(&[no_date.as_bytes()]));
        let r = deliver(&env, &no_date, &[("x-hub-signature-256", &signature)]).await;
        r.assert_error(StatusCode::BAD_REQUEST, "invalid_envelope", n);
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("event.context[0].entry[2].resource.deceasedDateTime"));

        // OpenCRVS's check of a new subscription.
        let r = env
            .get(
                "/webhooks/opencrvs?mode=subscribe&challenge=c4a1%2B9&topic=DEATH_REGISTERED",
                Auth::Anonymous,
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body, json!({"challenge": "c4a1+9"}));
        let r = env
            .get(
                "/webhooks/opencrvs?mode=subscribe&challenge=c&topic=BIRTH_REGISTERED",
                Auth::Anonymous,
            )
            .await;
        r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.finish().await;
    }
}

#[tokio::test]
async fn without_a_shared_secret_the_opencrvs_webhook_is_off() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let off = lifecert_web::router(lifecert_web::AppState::new(env.app.clone(), false));
        let body =
            opencrvs_delivery("bundle-1", "DW0AB12", &env.people.nanjing, "2026-11-12").to_string();
        let signature = format!("sha256={}", hmac_hex(&[body.as_bytes()]));
        for req in [
            webhook_request(
                Method::POST,
                "/webhooks/opencrvs",
                &body,
                &[("x-hub-signature-256", &signature)],
            ),
            webhook_request(
                Method::GET,
                "/webhooks/opencrvs?mode=subscribe&challenge=c&topic=DEATH_REGISTERED",
                "",
                &[],
            ),
        ] {
            let res = off.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{n}");
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["error"]["code"], "webhook_not_configured", "{n}");
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("LIFECERT_OPENCRVS_SECRET"));
        }
        assert_eq!(footprint(&env).await[..2], [0, 0], "{n}");
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// 18. Recovery cases (追回)
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn recovery_cases_are_requested_paid_back_and_written_off_over_the_api() {
    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let sup1 = env.staff("sup1", Role::Supervisor, "3201").await;
        let sup2 = env.staff("sup2", Role::Supervisor, "3201").await;
        let sup3 = env.staff("sup3", Role::Supervisor, "3201").await;
        let rev = env.staff("rev", Role::Reviewer, "3201").await;
        let auditor = env.staff("aud", Role::Auditor, "").await;
        let guangdong = env.staff("gd", Role::Supervisor, "44").await;
        let case = overpaid(&env, 1).await;
        let path = format!("/api/v1/recoveries/{case}");

        // Listed and read, with its amounts, by reviewers (and filtered).
        let r = env
            .get("/api/v1/recoveries?status=open", Auth::Bearer(&rev))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(ids_of(&r.body), BTreeSet::from([case]), "{n}");
        let item = &r.body["items"][0];
        assert_eq!(
            (
                &item["status"],
                &item["amount_fen"],
                &item["outstanding_fen"],
                &item["region_code"],
                &item["months"]
            ),
            (
                &json!("open"),
                &json!(713_440),
                &json!(713_440),
                &json!("320102"),
                &json!(["2026-09", "2026-10"])
            ),
            "{n}: {}",
            r.text
        );
        let rid = item["recipient_id"].as_i64().unwrap();
        let r = env
            .get(
                &format!("/api/v1/recoveries?recipient_id={rid}&status=recovered"),
                Auth::Bearer(&rev),
            )
            .await;
        assert!(ids_of(&r.body).is_empty(), "{n}: {}", r.text);
        env.get("/api/v1/recoveries?status=instructed", Auth::Bearer(&rev))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        env.get("/api/v1/recoveries?region=44", Auth::Bearer(&rev))
            .await
            .assert_error(StatusCode::FORBIDDEN, "out_of_region", n);
        let r = env.get(&path, Auth::Bearer(&auditor)).await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (&r.body["id"], &r.body["status"], &r.body["payments"]),
            (&json!(case), &json!("open"), &json!([])),
            "{n}: {}",
            r.text
        );
        // Unknown, malformed or out of region: 404.
        env.get("/api/v1/recoveries/987654", Auth::Bearer(&rev))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        env.get("/api/v1/recoveries/abc", Auth::Bearer(&rev))
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found", n);
        env.get(&path, Auth::Bearer(&guangdong)).await.assert_error(
            StatusCode::NOT_FOUND,
            "not_found",
            n,
        );
        let r = env
            .get("/api/v1/recoveries", Auth::Bearer(&guangdong))
            .await;
        assert!(ids_of(&r.body).is_empty(), "{n}: {}", r.text);
        env.post(
            "/api/v1/recoveries/987654/payments",
            Auth::Bearer(&sup1),
            &json!({"amount": "1", "received_on": TODAY, "reference": "X"}),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", n);

        // Money before the bank was asked: 409.
        let payment = |amount: &str, reference: &str| json!({"amount": amount, "received_on": TODAY, "reference": reference});
        env.post(
            &format!("{path}/payments"),
            Auth::Bearer(&sup2),
            &payment("100", "ICBC-0"),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "invalid_transition", n);

        let r = env
            .post(
                &format!("{path}/request"),
                Auth::Bearer(&sup1),
                &json!({"requested_on": "30/11/2026"}),
            )
            .await;
        r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        assert!(r.text.contains("requested_on"), "{n}: {}", r.text);
        let r = env
            .post(
                &format!("{path}/request"),
                Auth::Bearer(&sup1),
                &json!({"requested_on": TODAY, "reference": "宁人社追〔2026〕3号"}),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (
                &r.body["status"],
                &r.body["requested_on"],
                &r.body["requested_by"],
                &r.body["request_reference"]
            ),
            (
                &json!("requested"),
                &json!(TODAY),
                &json!("staff:sup1"),
                &json!("宁人社追〔2026〕3号")
            ),
            "{n}: {}",
            r.text
        );
        env.post(
            &format!("{path}/request"),
            Auth::Bearer(&sup1),
            &json!({"requested_on": TODAY}),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "invalid_transition", n);

        // Amounts are yuan strings; a bad one or one beyond what is owed names the field.
        for (amount, says) in [
            ("abc", "not an amount"),
            ("12.345", "not an amount"),
            ("0", "more than 0"),
            ("7134.41", "7134.40 yuan still outstanding"),
        ] {
            let r = env
                .post(
                    &format!("{path}/payments"),
                    Auth::Bearer(&sup2),
                    &payment(amount, "ICBC-1"),
                )
                .await;
            r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with("amount: ") && message.contains(says),
                "{n}: {amount}: {message}"
            );
        }
        let r = env
            .post(
                &format!("{path}/payments"),
                Auth::Bearer(&sup2),
                &json!({"amount": "10", "received_on": "2026-12-01", "reference": "ICBC-1"}),
            )
            .await;
        r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        assert!(r.text.contains("received_on"), "{n}: {}", r.text);

        let r = env
            .post(
                &format!("{path}/payments"),
                Auth::Bearer(&sup2),
                &payment("2000.00", "ICBC-1"),
            )
            .await;
        r.assert_status(StatusCode::CREATED, n);
        assert_eq!(
            (
                &r.body["status"],
                &r.body["recovered_fen"],
                &r.body["outstanding_fen"],
                &r.body["payments"][0]["amount_fen"],
                &r.body["payments"][0]["reference"],
                &r.body["payments"][0]["recorded_by"]
            ),
            (
                &json!("partially_recovered"),
                &json!(200_000),
                &json!(513_440),
                &json!(200_000),
                &json!("ICBC-1"),
                &json!("staff:sup2")
            ),
            "{n}: {}",
            r.text
        );
        env.post(
            &format!("{path}/payments"),
            Auth::Bearer(&sup2),
            &payment("1", "ICBC-1"),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "duplicate", n);

        // Write-off: not by whoever recorded the request or the last payment, not by a
        // reviewer, and with a reason.
        let write_off = json!({"reason": "继承人放弃继承，遗产不足"});
        for who in [&sup1, &sup2] {
            env.post(&format!("{path}/write-off"), Auth::Bearer(who), &write_off)
                .await
                .assert_error(StatusCode::FORBIDDEN, "maker_checker", n);
        }
        env.post(&format!("{path}/write-off"), Auth::Bearer(&rev), &write_off)
            .await
            .assert_error(StatusCode::FORBIDDEN, "forbidden", n);
        env.post(
            &format!("{path}/write-off"),
            Auth::Bearer(&sup3),
            &json!({"reason": " "}),
        )
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        let r = env
            .post(
                &format!("{path}/write-off"),
                Auth::Bearer(&sup3),
                &write_off,
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(
            (
                &r.body["status"],
                &r.body["recovered_fen"],
                &r.body["written_off_fen"],
                &r.body["outstanding_fen"],
                &r.body["written_off_by"],
                &r.body["closed_on"]
            ),
            (
                &json!("written_off"),
                &json!(200_000),
                &json!(513_440),
                &json!(0),
                &json!("staff:sup3"),
                &json!(TODAY)
            ),
            "{n}: {}",
            r.text
        );
        // Final.
        env.post(
            &format!("{path}/write-off"),
            Auth::Bearer(&sup3),
            &write_off,
        )
        .await
        .assert_error(StatusCode::CONFLICT, "case_closed", n);
        env.post(
            &format!("{path}/payments"),
            Auth::Bearer(&sup2),
            &payment("1", "ICBC-2"),
        )
        .await
        .assert_error(StatusCode::CONFLICT, "case_closed", n);

        // On the trail, and on the pensioner's timeline.
        let r = env
            .get(
                &format!("/api/v1/audit?recipient_id={rid}"),
                Auth::Bearer(&auditor),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        let actions: Vec<(&str, &str)> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
            .filter(|(_, a)| a.starts_with("recovery."))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("staff:sup1", "recovery.requested"),
                ("staff:sup2", "recovery.payment_recorded"),
                ("staff:sup3", "recovery.written_off")
            ],
            "{n}: {}",
            r.text
        );
        let r = env
            .get(
                &format!("/api/v1/recipients/{rid}/timeline"),
                Auth::Bearer(&sup1),
            )
            .await;
        assert!(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["what"] == "recovery.written_off"),
            "{n}: {}",
            r.text
        );
        env.finish().await;
    }
}

// ---------------------------------------------------------------------------------
// Notifications: contact details for them, and the follow-up list of failed ones
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn failed_notifications_are_listed_for_the_regions_supervisor_without_contact_details() {
    use lifecert_app::notifications::DeliveryWorker;
    use lifecert_notify::testing::{FakeGateway, Reply};

    for b in backends().await {
        let env = Env::new(b).await;
        let n = env.name();
        let nanjing = env.staff("sup-nj", Role::Supervisor, "3201").await;
        let canton = env.staff("sup-gz", Role::Supervisor, "44").await;
        let certifier = env.staff("cert-nj", Role::Certifier, "3201").await;
        let p = &env.people;
        let path = format!("/api/v1/recipients/{}", p.nanjing.id);
        const AGENT_PHONE: &str = "13900139000";

        for (body, field) in [
            (json!({"agent_phone": "12345"}), "agent_phone"),
            (json!({"preferred_channel": "fax"}), "preferred_channel"),
            (json!({"preferred_channel": "email"}), "preferred_channel"),
            (json!({"email": "not an address"}), "email"),
        ] {
            let r = env.patch(&path, Auth::Bearer(&certifier), &body).await;
            r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
            assert!(
                r.body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(field),
                "{n}: {body}: {}",
                r.text
            );
        }
        let r = env
            .patch(
                &path,
                Auth::Bearer(&certifier),
                &json!({"agent_name": "王小明", "agent_phone": AGENT_PHONE, "language": "en"}),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        assert!(!r.text.contains(AGENT_PHONE), "{n}: {}", r.text);

        // Everyone is due on 15 March 2027: the 60-day reminders, which the gateway refuses.
        env.app
            .run_cycle(&Actor::System, d("2027-01-20"))
            .await
            .unwrap();
        let gateway = FakeGateway::start().await.unwrap();
        gateway.reply_with(Reply::status(400));
        let notifier = lifecert_notify::Notifier::new(lifecert_notify::NotifySettings {
            sms: Some(lifecert_notify::SmsSettings {
                url: gateway.url("/send"),
                auth_header_name: "Authorization".into(),
                auth_header_value: None,
                body_template: lifecert_notify::DEFAULT_SMS_BODY.into(),
                provider_id_pointer: None,
            }),
            ..Default::default()
        })
        .unwrap();
        let run = env
            .app
            .run_pending_notifications(
                &Arc::new(notifier),
                &DeliveryWorker {
                    name: "api-test".into(),
                    concurrency: 8,
                    lease: DeliveryWorker::default_lease(10_000),
                },
            )
            .await
            .unwrap();
        assert_eq!(run.report.failed, 6, "{n}: {run:?}");

        let r = env
            .get(
                "/api/v1/notifications?status=failed",
                Auth::Bearer(&nanjing),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        let items = r.body["items"].as_array().unwrap();
        assert_eq!(
            items.len(),
            5,
            "{n}: four pensioners and one agent: {}",
            r.text
        );
        let agent: Vec<&Value> = items.iter().filter(|i| i["addressee"] == "agent").collect();
        assert_eq!(agent.len(), 1, "{n}");
        assert_eq!(
            (
                &agent[0]["recipient_id"],
                &agent[0]["kind"],
                &agent[0]["language"],
                &agent[0]["status"],
                &agent[0]["attempts"]
            ),
            (
                &json!(p.nanjing.id),
                &json!("reminder"),
                &json!("en"),
                &json!("failed"),
                &json!(1)
            ),
            "{n}: {}",
            r.text
        );
        assert!(agent[0]["last_error"].as_str().unwrap().contains("400"));
        for secret in [AGENT_PHONE, "13800138000", "王建国", "王小明"] {
            assert!(!r.text.contains(secret), "{n}: {secret} in {}", r.text);
        }
        let r = env
            .get("/api/v1/notifications?status=failed", Auth::Bearer(&canton))
            .await;
        r.assert_status(StatusCode::OK, n);
        assert_eq!(r.body["items"].as_array().unwrap().len(), 1, "{n}");
        env.get(
            "/api/v1/notifications?status=failed&region=44",
            Auth::Bearer(&nanjing),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "out_of_region", n);
        env.get("/api/v1/notifications?status=dead", Auth::Bearer(&nanjing))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);

        // Each attempt is on the pensioner's timeline.
        let r = env
            .get(&format!("{path}/timeline"), Auth::Bearer(&nanjing))
            .await;
        let attempts = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["what"] == "notification.attempt")
            .count();
        assert_eq!(attempts, 2, "{n}: {}", r.text);
        env.finish().await;
    }
}

#[tokio::test]
async fn a_generic_id_scheme_deployment_finds_pensioners_by_agency_identifier() {
    for b in backends().await {
        let env = Env::with_id_scheme(b, IdScheme::Generic).await;
        let n = env.name();
        let supervisor = env.staff("gen-super", Role::Supervisor, "32").await;
        let nanjing = &env.people.nanjing;
        assert_eq!(nanjing.number, "NJ0000001");
        let r = env
            .get(
                "/api/v1/recipients?id_number=nj-000%200001",
                Auth::Bearer(&supervisor),
            )
            .await;
        r.assert_status(StatusCode::OK, n);
        let items = r.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{n}: {}", r.text);
        assert_eq!(items[0]["id"], nanjing.id, "{n}");
        assert_eq!(items[0]["id_number"], "NJ*****01", "{n}");
        assert_eq!(items[0]["birth_date"], "1950-01-07", "{n}");
        assert_eq!(items[0]["gender"], "male", "{n}");
        // A resident ID number is not how this deployment writes identifiers.
        let r = env
            .get("/api/v1/recipients?id_number=N1", Auth::Bearer(&supervisor))
            .await;
        r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        assert!(r.text.contains("generic"), "{n}: {}", r.text);

        // Registering one needs the birth date and gender.
        let mut body = json!({
            "id_number": "NJ0000099", "name": "新来的", "insurance_type": "enterprise",
            "region_code": "320102", "benefit_start": "2015-01", "monthly_amount": "2000",
        });
        let r = env
            .post("/api/v1/recipients", Auth::Bearer(&supervisor), &body)
            .await;
        r.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", n);
        assert!(r.text.contains("birth_date"), "{n}: {}", r.text);
        body["birth_date"] = json!("1955-05-05");
        body["gender"] = json!("女");
        let r = env
            .post("/api/v1/recipients", Auth::Bearer(&supervisor), &body)
            .await;
        assert!(r.status.is_success(), "{n}: {}", r.text);
        let r = env
            .get(
                "/api/v1/recipients?id_number=NJ0000099",
                Auth::Bearer(&supervisor),
            )
            .await;
        assert_eq!(r.body["items"][0]["gender"], "female", "{n}: {}", r.text);
        env.finish().await;
    }
}
