//! Coupons in MRR in the shapes Stripe sends today (API 2025-03-31 and later): a subscription and
//! its items list discounts by id, a discount's coupon sits under `source.coupon` by id, and the
//! objects arrive in their own events (`coupon.*`, `customer.discount.*`, `promotion_code.*`), in
//! any order. Figures worked out by hand in each test, to the cent.

use crate::common;
use crate::common::stripe::{Reply, Request, StandIn};

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};
use tally::config::DiscountPolicy;
use tally::db::{now_unix, Db};
use tally::domain::revenue::MovementKind;
use tally::projection::{self, mrr_history, Version};
use tally::revenue;

const DAY: i64 = 86_400;
static EVENTS: AtomicU64 = AtomicU64::new(0);

async fn apply(db: &Db, event_type: &str, object: Value, created: i64) {
    let n = EVENTS.fetch_add(1, Ordering::SeqCst);
    let version = Version {
        at: created,
        event_id: format!("evt_cp_{created}_{n:06}"),
    };
    let mut tx = db.begin().await.unwrap();
    projection::apply_event(&mut tx, event_type, &object, &version)
        .await
        .unwrap();
    tally::db::cache::bump(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
}

fn item(sub: &str, n: usize, amount: i64, interval: &str, discounts: &[&str]) -> Value {
    json!({"id": format!("si_{sub}_{n}"), "object": "subscription_item", "quantity": 1, "discounts": discounts,
           "price": {"id": format!("price_{amount}_{interval}"), "object": "price", "unit_amount": amount, "currency": "usd",
                     "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"}}})
}

/// A subscription as current API versions send it: `discounts` is a list of ids.
fn sub(id: &str, customer: &str, items: Vec<Value>, discounts: &[&str]) -> Value {
    json!({"id": id, "object": "subscription", "customer": customer, "status": "active", "currency": "usd",
           "cancel_at_period_end": false, "discounts": discounts,
           "items": {"object": "list", "data": items, "has_more": false}})
}

fn coupon(id: &str, terms: Value) -> Value {
    let mut c = json!({"id": id, "object": "coupon", "valid": true, "livemode": false, "created": 1_700_000_000,
                       "percent_off": null, "amount_off": null, "currency": null, "duration_in_months": null});
    for (k, v) in terms.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// A discount as `customer.discount.*` carries it: the coupon under `source`, by id.
fn discount(id: &str, customer: &str, subscription: Option<&str>, coupon: Option<&str>, start: i64) -> Value {
    json!({"id": id, "object": "discount", "customer": customer, "subscription": subscription,
           "subscription_item": null, "invoice": null, "invoice_item": null, "checkout_session": null,
           "promotion_code": null, "start": start, "end": null, "source": {"type": "coupon", "coupon": coupon}})
}

async fn mrr_of(db: &Db, sub: &str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>("SELECT mrr FROM subscriptions WHERE id = $1")
        .bind(sub)
        .fetch_one(db.reader())
        .await
        .unwrap()
        .unwrap_or(-1)
}

async fn total_mrr(db: &Db) -> i64 {
    revenue::kpis(db, &tally::domain::accounts::Scope::All, "usd", now_unix())
        .await
        .unwrap()
        .mrr
}

async fn moves(db: &Db) -> Vec<(MovementKind, i64, i64)> {
    revenue::movements(db, "usd")
        .await
        .unwrap()
        .iter()
        .map(|m| (m.kind, m.delta, m.at))
        .collect()
}

const SUB_CREATED: &str = "customer.subscription.created";
const SUB_UPDATED: &str = "customer.subscription.updated";

both_backends!(a_forever_percent_off_coupon_by_id, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let t = now_unix() - 40 * DAY;
    apply(
        &db,
        "coupon.created",
        coupon("TWENTY", json!({"percent_off": 20.0, "duration": "forever"})),
        t - 10,
    )
    .await;
    apply(
        &db,
        "customer.discount.created",
        discount("di_f", "cus_f", Some("sub_f"), Some("TWENTY"), t),
        t,
    )
    .await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_f", "cus_f", vec![item("sub_f", 0, 5000, "month", &[])], &["di_f"]),
        t,
    )
    .await;
    // $50 less 20% = $40, in MRR, ARR and the movement that started it.
    assert_eq!(mrr_of(&db, "sub_f").await, 4000);
    let k = revenue::kpis(&db, &tally::domain::accounts::Scope::All, "usd", now_unix())
        .await
        .unwrap();
    assert_eq!((k.mrr, k.arr, k.arpu), (4000, 48000, 4000));
    assert_eq!(moves(&db).await, vec![(MovementKind::New, 4000, t)]);
});

