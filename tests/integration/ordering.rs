//! Exact under Stripe's real timing: several events about one object in the same second, event
//! ids that carry no order, any arrival order with duplicates; on SQLite and Postgres.

use crate::common;
use crate::common::stripe::{Reply, Request, StandIn};

use common::Backend;
use serde_json::{json, Value};
use sqlx::Row;
use tally::projection::{self, Version};
use tally::webhooks::inbox::{self, IncomingEvent, Source};

fn event(id: &str, event_type: &str, created: i64, object: Value, previous: Option<Value>) -> Value {
    let mut data = json!({ "object": object });
    if let Some(p) = previous {
        data["previous_attributes"] = p;
    }
    json!({
        "id": id, "object": "event", "type": event_type, "created": created, "livemode": false,
        "api_version": "2025-03-31.basil", "pending_webhooks": 1, "data": data
    })
}

fn items(qty: i64, price: &str, amount: i64, interval: &str) -> Value {
    json!({"object": "list", "has_more": false, "data": [{"id": "si_1", "object": "subscription_item", "quantity": qty,
        "price": {"id": price, "object": "price", "unit_amount": amount, "currency": "usd", "product": "prod_1",
                  "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}},
        "current_period_start": 1_000, "current_period_end": 1_000 + 2_592_000}]})
}

fn sub(status: &str, qty: i64) -> Value {
    json!({"id": "sub_1", "object": "subscription", "customer": "cus_1", "status": status, "currency": "usd",
           "cancel_at_period_end": false, "items": items(qty, "price_1", 2000, "month")})
}

fn invoice(id: &str, status: &str, paid: i64, attempts: i64, finalized: Option<i64>, paid_at: Option<i64>) -> Value {
    json!({"id": id, "object": "invoice", "customer": "cus_1", "subscription": "sub_1", "status": status,
           "currency": "usd", "amount_due": 2000, "amount_paid": paid, "total": 2000, "attempt_count": attempts,
           "status_transitions": {"finalized_at": finalized, "paid_at": paid_at, "voided_at": null, "marked_uncollectible_at": null}})
}

fn charge(refunded: i64) -> Value {
    // The charge embeds its refunds, as charge.refunded does: copies of re_1 in the same second.
    let refunds: Vec<Value> = match refunded {
        0 => vec![],
        500 => vec![refund("pending")],
        _ => vec![refund("succeeded")],
    };
    json!({"id": "ch_1", "object": "charge", "customer": "cus_1", "status": "succeeded", "amount": 2000,
           "amount_captured": 2000, "captured": true, "amount_refunded": refunded, "currency": "usd", "paid": true,
           "refunds": {"object": "list", "has_more": false, "data": refunds}})
}

fn intent(status: &str, received: i64) -> Value {
    json!({"id": "pi_1", "object": "payment_intent", "customer": "cus_1", "status": status, "amount": 2000,
           "amount_received": received, "currency": "usd"})
}

fn refund(status: &str) -> Value {
    json!({"id": "re_1", "object": "refund", "charge": "ch_1", "status": status, "amount": 500, "currency": "usd"})
}

const T0: i64 = 1_767_225_600; // 2026-01-01: months of movements are well defined

/// A lifecycle in Stripe's order where most seconds carry several events about one object, with
/// the truth at the end of each second noted in the assertions below. Ids are left blank.
fn lifecycle() -> Vec<(String, i64, Value, Option<Value>)> {
    let t = |s: i64| T0 + s;
    let cus = json!({"id": "cus_1", "object": "customer", "email": "Ada@Example.com", "name": "Ada"});
    let cus2 = json!({"id": "cus_1", "object": "customer", "email": "Ada@Example.com", "name": "Ada Lovelace"});
    let cus3 = json!({"id": "cus_1", "object": "customer", "email": "ada@lovelace.dev", "name": "Ada Lovelace"});
    let e = |ty: &str, s: i64, o: Value, p: Option<Value>| (ty.to_string(), t(s), o, p);
    vec![
        e("customer.created", 0, cus.clone(), None),
        // Checkout: created incomplete, activated by the payment, in one second.
        e("customer.subscription.created", 10, sub("incomplete", 1), None),
        e("invoice.created", 10, invoice("in_1", "draft", 0, 0, None, None), None),
        e(
            "invoice.finalized",
            10,
            invoice("in_1", "open", 0, 0, Some(t(10)), None),
            None,
        ),
        e("payment_intent.created", 10, intent("requires_payment_method", 0), None),
        e("payment_intent.succeeded", 10, intent("succeeded", 2000), None),
        e("charge.succeeded", 10, charge(0), None),
        e(
            "invoice.paid",
            10,
            invoice("in_1", "paid", 2000, 1, Some(t(10)), Some(t(10))),
            None,
        ),
        e(
            "invoice.payment_succeeded",
            10,
            invoice("in_1", "paid", 2000, 1, Some(t(10)), Some(t(10))),
            None,
        ),
        e(
            "customer.subscription.updated",
            10,
            sub("active", 1),
            Some(json!({"status": "incomplete"})),
        ),
        // Two customer updates in one second.
        e("customer.updated", 20, cus2.clone(), Some(json!({"name": "Ada"}))),
        e("customer.updated", 20, cus3, Some(json!({"email": "Ada@Example.com"}))),
        // Quantity 1 -> 2 -> 3 in one second (the previous attributes carry the whole items list).
        e(
            "customer.subscription.updated",
            40 * 86_400,
            sub("active", 2),
            Some(json!({"items": items(1, "price_1", 2000, "month")})),
        ),
        e(
            "customer.subscription.updated",
            40 * 86_400,
            sub("active", 3),
            Some(json!({"items": items(2, "price_1", 2000, "month")})),
        ),
        // Two partial refunds and the refund's own events in one second.
        e("charge.refunded", 41 * 86_400, charge(500), None),
        e("charge.refunded", 41 * 86_400, charge(900), None),
        e("refund.created", 41 * 86_400, refund("pending"), None),
        e(
            "refund.updated",
            41 * 86_400,
            refund("succeeded"),
            Some(json!({"status": "pending"})),
        ),
        // A renewal that fails: created, finalized, payment failed, in one second.
        e(
            "invoice.created",
            70 * 86_400,
            invoice("in_2", "draft", 0, 0, None, None),
            None,
        ),
        e(
            "invoice.finalized",
            70 * 86_400,
            invoice("in_2", "open", 0, 0, Some(t(70 * 86_400)), None),
            None,
        ),
        e(
            "invoice.payment_failed",
            70 * 86_400,
            invoice("in_2", "open", 0, 1, Some(t(70 * 86_400)), None),
            None,
        ),
        e(
            "customer.subscription.updated",
            70 * 86_400,
            sub("past_due", 3),
            Some(json!({"status": "active"})),
        ),
        // Canceled.
        e("customer.subscription.deleted", 100 * 86_400, sub("canceled", 3), None),
    ]
}

use common::Rng;

/// The lifecycle's events with random ids (which carry no order).
fn with_random_ids(rng: &mut Rng) -> Vec<Value> {
    lifecycle()
        .into_iter()
        .map(|(ty, created, object, previous)| {
            let id = format!("evt_{:016x}", rng.next());
            event(&id, &ty, created, object, previous)
        })
        .collect()
}

/// Stores each event in the inbox (as a delivery does) and applies it, one transaction each.
async fn deliver(db: &tally::db::Db, events: &[&Value]) {
    for ev in events {
        let incoming = IncomingEvent::parse(&ev.to_string()).unwrap();
        inbox::store(db, &incoming, Source::Webhook, None).await.unwrap();
        let mut tx = db.begin().await.unwrap();
        let version = Version {
            at: ev["created"].as_i64().unwrap(),
            event_id: ev["id"].as_str().unwrap().to_string(),
        };
        projection::apply_event(&mut tx, ev["type"].as_str().unwrap(), &ev["data"]["object"], &version)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
}

const TABLES: [&str; 7] = [
    "customers",
    "subscriptions",
    "invoices",
    "charges",
    "refunds",
    "payment_intents",
    "subscription_items",
];

async fn dump(db: &tally::db::Db) -> Vec<String> {
    let mut out = Vec::new();
    for table in TABLES {
        let version = if table == "subscription_items" {
            "''"
        } else {
            "version_event"
        };
        let rows = sqlx::query(&format!("SELECT id, raw, {version} AS v FROM {table} ORDER BY id"))
            .fetch_all(db.reader())
            .await
            .unwrap();
        for r in rows {
            out.push(format!(
                "{table}|{}|{}|{}",
                r.get::<String, _>("id"),
                r.get::<String, _>("raw"),
                r.get::<String, _>("v")
            ));
        }
    }
    for r in sqlx::query("SELECT customer_id, subscription_id, at, kind, delta, mrr_after FROM mrr_movements ORDER BY at, subscription_id")
        .fetch_all(db.reader())
        .await
        .unwrap()
    {
        out.push(format!(
            "movement|{}|{}|{}|{}|{}|{}",
            r.get::<String, _>("customer_id"),
            r.get::<String, _>("subscription_id"),
            r.get::<i64, _>("at"),
            r.get::<String, _>("kind"),
            r.get::<i64, _>("delta"),
            r.get::<i64, _>("mrr_after")
        ));
    }
    out
}

async fn clear(db: &tally::db::Db) {
    for table in TABLES
        .iter()
        .chain(["stripe_events", "subscription_mrr", "mrr_movements", "stripe_fetches"].iter())
    {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(db.writer())
            .await
            .unwrap();
    }
}

both_backends!(
    same_second_events_in_any_order_end_in_the_latest_state,
    |backend| async move {
        let (db, _guard) = common::migrated_db(backend).await;
        let id_sets = if backend == Backend::Sqlite { 6 } else { 3 };
        let shuffles = if backend == Backend::Sqlite { 8 } else { 4 };
        for id_seed in 1..=id_sets {
            let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ id_seed);
            let events = with_random_ids(&mut rng);
            clear(&db).await;
            deliver(&db, &events.iter().collect::<Vec<_>>()).await;
            let expected = dump(&db).await;
            // The in-order result is the truth at the end of every second.
            assert_eq!(
                common::scalar::<String>(&db, "SELECT status FROM invoices WHERE id = 'in_1'").await,
                "paid"
            );
            assert_eq!(
                common::scalar::<String>(&db, "SELECT status FROM invoices WHERE id = 'in_2'").await,
                "open"
            );
            assert!(
                common::scalar::<String>(&db, "SELECT raw FROM invoices WHERE id = 'in_2'")
                    .await
                    .contains("\"attempt_count\":1")
            );
            assert_eq!(
                common::scalar::<String>(&db, "SELECT status FROM payment_intents WHERE id = 'pi_1'").await,
                "succeeded"
            );
            assert_eq!(
                common::scalar::<String>(
                    &db,
                    "SELECT CAST(amount_refunded AS TEXT) FROM charges WHERE id = 'ch_1'"
                )
                .await,
                "900"
            );
            assert_eq!(
                common::scalar::<String>(&db, "SELECT status FROM refunds WHERE id = 're_1'").await,
                "succeeded"
            );
            assert_eq!(
                common::scalar::<String>(&db, "SELECT email || '/' || name FROM customers WHERE id = 'cus_1'").await,
                "ada@lovelace.dev/Ada Lovelace"
            );
            assert_eq!(
                common::scalar::<String>(&db, "SELECT status FROM subscriptions WHERE id = 'sub_1'").await,
                "canceled"
            );
            // Movements: new 20.00 in the second it was created and activated (never a churn in
            // between), expansion to 3 seats, churn at cancellation.
            let movements: Vec<&String> = expected.iter().filter(|r| r.starts_with("movement|")).collect();
            assert_eq!(
                movements,
                [
                    &format!("movement|cus_1|sub_1|{}|new|2000|2000", T0 + 10),
                    &format!("movement|cus_1|sub_1|{}|expansion|4000|6000", T0 + 40 * 86_400),
                    &format!("movement|cus_1|sub_1|{}|churn|-6000|0", T0 + 100 * 86_400),
                ],
                "id seed {id_seed}"
            );
            for shuffle in 1..=shuffles {
                let mut order: Vec<&Value> = events.iter().collect();
                for _ in 0..rng.below(6) {
                    order.push(&events[rng.below(events.len())]);
                }
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.below(i + 1));
                }
                clear(&db).await;
                deliver(&db, &order).await;
                assert_eq!(
                    dump(&db).await,
                    expected,
                    "id seed {id_seed}, shuffle {shuffle} diverged"
                );
            }
        }
        db.close().await;
    }
);

