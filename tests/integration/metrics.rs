//! Golden scenarios: small hand-built histories, applied as Stripe events through the webhook
//! projection, and the figures worked out by hand in each test, to the cent.

use crate::common;

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use tally::db::Db;
use tally::domain::revenue::{Kpis, MovementKind};
use tally::projection::{self, Version};
use tally::revenue;

/// 2026-06-15 12:00 UTC: "now" in every scenario.
fn now() -> i64 {
    day(2026, 6, 15) + 12 * 3600
}

fn day(y: i32, m: u32, d: u32) -> i64 {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap().timestamp()
}

static EVENTS: AtomicU64 = AtomicU64::new(0);

/// Applies one event through the webhook projection, as the worker does.
async fn apply(db: &Db, event_type: &str, object: Value, created: i64) {
    let n = EVENTS.fetch_add(1, Ordering::SeqCst);
    let version = Version {
        at: created,
        event_id: format!("evt_{created}_{n:06}"),
    };
    let mut tx = db.begin().await.unwrap();
    projection::apply_event(&mut tx, event_type, &object, &version)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

fn price(amount: i64, currency: &str, interval: &str, count: i64) -> Value {
    json!({"id": format!("price_{amount}_{interval}{count}"), "object": "price", "unit_amount": amount, "currency": currency,
           "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"}})
}

fn sub(id: &str, customer: &str, status: &str, currency: &str, items: &[(Value, i64)]) -> Value {
    let data: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (price, qty))| json!({"id": format!("si_{id}_{i}"), "object": "subscription_item", "quantity": qty, "price": price}))
        .collect();
    json!({"id": id, "object": "subscription", "customer": customer, "status": status, "currency": currency,
           "created": day(2025, 1, 1), "cancel_at_period_end": false, "items": {"object": "list", "data": data, "has_more": false}})
}

async fn kpis(db: &Db, currency: &str) -> Kpis {
    revenue::kpis(db, &tally::domain::accounts::Scope::All, currency, now())
        .await
        .unwrap()
}

async fn kinds(db: &Db, currency: &str) -> Vec<(MovementKind, i64)> {
    revenue::movements(db, currency)
        .await
        .unwrap()
        .iter()
        .map(|m| (m.kind, m.delta))
        .collect()
}

const CREATED: &str = "customer.subscription.created";
const UPDATED: &str = "customer.subscription.updated";
const DELETED: &str = "customer.subscription.deleted";

both_backends!(a_monthly_plan, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_a",
            "cus_a",
            "active",
            "usd",
            &[(price(2000, "usd", "month", 1), 1)],
        ),
        day(2026, 1, 10),
    )
    .await;
    let k = kpis(&db, "usd").await;
    assert_eq!(
        (k.mrr, k.arr, k.active_subscriptions, k.active_customers, k.arpu),
        (2000, 24000, 1, 1, 2000)
    );
});

both_backends!(a_yearly_plan_is_divided_by_twelve, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_y",
            "cus_y",
            "active",
            "usd",
            &[(price(24000, "usd", "year", 1), 1)],
        ),
        day(2026, 1, 10),
    )
    .await;
    // $100 a year is $8.333… a month: rounded to $8.33 per subscription.
    apply(
        &db,
        CREATED,
        sub(
            "sub_z",
            "cus_z",
            "active",
            "usd",
            &[(price(10000, "usd", "year", 1), 1)],
        ),
        day(2026, 1, 10),
    )
    .await;
    assert_eq!(kpis(&db, "usd").await.mrr, 2000 + 833);
});

both_backends!(quantity_three, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_q",
            "cus_q",
            "active",
            "usd",
            &[(price(1000, "usd", "month", 1), 3)],
        ),
        day(2026, 2, 1),
    )
    .await;
    assert_eq!(kpis(&db, "usd").await.mrr, 3000);
});

