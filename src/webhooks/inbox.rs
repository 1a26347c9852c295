//! The durable inbox (table `stripe_events`): every verified event is stored, deduplicated on its
//! id, before Stripe gets its 2xx.

use serde_json::Value;
use sqlx::Row;

use crate::db::{now_unix, Db, DbError};
use crate::domain::events::EventStatus;
use crate::projection;

/// The envelope fields of a Stripe event; the payload is kept verbatim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncomingEvent {
    pub id: String,
    pub event_type: String,
    pub api_version: Option<String>,
    pub created: i64,
    pub livemode: bool,
    pub account: Option<String>,
    /// The account whose endpoint secret verified the event, when it is not the environment's
    /// (`STRIPE_WEBHOOK_SECRET`); set by the webhook handler.
    pub received_for: Option<String>,
    pub object_id: Option<String>,
    pub payload: String,
}

/// The envelope as it is read at ingest: only these fields are decoded; `data` is skipped over
/// (validated, never built into a tree), its object's `id` read by a second shallow pass. Leaf
/// fields are kept as JSON values so a field of an unexpected type reads as absent, as before.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    id: Option<Value>,
    object: Option<Value>,
    #[serde(rename = "type")]
    event_type: Option<Value>,
    api_version: Option<Value>,
    created: Option<Value>,
    livemode: Option<Value>,
    account: Option<Value>,
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

#[derive(serde::Deserialize)]
struct DataObject<'a> {
    #[serde(borrow)]
    object: Option<&'a serde_json::value::RawValue>,
}

#[derive(serde::Deserialize)]
struct ObjectId {
    id: Option<Value>,
}

/// A JSON object's fields read into `T`; `None` when the text is not a JSON object (serde would
/// also read a struct from an array) or does not fit.
fn fields_of<'a, T: serde::Deserialize<'a>>(json: &'a str) -> Option<T> {
    if !json.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(json).ok()
}

impl IncomingEvent {
    /// Reads the envelope of a raw event body; the reason is short and safe to return to Stripe.
    pub fn parse(body: &str) -> Result<Self, &'static str> {
        let Some(envelope) = fields_of::<Envelope>(body) else {
            return Err(match serde_json::from_str::<serde::de::IgnoredAny>(body) {
                Err(_) => "body is not valid JSON",
                // Valid JSON but not an object, or an envelope field given twice.
                Ok(_) if body.trim_start().starts_with('{') => "event has a repeated field",
                Ok(_) => "event has no id",
            });
        };
        let id = envelope.id.as_ref().and_then(Value::as_str).ok_or("event has no id")?;
        if envelope
            .object
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|o| o != "event")
        {
            return Err("body is not a Stripe event");
        }
        let event_type = envelope
            .event_type
            .as_ref()
            .and_then(Value::as_str)
            .ok_or("event has no type")?;
        let created = envelope
            .created
            .as_ref()
            .and_then(Value::as_i64)
            .ok_or("event has no created time")?;
        let api_version = envelope.api_version.as_ref().and_then(Value::as_str);
        let account = envelope.account.as_ref().and_then(Value::as_str);
        // Kept in text columns, which on PostgreSQL cannot hold NUL; Stripe never sends one here.
        if [Some(id), Some(event_type), api_version, account]
            .iter()
            .flatten()
            .any(|s| s.contains('\0'))
        {
            return Err("event envelope contains a NUL character");
        }
        let object_id = envelope
            .data
            .and_then(|data| fields_of::<DataObject>(data.get()))
            .and_then(|data| data.object)
            .and_then(|object| fields_of::<ObjectId>(object.get()))
            .and_then(|object| projection::read::as_text(&object.id?));
        Ok(Self {
            id: id.to_string(),
            event_type: event_type.to_string(),
            api_version: api_version.map(str::to_string),
            created,
            livemode: envelope.livemode.as_ref().and_then(Value::as_bool).unwrap_or(false),
            account: account.map(str::to_string),
            received_for: None,
            object_id,
            payload: body.to_string(),
        })
    }
}

