use serde_json::Value;

use super::{id, int, text, Col};

pub fn columns(pm: &Value) -> Vec<(&'static str, Col)> {
    let card = pm.get("card").unwrap_or(&Value::Null);
    vec![
        ("customer_id", Col::Text(id(pm, "customer"))),
        ("type", Col::Text(text(pm, "type"))),
        (
            "card_brand",
            Col::Text(text(card, "brand").or_else(|| text(card, "display_brand"))),
        ),
        ("card_last4", Col::Text(text(card, "last4"))),
        ("card_exp_month", Col::Int(int(card, "exp_month"))),
        ("card_exp_year", Col::Int(int(card, "exp_year"))),
    ]
}