both_backends!(a_twenty_percent_forever_coupon, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let mut s = sub(
        "sub_c",
        "cus_c",
        "active",
        "usd",
        &[(price(5000, "usd", "month", 1), 1)],
    );
    s["discount"] = json!({"id": "di_1", "coupon": {"id": "TWENTY", "percent_off": 20.0, "duration": "forever"}});
    apply(&db, CREATED, s, day(2026, 2, 1)).await;
    // $50 less 20% = $40.
    assert_eq!(kpis(&db, "usd").await.mrr, 4000);
});

both_backends!(a_once_coupon_is_not_recurring, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let mut s = sub(
        "sub_o",
        "cus_o",
        "active",
        "usd",
        &[(price(5000, "usd", "month", 1), 1)],
    );
    s["discount"] = json!({"id": "di_2", "coupon": {"id": "WELCOME", "percent_off": 50.0, "duration": "once"}});
    apply(&db, CREATED, s, day(2026, 2, 1)).await;
    assert_eq!(kpis(&db, "usd").await.mrr, 5000);
});

both_backends!(
    an_amount_off_on_a_yearly_plan_is_spread_over_the_year,
    |backend| async move {
        let (db, _t) = common::migrated_db(backend).await;
        let mut s = sub(
            "sub_ao",
            "cus_ao",
            "active",
            "usd",
            &[(price(12000, "usd", "year", 1), 1)],
        );
        s["discount"] = json!({"id": "di_3", "coupon": {"id": "TWELVE", "amount_off": 1200, "currency": "usd", "duration": "forever"}});
        apply(&db, CREATED, s, day(2026, 2, 1)).await;
        // ($120 − $12) ÷ 12 = $9.00.
        assert_eq!(kpis(&db, "usd").await.mrr, 900);
    }
);

both_backends!(weekly_and_quarterly_intervals, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub("sub_w", "cus_w", "active", "usd", &[(price(1000, "usd", "week", 1), 1)]),
        day(2026, 2, 1),
    )
    .await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_3m",
            "cus_3m",
            "active",
            "usd",
            &[(price(9000, "usd", "month", 3), 1)],
        ),
        day(2026, 2, 1),
    )
    .await;
    // $10 × 52 ÷ 12 = $43.33; $90 every 3 months = $30.
    assert_eq!(kpis(&db, "usd").await.mrr, 4333 + 3000);
});

both_backends!(metered_prices_are_excluded, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let metered = json!({"id": "price_meter", "unit_amount": 5, "currency": "usd", "recurring": {"interval": "month", "interval_count": 1, "usage_type": "metered"}});
    apply(
        &db,
        CREATED,
        sub(
            "sub_m",
            "cus_m",
            "active",
            "usd",
            &[(price(2000, "usd", "month", 1), 1), (metered, 1)],
        ),
        day(2026, 2, 1),
    )
    .await;
    assert_eq!(kpis(&db, "usd").await.mrr, 2000);
});

both_backends!(trials_are_excluded_until_they_convert, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let mut s = sub(
        "sub_t",
        "cus_t",
        "trialing",
        "usd",
        &[(price(3000, "usd", "month", 1), 1)],
    );
    s["trial_start"] = json!(day(2026, 5, 20));
    s["trial_end"] = json!(day(2026, 6, 3));
    apply(&db, CREATED, s.clone(), day(2026, 5, 20)).await;
    let mut other = sub(
        "sub_t2",
        "cus_t2",
        "trialing",
        "usd",
        &[(price(3000, "usd", "month", 1), 1)],
    );
    other["trial_end"] = json!(day(2026, 6, 30));
    apply(&db, CREATED, other, day(2026, 6, 1)).await;
    let k = kpis(&db, "usd").await;
    assert_eq!((k.mrr, k.trials, k.active_subscriptions), (0, 2, 0));
    // The first trial ends and the subscription starts paying on June 3rd: new MRR this month.
    s["status"] = json!("active");
    apply(&db, UPDATED, s, day(2026, 6, 3)).await;
    let k = kpis(&db, "usd").await;
    assert_eq!((k.mrr, k.trials, k.new_mrr_this_month), (3000, 1, 3000));
    assert_eq!(
        (k.trials_ended_30d, k.trials_converted_30d, k.trial_conversion_bp),
        (1, 1, Some(10_000))
    );
    assert_eq!(kinds(&db, "usd").await, [(MovementKind::New, 3000)]);
});

