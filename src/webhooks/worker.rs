//! Applies stored events in batches, each batch claimed and applied in one transaction (events
//! one by one when a batch fails): woken when an event arrives, polling as a safety net, retrying
//! with exponential backoff, and marking an event failed (keeping the error) after `max_attempts`.
//! Claims are safe with several instances on one Postgres (row locks with SKIP LOCKED) and on
//! SQLite (one writer connection serialises them).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::Row;
use tokio::sync::Notify;

use crate::config::Backend;
use crate::db::{now_unix, Db, DbError};
use crate::domain::events::EventStatus;
use crate::projection::{self, Applied, Event};
use crate::stripe::{ErrorKind, StripeApi};

/// Events claimed at once.
const BATCH: i64 = 256;
/// A claim that is not finished within this time (a crashed instance) is taken over.
const CLAIM_SECS: i64 = 300;
/// Polling interval when nothing wakes the worker.
const POLL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Worker {
    pub db: Db,
    pub wake: Arc<Notify>,
    /// Attempts before an event is marked failed (`i64::MAX`: no cap).
    pub max_attempts: i64,
    /// How long after it was received an event that fails is still retried.
    pub retry_for_secs: i64,
    /// When set, each object is fetched from Stripe instead of trusting the payload.
    pub refetch: Option<Arc<dyn StripeApi>>,
}

/// The delay before attempt `attempts + 1`: 2, 4, 8 … seconds, at most an hour.
pub fn backoff_secs(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 12) as u32;
    (1i64 << exp).min(3600)
}

/// After a failed attempt (the `attempts`-th), at `now`: when to try again, or `None` to give up
/// (the event is marked failed). An event is retried for `retry_for_secs` after it was received,
/// as long as Stripe itself retries a delivery, and at most `max_attempts` times.
pub fn next_attempt(attempts: i64, now: i64, received_at: i64, max_attempts: i64, retry_for_secs: i64) -> Option<i64> {
    let next = now + backoff_secs(attempts);
    (attempts < max_attempts && next <= received_at + retry_for_secs).then_some(next)
}

struct Claimed {
    id: String,
    payload: String,
    attempts: i64,
    received_at: i64,
    /// The account the event is filed under (NULL: the environment's).
    account_id: Option<String>,
}

impl Claimed {
    fn parse(&self) -> Result<Event, String> {
        Event::parse(&self.id, &self.payload, self.account_id.as_deref())
    }
}

/// What the worker did with an event: the label of `tally_events_processed_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A newer version was already there.
    Stale,
    Ignored,
    /// Given up after its retries.
    Failed,
    /// Failed this time; tried again later.
    Retry,
}

/// The note kept with an event a newer version had already overtaken.
const STALE_NOTE: &str = "a newer version was already applied";

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Stale => "stale",
            Outcome::Ignored => "ignored",
            Outcome::Failed => "failed",
            Outcome::Retry => "retry",
        }
    }

    /// The status an event is left in after this outcome.
    pub fn status(self) -> EventStatus {
        match self {
            Outcome::Applied | Outcome::Stale => EventStatus::Applied,
            Outcome::Ignored => EventStatus::Ignored,
            Outcome::Failed => EventStatus::Failed,
            Outcome::Retry => EventStatus::Pending,
        }
    }
}

/// An event done with: its type (for the log), what happened and the note kept with it.
struct Done {
    event_type: String,
    outcome: Outcome,
    note: Option<&'static str>,
}

impl Done {
    fn of(event_type: String, applied: Applied) -> Self {
        let (outcome, note) = match applied {
            Applied::Written => (Outcome::Applied, None),
            Applied::Stale => (Outcome::Stale, Some(STALE_NOTE)),
            Applied::Ignored(why) => (Outcome::Ignored, Some(why)),
        };
        Done {
            event_type,
            outcome,
            note,
        }
    }
}

