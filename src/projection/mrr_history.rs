//! A subscription's MRR history (`subscription_mrr`): one snapshot per second at which a version of
//! the subscription is known, each with its `Basis` (what that version says about prices and
//! discounts), and snapshots at the seconds a discount starts or stops reducing MRR (event id
//! `discount`), since the clock, not an event, moves MRR then. Every figure is computed from the
//! bases with the discounts, coupons and promotion codes Tally knows and the configured policy
//! (`settle`), so a discount whose object arrives after the subscription that lists it, a coupon
//! ending, or a change of `MRR_DISCOUNTS` recomputes the history and the customer's movements.

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::{id, text, ProjectionError, Version};

use crate::config::DiscountPolicy;
use crate::domain::resource::Resource;
use crate::projection::mrr::{self, Basis, Discount, Lookup, Terms};

/// The settings key holding the policy in force (written at start from `MRR_DISCOUNTS`).
pub const POLICY_KEY: &str = "mrr_discount_policy";
/// Set once every snapshot has its basis (and the history was recomputed from them).
const BASES_KEY: &str = "mrr_history_bases";
/// The event id of a snapshot at a discount's start or end.
pub const BOUNDARY: &str = "discount";

/// The policy in force for this database.
pub async fn policy(conn: &mut AnyConnection) -> Result<DiscountPolicy, ProjectionError> {
    let value: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(POLICY_KEY)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(value.and_then(|v| DiscountPolicy::parse(&v).ok()).unwrap_or_default())
}

/// Whether this version of a subscription says what its MRR is: a payload without items (a
/// trimmed object) says nothing unless it ends the subscription.
fn tells_mrr(s: &Value) -> bool {
    let ends = matches!(text(s, "status").as_deref(), Some("canceled" | "incomplete_expired"));
    s.get("items").is_some() || ends
}

fn basis_json(s: &Value) -> String {
    serde_json::to_string(&Basis::of_subscription(s)).unwrap_or_default()
}

/// Keeps the subscription's state at this version's second in its history: one snapshot per
/// second, the state that stands at the end of it (the same rule as the rows: a fetched object,
/// else the latest of that second's events), whatever order they arrive in; then settles the
/// history and the customer's movements.
pub async fn record(conn: &mut AnyConnection, s: &Value, version: &Version) -> Result<(), ProjectionError> {
    let Some(sub_id) = text(s, "id") else {
        return Err(ProjectionError::NoId);
    };
    if !tells_mrr(s) {
        return settle_and_rebuild(conn, &sub_id).await;
    }
    let added = sqlx::query(
        "INSERT INTO subscription_mrr (subscription_id, at, event_id, customer_id, currency, status, mrr, basis, account_id) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, COALESCE((SELECT account_id FROM subscriptions WHERE id = $1), '')) \
         ON CONFLICT (subscription_id, at) DO NOTHING",
    )
    .bind(&sub_id)
    .bind(version.at)
    .bind(&version.event_id)
    .bind(id(s, "customer"))
    .bind(text(s, "currency"))
    .bind(text(s, "status"))
    .bind(basis_json(s))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if added == 0 {
        if let Some(winner) = winner_of_second(conn, &sub_id, s, version).await? {
            sqlx::query(
                "UPDATE subscription_mrr SET event_id = $1, customer_id = $2, currency = $3, status = $4, basis = $5 \
                 WHERE subscription_id = $6 AND at = $7",
            )
            .bind(&winner.event_id)
            .bind(id(&winner.object, "customer"))
            .bind(text(&winner.object, "currency"))
            .bind(text(&winner.object, "status"))
            .bind(basis_json(&winner.object))
            .bind(&sub_id)
            .bind(version.at)
            .execute(&mut *conn)
            .await?;
        }
    }
    // Settled even when the snapshot there stays: a new point in the history can change the
    // movements from there on (events arrive in any order).
    let mut settled = settle(conn, &sub_id).await?;
    let standing: Option<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT customer_id, currency FROM subscription_mrr WHERE subscription_id = $1 AND at = $2")
            .bind(&sub_id)
            .bind(version.at)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some((customer, Some(currency))) = standing {
        settled.customers.insert(owner(&currency, customer.as_deref(), &sub_id));
        settled.earliest = Some(settled.earliest.map_or(version.at, |e| e.min(version.at)));
    }
    rebuild(conn, &settled.customers, settled.earliest).await?;
    // A subscription just fetched with its discounts expanded is not fetched again for them
    // (an answer without them would ask again forever).
    let unknown: Vec<Unknown> = settled
        .unknown
        .into_iter()
        .filter(|u| !(version.is_fetched() && *u == Unknown::Discount))
        .collect();
    request_unknown(conn, &sub_id, version.at, &unknown).await
}

