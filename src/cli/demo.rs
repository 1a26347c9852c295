//! Demo data: a deterministic, realistic SaaS business over 24 months — monthly and yearly plans
//! in USD and JPY, trials, upgrades, downgrades, cancellations (now and at period end),
//! reactivations, failed payments, refunds and disputes — produced as Stripe-shaped events, stored
//! in the inbox and applied through the webhook projection, so the demo runs the real path.

use serde_json::{json, Value};

use crate::db::{Db, DbError};
use crate::webhooks::inbox::{IncomingEvent, Source};

const DAY: i64 = 86_400;

/// A small, fast, deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

struct Tier {
    product: &'static str,
    name: &'static str,
    /// (USD monthly, USD yearly, JPY monthly, JPY yearly), minor units.
    prices: [i64; 4],
    per_seat: bool,
}

/// Plans: three tiers, and an add-on some customers take beside their plan.
const TIERS: [Tier; 4] = [
    Tier {
        product: "prod_demo_starter",
        name: "Starter",
        prices: [1900, 19000, 2000, 20000],
        per_seat: false,
    },
    Tier {
        product: "prod_demo_pro",
        name: "Pro",
        prices: [4900, 49000, 5000, 50000],
        per_seat: false,
    },
    Tier {
        product: "prod_demo_team",
        name: "Team",
        prices: [2900, 29000, 3000, 30000],
        per_seat: true,
    },
    Tier {
        product: "prod_demo_support",
        name: "Support",
        prices: [1500, 15000, 1500, 15000],
        per_seat: false,
    },
];
const ADDON: usize = 3;

const FIRST: [&str; 24] = [
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Frances",
    "Ken",
    "Margaret",
    "Dennis",
    "Radia",
    "Linus",
    "Hedy",
    "Tim",
    "Katherine",
    "John",
    "Sophie",
    "Yukihiro",
    "Hiro",
    "Aiko",
    "Ren",
    "Yuki",
    "Mei",
    "Kenji",
];
const LAST: [&str; 20] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Allen",
    "Thompson",
    "Hamilton",
    "Ritchie",
    "Perlman",
    "Torvalds",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
    "Wilson",
    "Matsumoto",
    "Tanaka",
    "Sato",
];

fn price_id(tier: usize, yearly: bool, jpy: bool) -> String {
    format!(
        "price_demo_{}_{}_{}",
        TIERS[tier].name.to_lowercase(),
        if yearly { "year" } else { "month" },
        if jpy { "jpy" } else { "usd" }
    )
}

fn price_object(tier: usize, yearly: bool, jpy: bool, created: i64) -> Value {
    let t = &TIERS[tier];
    let amount = t.prices[usize::from(yearly) + 2 * usize::from(jpy)];
    json!({
        "id": price_id(tier, yearly, jpy), "object": "price", "active": true, "product": t.product,
        "currency": if jpy { "jpy" } else { "usd" }, "unit_amount": amount, "type": "recurring", "livemode": false,
        "nickname": format!("{} {}", t.name, if yearly { "yearly" } else { "monthly" }), "created": created,
        "recurring": {"interval": if yearly { "year" } else { "month" }, "interval_count": 1, "usage_type": "licensed"}
    })
}

/// One subscription's state, turned into Stripe's JSON on demand.
#[derive(Clone)]
struct Sub {
    id: String,
    customer: String,
    tier: usize,
    yearly: bool,
    jpy: bool,
    quantity: i64,
    coupon: bool,
    status: &'static str,
    cancel_at_period_end: bool,
    created: i64,
    trial_end: Option<i64>,
    period_start: i64,
    period_end: i64,
    ended_at: Option<i64>,
}

impl Sub {
    fn amount(&self) -> i64 {
        let unit = TIERS[self.tier].prices[usize::from(self.yearly) + 2 * usize::from(self.jpy)];
        let gross = unit * self.quantity;
        if self.coupon {
            gross * 80 / 100
        } else {
            gross
        }
    }

