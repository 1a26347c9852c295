//! A subscription's monthly recurring revenue, following Stripe Billing's analytics (see
//! docs/metrics.md): active and past_due subscriptions count; each licensed item's unit amount ×
//! quantity, normalised to a month (yearly ÷ 12, weekly × 52 ÷ 12, daily × 365 ÷ 12, each ÷ its
//! interval count); less the discounts that reduce MRR under the configured policy (Stripe's
//! default: coupons whose duration is *forever*), applied as Stripe's invoices apply them: each
//! item's own discounts first, then the subscription's (or, when it has none, the customer's), in
//! the order listed, each on what remains; trials, metered prices and tax excluded. Integer
//! arithmetic; rounded half up to the minor unit once, per subscription.
//!
//! Since API version 2025-03-31 a subscription lists its discounts (and each item its own) by id:
//! the objects come from Tally's `discounts` and `coupons` tables (`Lookup`). What a subscription
//! says about its price and discounts is its `Basis`, kept with every snapshot of its MRR history,
//! so that a discount arriving late, a discount's end and a change of policy recompute the history.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::DiscountPolicy;
use crate::projection::read::{at, int, list, text};

/// Statuses whose subscriptions count in MRR.
pub const COUNTED: [&str; 2] = ["active", "past_due"];

/// What a subscription says about its MRR: whether its status counts, its licensed recurring
/// items, and its own discounts (ids, or objects when Stripe sent them expanded), in order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    #[serde(rename = "c")]
    pub counted: bool,
    #[serde(rename = "i", default)]
    pub items: Vec<ItemBasis>,
    #[serde(rename = "d", default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemBasis {
    /// Unit amount, minor units.
    #[serde(rename = "a")]
    pub unit: i64,
    #[serde(rename = "q")]
    pub quantity: i64,
    /// Intervals a year × 12 ÷ 12: month 12, year 1, week 52, day 365.
    #[serde(rename = "t")]
    pub twelfths: i64,
    #[serde(rename = "n")]
    pub count: i64,
    #[serde(rename = "d", default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Value>,
}

/// Months per interval unit, as a fraction num/12: month 12/12, year 1/12, week 52/12, day 365/12.
fn per_month_twelfths(interval: &str) -> Option<i64> {
    Some(match interval {
        "month" => 12,
        "year" => 1,
        "week" => 52,
        "day" => 365,
        _ => return None,
    })
}

/// A discount reference as Stripe lists it: an id, or the object when expanded (or the legacy
/// single `discount`).
fn discount_refs(field: Option<&Value>) -> Vec<Value> {
    match field {
        Some(Value::Array(a)) => a.iter().filter(|d| d.is_string() || d.is_object()).cloned().collect(),
        Some(d @ Value::Object(_)) => vec![d.clone()],
        _ => Vec::new(),
    }
}

fn ref_id(r: &Value) -> Option<&str> {
    r.as_str().or_else(|| r.get("id").and_then(Value::as_str))
}

impl Basis {
    pub fn of_subscription(s: &Value) -> Self {
        let status = text(s, "status").unwrap_or_default();
        let mut items = Vec::new();
        for item in list(s.get("items")) {
            let (price, recurring) = crate::projection::subscriptions::item_price(item);
            if text(recurring, "usage_type").as_deref() == Some("metered") {
                continue;
            }
            let Some(twelfths) = text(recurring, "interval").as_deref().and_then(per_month_twelfths) else {
                continue;
            };
            items.push(ItemBasis {
                unit: int(price, "unit_amount").or_else(|| int(price, "amount")).unwrap_or(0),
                quantity: int(item, "quantity").unwrap_or(1).max(0),
                twelfths,
                count: int(recurring, "interval_count").unwrap_or(1).max(1),
                discounts: discount_refs(item.get("discounts")),
            });
        }
        // The legacy single `discount` (an object) and the `discounts` list (ids, or objects when
        // expanded); a discount in both counts once, as the object.
        let mut discounts = discount_refs(s.get("discount"));
        for d in discount_refs(s.get("discounts")) {
            let listed = ref_id(&d).is_some_and(|id| discounts.iter().any(|x| ref_id(x) == Some(id)));
            if !listed {
                discounts.push(d);
            }
        }
        Basis {
            counted: COUNTED.contains(&status.as_str()),
            items,
            discounts,
        }
    }

