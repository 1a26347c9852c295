//! The webhook engine end to end: signatures, the durable inbox, the worker, order safety, and
//! projection of real-shape Stripe objects; on SQLite and on Postgres.

use crate::common;
use crate::common::stripe::{Reply, Request, StandIn};

use std::time::Duration;

use common::{Backend, TestApp};
use serde_json::{json, Value};
use sqlx::Row;
use tally::projection::{self, Applied, Version};
use tally::webhooks::signature;

const SECRET: &str = "whsec_test_secret_for_tally";

fn now() -> i64 {
    tally::db::now_unix()
}

fn event(id: &str, event_type: &str, created: i64, object: Value) -> Value {
    json!({
        "id": id, "object": "event", "type": event_type, "created": created, "livemode": false,
        "api_version": "2025-03-31.basil", "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
        "data": {"object": object}
    })
}

fn customer(id: &str, email: &str) -> Value {
    json!({"id": id, "object": "customer", "email": email, "name": "Ada", "livemode": false, "created": 1_700_000_000})
}

async fn spawn(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![("STRIPE_WEBHOOK_SECRET", SECRET)];
    vars.extend_from_slice(extra);
    TestApp::spawn_anonymous(backend, &vars).await
}

async fn post_raw(app: &TestApp, body: Vec<u8>, header: Option<String>) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/stripe/webhook"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(h) = header {
        req = req.header("stripe-signature", h);
    }
    req.send().await.unwrap()
}

async fn post_signed(app: &TestApp, body: &Value) -> reqwest::Response {
    app.post_webhook(SECRET, body).await
}

async fn status_of(app: &TestApp, id: &str) -> Option<String> {
    sqlx::query_scalar("SELECT status FROM stripe_events WHERE id = $1")
        .bind(id)
        .fetch_optional(app.db().reader())
        .await
        .unwrap()
}

