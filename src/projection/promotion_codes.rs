//! Promotion codes: a customer-facing code for a coupon (`promotion.coupon` in current API
//! versions, `coupon` in older ones).

use serde_json::Value;

use super::read::at;
use super::{flag, id, text, Col};

pub fn coupon_id(p: &Value) -> Option<String> {
    id(p, "coupon").or_else(|| at(p, &["promotion"]).and_then(|s| id(s, "coupon")))
}

pub fn columns(p: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("code", Col::Text(text(p, "code"))),
        ("coupon_id", Col::Text(coupon_id(p))),
        ("active", Col::Int(flag(p, "active"))),
    ]
}