    /// Every discount reference of this basis (its own, then its items').
    pub fn refs(&self) -> impl Iterator<Item = &Value> {
        self.discounts
            .iter()
            .chain(self.items.iter().flat_map(|i| i.discounts.iter()))
    }

    /// The billing interval (of the first item; Stripe bills a subscription's items together).
    fn interval(&self) -> (i64, i64) {
        self.items.first().map(|i| (i.twelfths, i.count)).unwrap_or((12, 1))
    }
}

/// A coupon's terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Terms {
    pub duration: String,
    /// Hundredths of a percent (Stripe allows two decimals).
    pub percent_off: Option<i64>,
    pub amount_off: Option<i64>,
    pub currency: Option<String>,
    /// `currency_options`: the amount off in other currencies.
    pub amount_off_in: HashMap<String, i64>,
}

impl Terms {
    pub fn of_coupon(c: &Value) -> Self {
        let amount_off_in = c
            .get("currency_options")
            .and_then(Value::as_object)
            .map(|o| {
                o.iter()
                    .filter_map(|(cur, v)| int(v, "amount_off").map(|a| (cur.to_ascii_lowercase(), a)))
                    .collect()
            })
            .unwrap_or_default();
        Terms {
            duration: text(c, "duration").unwrap_or_default(),
            percent_off: c
                .get("percent_off")
                .and_then(Value::as_f64)
                .map(|p| (p * 100.0).round() as i64),
            amount_off: int(c, "amount_off"),
            currency: text(c, "currency").map(|c| c.to_ascii_lowercase()),
            amount_off_in,
        }
    }

    /// The amount off in `currency`, when the coupon has one there.
    fn amount_in(&self, currency: &str) -> Option<i64> {
        let own = self
            .amount_off
            .filter(|_| self.currency.as_deref().is_none_or(|c| c == currency));
        own.or_else(|| self.amount_off_in.get(currency).copied())
    }
}

/// A discount: which coupon (its terms when known, or its id to look up), and when it applies.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Discount {
    pub id: Option<String>,
    pub coupon: Option<Terms>,
    pub coupon_id: Option<String>,
    pub promotion_code: Option<String>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// When Tally learnt it was removed (`customer.discount.deleted`).
    pub removed_at: Option<i64>,
}

impl Discount {
    /// A discount object: the coupon sits under `source.coupon` (current API versions) or
    /// `coupon` (older ones), as an id or an expanded object.
    pub fn of_object(d: &Value) -> Self {
        let coupon = d
            .get("coupon")
            .filter(|c| !c.is_null())
            .or_else(|| at(d, &["source", "coupon"]).filter(|c| !c.is_null()));
        let (terms, coupon_id) = match coupon {
            Some(c @ Value::Object(_)) => (Some(Terms::of_coupon(c)), text(c, "id")),
            Some(Value::String(id)) => (None, Some(id.clone())),
            _ => (None, None),
        };
        Discount {
            id: text(d, "id"),
            coupon: terms,
            coupon_id,
            promotion_code: crate::projection::read::id(d, "promotion_code"),
            start: int(d, "start"),
            end: int(d, "end"),
            removed_at: None,
        }
    }
}

/// The discounts and coupons a computation may need, read from the database beforehand.
#[derive(Clone, Debug, Default)]
pub struct Lookup {
    pub discounts: HashMap<String, Discount>,
    pub coupons: HashMap<String, Terms>,
    /// Promotion code → its coupon's id.
    pub promotion_codes: HashMap<String, String>,
    /// The customer's own discounts (no subscription): they apply to a subscription without
    /// discounts of its own.
    pub customer_discounts: Vec<Discount>,
}

impl Lookup {
    /// The discount a reference names, when known.
    fn discount(&self, r: &Value) -> Option<Discount> {
        match r {
            Value::String(id) => self.discounts.get(id).cloned(),
            Value::Object(_) => {
                let mut d = Discount::of_object(r);
                // A stored copy knows when it was removed.
                if let Some(stored) = d.id.as_ref().and_then(|id| self.discounts.get(id)) {
                    d.removed_at = stored.removed_at;
                }
                Some(d)
            }
            _ => None,
        }
    }

    /// A discount's coupon terms: its own, else its coupon's or promotion code's from the tables.
    fn terms<'a>(&'a self, d: &'a Discount) -> Option<&'a Terms> {
        d.coupon.as_ref().or_else(|| {
            let coupon_id = d
                .coupon_id
                .as_ref()
                .or_else(|| d.promotion_code.as_ref().and_then(|p| self.promotion_codes.get(p)))?;
            self.coupons.get(coupon_id)
        })
    }
}