/// When the history already has a snapshot at this second from another write: the version that
/// should stand instead, or `None` when the snapshot there stays.
async fn winner_of_second(
    conn: &mut AnyConnection,
    sub_id: &str,
    s: &Value,
    version: &Version,
) -> Result<Option<super::order::Candidate>, ProjectionError> {
    let existing: String =
        sqlx::query_scalar("SELECT event_id FROM subscription_mrr WHERE subscription_id = $1 AND at = $2")
            .bind(sub_id)
            .bind(version.at)
            .fetch_one(&mut *conn)
            .await?;
    let incoming = super::order::Candidate {
        event_id: version.event_id.clone(),
        event_type: None,
        object: s.clone(),
        previous: None,
    };
    if existing == version.event_id && !version.is_fetched() {
        return Ok(None);
    }
    // A fetched object wins its second (a later fetch over an earlier one), and any version
    // beats a discount's boundary; events never beat a fetched object.
    if version.is_fetched() || existing == BOUNDARY {
        return Ok(Some(incoming));
    }
    if existing == super::FETCHED {
        return Ok(None);
    }
    let mut known = vec![incoming];
    // The standing snapshot's state, when the row still holds it (it may not be an inbox event).
    let row: Option<String> =
        sqlx::query_scalar("SELECT raw FROM subscriptions WHERE id = $1 AND version_at = $2 AND version_event = $3")
            .bind(sub_id)
            .bind(version.at)
            .bind(&existing)
            .fetch_optional(&mut *conn)
            .await?;
    if let Some(object) = row.and_then(|raw| serde_json::from_str::<Value>(&raw).ok()) {
        known.push(super::order::Candidate {
            event_id: existing.clone(),
            event_type: None,
            object,
            previous: None,
        });
    }
    let (winner, _) = super::settle::latest_of_second(conn, Resource::Subscription, sub_id, version.at, known).await?;
    Ok((winner.event_id != existing && tells_mrr(&winner.object)).then_some(winner))
}

type Owner = (String, Option<String>, String);

fn owner(currency: &str, customer: Option<&str>, sub_id: &str) -> Owner {
    let sub = if customer.is_some() { "" } else { sub_id };
    (currency.to_string(), customer.map(str::to_string), sub.to_string())
}

/// What settling one subscription's history changed.
#[derive(Default)]
struct Settled {
    /// (currency, customer, subscription) whose movements must be rebuilt (the subscription
    /// names a customer-less subscription's own history).
    customers: HashSet<Owner>,
    /// The earliest snapshot time that changed.
    earliest: Option<i64>,
    /// Discounts, coupons or promotion codes the history refers to that Tally does not know.
    unknown: Vec<Unknown>,
}

