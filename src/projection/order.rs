//! Which state of an object is the latest when several events about it carry the same second.
//!
//! Stripe's `created` is whole seconds and event ids carry no order, yet Stripe routinely sends
//! several events about one object in one second (a subscription created `incomplete` and
//! activated by Checkout's payment; an invoice created, finalized and paid in one renewal). Given
//! every version of the object known for that second, this decides which one stands, from the
//! versions alone and whatever order they arrived in:
//!
//! 1. `previous_attributes`: an update whose previous attributes equal another version's state
//!    comes after that version;
//! 2. the resource's lifecycle (an invoice goes draft → open → paid, a charge's `amount_refunded`
//!    never shrinks, …);
//! 3. a `*.created` event comes before the object's other events;
//! 4. only then something arbitrary but fixed: the larger event id.
//!
//! The result depends only on the set of versions, so every arrival order ends in the same row.
//! With a Stripe key, a tie whose versions differ is also settled by fetching the object
//! (`settle`), which replaces this best judgement with Stripe's answer.

use std::cmp::Ordering;

use serde_json::Value;

use crate::domain::resource::Resource;

/// One version of an object at a given second.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidate {
    /// The event that carried it (or the marker of the write that stored it).
    pub event_id: String,
    /// The event's type, when it came from an event.
    pub event_type: Option<String>,
    pub object: Value,
    /// The event's `data.previous_attributes`, when it has any.
    pub previous: Option<Value>,
}

/// Whether `pattern` (a previous attribute) describes `state`: objects match key by key (a key
/// given as null means it was absent), lists element by element, anything else by equality.
fn describes(pattern: &Value, state: Option<&Value>) -> bool {
    match (pattern, state) {
        (Value::Null, None | Some(Value::Null)) => true,
        (Value::Object(p), Some(Value::Object(s))) => p.iter().all(|(k, v)| describes(v, s.get(k))),
        (Value::Array(p), Some(Value::Array(s))) => {
            p.len() == s.len() && p.iter().zip(s).all(|(a, b)| describes(a, Some(b)))
        }
        (p, Some(s)) => p == s,
        (_, None) => false,
    }
}

/// Whether `later` says, through its previous attributes, that it changed `earlier`'s state.
fn changed_from(later: &Candidate, earlier: &Candidate) -> bool {
    match &later.previous {
        Some(Value::Object(prev)) if !prev.is_empty() => prev.iter().all(|(k, v)| describes(v, earlier.object.get(k))),
        _ => false,
    }
}

fn status(object: &Value) -> Option<&str> {
    object.get("status").and_then(Value::as_str)
}

fn int(object: &Value, key: &str) -> Option<i64> {
    object.get(key).and_then(Value::as_i64)
}

fn flag(object: &Value, key: &str) -> Option<i64> {
    object.get(key).and_then(Value::as_bool).map(i64::from)
}

/// How far along its lifecycle an object is, as steps compared in order; `None` where a step is
/// unknown (an unknown status, a missing field), which then decides nothing.
pub fn lifecycle(resource: Resource, object: &Value) -> Vec<Option<i64>> {
    let rank =
        |table: &[(&str, i64)]| status(object).and_then(|s| table.iter().find(|(name, _)| *name == s).map(|(_, r)| *r));
    match resource {
        Resource::Invoice => {
            let transitions = object.get("status_transitions").and_then(Value::as_object).map(|t| {
                ["finalized_at", "marked_uncollectible_at", "paid_at", "voided_at"]
                    .iter()
                    .filter(|k| t.get(**k).is_some_and(|v| !v.is_null()))
                    .count() as i64
            });
            vec![
                rank(&[
                    ("draft", 0),
                    ("open", 1),
                    ("uncollectible", 2),
                    ("paid", 3),
                    ("void", 3),
                ]),
                transitions,
                int(object, "amount_paid"),
                int(object, "attempt_count"),
            ]
        }
        Resource::Subscription => vec![rank(&[
            ("incomplete", 0),
            ("trialing", 1),
            ("active", 2),
            ("past_due", 3),
            ("paused", 3),
            ("unpaid", 4),
            ("canceled", 5),
            ("incomplete_expired", 5),
        ])],
        Resource::PaymentIntent => vec![
            rank(&[
                ("requires_payment_method", 0),
                ("requires_confirmation", 1),
                ("requires_action", 2),
                ("processing", 3),
                ("requires_capture", 4),
                ("succeeded", 5),
                ("canceled", 5),
            ]),
            int(object, "amount_received"),
        ],
        Resource::Charge => vec![
            rank(&[("pending", 0), ("succeeded", 1), ("failed", 1)]),
            flag(object, "captured"),
            int(object, "amount_captured"),
            int(object, "amount_refunded"),
            flag(object, "refunded"),
            flag(object, "disputed"),
        ],
        Resource::Refund => vec![rank(&[
            ("pending", 0),
            ("requires_action", 0),
            ("succeeded", 1),
            ("failed", 1),
            ("canceled", 1),
        ])],
        Resource::Dispute => vec![rank(&[
            ("warning_needs_response", 0),
            ("needs_response", 0),
            ("warning_under_review", 1),
            ("under_review", 1),
            ("warning_closed", 2),
            ("won", 2),
            ("lost", 2),
            ("charge_refunded", 2),
            ("prevented", 2),
        ])],
        Resource::CheckoutSession => vec![
            rank(&[("open", 0), ("complete", 1), ("expired", 1)]),
            object
                .get("payment_status")
                .and_then(Value::as_str)
                .map(|s| i64::from(s != "unpaid")),
        ],
        // A coupon only ever becomes invalid; redemptions only grow.
        Resource::Coupon => vec![flag(object, "valid").map(|v| 1 - v), int(object, "times_redeemed")],
        Resource::PromotionCode => vec![int(object, "times_redeemed")],
        // A fee is only ever refunded, in part then in full.
        Resource::ApplicationFee => vec![int(object, "amount_refunded"), flag(object, "refunded")],
        Resource::Customer | Resource::PaymentMethod | Resource::Product | Resource::Price | Resource::Discount => {
            Vec::new()
        }
    }
}

