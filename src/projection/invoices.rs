//! Invoices. Newer API versions moved `subscription` under `parent.subscription_details` and
//! replaced `charge`/`payment_intent` with a `payments` list; both shapes are read.

use serde_json::Value;

use super::read::{at, list};
use super::{id, int, text, Col};

fn first_payment(inv: &Value, key: &str) -> Option<String> {
    list(inv.get("payments"))
        .iter()
        .find_map(|p| p.get("payment").and_then(|pay| id(pay, key)))
}

pub fn columns(inv: &Value) -> Vec<(&'static str, Col)> {
    let subscription = id(inv, "subscription")
        .or_else(|| at(inv, &["parent", "subscription_details"]).and_then(|d| id(d, "subscription")));
    let tax = int(inv, "tax").or_else(|| {
        let amounts = list(inv.get("total_taxes"));
        (!amounts.is_empty()).then(|| amounts.iter().filter_map(|t| int(t, "amount")).sum())
    });
    vec![
        ("customer_id", Col::Text(id(inv, "customer"))),
        ("subscription_id", Col::Text(subscription)),
        ("status", Col::Text(text(inv, "status"))),
        ("currency", Col::Text(text(inv, "currency"))),
        ("amount_due", Col::Int(int(inv, "amount_due"))),
        ("amount_paid", Col::Int(int(inv, "amount_paid"))),
        ("amount_remaining", Col::Int(int(inv, "amount_remaining"))),
        ("total", Col::Int(int(inv, "total"))),
        ("subtotal", Col::Int(int(inv, "subtotal"))),
        ("tax", Col::Int(tax)),
        (
            "charge_id",
            Col::Text(id(inv, "charge").or_else(|| first_payment(inv, "charge"))),
        ),
        (
            "payment_intent_id",
            Col::Text(id(inv, "payment_intent").or_else(|| first_payment(inv, "payment_intent"))),
        ),
        ("billing_reason", Col::Text(text(inv, "billing_reason"))),
        ("period_start", Col::Int(int(inv, "period_start"))),
        ("period_end", Col::Int(int(inv, "period_end"))),
        (
            "paid_at",
            Col::Int(at(inv, &["status_transitions", "paid_at"]).and_then(Value::as_i64)),
        ),
        ("attempt_count", Col::Int(int(inv, "attempt_count"))),
        (
            "lines_incomplete",
            Col::Int(Some(i64::from(super::incomplete_list(
                crate::domain::resource::Resource::Invoice,
                inv,
            )))),
        ),
    ]
}
