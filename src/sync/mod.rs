//! Backfill: pages through Stripe's list endpoints and applies every object through the same
//! projection as webhooks. Newer wins: a backfilled object is dated a little before its request
//! left (`Version::fetched`), so it replaces older webhook data and loses to webhooks about
//! changes made while the page was fetched or later, whichever arrives first. Progress is
//! committed with each page, so a killed sync resumes where it stopped.

pub mod background;
pub mod drift;
pub mod fetches;
pub mod jobs;
pub mod live;
pub mod reconcile;
pub mod slices;

use sqlx::Row;

use crate::db::{now_unix, Db, DbError};
use crate::domain::resource::Resource;
use crate::domain::sync_report::TypeProgress;
use crate::projection::{self, Version};
use crate::stripe::{Created, StripeApi, StripeApiError};
use slices::{Plan, Slice, TypeRun};

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
    /// Pages fetched at once; when not set, `concurrency_for` the client's rate limit
    /// (`DEFAULT_CONCURRENCY` for a client without one).
    pub concurrency: Option<usize>,
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
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub resource: Resource,
    pub fetched: i64,
    pub applied: i64,
    /// Pages of this type fetched (over resumed runs too).
    pub pages: i64,
    pub done: bool,
    /// Objects per second in this run.
    pub rate: i64,
    /// Slices of this type being fetched now.
    pub in_flight: usize,
    /// Requests to Stripe per second in this run, every type together (to set against the limit).
    pub requests_per_sec: f64,
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
    #[error("a backfill task ended unexpectedly: {0}")]
    Fetcher(String),
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

/// Starts a new run unless an unfinished one exists (and `restart` is off), and returns the plan:
/// every type of the run with the slices left to fetch.
async fn begin_run(db: &Db, options: &SyncOptions, resources: &[Resource]) -> Result<Plan, SyncError> {
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
    let since = match unfinished {
        Some((run_id, since)) => {
            tracing::info!(run_id, "resuming an unfinished sync");
            since
        }
        None => {
            let run_id = uuid::Uuid::new_v4().to_string();
            let now = now_unix();
            let mut tx = db.begin().await?;
            for table in ["sync_state", "sync_slices"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE account_id = $1"))
                    .bind(&options.account)
                    .execute(&mut *tx)
                    .await?;
            }
            for resource in resources {
                sqlx::query(
                    "INSERT INTO sync_state (resource, run_id, since, cursor, done, fetched, applied, started_at, updated_at, \
                     skipped, account_id) VALUES ($1, $2, $3, NULL, 0, 0, 0, $4, $4, NULL, $5)",
                )
                .bind(resource.table())
                .bind(&run_id)
                .bind(options.since)
                .bind(now)
                .bind(&options.account)
                .execute(&mut *tx)
                .await?;
                save_slice(
                    &mut tx,
                    &options.account,
                    &Slice::new(*resource, 0, Created::since(options.since), None),
                )
                .await?;
            }
            tx.commit().await?;
            options.since
        }
    };
    load_plan(db, &options.account, resources, since).await
}

