use serde_json::Value;

use super::{flag, text, Col};

pub fn columns(p: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("name", Col::Text(text(p, "name"))),
        ("active", Col::Int(flag(p, "active"))),
    ]
}
