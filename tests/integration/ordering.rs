//! Exact under Stripe's real timing: several events about one object in the same second, event
//! ids that carry no order, any arrival order with duplicates; on SQLite and Postgres.

use crate::common;

use common::Backend;
use serde_json::{json, Value};
use sqlx::Row;
use tally::webhooks::inbox::{self, IncomingEvent, Source};
use tally::webhooks::projection::{self, Version};

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
    json!({"id": "ch_1", "object": "charge", "customer": "cus_1", "status": "succeeded", "amount": 2000,
           "amount_captured": 2000, "captured": true, "amount_refunded": refunded, "currency": "usd", "paid": true,
           "refunds": {"object": "list", "has_more": false, "data": []}})
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
        e("invoice.finalized", 10, invoice("in_1", "open", 0, 0, Some(t(10)), None), None),
        e("payment_intent.created", 10, intent("requires_payment_method", 0), None),
        e("payment_intent.succeeded", 10, intent("succeeded", 2000), None),
        e("charge.succeeded", 10, charge(0), None),
        e("invoice.paid", 10, invoice("in_1", "paid", 2000, 1, Some(t(10)), Some(t(10))), None),
        e("invoice.payment_succeeded", 10, invoice("in_1", "paid", 2000, 1, Some(t(10)), Some(t(10))), None),
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

/// xorshift64*: deterministic, so a failing case can be replayed from its seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

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

async fn text(db: &tally::db::Db, sql: &str) -> String {
    sqlx::query_scalar(sql).fetch_one(db.reader()).await.unwrap()
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
                text(&db, "SELECT status FROM invoices WHERE id = 'in_1'").await,
                "paid"
            );
            assert_eq!(
                text(&db, "SELECT status FROM invoices WHERE id = 'in_2'").await,
                "open"
            );
            assert!(text(&db, "SELECT raw FROM invoices WHERE id = 'in_2'")
                .await
                .contains("\"attempt_count\":1"));
            assert_eq!(
                text(&db, "SELECT status FROM payment_intents WHERE id = 'pi_1'").await,
                "succeeded"
            );
            assert_eq!(
                text(&db, "SELECT CAST(amount_refunded AS TEXT) FROM charges WHERE id = 'ch_1'").await,
                "900"
            );
            assert_eq!(
                text(&db, "SELECT status FROM refunds WHERE id = 're_1'").await,
                "succeeded"
            );
            assert_eq!(
                text(&db, "SELECT email || '/' || name FROM customers WHERE id = 'cus_1'").await,
                "ada@lovelace.dev/Ada Lovelace"
            );
            assert_eq!(
                text(&db, "SELECT status FROM subscriptions WHERE id = 'sub_1'").await,
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