/// Reads the discounts, coupons and promotion codes the bases refer to (and the customer's own
/// discounts).
async fn lookup(conn: &mut AnyConnection, bases: &[&Basis], customer: Option<&str>) -> Result<Lookup, ProjectionError> {
    let mut out = Lookup::default();
    let mut ids: Vec<String> = bases
        .iter()
        .flat_map(|b| b.refs())
        .filter_map(|r| r.as_str().or_else(|| r.get("id").and_then(Value::as_str)))
        .map(super::read::clean)
        .collect();
    ids.sort();
    ids.dedup();
    let mut discounts: Vec<Discount> = Vec::new();
    for chunk in ids.chunks(200) {
        let sql = format!(
            "SELECT raw, deleted, deleted_at FROM discounts WHERE id IN ({})",
            (1..=chunk.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            discounts.push(discount_of_row(&row)?);
        }
    }
    for d in discounts {
        if let Some(id) = d.id.clone() {
            out.discounts.insert(id, d);
        }
    }
    if let Some(customer) = customer.filter(|_| bases.iter().any(|b| b.discounts.is_empty())) {
        let rows = sqlx::query(
            "SELECT raw, deleted, deleted_at FROM discounts WHERE customer_id = $1 AND subscription_id IS NULL \
             AND subscription_item_id IS NULL ORDER BY start_at, id",
        )
        .bind(customer)
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            let d = discount_of_row(&row)?;
            out.customer_discounts.push(d);
        }
    }
    // Coupons by id, and promotion codes to their coupons.
    let all: Vec<&Discount> = out.discounts.values().chain(out.customer_discounts.iter()).collect();
    let inline: Vec<Discount> = bases
        .iter()
        .flat_map(|b| b.refs())
        .filter(|r| r.is_object())
        .map(Discount::of_object)
        .collect();
    let promotion_codes: Vec<String> = all
        .iter()
        .copied()
        .chain(inline.iter())
        .filter(|d| d.coupon.is_none() && d.coupon_id.is_none())
        .filter_map(|d| d.promotion_code.clone())
        .collect();
    for code in promotion_codes {
        let coupon: Option<Option<String>> = sqlx::query_scalar("SELECT coupon_id FROM promotion_codes WHERE id = $1")
            .bind(&code)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(Some(coupon)) = coupon {
            out.promotion_codes.insert(code, coupon);
        }
    }
    let mut coupon_ids: Vec<String> = all
        .iter()
        .copied()
        .chain(inline.iter())
        .filter(|d| d.coupon.is_none())
        .filter_map(|d| d.coupon_id.clone())
        .chain(out.promotion_codes.values().cloned())
        .collect();
    coupon_ids.sort();
    coupon_ids.dedup();
    for coupon in coupon_ids {
        let raw: Option<String> = sqlx::query_scalar("SELECT raw FROM coupons WHERE id = $1")
            .bind(&coupon)
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(c) = raw.and_then(|r| serde_json::from_str::<Value>(&r).ok()) {
            out.coupons.insert(coupon, Terms::of_coupon(&c));
        }
    }
    Ok(out)
}

fn discount_of_row(row: &sqlx::any::AnyRow) -> Result<Discount, ProjectionError> {
    let raw: String = row.try_get("raw")?;
    let object = serde_json::from_str::<Value>(&raw).unwrap_or(Value::Null);
    let mut d = Discount::of_object(&object);
    if row.try_get::<i64, _>("deleted")? != 0 {
        d.removed_at = row.try_get("deleted_at")?;
    }
    Ok(d)
}

/// Something the history refers to that Tally has not seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// A discount id: the subscription is fetched with its discounts expanded.
    Discount,
    Coupon(String),
    PromotionCode(String),
}

fn unknown_of(basis: &Basis, lookup: &Lookup) -> Vec<Unknown> {
    let mut out = Vec::new();
    for r in basis.refs() {
        let d = match r {
            Value::String(id) => match lookup.discounts.get(id) {
                Some(d) => d.clone(),
                None => {
                    out.push(Unknown::Discount);
                    continue;
                }
            },
            other => Discount::of_object(other),
        };
        if d.coupon.is_some() {
            continue;
        }
        match (&d.coupon_id, &d.promotion_code) {
            (Some(c), _) if !lookup.coupons.contains_key(c) => out.push(Unknown::Coupon(c.clone())),
            (None, Some(p)) if !lookup.promotion_codes.contains_key(p) => out.push(Unknown::PromotionCode(p.clone())),
            _ => {}
        }
    }
    out
}

struct Snapshot {
    at: i64,
    event_id: String,
    customer: Option<String>,
    currency: Option<String>,
    status: Option<String>,
    mrr: i64,
    basis: Option<Basis>,
}