both_backends!(
    past_due_still_counts_unpaid_and_incomplete_do_not,
    |backend| async move {
        let (db, _t) = common::migrated_db(backend).await;
        apply(
            &db,
            CREATED,
            sub(
                "sub_pd",
                "cus_pd",
                "past_due",
                "usd",
                &[(price(2500, "usd", "month", 1), 1)],
            ),
            day(2026, 3, 1),
        )
        .await;
        apply(
            &db,
            CREATED,
            sub(
                "sub_up",
                "cus_up",
                "unpaid",
                "usd",
                &[(price(9900, "usd", "month", 1), 1)],
            ),
            day(2026, 3, 1),
        )
        .await;
        apply(
            &db,
            CREATED,
            sub(
                "sub_in",
                "cus_in",
                "incomplete",
                "usd",
                &[(price(9900, "usd", "month", 1), 1)],
            ),
            day(2026, 3, 1),
        )
        .await;
        let k = kpis(&db, "usd").await;
        assert_eq!((k.mrr, k.active_subscriptions), (2500, 1));
    }
);

both_backends!(cancel_at_period_end_counts_until_the_end, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let mut s = sub(
        "sub_e",
        "cus_e",
        "active",
        "usd",
        &[(price(4000, "usd", "month", 1), 1)],
    );
    apply(&db, CREATED, s.clone(), day(2026, 1, 5)).await;
    s["cancel_at_period_end"] = json!(true);
    apply(&db, UPDATED, s.clone(), day(2026, 6, 1)).await;
    assert_eq!(kpis(&db, "usd").await.mrr, 4000, "still paying until the period ends");
    s["status"] = json!("canceled");
    s["ended_at"] = json!(day(2026, 6, 5));
    apply(&db, DELETED, s, day(2026, 6, 5)).await;
    let k = kpis(&db, "usd").await;
    assert_eq!((k.mrr, k.churned_mrr_30d, k.churned_customers_30d), (0, 4000, 1));
    assert_eq!(
        kinds(&db, "usd").await,
        [(MovementKind::New, 4000), (MovementKind::Churn, -4000)]
    );
});

both_backends!(a_mid_month_upgrade_is_expansion, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_u",
            "cus_u",
            "active",
            "usd",
            &[(price(2000, "usd", "month", 1), 1)],
        ),
        day(2026, 4, 1),
    )
    .await;
    apply(
        &db,
        UPDATED,
        sub(
            "sub_u",
            "cus_u",
            "active",
            "usd",
            &[(price(5000, "usd", "month", 1), 1)],
        ),
        day(2026, 6, 14),
    )
    .await;
    let k = kpis(&db, "usd").await;
    assert_eq!((k.mrr, k.expansion_mrr_30d), (5000, 3000));
    assert_eq!(
        kinds(&db, "usd").await,
        [(MovementKind::New, 2000), (MovementKind::Expansion, 3000)]
    );
    let june = revenue::monthly(&db, &tally::domain::accounts::Scope::All, "usd", 3, now())
        .await
        .unwrap();
    assert_eq!(
        june.iter()
            .map(|p| (p.month.as_str(), p.mrr, p.new, p.expansion))
            .collect::<Vec<_>>(),
        [
            ("2026-04", 2000, 2000, 0),
            ("2026-05", 2000, 0, 0),
            ("2026-06", 5000, 0, 3000)
        ]
    );
});

