use serde_json::Value;

use super::{flag, id, int, text, Col};

pub fn columns(p: &Value) -> Vec<(&'static str, Col)> {
    let recurring = p.get("recurring").unwrap_or(&Value::Null);
    vec![
        ("product_id", Col::Text(id(p, "product"))),
        ("active", Col::Int(flag(p, "active"))),
        ("currency", Col::Text(text(p, "currency"))),
        (
            "unit_amount",
            Col::Int(int(p, "unit_amount").or_else(|| int(p, "unit_amount_decimal"))),
        ),
        ("type", Col::Text(text(p, "type"))),
        ("recurring_interval", Col::Text(text(recurring, "interval"))),
        ("recurring_interval_count", Col::Int(int(recurring, "interval_count"))),
        ("usage_type", Col::Text(text(recurring, "usage_type"))),
        ("nickname", Col::Text(text(p, "nickname"))),
    ]
}