impl Worker {
    /// Runs until the task is aborted.
    pub async fn run(self) {
        loop {
            match self.run_once().await {
                Ok(0) => {
                    let _ = tokio::time::timeout(POLL, self.wake.notified()).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "webhook worker could not reach the database");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// Claims and applies one batch of due events; returns how many it processed.
    ///
    /// The usual path takes the batch inside the transaction that applies it (row locks with
    /// SKIP LOCKED on Postgres; SQLite has one writer): each event row is written once, when it
    /// is marked done, and a crash simply rolls the claim back. If anything in the batch fails,
    /// the batch is rolled back and its events are claimed and applied one by one, so one bad
    /// event neither blocks nor rolls back the others. Refetching calls Stripe per event, so it
    /// never holds a transaction open across the network and always goes one by one.
    pub async fn run_once(&self) -> Result<usize, DbError> {
        self.requeue_abandoned().await?;
        if self.refetch.is_none() {
            if let Some(count) = self.claim_and_apply_batch().await? {
                return Ok(count);
            }
        }
        let claimed = self.claim().await?;
        let count = claimed.len();
        for event in claimed {
            self.process(event).await?;
        }
        Ok(count)
    }

    /// Claims that a crashed instance left behind (one-by-one path only) go back to the queue;
    /// few rows, found through the (status, next_attempt_at) index.
    async fn requeue_abandoned(&self) -> Result<(), DbError> {
        sqlx::query("UPDATE stripe_events SET status = 'pending' WHERE status = 'processing' AND locked_until < $1")
            .bind(now_unix())
            .execute(self.db.writer())
            .await?;
        Ok(())
    }

    /// One batch claimed, projected and marked done in a single transaction: `Some(count)`, or
    /// `None` (nothing written) when an event in it could not be applied. Each payload is parsed
    /// once, here.
    async fn claim_and_apply_batch(&self) -> Result<Option<usize>, DbError> {
        let started = Instant::now();
        let mut tx = projection::Tx::begin(&self.db).await?;
        let claimed = due(&mut tx, self.db.backend()).await?;
        if claimed.is_empty() {
            return Ok(Some(0));
        }
        let mut parsed = Vec::with_capacity(claimed.len());
        for event in &claimed {
            match event.parse() {
                Ok(p) => parsed.push(p),
                // Applied one by one, where the error is kept with the event.
                Err(_) => {
                    tx.rollback().await?;
                    return Ok(None);
                }
            }
        }
        let Some(outcomes) = self.project_batch(&mut tx, parsed).await else {
            // Rolled back before the events are claimed one by one: a dropped transaction is
            // rolled back only when its connection is next used, and until then its row locks
            // would make the one-by-one claim (SKIP LOCKED) pass over these very events.
            tx.rollback().await?;
            return Ok(None);
        };
        // Statuses in one statement per (status, note) rather than one per event.
        let now = now_unix();
        let mut groups: std::collections::BTreeMap<(EventStatus, Option<&str>), Vec<&str>> = Default::default();
        for (event, done) in claimed.iter().zip(&outcomes) {
            groups
                .entry((done.outcome.status(), done.note))
                .or_default()
                .push(event.id.as_str());
        }
        for ((status, note), ids) in groups {
            if mark_done(&mut tx, &ids, status, note, now, true).await.is_err() {
                return Ok(None);
            }
        }
        if tx.commit().await.is_err() {
            return Ok(None);
        }
        let m = crate::observability::metrics();
        let now = now_unix();
        let each = started.elapsed() / claimed.len() as u32;
        for (event, done) in claimed.iter().zip(outcomes) {
            let outcome = done.outcome.as_str();
            m.events_processed.inc(outcome);
            m.event_apply_seconds.observe(each);
            m.event_lag_seconds
                .observe(Duration::from_secs((now - event.received_at).max(0) as u64));
            tracing::debug!(event_id = %event.id, event_type = done.event_type, outcome, "webhook event processed");
        }
        Ok(Some(claimed.len()))
    }

    async fn claim(&self) -> Result<Vec<Claimed>, DbError> {
        let now = now_unix();
        let lock = match self.db.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // The one-by-one path: each event is marked 'processing' (with a lease) before it is
        // applied in its own transaction.
        let sql = format!(
            "UPDATE stripe_events SET status = 'processing', locked_until = $1, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM stripe_events \
                          WHERE status = 'pending' AND next_attempt_at <= $2 \
                          ORDER BY created, id LIMIT $3 {lock}) \
             RETURNING id, payload, attempts, created, received_at, account_id"
        );
        let rows = sqlx::query(&sql)
            .bind(now + CLAIM_SECS)
            .bind(now)
            .bind(BATCH)
            .fetch_all(self.db.writer())
            .await?;
        let mut claimed: Vec<(i64, Claimed)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("created")?,
                    Claimed {
                        id: r.try_get("id")?,
                        payload: r.try_get("payload")?,
                        attempts: r.try_get("attempts")?,
                        received_at: r.try_get("received_at")?,
                        account_id: r.try_get("account_id")?,
                    },
                ))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        // Oldest first, so a batch applies in Stripe's order where it can.
        claimed.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        Ok(claimed.into_iter().map(|(_, c)| c).collect())
    }

    async fn process(&self, event: Claimed) -> Result<(), DbError> {
        let started = Instant::now();
        let result = self.apply(&event).await;
        let duration_ms = started.elapsed().as_millis() as i64;
        let now = now_unix();
        match result {
            Ok(Done {
                event_type, outcome, ..
            }) => {
                let outcome = outcome.as_str();
                let m = crate::observability::metrics();
                m.events_processed.inc(outcome);
                m.event_apply_seconds.observe(started.elapsed());
                m.event_lag_seconds
                    .observe(Duration::from_secs((now - event.received_at).max(0) as u64));
                tracing::info!(event_id = %event.id, event_type, outcome, duration_ms, "webhook event processed");
            }
            Err(error) => {
                // Retried with growing delays for as long as Stripe itself retries (3 days by
                // default), so an outage of the database or a bug fixed within that time needs no
                // hand work.
                let retry_at = next_attempt(
                    event.attempts,
                    now,
                    event.received_at,
                    self.max_attempts,
                    self.retry_for_secs,
                );
                let failed = retry_at.is_none();
                let next = retry_at.unwrap_or(now);
                let outcome = if failed { Outcome::Failed } else { Outcome::Retry };
                let status = outcome.status().as_str();
                crate::observability::metrics().events_processed.inc(outcome.as_str());
                tracing::warn!(event_id = %event.id, attempts = event.attempts, status, error = %error, duration_ms, "webhook event not applied");
                sqlx::query(
                    "UPDATE stripe_events SET status = $1, next_attempt_at = $2, last_error = $3, locked_until = 0, \
                     duration_ms = $4, processed_at = $5 WHERE id = $6",
                )
                .bind(status)
                .bind(next)
                .bind(error)
                .bind(duration_ms)
                .bind(now)
                .bind(&event.id)
                .execute(self.db.writer())
                .await?;
            }
        }
        Ok(())
    }

    /// Projects the event and marks it done, in one transaction. Errors come back as text for
    /// `last_error` (they name ids, never payload contents).
    async fn apply(&self, event: &Claimed) -> Result<Done, String> {
        let mut parsed = event.parse()?;
        if let Some(stripe) = self
            .refetch
            .as_ref()
            .filter(|_| parsed.account == crate::domain::accounts::ENVIRONMENT)
        {
            let object = std::mem::take(&mut parsed.object);
            parsed.object = refetched(stripe.as_ref(), &parsed.event_type, object).await?;
        }
        let mut tx = projection::Tx::begin(&self.db).await.map_err(|e| e.to_string())?;
        let outcome = self.apply_in(&mut tx, event, parsed).await?;
        tx.commit().await.map_err(|e| e.to_string())?;
        Ok(outcome)
    }

    /// Projects a batch: plain objects of one resource with one multi-row statement (only the
    /// newest version of each object in the batch goes in; older ones are stale), the rest one by
    /// one. `None` if anything fails.
    async fn project_batch(&self, tx: &mut sqlx::AnyConnection, events: Vec<Event>) -> Option<Vec<Done>> {
        use std::collections::HashMap;
        let mut outcomes: Vec<Option<Done>> = (0..events.len()).map(|_| None).collect();
        // Each event with its object's id and the resource when it can be batched (a connected
        // account's event goes one by one, where it is marked ignored).
        let parsed: Vec<(Event, String, Option<crate::domain::resource::Resource>)> = events
            .into_iter()
            .map(|e| {
                let (id, batch) = (e.object_id(), e.batchable());
                (e, id, batch)
            })
            .collect();
        // (resource, object id) → index of its newest version in this batch, and whether another
        // event of the batch has the same second (a tie: those go one by one, which settles it).
        let mut newest: HashMap<(crate::domain::resource::Resource, &str), (usize, bool)> = HashMap::new();
        for (i, (p, id, batch)) in parsed.iter().enumerate() {
            let Some(resource) = *batch else {
                continue;
            };
            let entry = newest.entry((resource, id.as_str())).or_insert((i, false));
            let current = &parsed[entry.0].0.version;
            if p.version.at > current.at {
                *entry = (i, false);
            } else if p.version.at == current.at && p.version.event_id != current.event_id {
                entry.1 = true;
            }
        }
        // An object that events of several accounts name in this batch (Stripe's ids are unique
        // across accounts, so all but one are misfiled or forged) goes one by one, in the order
        // the events were claimed: the first account's write stands, the others are refused.
        let mut owner_in_batch: HashMap<(crate::domain::resource::Resource, &str), &str> = HashMap::new();
        let mut contested: std::collections::HashSet<(crate::domain::resource::Resource, &str)> = Default::default();
        for (p, id, batch) in &parsed {
            if let Some(resource) = *batch {
                let owner = owner_in_batch
                    .entry((resource, id.as_str()))
                    .or_insert(p.account.as_str());
                if *owner != p.account.as_str() {
                    contested.insert((resource, id.as_str()));
                }
            }
        }
        // Tied or contested objects go one by one, which settles them.
        let tied: std::collections::HashSet<(crate::domain::resource::Resource, &str)> = newest
            .iter()
            .filter(|(key, (_, tie))| *tie || contested.contains(*key))
            .map(|(k, _)| *k)
            .collect();
        // One statement per account and resource: a statement writes one account's rows.
        let mut by_resource: HashMap<(&str, crate::domain::resource::Resource), Vec<usize>> = HashMap::new();
        for (key, (i, _)) in &newest {
            let resource = key.0;
            if !tied.contains(key) {
                by_resource
                    .entry((parsed[*i].0.account.as_str(), resource))
                    .or_default()
                    .push(*i);
            }
        }
        for ((account, resource), mut indexes) in by_resource {
            // Rows in id order: two instances writing overlapping objects lock them in the same
            // order, so their batches wait for each other instead of deadlocking.
            indexes.sort_unstable_by(|a, b| parsed[*a].1.cmp(&parsed[*b].1));
            for chunk in indexes.chunks(crate::db::rows_per_statement(tx)) {
                let items: Vec<(&Value, &projection::Version)> = chunk
                    .iter()
                    .map(|i| (&parsed[*i].0.object, &parsed[*i].0.version))
                    .collect();
                let written = projection::upsert_many(tx, account, resource, &items).await.ok()?;
                for i in chunk {
                    let (p, id, _) = &parsed[*i];
                    let applied = if written.contains(id) {
                        Applied::Written
                    } else {
                        // Not newer: maybe a tie with the row's event of the same second.
                        projection::resolve_tie(tx, account, resource, &p.object, &p.version)
                            .await
                            .ok()?
                    };
                    outcomes[*i] = Some(Done::of(p.event_type.clone(), applied));
                }
            }
        }
        // Whether each event's object is tied, read before the events are moved out below.
        let is_tied: Vec<bool> = parsed
            .iter()
            .map(|(_, id, batch)| batch.is_some_and(|resource| tied.contains(&(resource, id.as_str()))))
            .collect();
        for (i, (p, _, batch)) in parsed.into_iter().enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            if batch.is_some() && !is_tied[i] {
                // Superseded by a newer version of the same object in this batch.
                outcomes[i] = Some(Done::of(p.event_type, Applied::Stale));
                continue;
            }
            outcomes[i] = Some(self.project_in(tx, p).await.ok()?);
        }
        outcomes.into_iter().collect()
    }

