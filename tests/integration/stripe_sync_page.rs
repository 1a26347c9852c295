//! Settings → Stripe sync: admins start a backfill, reconciliation and a drift check from the page;
//! progress and results are read back; viewers may look but not start; everything is audited.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::stripe::{Reply, Request, StandIn};
use common::{TestApp, PASSWORD};
use serde_json::{json, Value};
use tally::domain::admins::Role;

/// Stripe with `count` customers (one an hour, in pages of 100, or more pages in slices, each
/// answered after `delay_ms`; while `hold` is set, every customers page after the first waits)
/// and two events.
async fn stand_in_held(delay_ms: u64, hold: Arc<AtomicBool>, count: i64) -> String {
    let customers: Arc<Vec<Value>> = Arc::new(
        (0..count)
            .rev()
            .map(|i| json!({"id": format!("cus_{i:03}"), "object": "customer", "email": format!("c{i}@example.com"), "created": 1_700_000_000 + i * 3600}))
            .collect(),
    );
    let first = Arc::new(AtomicBool::new(true));
    let stand_in = StandIn::start(move |r: Request| {
        let (customers, hold, first) = (customers.clone(), hold.clone(), first.clone());
        async move {
            if r.path == "/v1/checkout/sessions" {
                return Reply::list(vec![], false);
            }
            let Some(resource) = r.after("/v1/").filter(|p| !p.contains('/')) else {
                return Reply::status(404, json!({}));
            };
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            match resource {
                "customers" => {
                    if !first.swap(false, Ordering::SeqCst) {
                        while hold.load(Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    common::stripe::list_page(&customers, &r.query)
                }
                "events" => Reply::list(
                    vec![json!({"id": "evt_missed", "object": "event", "type": "customer.created", "created": 1_700_000_500,
                                "livemode": false, "data": {"object": {"id": "cus_new", "object": "customer", "email": "new@example.com"}}})],
                    false,
                ),
                _ => Reply::list(vec![], false),
            }
        }
    })
    .await;
    stand_in.url
}

async fn stand_in(delay_ms: u64) -> String {
    stand_in_held(delay_ms, Arc::new(AtomicBool::new(false)), 120).await
}

/// The progress row of one type on the overview.
fn type_row(o: &Value, resource: &str) -> Value {
    o["types"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["resource"] == resource)
        .unwrap()
        .clone()
}

async fn overview(app: &TestApp) -> Value {
    app.json(&app.client, "stripe-sync/overview", &[]).await
}

/// Polls until the latest run of `key` (last_sync / last_drift) is no longer running.
async fn wait_done(app: &TestApp, key: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let o = overview(app).await;
        if o[key]["status"].as_str().is_some_and(|s| s != "running") {
            return o;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{key} did not finish");
}

both_backends!(
    admins_sync_reconcile_and_check_drift_from_settings,
    |backend| async move {
        let base = stand_in(0).await;
        let app = TestApp::spawn_with(
            backend,
            &[("STRIPE_SECRET_KEY", "sk_test_51page"), ("STRIPE_API_BASE", &base)],
        )
        .await;
        let page = app.get("/settings/sync").await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("Sync from Stripe") && html.contains("every 1h, over the last 3 days"),
            "{html}"
        );

        let res = app
            .call(&app.client, "stripe-sync/start", &[("types", "customers")])
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let o = wait_done(&app, "last_sync").await;
        assert_eq!(o["last_sync"]["status"], "done", "{o}");
        assert_eq!(o["last_sync"]["requested_by"], common::OWNER_EMAIL);
        let customers = type_row(&o, "customers");
        assert_eq!(
            (
                customers["fetched"].as_i64(),
                customers["applied"].as_i64(),
                customers["done"].as_bool()
            ),
            (Some(120), Some(120), Some(true))
        );
        let html = app.get("/settings/sync").await.text().await.unwrap();
        assert!(
            html.contains("sync-progress") && html.contains(">120<"),
            "the progress table is rendered"
        );

        // Reconciliation stores the event the inbox lacked, and the worker applies it.
        let res = app.call(&app.client, "stripe-sync/reconcile", &[("days", "5")]).await;
        assert_eq!(res.status(), 200);
        let mut found = false;
        for _ in 0..200 {
            let o = overview(&app).await;
            let (run, report) = (&o["reconciliations"][0][0], &o["reconciliations"][0][1]);
            if run["status"] == "done" {
                assert_eq!(
                    (
                        report["days"].as_i64(),
                        report["listed"].as_i64(),
                        report["missing"].as_i64()
                    ),
                    (Some(5), Some(1), Some(1))
                );
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(found, "reconciliation finished");
        for _ in 0..100 {
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers WHERE id = 'cus_new'")
                .fetch_one(app.db().reader())
                .await
                .unwrap();
            if n == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Drift: cus_new exists here only (Stripe's customer list lacks it).
        let res = app.call(&app.client, "stripe-sync/drift", &[]).await;
        assert_eq!(res.status(), 200);
        let o = wait_done(&app, "last_drift").await;
        assert_eq!(o["drift"]["total_differences"], 1, "{o}");
        assert_eq!(o["drift"]["differences"][0]["id"], "cus_new");
        assert_eq!(o["drift"]["differences"][0]["kind"], "NotAtStripe");
        let html = app.get("/settings/sync").await.text().await.unwrap();
        assert!(
            html.contains("1 differences found") && html.contains("href=\"/customers/cus_new\""),
            "{html}"
        );

        let actions: Vec<String> =
            sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'stripe.%' ORDER BY id")
                .fetch_all(app.db().reader())
                .await
                .unwrap();
        assert_eq!(actions, ["stripe.sync", "stripe.reconcile", "stripe.drift"]);
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    viewers_see_progress_but_cannot_start_and_runs_do_not_overlap,
    |backend| async move {
        let hold = Arc::new(AtomicBool::new(true));
        let base = stand_in_held(200, hold.clone(), 3000).await;
        let app = TestApp::spawn_with(
            backend,
            &[("STRIPE_SECRET_KEY", "sk_test_51page"), ("STRIPE_API_BASE", &base)],
        )
        .await;
        app.create_admin("viewer@example.com", Role::Viewer).await;
        let viewer = app.logged_in("viewer@example.com").await;
        let _ = PASSWORD;
        assert_eq!(app.call(&viewer, "stripe-sync/start", &[]).await.status(), 403);
        assert_eq!(app.call(&viewer, "stripe-sync/overview", &[]).await.status(), 200);

        let first = app
            .call(&app.client, "stripe-sync/start", &[("types", "customers")])
            .await;
        assert_eq!(first.status(), 200);
        let second = app
            .call(&app.client, "stripe-sync/start", &[("types", "customers")])
            .await;
        assert_eq!(second.status(), 500);
        let refusal = second.text().await.unwrap();
        assert!(
            refusal.contains("already running") && refusal.contains("press Stop"),
            "the refusal says what to do: {refusal}"
        );
        let bad = app.call(&app.client, "stripe-sync/reconcile", &[("days", "45")]).await;
        assert!(bad.text().await.unwrap().contains("from 1 to 30"));
        let o = overview(&app).await;
        assert_eq!(o["last_sync"]["status"], "running");
        let html = app.get("/settings/sync").await.text().await.unwrap();
        assert!(html.contains("data-test=\"sync-stop\""), "a Stop button while it runs");

        // Stop from the page: viewers may not; the admin's request stops it within seconds,
        // the page in flight applied; Sync from Stripe then resumes and finishes.
        assert_eq!(app.call(&viewer, "stripe-sync/stop", &[]).await.status(), 403);
        let stop = app.call(&app.client, "stripe-sync/stop", &[]).await;
        assert_eq!(stop.status(), 200);
        assert!(stop.text().await.unwrap().contains("resumes"));
        // The run looks for the request every two seconds; the pages it holds come back after.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        hold.store(false, Ordering::SeqCst);
        let o = wait_done(&app, "last_sync").await;
        assert_eq!(o["last_sync"]["status"], "stopped", "{o}");
        let again = app.call(&app.client, "stripe-sync/stop", &[]).await;
        assert!(again.text().await.unwrap().contains("No backfill is running"));
        let html = app.get("/settings/sync").await.text().await.unwrap();
        assert!(html.contains("it resumes where it stopped"), "{html}");
        let resumed = app
            .call(&app.client, "stripe-sync/start", &[("types", "customers")])
            .await;
        assert_eq!(resumed.status(), 200);
        let o = wait_done(&app, "last_sync").await;
        assert_eq!(o["last_sync"]["status"], "done");
        let customers = type_row(&o, "customers");
        assert_eq!(
            (customers["fetched"].as_i64(), customers["done"].as_bool()),
            (Some(3000), Some(true)),
            "{o}"
        );
        let actions: Vec<(String, String)> =
            sqlx::query_as("SELECT action, outcome FROM audit_log WHERE action = 'stripe.sync.stop' ORDER BY id")
                .fetch_all(app.db().reader())
                .await
                .unwrap();
        assert_eq!(
            actions,
            [
                ("stripe.sync.stop".to_string(), "success".to_string()),
                ("stripe.sync.stop".to_string(), "refused".to_string())
            ],
            "the stops are audited"
        );
        app.server.shutdown().await.unwrap();
    }
);
