//! Subscriptions and their items. Since API version 2025-03-31 the current period lives on each
//! item rather than on the subscription; items carry `price` (and, in older versions, `plan`).

use serde_json::Value;
use sqlx::AnyConnection;

use super::read::list;
use super::{flag, id, int, text, Col, ProjectionError};

fn items(s: &Value) -> &[Value] {
    list(s.get("items"))
}

/// The subscription's period, or the earliest item period when it moved to the items.
fn period(s: &Value, key: &str) -> Option<i64> {
    int(s, key).or_else(|| items(s).iter().filter_map(|i| int(i, key)).min())
}

pub fn columns(s: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("customer_id", Col::Text(id(s, "customer"))),
        ("status", Col::Text(text(s, "status"))),
        ("currency", Col::Text(text(s, "currency"))),
        ("cancel_at_period_end", Col::Int(flag(s, "cancel_at_period_end"))),
        ("cancel_at", Col::Int(int(s, "cancel_at"))),
        ("canceled_at", Col::Int(int(s, "canceled_at"))),
        ("ended_at", Col::Int(int(s, "ended_at"))),
        ("trial_start", Col::Int(int(s, "trial_start"))),
        ("trial_end", Col::Int(int(s, "trial_end"))),
        ("current_period_start", Col::Int(period(s, "current_period_start"))),
        ("current_period_end", Col::Int(period(s, "current_period_end"))),
        ("start_date", Col::Int(int(s, "start_date"))),
        (
            "items_incomplete",
            Col::Int(Some(i64::from(super::incomplete_list(
                super::Resource::Subscription,
                s,
            )))),
        ),
        (
            "mrr",
            Col::Int(Some(crate::metrics::mrr::of_subscription(s, crate::db::now_unix()))),
        ),
    ]
}

/// Whether this version of a subscription says what its MRR is: a payload without items (a
/// trimmed object) says nothing unless it ends the subscription.
fn tells_mrr(s: &Value) -> bool {
    let ends = matches!(text(s, "status").as_deref(), Some("canceled" | "incomplete_expired"));
    s.get("items").is_some() || ends
}

/// Keeps the subscription's MRR at this version's second for the movements: one snapshot per
/// second, the state that stands at the end of it (the same rule as the rows: a fetched object,
/// else the latest of that second's events), whatever order they arrive in.
pub async fn record_mrr(conn: &mut AnyConnection, s: &Value, version: &super::Version) -> Result<(), ProjectionError> {
    let Some(sub_id) = text(s, "id") else {
        return Err(ProjectionError::NoId);
    };
    if !tells_mrr(s) {
        return Ok(());
    }
    let added = sqlx::query(
        "INSERT INTO subscription_mrr (subscription_id, at, event_id, customer_id, currency, status, mrr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (subscription_id, at) DO NOTHING",
    )
    .bind(&sub_id)
    .bind(version.at)
    .bind(&version.event_id)
    .bind(id(s, "customer"))
    .bind(text(s, "currency"))
    .bind(text(s, "status"))
    .bind(crate::metrics::mrr::of_subscription(s, version.at))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let standing = if added > 0 {
        s.clone()
    } else {
        let Some(winner) = winner_of_second(conn, &sub_id, s, version).await? else {
            return Ok(());
        };
        sqlx::query(
            "UPDATE subscription_mrr SET event_id = $1, customer_id = $2, currency = $3, status = $4, mrr = $5 \
             WHERE subscription_id = $6 AND at = $7",
        )
        .bind(&winner.event_id)
        .bind(id(&winner.object, "customer"))
        .bind(text(&winner.object, "currency"))
        .bind(text(&winner.object, "status"))
        .bind(crate::metrics::mrr::of_subscription(&winner.object, version.at))
        .bind(&sub_id)
        .bind(version.at)
        .execute(&mut *conn)
        .await?;
        winner.object
    };
    // A new point in the customer's history can change its movements from there on (events
    // arrive in any order): they are rebuilt from its whole history, a few rows.
    if let Some(currency) = text(&standing, "currency") {
        let customer = id(&standing, "customer");
        crate::metrics::movements::rebuild_customer(conn, &currency, customer.as_deref(), &sub_id).await?;
        // Movements before this point are unchanged (they are derived in time order): closed
        // months change only when the new point is in one. An hour of margin covers a
        // transaction that straddles the turn of a month.
        if version.at < crate::metrics::month_start(crate::db::now_unix() + 3600, 0) {
            crate::db::cache::bump_counter(conn, crate::db::cache::MOVEMENTS_CLOSED).await?;
        }
    }
    Ok(())
}

