//! Scale-out and observability: two instances on one Postgres apply every event exactly once
//! (duplicates sent to both at once), migrations run once when they start together, concurrent
//! deliveries are each acknowledged only once stored, and /metrics reports what happened.

use crate::common;

use std::time::Duration;

use common::Backend;
use serde_json::json;
use tally::server;
use tally::site::{self, SiteFile};

const SECRET: &str = "whsec_scaletests";

fn site_options() -> leptos::config::LeptosOptions {
    site::options(
        SiteFile {
            output_name: "tally".into(),
            site_root: "target/site".into(),
            site_pkg_dir: "pkg".into(),
            env: None,
        },
        |_| None,
    )
}

/// Stores events in the inbox as webhooks would.
async fn store(db: &tally::db::Db, events: &[serde_json::Value]) {
    use tally::webhooks::inbox::{self, IncomingEvent, Source};
    for e in events {
        inbox::store(
            db,
            &IncomingEvent::parse(&e.to_string()).unwrap(),
            Source::Webhook,
            None,
        )
        .await
        .unwrap();
    }
}

/// The webhook worker on `db`, without refetching, giving up after `max_attempts`.
fn worker(db: &tally::db::Db, max_attempts: i64) -> tally::webhooks::worker::Worker {
    tally::webhooks::worker::Worker {
        db: db.clone(),
        wake: Default::default(),
        max_attempts,
        retry_for_secs: 3 * 86_400,
        refetch: None,
    }
}

fn event(n: usize) -> String {
    json!({"id": format!("evt_scale_{n:05}"), "object": "event", "type": "customer.created", "created": 1_700_000_000 + n as i64,
           "livemode": false, "data": {"object": {"id": format!("cus_scale_{n:05}"), "object": "customer",
           "email": format!("c{n}@example.com"), "created": 1_700_000_000 + n as i64}}})
    .to_string()
}

