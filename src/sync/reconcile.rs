//! Reconciliation: lists Stripe's events of the last days (Stripe keeps 30) and passes every one
//! the inbox lacks through the normal inbox, so the worker applies it like a webhook. Catches what
//! was missed while Tally was down longer than Stripe retries, or behind a broken endpoint.

use sqlx::Row;

use crate::db::{now_unix, Db};
use crate::stripe::StripeApi;
use crate::webhooks::inbox::{self, IncomingEvent, Source};

use super::SyncError;
use crate::domain::sync_report::ReconcileReport;

/// Stripe's event retention.
pub const MAX_DAYS: u32 = 30;

/// Lists events created in the last `days` (1–30) and stores the missing ones. `expected_livemode`
/// is the configured key's mode, as for webhooks.
pub async fn run(
    db: &Db,
    stripe: &dyn StripeApi,
    days: u32,
    expected_livemode: Option<bool>,
    progress: impl FnMut(&ReconcileReport),
) -> Result<ReconcileReport, SyncError> {
    run_for(
        db,
        crate::domain::accounts::ENVIRONMENT,
        stripe,
        days,
        expected_livemode,
        progress,
    )
    .await
}

/// `run` for `account` (`stripe` acts for it): the events it stores are filed under it.
pub async fn run_for(
    db: &Db,
    account: &str,
    stripe: &dyn StripeApi,
    days: u32,
    expected_livemode: Option<bool>,
    mut progress: impl FnMut(&ReconcileReport),
) -> Result<ReconcileReport, SyncError> {
    let days = days.clamp(1, MAX_DAYS);
    let since = now_unix() - i64::from(days) * 86_400;
    let filters = [("created[gte]".to_string(), since.to_string())];
    let mut report = ReconcileReport {
        days,
        ..Default::default()
    };
    let mut cursor: Option<String> = None;
    loop {
        let page = match stripe.list_path("/events", &filters, cursor.as_deref()).await {
            Ok(page) => page,
            Err(e) => match super::skip_reason(&e, "/events") {
                Some(reason) => {
                    tracing::warn!(reason, "reconciliation skipped: the key cannot list events");
                    report.skipped = Some(reason);
                    return Ok(report);
                }
                None => return Err(e.into()),
            },
        };
        report.listed += page.data.len() as i64;
        let ids: Vec<&str> = page.data.iter().filter_map(|e| e.get("id")?.as_str()).collect();
        let known = known_ids(db, &ids).await?;
        report.retried_failed += retry_failed(db, &ids).await?;
        for event in &page.data {
            let Some(id) = event.get("id").and_then(|v| v.as_str()) else {
                continue;
            };
            if known.contains(id) {
                continue;
            }
            let mut parsed = IncomingEvent::parse(&event.to_string()).map_err(|why| SyncError::Apply {
                id: id.to_string(),
                message: why.to_string(),
            })?;
            // Another account's events are filed under it, as its webhooks are.
            if account != crate::domain::accounts::ENVIRONMENT && parsed.account.is_none() {
                parsed.received_for = Some(account.to_string());
            }
            if inbox::store(db, &parsed, Source::Reconcile, expected_livemode).await? {
                report.missing += 1;
                if report.missing_ids.len() < 100 {
                    report.missing_ids.push(id.to_string());
                }
                tracing::info!(event_id = id, event_type = %parsed.event_type, "reconciliation stored a missed event");
            }
        }
        progress(&report);
        cursor = ids.last().map(|s| s.to_string()).or(cursor);
        if !page.has_more || page.data.is_empty() {
            break;
        }
    }
    Ok(report)
}

/// Events of the window that failed to apply (after all their retries) are applied again: the
/// cause (an outage, a bug since fixed) may be gone. Returns how many were set to run again.
async fn retry_failed(db: &Db, ids: &[&str]) -> Result<i64, SyncError> {
    let count = inbox::requeue_failed(db, inbox::Failed::Ids(ids)).await?;
    if count > 0 {
        tracing::info!(events = count, "reconciliation set failed events to be applied again");
    }
    Ok(count as i64)
}

/// Which of these event ids the inbox already has.
async fn known_ids(db: &Db, ids: &[&str]) -> Result<std::collections::HashSet<String>, SyncError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT id FROM stripe_events WHERE id IN ({})", placeholders.join(", "));
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    let rows = query.fetch_all(db.reader()).await?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect::<Result<_, _>>()
        .map_err(SyncError::from)
}