both_backends!(a_downgrade_is_contraction, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_d",
            "cus_d",
            "active",
            "usd",
            &[(price(1000, "usd", "month", 1), 5)],
        ),
        day(2026, 4, 1),
    )
    .await;
    apply(
        &db,
        UPDATED,
        sub(
            "sub_d",
            "cus_d",
            "active",
            "usd",
            &[(price(1000, "usd", "month", 1), 2)],
        ),
        day(2026, 6, 10),
    )
    .await;
    let k = kpis(&db, "usd").await;
    assert_eq!((k.mrr, k.contraction_mrr_30d, k.mrr_30d_ago), (2000, 3000, 5000));
    // Revenue churn: $30 lost of $50 = 60%.
    assert_eq!(k.revenue_churn_bp, Some(6000));
    assert_eq!(
        kinds(&db, "usd").await,
        [(MovementKind::New, 5000), (MovementKind::Contraction, -3000)]
    );
});

both_backends!(churn_then_reactivation, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let mut s = sub(
        "sub_r1",
        "cus_r",
        "active",
        "usd",
        &[(price(2000, "usd", "month", 1), 1)],
    );
    apply(&db, CREATED, s.clone(), day(2026, 1, 1)).await;
    s["status"] = json!("canceled");
    apply(&db, DELETED, s, day(2026, 3, 1)).await;
    // The same customer comes back with a new subscription.
    apply(
        &db,
        CREATED,
        sub(
            "sub_r2",
            "cus_r",
            "active",
            "usd",
            &[(price(3000, "usd", "month", 1), 1)],
        ),
        day(2026, 5, 1),
    )
    .await;
    assert_eq!(
        kinds(&db, "usd").await,
        [
            (MovementKind::New, 2000),
            (MovementKind::Churn, -2000),
            (MovementKind::Reactivation, 3000)
        ]
    );
    let moves = revenue::movements(&db, "usd").await.unwrap();
    assert_eq!(moves[2].subscription_id, "sub_r2");
    assert!(moves[2].event_id.starts_with("evt_"), "each movement names its event");
    assert_eq!(kpis(&db, "usd").await.mrr, 3000);
});

both_backends!(
    a_partial_refund_and_a_lost_dispute_reduce_net_revenue,
    |backend| async move {
        let (db, _t) = common::migrated_db(backend).await;
        let charge = |id: &str, amount: i64, created: i64| {
            json!({"id": id, "object": "charge", "amount": amount, "amount_captured": amount,
        "currency": "usd", "status": "succeeded", "paid": true, "captured": true, "created": created})
        };
        apply(
            &db,
            "charge.succeeded",
            charge("ch_1", 10000, day(2026, 6, 1)),
            day(2026, 6, 1),
        )
        .await;
        apply(
            &db,
            "charge.succeeded",
            charge("ch_2", 4000, day(2026, 6, 2)),
            day(2026, 6, 2),
        )
        .await;
        // Outside the 30 days: not counted.
        apply(
            &db,
            "charge.succeeded",
            charge("ch_old", 99900, day(2026, 4, 1)),
            day(2026, 4, 1),
        )
        .await;
        apply(
            &db,
            "refund.created",
            json!({"id": "re_1", "object": "refund", "charge": "ch_1", "amount": 3000, "currency": "usd",
        "status": "succeeded", "created": day(2026, 6, 5)}),
            day(2026, 6, 5),
        )
        .await;
        apply(
            &db,
            "charge.dispute.closed",
            json!({"id": "dp_1", "object": "dispute", "charge": "ch_2", "amount": 4000, "currency": "usd",
        "status": "lost", "created": day(2026, 6, 6)}),
            day(2026, 6, 6),
        )
        .await;
        let k = kpis(&db, "usd").await;
        assert_eq!(
            (k.gross_30d, k.refunds_30d, k.disputes_lost_30d, k.net_revenue_30d),
            (14000, 3000, 4000, 7000)
        );
        let months = revenue::revenue_by_month(&db, &tally::domain::accounts::Scope::All, "usd", 3, now())
            .await
            .unwrap();
        assert_eq!(months[2].net, 7000);
        assert_eq!(months[0].gross, 99900);
    }
);