/// The connected account (Stripe Connect) an event is about: its `account`, when set.
fn connected_account(event: &Value) -> Option<&str> {
    event.get("account").and_then(Value::as_str)
}

/// Whether an event is a connected account's: stored, never applied to this account's data.
pub fn of_connected_account(event: &Value) -> bool {
    connected_account(event).is_some()
}

/// Where an event came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Webhook,
    Backfill,
    Demo,
    /// Found missing by reconciliation (`/v1/events`).
    Reconcile,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Backfill => "backfill",
            Source::Demo => "demo",
            Source::Reconcile => "reconcile",
        }
    }
}

/// Stores the event. Returns false when it was already there (a duplicate delivery).
/// `expected_livemode`: the configured key's mode; an event of the other mode is stored, flagged
/// and marked ignored so it never reaches the figures.
pub async fn store(
    db: &Db,
    event: &IncomingEvent,
    source: Source,
    expected_livemode: Option<bool>,
) -> Result<bool, DbError> {
    let mut tx = db.begin().await?;
    let inserted = store_many(&mut tx, &[event], source, expected_livemode).await?;
    tx.commit().await?;
    Ok(inserted[0])
}

/// Stores several events inside the caller's transaction; for each, whether it was new (a repeat
/// within the batch counts as a duplicate). Rows go in id order, so two instances inserting
/// overlapping batches take their row locks in the same order and cannot deadlock.
pub async fn store_many(
    conn: &mut sqlx::AnyConnection,
    events: &[&IncomingEvent],
    source: Source,
    expected_livemode: Option<bool>,
) -> Result<Vec<bool>, DbError> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|a, b| events[*a].id.cmp(&events[*b].id));
    let mut new = vec![false; events.len()];
    for chunk in order.chunks(crate::db::rows_per_statement(conn)) {
        let part: Vec<&IncomingEvent> = chunk.iter().map(|i| events[*i]).collect();
        for (i, was_new) in chunk
            .iter()
            .zip(store_statement(conn, &part, source, expected_livemode).await?)
        {
            new[*i] = was_new;
        }
    }
    Ok(new)
}

/// One multi-row INSERT of `events` (already in id order).
async fn store_statement(
    conn: &mut sqlx::AnyConnection,
    events: &[&IncomingEvent],
    source: Source,
    expected_livemode: Option<bool>,
) -> Result<Vec<bool>, DbError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    const COLUMNS: usize = 15;
    let now = now_unix();
    let mut sql = String::from(
        "INSERT INTO stripe_events (id, type, api_version, created, livemode, account, account_id, object_id, payload, \
         received_at, source, status, last_error, mode_mismatch, processed_at, attempts, next_attempt_at) VALUES ",
    );
    let mut params = crate::db::Params::new(conn);
    for i in 0..events.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        // ..., attempts = 0, next_attempt_at (bound as received_at again)
        sql.push_str(&format!("({}, 0, {})", params.list(COLUMNS), params.one()));
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
    let mut query = sqlx::query(&sql);
    for event in events {
        // The configured key's mode says nothing about another account's events.
        let mismatch = event.received_for.is_none()
            && event.account.is_none()
            && expected_livemode.is_some_and(|live| live != event.livemode);
        let (status, note) = if mismatch {
            (
                EventStatus::Ignored,
                Some("livemode differs from the configured Stripe key"),
            )
        } else if !projection::is_handled(&event.event_type) {
            (EventStatus::Ignored, Some("event type not handled"))
        } else {
            (EventStatus::Pending, None)
        };
        query = query
            .bind(event.id.as_str())
            .bind(event.event_type.as_str())
            .bind(event.api_version.as_deref())
            .bind(event.created)
            .bind(i64::from(event.livemode))
            .bind(event.account.as_deref())
            .bind(event.account.as_deref().or(event.received_for.as_deref()))
            .bind(event.object_id.as_deref())
            .bind(event.payload.as_str())
            .bind(now)
            .bind(source.as_str())
            .bind(status.as_str())
            .bind(note)
            .bind(i64::from(mismatch));
        query = query.bind((status == EventStatus::Ignored).then_some(now)).bind(now);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    let mut new: std::collections::HashSet<String> =
        rows.iter().filter_map(|r| r.try_get::<String, _>("id").ok()).collect();
    Ok(events.iter().map(|e| new.remove(&e.id)).collect())
}

