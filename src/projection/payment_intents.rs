use serde_json::Value;

use super::read::at;
use super::{id, int, text, Col};

pub fn columns(pi: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("customer_id", Col::Text(id(pi, "customer"))),
        ("status", Col::Text(text(pi, "status"))),
        ("amount", Col::Int(int(pi, "amount"))),
        ("amount_received", Col::Int(int(pi, "amount_received"))),
        ("currency", Col::Text(text(pi, "currency"))),
        ("latest_charge_id", Col::Text(id(pi, "latest_charge"))),
        ("invoice_id", Col::Text(id(pi, "invoice"))),
        ("canceled_at", Col::Int(int(pi, "canceled_at"))),
        (
            "last_error",
            Col::Text(at(pi, &["last_payment_error"]).and_then(|e| text(e, "message"))),
        ),
    ]
}