async fn wait_for_status(app: &TestApp, id: &str, wanted: &str) {
    for _ in 0..200 {
        if status_of(app, id).await.as_deref() == Some(wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("event {id} never reached {wanted}: {:?}", status_of(app, id).await);
}

both_backends!(
    a_signed_event_is_stored_acknowledged_and_applied,
    |backend| async move {
        let app = spawn(backend, &[]).await;
        let res = post_signed(
            &app,
            &event("evt_1", "customer.created", now(), customer("cus_1", "Ada@Example.com")),
        )
        .await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json!({"received": true, "duplicate": false}));
        wait_for_status(&app, "evt_1", "applied").await;
        let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE id = 'cus_1'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        // Stored as Stripe sent it, case included (Stripe keeps the case it was given).
        assert_eq!(email, "Ada@Example.com");
        // Searching ignores case.
        app.create_admin(common::OWNER_EMAIL, tally::domain::admins::Role::Owner)
            .await;
        let admin = app.logged_in(common::OWNER_EMAIL).await;
        let search = |q: &'static str| {
            let (admin, url) = (admin.clone(), app.url(&format!("/customers?q={q}")));
            async move { admin.get(url).send().await.unwrap().text().await.unwrap() }
        };
        assert!(
            search("ADA%40example.COM").await.contains("Ada@Example.com"),
            "a search in another case finds the customer"
        );
        assert!(!search("nobody%40example.com").await.contains("Ada@Example.com"));
        let stored: String = sqlx::query_scalar("SELECT payload FROM stripe_events WHERE id = 'evt_1'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert!(
            stored.contains("Ada@Example.com"),
            "the raw payload is kept as received"
        );
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    duplicates_and_concurrent_duplicates_have_one_effect,
    |backend| async move {
        let app = spawn(backend, &[]).await;
        let ev = event(
            "evt_dup",
            "customer.created",
            now(),
            customer("cus_dup", "dup@example.com"),
        );
        let first: Value = post_signed(&app, &ev).await.json().await.unwrap();
        assert_eq!(first["duplicate"], false);
        let again: Value = post_signed(&app, &ev).await.json().await.unwrap();
        assert_eq!(again["duplicate"], true);
        // Ten deliveries of a new event at once: exactly one is new.
        let ev2 = event(
            "evt_dup2",
            "customer.updated",
            now(),
            customer("cus_dup", "dup2@example.com"),
        );
        let sends = (0..10).map(|_| post_signed(&app, &ev2));
        let results = futures_join_all(sends).await;
        let mut new = 0;
        for res in results {
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            if body["duplicate"] == false {
                new += 1;
            }
        }
        assert_eq!(new, 1);
        assert_eq!(app.scalar::<i64>("SELECT COUNT(*) FROM stripe_events").await, 2);
        wait_for_status(&app, "evt_dup2", "applied").await;
        assert_eq!(
            app.scalar::<i64>("SELECT attempts FROM stripe_events WHERE id = 'evt_dup2'")
                .await,
            1,
            "applied once"
        );
        app.server.shutdown().await.unwrap();
    }
);

async fn futures_join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.collect();
    let mut out = Vec::new();
    // Drive them concurrently on this task.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

both_backends!(malformed_deliveries_get_4xx_and_store_nothing, |backend| async move {
    let app = spawn(backend, &[]).await;
    let body = event(
        "evt_bad",
        "customer.created",
        now(),
        customer("cus_bad", "x@example.com"),
    )
    .to_string()
    .into_bytes();
    // No signature, garbage, a v0-only header, a stale timestamp, a tampered byte.
    assert_eq!(post_raw(&app, body.clone(), None).await.status(), 400);
    assert_eq!(
        post_raw(&app, body.clone(), Some("nonsense".into())).await.status(),
        400
    );
    let v1 = signature::sign(&body, SECRET, now()).replace("v1=", "v0=");
    assert_eq!(post_raw(&app, body.clone(), Some(v1)).await.status(), 400);
    assert_eq!(
        post_raw(&app, body.clone(), Some(signature::sign(&body, SECRET, now() - 3600)))
            .await
            .status(),
        400
    );
    let mut tampered = body.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    assert_eq!(
        post_raw(&app, tampered, Some(signature::sign(&body, SECRET, now())))
            .await
            .status(),
        400
    );
    // Correctly signed, but not UTF-8, or not JSON, or not an event.
    let not_utf8 = vec![0xff, 0xfe, 0xfd];
    let res = post_raw(&app, not_utf8.clone(), Some(signature::sign(&not_utf8, SECRET, now()))).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "body is not UTF-8");
    let not_json = b"{not json".to_vec();
    assert_eq!(
        post_raw(&app, not_json.clone(), Some(signature::sign(&not_json, SECRET, now())))
            .await
            .status(),
        400
    );
    let no_id = br#"{"object":"event","type":"customer.created","created":1}"#.to_vec();
    assert_eq!(
        post_raw(&app, no_id.clone(), Some(signature::sign(&no_id, SECRET, now())))
            .await
            .status(),
        400
    );
    // A NUL character in the envelope (PostgreSQL's text cannot store it): refused with a reason,
    // not a 503 that Stripe would retry for days.
    let nul_id = br#"{"id":"evt_\u0000x","object":"event","type":"customer.created","created":1}"#.to_vec();
    let res = post_raw(&app, nul_id.clone(), Some(signature::sign(&nul_id, SECRET, now()))).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "event envelope contains a NUL character"
    );
    // Over 1 MiB.
    let big = vec![b' '; 1024 * 1024 + 10];
    assert_eq!(
        post_raw(&app, big.clone(), Some(signature::sign(&big, SECRET, now())))
            .await
            .status(),
        413
    );
    assert_eq!(app.scalar::<i64>("SELECT COUNT(*) FROM stripe_events").await, 0);
    app.server.shutdown().await.unwrap();
});

both_backends!(a_database_fault_answers_503_so_stripe_retries, |backend| async move {
    let app = spawn(backend, &[]).await;
    sqlx::query("ALTER TABLE stripe_events RENAME TO stripe_events_away")
        .execute(app.db().writer())
        .await
        .unwrap();
    let res = post_signed(
        &app,
        &event(
            "evt_fault",
            "customer.created",
            now(),
            customer("cus_f", "f@example.com"),
        ),
    )
    .await;
    assert_eq!(res.status(), 503);
    sqlx::query("ALTER TABLE stripe_events_away RENAME TO stripe_events")
        .execute(app.db().writer())
        .await
        .unwrap();
    assert_eq!(
        app.scalar::<i64>("SELECT COUNT(*) FROM stripe_events").await,
        0,
        "nothing was acknowledged"
    );
    // Stripe's retry then lands.
    let res = post_signed(
        &app,
        &event(
            "evt_fault",
            "customer.created",
            now(),
            customer("cus_f", "f@example.com"),
        ),
    )
    .await;
    assert_eq!(res.status(), 200);
    wait_for_status(&app, "evt_fault", "applied").await;
    app.server.shutdown().await.unwrap();
});