/// Group commit for webhook deliveries: concurrent deliveries are stored in one transaction, and
/// each is acknowledged only after that transaction commits. Under load the next batch gathers
/// while the current one commits, so throughput grows with concurrency at the same durability.
#[derive(Debug)]
pub struct GroupCommit {
    tx: tokio::sync::mpsc::Sender<Pending>,
}

#[derive(Debug)]
struct Pending {
    event: IncomingEvent,
    reply: tokio::sync::oneshot::Sender<Result<bool, String>>,
}

/// Events stored in one transaction at most.
const MAX_GROUP: usize = 256;

impl GroupCommit {
    /// Starts the writer; `wake` is notified when new events are stored.
    pub fn start(db: Db, expected_livemode: Option<bool>, wake: std::sync::Arc<tokio::sync::Notify>) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Pending>(4 * MAX_GROUP);
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(MAX_GROUP);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let result = async {
                    let mut conn = db.begin().await?;
                    let events: Vec<&IncomingEvent> = batch.iter().map(|p| &p.event).collect();
                    let inserted = store_many(&mut conn, &events, Source::Webhook, expected_livemode).await?;
                    conn.commit().await?;
                    Ok::<_, DbError>(inserted)
                }
                .await;
                let m = crate::observability::metrics();
                m.group_commits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                m.group_commit_events
                    .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
                match result {
                    Ok(inserted) => {
                        if inserted.iter().any(|i| *i) {
                            wake.notify_one();
                        }
                        for (p, new) in batch.drain(..).zip(inserted) {
                            let _ = p.reply.send(Ok(new));
                        }
                    }
                    Err(e) => {
                        let text = e.to_string();
                        for p in batch.drain(..) {
                            let _ = p.reply.send(Err(text.clone()));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Stores the event with whatever else is arriving; true when it was new.
    pub async fn store(&self, event: IncomingEvent) -> Result<bool, String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Pending { event, reply })
            .await
            .map_err(|_| "the inbox writer has stopped".to_string())?;
        answer.await.map_err(|_| "the inbox writer has stopped".to_string())?
    }
}

/// Puts an event back in the queue (retry after failure, or replay of an applied one). Returns
/// false when there is no such event or it is already queued.
pub async fn requeue(db: &Db, id: &str) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE stripe_events SET status = 'pending', attempts = 0, next_attempt_at = $1, last_error = NULL \
         WHERE id = $2 AND status IN ('applied', 'failed', 'ignored') AND mode_mismatch = 0",
    )
    .bind(now_unix())
    .bind(id)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Which failed events to queue again.
pub enum Failed<'a> {
    /// Of one type, or of every type (`None`), of the accounts of the scope.
    OfType(Option<&'a str>, &'a crate::domain::accounts::Scope),
    /// These events (those of them that failed).
    Ids(&'a [&'a str]),
}