both_backends!(jpy_is_zero_decimal, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_jp",
            "cus_jp",
            "active",
            "jpy",
            &[(price(3000, "jpy", "month", 1), 1)],
        ),
        day(2026, 2, 1),
    )
    .await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_jy",
            "cus_jy",
            "active",
            "jpy",
            &[(price(30000, "jpy", "year", 1), 1)],
        ),
        day(2026, 2, 1),
    )
    .await;
    let k = kpis(&db, "jpy").await;
    // ¥3,000 + ¥30,000 ÷ 12 = ¥3,000 + ¥2,500.
    assert_eq!(k.mrr, 5500);
    assert_eq!(tally::domain::money::format(k.mrr, "jpy"), "¥5,500");
    assert_eq!(tally::domain::money::format(k.arpu, "jpy"), "¥2,750");
    assert_eq!(kpis(&db, "usd").await.mrr, 0);
});

both_backends!(two_currencies_are_kept_apart, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_us",
            "cus_1",
            "active",
            "usd",
            &[(price(2000, "usd", "month", 1), 1)],
        ),
        day(2026, 2, 1),
    )
    .await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_eu",
            "cus_2",
            "active",
            "eur",
            &[(price(3000, "eur", "month", 1), 1)],
        ),
        day(2026, 2, 1),
    )
    .await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_eu2",
            "cus_3",
            "active",
            "eur",
            &[(price(1000, "eur", "month", 1), 1)],
        ),
        day(2026, 2, 1),
    )
    .await;
    assert_eq!((kpis(&db, "usd").await.mrr, kpis(&db, "eur").await.mrr), (2000, 4000));
    assert_eq!(
        (
            kpis(&db, "usd").await.active_customers,
            kpis(&db, "eur").await.active_customers
        ),
        (1, 2)
    );
    assert_eq!(
        revenue::currencies(&db, &tally::domain::accounts::Scope::All)
            .await
            .unwrap(),
        ["eur", "usd"],
        "the main currency (most MRR) first"
    );
});

both_backends!(churn_rate_arpu_and_ltv, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    for c in ["a", "b", "c", "d"] {
        apply(
            &db,
            CREATED,
            sub(
                &format!("sub_{c}"),
                &format!("cus_{c}"),
                "active",
                "usd",
                &[(price(2500, "usd", "month", 1), 1)],
            ),
            day(2026, 1, 1),
        )
        .await;
    }
    let mut gone = sub(
        "sub_d",
        "cus_d",
        "canceled",
        "usd",
        &[(price(2500, "usd", "month", 1), 1)],
    );
    gone["ended_at"] = json!(day(2026, 6, 1));
    apply(&db, DELETED, gone, day(2026, 6, 1)).await;
    let k = kpis(&db, "usd").await;
    // 1 of 4 paying customers churned: 25%; $25 of $100 MRR: 25%.
    assert_eq!(
        (k.customers_30d_ago, k.churned_customers_30d, k.customer_churn_bp),
        (4, 1, Some(2500))
    );
    assert_eq!(k.revenue_churn_bp, Some(2500));
    // ARPU $75 ÷ 3 = $25; LTV = $25 ÷ 25% = $100.
    assert_eq!((k.mrr, k.arpu, k.ltv), (7500, 2500, Some(10000)));
});

both_backends!(no_churn_means_no_ltv, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(
        &db,
        CREATED,
        sub(
            "sub_s",
            "cus_s",
            "active",
            "usd",
            &[(price(2500, "usd", "month", 1), 1)],
        ),
        day(2026, 1, 1),
    )
    .await;
    let k = kpis(&db, "usd").await;
    assert_eq!((k.customer_churn_bp, k.ltv), (Some(0), None));
});