/// When the history already has a snapshot at this second from another write: the version that
/// should stand instead, or `None` when the snapshot there stays.
async fn winner_of_second(
    conn: &mut AnyConnection,
    sub_id: &str,
    s: &Value,
    version: &super::Version,
) -> Result<Option<super::order::Candidate>, ProjectionError> {
    let existing: String =
        sqlx::query_scalar("SELECT event_id FROM subscription_mrr WHERE subscription_id = $1 AND at = $2")
            .bind(sub_id)
            .bind(version.at)
            .fetch_one(&mut *conn)
            .await?;
    let incoming = super::order::Candidate {
        event_id: version.event_id.clone(),
        event_type: None,
        object: s.clone(),
        previous: None,
    };
    if existing == version.event_id && !version.is_fetched() {
        return Ok(None);
    }
    // A fetched object wins its second (a later fetch over an earlier one); events never beat it.
    if version.is_fetched() {
        return Ok(Some(incoming));
    }
    if existing == super::FETCHED {
        return Ok(None);
    }
    let mut known = vec![incoming];
    // The standing snapshot's state, when the row still holds it (it may not be an inbox event).
    let row: Option<String> =
        sqlx::query_scalar("SELECT raw FROM subscriptions WHERE id = $1 AND version_at = $2 AND version_event = $3")
            .bind(sub_id)
            .bind(version.at)
            .bind(&existing)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(object) = row.and_then(|raw| serde_json::from_str::<Value>(&raw).ok()) {
        known.push(super::order::Candidate {
            event_id: existing.clone(),
            event_type: None,
            object,
            previous: None,
        });
    }
    let (winner, _) =
        super::settle::latest_of_second(conn, super::Resource::Subscription, sub_id, version.at, known).await?;
    Ok((winner.event_id != existing && tells_mrr(&winner.object)).then_some(winner))
}

/// An item's price (or, in older API versions, plan) and its recurring terms.
pub fn item_price(item: &Value) -> (&Value, &Value) {
    let price = item
        .get("price")
        .filter(|p| p.is_object())
        .or_else(|| item.get("plan"))
        .unwrap_or(&Value::Null);
    (price, price.get("recurring").unwrap_or(price))
}

/// Replaces the subscription's items with those in this (newer) version of it.
pub async fn replace_items(conn: &mut AnyConnection, s: &Value) -> Result<(), ProjectionError> {
    let Some(sub_id) = text(s, "id") else {
        return Err(ProjectionError::NoId);
    };
    // A payload without an items list (a trimmed object) leaves the items as they were.
    if s.get("items").is_none() {
        return Ok(());
    }
    sqlx::query("DELETE FROM subscription_items WHERE subscription_id = $1")
        .bind(&sub_id)
        .execute(&mut *conn)
        .await?;
    for item in items(s) {
        let Some(item_id) = text(item, "id") else { continue };
        let (price, recurring) = item_price(item);
        sqlx::query(
            "INSERT INTO subscription_items (id, subscription_id, price_id, product_id, quantity, unit_amount, currency, \
             recurring_interval, recurring_interval_count, usage_type, current_period_start, current_period_end, raw) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (id) DO UPDATE SET subscription_id = excluded.subscription_id, price_id = excluded.price_id, \
             product_id = excluded.product_id, quantity = excluded.quantity, unit_amount = excluded.unit_amount, \
             currency = excluded.currency, recurring_interval = excluded.recurring_interval, \
             recurring_interval_count = excluded.recurring_interval_count, usage_type = excluded.usage_type, \
             current_period_start = excluded.current_period_start, current_period_end = excluded.current_period_end, \
             raw = excluded.raw",
        )
        .bind(item_id)
        .bind(&sub_id)
        .bind(id(item, "price").or_else(|| id(item, "plan")))
        .bind(id(price, "product"))
        .bind(int(item, "quantity"))
        .bind(int(price, "unit_amount").or_else(|| int(price, "amount")))
        .bind(text(price, "currency"))
        .bind(text(recurring, "interval"))
        .bind(int(recurring, "interval_count"))
        .bind(text(recurring, "usage_type"))
        .bind(int(item, "current_period_start").or_else(|| int(s, "current_period_start")))
        .bind(int(item, "current_period_end").or_else(|| int(s, "current_period_end")))
        .bind(item.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