both_backends!(
    unknown_types_and_other_modes_are_kept_but_ignored,
    |backend| async move {
        let app = spawn(backend, &[("STRIPE_SECRET_KEY", "sk_test_51abcdef")]).await;
        let plan = event(
            "evt_plan",
            "plan.created",
            now(),
            json!({"id": "plan_1", "object": "plan"}),
        );
        assert_eq!(post_signed(&app, &plan).await.status(), 200);
        assert_eq!(status_of(&app, "evt_plan").await.as_deref(), Some("ignored"));
        let mut live = event(
            "evt_live",
            "customer.created",
            now(),
            customer("cus_live", "live@example.com"),
        );
        live["livemode"] = json!(true);
        assert_eq!(post_signed(&app, &live).await.status(), 200);
        assert_eq!(status_of(&app, "evt_live").await.as_deref(), Some("ignored"));
        assert_eq!(
            app.scalar::<i64>("SELECT mode_mismatch FROM stripe_events WHERE id = 'evt_live'")
                .await,
            1
        );
        // "ignored" is the worker's final word on it: nothing was written.
        assert_eq!(
            app.scalar::<i64>("SELECT COUNT(*) FROM customers").await,
            0,
            "kept out of the figures"
        );
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    a_failing_event_retries_with_backoff_then_fails_and_keeps_its_error,
    |backend| async move {
        let app = spawn(backend, &[("WEBHOOK_MAX_ATTEMPTS", "2")]).await;
        // A customer object without an id cannot be projected.
        let broken = event(
            "evt_broken",
            "customer.created",
            now(),
            json!({"object": "customer", "email": "x@example.com"}),
        );
        assert_eq!(post_signed(&app, &broken).await.status(), 200);
        wait_for_status(&app, "evt_broken", "failed").await;
        let row = sqlx::query("SELECT attempts, last_error FROM stripe_events WHERE id = 'evt_broken'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert_eq!(row.get::<i64, _>("attempts"), 2);
        assert_eq!(row.get::<String, _>("last_error"), "the object has no id");
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    older_events_never_overwrite_and_deletions_are_final,
    |backend| async move {
        let app = spawn(backend, &[]).await;
        let t = now();
        for ev in [
            event(
                "evt_new",
                "customer.updated",
                t - 10,
                customer("cus_o", "new@example.com"),
            ),
            event(
                "evt_old",
                "customer.updated",
                t - 100,
                customer("cus_o", "old@example.com"),
            ),
        ] {
            assert_eq!(post_signed(&app, &ev).await.status(), 200);
        }
        wait_for_status(&app, "evt_old", "applied").await;
        wait_for_status(&app, "evt_new", "applied").await;
        let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE id = 'cus_o'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert_eq!(email, "new@example.com");
        // A deletion, then a later-created update arriving afterwards: still deleted.
        post_signed(
            &app,
            &event(
                "evt_del",
                "customer.deleted",
                t - 5,
                json!({"id": "cus_o", "object": "customer", "deleted": true}),
            ),
        )
        .await;
        wait_for_status(&app, "evt_del", "applied").await;
        post_signed(
            &app,
            &event(
                "evt_after",
                "customer.updated",
                t,
                customer("cus_o", "zombie@example.com"),
            ),
        )
        .await;
        wait_for_status(&app, "evt_after", "applied").await;
        let row = sqlx::query("SELECT deleted, email FROM customers WHERE id = 'cus_o'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert_eq!(row.get::<i64, _>("deleted"), 1);
        assert_eq!(
            row.get::<String, _>("email"),
            "new@example.com",
            "the stub deletion payload kept the columns"
        );
        // A subscription whose customer has not arrived still lands.
        let sub = json!({"id": "sub_orphan", "object": "subscription", "customer": "cus_later", "status": "active", "items": {"object": "list", "data": []}});
        post_signed(&app, &event("evt_sub", "customer.subscription.created", t, sub)).await;
        wait_for_status(&app, "evt_sub", "applied").await;
        assert_eq!(
            app.scalar::<i64>("SELECT COUNT(*) FROM subscriptions WHERE customer_id = 'cus_later'")
                .await,
            1
        );
        app.server.shutdown().await.unwrap();
    }
);

/// A realistic lifecycle: a customer subscribes, upgrades, pays, fails a payment, is refunded in
/// part, disputes a charge and cancels; a second customer is deleted.
fn lifecycle() -> Vec<Value> {
    let item = |qty: i64, price: &str, amount: i64| {
        json!({"object": "list", "data": [{"id": "si_1", "object": "subscription_item", "quantity": qty,
            "price": {"id": price, "object": "price", "unit_amount": amount, "currency": "usd", "product": "prod_1",
                      "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}},
            "current_period_start": 1000, "current_period_end": 3600}]})
    };
    let sub = |status: &str, qty: i64, cancel: bool| {
        json!({"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status, "currency": "usd",
               "cancel_at_period_end": cancel, "items": item(qty, "price_1", 2000)})
    };
    let invoice = |id: &str, status: &str, paid: i64, charge: Option<&str>| {
        json!({"id": id, "object": "invoice", "customer": "cus_1", "subscription": "sub_1", "status": status,
               "currency": "usd", "amount_due": 6000, "amount_paid": paid, "total": 6000, "charge": charge})
    };
    let charge = |id: &str, status: &str, refunded: i64, refunds: Value| {
        json!({"id": id, "object": "charge", "customer": "cus_1", "status": status, "amount": 6000,
               "amount_refunded": refunded, "currency": "usd", "paid": status == "succeeded", "refunds": refunds})
    };
    let refund = |status: &str| json!({"id": "re_1", "object": "refund", "charge": "ch_3", "status": status, "amount": 500, "currency": "usd"});
    vec![
        event(
            "evt_01",
            "product.created",
            90,
            json!({"id": "prod_1", "object": "product", "name": "Pro", "active": true}),
        ),
        event(
            "evt_02",
            "price.created",
            95,
            json!({"id": "price_1", "object": "price", "product": "prod_1", "unit_amount": 2000, "currency": "usd", "type": "recurring", "recurring": {"interval": "month", "interval_count": 1}}),
        ),
        event("evt_03", "customer.created", 100, customer("cus_1", "a@example.com")),
        event(
            "evt_04",
            "customer.subscription.created",
            110,
            sub("incomplete", 1, false),
        ),
        event("evt_05", "invoice.created", 111, invoice("in_1", "draft", 0, None)),
        event("evt_06", "invoice.finalized", 112, invoice("in_1", "open", 0, None)),
        event(
            "evt_07",
            "charge.succeeded",
            113,
            charge("ch_1", "succeeded", 0, json!({"object": "list", "data": []})),
        ),
        event(
            "evt_08",
            "invoice.paid",
            114,
            invoice("in_1", "paid", 6000, Some("ch_1")),
        ),
        event("evt_09", "customer.subscription.updated", 120, sub("active", 1, false)),
        event("evt_10", "customer.updated", 150, customer("cus_1", "b@example.com")),
        event("evt_11", "customer.subscription.updated", 200, sub("active", 3, false)),
        event("evt_12", "invoice.created", 201, invoice("in_2", "open", 0, None)),
        event(
            "evt_13",
            "charge.failed",
            202,
            charge("ch_2", "failed", 0, json!({"object": "list", "data": []})),
        ),
        event(
            "evt_14",
            "invoice.payment_failed",
            203,
            invoice("in_2", "open", 0, Some("ch_2")),
        ),
        event(
            "evt_15",
            "charge.succeeded",
            210,
            charge("ch_3", "succeeded", 0, json!({"object": "list", "data": []})),
        ),
        event(
            "evt_16",
            "invoice.paid",
            211,
            invoice("in_2", "paid", 6000, Some("ch_3")),
        ),
        event(
            "evt_17",
            "charge.refunded",
            250,
            charge(
                "ch_3",
                "succeeded",
                500,
                json!({"object": "list", "data": [refund("pending")]}),
            ),
        ),
        event("evt_18", "refund.updated", 260, refund("succeeded")),
        event(
            "evt_19",
            "charge.dispute.created",
            270,
            json!({"id": "dp_1", "object": "dispute", "charge": "ch_1", "status": "needs_response", "amount": 6000, "currency": "usd", "reason": "fraudulent"}),
        ),
        event(
            "evt_20",
            "charge.dispute.closed",
            280,
            json!({"id": "dp_1", "object": "dispute", "charge": "ch_1", "status": "lost", "amount": 6000, "currency": "usd", "reason": "fraudulent"}),
        ),
        event("evt_21", "customer.subscription.updated", 300, sub("active", 3, true)),
        event("evt_22", "customer.subscription.deleted", 400, sub("canceled", 3, true)),
        event("evt_23", "customer.created", 100, customer("cus_2", "gone@example.com")),
        event(
            "evt_24",
            "customer.updated",
            450,
            customer("cus_2", "gone2@example.com"),
        ),
        event(
            "evt_25",
            "customer.deleted",
            500,
            json!({"id": "cus_2", "object": "customer", "deleted": true}),
        ),
        event(
            "evt_26",
            "payment_method.attached",
            115,
            json!({"id": "pm_1", "object": "payment_method", "customer": "cus_1", "type": "card", "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}}),
        ),
        event(
            "evt_27",
            "payment_method.detached",
            410,
            json!({"id": "pm_1", "object": "payment_method", "customer": null, "type": "card", "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030}}),
        ),
    ]
}

async fn apply_all(db: &tally::db::Db, events: &[&Value]) {
    for ev in events {
        let mut tx = db.begin().await.unwrap();
        let version = Version {
            at: ev["created"].as_i64().unwrap(),
            event_id: ev["id"].as_str().unwrap().to_string(),
        };
        let applied = projection::apply_event(&mut tx, ev["type"].as_str().unwrap(), &ev["data"]["object"], &version)
            .await
            .unwrap();
        assert_ne!(applied, Applied::Ignored("event type not handled"));
        tx.commit().await.unwrap();
    }
}

const TABLES: [&str; 10] = [
    "customers",
    "payment_methods",
    "products",
    "prices",
    "subscriptions",
    "invoices",
    "charges",
    "refunds",
    "disputes",
    "payment_intents",
];

async fn dump(db: &tally::db::Db) -> Vec<String> {
    let mut out = Vec::new();
    for table in TABLES {
        let rows = sqlx::query(&format!(
            "SELECT id, raw, deleted, deleted_at, version_at, version_event FROM {table} ORDER BY id"
        ))
        .fetch_all(db.reader())
        .await
        .unwrap();
        for r in rows {
            out.push(format!(
                "{table}|{}|{}|{}|{:?}|{}|{}",
                r.get::<String, _>("id"),
                r.get::<String, _>("raw"),
                r.get::<i64, _>("deleted"),
                r.get::<Option<i64>, _>("deleted_at"),
                r.get::<i64, _>("version_at"),
                r.get::<String, _>("version_event")
            ));
        }
    }
    let items = sqlx::query("SELECT id, subscription_id, quantity, unit_amount FROM subscription_items ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap();
    for r in items {
        out.push(format!(
            "item|{}|{}|{:?}|{:?}",
            r.get::<String, _>("id"),
            r.get::<String, _>("subscription_id"),
            r.get::<Option<i64>, _>("quantity"),
            r.get::<Option<i64>, _>("unit_amount")
        ));
    }
    out
}

async fn clear(db: &tally::db::Db) {
    for table in TABLES.iter().chain(["subscription_items"].iter()) {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(db.writer())
            .await
            .unwrap();
    }
}

use common::Rng;

both_backends!(
    any_order_with_duplicates_ends_in_the_in_order_rows,
    |backend| async move {
        let db_under_test = common::TestDb::new(backend).await;
        let config = common::config_with(&db_under_test, &[]);
        let db = tally::db::Db::connect(&config.database_url).await.unwrap();
        db.migrate().await.unwrap();
        let events = lifecycle();
        apply_all(&db, &events.iter().collect::<Vec<_>>()).await;
        let expected = dump(&db).await;
        // Spot-check the in-order result itself.
        // cus_2: deleted at 500, with the data of its last update before that.
        assert!(expected.iter().any(|r| r.starts_with("customers|cus_2|")
            && r.contains("gone2@")
            && r.ends_with("|1|Some(500)|450|evt_24")));
        assert!(expected
            .iter()
            .any(|r| r.starts_with("item|si_1|sub_1|Some(3)|Some(2000)")));
        assert!(expected
            .iter()
            .any(|r| r.starts_with("refunds|re_1|") && r.contains("\"succeeded\"")));
        let runs = if backend == Backend::Sqlite { 40 } else { 15 };
        for seed in 1..=runs {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
            let mut shuffled: Vec<&Value> = events.iter().collect();
            for _ in 0..rng.below(8) {
                shuffled.push(&events[rng.below(events.len())]);
            }
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i + 1));
            }
            clear(&db).await;
            apply_all(&db, &shuffled).await;
            assert_eq!(dump(&db).await, expected, "seed {seed} diverged");
        }
        db.close().await;
    }
);

both_backends!(every_handled_type_projects_real_stripe_objects, |backend| async move {
    let app = spawn(backend, &[]).await;
    let fixtures = common::fixtures();
    for (i, event_type) in projection::HANDLED_EVENT_TYPES.iter().enumerate() {
        let object = fixtures[common::fixture_for(event_type)].clone();
        assert!(object.is_object(), "fixture for {event_type}");
        let mut tx = app.db().begin().await.unwrap();
        let version = Version {
            at: 1_000 + i as i64,
            event_id: format!("evt_{i:03}"),
        };
        let applied = projection::apply_event(&mut tx, event_type, &object, &version)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(applied, Applied::Written, "{event_type}");
        let table = tally::domain::resource::Resource::of_object(&object).unwrap().table();
        let id = object["id"].as_str().unwrap();
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE id = $1"))
            .bind(id)
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert_eq!(n, 1, "{event_type} → {table}");
    }
    // Typed columns from the full-size objects.
    let row = sqlx::query("SELECT status, customer_id, cancel_at_period_end FROM subscriptions")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>("status"), "active");
    assert_eq!(row.get::<String, _>("customer_id"), "cus_QXg1o8vcGmoR32");
    assert_eq!(row.get::<i64, _>("cancel_at_period_end"), 1);
    let amount: i64 = sqlx::query_scalar("SELECT unit_amount FROM prices")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert_eq!(amount, 2000);
    app.server.shutdown().await.unwrap();
});

both_backends!(fields_stripe_moved_are_read_from_both_places, |backend| async move {
    let app = spawn(backend, &[]).await;
    let mut tx = app.db().begin().await.unwrap();
    // 2025-03-31+: the period lives on the items; old items carry `plan`, not `price`.
    let sub = json!({"id": "sub_new", "object": "subscription", "customer": "cus_x", "status": "trialing",
        "items": {"object": "list", "data": [
            {"id": "si_a", "object": "subscription_item", "quantity": 2, "current_period_start": 500, "current_period_end": 900,
             "plan": {"id": "plan_old", "object": "plan", "amount": 1500, "currency": "eur", "interval": "year", "interval_count": 1, "product": "prod_z"}}]}});
    let invoice = json!({"id": "in_new", "object": "invoice", "customer": "cus_x", "status": "paid", "currency": "eur",
        "amount_paid": 3000, "parent": {"subscription_details": {"subscription": "sub_new"}},
        "payments": {"object": "list", "data": [{"payment": {"type": "charge", "charge": "ch_new", "payment_intent": "pi_new"}}]},
        "some_future_field": {"nested": [1, 2, 3]}, "status_transitions": {"paid_at": 777}});
    for (t, obj) in [("customer.subscription.created", &sub), ("invoice.paid", &invoice)] {
        projection::apply_event(
            &mut tx,
            t,
            obj,
            &Version {
                at: 1,
                event_id: "evt_x".into(),
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let s = sqlx::query("SELECT current_period_start, current_period_end FROM subscriptions WHERE id = 'sub_new'")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert_eq!(
        (
            s.get::<i64, _>("current_period_start"),
            s.get::<i64, _>("current_period_end")
        ),
        (500, 900)
    );
    let item = sqlx::query(
        "SELECT price_id, unit_amount, recurring_interval, quantity FROM subscription_items WHERE id = 'si_a'",
    )
    .fetch_one(app.db().reader())
    .await
    .unwrap();
    assert_eq!(item.get::<String, _>("price_id"), "plan_old");
    assert_eq!(item.get::<i64, _>("unit_amount"), 1500);
    assert_eq!(item.get::<String, _>("recurring_interval"), "year");
    let inv =
        sqlx::query("SELECT subscription_id, charge_id, payment_intent_id, paid_at FROM invoices WHERE id = 'in_new'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
    assert_eq!(inv.get::<String, _>("subscription_id"), "sub_new");
    assert_eq!(inv.get::<String, _>("charge_id"), "ch_new");
    assert_eq!(inv.get::<String, _>("payment_intent_id"), "pi_new");
    assert_eq!(inv.get::<i64, _>("paid_at"), 777);
    app.server.shutdown().await.unwrap();
});

both_backends!(webhooks_page_lists_filters_shows_and_requeues, |backend| async move {
    let app = TestApp::spawn_with(
        backend,
        &[("STRIPE_WEBHOOK_SECRET", SECRET), ("WEBHOOK_MAX_ATTEMPTS", "1")],
    )
    .await;
    post_signed(
        &app,
        &event(
            "evt_page",
            "customer.created",
            now(),
            customer("cus_page", "page@example.com"),
        ),
    )
    .await;
    let broken = event(
        "evt_fails",
        "invoice.paid",
        now(),
        json!({"object": "invoice", "status": "paid"}),
    );
    post_signed(&app, &broken).await;
    wait_for_status(&app, "evt_page", "applied").await;
    wait_for_status(&app, "evt_fails", "failed").await;

    let html = app.get("/webhooks").await.text().await.unwrap();
    assert!(html.contains("customer.created") && html.contains("invoice.paid"));
    let failed_only = app.get("/webhooks?status=failed").await.text().await.unwrap();
    assert!(failed_only.contains("evt_fails") && !failed_only.contains("/webhooks/evt_page"));
    let detail = app.get("/webhooks/evt_page").await.text().await.unwrap();
    assert!(
        detail.contains("page@example.com") && detail.contains("Replay"),
        "pretty payload and a replay button"
    );
    assert!(app
        .get("/webhooks/evt_nope")
        .await
        .text()
        .await
        .unwrap()
        .contains("No event with this id"));
    // The overview warns about the failed event.
    let overview = app.get("/").await.text().await.unwrap();
    assert!(overview.contains("1 webhook event could not be applied"));

    // Viewers may look but not requeue; admins requeue, and it is audited.
    app.create_admin("viewer@example.com", tally::domain::admins::Role::Viewer)
        .await;
    let viewer = app.logged_in("viewer@example.com").await;
    assert_eq!(
        app.call(&viewer, "webhooks/requeue", &[("id", "evt_page")])
            .await
            .status(),
        403
    );
    // A replay applies the event again: the row it wrote, lost meanwhile, comes back. (Waiting for
    // the status alone would pass without any replay: the event was applied already.)
    sqlx::query("DELETE FROM customers WHERE id = 'cus_page'")
        .execute(app.db().writer())
        .await
        .unwrap();
    let res = app.call(&app.client, "webhooks/requeue", &[("id", "evt_page")]).await;
    assert_eq!(res.status(), 200);
    for _ in 0..200 {
        if app
            .scalar::<i64>("SELECT COUNT(*) FROM customers WHERE id = 'cus_page'")
            .await
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.scalar::<i64>("SELECT COUNT(*) FROM customers WHERE id = 'cus_page'")
            .await,
        1,
        "the replay wrote the row again"
    );
    wait_for_status(&app, "evt_page", "applied").await;
    let res = app.call(&app.client, "webhooks/requeue", &[("id", "evt_fails")]).await;
    assert_eq!(res.status(), 200);
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'webhook.%' ORDER BY id")
            .fetch_all(app.db().reader())
            .await
            .unwrap();
    assert_eq!(actions, ["webhook.replay", "webhook.retry"]);
    app.server.shutdown().await.unwrap();
});

/// A stand-in for Stripe's API on loopback: customers by id, counting requests and checking the key.
async fn stripe_stand_in() -> (String, StandIn) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stand_in = StandIn::start(move |r: Request| {
        let calls = calls.clone();
        async move {
            let Some(id) = r.after("/v1/customers/").filter(|id| !id.contains('/')) else {
                return Reply::status(404, json!({}));
            };
            let flaky_call = if id == "cus_flaky" { calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) } else { 1 };
            match id {
                "cus_flaky" if flaky_call == 0 => Reply::error(500, "api_error", "Try again"),
                "cus_never" => Reply::error(503, "api_error", "Do not retry this").header("stripe-should-retry", "false"),
                "cus_gone" => Reply::status(
                    404,
                    json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such customer"}}),
                ),
                "cus_err" => Reply::error(400, "invalid_request_error", "Something is off"),
                _ => Reply::ok(json!({"id": id, "object": "customer", "email": "fresh@example.com", "name": "Fresh", "livemode": false})),
            }
        }
    })
    .await;
    (stand_in.url.clone(), stand_in)
}

/// Each request to the stand-in as "id authorization".
fn customer_requests(stand_in: &StandIn) -> Vec<String> {
    stand_in
        .requests()
        .iter()
        .filter_map(|r| {
            let id = r.after("/v1/customers/")?;
            Some(format!("{id} {}", r.header("authorization").unwrap_or_default()))
        })
        .collect()
}

both_backends!(refetch_mode_applies_what_stripe_has_now, |backend| async move {
    let (base, seen) = stripe_stand_in().await;
    let app = spawn(
        backend,
        &[
            ("STRIPE_SECRET_KEY", "sk_test_51standin"),
            ("STRIPE_API_BASE", &base),
            ("WEBHOOK_REFETCH", "true"),
            ("WEBHOOK_MAX_ATTEMPTS", "1"),
        ],
    )
    .await;
    post_signed(
        &app,
        &event(
            "evt_rf",
            "customer.updated",
            now(),
            customer("cus_rf", "stale@example.com"),
        ),
    )
    .await;
    wait_for_status(&app, "evt_rf", "applied").await;
    let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE id = 'cus_rf'")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert_eq!(
        email, "fresh@example.com",
        "the object Stripe returned wins over the payload"
    );
    // Gone at Stripe: the deletion payload is applied as sent.
    post_signed(
        &app,
        &event(
            "evt_gone",
            "customer.deleted",
            now(),
            json!({"id": "cus_gone", "object": "customer", "deleted": true}),
        ),
    )
    .await;
    wait_for_status(&app, "evt_gone", "applied").await;
    assert_eq!(
        app.scalar::<i64>("SELECT deleted FROM customers WHERE id = 'cus_gone'")
            .await,
        1
    );
    // Stripe refuses: not applied from the untrusted payload; the error is kept.
    post_signed(
        &app,
        &event(
            "evt_err",
            "customer.updated",
            now(),
            customer("cus_err", "x@example.com"),
        ),
    )
    .await;
    wait_for_status(&app, "evt_err", "failed").await;
    let error: String = sqlx::query_scalar("SELECT last_error FROM stripe_events WHERE id = 'evt_err'")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert!(
        error.contains("refetching cus_err from Stripe failed") && error.contains("Something is off"),
        "{error}"
    );
    assert_eq!(
        app.scalar::<i64>("SELECT COUNT(*) FROM customers WHERE id = 'cus_err'")
            .await,
        0
    );
    let requests = customer_requests(&seen);
    assert!(
        requests.iter().all(|r| r.ends_with("Bearer sk_test_51standin")),
        "{requests:?}"
    );
    assert_eq!(requests.len(), 3);
    app.server.shutdown().await.unwrap();
});

both_backends!(
    two_workers_on_one_database_apply_each_event_once,
    |backend| async move {
        use tally::webhooks::inbox::{self, IncomingEvent, Source};
        use tally::webhooks::worker::Worker;
        let db_under_test = common::TestDb::new(backend).await;
        let config = common::config_with(&db_under_test, &[]);
        // Two handles stand in for two Tally instances sharing the database.
        let first = tally::db::Db::connect(&config.database_url).await.unwrap();
        first.migrate().await.unwrap();
        let second = tally::db::Db::connect(&config.database_url).await.unwrap();
        // More events than several batches (256 a claim).
        const EVENTS: i64 = 1_000;
        for i in 0..EVENTS {
            let body = event(
                &format!("evt_{i:04}"),
                "customer.updated",
                1_000 + i,
                customer(&format!("cus_{}", i % 20), &format!("v{i}@example.com")),
            );
            let incoming = IncomingEvent::parse(&body.to_string()).unwrap();
            assert!(inbox::store(&first, &incoming, Source::Webhook, None).await.unwrap());
        }
        let worker = |db: tally::db::Db| Worker {
            db,
            wake: Default::default(),
            max_attempts: 5,
            retry_for_secs: 3 * 86_400,
            refetch: None,
        };
        let (a, b) = (worker(first.clone()), worker(second.clone()));
        // Each instance applies a batch of its own first (so both are seen to apply events), then
        // both drain the rest at the same time.
        let (first_a, first_b) = (a.run_once().await.unwrap(), b.run_once().await.unwrap());
        assert_eq!(
            (first_a, first_b),
            (256, 256),
            "each claimed a whole batch, not the other's"
        );
        let drain = |w: Worker| async move {
            let mut total = 0;
            loop {
                let n = w.run_once().await.unwrap();
                if n == 0 {
                    return total;
                }
                total += n;
            }
        };
        let (done_a, done_b) = tokio::join!(tokio::spawn(drain(a)), tokio::spawn(drain(b)));
        assert_eq!(
            (first_a + first_b + done_a.unwrap() + done_b.unwrap()) as i64,
            EVENTS,
            "every event processed exactly once between the two"
        );
        let not_once: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM stripe_events WHERE status <> 'applied' OR attempts <> 1")
                .fetch_one(first.reader())
                .await
                .unwrap();
        assert_eq!(not_once, 0);
        // The newest update of each customer won.
        let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE id = 'cus_0'")
            .fetch_one(first.reader())
            .await
            .unwrap();
        assert_eq!(email, "v980@example.com");
        first.close().await;
        second.close().await;
    }
);