    /// The launch coupon's discount, as `customer.discount.created` carries it (current API
    /// versions: the coupon under `source`, by id).
    fn discount(&self) -> Value {
        json!({"id": format!("di_{}", &self.id[4..]), "object": "discount", "customer": self.customer,
               "subscription": self.id, "subscription_item": null, "invoice": null, "invoice_item": null,
               "checkout_session": null, "promotion_code": null, "start": self.created, "end": null,
               "source": {"type": "coupon", "coupon": LAUNCH_COUPON}})
    }

    fn json(&self) -> Value {
        // Current API versions list discounts by id.
        let discounts = if self.coupon {
            json!([format!("di_{}", &self.id[4..])])
        } else {
            json!([])
        };
        json!({
            "id": self.id, "object": "subscription", "customer": self.customer, "status": self.status,
            "currency": if self.jpy { "jpy" } else { "usd" }, "created": self.created, "start_date": self.created,
            "cancel_at_period_end": self.cancel_at_period_end, "livemode": false,
            "cancel_at": if self.cancel_at_period_end { json!(self.period_end) } else { Value::Null },
            "canceled_at": self.ended_at, "ended_at": self.ended_at,
            "trial_start": self.trial_end.map(|_| self.created), "trial_end": self.trial_end,
            "discounts": discounts,
            "items": {"object": "list", "has_more": false, "data": [{
                "id": format!("si_{}", &self.id[4..]), "object": "subscription_item", "quantity": self.quantity,
                "current_period_start": self.period_start, "current_period_end": self.period_end,
                "price": price_object(self.tier, self.yearly, self.jpy, 0)
            }]}
        })
    }
}

/// Adds calendar months (keeping the day where it exists).
fn add_months(t: i64, months: i32) -> i64 {
    use chrono::{Months, TimeZone, Utc};
    let d = Utc.timestamp_opt(t, 0).single().unwrap_or_default();
    let shifted = if months >= 0 {
        d.checked_add_months(Months::new(months.unsigned_abs()))
    } else {
        d.checked_sub_months(Months::new(months.unsigned_abs()))
    };
    shifted.unwrap_or(d).timestamp()
}

/// How big the business is beyond its customers: the chance that a customer also takes the
/// add-on (a second subscription), and the mean number of one-off payments (credit packs) per
/// month a customer's plan is active.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Profile {
    pub addons: f64,
    pub topups: f64,
}

/// What a generator made.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    subscriptions: usize,
    charges: usize,
}

struct Generator {
    rng: Rng,
    /// Draws for top-ups only, so their rate does not change the rest of a customer's story.
    topup_rng: Rng,
    profile: Profile,
    now: i64,
    events: Vec<(i64, &'static str, Value)>,
    /// The customer being generated and its object counter (ids are unique per customer).
    customer_n: usize,
    seq: u64,
    counts: Counts,
}

impl Generator {
    fn new(profile: Profile, now: i64) -> Self {
        Generator {
            rng: Rng(0),
            topup_rng: Rng(0),
            profile,
            now,
            events: Vec::new(),
            customer_n: 0,
            seq: 0,
            counts: Counts::default(),
        }
    }

    fn emit(&mut self, at: i64, event_type: &'static str, object: Value) {
        if at <= self.now {
            if event_type == "charge.succeeded" || event_type == "charge.failed" {
                self.counts.charges += 1;
            } else if event_type == "customer.subscription.created" {
                self.counts.subscriptions += 1;
            }
            self.events.push((at, event_type, object));
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}_demo{:06}{:04}", self.customer_n, self.seq)
    }

    /// Some months, one-off payments for credit packs (not recurring: revenue, not MRR).
    fn topups(&mut self, customer: &str, month_start: i64, jpy: bool) {
        let mean = self.profile.topups;
        if mean <= 0.0 {
            return;
        }
        let n = mean.floor() as u64 + u64::from(self.topup_rng.chance(mean.fract()));
        for _ in 0..n {
            let at = month_start + self.topup_rng.below(28 * DAY as u64) as i64;
            let packs = 1 + self.topup_rng.below(5) as i64;
            let (amount, currency) = if jpy {
                (1000 * packs, "jpy")
            } else {
                (1000 * packs, "usd")
            };
            let failed = self.topup_rng.chance(0.02);
            let id = self.id("ch");
            let brand = ["visa", "mastercard", "amex"][self.topup_rng.below(3) as usize];
            let charge = json!({
                "id": id, "object": "charge", "amount": amount, "amount_captured": if failed { 0 } else { amount },
                "amount_refunded": 0, "currency": currency, "status": if failed { "failed" } else { "succeeded" },
                "paid": !failed, "captured": !failed, "refunded": false, "customer": customer, "created": at,
                "livemode": false, "description": format!("{packs} credit pack{}", if packs > 1 { "s" } else { "" }),
                "failure_code": if failed { json!("card_declined") } else { Value::Null },
                "failure_message": if failed { json!("Your card was declined.") } else { Value::Null },
                "payment_method_details": {"type": "card", "card": {"brand": brand, "last4": format!("{:04}", 1000 + self.topup_rng.below(9000))}},
                "refunds": {"object": "list", "has_more": false, "data": []}
            });
            self.emit(at, if failed { "charge.failed" } else { "charge.succeeded" }, charge);
        }
    }