// ---- Through the running app: webhooks signed and posted, a Stripe stand-in on loopback. ----

const SECRET: &str = "whsec_test_secret_for_ordering";

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::TestApp;

async fn post_signed(app: &TestApp, body: &Value) {
    assert_eq!(app.post_webhook(SECRET, body).await.status(), 200);
}

/// Waits until `sql` (one text value) gives `wanted`.
async fn wait_for(app: &TestApp, sql: &str, wanted: &str) {
    let mut last = None;
    for _ in 0..300 {
        last = sqlx::query_scalar::<_, String>(sql)
            .fetch_optional(app.db().reader())
            .await
            .unwrap();
        if last.as_deref() == Some(wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{sql} never gave {wanted:?}; last {last:?}");
}

async fn wait_applied(app: &TestApp, ids: &[&str]) {
    for id in ids {
        wait_for(
            app,
            &format!("SELECT CASE WHEN status IN ('applied', 'ignored') THEN 'done' ELSE status END FROM stripe_events WHERE id = '{id}'"),
            "done",
        )
        .await;
    }
}

/// The Stripe stand-in answering GETs from a map of path → object.
#[derive(Clone, Default)]
struct Stripe {
    objects: Arc<Mutex<HashMap<String, Value>>>,
    /// When set, each answer waits for a permit (the test decides when Stripe answers).
    gate: Arc<Mutex<Option<Arc<tokio::sync::Semaphore>>>>,
    /// The stand-in, once started.
    running: Arc<Mutex<Option<StandIn>>>,
}

impl Stripe {
    async fn start(&self) -> String {
        let this = self.clone();
        let stand_in = StandIn::start(move |r: Request| {
            let this = this.clone();
            async move {
                let gate = this.gate.lock().unwrap().clone();
                if let Some(gate) = gate {
                    gate.acquire().await.unwrap().forget();
                }
                match this.objects.lock().unwrap().get(&r.path) {
                    Some(v) => Reply::ok(v.clone()),
                    None => Reply::error(404, "invalid_request_error", "No such object"),
                }
            }
        })
        .await;
        let base = stand_in.url.clone();
        *self.running.lock().unwrap() = Some(stand_in);
        base
    }

    fn base(&self) -> String {
        self.running
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.url.clone())
            .unwrap_or_default()
    }

    fn set(&self, path: &str, object: Value) {
        self.objects.lock().unwrap().insert(path.to_string(), object);
    }

    fn count(&self, prefix: &str) -> usize {
        self.running.lock().unwrap().as_ref().map_or(0, |s| s.count(prefix))
    }
}

async fn app_with_stripe(backend: Backend, stripe: &Stripe) -> TestApp {
    let base = stripe.start().await;
    TestApp::spawn_with(
        backend,
        &[
            ("STRIPE_WEBHOOK_SECRET", SECRET),
            ("STRIPE_SECRET_KEY", "sk_test_51ordering"),
            ("STRIPE_API_BASE", &base),
            ("RECONCILE_INTERVAL", "off"),
        ],
    )
    .await
}

/// Two updates of one second that the events alone cannot order: each names a previous state the
/// other does not have, and the same lifecycle step.
fn ambiguous_pair(created: i64) -> (Value, Value) {
    let cus = |name: &str| json!({"id": "cus_tie", "object": "customer", "email": "t@example.com", "name": name});
    (
        // The larger id: the events' own order picks this one.
        event(
            "evt_zzz_tie",
            "customer.updated",
            created,
            cus("Grace"),
            Some(json!({"name": "Ada"})),
        ),
        event(
            "evt_aaa_tie",
            "customer.updated",
            created,
            cus("Hopper"),
            Some(json!({"name": "Lovelace"})),
        ),
    )
}

both_backends!(with_a_key_a_tie_is_settled_by_one_fetch, |backend| async move {
    let stripe = Stripe::default();
    // Stripe's truth: the second update came last.
    stripe.set(
        "/v1/customers/cus_tie",
        json!({"id": "cus_tie", "object": "customer", "email": "t@example.com", "name": "Hopper"}),
    );
    let app = app_with_stripe(backend, &stripe).await;
    // A few seconds ago, so the fetch is due at once.
    let created = tally::db::now_unix() - 10;
    let (a, b) = ambiguous_pair(created);
    post_signed(&app, &a).await;
    post_signed(&app, &b).await;
    // A third event of the same burst.
    post_signed(
        &app,
        &event(
            "evt_mmm_tie",
            "customer.updated",
            created,
            json!({"id": "cus_tie", "object": "customer", "email": "t@example.com", "name": "Grace"}),
            Some(json!({"email": "old@example.com"})),
        ),
    )
    .await;
    wait_applied(&app, &["evt_zzz_tie", "evt_aaa_tie", "evt_mmm_tie"]).await;
    wait_for(&app, "SELECT name FROM customers WHERE id = 'cus_tie'", "Hopper").await;
    wait_for(&app, "SELECT CAST(COUNT(*) AS TEXT) FROM stripe_fetches", "0").await;
    assert_eq!(stripe.count("/v1/customers/cus_tie"), 1, "one fetch for the burst");
    // Applied as fetched: a late event of that second no longer changes it.
    assert_eq!(
        sqlx::query_scalar::<_, String>("SELECT version_event FROM customers WHERE id = 'cus_tie'")
            .fetch_one(app.db().reader())
            .await
            .unwrap(),
        tally::projection::FETCHED
    );
    app.server.shutdown().await.unwrap();
});

both_backends!(without_a_key_the_events_decide_in_either_order, |backend| async move {
    for reversed in [false, true] {
        let app = TestApp::spawn_with(backend, &[("STRIPE_WEBHOOK_SECRET", SECRET)]).await;
        let created = tally::db::now_unix() - 5;
        // Ids ordered against Stripe's order.
        let mut events = vec![
            event(
                "evt_zz_created",
                "customer.subscription.created",
                created,
                sub("incomplete", 1),
                None,
            ),
            event(
                "evt_aa_updated",
                "customer.subscription.updated",
                created,
                sub("active", 1),
                Some(json!({"status": "incomplete"})),
            ),
        ];
        if reversed {
            events.reverse();
        }
        for e in &events {
            post_signed(&app, e).await;
        }
        wait_applied(&app, &["evt_zz_created", "evt_aa_updated"]).await;
        wait_for(&app, "SELECT status FROM subscriptions WHERE id = 'sub_1'", "active").await;
        // In MRR from the second it was created: one 'new' movement of 20.00, no churn.
        let movements: Vec<(String, i64)> =
            sqlx::query_as("SELECT kind, delta FROM mrr_movements WHERE subscription_id = 'sub_1'")
                .fetch_all(app.db().reader())
                .await
                .unwrap();
        assert_eq!(movements, [("new".to_string(), 2000)], "reversed: {reversed}");
        assert_eq!(
            sqlx::query_scalar::<_, i64>("SELECT mrr FROM subscriptions WHERE id = 'sub_1'")
                .fetch_one(app.db().reader())
                .await
                .unwrap(),
            2000
        );
        let overview = app.get("/").await.text().await.unwrap();
        assert!(overview.contains("$20.00"), "MRR on the overview");
        app.server.shutdown().await.unwrap();
    }
});

both_backends!(connected_account_events_are_kept_apart, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("STRIPE_WEBHOOK_SECRET", SECRET)]).await;
    let now = tally::db::now_unix();
    post_signed(
        &app,
        &event(
            "evt_own",
            "customer.created",
            now,
            json!({"id": "cus_1", "object": "customer", "email": "own@example.com"}),
            None,
        ),
    )
    .await;
    let mut connected = event(
        "evt_connected",
        "customer.updated",
        now + 1,
        json!({"id": "cus_1", "object": "customer", "email": "theirs@example.com"}),
        None,
    );
    connected["account"] = json!("acct_1Connected");
    post_signed(&app, &connected).await;
    let mut connected_sub = event(
        "evt_connected_sub",
        "customer.subscription.created",
        now + 1,
        sub("active", 5),
        None,
    );
    connected_sub["account"] = json!("acct_1Connected");
    post_signed(&app, &connected_sub).await;
    wait_applied(&app, &["evt_own", "evt_connected", "evt_connected_sub"]).await;
    wait_for(
        &app,
        "SELECT email FROM customers WHERE id = 'cus_1'",
        "own@example.com",
    )
    .await;
    let status = |id: &'static str| {
        let app = &app;
        async move {
            sqlx::query_as::<_, (String, Option<String>)>("SELECT status, last_error FROM stripe_events WHERE id = $1")
                .bind(id)
                .fetch_one(app.db().reader())
                .await
                .unwrap()
        }
    };
    // The connected account's event about the platform's customer changes nothing of it.
    let (state, note) = status("evt_connected").await;
    assert_eq!(state, "ignored");
    assert_eq!(note.as_deref(), Some(tally::projection::OTHER_ACCOUNTS_OBJECT));
    // Its subscription is its own row, with its own MRR movement; nothing in the platform's.
    assert_eq!(status("evt_connected_sub").await.0, "applied");
    for (sql, n) in [
        ("SELECT COUNT(*) FROM subscriptions WHERE account_id = ''", 0),
        (
            "SELECT COUNT(*) FROM subscriptions WHERE account_id = 'acct_1Connected'",
            1,
        ),
        ("SELECT COUNT(*) FROM mrr_movements WHERE account_id = ''", 0),
        (
            "SELECT COUNT(*) FROM mrr_movements WHERE account_id = 'acct_1Connected'",
            1,
        ),
    ] {
        assert_eq!(
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(app.db().reader())
                .await
                .unwrap(),
            n,
            "{sql}"
        );
    }
    // Visible on the Webhooks page with the reason.
    let page = app.get("/webhooks/evt_connected").await.text().await.unwrap();
    assert!(page.contains("another Stripe account"), "{page}");
    // A replay does not apply it either.
    app.server.shutdown().await.unwrap();
});

