use serde_json::Value;

use super::read::at;
use super::{flag, id, int, text, Col};

pub fn columns(ch: &Value) -> Vec<(&'static str, Col)> {
    let card = at(ch, &["payment_method_details", "card"]).unwrap_or(&Value::Null);
    vec![
        ("customer_id", Col::Text(id(ch, "customer"))),
        ("payment_intent_id", Col::Text(id(ch, "payment_intent"))),
        ("invoice_id", Col::Text(id(ch, "invoice"))),
        ("status", Col::Text(text(ch, "status"))),
        ("amount", Col::Int(int(ch, "amount"))),
        ("amount_captured", Col::Int(int(ch, "amount_captured"))),
        ("amount_refunded", Col::Int(int(ch, "amount_refunded"))),
        ("currency", Col::Text(text(ch, "currency"))),
        ("paid", Col::Int(flag(ch, "paid"))),
        ("captured", Col::Int(flag(ch, "captured"))),
        ("refunded", Col::Int(flag(ch, "refunded"))),
        ("disputed", Col::Int(flag(ch, "disputed"))),
        ("failure_code", Col::Text(text(ch, "failure_code"))),
        ("failure_message", Col::Text(text(ch, "failure_message"))),
        ("payment_method_id", Col::Text(id(ch, "payment_method"))),
        ("card_brand", Col::Text(text(card, "brand"))),
        ("card_last4", Col::Text(text(card, "last4"))),
    ]
}