    /// One billing period's invoice and charge: paid, or failed and then recovered or not.
    /// Returns false when the failure ended the subscription.
    fn bill(&mut self, sub: &mut Sub) -> bool {
        let at = sub.period_start + 600;
        let amount = sub.amount();
        let currency = if sub.jpy { "jpy" } else { "usd" };
        let invoice_id = self.id("in");
        let charge_id = self.id("ch");
        let brand = ["visa", "mastercard", "amex"][self.rng.below(3) as usize];
        let last4 = format!("{:04}", 1000 + self.rng.below(9000));
        let charge = |status: &str, created: i64, failure: bool| {
            json!({
                "id": if failure { format!("{charge_id}f") } else { charge_id.clone() }, "object": "charge",
                "amount": amount, "amount_captured": if failure { 0 } else { amount }, "amount_refunded": 0,
                "currency": currency, "status": status, "paid": !failure, "captured": !failure, "refunded": false,
                "customer": sub.customer, "invoice": invoice_id, "created": created, "livemode": false,
                "failure_code": if failure { json!("card_declined") } else { Value::Null },
                "failure_message": if failure { json!("Your card was declined.") } else { Value::Null },
                "payment_method_details": {"type": "card", "card": {"brand": brand, "last4": last4}},
                "refunds": {"object": "list", "has_more": false, "data": []}
            })
        };
        let invoice = |status: &str, paid: i64, attempts: i64| {
            json!({
                "id": invoice_id, "object": "invoice", "customer": sub.customer, "subscription": sub.id, "status": status,
                "currency": currency, "amount_due": amount, "amount_paid": paid, "amount_remaining": amount - paid,
                "total": amount, "subtotal": amount, "attempt_count": attempts, "created": sub.period_start,
                "billing_reason": "subscription_cycle", "period_start": sub.period_start, "period_end": sub.period_end,
                "charge": charge_id, "livemode": false
            })
        };
        if self.rng.chance(0.035) {
            self.emit(at, "charge.failed", charge("failed", at, true));
            self.emit(at + 1, "invoice.payment_failed", invoice("open", 0, 1));
            sub.status = "past_due";
            self.emit(at + 2, "customer.subscription.updated", sub.json());
            if self.rng.chance(0.7) {
                let later = at + (2 + self.rng.below(5) as i64) * DAY;
                self.emit(later, "charge.succeeded", charge("succeeded", later, false));
                self.emit(later + 1, "invoice.paid", invoice("paid", amount, 2));
                sub.status = "active";
                self.emit(later + 2, "customer.subscription.updated", sub.json());
                self.after_payment(sub, &charge_id, amount, currency, later);
                true
            } else {
                let end = at + 14 * DAY;
                // Retries exhausted: the invoice is voided and the subscription canceled.
                self.emit(end - 1, "invoice.voided", invoice("void", 0, 4));
                sub.status = "canceled";
                sub.ended_at = Some(end);
                self.emit(end, "customer.subscription.deleted", sub.json());
                false
            }
        } else {
            self.emit(at, "charge.succeeded", charge("succeeded", at, false));
            self.emit(at + 1, "invoice.paid", invoice("paid", amount, 1));
            self.after_payment(sub, &charge_id, amount, currency, at);
            true
        }
    }

