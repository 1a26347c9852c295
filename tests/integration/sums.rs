//! The running sums the database keeps (revenue::sums, migration 0021) equal a scan of the rows
//! after any mix of writes: through the projection (as webhooks, backfill and billing write) and
//! plain SQL inserts, updates and deletes of any column the sums read, with folding in between;
//! on both databases; the same for the lists' unfiltered totals. Also: a database migrated with
//! data already in it starts from that data.

use crate::common::{self, Rng};

use std::collections::HashMap;

use serde_json::json;
use sqlx::Row;
use tally::db::Db;
use tally::projection::{self, Version};
use tally::revenue::sums::{self, ChargeSums, SubscriptionSums};

const CURRENCIES: [Option<&str>; 3] = [Some("usd"), Some("jpy"), None];
const STATUSES: [Option<&str>; 6] = [
    Some("active"),
    Some("past_due"),
    Some("trialing"),
    Some("canceled"),
    Some("incomplete"),
    None,
];
/// 2026-06-15 00:00 UTC.
const BASE: i64 = 1_781_481_600;
const DAY: i64 = 86_400;

async fn scan_subscriptions(db: &Db, currency: &str) -> SubscriptionSums {
    let r = sqlx::query(
        "SELECT CAST(COUNT(*) AS BIGINT) AS n, CAST(COALESCE(SUM(COALESCE(mrr, 0)), 0) AS BIGINT) AS mrr, \
                CAST(COALESCE(SUM(CASE WHEN deleted = 0 AND status IN ('active', 'past_due') THEN 1 ELSE 0 END), 0) AS BIGINT) AS a, \
                CAST(COALESCE(SUM(CASE WHEN deleted = 0 AND status IN ('active', 'past_due') THEN COALESCE(mrr, 0) ELSE 0 END), 0) AS BIGINT) AS am, \
                CAST(COUNT(DISTINCT CASE WHEN deleted = 0 AND status IN ('active', 'past_due') THEN customer_id END) AS BIGINT) AS c, \
                CAST(COALESCE(SUM(CASE WHEN deleted = 0 AND status = 'trialing' THEN 1 ELSE 0 END), 0) AS BIGINT) AS t \
         FROM subscriptions WHERE currency = $1",
    )
    .bind(currency)
    .fetch_one(db.reader())
    .await
    .unwrap();
    SubscriptionSums {
        subscriptions: r.get("n"),
        mrr: r.get("mrr"),
        active: r.get("a"),
        active_mrr: r.get("am"),
        active_customers: r.get("c"),
        trialing: r.get("t"),
    }
}

async fn scan_charges(db: &Db, currency: &str, from: i64, to: i64) -> ChargeSums {
    let r = sqlx::query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'succeeded' THEN COALESCE(amount_captured, amount, 0) ELSE 0 END), 0) AS BIGINT) AS g, \
                CAST(COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) AS BIGINT) AS f, \
                CAST(COUNT(*) AS BIGINT) AS n FROM charges WHERE currency = $1 AND created >= $2 AND created < $3",
    )
    .bind(currency)
    .bind(from)
    .bind(to)
    .fetch_one(db.reader())
    .await
    .unwrap();
    ChargeSums {
        gross: r.get("g"),
        failed: r.get("f"),
        payments: r.get("n"),
    }
}

/// The currencies ordered as the overview's switch had them, from a scan.
async fn scan_currencies(db: &Db) -> Vec<String> {
    sqlx::query(
        "SELECT currency, CAST(SUM(COALESCE(mrr, 0)) AS BIGINT) AS total, CAST(COUNT(*) AS BIGINT) AS n FROM subscriptions \
         WHERE currency IS NOT NULL GROUP BY currency ORDER BY total DESC, n DESC, currency",
    )
    .fetch_all(db.reader())
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("currency"))
    .collect()
}

