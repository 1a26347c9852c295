//! The audit log: who did what, when, from where, and how it ended.

use sqlx::Row;

use super::{now_unix, Db, DbError};
use crate::domain::audit::AuditRow;

/// One entry to record. Targets are ids (`admin:3`, `re_123`), never secrets.
#[derive(Clone, Debug, Default)]
pub struct NewEntry {
    pub admin_id: Option<i64>,
    pub admin_email: Option<String>,
    pub action: &'static str,
    pub target: Option<String>,
    pub outcome: &'static str,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
    /// The Stripe account the action concerned (`''`: the environment's), for actions at Stripe.
    pub account_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    pub admin_email: Option<String>,
    pub action: Option<String>,
    /// Unix seconds, inclusive.
    pub from: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
    /// Entries with an id below this one (keyset pagination, newest first).
    pub before_id: Option<i64>,
}

pub async fn record(db: &Db, entry: NewEntry) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO audit_log (at, admin_id, admin_email, action, target, outcome, client_addr, request_id, detail, \
         account_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(now_unix())
    .bind(entry.admin_id)
    .bind(entry.admin_email)
    .bind(entry.action)
    .bind(entry.target)
    .bind(entry.outcome)
    .bind(entry.client_addr)
    .bind(entry.request_id)
    .bind(entry.detail)
    .bind(entry.account_id)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Newest first, at most `limit` entries matching `filter`.
pub async fn list(db: &Db, filter: &Filter, limit: i64) -> Result<Vec<AuditRow>, DbError> {
    // Each condition is either active or neutralised by its NULL parameter, so the SQL is fixed.
    let rows = sqlx::query(
        "SELECT id, at, admin_email, action, target, outcome, client_addr, request_id, detail FROM audit_log \
         WHERE ($1 IS NULL OR admin_email = $1) AND ($2 IS NULL OR action = $2) \
           AND ($3 IS NULL OR at >= $3) AND ($4 IS NULL OR at < $4) AND ($5 IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $6",
    )
    .bind(filter.admin_email.as_deref())
    .bind(filter.action.as_deref())
    .bind(filter.from)
    .bind(filter.until)
    .bind(filter.before_id)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(AuditRow {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                admin_email: row.try_get("admin_email")?,
                action: row.try_get("action")?,
                target: row.try_get("target")?,
                outcome: row.try_get("outcome")?,
                client_addr: row.try_get("client_addr")?,
                request_id: row.try_get("request_id")?,
                detail: row.try_get("detail")?,
            })
        })
        .collect()
}

/// The distinct actions recorded so far, for the filter menu.
pub async fn actions(db: &Db) -> Result<Vec<String>, DbError> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT action FROM audit_log ORDER BY action")
            .fetch_all(db.reader())
            .await?,
    )
}
