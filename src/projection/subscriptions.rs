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
                crate::domain::resource::Resource::Subscription,
                s,
            )))),
        ),
    ]
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
pub async fn replace_items(conn: &mut AnyConnection, account: &str, s: &Value) -> Result<(), ProjectionError> {
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
             recurring_interval, recurring_interval_count, usage_type, current_period_start, current_period_end, raw, \
             account_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
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
        .bind(account)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
