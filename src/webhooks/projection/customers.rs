use serde_json::Value;

use super::{flag, text, Col};

pub fn columns(c: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("email", Col::Text(text(c, "email").map(|e| e.to_lowercase()))),
        ("name", Col::Text(text(c, "name"))),
        ("currency", Col::Text(text(c, "currency"))),
        ("delinquent", Col::Int(flag(c, "delinquent"))),
    ]
}
