use serde_json::Value;

use super::{flag, id, int, text, Col};

pub fn columns(f: &Value) -> Vec<(&'static str, Col)> {
    vec![
        // The connected account the fee was collected from (`account`, maybe expanded).
        ("connected_account_id", Col::Text(id(f, "account"))),
        ("charge_id", Col::Text(id(f, "charge"))),
        ("amount", Col::Int(int(f, "amount"))),
        ("amount_refunded", Col::Int(int(f, "amount_refunded"))),
        ("currency", Col::Text(text(f, "currency"))),
        ("refunded", Col::Int(flag(f, "refunded"))),
    ]
}
