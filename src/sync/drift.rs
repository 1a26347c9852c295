//! Drift report: lists each object type at Stripe and compares it with the local rows: objects
//! missing here, objects here that Stripe no longer lists, and differing fields, namely what the
//! figures and pages depend on (a subscription's status, items with their price and quantity,
//! period end, cancellation at period end and trial end; an invoice's status and amounts; a
//! charge's amount, capture and refunds; refund and dispute statuses; a customer's email). Read
//! through the same column extraction as projection, so "equal" means "projection would write the
//! same". A difference is re-fetched from Stripe (and re-read here) before it is reported, so an
//! object that changed while the check ran is not drift.

use std::collections::HashMap;

use serde_json::Value;
use sqlx::Row;

use crate::db::{now_unix, Db};
use crate::domain::resource::Resource;
use crate::projection::{self, Col};
use crate::stripe::{ErrorKind, StripeApi};

use super::{SyncError, ORDER};
use crate::domain::sync_report::{DiffKind, Difference, DriftReport, TypeSummary};

/// The columns compared, where a type has them: what the figures and pages depend on.
const COMPARED: [&str; 21] = [
    "status",
    "payment_status",
    "amount",
    "amount_captured",
    "captured",
    "amount_refunded",
    "amount_due",
    "amount_paid",
    "amount_remaining",
    "total",
    "unit_amount",
    "currency",
    "active",
    "email",
    "cancel_at_period_end",
    "cancel_at",
    "current_period_end",
    "trial_end",
    "customer_id",
    "evidence_due_by",
    "recurring_interval",
];

/// A subscription's items as one comparable value: price × quantity, in price order.
const ITEMS: &str = "items";

/// At most this many differences are listed (all are counted).
pub const MAX_LISTED: usize = 500;
/// At most this many differing objects are re-fetched to confirm them; past that, differences are
/// reported as listed.
pub const MAX_CONFIRMED: usize = 500;

type Fields = Vec<(&'static str, Option<String>)>;
/// An item's price id and quantity.
type Item = (Option<String>, Option<i64>);

fn col_text(col: &Col) -> Option<String> {
    match col {
        Col::Text(t) => t.clone(),
        Col::Int(i) => i.map(|i| i.to_string()),
    }
}

/// Price × quantity of each item, sorted: a plan change, a quantity change or a monthly → yearly
/// switch (another price) all change it.
fn items_summary(items: impl IntoIterator<Item = Item>) -> String {
    let mut parts: Vec<String> = items
        .into_iter()
        .map(|(price, qty)| {
            format!(
                "{} x{}",
                price.unwrap_or_else(|| "?".into()),
                qty.map_or("?".into(), |q| q.to_string())
            )
        })
        .collect();
    parts.sort();
    parts.join(", ")
}

/// Stripe's side of one object.
fn remote_fields(resource: Resource, object: &Value) -> Fields {
    let mut fields: Fields = resource
        .columns(object)
        .iter()
        .filter(|(name, _)| COMPARED.contains(name))
        .map(|(name, col)| (*name, col_text(col)))
        .collect();
    if resource == Resource::Subscription {
        let items = projection::read::list(object.get("items")).iter().map(|item| {
            let price = projection::id(item, "price").or_else(|| projection::id(item, "plan"));
            (price, projection::int(item, "quantity"))
        });
        fields.push((ITEMS, Some(items_summary(items))));
    }
    fields
}

/// The compared columns a type has.
fn compared_columns(resource: Resource) -> Vec<&'static str> {
    resource
        .columns(&Value::Null)
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| COMPARED.contains(name))
        .collect()
}

/// Which of our rows to read.
#[derive(Clone, Copy)]
enum Rows<'a> {
    /// Every row created before the check began (newer ones may postdate Stripe's list).
    CreatedBefore(i64),
    /// One row, read again to confirm a difference.
    One(&'a str),
}

/// Our side: rows not deleted, as id → fields.
async fn local_fields(
    db: &Db,
    account: &str,
    resource: Resource,
    which: Rows<'_>,
) -> Result<Vec<(String, Fields)>, SyncError> {
    let names = compared_columns(resource);
    let select: Vec<String> = names.iter().map(|n| format!(", CAST({n} AS TEXT) AS {n}")).collect();
    let filter = match which {
        Rows::CreatedBefore(_) => "(created IS NULL OR created <= $1)",
        Rows::One(_) => "id = $1",
    };
    let sql = format!(
        "SELECT id{} FROM {} WHERE deleted = 0 AND {filter} AND account_id = $2 ORDER BY id",
        select.concat(),
        resource.table()
    );
    let query = sqlx::query(&sql);
    let query = match which {
        Rows::CreatedBefore(t) => query.bind(t),
        Rows::One(id) => query.bind(id),
    };
    let rows = query.bind(account).fetch_all(db.reader()).await?;
    let mut items: HashMap<String, Vec<Item>> = HashMap::new();
    if resource == Resource::Subscription {
        let sql = "SELECT subscription_id, price_id, quantity FROM subscription_items";
        let found = match which {
            Rows::CreatedBefore(_) => {
                sqlx::query(&format!("{sql} WHERE account_id = $1"))
                    .bind(account)
                    .fetch_all(db.reader())
                    .await?
            }
            Rows::One(id) => {
                sqlx::query(&format!("{sql} WHERE subscription_id = $1"))
                    .bind(id)
                    .fetch_all(db.reader())
                    .await?
            }
        };
        for r in found {
            items
                .entry(r.try_get("subscription_id")?)
                .or_default()
                .push((r.try_get("price_id")?, r.try_get("quantity")?));
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("id")?;
        let mut fields = Fields::new();
        for name in &names {
            fields.push((*name, row.try_get(*name)?));
        }
        if resource == Resource::Subscription {
            fields.push((ITEMS, Some(items_summary(items.remove(&id).unwrap_or_default()))));
        }
        out.push((id, fields));
    }
    Ok(out)
}

/// The differences between our fields and Stripe's (`None` on a side: the object is not there).
fn compare(resource: Resource, id: &str, ours: Option<&Fields>, theirs: Option<&Fields>) -> Vec<Difference> {
    let difference = |kind, field: Option<&str>, here, stripe| Difference {
        resource: resource.table().into(),
        id: id.to_string(),
        kind,
        field: field.map(str::to_string),
        here,
        stripe,
    };
    match (ours, theirs) {
        (None, None) => Vec::new(),
        (Some(_), None) => vec![difference(DiffKind::NotAtStripe, None, None, None)],
        (None, Some(_)) => vec![difference(DiffKind::MissingHere, None, None, None)],
        (Some(ours), Some(theirs)) => theirs
            .iter()
            .filter_map(|(name, value)| {
                let here = ours.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.clone());
                (here != *value).then(|| difference(DiffKind::Changed, Some(name), here, value.clone()))
            })
            .collect(),
    }
}

