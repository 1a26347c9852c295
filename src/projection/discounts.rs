//! Discounts: a coupon (or promotion code) applied to a customer, a subscription or one of its
//! items, from `start` until `end` (or its removal: `customer.discount.deleted`).

use serde_json::Value;

use super::read::at;
use super::{id, int, Col};

/// The coupon's id: `source.coupon` in current API versions, `coupon` in older ones.
pub fn coupon_id(d: &Value) -> Option<String> {
    id(d, "coupon").or_else(|| at(d, &["source"]).and_then(|s| id(s, "coupon")))
}

pub fn columns(d: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("customer_id", Col::Text(id(d, "customer"))),
        ("subscription_id", Col::Text(id(d, "subscription"))),
        ("subscription_item_id", Col::Text(id(d, "subscription_item"))),
        ("coupon_id", Col::Text(coupon_id(d))),
        ("promotion_code_id", Col::Text(id(d, "promotion_code"))),
        ("start_at", Col::Int(int(d, "start"))),
        ("end_at", Col::Int(int(d, "end"))),
    ]
}