/// Recomputes one subscription's history from its bases: every snapshot's MRR at its time, the
/// snapshots at discounts' starts and ends that have passed, the row's current MRR, and when the
/// next boundary is due.
async fn settle(conn: &mut AnyConnection, sub_id: &str) -> Result<Settled, ProjectionError> {
    let rows = sqlx::query(
        "SELECT at, event_id, customer_id, currency, status, mrr, basis FROM subscription_mrr \
         WHERE subscription_id = $1 ORDER BY at",
    )
    .bind(sub_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut stored = Vec::with_capacity(rows.len());
    for r in &rows {
        let basis: Option<String> = r.try_get("basis")?;
        stored.push(Snapshot {
            at: r.try_get("at")?,
            event_id: r.try_get("event_id")?,
            customer: r.try_get("customer_id")?,
            currency: r.try_get("currency")?,
            status: r.try_get("status")?,
            mrr: r.try_get("mrr")?,
            basis: basis.and_then(|b| serde_json::from_str(&b).ok()),
        });
    }
    let row = sqlx::query("SELECT raw, customer_id, currency, mrr FROM subscriptions WHERE id = $1")
        .bind(sub_id)
        .fetch_optional(&mut *conn)
        .await?;
    let (row_basis, row_currency, row_customer, row_mrr) = match &row {
        Some(r) => {
            let raw: String = r.try_get("raw")?;
            let basis = serde_json::from_str::<Value>(&raw)
                .ok()
                .filter(tells_mrr)
                .map(|o| Basis::of_subscription(&o));
            (
                basis,
                r.try_get::<Option<String>, _>("currency")?,
                r.try_get::<Option<String>, _>("customer_id")?,
                r.try_get::<Option<i64>, _>("mrr")?,
            )
        }
        None => (None, None, None, None),
    };
    let customer = row_customer
        .clone()
        .or_else(|| stored.iter().rev().find_map(|s| s.customer.clone()));
    let bases: Vec<&Basis> = stored
        .iter()
        .filter_map(|s| s.basis.as_ref())
        .chain(row_basis.as_ref())
        .collect();
    let policy = policy(conn).await?;
    let lookup = lookup(conn, &bases, customer.as_deref()).await?;
    let now = crate::db::now_unix();
    let mut out = Settled::default();
    let mut next_due: Option<i64> = None;
    // The history as it should be: every version's snapshot, and boundaries between them.
    let real: Vec<&Snapshot> = stored.iter().filter(|s| s.event_id != BOUNDARY).collect();
    let mut desired: Vec<(i64, &Snapshot, i64)> = Vec::new();
    for (i, snap) in real.iter().enumerate() {
        let Some(basis) = &snap.basis else {
            // Written before bases were kept and not rebuilt: its figure stands.
            desired.push((snap.at, snap, snap.mrr));
            continue;
        };
        let currency = snap.currency.clone().unwrap_or_default();
        desired.push((snap.at, snap, mrr::of_basis(basis, &currency, &lookup, policy, snap.at)));
        let until = real.get(i + 1).map(|n| n.at).unwrap_or(i64::MAX);
        for b in mrr::boundaries(basis, &lookup) {
            if b <= snap.at || b >= until {
                continue;
            }
            if b <= now {
                desired.push((b, snap, mrr::of_basis(basis, &currency, &lookup, policy, b)));
            } else {
                next_due = Some(next_due.map_or(b, |d: i64| d.min(b)));
            }
        }
    }
    desired.sort_by_key(|d| d.0);
    let by_at: HashMap<i64, &Snapshot> = stored.iter().map(|s| (s.at, s)).collect();
    let wanted: HashSet<i64> = desired.iter().map(|d| d.0).collect();
    let touch = |out: &mut Settled, at: i64, snap: &Snapshot| {
        out.earliest = Some(out.earliest.map_or(at, |e| e.min(at)));
        if let Some(currency) = &snap.currency {
            out.customers.insert(owner(currency, snap.customer.as_deref(), sub_id));
        }
    };
    for s in stored
        .iter()
        .filter(|s| s.event_id == BOUNDARY && !wanted.contains(&s.at))
    {
        sqlx::query("DELETE FROM subscription_mrr WHERE subscription_id = $1 AND at = $2")
            .bind(sub_id)
            .bind(s.at)
            .execute(&mut *conn)
            .await?;
        touch(&mut out, s.at, s);
    }
    for (at, source, value) in &desired {
        match by_at.get(at) {
            Some(existing) if existing.at == source.at || existing.event_id == BOUNDARY => {
                let basis = source
                    .basis
                    .as_ref()
                    .map(|b| serde_json::to_string(b).unwrap_or_default());
                let same_basis = existing.basis.as_ref() == source.basis.as_ref();
                if existing.mrr != *value || !same_basis {
                    sqlx::query(
                        "UPDATE subscription_mrr SET mrr = $1, basis = $2, customer_id = $3, currency = $4, status = $5 \
                         WHERE subscription_id = $6 AND at = $7",
                    )
                    .bind(value)
                    .bind(basis)
                    .bind(&source.customer)
                    .bind(&source.currency)
                    .bind(&source.status)
                    .bind(sub_id)
                    .bind(at)
                    .execute(&mut *conn)
                    .await?;
                    touch(&mut out, *at, source);
                }
            }
            Some(_) => {}
            None => {
                sqlx::query(
                    "INSERT INTO subscription_mrr (subscription_id, at, event_id, customer_id, currency, status, mrr, basis, \
                     account_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                     COALESCE((SELECT account_id FROM subscriptions WHERE id = $1), '')) \
                     ON CONFLICT (subscription_id, at) DO NOTHING",
                )
                .bind(sub_id)
                .bind(at)
                .bind(BOUNDARY)
                .bind(&source.customer)
                .bind(&source.currency)
                .bind(&source.status)
                .bind(value)
                .bind(source.basis.as_ref().map(|b| serde_json::to_string(b).unwrap_or_default()))
                .execute(&mut *conn)
                .await?;
                touch(&mut out, *at, source);
            }
        }
    }
    // The row's current MRR, and the next time the clock changes it.
    if let Some(basis) = &row_basis {
        let currency = row_currency.clone().unwrap_or_default();
        let current = mrr::of_basis(basis, &currency, &lookup, policy, now);
        if row_mrr != Some(current) {
            sqlx::query("UPDATE subscriptions SET mrr = $1 WHERE id = $2")
                .bind(current)
                .bind(sub_id)
                .execute(&mut *conn)
                .await?;
        }
        for b in mrr::boundaries(basis, &lookup).into_iter().filter(|b| *b > now) {
            next_due = Some(next_due.map_or(b, |d: i64| d.min(b)));
        }
        out.unknown = unknown_of(basis, &lookup);
    } else if row.is_some() && row_mrr.is_none() {
        sqlx::query("UPDATE subscriptions SET mrr = 0 WHERE id = $1")
            .bind(sub_id)
            .execute(&mut *conn)
            .await?;
    }
    match next_due {
        Some(due) => {
            sqlx::query(
                "INSERT INTO mrr_boundaries (subscription_id, due_at) VALUES ($1, $2) \
                 ON CONFLICT (subscription_id) DO UPDATE SET due_at = excluded.due_at",
            )
            .bind(sub_id)
            .bind(due)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM mrr_boundaries WHERE subscription_id = $1")
                .bind(sub_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(out)
}

/// Rebuilds the movements of the customers whose history changed.
async fn rebuild(
    conn: &mut AnyConnection,
    customers: &HashSet<Owner>,
    earliest: Option<i64>,
) -> Result<(), ProjectionError> {
    let mut customers: Vec<&Owner> = customers.iter().collect();
    customers.sort();
    for (currency, customer, sub_id) in customers {
        crate::projection::movements::rebuild_customer(conn, currency, customer.as_deref(), sub_id).await?;
    }
    // Movements before the change are unchanged (they are derived in time order): closed months
    // change only when it is in one. An hour of margin covers a transaction that straddles the
    // turn of a month.
    if earliest.is_some_and(|at| at < crate::domain::calendar::month_start(crate::db::now_unix() + 3600, 0)) {
        crate::db::cache::bump_counter(conn, crate::db::cache::MOVEMENTS_CLOSED).await?;
    }
    Ok(())
}

async fn settle_and_rebuild(conn: &mut AnyConnection, sub_id: &str) -> Result<(), ProjectionError> {
    let settled = settle(conn, sub_id).await?;
    rebuild(conn, &settled.customers, settled.earliest).await
}

/// Queues fetches of what the subscription refers to and Tally does not know (when a Stripe key
/// is configured; otherwise the queue is dropped and the discount counts once its object arrives).
async fn request_unknown(
    conn: &mut AnyConnection,
    sub_id: &str,
    at: i64,
    unknown: &[Unknown],
) -> Result<(), ProjectionError> {
    use super::settle::{request_fetch, FetchReason};
    if unknown.is_empty() {
        return Ok(());
    }
    // Fetched with the subscription's account's client.
    let account: String = sqlx::query_scalar("SELECT account_id FROM subscriptions WHERE id = $1")
        .bind(sub_id)
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_default();
    let account = account.as_str();
    for u in unknown {
        match u {
            Unknown::Discount => {
                request_fetch(
                    conn,
                    account,
                    Resource::Subscription,
                    sub_id,
                    at,
                    FetchReason::UnknownDiscount,
                )
                .await?
            }
            Unknown::Coupon(c) => {
                request_fetch(conn, account, Resource::Coupon, c, at, FetchReason::UnknownDiscount).await?
            }
            Unknown::PromotionCode(p) => {
                request_fetch(
                    conn,
                    account,
                    Resource::PromotionCode,
                    p,
                    at,
                    FetchReason::UnknownDiscount,
                )
                .await?
            }
        }
    }
    Ok(())
}

/// After a discount, coupon or promotion code was written: the histories of the subscriptions it
/// applies to are settled again.
pub async fn terms_changed(
    conn: &mut AnyConnection,
    resource: Resource,
    object: &Value,
) -> Result<(), ProjectionError> {
    let Some(object_id) = text(object, "id") else {
        return Ok(());
    };
    // (subscription, customer) pairs of the discounts concerned.
    let discounts: Vec<(Option<String>, Option<String>)> = match resource {
        Resource::Discount => vec![(id(object, "subscription"), id(object, "customer"))],
        Resource::Coupon | Resource::PromotionCode => {
            let column = if resource == Resource::Coupon {
                "coupon_id"
            } else {
                "promotion_code_id"
            };
            let rows = sqlx::query(&format!(
                "SELECT DISTINCT subscription_id, customer_id FROM discounts WHERE {column} = $1"
            ))
            .bind(&object_id)
            .fetch_all(&mut *conn)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get(0)?, r.try_get(1)?));
            }
            out
        }
        _ => return Ok(()),
    };
    let mut subscriptions: Vec<String> = Vec::new();
    for (subscription, customer) in discounts {
        match (subscription, customer) {
            (Some(s), _) => subscriptions.push(s),
            // The customer's own discount: every subscription of the customer.
            (None, Some(c)) => {
                let ids: Vec<String> =
                    sqlx::query_scalar("SELECT DISTINCT subscription_id FROM subscription_mrr WHERE customer_id = $1")
                        .bind(&c)
                        .fetch_all(&mut *conn)
                        .await?;
                subscriptions.extend(ids);
            }
            (None, None) => {}
        }
    }
    subscriptions.sort();
    subscriptions.dedup();
    for sub in subscriptions {
        settle_and_rebuild(conn, &sub).await?;
    }
    Ok(())
}

/// Settles the subscriptions whose next discount boundary has passed; returns how many.
pub async fn settle_due(db: &crate::db::Db) -> Result<usize, crate::db::DbError> {
    let due: Vec<String> =
        sqlx::query_scalar("SELECT subscription_id FROM mrr_boundaries WHERE due_at <= $1 ORDER BY due_at LIMIT 100")
            .bind(crate::db::now_unix())
            .fetch_all(db.reader())
            .await?;
    for sub in &due {
        let mut tx = super::Tx::begin(db).await?;
        settle_and_rebuild(&mut tx, sub)
            .await
            .map_err(|e| crate::db::DbError::Query(sqlx::Error::Protocol(e.to_string())))?;
        tx.commit().await?;
    }
    Ok(due.len())
}

/// Makes the stored history follow `policy` and carry bases: at start, after a change of
/// `MRR_DISCOUNTS` or an upgrade from a version without bases, every subscription's history is
/// recomputed (snapshots written before bases were kept get theirs from the inbox event or the
/// row that wrote them, where those still exist).
pub async fn use_policy(db: &crate::db::Db, policy: DiscountPolicy) -> Result<usize, crate::db::DbError> {
    // Two settings read at every start; the history is read only when something changed.
    let current = crate::db::settings::get(db, POLICY_KEY).await?;
    let bases = crate::db::settings::get(db, BASES_KEY).await?;
    if current.as_deref() == Some(policy.as_str()) && bases.as_deref() == Some("1") {
        return Ok(0);
    }
    let to_db = |e: ProjectionError| crate::db::DbError::Query(sqlx::Error::Protocol(e.to_string()));
    if bases.as_deref() != Some("1") {
        fill_bases(db).await?;
    }
    crate::db::settings::set(db, POLICY_KEY, policy.as_str()).await?;
    // Every subscription with a history (paged along the history's primary key), a transaction
    // per page, then rows that never had one (written before MRR was tracked).
    let mut after = String::new();
    let mut settled = 0usize;
    loop {
        let page: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT subscription_id FROM subscription_mrr WHERE subscription_id > $1 \
             ORDER BY subscription_id LIMIT 500",
        )
        .bind(&after)
        .fetch_all(db.reader())
        .await?;
        let Some(last) = page.last().cloned() else { break };
        let mut tx = super::Tx::begin(db).await?;
        for sub in &page {
            settle_and_rebuild(&mut tx, sub).await.map_err(to_db)?;
        }
        tx.commit().await?;
        settled += page.len();
        after = last;
    }
    let unset: Vec<String> = sqlx::query_scalar("SELECT id FROM subscriptions WHERE mrr IS NULL")
        .fetch_all(db.reader())
        .await?;
    let mut tx = super::Tx::begin(db).await?;
    for sub in &unset {
        settle_and_rebuild(&mut tx, sub).await.map_err(to_db)?;
    }
    crate::db::cache::bump_counter(&mut tx, crate::db::cache::MOVEMENTS_CLOSED).await?;
    tx.commit().await?;
    crate::db::settings::set(db, BASES_KEY, "1").await?;
    settled += unset.len();
    if settled > 0 {
        tracing::info!(
            subscriptions = settled,
            policy = policy.as_str(),
            "MRR history recomputed"
        );
    }
    Ok(settled)
}

