use serde_json::Value;

use super::read::at;
use super::{id, int, text, Col};

pub fn columns(cs: &Value) -> Vec<(&'static str, Col)> {
    let email = text(cs, "customer_email").or_else(|| at(cs, &["customer_details"]).and_then(|d| text(d, "email")));
    vec![
        ("customer_id", Col::Text(id(cs, "customer"))),
        ("customer_email", Col::Text(email.map(|e| e.to_lowercase()))),
        ("status", Col::Text(text(cs, "status"))),
        ("payment_status", Col::Text(text(cs, "payment_status"))),
        ("mode", Col::Text(text(cs, "mode"))),
        ("subscription_id", Col::Text(id(cs, "subscription"))),
        ("payment_intent_id", Col::Text(id(cs, "payment_intent"))),
        ("invoice_id", Col::Text(id(cs, "invoice"))),
        ("amount_total", Col::Int(int(cs, "amount_total"))),
        ("currency", Col::Text(text(cs, "currency"))),
        ("expires_at", Col::Int(int(cs, "expires_at"))),
    ]
}
