//! Backfill: pages through Stripe's list endpoints and applies every object through the same
//! projection as webhooks. Newer wins: a backfilled object is dated a little before its request
//! left (`Version::fetched`), so it replaces older webhook data and loses to webhooks about
//! changes made while the page was fetched or later, whichever arrives first. Progress is
//! committed with each page, so a killed sync resumes where it stopped.

pub mod background;
pub mod drift;
pub mod fetches;
pub mod jobs;
pub mod reconcile;

use std::time::Instant;

use sqlx::Row;

use crate::db::{now_unix, Db, DbError};
use crate::domain::resource::Resource;
use crate::domain::sync_report::TypeProgress;
use crate::projection::{self, Version};
use crate::stripe::{StripeApi, StripeApiError};

/// Parents before children, so pages make sense as soon as each type finishes.
pub const ORDER: [Resource; 12] = [
    Resource::Product,
    Resource::Price,
    Resource::Coupon,
    Resource::PromotionCode,
    Resource::Customer,
    Resource::Subscription,
    Resource::Invoice,
    Resource::PaymentIntent,
    Resource::Charge,
    Resource::Refund,
    Resource::Dispute,
    Resource::CheckoutSession,
];

#[derive(Clone, Debug, Default)]
pub struct SyncOptions {
    /// Only objects created at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Only these resources (all when empty).
    pub only: Vec<Resource>,
    /// Start over even if an earlier run did not finish.
    pub restart: bool,
    /// The account whose objects these are (`''`: the environment's); the Stripe client given to
    /// `run` must act for it (`accounts::client`).
    pub account: String,
    /// Set to stop the run: no page is requested after it is set, the pages in flight are
    /// applied and their progress committed, and the run ends with `SyncError::Stopped` (a
    /// later run resumes where it stopped, fetching nothing twice).
    pub stop: Stop,
}

