//! Test helpers: a fresh database per test (SQLite file or Postgres database) and the real app
//! on a random loopback port.
#![allow(dead_code)]

pub mod stripe;

use std::collections::HashMap;

use tally::config::Config;
use tally::db::Db;
use tally::server::{self, RunningServer};
use tally::site::{self, SiteFile};
use tally::stripe::SharedApi;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists only for one test.
pub struct TestDb {
    pub url: String,
    _dir: tempfile::TempDir,
}

/// The Postgres server the tests use; `scripts/test.sh` starts one and sets this.
pub fn postgres_admin_url() -> String {
    std::env::var("TALLY_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("TALLY_TEST_POSTGRES_URL is not set: run ./scripts/test.sh, which starts PostgreSQL and sets it")
    })
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("tally.db").display()),
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = postgres_admin_url();
                let name = format!("tally_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("connect to test Postgres");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let _ = conn.close().await;
                let mut url = url::Url::parse(&admin).expect("TALLY_TEST_POSTGRES_URL is a URL");
                url.set_path(&name);
                url.to_string()
            }
        };
        Self { url, _dir: dir }
    }
}

pub fn config_with(db: &TestDb, extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("DATABASE_URL".into(), db.url.clone());
    vars.insert("LISTEN_ADDR".into(), "127.0.0.1:0".into());
    // Figures are always current in tests (a loaded machine must not make them stale); the
    // bounded wait has its own test.
    vars.insert("FIGURES_WAIT_MS".into(), "600000".into());
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test config is valid")
}

/// A migrated database of `backend`, without a server (for tests of library functions).
pub async fn migrated_db(backend: Backend) -> (Db, TestDb) {
    let test_db = TestDb::new(backend).await;
    let config = config_with(&test_db, &[]);
    let db = Db::connect(&config.database_url).await.unwrap();
    db.migrate().await.unwrap();
    (db, test_db)
}

/// A migrated database and a Stripe client with a test key, pointed at a stand-in at `base`.
pub async fn db_with_stripe(
    backend: Backend,
    base: &str,
) -> (Db, std::sync::Arc<dyn tally::stripe::StripeApi>, TestDb) {
    db_with_stripe_and(backend, base, &[]).await
}

/// As `db_with_stripe`, with more settings.
pub async fn db_with_stripe_and(
    backend: Backend,
    base: &str,
    extra: &[(&str, &str)],
) -> (Db, std::sync::Arc<dyn tally::stripe::StripeApi>, TestDb) {
    let test_db = TestDb::new(backend).await;
    let mut vars = vec![("STRIPE_SECRET_KEY", "sk_test_51standin"), ("STRIPE_API_BASE", base)];
    vars.extend_from_slice(extra);
    let config = config_with(&test_db, &vars);
    let db = Db::connect(&config.database_url).await.unwrap();
    db.migrate().await.unwrap();
    (db, tally::stripe::from_config(&config).unwrap(), test_db)
}

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub base: String,
    pub server: RunningServer,
    /// Logged in as the owner `OWNER_EMAIL`.
    pub client: reqwest::Client,
    pub db: TestDb,
    /// The app's clock for sessions and lockouts: tests move it instead of sleeping.
    pub clock: tally::clock::Clock,
}