both_backends!(an_amount_off_coupon_on_one_item, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let t = now_unix() - 10 * DAY;
    apply(
        &db,
        "coupon.created",
        coupon(
            "FIVE",
            json!({"amount_off": 500, "currency": "usd", "duration": "forever"}),
        ),
        t - 10,
    )
    .await;
    apply(
        &db,
        "customer.discount.created",
        discount("di_i", "cus_i", Some("sub_i"), Some("FIVE"), t),
        t,
    )
    .await;
    let items = vec![
        item("sub_i", 0, 5000, "month", &["di_i"]),
        item("sub_i", 1, 3000, "month", &[]),
    ];
    apply(&db, SUB_CREATED, sub("sub_i", "cus_i", items, &[]), t).await;
    // ($50 − $5) + $30: the discount reduces its item only.
    assert_eq!(mrr_of(&db, "sub_i").await, 7500);
    // On a yearly item the $5 off each invoice is spread over twelve months: ($120 − $5) ÷ 12.
    apply(
        &db,
        "customer.discount.created",
        discount("di_y", "cus_y", Some("sub_y"), Some("FIVE"), t),
        t,
    )
    .await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_y", "cus_y", vec![item("sub_y", 0, 12000, "year", &["di_y"])], &[]),
        t,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_y").await, 958);
});