/// Gives snapshots written before bases were kept the basis of the version that wrote them: the
/// inbox event's object, or the row when it still holds that version.
async fn fill_bases(db: &crate::db::Db) -> Result<(), crate::db::DbError> {
    loop {
        let rows = sqlx::query(
            "SELECT m.subscription_id, m.at, m.event_id, e.payload, s.raw FROM subscription_mrr m \
             LEFT JOIN stripe_events e ON e.id = m.event_id \
             LEFT JOIN subscriptions s ON s.id = m.subscription_id AND s.version_at = m.at AND s.version_event = m.event_id \
             WHERE m.basis IS NULL AND m.event_id <> $1 LIMIT 500",
        )
        .bind(BOUNDARY)
        .fetch_all(db.reader())
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = db.begin().await?;
        for r in &rows {
            let (sub, at): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
            let payload: Option<String> = r.try_get(3)?;
            let raw: Option<String> = r.try_get(4)?;
            let object = payload
                .and_then(|p| serde_json::from_str::<Value>(&p).ok())
                .and_then(|e| super::read::at(&e, &["data", "object"]).cloned())
                .or_else(|| raw.and_then(|r| serde_json::from_str::<Value>(&r).ok()));
            // Without a source the snapshot keeps its figure; an empty basis marks it done.
            let basis = match object {
                Some(o) => basis_json(&o),
                None => String::new(),
            };
            sqlx::query("UPDATE subscription_mrr SET basis = $1 WHERE subscription_id = $2 AND at = $3")
                .bind(basis)
                .bind(&sub)
                .bind(at)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
}