/// Stripe's current state of one object (`None`: gone or deleted there).
async fn fetch_fields(stripe: &dyn StripeApi, resource: Resource, id: &str) -> Result<Option<Fields>, SyncError> {
    match stripe.retrieve(resource, id).await {
        Ok(mut object) => {
            if object.get("deleted").and_then(Value::as_bool) == Some(true) {
                return Ok(None);
            }
            crate::stripe::complete_nested_lists(stripe, resource, &mut object).await?;
            Ok(Some(remote_fields(resource, &object)))
        }
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Compares the environment's account's given types (all when empty), calling `progress` after
/// each type.
pub async fn run(
    db: &Db,
    stripe: &dyn StripeApi,
    only: &[Resource],
    progress: impl FnMut(&TypeSummary),
) -> Result<DriftReport, SyncError> {
    run_for(db, crate::domain::accounts::ENVIRONMENT, stripe, only, progress).await
}

/// `run` for `account`, with the client acting for it: only its rows are compared.
pub async fn run_for(
    db: &Db,
    account: &str,
    stripe: &dyn StripeApi,
    only: &[Resource],
    mut progress: impl FnMut(&TypeSummary),
) -> Result<DriftReport, SyncError> {
    let started = now_unix();
    let mut report = DriftReport {
        checked_at: started,
        ..Default::default()
    };
    let mut confirmed_budget = MAX_CONFIRMED;
    for resource in ORDER.into_iter().filter(|r| only.is_empty() || only.contains(r)) {
        let mut summary = TypeSummary {
            resource: resource.table().to_string(),
            ..Default::default()
        };
        // Stripe's side: id → compared fields.
        let mut remote: HashMap<String, Fields> = HashMap::new();
        let mut cursor: Option<String> = None;
        let mut skipped = None;
        loop {
            let mut page = match stripe
                .list(resource, cursor.as_deref(), crate::stripe::Created::ALL)
                .await
            {
                Ok(page) => page,
                Err(e) => match super::skip_reason(&e, crate::stripe::path(resource)) {
                    Some(reason) => {
                        skipped = Some(reason);
                        break;
                    }
                    None => return Err(e.into()),
                },
            };
            for object in &mut page.data {
                let Some(id) = object.get("id").and_then(|v| v.as_str()).map(str::to_string) else {
                    continue;
                };
                crate::stripe::complete_nested_lists(stripe, resource, object).await?;
                remote.insert(id, remote_fields(resource, object));
            }
            cursor = page
                .data
                .last()
                .and_then(|o| o.get("id"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .or(cursor);
            if !page.has_more || page.data.is_empty() {
                break;
            }
        }
        if skipped.is_some() {
            summary.skipped = skipped;
            progress(&summary);
            report.types.push(summary);
            continue;
        }
        summary.at_stripe = remote.len() as i64;

        // Our side: rows not deleted, created before the check began (newer ones may postdate
        // Stripe's list).
        let rows = local_fields(db, account, resource, Rows::CreatedBefore(started)).await?;
        summary.here = rows.len() as i64;
        let mut suspects: Vec<(String, Vec<Difference>)> = Vec::new();
        for (id, ours) in &rows {
            let theirs = remote.remove(id);
            let found = compare(resource, id, Some(ours), theirs.as_ref());
            if !found.is_empty() {
                suspects.push((id.clone(), found));
            }
        }
        let mut missing: Vec<String> = remote.into_keys().collect();
        missing.sort();
        for id in missing {
            let found = compare(resource, &id, None, Some(&Fields::new()));
            suspects.push((id, found));
        }

        // Each suspect is looked at again on both sides before it is reported.
        let mut differences = Vec::new();
        for (id, found) in suspects {
            let found = if confirmed_budget > 0 {
                confirmed_budget -= 1;
                let theirs = fetch_fields(stripe, resource, &id).await?;
                let ours = local_fields(db, account, resource, Rows::One(&id))
                    .await?
                    .pop()
                    .map(|(_, f)| f);
                compare(resource, &id, ours.as_ref(), theirs.as_ref())
            } else {
                found
            };
            match found.first().map(|d| &d.kind) {
                None => continue,
                Some(DiffKind::MissingHere) => summary.missing_here += 1,
                Some(DiffKind::NotAtStripe) => summary.not_at_stripe += 1,
                Some(DiffKind::Changed) => summary.changed += 1,
            }
            differences.extend(found);
        }
        report.total_differences += differences.len() as i64;
        let room = MAX_LISTED.saturating_sub(report.differences.len());
        report.differences.extend(differences.into_iter().take(room));
        progress(&summary);
        report.types.push(summary);
    }
    Ok(report)
}
