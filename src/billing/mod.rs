//! What Tally does at Stripe on behalf of admins, customers and the operator's backend:
//! Checkout, the billing portal, refunds, subscription changes and the payments API.

pub mod api_v1;
pub mod portal_link;
pub mod refunds;

use serde_json::Value;

use crate::db::{now_unix, Db};
use crate::domain::resource::Resource;
use crate::projection;

/// Writes an object Stripe returned from an API call through the projection, as every fetched
/// object is written (`projection::apply_fetched`): dated by the time the request was sent, so a
/// webhook about a change made since still wins.
pub async fn project(db: &Db, account: &str, resource: Resource, object: &Value, sent_at: i64) -> Result<(), String> {
    projection::apply_fetched(db, account, resource, object, sent_at)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// As `project`, logging instead of failing: the action at Stripe succeeded, and its webhook will
/// bring the same data anyway.
pub async fn project_or_log(db: &Db, account: &str, resource: Resource, object: &Value, sent_at: i64) {
    if let Err(e) = project(db, account, resource, object, sent_at).await {
        tracing::warn!(error = %e, resource = resource.table(), "could not store what Stripe returned; the webhook will");
    }
}

/// The current time, taken before a call to Stripe (see `project`).
pub fn sent_at() -> i64 {
    now_unix()
}