/// The types of the run not yet done, with their slices left to fetch. A type left unfinished
/// by a version before slices resumes as one slice from its cursor.
async fn load_plan(db: &Db, account: &str, resources: &[Resource], since: Option<i64>) -> Result<Plan, SyncError> {
    let states = sqlx::query(
        "SELECT resource, cursor, fetched, applied, pages, sliced FROM sync_state WHERE account_id = $1 AND done = 0",
    )
    .bind(account)
    .fetch_all(db.reader())
    .await?;
    let rows = sqlx::query(
        "SELECT resource, slice, created_gte, created_lt, cursor, done, fetched, pages FROM sync_slices \
         WHERE account_id = $1",
    )
    .bind(account)
    .fetch_all(db.reader())
    .await?;
    let mut types = Vec::new();
    let mut slices = Vec::new();
    for resource in resources {
        let Some(state) = states
            .iter()
            .find(|r| r.try_get::<String, _>("resource").ok().as_deref() == Some(resource.table()))
        else {
            continue;
        };
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r.try_get::<String, _>("resource").ok().as_deref() == Some(resource.table()))
            .collect();
        let mut next_slice = 1;
        for row in &mine {
            let id: i64 = row.try_get("slice")?;
            next_slice = next_slice.max(id + 1);
            if row.try_get::<i64, _>("done")? != 0 {
                continue;
            }
            let mut slice = Slice::new(
                *resource,
                id,
                Created {
                    gte: row.try_get("created_gte")?,
                    lt: row.try_get("created_lt")?,
                },
                row.try_get("cursor")?,
            );
            slice.fetched = row.try_get("fetched")?;
            slice.pages = row.try_get("pages")?;
            slices.push(slice);
        }
        if mine.is_empty() {
            slices.push(Slice::new(
                *resource,
                0,
                Created::since(since),
                state.try_get("cursor")?,
            ));
        }
        types.push(TypeRun {
            resource: *resource,
            fetched: state.try_get("fetched")?,
            applied: state.try_get("applied")?,
            pages: state.try_get("pages")?,
            fetched_now: 0,
            sliced: state.try_get::<i64, _>("sliced")? != 0,
            skipped: None,
            next_slice,
        });
    }
    Ok(Plan::new(types, slices, since))
}

async fn save_slice(conn: &mut sqlx::AnyConnection, account: &str, slice: &Slice) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sync_slices (account_id, resource, slice, created_gte, created_lt, cursor, done, fetched, pages) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (account_id, resource, slice) DO UPDATE SET \
         created_gte = excluded.created_gte, created_lt = excluded.created_lt, cursor = excluded.cursor, \
         done = excluded.done, fetched = excluded.fetched, pages = excluded.pages",
    )
    .bind(account)
    .bind(slice.resource.table())
    .bind(slice.id)
    .bind(slice.range.gte)
    .bind(slice.range.lt)
    .bind(slice.cursor.as_deref())
    .bind(i64::from(slice.done))
    .bind(slice.fetched)
    .bind(slice.pages)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many pages are fetched at once for a client without a rate limit of its own.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// Pages in flight for a rate limit of `rate` requests a second: enough to keep the limiter busy
/// while each list call takes up to half a second at Stripe (a page of 100 objects takes 0.2 to
/// 0.6 s), so the backfill runs at the limit, not at the speed of one round trip.
pub fn concurrency_for(rate: u32) -> usize {
    (rate as usize).div_ceil(2).clamp(4, 64)
}