/// Puts failed events back in the queue with a fresh retry window (the admins' "retry every
/// failed event", reconciliation). Returns how many.
pub async fn requeue_failed(db: &Db, which: Failed<'_>) -> Result<u64, DbError> {
    let filter = match &which {
        Failed::OfType(_, scope) => format!(
            "($2 = '' OR type = $2) AND {}",
            scope.filter("COALESCE(account_id, '')")
        ),
        Failed::Ids([]) => return Ok(0),
        Failed::Ids(ids) => {
            let placeholders: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
            format!("id IN ({})", placeholders.join(", "))
        }
    };
    let sql = format!(
        "UPDATE stripe_events SET status = 'pending', attempts = 0, next_attempt_at = $1, received_at = $1, \
         locked_until = 0 WHERE status = 'failed' AND {filter}"
    );
    let mut query = sqlx::query(&sql).bind(now_unix());
    match which {
        Failed::OfType(event_type, _) => query = query.bind(event_type.unwrap_or("")),
        Failed::Ids(ids) => {
            for id in ids {
                query = query.bind(*id);
            }
        }
    }
    Ok(query.execute(db.writer()).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::IncomingEvent;

    #[test]
    fn the_envelope_is_read_without_the_rest_of_the_body() {
        let body = r#"{"id":"evt_1","object":"event","api_version":"2025-01-27.acacia","created":1700000000,
            "livemode":true,"type":"customer.updated","pending_webhooks":1,"request":{"id":null},
            "data":{"previous_attributes":{"name":"Old"},"object":{"object":"customer","name":"Ada \"A\"",
            "metadata":{"id":"not this one"},"id":"cus_1"}}}"#;
        let event = IncomingEvent::parse(body).unwrap();
        assert_eq!(event.id, "evt_1");
        assert_eq!(event.event_type, "customer.updated");
        assert_eq!(event.api_version.as_deref(), Some("2025-01-27.acacia"));
        assert_eq!(event.created, 1_700_000_000);
        assert!(event.livemode);
        assert_eq!(event.account, None);
        assert_eq!(event.object_id.as_deref(), Some("cus_1"));
        assert_eq!(event.payload, body);
    }

    #[test]
    fn odd_envelopes_read_as_before() {
        let parse = |body: &str| IncomingEvent::parse(body);
        assert_eq!(parse("{not json").unwrap_err(), "body is not valid JSON");
        // serde could read a struct from an array: an array is still not an event.
        assert_eq!(parse(r#"["evt_1","event"]"#).unwrap_err(), "event has no id");
        assert_eq!(
            parse(r#"{"id":"evt_1","id":"evt_2","type":"x","created":1}"#).unwrap_err(),
            "event has a repeated field"
        );
        assert_eq!(
            parse(r#"{"id":7,"type":"x","created":1}"#).unwrap_err(),
            "event has no id"
        );
        assert_eq!(
            parse(r#"{"id":"evt_1","object":"charge","type":"x","created":1}"#).unwrap_err(),
            "body is not a Stripe event"
        );
        assert_eq!(
            parse(r#"{"id":"evt_1","type":"x","created":1.5}"#).unwrap_err(),
            "event has no created time"
        );
        assert_eq!(
            parse(r#"{"id":"evt_\u0000","type":"x","created":1}"#).unwrap_err(),
            "event envelope contains a NUL character"
        );
        // Fields of an unexpected type read as absent; so does an object that is not an object.
        let event =
            parse(r#"{"id":"evt_1","type":"x","created":1,"livemode":"yes","account":5,"data":{"object":["cus_1"]}}"#)
                .unwrap();
        assert!(!event.livemode);
        assert_eq!((event.account, event.object_id), (None, None));
        let event = parse(r#"{"id":"evt_1","type":"x","created":1,"data":["cus_1"]}"#).unwrap();
        assert_eq!(event.object_id, None);
        // An object's id as the projection reads it: numbers as text, NUL dropped.
        let event =
            parse(r#"{"id":"evt_1","type":"x","created":1,"account":"acct_1","data":{"object":{"id":42}}}"#).unwrap();
        assert_eq!(
            (event.account.as_deref(), event.object_id.as_deref()),
            (Some("acct_1"), Some("42"))
        );
        let event = parse(r#"{"id":"evt_1","type":"x","created":1,"data":{"object":{"id":"cus_\u00001"}}}"#).unwrap();
        assert_eq!(event.object_id.as_deref(), Some("cus_1"));
    }
}