both_backends!(open_failed_payments, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    apply(&db, "invoice.payment_failed", json!({"id": "in_f", "object": "invoice", "customer": "cus_f", "status": "open",
        "currency": "usd", "amount_due": 2000, "amount_remaining": 2000, "attempt_count": 2, "created": day(2026, 6, 1)}), day(2026, 6, 1)).await;
    apply(
        &db,
        "invoice.paid",
        json!({"id": "in_ok", "object": "invoice", "customer": "cus_f", "status": "paid",
        "currency": "usd", "amount_due": 2000, "amount_remaining": 0, "attempt_count": 1, "created": day(2026, 6, 1)}),
        day(2026, 6, 1),
    )
    .await;
    apply(
        &db,
        "charge.failed",
        json!({"id": "ch_f", "object": "charge", "amount": 2000, "currency": "usd", "status": "failed",
        "created": day(2026, 6, 1)}),
        day(2026, 6, 1),
    )
    .await;
    let k = kpis(&db, "usd").await;
    assert_eq!(
        (k.open_failed_invoices, k.open_failed_amount, k.failed_payments_30d),
        (1, 2000, 1)
    );
});

both_backends!(events_out_of_order_give_the_same_movements, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let (db2, _t2) = common::migrated_db(backend).await;
    let history = [
        (
            CREATED,
            sub(
                "sub_x",
                "cus_x",
                "active",
                "usd",
                &[(price(2000, "usd", "month", 1), 1)],
            ),
            day(2026, 1, 1),
        ),
        (
            UPDATED,
            sub(
                "sub_x",
                "cus_x",
                "active",
                "usd",
                &[(price(2000, "usd", "month", 1), 3)],
            ),
            day(2026, 2, 1),
        ),
        (
            UPDATED,
            sub(
                "sub_x",
                "cus_x",
                "active",
                "usd",
                &[(price(2000, "usd", "month", 1), 2)],
            ),
            day(2026, 3, 1),
        ),
        (
            DELETED,
            sub(
                "sub_x",
                "cus_x",
                "canceled",
                "usd",
                &[(price(2000, "usd", "month", 1), 2)],
            ),
            day(2026, 4, 1),
        ),
    ];
    for (t, o, at) in &history {
        apply(&db, t, o.clone(), *at).await;
    }
    for (t, o, at) in history.iter().rev() {
        apply(&db2, t, o.clone(), *at).await;
    }
    let expected = [
        (MovementKind::New, 2000),
        (MovementKind::Expansion, 4000),
        (MovementKind::Contraction, -2000),
        (MovementKind::Churn, -4000),
    ];
    assert_eq!(kinds(&db, "usd").await, expected);
    assert_eq!(kinds(&db2, "usd").await, expected);
    assert_eq!((kpis(&db, "usd").await.mrr, kpis(&db2, "usd").await.mrr), (0, 0));
});