/// What the fetchers of one run share: the plan, and a signal that a page was committed (it may
/// have cut a slice an idle fetcher can take).
struct Shared {
    plan: std::sync::Mutex<Plan>,
    wake: tokio::sync::Notify,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs (or resumes) a backfill, calling `report` after every page. `options.concurrency`
/// fetchers take slices of the types (types in `ORDER`, their slices split as fetchers come
/// free) through the one client, whose limiter paces them all; the summary lists types in
/// `ORDER`.
pub async fn run(
    db: &Db,
    stripe: std::sync::Arc<dyn StripeApi>,
    options: &SyncOptions,
    mut report: impl FnMut(&Progress),
) -> Result<Vec<Progress>, SyncError> {
    let resources: Vec<Resource> = if options.only.is_empty() {
        ORDER.to_vec()
    } else {
        ORDER.into_iter().filter(|r| options.only.contains(r)).collect()
    };
    let plan = begin_run(db, options, &resources).await?;
    let run_types: Vec<Resource> = plan.types.iter().map(|t| t.resource).collect();
    let shared = std::sync::Arc::new(Shared {
        plan: std::sync::Mutex::new(plan),
        wake: tokio::sync::Notify::new(),
    });
    let fetchers = options
        .concurrency
        .unwrap_or_else(|| stripe.rate_limit().map_or(DEFAULT_CONCURRENCY, concurrency_for))
        .max(1);
    // Each fetcher is a task of its own, so answers are parsed and rows prepared on every core;
    // writers (`writers_for`) commit the pages that are ready, several in one transaction.
    // Dropping the tasks (the run abandoned) aborts them.
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::unbounded_channel();
    // Pages wait for a writer up to a commit's worth (a fetcher with a page beyond that waits).
    let (pages_tx, pages_rx) = tokio::sync::mpsc::channel(MOST_PAGES_PER_COMMIT);
    let pages_rx = std::sync::Arc::new(tokio::sync::Mutex::new(pages_rx));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..writers_for(db) {
        writers.spawn(writer(
            db.clone(),
            options.account.clone(),
            shared.clone(),
            pages_rx.clone(),
            progress_tx.clone(),
        ));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..fetchers {
        tasks.spawn(fetcher(
            stripe.clone(),
            db.clone(),
            options.clone(),
            shared.clone(),
            (pages_tx.clone(), progress_tx.clone()),
        ));
    }
    drop((pages_tx, progress_tx));
    // Every task holds a sender: the channel ends when the last one has ended.
    while let Some(progress) = progress_rx.recv().await {
        report(&progress);
    }
    // A writer's failure first: the fetchers then only saw that it stopped.
    let writer_failure = first_failure(&mut writers).await;
    let failure = writer_failure.or(first_failure(&mut tasks).await);
    // Writers of two slices committing at once may each have seen the other unfinished.
    sqlx::query(
        "UPDATE sync_state SET done = 1 WHERE account_id = $1 AND done = 0 AND NOT EXISTS \
         (SELECT 1 FROM sync_slices s WHERE s.account_id = sync_state.account_id AND s.resource = sync_state.resource \
         AND s.done = 0)",
    )
    .bind(&options.account)
    .execute(db.writer())
    .await?;
    if let Some(e) = failure {
        return Err(e);
    }
    let plan = lock(&shared.plan);
    // Stopped on request with slices unfinished: every page in flight was applied and its cursor
    // committed, so the next run resumes there.
    if !plan.finished() {
        return Err(SyncError::Stopped);
    }
    Ok(run_types.into_iter().map(|r| progress(&plan, r)).collect())
}

/// Waits for every task of the set; the first error any of them ended with.
async fn first_failure(tasks: &mut tokio::task::JoinSet<Result<(), SyncError>>) -> Option<SyncError> {
    let mut failure = None;
    while let Some(ended) = tasks.join_next().await {
        let result = ended.unwrap_or_else(|e| Err(SyncError::Fetcher(e.to_string())));
        if let (Err(e), None) = (result, &failure) {
            failure = Some(e);
        }
    }
    failure
}

fn progress(plan: &Plan, resource: Resource) -> Progress {
    let secs = plan.started.elapsed().as_secs_f64().max(0.001);
    let t = plan.type_run(resource);
    Progress {
        resource,
        fetched: t.map_or(0, |t| t.fetched),
        applied: t.map_or(0, |t| t.applied),
        pages: t.map_or(0, |t| t.pages),
        done: plan.type_done(resource),
        rate: (t.map_or(0, |t| t.fetched_now) as f64 / secs) as i64,
        in_flight: plan.in_flight(resource),
        requests_per_sec: plan.requests as f64 / secs,
        skipped: t.and_then(|t| t.skipped.clone()),
    }
}

/// Writers of a backfill: SQLite has one writing connection; on Postgres several commit at
/// once (its own work, compressing and indexing rows, then runs on every core).
fn writers_for(db: &Db) -> usize {
    match db.backend() {
        crate::config::Backend::Sqlite => 1,
        crate::config::Backend::Postgres => 4,
    }
}

/// Most pages committed in one transaction: enough to share a commit among the pages that came
/// in while the last one was written, few enough that a webhook waits at most a moment.
const MOST_PAGES_PER_COMMIT: usize = 16;

/// A page fetched and prepared, waiting for the writer.
struct Ready {
    slice: i64,
    outcome: slices::Page,
    rows: projection::PreparedPage,
}

/// One fetcher: takes a slice, fetches its next page and hands it to the writer, until nothing
/// is left, the run is asked to stop, or the run failed. The slice stays taken until its page
/// is committed; meanwhile the fetcher takes another.
async fn fetcher(
    stripe: std::sync::Arc<dyn StripeApi>,
    db: Db,
    options: SyncOptions,
    shared: std::sync::Arc<Shared>,
    (pages, report): (
        tokio::sync::mpsc::Sender<Ready>,
        tokio::sync::mpsc::UnboundedSender<Progress>,
    ),
) -> Result<(), SyncError> {
    let (plan, wake) = (&shared.plan, &shared.wake);
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let slice = {
            let mut p = lock(plan);
            // Asked to stop: no next page (the pages in flight are still committed).
            if options.stop.requested() || p.failed || p.finished() {
                return Ok(());
            }
            let slice = p.take();
            if slice.is_none() {
                p.idle += 1;
            }
            slice
        };
        let Some(slice) = slice else {
            // Every slice left is being fetched: wait for a commit, which may split one.
            notified.await;
            lock(plan).idle -= 1;
            continue;
        };
        let fetched = match fetch_page(stripe.as_ref(), &slice).await {
            Ok(Fetched::Page(ready)) => {
                let queued = std::time::Instant::now();
                let sent = pages.send(ready).await;
                tracing::debug!(
                    resource = slice.resource.table(),
                    slice = slice.id,
                    waited_ms = queued.elapsed().as_millis() as u64,
                    "page handed to the writer"
                );
                sent.map_err(|_| SyncError::Fetcher("the writer of the backfill stopped".into()))
            }
            Ok(Fetched::Forbidden(reason)) => skip_type(&db, &options.account, plan, slice.resource, &reason)
                .await
                .map(|progress| {
                    // The run reads the channel until every task ended: it is open.
                    let _ = report.send(progress);
                }),
            Err(e) => Err(e),
        };
        if fetched.is_err() {
            lock(plan).failed = true;
        }
        wake.notify_waiters();
        fetched?;
    }
}

/// What fetching a slice's next page gave.
enum Fetched {
    Page(Ready),
    /// The key may not list the type (`skip_reason`).
    Forbidden(String),
}

/// Fetches a slice's next page and prepares its rows.
async fn fetch_page(stripe: &dyn StripeApi, slice: &Slice) -> Result<Fetched, SyncError> {
    let resource = slice.resource;
    // Dated by when the request left, not when the answer came: a webhook about a change made
    // while the page was being fetched is newer and still wins.
    let version = Version::fetched(now_unix());
    let mut page = match stripe.list(resource, slice.cursor.as_deref(), slice.range).await {
        Ok(page) => page,
        Err(e) => {
            return match skip_reason(&e, crate::stripe::path(resource)) {
                Some(reason) => Ok(Fetched::Forbidden(reason)),
                None => Err(e.into()),
            }
        }
    };
    let mut requests = 1;
    for object in &mut page.data {
        requests += crate::stripe::complete_nested_lists(stripe, resource, object).await? as i64;
    }
    let outcome = slices::Page {
        last_id: page.data.last().and_then(|o| projection::read::text(o, "id")),
        count: page.data.len() as i64,
        has_more: page.has_more,
        created: page
            .data
            .iter()
            .map(|o| o.get("created").and_then(serde_json::Value::as_i64))
            .collect(),
        requests,
    };
    // Rows are read out of the page off the async workers, so the writer only executes.
    let prepared = std::time::Instant::now();
    let rows = tokio::task::spawn_blocking(move || projection::PreparedPage::new(resource, page.data, version))
        .await
        .map_err(|e| SyncError::Fetcher(e.to_string()))?
        .map_err(|(id, e)| SyncError::Apply {
            id,
            message: e.to_string(),
        })?;
    tracing::debug!(
        resource = resource.table(),
        prepare_ms = prepared.elapsed().as_millis() as u64,
        "page prepared"
    );
    Ok(Fetched::Page(Ready {
        slice: slice.id,
        outcome,
        rows,
    }))
}

/// Marks a type the key may not list as skipped (done, with the reason).
async fn skip_type(
    db: &Db,
    account: &str,
    plan: &std::sync::Mutex<Plan>,
    resource: Resource,
    reason: &str,
) -> Result<Progress, SyncError> {
    tracing::warn!(resource = resource.table(), reason, "sync skipped a type");
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE sync_state SET done = 1, skipped = $1, updated_at = $2 WHERE resource = $3 AND account_id = $4",
    )
    .bind(reason)
    .bind(now_unix())
    .bind(resource.table())
    .bind(account)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE sync_slices SET done = 1 WHERE resource = $1 AND account_id = $2")
        .bind(resource.table())
        .bind(account)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut p = lock(plan);
    p.skip(resource, reason);
    Ok(progress(&p, resource))
}

