//! The real app on a random port with a fresh database, on SQLite and on Postgres.

use crate::common;

use common::{Backend, TestApp};
use serde_json::Value;

const NAV: [&str; 7] = [
    "Overview",
    "Customers",
    "Subscriptions",
    "Payments",
    "Revenue",
    "Webhooks",
    "Settings",
];

both_backends!(health_answers_json, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    app.server.shutdown().await.unwrap();
});

both_backends!(
    ready_when_database_answers_and_migrations_applied,
    |backend: Backend| async move {
        let app = TestApp::spawn(backend).await;
        let res = app.get("/readyz").await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "ready");
        assert_eq!(body["database"]["reachable"], true);
        let expected_backend = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        assert_eq!(body["database"]["backend"], expected_backend);
        let applied = body["migrations"]["applied"].as_i64().unwrap();
        assert!(applied >= 1);
        assert_eq!(applied, body["migrations"]["expected"].as_i64().unwrap());

        // Forget a migration: the instance must stop claiming readiness.
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 1")
            .execute(app.db().writer())
            .await
            .unwrap();
        let res = app.get("/readyz").await;
        assert_eq!(res.status(), 503);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "not_ready");
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(overview_renders_navigation_and_next_steps, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/").await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers().contains_key("x-request-id"),
        "every response carries its request id"
    );
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = res.text().await.unwrap();
    for label in NAV {
        assert!(html.contains(&format!(">{label}</a>")), "nav link {label} missing");
    }
    assert!(html.contains("Set your Stripe API key"));
    assert!(html.contains("stripe listen --forward-to localhost:3000/stripe/webhook"));
    assert!(html.contains("Run a backfill") && html.contains("tally sync"));
    // Nothing configured yet: no step is marked done.
    assert!(!html.contains("step done"));
    // The page loads the browser bundle that hydrates it.
    assert!(
        html.contains("/pkg/tally.js") && html.contains("/pkg/tally.wasm"),
        "hydration scripts missing"
    );
    app.server.shutdown().await.unwrap();
});

both_backends!(configured_steps_are_marked_done, |backend| async move {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("STRIPE_SECRET_KEY", "sk_test_51Abcdefsecretpart"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_topsecretvalue"),
        ],
    )
    .await;
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.contains("Connected in test mode."));
    assert_eq!(html.matches("step done").count(), 2, "key and webhook steps are done");
    assert!(!html.contains("secretpart") && !html.contains("topsecretvalue"));
    app.server.shutdown().await.unwrap();
});

both_backends!(settings_show_effective_config_without_secrets, |backend| async move {
    let app = TestApp::spawn_with(
        backend,
        &[
            ("STRIPE_SECRET_KEY", "sk_live_51Abcdefsecretpart"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_first,whsec_second"),
            ("PUBLIC_BASE_URL", "https://billing.example.com"),
        ],
    )
    .await;
    let res = app.get("/settings").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("Configured (live mode)"));
    assert!(html.contains("2 signing secrets at https://billing.example.com/stripe/webhook"));
    for secret in ["secretpart", "whsec_first", "whsec_second"] {
        assert!(!html.contains(secret), "{secret} leaked into the page");
    }
    app.server.shutdown().await.unwrap();
});

both_backends!(server_function_answers_over_http, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let res = app
        .client
        .post(app.url("/api/system_status"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["stripe_mode"], Value::Null);
    assert_eq!(body["webhook_secret_count"], 0);
    let installed_at = body["installed_at"]
        .as_i64()
        .expect("install time recorded at first migration");
    assert!(installed_at > 1_700_000_000);
    app.server.shutdown().await.unwrap();
});

both_backends!(unknown_page_is_a_404_page, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/no/such/page").await;
    assert_eq!(res.status(), 404);
    let html = res.text().await.unwrap();
    assert!(html.contains("Page not found"));
    assert!(html.contains(">Overview</a>"), "the 404 page keeps the navigation");
    app.server.shutdown().await.unwrap();
});

both_backends!(concurrent_writers_never_see_busy, |backend| async move {
    use tally::db::Db;
    let app = TestApp::spawn(backend).await;
    // A second handle on the same database stands in for a second process writing at once.
    let config = common::config_with(&app.db, &[]);
    let other = Db::connect(&config.database_url).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let db = if i % 2 == 0 { app.db().clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin().await?;
            sqlx::query("INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)")
                .bind(format!("k{i}"))
                .bind("v")
                .bind(i as i64)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            // Every task also upserts the same row: the contended case.
            sqlx::query(
                "INSERT INTO settings (key, value, updated_at) VALUES ('shared', $1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )
            .bind(i.to_string())
            .bind(i as i64)
            .execute(db.writer())
            .await?;
            Ok::<(), tally::db::DbError>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().expect("write succeeded");
    }
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM settings WHERE key LIKE 'k%'")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert_eq!(count, 64);
    other.close().await;
    app.server.shutdown().await.unwrap();
});

both_backends!(migrations_are_idempotent, |backend| async move {
    use tally::db::{settings, Db};
    let db_under_test = common::TestDb::new(backend).await;
    let config = common::config_with(&db_under_test, &[]);
    let db = Db::connect(&config.database_url).await.unwrap();
    db.migrate().await.unwrap();
    let first = settings::get(&db, settings::INSTALLED_AT).await.unwrap().unwrap();
    db.migrate().await.unwrap();
    let again = settings::get(&db, settings::INSTALLED_AT).await.unwrap().unwrap();
    assert_eq!(first, again, "the install time is kept");
    assert!(db.readiness().await.is_ready());
    db.close().await;
});

both_backends!(graceful_shutdown_stops_listening, |backend| async move {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let url = app.url("/healthz");
    let client = app.client.clone();
    app.server.shutdown().await.unwrap();
    assert!(client.get(url).send().await.is_err(), "no longer accepting connections");
});

/// An acknowledged event must survive a power loss: SQLite's writer commits with
/// `synchronous = FULL` unless the operator chose `normal` (docs/deploy.md says what that risks).
#[tokio::test]
async fn sqlite_commits_are_durable_by_default() {
    for (setting, expected) in [(None, 2i64), (Some("normal"), 1), (Some("full"), 2)] {
        let test_db = common::TestDb::new(common::Backend::Sqlite).await;
        let extra: Vec<(&str, &str)> = setting.map(|s| ("SQLITE_SYNCHRONOUS", s)).into_iter().collect();
        let config = common::config_with(&test_db, &extra);
        let db = tally::db::Db::connect_with(&config.database_url, config.sqlite_sync)
            .await
            .unwrap();
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(db.writer())
            .await
            .unwrap();
        assert_eq!(level, expected, "SQLITE_SYNCHRONOUS={setting:?}");
        db.close().await;
    }
}