/// A list's unfiltered totals from a scan, as src/lists/query.rs counts them (sorted for comparison).
async fn scan_list(db: &Db, list: &str) -> Vec<(Option<String>, i64, i64)> {
    let sql = match list {
        "payments" => "SELECT currency, COUNT(*) AS n, SUM(COALESCE(amount, 0)) AS t FROM charges GROUP BY currency",
        "invoices" => "SELECT currency, COUNT(*) AS n, SUM(COALESCE(amount_due, 0)) AS t FROM invoices GROUP BY currency",
        "subscriptions" => "SELECT currency, COUNT(*) AS n, SUM(COALESCE(mrr, 0)) AS t FROM subscriptions GROUP BY currency",
        _ => {
            "SELECT c.currency, COUNT(*) AS n, SUM(COALESCE((SELECT SUM(sa.mrr) FROM subscriptions sa WHERE sa.customer_id = c.id \
             AND sa.status IN ('active', 'past_due') AND sa.deleted = 0), 0)) AS t FROM customers c GROUP BY c.currency"
        }
    };
    let mut rows: Vec<(Option<String>, i64, i64)> = sqlx::query(&format!(
        "SELECT CAST(currency AS TEXT) AS currency, CAST(n AS BIGINT) AS n, CAST(t AS BIGINT) AS t FROM ({sql}) x"
    ))
    .fetch_all(db.reader())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("currency"), r.get("n"), r.get("t")))
    .collect();
    rows.sort();
    rows
}

/// Every figure the sums give equals the scan: per currency, and charges over spans that start
/// and end inside days, on day boundaries, within one day, and per month.
async fn check(db: &Db, rng: &mut Rng, step: usize) {
    assert_eq!(
        sums::subscription_currencies(db, &tally::domain::accounts::Scope::All)
            .await
            .unwrap(),
        scan_currencies(db).await,
        "currencies after step {step}"
    );
    for list in ["payments", "invoices", "subscriptions", "customers"] {
        let mut kept = sums::list_totals(db, &tally::domain::accounts::Scope::All, list, None)
            .await
            .unwrap();
        kept.sort();
        assert_eq!(kept, scan_list(db, list).await, "{list} list totals after step {step}");
    }
    // Every tab of every list: where the sums total it, the same as the rows; the tab each list
    // opens on is among them.
    for (list, tabs, default) in [
        (
            "payments",
            &["all", "succeeded", "failed", "refunded", "disputed"][..],
            "succeeded",
        ),
        (
            "invoices",
            &["all", "paid", "open", "failed", "void", "uncollectible"][..],
            "paid",
        ),
        (
            "subscriptions",
            &["all", "active", "trialing", "past_due", "canceled", "incomplete"][..],
            "active",
        ),
        ("customers", &["all", "paying", "not_paying", "deleted"][..], "all"),
    ] {
        for tab in std::iter::once(None).chain(tabs.iter().map(|t| Some(*t))) {
            let q: HashMap<String, String> = tab.map(|t| ("status".to_string(), t.to_string())).into_iter().collect();
            let kept = tally::lists::query::kept_totals(db, list, &q, &tally::domain::accounts::Scope::All)
                .await
                .unwrap();
            if tab == Some(default) {
                assert!(kept.is_some(), "{list} opens on tab {default}, which the sums total");
            }
            let Some(mut kept) = kept else { continue };
            let mut scanned = tally::lists::query::scanned_totals(db, list, &q, &tally::domain::accounts::Scope::All)
                .await
                .unwrap();
            let key = |t: &tally::domain::lists::Total| (t.currency.clone(), t.count, t.amount.clone());
            kept.sort_by_key(key);
            scanned.sort_by_key(key);
            assert_eq!(kept, scanned, "{list} tab {tab:?} after step {step}");
        }
    }
    for currency in ["usd", "jpy"] {
        assert_eq!(
            sums::subscriptions(db, &tally::domain::accounts::Scope::All, currency)
                .await
                .unwrap(),
            scan_subscriptions(db, currency).await,
            "{currency} subscriptions after step {step}"
        );
        for _ in 0..4 {
            // Spans starting and ending inside days or on their boundaries, within one day or
            // over several, or empty.
            let mut from = BASE - 3 * DAY + rng.below(8 * DAY as usize) as i64;
            if rng.below(4) == 0 {
                from -= from.rem_euclid(DAY);
            }
            let mut to = from + rng.below(6 * DAY as usize) as i64;
            if rng.below(4) == 0 {
                to -= to.rem_euclid(DAY);
            }
            assert_eq!(
                sums::charges(db, &tally::domain::accounts::Scope::All, currency, from, to)
                    .await
                    .unwrap(),
                scan_charges(db, currency, from, to).await,
                "{currency} charges in [{from}, {to}) after step {step}"
            );
        }
        // Three "months" of two days each, the last ending inside a day.
        let starts = [BASE - 2 * DAY, BASE, BASE + 2 * DAY];
        let end = BASE + 3 * DAY + rng.below(DAY as usize) as i64;
        let months = sums::charge_months(db, &tally::domain::accounts::Scope::All, currency, &starts, end)
            .await
            .unwrap();
        for (i, got) in months.iter().enumerate() {
            let to = starts.get(i + 1).copied().unwrap_or(end);
            assert_eq!(
                *got,
                scan_charges(db, currency, starts[i], to).await,
                "{currency} month {i} after step {step}"
            );
        }
    }
}