both_backends!(
    monthly_mrr_stacks_movements_and_counts_subscribers,
    |backend| async move {
        let (db, _t) = common::migrated_db(backend).await;
        apply(
            &db,
            CREATED,
            sub(
                "sub_1",
                "cus_1",
                "active",
                "usd",
                &[(price(1000, "usd", "month", 1), 1)],
            ),
            day(2026, 4, 3),
        )
        .await;
        apply(
            &db,
            CREATED,
            sub(
                "sub_2",
                "cus_2",
                "active",
                "usd",
                &[(price(2000, "usd", "month", 1), 1)],
            ),
            day(2026, 5, 3),
        )
        .await;
        apply(
            &db,
            UPDATED,
            sub(
                "sub_2",
                "cus_2",
                "active",
                "usd",
                &[(price(2000, "usd", "month", 1), 2)],
            ),
            day(2026, 5, 20),
        )
        .await;
        apply(
            &db,
            DELETED,
            sub(
                "sub_1",
                "cus_1",
                "canceled",
                "usd",
                &[(price(1000, "usd", "month", 1), 1)],
            ),
            day(2026, 6, 2),
        )
        .await;
        let months = revenue::monthly(&db, &tally::domain::accounts::Scope::All, "usd", 3, now())
            .await
            .unwrap();
        let got: Vec<_> = months
            .iter()
            .map(|p| (p.month.as_str(), p.mrr, p.new, p.expansion, p.churn))
            .collect();
        assert_eq!(
            got,
            [
                ("2026-04", 1000, 1000, 0, 0),
                ("2026-05", 5000, 2000, 2000, 0),
                ("2026-06", 4000, 0, 0, -1000)
            ]
        );
        let subscribers = revenue::subscribers_by_month(&db, &tally::domain::accounts::Scope::All, "usd", 3, now())
            .await
            .unwrap();
        assert_eq!(subscribers.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [1, 2, 1]);
    }
);

fn charge(id: &str, amount: i64, created: i64) -> Value {
    json!({"id": id, "object": "charge", "amount": amount, "amount_captured": amount,
           "currency": "usd", "status": "succeeded", "paid": true, "captured": true, "created": created})
}

both_backends!(
    revenue_of_closed_months_is_cached_until_a_closed_month_changes,
    |backend| async move {
        let (db, _t) = common::migrated_db(backend).await;
        // Real time: the cache's notion of a closed month is the calendar's.
        let now = tally::db::now_unix();
        let this_month = tally::domain::calendar::month_start(now, 0);
        let last_month = tally::domain::calendar::month_start(now, -1) + 86_400;
        apply(&db, "charge.succeeded", charge("ch_last", 5000, last_month), last_month).await;
        apply(&db, "charge.succeeded", charge("ch_this", 700, this_month), this_month).await;
        let before = revenue::revenue_by_month(&db, &tally::domain::accounts::Scope::All, "usd", 3, now)
            .await
            .unwrap();
        assert_eq!((before[1].gross, before[1].net, before[2].gross), (5000, 5000, 700));
        // Served again from the cache: same figures.
        assert_eq!(
            revenue::revenue_by_month(&db, &tally::domain::accounts::Scope::All, "usd", 3, now)
                .await
                .unwrap(),
            before
        );

        // A refund dated last month (a closed month) shows at once.
        apply(
            &db,
            "refund.created",
            json!({"id": "re_last", "object": "refund", "charge": "ch_last", "amount": 1250, "currency": "usd",
                   "status": "succeeded", "created": last_month + 60}),
            now,
        )
        .await;
        let after = revenue::revenue_by_month(&db, &tally::domain::accounts::Scope::All, "usd", 3, now)
            .await
            .unwrap();
        assert_eq!((after[1].refunds, after[1].net), (1250, 3750));
        // So does a later version of last month's charge (now failed), and a new charge this month.
        let mut failed = charge("ch_last", 5000, last_month);
        failed["status"] = json!("failed");
        apply(&db, "charge.failed", failed, now).await;
        apply(&db, "charge.succeeded", charge("ch_this2", 300, now - 1), now - 1).await;
        let later = revenue::revenue_by_month(&db, &tally::domain::accounts::Scope::All, "usd", 3, now)
            .await
            .unwrap();
        assert_eq!((later[1].gross, later[1].failed_payments, later[1].net), (0, 1, -1250));
        assert_eq!((later[2].gross, later[2].payments), (1000, 2));
    }
);