/// When a once coupon stops counting: one billing interval after it started.
fn once_end(start: i64, (twelfths, count): (i64, i64)) -> Option<i64> {
    use chrono::{Months, TimeZone, Utc};
    let d = Utc.timestamp_opt(start, 0).single()?;
    let end = match twelfths {
        12 => d.checked_add_months(Months::new(count as u32)),
        1 => d.checked_add_months(Months::new(12 * count as u32)),
        52 => d.checked_add_signed(chrono::Duration::weeks(count)),
        _ => d.checked_add_signed(chrono::Duration::days(count)),
    };
    end.map(|e| e.timestamp())
}

/// Whether a discount reduces MRR at `t` under `policy`, and its terms.
fn running<'a>(
    lookup: &'a Lookup,
    d: &'a Discount,
    policy: DiscountPolicy,
    interval: (i64, i64),
    t: i64,
) -> Option<&'a Terms> {
    let terms = lookup.terms(d)?;
    if !policy.counts(&terms.duration) {
        return None;
    }
    let started = d.start.is_none_or(|s| s <= t);
    let end = match terms.duration.as_str() {
        "once" => d.end.or_else(|| d.start.and_then(|s| once_end(s, interval))),
        _ => d.end,
    };
    let ended = end.is_some_and(|e| e <= t) || d.removed_at.is_some_and(|r| r <= t);
    (started && !ended).then_some(terms)
}