    /// Projects one event inside the caller's transaction and marks it done there.
    async fn apply_in(&self, tx: &mut sqlx::AnyConnection, event: &Claimed, parsed: Event) -> Result<Done, String> {
        let done = self.project_in(tx, parsed).await?;
        mark_done(
            tx,
            &[event.id.as_str()],
            done.outcome.status(),
            done.note,
            now_unix(),
            false,
        )
        .await
        .map_err(|e| e.to_string())?;
        Ok(done)
    }

    /// Projects one event inside the caller's transaction.
    async fn project_in(&self, tx: &mut sqlx::AnyConnection, event: Event) -> Result<Done, String> {
        let applied = event.apply(tx).await.map_err(|e| e.to_string())?;
        Ok(Done::of(event.event_type, applied))
    }
}

/// Up to a batch of due events in Stripe's order, claimed inside the caller's transaction (row
/// locks with SKIP LOCKED on Postgres; SQLite has one writer), walked along index
/// stripe_events_pending_order, so a claim reads about one batch of rows however long the queue is.
async fn due(conn: &mut sqlx::AnyConnection, backend: Backend) -> Result<Vec<Claimed>, DbError> {
    let lock = match backend {
        Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT id, payload, attempts, received_at, account_id FROM stripe_events \
         WHERE status = 'pending' AND next_attempt_at <= $1 ORDER BY created, id LIMIT $2 {lock}"
    );
    let rows = sqlx::query(&sql)
        .bind(now_unix())
        .bind(BATCH)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get("id")?,
                payload: r.try_get("payload")?,
                attempts: r.try_get::<i64, _>("attempts")? + 1,
                received_at: r.try_get("received_at")?,
                account_id: r.try_get("account_id")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?)
}