both_backends!(two_stacked_discounts_in_stripes_order, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let t = now_unix() - 10 * DAY;
    apply(
        &db,
        "coupon.created",
        coupon("TEN", json!({"percent_off": 10.0, "duration": "forever"})),
        t - 10,
    )
    .await;
    apply(
        &db,
        "coupon.created",
        coupon(
            "FIVE",
            json!({"amount_off": 500, "currency": "usd", "duration": "forever"}),
        ),
        t - 10,
    )
    .await;
    for (d, c, s) in [
        ("di_s1", "TEN", "sub_s"),
        ("di_s2", "FIVE", "sub_s"),
        ("di_r1", "FIVE", "sub_r"),
        ("di_r2", "TEN", "sub_r"),
    ] {
        apply(
            &db,
            "customer.discount.created",
            discount(d, "cus_s", Some(s), Some(c), t),
            t,
        )
        .await;
    }
    // $100 − 10% = $90, then − $5 = $85.00.
    apply(
        &db,
        SUB_CREATED,
        sub(
            "sub_s",
            "cus_s",
            vec![item("sub_s", 0, 10000, "month", &[])],
            &["di_s1", "di_s2"],
        ),
        t,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_s").await, 8500);
    // The other order: $100 − $5 = $95, then − 10% = $85.50.
    apply(
        &db,
        SUB_CREATED,
        sub(
            "sub_r",
            "cus_s",
            vec![item("sub_r", 0, 10000, "month", &[])],
            &["di_r1", "di_r2"],
        ),
        t,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_r").await, 8550);
    assert_eq!(total_mrr(&db).await, 8500 + 8550);
});

both_backends!(a_repeating_coupon_under_each_setting, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let now = now_unix();
    // Started 100 days ago, 25% off until 40 days ago (Stripe sets the discount's end).
    let (start, end) = (now - 100 * DAY, now - 40 * DAY);
    apply(
        &db,
        "coupon.created",
        coupon(
            "QUARTER",
            json!({"percent_off": 25.0, "duration": "repeating", "duration_in_months": 2}),
        ),
        start - 10,
    )
    .await;
    let mut d = discount("di_r", "cus_r", Some("sub_r"), Some("QUARTER"), start);
    d["end"] = json!(end);
    apply(&db, "customer.discount.created", d, start).await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_r", "cus_r", vec![item("sub_r", 0, 10000, "month", &[])], &["di_r"]),
        start,
    )
    .await;
    // A second subscription whose repeating discount is still running (ends in 30 days).
    let mut d = discount("di_q", "cus_q", Some("sub_q"), Some("QUARTER"), now - DAY);
    d["end"] = json!(now + 30 * DAY);
    apply(&db, "customer.discount.created", d, now - DAY).await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_q", "cus_q", vec![item("sub_q", 0, 2000, "month", &[])], &["di_q"]),
        now - DAY,
    )
    .await;

    // Stripe's default: repeating coupons do not reduce MRR.
    assert_eq!(mrr_of(&db, "sub_r").await, 10000);
    assert_eq!(mrr_of(&db, "sub_q").await, 2000);
    assert_eq!(
        moves(&db).await,
        vec![(MovementKind::New, 10000, start), (MovementKind::New, 2000, now - DAY)]
    );

    // "Also subtract recurring discounts": the history is recomputed. sub_r started at $75 and
    // expanded by $25 when its discount ended; sub_q is at $15 until its discount ends.
    let repeating = DiscountPolicy::parse("forever,repeating").unwrap();
    assert!(mrr_history::use_policy(&db, repeating).await.unwrap() >= 2);
    assert_eq!(mrr_of(&db, "sub_r").await, 10000);
    assert_eq!(mrr_of(&db, "sub_q").await, 1500);
    assert_eq!(
        moves(&db).await,
        vec![
            (MovementKind::New, 7500, start),
            (MovementKind::Expansion, 2500, end),
            (MovementKind::New, 1500, now - DAY),
        ]
    );
    let due: i64 = sqlx::query_scalar("SELECT due_at FROM mrr_boundaries WHERE subscription_id = 'sub_q'")
        .fetch_one(db.reader())
        .await
        .unwrap();
    assert_eq!(
        due,
        now + 30 * DAY,
        "the clock will move sub_q's MRR when its discount ends"
    );

    // A once coupon counts only under "also one-time discounts", for one billing period.
    apply(
        &db,
        "coupon.created",
        coupon("WELCOME", json!({"percent_off": 50.0, "duration": "once"})),
        start - 10,
    )
    .await;
    apply(
        &db,
        "customer.discount.created",
        discount("di_o", "cus_o", Some("sub_o"), Some("WELCOME"), now - 5 * DAY),
        now - 5 * DAY,
    )
    .await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_o", "cus_o", vec![item("sub_o", 0, 4000, "month", &[])], &["di_o"]),
        now - 5 * DAY,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_o").await, 4000);
    mrr_history::use_policy(&db, DiscountPolicy::parse("forever,once").unwrap())
        .await
        .unwrap();
    assert_eq!(mrr_of(&db, "sub_o").await, 2000);
    assert_eq!(
        mrr_of(&db, "sub_q").await,
        2000,
        "repeating no longer counts under this setting"
    );
    // Back to the default: every figure as at first.
    mrr_history::use_policy(&db, DiscountPolicy::default()).await.unwrap();
    assert_eq!((mrr_of(&db, "sub_o").await, mrr_of(&db, "sub_q").await), (4000, 2000));
    assert_eq!(
        moves(&db).await,
        vec![
            (MovementKind::New, 10000, start),
            (MovementKind::New, 4000, now - 5 * DAY),
            (MovementKind::New, 2000, now - DAY),
        ]
    );
});

both_backends!(a_coupon_removed_mid_month_is_an_expansion_then, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let now = now_unix();
    let (start, removed) = (now - 90 * DAY, now - 20 * DAY);
    apply(
        &db,
        "coupon.created",
        coupon("TWENTY", json!({"percent_off": 20.0, "duration": "forever"})),
        start - 10,
    )
    .await;
    // Removed with the subscription's update (the dashboard's "remove discount")…
    apply(
        &db,
        "customer.discount.created",
        discount("di_a", "cus_a", Some("sub_a"), Some("TWENTY"), start),
        start,
    )
    .await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_a", "cus_a", vec![item("sub_a", 0, 5000, "month", &[])], &["di_a"]),
        start,
    )
    .await;
    apply(
        &db,
        "customer.discount.deleted",
        discount("di_a", "cus_a", Some("sub_a"), Some("TWENTY"), start),
        removed,
    )
    .await;
    apply(
        &db,
        SUB_UPDATED,
        sub("sub_a", "cus_a", vec![item("sub_a", 0, 5000, "month", &[])], &[]),
        removed,
    )
    .await;
    // …and with only the discount's deletion (no update of the subscription).
    apply(
        &db,
        "customer.discount.created",
        discount("di_b", "cus_b", Some("sub_b"), Some("TWENTY"), start),
        start,
    )
    .await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_b", "cus_b", vec![item("sub_b", 0, 5000, "month", &[])], &["di_b"]),
        start,
    )
    .await;
    apply(
        &db,
        "customer.discount.deleted",
        discount("di_b", "cus_b", Some("sub_b"), Some("TWENTY"), start),
        removed,
    )
    .await;
    assert_eq!((mrr_of(&db, "sub_a").await, mrr_of(&db, "sub_b").await), (5000, 5000));
    assert_eq!(
        moves(&db).await,
        vec![
            (MovementKind::New, 4000, start),
            (MovementKind::New, 4000, start),
            (MovementKind::Expansion, 1000, removed),
            (MovementKind::Expansion, 1000, removed),
        ]
    );
    // The expansion lands in the month of the removal.
    let k = revenue::kpis(&db, &tally::domain::accounts::Scope::All, "usd", now)
        .await
        .unwrap();
    assert_eq!(k.expansion_mrr_30d, 2000);
});