/// The times at which a discount starts or stops reducing MRR, for the history.
pub fn boundaries(basis: &Basis, lookup: &Lookup) -> Vec<i64> {
    let interval = basis.interval();
    let mut out = Vec::new();
    let mut add = |d: &Discount| {
        let Some(terms) = lookup.terms(d) else { return };
        out.extend(d.start);
        out.extend(d.end);
        out.extend(d.removed_at);
        if terms.duration == "once" && d.end.is_none() {
            out.extend(d.start.and_then(|s| once_end(s, interval)));
        }
    };
    for r in basis.refs() {
        if let Some(d) = lookup.discount(r) {
            add(&d);
        }
    }
    if basis.discounts.is_empty() {
        for d in &lookup.customer_discounts {
            add(d);
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// A non-negative amount a month as a fraction num/den.
#[derive(Clone, Copy)]
struct Frac {
    num: i128,
    den: i128,
}

impl Frac {
    const ZERO: Frac = Frac { num: 0, den: 1 };

    fn add(self, o: Frac) -> Frac {
        Frac {
            num: self.num * o.den + o.num * self.den,
            den: self.den * o.den,
        }
        .reduced()
    }

    /// Less a discount, never below zero.
    fn less(self, terms: &Terms, currency: &str, (twelfths, count): (i64, i64)) -> Frac {
        let out = if let Some(bp) = terms.percent_off {
            Frac {
                num: self.num * (10_000 - i128::from(bp.clamp(0, 10_000))),
                den: self.den * 10_000,
            }
        } else if let Some(off) = terms.amount_in(currency) {
            // An amount off each invoice, normalised by the billing interval like the items.
            let off = Frac {
                num: i128::from(off) * i128::from(twelfths),
                den: 12 * i128::from(count),
            };
            Frac {
                num: self.num * off.den - off.num * self.den,
                den: self.den * off.den,
            }
        } else {
            self
        };
        Frac {
            num: out.num.max(0),
            den: out.den,
        }
        .reduced()
    }

    fn reduced(self) -> Frac {
        let g = gcd(self.num.abs(), self.den);
        Frac {
            num: self.num / g,
            den: self.den / g,
        }
    }

    /// Rounded half up.
    fn round(self) -> i64 {
        ((2 * self.num + self.den) / (2 * self.den)) as i64
    }
}

/// MRR in the subscription's currency's minor units at `t`.
pub fn of_basis(basis: &Basis, currency: &str, lookup: &Lookup, policy: DiscountPolicy, t: i64) -> i64 {
    if !basis.counted {
        return 0;
    }
    let interval = basis.interval();
    let mut total = Frac::ZERO;
    for item in &basis.items {
        let mut amount = Frac {
            num: i128::from(item.unit) * i128::from(item.quantity) * i128::from(item.twelfths),
            den: 12 * i128::from(item.count),
        }
        .reduced();
        for r in &item.discounts {
            if let Some(d) = lookup.discount(r) {
                if let Some(terms) = running(lookup, &d, policy, interval, t) {
                    amount = amount.less(terms, currency, (item.twelfths, item.count));
                }
            }
        }
        total = total.add(amount);
    }
    let own: Vec<Discount> = basis.discounts.iter().filter_map(|r| lookup.discount(r)).collect();
    let applying = if basis.discounts.is_empty() {
        &lookup.customer_discounts
    } else {
        &own
    };
    for d in applying {
        if let Some(terms) = running(lookup, d, policy, interval, t) {
            total = total.less(terms, currency, interval);
        }
    }
    total.round()
}

/// MRR of a subscription object whose discounts, if any, are expanded (or absent), at `t`.
pub fn of_subscription(s: &Value, policy: DiscountPolicy, t: i64) -> i64 {
    let currency = text(s, "currency").unwrap_or_default();
    of_basis(&Basis::of_subscription(s), &currency, &Lookup::default(), policy, t)
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

    const FOREVER: DiscountPolicy = DiscountPolicy {
        repeating: false,
        once: false,
    };

    fn sub(status: &str, items: Value) -> Value {
        json!({"id": "sub_1", "object": "subscription", "status": status, "currency": "usd", "items": {"data": items}})
    }

    fn item(amount: i64, interval: &str, count: i64, quantity: i64) -> Value {
        json!({"quantity": quantity, "price": {"unit_amount": amount, "recurring": {"interval": interval, "interval_count": count, "usage_type": "licensed"}}})
    }

    fn mrr(s: &Value) -> i64 {
        of_subscription(s, FOREVER, 0)
    }

    #[test]
    fn normalises_to_a_month() {
        assert_eq!(mrr(&sub("active", json!([item(2000, "month", 1, 1)]))), 2000);
        assert_eq!(mrr(&sub("active", json!([item(10000, "year", 1, 1)]))), 833);
        assert_eq!(mrr(&sub("active", json!([item(1000, "week", 1, 1)]))), 4333);
        assert_eq!(mrr(&sub("active", json!([item(9000, "month", 3, 1)]))), 3000);
        assert_eq!(mrr(&sub("active", json!([item(100, "day", 1, 1)]))), 3042);
        assert_eq!(mrr(&sub("past_due", json!([item(1000, "month", 1, 3)]))), 3000);
        assert_eq!(mrr(&sub("trialing", json!([item(1000, "month", 1, 3)]))), 0);
        assert_eq!(mrr(&sub("canceled", json!([item(1000, "month", 1, 3)]))), 0);
        // Two yearly items of $100: 16666.67 → rounded once, not per item.
        assert_eq!(
            mrr(&sub(
                "active",
                json!([item(10000, "year", 1, 1), item(10000, "year", 1, 1)])
            )),
            1667
        );
    }

    #[test]
    fn expanded_discounts_and_metered_items() {
        let mut s = sub("active", json!([item(5000, "month", 1, 1)]));
        s["discount"] = json!({"coupon": {"percent_off": 20.0, "duration": "forever"}});
        assert_eq!(mrr(&s), 4000);
        s["discount"] = json!({"coupon": {"percent_off": 20.0, "duration": "once"}});
        assert_eq!(mrr(&s), 5000);
        s["discount"] = json!({"coupon": {"amount_off": 500, "duration": "repeating"}, "end": 100});
        assert_eq!(mrr(&s), 5000, "repeating coupons do not count by default");
        let repeating = DiscountPolicy {
            repeating: true,
            once: false,
        };
        assert_eq!(of_subscription(&s, repeating, 50), 4500);
        assert_eq!(
            of_subscription(&s, repeating, 150),
            5000,
            "an ended discount no longer counts"
        );
        let metered = json!({"price": {"unit_amount": 7, "recurring": {"interval": "month", "usage_type": "metered"}}});
        assert_eq!(mrr(&sub("active", json!([item(1000, "month", 1, 1), metered]))), 1000);
    }

    #[test]
    fn stacked_discounts_apply_in_order_items_first_never_below_zero() {
        let mut lookup = Lookup::default();
        let coupon = |c: Value| Terms::of_coupon(&c);
        lookup
            .coupons
            .insert("TEN".into(), coupon(json!({"percent_off": 10, "duration": "forever"})));
        lookup.coupons.insert(
            "FIVE".into(),
            coupon(json!({"amount_off": 500, "currency": "usd", "duration": "forever"})),
        );
        for (id, c) in [("di_a", "TEN"), ("di_b", "FIVE")] {
            lookup.discounts.insert(
                id.into(),
                Discount::of_object(&json!({"id": id, "source": {"type": "coupon", "coupon": c}, "start": 0})),
            );
        }
        let mut s = sub("active", json!([item(10000, "month", 1, 1)]));
        // 100.00 - 10% = 90.00, then - 5.00 = 85.00; the other order would give 85.50.
        s["discounts"] = json!(["di_a", "di_b"]);
        let b = Basis::of_subscription(&s);
        assert_eq!(of_basis(&b, "usd", &lookup, FOREVER, 10), 8500);
        s["discounts"] = json!(["di_b", "di_a"]);
        let b = Basis::of_subscription(&s);
        assert_eq!(of_basis(&b, "usd", &lookup, FOREVER, 10), 8550);
        // An item's own discount comes before the subscription's: (100 - 5) - 10% = 85.50.
        let mut s = sub("active", json!([item(10000, "month", 1, 1)]));
        s["items"]["data"][0]["discounts"] = json!(["di_b"]);
        s["discounts"] = json!(["di_a"]);
        assert_eq!(of_basis(&Basis::of_subscription(&s), "usd", &lookup, FOREVER, 10), 8550);
        // An amount off larger than the price leaves zero, not a negative MRR.
        let s = sub("active", json!([item(300, "month", 1, 1)]));
        let mut b = Basis::of_subscription(&s);
        b.discounts = vec![json!("di_b")];
        assert_eq!(of_basis(&b, "usd", &lookup, FOREVER, 10), 0);
        // An amount off in another currency does not apply; its currency option does.
        assert_eq!(
            of_basis(
                &Basis {
                    counted: true,
                    items: vec![ItemBasis {
                        unit: 1000,
                        quantity: 1,
                        twelfths: 12,
                        count: 1,
                        discounts: vec![]
                    }],
                    discounts: vec![json!("di_b")]
                },
                "eur",
                &lookup,
                FOREVER,
                10
            ),
            1000
        );
        lookup.coupons.insert(
            "FIVE".into(),
            coupon(json!({"amount_off": 500, "currency": "usd", "currency_options": {"eur": {"amount_off": 400}}, "duration": "forever"})),
        );
        assert_eq!(
            of_basis(
                &Basis {
                    counted: true,
                    items: vec![ItemBasis {
                        unit: 1000,
                        quantity: 1,
                        twelfths: 12,
                        count: 1,
                        discounts: vec![]
                    }],
                    discounts: vec![json!("di_b")]
                },
                "eur",
                &lookup,
                FOREVER,
                10
            ),
            600
        );
    }

    #[test]
    fn a_once_coupon_counts_for_one_billing_interval_when_chosen() {
        let once = DiscountPolicy {
            repeating: false,
            once: true,
        };
        let mut s = sub("active", json!([item(5000, "month", 1, 1)]));
        // 2026-01-15 00:00 UTC; one month later is 2026-02-15.
        s["discount"] = json!({"start": 1768435200, "coupon": {"percent_off": 50.0, "duration": "once"}});
        assert_eq!(of_subscription(&s, FOREVER, 1768435200 + 10), 5000);
        assert_eq!(of_subscription(&s, once, 1768435200 + 10), 2500);
        assert_eq!(of_subscription(&s, once, 1771113600 - 1), 2500);
        assert_eq!(of_subscription(&s, once, 1771113600), 5000);
        let b = Basis::of_subscription(&s);
        assert_eq!(boundaries(&b, &Lookup::default()), vec![1768435200, 1771113600]);
    }

    #[test]
    fn policies_parse() {
        assert_eq!(DiscountPolicy::parse("forever").unwrap(), FOREVER);
        assert_eq!(DiscountPolicy::parse("").unwrap(), FOREVER);
        assert_eq!(
            DiscountPolicy::parse("forever, repeating").unwrap().as_str(),
            "forever,repeating"
        );
        assert_eq!(DiscountPolicy::parse("once,forever").unwrap().as_str(), "forever,once");
        assert_eq!(DiscountPolicy::parse("all").unwrap().as_str(), "forever,repeating,once");
        assert!(DiscountPolicy::parse("sometimes").is_err());
    }
}
