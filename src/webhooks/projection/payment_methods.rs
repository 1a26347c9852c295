use serde_json::Value;

use super::read::at;
use super::{id, int, text, Col};

pub fn columns(pm: &Value) -> Vec<(&'static str, Col)> {
    let card = pm.get("card").unwrap_or(&Value::Null);
    vec![
        ("customer_id", Col::Text(id(pm, "customer"))),
        ("type", Col::Text(text(pm, "type"))),
        (
            "card_brand",
            Col::Text(
                text(card, "brand")
                    .or_else(|| at(card, &["display_brand"]).and_then(|v| v.as_str().map(str::to_string))),
            ),
        ),
        ("card_last4", Col::Text(text(card, "last4"))),
        ("card_exp_month", Col::Int(int(card, "exp_month"))),
        ("card_exp_year", Col::Int(int(card, "exp_year"))),
    ]
}