    /// Sometimes a refund (full or partial), rarely a dispute.
    fn after_payment(&mut self, sub: &Sub, charge_id: &str, amount: i64, currency: &str, paid_at: i64) {
        if self.rng.chance(0.02) {
            let at = paid_at + (1 + self.rng.below(10) as i64) * DAY;
            let refunded = if self.rng.chance(0.5) { amount } else { amount / 2 };
            let refund = json!({"id": self.id("re"), "object": "refund", "charge": charge_id, "amount": refunded,
                "currency": currency, "status": "succeeded", "reason": "requested_by_customer", "created": at});
            self.emit(at, "refund.created", refund.clone());
            self.emit(at + 1, "charge.refunded", json!({
                "id": charge_id, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": refunded,
                "currency": currency, "status": "succeeded", "paid": true, "captured": true, "refunded": refunded == amount,
                "customer": sub.customer, "created": paid_at, "livemode": false,
                "refunds": {"object": "list", "has_more": false, "data": [refund]}
            }));
        } else if self.rng.chance(0.004) {
            let at = paid_at + (5 + self.rng.below(20) as i64) * DAY;
            let id = self.id("dp");
            let reason = if self.rng.chance(0.6) {
                "fraudulent"
            } else {
                "product_not_received"
            };
            let mut dispute = json!({"id": id, "object": "dispute", "charge": charge_id, "amount": amount, "currency": currency,
                "status": "needs_response", "reason": reason, "created": at, "livemode": false,
                "evidence_details": {"due_by": at + 7 * DAY, "has_evidence": false}});
            self.emit(at, "charge.dispute.created", dispute.clone());
            let closed = at + 30 * DAY;
            dispute["status"] = json!(if self.rng.chance(0.5) { "lost" } else { "won" });
            self.emit(closed, "charge.dispute.closed", dispute);
        }
    }

    /// A subscription from `start` until it ends (or now). Returns when it ended, if it did.
    fn subscription(&mut self, customer: &str, start: i64, jpy: bool, returning: bool, addon: bool) -> Option<i64> {
        let plan_tier = [0, 0, 0, 1, 1, 2][self.rng.below(6) as usize];
        let tier = if addon { ADDON } else { plan_tier };
        let yearly = self.rng.chance(0.22);
        let quantity = if TIERS[tier].per_seat {
            2 + self.rng.below(8) as i64
        } else {
            1
        };
        let trial = !returning && self.rng.chance(0.3);
        let id = self.id("sub");
        let mut sub = Sub {
            id,
            customer: customer.to_string(),
            tier,
            yearly,
            jpy,
            quantity,
            coupon: self.rng.chance(0.1),
            status: if trial { "trialing" } else { "active" },
            cancel_at_period_end: false,
            created: start,
            trial_end: trial.then_some(start + 14 * DAY),
            period_start: start,
            period_end: if trial {
                start + 14 * DAY
            } else {
                add_months(start, if yearly { 12 } else { 1 })
            },
            ended_at: None,
        };
        if sub.coupon {
            self.emit(start, "customer.discount.created", sub.discount());
        }
        self.emit(start, "customer.subscription.created", sub.json());
        if let Some(trial_end) = sub.trial_end {
            if !self.rng.chance(0.68) {
                sub.status = "canceled";
                sub.ended_at = Some(trial_end);
                self.emit(trial_end, "customer.subscription.deleted", sub.json());
                return Some(trial_end);
            }
            sub.status = "active";
            sub.period_start = trial_end;
            sub.period_end = add_months(trial_end, if yearly { 12 } else { 1 });
            self.emit(trial_end, "customer.subscription.updated", sub.json());
        }
        loop {
            if sub.period_start > self.now {
                return None;
            }
            if !self.bill(&mut sub) {
                return sub.ended_at;
            }
            // Month by month within the period: churn, upgrade, downgrade.
            let months = if sub.yearly { 12 } else { 1 };
            for m in 0..months {
                let month_start = add_months(sub.period_start, m);
                if month_start > self.now {
                    return None;
                }
                if !addon {
                    self.topups(customer, month_start, jpy);
                }
                let when = month_start + (1 + self.rng.below(26) as i64) * DAY;
                let roll = self.rng.unit();
                if roll < 0.024 {
                    if self.rng.chance(0.5) {
                        sub.cancel_at_period_end = true;
                        self.emit(when, "customer.subscription.updated", sub.json());
                        sub.status = "canceled";
                        sub.ended_at = Some(sub.period_end);
                        self.emit(sub.period_end, "customer.subscription.deleted", sub.json());
                        return Some(sub.period_end);
                    }
                    sub.status = "canceled";
                    sub.ended_at = Some(when);
                    self.emit(when, "customer.subscription.deleted", sub.json());
                    return Some(when);
                } else if roll < 0.054 {
                    if TIERS[sub.tier].per_seat {
                        sub.quantity += 1 + self.rng.below(3) as i64;
                    } else if sub.tier < 2 {
                        sub.tier += 1;
                        if sub.tier == 2 {
                            sub.quantity = 2;
                        }
                    } else {
                        continue;
                    }
                    self.emit(when, "customer.subscription.updated", sub.json());
                } else if roll < 0.067 {
                    if TIERS[sub.tier].per_seat && sub.quantity > 2 {
                        sub.quantity -= 1;
                    } else if sub.tier == 1 {
                        sub.tier = 0;
                    } else {
                        continue;
                    }
                    self.emit(when, "customer.subscription.updated", sub.json());
                }
            }
            sub.period_start = sub.period_end;
            sub.period_end = add_months(sub.period_start, if sub.yearly { 12 } else { 1 });
        }
    }