/// A request to stop a run (SIGINT, SIGTERM), shared with whoever may ask.
#[derive(Clone, Debug, Default)]
pub struct Stop(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Stop {
    pub fn request(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Progress of one resource, reported after every page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub resource: Resource,
    pub fetched: i64,
    pub applied: i64,
    pub done: bool,
    /// Objects per second in this run.
    pub rate: i64,
    /// Set when the key may not read this type: the reason and the API path.
    pub skipped: Option<String>,
}

/// Why a list a job needs is skipped rather than failing the job: the key may not read it (403:
/// a restricted key without that permission) or the account has no such thing (404: a product
/// not enabled). Any other error stops the job. The text names the path, never Stripe's message
/// (which can quote the key).
pub fn skip_reason(error: &StripeApiError, path: &str) -> Option<String> {
    use crate::stripe::ErrorKind;
    match error.kind {
        ErrorKind::Permission => Some(format!("the Stripe key may not read it (403 on GET /v1{path})")),
        ErrorKind::NotFound => Some(format!(
            "Stripe does not offer it to this account (404 on GET /v1{path})"
        )),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{0}")]
    Stripe(#[from] StripeApiError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not apply {id}: {message}")]
    Apply { id: String, message: String },
    #[error("stopped on request; what was fetched is kept")]
    Stopped,
}

impl From<sqlx::Error> for SyncError {
    fn from(e: sqlx::Error) -> Self {
        SyncError::Db(DbError::Query(e))
    }
}

/// The resource named on the command line (`customers`, `checkout_sessions`, …).
pub fn parse_resource(name: &str) -> Option<Resource> {
    let name = name.trim().to_ascii_lowercase().replace('-', "_");
    ORDER.into_iter().find(|r| r.table() == name)
}

struct State {
    cursor: Option<String>,
    done: bool,
    fetched: i64,
    applied: i64,
}

async fn load_state(db: &Db, account: &str, resource: Resource) -> Result<Option<State>, SyncError> {
    let row =
        sqlx::query("SELECT cursor, done, fetched, applied FROM sync_state WHERE resource = $1 AND account_id = $2")
            .bind(resource.table())
            .bind(account)
            .fetch_optional(db.reader())
            .await?;
    Ok(match row {
        Some(r) => Some(State {
            cursor: r.try_get("cursor")?,
            done: r.try_get::<i64, _>("done")? != 0,
            fetched: r.try_get("fetched")?,
            applied: r.try_get("applied")?,
        }),
        None => None,
    })
}

/// Starts a new run unless an unfinished one exists (and `restart` is off). Returns its `since`.
async fn begin_run(db: &Db, options: &SyncOptions, resources: &[Resource]) -> Result<Option<i64>, SyncError> {
    let unfinished: Option<(String, Option<i64>)> = if options.restart {
        None
    } else {
        sqlx::query("SELECT run_id, since FROM sync_state WHERE done = 0 AND account_id = $1 LIMIT 1")
            .bind(&options.account)
            .fetch_optional(db.reader())
            .await?
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("run_id")?, r.try_get("since")?)))
            .transpose()?
    };
    if let Some((run_id, since)) = unfinished {
        tracing::info!(run_id, "resuming an unfinished sync");
        return Ok(since);
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let now = now_unix();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM sync_state WHERE account_id = $1")
        .bind(&options.account)
        .execute(&mut *tx)
        .await?;
    for resource in resources {
        sqlx::query(
            "INSERT INTO sync_state (resource, run_id, since, cursor, done, fetched, applied, started_at, updated_at, skipped, \
             account_id) VALUES ($1, $2, $3, NULL, 0, 0, 0, $4, $4, NULL, $5)",
        )
        .bind(resource.table())
        .bind(&run_id)
        .bind(options.since)
        .bind(now)
        .bind(&options.account)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(options.since)
}

/// How many types a backfill fetches at once. Every request goes through the one client (its
/// rate limiter paces them all), so more types in flight only fill the time each one waits on a
/// round trip; the projection applies objects of any type in any order (no foreign keys, newer
/// wins), so types need not wait for their parents.
pub const CONCURRENT_TYPES: usize = 4;

/// Runs (or resumes) a backfill, calling `report` after every page. Types are fetched
/// `CONCURRENT_TYPES` at a time, in `ORDER`; the summary lists them in `ORDER`.
pub async fn run(
    db: &Db,
    stripe: &dyn StripeApi,
    options: &SyncOptions,
    report: impl FnMut(&Progress),
) -> Result<Vec<Progress>, SyncError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    let resources: Vec<Resource> = if options.only.is_empty() {
        ORDER.to_vec()
    } else {
        ORDER.into_iter().filter(|r| options.only.contains(r)).collect()
    };
    let since = begin_run(db, options, &resources).await?;
    // Every type's future reports through the one callback.
    let report = std::sync::Mutex::new(report);
    let mut summary: Vec<Progress> = stream::iter(resources)
        .map(|resource| backfill_type(db, stripe, options, since, resource, &report))
        .buffer_unordered(CONCURRENT_TYPES)
        .try_filter_map(|done| async move { Ok(done) })
        .try_collect()
        .await?;
    summary.sort_by_key(|p| ORDER.iter().position(|r| *r == p.resource));
    // Stopped on request with types unfinished: every type's page in flight was applied and its
    // cursor committed, so the next run resumes there.
    if options.stop.requested() {
        let unfinished: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_state WHERE account_id = $1 AND done = 0")
            .bind(&options.account)
            .fetch_one(db.reader())
            .await?;
        if unfinished > 0 {
            return Err(SyncError::Stopped);
        }
    }
    Ok(summary)
}

/// One type of a backfill, page after page, until it is done (or skipped); `None` when the run
/// does not include it.
async fn backfill_type(
    db: &Db,
    stripe: &dyn StripeApi,
    options: &SyncOptions,
    since: Option<i64>,
    resource: Resource,
    report: &std::sync::Mutex<impl FnMut(&Progress)>,
) -> Result<Option<Progress>, SyncError> {
    let Some(mut state) = load_state(db, &options.account, resource).await? else {
        return Ok(None);
    };
    let started = Instant::now();
    let fetched_before = state.fetched;
    while !state.done {
        // Asked to stop: no next page (this type's page in flight, if any, was applied above).
        if options.stop.requested() {
            return Ok(None);
        }
        // Dated by when the request left, not when the answer came: a webhook about a change
        // made while the page was being fetched is newer and still wins.
        let version = Version::fetched(now_unix());
        let mut page = match stripe.list(resource, state.cursor.as_deref(), since).await {
            Ok(page) => page,
            Err(e) => {
                let Some(reason) = skip_reason(&e, crate::stripe::path(resource)) else {
                    return Err(e.into());
                };
                tracing::warn!(resource = resource.table(), reason, "sync skipped a type");
                sqlx::query(
                    "UPDATE sync_state SET done = 1, skipped = $1, updated_at = $2 WHERE resource = $3 AND account_id = $4",
                )
                .bind(&reason)
                .bind(now_unix())
                .bind(resource.table())
                .bind(&options.account)
                    .execute(db.writer())
                    .await?;
                let progress = Progress {
                    resource,
                    fetched: state.fetched,
                    applied: state.applied,
                    done: true,
                    rate: 0,
                    skipped: Some(reason),
                };
                (report.lock().unwrap_or_else(std::sync::PoisonError::into_inner))(&progress);
                return Ok(Some(progress));
            }
        };
        for object in &mut page.data {
            crate::stripe::complete_nested_lists(stripe, resource, object).await?;
        }
        let fetched_at = now_unix();
        let mut tx = projection::Tx::begin(db).await?;
        let mut applied = 0;
        for object in &page.data {
            let deleted = object.get("deleted").and_then(serde_json::Value::as_bool) == Some(true);
            let written = projection::apply_object(&mut tx, &options.account, resource, object, &version, deleted)
                .await
                .map_err(|e| SyncError::Apply {
                    id: projection::read::text(object, "id").unwrap_or_default(),
                    message: e.to_string(),
                })?;
            if written == projection::Applied::Written {
                applied += 1;
            }
        }
        let last_id = page.data.last().and_then(|o| projection::read::text(o, "id"));
        state.cursor = last_id.or(state.cursor);
        state.fetched += page.data.len() as i64;
        state.applied += applied;
        state.done = !page.has_more || page.data.is_empty();
        sqlx::query(
            "UPDATE sync_state SET cursor = $1, done = $2, fetched = $3, applied = $4, updated_at = $5 \
             WHERE resource = $6 AND account_id = $7",
        )
        .bind(state.cursor.as_deref())
        .bind(i64::from(state.done))
        .bind(state.fetched)
        .bind(state.applied)
        .bind(fetched_at)
        .bind(resource.table())
        .bind(&options.account)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let progress = Progress {
            resource,
            fetched: state.fetched,
            applied: state.applied,
            done: state.done,
            rate: ((state.fetched - fetched_before) as f64 / secs) as i64,
            skipped: None,
        };
        (report.lock().unwrap_or_else(std::sync::PoisonError::into_inner))(&progress);
        if state.done {
            return Ok(Some(progress));
        }
    }
    Ok(None)
}

/// The environment's account's backfill state per type (empty when no sync ever ran).
pub async fn status(db: &Db) -> Result<Vec<TypeProgress>, SyncError> {
    status_of(db, crate::domain::accounts::ENVIRONMENT).await
}

/// An account's backfill state per type.
pub async fn status_of(db: &Db, account: &str) -> Result<Vec<TypeProgress>, SyncError> {
    let rows = sqlx::query(
        "SELECT resource, done, fetched, applied, started_at, updated_at, skipped FROM sync_state WHERE account_id = $1",
    )
    .bind(account)
    .fetch_all(db.reader())
    .await?;
    let mut out = Vec::new();
    for resource in ORDER {
        let Some(row) = rows
            .iter()
            .find(|r| r.try_get::<String, _>("resource").ok().as_deref() == Some(resource.table()))
        else {
            continue;
        };
        let fetched: i64 = row.try_get("fetched")?;
        let done = row.try_get::<i64, _>("done")? != 0;
        let started_at: i64 = row.try_get("started_at")?;
        let updated_at: i64 = row.try_get("updated_at")?;
        let known_rows: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE account_id = $1",
            resource.table()
        ))
        .bind(account)
        .fetch_one(db.reader())
        .await?;
        let rate = if updated_at > started_at {
            fetched / (updated_at - started_at)
        } else {
            fetched
        };
        let eta_secs = (!done && rate > 0 && known_rows > fetched).then(|| (known_rows - fetched) / rate);
        out.push(TypeProgress {
            resource: resource.table().to_string(),
            fetched,
            applied: row.try_get("applied")?,
            done,
            rate,
            known_rows,
            eta_secs,
            started_at,
            updated_at,
            skipped: row.try_get("skipped")?,
        });
    }
    Ok(out)
}
