//! Reading the inbox (table `stripe_events`, written by `webhooks::inbox`): the Webhooks page's
//! list and detail, a customer's timeline, and the inbox's health and depth.

use sqlx::Row;

use super::{Db, DbError};
use crate::domain::events::{EventRow, EventStatus};

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventFilter {
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub object_id: Option<String>,
    pub from: Option<i64>,
    pub until: Option<i64>,
    pub before_received: Option<(i64, String)>,
    /// The accounts whose events are listed (`account_id` NULL: the environment's).
    pub scope: crate::domain::accounts::Scope,
}

fn summary(row: &sqlx::any::AnyRow) -> Result<EventRow, sqlx::Error> {
    Ok(EventRow {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        event_type: row.try_get("type")?,
        created: row.try_get("created")?,
        received_at: row.try_get("received_at")?,
        status: {
            let status: String = row.try_get("status")?;
            EventStatus::parse(&status)
                .ok_or_else(|| sqlx::Error::Decode(format!("unknown event status {status:?}").into()))?
        },
        attempts: row.try_get("attempts")?,
        object_id: row.try_get("object_id")?,
        livemode: row.try_get::<i64, _>("livemode")? != 0,
        mode_mismatch: row.try_get::<i64, _>("mode_mismatch")? != 0,
        last_error: row.try_get("last_error")?,
    })
}

const SUMMARY_COLUMNS: &str =
    "id, type, created, received_at, status, attempts, object_id, livemode, mode_mismatch, last_error, account_id";

/// Newest first.
pub async fn list(db: &Db, filter: &EventFilter, limit: i64) -> Result<Vec<EventRow>, DbError> {
    let (before_at, before_id) = filter.before_received.clone().unzip();
    let rows = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM stripe_events \
         WHERE ($1 IS NULL OR type = $1) AND ($2 IS NULL OR status = $2) AND ($3 IS NULL OR object_id = $3) \
           AND ($4 IS NULL OR received_at >= $4) AND ($5 IS NULL OR received_at < $5) \
           AND ($6 IS NULL OR received_at < $6 OR (received_at = $6 AND id < $7)) AND {} \
         ORDER BY received_at DESC, id DESC LIMIT $8",
        filter.scope.filter("COALESCE(account_id, '')")
    ))
    .bind(filter.event_type.as_deref())
    .bind(filter.status.as_deref())
    .bind(filter.object_id.as_deref())
    .bind(filter.from)
    .bind(filter.until)
    .bind(before_at)
    .bind(before_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
}

/// Events about a customer or its subscriptions, invoices, charges, payment intents and payment
/// methods, newest first.
pub async fn for_customer(db: &Db, customer_id: &str, limit: i64) -> Result<Vec<EventRow>, DbError> {
    let rows = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM stripe_events WHERE object_id = $1 OR object_id IN ( \
           SELECT id FROM subscriptions WHERE customer_id = $1 UNION SELECT id FROM invoices WHERE customer_id = $1 \
           UNION SELECT id FROM charges WHERE customer_id = $1 UNION SELECT id FROM payment_intents WHERE customer_id = $1 \
           UNION SELECT id FROM payment_methods WHERE customer_id = $1) \
         ORDER BY created DESC, id DESC LIMIT $2"
    ))
    .bind(customer_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    Ok(rows.iter().map(summary).collect::<Result<_, _>>()?)
}

/// One event with its payload.
pub async fn get(db: &Db, id: &str) -> Result<Option<(EventRow, String)>, DbError> {
    let row = sqlx::query(&format!(
        "SELECT {SUMMARY_COLUMNS}, payload FROM stripe_events WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    match row {
        Some(row) => Ok(Some((summary(&row)?, row.try_get("payload")?))),
        None => Ok(None),
    }
}

/// What the overview needs to warn about webhooks. Each figure is read through an index, so the
/// cost does not grow with the number of events kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InboxHealth {
    /// Events (from any source) that failed for good.
    pub failed: i64,
    /// Events waiting to be applied.
    pub pending: i64,
    /// When the last webhook arrived.
    pub last_received_at: Option<i64>,
    /// Subscriptions whose items (invoices whose lines) Stripe sent only in part.
    pub incomplete_subscriptions: i64,
    pub incomplete_invoices: i64,
}

pub async fn health(db: &Db) -> Result<InboxHealth, DbError> {
    let failed: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM stripe_events WHERE status = 'failed'")
        .fetch_one(db.reader())
        .await?;
    let pending: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM stripe_events WHERE status IN ('pending', 'processing')",
    )
    .fetch_one(db.reader())
    .await?;
    let last_received_at: Option<i64> = sqlx::query_scalar(
        "SELECT received_at FROM stripe_events WHERE source = 'webhook' ORDER BY received_at DESC LIMIT 1",
    )
    .fetch_optional(db.reader())
    .await?;
    // Few rows are ever incomplete: partial indexes hold just those (migration 0014).
    let incomplete_subscriptions: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions WHERE items_incomplete = 1 AND deleted = 0",
    )
    .fetch_one(db.reader())
    .await?;
    let incomplete_invoices: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM invoices WHERE lines_incomplete = 1 AND deleted = 0")
            .fetch_one(db.reader())
            .await?;
    Ok(InboxHealth {
        failed,
        pending,
        last_received_at,
        incomplete_subscriptions,
        incomplete_invoices,
    })
}

/// Events waiting (pending), being applied (processing) and given up on (failed), counted now.
pub async fn depth(db: &Db) -> Result<Vec<(String, i64)>, DbError> {
    Ok(sqlx::query_as::<_, (String, i64)>(
        "SELECT status, CAST(COUNT(*) AS BIGINT) FROM stripe_events WHERE status IN ('pending', 'processing', 'failed') GROUP BY status",
    )
    .fetch_all(db.reader())
    .await?)
}
