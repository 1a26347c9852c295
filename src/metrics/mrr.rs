//! A subscription's monthly recurring revenue, following Stripe Billing's analytics (see
//! docs/metrics.md): active and past_due subscriptions count; each licensed item's unit amount ×
//! quantity, normalised to a month (yearly ÷ 12, weekly × 52 ÷ 12, daily × 365 ÷ 12, each ÷ its
//! interval count); less recurring (forever or repeating, still running) discounts; trials,
//! metered prices and tax excluded. Integer arithmetic; rounded half up to the minor unit once,
//! per subscription.

use serde_json::Value;

use crate::webhooks::projection::read::{at, int, list, text};

/// Statuses whose subscriptions count in MRR.
pub const COUNTED: [&str; 2] = ["active", "past_due"];

/// Months per interval unit, as a fraction num/12: month 12/12, year 1/12, week 52/12, day 365/12.
fn per_month_twelfths(interval: &str) -> Option<i128> {
    Some(match interval {
        "month" => 12,
        "year" => 1,
        "week" => 52,
        "day" => 365,
        _ => return None,
    })
}

/// Rounds num/den (den > 0) half up.
fn round_div(num: i128, den: i128) -> i128 {
    if num >= 0 {
        (2 * num + den) / (2 * den)
    } else {
        -((2 * -num + den) / (2 * den))
    }
}

/// A discount's coupon when it still reduces future invoices at `now`.
fn recurring_coupon(discount: &Value, now: i64) -> Option<&Value> {
    let coupon = discount
        .get("coupon")
        .filter(|c| c.is_object())
        .or_else(|| at(discount, &["source", "coupon"]).filter(|c| c.is_object()))?;
    let duration = text(coupon, "duration").unwrap_or_default();
    let running = int(discount, "end").is_none_or(|end| end > now);
    (matches!(duration.as_str(), "forever" | "repeating") && running).then_some(coupon)
}

/// MRR in the subscription's currency's minor units, at `now` (for discount end dates).
pub fn of_subscription(s: &Value, now: i64) -> i64 {
    let status = text(s, "status").unwrap_or_default();
    if !COUNTED.contains(&status.as_str()) {
        return 0;
    }
    // Sum in 1/12-of-a-minor-unit per month over a common denominator (12 × interval counts).
    let mut num: i128 = 0;
    let mut den: i128 = 1;
    let mut first_interval: Option<(i128, i128)> = None;
    for item in list(s.get("items")) {
        let (price, recurring) = crate::webhooks::projection::subscriptions::item_price(item);
        if text(recurring, "usage_type").as_deref() == Some("metered") {
            continue;
        }
        let Some(twelfths) = text(recurring, "interval").as_deref().and_then(per_month_twelfths) else {
            continue;
        };
        let count = int(recurring, "interval_count").unwrap_or(1).max(1) as i128;
        let unit = int(price, "unit_amount").or_else(|| int(price, "amount")).unwrap_or(0) as i128;
        let quantity = int(item, "quantity").unwrap_or(1).max(0) as i128;
        // unit × quantity × twelfths / (12 × count)
        let item_num = unit * quantity * twelfths;
        let item_den = 12 * count;
        first_interval.get_or_insert((twelfths, count));
        num = num * item_den + item_num * den;
        den *= item_den;
        // Keep the fraction small.
        let g = gcd(num.abs(), den);
        if g > 1 {
            num /= g;
            den /= g;
        }
    }
    // Recurring discounts: the legacy single `discount` and the `discounts` list, when expanded.
    let mut discounts: Vec<&Value> = Vec::new();
    if let Some(d) = s.get("discount").filter(|d| d.is_object()) {
        discounts.push(d);
    }
    for d in s.get("discounts").and_then(Value::as_array).into_iter().flatten() {
        if d.is_object()
            && !discounts
                .iter()
                .any(|x| x.get("id") == d.get("id") && d.get("id").is_some())
        {
            discounts.push(d);
        }
    }
    for discount in discounts {
        let Some(coupon) = recurring_coupon(discount, now) else {
            continue;
        };
        if let Some(pct) = coupon.get("percent_off").and_then(Value::as_f64) {
            // Percentages have at most two decimals at Stripe: work in hundredths of a percent.
            let hundredths = (pct * 100.0).round() as i128;
            num *= 10_000 - hundredths.clamp(0, 10_000);
            den *= 10_000;
        } else if let Some(off) = int(coupon, "amount_off") {
            // An amount off each invoice, normalised by the billing interval like the items.
            let (twelfths, count) = first_interval.unwrap_or((12, 1));
            let off_num = off as i128 * twelfths;
            let off_den = 12 * count;
            num = num * off_den - off_num * den;
            den *= off_den;
        }
        let g = gcd(num.abs(), den);
        if g > 1 {
            num /= g;
            den /= g;
        }
    }
    round_div(num, den).max(0) as i64
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sub(status: &str, items: Value) -> Value {
        json!({"id": "sub_1", "object": "subscription", "status": status, "currency": "usd", "items": {"data": items}})
    }

    fn item(amount: i64, interval: &str, count: i64, quantity: i64) -> Value {
        json!({"quantity": quantity, "price": {"unit_amount": amount, "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"}}})
    }

    #[test]
    fn normalises_to_a_month() {
        assert_eq!(
            of_subscription(&sub("active", json!([item(2000, "month", 1, 1)])), 0),
            2000
        );
        assert_eq!(
            of_subscription(&sub("active", json!([item(10000, "year", 1, 1)])), 0),
            833
        );
        assert_eq!(
            of_subscription(&sub("active", json!([item(1000, "week", 1, 1)])), 0),
            4333
        );
        assert_eq!(
            of_subscription(&sub("active", json!([item(9000, "month", 3, 1)])), 0),
            3000
        );
        assert_eq!(
            of_subscription(&sub("active", json!([item(100, "day", 1, 1)])), 0),
            3042
        );
        assert_eq!(
            of_subscription(&sub("past_due", json!([item(1000, "month", 1, 3)])), 0),
            3000
        );
        assert_eq!(
            of_subscription(&sub("trialing", json!([item(1000, "month", 1, 3)])), 0),
            0
        );
        assert_eq!(
            of_subscription(&sub("canceled", json!([item(1000, "month", 1, 3)])), 0),
            0
        );
        // Two yearly items of $100: 16666.67 → rounded once, not per item.
        assert_eq!(
            of_subscription(
                &sub("active", json!([item(10000, "year", 1, 1), item(10000, "year", 1, 1)])),
                0
            ),
            1667
        );
    }

    #[test]
    fn discounts_and_metered_items() {
        let mut s = sub("active", json!([item(5000, "month", 1, 1)]));
        s["discount"] = json!({"coupon": {"percent_off": 20.0, "duration": "forever"}});
        assert_eq!(of_subscription(&s, 0), 4000);
        s["discount"] = json!({"coupon": {"percent_off": 20.0, "duration": "once"}});
        assert_eq!(of_subscription(&s, 0), 5000);
        s["discount"] = json!({"coupon": {"amount_off": 500, "duration": "repeating"}, "end": 100});
        assert_eq!(of_subscription(&s, 50), 4500);
        assert_eq!(
            of_subscription(&s, 150),
            5000,
            "an ended repeating discount no longer counts"
        );
        let metered = json!({"price": {"unit_amount": 7, "recurring": {"interval": "month", "usage_type": "metered"}}});
        assert_eq!(
            of_subscription(&sub("active", json!([item(1000, "month", 1, 1), metered])), 0),
            1000
        );
    }
}