both_backends!(
    a_backfill_page_never_hides_a_webhook_sent_while_it_was_fetched,
    |backend| async move {
        let stripe = Stripe::default();
        let base = stripe.start().await;
        // Stripe's list answers slowly, with the state from before the change.
        stripe.set(
            "/v1/customers",
            json!({"object": "list", "has_more": false, "data": [
                {"id": "cus_race", "object": "customer", "email": "before@example.com", "created": 1_700_000_000}
            ]}),
        );
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        *stripe.gate.lock().unwrap() = Some(gate.clone());
        let (db, api, _test_db) = common::db_with_stripe(backend, &base).await;
        let sync = {
            let (db, api) = (db.clone(), api.clone());
            tokio::spawn(async move {
                let options = tally::sync::SyncOptions {
                    only: vec![tally::domain::resource::Resource::Customer],
                    ..Default::default()
                };
                tally::sync::run(&db, api.clone(), &options, |_| {}).await.unwrap();
            })
        };
        // While the page is on its way (Stripe has the request and holds its answer), the
        // customer changes and its webhook arrives.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while stripe.count("/v1/customers") == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the backfill never asked for customers"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let change = event(
            "evt_during_fetch",
            "customer.updated",
            tally::db::now_unix(),
            json!({"id": "cus_race", "object": "customer", "email": "after@example.com"}),
            Some(json!({"email": "before@example.com"})),
        );
        deliver(&db, &[&change]).await;
        gate.add_permits(1_000);
        sync.await.unwrap();
        assert_eq!(
            common::scalar::<String>(&db, "SELECT email FROM customers WHERE id = 'cus_race'").await,
            "after@example.com",
            "the page fetched before the change did not overwrite it"
        );
        db.close().await;
    }
);