fn pick<T: Copy>(rng: &mut Rng, from: &[T]) -> T {
    from[rng.below(from.len())]
}

async fn random_writes(db: &Db, seed: u64) {
    let mut rng = Rng(seed);
    let mut events = 0u64;
    for step in 0..160 {
        let sub = format!("sub_{}", rng.below(14));
        let customer = pick(
            &mut rng,
            &[Some("cus_a"), Some("cus_b"), Some("cus_c"), Some("cus_d"), None],
        );
        let currency = pick(&mut rng, &CURRENCIES);
        let status = pick(&mut rng, &STATUSES);
        let charge = format!("ch_{}", rng.below(14));
        let created = BASE - 2 * DAY + rng.below(5 * DAY as usize) as i64;
        match rng.below(12) {
            // Through the projection: a subscription event (its MRR computed from the items).
            0 | 1 => {
                events += 1;
                let kind = pick(
                    &mut rng,
                    &[
                        "customer.subscription.created",
                        "customer.subscription.updated",
                        "customer.subscription.deleted",
                    ],
                );
                let amount = 100 * (1 + rng.below(50) as i64);
                let object = json!({
                    "id": sub, "object": "subscription", "customer": customer, "status": status.unwrap_or("active"),
                    "currency": currency.unwrap_or("usd"), "created": BASE - 100 * DAY, "cancel_at_period_end": false,
                    "items": {"object": "list", "has_more": false, "data": [{
                        "id": format!("si_{sub}"), "object": "subscription_item", "quantity": 1 + rng.below(3),
                        "price": {"id": format!("price_{amount}"), "object": "price", "unit_amount": amount,
                                  "currency": currency.unwrap_or("usd"),
                                  "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}}]}
                });
                let version = Version {
                    at: BASE + step as i64,
                    event_id: format!("evt_{seed}_{events:05}"),
                };
                let mut tx = db.begin().await.unwrap();
                projection::apply_event(&mut tx, kind, &object, &version).await.unwrap();
                tx.commit().await.unwrap();
            }
            // Through the projection: a charge event.
            2 => {
                events += 1;
                let object = json!({
                    "id": charge, "object": "charge", "amount": 500 + rng.below(5000) as i64,
                    "amount_captured": if rng.below(2) == 0 { json!(null) } else { json!(rng.below(5000)) },
                    "currency": currency.unwrap_or("jpy"), "created": created, "customer": customer,
                    "status": pick(&mut rng, &["succeeded", "failed", "pending"]), "refunds": {"object": "list", "data": [], "has_more": false}
                });
                let version = Version {
                    at: BASE + step as i64,
                    event_id: format!("evt_{seed}_{events:05}"),
                };
                let mut tx = db.begin().await.unwrap();
                projection::apply_event(&mut tx, "charge.updated", &object, &version)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
            // Plain SQL: insert or replace-by-upsert a subscription row with any values.
            3 => {
                sqlx::query(
                    "INSERT INTO subscriptions (id, raw, livemode, version_at, version_event, customer_id, status, currency, mrr, deleted) \
                     VALUES ($1, '{}', 0, 0, 'x', $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, \
                     status = excluded.status, currency = excluded.currency, mrr = excluded.mrr, deleted = excluded.deleted",
                )
                .bind(&sub)
                .bind(customer)
                .bind(status)
                .bind(currency)
                .bind(pick(&mut rng, &[None, Some(0i64), Some(999), Some(12_345)]))
                .bind(i64::from(rng.below(4) == 0))
                .execute(db.writer())
                .await
                .unwrap();
            }
            // Plain SQL: change one column the sums read.
            4 => {
                let (column, value): (&str, Option<String>) = match rng.below(5) {
                    0 => ("customer_id", customer.map(String::from)),
                    1 => ("status", status.map(String::from)),
                    2 => ("currency", currency.map(String::from)),
                    3 => ("deleted", Some(rng.below(2).to_string())),
                    _ => ("mrr", Some(rng.below(10_000).to_string())),
                };
                let sql = if matches!(column, "deleted" | "mrr") {
                    format!("UPDATE subscriptions SET {column} = CAST($1 AS BIGINT) WHERE id = $2")
                } else {
                    format!("UPDATE subscriptions SET {column} = $1 WHERE id = $2")
                };
                sqlx::query(&sql)
                    .bind(value)
                    .bind(&sub)
                    .execute(db.writer())
                    .await
                    .unwrap();
            }
            5 => {
                sqlx::query("DELETE FROM subscriptions WHERE id = $1")
                    .bind(&sub)
                    .execute(db.writer())
                    .await
                    .unwrap();
            }
            // Plain SQL on charges: insert, change, delete; `created` may move to another day.
            6 => {
                sqlx::query(
                    "INSERT INTO charges (id, raw, livemode, version_at, version_event, currency, created, status, amount, amount_captured) \
                     VALUES ($1, '{}', 0, 0, 'x', $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET currency = excluded.currency, \
                     created = excluded.created, status = excluded.status, amount = excluded.amount, amount_captured = excluded.amount_captured",
                )
                .bind(&charge)
                .bind(currency)
                .bind(if rng.below(8) == 0 { None } else { Some(created) })
                .bind(pick(&mut rng, &[Some("succeeded"), Some("failed"), None]))
                .bind(pick(&mut rng, &[None, Some(700i64), Some(1_234)]))
                .bind(pick(&mut rng, &[None, Some(0i64), Some(650)]))
                .execute(db.writer())
                .await
                .unwrap();
            }
            7 => {
                sqlx::query("DELETE FROM charges WHERE id = $1")
                    .bind(&charge)
                    .execute(db.writer())
                    .await
                    .unwrap();
            }
            // Plain SQL on customers (their currency moves their MRR in the customers list)
            // and invoices.
            8 => {
                sqlx::query(
                    "INSERT INTO customers (id, raw, livemode, version_at, version_event, currency) \
                     VALUES ($1, '{}', 0, 0, 'x', $2) ON CONFLICT (id) DO UPDATE SET currency = excluded.currency",
                )
                .bind(customer.unwrap_or("cus_e"))
                .bind(currency)
                .execute(db.writer())
                .await
                .unwrap();
            }
            9 => {
                sqlx::query("DELETE FROM customers WHERE id = $1")
                    .bind(customer.unwrap_or("cus_e"))
                    .execute(db.writer())
                    .await
                    .unwrap();
            }
            10 => {
                let invoice = format!("in_{}", rng.below(6));
                if rng.below(4) == 0 {
                    sqlx::query("DELETE FROM invoices WHERE id = $1")
                        .bind(&invoice)
                        .execute(db.writer())
                        .await
                        .unwrap();
                } else {
                    sqlx::query(
                        "INSERT INTO invoices (id, raw, livemode, version_at, version_event, currency, amount_due, status) \
                         VALUES ($1, '{}', 0, 0, 'x', $2, $3, $4) ON CONFLICT (id) DO UPDATE SET currency = excluded.currency, \
                         amount_due = excluded.amount_due, status = excluded.status",
                    )
                    .bind(&invoice)
                    .bind(currency)
                    .bind(pick(&mut rng, &[None, Some(1_000i64), Some(2_500)]))
                    .bind(pick(&mut rng, &[Some("paid"), Some("open"), Some("void"), None]))
                    .execute(db.writer())
                    .await
                    .unwrap();
                }
            }
            _ => sums::compact(db).await.unwrap(),
        }
        if step % 8 == 7 {
            check(db, &mut rng, step).await;
        }
    }
    check(db, &mut rng, 160).await;
    sums::compact(db).await.unwrap();
    check(db, &mut rng, 161).await;
    // Folded: one row per key.
    for (table, key) in [
        ("subscription_sums", "currency"),
        ("charge_day_sums", "currency, day"),
        ("list_sums", "list, status, currency"),
    ] {
        let most: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT CAST(MAX(n) AS BIGINT) FROM (SELECT COUNT(*) AS n FROM {table} GROUP BY {key}) t"
        ))
        .fetch_one(db.reader())
        .await
        .unwrap();
        assert!(
            most.unwrap_or(1) <= 1,
            "{table} still has several rows per key: {most:?}"
        );
    }
}

both_backends!(running_sums_equal_a_scan_after_any_writes, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    for seed in [0x5EED_0001_u64, 0x0BAD_CAFE, 0x1234_5678_9ABC] {
        random_writes(&db, seed).await;
    }
});

both_backends!(sums_start_from_the_data_a_migration_finds, |backend| async move {
    use sqlx::migrate::Migrator;
    let test_db = common::TestDb::new(backend).await;
    let config = common::config_with(&test_db, &[]);
    let db = Db::connect(&config.database_url).await.unwrap();
    // The schema before running sums, with data in it.
    let dir = match backend {
        common::Backend::Sqlite => "migrations/sqlite",
        common::Backend::Postgres => "migrations/postgres",
    };
    let all = Migrator::new(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
        .await
        .unwrap();
    let before: Vec<_> = all.iter().filter(|m| m.version < 21).cloned().collect();
    let old = Migrator {
        migrations: std::borrow::Cow::Owned(before),
        ..Migrator::DEFAULT
    };
    old.run(db.writer()).await.unwrap();
    for (id, customer, status, currency, mrr) in [
        ("sub_1", Some("cus_1"), "active", "usd", 1_000i64),
        ("sub_2", Some("cus_1"), "past_due", "usd", 500),
        ("sub_3", Some("cus_2"), "active", "usd", 2_500),
        ("sub_4", None, "active", "usd", 700),
        ("sub_5", Some("cus_3"), "trialing", "usd", 0),
        ("sub_6", Some("cus_3"), "active", "jpy", 3_000),
    ] {
        sqlx::query(
            "INSERT INTO subscriptions (id, raw, livemode, version_at, version_event, customer_id, status, currency, mrr) \
             VALUES ($1, '{}', 0, 0, 'x', $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(customer)
        .bind(status)
        .bind(currency)
        .bind(mrr)
        .execute(db.writer())
        .await
        .unwrap();
    }
    for (id, created, status, amount) in [
        ("ch_1", BASE + 10, "succeeded", 1_000i64),
        ("ch_2", BASE + DAY + 5, "failed", 400),
        ("ch_3", BASE - 1, "succeeded", 250),
    ] {
        sqlx::query(
            "INSERT INTO charges (id, raw, livemode, version_at, version_event, currency, created, status, amount) \
             VALUES ($1, '{}', 0, 0, 'x', 'usd', $2, $3, $4)",
        )
        .bind(id)
        .bind(created)
        .bind(status)
        .bind(amount)
        .execute(db.writer())
        .await
        .unwrap();
    }
    for (id, currency) in [("cus_1", Some("usd")), ("cus_3", None)] {
        sqlx::query("INSERT INTO customers (id, raw, livemode, version_at, version_event, currency) VALUES ($1, '{}', 0, 0, 'x', $2)")
            .bind(id)
            .bind(currency)
            .execute(db.writer())
            .await
            .unwrap();
    }
    db.migrate().await.unwrap();
    // The customers list: cus_1 with its two active subscriptions, cus_3 (no currency) with its
    // active one in yen (the trial does not count).
    let mut customers = sums::list_totals(&db, &tally::domain::accounts::Scope::All, "customers", None)
        .await
        .unwrap();
    customers.sort();
    assert_eq!(customers, [(None, 1, 3_000), (Some("usd".to_string()), 1, 1_500)]);
    assert_eq!(
        sums::list_totals(&db, &tally::domain::accounts::Scope::All, "payments", None)
            .await
            .unwrap(),
        [(Some("usd".to_string()), 3, 1_650)]
    );
    assert_eq!(
        sums::list_totals(&db, &tally::domain::accounts::Scope::All, "subscriptions", None)
            .await
            .unwrap(),
        [(Some("usd".to_string()), 5, 4_700), (Some("jpy".to_string()), 1, 3_000)]
    );
    assert_eq!(
        sums::subscriptions(&db, &tally::domain::accounts::Scope::All, "usd")
            .await
            .unwrap(),
        SubscriptionSums {
            subscriptions: 5,
            mrr: 4_700,
            active: 4,
            active_mrr: 4_700,
            active_customers: 2,
            trialing: 1,
        }
    );
    assert_eq!(
        sums::subscription_currencies(&db, &tally::domain::accounts::Scope::All)
            .await
            .unwrap(),
        ["usd", "jpy"]
    );
    assert_eq!(
        sums::charges(
            &db,
            &tally::domain::accounts::Scope::All,
            "usd",
            BASE - DAY,
            BASE + 2 * DAY
        )
        .await
        .unwrap(),
        ChargeSums {
            gross: 1_250,
            failed: 1,
            payments: 3,
        }
    );
    // And the triggers carry on from there.
    sqlx::query("UPDATE subscriptions SET status = 'canceled' WHERE id = 'sub_3'")
        .execute(db.writer())
        .await
        .unwrap();
    let usd = sums::subscriptions(&db, &tally::domain::accounts::Scope::All, "usd")
        .await
        .unwrap();
    assert_eq!((usd.active, usd.active_mrr, usd.active_customers), (3, 2_200, 1));
});