/// Marks events processed (applied or ignored, with an optional note) and releases their claim.
async fn mark_done(
    conn: &mut sqlx::AnyConnection,
    ids: &[&str],
    status: EventStatus,
    note: Option<&str>,
    now: i64,
    count_attempt: bool,
) -> Result<(), sqlx::Error> {
    let mut params = crate::db::Params::new(conn);
    // Claimed in the same transaction: the attempt is counted here (a claim with a lease counted it).
    let attempt = if count_attempt { ", attempts = attempts + 1" } else { "" };
    let sql = format!(
        "UPDATE stripe_events SET status = {}, processed_at = {}, last_error = {}, locked_until = 0{attempt} WHERE id IN ({})",
        params.one(),
        params.one(),
        params.one(),
        params.list(ids.len())
    );
    let mut query = sqlx::query(&sql).bind(status.as_str()).bind(now).bind(note);
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// The object as Stripe has it now. A deleted object (404) keeps the payload; any other failure is
/// an error, so the event is retried with backoff rather than applied from a payload we chose not
/// to trust.
async fn refetched(stripe: &dyn StripeApi, event_type: &str, object: Value) -> Result<Value, String> {
    if !projection::is_handled(event_type) {
        return Ok(object);
    }
    let (Some(resource), Some(id)) = (
        crate::domain::resource::Resource::of_object(&object),
        projection::read::text(&object, "id"),
    ) else {
        return Ok(object);
    };
    match stripe.retrieve(resource, &id).await {
        Ok(mut fresh) => {
            crate::stripe::complete_nested_lists(stripe, resource, &mut fresh)
                .await
                .map_err(|e| format!("fetching the rest of {id}'s lists from Stripe failed: {e}"))?;
            Ok(fresh)
        }
        Err(e) if e.kind == ErrorKind::NotFound => Ok(object),
        Err(e) => Err(format!("refetching {id} from Stripe failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff_secs, next_attempt};

    #[test]
    fn a_failing_event_is_retried_with_growing_delays_for_three_days() {
        let (received, retry_for) = (1_000_000, 3 * 86_400);
        let (mut now, mut attempts, mut delays) = (received, 1, Vec::new());
        while let Some(next) = next_attempt(attempts, now, received, i64::MAX, retry_for) {
            delays.push(next - now);
            now = next;
            attempts += 1;
        }
        let span = now - received;
        assert!((3 * 86_400 - 3600..=3 * 86_400).contains(&span), "retried for {span} s");
        assert!(delays.windows(2).all(|w| w[1] >= w[0]), "delays never shrink");
        assert_eq!((delays[0], *delays.last().unwrap()), (2, 3600));
        assert!(attempts < 100, "{attempts} attempts");
        // A cap on attempts still applies when set.
        assert_eq!(next_attempt(5, received, received, 5, retry_for), None);
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_secs(1), 2);
        assert_eq!(backoff_secs(2), 4);
        assert_eq!(backoff_secs(5), 32);
        assert_eq!(backoff_secs(30), 3600);
    }
}
