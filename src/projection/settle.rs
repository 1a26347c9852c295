//! Ties: two writes of one object at the same second. The version rule alone cannot say which is
//! later, so every version of that second known to Tally (the inbox's events about the object, the
//! row's current state, the version being applied) is weighed by `order::latest`, and the winner
//! stands. When the versions differ, the object is also queued to be fetched from Stripe
//! (`stripe_fetches`, drained by `sync::fetches` when a key is configured): Stripe's answer
//! replaces the judgement. The same queue completes objects whose embedded lists Stripe cut short.

use serde_json::Value;
use sqlx::{AnyConnection, Row};

use super::order::{self, Candidate};
use super::{is_handled, read, ProjectionError, DELETION_EVENT_TYPES};
use crate::domain::resource::Resource;

/// Why an object is queued for a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FetchReason {
    /// Versions of the same second differ.
    Tie,
    /// Stripe embedded only the first page of a list (items, lines).
    IncompleteList,
    /// A subscription lists a discount (or a discount names a coupon or promotion code) Tally has
    /// not seen.
    UnknownDiscount,
}

impl FetchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FetchReason::Tie => "tie",
            FetchReason::IncompleteList => "incomplete_list",
            FetchReason::UnknownDiscount => "unknown_discount",
        }
    }
}

/// Seconds after the tied second before the fetch is sent: a change later in that second (on
/// Stripe's clock, which may differ a little from ours) is then in Stripe's answer.
pub const TIE_FETCH_DELAY_SECS: i64 = super::FETCH_MARGIN_SECS + 1;

/// The inbox's versions of the object at second `at`: events Tally applies (not about a connected
/// account, not of the other mode, not deletions) whose object is this one.
async fn inbox_versions(
    conn: &mut AnyConnection,
    resource: Resource,
    id: &str,
    at: i64,
) -> Result<Vec<Candidate>, ProjectionError> {
    let rows = sqlx::query(
        "SELECT id, type, payload FROM stripe_events \
         WHERE object_id = $1 AND created = $2 AND account IS NULL AND mode_mismatch = 0",
    )
    .bind(id)
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let event_type: String = row.try_get("type")?;
        if !is_handled(&event_type) || DELETION_EVENT_TYPES.contains(&event_type.as_str()) {
            continue;
        }
        let payload: String = row.try_get("payload")?;
        let Ok(event) = serde_json::from_str::<Value>(&payload) else {
            continue;
        };
        let Some(object) = read::at(&event, &["data", "object"]) else {
            continue;
        };
        if Resource::of_object(object) != Some(resource) || object.get("deleted").and_then(Value::as_bool) == Some(true)
        {
            continue;
        }
        out.push(Candidate {
            event_id: row.try_get("id")?,
            event_type: Some(event_type),
            object: object.clone(),
            previous: read::at(&event, &["data", "previous_attributes"]).cloned(),
        });
    }
    Ok(out)
}

/// A refund also travels inside its charge's events (`charge.refunded` embeds the charge's
/// refunds): those copies of the same second are versions too.
async fn embedded_refund_versions(
    conn: &mut AnyConnection,
    refund_id: &str,
    charge_id: &str,
    at: i64,
) -> Result<Vec<Candidate>, ProjectionError> {
    let mut out = Vec::new();
    for charge in inbox_versions(conn, Resource::Charge, charge_id, at).await? {
        let copy = read::list(charge.object.get("refunds"))
            .iter()
            .find(|r| read::text(r, "id").as_deref() == Some(refund_id));
        if let Some(refund) = copy {
            out.push(Candidate {
                event_id: charge.event_id,
                event_type: None,
                object: refund.clone(),
                previous: None,
            });
        }
    }
    Ok(out)
}

/// The version that stands for the object at second `at`, among `known` (the version being
/// applied first, then the row's, when at that second) and the inbox's; and whether the versions
/// differ (then Stripe is asked, when a key is configured).
pub async fn latest_of_second(
    conn: &mut AnyConnection,
    resource: Resource,
    id: &str,
    at: i64,
    known: Vec<Candidate>,
) -> Result<(Candidate, bool), ProjectionError> {
    let mut found = inbox_versions(conn, resource, id, at).await?;
    if resource == Resource::Refund {
        if let Some(charge) = known.iter().find_map(|c| read::id(&c.object, "charge")) {
            found.extend(embedded_refund_versions(conn, id, &charge, at).await?);
        }
    }
    let mut all: Vec<Candidate> = Vec::new();
    for c in known.into_iter().chain(found) {
        match all.iter_mut().find(|k| k.event_id == c.event_id) {
            // The same event seen twice: keep the object first given (a refetched one), learn the
            // event's type and previous attributes from the inbox.
            Some(k) => {
                if k.event_type.is_none() {
                    k.event_type = c.event_type;
                }
                if k.previous.is_none() {
                    k.previous = c.previous;
                }
            }
            None => all.push(c),
        }
    }
    if all.is_empty() {
        return Err(ProjectionError::NoId);
    }
    let winner = order::latest(resource, &all);
    let differ = all.iter().any(|c| c.object != all[winner].object);
    Ok((all.swap_remove(winner), differ))
}

/// Queues a fetch of the object (once per object and second), due once second `at` is over (on
/// Stripe's clock too), so that Stripe's answer is newer than every event of that second.
pub async fn request_fetch(
    conn: &mut AnyConnection,
    account: &str,
    resource: Resource,
    id: &str,
    at: i64,
    reason: FetchReason,
) -> Result<(), ProjectionError> {
    let due_at = at + TIE_FETCH_DELAY_SECS;
    sqlx::query(
        "INSERT INTO stripe_fetches (object_id, at, resource, reason, due_at, account_id) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (object_id, at) DO NOTHING",
    )
    .bind(id)
    .bind(at)
    .bind(resource.table())
    .bind(reason.as_str())
    .bind(due_at)
    .bind(account)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
