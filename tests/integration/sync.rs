//! Backfill against a Stripe stand-in on loopback: pagination, resume after a failure, newer wins.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::stripe::{Reply, Request, StandIn as Stripe};
use serde_json::{json, Value};
use tally::sync::{self, SyncOptions};

const CUSTOMERS: usize = 250;

struct StandIn {
    base: String,
    requests: Arc<Mutex<Vec<String>>>,
    /// The second (Unix time) in which each request arrived.
    seconds: Arc<Mutex<Vec<u64>>>,
    fail_second_page: Arc<AtomicBool>,
}

fn unix_second() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn customer(i: usize) -> Value {
    json!({"id": format!("cus_{i:03}"), "object": "customer", "email": format!("c{i}@example.com"), "created": 1_700_000_000 + i as i64})
}

async fn stand_in() -> StandIn {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seconds = Arc::new(Mutex::new(Vec::new()));
    let fail = Arc::new(AtomicBool::new(false));
    let (log, fail_flag, clock) = (requests.clone(), fail.clone(), seconds.clone());
    let stripe = Stripe::start(move |r: Request| {
        let (log, fail_flag, clock) = (log.clone(), fail_flag.clone(), clock.clone());
        async move {
            if r.path == "/v1/checkout/sessions" {
                clock.lock().unwrap().push(unix_second());
                log.lock().unwrap().push("checkout_sessions?".to_string());
                return Reply::list(vec![], false);
            }
            // One customer, as drift re-fetches a suspect.
            if let Some(id) = r.after("/v1/customers/") {
                let found = (0..CUSTOMERS).find(|i| format!("cus_{i:03}") == id);
                return Reply::ok(
                    found.map_or_else(|| json!({"id": id, "object": "customer", "deleted": true}), customer),
                );
            }
            let Some(resource) = r.after("/v1/").filter(|p| !p.contains('/')) else {
                return Reply::status(404, json!({}));
            };
            clock.lock().unwrap().push(unix_second());
            let q = &r.query;
            let mut keys: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
            keys.sort();
            log.lock().unwrap().push(format!("{resource}?{}", keys.join("&")));
            if resource != "customers" {
                return Reply::list(vec![], false);
            }
            // Newest first, as Stripe lists: cus_249 … cus_000.
            if q.contains_key("starting_after") && fail_flag.load(Ordering::SeqCst) {
                return Reply::error(500, "api_error", "stand-in outage").header("stripe-should-retry", "false");
            }
            let all: Vec<Value> = (0..CUSTOMERS).rev().map(customer).collect();
            common::stripe::list_page(&all, q)
        }
    })
    .await;
    StandIn {
        base: stripe.url,
        requests,
        seconds,
        fail_second_page: fail,
    }
}

async fn setup(
    backend: common::Backend,
    base: &str,
) -> (tally::db::Db, Arc<dyn tally::stripe::StripeApi>, common::TestDb) {
    setup_with(backend, base, &[]).await
}

async fn setup_with(
    backend: common::Backend,
    base: &str,
    extra: &[(&str, &str)],
) -> (tally::db::Db, Arc<dyn tally::stripe::StripeApi>, common::TestDb) {
    common::db_with_stripe_and(backend, base, extra).await
}