async fn deliver(client: &reqwest::Client, base: &str, body: String) -> u16 {
    common::post_webhook(client, base, SECRET, body.into_bytes())
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_postgres_apply_every_event_exactly_once() {
    let test_db = common::TestDb::new(Backend::Postgres).await;
    let config = common::config_with(
        &test_db,
        &[
            ("STRIPE_WEBHOOK_SECRET", SECRET),
            ("RECONCILE_INTERVAL", "off"),
            ("METRICS_TOKEN", "scale-metrics-token"),
        ],
    );
    // Both start at once on an empty database: the migrations run once.
    let (a, b) = tokio::join!(
        server::start(config.clone(), site_options()),
        server::start(config, site_options())
    );
    let (a, b) = (a.expect("instance a starts"), b.expect("instance b starts"));
    let expected = sqlx::query_scalar::<_, i64>("SELECT COUNT(DISTINCT version) FROM _sqlx_migrations")
        .fetch_one(a.db.reader())
        .await
        .unwrap();
    assert_eq!(
        common::scalar::<i64>(&a.db, "SELECT COUNT(*) FROM _sqlx_migrations").await,
        expected,
        "each migration once"
    );
    assert!(expected >= 7);

    let (base_a, base_b) = (format!("http://{}", a.addr), format!("http://{}", b.addr));
    let client = reqwest::Client::new();
    const EVENTS: usize = 400;
    let mut sends = Vec::new();
    for n in 0..EVENTS {
        let (client, base_a, base_b) = (client.clone(), base_a.clone(), base_b.clone());
        sends.push(tokio::spawn(async move {
            if n % 4 == 0 {
                // A duplicate delivered to both instances at the same moment.
                let (x, y) = tokio::join!(deliver(&client, &base_a, event(n)), deliver(&client, &base_b, event(n)));
                vec![x, y]
            } else {
                vec![deliver(&client, if n % 2 == 0 { &base_a } else { &base_b }, event(n)).await]
            }
        }));
    }
    for s in sends {
        assert!(s.await.unwrap().iter().all(|status| *status == 200));
    }
    // Both workers drain the inbox.
    let mut done = false;
    for _ in 0..300 {
        if common::scalar::<i64>(&a.db, "SELECT COUNT(*) FROM stripe_events WHERE status <> 'applied'").await == 0 {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "no event is stuck");
    assert_eq!(
        common::scalar::<i64>(&a.db, "SELECT COUNT(*) FROM stripe_events").await,
        EVENTS as i64,
        "duplicates stored once"
    );
    assert_eq!(
        common::scalar::<i64>(&a.db, "SELECT COUNT(*) FROM stripe_events WHERE attempts <> 1").await,
        0,
        "each event claimed and applied exactly once"
    );
    assert_eq!(
        common::scalar::<i64>(&a.db, "SELECT COUNT(*) FROM customers").await,
        EVENTS as i64
    );
    // Each delivery was counted by the instance that answered it.
    let metrics = reqwest::Client::new()
        .get(format!("{base_a}/metrics"))
        .bearer_auth("scale-metrics-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tally_webhooks_received_total{outcome=\"stored\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tally_inbox_events{status=\"pending\"} 0"));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

both_backends!(
    concurrent_deliveries_are_acknowledged_only_once_stored,
    |backend| async move {
        let app = common::TestApp::spawn_with(backend, &[("STRIPE_WEBHOOK_SECRET", SECRET)]).await;
        let client = reqwest::Client::new();
        let mut sends = Vec::new();
        for n in 0..300 {
            let (client, base) = (client.clone(), app.base.clone());
            sends.push(tokio::spawn(
                async move { (n, deliver(&client, &base, event(n)).await) },
            ));
        }
        let mut acknowledged = Vec::new();
        for s in sends {
            let (n, status) = s.await.unwrap();
            assert_eq!(status, 200);
            acknowledged.push(format!("evt_scale_{n:05}"));
        }
        // Every acknowledged event is in the inbox (acknowledged after the shared commit).
        for id in &acknowledged {
            let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE id = $1")
                .bind(id)
                .fetch_one(app.db().reader())
                .await
                .unwrap();
            assert_eq!(found, 1, "{id}");
        }
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let value = |name: &str| -> u64 {
            metrics
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (commits, events) = (
            value("tally_group_commits_total "),
            value("tally_group_commit_events_total "),
        );
        assert!(
            events >= 300 && commits >= 1 && commits <= events,
            "{commits} commits for {events} events"
        );
        assert!(metrics.contains("tally_webhook_ack_seconds_count"));
        assert!(metrics.contains("tally_http_request_seconds_bucket{route=\"/stripe/webhook\""));
        app.server.shutdown().await.unwrap();
    }
);

#[tokio::test]
async fn metrics_are_not_public() {
    // Not public by default: without a token only a signed-in admin reads it.
    let app = common::TestApp::spawn_with(Backend::Sqlite, &[]).await;
    assert_eq!(
        common::browser()
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let res = common::browser()
        .get(app.url("/metrics"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "no token configured: no bearer opens it");
    assert_eq!(app.get("/metrics").await.status(), 200, "a signed-in admin may look");
    app.server.shutdown().await.unwrap();
    let app = common::TestApp::spawn_with(Backend::Sqlite, &[("METRICS_TOKEN", "s3cret-metrics-token")]).await;
    let anonymous = common::browser();
    assert_eq!(anonymous.get(app.url("/metrics")).send().await.unwrap().status(), 401);
    let wrong = anonymous
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-metrics-tokeX")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let res = anonymous
        .get(app.url("/metrics"))
        .bearer_auth("s3cret-metrics-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("# TYPE tally_inbox_events gauge"));
    app.server.shutdown().await.unwrap();
}

both_backends!(
    a_batch_with_several_versions_of_an_object_keeps_the_newest,
    |backend| async move {
        use tally::webhooks::inbox::{self, IncomingEvent, Source};
        let (db, _test_db) = common::migrated_db(backend).await;
        // Five customers, ten versions each, stored in a scrambled order; plus a product.
        let mut events = Vec::new();
        for c in 0..5 {
            for v in 0..10 {
                events.push(json!({"id": format!("evt_v{c}_{v:02}"), "object": "event", "type": "customer.updated",
                "created": 1_700_000_000 + v, "livemode": false,
                "data": {"object": {"id": format!("cus_v{c}"), "object": "customer", "email": format!("v{v}@example.com")}}}));
            }
        }
        events.push(
            json!({"id": "evt_prod", "object": "event", "type": "product.created", "created": 1_700_000_000,
        "livemode": false, "data": {"object": {"id": "prod_v", "object": "product", "name": "P", "active": true}}}),
        );
        let n = events.len();
        for i in 0..n {
            let e = &events[(i * 37) % n];
            let parsed = IncomingEvent::parse(&e.to_string()).unwrap();
            inbox::store(&db, &parsed, Source::Webhook, None).await.unwrap();
        }
        let worker = worker(&db, 3);
        assert_eq!(worker.run_once().await.unwrap(), n, "one batch");
        for c in 0..5 {
            let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE id = $1")
                .bind(format!("cus_v{c}"))
                .fetch_one(db.reader())
                .await
                .unwrap();
            assert_eq!(email, "v9@example.com");
        }
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT COUNT(*) FROM stripe_events WHERE status = 'applied'").await,
            n as i64
        );
        assert_eq!(
            common::scalar::<i64>(
                &db,
                "SELECT COUNT(*) FROM stripe_events WHERE last_error = 'a newer version was already applied'"
            )
            .await,
            45
        );
        assert_eq!(common::scalar::<i64>(&db, "SELECT COUNT(*) FROM products").await, 1);
        // An older version arriving later is stale against the row.
        let late = json!({"id": "evt_late", "object": "event", "type": "customer.updated", "created": 1_600_000_000, "livemode": false,
        "data": {"object": {"id": "cus_v0", "object": "customer", "email": "old@example.com"}}});
        let late2 = json!({"id": "evt_late2", "object": "event", "type": "customer.created", "created": 1_600_000_000, "livemode": false,
        "data": {"object": {"id": "cus_new", "object": "customer", "email": "new@example.com"}}});
        for e in [late, late2] {
            store(&db, &[e]).await;
        }
        worker.run_once().await.unwrap();
        let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE id = 'cus_v0'")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(email, "v9@example.com");
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT COUNT(*) FROM customers WHERE id = 'cus_new'").await,
            1
        );
    }
);

both_backends!(
    a_failed_batch_is_rolled_back_and_its_events_applied_one_by_one,
    |backend| async move {
        let (db, _test_db) = common::migrated_db(backend).await;
        // Ten good events and, in the middle of Stripe's order, one whose object has no id: the
        // batch fails on it.
        for i in 0..11 {
            let object = if i == 5 {
                json!({"object": "customer", "email": "no-id@example.com"})
            } else {
                json!({"id": format!("cus_b{i}"), "object": "customer", "email": format!("b{i}@example.com")})
            };
            let e = json!({"id": format!("evt_b{i:02}"), "object": "event", "type": "customer.created",
                "created": 1_700_000_000 + i, "livemode": false, "data": {"object": object}});
            store(&db, &[e]).await;
        }
        let worker = worker(&db, 1);
        // The same pass takes them one by one: none is passed over as still locked by the batch
        // (on Postgres a failed batch not rolled back first keeps its row locks, and the claim
        // skips locked rows).
        assert_eq!(worker.run_once().await.unwrap(), 11);
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT COUNT(*) FROM stripe_events WHERE status = 'applied'").await,
            10
        );
        let (status, error): (String, Option<String>) =
            sqlx::query_as("SELECT status, last_error FROM stripe_events WHERE id = 'evt_b05'")
                .fetch_one(db.reader())
                .await
                .unwrap();
        assert_eq!(
            (status.as_str(), error.as_deref()),
            ("failed", Some("the object has no id"))
        );
        assert_eq!(common::scalar::<i64>(&db, "SELECT COUNT(*) FROM customers").await, 10);
        // Each good event counted one attempt: the rolled-back batch left none behind.
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT COUNT(*) FROM stripe_events WHERE attempts <> 1").await,
            0
        );
    }
);

both_backends!(
    claims_abandoned_by_a_crashed_instance_are_taken_over_in_order,
    |backend| async move {
        let (db, _test_db) = common::migrated_db(backend).await;
        // Three versions of one customer; the oldest two were claimed by an instance that died
        // (their claim expired), the newest is pending.
        for v in 0..3 {
            let e = json!({"id": format!("evt_c{v}"), "object": "event", "type": "customer.updated",
                "created": 1_700_000_000 + v, "livemode": false,
                "data": {"object": {"id": "cus_c", "object": "customer", "email": format!("v{v}@example.com")}}});
            store(&db, &[e]).await;
        }
        sqlx::query(
            "UPDATE stripe_events SET status = 'processing', locked_until = 1, attempts = 1 WHERE id <> 'evt_c2'",
        )
        .execute(db.writer())
        .await
        .unwrap();
        // A claim still held by a live instance is left alone.
        let e = json!({"id": "evt_held", "object": "event", "type": "product.created", "created": 1_700_000_000,
            "livemode": false, "data": {"object": {"id": "prod_h", "object": "product", "name": "P", "active": true}}});
        store(&db, &[e]).await;
        sqlx::query("UPDATE stripe_events SET status = 'processing', locked_until = $1 WHERE id = 'evt_held'")
            .bind(tally::db::now_unix() + 600)
            .execute(db.writer())
            .await
            .unwrap();
        let worker = worker(&db, 3);
        assert_eq!(worker.run_once().await.unwrap(), 3);
        assert_eq!(worker.run_once().await.unwrap(), 0);
        let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE id = 'cus_c'")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(email, "v2@example.com");
        let statuses: Vec<(String, String)> = sqlx::query_as("SELECT id, status FROM stripe_events ORDER BY id")
            .fetch_all(db.reader())
            .await
            .unwrap();
        assert_eq!(
            statuses,
            [
                ("evt_c0".to_string(), "applied".to_string()),
                ("evt_c1".into(), "applied".into()),
                ("evt_c2".into(), "applied".into()),
                ("evt_held".into(), "processing".into()),
            ]
        );
    }
);