both_backends!(
    movements_of_closed_months_are_cached_until_history_lands_in_one,
    |backend| async move {
        let (db, _t) = common::migrated_db(backend).await;
        // Real time: the cache's notion of a closed month is the calendar's.
        let now = tally::db::now_unix();
        let last_month = tally::domain::calendar::month_start(now, -1) + 86_400;
        let plan = |n: i64| [(price(1000, "usd", "month", 1), n)];
        apply(
            &db,
            CREATED,
            sub("sub_a", "cus_a", "active", "usd", &plan(1)),
            last_month,
        )
        .await;
        let before = revenue::monthly(&db, &tally::domain::accounts::Scope::All, "usd", 2, now)
            .await
            .unwrap();
        assert_eq!((before[0].new, before[0].mrr, before[1].mrr), (1000, 1000, 1000));
        // Served again from the cache: the same.
        assert_eq!(
            revenue::monthly(&db, &tally::domain::accounts::Scope::All, "usd", 2, now)
                .await
                .unwrap(),
            before
        );

        // An event dated last month that arrives now (out of order) changes last month at once…
        apply(
            &db,
            CREATED,
            sub("sub_b", "cus_b", "active", "usd", &plan(2)),
            last_month + 60,
        )
        .await;
        let after = revenue::monthly(&db, &tally::domain::accounts::Scope::All, "usd", 2, now)
            .await
            .unwrap();
        assert_eq!((after[0].new, after[0].mrr, after[1].mrr), (3000, 3000, 3000));
        let k = revenue::kpis(&db, &tally::domain::accounts::Scope::All, "usd", now)
            .await
            .unwrap();
        assert_eq!(k.mrr, 3000);
        // …and so does an upgrade this month, in this month only.
        apply(&db, UPDATED, sub("sub_a", "cus_a", "active", "usd", &plan(3)), now - 5).await;
        let later = revenue::monthly(&db, &tally::domain::accounts::Scope::All, "usd", 2, now)
            .await
            .unwrap();
        assert_eq!((later[0].mrr, later[1].expansion, later[1].mrr), (3000, 2000, 5000));
        let subscribers = revenue::subscribers_by_month(&db, &tally::domain::accounts::Scope::All, "usd", 2, now)
            .await
            .unwrap();
        assert_eq!(subscribers.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [2, 2]);
    }
);

/// Two transactions adding to one customer's history at once (two instances' workers) must not
/// each write movements from half of it: the second waits for the first (Postgres).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_history_of_one_customer_gives_movements_from_all_of_it() {
    let (db, _t) = common::migrated_db(common::Backend::Postgres).await;
    let first = sub(
        "sub_c1",
        "cus_c",
        "active",
        "usd",
        &[(price(1000, "usd", "month", 1), 1)],
    );
    let second = sub(
        "sub_c2",
        "cus_c",
        "active",
        "usd",
        &[(price(2000, "usd", "month", 1), 1)],
    );
    let version = |at: i64, id: &str| Version {
        at,
        event_id: id.to_string(),
    };
    // The second subscription exists already; the racing event repeats its state (its row's
    // counted columns do not change, so only the history's lock can make it wait).
    apply(&db, CREATED, second.clone(), day(2026, 4, 1)).await;
    let mut t1 = db.begin().await.unwrap();
    projection::apply_event(&mut t1, CREATED, &first, &version(day(2026, 5, 1), "evt_c1"))
        .await
        .unwrap();
    let other = db.clone();
    let t2 = tokio::spawn(async move {
        let mut t2 = other.begin().await.unwrap();
        projection::apply_event(&mut t2, UPDATED, &second, &version(day(2026, 5, 2), "evt_c2"))
            .await
            .unwrap();
        t2.commit().await.unwrap();
    });
    // The race: the second transaction waits for the first's lock on the customer's history
    // (seen in pg_locks) before the first commits. Without the lock this never happens.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
             WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()",
        )
        .fetch_one(db.reader())
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second transaction never waited for the first"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    t1.commit().await.unwrap();
    t2.await.unwrap();
    assert_eq!(
        kinds(&db, "usd").await,
        [(MovementKind::New, 2000), (MovementKind::Expansion, 1000)]
    );
}