/// Compares two lifecycles on the steps both know.
fn compare_lifecycle(a: &[Option<i64>], b: &[Option<i64>]) -> Ordering {
    a.iter()
        .zip(b)
        .filter_map(|(x, y)| Some(x.as_ref()?.cmp(y.as_ref()?)))
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// A `*.created` event comes before the object's other events of the same second.
fn event_rank(c: &Candidate) -> i64 {
    match c.event_type.as_deref() {
        Some(t) if t.ends_with(".created") => 0,
        _ => 1,
    }
}

/// Whether `a` comes before `b` by the rules that mean something (not by id).
fn before(resource: Resource, a: &Candidate, b: &Candidate) -> bool {
    let (b_after_a, a_after_b) = (changed_from(b, a), changed_from(a, b));
    if b_after_a != a_after_b {
        return b_after_a;
    }
    match compare_lifecycle(&lifecycle(resource, &a.object), &lifecycle(resource, &b.object)) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => event_rank(a) < event_rank(b),
    }
}

/// The index of the latest of `candidates` (versions of one object at one second, distinct
/// events). The versions nothing comes after are the possible latest ones; if there are several
/// (or none, when the rules go round in a circle), the furthest along its lifecycle wins, then the
/// larger event id.
pub fn latest(resource: Resource, candidates: &[Candidate]) -> usize {
    let last: Vec<usize> = (0..candidates.len())
        .filter(|&i| !(0..candidates.len()).any(|j| j != i && before(resource, &candidates[i], &candidates[j])))
        .collect();
    let pool: Vec<usize> = if last.is_empty() {
        (0..candidates.len()).collect()
    } else {
        last
    };
    pool.into_iter()
        .max_by(|&i, &j| {
            let (a, b) = (&candidates[i], &candidates[j]);
            compare_lifecycle(&lifecycle(resource, &a.object), &lifecycle(resource, &b.object))
                .then(event_rank(a).cmp(&event_rank(b)))
                .then(a.event_id.cmp(&b.event_id))
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn candidate(id: &str, event_type: &str, object: Value, previous: Option<Value>) -> Candidate {
        Candidate {
            event_id: id.into(),
            event_type: Some(event_type.into()),
            object,
            previous,
        }
    }

    /// Every order of the candidates gives the same latest one.
    fn latest_in_every_order(resource: Resource, candidates: &[Candidate]) -> String {
        let mut seen = std::collections::BTreeSet::new();
        let n = candidates.len();
        let mut order: Vec<usize> = (0..n).collect();
        // Heap's algorithm over every permutation (n is small here).
        fn permute(k: usize, order: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if k <= 1 {
                out.push(order.clone());
                return;
            }
            for i in 0..k {
                permute(k - 1, order, out);
                let swap = if k.is_multiple_of(2) { i } else { 0 };
                order.swap(swap, k - 1);
            }
        }
        let mut all = Vec::new();
        permute(n, &mut order, &mut all);
        for perm in all {
            let shuffled: Vec<Candidate> = perm.iter().map(|&i| candidates[i].clone()).collect();
            seen.insert(shuffled[latest(resource, &shuffled)].event_id.clone());
        }
        assert_eq!(seen.len(), 1, "the latest depends on the order: {seen:?}");
        seen.into_iter().next().unwrap()
    }

    #[test]
    fn an_update_follows_the_state_it_names_as_previous() {
        let sub = |status: &str| json!({"id": "sub_1", "object": "subscription", "status": status});
        // Ids chosen so that the larger id is the older event.
        let created = candidate("evt_z", "customer.subscription.created", sub("incomplete"), None);
        let updated = candidate(
            "evt_a",
            "customer.subscription.updated",
            sub("active"),
            Some(json!({"status": "incomplete"})),
        );
        assert_eq!(
            latest_in_every_order(Resource::Subscription, &[created, updated]),
            "evt_a"
        );
    }

    #[test]
    fn a_chain_of_updates_ends_at_its_last_link() {
        let sub = |qty: i64| json!({"id": "sub_1", "object": "subscription", "status": "active", "quantity": qty});
        let events = [
            candidate(
                "evt_c",
                "customer.subscription.updated",
                sub(2),
                Some(json!({"quantity": 1})),
            ),
            candidate(
                "evt_a",
                "customer.subscription.updated",
                sub(4),
                Some(json!({"quantity": 3})),
            ),
            candidate(
                "evt_b",
                "customer.subscription.updated",
                sub(3),
                Some(json!({"quantity": 2})),
            ),
            candidate("evt_d", "customer.subscription.created", sub(1), None),
        ];
        assert_eq!(latest_in_every_order(Resource::Subscription, &events), "evt_a");
    }

    #[test]
    fn an_invoice_created_finalized_and_paid_in_one_second_is_paid() {
        let inv = |status: &str, paid: i64, transitions: Value| json!({"id": "in_1", "object": "invoice", "status": status, "amount_paid": paid, "status_transitions": transitions});
        let events = [
            candidate(
                "evt_3",
                "invoice.created",
                inv("draft", 0, json!({"finalized_at": null, "paid_at": null})),
                None,
            ),
            candidate(
                "evt_1",
                "invoice.paid",
                inv("paid", 900, json!({"finalized_at": 5, "paid_at": 5})),
                None,
            ),
            candidate(
                "evt_2",
                "invoice.finalized",
                inv("open", 0, json!({"finalized_at": 5, "paid_at": null})),
                None,
            ),
        ];
        assert_eq!(latest_in_every_order(Resource::Invoice, &events), "evt_1");
    }

    #[test]
    fn refunds_only_grow() {
        let ch = |refunded: i64| json!({"id": "ch_1", "object": "charge", "status": "succeeded", "amount_refunded": refunded});
        let events = [
            candidate("evt_b", "charge.refunded", ch(500), None),
            candidate("evt_a", "charge.refunded", ch(900), None),
            candidate("evt_c", "charge.updated", ch(0), None),
        ];
        assert_eq!(latest_in_every_order(Resource::Charge, &events), "evt_a");
    }

    #[test]
    fn previous_attributes_come_before_the_lifecycle() {
        // A payment recovered: past_due -> active goes backwards in the lifecycle table, and the
        // previous attributes say so.
        let sub = |status: &str| json!({"id": "sub_1", "object": "subscription", "status": status});
        let events = [
            candidate("evt_b", "customer.subscription.updated", sub("past_due"), None),
            candidate(
                "evt_a",
                "customer.subscription.updated",
                sub("active"),
                Some(json!({"status": "past_due"})),
            ),
        ];
        assert_eq!(latest_in_every_order(Resource::Subscription, &events), "evt_a");
        // Two updates that each name the other's state as previous say nothing: the lifecycle
        // decides (a Stripe key settles such a tie by fetching the object).
        let events = [
            candidate(
                "evt_b",
                "customer.subscription.updated",
                sub("past_due"),
                Some(json!({"status": "active"})),
            ),
            candidate(
                "evt_a",
                "customer.subscription.updated",
                sub("active"),
                Some(json!({"status": "past_due"})),
            ),
        ];
        assert_eq!(latest_in_every_order(Resource::Subscription, &events), "evt_b");
    }

    #[test]
    fn nested_previous_attributes_match_key_by_key() {
        let cus = |plan: Option<&str>| match plan {
            Some(p) => json!({"id": "cus_1", "object": "customer", "metadata": {"plan": p, "team": "x"}}),
            None => json!({"id": "cus_1", "object": "customer", "metadata": {"team": "x"}}),
        };
        let events = [
            candidate(
                "evt_b",
                "customer.updated",
                cus(Some("pro")),
                Some(json!({"metadata": {"plan": null}})),
            ),
            candidate(
                "evt_a",
                "customer.updated",
                cus(Some("max")),
                Some(json!({"metadata": {"plan": "pro"}})),
            ),
            candidate("evt_c", "customer.created", cus(None), None),
        ];
        assert_eq!(latest_in_every_order(Resource::Customer, &events), "evt_a");
    }
}