/// A client that keeps cookies and does not follow redirects (so tests can see them).
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    /// The app with an owner account, and `client` logged in as that owner.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, &[]).await
    }

    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> Self {
        let app = Self::spawn_anonymous(backend, extra).await;
        app.create_admin(OWNER_EMAIL, tally::domain::admins::Role::Owner).await;
        let res = app.login(&app.client, OWNER_EMAIL, PASSWORD).await;
        assert_eq!(res.headers()["location"], "/", "owner login failed");
        app
    }

    /// Creates an admin whose password is `PASSWORD`; returns its id.
    pub async fn create_admin(&self, email: &str, role: tally::domain::admins::Role) -> i64 {
        let hash = tally::auth::server::password::hash(PASSWORD.into()).await.unwrap();
        tally::db::admins::create(self.db(), email, &hash, role).await.unwrap()
    }

    /// Posts the login form with `client`; returns the (redirect) response.
    pub async fn login(&self, client: &reqwest::Client, email: &str, password: &str) -> reqwest::Response {
        client
            .post(self.url("/login"))
            .form(&[("email", email), ("password", password), ("next", "/")])
            .send()
            .await
            .unwrap()
    }

    /// A new browser logged in as `email` (password `PASSWORD`).
    pub async fn logged_in(&self, email: &str) -> reqwest::Client {
        let client = browser();
        let res = self.login(&client, email, PASSWORD).await;
        assert_eq!(res.headers()["location"], "/", "login as {email} failed");
        client
    }

    /// Calls a server function as `client`, with a form-encoded body.
    pub async fn call(&self, client: &reqwest::Client, endpoint: &str, form: &[(&str, &str)]) -> reqwest::Response {
        client
            .post(self.url(&format!("/api/{endpoint}")))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Posts a form to a server function as `client` the way a browser does without JavaScript,
    /// from the page at `from` (Leptos then redirects back there).
    pub async fn post_form_from(
        &self,
        client: &reqwest::Client,
        from: &str,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        client
            .post(self.url(&format!("/api/{endpoint}")))
            .header("accept", "text/html,application/xhtml+xml")
            .header("referer", self.url(from))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// As `spawn_with`, with the Stripe clients the app uses (for admins, the worker and sync;
    /// for anonymous visitors) made by `stripe` from the test's configuration.
    pub async fn spawn_with_stripe(
        backend: Backend,
        extra: &[(&str, &str)],
        stripe: impl FnOnce(&Config) -> (SharedApi, SharedApi),
    ) -> Self {
        let app = Self::start(backend, extra, Some(Box::new(stripe))).await;
        app.create_admin(OWNER_EMAIL, tally::domain::admins::Role::Owner).await;
        let res = app.login(&app.client, OWNER_EMAIL, PASSWORD).await;
        assert_eq!(res.headers()["location"], "/", "owner login failed");
        app
    }

    /// The app with an empty admins table and a client that is not logged in.
    pub async fn spawn_anonymous(backend: Backend, extra: &[(&str, &str)]) -> Self {
        Self::start(backend, extra, None).await
    }

    #[allow(clippy::type_complexity)]
    async fn start(
        backend: Backend,
        extra: &[(&str, &str)],
        stripe: Option<Box<dyn FnOnce(&Config) -> (SharedApi, SharedApi) + '_>>,
    ) -> Self {
        if std::env::var("TALLY_TEST_LOG").is_ok() {
            let _ = tally::telemetry::init(tally::config::LogFormat::Text);
        }
        let db = TestDb::new(backend).await;
        let config = config_with(&db, extra);
        let clock = config.clock.clone();
        // LEPTOS_* settings among `extra` apply to the site, as the environment does for `tally serve`.
        // By default an empty site directory: what a page links must not depend on whether a
        // build has left a bundle in target/site.
        let empty_site = db._dir.path().join("site");
        let site = site::options(
            SiteFile {
                output_name: "tally".into(),
                site_root: empty_site.to_string_lossy().into_owned(),
                site_pkg_dir: "pkg".into(),
                env: None,
            },
            |name| extra.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()),
        );
        let server = match stripe {
            Some(make) => {
                let clients = make(&config);
                server::start_with_stripe(config, site, clients).await
            }
            None => server::start(config, site).await,
        }
        .expect("app starts");
        let base = format!("http://{}", server.addr);
        Self {
            base,
            server,
            client: browser(),
            db,
            clock,
        }
    }

    pub fn db(&self) -> &Db {
        &self.server.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// A page as `client` sees it in a browser (`Accept: text/html`); it must answer 200.
    pub async fn html(&self, client: &reqwest::Client, path: &str) -> String {
        let res = client
            .get(self.url(path))
            .header("accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.text().await.unwrap()
    }

    /// A server function's answer as `client`, as JSON; it must answer 200.
    pub async fn json(&self, client: &reqwest::Client, endpoint: &str, form: &[(&str, &str)]) -> serde_json::Value {
        let res = self.call(client, endpoint, form).await;
        assert_eq!(res.status(), 200, "{endpoint}");
        res.json().await.unwrap()
    }

    /// One value from the app's database.
    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
    {
        scalar(self.db(), sql).await
    }

    /// Posts `body` to the webhook endpoint signed with `secret`, as Stripe does.
    pub async fn post_webhook(&self, secret: &str, body: &serde_json::Value) -> reqwest::Response {
        post_webhook(&self.client, &self.base, secret, body.to_string().into_bytes()).await
    }
}

/// One value from a database (`SELECT COUNT(*) …`).
pub async fn scalar<T>(db: &Db, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
{
    sqlx::query_scalar(sql).fetch_one(db.reader()).await.unwrap()
}

/// Posts raw `body` to `{base}/stripe/webhook` with `client`, signed with `secret` at the current
/// second as Stripe signs it (`Stripe-Signature: t=…,v1=…`).
pub async fn post_webhook(client: &reqwest::Client, base: &str, secret: &str, body: Vec<u8>) -> reqwest::Response {
    let header = tally::webhooks::signature::sign(&body, secret, tally::db::now_unix());
    client
        .post(format!("{base}/stripe/webhook"))
        .header("content-type", "application/json")
        .header("stripe-signature", header)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Declares one test per backend: `both_backends!(name, |backend| async move { … });`
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                ($body)($crate::common::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                ($body)($crate::common::Backend::Postgres).await
            }
        }
    };
}

/// xorshift64*: a small deterministic generator, so a failing permutation can be replayed from
/// its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Real-shape objects from Stripe's own fixtures, one per handled event type.
pub fn fixtures() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fixtures3.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["resources"].clone()
}

pub fn fixture_for(event_type: &str) -> &'static str {
    match event_type.rsplit_once('.').map(|(prefix, _)| prefix).unwrap_or("") {
        "customer" => "customer",
        "customer.subscription" => "subscription",
        "invoice" => "invoice",
        "charge" => "charge",
        "charge.dispute" => "dispute",
        "refund" => "refund",
        "payment_intent" => "payment_intent",
        "payment_method" => "payment_method",
        "checkout.session" => "checkout.session",
        "product" => "product",
        "price" => "price",
        "coupon" => "coupon",
        "promotion_code" => "promotion_code",
        "customer.discount" => "discount",
        "application_fee" => "application_fee",
        other => panic!("no fixture for {other}"),
    }
}
