//! Customer pages read what webhooks projected, on both databases.

use crate::common;

use common::TestApp;
use serde_json::{json, Value};

const SECRET: &str = "whsec_customer_pages";

async fn deliver(app: &TestApp, id: &str, event_type: &str, created: i64, object: Value) {
    let body = json!({"id": id, "object": "event", "type": event_type, "created": created, "livemode": false,
                      "data": {"object": object}});
    assert_eq!(app.post_webhook(SECRET, &body).await.status(), 200);
}

async fn wait_applied(app: &TestApp, n: i64) {
    for _ in 0..200 {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE status = 'applied'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        if done >= n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("events were not applied");
}

both_backends!(customer_list_search_and_detail, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("STRIPE_WEBHOOK_SECRET", SECRET)]).await;
    deliver(&app, "evt_c1", "customer.created", 100, json!({"id": "cus_a", "object": "customer", "email": "Ada@Example.com", "name": "Ada Lovelace", "created": 1_700_000_000})).await;
    deliver(&app, "evt_c2", "customer.created", 101, json!({"id": "cus_j", "object": "customer", "email": "kenji@example.jp", "name": "Kenji", "created": 1_700_000_100})).await;
    deliver(&app, "evt_s1", "customer.subscription.created", 102, json!({"id": "sub_a", "object": "subscription", "customer": "cus_a", "status": "active",
        "items": {"object": "list", "data": [{"id": "si_a", "quantity": 3, "price": {"id": "price_a", "unit_amount": 2000, "currency": "usd", "recurring": {"interval": "month"}}}]}})).await;
    deliver(&app, "evt_i1", "invoice.paid", 103, json!({"id": "in_a", "object": "invoice", "customer": "cus_a", "status": "paid", "total": 6000, "currency": "usd", "created": 1_700_000_200})).await;
    deliver(&app, "evt_ch", "charge.refunded", 104, json!({"id": "ch_a", "object": "charge", "customer": "cus_a", "status": "succeeded", "amount": 6000, "amount_refunded": 500, "currency": "usd",
        "refunds": {"object": "list", "data": [{"id": "re_a", "object": "refund", "charge": "ch_a", "status": "succeeded", "amount": 500, "currency": "usd"}]}})).await;
    deliver(
        &app,
        "evt_pm",
        "payment_method.attached",
        106,
        json!({"id": "pm_a", "object": "payment_method", "customer": "cus_a", "type": "card",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 4, "exp_year": 2031}}),
    )
    .await;
    deliver(&app, "evt_jp", "charge.succeeded", 105, json!({"id": "ch_j", "object": "charge", "customer": "cus_j", "status": "succeeded", "amount": 1500, "currency": "jpy"})).await;
    wait_applied(&app, 7).await;

    let list = app.get("/customers").await.text().await.unwrap();
    assert!(list.contains("Ada Lovelace") && list.contains("Kenji"));
    let found = app.get("/customers?q=ADA%40example").await.text().await.unwrap();
    assert!(
        found.contains("Ada Lovelace") && !found.contains("Kenji"),
        "search is case-insensitive on email"
    );
    let by_id = app.get("/customers?q=cus_j").await.text().await.unwrap();
    assert!(by_id.contains("Kenji") && !by_id.contains("Ada Lovelace"));
    assert!(app
        .get("/customers?q=nobody")
        .await
        .text()
        .await
        .unwrap()
        .contains("No customer matches"));

    let detail = app.get("/customers/cus_a").await.text().await.unwrap();
    for expected in [
        "sub_a",
        // Its plan (a price without a product: the interval) and quantity, before the id.
        ">monthly",
        " × 3<",
        "$60.00",
        "$5.00",
        "re_a",
        "charge.refunded",
        "invoice.paid",
    ] {
        assert!(detail.contains(expected), "{expected} missing from the customer page");
    }
    let jp = app.get("/customers/cus_j").await.text().await.unwrap();
    assert!(jp.contains("¥1,500"), "zero-decimal currency");
    assert!(app
        .get("/customers/cus_none")
        .await
        .text()
        .await
        .unwrap()
        .contains("No customer with this id"));
    app.server.shutdown().await.unwrap();
});

both_backends!(cached_figures_follow_new_webhooks_at_once, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("STRIPE_WEBHOOK_SECRET", SECRET)]).await;
    let sub = |id: &str, customer: &str, amount: i64| {
        json!({"id": id, "object": "subscription", "customer": customer, "status": "active", "currency": "usd",
               "items": {"object": "list", "data": [{"id": format!("si_{id}"), "quantity": 1,
                 "price": {"id": format!("price_{id}"), "unit_amount": amount, "currency": "usd", "recurring": {"interval": "month"}}}]}})
    };
    let overview = || async {
        let res = app.call(&app.client, "metrics/overview", &[("currency", "usd")]).await;
        res.json::<Value>().await.unwrap()
    };
    let paying = || async {
        let res = app
            .client
            .post(app.url("/api/lists/page"))
            .form(&[("list", "customers"), ("query", "status=paying")])
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["totals"][0]["count"].as_i64()
    };
    deliver(
        &app,
        "evt_a1",
        "customer.created",
        100,
        json!({"id": "cus_a", "object": "customer", "email": "a@example.com", "created": 1_700_000_000}),
    )
    .await;
    deliver(
        &app,
        "evt_b1",
        "customer.created",
        101,
        json!({"id": "cus_b", "object": "customer", "email": "b@example.com", "created": 1_700_000_100}),
    )
    .await;
    deliver(
        &app,
        "evt_a2",
        "customer.subscription.created",
        102,
        sub("sub_a", "cus_a", 2000),
    )
    .await;
    wait_applied(&app, 3).await;
    assert_eq!(overview().await["kpis"]["mrr"], 2000);
    assert_eq!(paying().await, Some(1));
    // Asked again at once: the same (cached) answers.
    assert_eq!(overview().await["kpis"]["mrr"], 2000);
    assert_eq!(paying().await, Some(1));
    // A new subscription changes both within the same minute.
    deliver(
        &app,
        "evt_b2",
        "customer.subscription.created",
        103,
        sub("sub_b", "cus_b", 1500),
    )
    .await;
    wait_applied(&app, 4).await;
    assert_eq!(overview().await["kpis"]["mrr"], 3500);
    assert_eq!(paying().await, Some(2));
    let moves = app.call(&app.client, "metrics/movements", &[("currency", "usd")]).await;
    assert_eq!(moves.json::<Value>().await.unwrap()["total"], 3500);
});
