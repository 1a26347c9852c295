use serde_json::Value;

use super::{flag, text, Col};

pub fn columns(c: &Value) -> Vec<(&'static str, Col)> {
    vec![
        // As Stripe has it (case included); searches compare case-insensitively.
        ("email", Col::Text(text(c, "email"))),
        ("name", Col::Text(text(c, "name"))),
        ("currency", Col::Text(text(c, "currency"))),
        ("delinquent", Col::Int(flag(c, "delinquent"))),
    ]
}