    /// Customer `n` of `customers`, arriving between `start` and now.
    fn customer(&mut self, n: usize, customers: usize, start: i64) {
        // Each customer's story from its own seed: the same whatever else is generated.
        let seed = 0x5EED_7A11_2026u64 ^ (n as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
        self.rng = Rng(seed);
        self.topup_rng = Rng(!seed);
        self.customer_n = n;
        self.seq = 0;
        // Arrivals grow over the two years (more customers later, as a growing business has).
        let u = (n as f64 + self.rng.unit()) / customers.max(1) as f64;
        let arrival = (start + ((self.now - start) as f64 * u.sqrt()) as i64).min(self.now - 3600);
        let jpy = self.rng.chance(0.15);
        let (first, last) = (
            FIRST[self.rng.below(FIRST.len() as u64) as usize],
            LAST[self.rng.below(LAST.len() as u64) as usize],
        );
        let id = format!("cus_demo{n:05}");
        let email = format!(
            "{}.{}{n}@example.com",
            first.to_lowercase(),
            last.to_lowercase().replace('-', "")
        );
        self.emit(
            arrival,
            "customer.created",
            json!({
                "id": id, "object": "customer", "email": email, "name": format!("{first} {last}"),
                "currency": if jpy { "jpy" } else { "usd" }, "created": arrival, "livemode": false, "delinquent": false
            }),
        );
        self.lifecycle(&id, arrival, jpy, false);
        // Drawn whatever the rate, so the rate changes nothing else.
        let takes_addon = self.rng.chance(self.profile.addons);
        let addon_start = arrival + self.rng.below(30 * DAY as u64) as i64;
        if takes_addon {
            self.lifecycle(&id, addon_start, jpy, true);
        }
    }

    /// A plan (or the add-on) from `start`: a churned customer sometimes comes back, up to twice.
    fn lifecycle(&mut self, customer: &str, mut start: i64, jpy: bool, addon: bool) {
        let mut returning = addon;
        for _ in 0..3 {
            let Some(ended) = self.subscription(customer, start, jpy, returning, addon) else {
                return;
            };
            if !self.rng.chance(0.2) {
                return;
            }
            start = ended + (30 + self.rng.below(100) as i64) * DAY;
            returning = true;
        }
    }
}

/// Customers generated (and stored, and applied) at a time while seeding.
const CHUNK: usize = 2000;

/// Products and prices, a month before the history starts.
/// The coupon some subscriptions start with: 20% off, forever.
const LAUNCH_COUPON: &str = "LAUNCH20";

fn catalogue(g: &mut Generator, start: i64) {
    let catalogue_at = start - 30 * DAY;
    g.emit(
        catalogue_at,
        "coupon.created",
        json!({
            "id": LAUNCH_COUPON, "object": "coupon", "name": "Launch: 20% off", "percent_off": 20.0,
            "amount_off": null, "currency": null, "duration": "forever", "duration_in_months": null,
            "created": catalogue_at, "livemode": false, "valid": true, "times_redeemed": 0, "max_redemptions": null,
            "redeem_by": null, "metadata": {}
        }),
    );
    for (tier, t) in TIERS.iter().enumerate() {
        g.emit(catalogue_at, "product.created", json!({
            "id": t.product, "object": "product", "name": t.name, "active": true, "created": catalogue_at, "livemode": false,
            "description": match tier {
                0 => "For individuals getting started",
                1 => "For professionals who need more",
                2 => "Per seat, for teams",
                _ => "Priority support, beside any plan",
            }
        }));
        for yearly in [false, true] {
            for jpy in [false, true] {
                g.emit(
                    catalogue_at + 1,
                    "price.created",
                    price_object(tier, yearly, jpy, catalogue_at),
                );
            }
        }
    }
}

/// The generated events, in time order, as the inbox stores them; ids continue from `next_id`.
fn drain_events(g: &mut Generator, next_id: &mut usize) -> Vec<IncomingEvent> {
    let mut raw = std::mem::take(&mut g.events);
    raw.sort_by_key(|(at, _, _)| *at);
    raw.into_iter()
        .map(|(at, event_type, object)| {
            let id = format!("evt_demo{:09}", *next_id);
            *next_id += 1;
            let payload = json!({"id": id, "object": "event", "type": event_type, "created": at, "livemode": false,
                "api_version": crate::stripe::API_VERSION, "data": {"object": object}})
            .to_string();
            IncomingEvent {
                id,
                event_type: event_type.to_string(),
                api_version: Some(crate::stripe::API_VERSION.to_string()),
                created: at,
                livemode: false,
                account: None,
                received_for: None,
                object_id: object.get("id").and_then(Value::as_str).map(str::to_string),
                payload,
            }
        })
        .collect()
}

/// The events of a demo business of `customers` customers whose history ends at `now`, a chunk
/// of customers at a time (each chunk in time order).
pub fn events(customers: usize, profile: Profile, now: i64) -> Vec<IncomingEvent> {
    let mut g = Generator::new(profile, now);
    let start = add_months(now, -24);
    catalogue(&mut g, start);
    let mut next_id = 0;
    let mut out = Vec::new();
    for first in (0..customers).step_by(CHUNK) {
        for n in first..(first + CHUNK).min(customers) {
            g.customer(n, customers, start);
        }
        out.extend(drain_events(&mut g, &mut next_id));
    }
    out
}

impl Profile {
    /// Rates for `customers` customers to come with about `subscriptions` subscriptions and
    /// `charges` charges (payments, failed ones included), measured on a sample of the same
    /// business (counts grow linearly with both rates): the add-on rate for the subscriptions,
    /// then top-ups for the charges left.
    pub fn sized(customers: usize, subscriptions: Option<usize>, charges: Option<usize>, now: i64) -> Profile {
        let sample = customers.clamp(1, 2000);
        let start = add_months(now, -24);
        let measure = |profile: Profile| {
            let mut g = Generator::new(profile, now);
            for i in 0..sample {
                g.customer(i * customers.max(1) / sample, customers, start);
                g.events.clear();
            }
            g.counts
        };
        let base = measure(Profile::default());
        let all = measure(Profile {
            addons: 1.0,
            topups: 0.0,
        });
        let per = |count: usize| count as f64 / sample as f64;
        let per_customer = |target: usize| target as f64 / customers.max(1) as f64;
        let addons = subscriptions.map_or(0.0, |target| {
            let gain = (per(all.subscriptions) - per(base.subscriptions)).max(f64::EPSILON);
            ((per_customer(target) - per(base.subscriptions)) / gain).clamp(0.0, 1.0)
        });
        let topups = charges.map_or(0.0, |target| {
            let without = measure(Profile { addons, topups: 0.0 });
            let with_one = measure(Profile { addons, topups: 1.0 });
            let gain = (per(with_one.charges) - per(without.charges)).max(f64::EPSILON);
            ((per_customer(target) - per(without.charges)) / gain).max(0.0)
        });
        Profile { addons, topups }
    }
}

/// The connected account (Stripe Connect) the demo can add, so the account switcher and the
/// per-account figures have something to show.
pub const CONNECTED: &str = "acct_1DemoNorthwind";
pub const CONNECTED_NAME: &str = "Northwind Market";

/// The events of the demo's connected account: a smaller business of its own (another story:
/// another seed), as a Connect endpoint delivers them (`account` set). Its ids are its own: the
/// generator's `_demo` ids become `_demc` ids and the catalogue's coupon gets a suffix, so no id is
/// shared with the main account (Stripe's ids are unique across accounts).
pub fn connected_events(customers: usize, now: i64) -> Vec<IncomingEvent> {
    let mut g = Generator::new(Profile::default(), now);
    let start = add_months(now, -24);
    catalogue(&mut g, start);
    // Other customers' stories than the main account's first ones (each story follows from its
    // number), spread over the same 24 months.
    for n in 0..customers {
        g.customer(n * 7 + 3, customers * 7 + 3, start);
    }
    let mut next_id = 0;
    let coupon = format!("\"{LAUNCH_COUPON}\"");
    let own_coupon = format!("\"{LAUNCH_COUPON}C\"");
    drain_events(&mut g, &mut next_id)
        .into_iter()
        .map(|e| {
            let own = |s: &str| s.replace("_demo", "_demc").replace(&coupon, &own_coupon);
            let mut payload: Value = serde_json::from_str(&own(&e.payload)).unwrap_or(Value::Null);
            payload["account"] = json!(CONNECTED);
            IncomingEvent {
                id: e.id.replace("evt_demo", "evt_demc"),
                account: Some(CONNECTED.to_string()),
                object_id: e
                    .object_id
                    .map(|id| own(&format!("\"{id}\"")).trim_matches('"').to_string()),
                payload: payload.to_string(),
                ..e
            }
        })
        .collect()
}

/// Adds the demo's connected account (registered as Connect delivers it) with `customers`
/// customers of its own, applied the real way in; returns the events stored. Nothing when it is
/// already there.
pub async fn seed_connected(db: &Db, customers: usize, now: i64) -> Result<usize, DbError> {
    if crate::db::accounts::get(db, CONNECTED).await?.is_some() {
        return Ok(0);
    }
    let account = json!({"id": CONNECTED, "object": "account", "business_profile": {"name": CONNECTED_NAME}});
    crate::db::accounts::register_connected(db, CONNECTED, None, false, Some(&account)).await?;
    let events = connected_events(customers, now);
    let worker = demo_worker(db);
    for chunk in events.chunks(5_000) {
        let refs: Vec<&IncomingEvent> = chunk.iter().collect();
        let mut tx = db.begin().await?;
        crate::webhooks::inbox::store_many(&mut tx, &refs, Source::Demo, None).await?;
        tx.commit().await?;
        while worker.run_once().await? > 0 {}
    }
    crate::revenue::sums::compact(db).await?;
    Ok(events.len())
}

/// A webhook worker of its own that applies the demo's stored events.
fn demo_worker(db: &Db) -> crate::webhooks::worker::Worker {
    crate::webhooks::worker::Worker {
        db: db.clone(),
        wake: std::sync::Arc::new(tokio::sync::Notify::new()),
        max_attempts: 3,
        retry_for_secs: 3 * 86_400,
        refetch: None,
    }
}

/// What seeding did.
#[derive(Debug, PartialEq, Eq)]
pub enum Seeded {
    /// The database already had customers; nothing was added.
    AlreadyHasData,
    Events(usize),
}

/// Fills an empty database with the demo business (see `seed_with`).
pub async fn seed(db: &Db, customers: usize, now: i64) -> Result<Seeded, DbError> {
    seed_with(db, customers, Profile::default(), now, |_, _| {}).await
}

/// Fills an empty database with the demo business, the real way in: a chunk of customers at a
/// time, their events are stored in the inbox (source `demo`) and the webhook worker applies
/// them in batches. `progress(customers, events)` after each chunk.
pub async fn seed_with(
    db: &Db,
    customers: usize,
    profile: Profile,
    now: i64,
    mut progress: impl FnMut(usize, usize),
) -> Result<Seeded, DbError> {
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers")
        .fetch_one(db.reader())
        .await?;
    if existing > 0 {
        return Ok(Seeded::AlreadyHasData);
    }
    let worker = demo_worker(db);
    let mut g = Generator::new(profile, now);
    let start = add_months(now, -24);
    catalogue(&mut g, start);
    let (mut next_id, mut stored) = (0, 0);
    for first in (0..customers.max(1)).step_by(CHUNK) {
        for n in first..(first + CHUNK).min(customers) {
            g.customer(n, customers, start);
        }
        let events = drain_events(&mut g, &mut next_id);
        let refs: Vec<&IncomingEvent> = events.iter().collect();
        let mut tx = db.begin().await?;
        crate::webhooks::inbox::store_many(&mut tx, &refs, Source::Demo, None).await?;
        tx.commit().await?;
        stored += events.len();
        drop(refs);
        drop(events);
        while worker.run_once().await? > 0 {}
        // The running sums the triggers appended, folded as the server does every second.
        crate::revenue::sums::compact(db).await?;
        progress((first + CHUNK).min(customers), stored);
    }
    // A running server's worker may have claimed the last batches while this one found nothing
    // left to take: wait (a bounded time) until no demo event is still in progress before
    // counting what could not be applied.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        while worker.run_once().await? > 0 {}
        let in_progress: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM stripe_events WHERE source = 'demo' AND status IN ('pending', 'processing')",
        )
        .fetch_one(db.reader())
        .await?;
        if in_progress == 0 || std::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    crate::revenue::sums::compact(db).await?;
    let unapplied: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM stripe_events WHERE source = 'demo' AND status NOT IN ('applied', 'ignored')",
    )
    .fetch_one(db.reader())
    .await?;
    if unapplied > 0 {
        return Err(DbError::Query(sqlx::Error::Protocol(format!(
            "{unapplied} demo events could not be applied; see the Events page"
        ))));
    }
    Ok(Seeded::Events(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_added_and_subtracted() {
        let t = 1_767_225_600; // 2026-01-01
        assert_eq!(add_months(t, 1), 1_769_904_000);
        assert_eq!(add_months(t, -24), 1_704_067_200);
    }

    #[test]
    fn the_demo_is_deterministic_and_ends_now() {
        let now = 1_790_000_000;
        let a = events(150, Profile::default(), now);
        let b = events(150, Profile::default(), now);
        assert_eq!(a.len(), b.len());
        assert!(a.iter().zip(&b).all(|(x, y)| x.payload == y.payload));
        assert!(a.iter().all(|e| e.created <= now));
        assert!(a.windows(2).all(|w| w[0].created <= w[1].created && w[0].id < w[1].id));
        let kinds = |t: &str| a.iter().filter(|e| e.event_type == t).count();
        assert_eq!(kinds("customer.created"), 150);
        assert!(
            kinds("customer.subscription.deleted") > 0 && kinds("charge.failed") > 0 && kinds("refund.created") > 0
        );
        assert!(
            a.iter()
                .filter(|e| e.event_type == "customer.created")
                .any(|e| e.created < now - 600 * 86_400),
            "two years of history"
        );
    }

    #[test]
    fn a_sized_demo_has_about_the_subscriptions_and_charges_asked_for() {
        let now = 1_790_000_000;
        let profile = Profile::sized(1000, Some(2000), Some(20_000), now);
        assert!(profile.addons > 0.5 && profile.topups > 0.5, "{profile:?}");
        let events = events(1000, profile, now);
        let count = |types: &[&str]| events.iter().filter(|e| types.contains(&e.event_type.as_str())).count();
        let subscriptions = count(&["customer.subscription.created"]);
        let charges = count(&["charge.succeeded", "charge.failed"]);
        assert!((1940..=2060).contains(&subscriptions), "{subscriptions} subscriptions");
        assert!((19_400..=20_600).contains(&charges), "{charges} charges");
        // Without targets, the plain demo: one plan per customer (and some come back).
        let plain = super::events(1000, Profile::default(), now);
        let plain_subscriptions = plain
            .iter()
            .filter(|e| e.event_type == "customer.subscription.created")
            .count();
        assert!((1000..1200).contains(&plain_subscriptions), "{plain_subscriptions}");
    }
}
