//! Drift report: lists each object type at Stripe and compares it with the local rows: objects
//! missing here, objects here that Stripe no longer lists, and differing statuses, amounts and
//! other key fields. Read through the same column extraction as projection, so "equal" means
//! "projection would write the same".

use std::collections::HashMap;

use sqlx::Row;

use crate::db::{now_unix, Db};
use crate::stripe::StripeApi;
use crate::webhooks::projection::{Col, Resource};

use super::{SyncError, ORDER};
pub use crate::domain::sync_report::{DiffKind, Difference, DriftReport, TypeSummary};

/// The columns compared, where a type has them: what the figures and pages depend on.
const COMPARED: [&str; 14] = [
    "status",
    "payment_status",
    "amount",
    "amount_refunded",
    "amount_due",
    "amount_paid",
    "total",
    "unit_amount",
    "currency",
    "active",
    "email",
    "cancel_at_period_end",
    "customer_id",
    "evidence_due_by",
];

/// At most this many differences are listed (all are counted).
pub const MAX_LISTED: usize = 500;

fn col_text(col: &Col) -> Option<String> {
    match col {
        Col::Text(t) => t.clone(),
        Col::Int(i) => i.map(|i| i.to_string()),
    }
}

/// Compares the given types (all when empty), calling `progress` after each type.
pub async fn run(
    db: &Db,
    stripe: &dyn StripeApi,
    only: &[Resource],
    mut progress: impl FnMut(&TypeSummary),
) -> Result<DriftReport, SyncError> {
    let started = now_unix();
    let mut report = DriftReport {
        checked_at: started,
        ..Default::default()
    };
    for resource in ORDER.into_iter().filter(|r| only.is_empty() || only.contains(r)) {
        let mut summary = TypeSummary {
            resource: resource.table().to_string(),
            ..Default::default()
        };
        // Stripe's side: id → compared fields.
        let mut remote: HashMap<String, Vec<(&'static str, Option<String>)>> = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = stripe.list(resource, cursor.as_deref(), None).await?;
            for object in &page.data {
                let Some(id) = object.get("id").and_then(|v| v.as_str()) else {
                    continue;
                };
                let fields = resource
                    .columns(object)
                    .iter()
                    .filter(|(name, _)| COMPARED.contains(name))
                    .map(|(name, col)| (*name, col_text(col)))
                    .collect();
                remote.insert(id.to_string(), fields);
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
        summary.at_stripe = remote.len() as i64;

        // Our side: rows not deleted, created before the check began (newer ones may postdate
        // Stripe's list).
        let names: Vec<&'static str> = resource
            .columns(&serde_json::Value::Null)
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| COMPARED.contains(name))
            .collect();
        let select: Vec<String> = names.iter().map(|n| format!("CAST({n} AS TEXT) AS {n}")).collect();
        let sql = format!(
            "SELECT id{}{} FROM {} WHERE deleted = 0 AND (created IS NULL OR created <= $1) ORDER BY id",
            if select.is_empty() { "" } else { ", " },
            select.join(", "),
            resource.table()
        );
        let rows = sqlx::query(&sql).bind(started).fetch_all(db.reader()).await?;
        summary.here = rows.len() as i64;
        let mut differences = Vec::new();
        for row in &rows {
            let id: String = row.try_get("id")?;
            let Some(fields) = remote.remove(&id) else {
                summary.not_at_stripe += 1;
                differences.push(Difference {
                    resource: resource.table().into(),
                    id,
                    kind: DiffKind::NotAtStripe,
                    field: None,
                    here: None,
                    stripe: None,
                });
                continue;
            };
            let mut changed = false;
            for (name, theirs) in fields {
                let ours: Option<String> = row.try_get(name)?;
                if ours != theirs {
                    changed = true;
                    differences.push(Difference {
                        resource: resource.table().into(),
                        id: id.clone(),
                        kind: DiffKind::Changed,
                        field: Some(name.to_string()),
                        here: ours,
                        stripe: theirs,
                    });
                }
            }
            summary.changed += i64::from(changed);
        }
        let mut missing: Vec<String> = remote.into_keys().collect();
        missing.sort();
        summary.missing_here = missing.len() as i64;
        differences.extend(missing.into_iter().map(|id| Difference {
            resource: resource.table().into(),
            id,
            kind: DiffKind::MissingHere,
            field: None,
            here: None,
            stripe: None,
        }));
        report.total_differences += differences.len() as i64;
        let room = MAX_LISTED.saturating_sub(report.differences.len());
        report.differences.extend(differences.into_iter().take(room));
        progress(&summary);
        report.types.push(summary);
    }
    Ok(report)
}