/// A writer: commits the pages that are ready, several in one transaction, each with its
/// slices' cursors and its type's counters, and reports progress; ends when every fetcher has.
async fn writer(
    db: Db,
    account: String,
    shared: std::sync::Arc<Shared>,
    pages: std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Ready>>>,
    report: tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Result<(), SyncError> {
    let mut batch = Vec::new();
    while pages.lock().await.recv_many(&mut batch, MOST_PAGES_PER_COMMIT).await > 0 {
        let (pages_now, started) = (batch.len(), std::time::Instant::now());
        let committed = commit_pages(&db, &account, &shared.plan, &mut batch).await;
        // Freeing a batch's rows (thousands of allocations) is left to a blocking thread, off
        // the writer.
        let written = std::mem::take(&mut batch);
        tokio::task::spawn_blocking(move || drop(written));
        tracing::debug!(
            pages = pages_now,
            ms = started.elapsed().as_millis() as u64,
            "pages committed"
        );
        match committed {
            Ok(progress) => {
                for p in progress {
                    // The run reads the channel until every task ended: it is open.
                    let _ = report.send(p);
                }
                shared.wake.notify_waiters();
            }
            Err(e) => {
                lock(&shared.plan).failed = true;
                shared.wake.notify_waiters();
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Writes pages in one transaction; returns each page's type's progress after it.
async fn commit_pages(
    db: &Db,
    account: &str,
    plan: &std::sync::Mutex<Plan>,
    batch: &mut [Ready],
) -> Result<Vec<Progress>, SyncError> {
    // Types in `ORDER`, so writers committing at once (Postgres) take rows they share in one order.
    batch.sort_by_key(|r| ORDER.iter().position(|o| *o == r.rows.resource()));
    // The plan moves on first (cursors, new slices; objects applied are counted after the
    // commit), so a transaction Postgres ends for a deadlock is written again as it was.
    let changes: Vec<slices::Changes> = {
        let mut p = lock(plan);
        batch
            .iter()
            .map(|r| p.record(r.rows.resource(), r.slice, &r.outcome))
            .collect()
    };
    let mut attempt = 1;
    let applied = loop {
        match write_pages(db, account, batch, &changes).await {
            Ok(applied) => break applied,
            Err((true, e)) if attempt < MOST_ATTEMPTS => {
                tracing::info!(attempt, error = %e, "a backfill commit met a deadlock; writing it again");
                attempt += 1;
            }
            Err((_, e)) => return Err(e),
        }
    };
    let mut p = lock(plan);
    Ok(batch
        .iter()
        .zip(&changes)
        .zip(applied)
        .map(|((ready, changes), applied)| {
            let resource = ready.rows.resource();
            p.count_applied(resource, applied);
            p.release(resource, &changes.slices.iter().map(|s| s.id).collect::<Vec<_>>());
            progress(&p, resource)
        })
        .collect())
}

/// Attempts at a backfill commit that Postgres ends for a deadlock.
const MOST_ATTEMPTS: u32 = 3;

/// One transaction: the pages' rows, their slices and their types' counters. Returns the
/// objects each page applied that count (`Changes::counted`); on failure, whether it was a
/// deadlock (worth writing again) and the error.
async fn write_pages(
    db: &Db,
    account: &str,
    batch: &[Ready],
    changes: &[slices::Changes],
) -> Result<Vec<i64>, (bool, SyncError)> {
    let db_error = |e: sqlx::Error| (is_deadlock(&e), SyncError::from(e));
    let mut tx = projection::Tx::begin(db).await.map_err(|e| (false, e.into()))?;
    // Per type: objects fetched and applied, pages, and whether it is sliced now.
    let mut counts: Vec<(Resource, i64, i64, i64, bool)> = Vec::new();
    let mut applied_per_page = Vec::with_capacity(batch.len());
    for (ready, changes) in batch.iter().zip(changes) {
        let resource = ready.rows.resource();
        let applied = projection::write_page(&mut tx, account, &ready.rows)
            .await
            .map_err(|(id, e)| {
                let deadlock = matches!(&e, projection::ProjectionError::Db(e) if is_deadlock(e));
                (
                    deadlock,
                    SyncError::Apply {
                        id,
                        message: e.to_string(),
                    },
                )
            })?;
        let applied = if changes.counted { applied } else { 0 };
        applied_per_page.push(applied);
        for changed in &changes.slices {
            save_slice(&mut tx, account, changed).await.map_err(db_error)?;
        }
        for dropped in &changes.dropped {
            sqlx::query("UPDATE sync_slices SET done = 1 WHERE account_id = $1 AND resource = $2 AND slice = $3")
                .bind(account)
                .bind(resource.table())
                .bind(dropped)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        match counts.iter_mut().find(|c| c.0 == resource) {
            Some(c) => {
                c.1 += changes.fetched;
                c.2 += applied;
                c.3 += 1;
                c.4 = changes.sliced;
            }
            None => counts.push((resource, changes.fetched, applied, 1, changes.sliced)),
        }
    }
    // Rows every writer may touch come last, in one order: the closed months' counter, the
    // types' counters, then (in `commit`) the projection's.
    if batch.iter().any(|r| r.rows.closes_revenue()) {
        projection::bump_revenue_closed(&mut tx).await.map_err(db_error)?;
    }
    for (resource, fetched, applied, pages, sliced) in &counts {
        sqlx::query(
            "UPDATE sync_state SET fetched = fetched + $1, applied = applied + $2, pages = pages + $3, sliced = $4, \
             updated_at = $5, done = CASE WHEN EXISTS (SELECT 1 FROM sync_slices s WHERE s.account_id = $6 \
             AND s.resource = $7 AND s.done = 0) THEN 0 ELSE 1 END WHERE resource = $7 AND account_id = $6",
        )
        .bind(fetched)
        .bind(applied)
        .bind(pages)
        .bind(i64::from(*sliced))
        .bind(now_unix())
        .bind(account)
        .bind(resource.table())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    Ok(applied_per_page)
}

/// Postgres ended the transaction to break a deadlock (SQLSTATE 40P01).
fn is_deadlock(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("40P01"))
}

/// The environment's account's backfill state per type (empty when no sync ever ran).
pub async fn status(db: &Db) -> Result<Vec<TypeProgress>, SyncError> {
    status_of(db, crate::domain::accounts::ENVIRONMENT).await
}

/// An account's backfill state per type.
pub async fn status_of(db: &Db, account: &str) -> Result<Vec<TypeProgress>, SyncError> {
    let rows = sqlx::query(
        "SELECT resource, done, fetched, applied, pages, started_at, updated_at, skipped FROM sync_state \
         WHERE account_id = $1",
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
            pages: row.try_get("pages")?,
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