both_backends!(a_promotion_code_resolves_to_its_coupon, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let t = now_unix() - 3 * DAY;
    apply(
        &db,
        "coupon.created",
        coupon("HALF", json!({"percent_off": 50.0, "duration": "forever"})),
        t - 20,
    )
    .await;
    // Current API versions: the code's coupon under `promotion`.
    apply(
        &db,
        "promotion_code.created",
        json!({"id": "promo_half", "object": "promotion_code", "code": "SPRING50",
        "active": true, "created": t - 10, "livemode": false, "promotion": {"type": "coupon", "coupon": "HALF"}}),
        t - 10,
    )
    .await;
    let mut d = discount("di_p", "cus_p", Some("sub_p"), None, t);
    d["promotion_code"] = json!("promo_half");
    apply(&db, "customer.discount.created", d, t).await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_p", "cus_p", vec![item("sub_p", 0, 3000, "month", &[])], &["di_p"]),
        t,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_p").await, 1500);
});

both_backends!(a_discount_whose_id_arrives_before_its_object, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    let t = now_unix() - 50 * DAY;
    // The subscription lists di_late, which Tally has not seen: full price for now…
    apply(
        &db,
        SUB_CREATED,
        sub(
            "sub_l",
            "cus_l",
            vec![item("sub_l", 0, 5000, "month", &[])],
            &["di_late"],
        ),
        t,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_l").await, 5000);
    // …then the discount, then its coupon, arrive (webhooks come in any order).
    apply(
        &db,
        "customer.discount.created",
        discount("di_late", "cus_l", Some("sub_l"), Some("TWENTY"), t),
        t,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_l").await, 5000, "the coupon's terms are still unknown");
    apply(
        &db,
        "coupon.created",
        coupon("TWENTY", json!({"percent_off": 20.0, "duration": "forever"})),
        t - 10,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_l").await, 4000);
    // The history is recomputed: the customer started at $40, it did not start at $50 and contract.
    assert_eq!(moves(&db).await, vec![(MovementKind::New, 4000, t)]);
});

both_backends!(
    a_customers_own_discount_applies_to_its_subscriptions,
    |backend| async move {
        let (db, _t) = common::migrated_db(backend).await;
        let t = now_unix() - 5 * DAY;
        apply(
            &db,
            "coupon.created",
            coupon("TEN", json!({"percent_off": 10.0, "duration": "forever"})),
            t - 10,
        )
        .await;
        apply(
            &db,
            "coupon.created",
            coupon("HALF", json!({"percent_off": 50.0, "duration": "forever"})),
            t - 10,
        )
        .await;
        apply(
            &db,
            SUB_CREATED,
            sub("sub_c1", "cus_c", vec![item("sub_c1", 0, 2000, "month", &[])], &[]),
            t,
        )
        .await;
        apply(
            &db,
            "customer.discount.created",
            discount("di_own", "cus_c2", Some("sub_c2"), Some("HALF"), t),
            t,
        )
        .await;
        apply(
            &db,
            SUB_CREATED,
            sub(
                "sub_c2",
                "cus_c",
                vec![item("sub_c2", 0, 2000, "month", &[])],
                &["di_own"],
            ),
            t,
        )
        .await;
        assert_eq!((mrr_of(&db, "sub_c1").await, mrr_of(&db, "sub_c2").await), (2000, 1000));
        // The customer's discount applies to the subscription without one of its own.
        apply(
            &db,
            "customer.discount.created",
            discount("di_cus", "cus_c", None, Some("TEN"), t + 60),
            t + 60,
        )
        .await;
        assert_eq!((mrr_of(&db, "sub_c1").await, mrr_of(&db, "sub_c2").await), (1800, 1000));
    }
);

both_backends!(the_clock_ends_a_discount_without_an_event, |backend| async move {
    let (db, _t) = common::migrated_db(backend).await;
    mrr_history::use_policy(&db, DiscountPolicy::parse("forever,repeating").unwrap())
        .await
        .unwrap();
    let now = now_unix();
    let end = now + 2;
    apply(
        &db,
        "coupon.created",
        coupon("QUARTER", json!({"percent_off": 25.0, "duration": "repeating"})),
        now - 100,
    )
    .await;
    let mut d = discount("di_e", "cus_e", Some("sub_e"), Some("QUARTER"), now - 60);
    d["end"] = json!(end);
    apply(&db, "customer.discount.created", d, now - 60).await;
    apply(
        &db,
        SUB_CREATED,
        sub("sub_e", "cus_e", vec![item("sub_e", 0, 4000, "month", &[])], &["di_e"]),
        now - 60,
    )
    .await;
    assert_eq!(mrr_of(&db, "sub_e").await, 3000);
    // Nothing is due before the end; once it has passed, the sweep moves MRR at that second.
    assert_eq!(mrr_history::settle_due(&db).await.unwrap(), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while now_unix() < end {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(mrr_history::settle_due(&db).await.unwrap(), 1);
    assert_eq!(mrr_of(&db, "sub_e").await, 4000);
    assert_eq!(
        moves(&db).await,
        vec![
            (MovementKind::New, 3000, now - 60),
            (MovementKind::Expansion, 1000, end)
        ]
    );
});

both_backends!(
    an_unknown_discount_is_fetched_expanded_with_its_subscription,
    |backend| async move {
        let t = now_unix() - 5 * DAY;
        let stand_in = StandIn::start(move |_: Request| async move {
            let mut s = sub("sub_x", "cus_x", vec![item("sub_x", 0, 6000, "month", &[])], &[]);
            // What Stripe answers with expand[]=discounts: the discount object, its coupon by id
            // (or expanded, as here).
            let mut d = discount("di_x", "cus_x", Some("sub_x"), None, t);
            d["source"]["coupon"] = coupon("THIRD", json!({"percent_off": 33.33, "duration": "forever"}));
            s["discounts"] = json!([d]);
            Reply::ok(s)
        })
        .await;
        let base = stand_in.url.clone();
        let (db, stripe, _t) = common::db_with_stripe(backend, &base).await;
        apply(
            &db,
            SUB_CREATED,
            sub("sub_x", "cus_x", vec![item("sub_x", 0, 6000, "month", &[])], &["di_x"]),
            t,
        )
        .await;
        assert_eq!(mrr_of(&db, "sub_x").await, 6000);
        let reason: String = sqlx::query_scalar("SELECT reason FROM stripe_fetches WHERE object_id = 'sub_x'")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(reason, "unknown_discount");
        assert_eq!(
            tally::sync::fetches::drain_once(&db, Some(stripe.as_ref()))
                .await
                .unwrap(),
            1
        );
        let requests: Vec<String> = stand_in.requests().into_iter().map(|r| r.uri).collect();
        assert_eq!(requests.len(), 1);
        assert!(
            requests[0].starts_with("/v1/subscriptions/sub_x?") && requests[0].contains("expand[]=discounts"),
            "{requests:?}"
        );
        // $60 less 33.33% = $40.0020 → $40.00; the discount and its coupon are now known.
        assert_eq!(mrr_of(&db, "sub_x").await, 4000);
        let coupon: Option<String> = sqlx::query_scalar("SELECT coupon_id FROM discounts WHERE id = 'di_x'")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(coupon.as_deref(), Some("THIRD"));
        assert_eq!(moves(&db).await, vec![(MovementKind::New, 4000, t)]);
    }
);

both_backends!(
    a_fetched_subscription_still_without_its_discount_is_not_fetched_again,
    |backend| async move {
        let t = now_unix() - 5 * DAY;
        // This Stripe answers with the discount by id only (as if it ignored expand).
        let stand_in = StandIn::start(move |_: Request| async move {
            Reply::ok(sub(
                "sub_n",
                "cus_n",
                vec![item("sub_n", 0, 6000, "month", &[])],
                &["di_nowhere"],
            ))
        })
        .await;
        let base = stand_in.url.clone();
        let (db, stripe, _t) = common::db_with_stripe(backend, &base).await;
        apply(
            &db,
            SUB_CREATED,
            sub(
                "sub_n",
                "cus_n",
                vec![item("sub_n", 0, 6000, "month", &[])],
                &["di_nowhere"],
            ),
            t,
        )
        .await;
        assert_eq!(
            tally::sync::fetches::drain_once(&db, Some(stripe.as_ref()))
                .await
                .unwrap(),
            1
        );
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stripe_fetches")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(queued, 0, "the answer is final until the next event about it");
        assert_eq!(mrr_of(&db, "sub_n").await, 6000);
    }
);

/// A customer as the backfill lists it, carrying its own discount expanded (the legacy
/// `discount` field), its coupon expanded inside.
fn customer_with_discount(id: &str, discount_id: &str, coupon_object: &Value, start: i64) -> Value {
    json!({"id": id, "object": "customer", "created": start - 100, "livemode": false, "currency": "usd",
           "email": format!("{id}@example.com"), "name": id, "delinquent": false,
           "discount": {"id": discount_id, "object": "discount", "customer": id, "subscription": null,
                        "start": start, "end": null, "coupon": coupon_object}})
}

both_backends!(
    a_backfilled_page_writes_customers_own_discounts_with_them,
    |backend| async move {
        // A page of customers each carrying its own discount goes through the multi-row path: the
        // discounts (and their coupon) are written for the customers written, and their terms
        // settle the customers' subscriptions; a customer whose row is newer than the page keeps
        // its discount-less state, so its fetched discount is not written either.
        let (db, _t) = common::migrated_db(backend).await;
        let t = now_unix() - 30 * DAY;
        let twenty = coupon("TWENTY", json!({"percent_off": 20.0, "duration": "forever"}));
        apply(
            &db,
            SUB_CREATED,
            sub("sub_o", "cus_o", vec![item("sub_o", 0, 5000, "month", &[])], &[]),
            t,
        )
        .await;
        assert_eq!(mrr_of(&db, "sub_o").await, 5000);
        // cus_q changed after the page was fetched: its webhook (no discount) is newer.
        let fetched_at = now_unix() - 60;
        apply(
            &db,
            "customer.updated",
            json!({"id": "cus_q", "object": "customer", "created": t, "livemode": false, "currency": "usd",
               "email": "cus_q@example.com", "name": "cus_q", "delinquent": false, "discount": null}),
            fetched_at + 10,
        )
        .await;
        let page = projection::PreparedPage::new(
            tally::domain::resource::Resource::Customer,
            vec![
                customer_with_discount("cus_o", "di_o", &twenty, t),
                customer_with_discount("cus_p", "di_p", &twenty, t),
                customer_with_discount("cus_q", "di_q", &twenty, t),
                json!({"id": "cus_r", "object": "customer", "created": t, "livemode": false, "discount": null}),
            ],
            Version::fetched(fetched_at),
        )
        .unwrap();
        let mut tx = projection::Tx::begin(&db).await.unwrap();
        let written = projection::write_page(&mut tx, tally::domain::accounts::ENVIRONMENT, &page)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(written, 3, "cus_o, cus_p and cus_r; cus_q's row is newer");
        let discounts: Vec<(String, Option<String>, Option<String>)> =
            sqlx::query_as("SELECT id, customer_id, coupon_id FROM discounts ORDER BY id")
                .fetch_all(db.reader())
                .await
                .unwrap();
        assert_eq!(
            discounts,
            vec![
                ("di_o".into(), Some("cus_o".into()), Some("TWENTY".into())),
                ("di_p".into(), Some("cus_p".into()), Some("TWENTY".into())),
            ]
        );
        let coupons: Vec<String> = sqlx::query_scalar("SELECT id FROM coupons")
            .fetch_all(db.reader())
            .await
            .unwrap();
        assert_eq!(coupons, vec!["TWENTY".to_string()]);
        // The customer's own discount applies to its subscription: $50 less 20%.
        assert_eq!(mrr_of(&db, "sub_o").await, 4000);
        let q: Option<String> = sqlx::query_scalar("SELECT raw FROM customers WHERE id = 'cus_q'")
            .fetch_optional(db.reader())
            .await
            .unwrap();
        assert!(q.is_some_and(|raw| raw.contains("\"discount\":null")));
    }
);
