use serde_json::Value;

use super::{id, int, text, Col};

pub fn columns(r: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("charge_id", Col::Text(id(r, "charge"))),
        ("payment_intent_id", Col::Text(id(r, "payment_intent"))),
        ("status", Col::Text(text(r, "status"))),
        ("amount", Col::Int(int(r, "amount"))),
        ("currency", Col::Text(text(r, "currency"))),
        ("reason", Col::Text(text(r, "reason"))),
        ("failure_reason", Col::Text(text(r, "failure_reason"))),
    ]
}
