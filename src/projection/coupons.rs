//! Coupons: the terms a discount applies. A deleted coupon still applies to the discounts made
//! from it (Stripe's rule), so its row keeps its terms.

use serde_json::Value;

use super::{flag, int, text, Col};

pub fn columns(c: &Value) -> Vec<(&'static str, Col)> {
    vec![
        ("name", Col::Text(text(c, "name"))),
        ("duration", Col::Text(text(c, "duration"))),
        ("duration_in_months", Col::Int(int(c, "duration_in_months"))),
        ("percent_off", Col::Text(text(c, "percent_off"))),
        ("amount_off", Col::Int(int(c, "amount_off"))),
        ("currency", Col::Text(text(c, "currency"))),
        ("valid", Col::Int(flag(c, "valid"))),
    ]
}