both_backends!(pages_through_lists_and_resumes_after_a_failure, |backend| async move {
    let s = stand_in().await;
    let (db, stripe, _keep) = setup(backend, &s.base).await;
    s.fail_second_page.store(true, Ordering::SeqCst);
    let err = sync::run(&db, stripe.clone(), &SyncOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, sync::SyncError::Stripe(e) if e.kind == tally::stripe::ErrorKind::Api),
        "{err:?}"
    );
    assert!(
        common::scalar::<i64>(&db, "SELECT COUNT(*) FROM customers").await >= 100,
        "the first page was kept"
    );

    // Killed (here: failed) midway, then run again: it continues after the last applied object.
    s.fail_second_page.store(false, Ordering::SeqCst);
    // Types run several at a time: some finished in the first run.
    let first_run = std::mem::take(&mut *s.requests.lock().unwrap());
    let mut reports = Vec::new();
    let summary = sync::run(&db, stripe.clone(), &SyncOptions::default(), |p| {
        reports.push(p.clone())
    })
    .await
    .unwrap();
    assert_eq!(
        common::scalar::<i64>(&db, "SELECT COUNT(*) FROM customers").await,
        CUSTOMERS as i64
    );
    let customers = summary.iter().find(|p| p.resource.table() == "customers").unwrap();
    assert_eq!(customers.fetched, CUSTOMERS as i64, "no object fetched twice");
    let requests = s.requests.lock().unwrap().clone();
    // The first slice (no upper bound) resumed after the last object it applied.
    let first_slice: Vec<&String> = requests
        .iter()
        .filter(|r| r.starts_with("customers?") && !r.contains("created[lt]"))
        .collect();
    assert!(
        first_slice[0].contains("starting_after=cus_150"),
        "resumed after the last applied id: {first_slice:?}"
    );
    assert!(
        first_run
            .iter()
            .chain(&requests)
            .any(|r| r.starts_with("subscriptions?") && r.contains("status=all")),
        "{requests:?}"
    );
    assert!(reports.iter().any(|p| p.resource.table() == "customers" && p.done));

    // A finished run starts afresh next time, and applying the same data again changes nothing.
    let again = sync::run(
        &db,
        stripe.clone(),
        &SyncOptions {
            only: vec![tally::domain::resource::Resource::Customer],
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(again[0].fetched, CUSTOMERS as i64);
    assert_eq!(
        common::scalar::<i64>(&db, "SELECT COUNT(*) FROM customers").await,
        CUSTOMERS as i64
    );

    // Drift walks the same three pages (has_more) and finds a change on the last one.
    let only = [tally::domain::resource::Resource::Customer];
    let clean = sync::drift::run(&db, stripe.as_ref(), &only, |_| {}).await.unwrap();
    assert!(!clean.has_drift(), "{:?}", clean.differences);
    assert_eq!(
        (clean.types[0].at_stripe, clean.types[0].here),
        (CUSTOMERS as i64, CUSTOMERS as i64)
    );
    sqlx::query("UPDATE customers SET email = 'changed@example.com' WHERE id = 'cus_003'")
        .execute(db.writer())
        .await
        .unwrap();
    let report = sync::drift::run(&db, stripe.as_ref(), &only, |_| {}).await.unwrap();
    assert_eq!(report.total_differences, 1, "{:?}", report.differences);
    assert_eq!(report.differences[0].id, "cus_003");
    assert_eq!(report.differences[0].stripe.as_deref(), Some("c3@example.com"));
    db.close().await;
});

both_backends!(a_newer_webhook_wins_whichever_arrives_first, |backend| async move {
    use tally::projection::{self, Version};
    let s = stand_in().await;
    let (db, stripe, _keep) = setup(backend, &s.base).await;
    let now = tally::db::now_unix();
    let apply = |id: &str, email: &str, at: i64, event: &str| {
        let db = db.clone();
        let object = json!({"id": id, "object": "customer", "email": email});
        let event = event.to_string();
        async move {
            let mut tx = db.begin().await.unwrap();
            projection::apply_event(&mut tx, "customer.updated", &object, &Version { at, event_id: event })
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    };
    // Webhook about a change after the backfill's fetch arrives first…
    apply("cus_001", "webhook@example.com", now + 3600, "evt_newer").await;
    // …and one about an older state.
    apply("cus_002", "old-webhook@example.com", now - 3600, "evt_older").await;
    sync::run(&db, stripe.clone(), &SyncOptions::default(), |_| {})
        .await
        .unwrap();
    let email = |id: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT email FROM customers WHERE id = $1")
                .bind(id)
                .fetch_one(db.reader())
                .await
                .unwrap()
        }
    };
    assert_eq!(
        email("cus_001").await,
        "webhook@example.com",
        "the backfill did not overwrite fresher webhook data"
    );
    assert_eq!(
        email("cus_002").await,
        "c2@example.com",
        "the backfill replaced older webhook data"
    );
    // After the backfill: an old event loses, a newer one wins.
    apply("cus_003", "stale@example.com", now - 60, "evt_stale").await;
    apply("cus_004", "later@example.com", now + 60, "evt_later").await;
    assert_eq!(email("cus_003").await, "c3@example.com");
    assert_eq!(email("cus_004").await, "later@example.com");
    db.close().await;
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_side_rate_limit_is_respected() {
    let s = stand_in().await;
    let (db, stripe, _keep) = setup_with(
        common::Backend::Sqlite,
        &s.base,
        &[("STRIPE_MAX_REQUESTS_PER_SECOND", "4")],
    )
    .await;
    sync::run(&db, stripe.clone(), &SyncOptions::default(), |_| {})
        .await
        .unwrap();
    let seconds = s.seconds.lock().unwrap().clone();
    // 3 customer pages and 11 other lists, and any slice of customers that came out empty.
    assert!(seconds.len() >= 14, "{} requests", seconds.len());
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for second in seconds {
        *per_second.entry(second).or_default() += 1;
    }
    let busiest = per_second.values().max().copied().unwrap_or(0);
    assert!(
        busiest <= 4,
        "the stand-in saw {busiest} requests in one second: {per_second:?}"
    );
    assert!(per_second.len() >= 3, "14 requests at 4/s need at least three seconds");
    db.close().await;
}

/// A subscription with 250 items embeds only the first; the rest come from /v1/subscription_items.
async fn nested_stand_in() -> (String, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let item = |i: usize| {
        json!({"id": format!("si_{i:03}"), "object": "subscription_item", "quantity": 1,
        "price": {"id": "price_1", "object": "price", "currency": "usd", "unit_amount": 100 + i as i64,
                  "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}})
    };
    let stripe = Stripe::start(move |r: Request| {
        let log = log.clone();
        async move {
            match r.path.as_str() {
                "/v1/subscriptions" => Reply::list(
                    vec![json!({
                        "id": "sub_big", "object": "subscription", "customer": "cus_1", "status": "active",
                        "currency": "usd", "created": 1_700_000_000,
                        "items": {"object": "list", "has_more": true, "data": [item(0)]}
                    })],
                    false,
                ),
                "/v1/subscription_items" => {
                    let q = &r.query;
                    let mut keys: Vec<_> = q.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    keys.sort();
                    log.lock().unwrap().push(keys.join("&"));
                    let start = q
                        .get("starting_after")
                        .and_then(|a| a.strip_prefix("si_"))
                        .and_then(|n| n.parse::<usize>().ok())
                        .map_or(0, |n| n + 1);
                    let data: Vec<Value> = (start..250).take(100).map(item).collect();
                    let has_more = start + data.len() < 250;
                    Reply::list(data, has_more)
                }
                _ => Reply::status(404, json!({})),
            }
        }
    })
    .await;
    (stripe.url, seen)
}

both_backends!(nested_lists_are_fetched_past_their_first_page, |backend| async move {
    let (base, seen) = nested_stand_in().await;
    let (db, stripe, _keep) = setup(backend, &base).await;
    let options = SyncOptions {
        only: vec![tally::domain::resource::Resource::Subscription],
        ..SyncOptions::default()
    };
    sync::run(&db, stripe.clone(), &options, |_| {}).await.unwrap();
    assert_eq!(
        common::scalar::<i64>(
            &db,
            "SELECT COUNT(*) FROM subscription_items WHERE subscription_id = 'sub_big'"
        )
        .await,
        250
    );
    assert_eq!(
        common::scalar::<i64>(&db, "SELECT CAST(SUM(unit_amount) AS BIGINT) FROM subscription_items").await,
        (0..250).map(|i| 100 + i).sum::<i64>()
    );
    let requests = seen.lock().unwrap().clone();
    assert_eq!(
        requests,
        [
            "limit=100&subscription=sub_big",
            "limit=100&starting_after=si_099&subscription=sub_big",
            "limit=100&starting_after=si_199&subscription=sub_big"
        ]
    );
});

/// Stripe's event list: `evt_000` … `evt_149` (customer.created), newest first, 100 a page.
async fn events_stand_in() -> (String, Arc<Mutex<Vec<String>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let stripe = Stripe::start(move |r: Request| {
        let log = log.clone();
        async move {
            if r.path != "/v1/events" {
                return Reply::status(404, json!({}));
            }
            let q = &r.query;
            let mut keys: Vec<_> = q.keys().cloned().collect();
            keys.sort();
            log.lock().unwrap().push(keys.join("&"));
            let all: Vec<usize> = (0..150).rev().collect();
            let start = q
                .get("starting_after")
                .and_then(|a| all.iter().position(|i| format!("evt_{i:03}") == *a))
                .map_or(0, |p| p + 1);
            let data: Vec<Value> = all[start..]
                .iter()
                .take(100)
                .map(|i| {
                    json!({"id": format!("evt_{i:03}"), "object": "event", "type": "customer.created",
                           "created": 1_700_000_000 + *i as i64, "livemode": false, "api_version": "2026-09-30.endive",
                           "data": {"object": customer(*i)}})
                })
                .collect();
            let has_more = start + data.len() < all.len();
            Reply::list(data, has_more)
        }
    })
    .await;
    (stripe.url, seen)
}

both_backends!(
    reconciliation_ingests_exactly_the_missing_events,
    |backend| async move {
        use tally::webhooks::inbox::{self, IncomingEvent, Source};
        let (base, seen) = events_stand_in().await;
        let (db, stripe, _keep) = setup(backend, &base).await;
        // The inbox already has every even-numbered event; 75 are missing.
        for i in (0..150).step_by(2) {
            let event = json!({"id": format!("evt_{i:03}"), "object": "event", "type": "customer.created",
                           "created": 1_700_000_000 + i as i64, "livemode": false, "data": {"object": customer(i)}});
            let parsed = IncomingEvent::parse(&event.to_string()).unwrap();
            assert!(inbox::store(&db, &parsed, Source::Webhook, Some(false)).await.unwrap());
        }
        let report = sync::reconcile::run(&db, stripe.as_ref(), 7, Some(false), |_| {})
            .await
            .unwrap();
        assert_eq!(report.listed, 150);
        assert_eq!(report.missing, 75);
        assert!(report
            .missing_ids
            .iter()
            .all(|id| id[4..].parse::<usize>().unwrap() % 2 == 1));
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT COUNT(*) FROM stripe_events").await,
            150
        );
        assert_eq!(
            common::scalar::<i64>(
                &db,
                "SELECT COUNT(*) FROM stripe_events WHERE source = 'reconcile' AND status = 'pending'"
            )
            .await,
            75
        );
        assert_eq!(
            *seen.lock().unwrap(),
            ["created[gte]&limit", "created[gte]&limit&starting_after"]
        );
        // A second run finds nothing missing.
        let again = sync::reconcile::run(&db, stripe.as_ref(), 7, Some(false), |_| {})
            .await
            .unwrap();
        assert_eq!((again.listed, again.missing), (150, 0));
        // The worker applies them like webhooks.
        let worker = tally::webhooks::worker::Worker {
            db: db.clone(),
            wake: Default::default(),
            max_attempts: 3,
            retry_for_secs: 3 * 86_400,
            refetch: None,
        };
        while worker.run_once().await.unwrap() > 0 {}
        assert_eq!(common::scalar::<i64>(&db, "SELECT COUNT(*) FROM customers").await, 150);
    }
);

/// Stripe has three customers and two charges.
async fn drift_stand_in() -> String {
    fn data(resource: &str) -> Vec<Value> {
        match resource {
            "customers" => (0..3).map(customer).collect(),
            "charges" => vec![
                json!({"id": "ch_1", "object": "charge", "amount": 5000, "amount_refunded": 0, "currency": "usd",
                       "status": "succeeded", "customer": "cus_000", "created": 1_700_000_100}),
                json!({"id": "ch_2", "object": "charge", "amount": 700, "amount_refunded": 700, "currency": "jpy",
                       "status": "succeeded", "customer": "cus_001", "created": 1_700_000_200}),
            ],
            _ => vec![],
        }
    }
    let stripe = Stripe::start(|r: Request| async move {
        let parts: Vec<&str> = r.path.trim_start_matches("/v1/").split('/').collect();
        match parts.as_slice() {
            [resource] => Reply::list(data(resource), false),
            // Drift re-fetches each difference before reporting it.
            [resource, id] => match data(resource).into_iter().find(|o| o["id"] == *id) {
                Some(o) => Reply::ok(o),
                None => Reply::error(404, "invalid_request_error", "No such object"),
            },
            _ => Reply::status(404, json!({})),
        }
    })
    .await;
    stripe.url
}

both_backends!(
    drift_is_reported_for_changed_rows_and_not_for_identical_data,
    |backend| async move {
        use tally::domain::resource::Resource;
        use tally::domain::sync_report::DiffKind;
        use tally::sync::drift;
        let base = drift_stand_in().await;
        let (db, stripe, _keep) = setup(backend, &base).await;
        let only = [Resource::Customer, Resource::Charge];
        sync::run(
            &db,
            stripe.clone(),
            &SyncOptions {
                only: only.to_vec(),
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
        let clean = drift::run(&db, stripe.as_ref(), &only, |_| {}).await.unwrap();
        assert!(!clean.has_drift(), "{:?}", clean.differences);
        assert_eq!(clean.types.len(), 2);
        assert_eq!((clean.types[0].at_stripe, clean.types[0].here), (3, 3));

        // A refund Tally missed, a customer Stripe deleted, a customer Tally lacks.
        sqlx::query("UPDATE charges SET amount_refunded = 1200 WHERE id = 'ch_1'")
            .execute(db.writer())
            .await
            .unwrap();
        sqlx::query("DELETE FROM customers WHERE id = 'cus_002'")
            .execute(db.writer())
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO customers (id, raw, livemode, created, version_at, version_event, email) \
         VALUES ('cus_gone', '{}', 0, 1700000000, 1, 'evt_x', 'gone@example.com')",
        )
        .execute(db.writer())
        .await
        .unwrap();
        let report = drift::run(&db, stripe.as_ref(), &only, |_| {}).await.unwrap();
        assert!(report.has_drift());
        assert_eq!(report.total_differences, 3, "{:?}", report.differences);
        let changed = report.differences.iter().find(|d| d.kind == DiffKind::Changed).unwrap();
        assert_eq!(
            (
                changed.id.as_str(),
                changed.field.as_deref(),
                changed.here.as_deref(),
                changed.stripe.as_deref()
            ),
            ("ch_1", Some("amount_refunded"), Some("1200"), Some("0"))
        );
        assert!(report
            .differences
            .iter()
            .any(|d| d.kind == DiffKind::MissingHere && d.id == "cus_002"));
        assert!(report
            .differences
            .iter()
            .any(|d| d.kind == DiffKind::NotAtStripe && d.id == "cus_gone"));
        let charges = report.types.iter().find(|t| t.resource == "charges").unwrap();
        assert_eq!((charges.at_stripe, charges.here, charges.changed), (2, 2, 1));
    }
);

both_backends!(only_one_of_many_simultaneous_job_starts_runs, |backend| async move {
    use tally::sync::jobs::{self, JobKind, Trigger};
    let (db, _stripe, _keep) = setup(backend, "http://127.0.0.1:9").await;
    // Sixteen starts at once (as from several instances or a burst of clicks): exactly one claims.
    let starts = (0..16).map(|_| {
        let db = db.clone();
        tokio::spawn(async move { jobs::start(&db, JobKind::Sync, &Trigger::Schedule).await })
    });
    let mut claimed = Vec::new();
    for s in starts {
        if let Some(id) = s.await.unwrap().unwrap() {
            claimed.push(id);
        }
    }
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(
        common::scalar::<i64>(&db, "SELECT COUNT(*) FROM jobs WHERE status = 'running'").await,
        1
    );
    // Another kind may run beside it; after the first finishes, the next start claims again.
    assert!(jobs::start(&db, JobKind::Drift, &Trigger::Schedule)
        .await
        .unwrap()
        .is_some());
    jobs::finish(&db, &claimed[0], Ok(("{}", false))).await.unwrap();
    assert!(jobs::start(&db, JobKind::Sync, &Trigger::Schedule)
        .await
        .unwrap()
        .is_some());
});

/// A Stripe stand-in with a dataset: customers and charges spread over two years (one every
/// `spacing` seconds), lists honouring `created` filters and cursors, answering each list call
/// after `delay` and refusing more than `limit` requests in any rolling second. It counts how
/// often each object was sent and the most requests in flight at once.
struct Dataset {
    stripe: Stripe,
    limit: common::stripe::RollingLimit,
    sent: Arc<Mutex<HashMap<String, usize>>>,
    most_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

async fn dataset(customers: usize, charges: usize, delay_ms: u64, limit: usize) -> Dataset {
    use std::sync::atomic::AtomicUsize;
    const NEWEST: i64 = 1_760_000_000;
    let objects = |prefix: &str, object: &str, n: usize| -> Vec<Value> {
        let spacing = (2 * 365 * 86_400 / n.max(1)) as i64;
        (0..n)
            .map(|i| {
                json!({"id": format!("{prefix}_{i:06}"), "object": object, "created": NEWEST - i as i64 * spacing,
                            "amount": 1000, "amount_captured": 1000, "currency": "usd", "status": "succeeded",
                            "paid": true, "captured": true})
            })
            .collect()
    };
    let data: Arc<HashMap<&'static str, Vec<Value>>> = Arc::new(HashMap::from([
        ("/v1/customers", objects("cus", "customer", customers)),
        ("/v1/charges", objects("ch", "charge", charges)),
    ]));
    let limit = common::stripe::RollingLimit::new(limit);
    let sent: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stripe = Stripe::start({
        let (limit, sent, most) = (limit.clone(), sent.clone(), most.clone());
        move |r: Request| {
            let (data, limit, sent, in_flight, most) = (
                data.clone(),
                limit.clone(),
                sent.clone(),
                in_flight.clone(),
                most.clone(),
            );
            async move {
                if let Some(refused) = limit.check() {
                    return refused;
                }
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                let reply = match data.get(r.path.as_str()) {
                    Some(objects) => common::stripe::list_page(objects, &r.query),
                    None => Reply::list(Vec::new(), false),
                };
                let mut sent = sent.lock().unwrap();
                for o in reply.body["data"].as_array().into_iter().flatten() {
                    *sent
                        .entry(o["id"].as_str().unwrap_or_default().to_string())
                        .or_default() += 1;
                }
                reply
            }
        }
    })
    .await;
    Dataset {
        stripe,
        limit,
        sent,
        most_in_flight: most,
    }
}

/// The client a backfill from the command line uses: the whole rate limit (`rate` a second).
fn client_at(base: &str, rate: u32) -> Arc<dyn tally::stripe::StripeApi> {
    Arc::new(
        tally::stripe::Transport::new(
            "sk_test_51standin",
            base,
            rate,
            tally::config::RetryPolicy::default(),
            tally::stripe::Timeouts::default(),
        )
        .unwrap(),
    )
}

// Several pages at once, of several types and of slices of one type, through the one client:
// against a stand-in that answers after 100 ms and allows 25 requests in any rolling second, a
// backfill at 20 a second has more than one request in flight, no request refused for the rate
// limit, every object fetched exactly once, and every one stored.
both_backends!(
    slices_of_large_types_are_fetched_concurrently_under_one_limit,
    |backend| async move {
        let set = dataset(1500, 4000, 100, 25).await;
        let (db, _, _keep) = setup(backend, &set.stripe.url).await;
        let api = client_at(&set.stripe.url, 20);
        let summary = sync::run(
            &db,
            api.clone(),
            &SyncOptions {
                concurrency: Some(sync::concurrency_for(20)),
                ..Default::default()
            },
            |_| {},
        )
        .await
        .unwrap();
        let most = set.most_in_flight.load(Ordering::SeqCst);
        assert!(most >= 2, "{most} requests in flight at most");
        assert_eq!(set.limit.refused(), 0, "no request refused for the rate limit");
        let sent = set.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 5500, "every object listed");
        let twice: Vec<_> = sent.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "fetched more than once: {twice:?}");
        assert_eq!(common::scalar::<i64>(&db, "SELECT COUNT(*) FROM customers").await, 1500);
        assert_eq!(common::scalar::<i64>(&db, "SELECT COUNT(*) FROM charges").await, 4000);
        let order: Vec<_> = summary.iter().map(|p| p.resource).collect();
        assert_eq!(order, sync::ORDER.to_vec(), "every type, in order");
        let charges = summary.iter().find(|p| p.resource.table() == "charges").unwrap();
        assert_eq!((charges.fetched, charges.done), (4000, true));
        assert!(charges.pages >= 40, "{} pages", charges.pages);
        // Charges were cut into slices, more than one fetched at a time.
        let slices = common::scalar::<i64>(&db, "SELECT COUNT(*) FROM sync_slices WHERE resource = 'charges'").await;
        assert!(slices > 1, "{slices} slices");
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT COUNT(*) FROM sync_state WHERE done = 0").await,
            0
        );
        db.close().await;
    }
);

