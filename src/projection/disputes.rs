use serde_json::Value;

use super::read::at;
use super::{id, int, text, Col};

pub fn columns(d: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("charge_id", Col::Text(id(d, "charge"))),
        ("payment_intent_id", Col::Text(id(d, "payment_intent"))),
        ("status", Col::Text(text(d, "status"))),
        ("amount", Col::Int(int(d, "amount"))),
        ("currency", Col::Text(text(d, "currency"))),
        ("reason", Col::Text(text(d, "reason"))),
        (
            "evidence_due_by",
            Col::Int(at(d, &["evidence_details", "due_by"]).and_then(Value::as_i64)),
        ),
    ]
}