fn drift_sub(
    id: &str,
    price: &str,
    interval: &str,
    qty: i64,
    period_end: i64,
    cancel: bool,
    trial_end: Option<i64>,
) -> Value {
    json!({"id": id, "object": "subscription", "customer": "cus_1", "status": "active", "currency": "usd",
           "created": 1_700_000_000, "cancel_at_period_end": cancel, "trial_end": trial_end,
           "items": {"object": "list", "has_more": false, "data": [{"id": format!("si_{id}"), "object": "subscription_item",
               "quantity": qty, "current_period_start": period_end - 2_592_000, "current_period_end": period_end,
               "price": {"id": price, "object": "price", "unit_amount": 1000, "currency": "usd", "product": "prod_1",
                         "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}}]}})
}

both_backends!(drift_reports_what_moves_mrr_and_confirms_it, |backend| async move {
    let stripe = Stripe::default();
    let base = stripe.start().await;
    let end = 1_800_000_000;
    let base_sub = |id: &str| drift_sub(id, "price_m", "month", 1, end, false, None);
    let ids = [
        "sub_plan",
        "sub_qty",
        "sub_yearly",
        "sub_end",
        "sub_cancel",
        "sub_trial",
        "sub_inflight",
        "sub_same",
    ];
    let list = |subs: Vec<Value>| json!({"object": "list", "has_more": false, "data": subs});
    stripe.set("/v1/subscriptions", list(ids.iter().map(|id| base_sub(id)).collect()));
    let (db, api, _test_db) = common::db_with_stripe(backend, &base).await;
    let only = [tally::domain::resource::Resource::Subscription];
    tally::sync::run(
        &db,
        api.clone(),
        &tally::sync::SyncOptions {
            only: only.to_vec(),
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    let clean = tally::sync::drift::run(&db, api.as_ref(), &only, |_| {}).await.unwrap();
    assert!(!clean.has_drift(), "{:?}", clean.differences);

    // At Stripe now: each subscription changed in one way that moves MRR or its timing.
    let changed = vec![
        drift_sub("sub_plan", "price_pro", "month", 1, end, false, None),
        drift_sub("sub_qty", "price_m", "month", 4, end, false, None),
        drift_sub("sub_yearly", "price_y", "year", 1, end, false, None),
        drift_sub("sub_end", "price_m", "month", 1, end + 2_592_000, false, None),
        drift_sub("sub_cancel", "price_m", "month", 1, end, true, None),
        drift_sub("sub_trial", "price_m", "month", 1, end, false, Some(end - 86_400)),
        base_sub("sub_same"),
    ];
    for s in &changed {
        stripe.set(&format!("/v1/subscriptions/{}", s["id"].as_str().unwrap()), s.clone());
    }
    // Listed with a change that the re-fetch no longer shows (it changed back while checking).
    let mut listed = changed.clone();
    listed.push(drift_sub("sub_inflight", "price_m", "month", 9, end, false, None));
    stripe.set("/v1/subscriptions/sub_inflight", base_sub("sub_inflight"));
    stripe.set("/v1/subscriptions", list(listed));

    let report = tally::sync::drift::run(&db, api.as_ref(), &only, |_| {}).await.unwrap();
    let mut found: Vec<(String, String)> = report
        .differences
        .iter()
        .map(|d| (d.id.clone(), d.field.clone().unwrap_or_default()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("sub_cancel", "cancel_at_period_end"),
            ("sub_end", "current_period_end"),
            ("sub_plan", "items"),
            ("sub_qty", "items"),
            ("sub_trial", "trial_end"),
            ("sub_yearly", "items"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
        "{:?}",
        report.differences
    );
    let qty = report.differences.iter().find(|d| d.id == "sub_qty").unwrap();
    assert_eq!(
        (qty.here.as_deref(), qty.stripe.as_deref()),
        (Some("price_m x1"), Some("price_m x4"))
    );
    assert_eq!(report.types[0].changed, 6);
    assert!(
        stripe.count("/v1/subscriptions/sub_inflight") >= 1,
        "the suspect was re-fetched"
    );
    db.close().await;
});

fn long_sub(items: &[(&str, i64)], has_more: bool) -> Value {
    let data: Vec<Value> = items
        .iter()
        .map(|(id, amount)| {
            json!({"id": id, "object": "subscription_item", "quantity": 1, "subscription": "sub_long",
                   "current_period_start": 1_000, "current_period_end": 2_000,
                   "price": {"id": format!("price_{id}"), "object": "price", "unit_amount": amount, "currency": "usd",
                             "product": "prod_1", "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}})
        })
        .collect();
    json!({"id": "sub_long", "object": "subscription", "customer": "cus_long", "status": "active", "currency": "usd",
           "items": {"object": "list", "has_more": has_more, "data": data, "url": "/v1/subscription_items?subscription=sub_long"}})
}

both_backends!(
    a_long_item_list_is_completed_with_a_key_and_flagged_without,
    |backend| async move {
        let first_page = [("si_a", 1000)];
        let all = [("si_a", 1000), ("si_b", 2500)];
        let long_event = event(
            "evt_long",
            "customer.subscription.created",
            tally::db::now_unix() - 10,
            long_sub(&first_page, true),
            None,
        );

        // With a key: the rest of the items is fetched and MRR is whole.
        let stripe = Stripe::default();
        stripe.set("/v1/subscriptions/sub_long", long_sub(&first_page, true));
        let item_list = long_sub(&all, false)["items"].clone();
        stripe.set("/v1/subscription_items", item_list);
        let app = app_with_stripe(backend, &stripe).await;
        post_signed(&app, &long_event).await;
        wait_applied(&app, &["evt_long"]).await;
        wait_for(
            &app,
            "SELECT CAST(mrr AS TEXT) FROM subscriptions WHERE id = 'sub_long'",
            "3500",
        )
        .await;
        wait_for(
            &app,
            "SELECT CAST(items_incomplete AS TEXT) FROM subscriptions WHERE id = 'sub_long'",
            "0",
        )
        .await;
        wait_for(
            &app,
            "SELECT CAST(COUNT(*) AS TEXT) FROM subscription_items WHERE subscription_id = 'sub_long'",
            "2",
        )
        .await;
        assert!(stripe.count("/v1/subscription_items?") >= 1);
        app.server.shutdown().await.unwrap();

        // Without a key: the row says it is incomplete, and so do the pages.
        let app = TestApp::spawn_with(backend, &[("STRIPE_WEBHOOK_SECRET", SECRET)]).await;
        let customer = json!({"id": "cus_long", "object": "customer", "email": "long@example.com"});
        post_signed(
            &app,
            &event(
                "evt_cus_long",
                "customer.created",
                tally::db::now_unix() - 20,
                customer,
                None,
            ),
        )
        .await;
        post_signed(&app, &long_event).await;
        wait_applied(&app, &["evt_long", "evt_cus_long"]).await;
        wait_for(
            &app,
            "SELECT CAST(items_incomplete AS TEXT) FROM subscriptions WHERE id = 'sub_long'",
            "1",
        )
        .await;
        let customer = app.get("/customers/cus_long").await.text().await.unwrap();
        assert!(customer.contains("data-test=\"items-incomplete\""), "{customer}");
        let overview = app.get("/").await.text().await.unwrap();
        assert!(
            overview.contains("Stripe sent only part of the items of 1 subscription"),
            "{overview}"
        );
        app.server.shutdown().await.unwrap();
    }
);

// ---- Outages: failed events come back without hand work ----

async fn store_failed(db: &tally::db::Db, ev: &Value) {
    let incoming = IncomingEvent::parse(&ev.to_string()).unwrap();
    inbox::store(db, &incoming, Source::Webhook, None).await.unwrap();
    sqlx::query(
        "UPDATE stripe_events SET status = 'failed', attempts = 9, last_error = 'database was down' WHERE id = $1",
    )
    .bind(incoming.id)
    .execute(db.writer())
    .await
    .unwrap();
}

both_backends!(reconciliation_applies_events_that_had_failed, |backend| async move {
    let stripe = Stripe::default();
    let base = stripe.start().await;
    let now = tally::db::now_unix();
    let missed = event(
        "evt_failed_before",
        "customer.created",
        now - 60,
        json!({"id": "cus_back", "object": "customer", "email": "back@example.com"}),
        None,
    );
    stripe.set(
        "/v1/events",
        json!({"object": "list", "has_more": false, "data": [missed]}),
    );
    let (db, api, _test_db) = common::db_with_stripe(backend, &base).await;
    store_failed(&db, &missed).await;
    let report = tally::sync::reconcile::run(&db, api.as_ref(), 3, None, |_| {})
        .await
        .unwrap();
    assert_eq!((report.listed, report.missing, report.retried_failed), (1, 0, 1));
    let worker = tally::webhooks::worker::Worker {
        db: db.clone(),
        wake: Default::default(),
        max_attempts: i64::MAX,
        retry_for_secs: 3 * 86_400,
        refetch: None,
    };
    worker.run_once().await.unwrap();
    assert_eq!(
        common::scalar::<String>(&db, "SELECT status FROM stripe_events WHERE id = 'evt_failed_before'").await,
        "applied"
    );
    assert_eq!(
        common::scalar::<String>(&db, "SELECT email FROM customers WHERE id = 'cus_back'").await,
        "back@example.com"
    );
    db.close().await;
});

both_backends!(admins_retry_every_failed_event_of_a_type, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("STRIPE_WEBHOOK_SECRET", SECRET)]).await;
    let now = tally::db::now_unix();
    for (id, ty, object) in [
        (
            "evt_f1",
            "customer.created",
            json!({"id": "cus_f1", "object": "customer", "email": "f1@example.com"}),
        ),
        (
            "evt_f2",
            "customer.created",
            json!({"id": "cus_f2", "object": "customer", "email": "f2@example.com"}),
        ),
        (
            "evt_f3",
            "product.created",
            json!({"id": "prod_f3", "object": "product", "name": "P"}),
        ),
    ] {
        store_failed(app.db(), &event(id, ty, now - 100, object, None)).await;
    }
    let page = app
        .get("/webhooks?status=failed&type=customer.created")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Retry every failed customer.created event"), "{page}");
    // Viewers may not.
    app.create_admin("viewer@example.com", tally::domain::admins::Role::Viewer)
        .await;
    let viewer = app.logged_in("viewer@example.com").await;
    let res = app
        .call(&viewer, "webhooks/retry_failed", &[("event_type", "customer.created")])
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .call(
            &app.client,
            "webhooks/retry_failed",
            &[("event_type", "customer.created")],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("2 failed events of customer.created"));
    wait_applied(&app, &["evt_f1", "evt_f2"]).await;
    wait_for(
        &app,
        "SELECT email FROM customers WHERE id = 'cus_f2'",
        "f2@example.com",
    )
    .await;
    assert_eq!(
        sqlx::query_scalar::<_, String>("SELECT status FROM stripe_events WHERE id = 'evt_f3'")
            .fetch_one(app.db().reader())
            .await
            .unwrap(),
        "failed",
        "another type is left alone"
    );
    let audit: (String, String, Option<String>) =
        sqlx::query_as("SELECT admin_email, target, detail FROM audit_log WHERE action = 'webhook.retry_failed'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
    assert_eq!(
        audit,
        (
            common::OWNER_EMAIL.to_string(),
            "customer.created".to_string(),
            Some("2 failed events queued again".to_string())
        )
    );
    // The failed count is on /metrics and the overview.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("status=\"failed\"} 1"), "{metrics}");
    let overview = app.get("/").await.text().await.unwrap();
    assert!(overview.contains("1 webhook event could not be applied"));
    app.server.shutdown().await.unwrap();
});

both_backends!(
    a_type_the_key_cannot_read_is_skipped_and_the_run_is_partial,
    |backend| async move {
        let stripe = Stripe::default();
        for path in [
            "/v1/products",
            "/v1/prices",
            "/v1/coupons",
            "/v1/promotion_codes",
            "/v1/subscriptions",
            "/v1/invoices",
            "/v1/payment_intents",
            "/v1/refunds",
            "/v1/disputes",
            "/v1/checkout/sessions",
        ] {
            stripe.set(path, json!({"object": "list", "has_more": false, "data": []}));
        }
        stripe.set(
            "/v1/customers",
            json!({"object": "list", "has_more": false, "data": [{"id": "cus_p", "object": "customer", "email": "p@example.com"}]}),
        );
        // /v1/charges is not set: the stand-in answers 404, as for an account without it.
        let app = app_with_stripe(backend, &stripe).await;
        let config = common::config_with(
            &app.db,
            &[
                ("STRIPE_SECRET_KEY", "sk_test_51partial"),
                ("STRIPE_API_BASE", &stripe.base()),
            ],
        );
        let ctx = tally::sync::background::JobContext {
            account: String::new(),
            db: app.db().clone(),
            stripe: tally::stripe::from_config(&config).unwrap(),
            config: Arc::new(config),
            events: Default::default(),
        };
        let job = tally::sync::background::Job::Sync(Default::default());
        let outcome = tally::sync::background::run(&ctx, job, tally::sync::jobs::Trigger::Cli)
            .await
            .unwrap();
        assert!(outcome.partial);
        assert_eq!(
            common::scalar::<String>(app.db(), "SELECT email FROM customers WHERE id = 'cus_p'").await,
            "p@example.com"
        );
        let progress = tally::sync::status(app.db()).await.unwrap();
        let charges = progress.iter().find(|t| t.resource == "charges").unwrap();
        assert_eq!(
            charges.skipped.as_deref(),
            Some("Stripe does not offer it to this account (404 on GET /v1/charges)")
        );
        assert!(progress
            .iter()
            .filter(|t| t.resource != "charges")
            .all(|t| t.done && t.skipped.is_none()));
        assert_eq!(
            common::scalar::<String>(app.db(), "SELECT status FROM jobs WHERE kind = 'sync'").await,
            "partial"
        );
        let page = app.get("/settings/sync").await.text().await.unwrap();
        assert!(page.contains("Partial: finished"), "{page}");
        assert!(page.contains("404 on GET /v1/charges"), "{page}");
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    reconciliation_with_a_key_that_cannot_list_events_is_partial,
    |backend| async move {
        // The stand-in knows no /v1/events: 404, as for a key without access to events.
        let stripe = Stripe::default();
        let base = stripe.start().await;
        let (db, api, _test_db) = common::db_with_stripe(backend, &base).await;
        let report = tally::sync::reconcile::run(&db, api.as_ref(), 3, None, |_| {})
            .await
            .unwrap();
        assert_eq!(
            report.skipped.as_deref(),
            Some("Stripe does not offer it to this account (404 on GET /v1/events)")
        );
        assert_eq!(report.listed, 0);
        db.close().await;
    }
);

both_backends!(
    an_invoice_with_lines_cut_short_is_completed_with_a_key,
    |backend| async move {
        let invoice = |lines: Value| {
            json!({"id": "in_long", "object": "invoice", "customer": "cus_1", "status": "paid", "currency": "usd",
                   "amount_due": 3000, "amount_paid": 3000, "total": 3000, "lines": lines})
        };
        let line =
            |id: &str, amount: i64| json!({"id": id, "object": "line_item", "amount": amount, "currency": "usd"});
        let first = json!({"object": "list", "has_more": true, "data": [line("il_1", 1000)]});
        let all = json!({"object": "list", "has_more": false, "data": [line("il_1", 1000), line("il_2", 2000)]});
        let stripe = Stripe::default();
        stripe.set("/v1/invoices/in_long", invoice(first.clone()));
        stripe.set("/v1/invoices/in_long/lines", all);
        let app = app_with_stripe(backend, &stripe).await;
        post_signed(
            &app,
            &event(
                "evt_inv_long",
                "invoice.paid",
                tally::db::now_unix() - 10,
                invoice(first),
                None,
            ),
        )
        .await;
        wait_applied(&app, &["evt_inv_long"]).await;
        wait_for(
            &app,
            "SELECT CAST(lines_incomplete AS TEXT) FROM invoices WHERE id = 'in_long'",
            "0",
        )
        .await;
        let raw: String = sqlx::query_scalar("SELECT raw FROM invoices WHERE id = 'in_long'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert!(raw.contains("il_2"), "the whole list is stored: {raw}");
        assert_eq!(stripe.count("/v1/invoices/in_long/lines"), 1);
        app.server.shutdown().await.unwrap();
    }
);