// A list that ignores `created` filters (an emulator) still gets a complete backfill: the first
// object outside its slice turns slicing off, and slice 0 walks the whole list.
#[tokio::test]
async fn a_list_ignoring_created_filters_still_gets_every_object() {
    let all: Arc<Vec<Value>> = Arc::new((0..700).rev().map(customer).collect());
    let stripe = Stripe::start(move |r: Request| {
        let all = all.clone();
        async move {
            if r.path != "/v1/customers" {
                return Reply::list(Vec::new(), false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let mut query = r.query.clone();
            query.retain(|k, _| !k.starts_with("created"));
            common::stripe::list_page(&all, &query)
        }
    })
    .await;
    let (db, _, _keep) = setup(common::Backend::Sqlite, &stripe.url).await;
    let api = client_at(&stripe.url, 100);
    let summary = sync::run(
        &db,
        api.clone(),
        &SyncOptions {
            only: vec![tally::domain::resource::Resource::Customer],
            concurrency: Some(6),
            ..Default::default()
        },
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(common::scalar::<i64>(&db, "SELECT COUNT(*) FROM customers").await, 700);
    assert!(summary[0].done);
    assert_eq!(
        common::scalar::<i64>(&db, "SELECT sliced FROM sync_state WHERE resource = 'customers'").await,
        0,
        "slicing turned off"
    );
    // Slice 0 fetched every page once (the cursor walks cus_699 … cus_000).
    let cursors: Vec<String> = stripe
        .calls("GET", "/v1/customers")
        .iter()
        .filter(|r| !r.query.contains_key("created[lt]"))
        .map(|r| r.query.get("starting_after").cloned().unwrap_or_default())
        .collect();
    let mut unique = cursors.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), cursors.len(), "{cursors:?}");
    assert_eq!(cursors.len(), 7, "{cursors:?}");
    db.close().await;
}
